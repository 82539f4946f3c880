//! The node's data-path workers: one thread per core, each owning one AF_XDP socket per
//! underlay interface (its queue) and one queue of every network's tap.
//!
//! One loop iteration, in stages (as smoltcp splits `poll`):
//! * **ingress** — datagrams from the AF_XDP sockets and frames from the tap queues become
//!   [`Item`]s, sprayed over all workers through the hand-off (`crate::handoff`);
//! * **process** (any worker) — a datagram is reassembled if it is a piece, dearmored in place and
//!   turned into an Ethernet frame for the tap by [`DataPath::receive`]; a tap frame is filtered
//!   and sealed as FRAME by [`DataPath::route_frame`] and written with its Ethernet/IP/UDP headers
//!   into UMEM frames. Whatever the data path cannot decide goes to the slow path as a [`Punt`];
//! * **egress** (the owner) — items are collected in arrival order, so every inner flow keeps its
//!   order, and written to the tap or queued on the AF_XDP TX ring;
//! * **maintenance** — TX completions, fill ring, commands from the slow path.
//!
//! Frames are accounted for exactly as in `crate::worker` (free list, fill ring, hand-off, TX
//! backlog, TX ring) and the total is checked at exit.

use super::headers::EgressTable;
use super::{Punt, WorkerCommand};
use crate::frame::locate_udp;
use crate::handoff::{BATCH, Fabric, Owner};
use crate::port::Port;
use crate::stats::{self, WorkerStats};
use arc_swap::ArcSwap;
use crossbeam::channel::{Receiver, Sender};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};
use xsk_rs::umem::Umem;
use xsk_rs::umem::frame::FrameDesc;
use ztplane_bond::{PathId, WorkerCursor};
use ztplane_host::offload::{Coalescer, NEEDS_CSUM, Segments, VnetHdr};
use ztplane_host::tap::{READ_BUF_LEN, TapQueue};
use ztplane_node::bonding::PathRecord;
use ztplane_node::datapath::{BondedArrival, DataPath, RxVerdict, TxVerdict, seal_ext_frame, seal_frame};
use ztplane_node::{Address, Instant, NetworkId};
use ztplane_protocol::fragment::fragment_header;
use ztplane_protocol::header::{
    DEFAULT_PHYS_MTU, DatagramKind, FLAG_FRAGMENTED, FRAGMENT_HEADER_LEN, MAX_PACKET_LEN, classify,
};
use ztplane_protocol::rx::{Inbound, Receiver as Reassembly};

/// Reassembly stripes: pieces of one packet hash to one stripe, whichever worker handles them.
const STRIPES: usize = 16;
/// Activity reports per (peer, path) at most this often from one worker.
const ACTIVITY_REPORT: Duration = Duration::from_millis(500);
/// A burst shorter than this is processed by its owner: spreading a few frames over other
/// cores costs more (wake-ups, steals) than it saves, and single packets keep their latency.
const SPREAD_MIN: usize = 16;
/// An idle worker with nothing in flight sleeps in poll(2) on its sockets and tap queues: 1 ms
/// after a burst, doubling up to this while nothing comes, so an idle node costs next to no CPU.
/// Only commands from the slow path (taps added or removed) and the stop flag wait that long:
/// traffic wakes the poll at once.
const IDLE_POLL_MAX_MS: i32 = 64;
/// Loop turns with frames collected after which merged tap writes go out even though more of
/// the burst is still in flight.
const MERGE_ROUNDS: usize = 8;

/// What an item carries.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A datagram received on the owner's port `port`.
    Rx { port: u8 },
    /// A frame read from the owner's queue of `network`'s tap.
    Tap { network: u64 },
}

/// What the owner does with an item once processed.
#[derive(Clone, Copy, Debug)]
pub enum Verdict {
    Free,
    /// Write `data[start..start + len]` to the tap of `network`.
    TapWrite {
        network: u64,
        start: u16,
        len: u16,
    },
    /// Transmit the frame (and `extra`, a second datagram) on the owner's port of `iface`.
    Transmit {
        iface: u8,
        extra: bool,
    },
}

/// One frame in flight through the hand-off.
#[derive(Clone, Copy)]
pub struct Item {
    pub desc: FrameDesc,
    /// A spare frame the owner attached to a tap frame that will need two datagrams.
    pub extra: Option<FrameDesc>,
    pub kind: Kind,
    pub verdict: Verdict,
}

