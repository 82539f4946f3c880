//! The data path: what the workers need to move frames between known peers without the node's
//! slow-path thread, as one immutable snapshot ([`DataPath`]) the node republishes whenever a
//! key, path, gate, credential push or config changes.
//!
//! Receive ([`DataPath::receive`]): a whole packet from a known peer is dearmored in place; a
//! FRAME of a joined network from a member passing the gate and accepted by the rules becomes
//! an Ethernet frame *in the same buffer* (the 14-byte header overwrites the end of the ZeroTier
//! header). Send ([`DataPath::route_frame`]): a unicast frame from our port to a member we hold
//! a path to, whose credentials we pushed for the current config, passing the rules, is sealed
//! as FRAME by the caller. Everything else is punted to the node (control verbs, multicast,
//! first contact, parking) — a punted received packet is handed over already opened
//! ([`crate::Node::handle_opened`]), so nothing is dearmored twice.
//!
//! The filters here are the same functions the node uses itself, so both paths decide alike.

use crate::bonding::{BondChoice, BondRoute};
use crate::config::{FLAG_UNKNOWN_MATCH_TRUE, NetworkConfig};
use crate::network::Membership;
use crate::time::Instant;
use crate::{Address, LocalSocket, Mac, NetworkId};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use ztplane_bond::{PathId, WorkerCursor, frame_flow_hash};
use ztplane_crypto::{CipherSuite, PeerKey};
use ztplane_protocol::credentials::{CertificateOfOwnership, OwnedThing};
use ztplane_protocol::header::{PAYLOAD_OFFSET, Verb};
use ztplane_protocol::rules::{
    Disposition, FilterContext, FilterOutcome, FrameInfo, OwnershipSource, Rule, TagSource, capability_rules,
    filter_inbound, filter_outbound,
};

/// Where a peer's packets go: its own best path, or a relay's.
#[derive(Debug, Clone)]
pub struct PeerRoute {
    pub key: Arc<PeerKey>,
    pub suite: CipherSuite,
    /// `None`: no way to reach it without the node (queue, WHOIS).
    pub via: Option<(LocalSocket, SocketAddr)>,
    /// `via` is the peer itself (not a relay).
    pub direct: bool,
    /// The peer's bond, when bonding is configured and it has nominated paths.
    pub bond: Option<Arc<BondRoute>>,
}

/// One joined, configured network as the data path sees it.
#[derive(Debug, Clone)]
pub struct NetworkView {
    pub id: NetworkId,
    pub mac: Mac,
    pub mtu: u32,
    pub config: Arc<NetworkConfig>,
    /// Peers passing the gate, with their credentials (tags and COOs for the rules).
    pub members: HashMap<Address, Membership>,
    /// Members our credentials are pushed to, until when they stay fresh (§3.3).
    pub credentials_fresh: HashMap<Address, Instant>,
    our_capabilities: Vec<Vec<Rule>>,
    /// The LAN bridged into the network (gateway mode), if any.
    pub lan: Option<LanView>,
}

/// The LAN side of a bridged network as the workers see it (`crate::bridge`).
#[derive(Debug, Clone)]
pub struct LanView {
    /// The controller made us an active bridge: LAN frames may leave as EXT_FRAME.
    pub active: bool,
    /// Source MACs learned on the LAN (shared between snapshots until it changes).
    pub macs: Arc<HashSet<Mac>>,
    /// MACs behind other active bridges → that bridge (§4.4; shared likewise).
    pub remote: Arc<HashMap<Mac, Address>>,
    /// The LAN's MTU: larger frames from the network are the node's to count and drop.
    pub mtu: u32,
}

/// The immutable snapshot the workers use.
#[derive(Debug, Clone)]
pub struct DataPath {
    pub me: Address,
    /// Bumped on every publish (workers notice a new snapshot cheaply).
    pub generation: u64,
    pub peers: HashMap<Address, PeerRoute>,
    pub networks: HashMap<NetworkId, NetworkView>,
}

