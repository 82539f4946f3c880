//! A worker: one thread pinned to one core, run-to-completion over batches.
//!
//! Each worker owns a UMEM and the sockets (ports) bound to it. One loop iteration:
//! reclaim TX completions → refill fill rings → receive a burst per port and dispatch it over
//! the hand-off fabric → process what other owners (and itself) dispatched to it → collect its
//! own processed frames in arrival order → transmit them on their egress ports.
//!
//! Frame accounting: every frame of the UMEM is at all times in exactly one of: the free list,
//! a fill ring (`in_fill`), in the hand-off (`Owner::in_flight`), the TX backlog, or a TX ring
//! (`in_tx`). At exit the sum is checked against the UMEM size and a shortfall is counted as
//! leaked (it must be 0).
use crate::handoff::{BATCH, Fabric, Owner, processor_for};
use crate::port::Port;
use crate::stats::{self, QueueStats, WorkerStats};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use xsk_rs::umem::Umem;
use xsk_rs::umem::frame::FrameDesc;

/// A frame descriptor in flight between workers, with the port it must leave on.
#[derive(Clone, Copy)]
pub struct Frame {
    pub desc: FrameDesc,
    /// Index of the egress port within the owner's ports.
    pub egress: u16,
    /// Set by the processor: transmit (true) or drop (false).
    pub forward: bool,
}

/// What a processor does with a frame of `owner`'s UMEM. Returns whether to forward it.
pub type ProcessFn = dyn Fn(&[u8]) -> bool + Send + Sync;

/// Shared between all workers.
pub struct Shared {
    pub fabric: Arc<Fabric<Frame>>,
    /// Every worker's UMEM, indexed by worker, so processors can read frames of any owner.
    pub umems: Vec<Umem>,
    pub stop: Arc<AtomicBool>,
    /// Workers whose own frames are all drained after `stop`.
    pub drained: AtomicUsize,
    pub process: Box<ProcessFn>,
}

/// A worker's own state.
pub struct Worker {
    pub index: usize,
    pub core: Option<usize>,
    pub ports: Vec<Port>,
    /// For each port, the port its frames leave on.
    pub egress_of: Vec<u16>,
    pub free: Vec<FrameDesc>,
    pub total_frames: usize,
    /// Size of the sockets' rings (a fill ring holds at most this many frames).
    pub ring_size: usize,
    pub stats: Arc<WorkerStats>,
    pub queue_stats: Vec<Arc<QueueStats>>,
}

/// How long after `stop` a worker keeps draining before it gives up on frames in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

impl Worker {
    pub fn run(mut self, shared: Arc<Shared>) {
        pin(self.index, self.core);
        let workers = shared.fabric.workers();
        let mut owner = Owner::new(shared.fabric.clone(), self.index, self.total_frames);
        let mut scratch: Vec<FrameDesc> = self.free[..BATCH.min(self.free.len())].to_vec();
        let mut backlog: Vec<Vec<FrameDesc>> = vec![Vec::with_capacity(self.total_frames); self.ports.len()];
        // Split the frames: half for the fill rings (at most a ring each), the rest in flight.
        let per_port = (self.total_frames / 2 / self.ports.len().max(1)).clamp(1, self.ring_size);
        for port in &mut self.ports {
            port.fill_target = per_port;
        }
        let mut idle_spins = 0u32;
        let mut first_port = 0usize;
        let mut drain = Drain::default();

        loop {
            let stopping = shared.stop.load(Ordering::Relaxed);
            let mut work = 0usize;

            for port in &mut self.ports {
                work += port.reclaim(&mut self.free, &mut scratch);
                if !stopping {
                    port.refill(&mut self.free);
                }
            }

            if !stopping {
                // Start with a different port each time: under back-pressure the first port
                // visited would otherwise take every slot and starve the reverse direction.
                first_port = (first_port + 1) % self.ports.len().max(1);
                for i in 0..self.ports.len() {
                    let p = (first_port + i) % self.ports.len();
                    let port = &mut self.ports[p];
                    if !owner.ready() {
                        break;
                    }
                    let n = port.receive(&mut scratch[..BATCH]);
                    if n == 0 {
                        continue;
                    }
                    work += n;
                    stats::add(&self.stats.rx, n);
                    stats::add(&self.queue_stats[p].rx, n);
                    let umem = &shared.umems[self.index];
                    for desc in &scratch[..n] {
                        // SAFETY: a received frame is ours until we transmit or refill it.
                        let data = unsafe { umem.data(desc) };
                        let processor = processor_for(data.contents(), self.index, workers);
                        owner.dispatch(Frame { desc: *desc, egress: self.egress_of[p], forward: false }, processor);
                    }
                    owner.flush();
                }
            }
            owner.flush();

            let processed = shared.fabric.process(self.index, |from, frames| {
                let umem = &shared.umems[from];
                for frame in frames.iter_mut() {
                    // SAFETY: the owner handed this frame to us; it touches it again only
                    // after we return it.
                    let data = unsafe { umem.data(&frame.desc) };
                    frame.forward = (shared.process)(data.contents());
                }
            });
            stats::add(&self.stats.processed, processed);
            work += processed;

            let mut dropped = 0;
            let mut emit = |frame: Frame| {
                if frame.forward {
                    backlog[frame.egress as usize].push(frame.desc);
                } else {
                    self.free.push(frame.desc);
                    dropped += 1;
                }
            };
            let mut collected = owner.collect(&mut emit);
            if collected == 0 && owner.in_flight() > 0 {
                // The next frame's processor has not started on it: do it here (see handoff).
                let umem = &shared.umems[self.index];
                let stolen = owner.steal(|frames| {
                    for frame in frames.iter_mut() {
                        // SAFETY: our own frame, not yet claimed by its processor.
                        let data = unsafe { umem.data(&frame.desc) };
                        frame.forward = (shared.process)(data.contents());
                    }
                });
                stats::add(&self.stats.stolen, stolen);
                if stolen > 0 {
                    collected = owner.collect(&mut emit);
                }
            }
            work += collected;
            stats::add(&self.stats.dropped, dropped);

            work += transmit_backlog(&mut self.ports, &mut backlog, |p, sent| {
                stats::add(&self.stats.tx, sent);
                stats::add(&self.queue_stats[p].tx, sent);
            });

            if stopping && drain.done(&owner, &backlog, &self.ports, &shared.drained, workers) {
                break;
            }

            if work == 0 {
                idle_spins += 1;
                // Spin briefly, then back off so an idle dataplane does not burn its cores.
                if idle_spins > 256 {
                    std::thread::sleep(Duration::from_micros(if idle_spins > 4096 { 200 } else { 20 }));
                } else {
                    std::hint::spin_loop();
                }
            } else {
                idle_spins = 0;
            }
        }

        for (port, queue_stats) in self.ports.iter().zip(&self.queue_stats) {
            let (dropped, ring_full, fill_empty) = port.kernel_drops();
            queue_stats.kernel_rx_dropped.store(dropped, Ordering::Relaxed);
            queue_stats.kernel_rx_ring_full.store(ring_full, Ordering::Relaxed);
            queue_stats.kernel_fill_ring_empty.store(fill_empty, Ordering::Relaxed);
        }
        check_frames(self.index, self.total_frames, &self.free, &self.ports, &backlog, &owner, &self.stats);
    }
}

