//! `cargo xtask bench bond-live`: bonding two links, ztplane beside zerotier-one 1.14.1 on the same
//! topology in the same run (`ztplane_testkit::bond_bed`): hosts a and b on link A (eth0) and
//! link B (eth1), each link shaped to 300 Mbit/s in both directions (tbf on the switch ports
//! toward a and toward b), a zerotier-one moon and controller. Each system runs a pair on a and b
//! in turn (the other system stopped), restarted with each policy.
//!
//! * failover: active-backup (ztplane: the standard policy, default settings; zerotier-one:
//!   `failoverInterval` 500, its smallest), a 10 ms ping a → b through the overlay, the link that
//!   carries a's traffic to b cut (nftables drop of a ↔ b at that link's switch) 1 s in, 3 s more
//!   of pings. `outage_ms` is the longest run of unanswered pings × 10 ms, `lost` all unanswered
//!   pings. The link comes back and both bonds are waited for on both links before the next run.
//!   zerotier-one is first left 15.5 s past its bond's forming: a path in its trial period is
//!   never failed (spec §4.4). Written per run:
//!   `{"system", "policy": "active-backup", "outage_ms", "lost", "run", "sent", "cut", "b_sends_on",
//!   "recovered"}`.
//! * aggregation: iperf3 TCP a → b, 1 and 4 streams, 8 s after 1 s left out (slow start), per
//!   policy: active-backup (one link: the sanity baseline, ideal 300), balance-aware (ztplane: also
//!   `"balancePolicy": "packet"`), balance-rr; all standard policies with default settings but the
//!   packet variant. `{"system", "policy", "streams", "mbps", "ideal_mbps", "retransmits",
//!   "a_tx_mb": [eth0, eth1]}` (what a sent on each link during the run: whether a flow stays on
//!   one link). A case that fails is written with `"mbps": null` and its `"error"`.
//!
//! `ideal_mbps` is the links' rate; TCP goodput through ZeroTier is below it by the encapsulation
//! (Ethernet, IP, UDP and ZeroTier headers on every underlay packet), which the one-link baseline
//! shows: the table also gives each result against twice the same system's one-link figure.
//!
//! For ztplane the records also carry what explains a figure: a's bond paths sampled during the run
//! (`a_bond_samples`: link, relativeQuality, RTT ms, loss ratio, bonded, flows), a's bond events,
//! the tbf drops toward b, the underlay packets a sent and b received per link, and the workers'
//! counters of a and b over the run (`GET /stats`).
//!
//! Options: `--seconds N` per iperf3 run (default 8), `--runs N` failovers per system (default 3;
//! 0: none), `--rate MBIT` per link (default 300), `--streams 1,4`, `--systems ztplane,zerotier-one`,
//! `--policies balance-aware,balance-aware packet,balance-rr` (the bonded policies to measure).
use crate::plot::{BarSeries, Bars, Figure, Panel, distinct};
use crate::report;
use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use ztplane_testkit::Netns;
use ztplane_testkit::bond_bed::{
    BondBed, PingRun, ZEROTIER_TRIAL, bond_show, carrying_link, fast_active_backup, flag, ping_settled,
    standard_policy, tx_bytes, zerotier_bond_show, zerotier_on_both_links, ztplane_on_both_links,
};
use ztplane_testkit::lan::Lan;
use ztplane_testkit::traffic::iperf3;
use ztplane_testkit::zerotier::{ZeroTierBinary, ZeroTierNode};
use ztplane_testkit::ztplane::ZtplaneNode;

const ZTPLANE: &str = "ztplane";
const ZEROTIER: &str = "zerotier-one";
/// Pings of a failover run: 1 s before the cut, 3 s after.
const PINGS: u64 = 400;
const BEFORE_CUT: Duration = Duration::from_secs(1);
/// How a pair's ztplane nodes are stopped (they remove their taps and detach XDP).
const SIGTERM: i32 = 15;

