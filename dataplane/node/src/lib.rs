//! A ZeroTier 1.x node (zerotier-one 1.14.1 behaviour) as a pure state machine.
//!
//! No I/O, no clocks, no threads: datagrams, tap frames and the current [`Instant`] go in;
//! [`Transmit`]s, [`Event`]s and the next deadline come out (the quinn-proto shape). The same
//! code therefore runs in ztplane's slow-path thread and in tests with many nodes on one
//! virtual clock. Spec: `shared/spec/zerotier-vl2.md` (node behaviour, cited as §n) and
//! `shared/spec/zerotier-protocol.md` (VL1 §n).
//!
//! * [`Node`] — identity, roots (planet and moons), peers and paths, networks; the VL1 verbs
//!   (HELLO, OK, WHOIS, ECHO, RENDEZVOUS, PUSH_DIRECT_PATHS, ERROR, relaying), joining (config
//!   requests, chunked signed configs, status), credentials and the membership gate, frames,
//!   multicast, and the timers of §1.3.
//! * [`datapath::DataPath`] — the immutable snapshot the workers use for frames between known
//!   peers (keys, paths, gates, rules), published by the node whenever something it holds
//!   changes; the node itself delivers frames through the same functions.
//! * [`controller`] — the hook through which a node is the controller of its own networks (§2.3):
//!   the [`Controller`] decides, the node signs, chunks, pushes and revokes.
//! * [`config`] — the netconf dictionary (§2.5); [`peer`] — peers, paths, address scopes (§1.5,
//!   §1.6); [`network`] — networks, memberships and multicast state (§2, §3, §5); [`status`] —
//!   the zerotier-one-shaped views behind `ztplanectl`.
//!
//! Randomness (packet IDs, choices) comes from a seeded ChaCha20 generator: the shell seeds it
//! from the OS, tests with a constant.
#![forbid(unsafe_code)]

#[cfg(feature = "bench")]
mod bench;
pub mod bonding;
pub mod bridge;
pub mod config;
pub mod controller;
pub mod datapath;
mod expect;
mod frames;
mod multicast;
pub mod network;
mod node;
pub mod peer;
pub mod status;
pub mod time;
mod vl1;

pub use controller::Controller;
pub use node::{ArrivedOn, Counters, Node, NodeConfig, NodeError};
pub use time::Instant;
pub use ztplane_crypto::{Address, Identity};
pub use ztplane_protocol::network::{Mac, MulticastGroup, NetworkId};

use std::net::SocketAddr;

/// The local end of a path, as the shell numbers it (e.g. the underlay interface index). The
/// node only compares it: a path is (local socket, remote address).
pub type LocalSocket = u32;

/// Version ztplane announces in HELLO and in config requests. zerotier-one keys behaviour on
/// the protocol version (12: AES-GMAC-SIV) and controllers on `majv/minv/revv` (rules engine
/// version), so ztplane speaks exactly as a 1.14.1 node.
pub const ANNOUNCED_VERSION: (u8, u8, u16) = (1, 14, 1);

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// `None`: from every local socket (sends without a learned path, §1.3).
    pub local: Option<LocalSocket>,
    pub remote: SocketAddr,
    pub data: Vec<u8>,
    /// IP TTL for this datagram only (the 4-byte hole-punch junk uses 2, VL1 §1).
    pub ttl: Option<u8>,
}

/// Something the host must act on.
#[derive(Debug, Clone)]
pub enum Event {
    /// A network was joined: bring its port (tap) up now with this MAC and MTU (§2.1).
    NetworkJoined { network: NetworkId, mac: Mac, mtu: u32 },
    /// A configuration was installed or changed: addresses, routes, MTU, name (§2.4, §7.2).
    NetworkConfigured { network: NetworkId, config: std::sync::Arc<config::NetworkConfig> },
    /// The network was left: remove its port and its cached config.
    NetworkLeft { network: NetworkId },
    /// Write this Ethernet frame (destination, source, ethertype, payload) to the network's port.
    Deliver { network: NetworkId, frame: Vec<u8> },
    /// Write this Ethernet frame to the LAN bridged into the network (gateway mode, [`bridge`]).
    DeliverLan { network: NetworkId, frame: Vec<u8> },
    /// Persist state: `networks.d/<nwid>.conf` (a lone `\n` after a join without config).
    SaveNetwork { network: NetworkId, dictionary: Vec<u8> },
    /// Persist `peers.d/<address>.peer`.
    SavePeer { address: Address, cache: Vec<u8> },
    /// A newer planet or moon was accepted (world updates in OK(HELLO), §1.1): persist it.
    SaveWorld { world_type: u8, id: u64, bytes: Vec<u8> },
    /// An upstream reports another node with our address (§2.6): the identity must change.
    IdentityCollision,
    /// The data path snapshot changed: workers should pick up [`Node::data_path`].
    DataPathChanged,
    /// Something happened to the bond with `peer` (failover, path up or down): for the logs.
    Bond { peer: Address, event: ztplane_bond::BondEvent },
}
