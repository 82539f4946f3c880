//! ZeroTier's InetAddress serialization (spec §8, "InetAddress serialization").
//!
//! Type 0x00 = null, 0x04 = IPv4 (4 bytes + port), 0x06 = IPv6 (16 bytes + port). Parsers also
//! skip the legacy types 0x01/0x02 (6 more bytes) and 0x03 (u16 length + data). In netconf
//! values (`I`, `RT`) the "port" holds a prefix length.

use crate::error::{ProtocolError, Result};
use crate::wire::{Reader, WriteExt};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Read one InetAddress; `None` for null and for the skipped legacy types.
pub fn read_inet(r: &mut Reader<'_>) -> Result<Option<SocketAddr>> {
    match r.u8("InetAddress type")? {
        0x00 => Ok(None),
        0x04 => {
            let ip: [u8; 4] = r.array("IPv4 InetAddress")?;
            let port = r.u16("InetAddress port")?;
            Ok(Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)))
        }
        0x06 => {
            let ip: [u8; 16] = r.array("IPv6 InetAddress")?;
            let port = r.u16("InetAddress port")?;
            Ok(Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)))
        }
        0x01 | 0x02 => {
            r.take(6, "legacy InetAddress")?;
            Ok(None)
        }
        0x03 => {
            let len = r.u16("InetAddress length")? as usize;
            r.take(len, "InetAddress data")?;
            Ok(None)
        }
        other => Err(ProtocolError::InvalidValue { what: "InetAddress type", value: other as u64 }),
    }
}

/// Write one InetAddress (`None` → the null type byte).
pub fn write_inet(out: &mut Vec<u8>, addr: Option<&SocketAddr>) {
    match addr {
        None => out.put_u8(0),
        Some(SocketAddr::V4(a)) => {
            out.put_u8(0x04);
            out.put_slice(&a.ip().octets());
            out.put_u16(a.port());
        }
        Some(SocketAddr::V6(a)) => {
            out.put_u8(0x06);
            out.put_slice(&a.ip().octets());
            out.put_u16(a.port());
        }
    }
}

/// `ip:port` for IPv4, `[ip]:port` for IPv6 (Rust's `SocketAddr` display).
pub fn format_socket(addr: &SocketAddr) -> String {
    addr.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_skips() {
        let cases: [Option<SocketAddr>; 3] =
            [None, Some("198.18.1.1:9993".parse().unwrap()), Some("[fd00::1]:443".parse().unwrap())];
        for c in cases {
            let mut out = Vec::new();
            write_inet(&mut out, c.as_ref());
            let mut r = Reader::new(&out);
            assert_eq!(read_inet(&mut r).unwrap(), c);
            assert!(r.is_empty());
        }
        let mut r = Reader::new(&[0x01, 1, 2, 3, 4, 5, 6, 0x03, 0, 2, 9, 9, 0x00]);
        assert_eq!(read_inet(&mut r).unwrap(), None);
        assert_eq!(read_inet(&mut r).unwrap(), None);
        assert_eq!(read_inet(&mut r).unwrap(), None);
        assert!(read_inet(&mut Reader::new(&[0x07])).is_err());
        assert!(read_inet(&mut Reader::new(&[0x04, 1, 2])).is_err());
    }
}
