//! The node: construction, the inputs and outputs of the state machine, the send path of §1.4
//! and the receive front end of VL1 §3.2. The verbs live in `vl1`, `network`, `multicast` and
//! `frames`; they are all `impl Node` blocks over the state defined here.

use crate::datapath::DataPath;
use crate::expect::ExpectingReplies;
use crate::network::Network;
use crate::peer::{CachedPeer, Peer};
use crate::time::{Instant, elapsed, since};
use crate::{Address, Event, LocalSocket, NetworkId, Transmit};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use ztplane_crypto::{CipherSuite, Identity, PeerKey};
use ztplane_protocol::compress::{compress_payload, decompress_payload};
use ztplane_protocol::fragment::fragment_packet;
use ztplane_protocol::header::{
    DEFAULT_PHYS_MTU, FLAG_FRAGMENTED, MAX_PACKET_LEN, PAYLOAD_OFFSET, Verb, VerbByte, write_header,
};
use ztplane_protocol::rx::{Inbound, Receiver};
use ztplane_protocol::world::World;

/// TX queue of packets waiting for an identity or a path (§1.4): 32 entries, 5 s.
const TX_QUEUE_LEN: usize = 32;
const TX_QUEUE_TIMEOUT_MS: u64 = 5_000;
/// Parked received packets (unknown sender, or frames failing the gate): 32 entries, 5 s.
const RX_PARK_LEN: usize = 32;
const RX_PARK_TIMEOUT_MS: u64 = 5_000;
/// Retry tick for both queues and WHOIS (`ZT_WHOIS_RETRY_DELAY`).
pub(crate) const RETRY_TICK_MS: u64 = 500;
/// The ping pass (`ZT_PING_CHECK_INTERVAL`) and housekeeping periods (§1.3).
pub(crate) const PING_PASS_MS: u64 = 5_000;
pub(crate) const HOUSEKEEPING_MS: u64 = 30_000;
/// Peers we keep at most; beyond it the longest-silent non-upstream peer is dropped.
pub const MAX_PEERS: usize = 1 << 17;
/// WHOIS requests outstanding at most (each waits for at most [`TX_QUEUE_TIMEOUT_MS`]).
const MAX_WHOIS: usize = 1024;
/// A new identity is validated (memory-hard, ~ms) at most this often per source-IP bucket
/// (`ZT_IDENTITY_VALIDATION_SOURCE_RATE_LIMIT`).
pub(crate) const IDENTITY_VALIDATION_MS: u64 = 2_000;

/// What the node starts from (the home directory, read by the shell).
pub struct NodeConfig {
    /// Our identity, with its secret key.
    pub identity: Identity,
    /// The planet: a `planet` file if present, else the built-in Earth ([`NodeConfig::earth`]).
    pub planet: World,
    /// `moons.d/*.moon`, orbited at start (§1.1: accepted without a signature check).
    pub moons: Vec<World>,
    /// `peers.d/*.peer` contents.
    pub cached_peers: Vec<Vec<u8>>,
    /// Joined networks (`networks.d/*.conf`) and their cached dictionaries (empty if none).
    pub networks: Vec<(NetworkId, Vec<u8>)>,
    /// Seed of the node's random generator (packet IDs, random choices).
    pub seed: [u8; 32],
}

impl NodeConfig {
    /// The built-in planet of zerotier-one (Earth, ID 149604618).
    pub fn earth() -> World {
        World::parse(EARTH).expect("the built-in planet parses")
    }
}

/// The default planet, as zerotier-one 1.14.1 embeds it (node/Topology.cpp).
const EARTH: &[u8] = include_bytes!("earth.planet");

/// Errors of the node's API (bad inputs from the host, not from the network).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("our identity has no secret key")]
    NoSecret,
    #[error("network {0} is already joined")]
    AlreadyJoined(NetworkId),
    #[error("network {0} is not joined")]
    NotJoined(NetworkId),
    #[error("network id 0 is not valid")]
    BadNetwork,
}