/// What to do with a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxVerdict {
    /// `packet[start..start + len]` is now an Ethernet frame for the port of `network`, or for
    /// the LAN bridged into it if `lan` (gateway mode: a bridged frame for a MAC behind us).
    Deliver { network: NetworkId, start: usize, len: usize, source: Address, bonded: Option<BondedArrival>, lan: bool },
    /// Hand the packet to the node as it was (not dearmored: unknown sender, HELLO, ...).
    Punt,
    /// Hand it to the node already opened with this suite ([`crate::Node::handle_opened`]).
    PuntOpened(CipherSuite),
    /// Authentication failed, or a frame the rules drop: nothing to do.
    Drop,
    /// A broadcast bond's later copy of a frame already delivered: not delivered again, but it
    /// did arrive on its path (the bond counts it, so the path keeps being acknowledged).
    Duplicate { source: Address, bonded: BondedArrival },
}

/// A frame delivered from a bonded peer on one of its bond's paths, for the bond's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BondedArrival {
    pub path: PathId,
    /// The wire packet ID, big-endian.
    pub packet_id: u64,
    /// The frame's flow when the bond pins received flows (balance-aware), else 0.
    pub flow: u64,
}

/// What to do with a frame from a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxVerdict {
    /// Seal as FRAME (EXT_FRAME if `bridged`: a LAN host's frame, its MACs carried) for `dest`
    /// and send to `via` (path `path` of its bond, if bonded).
    Send {
        dest: Address,
        key: Arc<PeerKey>,
        suite: CipherSuite,
        via: (LocalSocket, SocketAddr),
        path: Option<PathId>,
        bridged: bool,
    },
    /// Addressed to our own MAC: write it back to the port.
    Loopback,
    /// The node must handle it (multicast, unknown peer, credentials due, bridging, ...).
    Punt,
    Drop,
}

impl DataPath {
    pub fn empty(me: Address) -> Self {
        DataPath { me, generation: 0, peers: HashMap::new(), networks: HashMap::new() }
    }

    pub fn network(&self, id: NetworkId) -> Option<&NetworkView> {
        self.networks.get(&id)
    }

    /// A whole (reassembled) packet for us that arrived on `arrived` (the path of its head; see
    /// the module doc).
    pub fn receive(
        &self,
        packet: &mut [u8],
        arrived: (LocalSocket, SocketAddr),
        random: &mut dyn FnMut() -> u32,
    ) -> RxVerdict {
        if packet.len() < PAYLOAD_OFFSET || packet[8..13] != self.me.to_bytes() {
            return RxVerdict::Punt;
        }
        let source = Address::from_bytes(&packet[13..18].try_into().unwrap_or([0; 5]));
        let Some(peer) = self.peers.get(&source) else { return RxVerdict::Punt };
        // Suite 0 carries HELLO and bonding control: the node's business.
        if (packet[18] >> 3) & 7 == 0 {
            return RxVerdict::Punt;
        }
        let packet_id = u64::from_be_bytes(packet[..8].try_into().unwrap_or([0; 8]));
        let suite = match ztplane_crypto::dearmor(&peer.key, packet) {
            Ok(d) => d.suite,
            Err(_) => return RxVerdict::Drop,
        };
        let verb_byte = packet[27];
        let verb = Verb::from_code(verb_byte & 0x1f);
        let ext = verb == Verb::ExtFrame;
        if verb_byte & 0x80 != 0 || !(verb == Verb::Frame || ext) || packet.len() < PAYLOAD_OFFSET + 10 {
            return RxVerdict::PuntOpened(suite);
        }
        // Broadcast bonds send every frame on every path: the later copies stop here.
        if let Some(bond) = peer.bond.as_ref()
            && let Some(filter) = &bond.duplicates
            && !filter.first_sighting(packet_id)
        {
            return match bond.path_of(arrived.0, arrived.1) {
                Some(path) => RxVerdict::Duplicate { source, bonded: BondedArrival { path, packet_id, flow: 0 } },
                None => RxVerdict::Drop,
            };
        }
        let id = NetworkId(u64::from_be_bytes(packet[28..36].try_into().unwrap_or([0; 8])));
        // Not configured (or not joined): the node parks or ignores it (§2.1, §3.5).
        let Some(network) = self.networks.get(&id) else { return RxVerdict::PuntOpened(suite) };
        let Some(membership) = network.members.get(&source) else { return RxVerdict::PuntOpened(suite) };
        if ext {
            return self.receive_bridged(packet, network, membership, source, peer, arrived, packet_id, suite, random);
        }
        let ethertype = u16::from_be_bytes([packet[36], packet[37]]);
        let payload = &packet[38..];
        if payload.len() > network.mtu as usize {
            return RxVerdict::Drop;
        }
        let src = id.mac_for(&source);
        let frame = FrameInfo::inbound(source, self.me, src, network.mac, ethertype, payload);
        let bonded = match Self::admit(network, self.me, membership, peer, arrived, packet_id, &frame, random) {
            Ok(b) => b,
            Err(false) => return RxVerdict::PuntOpened(suite),
            Err(true) => return RxVerdict::Drop,
        };
        // Ethernet header in place: destination ‖ source over bytes 24..36, ethertype stays.
        packet[24..30].copy_from_slice(&network.mac.octets());
        packet[30..36].copy_from_slice(&src.octets());
        RxVerdict::Deliver { network: id, start: 24, len: packet.len() - 24, source, bonded, lan: false }
    }

