//! `cargo xtask bench gateway`: a LAN bridged into a ZeroTier network, RFC 2544 style, ztplane
//! beside zerotier-one 1.14.1 in the same run (`ztplane_testkit::gateway_bed`). Two gateways g1
//! and g2 on one WAN switch each bridge a LAN host (lan1 198.19.0.101, lan2 198.19.0.102) into the
//! network: with ztplane, `ztplane node --bridge NWID=lan0`; with zerotier-one, its tap in a Linux
//! bridge with `lan0` (the baseline). The AF_XDP generator (`ztplane_testkit::pktgen`) sends
//! Ethernet/IPv4/UDP from lan1's `eth0` (its own thread in lan1's namespace) to lan2's MAC and
//! address, and its receiver counts and times every frame on lan2's `eth0` (in lan2's namespace,
//! steered by ztplane's XDP program, UDP port 9 only): LAN → g1 → EXT_FRAME over the WAN → g2 → LAN.
//!
//! Per frame size (64, 512, 1518 bytes, FCS included):
//! * throughput: the highest offered packet rate with **no** frame lost, from short trials
//!   (`--seconds`, default 2). The first trial is unpaced: what the generator offers then is the
//!   search's upper bound, and what got through is where the search starts (95 % of it). After
//!   that a passing rate is followed by a higher one (the middle of the bracket, at most 25 %
//!   higher) and a failing one by a lower one (the middle, or half when nothing passed yet), until
//!   the bracket is within 1 % or `--trials` (default 7) are spent. Loss is exact: every frame
//!   carries a per-flow sequence number. No tolerance: one frame lost fails a trial.
//! * latency: one trial at half that rate; one-way p50/p99/p99.9 from the frames' TX timestamps.
//!
//! Before the search, 1 s at 1,000 pps must arrive at all, or the bench stops with the gateways'
//! logs. Before each trial, one ping from lan2 to lan1 refreshes the MAC tables (one-way load
//! alone would let the gateways age out lan2's MAC) and shows that the gateways still forward.
//!
//! Records: `{"system": "ztplane"|"zerotier-one", "bytes", "mpps", "gbps" (L2: frame bytes with
//! FCS), "p50_us", "p99_us", "p999_us"}` and what explains them (`rate_pps` configured, the
//! unpaced trial, every trial with the packet counters of the interfaces along the path, which
//! show where frames went missing: e.g. `g1 lan0 rx dropped` counts frames a ztplane gateway's
//! AF_XDP ring had no room for; for ztplane also what the gateways' workers and nodes counted,
//! `GET /stats`, e.g. frames handed to the slow path). `mpps` is the rate the generator really
//! offered in the passing trial, which can be below the configured `rate_pps` when it gets too
//! little CPU. The generator, its receiver, both gateways and the kernel share this machine's
//! 2 cores: the ratio measured in one run is the figure that carries over.
//!
//! Options: `--seconds S` per trial, `--trials N` after the unpaced one, `--sizes 64,512,1518`,
//! `--flows N` (UDP source ports, default 4), `--systems ztplane,zerotier-one`, `--logs` (the
//! gateways' log tails after each system's trials).
use crate::plot::{BarSeries, Bars, Figure, Panel, distinct};
use crate::report;
use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use ztplane::steering::{AttachMode, Steering};
use ztplane_testkit::bond_bed::ping_settled;
use ztplane_testkit::gateway_bed::{Gateway, GatewayBed, GatewaySystem, HOST_IFACE, LAN_IFACE};
use ztplane_testkit::overlay::Process;
use ztplane_testkit::pktgen::{self, Config, Report, Steer, SteerRequest};
use ztplane_testkit::zerotier::ZeroTierBinary;
use ztplane_testkit::{Netns, PinDir};