/// State every worker shares.
pub struct Shared {
    pub fabric: Arc<Fabric<Item>>,
    pub umems: Vec<Umem>,
    pub stop: Arc<AtomicBool>,
    pub drained: AtomicUsize,
    pub data_path: ArcSwap<DataPath>,
    pub egress: ArcSwap<EgressTable>,
    pub punts: Sender<Punt>,
    pub reassembly: Vec<Mutex<Reassembly<Piece>>>,
    /// Interface index of each underlay interface, in `--iface` order (a path's local socket).
    pub ifindexes: Vec<u32>,
    /// The network of each LAN port (gateway mode): a worker's ports are the underlay ones, then
    /// these.
    pub lans: Vec<NetworkId>,
    /// The node's clock origin.
    pub epoch: StdInstant,
}

impl Shared {
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros() as u64)
    }

    pub fn new_reassembly() -> Vec<Mutex<Reassembly<Piece>>> {
        (0..STRIPES).map(|_| Mutex::new(Reassembly::default())).collect()
    }
}

/// Where a piece of a fragmented packet came from: a reassembled packet belongs to its head's
/// path and hop count (VL1 §3.2), not to whichever piece completed it.
#[derive(Clone, Copy, Debug)]
pub struct Piece {
    local: u32,
    remote: SocketAddr,
    hops: u8,
}

impl Default for Piece {
    fn default() -> Self {
        Piece { local: 0, remote: SocketAddr::from(([0, 0, 0, 0], 0)), hops: 7 }
    }
}

/// A worker's own state.
pub struct NodeWorker {
    pub index: usize,
    pub core: Option<usize>,
    /// One port per underlay interface, in `--iface` order, then one per bridged LAN.
    pub ports: Vec<Port>,
    pub free: Vec<FrameDesc>,
    pub total_frames: usize,
    pub ring_size: usize,
    pub commands: Receiver<WorkerCommand>,
    pub stats: Arc<WorkerStats>,
    pub tap_stats: Arc<TapStats>,
}

/// Counters of the tap side of a worker.
#[derive(Default, Debug)]
pub struct TapStats {
    pub tap_rx: std::sync::atomic::AtomicU64,
    pub tap_tx: std::sync::atomic::AtomicU64,
    pub punted: std::sync::atomic::AtomicU64,
    /// Punts the slow path's full queue refused (a flood): dropped, and counted here.
    pub punts_dropped: std::sync::atomic::AtomicU64,
    pub fast_rx: std::sync::atomic::AtomicU64,
    pub fast_tx: std::sync::atomic::AtomicU64,
    /// Tap reads that could not be used: truncated, or a super-frame that failed validation.
    pub tap_dropped: std::sync::atomic::AtomicU64,
    /// Tap reads that were TSO super-frames (cut into several frames).
    pub tap_super_reads: std::sync::atomic::AtomicU64,
    /// Super-frames written after merging (each stands for several `tap_tx` frames).
    pub tap_merged_writes: std::sync::atomic::AtomicU64,
    pub tap_write_errors: std::sync::atomic::AtomicU64,
}

/// Per-thread processing state (the processor side of the hand-off).
struct Processor<'a> {
    shared: &'a Shared,
    rng: ChaCha20Rng,
    scratch: Vec<u8>,
    reported: HashMap<(Address, SocketAddr, bool), StdInstant>,
    stats: &'a TapStats,
    /// This worker's own position in bonds' path sequences.
    cursor: WorkerCursor,
    /// Packets moved on bonded paths in the current batch, for the bonds (sent per batch).
    records: Vec<PathRecord>,
    /// The clock, read once per batch rather than per packet (`tick`).
    wall: StdInstant,
    now: Instant,
}

