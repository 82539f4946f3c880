//! `cargo xtask run` with no arguments: a two-namespace demo of `ztplane fwd`.
//!
//! Builds sender ↔ dut ↔ sink (2-queue veths, 198.18.1.0/24), starts the forwarder in the dut,
//! sends 8 UDP flows to port 9993 for a few seconds, prints what each worker and queue did, and
//! removes everything.
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Duration;
use ztplane_testkit::bed::{FwdBed, GEN_IP};
use ztplane_testkit::traffic::{SendSpec, UdpSink, send_udp};

const DATAGRAMS: u64 = 300_000;
const RATE: u64 = 100_000;

pub fn run(binary: &Path) -> Result<()> {
    println!("demo: building namespaces sender <-> dut <-> sink (2-queue veths, 198.18.1.0/24)");
    let bed = FwdBed::new(2)?;
    println!("demo: starting `ztplane fwd --iface a0 --iface b0` in {}", bed.dut.name);
    let dataplane = bed.start_ztplane(binary, &["--cores", "0-1", "--duration", "60"])?;

    let sink_addr = bed.sink_addr(9993);
    let sink = bed.sink.thread(move || {
        UdpSink::bind(sink_addr).map(|s| s.collect(DATAGRAMS, Duration::from_secs(2), Duration::from_secs(30)))
    })?;
    std::thread::sleep(Duration::from_millis(100));
    println!("demo: sending {DATAGRAMS} datagrams in 8 flows at {RATE}/s to {sink_addr}");
    let spec = SendSpec {
        src_ip: GEN_IP,
        src_ports: (0..8).map(|i| 41000 + i).collect(),
        dst: sink_addr,
        count: DATAGRAMS,
        rate: RATE,
        payload_len: 1000,
        max_duration: Duration::from_secs(10),
    };
    let sent = bed.sender.run(move || send_udp(&spec))??;
    let report = sink.join().map_err(|_| anyhow::anyhow!("sink thread panicked"))??;
    let exit = dataplane.stop()?;
    let summary = exit.summary().context("ztplane summary")?;
    let secs = sent.elapsed.as_secs_f64().max(1e-9);

    println!();
    println!(
        "sent {} datagrams in {:.2} s; sink received {} ({:.3}%), reordered {}, duplicates {}",
        sent.sent,
        secs,
        report.received,
        100.0 * report.received as f64 / sent.sent.max(1) as f64,
        report.reordered,
        report.duplicates
    );
    println!();
    println!("{:<8} {:>6} {:>10} {:>10} {:>10} {:>12}", "worker", "core", "rx", "processed", "tx", "tx kpps");
    for w in summary["workers"].as_array().into_iter().flatten() {
        let tx = w["tx"].as_u64().unwrap_or(0);
        println!(
            "{:<8} {:>6} {:>10} {:>10} {:>10} {:>12.1}",
            n(&w["index"]),
            n(&w["core"]),
            n(&w["rx"]),
            n(&w["processed"]),
            tx,
            tx as f64 / secs / 1e3
        );
    }
    println!();
    println!("{:<8} {:>6} {:>10} {:>10} {:>12} {:>10}", "iface", "queue", "rx", "tx", "rx kpps", "mode");
    for q in summary["queues"].as_array().into_iter().flatten() {
        let rx = q["rx"].as_u64().unwrap_or(0);
        let mode = if q["zero_copy"].as_bool() == Some(true) { "zero-copy" } else { "copy" };
        println!(
            "{:<8} {:>6} {:>10} {:>10} {:>12.1} {:>10}",
            q["iface"].as_str().unwrap_or("?"),
            n(&q["queue"]),
            rx,
            n(&q["tx"]),
            rx as f64 / secs / 1e3,
            mode
        );
    }
    println!();
    for x in summary["xdp"].as_array().into_iter().flatten() {
        println!(
            "xdp {} ({}): seen {} steered {} passed {} malformed {}",
            x["iface"].as_str().unwrap_or("?"),
            x["mode"].as_str().unwrap_or("?"),
            n(&x["seen"]),
            n(&x["steered"]),
            n(&x["passed"]),
            n(&x["malformed"])
        );
    }
    println!("demo: done; namespaces removed");
    Ok(())
}

fn n(value: &serde_json::Value) -> u64 {
    value.as_u64().unwrap_or(0)
}
