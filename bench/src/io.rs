//! `cargo xtask bench io`: packets per second through `ztplane fwd` beside the Linux kernel
//! bridging the same traffic between the same namespaces, in the same run.
//!
//! Each case gets a fresh sender ↔ dut ↔ sink bed (2-queue veths). A raw AF_PACKET blaster in
//! the sender offers as much as one core can send; what counts is what reaches the sink's
//! interface (its RX counter), which drops everything in nftables so no replies flow back.
//! Frame sizes are Ethernet frames without FCS. Two cores are shared by the blaster, the kernel
//! and the workers, so compare the ratios measured in one run rather than absolute figures.
use crate::plot::{BarSeries, Bars, Figure, Panel, distinct};
use crate::report;
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::Duration;
use ztplane_testkit::bed::{FwdBed, GEN_IP, SINK_IP};
use ztplane_testkit::traffic::{RawFlow, blast_raw, pin_current_thread};

const SIZES: [usize; 2] = [64, 1400];
const FLOWS: u16 = 16;
const BLAST: Duration = Duration::from_secs(3);

#[derive(Clone, Copy)]
enum Forwarder {
    KernelBridge,
    Ztplane { workers: usize },
}

/// Options: `--fwd-args "ARGS"` adds options to every `ztplane fwd` (e.g. `--xdp-mode generic`);
/// `--bytes N` measures one frame size only.
pub fn run(args: &[String]) -> Result<()> {
    let mut fwd_args: Vec<String> = Vec::new();
    let mut sizes = SIZES.to_vec();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--fwd-args" => {
                fwd_args = it.next().context("--fwd-args needs a value")?.split_whitespace().map(String::from).collect()
            }
            "--bytes" => sizes = vec![it.next().context("--bytes needs a value")?.parse().context("--bytes")?],
            other => bail!("unknown bench io option {other:?} (--fwd-args \"...\", --bytes N)"),
        }
    }
    let binary = PathBuf::from(std::env::var("ZTPLANE_BIN").context("ZTPLANE_BIN (run it as `cargo xtask bench io`)")?);
    let mut records = Vec::new();
    println!(
        "{:<14} {:>8} {:>6} {:>10} {:>9} {:>10} {:>12}",
        "mode", "workers", "bytes", "offered", "Mpps", "Gbit/s", "xsk drops"
    );
    for bytes in sizes {
        for forwarder in [Forwarder::KernelBridge, Forwarder::Ztplane { workers: 1 }, Forwarder::Ztplane { workers: 2 }]
        {
            let Measured { offered, delivered, kernel_drops, queue_rx } =
                measure(&binary, forwarder, bytes, &fwd_args)?;
            let secs = BLAST.as_secs_f64();
            let mpps = delivered as f64 / secs / 1e6;
            let gbps = delivered as f64 * bytes as f64 * 8.0 / secs / 1e9;
            let (mode, workers) = match forwarder {
                Forwarder::KernelBridge => ("kernel-bridge", 0),
                Forwarder::Ztplane { workers } => ("ztplane-fwd", workers),
            };
            println!(
                "{mode:<14} {:>8} {bytes:>6} {:>9.3}M {mpps:>9.3} {gbps:>10.2} {kernel_drops:>12}",
                if workers == 0 { "-".to_string() } else { workers.to_string() },
                offered as f64 / secs / 1e6
            );
            records.push(json!({"mode": mode, "workers": workers, "bytes": bytes, "mpps": mpps, "gbps": gbps,
                "offered_mpps": offered as f64 / secs / 1e6, "xsk_rx_drops": kernel_drops, "queue_rx": queue_rx}));
        }
    }
    let path = report::write("io", &records)?;
    println!("(kernel-bridge workers '-': the kernel's own softirq processing; offered = what the blaster sent)");
    println!("wrote {}", path.display());
    let plot = report::plot("io", &records, figure)?;
    println!("plot: {}", plot.display());
    Ok(())
}

