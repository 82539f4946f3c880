//! The per-packet decision (issue item 5): an immutable selection table published by the slow path and
//! read lock-free by every worker.
//!
//! The bond (slow path, one owner) rebuilds a [`SelectionTable`] whenever the usable set, the active path
//! or the allocation changes and publishes it through a [`SelectionHandle`] (an atomically swapped
//! `Arc`). A worker's decision is an index computation on that table plus, for balance-aware flows, one
//! atomic load in the shared [`FlowTable`]: O(1), no locks, no allocation. Per-worker state (round-robin
//! position, random stream, assignment cursor) lives in a [`WorkerCursor`] each worker owns, so all cores
//! can send to the same peer at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use arc_swap::ArcSwap;

use crate::flow::FlowHash;
use crate::path::PathId;
use crate::rng::SeededRng;

/// Buckets of the balance-xor hash table (flows map to buckets, buckets to paths).
pub const HASH_BUCKETS: usize = 4096;
/// Length of the weighted assignment sequence for balance-aware.
pub const ASSIGN_SEQUENCE_LEN: usize = 1024;

/// What a worker does with one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection<'a> {
    /// No path in the bond: use classic VL1 path selection or relay (§6).
    NoPath,
    One(PathId),
    /// Broadcast: the same packet on each of these paths.
    All(&'a [PathId]),
}

/// How the table maps a packet to a path.
#[derive(Debug)]
pub(crate) enum TableKind {
    NoPath,
    /// Active-backup, or the only usable path.
    Single(PathId),
    Broadcast,
    /// balance-rr; `packets_per_link` 0 = a random path per packet.
    RoundRobin {
        packets_per_link: u32,
    },
    /// balance-xor: the flow hash names two candidate paths (two independent bucket lookups); a new flow
    /// takes the one carrying fewer flows and is pinned there. Pure hashing leaves 64 flows on two links
    /// outside ±20% of even about one time in seven; two choices keep the spread within a few flows.
    FlowHash {
        bucket_path: Box<[PathId]>,
        flows: Arc<FlowTable>,
    },
    /// balance-aware, flow modes: flows pinned in the flow table; new flows follow the weighted sequence.
    Flows {
        flows: Arc<FlowTable>,
    },
    /// balance-aware, packet mode: each packet takes the next entry of the weighted sequence.
    WeightedPackets,
}

/// An immutable snapshot of the bond's decision state. Built only by the bond, which keeps the fields
/// consistent (`paths` and `assign_sequence` non-empty whenever `kind` indexes them).
#[derive(Debug)]
pub struct SelectionTable {
    pub(crate) generation: u64,
    pub(crate) kind: TableKind,
    /// Usable paths in slot order (round-robin and broadcast use it directly).
    pub(crate) paths: Vec<PathId>,
    /// Bit i set: path i may carry traffic.
    pub(crate) usable_mask: u64,
    /// Smooth weighted round-robin sequence over `paths` (balance-aware).
    pub(crate) assign_sequence: Vec<PathId>,
    /// Allocation weight of each of `paths` (balance-aware; empty otherwise).
    pub(crate) weights: Vec<f64>,
}

/// A worker's own decision state.
#[derive(Clone, Debug)]
pub struct WorkerCursor {
    packets: u64,
    assigned: u64,
    rng: SeededRng,
}

impl WorkerCursor {
    /// `worker` distinguishes workers so their random streams and sequences do not align.
    pub fn new(worker: u64) -> Self {
        WorkerCursor { packets: 0, assigned: worker.wrapping_mul(389), rng: SeededRng::new(0xB0AD ^ worker) }
    }
}

impl SelectionTable {
    pub fn empty() -> Self {
        SelectionTable {
            generation: 0,
            kind: TableKind::NoPath,
            paths: Vec::new(),
            usable_mask: 0,
            assign_sequence: Vec::new(),
            weights: Vec::new(),
        }
    }

    /// Increases with every table the bond publishes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The paths this table sends on (the bonded set, or the fallback path).
    pub fn paths(&self) -> &[PathId] {
        &self.paths
    }

    pub fn carries(&self, path: PathId) -> bool {
        self.usable_mask & (1u64 << (path.0 & 63)) != 0
    }