/// One implementation's pair on hosts a and b, and its overlay addresses.
#[derive(Clone, Copy)]
struct System {
    name: &'static str,
    a_ip: &'static str,
    b_ip: &'static str,
}

const SYSTEMS: [System; 2] = [
    System { name: ZTPLANE, a_ip: "198.19.0.21", b_ip: "198.19.0.22" },
    System { name: ZEROTIER, a_ip: "198.19.0.31", b_ip: "198.19.0.32" },
];

/// A policy measured for aggregation: its name in the records and its `local.conf`.
struct Aggregation {
    policy: &'static str,
    local_conf: Value,
}

/// The bonding policies of a system, after active-backup (measured on the failover pair).
fn bonded_policies(system: &str) -> Vec<Aggregation> {
    let standard = |policy| Aggregation { policy, local_conf: standard_policy(policy) };
    let mut policies = vec![standard("balance-aware")];
    if system == ZTPLANE {
        policies.push(Aggregation {
            policy: "balance-aware packet",
            local_conf: json!({ "settings": {
                "policies": { "aware-packet": { "basePolicy": "balance-aware", "balancePolicy": "packet" } },
                "defaultBondingPolicy": "aware-packet",
            } }),
        });
    }
    policies.push(standard("balance-rr"));
    policies
}

/// The active-backup `local.conf` of a system.
fn active_backup(system: &str) -> Value {
    if system == ZTPLANE { standard_policy("active-backup") } else { fast_active_backup() }
}

/// A running pair.
enum Pair {
    Ztplane(ZtplaneNode, ZtplaneNode),
    ZeroTier(ZeroTierNode, ZeroTierNode),
}

impl Pair {
    fn start(bed: &BondBed, system: System, local_conf: &Value) -> Result<Pair> {
        Ok(if system.name == ZTPLANE {
            Pair::Ztplane(bed.ztplane("a", system.a_ip, local_conf)?, bed.ztplane("b", system.b_ip, local_conf)?)
        } else {
            Pair::ZeroTier(bed.zerotier("a", system.a_ip, local_conf)?, bed.zerotier("b", system.b_ip, local_conf)?)
        })
    }

    /// Waits until both ends bond both links with each other.
    fn wait_bonded(&self) -> Result<()> {
        match self {
            Pair::Ztplane(a, b) => {
                ztplane_on_both_links(a, "a", &b.address()?)?;
                ztplane_on_both_links(b, "b", &a.address()?)?;
            }
            Pair::ZeroTier(a, b) => {
                zerotier_on_both_links(a, "a", b.address())?;
                zerotier_on_both_links(b, "b", a.address())?;
            }
        }
        Ok(())
    }

    /// a's bond with b, per path: link, relative quality, RTT and loss as a sees them, whether it
    /// carries traffic and its flows (`[ifname, relativeQuality, latencyMean ms, packetLossRatio,
    /// bonded, assignedFlowCount]`).
    fn a_bond_paths(&self) -> Result<Value> {
        let show = match self {
            Pair::Ztplane(a, b) => bond_show(a, &b.address()?)?,
            Pair::ZeroTier(a, b) => zerotier_bond_show(a, b.address())?,
        };
        let paths = show["paths"].as_array().context("no paths in the bond report")?;
        let num = |v: &Value, digits| v.as_f64().map(|x| round(x, digits));
        Ok(paths
            .iter()
            .map(|p| {
                json!([
                    p["ifname"],
                    num(&p["relativeQuality"], 2),
                    num(&p["latencyMean"], 2),
                    num(&p["packetLossRatio"], 4),
                    flag(&p["bonded"]),
                    p["assignedFlowCount"]
                ])
            })
            .collect())
    }

    /// How much of a's log there is (ztplane; 0 for zerotier-one, whose bond logs nothing).
    fn a_log_len(&self) -> usize {
        match self {
            Pair::Ztplane(a, _) => a.log().len(),
            Pair::ZeroTier(..) => 0,
        }
    }

