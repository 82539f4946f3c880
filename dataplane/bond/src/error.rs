//! The crate's error type.

use crate::config::ConfigError;
use crate::path::PathId;

#[derive(Debug, thiserror::Error)]
pub enum BondError {
    /// The configuration was rejected (see [`ConfigError::path`] for where).
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The bond already holds 64 paths (zerotier-one's limit); remove one first.
    #[error("a bond holds at most {max} paths")]
    TooManyPaths { max: usize },
    /// The policy lists its links and this interface is not one of them (or is disabled).
    #[error("link {link:?} is not allowed by policy {policy:?} (it lists its links and this is not an enabled one)")]
    LinkNotAllowed { link: String, policy: String },
    /// An event named a path the bond does not have.
    #[error("unknown path {0:?}")]
    UnknownPath(PathId),
    /// A simulator scenario is invalid; `path` is the JSON path of the offending value.
    #[error("invalid scenario: {path}: {reason}")]
    Scenario { path: String, reason: String },
}
