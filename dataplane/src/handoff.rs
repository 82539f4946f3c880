//! Hand-off: one RX queue's frames processed on every core, transmitted in arrival order.
//!
//! The kernel steers a frame only to the AF_XDP socket of the queue it arrived on, and one UDP
//! 4-tuple (one ZeroTier peer path) arrives on one queue. To use every core for that path, the
//! worker that owns the queue (the *owner*) sprays frame descriptors over all workers
//! (*processors*, itself included), and transmits them again itself, in arrival order:
//!
//! ```text
//!   owner w (RX queue q)                          processors 0..N
//!   ───────────────────                           ───────────────
//!   rx batch ─► pick(frame) ─► pending[p] ──push──► requests[w][p] ─► process ─┐
//!        │                                                                     │
//!        └─► log: p0 p1 p0 p2 ...  (one entry per frame, arrival order)        │
//!                                                                              ▼
//!   tx ◄── collect(): next = log.front(); take 1 from returns[w][next] ◄── returns[w][p]
//! ```
//!
//! Every (owner, processor) pair has its own pair of bounded lock-free queues, and each is FIFO.
//! So the next frame in arrival order is always at the head of the return queue of the
//! processor the log names: the owner needs no sequence numbers and no reorder buffer, and
//! output order equals arrival order for every flow on the queue (the WireGuard discipline:
//! parallel work, per-peer ordered transmit). A slow processor delays only the owner's
//! transmit, never reorders it.
//!
//! When a processor is slow to start on a batch (its core taken by something else), the owner
//! processes that batch itself ([`Owner::steal`]); a per-pair claim keeps a stolen batch from
//! overtaking one the processor is still working on. Processing must therefore give the same
//! result on any worker: per-frame work (dearmor, decode) is; state that must see a flow's
//! frames in order belongs to the owner.
//!
//! Descriptors move, frames do not: an item is a small `Copy` descriptor into the owner's UMEM.
//! Batches of up to [`BATCH`] items amortise the queue operations. The owner bounds the batches
//! outstanding per processor, so a return queue can never overflow and nothing is dropped here:
//! when a processor falls behind, the owner stops accepting new frames (back-pressure to the
//! RX ring) instead.
use crossbeam::queue::ArrayQueue;
use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Items per batch; also the largest RX burst an owner may dispatch at once.
pub const BATCH: usize = 64;

/// A fixed-capacity run of items travelling between two workers.
#[derive(Clone, Copy)]
pub struct Batch<T: Copy> {
    len: usize,
    items: [MaybeUninit<T>; BATCH],
}

impl<T: Copy> Batch<T> {
    fn new() -> Self {
        Batch { len: 0, items: [MaybeUninit::uninit(); BATCH] }
    }

    fn push(&mut self, item: T) {
        self.items[self.len] = MaybeUninit::new(item);
        self.len += 1;
    }

    fn get(&self, index: usize) -> T {
        assert!(index < self.len);
        // SAFETY: items[..len] were written by `push`.
        unsafe { self.items[index].assume_init() }
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: items[..len] were written by `push`; MaybeUninit<T> has T's layout.
        unsafe { std::slice::from_raw_parts_mut(self.items.as_mut_ptr().cast::<T>(), self.len) }
    }

    fn is_full(&self) -> bool {
        self.len == BATCH
    }
}

/// The queues between every pair of workers. Shared by all workers (`Arc`).
pub struct Fabric<T: Copy> {
    workers: usize,
    /// `requests[owner * workers + processor]`
    requests: Vec<ArrayQueue<Batch<T>>>,
    /// `returns[owner * workers + processor]`
    returns: Vec<ArrayQueue<Batch<T>>>,
    /// `claims[pair]`: held while one batch of the pair moves from `requests` to `returns`, so
    /// that a batch stolen by the owner cannot overtake one its processor is still working on.
    claims: Vec<AtomicBool>,
    /// Batches an owner may have outstanding per processor (queued, in work or returned).
    depth: usize,
}

