//! Linux host side of a ztplane node (zerotier-vl2.md §7): the tap device that is the virtual
//! network port, the managed addresses and routes on it (rtnetlink), the link-layer multicast
//! groups the kernel joined on it, and the egress lookup (route, source, next-hop MAC) that an
//! AF_XDP sender needs for traffic to physical peers.
//!
//! Everything here is a thin, synchronous shell over the kernel; the protocol state machine lives
//! in other crates. Root (CAP_NET_ADMIN) is needed to create taps and change addresses and routes;
//! lookups work unprivileged.
pub mod cli;
pub mod control_socket;
pub mod controller_db;
pub mod egress;
pub mod error;
pub mod home;
pub mod mcast;
pub mod netlink;
pub mod offload;
pub mod packet_socket;
pub mod tap;

pub use error::{Error, Result};