/// Pins the calling worker thread to `core` (a warning if it cannot).
pub(crate) fn pin(index: usize, core: Option<usize>) {
    if let Some(core) = core
        && !core_affinity::set_for_current(core_affinity::CoreId { id: core })
    {
        log::warn!("worker {index}: could not pin to core {core}");
    }
}

/// Offers every port's backlog to its TX ring; `on_sent(port, n)` counts. Returns frames sent.
pub(crate) fn transmit_backlog(
    ports: &mut [Port],
    backlog: &mut [Vec<FrameDesc>],
    mut on_sent: impl FnMut(usize, usize),
) -> usize {
    let mut total = 0;
    for (p, port) in ports.iter_mut().enumerate() {
        let pending = &mut backlog[p];
        if pending.is_empty() {
            continue;
        }
        let sent = port.transmit(pending);
        pending.drain(..sent);
        total += sent;
        on_sent(p, sent);
    }
    total
}

/// The stop protocol of a worker: drain its own frames, then keep processing for the other
/// owners until all have drained (or give up after twice [`DRAIN_TIMEOUT`]).
#[derive(Default)]
pub(crate) struct Drain {
    stop_seen: Option<Instant>,
    drained: bool,
}

impl Drain {
    /// Call on every iteration after stop; true when the worker may exit.
    pub(crate) fn done<T: Copy>(
        &mut self,
        owner: &Owner<T>,
        backlog: &[Vec<FrameDesc>],
        ports: &[Port],
        drained: &AtomicUsize,
        workers: usize,
    ) -> bool {
        let since = *self.stop_seen.get_or_insert_with(Instant::now);
        let mine_done =
            owner.in_flight() == 0 && backlog.iter().all(Vec::is_empty) && ports.iter().all(|p| p.in_tx == 0);
        let timed_out = since.elapsed() > DRAIN_TIMEOUT;
        if (mine_done || timed_out) && !self.drained {
            self.drained = true;
            drained.fetch_add(1, Ordering::AcqRel);
        }
        (self.drained && drained.load(Ordering::Acquire) >= workers) || since.elapsed() > DRAIN_TIMEOUT * 2
    }
}

/// Checks at exit that every frame of the UMEM is in exactly one place; a shortfall is counted
/// as leaked, an excess (a frame in two places) as surplus. Both must be 0.
pub(crate) fn check_frames<T: Copy>(
    index: usize,
    total: usize,
    free: &[FrameDesc],
    ports: &[Port],
    backlog: &[Vec<FrameDesc>],
    owner: &Owner<T>,
    stats: &WorkerStats,
) {
    let in_fill: usize = ports.iter().map(|p| p.in_fill).sum();
    let in_tx: usize = ports.iter().map(|p| p.in_tx).sum();
    let in_backlog: usize = backlog.iter().map(Vec::len).sum();
    let accounted = free.len() + in_fill + in_tx + in_backlog + owner.in_flight();
    stats::add(&stats.leaked, total.saturating_sub(accounted));
    stats::add(&stats.surplus, accounted.saturating_sub(total));
    if accounted != total {
        log::error!(
            "worker {index}: frame accounting off: {accounted} of {total} (free {}, fill {in_fill}, tx {in_tx}, backlog {in_backlog}, hand-off {})",
            free.len(),
            owner.in_flight()
        );
    } else {
        log::debug!("worker {index}: all {total} frames accounted for");
    }
}
