//! A pktgen-style traffic generator on AF_XDP, with its own receiver and a latency histogram.
//!
//! The kernel's pktgen is not available everywhere (not on this project's CI machine), and it
//! cannot measure latency without hardware timestamps. This one sends Ethernet/IPv4/UDP frames of
//! one size in `flows` 5-tuples (the UDP source port varies; the destination port is the one the
//! receiver's XDP program steers) at a paced or unlimited rate for a bounded time and count, and
//! receives them on another interface (a veth peer in tests, a cabled or looped port on real
//! NICs). Each frame carries a flow id, a per-flow sequence number and its CLOCK_MONOTONIC TX
//! time, so the receiver counts loss, reordering and duplicates per flow and records one-way
//! latency in an HDR histogram.
//!
//! Modules, one concept each: [`frame`] (layout, sizes, checksums), [`pace`] (token bucket),
//! [`xsk`] (socket + UMEM), [`tx`] (the generator), [`rx`] (the receiver), [`report`].
//! [`run`] ties them together; the receiver's XDP program is the caller's business ([`Steer`]),
//! so this kit does not depend on the dataplane crate: `ztplane-bench pktgen` and the test pass
//! ztplane's own steering program.
//!
//! `deploy/pktgen/` holds kernel-pktgen scripts with the same parameters for real NICs.
pub mod frame;
pub mod pace;
pub mod report;
pub mod rx;
pub mod tx;
pub mod xsk;

use crate::{Netns, is_benchmark_addr};
use anyhow::{Context, Result, anyhow, bail, ensure};
use frame::{FlowAddr, MAX_SIZE, MIN_SIZE};
pub use report::Report;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
pub use xsk::Mode;

/// No run sends more than this many frames, whatever `count` and `rate` say.
pub const HARD_CAP: u64 = 1_000_000_000;
/// No run lasts longer than this.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// How long the receiver waits for stragglers after the generator is done.
pub const GRACE: Duration = Duration::from_millis(500);

/// One run's parameters. Sizes follow the RFC 2544 convention (see [`frame`]).
#[derive(Clone, Debug)]
pub struct Config {
    pub tx_iface: String,
    pub tx_queue: u32,
    pub rx_iface: String,
    /// Receiving queues, one socket each: on a NIC with RSS, all queues the flows may hash to.
    pub rx_queues: Vec<u32>,
    /// Ethernet frame size including FCS, 64..=1518.
    pub size: usize,
    /// Distinct 5-tuples: UDP source ports `src_port .. src_port + flows`.
    pub flows: u16,
    /// Packets per second; `None` for as fast as the TX ring takes them.
    pub rate: Option<u64>,
    pub duration: Duration,
    /// Frames to send at most; default `rate × duration` (paced) or [`HARD_CAP`].
    pub count: Option<u64>,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    /// The port the receiver's XDP program steers to the AF_XDP sockets.
    pub dst_port: u16,
    pub mode: Mode,
    /// Recompute every received frame's IPv4 and UDP checksums (costs RX time at high rates).
    pub verify: bool,
}