    /// a's log after `from` (a [`Pair::a_log_len`]); empty for zerotier-one.
    fn a_log_since(&self, from: usize) -> String {
        let Pair::Ztplane(a, _) = self else { return String::new() };
        a.log().get(from..).unwrap_or_default().to_string()
    }

    /// a's bond events logged after `from`, as "event link reason".
    fn a_events_since(&self, from: usize) -> Vec<String> {
        self.a_log_since(from)
            .lines()
            .filter_map(|l| l.find("{\"event\"").map(|i| &l[i..]))
            .filter_map(|j| serde_json::from_str::<Value>(j).ok())
            .map(|e| {
                let text = |k: &str| e[k].as_str().map(str::to_string);
                let link = text("link").or_else(|| text("to").map(|to| format!("to {to}")));
                [text("event"), link, text("reason")].into_iter().flatten().collect::<Vec<_>>().join(" ")
            })
            .collect()
    }

    /// What a's failure detector saw at each path-down logged after `from`: the log line's text
    /// from the path on ("path 1 down: … data sent; acks …").
    fn a_path_downs_since(&self, from: usize) -> Vec<String> {
        self.a_log_since(from)
            .lines()
            .filter(|l| l.contains(" down: ") && l.contains("data sent"))
            .filter_map(|l| l.find("path ").map(|i| l[i..].to_string()))
            .collect()
    }

    /// ztplane's worker counters of a and b (`GET /stats`, summed over workers); nothing for
    /// zerotier-one.
    fn worker_counters(&self) -> Option<[Value; 2]> {
        let Pair::Ztplane(a, b) = self else { return None };
        let sum = |node: &ZtplaneNode| -> Option<Value> {
            let stats = node.request("GET", "/stats").ok()?;
            let mut total = serde_json::Map::new();
            for worker in stats["workers"].as_array()? {
                for (key, value) in worker.as_object()? {
                    if key != "index" {
                        let sum = total.get(key).and_then(Value::as_u64).unwrap_or(0) + value.as_u64().unwrap_or(0);
                        total.insert(key.clone(), json!(sum));
                    }
                }
            }
            Some(Value::Object(total))
        };
        Some([sum(a)?, sum(b)?])
    }

    /// The ztplane nodes' log tails, for errors.
    fn logs(&self) -> String {
        match self {
            Pair::Ztplane(a, b) => format!("a log:\n{}\nb log:\n{}", a.log_tail(20), b.log_tail(20)),
            Pair::ZeroTier(..) => String::new(),
        }
    }

    fn stop(self) -> Result<()> {
        if let Pair::Ztplane(a, b) = self {
            for (node, name) in [(a, "a"), (b, "b")] {
                let exit = node.stop_with(SIGTERM)?;
                ensure!(exit.status.success(), "ztplane {name} exited with {}: {}", exit.status, exit.stderr);
            }
        }
        Ok(())
    }
}

struct Options {
    seconds: u64,
    runs: u32,
    rate: u32,
    streams: Vec<u32>,
    systems: Vec<String>,
    /// Bonded policies to measure (`--policies`); all when empty.
    policies: Vec<String>,
}

