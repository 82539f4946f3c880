//! `cargo xtask bench handoff`: one flow's packets spread over cores by the hand-off, with real
//! per-packet work (ZeroTier armor + dearmor), against doing the same work inline on one core.
//!
//! No network: an owner thread plays the RX queue (one flow, arrival order = sequence number),
//! dispatches packet buffers over the fabric exactly as a worker does, processes its share,
//! collects in order and checks the order. This isolates what the hand-off buys for CPU-bound
//! packet work (the 2-core machine cannot show it through `bench io`, whose traffic generator
//! needs one of the cores).
use crate::plot::{BarSeries, Bars, Figure, Panel, distinct};
use crate::report;
use anyhow::{Result, bail, ensure};
use serde_json::json;
use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use ztplane::handoff::{BATCH, Fabric, Owner};
use ztplane_crypto::{CipherSuite, PeerKey, armor, dearmor};

const RUN: Duration = Duration::from_millis(1500);
const POOL: usize = 4096;
const SLOT: usize = 2048;

/// Packet buffers owned by whoever holds their index (like UMEM frames).
struct Pool {
    slots: Vec<UnsafeCell<[u8; SLOT]>>,
}

// SAFETY: an index is held by exactly one thread at a time (it travels through the fabric).
unsafe impl Sync for Pool {}

impl Pool {
    #[allow(clippy::mut_from_ref)]
    unsafe fn slot(&self, index: usize) -> &mut [u8; SLOT] {
        unsafe { &mut *self.slots[index].get() }
    }
}

#[derive(Clone, Copy)]
struct Item {
    seq: u64,
    slot: u32,
}

/// The per-packet work: what a worker does to a ZeroTier packet it forwards (open, re-seal).
fn work(key: &PeerKey, suite: CipherSuite, packet: &mut [u8]) -> bool {
    dearmor(key, packet).is_ok() && armor(key, packet, suite).is_ok()
}

pub fn run(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("bench handoff takes no options");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let key = Arc::new(PeerKey::from_bytes([7u8; 48]));
    let mut records = Vec::new();
    println!(
        "{:<10} {:>6} {:>6} {:>8} {:>10} {:>9} {:>8}",
        "mode", "suite", "bytes", "workers", "Mpps", "Gbit/s", "speedup"
    );
    for (suite, suite_no) in [(CipherSuite::Salsa2012Poly1305, 1), (CipherSuite::AesGmacSiv, 3)] {
        for bytes in [1400usize] {
            let (inline, _) = measure(&key, suite, bytes, 0)?;
            let mut rows = vec![("inline", 1, inline, 0)];
            for workers in 1..=cores.min(8) {
                let (pps, reordered) = measure(&key, suite, bytes, workers)?;
                rows.push(("handoff", workers, pps, reordered));
            }
            for (mode, workers, pps, reordered) in rows {
                let gbps = pps * bytes as f64 * 8.0 / 1e9;
                println!(
                    "{mode:<10} {suite_no:>6} {bytes:>6} {workers:>8} {:>10.3} {gbps:>9.2} {:>7.2}x",
                    pps / 1e6,
                    pps / inline
                );
                records.push(json!({"mode": mode, "suite": suite_no, "bytes": bytes, "workers": workers,
                    "mpps": pps / 1e6, "gbps": gbps, "baseline_mpps": inline / 1e6, "speedup": pps / inline,
                    "reordered": reordered}));
                ensure!(reordered == 0, "{mode} with {workers} workers reordered {reordered} packets of the flow");
            }
        }
    }
    let path = report::write("handoff", &records)?;
    println!("(one flow; inline = one core does the work in arrival order; every handoff run checked for order)");
    println!("wrote {}", path.display());
    let plot = report::plot("handoff", &records, figure)?;
    println!("plot: {}", plot.display());
    Ok(())
}