impl NodeWorker {
    pub fn run(mut self, shared: Arc<Shared>) {
        crate::worker::pin(self.index, self.core);
        let workers = shared.fabric.workers();
        let mut owner = Owner::new(shared.fabric.clone(), self.index, self.total_frames);
        let mut scratch: Vec<FrameDesc> = self.free[..BATCH.min(self.free.len())].to_vec();
        let mut backlog: Vec<Vec<FrameDesc>> = vec![Vec::with_capacity(self.total_frames); self.ports.len()];
        let mut taps: Vec<TapPort> = Vec::new();
        let per_port = (self.total_frames / 3 / self.ports.len().max(1)).clamp(1, self.ring_size);
        for port in &mut self.ports {
            port.fill_target = per_port;
        }
        let mut seed = [0u8; 32];
        let _ = getrandom::getrandom(&mut seed);
        let mut processor = Processor {
            shared: &shared,
            rng: ChaCha20Rng::from_seed(seed),
            scratch: vec![0; MAX_PACKET_LEN + 64],
            reported: HashMap::new(),
            stats: &self.tap_stats,
            cursor: WorkerCursor::new(self.index as u64),
            records: Vec::with_capacity(2 * BATCH),
            wall: StdInstant::now(),
            now: shared.now(),
        };
        let mut next_processor = self.index;
        let mut idle_spins = 0u32;
        let mut merge_rounds = 0usize;
        let mut drain = crate::worker::Drain::default();
        loop {
            let stopping = shared.stop.load(Ordering::Relaxed);
            let mut work = 0usize;
            // Maintenance: completions, fill ring, commands.
            for port in &mut self.ports {
                work += port.reclaim(&mut self.free, &mut scratch);
                if !stopping {
                    port.refill(&mut self.free);
                }
            }
            while let Ok(command) = self.commands.try_recv() {
                work += 1;
                match command {
                    WorkerCommand::AddTap { network, queue, merge } => {
                        taps.retain(|p| p.network != network);
                        let mut coalescer = Coalescer::new();
                        coalescer.set_enabled(merge && queue.vnet_hdr_len() > 0);
                        taps.push(TapPort { network, queue, coalescer, read_buf: vec![0; READ_BUF_LEN], held: None });
                    }
                    WorkerCommand::RemoveTap { network } => taps.retain(|p| p.network != network),
                }
            }
            // Ingress: AF_XDP datagrams, then tap frames.
            if !stopping {
                for (p, port) in self.ports.iter_mut().enumerate() {
                    if !owner.ready() {
                        break;
                    }
                    let n = port.receive(&mut scratch[..BATCH]);
                    if n == 0 {
                        continue;
                    }
                    work += n;
                    stats::add(&self.stats.rx, n);
                    let umem = &shared.umems[self.index];
                    let spread = n >= SPREAD_MIN;
                    // A LAN frame is sealed into a spare frame, as a tap frame is.
                    let lan = p >= shared.ifindexes.len();
                    for desc in &scratch[..n] {
                        // SAFETY: a received frame is ours until we transmit or refill it.
                        let data = unsafe { umem.data(desc) };
                        let to = if spread {
                            crate::handoff::processor_for(data.contents(), self.index, workers)
                        } else {
                            self.index
                        };
                        let extra = if lan { self.free.pop() } else { None };
                        owner.dispatch(
                            Item { desc: *desc, extra, kind: Kind::Rx { port: p as u8 }, verdict: Verdict::Free },
                            to,
                        );
                    }
                    owner.flush();
                }
                for port in &mut taps {
                    let mut staged = 0;
                    // Room for a whole batch of segments, two UMEM frames each. Every read is
                    // flushed before the next and stages at most one batch, so a processor's
                    // batch never overflows; a super-frame with more segments (a small MSS) is
                    // held and continued on the next turns, in order.
                    while staged < BATCH && self.free.len() > 2 * BATCH && owner.ready() {
                        let TapPort { network, queue, read_buf, held, .. } = port;
                        let (hdr, len, first) = match held.take() {
                            Some(h) => (h.hdr, h.len, h.next),
                            None => {
                                let Ok(len) = queue.read(read_buf) else { break };
                                stats::add(&self.tap_stats.tap_rx, 1);
                                if len == read_buf.len() {
                                    // The kernel truncates silently; a full buffer means a lost tail.
                                    stats::add(&self.tap_stats.tap_dropped, 1);
                                    continue;
                                }
                                work += 1;
                                if queue.vnet_hdr_len() == 0 {
                                    if len >= 14 {
                                        (VnetHdr::NONE, len, 0)
                                    } else {
                                        continue;
                                    }
                                } else {
                                    let Some(hdr) = VnetHdr::parse(&read_buf[..len]) else { continue };
                                    (hdr, len, 0)
                                }
                            }
                        };
                        let frame = &read_buf[queue.vnet_hdr_len()..len];
                        let segments = match Segments::new(hdr, frame) {
                            Ok(s) => s,
                            Err(e) => {
                                stats::add(&self.tap_stats.tap_dropped, 1);
                                log::debug!("{network}: tap frame dropped: {e}");
                                continue;
                            }
                        };
                        if first == 0 && segments.count() > 1 {
                            stats::add(&self.tap_stats.tap_super_reads, 1);
                        }
                        let end = segments.count().min(first + BATCH);
                        if end < segments.count() {
                            *held = Some(Held { hdr, len, next: end });
                        }
                        for i in first..end {
                            staged += 1;
                            next_processor =
                                if staged > SPREAD_MIN { (next_processor + 1) % workers } else { self.index };
                            let len = segments.segment_len(i).unwrap_or(0);
                            // Each segment is written straight into its UMEM frame, checksums and all.
                            let mut fill = |out: &mut [u8]| segments.write(i, out).ok();
                            let (me, to) = (self.index, next_processor);
                            stage_tap_frame(&shared, me, &mut self.free, &mut owner, *network, len, &mut fill, to);
                        }
                        owner.flush();
                    }
                }
            }
            owner.flush();
            // Process what any owner sent us.
            let processed = shared.fabric.process(self.index, |from, items| {
                processor.tick();
                let umem = &shared.umems[from];
                for item in items.iter_mut() {
                    processor.process(umem, from, item);
                }
                processor.send_records();
            });
            stats::add(&self.stats.processed, processed);
            work += processed;
            // Egress, in arrival order.
            let mut emit = |item: Item| match item.verdict {
                Verdict::Free => {
                    self.free.push(item.desc);
                    if let Some(e) = item.extra {
                        self.free.push(e);
                    }
                }
                Verdict::TapWrite { network, start, len } => {
                    let umem = &shared.umems[self.index];
                    // SAFETY: collected items are ours again.
                    let data = unsafe { umem.data(&item.desc) };
                    let bytes = data.contents();
                    let (start, end) = (start as usize, start as usize + len as usize);
                    if end <= bytes.len()
                        && let Some(port) = taps.iter_mut().find(|p| p.network.0 == network)
                    {
                        port.write(&bytes[start..end], &self.tap_stats);
                    }
                    self.free.push(item.desc);
                    if let Some(e) = item.extra {
                        self.free.push(e);
                    }
                }
                Verdict::Transmit { iface, extra } => {
                    let port = (iface as usize).min(backlog.len().saturating_sub(1));
                    backlog[port].push(item.desc);
                    match (item.extra, extra) {
                        (Some(e), true) => backlog[port].push(e),
                        (Some(e), false) => self.free.push(e),
                        _ => {}
                    }
                }
            };
            let mut collected = owner.collect(&mut emit);
            if collected == 0 && owner.in_flight() > 0 {
                let umem = &shared.umems[self.index];
                let index = self.index;
                let stolen = owner.steal(|items| {
                    processor.tick();
                    for item in items.iter_mut() {
                        processor.process(umem, index, item);
                    }
                    processor.send_records();
                });
                stats::add(&self.stats.stolen, stolen);
                if stolen > 0 {
                    collected = owner.collect(&mut emit);
                }
            }
            work += collected;
            // Merged super-frames go out once the burst they belong to has drained from the
            // hand-off (nothing left in flight), or after MERGE_ROUNDS rounds under steady load:
            // no timer, and a frame waits at most a few loop turns.
            merge_rounds += usize::from(collected > 0);
            if owner.in_flight() == 0 || merge_rounds >= MERGE_ROUNDS {
                for port in &mut taps {
                    port.flush(&self.tap_stats);
                }
                merge_rounds = 0;
            }
            work += crate::worker::transmit_backlog(&mut self.ports, &mut backlog, |_, sent| {
                stats::add(&self.stats.tx, sent);
            });
            if stopping && drain.done(&owner, &backlog, &self.ports, &shared.drained, workers) {
                break;
            }
            if work == 0 {
                idle_spins += 1;
                if idle_spins > 64 && owner.in_flight() == 0 && !stopping {
                    // 1 ms after a burst, doubling to IDLE_POLL_MAX_MS while nothing comes.
                    let doublings = (idle_spins - 65).min(16);
                    wait_readable(&self.ports, &taps, (1i32 << doublings).min(IDLE_POLL_MAX_MS));
                } else {
                    std::hint::spin_loop();
                }
            } else {
                idle_spins = 0;
            }
        }
        crate::worker::check_frames(
            self.index,
            self.total_frames,
            &self.free,
            &self.ports,
            &backlog,
            &owner,
            &self.stats,
        );
    }
}