impl<T: Copy> Fabric<T> {
    /// Queues for `workers` workers, each pair allowing `depth` outstanding batches.
    pub fn new(workers: usize, depth: usize) -> Arc<Self> {
        assert!(workers > 0 && workers <= u8::MAX as usize, "1..=255 workers");
        let depth = depth.max(1);
        let pairs = workers * workers;
        Arc::new(Fabric {
            workers,
            requests: (0..pairs).map(|_| ArrayQueue::new(depth)).collect(),
            returns: (0..pairs).map(|_| ArrayQueue::new(depth)).collect(),
            claims: (0..pairs).map(|_| AtomicBool::new(false)).collect(),
            depth,
        })
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    fn pair(&self, owner: usize, processor: usize) -> usize {
        owner * self.workers + processor
    }

    /// Processor side: processes every batch waiting for `processor` from any owner, in place,
    /// and hands each back to its owner. Returns the number of items processed.
    pub fn process(&self, processor: usize, mut work: impl FnMut(usize, &mut [T])) -> usize {
        let mut done = 0;
        for owner in 0..self.workers {
            let pair = self.pair(owner, processor);
            while let Some(n) = self.process_one(pair, |batch| work(owner, batch)) {
                done += n;
            }
        }
        done
    }

    /// Moves the oldest request batch of `pair` through `work` to the pair's return queue.
    /// `None` when there is none, or when someone else is moving one right now (never waits).
    fn process_one(&self, pair: usize, work: impl FnOnce(&mut [T])) -> Option<usize> {
        let claim = &self.claims[pair];
        if claim.swap(true, Ordering::Acquire) {
            return None;
        }
        let moved = self.requests[pair].pop().map(|mut batch| {
            work(batch.as_mut_slice());
            // Cannot fail: the owner keeps at most `depth` batches outstanding on this pair.
            if self.returns[pair].push(batch).is_err() {
                unreachable!("return queue overflow: owner exceeded its outstanding bound");
            }
            batch.len
        });
        claim.store(false, Ordering::Release);
        moved
    }
}

/// Owner side of the fabric for one worker: dispatch in arrival order, collect in arrival order.
pub struct Owner<T: Copy> {
    fabric: Arc<Fabric<T>>,
    me: usize,
    pending: Vec<Batch<T>>,
    outstanding: Vec<usize>,
    /// Processor of every dispatched, not yet collected item, in arrival order.
    log: VecDeque<u8>,
    /// Per processor: a returned batch being drained and the position in it.
    draining: Vec<(Batch<T>, usize)>,
    /// Items collected so far, and since when the next one has been waiting (for `steal`).
    collected: u64,
    waiting_since: Option<(u64, Instant)>,
    steal_after: Duration,
    /// Calls of `steal` (the clock is read on every STEAL_CLOCK_EVERY-th while waiting).
    steal_polls: u32,
}

/// While the next frame waits for its processor, `steal` reads the clock once per this many
/// calls (one per loop turn of the owner).
const STEAL_CLOCK_EVERY: u32 = 16;

/// Default for [`Owner::steal_after`]: far above a running processor's batch time (~µs), far
/// below a scheduler time slice (ms).
pub const STEAL_AFTER: Duration = Duration::from_micros(100);

impl<T: Copy> Owner<T> {
    pub fn new(fabric: Arc<Fabric<T>>, me: usize, log_capacity: usize) -> Self {
        let workers = fabric.workers;
        Owner {
            fabric,
            me,
            pending: vec![Batch::new(); workers],
            outstanding: vec![0; workers],
            log: VecDeque::with_capacity(log_capacity),
            draining: vec![(Batch::new(), 0); workers],
            collected: 0,
            waiting_since: None,
            steal_after: STEAL_AFTER,
            steal_polls: 0,
        }
    }

    /// True when a full burst of [`BATCH`] items can be dispatched to any mix of processors.
    pub fn ready(&self) -> bool {
        self.pending.iter().all(|batch| batch.len == 0)
    }

    /// Items dispatched and not yet collected.
    pub fn in_flight(&self) -> usize {
        self.log.len()
    }

    /// Queues `item` for `processor`. At most [`BATCH`] items may be dispatched between a
    /// [`ready`](Self::ready) check and the following [`flush`](Self::flush).
    pub fn dispatch(&mut self, item: T, processor: usize) {
        let processor = processor % self.fabric.workers;
        let batch = &mut self.pending[processor];
        debug_assert!(!batch.is_full(), "dispatch beyond one burst without flush");
        batch.push(item);
        self.log.push_back(processor as u8);
    }

    /// Sends every pending batch whose processor has room. Returns true if none is left pending.
    pub fn flush(&mut self) -> bool {
        let mut all = true;
        for processor in 0..self.fabric.workers {
            if self.pending[processor].len == 0 {
                continue;
            }
            if self.outstanding[processor] >= self.fabric.depth {
                all = false;
                continue;
            }
            let pair = self.fabric.pair(self.me, processor);
            let batch = std::mem::replace(&mut self.pending[processor], Batch::new());
            match self.fabric.requests[pair].push(batch) {
                Ok(()) => self.outstanding[processor] += 1,
                Err(batch) => {
                    self.pending[processor] = batch;
                    all = false;
                }
            }
        }
        all
    }

    /// How long the next frame may wait for its processor before the owner does the work.
    pub fn steal_after(mut self, wait: Duration) -> Self {
        self.steal_after = wait;
        self
    }