impl Config {
    /// A configuration with the defaults of `ztplane-bench pktgen`: 64 B, 1 flow, 10 kpps, 1 s,
    /// 198.18.0.1:10000 → 198.19.0.1:9 (discard), MACs to be filled in.
    pub fn new(tx_iface: &str, rx_iface: &str) -> Config {
        Config {
            tx_iface: tx_iface.to_string(),
            tx_queue: 0,
            rx_iface: rx_iface.to_string(),
            rx_queues: vec![0],
            size: MIN_SIZE,
            flows: 1,
            rate: Some(10_000),
            duration: Duration::from_secs(1),
            count: None,
            src_mac: [0x02, 0, 0, 0, 0, 1],
            dst_mac: [0x02, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(198, 18, 0, 1),
            dst_ip: Ipv4Addr::new(198, 19, 0, 1),
            src_port: 10_000,
            dst_port: 9,
            mode: Mode::Auto,
            verify: false,
        }
    }

    pub fn validate(&self) -> Result<()> {
        ensure!((MIN_SIZE..=MAX_SIZE).contains(&self.size), "size {} outside {MIN_SIZE}..={MAX_SIZE}", self.size);
        ensure!(self.flows >= 1, "flows must be at least 1");
        ensure!(
            u32::from(self.src_port) + u32::from(self.flows) <= 65_536,
            "UDP source ports {}+{} overflow",
            self.src_port,
            self.flows
        );
        ensure!(self.rate != Some(0), "rate must be positive (or max)");
        ensure!(!self.duration.is_zero() && self.duration <= MAX_DURATION, "duration must be in (0, 3600] s");
        ensure!(!self.rx_queues.is_empty(), "at least one RX queue");
        for ip in [self.src_ip, self.dst_ip] {
            ensure!(is_benchmark_addr(ip), "{ip} is outside 198.18.0.0/15 (RFC 2544 benchmark addresses only)");
        }
        Ok(())
    }

    /// The most frames this run sends.
    pub fn packet_cap(&self) -> u64 {
        let by_rate = self.rate.map(|r| (r as u128 * self.duration.as_nanos() / 1_000_000_000) as u64);
        self.count.or(by_rate).unwrap_or(HARD_CAP).min(HARD_CAP)
    }

    /// The 5-tuple of each flow.
    pub fn flow_addrs(&self) -> Vec<FlowAddr> {
        (0..self.flows)
            .map(|i| FlowAddr {
                src_mac: self.src_mac,
                dst_mac: self.dst_mac,
                src_ip: self.src_ip,
                dst_ip: self.dst_ip,
                src_port: self.src_port + i,
                dst_port: self.dst_port,
            })
            .collect()
    }
}

/// What the generator and the receiver tell each other.
#[derive(Debug)]
pub struct Control {
    /// Frames the generator sent; `u64::MAX` while it is still sending.
    pub sent: AtomicU64,
    /// Stop now (an error on the other side).
    pub abort: AtomicBool,
}

impl Default for Control {
    fn default() -> Self {
        Control { sent: AtomicU64::new(u64::MAX), abort: AtomicBool::new(false) }
    }
}

/// What a [`Steer`] hook must arrange: UDP to `dst_port` arriving on `ifname` goes to the
/// AF_XDP socket of its queue.
#[derive(Debug)]
pub struct SteerRequest {
    pub ifname: String,
    pub dst_port: u16,
    /// (RX queue, AF_XDP socket fd).
    pub sockets: Vec<(u32, RawFd)>,
}

/// Attaches an XDP program that redirects the generator's frames to the receiver's sockets. It
/// runs on the receiver's thread (in its namespace) and returns a guard that detaches the program
/// when dropped, after the run.
pub type Steer = Box<dyn FnOnce(&SteerRequest) -> Result<Box<dyn std::any::Any>> + Send>;

/// Runs the receiver (in `rx_netns`, if given) and the generator (in `tx_netns`) and reports.
/// Both threads are started here; the generator starts once the receiver is steered.
pub fn run(config: &Config, tx_netns: Option<&Netns>, rx_netns: Option<&Netns>, steer: Steer) -> Result<Report> {
    config.validate()?;
    let control = Arc::new(Control::default());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
    let rx_job = {
        let config = config.clone();
        let control = control.clone();
        move || -> Result<rx::RxStats> {
            let setup = (|| {
                let receiver =
                    rx::Receiver::open(&config.rx_iface, &config.rx_queues, config.mode, config.flows, config.verify)?;
                let request = SteerRequest {
                    ifname: config.rx_iface.clone(),
                    dst_port: config.dst_port,
                    sockets: receiver.sockets(),
                };
                let guard = steer(&request).context("steering the receiver")?;
                Ok((receiver, guard))
            })();
            let (mut receiver, _guard) = match setup {
                Ok(ok) => ok,
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow!("{e:#}")));
                    return Err(e);
                }
            };
            let _ = ready_tx.send(Ok(()));
            receiver.run(&control, GRACE)
        }
    };
    let rx_handle = match rx_netns {
        Some(ns) => ns.thread(rx_job)?,
        None => std::thread::spawn(rx_job),
    };
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = rx_handle.join();
            return Err(e.context(format!("receiver on {}", config.rx_iface)));
        }
        Err(_) => bail!("receiver thread on {} ended before it was ready", config.rx_iface),
    }
    let tx_job = {
        let config = config.clone();
        let control = control.clone();
        move || {
            let stop = AtomicBool::new(false);
            let result = tx::generate(&config, &stop);
            match &result {
                Ok(stats) => control.sent.store(stats.completed, Ordering::Release),
                Err(_) => control.abort.store(true, Ordering::Relaxed),
            }
            result
        }
    };
    let tx_result = match tx_netns {
        Some(ns) => ns.run(tx_job),
        None => std::thread::spawn(tx_job).join().map_err(|_| anyhow!("generator thread panicked")),
    };
    if tx_result.is_err() {
        control.abort.store(true, Ordering::Relaxed);
    }
    let rx_stats = rx_handle.join().map_err(|_| anyhow!("receiver thread panicked"))?;
    let tx_stats = tx_result?.with_context(|| format!("generator on {}", config.tx_iface))?;
    let rx_stats = rx_stats.with_context(|| format!("receiver on {}", config.rx_iface))?;
    Ok(Report::new(config, &tx_stats, &rx_stats))
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of the probe's TX time, shared by all namespaces.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = text.trim().split(':').collect();
    ensure!(parts.len() == 6, "MAC {text:?}: want six hex bytes separated by ':'");
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        *byte = u8::from_str_radix(part, 16).with_context(|| format!("MAC {text:?}"))?;
    }
    Ok(mac)
}

