//! ztplane dataplane: the ZeroTier node (`ztplane node`) on XDP steering, per-core AF_XDP
//! workers and the cross-core hand-off, and the forwarding mode (`ztplane fwd`) that the packet
//! path is measured against.
//!
//! I/O shell only: the protocol (`ztplane-protocol`, `ztplane-crypto`) and the bonding engine
//! (`ztplane-bond`) are pure libraries this crate drives.
pub mod config;
pub mod error;
pub mod frame;
pub mod fwd;
pub mod handoff;
pub mod node;
pub mod port;
pub mod stats;
pub mod steering;
pub mod system;
pub mod worker;

pub use error::DataplaneError;
