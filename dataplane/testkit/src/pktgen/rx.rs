//! The receiver: AF_XDP sockets on the receiving interface's queues, fed by an XDP program that
//! redirects the generator's UDP port to them, counting per flow and timing every frame.
//!
//! Latency is the RX time minus the probe's TX time, both CLOCK_MONOTONIC, so generator and
//! receiver must run on the same machine (namespaces share the clock). The RX time is read once
//! per batch taken from the ring, right after taking it.
use super::frame;
use super::xsk::{Mode, Xsk};
use super::{Control, mono_ns};
use anyhow::Result;
use hdrhistogram::Histogram;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::Duration;
use xsk_rs::umem::frame::FrameDesc;

/// Sequences remembered behind the highest one seen, per flow, to tell a late frame from a
/// duplicate. A frame later than that is counted as reordered without the duplicate check.
pub const WINDOW: u32 = 128;

/// Loss and order bookkeeping of one flow.
#[derive(Clone, Debug, Default)]
pub struct SeqTracker {
    /// Highest sequence seen, and a bitmap of the `WINDOW` sequences up to it (bit i: max − i).
    max: Option<u32>,
    seen: u128,
    pub received: u64,
    pub bytes: u64,
    /// Frames that arrived after a higher sequence of the same flow.
    pub reordered: u64,
    pub duplicates: u64,
}

impl SeqTracker {
    pub fn record(&mut self, seq: u32, len: usize) {
        self.received += 1;
        self.bytes += len as u64;
        match self.max {
            None => {
                self.max = Some(seq);
                self.seen = 1;
            }
            Some(max) if seq > max => {
                let ahead = seq - max;
                self.seen = if ahead >= WINDOW { 1 } else { (self.seen << ahead) | 1 };
                self.max = Some(seq);
            }
            Some(max) => {
                let behind = max - seq;
                if behind < WINDOW && self.seen & (1u128 << behind) != 0 {
                    self.duplicates += 1;
                } else {
                    if behind < WINDOW {
                        self.seen |= 1u128 << behind;
                    }
                    self.reordered += 1;
                }
            }
        }
    }

    /// Distinct frames received.
    pub fn unique(&self) -> u64 {
        self.received - self.duplicates
    }
}

/// What the receiver saw.
#[derive(Debug)]
pub struct RxStats {
    pub per_flow: Vec<SeqTracker>,
    /// One-way latency in ns.
    pub latency: Histogram<u64>,
    /// Frames on the socket that were not the generator's (or of a flow out of range).
    pub foreign: u64,
    /// Frames whose IPv4 or UDP checksum did not hold (only counted with `verify`).
    pub bad_checksums: u64,
    /// Frame lengths seen (buffer bytes, FCS excluded); `min_len` is `usize::MAX` if none.
    pub min_len: usize,
    pub max_len: usize,
    /// CLOCK_MONOTONIC of the first and last of our frames.
    pub first_ns: u64,
    pub last_ns: u64,
    /// Kernel drops summed over the sockets: (dropped, RX ring full, fill ring empty); `dropped`
    /// includes the fill-ring-empty events.
    pub kernel_drops: (u64, u64, u64),
    pub zero_copy: bool,
}

/// Sockets on every receiving queue, with their fill rings stocked.
pub struct Receiver {
    queues: Vec<(u32, Xsk)>,
    flows: usize,
    verify: bool,
}

impl Receiver {
    /// Opens one socket per queue of `ifname` in the calling thread's namespace. Nothing arrives
    /// until an XDP program redirects to [`Receiver::sockets`].
    pub fn open(ifname: &str, queues: &[u32], mode: Mode, flows: u16, verify: bool) -> Result<Receiver> {
        let mut opened = Vec::new();
        for &queue in queues {
            let mut xsk = Xsk::open(ifname, queue, mode)?;
            xsk.stock_fill();
            opened.push((queue, xsk));
        }
        Ok(Receiver { queues: opened, flows: usize::from(flows), verify })
    }

    /// (queue, socket fd) of each socket, to register in the steering program's XSKMAP.
    pub fn sockets(&self) -> Vec<(u32, RawFd)> {
        self.queues.iter().map(|(q, x)| (*q, x.rx.fd().as_raw_fd())).collect()
    }

