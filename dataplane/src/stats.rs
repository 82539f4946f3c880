//! Counters the workers publish while they run: relaxed atomics, written once per burst, read by
//! the main thread for rate lines and the final summary.
use std::sync::atomic::{AtomicU64, Ordering};

/// One worker's counters.
#[derive(Default, Debug)]
pub struct WorkerStats {
    /// Frames received on this worker's sockets.
    pub rx: AtomicU64,
    /// Frames transmitted from this worker's sockets.
    pub tx: AtomicU64,
    /// Frames this worker processed for any owner (including itself).
    pub processed: AtomicU64,
    /// Frames of its own this worker processed because their processor had not started on them.
    pub stolen: AtomicU64,
    /// Frames dropped (and returned to the free list), e.g. malformed after steering.
    pub dropped: AtomicU64,
    /// Frames not accounted for at exit (must stay 0).
    pub leaked: AtomicU64,
    /// Frames counted in two places at exit (double use; must stay 0).
    pub surplus: AtomicU64,
}

/// One socket's counters.
#[derive(Default, Debug)]
pub struct QueueStats {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    /// Kernel drop counters of the socket, sampled when the worker exits.
    pub kernel_rx_dropped: AtomicU64,
    pub kernel_rx_ring_full: AtomicU64,
    pub kernel_fill_ring_empty: AtomicU64,
}

pub fn add(counter: &AtomicU64, n: usize) {
    if n > 0 {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