/// The chart of `bench handoff`: Mpps of one flow per suite and packet size, one core inline beside the
/// hand-off over 1, 2, ... workers.
pub fn figure(records: &[serde_json::Value]) -> Result<Figure> {
    let runs = distinct(records.iter().filter_map(|r| Some((r["mode"].as_str()?, r["workers"].as_u64()?))));
    let cases = distinct(records.iter().filter_map(|r| Some((r["suite"].as_u64()?, r["bytes"].as_u64()?))));
    ensure!(!runs.is_empty() && !cases.is_empty(), "no handoff records");
    let series = runs
        .iter()
        .map(|&(mode, workers)| {
            let values = cases
                .iter()
                .map(|&(suite, bytes)| {
                    records
                        .iter()
                        .find(|r| {
                            r["mode"] == mode && r["workers"] == workers && r["suite"] == suite && r["bytes"] == bytes
                        })
                        .and_then(|r| r["mpps"].as_f64())
                })
                .collect();
            let name = match (mode, workers) {
                ("inline", _) => "inline on one core".to_string(),
                (_, 1) => "hand-off, 1 worker".to_string(),
                (_, n) => format!("hand-off, {n} workers"),
            };
            BarSeries { name, baseline: mode == "inline", values }
        })
        .collect();
    let suite_name = |suite| match suite {
        1 => "suite 1 (Salsa20/12-Poly1305)",
        3 => "suite 3 (AES-GMAC-SIV)",
        _ => "suite ?",
    };
    Ok(Figure {
        title: "bench handoff: one flow, dearmor + armor per packet, spread over cores vs inline".into(),
        notes: vec!["every hand-off run checked for packet order; ×N: speed-up over inline (higher is better)".into()],
        columns: 1,
        panels: vec![Panel::Bars(Bars {
            title: "packets processed per second".into(),
            x_label: "cipher suite, packet bytes".into(),
            y_label: "Mpps".into(),
            categories: cases.iter().map(|&(suite, bytes)| format!("{}, {bytes} B", suite_name(suite))).collect(),
            series,
            log_y: false,
            y_max: None,
            ratio_to_baseline: true,
        })],
    })
}

/// Packets per second through `workers` (0 = inline on the owner, no fabric), and how many
/// left out of arrival order.
fn measure(key: &Arc<PeerKey>, suite: CipherSuite, bytes: usize, workers: usize) -> Result<(f64, u64)> {
    let pool = Arc::new(Pool { slots: (0..POOL).map(|_| UnsafeCell::new([0u8; SLOT])).collect() });
    // Every slot starts as a sealed packet of `bytes`.
    let mut template = vec![0u8; bytes];
    template[8..13].copy_from_slice(&[1, 2, 3, 4, 5]);
    template[13..18].copy_from_slice(&[6, 7, 8, 9, 10]);
    template[27] = 0x06;
    armor(key, &mut template, suite)?;
    for i in 0..POOL {
        unsafe { pool.slot(i)[..bytes].copy_from_slice(&template) };
    }
    let start = Instant::now();
    if workers == 0 {
        let mut n = 0u64;
        while start.elapsed() < RUN {
            for _ in 0..BATCH {
                let slot = unsafe { pool.slot((n as usize) % POOL) };
                ensure!(work(key, suite, &mut slot[..bytes]), "packet failed to open");
                n += 1;
            }
        }
        return Ok((n as f64 / start.elapsed().as_secs_f64(), 0));
    }

    let fabric = Fabric::<Item>::new(workers, 8);
    let stop = Arc::new(AtomicBool::new(false));
    let helpers: Vec<_> = (1..workers)
        .map(|me| {
            let (fabric, stop, pool, key) = (fabric.clone(), stop.clone(), pool.clone(), key.clone());
            std::thread::spawn(move || {
                let _ = core_affinity::set_for_current(core_affinity::CoreId { id: me });
                let mut ok = true;
                while !stop.load(Ordering::Relaxed) {
                    let n = fabric.process(me, |_, items| {
                        for item in items.iter() {
                            ok &= work(&key, suite, unsafe { &mut pool.slot(item.slot as usize)[..bytes] });
                        }
                    });
                    if n == 0 {
                        std::hint::spin_loop();
                    }
                }
                ok
            })
        })
        .collect();
    let _ = core_affinity::set_for_current(core_affinity::CoreId { id: 0 });
    let mut owner = Owner::new(fabric.clone(), 0, POOL);
    let mut free: Vec<u32> = (0..POOL as u32).collect();
    let (mut next, mut expect, mut ok, mut reordered) = (0u64, 0u64, true, 0u64);
    let process_own = |items: &mut [Item]| {
        items.iter().all(|item| work(key, suite, unsafe { &mut pool.slot(item.slot as usize)[..bytes] }))
    };
    while start.elapsed() < RUN {
        if owner.ready() && free.len() >= BATCH {
            for _ in 0..BATCH {
                let slot = free.pop().expect("checked");
                // Spread by sequence number, as `processor_for` spreads by packet ID.
                let processor = ((next.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize * workers) >> 32;
                owner.dispatch(Item { seq: next, slot }, processor);
                next += 1;
            }
        }
        owner.flush();
        fabric.process(0, |_, items| ok &= process_own(items));
        let emitted = owner.collect(|item| {
            reordered += u64::from(item.seq != expect);
            expect = item.seq + 1;
            free.push(item.slot);
        });
        if emitted == 0 {
            owner.steal(|items| ok &= process_own(items));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for helper in helpers {
        ok &= helper.join().map_err(|_| anyhow::anyhow!("processor panicked"))?;
    }
    ensure!(ok, "a packet failed to open");
    Ok((expect as f64 / elapsed, reordered))
}