/// The MAC address of an interface in the calling thread's namespace (from /sys).
pub fn iface_mac(ifname: &str) -> Result<[u8; 6]> {
    let path = format!("/sys/class/net/{ifname}/address");
    parse_mac(&std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packet_cap_bounds_every_run() {
        let mut c = Config::new("a", "b");
        c.rate = Some(10_000);
        c.duration = Duration::from_millis(2500);
        assert_eq!(c.packet_cap(), 25_000);
        c.count = Some(100);
        assert_eq!(c.packet_cap(), 100);
        c.count = None;
        c.rate = None;
        assert_eq!(c.packet_cap(), HARD_CAP);
        c.count = Some(u64::MAX);
        assert_eq!(c.packet_cap(), HARD_CAP);
    }

    #[test]
    fn flows_spread_over_source_ports() {
        let mut c = Config::new("a", "b");
        c.flows = 4;
        let addrs = c.flow_addrs();
        let ports: Vec<u16> = addrs.iter().map(|a| a.src_port).collect();
        assert_eq!(ports, [10_000, 10_001, 10_002, 10_003]);
        assert!(addrs.iter().all(|a| a.dst_port == 9 && a.dst_ip == c.dst_ip && a.src_ip == c.src_ip));
        // Distinct 5-tuples and distinct frames (the flow id is in the payload too).
        let frames: std::collections::HashSet<Vec<u8>> =
            addrs.iter().enumerate().map(|(i, a)| frame::Template::new(a, i as u16, 64).bytes).collect();
        assert_eq!(frames.len(), 4);
    }

    #[test]
    fn configurations_outside_the_rules_are_refused() {
        let ok = Config::new("a", "b");
        ok.validate().expect("defaults are valid");
        let cases: [fn(&mut Config); 7] = [
            |c| c.size = 63,
            |c| c.size = 1519,
            |c| c.flows = 0,
            |c| c.rate = Some(0),
            |c| c.duration = Duration::ZERO,
            |c| c.dst_ip = Ipv4Addr::new(10, 0, 0, 1),
            |c| c.src_port = 65_535,
        ];
        for (i, change) in cases.iter().enumerate() {
            let mut c = ok.clone();
            c.flows = c.flows.max(2);
            change(&mut c);
            assert!(c.validate().is_err(), "case {i}");
        }
    }

    #[test]
    fn macs_parse() {
        assert_eq!(parse_mac("02:00:0a:ff:10:01\n").unwrap(), [2, 0, 10, 255, 16, 1]);
        assert!(parse_mac("02:00:0a:ff:10").is_err());
    }
}