    /// The inbound rules for a frame the data path would deliver, and its bond record: `Err(true)`
    /// if the rules drop it, `Err(false)` if the node must carry them out (TEE/WATCH copies,
    /// REDIRECT).
    #[allow(clippy::too_many_arguments)]
    fn admit(
        network: &NetworkView,
        me: Address,
        membership: &Membership,
        peer: &PeerRoute,
        arrived: (LocalSocket, SocketAddr),
        packet_id: u64,
        frame: &FrameInfo<'_>,
        random: &mut dyn FnMut() -> u32,
    ) -> Result<Option<BondedArrival>, bool> {
        let outcome = inbound_filter(&network.config, me, Some(membership), frame, random);
        if !outcome.copies.iter().all(Option::is_none) || matches!(outcome.disposition, Disposition::Redirect(_)) {
            return Err(false);
        }
        if outcome.inbound_code() == 0 {
            return Err(true);
        }
        Ok(peer.bond.as_ref().and_then(|b| {
            let path = b.path_of(arrived.0, arrived.1)?;
            let flow = if b.pin_received_flows { frame_flow_hash(frame.ethertype, frame.payload).0 } else { 0 };
            Some(BondedArrival { path, packet_id, flow })
        }))
    }

    /// EXT_FRAME on a bridged network (gateway mode, VL2 §4.3): a frame from a bridge, or for a
    /// MAC on our LAN. What needs the node (an inline COM, an OK asked for, multicast, a source
    /// MAC not yet learned behind its bridge, rules with side effects) goes there opened.
    #[allow(clippy::too_many_arguments)]
    fn receive_bridged(
        &self,
        packet: &mut [u8],
        network: &NetworkView,
        membership: &Membership,
        source: Address,
        peer: &PeerRoute,
        arrived: (LocalSocket, SocketAddr),
        packet_id: u64,
        suite: CipherSuite,
        random: &mut dyn FnMut() -> u32,
    ) -> RxVerdict {
        // nwid ‖ flags ‖ dest MAC ‖ source MAC ‖ ethertype ‖ payload; the frame starts at 37.
        const FRAME_AT: usize = PAYLOAD_OFFSET + 9;
        let Some(lan) = &network.lan else { return RxVerdict::PuntOpened(suite) };
        if packet.len() < FRAME_AT + 14 || packet[PAYLOAD_OFFSET + 8] != 0 {
            return RxVerdict::PuntOpened(suite);
        }
        let id = network.id;
        let dst = Mac::from_octets(packet[FRAME_AT..FRAME_AT + 6].try_into().unwrap_or([0; 6]));
        let src = Mac::from_octets(packet[FRAME_AT + 6..FRAME_AT + 12].try_into().unwrap_or([0; 6]));
        if src.0 == 0 || src == network.mac {
            return RxVerdict::Drop;
        }
        let bridged_source = src != id.mac_for(&source);
        let to_lan = dst != network.mac;
        if dst.is_multicast()
            || (bridged_source && lan.remote.get(&src) != Some(&source))
            || (to_lan && !lan.active)
            || packet.len() - FRAME_AT - 14 > lan.mtu.min(network.mtu) as usize
        {
            return RxVerdict::PuntOpened(suite);
        }
        let ethertype = u16::from_be_bytes([packet[FRAME_AT + 12], packet[FRAME_AT + 13]]);
        let payload = &packet[FRAME_AT + 14..];
        let frame = FrameInfo::inbound(source, self.me, src, dst, ethertype, payload);
        let bonded = match Self::admit(network, self.me, membership, peer, arrived, packet_id, &frame, random) {
            Ok(b) => b,
            Err(false) => return RxVerdict::PuntOpened(suite),
            Err(true) => return RxVerdict::Drop,
        };
        RxVerdict::Deliver { network: id, start: FRAME_AT, len: packet.len() - FRAME_AT, source, bonded, lan: to_lan }
    }

