//! ztplane dataplane: XDP steering, per-core AF_XDP workers, the cross-core hand-off and the
//! forwarding mode that every later packet path is measured against.
//!
//! I/O shell only: the protocol (`ztplane-protocol`, `ztplane-crypto`) and the bonding engine
//! (`ztplane-bond`) are pure libraries this crate drives.
pub mod config;
pub mod error;
pub mod frame;
pub mod fwd;
pub mod handoff;
pub mod port;
pub mod stats;
pub mod steering;
pub mod system;
pub mod worker;

pub use error::DataplaneError;