    /// Decide where one packet goes. `now_us` is used only to age flow-table entries.
    #[inline]
    pub fn select(&self, flow: FlowHash, now_us: u64, cursor: &mut WorkerCursor) -> Selection<'_> {
        match &self.kind {
            TableKind::NoPath => Selection::NoPath,
            TableKind::Single(p) => Selection::One(*p),
            TableKind::Broadcast => Selection::All(&self.paths),
            TableKind::RoundRobin { packets_per_link } => {
                let n = self.paths.len() as u64;
                let slot = if *packets_per_link == 0 {
                    cursor.rng.below(n)
                } else {
                    (cursor.packets / *packets_per_link as u64) % n
                };
                cursor.packets = cursor.packets.wrapping_add(1);
                Selection::One(self.paths[slot as usize])
            }
            TableKind::FlowHash { bucket_path, flows } => {
                let n = bucket_path.len() as u64;
                let assign = || {
                    let first = bucket_path[(flow.0 % n) as usize];
                    let second = bucket_path[((flow.0 >> 32) % n) as usize];
                    if flows.flows_on(second) < flows.flows_on(first) { second } else { first }
                };
                Selection::One(flows.lookup_or_assign(flow, flow_epoch(now_us), self.usable_mask, 0, assign))
            }
            TableKind::WeightedPackets => {
                let i = cursor.assigned % self.assign_sequence.len() as u64;
                cursor.assigned = cursor.assigned.wrapping_add(1);
                Selection::One(self.assign_sequence[i as usize])
            }
            TableKind::Flows { flows } => {
                // Sampled at random: flows interleave in regular patterns (a batch of each in turn)
                // that a fixed stride would alias with.
                let sample = if cursor.rng.next_u64() % LOAD_SAMPLE == 0 { LOAD_SAMPLE as u32 } else { 0 };
                let next = || {
                    let i = cursor.assigned % self.assign_sequence.len() as u64;
                    cursor.assigned = cursor.assigned.wrapping_add(1);
                    self.least_loaded(flows, self.assign_sequence[i as usize])
                };
                Selection::One(flows.lookup_or_assign(flow, flow_epoch(now_us), self.usable_mask, sample, next))
            }
        }
    }

    /// Where a new balance-aware flow goes: the path furthest below its share of the flows that
    /// count (see [`FlowTable::rebalance`]; the counts are shared by all workers), `preferred` (the
    /// weighted sequence's turn) when it is as good as any.
    fn least_loaded(&self, flows: &FlowTable, preferred: PathId) -> PathId {
        if self.weights.len() != self.paths.len() {
            return preferred;
        }
        let load = |p: PathId, w: f64| (f64::from(flows.flows_on(p)) + 1.0) / w.max(1e-9);
        let mut best = preferred;
        let mut best_load = self
            .paths
            .iter()
            .zip(&self.weights)
            .find(|(p, _)| **p == preferred)
            .map_or(f64::MAX, |(p, w)| load(*p, *w));
        for (&p, &w) in self.paths.iter().zip(&self.weights) {
            let l = load(p, w);
            if l < best_load * (1.0 - 1e-9) {
                best = p;
                best_load = l;
            }
        }
        best
    }
}

/// One balance-aware packet in this many is counted towards its flow's load (by this many), so
/// that the counter's cache line is written rarely even when several cores send one flow.
pub const LOAD_SAMPLE: u64 = 16;
/// A flow with at least this many packets per rebalancing interval is heavy: once any flow is,
/// only heavy flows count for placement and rebalancing. Counting a mostly idle flow (a control
/// connection) like a bulk transfer would leave, say, three transfers on one link and one beside
/// the idle flow on the other.
pub const HEAVY_FLOW_PACKETS: u32 = 1_000;

/// Coarse time for flow-table ageing (~1.05 s units).
pub fn flow_epoch(now_us: u64) -> u16 {
    (now_us >> 20) as u16
}

/// Set associativity of the flow table (4 × 8 bytes: half a cache line).
const WAYS: usize = 4;
/// Scans of a set an insert retries after losing a race before giving up on pinning.
const INSERT_ATTEMPTS: usize = 8;
/// Entries stamped up to this many epochs after the reader's epoch (a worker running slightly behind the
/// writer's clock) count as fresh, not as 65 000 epochs old.
const FUTURE_EPOCHS: u16 = 64;