/// Counters for logs and `ztplanectl`; also what the flood tests check.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Counters {
    pub datagrams: u64,
    pub packets: u64,
    pub dropped_malformed: u64,
    pub dropped_auth: u64,
    pub dropped_unknown_verb: u64,
    pub dropped_rate_limited: u64,
    pub parked: u64,
    pub park_overflow: u64,
    pub tx_queue_overflow: u64,
    pub relayed: u64,
    pub whois_sent: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub frames_dropped_gate: u64,
    pub frames_dropped_rules: u64,
    pub multicast_in: u64,
    pub multicast_out: u64,
    pub configs_installed: u64,
    pub configs_rejected: u64,
}

/// Where a datagram arrived: its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrivedOn {
    pub local: LocalSocket,
    pub remote: SocketAddr,
}

impl Default for ArrivedOn {
    fn default() -> Self {
        ArrivedOn { local: 0, remote: SocketAddr::from(([0, 0, 0, 0], 0)) }
    }
}

/// A message waiting for its destination's identity or a path.
pub(crate) struct Queued {
    pub dest: Address,
    pub msg: Outgoing,
    pub since: Instant,
}

/// A received packet waiting for something (the sender's identity, or credentials).
pub(crate) struct Parked {
    pub local: LocalSocket,
    pub remote: SocketAddr,
    pub packet: Vec<u8>,
    pub since: Instant,
    pub last_try: Instant,
    /// `Some(suite)`: already authenticated and decrypted (retry without crypto).
    pub opened: Option<CipherSuite>,
}

/// An end-to-end message before armoring.
#[derive(Clone)]
pub(crate) struct Outgoing {
    pub verb: Verb,
    pub payload: Vec<u8>,
    pub compress: bool,
    /// Register the packet ID so that an OK is accepted (§8.3).
    pub expect_reply: bool,
}

impl Outgoing {
    pub fn new(verb: Verb, payload: Vec<u8>) -> Self {
        Outgoing { verb, payload, compress: false, expect_reply: false }
    }
    pub fn compressed(mut self) -> Self {
        self.compress = true;
        self
    }
    pub fn expecting_reply(mut self) -> Self {
        self.expect_reply = true;
        self
    }
}

/// An opened packet, handed to the verb handlers.
pub(crate) struct Received<'a> {
    pub source: Address,
    pub local: LocalSocket,
    pub remote: SocketAddr,
    pub hops: u8,
    /// Wire packet ID (for OK/ERROR in-re, §6.3).
    pub packet_id: [u8; 8],
    pub verb: Verb,
    pub payload: &'a [u8],
    pub suite: CipherSuite,
    /// The whole decrypted packet (for parking).
    pub packet: &'a [u8],
}

/// The ZeroTier node.
pub struct Node {
    pub(crate) identity: Identity,
    pub(crate) me: Address,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) planet: World,
    pub(crate) moons: Vec<World>,
    /// Roots of the planet and moons except ourselves: address → stable endpoints (§1.2).
    pub(crate) upstreams: BTreeMap<Address, Vec<SocketAddr>>,
    pub(crate) peers: HashMap<Address, Peer>,
    pub(crate) networks: BTreeMap<NetworkId, Network>,
    /// Multicast members from LIKEs and gather results: (network, group) → (member, last heard).
    pub(crate) multicast_members: HashMap<(NetworkId, crate::MulticastGroup), Vec<(Address, Instant)>>,
    pub(crate) expecting: ExpectingReplies,
    /// Addresses we asked a root about, and when we last asked.
    pub(crate) whois: HashMap<Address, Instant>,
    pub(crate) tx_queue: VecDeque<Queued>,
    pub(crate) parked: VecDeque<Parked>,
    /// Fragment reassembly; pieces are tagged with where they came from (the head decides).
    pub(crate) reassembly: Receiver<ArrivedOn>,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    /// Our bound (local socket, address) pairs, for PUSH_DIRECT_PATHS (§1.7).
    pub(crate) local_addresses: Vec<(LocalSocket, SocketAddr)>,
    /// Addresses peers reported seeing us at (OK(HELLO)), with when.
    pub(crate) surface_addresses: Vec<(SocketAddr, Instant)>,
    /// Identity validations per source-IP bucket (rate limit for unknown HELLOs).
    pub(crate) validations: HashMap<u16, Instant>,
    /// Introductions made as a relay: (a, b) → when (≤ 1 per 30 s, §1.7).
    pub(crate) introductions: HashMap<(Address, Address), Instant>,
    /// Paths with trust-established traffic (relaying through us is allowed on them, §3.1).
    pub(crate) trusted_paths: HashMap<(LocalSocket, SocketAddr), Instant>,
    pub(crate) last_ping_pass: Instant,
    pub(crate) last_housekeeping: Instant,
    pub(crate) last_retry_tick: Instant,
    pub(crate) started: bool,
    pub(crate) online: bool,
    pub(crate) last_upstream_receive: Instant,
    /// The latest time any input carried (the data path is built for it).
    pub(crate) last_seen_now: Instant,
    pub(crate) data_path: Arc<DataPath>,
    pub(crate) data_path_dirty: bool,
    /// When the snapshot was last rebuilt (rebuilds are spaced with many peers).
    pub(crate) last_publish: Option<Instant>,
    pub(crate) counters: Counters,
    pub(crate) scratch: Vec<u8>,
    /// Arrival time of the parked packet being retried (so re-parking does not extend it).
    pub(crate) parking_since: Option<Instant>,
    pub(crate) controller: Option<Box<dyn crate::controller::Controller>>,
    pub(crate) bonding: crate::bonding::Bonding,
}