impl Processor<'_> {
    /// Reads the clock for the batch about to be processed.
    fn tick(&mut self) {
        self.wall = StdInstant::now();
        self.now = Instant::from_micros(self.wall.duration_since(self.shared.epoch).as_micros() as u64);
    }

    fn process(&mut self, umem: &Umem, _owner: usize, item: &mut Item) {
        let underlay = self.shared.ifindexes.len();
        item.verdict = match item.kind {
            Kind::Rx { port } if port as usize >= underlay => self.lan_frame(umem, item, port as usize - underlay),
            Kind::Rx { port } => self.receive(umem, item, port as usize),
            Kind::Tap { network } => self.send(umem, item, NetworkId(network), false),
        };
    }

    /// Hands the batch's bond records to the slow path (one message per batch).
    fn send_records(&mut self) {
        if self.records.is_empty() {
            return;
        }
        let records = std::mem::replace(&mut self.records, Vec::with_capacity(2 * BATCH));
        let _ = self.shared.punts.try_send(Punt::PathRecords(records));
    }

    /// A frame that arrived from a bonded peer on one of its bond's paths.
    fn arrival_record(&mut self, peer: Address, arrival: BondedArrival, bytes: usize) {
        self.records.push(PathRecord::arrival(peer, arrival, bytes as u32, self.now));
    }

    /// A frame sent to a bonded peer on path `path` of its bond.
    fn sent_record(&mut self, peer: Address, path: PathId, packet_id: u64, bytes: usize) {
        let (at, bytes) = (self.now, bytes as u32);
        self.records.push(PathRecord { peer, path, packet_id, bytes, at, received: false, flow: 0 });
    }

    /// The item's frame goes out on the LAN port of `network` (gateway mode).
    fn lan_transmit(&self, network: NetworkId) -> Verdict {
        match self.shared.lans.iter().position(|n| *n == network) {
            Some(i) => Verdict::Transmit { iface: (self.shared.ifindexes.len() + i) as u8, extra: false },
            None => Verdict::Free,
        }
    }

    /// A frame from LAN port `lan` (gateway mode): bridged like a tap frame, as EXT_FRAME.
    fn lan_frame(&mut self, umem: &Umem, item: &mut Item, lan: usize) -> Verdict {
        let Some(&network) = self.shared.lans.get(lan) else { return Verdict::Free };
        self.send(umem, item, network, true)
    }

    fn report(&mut self, punt: Punt) {
        if self.shared.punts.try_send(punt).is_ok() {
            stats::add(&self.stats.punted, 1);
        } else {
            stats::add(&self.stats.punts_dropped, 1);
        }
    }

    /// Tells the slow path, at most every 500 ms per (peer, path, direction), that frames moved.
    fn note(&mut self, peer: Address, remote: SocketAddr, local: u32, received: bool, direct: bool) {
        let now = self.wall;
        let key = (peer, remote, received);
        if self.reported.get(&key).is_some_and(|t| now.duration_since(*t) < ACTIVITY_REPORT) {
            return;
        }
        if self.reported.len() > 4096 {
            self.reported.clear();
        }
        self.reported.insert(key, now);
        let _ = self.shared.punts.try_send(Punt::Activity { peer, local, remote, received, direct });
    }

    /// A datagram from the underlay (see the module doc).
    fn receive(&mut self, umem: &Umem, item: &mut Item, port: usize) -> Verdict {
        let local = self.shared.ifindexes.get(port).copied().unwrap_or(0);
        // SAFETY: the owner handed this frame to us; it touches it again only after we return it.
        let mut data = unsafe { umem.data_mut(&mut item.desc) };
        let frame = data.contents_mut();
        let Some(at) = locate_udp(frame) else { return Verdict::Free };
        let Some(remote) = source_of(frame, at.src_port) else { return Verdict::Free };
        let start = at.l4_offset + 8;
        let end = at.l4_offset + at.udp_len;
        let dp = self.shared.data_path.load();
        let me = dp.me.to_bytes();
        let datagram = &mut frame[start..end];
        let kind = classify(datagram);
        let for_us = datagram.len() >= 13 && datagram[8..13] == me;
        if !for_us || matches!(kind, DatagramKind::Beacon | DatagramKind::Other) {
            self.report(Punt::Datagram { local, remote, data: datagram.to_vec() });
            return Verdict::Free;
        }
        let hops = match kind {
            DatagramKind::Head => datagram[18] & 7,
            _ => datagram[15] & 7,
        };
        if kind == DatagramKind::Head && datagram[18] & FLAG_FRAGMENTED == 0 {
            let mut random = || self.rng.next_u32();
            let bytes = datagram.len();
            return match dp.receive(datagram, (local, remote), &mut random) {
                RxVerdict::Deliver { network, start: s, len, source, bonded, lan } => {
                    stats::add(&self.stats.fast_rx, 1);
                    if let Some(b) = bonded {
                        self.arrival_record(source, b, bytes);
                    }
                    self.note(source, remote, local, true, hops == 0);
                    if lan {
                        // Out on the LAN port: the frame moves to the start of its UMEM frame.
                        frame.copy_within(start + s..start + s + len, 0);
                        data.cursor().set_pos(len);
                        return self.lan_transmit(network);
                    }
                    Verdict::TapWrite { network: network.0, start: (start + s) as u16, len: len as u16 }
                }
                RxVerdict::PuntOpened(suite) => {
                    self.report(Punt::Opened { local, remote, packet: datagram.to_vec(), suite });
                    Verdict::Free
                }
                RxVerdict::Punt => {
                    self.report(Punt::Packet { local, remote, packet: datagram.to_vec() });
                    Verdict::Free
                }
                RxVerdict::Duplicate { source, bonded: b } => {
                    self.arrival_record(source, b, bytes);
                    Verdict::Free
                }
                RxVerdict::Drop => Verdict::Free,
            };
        }
        // A piece: reassemble in the stripe of its packet ID, whichever worker we are.
        let id = u64::from_be_bytes(datagram[..8].try_into().unwrap_or([0; 8]));
        let stripe = (id as usize ^ (id >> 32) as usize) % self.shared.reassembly.len();
        let now = self.now.as_millis();
        // A worker that panicked holding the lock left a consistent table (receive does not
        // unwind half-way through a slot); keep using it rather than lose the stripe.
        let piece = Piece { local, remote, hops };
        let (outcome, head) = self.shared.reassembly[stripe]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .receive_tagged(datagram, piece, now, &mut self.scratch);
        // The packet belongs to its head's path and hop count, not the last piece's.
        let (Inbound::Reassembled { len }, Some(Piece { local, remote, hops })) = (outcome, head) else {
            return Verdict::Free;
        };
        let mut random = || self.rng.next_u32();
        let packet = &mut self.scratch[..len];
        match dp.receive(packet, (local, remote), &mut random) {
            RxVerdict::Deliver { network, start: s, len: l, source, bonded, lan } => {
                if let Some(b) = bonded {
                    self.arrival_record(source, b, len);
                }
                self.note(source, remote, local, true, hops == 0);
                stats::add(&self.stats.fast_rx, 1);
                // The frame goes back into this UMEM frame, from its start.
                let mut cursor = data.cursor();
                cursor.set_pos(0);
                if std::io::Write::write_all(&mut cursor, &self.scratch[s..s + l]).is_ok() {
                    if lan {
                        return self.lan_transmit(network);
                    }
                    Verdict::TapWrite { network: network.0, start: 0, len: l as u16 }
                } else if lan {
                    self.report(Punt::DeliverLan { network, frame: self.scratch[s..s + l].to_vec() });
                    Verdict::Free
                } else {
                    self.report(Punt::Deliver { network, frame: self.scratch[s..s + l].to_vec() });
                    Verdict::Free
                }
            }
            RxVerdict::PuntOpened(suite) => {
                let packet = self.scratch[..len].to_vec();
                self.report(Punt::Opened { local, remote, packet, suite });
                Verdict::Free
            }
            RxVerdict::Punt => {
                let packet = self.scratch[..len].to_vec();
                self.report(Punt::Packet { local, remote, packet });
                Verdict::Free
            }
            RxVerdict::Duplicate { source, bonded: b } => {
                self.arrival_record(source, b, len);
                Verdict::Free
            }
            RxVerdict::Drop => Verdict::Free,
        }
    }

    /// A frame from a tap (see the module doc).
    fn send(&mut self, umem: &Umem, item: &mut Item, network: NetworkId, from_lan: bool) -> Verdict {
        let dp = self.shared.data_path.load();
        let now = self.now;
        // SAFETY: as in `receive`.
        let mut data = unsafe { umem.data_mut(&mut item.desc) };
        let frame_len = data.contents().len();
        let mut random = || self.rng.next_u32();
        let verdict = if from_lan {
            dp.route_lan_frame(now, network, data.contents(), &mut random, &mut self.cursor)
        } else {
            dp.route_frame(now, network, data.contents(), &mut random, &mut self.cursor)
        };
        let punt = |p: &mut Processor<'_>, bytes: &[u8]| {
            let frame = bytes.to_vec();
            p.report(if from_lan { Punt::LanFrame { network, frame } } else { Punt::TapFrame { network, frame } })
        };
        match verdict {
            TxVerdict::Loopback => Verdict::TapWrite { network: network.0, start: 0, len: frame_len as u16 },
            TxVerdict::Drop => Verdict::Free,
            TxVerdict::Punt => {
                punt(self, data.contents());
                Verdict::Free
            }
            TxVerdict::Send { dest, key, suite, via, path, bridged } => {
                let table = self.shared.egress.load();
                let (Some(egress), Some(spare)) = (table.get(&via.1).copied(), item.extra.as_mut()) else {
                    punt(self, data.contents());
                    return Verdict::Free;
                };
                let mut id = [0u8; 8];
                self.rng.fill_bytes(&mut id);
                let h = egress.header_len();
                // Sealed straight into the spare frame, behind room for the headers.
                // SAFETY: the spare frame travels with the item; same ownership as `desc`.
                let mut head = unsafe { umem.data_mut(spare) };
                let out = whole_frame(&mut head);
                let plain = data.contents();
                let seal = if bridged { seal_ext_frame } else { seal_frame };
                let sealed = out.get_mut(h..).and_then(|o| seal(dp.me, dest, &key, suite, id, network, plain, o));
                let pieces = match sealed {
                    Some(len) if len <= DEFAULT_PHYS_MTU => 1,
                    Some(len) if len - DEFAULT_PHYS_MTU <= DEFAULT_PHYS_MTU - FRAGMENT_HEADER_LEN => 2,
                    // More than two datagrams (a large virtual MTU): the slow path cuts those.
                    _ => 0,
                };
                let Some(len) = sealed.filter(|_| pieces > 0) else {
                    head.cursor().set_pos(0);
                    punt(self, data.contents());
                    return Verdict::Free;
                };
                let wire_id = u64::from_be_bytes(out[h..h + 8].try_into().unwrap_or([0; 8]));
                // The head stays where it was sealed; the tail moves behind a fragment header into
                // the frame the plain frame came in, which is no longer needed (§3.1).
                if pieces == 2 {
                    let packet = &out[h..h + len];
                    let tail = &packet[DEFAULT_PHYS_MTU..];
                    let piece_len = FRAGMENT_HEADER_LEN + tail.len();
                    let frame = whole_frame(&mut data);
                    frame[h..h + FRAGMENT_HEADER_LEN].copy_from_slice(&fragment_header(packet, 2, 1));
                    frame[h + FRAGMENT_HEADER_LEN..h + piece_len].copy_from_slice(tail);
                    let n = egress.write_headers(frame, piece_len);
                    data.cursor().set_pos(n.unwrap_or(0));
                    if n.is_none() {
                        return Verdict::Free;
                    }
                }
                let n = egress.write_headers(out, len.min(DEFAULT_PHYS_MTU));
                head.cursor().set_pos(n.unwrap_or(0));
                if n.is_none() {
                    return Verdict::Free;
                }
                if let Some(path) = path {
                    self.sent_record(dest, path, wire_id, len);
                }
                // The head leaves first: it becomes the item's frame, the tail (if any) its extra.
                std::mem::swap(&mut item.desc, spare);
                stats::add(&self.stats.fast_tx, 1);
                self.note(dest, via.1, via.0, false, true);
                Verdict::Transmit { iface: egress.iface as u8, extra: pieces == 2 }
            }
        }
    }
}

