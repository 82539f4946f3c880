//! The configuration error type: where in the JSON document, and why.

use thiserror::Error;

/// What class of problem a [`ConfigError`] reports, so callers (and tests) can act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigErrorKind {
    /// The text is not JSON.
    Syntax,
    /// A key zerotier-one would silently ignore inside a bonding object.
    UnknownKey,
    /// The same key twice in one object (e.g. two links with one name).
    DuplicateKey,
    /// A required key is absent.
    MissingKey,
    /// The value has the wrong JSON type.
    WrongType,
    /// The value has the right type but is outside the accepted set or range.
    OutOfRange,
    /// Weights or allocations that must sum to 1 do not.
    BadSum,
    /// A name refers to a link the policy does not list.
    UnknownLink,
    /// A name refers to no standard or custom policy.
    UnknownPolicy,
    /// A custom policy uses a standard policy's name.
    ReservedName,
    /// A `peerSpecificBonds` key is not a valid ZeroTier address.
    BadAddress,
    /// Two keys (a current one and its 2020 alias) disagree, or settings contradict each other.
    Conflict,
}

/// A rejected configuration. Display: `path: reason`.
///
/// `path` is a JSON path from the document root: object keys joined by `.`, array indices as `[i]`, and
/// keys that contain `.`, `[`, `]`, `"` or whitespace (e.g. VLAN interfaces like `eth0.100`) written as
/// `["key"]`, e.g. `settings.policies.fast-ab.links["eth0.100"].mode`. The root itself is the empty path
/// (shown as `(root)`).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{}: {reason}", if path.is_empty() { "(root)" } else { path.as_str() })]
pub struct ConfigError {
    pub kind: ConfigErrorKind,
    pub path: String,
    pub reason: String,
    /// Where the offending key (or, for syntax errors, the bad character) is in the text; set by
    /// `parse_local_conf`, `None` from `from_json` (a `Value` has no text).
    pub position: Option<TextPosition>,
}

impl ConfigError {
    pub fn new(kind: ConfigErrorKind, path: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError { kind, path: path.into(), reason: reason.into(), position: None }
    }
}

/// A 1-based line and column (in characters) in the `local.conf` text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TextPosition {
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for TextPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}