    /// A frame read from the port of `network` at `now` (see the module doc). A bonded peer's
    /// path is chosen per packet with the worker's own `cursor`.
    pub fn route_frame(
        &self,
        now: Instant,
        id: NetworkId,
        frame: &[u8],
        random: &mut dyn FnMut() -> u32,
        cursor: &mut WorkerCursor,
    ) -> TxVerdict {
        if frame.len() < 14 {
            return TxVerdict::Drop;
        }
        let Some(network) = self.networks.get(&id) else { return TxVerdict::Punt };
        let (dst, src) = frame_macs(frame);
        if src != network.mac || dst.is_multicast() {
            return TxVerdict::Punt;
        }
        if dst == network.mac {
            return TxVerdict::Loopback;
        }
        let Some(dest) = id.address_for(dst) else { return TxVerdict::Punt };
        self.route_to(now, network, dest, frame, false, random, cursor)
    }

    /// A frame from the LAN bridged into network `id` (gateway mode, `crate::bridge`): unicast
    /// to a member or to a MAC behind another bridge leaves as EXT_FRAME; the gateway's own MAC
    /// goes to its port; a MAC on the LAN itself is dropped (the LAN delivered it). Multicast,
    /// unlearned sources, unknown destinations and oversized frames go to the node.
    pub fn route_lan_frame(
        &self,
        now: Instant,
        id: NetworkId,
        frame: &[u8],
        random: &mut dyn FnMut() -> u32,
        cursor: &mut WorkerCursor,
    ) -> TxVerdict {
        if frame.len() < 14 {
            return TxVerdict::Drop;
        }
        let Some(network) = self.networks.get(&id) else { return TxVerdict::Punt };
        let Some(lan) = &network.lan else { return TxVerdict::Punt };
        let (dst, src) = frame_macs(frame);
        if !lan.active || dst.is_multicast() || !lan.macs.contains(&src) || frame.len() - 14 > network.mtu as usize {
            return TxVerdict::Punt;
        }
        if dst == network.mac {
            return TxVerdict::Loopback;
        }
        if lan.macs.contains(&dst) {
            return TxVerdict::Drop;
        }
        let Some(dest) = id.address_for(dst).or_else(|| lan.remote.get(&dst).copied()) else {
            return TxVerdict::Punt;
        };
        self.route_to(now, network, dest, frame, true, random, cursor)
    }