/// Epochs since `then` as seen at `now`: an entry stamped slightly ahead of `now` has age 0.
#[inline]
pub(crate) fn epoch_age(now: u16, then: u16) -> u16 {
    let d = now.wrapping_sub(then);
    if d > u16::MAX - FUTURE_EPOCHS { 0 } else { d }
}

/// Shared flow → path table for balance-aware (§6.6): set-associative, one `AtomicU64` per entry:
/// bits 0..8 path, 8..24 last-seen epoch, 24..64 tag (top bits of the flow hash, bit 63 forced so an entry
/// is never 0 = empty). Workers read and refresh it lock-free; the slow path rebalances it.
#[derive(Debug)]
pub struct FlowTable {
    entries: Box<[AtomicU64]>,
    mask: usize,
    /// Flows per path: exact after [`FlowTable::refresh_counts`], kept approximately by inserts and
    /// moves in between (idle flows age out only at the next refresh).
    path_flows: Box<[AtomicU32]>,
    /// Sampled packets per entry since the last [`FlowTable::rebalance`] (balance-aware).
    loads: Box<[AtomicU32]>,
}

#[inline]
fn tag_of(flow: FlowHash) -> u64 {
    (flow.0 | (1 << 63)) & !0xFF_FFFF
}

#[inline]
fn entry(tag: u64, epoch: u16, path: PathId) -> u64 {
    tag | ((epoch as u64) << 8) | path.0 as u64
}

#[inline]
fn entry_path(e: u64) -> PathId {
    PathId((e & 0xFF) as u8)
}

#[inline]
fn entry_epoch(e: u64) -> u16 {
    ((e >> 8) & 0xFFFF) as u16
}