    /// Receives until the generator is done (`control.sent` set) and either every frame has
    /// arrived or `grace` has passed since; or until `control.abort`.
    pub fn run(&mut self, control: &Control, grace: Duration) -> Result<RxStats> {
        let mut stats = RxStats {
            per_flow: vec![SeqTracker::default(); self.flows],
            // 1 ns .. 60 s at 3 significant digits.
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 3)?,
            foreign: 0,
            bad_checksums: 0,
            min_len: usize::MAX,
            max_len: 0,
            first_ns: 0,
            last_ns: 0,
            kernel_drops: (0, 0, 0),
            zero_copy: self.queues.iter().all(|(_, x)| x.zero_copy),
        };
        let mut scratch = vec![FrameDesc::default(); 64];
        let mut ours = 0u64;
        let mut done_at: Option<u64> = None;
        loop {
            let mut got = 0;
            for (_, xsk) in &mut self.queues {
                got += receive(xsk, &mut scratch, self.verify, &mut stats, &mut ours);
            }
            if got > 0 {
                continue;
            }
            if control.abort.load(Ordering::Relaxed) {
                break;
            }
            let sent = control.sent.load(Ordering::Acquire);
            if sent != u64::MAX {
                let now = mono_ns();
                let since = *done_at.get_or_insert(now);
                if ours >= sent || now - since >= grace.as_nanos() as u64 {
                    break;
                }
            }
            self.wait(1);
        }
        for (_, xsk) in &self.queues {
            let (d, f, e) = xsk.rx_drops();
            stats.kernel_drops = (stats.kernel_drops.0 + d, stats.kernel_drops.1 + f, stats.kernel_drops.2 + e);
        }
        Ok(stats)
    }

    /// Sleeps in poll(2) until a socket has frames or `timeout_ms` passes: an idle receiver
    /// leaves the (shared) cores to the generator and the kernel, and wakes on arrival.
    fn wait(&mut self, timeout_ms: i32) {
        let mut fds: Vec<libc::pollfd> = self
            .queues
            .iter()
            .map(|(_, x)| libc::pollfd { fd: x.rx.fd().as_raw_fd(), events: libc::POLLIN, revents: 0 })
            .collect();
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    }
}

/// Takes a batch from one socket, accounts for it and gives the frames back to the fill ring.
fn receive(xsk: &mut Xsk, scratch: &mut [FrameDesc], verify: bool, stats: &mut RxStats, ours: &mut u64) -> usize {
    // SAFETY: received frames are owned by userspace until produced to the fill ring again.
    let n = unsafe { xsk.rx.consume(scratch) };
    if n == 0 {
        if xsk.fill.needs_wakeup() {
            let _ = xsk.fill.wakeup(xsk.rx.fd_mut(), 0);
        }
        return 0;
    }
    let now = mono_ns();
    for desc in &scratch[..n] {
        // SAFETY: as above; the frame is only read.
        let data = unsafe { xsk.umem.data(desc) };
        let bytes = data.contents();
        let probe = frame::parse(bytes).filter(|p| usize::from(p.flow) < stats.per_flow.len());
        let Some(probe) = probe else {
            stats.foreign += 1;
            continue;
        };
        if verify && !frame::checksums_ok(bytes) {
            stats.bad_checksums += 1;
        }
        stats.min_len = stats.min_len.min(bytes.len());
        stats.max_len = stats.max_len.max(bytes.len());
        stats.per_flow[usize::from(probe.flow)].record(probe.seq, bytes.len());
        stats.latency.saturating_record(now.saturating_sub(probe.tx_ns).max(1));
        if *ours == 0 {
            stats.first_ns = now;
        }
        stats.last_ns = now;
        *ours += 1;
    }
    // The fill ring has room: it held these frames a moment ago.
    // SAFETY: the frames are owned by userspace and belong to this UMEM.
    let produced = unsafe { xsk.fill.produce(&scratch[..n]) };
    debug_assert_eq!(produced, n);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(seqs: &[u32]) -> SeqTracker {
        let mut t = SeqTracker::default();
        for &s in seqs {
            t.record(s, 60);
        }
        t
    }

    #[test]
    fn in_order_is_neither_reordered_nor_duplicated() {
        let t = track(&[0, 1, 2, 3, 4]);
        assert_eq!((t.received, t.unique(), t.reordered, t.duplicates, t.bytes), (5, 5, 0, 0, 300));
    }

    #[test]
    fn a_gap_is_loss_not_reordering() {
        let t = track(&[0, 1, 3, 4]);
        assert_eq!((t.unique(), t.reordered, t.duplicates), (4, 0, 0));
    }

    #[test]
    fn late_frames_and_duplicates_are_told_apart() {
        let t = track(&[0, 2, 1, 1, 2, 5, 3]);
        assert_eq!((t.received, t.reordered, t.duplicates, t.unique()), (7, 2, 2, 5));
    }

    #[test]
    fn a_frame_later_than_the_window_counts_as_reordered() {
        let t = track(&[0, 1000, 1, 1]);
        // Both 1s are beyond the window behind 1000: counted as reordered, not as duplicates.
        assert_eq!((t.reordered, t.duplicates), (2, 0));
        let t = track(&[0, 100, 0]);
        assert_eq!((t.reordered, t.duplicates), (0, 1), "seq 0 is within the window behind 100");
    }
}