/// The chart of `bench io`: delivered Mpps and Gbit/s per frame size, the kernel bridge beside
/// `ztplane fwd` with 1 and 2 workers.
pub fn figure(records: &[serde_json::Value]) -> Result<Figure> {
    let forwarders = distinct(records.iter().filter_map(|r| Some((r["mode"].as_str()?, r["workers"].as_u64()?))));
    let sizes = distinct(records.iter().filter_map(|r| r["bytes"].as_u64()));
    anyhow::ensure!(!forwarders.is_empty() && !sizes.is_empty(), "no io records");
    let panel = |key: &str, title: &str, unit: &str| {
        let series = forwarders
            .iter()
            .map(|&(mode, workers)| {
                let values = sizes
                    .iter()
                    .map(|bytes| {
                        records
                            .iter()
                            .find(|r| r["mode"] == mode && r["workers"] == workers && r["bytes"] == *bytes)
                            .and_then(|r| r[key].as_f64())
                    })
                    .collect();
                let name = match (mode, workers) {
                    ("kernel-bridge", _) => "Linux kernel bridge".to_string(),
                    (mode, 1) => format!("{mode}, 1 worker"),
                    (mode, n) => format!("{mode}, {n} workers"),
                };
                BarSeries { name, baseline: mode == "kernel-bridge", values }
            })
            .collect();
        Panel::Bars(Bars {
            title: title.into(),
            x_label: "Ethernet frame size".into(),
            y_label: unit.into(),
            categories: sizes.iter().map(|b| format!("{b} B")).collect(),
            series,
            log_y: false,
            y_max: None,
            ratio_to_baseline: true,
        })
    };
    Ok(Figure {
        title: "bench io: forwarding between namespaces, ztplane fwd vs the kernel bridge".into(),
        notes: vec![
            "what reaches the sink, one blaster core offering all it can; ×N: ÷ kernel bridge; 2 shared cores: compare within the run"
                .into(),
        ],
        columns: 2,
        panels: vec![
            panel("mpps", "packets delivered", "Mpps"),
            panel("gbps", "bits delivered", "Gbit/s"),
        ],
    })
}

/// Frames over one blast: sent by the blaster, delivered to the sink, dropped at AF_XDP RX.
struct Measured {
    offered: u64,
    delivered: u64,
    kernel_drops: u64,
    /// Queues that received frames: which worker owned them and how many.
    queue_rx: Vec<serde_json::Value>,
}

fn measure(binary: &std::path::Path, forwarder: Forwarder, bytes: usize, fwd_args: &[String]) -> Result<Measured> {
    let bed = FwdBed::new(2)?;
    bed.sink.exec(
        "nft",
        &["add table inet bench; add chain inet bench in { type filter hook prerouting priority -300; policy drop; }"],
    )?;
    let dataplane = match forwarder {
        Forwarder::KernelBridge => {
            bed.bridge()?;
            None
        }
        Forwarder::Ztplane { workers } => {
            // The blaster runs on the last core and its frames arrive on the queue of that
            // number; the worker that owns that queue gets core 0, the other worker shares the
            // blaster's core. (On a NIC the generator is another machine.)
            let cores = if workers == 1 { "0" } else { "1,0" };
            let mut args = vec!["--cores", cores, "--duration", "60"];
            args.extend(fwd_args.iter().map(String::as_str));
            Some(bed.start_ztplane(binary, &args)?)
        }
    };
    let flows: Vec<RawFlow> = (0..FLOWS)
        .map(|i| RawFlow {
            src_mac: bed.gen_mac,
            dst_mac: bed.sink_mac,
            src: SocketAddrV4::new(GEN_IP, 42000 + i),
            dst: SocketAddrV4::new(SINK_IP, 9993),
            frame_len: bytes,
        })
        .collect();
    let before = bed.sink.link_counter("sink0", "rx_packets")?;
    // The blaster (and the veth RX softirq it drives) gets the last core; one worker gets core 0.
    let blaster_cpu = std::thread::available_parallelism().map_or(1, |n| n.get()) - 1;
    let offered = bed.sender.run(move || {
        pin_current_thread(blaster_cpu)?;
        blast_raw("gen0", &flows, BLAST, u64::MAX)
    })??;
    std::thread::sleep(Duration::from_millis(200));
    let delivered = bed.sink.link_counter("sink0", "rx_packets")? - before;
    let mut kernel_drops = 0;
    let mut queue_rx = Vec::new();
    if let Some(dataplane) = dataplane {
        let exit = dataplane.stop()?;
        if !exit.status.success() {
            bail!("ztplane failed: {}", exit.stderr);
        }
        let summary = exit.summary()?;
        for queue in summary["queues"].as_array().into_iter().flatten() {
            if queue["rx"].as_u64().unwrap_or(0) > 0 {
                queue_rx.push(json!({"iface": queue["iface"], "queue": queue["queue"], "worker": queue["worker"], "rx": queue["rx"]}));
            }
            kernel_drops +=
                queue["kernel_rx_dropped"].as_u64().unwrap_or(0) + queue["kernel_rx_ring_full"].as_u64().unwrap_or(0);
        }
    }
    Ok(Measured { offered, delivered, kernel_drops, queue_rx })
}