    /// Processes, on the owner, the batch that the next frame in arrival order waits in, if its
    /// processor has not started on it within [`steal_after`](Self::steal_after) (descheduled,
    /// or busy with other owners). Returns the number of items processed. Keeps a flow moving
    /// when a core is taken away from a processor; the work is the same wherever it runs.
    pub fn steal(&mut self, work: impl FnOnce(&mut [T])) -> usize {
        let Some(&processor) = self.log.front() else { return 0 };
        let processor = processor as usize;
        let (batch, pos) = &self.draining[processor];
        let pair = self.fabric.pair(self.me, processor);
        if *pos < batch.len || !self.fabric.returns[pair].is_empty() {
            return 0; // the next frame is already processed
        }
        // Reading the clock on every turn of a waiting owner's loop costs more than the wait
        // it measures (vDSO call per turn): look at it every STEAL_CLOCK_EVERY turns.
        self.steal_polls = self.steal_polls.wrapping_add(1);
        if self.waiting_since.is_some_and(|(seen, _)| seen == self.collected)
            && !self.steal_polls.is_multiple_of(STEAL_CLOCK_EVERY)
        {
            return 0;
        }
        let now = Instant::now();
        match self.waiting_since {
            Some((seen, since)) if seen == self.collected && now - since >= self.steal_after => {}
            Some((seen, _)) if seen == self.collected => return 0,
            _ => {
                self.waiting_since = Some((self.collected, now));
                if !self.steal_after.is_zero() {
                    return 0;
                }
            }
        }
        self.fabric.process_one(pair, work).unwrap_or(0)
    }

    /// Emits processed items in arrival order until the next one is still being processed.
    /// Returns the number emitted.
    pub fn collect(&mut self, mut emit: impl FnMut(T)) -> usize {
        let mut emitted = 0;
        while let Some(&processor) = self.log.front() {
            let processor = processor as usize;
            let (batch, pos) = &mut self.draining[processor];
            if *pos == batch.len {
                let pair = self.fabric.pair(self.me, processor);
                match self.fabric.returns[pair].pop() {
                    Some(next) => {
                        *batch = next;
                        *pos = 0;
                        self.outstanding[processor] -= 1;
                    }
                    None => break,
                }
            }
            emit(batch.get(*pos));
            *pos += 1;
            self.log.pop_front();
            emitted += 1;
            self.collected += 1;
        }
        emitted
    }
}

/// Picks the processor for a frame: ZeroTier datagrams by a hash of their packet ID, which
/// spreads even one flow's packets evenly over all processors (a head and its fragments share
/// the ID, spec §3, so they go the same way); anything else stays with the owner.
pub fn processor_for(frame: &[u8], owner: usize, workers: usize) -> usize {
    match crate::frame::udp_payload(frame) {
        Some(payload) if payload.len() >= 8 => {
            let id = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
            // Fibonacci hashing: IDs are random on the wire, sequential in tests; both spread.
            ((id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize * workers) >> 32
        }
        _ => owner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::thread;

    #[derive(Clone, Copy, Default, Debug, PartialEq)]
    struct Seq {
        n: u64,
        processed_by: u8,
    }

    /// Owners dispatch sequence numbers over all processors, processors run on their own threads
    /// with uneven speeds; every owner must collect each of its items exactly once, in order.
    #[test]
    fn output_order_equals_arrival_order_across_threads() {
        const WORKERS: usize = 3;
        const ITEMS: u64 = 200_000;
        let fabric = Fabric::<Seq>::new(WORKERS, 4);
        let stop = Arc::new(AtomicBool::new(false));
        let processed: Arc<Vec<AtomicUsize>> = Arc::new((0..WORKERS).map(|_| AtomicUsize::new(0)).collect());

        let processors: Vec<_> = (0..WORKERS)
            .map(|p| {
                let fabric = fabric.clone();
                let stop = stop.clone();
                let processed = processed.clone();
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let n = fabric.process(p, |_, items| {
                            for item in items.iter_mut() {
                                item.processed_by = p as u8;
                            }
                            if p == 1 {
                                // An uneven processor: makes out-of-order completion likely.
                                std::hint::spin_loop();
                                thread::yield_now();
                            }
                        });
                        processed[p].fetch_add(n, Ordering::Relaxed);
                        if n == 0 {
                            thread::yield_now();
                        }
                    }
                })
            })
            .collect();

        let owners: Vec<_> = (0..2)
            .map(|me| {
                let fabric = fabric.clone();
                thread::spawn(move || {
                    let mut owner = Owner::new(fabric, me, 4096);
                    let mut next = 0u64;
                    let mut expect = 0u64;
                    let mut by = [0usize; WORKERS];
                    let mut stolen = 0usize;
                    while expect < ITEMS {
                        if next < ITEMS && owner.ready() {
                            let burst = (ITEMS - next).min(BATCH as u64);
                            for _ in 0..burst {
                                let mut frame = [0u8; 64];
                                frame_with_payload(&mut frame, next);
                                let p = processor_for(&frame, me, WORKERS);
                                owner.dispatch(Seq { n: next, processed_by: u8::MAX }, p);
                                next += 1;
                            }
                        }
                        owner.flush();
                        let emitted = owner.collect(|item| {
                            assert_eq!(item.n, expect, "reordered");
                            assert_ne!(item.processed_by, u8::MAX, "collected unprocessed");
                            by[item.processed_by as usize] += 1;
                            expect += 1;
                        });
                        if emitted == 0 {
                            // Races the processors for the blocking batch: must not reorder.
                            stolen += owner.steal(|items| {
                                for item in items.iter_mut() {
                                    item.processed_by = me as u8;
                                }
                            });
                        }
                    }
                    assert_eq!(owner.in_flight(), 0);
                    (by, stolen)
                })
            })
            .collect();

        let mut stolen = 0;
        for owner in owners {
            let (by, owner_stole) = owner.join().unwrap();
            stolen += owner_stole;
            for (p, n) in by.iter().enumerate() {
                assert!(*n > 0, "processor {p} did no work for this owner: {by:?}");
            }
        }
        stop.store(true, Ordering::Relaxed);
        for p in processors {
            p.join().unwrap();
        }
        let total: usize = processed.iter().map(|n| n.load(Ordering::Relaxed)).sum();
        assert_eq!((total + stolen) as u64, 2 * ITEMS, "every item processed exactly once");
    }