pub fn run(args: &[String]) -> Result<()> {
    let mut o = Options {
        seconds: 8,
        runs: 3,
        rate: 300,
        streams: vec![1, 4],
        systems: SYSTEMS.iter().map(|s| s.name.to_string()).collect(),
        policies: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => o.seconds = value()?.parse().context("--seconds")?,
            "--runs" => o.runs = value()?.parse().context("--runs")?,
            "--rate" => o.rate = value()?.parse().context("--rate")?,
            "--streams" => {
                o.streams = value()?.split(',').map(|s| s.parse().context("--streams")).collect::<Result<_>>()?
            }
            "--systems" => o.systems = value()?.split(',').map(String::from).collect(),
            "--policies" => o.policies = value()?.split(',').map(String::from).collect(),
            other => bail!(
                "unknown bench bond-live option {other:?} (--seconds N, --runs N, --rate MBIT, --streams 1,4, \
                 --systems ztplane,zerotier-one, --policies balance-aware,...)"
            ),
        }
    }
    let ztplane = PathBuf::from(std::env::var("ZTPLANE_BIN").context("ZTPLANE_BIN (run through cargo xtask bench)")?);
    let zerotier = ZeroTierBinary::locate().context("bench bond-live measures zerotier-one beside ztplane")?;
    if std::process::Command::new("iperf3").arg("--version").output().is_err() {
        bail!("iperf3 is not installed (cargo xtask setup installs it)");
    }
    let systems: Vec<System> = SYSTEMS.into_iter().filter(|s| o.systems.iter().any(|n| n == s.name)).collect();
    ensure!(!systems.is_empty(), "--systems names none of ztplane, zerotier-one");

    let started = Instant::now();
    let progress = |line: &str| eprintln!("bond-live [{:5.1} s]: {line}", started.elapsed().as_secs_f64());
    progress("moon + controller, hosts a and b on two links");
    let bed = BondBed::start(&zerotier, &ztplane, &["a", "b"])?;
    for lan in [&bed.links.a, &bed.links.b] {
        for host in ["a", "b"] {
            lan.set_rate(host, Some(o.rate))?;
        }
    }
    progress(&format!("both links shaped to {} Mbit/s each way (tbf)", o.rate));
    let mut records = Vec::new();
    for system in systems {
        records.extend(measure(&bed, system, &o, &progress)?);
    }
    print_table(&records, o.rate);
    let path = report::write("bond-live", &records)?;
    println!("written to {}", path.display());
    let plot = report::plot("bond-live", &records, figure)?;
    println!("plot: {}", plot.display());
    Ok(())
}

/// Everything measured for one system: failovers, then aggregation per policy.
fn measure(bed: &BondBed, system: System, o: &Options, progress: &dyn Fn(&str)) -> Result<Vec<Value>> {
    let name = system.name;
    let mut records = Vec::new();
    progress(&format!("{name}: active-backup pair on a and b"));
    let pair = Pair::start(bed, system, &active_backup(name))?;
    settle(bed, &pair, system)?;
    if name == ZEROTIER {
        progress(&format!("{name}: both links bonded; waiting out the paths' trial period (15.5 s)"));
        std::thread::sleep(ZEROTIER_TRIAL);
    }
    for run in 1..=o.runs {
        let record = failover(bed, &pair, system, run, progress).unwrap_or_else(|e| {
            progress(&format!("{name}: failover {run}: {e:#}"));
            let _ = bed.links.a.unblock("a", "b");
            let _ = bed.links.b.unblock("a", "b");
            json!({
                "system": name, "policy": "active-backup", "outage_ms": null, "lost": null, "run": run,
                "error": format!("{e:#}").lines().next().unwrap_or_default(),
            })
        });
        let failed = record.get("error").is_some();
        records.push(record);
        if failed && pair.wait_bonded().is_err() {
            progress(&format!("{name}: the bonds did not come back on both links: no more failover runs"));
            break;
        }
    }
    records.extend(aggregate(bed, &pair, system, "active-backup", f64::from(o.rate), o, progress));
    pair.stop()?;
    let chosen = |p: &Aggregation| o.policies.is_empty() || o.policies.iter().any(|n| n == p.policy);
    for policy in bonded_policies(name).into_iter().filter(chosen) {
        progress(&format!("{name}: {} pair", policy.policy));
        let pair = Pair::start(bed, system, &policy.local_conf)?;
        match settle(bed, &pair, system) {
            Ok(()) => {
                records.extend(aggregate(bed, &pair, system, policy.policy, 2.0 * f64::from(o.rate), o, progress))
            }
            Err(e) => {
                progress(&format!("{name}: {}: {e:#}", policy.policy));
                for &streams in &o.streams {
                    records.push(failed(name, policy.policy, streams, 2.0 * f64::from(o.rate), &e));
                }
            }
        }
        pair.stop()?;
    }
    Ok(records)
}