impl Node {
    /// Builds a node from its stored state. Call [`Node::handle_timeout`] right away: the first
    /// pass contacts the roots and requests configs (§1.3, "OneService's first call is immediate").
    pub fn new(config: NodeConfig, now: Instant) -> Result<Node, NodeError> {
        if !config.identity.has_secret() {
            return Err(NodeError::NoSecret);
        }
        let me = config.identity.address();
        let mut node = Node {
            me,
            rng: ChaCha20Rng::from_seed(config.seed),
            planet: config.planet,
            moons: config.moons,
            upstreams: BTreeMap::new(),
            peers: HashMap::new(),
            networks: BTreeMap::new(),
            multicast_members: HashMap::new(),
            expecting: ExpectingReplies::default(),
            whois: HashMap::new(),
            tx_queue: VecDeque::new(),
            parked: VecDeque::new(),
            reassembly: Receiver::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            local_addresses: Vec::new(),
            surface_addresses: Vec::new(),
            validations: HashMap::new(),
            introductions: HashMap::new(),
            trusted_paths: HashMap::new(),
            last_ping_pass: Instant::ZERO,
            last_housekeeping: now,
            last_retry_tick: now,
            started: false,
            online: false,
            last_upstream_receive: Instant::ZERO,
            last_seen_now: now,
            data_path: Arc::new(DataPath::empty(me)),
            data_path_dirty: true,
            last_publish: None,
            counters: Counters::default(),
            scratch: vec![0; MAX_PACKET_LEN],
            parking_since: None,
            controller: None,
            bonding: Default::default(),
            identity: config.identity,
        };
        node.memoize_upstreams(now);
        for bytes in &config.cached_peers {
            if let Some(cached) = CachedPeer::parse(bytes) {
                node.restore_peer(cached, now);
            }
        }
        for (network, dictionary) in config.networks {
            // A bad cached file must not stop the node: the network is re-requested anyway.
            let _ = node.join_with_cache(network, &dictionary, now);
        }
        node.publish();
        Ok(node)
    }

