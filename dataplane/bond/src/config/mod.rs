//! Bonding configuration in zerotier-one's `local.conf` schema.
//!
//! Spec: `shared/spec/zerotier-bonding.md` §2 (schema as parsed by zerotier-one 1.14.1), §3 (defaults),
//! §10 (2020 MULTIPATH.md keys), §11 (upstream quirks). Typed settings are in [`settings`]; errors in
//! [`error`]; the parser is [`parse_local_conf`] / [`from_json`]; [`BondingConfig::to_json`] gives the
//! normalised form.
//!
//! Deliberate differences from zerotier-one 1.14.1 (each also documented where it is implemented):
//! * everything upstream silently ignores in a bonding object (unknown keys, wrong types, out-of-range
//!   values, weights not summing to 1, a `failoverTo` naming no link, an unknown policy name) is an error;
//! * `failoverInterval` below [`MIN_FAILOVER_INTERVAL_MS`] is an error (upstream raises it to 500 ms);
//! * `packetsPerLink`, `linkSelectMethod`, `balancePolicy`, `alloc`, `enabled` and partial `linkQuality`
//!   objects are applied (upstream ignores them);
//! * 2020 keys are mapped where they still mean something, with a warning naming today's key.

pub mod error;
mod json;
mod parse;
mod path;
mod render;
pub mod settings;

pub use error::{ConfigError, ConfigErrorKind, TextPosition};
pub use parse::{from_json, parse_local_conf};
pub use settings::*;
