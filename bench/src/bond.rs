//! `cargo xtask bench bond`: nanoseconds per path decision for each bonding policy at 1, 8 and 64 links,
//! against a naive selector in the same run (links in a `HashMap` by name, a `HashMap` flow → link lookup
//! and insert per packet, link names cloned out) — what a straightforward implementation does per packet.
//!
//! "ztplane ns" includes loading the current selection table from the shared handle (an atomic
//! operation) for every packet; "burst 32" loads it once per 32 packets, as a worker does per receive
//! batch. 4096 distinct flows cycle through both selectors. Options: `--ms N` time per measurement (default 60), `--reps N`
//! best-of repetitions (default 3).
use crate::plot::{BarSeries, Bars, Figure, Panel, distinct};
use anyhow::{Context, Result, bail, ensure};
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use ztplane_bond::config::{BalanceMode, LinkSettings, Policy, PolicySettings};
use ztplane_bond::{Bond, FlowHash, Selection, WorkerCursor};

const LINK_COUNTS: [usize; 3] = [1, 8, 64];
const FLOWS: usize = 4096;

struct Options {
    per_measurement: Duration,
    reps: usize,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options { per_measurement: Duration::from_millis(60), reps: 3 };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || -> Result<u64> {
            it.next()
                .with_context(|| format!("{arg} needs a value"))?
                .parse()
                .with_context(|| format!("bad value for {arg}"))
        };
        match arg.as_str() {
            "--ms" => options.per_measurement = Duration::from_millis(value()?),
            "--reps" => options.reps = value()?.max(1) as usize,
            other => bail!("unknown option {other:?} (known: --ms N, --reps N)"),
        }
    }
    Ok(options)
}

/// Best nanoseconds per call of `op` (which makes `batch` decisions per call) over `reps` runs.
fn measure(options: &Options, batch: u64, mut op: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..options.reps {
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < options.per_measurement {
            for _ in 0..16 {
                op();
            }
            calls += 16;
        }
        best = best.min(start.elapsed().as_nanos() as f64 / (calls * batch) as f64);
    }
    best
}

struct Variant {
    label: &'static str,
    base: Policy,
    balance: BalanceMode,
}

const VARIANTS: [Variant; 6] = [
    Variant { label: "active-backup", base: Policy::ActiveBackup, balance: BalanceMode::FlowDynamic },
    Variant { label: "broadcast", base: Policy::Broadcast, balance: BalanceMode::FlowDynamic },
    Variant { label: "balance-rr", base: Policy::BalanceRr, balance: BalanceMode::FlowDynamic },
    Variant { label: "balance-xor", base: Policy::BalanceXor, balance: BalanceMode::FlowDynamic },
    Variant { label: "balance-aware (flow)", base: Policy::BalanceAware, balance: BalanceMode::FlowDynamic },
    Variant { label: "balance-aware (packet)", base: Policy::BalanceAware, balance: BalanceMode::Packet },
];

fn build_bond(v: &Variant, links: usize) -> Result<Bond> {
    let names: Vec<String> = (0..links).map(|i| format!("eth{i}")).collect();
    let settings = PolicySettings {
        balance: v.balance,
        packets_per_link: 16,
        links: names
            .iter()
            .map(|n| LinkSettings { capacity: Some(100 + names.len() as u64), ..LinkSettings::new(n.as_str()) })
            .collect(),
        ..PolicySettings::standard(v.base)
    };
    let mut bond = Bond::new(settings, 0);
    for n in &names {
        bond.add_path(n, "198.18.0.1:9993", false, 0)?;
    }
    bond.handle_timeout(0);
    Ok(bond)
}

/// The naive per-packet selector the engine is compared with.
struct NaiveSelector {
    links: HashMap<String, bool>,
    flows: HashMap<u64, String>,
    active: String,
    counter: u64,
}

impl NaiveSelector {
    fn new(links: usize) -> Self {
        NaiveSelector {
            links: (0..links).map(|i| (format!("eth{i}"), true)).collect(),
            flows: HashMap::new(),
            active: "eth0".to_string(),
            counter: 0,
        }
    }

    fn select(&mut self, policy: Policy, flow: u64, out: &mut Vec<String>) {
        out.clear();
        match policy {
            Policy::ActiveBackup | Policy::None => {
                if self.links.get(&self.active).copied().unwrap_or(false) {
                    out.push(self.active.clone());
                }
            }
            Policy::Broadcast => out.extend(self.links.iter().filter(|(_, up)| **up).map(|(n, _)| n.clone())),
            Policy::BalanceRr => {
                let n = self.links.len() as u64;
                let i = (self.counter / 16) % n;
                self.counter += 1;
                if let Some((name, _)) = self.links.iter().filter(|(_, up)| **up).nth(i as usize) {
                    out.push(name.clone());
                }
            }
            Policy::BalanceXor | Policy::BalanceAware => {
                let links = &self.links;
                let name = self.flows.entry(flow).or_insert_with(|| {
                    let up: Vec<&String> = links.iter().filter(|(_, up)| **up).map(|(n, _)| n).collect();
                    up[(flow % up.len() as u64) as usize].clone()
                });
                if links.get(name.as_str()).copied().unwrap_or(false) {
                    out.push(name.clone());
                }
            }
        }
    }
}