    pub fn address(&self) -> Address {
        self.me
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Anything received from an upstream within 500 s (§1.3 step 5).
    pub fn online(&self) -> bool {
        self.online
    }

    /// The moons we orbit (`moons.d`, and updates their roots sent us).
    pub fn moons(&self) -> &[World] {
        &self.moons
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The host's bound addresses (for PUSH_DIRECT_PATHS and self-checks).
    pub fn set_local_addresses(&mut self, addresses: Vec<(LocalSocket, SocketAddr)>) {
        self.local_addresses = addresses;
    }

    /// The snapshot workers use; rebuilt by [`Node::publish`] when something changed.
    pub fn data_path(&self) -> Arc<DataPath> {
        self.data_path.clone()
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the host.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] must be called next (§1.3: at most 500 ms apart while
    /// anything waits, else the next 5 s pass).
    pub fn poll_timeout(&self) -> Instant {
        let mut next = self.last_ping_pass.add_ms(PING_PASS_MS);
        if !self.started {
            return Instant::ZERO;
        }
        if !self.tx_queue.is_empty()
            || !self.parked.is_empty()
            || !self.whois.is_empty()
            || self.any_pending()
            || self.reassembly.in_progress() > 0
        {
            next = next.min(self.last_retry_tick.add_ms(RETRY_TICK_MS));
        }
        if let Some(due) = self.publish_deadline() {
            next = next.min(due);
        }
        if let Some(due) = self.bond_deadline() {
            next = next.min(due);
        }
        next.min(self.last_housekeeping.add_ms(HOUSEKEEPING_MS))
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.started = true;
        self.last_seen_now = now;
        // Incomplete fragment sets expire 5 s after their first piece even if nothing arrives.
        self.reassembly.expire(now.as_millis());
        if elapsed(now, self.last_retry_tick, RETRY_TICK_MS) {
            self.last_retry_tick = now;
            self.retry_tick(now);
        }
        if elapsed(now, self.last_ping_pass, PING_PASS_MS) {
            self.last_ping_pass = now;
            self.ping_pass(now);
            self.network_pass(now);
            self.check_routes(now);
        }
        if since(now, self.last_housekeeping) >= HOUSEKEEPING_MS {
            self.last_housekeeping = now;
            self.housekeeping(now);
        }
        self.bond_timers(now);
        self.poll_controller(now);
        self.publish();
    }

    /// One UDP payload received from `remote` on `local`.
    pub fn handle_datagram(&mut self, now: Instant, local: LocalSocket, remote: SocketAddr, datagram: &[u8]) {
        self.counters.datagrams += 1;
        self.last_seen_now = now;
        if datagram.len() >= 13 && datagram[8..13] != self.me.to_bytes() {
            self.relay(now, local, remote, datagram);
            self.publish();
            return;
        }
        let mut buf = vec![0u8; MAX_PACKET_LEN];
        let here = ArrivedOn { local, remote };
        match self.reassembly.receive_tagged(datagram, here, now.as_millis(), &mut buf) {
            (Inbound::Packet, _) => {
                let mut packet = datagram.to_vec();
                self.packet(now, local, remote, &mut packet);
            }
            // The packet is attributed to the path its head came on (VL1 §3.2).
            (Inbound::Reassembled { len }, head) => {
                let head = head.unwrap_or(here);
                buf.truncate(len);
                self.packet(now, head.local, head.remote, &mut buf);
            }
            (Inbound::Beacon(_) | Inbound::Pending | Inbound::Duplicate, _) => {}
            (Inbound::Dropped(_), _) => self.counters.dropped_malformed += 1,
        }
        self.publish();
    }

    /// A whole (reassembled) packet addressed to us. The workers reassemble on their own and hand
    /// the slow path whole packets through this entry.
    pub fn handle_packet(&mut self, now: Instant, local: LocalSocket, remote: SocketAddr, packet: &mut [u8]) {
        self.packet(now, local, remote, packet);
        self.publish();
    }

    fn packet(&mut self, now: Instant, local: LocalSocket, remote: SocketAddr, packet: &mut [u8]) {
        self.counters.packets += 1;
        self.last_seen_now = now;
        if packet.len() < PAYLOAD_OFFSET || packet[8..13] != self.me.to_bytes() {
            self.counters.dropped_malformed += 1;
            return;
        }
        let source = Address::from_bytes(&packet[13..18].try_into().unwrap_or([0; 5]));
        if source == self.me || source.is_reserved() {
            self.counters.dropped_malformed += 1;
            return;
        }
        let cipher = (packet[18] >> 3) & 7;
        let verb = Verb::from_code(packet[27] & 0x1f);
        if cipher == 0 && verb == Verb::Hello {
            // HELLO carries the sender's identity: it may come from a peer we do not know.
            self.receive_hello(now, local, remote, packet);
            return;
        }
        let Some(peer) = self.peers.get(&source) else {
            self.park(now, local, remote, packet);
            self.request_whois(now, source);
            return;
        };
        let key = peer.key.clone();
        self.open_and_dispatch(now, local, remote, packet, &key);
    }

    /// Authenticates and decrypts a packet from a known peer, then dispatches it.
    pub(crate) fn open_and_dispatch(
        &mut self,
        now: Instant,
        local: LocalSocket,
        remote: SocketAddr,
        packet: &mut [u8],
        key: &PeerKey,
    ) {
        match ztplane_crypto::dearmor(key, packet) {
            Ok(d) => self.dispatch_plain(now, local, remote, packet, d.suite),
            Err(_) => self.counters.dropped_auth += 1,
        }
    }

    /// Decompresses and dispatches an authenticated, decrypted packet.
    pub(crate) fn dispatch_plain(
        &mut self,
        now: Instant,
        local: LocalSocket,
        remote: SocketAddr,
        packet: &[u8],
        suite: CipherSuite,
    ) {
        let source = Address::from_bytes(&packet[13..18].try_into().unwrap_or([0; 5]));
        let packet_id: [u8; 8] = packet[..8].try_into().unwrap_or([0; 8]);
        let verb_byte = VerbByte(packet[27]);
        let mut scratch = std::mem::take(&mut self.scratch);
        let payload: &[u8] = if verb_byte.compressed() {
            match decompress_payload(&packet[PAYLOAD_OFFSET..], &mut scratch[..]) {
                Ok(n) => &scratch[..n],
                Err(_) => {
                    self.scratch = scratch;
                    self.counters.dropped_malformed += 1;
                    return;
                }
            }
        } else {
            &packet[PAYLOAD_OFFSET..]
        };
        let received = Received {
            source,
            local,
            remote,
            hops: packet[18] & 7,
            packet_id,
            verb: verb_byte.verb(),
            payload,
            suite,
            packet,
        };
        self.on_authenticated(now, &received);
        self.dispatch(now, &received);
        self.scratch = scratch;
    }

    /// A packet a worker already authenticated and decrypted in place (the data path punted
    /// it with [`crate::datapath::RxVerdict::PuntOpened`]).
    pub fn handle_opened(
        &mut self,
        now: Instant,
        local: LocalSocket,
        remote: SocketAddr,
        packet: &[u8],
        suite: CipherSuite,
    ) {
        self.counters.packets += 1;
        self.last_seen_now = now;
        if packet.len() < PAYLOAD_OFFSET
            || !self.peers.contains_key(&Address::from_bytes(&packet[13..18].try_into().unwrap_or([0; 5])))
        {
            return;
        }
        self.dispatch_plain(now, local, remote, packet, suite);
        self.publish();
    }

    /// Frames the workers delivered from `source` on a path (reported in batches): the path and
    /// the peer stay alive and trusted as if the node had seen them (§1.5, §3.1).
    pub fn note_frames(&mut self, now: Instant, source: Address, local: LocalSocket, remote: SocketAddr, direct: bool) {
        self.last_seen_now = now;
        let Some(peer) = self.peers.get_mut(&source) else { return };
        peer.last_receive = now;
        peer.last_activity = now;
        if direct && let Some(path) = peer.path_mut(local, remote) {
            path.last_receive = now;
            path.trust_established = Some(now);
        }
    }

    /// Frames the workers sent to `dest` on a path (reported in batches): keepalives count them.
    pub fn note_sent(&mut self, now: Instant, dest: Address, local: LocalSocket, remote: SocketAddr) {
        let Some(peer) = self.peers.get_mut(&dest) else { return };
        peer.last_activity = now;
        if let Some(path) = peer.path_mut(local, remote) {
            path.last_send = now;
        }
    }

    /// Joins `network` (§2.1): the port comes up at once, the config is requested on the next
    /// tick.
    pub fn join(&mut self, network: NetworkId, now: Instant) -> Result<(), NodeError> {
        if self.networks.contains_key(&network) {
            return Err(NodeError::AlreadyJoined(network));
        }
        self.join_with_cache(network, &[], now)?;
        self.events.push_back(Event::SaveNetwork { network, dictionary: b"\n".to_vec() });
        self.publish();
        Ok(())
    }

    /// Leaves `network`: its port goes and its cached config is deleted.
    pub fn leave(&mut self, network: NetworkId) -> Result<(), NodeError> {
        if self.networks.remove(&network).is_none() {
            return Err(NodeError::NotJoined(network));
        }
        self.events.push_back(Event::NetworkLeft { network });
        self.data_path_dirty = true;
        self.publish_now();
        Ok(())
    }

    pub fn networks(&self) -> impl Iterator<Item = &Network> {
        self.networks.values()
    }

    pub fn network(&self, id: NetworkId) -> Option<&Network> {
        self.networks.get(&id)
    }

    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    pub fn peer(&self, address: Address) -> Option<&Peer> {
        self.peers.get(&address)
    }

    pub fn is_upstream(&self, address: Address) -> bool {
        self.upstreams.contains_key(&address)
    }

    /// Peers currently held in the park and TX queues (bounded; tests check it).
    pub fn queued(&self) -> (usize, usize) {
        (self.parked.len(), self.tx_queue.len())
    }

    /// Outstanding WHOIS requests (bounded).
    pub fn pending_whois(&self) -> usize {
        self.whois.len()
    }

    /// Whether we are asking the roots who `address` is.
    pub fn asking_whois(&self, address: Address) -> bool {
        self.whois.contains_key(&address)
    }

    /// Incomplete fragment sets held.
    pub fn reassembling(&self) -> usize {
        self.reassembly.in_progress()
    }

    // ---- randomness ----

    pub(crate) fn random_u32(&mut self) -> u32 {
        self.rng.next_u32()
    }

    pub(crate) fn random_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    pub(crate) fn packet_id(&mut self) -> [u8; 8] {
        self.rng.next_u64().to_be_bytes()
    }

    // ---- sending ----

    /// The normal send path (§1.4): direct path, else relay through the best upstream, else any
    /// expired path, else the TX queue; unknown destination → queue + WHOIS.
    pub(crate) fn send(&mut self, now: Instant, dest: Address, msg: Outgoing) {
        let Some(peer) = self.peers.get(&dest) else {
            self.enqueue(now, dest, msg);
            self.request_whois(now, dest);
            return;
        };
        let best = peer.best_path(now).map(|p| (p.local, p.remote));
        // A bonded peer: the bond picks the path(s) (zerotier-bonding.md §6).
        if best.is_some()
            && let Some(paths) = self.bond_paths(now, dest, frame_flow(&msg))
        {
            self.emit_bonded(now, dest, &paths, msg);
            return;
        }
        if let Some((local, remote)) = best {
            self.send_via(now, dest, Some(local), remote, msg);
            return;
        }
        if let Some((relay_local, relay_remote)) = self.best_upstream_path(now, Some(dest)) {
            self.send_via(now, dest, relay_local, relay_remote, msg);
            return;
        }
        if let Some(path) = self.peers.get(&dest).and_then(|p| p.any_path(now)) {
            let (local, remote) = (path.local, path.remote);
            self.send_via(now, dest, Some(local), remote, msg);
            return;
        }
        self.enqueue(now, dest, msg);
    }

    /// Sends `msg` for `dest` to the physical address `remote` (the peer itself, or a relay),
    /// encrypted with the peer's suite.
    pub(crate) fn send_via(
        &mut self,
        now: Instant,
        dest: Address,
        local: Option<LocalSocket>,
        remote: SocketAddr,
        msg: Outgoing,
    ) {
        let Some(peer) = self.peers.get(&dest) else { return };
        let suite = peer.suite();
        let key = peer.key.clone();
        self.emit_packet(now, &key, dest, local, remote, msg, suite);
    }

    /// Armors and fragments one packet and queues its datagrams.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn emit_packet(
        &mut self,
        now: Instant,
        key: &PeerKey,
        dest: Address,
        local: Option<LocalSocket>,
        remote: SocketAddr,
        msg: Outgoing,
        suite: CipherSuite,
    ) -> [u8; 8] {
        let id = self.packet_id();
        let packet = match seal(key, id, dest, self.me, &msg, suite) {
            Some(p) => p,
            None => return id,
        };
        let wire_id: [u8; 8] = packet[..8].try_into().unwrap_or(id);
        if msg.expect_reply {
            self.expecting.register(u64::from_be_bytes(wire_id));
        }
        self.emitted(now, dest, local, remote, &packet, msg.verb);
        wire_id
    }

    /// Sends one packet on each of a bond's chosen paths (several with broadcast: the same
    /// packet ID everywhere, so the receiver can drop the copies).
    fn emit_bonded(&mut self, now: Instant, dest: Address, paths: &[(LocalSocket, SocketAddr)], msg: Outgoing) {
        let Some(peer) = self.peers.get(&dest) else { return };
        let (key, suite) = (peer.key.clone(), peer.suite());
        let id = self.packet_id();
        let Some(packet) = seal(&key, id, dest, self.me, &msg, suite) else { return };
        if msg.expect_reply {
            self.expecting.register(u64::from_be_bytes(packet[..8].try_into().unwrap_or(id)));
        }
        for &(local, remote) in paths {
            self.emitted(now, dest, Some(local), remote, &packet, msg.verb);
        }
    }

    /// Queues a sealed packet's datagrams and notes the send on the path and the bond.
    fn emitted(
        &mut self,
        now: Instant,
        dest: Address,
        local: Option<LocalSocket>,
        remote: SocketAddr,
        packet: &[u8],
        verb: Verb,
    ) {
        self.emit_datagrams(local, remote, packet);
        if let Some(peer) = self.peers.get_mut(&dest) {
            if let Some(local) = local
                && let Some(path) = peer.path_mut(local, remote)
            {
                path.last_send = now;
            }
            if matches!(
                verb,
                Verb::Frame | Verb::ExtFrame | Verb::NetworkConfigRequest | Verb::NetworkConfig | Verb::MulticastFrame
            ) {
                peer.last_activity = now;
            }
        }
        if let Some(local) = local {
            let id: [u8; 8] = packet[..8].try_into().unwrap_or([0; 8]);
            self.bond_sent(now, dest, (local, remote), id, packet.len(), verb);
        }
    }

    pub(crate) fn emit_datagrams(&mut self, local: Option<LocalSocket>, remote: SocketAddr, packet: &[u8]) {
        let mut out = Vec::new();
        let _ = fragment_packet(packet, DEFAULT_PHYS_MTU, |d| out.push(d.to_vec()));
        for data in out {
            self.transmits.push_back(Transmit { local, remote, data, ttl: None });
        }
    }

    fn enqueue(&mut self, now: Instant, dest: Address, msg: Outgoing) {
        if self.tx_queue.len() >= TX_QUEUE_LEN {
            self.tx_queue.pop_front();
            self.counters.tx_queue_overflow += 1;
        }
        self.tx_queue.push_back(Queued { dest, msg, since: now });
    }

    /// Asks the best upstream who `address` is (≤ 1 per 500 ms per address, §1.4).
    pub(crate) fn request_whois(&mut self, now: Instant, address: Address) {
        if self.upstreams.contains_key(&address) && self.peers.contains_key(&address) {
            return;
        }
        if let Some(&last) = self.whois.get(&address)
            && since(now, last) < RETRY_TICK_MS
        {
            return;
        }
        if !self.whois.contains_key(&address) && self.whois.len() >= MAX_WHOIS {
            return;
        }
        self.whois.insert(address, now);
        let Some(root) = self.best_upstream(now) else { return };
        if root == address {
            return;
        }
        self.counters.whois_sent += 1;
        let msg = Outgoing::new(Verb::Whois, address.to_bytes().to_vec()).expecting_reply();
        self.send(now, root, msg);
    }

    /// Keeps a packet from an unknown sender until its identity arrives (§1.4).
    pub(crate) fn park(&mut self, now: Instant, local: LocalSocket, remote: SocketAddr, packet: &[u8]) {
        self.park_entry(now, local, remote, packet, None);
    }

    /// Keeps an authenticated packet a handler cannot act on yet (a frame failing the gate,
    /// credentials whose signer is unknown, §3.5); it is retried without a second MAC check.
    pub(crate) fn park_opened(&mut self, now: Instant, rx: &Received<'_>) {
        self.park_entry(now, rx.local, rx.remote, rx.packet, Some(rx.suite));
    }

    fn park_entry(
        &mut self,
        now: Instant,
        local: LocalSocket,
        remote: SocketAddr,
        packet: &[u8],
        opened: Option<CipherSuite>,
    ) {
        if self.parked.len() >= RX_PARK_LEN {
            self.parked.pop_front();
            self.counters.park_overflow += 1;
        }
        self.counters.parked += 1;
        let since = self.parking_since.unwrap_or(now);
        self.parked.push_back(Parked { local, remote, packet: packet.to_vec(), since, last_try: now, opened });
    }

    /// Every 500 ms: WHOIS retries, queued sends whose destination is now reachable, parked
    /// packets, multicast gathers.
    fn retry_tick(&mut self, now: Instant) {
        self.whois.retain(|_, asked| since(now, *asked) < TX_QUEUE_TIMEOUT_MS);
        let waiting: Vec<Address> =
            self.tx_queue.iter().map(|q| q.dest).filter(|d| !self.peers.contains_key(d)).collect();
        for address in waiting {
            self.request_whois(now, address);
        }
        self.flush_tx_queue(now);
        self.retry_parked(now, None);
        self.multicast_tick(now);
    }

    /// Sends what the TX queue holds for peers that now have an identity and a way to reach them.
    pub(crate) fn flush_tx_queue(&mut self, now: Instant) {
        let queued: Vec<Queued> = self.tx_queue.drain(..).collect();
        for q in queued {
            if since(now, q.since) >= TX_QUEUE_TIMEOUT_MS {
                continue;
            }
            let reachable = self.peers.get(&q.dest).is_some_and(|p| p.any_path(now).is_some())
                || (self.peers.contains_key(&q.dest) && self.best_upstream_path(now, Some(q.dest)).is_some());
            if reachable {
                self.send(now, q.dest, q.msg);
            } else {
                self.tx_queue.push_back(q);
            }
        }
    }

    /// Re-decodes parked packets (all that are due, or every one from `from` now) and drops
    /// expired ones. A packet parked again keeps its original arrival time.
    pub(crate) fn retry_parked(&mut self, now: Instant, from: Option<Address>) {
        let parked: Vec<Parked> = self.parked.drain(..).collect();
        for p in parked {
            if since(now, p.since) >= RX_PARK_TIMEOUT_MS {
                continue;
            }
            let source = Address::from_bytes(&p.packet[13..18].try_into().unwrap_or([0; 5]));
            let due = match from {
                Some(f) => f == source,
                None => since(now, p.last_try) >= RETRY_TICK_MS,
            };
            if !due {
                self.parked.push_back(p);
                continue;
            }
            self.parking_since = Some(p.since);
            match (p.opened, self.peers.get(&source).map(|peer| peer.key.clone())) {
                (Some(suite), _) => self.dispatch_plain(now, p.local, p.remote, &p.packet, suite),
                (None, Some(key)) => {
                    let mut packet = p.packet;
                    self.open_and_dispatch(now, p.local, p.remote, &mut packet, &key);
                }
                (None, None) => self.parked.push_back(Parked { last_try: now, ..p }),
            }
            self.parking_since = None;
        }
    }
}

/// Lays out, compresses (when asked and it helps) and armors one packet.
pub(crate) fn seal(
    key: &PeerKey,
    id: [u8; 8],
    dest: Address,
    source: Address,
    msg: &Outgoing,
    suite: CipherSuite,
) -> Option<Vec<u8>> {
    let mut body_buf = [0u8; MAX_PACKET_LEN];
    let (body, compressed) = match msg.compress {
        true => match compress_payload(&msg.payload, &mut body_buf) {
            Ok(n) => (&body_buf[..n], true),
            Err(_) => (&msg.payload[..], false),
        },
        false => (&msg.payload[..], false),
    };
    let total = PAYLOAD_OFFSET + body.len();
    if total > MAX_PACKET_LEN {
        return None;
    }
    let mut packet = vec![0u8; total];
    let flags = if total > DEFAULT_PHYS_MTU { FLAG_FRAGMENTED } else { 0 };
    write_header(&mut packet, id, &dest, &source, flags, VerbByte::new(msg.verb, compressed)).ok()?;
    packet[PAYLOAD_OFFSET..].copy_from_slice(body);
    ztplane_crypto::armor(key, &mut packet, suite).ok()?;
    Some(packet)
}

/// The flow a message belongs to, for a bond's choice: a FRAME's inner flow; `None` for
/// everything else (control messages take the bond's first path).
fn frame_flow(msg: &Outgoing) -> Option<ztplane_bond::FlowHash> {
    if msg.verb != Verb::Frame || msg.payload.len() < 10 {
        return None;
    }
    let ethertype = u16::from_be_bytes([msg.payload[8], msg.payload[9]]);
    Some(ztplane_bond::frame_flow_hash(ethertype, &msg.payload[10..]))
}