const ZTPLANE: &str = "ztplane";
const ZEROTIER: &str = "zerotier-one";
const SIZES: [usize; 3] = [64, 512, 1518];
/// What the issue asks of ztplane: its zero-loss packet rate over zerotier-one's, per frame size.
const TARGETS: [(usize, f64); 2] = [(64, 5.0), (1518, 3.0)];
/// The sanity trial: frames must arrive at all at this rate.
const SANITY_RATE: u64 = 1_000;
const SANITY: Duration = Duration::from_secs(1);
/// Quiet time after a trial, so nothing an overloaded gateway still holds reaches the next one.
const SETTLE: Duration = Duration::from_millis(300);
/// The search stops when passing and failing rates are this close (a fraction of the failing one).
const RESOLUTION: f64 = 0.01;
/// UDP destination port of the generator's frames (discard), the one port steered on lan2.
const DST_PORT: u16 = 9;

struct Options {
    trial: Duration,
    trials: u32,
    sizes: Vec<usize>,
    flows: u16,
    systems: Vec<GatewaySystem>,
    /// Print the gateways' counters and log tails after each system's trials.
    logs: bool,
}

fn system_name(system: GatewaySystem) -> &'static str {
    match system {
        GatewaySystem::Ztplane => ZTPLANE,
        GatewaySystem::ZeroTier => ZEROTIER,
    }
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        trial: Duration::from_secs(2),
        trials: 7,
        sizes: SIZES.to_vec(),
        flows: 4,
        systems: vec![GatewaySystem::Ztplane, GatewaySystem::ZeroTier],
        logs: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--logs" {
            options.logs = true;
            continue;
        }
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => options.trial = Duration::from_secs_f64(value()?.parse().context("--seconds")?),
            "--trials" => options.trials = value()?.parse().context("--trials")?,
            "--flows" => options.flows = value()?.parse().context("--flows")?,
            "--sizes" => {
                options.sizes = value()?.split(',').map(|s| s.parse().context("--sizes")).collect::<Result<_>>()?
            }
            "--systems" => {
                options.systems = value()?
                    .split(',')
                    .map(|s| match s {
                        ZTPLANE => Ok(GatewaySystem::Ztplane),
                        ZEROTIER => Ok(GatewaySystem::ZeroTier),
                        other => bail!("--systems: {other:?} is neither {ZTPLANE} nor {ZEROTIER}"),
                    })
                    .collect::<Result<_>>()?
            }
            other => bail!(
                "unknown bench gateway option {other:?} (--seconds S, --trials N, --sizes 64,512,1518, --flows N, \
                 --systems ztplane,zerotier-one, --logs)"
            ),
        }
    }
    ensure!(options.trial >= Duration::from_millis(100), "--seconds: at least 0.1");
    ensure!(options.trial <= Duration::from_secs(60), "--seconds: at most 60 (the run has to stay bounded)");
    ensure!(options.trials <= 20, "--trials: at most 20");
    ensure!(options.flows >= 1, "--flows: at least 1");
    Ok(options)
}

pub fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let ztplane = PathBuf::from(std::env::var("ZTPLANE_BIN").context("ZTPLANE_BIN (run through cargo xtask bench)")?);
    let zerotier = ZeroTierBinary::locate().context("bench gateway measures zerotier-one beside ztplane")?;
    ztplane::system::require_bpffs(Path::new(ztplane::config::DEFAULT_BPFFS))?;
    let started = Instant::now();
    let mut records = Vec::new();
    for &system in &options.systems {
        records.extend(measure(system, &zerotier, &ztplane, &options)?);
    }
    eprintln!("gateway: done in {:.0} s", started.elapsed().as_secs_f64());
    print_table(&records);
    let path = report::write("gateway", &records)?;
    println!("written to {}", path.display());
    let plot = report::plot("gateway", &records, figure)?;
    println!("plot: {}", plot.display());
    Ok(())
}

