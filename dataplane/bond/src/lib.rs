//! Multipath bonding engine: policies, link quality, failover.
//!
//! Pure: no I/O and no clocks; time is a parameter (microseconds). Spec: `shared/spec/zerotier-bonding.md`.
//!
//! * [`bond::Bond`] — the bond with one peer: events in, decisions, transmits and timers out.
//! * [`selection`] — the O(1), lock-free per-packet decision workers make.
//! * [`quality`], [`measure`], [`failover`] — measurement and failure detection.
//! * [`policy`] — active-backup, broadcast and balance decisions.
//! * [`sim`] — a deterministic simulator running two bonds over virtual links.
pub mod bond;
pub mod config;
pub mod dedup;
pub mod error;
pub mod failover;
pub mod flow;
pub mod measure;
pub mod path;
pub mod peers;
pub mod policy;
pub mod quality;
pub mod rng;
pub mod selection;
pub mod sim;

pub use bond::{Bond, BondEvent, BondStats, Delivery, Transmit};
pub use error::BondError;
pub use flow::{FlowHash, FlowKey};
pub use measure::{PacketKind, PathAck, QosRecord};
pub use path::PathId;
pub use peers::PeerBonds;
pub use selection::{Selection, SelectionHandle, SelectionTable, WorkerCursor};