    /// The filtered, bonded route of `frame` to member `dest` (its own MAC or one behind it).
    #[allow(clippy::too_many_arguments)]
    fn route_to(
        &self,
        now: Instant,
        network: &NetworkView,
        dest: Address,
        frame: &[u8],
        bridged: bool,
        random: &mut dyn FnMut() -> u32,
        cursor: &mut WorkerCursor,
    ) -> TxVerdict {
        let (dst, src) = frame_macs(frame);
        let Some(peer) = self.peers.get(&dest) else { return TxVerdict::Punt };
        let Some(via) = peer.via else { return TxVerdict::Punt };
        if dest == self.me {
            return TxVerdict::Drop;
        }
        if network.credentials_fresh.get(&dest).is_none_or(|until| *until <= now) {
            return TxVerdict::Punt;
        }
        let info =
            FrameInfo::outbound(self.me, dest, src, dst, u16::from_be_bytes([frame[12], frame[13]]), &frame[14..]);
        let outcome = outbound_filter(
            &network.config,
            &network.our_capabilities,
            self.me,
            network.members.get(&dest),
            &info,
            random,
        );
        match outcome.disposition {
            Disposition::Accept | Disposition::SuperAccept if outcome.copies.iter().all(Option::is_none) => {
                let (via, path) = match &peer.bond {
                    Some(bond) if peer.direct => {
                        match bond.choose(frame_flow_hash(info.ethertype, info.payload), now, cursor) {
                            BondChoice::One(path, via) => (via, Some(path)),
                            // Broadcast sends one packet on every path: the node does that.
                            BondChoice::All => return TxVerdict::Punt,
                            BondChoice::Unbonded => (via, None),
                        }
                    }
                    _ => (via, None),
                };
                TxVerdict::Send { dest, key: peer.key.clone(), suite: peer.suite, via, path, bridged }
            }
            Disposition::Drop => TxVerdict::Drop,
            _ => TxVerdict::Punt,
        }
    }
}

/// The destination and source MACs of an Ethernet frame (zeros if it is shorter than that).
pub(crate) fn frame_macs(frame: &[u8]) -> (Mac, Mac) {
    let mac = |at: usize| Mac::from_octets(frame.get(at..at + 6).and_then(|b| b.try_into().ok()).unwrap_or([0; 6]));
    (mac(0), mac(6))
}

/// Seals a frame from the port as a FRAME packet for `dest` into `out` (header, verb, network
/// ID, ethertype, payload; armored; fragmented flag set above the physical MTU). Returns the
/// packet length; the caller cuts it into datagrams (`fragment_packet`).
#[allow(clippy::too_many_arguments)]
pub fn seal_frame(
    me: Address,
    dest: Address,
    key: &PeerKey,
    suite: CipherSuite,
    packet_id: [u8; 8],
    network: NetworkId,
    frame: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    if frame.len() < 14 {
        return None;
    }
    let outgoing = ztplane_protocol::packet::Outgoing {
        key,
        packet_id,
        destination: dest,
        source: me,
        suite,
        compress: false,
        mtu: ztplane_protocol::header::DEFAULT_PHYS_MTU,
    };
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    ztplane_protocol::packet::seal_frame_into(out, &outgoing, network, ethertype, &frame[14..]).ok()
}

/// As [`seal_frame`] for a LAN host's frame (gateway mode): EXT_FRAME, its MACs carried.
#[allow(clippy::too_many_arguments)]
pub fn seal_ext_frame(
    me: Address,
    dest: Address,
    key: &PeerKey,
    suite: CipherSuite,
    packet_id: [u8; 8],
    network: NetworkId,
    frame: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    let outgoing = ztplane_protocol::packet::Outgoing {
        key,
        packet_id,
        destination: dest,
        source: me,
        suite,
        compress: false,
        mtu: ztplane_protocol::header::DEFAULT_PHYS_MTU,
    };
    ztplane_protocol::packet::seal_ext_frame_into(out, &outgoing, network, frame).ok()
}