/// One failover run: the link carrying a → b cut under a 10 ms ping, then restored; returns
/// its record once both bonds are back on both links.
fn failover(bed: &BondBed, pair: &Pair, system: System, run: u32, progress: &dyn Fn(&str)) -> Result<Value> {
    let name = system.name;
    let (a_ns, b_ns) = (bed.netns("a")?, bed.netns("b")?);
    let cut = sending_link(a_ns, system.b_ip)?;
    // Only a note: where b's replies go (both links when b moved during the measurement).
    let b_sends_on = carrying_link(b_ns, system.a_ip).unwrap_or("both");
    let lan = bed.links.by_iface(cut)?;
    let log_from = pair.a_log_len();
    let ping = PingRun::around(a_ns, system.b_ip, PINGS, BEFORE_CUT, || lan.block("a", "b"));
    lan.unblock("a", "b")?;
    let ping = ping?;
    let restored = Instant::now();
    let recovered = ping.recovered(50);
    progress(&format!(
        "{name}: failover {run}: cut {cut} (b sends on {b_sends_on}): outage {} ms, {} of {} pings lost{}",
        ping.outage_ms(),
        ping.lost(),
        ping.sent,
        if recovered { "" } else { ", NOT RECOVERED" }
    ));
    let mut record = json!({
        "system": name, "policy": "active-backup", "outage_ms": ping.outage_ms(), "lost": ping.lost(),
        "run": run, "sent": ping.sent, "cut": cut, "b_sends_on": b_sends_on, "recovered": recovered,
        "relink_ms": null,
    });
    // The outage is measured; a bond that does not come back on both links is recorded beside it.
    match pair.wait_bonded() {
        Ok(()) => {
            let relink_ms = restored.elapsed().as_millis() as u64;
            progress(&format!("{name}:   both links bonded again {relink_ms} ms after the link came back"));
            record["relink_ms"] = json!(relink_ms);
        }
        Err(e) => {
            progress(&format!("{name}:   {e:#}\n{}", pair.logs()));
            record["error"] = json!(format!("{e:#}").lines().next().unwrap_or_default());
        }
    }
    record["a_bond_events"] = json!(pair.a_events_since(log_from));
    record["a_path_downs"] = json!(pair.a_path_downs_since(log_from));
    Ok(record)
}

