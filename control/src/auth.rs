//! The local API's secrets and how a request proves it knows one, as zerotier-one 1.14.1 does it.
//!
//! - `authtoken.secret` (and `metricstoken.secret`, accepted only for `/metrics`) in the home directory: if
//!   missing, zerotier-one writes 24 characters drawn from `a-z0-9` (a random byte modulo 36 each), no trailing
//!   newline, mode 0600; an existing file is never rewritten and is read with surrounding whitespace trimmed.
//! - A request carries the token in the `X-ZT1-Auth` header, else in an `auth` query parameter, else as
//!   `Authorization: Bearer <token>` (scheme case-insensitive, exactly one space-separated token). Only the first
//!   of these that is present is looked at: a wrong `X-ZT1-Auth` is not rescued by a right `?auth=`.
use std::fs::{self, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const AUTHTOKEN_FILE: &str = "authtoken.secret";
pub const METRICSTOKEN_FILE: &str = "metricstoken.secret";
const TOKEN_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const TOKEN_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: empty token (delete it to have a new one written)", path.display())]
    Empty { path: PathBuf },
}

/// The token in `home/name`, written first (as zerotier-one would) if the file does not exist.
pub fn load_or_create(home: &Path, name: &str) -> Result<String, TokenError> {
    let path = home.join(name);
    let io_err = |source| TokenError::Io { path: path.clone(), source };
    // create_new: a token another process writes at the same moment wins and is then read back.
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
        Ok(mut file) => file.write_all(new_token().map_err(io_err)?.as_bytes()).map_err(io_err)?,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(e)),
    }
    let token = fs::read_to_string(&path).map_err(io_err)?.trim().to_string();
    if token.is_empty() {
        return Err(TokenError::Empty { path });
    }
    Ok(token)
}

/// 24 characters from zerotier-one's token alphabet.
fn new_token() -> io::Result<String> {
    let mut bytes = [0u8; TOKEN_LEN];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(token_from_bytes(&bytes))
}

/// zerotier-one's mapping of random bytes onto its alphabet (byte modulo 36).
pub fn token_from_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(TOKEN_ALPHABET[usize::from(b) % TOKEN_ALPHABET.len()])).collect()
}

/// What a request presented, in zerotier-one's order of precedence.
#[derive(Debug, Clone, PartialEq)]
pub enum Presented<'a> {
    Header(&'a str),
    Query(String),
    Authorization(&'a str),
    Nothing,
}

impl<'a> Presented<'a> {
    /// `x_zt1_auth` and `authorization` are the header values (if any), `query` the URL's query string.
    pub fn from_request(x_zt1_auth: Option<&'a str>, query: Option<&str>, authorization: Option<&'a str>) -> Self {
        if let Some(token) = x_zt1_auth {
            Presented::Header(token)
        } else if let Some(token) = query.and_then(|q| query_param(q, "auth")) {
            Presented::Query(token)
        } else if let Some(value) = authorization {
            Presented::Authorization(value)
        } else {
            Presented::Nothing
        }
    }

    /// True if what was presented is one of `tokens`.
    pub fn matches_any(&self, tokens: &[&str]) -> bool {
        let token = match self {
            Presented::Header(t) => *t,
            Presented::Query(t) => t.as_str(),
            Presented::Authorization(value) => match bearer_token(value) {
                Some(t) => t,
                None => return false,
            },
            Presented::Nothing => return false,
        };
        tokens.iter().any(|good| constant_time_eq(good.as_bytes(), token.as_bytes()))
    }
}

/// The token of `Bearer <token>`: two fields split on single spaces, the first `bearer` in any case.
fn bearer_token(value: &str) -> Option<&str> {
    let fields: Vec<&str> = value.split(' ').filter(|f| !f.is_empty()).collect();
    match fields.as_slice() {
        [scheme, token] if scheme.eq_ignore_ascii_case("bearer") => Some(token),
        _ => None,
    }
}

/// The first value of `name` in a query string, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
            (b'+', _, _) => out.push(b' '),
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Comparison whose time does not depend on where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_alphabet_and_mapping() {
        assert_eq!(token_from_bytes(&[0, 25, 26, 35, 36, 255]), "az09ad");
        let token = new_token().unwrap();
        assert_eq!(token.len(), 24);
        assert!(token.bytes().all(|b| TOKEN_ALPHABET.contains(&b)), "{token}");
    }

    #[test]
    fn token_file_created_once_0600_without_newline() {
        let dir = std::env::temp_dir().join(format!("ztplanectl-auth-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let token = load_or_create(&dir, AUTHTOKEN_FILE).unwrap();
        let path = dir.join(AUTHTOKEN_FILE);
        assert_eq!(fs::read_to_string(&path).unwrap(), token, "exactly the token, no newline");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load_or_create(&dir, AUTHTOKEN_FILE).unwrap(), token, "never rewritten");
        // An operator's token, with the newline an editor adds, is kept and read trimmed.
        fs::write(&path, "mytoken\n").unwrap();
        assert_eq!(load_or_create(&dir, AUTHTOKEN_FILE).unwrap(), "mytoken");
        assert_eq!(fs::read_to_string(&path).unwrap(), "mytoken\n");
        fs::write(&path, " \n").unwrap();
        assert!(matches!(load_or_create(&dir, AUTHTOKEN_FILE), Err(TokenError::Empty { .. })));
        fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(load_or_create(&dir, AUTHTOKEN_FILE), Err(TokenError::Io { .. })));
    }

    #[test]
    fn presented_tokens() {
        let good = ["secret"];
        assert!(Presented::from_request(Some("secret"), None, None).matches_any(&good));
        assert!(!Presented::from_request(Some("secreT"), None, None).matches_any(&good));
        assert!(!Presented::from_request(Some("secret "), None, None).matches_any(&good));
        // Header first, then query, then Authorization: the first present one decides.
        assert!(!Presented::from_request(Some("bad"), Some("auth=secret"), Some("Bearer secret")).matches_any(&good));
        assert!(Presented::from_request(None, Some("a=1&auth=secr%65t"), None).matches_any(&good));
        assert!(!Presented::from_request(None, Some("auth=bad"), Some("Bearer secret")).matches_any(&good));
        assert!(Presented::from_request(None, Some("x=1"), Some("BEARER secret")).matches_any(&good));
        assert!(!Presented::from_request(None, None, Some("Bearer secret extra")).matches_any(&good));
        assert!(!Presented::from_request(None, None, Some("secret")).matches_any(&good));
        assert!(!Presented::from_request(None, None, None).matches_any(&good));
        assert!(!Presented::from_request(Some(""), None, None).matches_any(&[""][..0]));
    }

    #[test]
    fn query_strings() {
        assert_eq!(query_param("auth=a%2Fb+c&auth=second", "auth").as_deref(), Some("a/b c"));
        assert_eq!(query_param("x&auth", "auth").as_deref(), Some(""));
        assert_eq!(query_param("bad=%zz", "bad").as_deref(), Some("%zz"));
        assert_eq!(query_param("", "auth"), None);
    }
}
