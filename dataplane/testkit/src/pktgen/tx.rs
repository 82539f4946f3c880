//! The generator: stamps prebuilt frames into its UMEM and queues them on the TX ring, paced.
//!
//! Packet `i` belongs to flow `i % flows` with sequence `i / flows` in that flow, so every flow
//! gets the same share (±1) and the receiver can tell loss from reordering per flow. Each frame's
//! TX time is read from CLOCK_MONOTONIC while it is written, right before its batch is queued:
//! latency therefore includes the time the kernel takes to pick the batch up (the wakeup in
//! copy mode), as it would for a real sender.
use super::frame::Template;
use super::pace::Pacer;
use super::xsk::Xsk;
use super::{Config, mono_ns};
use anyhow::Result;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use xsk_rs::umem::frame::FrameDesc;

/// Frames written and queued per TX ring call.
pub const BATCH: usize = 32;

/// What the generator did.
#[derive(Clone, Debug, Default)]
pub struct TxStats {
    /// Frames the TX ring took.
    pub queued: u64,
    /// Frames the kernel completed (sent, or dropped by the driver: AF_XDP does not tell them
    /// apart). Equal to `queued` unless draining timed out.
    pub completed: u64,
    /// Frames per flow (as queued).
    pub per_flow: Vec<u64>,
    /// CLOCK_MONOTONIC of the first and last queued frame.
    pub first_ns: u64,
    pub last_ns: u64,
    pub zero_copy: bool,
    /// Times the generator found no free frame or no TX ring room (the ring, not the pacer,
    /// limited it).
    pub ring_stalls: u64,
}

/// Sends `config`'s traffic on `config.tx_iface` from the calling thread (which must be in the
/// interface's namespace) until the count or the duration is reached, or `stop` is set.
pub fn generate(config: &Config, stop: &AtomicBool) -> Result<TxStats> {
    let templates: Vec<Template> =
        config.flow_addrs().iter().enumerate().map(|(i, a)| Template::new(a, i as u16, config.size)).collect();
    let flows = templates.len() as u64;
    let mut xsk = Xsk::open(&config.tx_iface, config.tx_queue, config.mode)?;
    set_timer_slack_ns(1_000);
    let cap = config.packet_cap();
    // Batches worth ~100 µs of traffic at the configured rate: the thread sleeps between them
    // instead of spinning on a core it shares with the receiver and the kernel.
    let min_batch = config.rate.map_or(BATCH, |r| (r / 10_000).clamp(1, BATCH as u64) as usize);
    let start = mono_ns();
    let deadline = start + config.duration.as_nanos() as u64;
    let mut pacer = Pacer::new(config.rate, BATCH as u32, start);
    let mut stats = TxStats { per_flow: vec![0; flows as usize], zero_copy: xsk.zero_copy, ..Default::default() };
    let mut batch: Vec<FrameDesc> = Vec::with_capacity(BATCH);
    let mut scratch = vec![FrameDesc::default(); BATCH * 2];
    let mut next = 0u64;
    loop {
        reclaim(&mut xsk, &mut scratch, &mut stats);
        let now = mono_ns();
        if next >= cap || now >= deadline || stop.load(Ordering::Relaxed) {
            break;
        }
        let room = xsk.tx.nb_free(BATCH as u32) as usize;
        let want = BATCH.min((cap - next) as usize).min(xsk.free.len()).min(room);
        if want == 0 {
            stats.ring_stalls += 1;
            if xsk.tx.needs_wakeup() {
                let _ = xsk.tx.wakeup();
            }
            std::thread::yield_now();
            continue;
        }
        let granted = pacer.available(now, want);
        if granted < want.min(min_batch) {
            let wait = pacer.wait_ns(want.min(min_batch) as u32).min(deadline - now);
            std::thread::sleep(Duration::from_nanos(wait));
            continue;
        }
        for _ in 0..granted {
            let mut desc = xsk.free.pop().expect("counted above");
            let template = &templates[(next % flows) as usize];
            // SAFETY: the frame came from the free list, so userspace owns it.
            let mut data = unsafe { xsk.umem.data_mut(&mut desc) };
            let mut cursor = data.cursor();
            cursor.set_pos(0);
            cursor.write_all(&template.bytes)?;
            template.stamp(data.contents_mut(), (next / flows) as u32, mono_ns());
            stats.per_flow[(next % flows) as usize] += 1;
            batch.push(desc);
            next += 1;
        }
        // SAFETY: the frames are owned by userspace, written, and belong to this UMEM; the ring
        // had room for all of them (`room`), so it takes the whole batch.
        let produced = unsafe { xsk.tx.produce(&batch) };
        debug_assert_eq!(produced, batch.len());
        if stats.queued == 0 {
            stats.first_ns = now;
        }
        stats.queued += produced as u64;
        stats.last_ns = mono_ns();
        pacer.spend(produced);
        batch.clear();
        if xsk.tx.needs_wakeup() {
            let _ = xsk.tx.wakeup();
        }
    }
    // Let the kernel finish what is queued, so that `completed` counts every frame.
    let drain_until = mono_ns() + 1_000_000_000;
    while stats.completed < stats.queued && mono_ns() < drain_until {
        if xsk.tx.needs_wakeup() {
            let _ = xsk.tx.wakeup();
        }
        reclaim(&mut xsk, &mut scratch, &mut stats);
        std::thread::sleep(Duration::from_micros(50));
    }
    Ok(stats)
}

/// Moves completed frames back to the free list.
fn reclaim(xsk: &mut Xsk, scratch: &mut [FrameDesc], stats: &mut TxStats) {
    // SAFETY: completed frames return to userspace ownership.
    let n = unsafe { xsk.comp.consume(scratch) };
    xsk.free.extend_from_slice(&scratch[..n]);
    stats.completed += n as u64;
}

/// Lets short sleeps between paced batches end close to when they were asked to (the default
/// timer slack of 50 µs would be half a batch interval at 100 kpps).
fn set_timer_slack_ns(ns: u64) {
    // SAFETY: PR_SET_TIMERSLACK only changes this thread's timer slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) };
}