/// One network's tap as a worker holds it: its queue and the merging of frames written to it.
struct TapPort {
    network: NetworkId,
    queue: TapQueue,
    coalescer: Coalescer,
    /// The last frame read (vnet header first, with offloads).
    read_buf: Vec<u8>,
    /// A super-frame in `read_buf` whose segments from `next` on are still to be staged.
    held: Option<Held>,
}

/// Where staging of a held super-frame resumes.
#[derive(Clone, Copy)]
struct Held {
    hdr: VnetHdr,
    len: usize,
    next: usize,
}

impl TapPort {
    /// Writes a frame for the kernel, merged with its flow's neighbours when offloads allow.
    fn write(&mut self, frame: &[u8], stats: &TapStats) {
        stats::add(&stats.tap_tx, 1);
        if self.queue.vnet_hdr_len() == 0 {
            if self.queue.write(frame).is_err() {
                stats::add(&stats.tap_write_errors, 1);
            }
            return;
        }
        let queue = &self.queue;
        self.coalescer.push(frame, &mut |header: &[u8], frame: &[u8]| write_counted(queue, stats, header, frame));
    }

    /// Writes every pending merged frame.
    fn flush(&mut self, stats: &TapStats) {
        let queue = &self.queue;
        self.coalescer.flush(&mut |header: &[u8], frame: &[u8]| write_counted(queue, stats, header, frame));
    }
}

