//! `cargo xtask run interop`: two ztplane nodes join a ZeroTier network whose moon and
//! controller is a real zerotier-one, in namespaces; a ping and a TCP transfer cross the
//! overlay; a table shows what each node did. Two zerotier-one members (c, d) of the same network
//! make the same transfer: the baseline of the same run (`ztplane_testkit::overlay`).
//!
//! ```text
//!   [moon] zerotier-one moon + controller      198.18.0.1
//!   [a]    ztplane node   eth0 198.18.0.2      overlay 198.19.0.21
//!   [b]    ztplane node   eth0 198.18.0.3      overlay 198.19.0.22
//!   [c, d] zerotier-one   eth0 198.18.0.4, .5  overlay 198.19.0.23, .24
//! ```
//! The moon is zerotier-one from `../shared/ref` or `--zerotier PATH` (the self-contained demo
//! with a ztplane root and controller is `crate::gateway_demo`).
use anyhow::{Result, bail};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use ztplane_testkit::overlay::{Kind, OverlayBed, Process};
use ztplane_testkit::zerotier::ZeroTierBinary;

const TRANSFER: usize = 64 << 20;

pub fn run(binary: &Path, zerotier: Option<PathBuf>) -> Result<()> {
    let zerotier = match zerotier {
        Some(p) => p,
        None => match ZeroTierBinary::locate() {
            Ok(p) => p,
            Err(_) => {
                println!(
                    "demo: needs zerotier-one as moon and controller (../shared/ref/zerotier-one or --zerotier PATH); neither is here"
                );
                bail!("no zerotier-one for the demo's moon");
            }
        },
    };
    println!(
        "demo: namespaces moon, a, b (ztplane) and c, d (zerotier-one) on one switch (198.18.0.0/24, 2 queues per link)"
    );
    let members = [("a", Kind::Ztplane), ("b", Kind::Ztplane), ("c", Kind::ZeroTier), ("d", Kind::ZeroTier)];
    let bed = OverlayBed::start(&zerotier, binary, &members, &[], |line| println!("demo: {line}"))?;
    bed.wait_ping("a", "b")?;
    let rtt = bed.ping_rtt_ms("a", "b", 10)?;
    let (a, b) = (bed.member("a")?, bed.member("b")?);
    let (secs, checked) = transfer(&a.netns, &b.netns, &b.ip)?;
    println!(
        "demo: TCP a → b: {} MiB in {secs:.2} s = {:.2} Gbit/s, every byte checked: {checked}",
        TRANSFER >> 20,
        (TRANSFER * 8) as f64 / secs / 1e9
    );
    let nodes: Vec<(&str, &str, &ztplane_testkit::ztplane::ZtplaneNode)> = bed
        .members
        .iter()
        .filter_map(|m| match &m.process {
            Process::Ztplane(n) => Some((m.host.as_str(), m.ip.as_str(), n)),
            Process::ZeroTier(_) => None,
        })
        .collect();
    println!();
    println!(
        "{:<5} {:<11} {:<13} {:<7} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7}",
        "node", "address", "overlay", "status", "fast rx", "fast tx", "tap rx", "tap tx", "merged", "punted"
    );
    for (host, ip, node) in &nodes {
        let net = node.network(bed.nwid)?;
        let stats = node.request("GET", "/stats")?;
        let sum = |key: &str| -> u64 {
            stats["workers"].as_array().map_or(0, |w| w.iter().map(|x| x[key].as_u64().unwrap_or(0)).sum())
        };
        println!(
            "{:<5} {:<11} {:<13} {:<7} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7}",
            host,
            node.address()?,
            ip,
            net["status"].as_str().unwrap_or("?"),
            sum("fast_rx"),
            sum("fast_tx"),
            sum("tap_rx"),
            sum("tap_tx"),
            sum("tap_merged_writes"),
            sum("punted")
        );
    }
    println!();
    println!("per worker (rx/tx on AF_XDP, items processed for any owner, batches stolen back):");
    for (host, _, node) in &nodes {
        let stats = node.request("GET", "/stats")?;
        let line: Vec<String> = stats["workers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| {
                format!(
                    "w{} rx {} tx {} processed {} stolen {}",
                    w["index"], w["rx"], w["tx"], w["processed"], w["stolen"]
                )
            })
            .collect();
        println!("  {host}: {}", line.join(" | "));
    }
    println!();
    let peers = nodes[0].2.request("GET", "/peer")?;
    println!("a's peers (listpeers):");
    for p in peers.as_array().into_iter().flatten() {
        let path =
            p["paths"].as_array().and_then(|a| a.iter().find(|x| x["preferred"] == true)).map(|x| x["address"].clone());
        println!(
            "  {} {:<6} latency {:>4} ms  path {}",
            p["address"].as_str().unwrap_or("?"),
            p["role"].as_str().unwrap_or("?"),
            p["latency"],
            path.unwrap_or(Value::Null)
        );
    }
    println!("ping a → b: rtt avg {rtt:.3} ms");
    // The same transfer between the two zerotier-one members, as the baseline.
    println!();
    println!("demo: baseline: the same transfer between zerotier-one members c and d");
    bed.wait_ping("c", "d")?;
    let (c, d) = (bed.member("c")?, bed.member("d")?);
    let (base_secs, base_checked) = transfer(&c.netns, &d.netns, &d.ip)?;
    let gbps = |secs: f64| (TRANSFER * 8) as f64 / secs / 1e9;
    println!();
    println!("{:<28} {:>10} {:>9}  intact", "TCP, 1 flow, 64 MiB", "Gbit/s", "ratio");
    println!("{:<28} {:>10.2} {:>9}  {}", "zerotier-one ↔ zerotier-one", gbps(base_secs), "1.00", base_checked);
    println!("{:<28} {:>10.2} {:>9.2}  {}", "ztplane ↔ ztplane", gbps(secs), gbps(secs) / gbps(base_secs), checked);
    drop(bed);
    println!("demo: done; nodes stopped, namespaces removed");
    Ok(())
}

/// The bytes the demo sends: a pattern both ends can build up front.
fn pattern() -> Vec<u8> {
    (0..TRANSFER).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[2]).collect()
}

/// TCP from `from` to `to_ip`: returns seconds and whether every byte arrived intact. Both ends
/// build the data before the clock starts, and the receiver compares as it reads (memcmp), so
/// the demo measures the overlay, not itself.
fn transfer(from: &ztplane_testkit::Netns, to: &ztplane_testkit::Netns, to_ip: &str) -> Result<(f64, bool)> {
    let listener = to.run(|| TcpListener::bind("0.0.0.0:5201"))??;
    let server = to.thread(move || -> Result<bool> {
        let expected = pattern();
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut buf = vec![0u8; 1 << 18];
        let (mut total, mut same) = (0usize, true);
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            same &= expected.get(total..total + n) == Some(&buf[..n]);
            total += n;
        }
        Ok(same && total == TRANSFER)
    })?;
    let addr = format!("{to_ip}:5201");
    let secs = from.run(move || -> Result<f64> {
        let data = pattern();
        let start = Instant::now();
        let mut s = TcpStream::connect_timeout(&addr.parse()?, Duration::from_secs(10))?;
        s.write_all(&data)?;
        s.shutdown(std::net::Shutdown::Write)?;
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        Ok(start.elapsed().as_secs_f64())
    })??;
    let intact = server.join().map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    Ok((secs, intact))
}
