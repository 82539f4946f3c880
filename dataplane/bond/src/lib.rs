//! Multipath bonding engine: policies, link quality, failover.
//!
//! Pure: no I/O, no clocks, no threads; time is a parameter (microseconds), randomness is seeded.
//! Spec: `shared/spec/zerotier-bonding.md` (zerotier-one 1.14.1's bonding layer) and
//! `shared/spec/zerotier-protocol.md` §8.8 (ECHO), §8.13 (QOS_MEASUREMENT).
//!
//! # Shape (quinn-proto style)
//! * [`Bond`] — the bond with one peer. Events in (`on_data_sent`, `on_packet_received`,
//!   `on_echo_reply`, `on_qos_records`, `on_path_ack`, `on_auth_failure`, ...) with `now`; out come
//!   [`Transmit`]s (ECHO probes, QoS records, path acks), [`BondEvent`]s (failovers, path up/down) and
//!   the next timer ([`Bond::poll_timeout`] / [`Bond::handle_timeout`]).
//! * [`PeerBonds`] — one bond per peer, from the configuration's per-peer / default policy.
//! * [`selection`] — the per-packet decision: the bond publishes an immutable [`SelectionTable`]
//!   through an atomically swapped [`SelectionHandle`]; each worker decides with its own
//!   [`WorkerCursor`]: O(1), lock-free, allocation-free.
//! * [`quality`], [`measure`], [`failover`] — measurement and failure detection; [`policy`] — the
//!   active-backup and balance decisions; [`flow`] — flow hashing; [`dedup`] — duplicate suppression.
//! * [`sim`] — a deterministic simulator running two bonds over virtual links.
//! * [`config`] — `local.conf` parsing and typed settings.
//!
//! # Where ztplane deliberately differs from zerotier-one 1.14.1 (spec §11)
//! * Failure is detected from traffic (overdue acknowledgements, silence while sending, unanswered
//!   probes), in tens of milliseconds, not only after `failoverInterval`; `failoverInterval` remains a
//!   backstop. Flapping paths are held down with a decaying exponential back-off (upstream computes a
//!   refractory period but never applies it).
//! * Loss and error ratios and throughput are measured (upstream reports 0); loss is exact between
//!   ztplane nodes (path acks) and estimated from QoS records with zerotier-one peers. QoS RTT math does
//!   not wrap at 16 bits; PDV is the RFC 3550 estimator, not a wrapping u16 sum.
//! * `packetsPerLink` is applied as configured (upstream always uses 64 and sends 65 per turn).
//! * The active-backup failover queue is ordered (failoverTo, primaries, quality); `always` returns to
//!   a usable primary regardless of queue position.
//! * balance-xor hashes addresses, ports and protocol (upstream: ports only), and moves only the failed
//!   path's flows; balance-aware allocates from `alloc`, `capacity`, or measured capacity and quality
//!   (upstream divides 0 by 0 without capacities), rebalances with the fewest moves, and implements
//!   flow-dynamic / flow-static / packet.
//! * Broadcast duplicates are suppressed on receive (upstream delivers them).
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
pub mod report;
pub mod rng;
pub mod selection;
pub mod sim;

pub use bond::{Bond, BondEvent, BondStats, Delivery, Transmit};
pub use error::BondError;
pub use flow::{FlowHash, FlowKey, frame_flow_hash};
pub use measure::{PacketKind, PathAck, QosRecord, TxRecord};
pub use path::PathId;
pub use peers::PeerBonds;
pub use quality::QualityReport;
pub use report::{BondReport, PathReport};
pub use selection::{Selection, SelectionHandle, SelectionTable, WorkerCursor};