/// Tags for the rules: ours from the config, the peer's from its membership (§3.7).
pub struct Tags<'a> {
    config: &'a NetworkConfig,
    peer: Option<&'a Membership>,
}

impl<'a> Tags<'a> {
    pub fn new(config: &'a NetworkConfig, peer: Option<&'a Membership>) -> Self {
        Tags { config, peer }
    }
}

impl TagSource for Tags<'_> {
    fn ours(&self, id: u32) -> Option<u32> {
        self.config.tags.iter().find(|t| t.id == id).map(|t| t.value)
    }
    fn theirs(&self, id: u32) -> Option<u32> {
        let tag = self.peer?.tags.get(&id)?;
        (tag.timestamp.abs_diff(self.config.timestamp) <= self.config.credential_window).then_some(tag.value)
    }
}

/// Certificates of ownership for the CHARACTERISTICS "authenticated" bits.
struct Owned<'a>(&'a [CertificateOfOwnership]);

impl OwnershipSource for Owned<'_> {
    fn owns_ip(&self, ip: IpAddr) -> bool {
        self.0.iter().flat_map(|c| c.things.iter()).any(|t| match (t, ip) {
            (OwnedThing::Ipv4(a), IpAddr::V4(b)) => *a == b,
            (OwnedThing::Ipv6(a), IpAddr::V6(b)) => *a == b,
            _ => false,
        })
    }
    fn owns_mac(&self, mac: Mac) -> bool {
        self.0
            .iter()
            .flat_map(|c| c.things.iter())
            .any(|t| matches!(t, OwnedThing::Mac(m) if Mac::from_octets(*m) == mac))
    }
}

pub(crate) fn capability_lists(config: &NetworkConfig) -> Vec<Vec<Rule>> {
    let mut caps: Vec<&ztplane_protocol::credentials::Capability> = config.capabilities.iter().collect();
    caps.sort_by_key(|c| c.id);
    // A capability that does not decode is not applied: it could only have accepted (fail closed).
    caps.into_iter().filter_map(|c| capability_rules(c).ok()).collect()
}

/// Outbound filter of §6.2 with our capabilities.
pub fn outbound_filter(
    config: &NetworkConfig,
    our_capabilities: &[Vec<Rule>],
    me: Address,
    dest: Option<&Membership>,
    frame: &FrameInfo<'_>,
    random: &mut dyn FnMut() -> u32,
) -> FilterOutcome {
    let tags = Tags::new(config, dest);
    let ownership = Owned(&config.coos);
    let ctx = FilterContext {
        me,
        tags: &tags,
        ownership: &ownership,
        unknown_match_true: config.flags & FLAG_UNKNOWN_MATCH_TRUE != 0,
    };
    filter_outbound(&config.rules, our_capabilities, &ctx, frame, random)
}

/// Inbound filter of §6.2. Capabilities of senders are not collected yet (NETWORK_CREDENTIALS
/// capabilities are parsed and skipped), so a frame that only a sender's capability would accept
/// is dropped: the safe side.
pub fn inbound_filter(
    config: &NetworkConfig,
    me: Address,
    sender: Option<&Membership>,
    frame: &FrameInfo<'_>,
    random: &mut dyn FnMut() -> u32,
) -> FilterOutcome {
    let tags = Tags::new(config, sender);
    let coos: &[CertificateOfOwnership] = sender.map_or(&[], |m| &m.coos);
    let ownership = SenderOwnership { coos: Owned(coos), config };
    let ctx = FilterContext {
        me,
        tags: &tags,
        ownership: &ownership,
        unknown_match_true: config.flags & FLAG_UNKNOWN_MATCH_TRUE != 0,
    };
    let none: &[Vec<Rule>] = &[];
    filter_inbound(&config.rules, none, &ctx, frame, random)
}

/// Inbound ownership: the sender's COOs, or an IP inside our NDP-emulated prefixes (§6.2).
struct SenderOwnership<'a> {
    coos: Owned<'a>,
    config: &'a NetworkConfig,
}

