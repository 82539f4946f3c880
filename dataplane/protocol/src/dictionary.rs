//! ZeroTier Dictionary text format (spec §8.10): `key=value` lines separated by LF; in values
//! NUL, CR, LF, `\` and `=` are escaped as `\0`, `\r`, `\n`, `\\`, `\e`. A NUL byte ends the
//! dictionary (senders may or may not append one).
//!
//! Used by NETWORK_CONFIG_REQUEST metadata, network configs, ERROR payloads and REMOTE_TRACE.

use crate::error::{ProtocolError, Result};

/// Upper bound on a dictionary we parse (the netconf capacity upstream is a few hundred KiB).
pub const MAX_DICTIONARY_LEN: usize = 1 << 20;

/// An ordered list of key → raw (unescaped) value pairs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dictionary {
    entries: Vec<(String, Vec<u8>)>,
}

impl Dictionary {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse the wire text. Keys must be printable ASCII without `=`; a line without `=` is an
    /// error; later duplicates of a key replace earlier ones (order of first appearance kept).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_DICTIONARY_LEN {
            return Err(ProtocolError::TooLarge { what: "dictionary", value: bytes.len(), limit: MAX_DICTIONARY_LEN });
        }
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let mut dict = Dictionary::new();
        for line in bytes[..end].split(|&b| b == b'\n' || b == b'\r') {
            if line.is_empty() {
                continue;
            }
            let eq = line.iter().position(|&b| b == b'=').ok_or_else(|| ProtocolError::Malformed {
                what: "dictionary line",
                detail: format!("no '=' in {:?}", String::from_utf8_lossy(&line[..line.len().min(40)])),
            })?;
            let key = &line[..eq];
            if key.is_empty() || !key.iter().all(|b| b.is_ascii_graphic()) {
                return Err(ProtocolError::Malformed {
                    what: "dictionary key",
                    detail: format!("{:?}", String::from_utf8_lossy(key)),
                });
            }
            let value = unescape(&line[eq + 1..]);
            // Keys are ASCII graphic, so this conversion cannot fail.
            let key = String::from_utf8_lossy(key).into_owned();
            dict.set(&key, value);
        }
        Ok(dict)
    }

    /// Serialize (no trailing NUL).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.entries {
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            escape_into(v, &mut out);
            out.push(b'\n');
        }
        out
    }

    /// Set (or replace) a value.
    pub fn set(&mut self, key: &str, value: impl Into<Vec<u8>>) {
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }

    /// Set an integer the way ZeroTier writes them: lower-case hex, zero-padded to 16 digits.
    pub fn set_u64(&mut self, key: &str, value: u64) {
        self.set(key, format!("{value:016x}").into_bytes());
    }

    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
    }

    /// A hex integer value.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        let v = core::str::from_utf8(self.get(key)?).ok()?;
        u64::from_str_radix(v, 16).ok()
    }

    /// Keys in order of first appearance.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    pub fn entries(&self) -> &[(String, Vec<u8>)] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// True if every byte is printable ASCII (space through `~`).
pub fn is_printable(value: &[u8]) -> bool {
    value.iter().all(|&b| (0x20..=0x7e).contains(&b))
}

fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut iter = raw.iter();
    while let Some(&b) = iter.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match iter.next() {
            Some(b'0') => out.push(0),
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b'e') => out.push(b'='),
            Some(&other) => out.push(other),
            None => {}
        }
    }
    out
}

fn escape_into(value: &[u8], out: &mut Vec<u8>) {
    for &b in value {
        match b {
            0 => out.extend_from_slice(b"\\0"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'=' => out.extend_from_slice(b"\\e"),
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_binary_and_text() {
        let mut d = Dictionary::new();
        d.set_u64("v", 7);
        d.set("o", b"linux/x86_64".to_vec());
        d.set("C", vec![0u8, b'\r', b'\n', b'\\', b'=', 1, 2, 255]);
        let wire = d.encode();
        assert!(!wire[..wire.len() - 1].contains(&b'\n') || wire.iter().filter(|&&b| b == b'\n').count() == 3);
        let back = Dictionary::parse(&wire).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.get_u64("v"), Some(7));
        assert_eq!(back.keys().collect::<Vec<_>>(), vec!["v", "o", "C"]);
        assert!(is_printable(back.get("o").unwrap()));
        assert!(!is_printable(back.get("C").unwrap()));
    }

    #[test]
    fn nul_terminates_and_bad_lines_fail() {
        let d = Dictionary::parse(b"a=1\nb=2\0c=3\n").unwrap();
        assert_eq!(d.len(), 2);
        assert!(Dictionary::parse(b"novalue\n").is_err());
        assert!(Dictionary::parse(b"=x\n").is_err());
        assert_eq!(Dictionary::parse(b"").unwrap().len(), 0);
        assert_eq!(Dictionary::parse(b"a=\\").unwrap().get("a"), Some(&b""[..]));
    }
}