fn choice_index(choice: Selection<'_>) -> usize {
    match choice {
        Selection::One(p) => p.0 as usize,
        Selection::All(ps) => ps.len(),
        Selection::NoPath => usize::MAX,
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let flows: Vec<FlowHash> = (0..FLOWS as u64)
        .map(|i| {
            let key = ztplane_bond::FlowKey {
                src: std::net::IpAddr::from([10, 0, (i >> 8) as u8, i as u8]),
                dst: std::net::IpAddr::from([10, 1, 0, 1]),
                protocol: 6,
                src_port: 10_000 + i as u16,
                dst_port: 443,
            };
            key.hash()
        })
        .collect();
    println!("bond: ns per path decision (4096 flows; best of {} × {:?})", options.reps, options.per_measurement);
    println!(
        "{:<24} {:>6} {:>12} {:>14} {:>16} {:>8}",
        "policy", "links", "ztplane ns", "ns (burst 32)", "naive HashMap ns", "speed-up"
    );
    let mut records = Vec::new();
    for v in &VARIANTS {
        for &links in &LINK_COUNTS {
            let bond = build_bond(v, links)?;
            let handle = bond.selection_handle();
            let mut cursor = WorkerCursor::new(1);
            let mut i = 0usize;
            let now_us = 5_000_000u64;
            let mut decide_each = || {
                for _ in 0..64 {
                    let table = handle.load();
                    black_box(choice_index(table.select(flows[i & (FLOWS - 1)], now_us, &mut cursor)));
                    i = i.wrapping_add(1);
                }
            };
            // Warm caches and the branch predictor before timing.
            for _ in 0..1000 {
                decide_each();
            }
            let ours = measure(&options, 64, decide_each);
            // As a worker runs it: the table loaded once per burst of 32 packets.
            let burst = measure(&options, 64, || {
                for _ in 0..2 {
                    let table = handle.load();
                    for _ in 0..32 {
                        black_box(choice_index(table.select(flows[i & (FLOWS - 1)], now_us, &mut cursor)));
                        i = i.wrapping_add(1);
                    }
                }
            });
            // Sanity: the decision is a real one.
            if matches!(handle.load().select(flows[0], now_us, &mut cursor), Selection::NoPath) {
                bail!("{} with {links} links made no decision", v.label);
            }
            let mut naive = NaiveSelector::new(links);
            let mut out = Vec::with_capacity(links);
            let mut j = 0usize;
            let mut naive_each = || {
                for _ in 0..64 {
                    naive.select(v.base, flows[j & (FLOWS - 1)].0, &mut out);
                    black_box(out.len());
                    j = j.wrapping_add(1);
                }
            };
            for _ in 0..1000 {
                naive_each();
            }
            let baseline = measure(&options, 64, naive_each);
            println!(
                "{:<24} {:>6} {:>12.1} {:>14.1} {:>16.1} {:>7.1}x",
                v.label,
                links,
                ours,
                burst,
                baseline,
                baseline / ours
            );
            records.push(serde_json::json!({
                "policy": v.label,
                "links": links,
                "ns_per_decision": (ours * 10.0).round() / 10.0,
                "baseline_ns": (baseline * 10.0).round() / 10.0,
                "ns_per_decision_burst32": (burst * 10.0).round() / 10.0,
            }));
        }
    }
    records.extend(concurrent(&flows)?);
    let path = crate::report::write("bond", &records)?;
    println!("written to {}", path.display());
    let plot = crate::report::plot("bond", &records, figure)?;
    println!("plot: {}", plot.display());
    Ok(())
}

/// Short policy names for chart labels.
fn short(policy: &str) -> String {
    policy.replace("balance-aware", "aware")
}

/// The chart of `bench bond`: ns per path decision per policy, one panel per link count (ztplane, ztplane
/// with the table loaded once per 32 packets, the naive HashMap selector), and a panel of the concurrent
/// senders (per thread count) against the naive selector behind a mutex. Log scale: they differ by decades.
pub fn figure(records: &[serde_json::Value]) -> Result<Figure> {
    let (concurrent, single): (Vec<_>, Vec<_>) = records.iter().partition(|r| r.get("threads").is_some());
    let policies = distinct(single.iter().filter_map(|r| r["policy"].as_str()));
    let links = distinct(single.iter().filter_map(|r| r["links"].as_u64()));
    let mut panels = Vec::new();
    for n in links {
        let column = |key: &str| {
            policies
                .iter()
                .map(|p| single.iter().find(|r| r["policy"] == *p && r["links"] == n).and_then(|r| r[key].as_f64()))
                .collect::<Vec<_>>()
        };
        panels.push(Panel::Bars(Bars {
            title: format!("{n} link{}: one sender, 4096 flows", if n == 1 { "" } else { "s" }),
            x_label: "bonding policy".into(),
            y_label: "ns per decision (log)".into(),
            categories: policies.iter().map(|p| short(p)).collect(),
            series: vec![
                BarSeries { name: "ztplane".into(), baseline: false, values: column("ns_per_decision") },
                BarSeries {
                    name: "ztplane, table loaded per 32".into(),
                    baseline: false,
                    values: column("ns_per_decision_burst32"),
                },
                BarSeries { name: "naive HashMap selector".into(), baseline: true, values: column("baseline_ns") },
            ],
            log_y: true,
            y_max: None,
            ratio_to_baseline: false,
        }));
    }
    if !concurrent.is_empty() {
        let cases = distinct(concurrent.iter().filter_map(|r| Some((r["policy"].as_str()?, r["threads"].as_u64()?))));
        let column = |key: &str| {
            cases
                .iter()
                .map(|&(p, t)| {
                    concurrent.iter().find(|r| r["policy"] == p && r["threads"] == t).and_then(|r| r[key].as_f64())
                })
                .collect::<Vec<_>>()
        };
        panels.push(Panel::Bars(Bars {
            title: "concurrent senders to one peer, 8 links (wall ns per decision per thread)".into(),
            x_label: "bonding policy, sending threads".into(),
            y_label: "ns per decision (log)".into(),
            categories: cases
                .iter()
                .map(|&(p, t)| format!("{}, {t} thread{}", short(p), if t == 1 { "" } else { "s" }))
                .collect(),
            series: vec![
                BarSeries { name: "ztplane".into(), baseline: false, values: column("ns_per_decision") },
                BarSeries {
                    name: "naive Mutex<HashMap> selector".into(),
                    baseline: true,
                    values: column("baseline_ns"),
                },
            ],
            log_y: true,
            y_max: None,
            ratio_to_baseline: true,
        }));
    }
    ensure!(!panels.is_empty(), "no bond records");
    Ok(Figure {
        title: "bench bond: path decision cost per bonding policy vs a naive selector".into(),
        notes: vec!["best of the repetitions, same run; ×N: ztplane ÷ naive (lower is better)".into()],
        columns: 1,
        panels,
    })
}

/// Decisions per thread in the concurrent measurement.
const CONCURRENT_DECISIONS: u64 = 1_000_000;

/// All cores sending to one peer: each thread decides with its own cursor on the shared table; the naive
/// selector has to be shared behind a mutex. Wall-clock ns per decision per thread, 1 and 2 threads.
fn concurrent(flows: &[FlowHash]) -> Result<Vec<serde_json::Value>> {
    use std::sync::{Arc, Mutex};
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\nconcurrent senders to one peer (8 links; {cores} cores available; wall ns per decision per thread)");
    println!("{:<24} {:>8} {:>12} {:>22}", "policy", "threads", "ztplane ns", "naive Mutex<HashMap> ns");
    let mut records = Vec::new();
    for v in VARIANTS
        .iter()
        .filter(|v| matches!(v.base, Policy::BalanceXor | Policy::BalanceAware) && v.balance != BalanceMode::Packet)
    {
        let bond = build_bond(v, 8)?;
        let naive = Arc::new(Mutex::new(NaiveSelector::new(8)));
        for threads in [1usize, 2] {
            // Best of three runs (the first also warms the flow table and caches).
            let run = |work: &(dyn Fn(u64) + Sync)| {
                (0..3)
                    .map(|_| {
                        let start = Instant::now();
                        std::thread::scope(|s| {
                            for t in 0..threads as u64 {
                                s.spawn(move || work(t));
                            }
                        });
                        start.elapsed().as_nanos() as f64 / CONCURRENT_DECISIONS as f64
                    })
                    .fold(f64::MAX, f64::min)
            };
            let handle = bond.selection_handle();
            let ours = run(&|t| {
                let mut cursor = WorkerCursor::new(t);
                for i in 0..CONCURRENT_DECISIONS {
                    let table = handle.load();
                    black_box(choice_index(table.select(
                        flows[(i as usize + t as usize * 977) & (FLOWS - 1)],
                        5_000_000,
                        &mut cursor,
                    )));
                }
            });
            let baseline = run(&|t| {
                let mut out = Vec::with_capacity(8);
                for i in 0..CONCURRENT_DECISIONS {
                    let flow = flows[(i as usize + t as usize * 977) & (FLOWS - 1)].0;
                    naive.lock().map(|mut n| n.select(v.base, flow, &mut out)).unwrap_or(());
                    black_box(out.len());
                }
            });
            println!("{:<24} {:>8} {:>12.1} {:>22.1}", v.label, threads, ours, baseline);
            records.push(serde_json::json!({
                "policy": v.label,
                "links": 8,
                "threads": threads,
                "ns_per_decision": (ours * 10.0).round() / 10.0,
                "baseline_ns": (baseline * 10.0).round() / 10.0,
            }));
        }
    }
    Ok(records)
}