impl OwnershipSource for SenderOwnership<'_> {
    fn owns_ip(&self, ip: IpAddr) -> bool {
        if self.coos.owns_ip(ip) {
            return true;
        }
        self.config.ndp_emulation()
            && self.config.addresses.iter().any(|a| {
                a.ip.is_ipv6() && matches!(a.prefix_len, 40 | 88) && crate::vl1::prefix_contains(a.ip, a.prefix_len, ip)
            })
    }
    fn owns_mac(&self, mac: Mac) -> bool {
        self.coos.owns_mac(mac)
    }
}

impl crate::Node {
    /// Paths stop being alive with time alone (VL1 §9): if a peer's route in the snapshot is no
    /// longer the one the node would choose now, the snapshot must be rebuilt (ping pass).
    pub(crate) fn check_routes(&mut self, now: Instant) {
        if self.data_path_dirty {
            return;
        }
        let relay = self.best_upstream_path(now, None).map(|(l, r)| (l.unwrap_or(0), r));
        let stale = self.peers.values().any(|p| {
            let via = p.best_path(now).map(|path| (path.local, path.remote)).or(relay);
            self.data_path.peers.get(&p.address()).is_none_or(|route| route.via != via)
        });
        self.data_path_dirty = stale;
    }

    /// Rebuilds the snapshot if anything it holds changed.
    ///
    /// A rebuild costs O(peers) (about 1 µs per peer), so with many peers rebuilds are spaced
    /// [`Node::publish_spacing_ms`] apart: peer and path churn cannot fill the slow path. A
    /// change waits at most that long (the deadline is in `poll_timeout`); meanwhile the workers
    /// punt what the older snapshot lacks, and the node answers it. Leaving a network, new
    /// configs and revocations are published at once (`publish_now`).
    pub(crate) fn publish(&mut self) {
        if !self.data_path_dirty {
            return;
        }
        let spacing = self.publish_spacing_ms();
        if spacing > 0 && self.last_publish.is_some_and(|t| self.last_seen_now < t.add_ms(spacing)) {
            return;
        }
        self.publish_now();
    }

    /// Milliseconds between snapshot rebuilds: 1 per 1,000 peers or learned MACs (0 below 1,000,
    /// 100 ms at 100,000), a deterministic stand-in for the rebuild's cost. A flood of new source
    /// MACs on a bridged LAN thus cannot keep the slow path copying tables either.
    pub(crate) fn publish_spacing_ms(&self) -> u64 {
        let macs: usize = self.networks.values().map(|n| n.table_entries()).sum();
        ((self.peers.len() + macs) / 1000) as u64
    }

    /// When a pending rebuild is due, if one is.
    pub(crate) fn publish_deadline(&self) -> Option<Instant> {
        let last = self.last_publish?;
        self.data_path_dirty.then(|| last.add_ms(self.publish_spacing_ms()))
    }