/// One system's bed, sanity trial and per-size search; the bed is torn down on return.
fn measure(system: GatewaySystem, zerotier: &Path, ztplane: &Path, options: &Options) -> Result<Vec<Value>> {
    let name = system_name(system);
    let started = Instant::now();
    eprintln!("gateway: {name}: starting moon + controller, gateways g1, g2 and LAN hosts lan1, lan2 …");
    let bed = GatewayBed::start(system, zerotier, ztplane)?;
    let (l1, l2) = (bed.lan("g1")?, bed.lan("g2")?);
    ping_settled(&l1.netns, &l2.ip.to_string()).with_context(|| bed.logs())?;
    ping_settled(&l2.netns, &l1.ip.to_string()).with_context(|| bed.logs())?;
    eprintln!("gateway: {name}: lan1 ↔ lan2 ping through both gateways after {:.0} s", started.elapsed().as_secs_f64());

    let mut base = Config::new(HOST_IFACE, HOST_IFACE);
    base.src_mac = pktgen::parse_mac(&l1.mac)?;
    base.dst_mac = pktgen::parse_mac(&l2.mac)?;
    (base.src_ip, base.dst_ip) = (l1.ip, l2.ip);
    base.dst_port = DST_PORT;
    base.flows = options.flows;
    // A gateway may put frames into lan0 on either queue of the 2-queue veth.
    base.rx_queues = vec![0, 1];
    base.validate()?;

    let check = trial(&bed, &base, 64, Some(SANITY_RATE), SANITY)?;
    if check.received == 0 {
        bail!(
            "{name}: none of the {} 64-byte frames lan1 sent at {SANITY_RATE} pps reached lan2's {HOST_IFACE} \
             (other frames on its sockets: {}), although ping works; the gateways:\n{}",
            check.sent,
            check.foreign,
            bed.logs()
        );
    }
    eprintln!(
        "gateway: {name}: sanity, 64 B at {SANITY_RATE} pps: {} of {} frames arrived, p50 {:.0} µs",
        check.received, check.sent, check.latency.p50_us
    );

    let mut records = Vec::new();
    for &size in &options.sizes {
        records.push(search(&bed, &base, name, size, options)?);
    }
    eprintln!("gateway: {name}: measured in {:.0} s", started.elapsed().as_secs_f64());
    if options.logs {
        eprintln!("gateway: {name}: the gateways after the trials:\n{}", bed.logs());
    }
    Ok(records)
}

