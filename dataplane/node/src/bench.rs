//! Entry points for the scale benchmark (`ztplane-bench peers`), behind the cargo feature
//! `bench`, which only `ztplane-bench` enables.
//!
//! A benchmark with 100,000 peers cannot make them through HELLO: every new identity costs a
//! memory-hard validation and an x25519 agreement (milliseconds each). These hooks put into the
//! node the state those exchanges would leave, and nothing else; every timer, lookup and
//! snapshot rebuild the benchmark then measures runs the node's ordinary code.

use crate::node::MAX_PEERS;
use crate::peer::Peer;
use crate::time::Instant;
use crate::{ANNOUNCED_VERSION, Address, Identity, LocalSocket, NetworkId};
use std::net::SocketAddr;
use ztplane_crypto::PeerKey;
use ztplane_protocol::header::PROTOCOL_VERSION;

impl crate::Node {
    /// Inserts a peer as a HELLO from it and our OK(HELLO) exchange at `now` leave it: a 1.14.1
    /// node (protocol 12, so AES-GMAC-SIV) with `key` as the agreed key and `(local, remote)` as
    /// its direct path (`Peer::learn_path`, as an OK teaches it). `identity` is **not** validated
    /// and `key` is not derived from it. The snapshot is marked dirty, not rebuilt (the next
    /// input, or [`crate::Node::bench_publish`], rebuilds it once). Returns `false` (nothing
    /// inserted) for our own or an already known address, or when the peer table is full.
    #[doc(hidden)]
    pub fn bench_insert_peer(
        &mut self,
        identity: Identity,
        key: PeerKey,
        local: LocalSocket,
        remote: SocketAddr,
        now: Instant,
    ) -> bool {
        let address = identity.address();
        if address == self.me || self.peers.contains_key(&address) || self.peers.len() >= MAX_PEERS {
            return false;
        }
        let mut peer = Peer::new(identity, key, now);
        peer.protocol_version = PROTOCOL_VERSION;
        peer.version = ANNOUNCED_VERSION;
        peer.learn_path(local, remote, now);
        self.peers.insert(address, peer);
        self.data_path_dirty = true;
        true
    }

    /// Pushes our credentials for `network` to `peer` as the first unicast frame to it would
    /// (real NETWORK_CREDENTIALS packets are queued as transmits), without sending the frame and
    /// without rebuilding the snapshot.
    #[doc(hidden)]
    pub fn bench_push_credentials(&mut self, now: Instant, network: NetworkId, peer: Address) {
        self.last_seen_now = now;
        self.push_credentials_if_needed(now, network, peer);
    }

    /// Rebuilds the snapshot now if anything changed, whatever the spacing of rebuilds.
    #[doc(hidden)]
    pub fn bench_publish(&mut self, now: Instant) {
        self.last_seen_now = now;
        self.publish_now();
    }
}