impl FlowTable {
    /// `capacity` is rounded up to a power of two (at least one set).
    pub fn new(capacity: usize) -> Self {
        let n = capacity.max(WAYS).next_power_of_two();
        FlowTable {
            entries: (0..n).map(|_| AtomicU64::new(0)).collect(),
            mask: n - 1,
            path_flows: (0..64).map(|_| AtomicU32::new(0)).collect(),
            loads: (0..n).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Flows currently counted on `path`.
    #[inline]
    pub fn flows_on(&self, path: PathId) -> u32 {
        self.path_flows[(path.0 & 63) as usize].load(Ordering::Relaxed)
    }

    #[inline]
    fn count_move(&self, from: Option<PathId>, to: PathId) {
        if let Some(from) = from {
            let c = &self.path_flows[(from.0 & 63) as usize];
            let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        }
        self.path_flows[(to.0 & 63) as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Recount active flows per path (slow path).
    pub fn refresh_counts(&self, epoch: u16, max_age: u16) {
        self.set_counts(&self.count_active(epoch, max_age));
    }

    #[inline]
    fn set_of(&self, flow: FlowHash) -> usize {
        (flow.0 as usize & self.mask) & !(WAYS - 1)
    }

    /// The flow's path; a new flow (or one whose path is no longer usable) takes `assign()`. Concurrent
    /// callers with the same new flow agree on its path: an insert succeeds only against the entry seen
    /// while scanning, and a caller that loses re-scans and takes what the winner stored. `sample`
    /// packets are added to the flow's load (see [`LOAD_SAMPLE`]).
    #[inline]
    pub fn lookup_or_assign(
        &self,
        flow: FlowHash,
        epoch: u16,
        usable_mask: u64,
        sample: u32,
        assign: impl FnOnce() -> PathId,
    ) -> PathId {
        let set = self.set_of(flow);
        let tag = tag_of(flow);
        let ways = &self.entries[set..set + WAYS];
        let mut assign = Some(assign);
        let mut assigned: Option<PathId> = None;
        let mut new_path = || *assigned.get_or_insert_with(|| (assign.take().expect("assigned once"))());
        for _ in 0..INSERT_ATTEMPTS {
            let mut victim = 0;
            let mut victim_entry = 0;
            let mut victim_age = 0u16;
            let mut found = None;
            for (i, slot) in ways.iter().enumerate() {
                let e = slot.load(Ordering::Acquire);
                if e & !0xFF_FFFF == tag {
                    found = Some((i, slot, e));
                    break;
                }
                let age = if e == 0 { u16::MAX } else { epoch_age(epoch, entry_epoch(e)) };
                if age > victim_age || i == 0 {
                    victim = i;
                    victim_entry = e;
                    victim_age = age;
                }
            }
            if let Some((i, slot, e)) = found {
                let path = entry_path(e);
                if sample > 0 {
                    self.loads[set + i].fetch_add(sample, Ordering::Relaxed);
                }
                if usable_mask & (1u64 << (path.0 & 63)) != 0 {
                    if entry_epoch(e) != epoch {
                        // At most one write per flow per epoch; losing the race to the slow path is fine.
                        let _ = slot.compare_exchange(e, entry(tag, epoch, path), Ordering::Relaxed, Ordering::Relaxed);
                    }
                    return path;
                }
                let new = new_path();
                if slot.compare_exchange(e, entry(tag, epoch, new), Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    self.count_move(Some(path), new);
                    return new;
                }
                continue;
            }
            let new = new_path();
            let mine = entry(tag, epoch, new);
            if ways[victim].compare_exchange(victim_entry, mine, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                continue;
            }
            self.loads[set + victim].store(sample, Ordering::Relaxed);
            // An evicted flow that was still recent leaves its path's count.
            let evicted = (victim_entry != 0 && epoch_age(epoch, entry_epoch(victim_entry)) <= 3)
                .then(|| entry_path(victim_entry));
            self.count_move(evicted, new);
            // Another caller inserted the same flow into another way at the same time: the lowest way
            // (the one lookups find first) wins; the others withdraw and follow it.
            for slot in &ways[..victim] {
                let e = slot.load(Ordering::SeqCst);
                if e & !0xFF_FFFF == tag {
                    if ways[victim].compare_exchange(mine, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                        let c = &self.path_flows[(new.0 & 63) as usize];
                        let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
                    }
                    return entry_path(e);
                }
            }
            return new;
        }
        // Persistent contention on this set: decide without pinning (the next packet tries again).
        new_path()
    }

    /// Pin `flow` to `path` unless the table already holds it (return traffic follows the ingress path,
    /// §6.5). Returns whether it was inserted.
    pub fn pin_if_absent(&self, flow: FlowHash, epoch: u16, path: PathId) -> bool {
        let mut inserted = false;
        self.lookup_or_assign(flow, epoch, u64::MAX, 0, || {
            inserted = true;
            path
        });
        inserted
    }

    /// Active flows (seen within `max_age` epochs) per path.
    pub fn count_active(&self, epoch: u16, max_age: u16) -> [u32; 64] {
        self.count_loaded(epoch, max_age, 0)
    }

    /// Active flows per path with a load of at least `min_load` sampled packets.
    pub fn count_loaded(&self, epoch: u16, max_age: u16, min_load: u32) -> [u32; 64] {
        let mut counts = [0u32; 64];
        for (slot, load) in self.entries.iter().zip(self.loads.iter()) {
            let e = slot.load(Ordering::Relaxed);
            if e != 0 && epoch_age(epoch, entry_epoch(e)) <= max_age && load.load(Ordering::Relaxed) >= min_load {
                counts[(entry_path(e).0 & 63) as usize] += 1;
            }
        }
        counts
    }

    /// The flows that count for balance-aware placement, in one pass over the table: the load a
    /// flow needs ([`HEAVY_FLOW_PACKETS`] once any active flow has it, else 0: every active flow
    /// counts) and the counting flows per path.
    pub fn census(&self, epoch: u16, max_age: u16) -> (u32, [u32; 64]) {
        let (mut all, mut heavy) = ([0u32; 64], [0u32; 64]);
        for (slot, load) in self.entries.iter().zip(self.loads.iter()) {
            let e = slot.load(Ordering::Relaxed);
            if e != 0 && epoch_age(epoch, entry_epoch(e)) <= max_age {
                let path = (entry_path(e).0 & 63) as usize;
                all[path] += 1;
                heavy[path] += u32::from(load.load(Ordering::Relaxed) >= HEAVY_FLOW_PACKETS);
            }
        }
        if heavy.iter().any(|&n| n > 0) { (HEAVY_FLOW_PACKETS, heavy) } else { (0, all) }
    }

    /// Forget the flows' loads: a new measuring interval begins.
    pub fn reset_loads(&self) {
        for load in self.loads.iter() {
            load.store(0, Ordering::Relaxed);
        }
    }

    /// Move active flows so that each path holds at most `targets[path]` of the flows with a load
    /// of at least `min_load`, moving only the excess (the fewest moves that reach the targets).
    /// Flows on paths outside `usable_mask` all move, whatever their load. Returns the number of
    /// flows moved; the per-path counts new flows are placed by become those of counting flows.
    pub fn rebalance(&self, epoch: u16, max_age: u16, usable_mask: u64, targets: &[u32; 64], min_load: u32) -> u64 {
        let mut counts = self.count_loaded(epoch, max_age, min_load);
        let mut moved = 0;
        for (slot, load) in self.entries.iter().zip(self.loads.iter()) {
            let e = slot.load(Ordering::Relaxed);
            if e == 0 || epoch_age(epoch, entry_epoch(e)) > max_age {
                continue;
            }
            let counts_here = load.load(Ordering::Relaxed) >= min_load;
            let from = (entry_path(e).0 & 63) as usize;
            let usable = usable_mask & (1u64 << from) != 0;
            if usable && (!counts_here || counts[from] <= targets[from]) {
                continue;
            }
            // The usable path furthest below its target.
            let Some(to) = (0..64)
                .filter(|&p| usable_mask & (1u64 << p) != 0 && (counts[p] < targets[p] || !counts_here))
                .max_by_key(|&p| (targets[p].saturating_sub(counts[p]), std::cmp::Reverse(p)))
            else {
                if usable {
                    continue;
                }
                break;
            };
            let new = entry(e & !0xFF_FFFF, entry_epoch(e), PathId(to as u8));
            if slot.compare_exchange(e, new, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                moved += 1;
                if counts_here {
                    // Saturating: a worker may have pinned this flow after the count was taken.
                    counts[from] = counts[from].saturating_sub(1);
                    counts[to] += 1;
                }
            }
        }
        self.set_counts(&counts);
        moved
    }

    /// Set the per-path counts new flows are placed by (no flow moves).
    pub fn set_counts(&self, counts: &[u32; 64]) {
        for (slot, &c) in self.path_flows.iter().zip(counts) {
            slot.store(c, Ordering::Relaxed);
        }
    }
}

/// The atomically swapped pointer workers read the current table through.
pub struct SelectionHandle {
    current: ArcSwap<SelectionTable>,
}

impl SelectionHandle {
    pub fn new(table: SelectionTable) -> Self {
        SelectionHandle { current: ArcSwap::from_pointee(table) }
    }

    /// The current table (lock-free; hold the guard only for the duration of a burst).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<SelectionTable>> {
        self.current.load()
    }

    pub fn load_full(&self) -> Arc<SelectionTable> {
        self.current.load_full()
    }

    pub fn publish(&self, table: SelectionTable) {
        self.current.store(Arc::new(table));
    }
}

impl std::fmt::Debug for SelectionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectionHandle").field("generation", &self.current.load().generation).finish()
    }
}

/// Smooth weighted round-robin (as in nginx): a well-interleaved sequence in which path i appears in
/// proportion to `weights[i]`.
pub fn weighted_sequence(paths: &[PathId], weights: &[f64], len: usize) -> Vec<PathId> {
    let total: f64 = weights.iter().sum();
    if paths.is_empty() || total <= 0.0 {
        return paths.to_vec();
    }
    let mut current = vec![0.0f64; paths.len()];
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        let mut best = 0;
        for i in 0..paths.len() {
            current[i] += weights[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(paths[best]);
    }
    out
}

/// Split `total` items into integer targets proportional to `weights` (largest remainder).
pub fn proportional_targets(total: u32, weights: &[f64]) -> Vec<u32> {
    let sum: f64 = weights.iter().sum();
    if weights.is_empty() || sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| w / sum * total as f64).collect();
    let mut out: Vec<u32> = exact.iter().map(|x| x.floor() as u32).collect();
    let mut rest = total.saturating_sub(out.iter().sum::<u32>());
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
    for i in order {
        if rest == 0 {
            break;
        }
        out[i] += 1;
        rest -= 1;
    }
    out
}

/// Rebuild a bucket → path table for `paths` with equal shares, keeping every bucket whose path is still
/// present and under its share (the fewest moves). `previous` may be empty.
pub fn rebalance_buckets(previous: &[PathId], paths: &[PathId], buckets: usize) -> Vec<PathId> {
    if paths.is_empty() {
        return Vec::new();
    }
    let targets = proportional_targets(buckets as u32, &vec![1.0; paths.len()]);
    let index = |p: PathId| paths.iter().position(|&q| q == p);
    let mut counts = vec![0u32; paths.len()];
    let mut out: Vec<Option<PathId>> = vec![None; buckets];
    if previous.len() == buckets {
        for (b, &p) in previous.iter().enumerate() {
            if let Some(i) = index(p)
                && counts[i] < targets[i]
            {
                counts[i] += 1;
                out[b] = Some(p);
            }
        }
    }
    let mut next = 0;
    for slot in out.iter_mut().filter(|s| s.is_none()) {
        while counts[next] >= targets[next] {
            next = (next + 1) % paths.len();
        }
        counts[next] += 1;
        *slot = Some(paths[next]);
        next = (next + 1) % paths.len();
    }
    out.into_iter().map(|p| p.unwrap_or(paths[0])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_sequence_is_proportional() {
        let paths = [PathId(0), PathId(1)];
        let seq = weighted_sequence(&paths, &[1000.0, 100.0], 1100);
        assert_eq!(seq.iter().filter(|&&p| p == PathId(1)).count(), 100);
        // Interleaved: the small path appears in the first 12 entries.
        assert!(seq[..12].contains(&PathId(1)));
        assert_eq!(proportional_targets(64, &[1000.0, 100.0]), vec![58, 6]);
    }

    #[test]
    fn bucket_rebuild_moves_only_what_it_must() {
        let all = [PathId(0), PathId(1), PathId(2)];
        let a = rebalance_buckets(&[], &all, 300);
        let b = rebalance_buckets(&a, &[PathId(0), PathId(2)], 300);
        let moved = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert_eq!(moved, 100, "only path 1's buckets move");
        let c = rebalance_buckets(&b, &all, 300);
        assert_eq!(c.iter().filter(|&&p| p == PathId(1)).count(), 100);
        assert_eq!(b.iter().zip(&c).filter(|(x, y)| x != y).count(), 100);
    }

    #[test]
    fn flow_table_pins_and_rebalances_minimally() {
        let table = FlowTable::new(1024);
        let mask = 0b11;
        let mut i = 0u64;
        let flows: Vec<FlowHash> = (0..40u64).map(|f| FlowHash(crate::flow::fmix64(f + 1))).collect();
        for f in &flows {
            let p = table.lookup_or_assign(*f, 5, mask, 0, || PathId(0));
            assert_eq!(p, PathId(0));
        }
        // Pinned: the assigner is not consulted again.
        for f in &flows {
            assert_eq!(
                table.lookup_or_assign(*f, 5, mask, 0, || {
                    i += 1;
                    PathId(1)
                }),
                PathId(0)
            );
        }
        assert_eq!(i, 0);
        let mut targets = [0u32; 64];
        targets[0] = 30;
        targets[1] = 10;
        assert_eq!(table.rebalance(5, 2, mask, &targets, 0), 10);
        let counts = table.count_active(5, 2);
        assert_eq!((counts[0], counts[1]), (30, 10));
        // Path 0 unusable: its flows are reassigned on lookup.
        let moved_to: Vec<PathId> =
            flows.iter().map(|f| table.lookup_or_assign(*f, 5, 0b10, 0, || PathId(1))).collect();
        assert!(moved_to.iter().all(|&p| p == PathId(1)));
    }

    #[test]
    fn concurrent_workers_agree_on_a_new_flows_path() {
        use std::sync::Barrier;
        let threads = 4;
        let flows = 20_000u64;
        // Two flows per set (of 4 ways), so nothing is evicted: every disagreement is a lost race.
        fn flow_of(f: u64, round: u64) -> FlowHash {
            FlowHash((round << 56) | ((f + 1) << 32) | ((f / 2) << 2))
        }
        for round in 0..3u64 {
            let table = Arc::new(FlowTable::new(1 << 16));
            let barrier = Arc::new(Barrier::new(threads));
            let workers: Vec<_> = (0..threads)
                .map(|w| {
                    let (table, barrier) = (table.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        let mut out = Vec::with_capacity(flows as usize);
                        for f in 0..flows {
                            if f % 64 == 0 {
                                barrier.wait();
                            }
                            let flow = flow_of(f, round);
                            out.push(table.lookup_or_assign(flow, 5, 0xF, 0, || PathId(w as u8)));
                        }
                        out
                    })
                })
                .collect();
            let seen: Vec<Vec<PathId>> = workers.into_iter().map(|h| h.join().unwrap()).collect();
            for f in 0..flows as usize {
                let pinned = table.lookup_or_assign(flow_of(f as u64, round), 5, 0xF, 0, || PathId(9));
                let paths: Vec<PathId> = seen.iter().map(|s| s[f]).collect();
                assert!(paths.iter().all(|&p| p == pinned), "flow {f}: workers got {paths:?}, table has {pinned:?}");
            }
        }
    }

    #[test]
    fn entries_stamped_ahead_of_the_reader_are_fresh() {
        let table = FlowTable::new(64);
        let flows: Vec<FlowHash> = (0..8u64).map(|f| FlowHash(crate::flow::fmix64(f + 1))).collect();
        // A worker whose clock is one epoch ahead pins the flows at epoch 6; the slow path reads at 5.
        for f in &flows {
            table.lookup_or_assign(*f, 6, 0b1, 0, || PathId(0));
        }
        assert_eq!(table.count_active(5, 3)[0], 8, "an entry one epoch ahead is active, not 65 535 epochs old");
        assert_eq!(epoch_age(5, 6), 0);
        assert_eq!(epoch_age(0, u16::MAX), 1);
        assert_eq!(epoch_age(5, 5 + 1_000), u16::MAX - 999, "far ahead: wrapped, i.e. ancient");
        // Rebalancing sees them too (and moves them to meet the targets).
        let mut targets = [0u32; 64];
        targets[0] = 4;
        targets[1] = 4;
        assert_eq!(table.rebalance(5, 3, 0b11, &targets, 0), 4);
        // A new flow does not evict a fresh (ahead-stamped) entry while an older one is in its set.
        let t = FlowTable::new(4);
        let set_flows: Vec<FlowHash> = (0..4u64).map(|f| FlowHash((f + 1) << 32)).collect();
        t.lookup_or_assign(set_flows[0], 6, 1, 0, || PathId(0));
        t.lookup_or_assign(set_flows[1], 2, 1, 0, || PathId(0));
        t.lookup_or_assign(set_flows[2], 5, 1, 0, || PathId(0));
        t.lookup_or_assign(set_flows[3], 5, 1, 0, || PathId(0));
        t.lookup_or_assign(FlowHash(9 << 32), 5, 1, 0, || PathId(0));
        let mut asked = false;
        t.lookup_or_assign(set_flows[0], 5, 1, 0, || {
            asked = true;
            PathId(1)
        });
        assert!(!asked, "the flow stamped ahead was evicted");
    }

    #[test]
    fn rebalancing_while_workers_pin_flows_keeps_counts_sane() {
        for round in 0..20u64 {
            let table = Arc::new(FlowTable::new(1 << 12));
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let workers: Vec<_> = (0..3u64)
                .map(|w| {
                    let (table, stop) = (table.clone(), stop.clone());
                    std::thread::spawn(move || {
                        let mut f = 0u64;
                        while !stop.load(Ordering::Relaxed) && f < 200_000 {
                            let flow = FlowHash(crate::flow::fmix64(round << 40 | w << 32 | f));
                            table.lookup_or_assign(flow, 5, 0b11, 0, || PathId(0));
                            f += 1;
                        }
                    })
                })
                .collect();
            let mut targets = [0u32; 64];
            targets[1] = u32::MAX / 2;
            for _ in 0..50 {
                table.rebalance(5, 3, 0b11, &targets, 0);
                assert!(table.flows_on(PathId(0)) <= 1 << 12, "count underflowed: {}", table.flows_on(PathId(0)));
            }
            stop.store(true, Ordering::Relaxed);
            workers.into_iter().for_each(|h| h.join().unwrap());
        }
    }
}