/// [`carrying_link`], asked up to 5 times 0.5 s apart: right after a change both links may
/// show in the count.
fn sending_link(from: &Netns, to: &str) -> Result<&'static str> {
    let mut tries = 0;
    loop {
        match carrying_link(from, to) {
            Ok(link) => return Ok(link),
            Err(e) if tries >= 4 => return Err(e),
            Err(_) => tries += 1,
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Pings both ways until they pass, then waits for both bonds on both links.
fn settle(bed: &BondBed, pair: &Pair, system: System) -> Result<()> {
    ping_settled(bed.netns("a")?, system.b_ip).with_context(|| pair.logs())?;
    ping_settled(bed.netns("b")?, system.a_ip).with_context(|| pair.logs())?;
    pair.wait_bonded()
}

/// iperf3 a → b with each stream count; a failed run is recorded with its error.
fn aggregate(
    bed: &BondBed,
    pair: &Pair,
    system: System,
    policy: &str,
    ideal: f64,
    o: &Options,
    progress: &dyn Fn(&str),
) -> Vec<Value> {
    let mut records = Vec::new();
    for &streams in &o.streams {
        progress(&format!("{}: {policy}, iperf3 a → b, {streams} stream(s), {} s …", system.name, o.seconds));
        let run = || -> Result<Value> {
            let (a_ns, b_ns) = (bed.netns("a")?, bed.netns("b")?);
            let (before, drops_before, log_from) = (tx_bytes(a_ns)?, tbf_drops(bed)?, pair.a_log_len());
            let (underlay_before, workers_before) = (underlay_packets(bed)?, pair.worker_counters());
            let done = AtomicBool::new(false);
            let (got, samples) = std::thread::scope(|scope| {
                let sampler = scope.spawn(|| sample_bond(pair, &done));
                let got = iperf3(a_ns, b_ns, system.b_ip, streams, o.seconds);
                done.store(true, Ordering::Relaxed);
                (got, sampler.join().unwrap_or_default())
            });
            let got = got.with_context(|| pair.logs())?;
            let (after, drops_after) = (tx_bytes(a_ns)?, tbf_drops(bed)?);
            let (underlay_after, workers_after) = (underlay_packets(bed)?, pair.worker_counters());
            let mb = |i: usize| round((after[i] - before[i]) as f64 / 1e6, 1);
            let underlay: Vec<u64> = underlay_after.iter().zip(underlay_before).map(|(x, y)| x - y).collect();
            let workers = match (workers_before, workers_after) {
                (Some(before), Some(after)) => {
                    json!({ "a": delta(&before[0], &after[0]), "b": delta(&before[1], &after[1]) })
                }
                _ => Value::Null,
            };
            Ok(json!({
                "system": system.name, "policy": policy, "streams": streams, "mbps": round(got.received_mbps, 1),
                "ideal_mbps": ideal, "retransmits": got.retransmits, "a_tx_mb": [mb(0), mb(1)],
                "tbf_drops_to_b": [drops_after[0] - drops_before[0], drops_after[1] - drops_before[1]],
                "a_bond_samples": samples, "a_bond_events": pair.a_events_since(log_from),
                "a_path_downs": pair.a_path_downs_since(log_from),
                "underlay_packets": { "a_tx": [underlay[0], underlay[1]], "b_rx": [underlay[2], underlay[3]] },
                "workers": workers,
            }))
        };
        let record = run().unwrap_or_else(|e| failed(system.name, policy, streams, ideal, &e));
        progress(&format!(
            "{}:   {} Mbit/s, a sent {} MB on eth0 / eth1{}",
            system.name,
            record["mbps"],
            record["a_tx_mb"],
            record["error"].as_str().map(|e| format!(" ({e})")).unwrap_or_default()
        ));
        records.push(record);
    }
    records
}

/// a's bond paths ([`Pair::a_bond_paths`]) 2 s into a run and every 3 s after, until `done`.
fn sample_bond(pair: &Pair, done: &AtomicBool) -> Vec<Value> {
    let start = Instant::now();
    let mut next = Duration::from_secs(2);
    let mut samples = Vec::new();
    while !done.load(Ordering::Relaxed) {
        if start.elapsed() >= next {
            if let Ok(paths) = pair.a_bond_paths() {
                samples.push(json!({ "at_s": round(start.elapsed().as_secs_f64(), 1), "paths": paths }));
            }
            next += Duration::from_secs(3);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    samples
}

/// Packets a sent and b received on eth0 and eth1: `[a eth0, a eth1, b eth0, b eth1]`.
fn underlay_packets(bed: &BondBed) -> Result<[u64; 4]> {
    let (a, b) = (bed.netns("a")?, bed.netns("b")?);
    Ok([
        a.link_counter("eth0", "tx_packets")?,
        a.link_counter("eth1", "tx_packets")?,
        b.link_counter("eth0", "rx_packets")?,
        b.link_counter("eth1", "rx_packets")?,
    ])
}

/// `after - before` for every counter of `after`.
fn delta(before: &Value, after: &Value) -> Value {
    let Some(after) = after.as_object() else { return Value::Null };
    after
        .iter()
        .map(|(k, v)| (k.clone(), json!(v.as_u64().unwrap_or(0).saturating_sub(before[k].as_u64().unwrap_or(0)))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Packets the tbf toward b dropped so far, on eth0 and eth1 (`tc -s qdisc` at each switch).
fn tbf_drops(bed: &BondBed) -> Result<[u64; 2]> {
    let drops = |lan: &Lan| -> Result<u64> {
        let port = &lan.host("b")?.switch_port;
        let out = lan.switch.exec("tc", &["-s", "qdisc", "show", "dev", port])?;
        let text = String::from_utf8_lossy(&out.stdout);
        // " Sent 123 bytes 4 pkt (dropped 5, overlimits 6 requeues 0)"
        text.split_once("dropped ")
            .and_then(|(_, rest)| rest.split(',').next())
            .and_then(|n| n.trim().parse().ok())
            .with_context(|| format!("no drop count in {text:?}"))
    };
    Ok([drops(&bed.links.a)?, drops(&bed.links.b)?])
}

fn failed(system: &str, policy: &str, streams: u32, ideal: f64, error: &anyhow::Error) -> Value {
    json!({
        "system": system, "policy": policy, "streams": streams, "mbps": null, "ideal_mbps": ideal,
        "error": format!("{error:#}").lines().next().unwrap_or_default(),
    })
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

fn is_failover(r: &Value) -> bool {
    r.get("outage_ms").is_some()
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

fn print_table(records: &[Value], rate: u32) {
    let (failovers, transfers): (Vec<&Value>, Vec<&Value>) = records.iter().partition(|r| is_failover(r));
    // Numbers and strings of a record as table cells ("-" when absent).
    let cell = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    println!();
    println!("failover: active-backup, the link carrying a → b cut under a 10 ms ping (each run)");
    println!(
        "{:<14} {:>4} {:>5} {:>11} {:>10} {:>6} {:>10} {:>10}",
        "system", "run", "cut", "b sends on", "outage ms", "lost", "recovered", "relink ms"
    );
    for r in &failovers {
        println!(
            "{:<14} {:>4} {:>5} {:>11} {:>10} {:>6} {:>10} {:>10}",
            cell(&r["system"]),
            cell(&r["run"]),
            cell(&r["cut"]),
            cell(&r["b_sends_on"]),
            cell(&r["outage_ms"]),
            cell(&r["lost"]),
            cell(&r["recovered"]),
            cell(&r["relink_ms"])
        );
        if let Some(e) = r["error"].as_str() {
            println!("    {e}");
        }
    }
    for system in distinct(failovers.iter().filter_map(|r| r["system"].as_str())) {
        let outages = failovers.iter().filter(|r| r["system"] == system).filter_map(|r| r["outage_ms"].as_f64());
        if let Some(m) = median(outages.collect()) {
            println!("{system:<14} median outage {m:.0} ms");
        }
    }
    println!();
    println!("aggregation: two links of {rate} Mbit/s, iperf3 TCP a → b (vs 1 link: against twice the one-link run)");
    println!(
        "{:<14} {:<22} {:>7} {:>7} {:>6} {:>8} {:>10} {:>8} {:>15} {:>13}",
        "system",
        "policy",
        "streams",
        "Mbit/s",
        "ideal",
        "% ideal",
        "vs 1 link",
        "retrans",
        "a MB eth0/eth1",
        "tbf drops"
    );
    let pair = |v: &Value| match v.as_array().map(Vec::as_slice) {
        Some([x, y]) => format!("{} / {}", cell(x), cell(y)),
        _ => "-".into(),
    };
    for r in &transfers {
        let mbps = r["mbps"].as_f64();
        let ideal = r["ideal_mbps"].as_f64().unwrap_or(0.0);
        // Against the same system's one-link run at the same stream count, scaled to the links used.
        let single = transfers
            .iter()
            .find(|s| s["system"] == r["system"] && s["policy"] == "active-backup" && s["streams"] == r["streams"])
            .and_then(|s| s["mbps"].as_f64());
        let vs_single = match (mbps, single) {
            (Some(m), Some(s)) if s > 0.0 => format!("{:.0} %", 100.0 * m / (s * ideal / f64::from(rate))),
            _ => "-".into(),
        };
        println!(
            "{:<14} {:<22} {:>7} {:>7} {:>6} {:>8} {:>10} {:>8} {:>15} {:>13}",
            cell(&r["system"]),
            cell(&r["policy"]),
            cell(&r["streams"]),
            mbps.map_or("failed".into(), |m| format!("{m:.0}")),
            format!("{ideal:.0}"),
            mbps.map_or("-".into(), |m| format!("{:.0} %", 100.0 * m / ideal)),
            vs_single,
            cell(&r["retransmits"]),
            pair(&r["a_tx_mb"]),
            pair(&r["tbf_drops_to_b"])
        );
        if let Some(e) = r["error"].as_str() {
            println!("    {e}");
        }
    }
}

/// The chart of `bench bond-live`: TCP goodput per policy (one panel per stream count) and the
/// failover outage per run, ztplane beside zerotier-one (the baseline).
pub fn figure(records: &[Value]) -> Result<Figure> {
    let (failovers, transfers): (Vec<&Value>, Vec<&Value>) = records.iter().partition(|r| is_failover(r));
    let systems = distinct(records.iter().filter_map(|r| r["system"].as_str()));
    let series_name = |s: &str| if s == ZEROTIER { "zerotier-one 1.14.1".to_string() } else { s.to_string() };
    let mut panels = Vec::new();
    let policies = distinct(transfers.iter().filter_map(|r| r["policy"].as_str()));
    let ideal = transfers.iter().filter_map(|r| r["ideal_mbps"].as_f64()).fold(0.0, f64::max);
    for streams in distinct(transfers.iter().filter_map(|r| r["streams"].as_u64())) {
        panels.push(Panel::Bars(Bars {
            title: format!("TCP a → b, {streams} stream{} (iperf3, received)", if streams == 1 { "" } else { "s" }),
            x_label: "bonding policy (active-backup: one link)".into(),
            y_label: "Mbit/s".into(),
            categories: policies.iter().map(|p| p.to_string()).collect(),
            series: systems
                .iter()
                .map(|s| BarSeries {
                    name: series_name(s),
                    baseline: *s == ZEROTIER,
                    values: policies
                        .iter()
                        .map(|p| {
                            transfers
                                .iter()
                                .find(|r| r["system"] == *s && r["policy"] == *p && r["streams"] == streams)
                                .and_then(|r| r["mbps"].as_f64())
                        })
                        .collect(),
                })
                .collect(),
            log_y: false,
            y_max: (ideal > 0.0).then_some(ideal),
            ratio_to_baseline: true,
        }));
    }
    if !failovers.is_empty() {
        let runs = distinct(failovers.iter().filter_map(|r| r["run"].as_u64()));
        panels.push(Panel::Bars(Bars {
            title: "active-backup failover: outage of a 10 ms ping (lower is better)".into(),
            x_label: "the carrying link cut".into(),
            y_label: "outage, ms".into(),
            categories: runs.iter().map(|n| format!("run {n}")).collect(),
            series: systems
                .iter()
                .map(|s| BarSeries {
                    name: if *s == ZEROTIER {
                        "zerotier-one 1.14.1, failoverInterval 500".into()
                    } else {
                        format!("{s}, default settings")
                    },
                    baseline: *s == ZEROTIER,
                    values: runs
                        .iter()
                        .map(|n| {
                            failovers
                                .iter()
                                .find(|r| r["system"] == *s && r["run"] == *n)
                                .and_then(|r| r["outage_ms"].as_f64())
                        })
                        .collect(),
                })
                .collect(),
            log_y: false,
            y_max: None,
            ratio_to_baseline: true,
        }));
    }
    ensure!(!panels.is_empty(), "no bond-live records");
    Ok(Figure {
        title: "bench bond-live: two links bonded, ztplane and zerotier-one 1.14.1".into(),
        notes: vec![format!(
            "each link shaped to {:.0} Mbit/s (tbf): the ideal is {:.0} Mbit/s with both links, {:.0} with one \
             (active-backup); TCP goodput through ZeroTier stays below it by the encapsulation",
            ideal / 2.0,
            ideal,
            ideal / 2.0
        )],
        columns: 2,
        panels,
    })
}
