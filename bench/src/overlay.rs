//! `cargo xtask bench overlay`: TCP through the ZeroTier overlay (iperf3, 1 and 4 streams) and
//! ping RTT, between two ztplane nodes, between two zerotier-one 1.14.1 nodes, and between
//! ztplane and zerotier-one (both directions), all members of one network on one switch in the
//! same run (`ztplane_testkit::overlay`). Written to `target/bench/overlay.json` as
//! `{"pair", "from", "to", "streams", "gbps", "rtt_ms"}`.
//!
//! Both ends, iperf3 and the kernel share this machine's 2 cores, so the ratio to the
//! zerotier-one pair of the same run is the figure that carries over, not the absolute rate.
//!
//! Before any traffic, each member's CPU use over 5 idle seconds and its resident memory are
//! recorded too: `{"member", "system", "idle_cpu_pct", "rss_mib"}`.
//!
//! Options: `--seconds N` per iperf3 run (default 10), `--streams 1,4`, `--node-args "ARGS"`
//! (added to every `ztplane node`, e.g. `--tap-offload off`), `--pairs zz,tt,tz` to choose.
use crate::plot::{BarSeries, Bars, Figure, Panel, distinct};
use crate::report;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use ztplane_testkit::overlay::{Kind, OverlayBed, Process};
use ztplane_testkit::zerotier::ZeroTierBinary;

/// One measured direction: a pair label and the two members.
struct Case {
    pair: &'static str,
    code: &'static str,
    from: &'static str,
    to: &'static str,
}

const CASES: [Case; 4] = [
    Case { pair: "zerotier-zerotier", code: "zz", from: "c", to: "d" },
    Case { pair: "ztplane-ztplane", code: "tt", from: "a", to: "b" },
    Case { pair: "ztplane-zerotier", code: "tz", from: "a", to: "c" },
    Case { pair: "ztplane-zerotier", code: "tz", from: "c", to: "a" },
];

pub fn run(args: &[String]) -> Result<()> {
    let mut seconds = 10u64;
    let mut streams = vec![1u32, 4];
    let mut node_args: Vec<String> = Vec::new();
    let mut pairs: Vec<String> = vec!["zz".into(), "tt".into(), "tz".into()];
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => seconds = value()?.parse().context("--seconds")?,
            "--streams" => {
                streams = value()?.split(',').map(|s| s.parse().context("--streams")).collect::<Result<_>>()?
            }
            "--node-args" => node_args = value()?.split_whitespace().map(String::from).collect(),
            "--pairs" => pairs = value()?.split(',').map(String::from).collect(),
            other => bail!(
                "unknown bench overlay option {other:?} (--seconds N, --streams 1,4, --node-args \"...\", --pairs zz,tt,tz)"
            ),
        }
    }
    let ztplane = PathBuf::from(std::env::var("ZTPLANE_BIN").context("ZTPLANE_BIN (run through cargo xtask bench)")?);
    let zerotier = ZeroTierBinary::locate().context("bench overlay measures zerotier-one beside ztplane")?;
    if std::process::Command::new("iperf3").arg("--version").output().is_err() {
        bail!("iperf3 is not installed (cargo xtask setup installs it)");
    }
    let node_args: Vec<&str> = node_args.iter().map(String::as_str).collect();
    eprintln!("overlay: starting ztplane a, b and zerotier-one c, d on one network (moon + controller: zerotier-one)");
    let members = [("a", Kind::Ztplane), ("b", Kind::Ztplane), ("c", Kind::ZeroTier), ("d", Kind::ZeroTier)];
    let bed = OverlayBed::start(&zerotier, &ztplane, &members, &node_args, |line| eprintln!("overlay: {line}"))?;
    let mut records: Vec<Value> = Vec::new();
    // Idle cost before any traffic: the workers must sleep, not spin.
    let idle = idle_usage(&bed, Duration::from_secs(5))?;
    for case in CASES.iter().filter(|c| pairs.iter().any(|p| p == c.code)) {
        bed.wait_ping(case.from, case.to)?;
        let rtt = bed.ping_rtt_ms(case.from, case.to, 20)?;
        for &n in &streams {
            eprintln!("overlay: {} {} → {}, {n} stream(s), {seconds} s …", case.pair, case.from, case.to);
            let gbps = iperf3(&bed, case.from, case.to, n, seconds)?;
            eprintln!("overlay:   {gbps:.2} Gbit/s (ping {rtt:.3} ms)");
            records.push(json!({
                "pair": case.pair, "from": case.from, "to": case.to, "streams": n,
                "gbps": round(gbps, 3), "rtt_ms": round(rtt, 3),
            }));
        }
    }
    print_table(&records);
    println!();
    println!("{:<8} {:<12} {:>14} {:>9}", "member", "system", "idle CPU %", "RSS MiB");
    for r in &idle {
        println!(
            "{:<8} {:<12} {:>14.2} {:>9.1}",
            r["member"].as_str().unwrap_or("?"),
            r["system"].as_str().unwrap_or("?"),
            r["idle_cpu_pct"].as_f64().unwrap_or(0.0),
            r["rss_mib"].as_f64().unwrap_or(0.0)
        );
    }
    records.extend(idle);
    let path = report::write("overlay", &records)?;
    println!("written to {}", path.display());
    let plot = report::plot("overlay", &records, figure)?;
    println!("plot: {}", plot.display());
    Ok(())
}

