//! Bonding configuration in zerotier-one's `local.conf` schema.
//!
//! Spec: `shared/spec/zerotier-bonding.md` §2 (schema as parsed by zerotier-one 1.14.1), §3 (defaults),
//! §10 (2020 MULTIPATH.md keys), §11 (upstream quirks). Typed settings are in [`settings`]; errors in
//! [`error`].

pub mod error;
pub mod settings;

pub use error::{ConfigError, ConfigErrorKind};
pub use settings::*;