/// One tap write from the coalescer; a header with NEEDS_CSUM marks a merged super-frame (§3).
fn write_counted(queue: &TapQueue, stats: &TapStats, header: &[u8], frame: &[u8]) {
    if header.first().is_some_and(|f| f & NEEDS_CSUM != 0) {
        stats::add(&stats.tap_merged_writes, 1);
    }
    if queue.write_parts(header, frame).is_err() {
        stats::add(&stats.tap_write_errors, 1);
    }
}

/// Fills a UMEM frame with one plain frame of `len` bytes from the tap (`fill` writes it and
/// returns its length; two UMEM frames when it will need two datagrams) and hands it to
/// processor `to`. A frame the fast path cannot hold goes to the slow path.
#[allow(clippy::too_many_arguments)]
fn stage_tap_frame(
    shared: &Shared,
    me: usize,
    free: &mut Vec<FrameDesc>,
    owner: &mut Owner<Item>,
    network: NetworkId,
    len: usize,
    fill: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    to: usize,
) {
    let Some(mut desc) = free.pop() else {
        // Out of frames in the middle of a super-frame: the slow path sends the rest.
        let mut frame = vec![0u8; len];
        if let Some(n) = fill(&mut frame) {
            frame.truncate(n);
            let _ = shared.punts.try_send(Punt::TapFrame { network, frame });
        }
        return;
    };
    // The spare frame the packet is sealed into (the plain frame then holds the tail, if any).
    let extra = free.pop();
    let umem = &shared.umems[me];
    // SAFETY: `desc` came from our free list: userspace owns it.
    let mut data = unsafe { umem.data_mut(&mut desc) };
    let buf = whole_frame(&mut data);
    let cap = buf.len();
    let written = if len <= cap { fill(buf) } else { None };
    data.cursor().set_pos(written.unwrap_or(0));
    if written.is_none() {
        if len > cap {
            // Larger than a UMEM frame: the slow path handles it.
            let mut frame = vec![0u8; len];
            if let Some(n) = fill(&mut frame) {
                frame.truncate(n);
                let _ = shared.punts.try_send(Punt::TapFrame { network, frame });
            }
        }
        free.push(desc);
        free.extend(extra);
        return;
    }
    owner.dispatch(Item { desc, extra, kind: Kind::Tap { network: network.0 }, verdict: Verdict::Free }, to);
}