/// The chart of `bench overlay`: TCP Gbit/s per direction and stream count and ping RTT per direction,
/// zerotier-one ↔ zerotier-one being the baseline; idle CPU and resident memory per member.
pub fn figure(records: &[Value]) -> Result<Figure> {
    let (transfers, idle): (Vec<&Value>, Vec<&Value>) = records.iter().partition(|r| r.get("pair").is_some());
    // Which system each member runs: from the idle records, else from a pair of one system ("ztplane-ztplane").
    let system = |member: &str, pair: &str| {
        idle.iter()
            .find(|r| r["member"] == member)
            .and_then(|r| r["system"].as_str())
            .map(|s| s.replace("zerotier-one", "zerotier"))
            .or_else(|| pair.split_once('-').filter(|(a, b)| a == b).map(|(a, _)| a.to_string()))
    };
    let directions =
        distinct(transfers.iter().filter_map(|r| Some((r["pair"].as_str()?, r["from"].as_str()?, r["to"].as_str()?))));
    let streams = distinct(transfers.iter().filter_map(|r| r["streams"].as_u64()));
    let find = |&(pair, from, to): &(&str, &str, &str)| {
        transfers
            .iter()
            .copied()
            .filter(|r| r["pair"] == pair && r["from"] == from && r["to"] == to)
            .collect::<Vec<_>>()
    };
    let name = |&(pair, from, to): &(&str, &str, &str)| match (system(from, pair), system(to, pair)) {
        (Some(a), Some(b)) => format!("{a} {from} → {b} {to}"),
        _ => format!("{pair} {from} → {to}"),
    };
    let is_baseline = |&(pair, ..): &(&str, &str, &str)| pair == "zerotier-zerotier";
    let mut panels = Vec::new();
    if !directions.is_empty() {
        panels.push(Panel::Bars(Bars {
            title: "TCP throughput through the overlay (iperf3, received)".into(),
            x_label: "parallel TCP streams".into(),
            y_label: "Gbit/s".into(),
            categories: streams.iter().map(|n| format!("{n} stream{}", if *n == 1 { "" } else { "s" })).collect(),
            series: directions
                .iter()
                .map(|d| BarSeries {
                    name: name(d),
                    baseline: is_baseline(d),
                    values: streams
                        .iter()
                        .map(|n| find(d).into_iter().find(|r| r["streams"] == *n).and_then(|r| r["gbps"].as_f64()))
                        .collect(),
                })
                .collect(),
            log_y: false,
            y_max: None,
            ratio_to_baseline: true,
        }));
        panels.push(Panel::Bars(Bars {
            title: "ping round trip through the overlay (lower is better)".into(),
            x_label: "20 pings per direction".into(),
            y_label: "RTT, ms".into(),
            categories: vec!["ping RTT".into()],
            series: directions
                .iter()
                .map(|d| BarSeries {
                    name: name(d),
                    baseline: is_baseline(d),
                    values: vec![find(d).into_iter().find_map(|r| r["rtt_ms"].as_f64())],
                })
                .collect(),
            log_y: false,
            y_max: None,
            ratio_to_baseline: true,
        }));
    }
    if !idle.is_empty() {
        let members = distinct(idle.iter().filter_map(|r| r["member"].as_str()));
        let systems = distinct(idle.iter().filter_map(|r| r["system"].as_str()));
        let panel = |key: &str, title: &str, unit: &str| {
            Panel::Bars(Bars {
                title: title.into(),
                x_label: "member".into(),
                y_label: unit.into(),
                categories: members.iter().map(|m| m.to_string()).collect(),
                series: systems
                    .iter()
                    .map(|s| BarSeries {
                        name: s.to_string(),
                        baseline: *s == "zerotier-one",
                        values: members
                            .iter()
                            .map(|m| {
                                idle.iter()
                                    .find(|r| r["member"] == *m && r["system"] == *s)
                                    .and_then(|r| r[key].as_f64())
                            })
                            .collect(),
                    })
                    .collect(),
                log_y: false,
                y_max: None,
                ratio_to_baseline: false,
            })
        };
        panels.push(panel("idle_cpu_pct", "CPU while idle (5 s, before any traffic)", "% of one core"));
        panels.push(panel("rss_mib", "resident memory while idle", "MiB"));
    }
    anyhow::ensure!(!panels.is_empty(), "no overlay records");
    let mut notes = vec![
        "all members, iperf3 and the kernel share 2 cores: the ratio to zerotier → zerotier in the same run (×N) carries over"
            .to_string(),
    ];
    if !directions.is_empty() && !directions.iter().any(is_baseline) {
        notes.push("this run measured no zerotier-one pair (--pairs): no baseline".into());
    }
    Ok(Figure {
        title: "bench overlay: ztplane and zerotier-one 1.14.1 on one ZeroTier network".into(),
        notes,
        columns: 2,
        panels,
    })
}