/// The zero-loss search and the latency trial of one frame size (see the module doc).
fn search(bed: &GatewayBed, base: &Config, name: &str, size: usize, options: &Options) -> Result<Value> {
    let label = format!("{name} {size} B");
    let mut trials = Vec::new();
    let ceiling = trial(bed, base, size, None, options.trial)?;
    progress(&label, "unpaced", &ceiling);
    trials.push(trial_record(None, &ceiling));
    stopped_forwarding(bed, &label, &ceiling)?;
    let max_pps = (ceiling.offered_mpps * 1e6) as u64;

    // `lo`: the highest rate that passed (0: none yet); `hi`: the lowest that failed.
    let (mut lo, mut hi) = (0u64, max_pps);
    let mut best = None;
    let generator_limited = passed(&ceiling);
    if generator_limited {
        eprintln!("gateway:   {label}: nothing lost at the generator's own limit; the search ends there");
        (lo, best) = (max_pps, Some(ceiling.report.clone()));
    }
    let mut n = 0;
    while !generator_limited && n < options.trials && hi > 1 && (hi - lo) as f64 > hi as f64 * RESOLUTION {
        let rate = if lo > 0 {
            (lo + (hi - lo) / 2).min(lo + lo / 4)
        } else if n == 0 {
            ((ceiling.achieved_mpps * 1e6 * 0.95) as u64).clamp(1, hi - 1)
        } else {
            hi / 2
        }
        .max(1);
        let r = trial(bed, base, size, Some(rate), options.trial)?;
        n += 1;
        progress(&label, &format!("{n}/{} at {rate} pps", options.trials), &r);
        trials.push(trial_record(Some(rate), &r));
        stopped_forwarding(bed, &label, &r)?;
        if passed(&r) {
            (lo, best) = (rate, Some(r.report));
        } else {
            hi = rate;
        }
    }

    let Some(best) = best else {
        eprintln!("gateway:   {label}: every trial lost frames, down to {hi} pps; no zero-loss rate, no latency");
        return Ok(json!({
            "system": name, "bytes": size, "mpps": 0.0, "gbps": 0.0, "rate_pps": 0,
            "p50_us": null, "p99_us": null, "p999_us": null, "below_pps": hi,
            "unpaced_offered_mpps": round(ceiling.offered_mpps, 4),
            "unpaced_delivered_mpps": round(ceiling.achieved_mpps, 4), "trials": trials,
        }));
    };
    let latency_rate = (lo / 2).max(1);
    let l = trial(bed, base, size, Some(latency_rate), options.trial)?;
    progress(&label, &format!("latency at {latency_rate} pps"), &l);
    eprintln!(
        "gateway: {label}: zero loss up to {lo} pps = {:.4} Mpps, {:.3} Gbit/s; at half of it p50 {:.1} µs, \
         p99 {:.1} µs, p99.9 {:.1} µs",
        best.achieved_mpps, best.achieved_gbps_l2, l.latency.p50_us, l.latency.p99_us, l.latency.p999_us
    );
    Ok(json!({
        "system": name, "bytes": size,
        "mpps": round(best.achieved_mpps, 4), "gbps": round(best.achieved_gbps_l2, 4),
        "gbps_l1": round(best.achieved_gbps_l1, 4), "rate_pps": lo,
        "p50_us": round(l.latency.p50_us, 1), "p99_us": round(l.latency.p99_us, 1),
        "p999_us": round(l.latency.p999_us, 1),
        "latency_rate_pps": latency_rate, "latency_lost": l.lost, "latency_samples": l.latency.samples,
        "generator_limited": generator_limited,
        "unpaced_offered_mpps": round(ceiling.offered_mpps, 4),
        "unpaced_delivered_mpps": round(ceiling.achieved_mpps, 4),
        "trials": trials,
    }))
}

/// One generator run: its report, what the interfaces along the path counted meanwhile, and
/// for ztplane gateways what their own counters (`GET /stats`) moved by.
struct Trial {
    report: Report,
    path: Vec<(&'static str, u64)>,
    gateways: Vec<(String, serde_json::Map<String, Value>)>,
}

impl std::ops::Deref for Trial {
    type Target = Report;