/// The whole data area of a UMEM frame, to write into in place; set the frame's length with
/// `cursor().set_pos(n)` afterwards.
fn whole_frame<'a>(data: &'a mut xsk_rs::umem::frame::DataMut<'_>) -> &'a mut [u8] {
    let mut cursor = data.cursor();
    let cap = cursor.buf_len();
    cursor.set_pos(cap);
    data.contents_mut()
}

/// Sleeps until a socket or tap queue of this worker is readable, at most `timeout_ms`. Work for
/// this worker as a processor does not wake it: its owner steals the batch instead (hand-off).
fn wait_readable(ports: &[Port], taps: &[TapPort], timeout_ms: i32) {
    use std::os::fd::AsRawFd;
    let mut fds: Vec<libc::pollfd> = ports
        .iter()
        .map(|p| p.rx.fd().as_raw_fd())
        .chain(taps.iter().map(|p| p.queue.as_raw_fd()))
        .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
        .collect();
    // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
}

/// The source IP and port of an Ethernet/IP/UDP frame `locate_udp` accepted.
fn source_of(frame: &[u8], port: u16) -> Option<SocketAddr> {
    let mut l3 = 14;
    let mut ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    if ethertype == 0x8100 {
        ethertype = u16::from_be_bytes([frame[16], frame[17]]);
        l3 = 18;
    }
    let ip: IpAddr = match ethertype {
        0x0800 => <[u8; 4]>::try_from(frame.get(l3 + 12..l3 + 16)?).ok()?.into(),
        0x86dd => <[u8; 16]>::try_from(frame.get(l3 + 8..l3 + 24)?).ok()?.into(),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}