    #[test]
    fn owner_stops_accepting_when_a_processor_is_stalled() {
        let fabric = Fabric::<Seq>::new(2, 2);
        let mut owner = Owner::new(fabric.clone(), 0, 1024);
        let mut sent = 0;
        // Processor 1 never runs: after `depth` batches to it, the owner is no longer ready.
        for _ in 0..10 {
            if !owner.ready() {
                owner.flush();
                continue;
            }
            for _ in 0..BATCH {
                owner.dispatch(Seq { n: sent, processed_by: 0 }, 1);
                sent += 1;
            }
            owner.flush();
        }
        assert!(!owner.ready());
        assert_eq!(sent, 3 * BATCH as u64, "2 outstanding + 1 pending batch");
        assert_eq!(owner.collect(|_| {}), 0);
        // Once it runs, everything comes back in order.
        let mut expect = 0;
        for _ in 0..2 {
            fabric.process(1, |_, _| {});
            owner.collect(|item| {
                assert_eq!(item.n, expect);
                expect += 1;
            });
            owner.flush();
        }
        assert_eq!(expect, sent);
        assert!(owner.ready());
    }

    #[test]
    fn owner_steals_from_a_stalled_processor_in_order() {
        let fabric = Fabric::<Seq>::new(3, 2);
        let mut owner = Owner::new(fabric.clone(), 0, 1024).steal_after(Duration::ZERO);
        let mut next = 0;
        let mut expect = 0;
        // Processors 1 and 2 never run: the owner must finish their work itself, in order.
        while expect < 1000 {
            if next < 1000 && owner.ready() {
                for _ in 0..BATCH.min(1000 - next as usize) {
                    owner.dispatch(Seq { n: next, processed_by: u8::MAX }, (next % 3) as usize);
                    next += 1;
                }
            }
            owner.flush();
            fabric.process(0, |_, items| items.iter_mut().for_each(|i| i.processed_by = 0));
            let emitted = owner.collect(|item| {
                assert_eq!(item.n, expect);
                let by = if item.n % 3 == 0 { 0 } else { 9 };
                assert_eq!(item.processed_by, by, "item {} processed by {}", item.n, item.processed_by);
                expect += 1;
            });
            if emitted == 0 {
                assert!(
                    owner.steal(|items| items.iter_mut().for_each(|i| i.processed_by = 9)) > 0
                        || owner.in_flight() == 0
                );
            }
        }
    }

    fn frame_with_payload(frame: &mut [u8; 64], id: u64) {
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&50u16.to_be_bytes());
        frame[23] = 17;
        frame[38..40].copy_from_slice(&30u16.to_be_bytes());
        frame[42..50].copy_from_slice(&id.to_le_bytes());
    }

    #[test]
    fn processor_choice_spreads_sequential_ids_and_keeps_non_udp_home() {
        let mut counts = [0usize; 4];
        for id in 0..4000u64 {
            let mut frame = [0u8; 64];
            frame_with_payload(&mut frame, id);
            counts[processor_for(&frame, 0, 4)] += 1;
        }
        for n in counts {
            assert!((800..1200).contains(&n), "uneven spread {counts:?}");
        }
        assert_eq!(processor_for(&[0u8; 20], 2, 4), 2);
    }
}
