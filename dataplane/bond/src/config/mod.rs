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
//!
//! Key handling at a glance (paths relative to `settings`):
//!
//! | key | handling |
//! |---|---|
//! | `defaultBondingPolicy`, `policies`, `peerSpecificBonds` | validated; names must resolve |
//! | policy: `basePolicy` (missing ⇒ warning, no bond), `failoverInterval` (10..=600000 ms), `upDelay`, `downDelay` (0..=600000 ms), `activeReselect`, `packetsPerLink` (0..=65535, 0 = random), `balancePolicy`, `linkQuality`, `links` | current keys |
//! | policy 2020 aliases: `slaves`, `packetsPerSlave`, `slaveSelectMethod`, `linkSelectMethod`, `quality`/`qualityWeights`, `maxAcceptable{Latency,MeanLatency,PacketDelayVariance,PacketLossRatio,PacketErrorRatio}` | mapped, warning naming the current key |
//! | policy 2020 removed: `monitorInterval`, `*MonitorStrategy`, `*RebalanceStrategy`, `dedup`, `allowFlowHashing`, `allowPathNegotiation`, `minAcceptableAllocation`, `overflow` | ignored, warning |
//! | link: `mode`, `failoverTo`, `ipvPref`, `capacity`, `alloc`, `enabled`, `mtu` | current keys |
//! | link 2020: `speed` (→ `capacity`); `failoverInterval`, `upDelay`, `downDelay`, `monitorInterval` | mapped / ignored, warning |
//! | `settings["<standard policy>"]` (2020 placement) | applied as [`BondingConfig::standard_overrides`], warning |
//! | `multipathMode` (1.4) | ignored, warning |
//! | known non-bonding zerotier-one settings (`primaryPort`, `allowTcpFallbackRelay`, …), `physical`, `virtual` | accepted untouched |
//! | any other key in `settings` or at the top level | accepted, warning |
//! | any other key in a policy, link or `linkQuality` object | error |

pub mod error;
mod json;
mod parse;
mod path;
mod render;
pub mod settings;

pub use error::{ConfigError, ConfigErrorKind, TextPosition};
pub use parse::{from_json, parse_local_conf};
pub use settings::*;
