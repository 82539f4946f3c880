//! Multipath bonding of a peer's paths (`zerotier-bonding.md`; engine: `ztplane-bond`).
//!
//! Each underlay interface is a link named by its interface, as in zerotier-one. With a bonding
//! policy in `local.conf`, every leaf peer we hold a direct path to gets one [`Bond`] (§1.1: roots
//! and moons never bond); each learned direct path on a named link is nominated to it. The node
//! drives the bond like any other timer-driven state: it feeds it every packet it sees on a
//! nominated path, the workers' per-packet [`PathRecord`]s, ECHO replies (§4.1), QoS records
//! (§4.2, zerotier-one's format) and ztplane path acks (the ACK payload of
//! `ztplane_protocol::verbs::PathAck`), and sends what the bond asks for on the path it names.
//!
//! Workers choose a path per packet from [`BondRoute`], published in the data path: the bond's
//! selection table (swapped atomically by the bond itself, so a failover reaches the workers
//! without a snapshot rebuild) and the (local socket, remote address) each path ID stands for.
//!
//! Discovering a ztplane peer: every bond offers path acks about once a second while data
//! arrives; the first ack that comes back marks the peer as a ztplane node, and from then on
//! both ends exchange acks every 2 ms (exact loss, failure detection in tens of ms).

use crate::node::Outgoing;
use crate::time::Instant;
use crate::{Address, Event, LocalSocket, Node};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use ztplane_bond::config::{BondingConfig, Policy, PolicySettings};
use ztplane_bond::dedup::SharedDuplicateFilter;
use ztplane_bond::{Bond, FlowHash, PacketKind, PathId, Selection, SelectionHandle, WorkerCursor};
use ztplane_crypto::CipherSuite;
use ztplane_protocol::header::Verb;
use ztplane_protocol::verbs::PathAck;
use ztplane_protocol::verbs::small::{QosRecord, decode_qos, encode_qos};

/// What a worker needs to send to a bonded peer: the bond's selection and its paths.
#[derive(Debug)]
pub struct BondRoute {
    pub selection: Arc<SelectionHandle>,
    /// The path each [`PathId`] names (index = ID).
    pub paths: Box<[(LocalSocket, SocketAddr)]>,
    /// balance-aware in a flow mode: report the flow of received frames (return traffic follows
    /// the ingress path, §6.5).
    pub pin_received_flows: bool,
    /// Broadcast: the copies of a frame that arrive on the other paths are dropped here.
    pub duplicates: Option<Arc<SharedDuplicateFilter>>,
}

/// Where one packet to a bonded peer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BondChoice {
    /// This path of the bond.
    One(PathId, (LocalSocket, SocketAddr)),
    /// Broadcast: the same packet on every path (the node sends those).
    All,
    /// The bond has no usable path yet: ordinary path selection.
    Unbonded,
}

impl BondRoute {
    /// The ID of the path (local, remote), if it is in the bond.
    pub fn path_of(&self, local: LocalSocket, remote: SocketAddr) -> Option<PathId> {
        self.paths.iter().position(|p| *p == (local, remote)).map(|i| PathId(i as u8))
    }

    /// The per-packet decision: O(1), no allocation, no lock.
    #[inline]
    pub fn choose(&self, flow: FlowHash, now: Instant, cursor: &mut WorkerCursor) -> BondChoice {
        match self.selection.load().select(flow, now.as_micros(), cursor) {
            Selection::One(p) => match self.paths.get(p.0 as usize) {
                Some(via) => BondChoice::One(p, *via),
                // A path added since this snapshot was published: the next one has it.
                None => BondChoice::Unbonded,
            },
            Selection::All(_) => BondChoice::All,
            Selection::NoPath => BondChoice::Unbonded,
        }
    }
}

/// One data packet a worker moved on a bonded path, reported to the node in batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathRecord {
    pub peer: Address,
    pub path: PathId,
    /// The wire packet ID (first 8 bytes), big-endian.
    pub packet_id: u64,
    pub bytes: u32,
    pub at: Instant,
    pub received: bool,
    /// The frame's flow, for received frames when [`BondRoute::pin_received_flows`]; else 0.
    pub flow: u64,
}