/// TCP goodput in Gbit/s from `from` to `to` (what the receiver got), iperf3 with `streams`,
/// the first second (slow start) left out.
fn iperf3(bed: &OverlayBed, from: &str, to: &str, streams: u32, seconds: u64) -> Result<f64> {
    let (src, dst) = (bed.member(from)?, bed.member(to)?);
    let run = ztplane_testkit::traffic::iperf3(&src.netns, &dst.netns, &dst.ip, streams, seconds)
        .with_context(|| format!("{from} → {to}"))?;
    Ok(run.received_mbps / 1e3)
}

/// CPU time (% of one core) each member's process used over `window` with no traffic, and its
/// resident memory: `{"member", "system", "idle_cpu_pct", "rss_mib"}`.
fn idle_usage(bed: &OverlayBed, window: Duration) -> Result<Vec<Value>> {
    let pids: Vec<(&str, &str, u32)> = bed
        .members
        .iter()
        .map(|m| match &m.process {
            Process::Ztplane(n) => (m.host.as_str(), "ztplane", n.pid()),
            Process::ZeroTier(n) => (m.host.as_str(), "zerotier-one", n.pid().unwrap_or(0)),
        })
        .collect();
    let before: Vec<u64> = pids.iter().map(|p| cpu_ticks(p.2)).collect::<Result<_>>()?;
    std::thread::sleep(window);
    let ticks_per_s = 100.0; // USER_HZ on Linux
    let mut out = Vec::new();
    for ((host, system, pid), start) in pids.iter().zip(before) {
        let used = cpu_ticks(*pid)?.saturating_sub(start) as f64 / ticks_per_s;
        out.push(json!({
            "member": host, "system": system,
            "idle_cpu_pct": round(100.0 * used / window.as_secs_f64(), 2), "rss_mib": round(rss_mib(*pid)?, 1),
        }));
    }
    Ok(out)
}

/// utime + stime of all threads of `pid`, in clock ticks (/proc/PID/stat fields 14 and 15).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces: fields are counted after its closing parenthesis.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).context("malformed stat");
    Ok(get(11)? + get(12)?)
}

fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")?;
    Ok(kib / 1024.0)
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// One row per record, with the ratio to zerotier-one ↔ zerotier-one at the same stream count.
fn print_table(records: &[Value]) {
    let baseline = |streams: &Value| {
        records
            .iter()
            .find(|r| r["pair"] == "zerotier-zerotier" && &r["streams"] == streams)
            .and_then(|r| r["gbps"].as_f64())
    };
    println!();
    println!(
        "{:<20} {:>4} {:>4} {:>8} {:>9} {:>9} {:>8}",
        "pair", "from", "to", "streams", "Gbit/s", "vs zt-zt", "rtt ms"
    );
    for r in records {
        let gbps = r["gbps"].as_f64().unwrap_or(0.0);
        let ratio = baseline(&r["streams"]).map_or("-".to_string(), |b| format!("{:.2}x", gbps / b));
        println!(
            "{:<20} {:>4} {:>4} {:>8} {:>9.2} {:>9} {:>8.3}",
            r["pair"].as_str().unwrap_or("?"),
            r["from"].as_str().unwrap_or("?"),
            r["to"].as_str().unwrap_or("?"),
            r["streams"],
            gbps,
            ratio,
            r["rtt_ms"].as_f64().unwrap_or(0.0)
        );
    }
}