    /// Rebuilds the snapshot now, whatever the spacing.
    pub(crate) fn publish_now(&mut self) {
        if !self.data_path_dirty {
            return;
        }
        self.data_path_dirty = false;
        let now = self.last_seen_now;
        self.last_publish = Some(now);
        let relay = self.best_upstream_path(now, None).map(|(l, r)| (l.unwrap_or(0), r));
        let peers = self
            .peers
            .values()
            .map(|p| {
                let direct = p.best_path(now).map(|path| (path.local, path.remote));
                let bond =
                    self.bonding.bonds.get(&p.address()).filter(|b| !b.paths.is_empty()).map(|b| Arc::new(b.route()));
                let route = PeerRoute {
                    key: p.key.clone(),
                    suite: p.suite(),
                    via: direct.or(relay),
                    direct: direct.is_some(),
                    bond,
                };
                (p.address(), route)
            })
            .collect();
        let mut networks = HashMap::new();
        let me = self.me;
        for (id, n) in &mut self.networks {
            let Some(config) = n.config.clone() else { continue };
            let members = n
                .memberships
                .iter()
                .filter(|(a, _)| self.peers.get(a).is_some_and(|p| n.gate(&p.identity)))
                .map(|(a, m)| (*a, m.clone()))
                .collect();
            let credentials_fresh = n
                .memberships
                .iter()
                .filter(|(_, m)| m.pushed_config_timestamp == config.timestamp)
                .filter_map(|(a, m)| m.last_pushed.map(|t| (*a, t.add_ms(crate::network::CREDENTIALS_REPUSH_MS))))
                .collect();
            let active = config.is_active_bridge(me);
            let remote = n.lan.is_some().then(|| n.bridge_routes_view());
            let lan = n.lan.as_mut().zip(remote).map(|(lan, remote)| LanView {
                active,
                macs: lan.view(),
                remote,
                mtu: lan.mtu,
            });
            networks.insert(
                *id,
                NetworkView {
                    id: *id,
                    mac: n.mac,
                    mtu: config.mtu,
                    our_capabilities: capability_lists(&config),
                    config,
                    members,
                    credentials_fresh,
                    lan,
                },
            );
        }
        let generation = self.data_path.generation + 1;
        self.data_path = Arc::new(DataPath { me: self.me, generation, peers, networks });
        self.events.push_back(crate::Event::DataPathChanged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Identity, Node, NodeConfig};
    use ztplane_crypto::PEER_KEY_LEN;
    use ztplane_protocol::world::{WORLD_TYPE_PLANET, World};

    fn node_with_peers(count: u32) -> Node {
        let path =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/conformance/zt-1.14.1/nodes/a.identity.secret");
        let identity: Identity = std::fs::read_to_string(path).unwrap().trim().parse().unwrap();
        let planet = World::unsigned(WORLD_TYPE_PLANET, 1, Vec::new());
        let config = NodeConfig {
            identity,
            planet,
            moons: Vec::new(),
            cached_peers: Vec::new(),
            networks: Vec::new(),
            seed: [7; 32],
        };
        let mut node = Node::new(config, Instant::ZERO).unwrap();
        node.handle_timeout(Instant::ZERO);
        for i in 0..count {
            let mut bytes = [0u8; 5];
            bytes[1..].copy_from_slice(&(i + 1).to_be_bytes());
            let address = Address::from_bytes(&bytes);
            let peer = crate::peer::Peer::new(
                Identity::from_parts(address, [i as u8; 64], None),
                PeerKey::from_bytes([i as u8; PEER_KEY_LEN]),
                Instant::ZERO,
            );
            node.peers.insert(address, peer);
        }
        node
    }

    /// With 2,000 to 2,999 peers a change is published at most every 2 ms, the deadline shows in
    /// `poll_timeout`, and the timer publishes it; with fewer than 1,000 every change is at once.
    #[test]
    fn rebuilds_are_spaced_with_many_peers() {
        let mut small = node_with_peers(10);
        small.data_path_dirty = true;
        small.handle_timeout(Instant::from_millis(1));
        assert!(small.data_path.peers.len() == 10 && !small.data_path_dirty);

        let mut big = node_with_peers(3000);
        big.data_path_dirty = true;
        big.handle_timeout(Instant::from_millis(10));
        assert_eq!(big.data_path.peers.len(), 3000, "the first rebuild is not delayed");
        // A change 1 ms later waits for the spacing…
        big.peers.remove(&Address::from_bytes(&[0, 0, 0, 0, 1]));
        big.data_path_dirty = true;
        big.handle_timeout(Instant::from_millis(11));
        assert_eq!(big.data_path.peers.len(), 3000, "rebuilt again within 2 ms");
        assert_eq!(big.poll_timeout(), Instant::from_millis(12), "the pending rebuild's deadline");
        // …and goes out when it is due.
        big.handle_timeout(Instant::from_millis(12));
        assert_eq!(big.data_path.peers.len(), 2999);
        assert!(!big.data_path_dirty);
        assert!(big.poll_timeout() > Instant::from_millis(12));
    }
}