/// Packet IDs a broadcast bond's duplicate filter remembers (512 KiB): a copy that arrives later
/// than this many frames after the first one is delivered too.
const DUPLICATE_SLOTS: usize = 1 << 16;

/// Workers report per processed batch, so two cores' records of the same moment reach the node a
/// batch apart: records are held this long and fed to the bonds in the order they happened (the
/// bonds' send logs and ack arithmetic assume it).
const RECORD_HORIZON_US: u64 = 2_000;

impl PathRecord {
    /// A frame that arrived from bonded `peer` on one of its bond's paths (delivered, or a
    /// broadcast copy dropped), `bytes` long, at `at`.
    pub fn arrival(peer: Address, arrival: crate::datapath::BondedArrival, bytes: u32, at: Instant) -> Self {
        PathRecord {
            peer,
            path: arrival.path,
            packet_id: arrival.packet_id,
            bytes,
            at,
            received: true,
            flow: arrival.flow,
        }
    }
}

/// The bond with one peer and the paths its IDs name.
pub(crate) struct PeerBond {
    pub bond: Bond,
    pub paths: Vec<(LocalSocket, SocketAddr)>,
    /// Kept across snapshots, so that a rebuild does not forget the IDs seen.
    pub duplicates: Option<Arc<SharedDuplicateFilter>>,
}

impl PeerBond {
    fn path_of(&self, local: LocalSocket, remote: SocketAddr) -> Option<PathId> {
        self.paths.iter().position(|p| *p == (local, remote)).map(|i| PathId(i as u8))
    }

    pub(crate) fn route(&self) -> BondRoute {
        let s = self.bond.settings();
        BondRoute {
            selection: self.bond.selection_handle(),
            paths: self.paths.clone().into_boxed_slice(),
            pin_received_flows: s.base == Policy::BalanceAware
                && s.balance != ztplane_bond::config::BalanceMode::Packet,
            duplicates: self.duplicates.clone(),
        }
    }
}

/// The node's bonding state.
#[derive(Default)]
pub(crate) struct Bonding {
    pub config: BondingConfig,
    /// Link name of each local socket (the underlay interface).
    pub links: HashMap<LocalSocket, String>,
    pub bonds: HashMap<Address, PeerBond>,
    /// Earliest deadline over all bonds (µs), recomputed whenever a bond changes.
    pub next_deadline: Option<u64>,
    /// Worker records not yet fed to the bonds (see [`RECORD_HORIZON_US`]).
    pub pending: Vec<PathRecord>,
}

impl Bonding {
    /// The bond with `peer` and the ID of its path (local, remote), if both exist.
    fn path_mut(&mut self, peer: Address, local: LocalSocket, remote: SocketAddr) -> Option<(&mut PeerBond, PathId)> {
        let pb = self.bonds.get_mut(&peer)?;
        let path = pb.path_of(local, remote)?;
        Some((pb, path))
    }

    fn recompute_deadline(&mut self, now: Instant) {
        let now_us = now.as_micros();
        self.next_deadline = self.bonds.values().map(|b| b.bond.poll_timeout(now_us)).min();
    }
}

fn kind_of(verb: Verb) -> PacketKind {
    match verb {
        Verb::Frame | Verb::ExtFrame | Verb::MulticastFrame => PacketKind::Data,
        Verb::Ack | Verb::QosMeasurement => PacketKind::Measurement,
        _ => PacketKind::Control,
    }
}

impl Node {
    /// Installs the bonding configuration (`local.conf`, zerotier-bonding.md §2). Bonds whose
    /// policy is unchanged keep running untouched; the others are rebuilt with their paths, and a
    /// peer whose new policy is none loses its bond.
    pub fn set_bonding(&mut self, config: BondingConfig, now: Instant) {
        let old = std::mem::take(&mut self.bonding.bonds);
        self.bonding.config = config;
        for (peer, pb) in old {
            match self.policy_for(peer) {
                Some(settings) if settings == *pb.bond.settings() => {
                    self.bonding.bonds.insert(peer, pb);
                }
                Some(_) => {
                    for (local, remote) in pb.paths {
                        self.nominate(now, peer, local, remote);
                    }
                }
                None => {}
            }
        }
        self.bonding.recompute_deadline(now);
        self.data_path_dirty = true;
        self.publish_now();
    }