    fn deref(&self) -> &Report {
        &self.report
    }
}

/// One generator run lan1 → lan2 of `size`-byte frames at `rate` (`None`: unpaced) for `duration`.
fn trial(bed: &GatewayBed, base: &Config, size: usize, rate: Option<u64>, duration: Duration) -> Result<Trial> {
    let (l1, l2) = (bed.lan("g1")?, bed.lan("g2")?);
    if !l2.netns.ping(&l1.ip.to_string(), 1)? {
        eprintln!("gateway:   (a ping lan2 → lan1 before the trial was not answered)");
    }
    let mut config = base.clone();
    (config.size, config.rate, config.duration, config.count) = (size, rate, duration, None);
    let hops = hops(bed)?;
    let before = read_counters(&hops)?;
    let stats_before: Vec<_> = bed.gateways.iter().map(gateway_counters).collect();
    let report = pktgen::run(&config, Some(&l1.netns), Some(&l2.netns), steering())
        .with_context(|| format!("generator lan1 → lan2, {size} B at {rate:?} pps"))?;
    std::thread::sleep(SETTLE);
    let after = read_counters(&hops)?;
    let path = hops.iter().zip(after.iter().zip(before)).map(|(h, (a, b))| (h.0, a.saturating_sub(b))).collect();
    let gateways = bed
        .gateways
        .iter()
        .zip(stats_before)
        .filter_map(|(g, before)| Some((g.name.clone(), moved(&before?, &gateway_counters(g)?))))
        .collect();
    Ok(Trial { report, path, gateways })
}

/// A ztplane gateway's counters: its workers' summed (`rx`, `tx`, `fast_tx`, `punted`, ...) and
/// its node's (`node.frames_out`, `node.tx_queue_overflow`, ...); `None` for zerotier-one or when
/// the node does not answer.
fn gateway_counters(gateway: &Gateway) -> Option<BTreeMap<String, u64>> {
    let Process::Ztplane(node) = &gateway.process else { return None };
    let stats = node.request("GET", "/stats").ok()?;
    let mut total = BTreeMap::new();
    for worker in stats["workers"].as_array()? {
        for (key, value) in worker.as_object()?.iter().filter(|(k, _)| *k != "index") {
            *total.entry(key.clone()).or_default() += value.as_u64().unwrap_or(0);
        }
    }
    for (key, value) in stats["node"].as_object()? {
        total.insert(format!("node.{key}"), value.as_u64().unwrap_or(0));
    }
    Some(total)
}

/// The counters that moved between two readings, and by how much.
fn moved(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> serde_json::Map<String, Value> {
    after
        .iter()
        .filter_map(|(key, &a)| {
            let delta = a.saturating_sub(before.get(key).copied().unwrap_or(0));
            (delta > 0).then(|| (key.clone(), json!(delta)))
        })
        .collect()
}

/// Interface counters along the path, in its order: (label, namespace, interface, counter). One
/// frame may be two WAN packets (a 1518-byte frame does not fit one ZeroTier packet), and the
/// pings and the gateways' own traffic are counted too.
fn hops(bed: &GatewayBed) -> Result<Vec<(&'static str, Netns, &'static str, &'static str)>> {
    let (g1, g2) = (bed.gateway("g1")?.netns.clone(), bed.gateway("g2")?.netns.clone());
    Ok(vec![
        ("lan1 eth0 tx", bed.lan("g1")?.netns.clone(), HOST_IFACE, "tx_packets"),
        ("g1 lan0 rx", g1.clone(), LAN_IFACE, "rx_packets"),
        ("g1 lan0 rx dropped", g1.clone(), LAN_IFACE, "rx_dropped"),
        ("g1 eth0 tx", g1, "eth0", "tx_packets"),
        ("g2 eth0 rx", g2.clone(), "eth0", "rx_packets"),
        ("g2 eth0 rx dropped", g2.clone(), "eth0", "rx_dropped"),
        ("g2 lan0 tx", g2, LAN_IFACE, "tx_packets"),
        ("lan2 eth0 rx", bed.lan("g2")?.netns.clone(), HOST_IFACE, "rx_packets"),
    ])
}

fn read_counters(hops: &[(&'static str, Netns, &'static str, &'static str)]) -> Result<Vec<u64>> {
    hops.iter().map(|(_, netns, iface, counter)| netns.link_counter(iface, counter)).collect()
}

/// A trial passes when every frame sent arrived (duplicates and reordering do not fail it).
fn passed(r: &Report) -> bool {
    r.sent > 0 && r.lost == 0
}

/// Nothing at all arrived: the gateways stopped forwarding. That is a finding, not a rate.
fn stopped_forwarding(bed: &GatewayBed, label: &str, r: &Trial) -> Result<()> {
    if r.sent > 0 && r.received == 0 {
        bail!(
            "{label}: none of {} frames arrived: the gateways stopped forwarding; the gateways:\n{}",
            r.sent,
            bed.logs()
        );
    }
    Ok(())
}

/// A trial on stderr; where frames were lost, with the path's counters.
fn progress(label: &str, what: &str, t: &Trial) {
    let path = if passed(t) {
        String::new()
    } else {
        let hops: Vec<String> = t.path.iter().map(|(hop, n)| format!("{hop} {n}")).collect();
        let mut text = format!("\ngateway:     interfaces: {}", hops.join(", "));
        for (name, counters) in &t.gateways {
            let counters: Vec<String> = counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
            text += &format!("\ngateway:     {name}: {}", counters.join(", "));
        }
        text
    };
    eprintln!(
        "gateway:   {label} {what}: offered {:.4} Mpps, delivered {:.4}, lost {} of {}{}{path}",
        t.offered_mpps,
        t.achieved_mpps,
        t.lost,
        t.sent,
        if passed(t) { " → pass" } else { " → fail" }
    );
    // A ztplane gateway's workers hand what they cannot send themselves to its slow path: a
    // trial where that was a good part of the traffic measured the slow path.
    for (name, counters) in &t.gateways {
        let count = |key: &str| counters.get(key).and_then(Value::as_u64).unwrap_or(0);
        if count("punted") * 10 > count("rx").max(1) {
            eprintln!(
                "gateway:     note: {name}'s workers handed {} of the {} frames they received to its slow path",
                count("punted"),
                count("rx")
            );
        }
    }
}

fn trial_record(rate: Option<u64>, t: &Trial) -> Value {
    let path: serde_json::Map<String, Value> = t.path.iter().map(|(hop, n)| (hop.to_string(), json!(n))).collect();
    json!({
        "rate_pps": rate, "offered_mpps": round(t.offered_mpps, 4), "delivered_mpps": round(t.achieved_mpps, 4),
        "sent": t.sent, "lost": t.lost, "reordered": t.reordered, "duplicates": t.duplicates,
        "rx_socket_drops": t.rx_kernel_drops.0, "p99_us": round(t.latency.p99_us, 1), "path": path,
        "gateways": t.gateways.iter().map(|(name, c)| (name.clone(), Value::Object(c.clone())))
            .collect::<serde_json::Map<_, _>>(),
    })
}

/// ztplane's XDP program on lan2's `eth0`, steering the generator's port to the receiver's
/// sockets (everything else, ARP and ping included, goes to lan2's kernel as before).
fn steering() -> Steer {
    Box::new(|request: &SteerRequest| {
        let pins = PinDir::new("bench-gateway");
        let mut steering = Steering::attach(&request.ifname, AttachMode::Auto, &[request.dst_port], &pins.0)?;
        for &(queue, fd) in &request.sockets {
            // SAFETY: the fd is the receiver's socket, open for the whole run.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            steering.register_socket(queue, &fd)?;
        }
        // Fields drop in order: the program and its pins first, then their directory.
        Ok(Box::new((steering, pins)) as Box<dyn std::any::Any>)
    })
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Per size, both systems side by side and ztplane's zero-loss packet rate over zerotier-one's,
/// against the target where it sets one.
fn print_table(records: &[Value]) {
    let find = |system: &str, bytes: u64| records.iter().find(|r| r["system"] == system && r["bytes"] == bytes);
    let cell = |r: Option<&Value>| match r {
        Some(r) => format!(
            "{:>8.4} {:>7.3} {:>20}",
            r["mpps"].as_f64().unwrap_or(0.0),
            r["gbps"].as_f64().unwrap_or(0.0),
            match (r["p50_us"].as_f64(), r["p99_us"].as_f64(), r["p999_us"].as_f64()) {
                (Some(a), Some(b), Some(c)) => format!("{a:.0}/{b:.0}/{c:.0}"),
                _ => "-".into(),
            }
        ),
        None => format!("{:>8} {:>7} {:>20}", "-", "-", "-"),
    };
    println!();
    println!("zero-loss throughput lan1 → g1 → g2 → lan2 (RFC 2544 sizes, FCS incl.); latency at half that rate");
    println!(
        "{:>6} | {:^37} | {:^37} | {:>7} {:>14}",
        "", "ztplane", "zerotier-one 1.14.1 (baseline)", "ratio", "target"
    );
    println!(
        "{:>6} | {:>8} {:>7} {:>20} | {:>8} {:>7} {:>20} | {:>7} {:>14}",
        "bytes", "Mpps", "Gbit/s", "p50/p99/p99.9 µs", "Mpps", "Gbit/s", "p50/p99/p99.9 µs", "", ""
    );
    for bytes in distinct(records.iter().filter_map(|r| r["bytes"].as_u64())) {
        let (ours, theirs) = (find(ZTPLANE, bytes), find(ZEROTIER, bytes));
        let mpps = |r: Option<&Value>| r.and_then(|r| r["mpps"].as_f64());
        let ratio = match (mpps(ours), mpps(theirs)) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let target = TARGETS.iter().find(|(size, _)| *size as u64 == bytes).map(|t| t.1);
        let verdict = match (ratio, target) {
            (Some(r), Some(t)) => format!("≥{t:.0}x {}", if r >= t { "met" } else { "not met" }),
            (None, Some(t)) => format!("≥{t:.0}x ?"),
            _ => "-".into(),
        };
        println!(
            "{:>6} | {} | {} | {:>7} {:>14}",
            bytes,
            cell(ours),
            cell(theirs),
            ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            verdict
        );
    }
    println!("(generator, receiver, both gateways and the kernel share 2 cores: compare the ratio, not the absolutes)");
}

/// The chart of `bench gateway`: zero-loss Mpps per frame size, ztplane beside zerotier-one, and
/// the one-way latency at half that rate.
pub fn figure(records: &[Value]) -> Result<Figure> {
    ensure!(!records.is_empty(), "no gateway records");
    let sizes = distinct(records.iter().filter_map(|r| r["bytes"].as_u64()));
    let systems = distinct(records.iter().filter_map(|r| r["system"].as_str()));
    let series_name =
        |s: &str| if s == ZEROTIER { "zerotier-one 1.14.1, Linux bridge".to_string() } else { s.to_string() };
    let series = |key: &str| {
        systems
            .iter()
            .map(|s| BarSeries {
                name: series_name(s),
                baseline: *s == ZEROTIER,
                values: sizes
                    .iter()
                    .map(|b| {
                        records.iter().find(|r| r["system"] == *s && r["bytes"] == *b).and_then(|r| r[key].as_f64())
                    })
                    .collect(),
            })
            .collect()
    };
    let categories: Vec<String> = sizes.iter().map(|b| format!("{b} B")).collect();
    let panels = vec![
        Panel::Bars(Bars {
            title: "zero-loss throughput, LAN → gateway → ZeroTier → gateway → LAN".into(),
            x_label: "Ethernet frame size (FCS included)".into(),
            y_label: "Mpps".into(),
            categories: categories.clone(),
            series: series("mpps"),
            log_y: false,
            y_max: None,
            ratio_to_baseline: true,
        }),
        Panel::Bars(Bars {
            title: "one-way latency p99 at half the zero-loss rate (lower is better)".into(),
            x_label: "Ethernet frame size (FCS included)".into(),
            y_label: "µs".into(),
            categories,
            series: series("p99_us"),
            log_y: false,
            y_max: None,
            ratio_to_baseline: true,
        }),
    ];
    Ok(Figure {
        title: "bench gateway: a LAN bridged into ZeroTier, ztplane and zerotier-one 1.14.1".into(),
        notes: vec![
            "AF_XDP generator and receiver, both gateways and the kernel share 2 cores: the ratio (×N) carries over"
                .into(),
        ],
        columns: 2,
        panels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_parse() {
        let o =
            parse(&args("--seconds 1.5 --trials 5 --sizes 64,1518 --flows 2 --systems zerotier-one --logs")).unwrap();
        assert_eq!(
            (o.trial, o.trials, o.sizes.as_slice(), o.flows),
            (Duration::from_millis(1500), 5, &[64, 1518][..], 2)
        );
        assert_eq!((o.systems.as_slice(), o.logs), (&[GatewaySystem::ZeroTier][..], true));
        let d = parse(&[]).unwrap();
        assert_eq!((d.sizes.as_slice(), d.systems.len()), (&SIZES[..], 2));
        for bad in ["--seconds 0", "--seconds 600", "--trials 99", "--systems vpp", "--flows 0", "--bogus 1", "--sizes"]
        {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }
}