    /// Names the underlay links: the local socket of each interface and its name.
    pub fn set_links(&mut self, links: Vec<(LocalSocket, String)>) {
        self.bonding.links = links.into_iter().collect();
    }

    /// The bond with `peer`, if it has one.
    pub fn bond(&self, peer: Address) -> Option<(&Bond, &[(LocalSocket, SocketAddr)])> {
        self.bonding.bonds.get(&peer).map(|b| (&b.bond, b.paths.as_slice()))
    }

    /// The peer is bonded with us and known to be a ztplane node (it acked a path).
    pub(crate) fn is_ztplane_bond_peer(&self, peer: Address) -> bool {
        self.bonding.bonds.get(&peer).is_some_and(|b| b.bond.fast_acks())
    }

    /// Bonded peers.
    pub fn bonded_peers(&self) -> impl Iterator<Item = Address> + '_ {
        self.bonding.bonds.keys().copied()
    }

    /// `zerotier-cli bond <peer> rotate` (active-backup): the next path in failover order.
    pub fn rotate_bond(&mut self, peer: Address, now: Instant) -> bool {
        let rotated = self.bonding.bonds.get_mut(&peer).is_some_and(|b| b.bond.rotate(now.as_micros()));
        self.bond_events(peer);
        rotated
    }

    /// Data packets the workers moved on bonded paths.
    pub fn bond_records(&mut self, now: Instant, records: &[PathRecord]) {
        let pending = &mut self.bonding.pending;
        let in_order = match (pending.last(), records.first()) {
            (Some(last), Some(first)) => first.at >= last.at && records.is_sorted_by_key(|r| r.at),
            _ => records.is_sorted_by_key(|r| r.at),
        };
        pending.extend_from_slice(records);
        if !in_order {
            // Stable, and linear on the sorted runs the workers' batches are.
            pending.sort_by_key(|r| r.at);
        }
        self.feed_records(now);
    }

    /// Feeds the bonds the records older than the horizon, in time order.
    fn feed_records(&mut self, now: Instant) {
        let cutoff = now.as_micros().saturating_sub(RECORD_HORIZON_US);
        let ready = self.bonding.pending.partition_point(|r| r.at.as_micros() <= cutoff);
        if ready == 0 {
            return;
        }
        let records: Vec<PathRecord> = self.bonding.pending.drain(..ready).collect();
        for r in &records {
            let Some(pb) = self.bonding.bonds.get_mut(&r.peer) else { continue };
            let at = r.at.as_micros();
            if r.received {
                let _ = pb.bond.on_packet_received(r.path, r.packet_id, r.bytes as usize, PacketKind::Data, at);
                if r.flow != 0 {
                    let _ = pb.bond.on_flow_received(FlowHash(r.flow), r.path, at);
                }
            } else {
                let _ = pb.bond.on_data_sent(r.path, r.packet_id, r.bytes as usize, at);
            }
        }
        self.bonding.recompute_deadline(now);
    }

    fn policy_for(&self, peer: Address) -> Option<PolicySettings> {
        if self.upstreams.contains_key(&peer) || !self.bonding.config.bonding_in_use() {
            return None;
        }
        let settings = self.bonding.config.policy_for_peer(peer.as_u64());
        (settings.base != Policy::None).then_some(settings)
    }

    /// A direct path to `peer` is known: make it part of the peer's bond (created on first use).
    pub(crate) fn nominate(&mut self, now: Instant, peer: Address, local: LocalSocket, remote: SocketAddr) {
        let Some(link) = self.bonding.links.get(&local).cloned() else { return };
        if self.bonding.bonds.get(&peer).is_some_and(|b| b.path_of(local, remote).is_some()) {
            return;
        }
        let Some(settings) = self.policy_for(peer) else { return };
        let now_us = now.as_micros();
        let pb = self.bonding.bonds.entry(peer).or_insert_with(|| {
            let duplicates =
                (settings.base == Policy::Broadcast).then(|| Arc::new(SharedDuplicateFilter::new(DUPLICATE_SLOTS)));
            let mut bond = Bond::new(settings, now_us);
            bond.set_announce_acks(true);
            PeerBond { bond, paths: Vec::new(), duplicates }
        });
        match pb.bond.add_path(&link, &remote.to_string(), remote.is_ipv6(), now_us) {
            Ok(id) => {
                debug_assert_eq!(id.0 as usize, pb.paths.len());
                pb.paths.push((local, remote));
                log::info!("bond {peer}: path {} on {link} to {remote}", id.0);
                self.data_path_dirty = true;
            }
            Err(e) => log::debug!("bond {peer}: path on {link} to {remote} not nominated: {e}"),
        }
        self.bond_events(peer);
        self.bonding.recompute_deadline(now);
    }

    /// Every authenticated packet from a peer on a direct path (VL1 §3.2 bookkeeping).
    pub(crate) fn bond_received(
        &mut self,
        now: Instant,
        peer: Address,
        on: (LocalSocket, SocketAddr),
        packet_id: [u8; 8],
        bytes: usize,
        verb: Verb,
    ) {
        let Some((pb, path)) = self.bonding.path_mut(peer, on.0, on.1) else { return };
        let _ = pb.bond.on_packet_received(path, u64::from_be_bytes(packet_id), bytes, kind_of(verb), now.as_micros());
    }

    /// QOS_MEASUREMENT from a bonded peer (§4.2, protocol §8.13).
    pub(crate) fn bond_qos(
        &mut self,
        now: Instant,
        peer: Address,
        local: LocalSocket,
        remote: SocketAddr,
        payload: &[u8],
    ) {
        let Some((pb, path)) = self.bonding.path_mut(peer, local, remote) else { return };
        let Ok(records) = decode_qos(payload) else {
            let _ = pb.bond.on_malformed(path, now.as_micros());
            return;
        };
        let records: Vec<ztplane_bond::QosRecord> = records
            .iter()
            .map(|r| ztplane_bond::QosRecord { packet_id: u64::from_be_bytes(r.packet_id), holding_ms: r.holding_ms })
            .collect();
        let _ = pb.bond.on_qos_records(path, &records, now.as_micros());
        self.bonding.recompute_deadline(now);
    }

    /// ACK from a bonded peer: a ztplane path ack, or zerotier-one's (ignored, as it does).
    ///
    /// Discovery: any path ack shows the peer is a ztplane node, so we ack at the short interval
    /// from then on; one flagged [`PathAck::FAST`] shows it does so too, so its acks become
    /// failure evidence. A first ack without the flag gets an immediate reply, so that a peer we
    /// send no data to (it owes us no acks) still learns what we are.
    pub(crate) fn bond_ack(
        &mut self,
        now: Instant,
        peer: Address,
        local: LocalSocket,
        remote: SocketAddr,
        payload: &[u8],
    ) {
        let Some(ack) = PathAck::decode(payload) else { return };
        let Some((pb, path)) = self.bonding.path_mut(peer, local, remote) else { return };
        let mut reply = false;
        if !pb.bond.fast_acks() {
            pb.bond.set_fast_acks(true);
            reply = ack.flags & PathAck::FAST == 0;
        }
        if ack.flags & PathAck::FAST != 0 && !pb.bond.peer_acks() {
            log::info!("bond {peer}: the peer acks its paths (a ztplane node): exact loss and fast failover");
            pb.bond.set_peer_acks(true);
        }
        if ack.received_count > 0 {
            let ack = ztplane_bond::PathAck {
                received_count: ack.received_count,
                received_bytes: ack.received_bytes,
                newest_packet_id: u64::from_be_bytes(ack.newest_packet_id),
                holding_us: ack.holding_us,
            };
            let _ = pb.bond.on_path_ack(path, ack, now.as_micros());
        }
        if reply {
            let hello = PathAck {
                flags: PathAck::FAST,
                received_count: 0,
                received_bytes: 0,
                newest_packet_id: [0; 8],
                holding_us: 0,
            };
            self.send_path_ack(now, peer, (local, remote), hello);
        }
        self.bond_events(peer);
        self.bonding.recompute_deadline(now);
    }

    fn send_path_ack(&mut self, now: Instant, peer: Address, (local, remote): (LocalSocket, SocketAddr), ack: PathAck) {
        let Some(key) = self.peers.get(&peer).map(|p| p.key.clone()) else { return };
        let mut payload = Vec::with_capacity(PathAck::LEN);
        ack.encode(&mut payload);
        let msg = Outgoing::new(Verb::Ack, payload);
        self.emit_packet(now, &key, peer, Some(local), remote, msg, CipherSuite::Poly1305);
    }

    /// OK(ECHO) from a bonded peer: a probe answered (§4.1).
    pub(crate) fn bond_echo_reply(
        &mut self,
        now: Instant,
        peer: Address,
        local: LocalSocket,
        remote: SocketAddr,
        in_re: [u8; 8],
    ) {
        let Some((pb, path)) = self.bonding.path_mut(peer, local, remote) else { return };
        let _ = pb.bond.on_echo_reply(path, u64::from_be_bytes(in_re), now.as_micros());
    }

    /// A packet the node itself sent to a bonded peer on (local, remote).
    pub(crate) fn bond_sent(
        &mut self,
        now: Instant,
        peer: Address,
        on: (LocalSocket, SocketAddr),
        packet_id: [u8; 8],
        bytes: usize,
        verb: Verb,
    ) {
        let Some((pb, path)) = self.bonding.path_mut(peer, on.0, on.1) else { return };
        let (id, at) = (u64::from_be_bytes(packet_id), now.as_micros());
        match kind_of(verb) {
            // In time order with the workers' records (see [`RECORD_HORIZON_US`]).
            PacketKind::Data => {
                let record =
                    PathRecord { peer, path, packet_id: id, bytes: bytes as u32, at: now, received: false, flow: 0 };
                self.bond_records(now, &[record]);
            }
            PacketKind::Control => {
                let _ = pb.bond.on_control_sent(path, id, at);
            }
            PacketKind::Measurement => {}
        }
    }

    /// The paths the node sends a message to a bonded peer on: the bond's choice for its flow
    /// (every path with broadcast; control messages take the first), or `None` to use ordinary
    /// path selection.
    pub(crate) fn bond_paths(
        &mut self,
        now: Instant,
        peer: Address,
        flow: Option<FlowHash>,
    ) -> Option<Vec<(LocalSocket, SocketAddr)>> {
        let pb = self.bonding.bonds.get_mut(&peer)?;
        let chosen = pb.bond.select(flow.unwrap_or(FlowHash(0)), now.as_micros());
        let mut paths: Vec<_> = chosen.iter().filter_map(|p| pb.paths.get(p.0 as usize).copied()).collect();
        if flow.is_none() {
            paths.truncate(1);
        }
        (!paths.is_empty()).then_some(paths)
    }

    /// When the next bond timer is due (or held records must be fed).
    pub(crate) fn bond_deadline(&self) -> Option<Instant> {
        let feed = self.bonding.pending.first().map(|r| r.at.as_micros() + RECORD_HORIZON_US);
        match (self.bonding.next_deadline, feed) {
            (Some(a), Some(b)) => Some(Instant::from_micros(a.min(b))),
            (a, b) => a.or(b).map(Instant::from_micros),
        }
    }

    /// Runs the bonds' timers and sends what they ask for.
    pub(crate) fn bond_timers(&mut self, now: Instant) {
        self.feed_records(now);
        if self.bonding.next_deadline.is_none_or(|d| d > now.as_micros()) {
            return;
        }
        let now_us = now.as_micros();
        let due: Vec<Address> =
            self.bonding.bonds.iter().filter(|(_, b)| b.bond.poll_timeout(now_us) <= now_us).map(|(a, _)| *a).collect();
        for peer in due {
            let mut transmits = Vec::new();
            if let Some(pb) = self.bonding.bonds.get_mut(&peer) {
                pb.bond.handle_timeout(now_us);
                while let Some(t) = pb.bond.poll_transmit() {
                    transmits.push(t);
                }
            }
            for t in transmits {
                self.bond_transmit(now, peer, t);
            }
            self.bond_events(peer);
        }
        self.bonding.recompute_deadline(now);
    }

    fn bond_transmit(&mut self, now: Instant, peer: Address, t: ztplane_bond::Transmit) {
        let path = match &t {
            ztplane_bond::Transmit::Echo { path }
            | ztplane_bond::Transmit::Qos { path, .. }
            | ztplane_bond::Transmit::Ack { path, .. } => *path,
        };
        let Some(&(local, remote)) = self.bonding.bonds.get(&peer).and_then(|b| b.paths.get(path.0 as usize)) else {
            return;
        };
        let Some(p) = self.peers.get(&peer) else { return };
        let (key, suite) = (p.key.clone(), p.suite());
        match t {
            ztplane_bond::Transmit::Echo { path } => {
                let msg = Outgoing::new(Verb::Echo, Vec::new()).expecting_reply();
                let id = self.emit_packet(now, &key, peer, Some(local), remote, msg, suite);
                if let Some(pb) = self.bonding.bonds.get_mut(&peer) {
                    let _ = pb.bond.on_echo_sent(path, u64::from_be_bytes(id), now.as_micros());
                }
            }
            // Measurement packets are MACed but not encrypted, as zerotier-one sends them (VL1 §6.4).
            ztplane_bond::Transmit::Qos { records, .. } => {
                let records: Vec<QosRecord> = records
                    .iter()
                    .map(|r| QosRecord { packet_id: r.packet_id.to_be_bytes(), holding_ms: r.holding_ms })
                    .collect();
                let mut payload = Vec::with_capacity(records.len() * 10);
                encode_qos(&records, &mut payload);
                let msg = Outgoing::new(Verb::QosMeasurement, payload);
                self.emit_packet(now, &key, peer, Some(local), remote, msg, CipherSuite::Poly1305);
            }
            ztplane_bond::Transmit::Ack { ack, .. } => {
                let fast = self.bonding.bonds.get(&peer).is_some_and(|b| b.bond.fast_acks());
                let ack = PathAck {
                    flags: if fast { PathAck::FAST } else { 0 },
                    received_count: ack.received_count,
                    received_bytes: ack.received_bytes,
                    newest_packet_id: ack.newest_packet_id.to_be_bytes(),
                    holding_us: ack.holding_us,
                };
                self.send_path_ack(now, peer, (local, remote), ack);
            }
        }
    }

    /// Hands the bond's events to the host (logs, `ztplanectl`).
    fn bond_events(&mut self, peer: Address) {
        let Some(pb) = self.bonding.bonds.get_mut(&peer) else { return };
        while let Some(event) = pb.bond.poll_event() {
            if let ztplane_bond::BondEvent::PathDown { at_us, path, .. } = &event
                && let Ok(p) = pb.bond.path(PathId(*path))
            {
                // What the detector saw, so that a failure nobody caused can be explained.
                let (sent, l) = (&p.sent, &p.liveness);
                log::info!(
                    "bond {peer}: path {path} down: {} data sent; acks {} matched, {} late, {} unmatched, last {} µs ago; \
                     {} lost, {} short now; ack wait since {} µs ago, gap peak {} µs; srtt {} µs, rttvar {} µs; last receive {} µs ago",
                    sent.data_sent,
                    sent.acks_matched,
                    sent.acks_late,
                    sent.acks_unmatched,
                    sent.last_ack_us.map_or(-1, |t| at_us.saturating_sub(t) as i64),
                    sent.lost,
                    sent.pending_loss(),
                    at_us.saturating_sub(l.ack_wait_since_us),
                    l.ack_gap_peak_us,
                    p.quality.srtt_us(),
                    p.quality.rttvar_us(),
                    at_us.saturating_sub(l.last_rx_us),
                );
            }
            self.events.push_back(Event::Bond { peer, event });
        }
    }

    /// Forgets the bond of a peer that is gone.
    pub(crate) fn drop_bond(&mut self, peer: Address) {
        if self.bonding.bonds.remove(&peer).is_some() {
            self.data_path_dirty = true;
        }
    }
}
