//! `cargo xtask run` with no arguments: two ztplane nodes join a ZeroTier network whose moon and
//! controller is a real zerotier-one, in namespaces; a ping and a TCP transfer cross the
//! overlay; a table shows what each node did. Two zerotier-one members (c, d) then make the same
//! transfer: the baseline of the same run.
//!
//! ```text
//!   [moon] zerotier-one moon + controller      198.18.0.1
//!   [a]    ztplane node   eth0 198.18.0.2      overlay 198.19.0.21
//!   [b]    ztplane node   eth0 198.18.0.3      overlay 198.19.0.22
//!   [c, d] zerotier-one   eth0 198.18.0.4, .5  overlay 198.19.0.31, .32
//! ```
//! Until ztplane has a controller of its own, the moon is zerotier-one from `../shared/ref` or
//! `--zerotier PATH`.
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use ztplane_testkit::Topology;
use ztplane_testkit::zerotier::{Lan, Moon, NodeConfig, ZeroTierBinary, ZeroTierNode};
use ztplane_testkit::ztplane::ZtplaneNode;

const TRANSFER: usize = 64 << 20;

/// A temporary directory, removed on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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
    let root = std::env::temp_dir().join(format!("ztplane-demo-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    let _cleanup = Dir(root.clone());
    println!(
        "demo: namespaces moon, a, b (and c, d for the baseline) on one switch (198.18.0.0/24, 2 queues per link)"
    );
    let mut topo = Topology::new()?;
    let lan = Lan::with_queues(&mut topo, &["moon", "a", "b", "c", "d"], 2)?;
    let moon = Moon::prepare(&zerotier, lan.host("moon")?.ip)?;
    println!("demo: zerotier-one moon + controller {} ({})", moon.address(), zerotier.display());
    let controller = ZeroTierNode::start(&zerotier, &lan.host("moon")?.netns, NodeConfig::moon(&moon))?;
    let nwid = controller.create_private_network("ztplane-demo")?;
    println!("demo: network {nwid:016x} (private, 198.19.0.0/24)");
    let mut nodes = Vec::new();
    for (host, ip) in [("a", "198.19.0.21"), ("b", "198.19.0.22")] {
        let home = root.join(host);
        std::fs::create_dir_all(home.join("moons.d"))?;
        std::fs::write(home.join("moons.d").join(&moon.file_name), &moon.bytes)?;
        let ns = lan.host(host)?.netns.clone();
        let node = ZtplaneNode::start(binary, &ns, &home, &["eth0"], &["--join", &format!("{nwid:016x}")])?;
        let address = node.address()?;
        controller.authorize(nwid, &address, Some(ip))?;
        println!("demo: ztplane node {address} in {host}, authorized as {ip}");
        nodes.push((host, ip, node));
    }
    for (host, ip, node) in &nodes {
        let got = node.wait_for_ip(nwid, Duration::from_secs(60)).with_context(|| format!("{host} joining"))?;
        anyhow::ensure!(got == *ip, "{host} got {got}, expected {ip}");
    }
    let (a_ns, b_ns) = (lan.host("a")?.netns.clone(), lan.host("b")?.netns.clone());
    ztplane_testkit::zerotier::wait_until("a first ping a → b", Duration::from_secs(30), || {
        let ok =
            a_ns.command("ping").args(["-c", "1", "-W", "2", "198.19.0.22"]).output().map_err(|e| e.to_string())?;
        if ok.status.success() { Ok(()) } else { Err("no reply".into()) }
    })?;
    let ping = a_ns.command("ping").args(["-c", "10", "-i", "0.2", "198.19.0.22"]).output()?;
    let ping_text = String::from_utf8_lossy(&ping.stdout).to_string();
    let rtt = ping_text
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .and_then(|l| l.split('/').nth(4))
        .unwrap_or("?")
        .to_string();
    let loss = ping_text.lines().find(|l| l.contains("packet loss")).unwrap_or("").to_string();
    println!("demo: ping a → b: {}", loss.trim());
    let (secs, checked) = transfer(&a_ns, &b_ns, "198.19.0.22")?;
    println!(
        "demo: TCP a → b: {} MiB in {secs:.2} s = {:.2} Gbit/s, every byte checked: {checked}",
        TRANSFER >> 20,
        (TRANSFER * 8) as f64 / secs / 1e9
    );
    println!();
    println!(
        "{:<5} {:<11} {:<13} {:<7} {:>9} {:>9} {:>8} {:>8} {:>7}",
        "node", "address", "overlay", "status", "fast rx", "fast tx", "tap rx", "tap tx", "punted"
    );
    for (host, ip, node) in &nodes {
        let net = node.network(nwid)?;
        let stats = node.request("GET", "/stats")?;
        let sum = |key: &str| -> u64 {
            stats["workers"].as_array().map_or(0, |w| w.iter().map(|x| x[key].as_u64().unwrap_or(0)).sum())
        };
        println!(
            "{:<5} {:<11} {:<13} {:<7} {:>9} {:>9} {:>8} {:>8} {:>7}",
            host,
            node.address()?,
            ip,
            net["status"].as_str().unwrap_or("?"),
            sum("fast_rx"),
            sum("fast_tx"),
            sum("tap_rx"),
            sum("tap_tx"),
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
    println!("ping rtt avg {rtt} ms");
    drop(nodes);
    // The same transfer between two zerotier-one members on the same switch, as the baseline.
    println!();
    println!("demo: baseline: two zerotier-one members (c, d) on the same switch and network");
    let c = ZeroTierNode::start(&zerotier, &lan.host("c")?.netns, NodeConfig::member(&moon))?;
    let d = ZeroTierNode::start(&zerotier, &lan.host("d")?.netns, NodeConfig::member(&moon))?;
    for (node, ip) in [(&c, "198.19.0.31"), (&d, "198.19.0.32")] {
        controller.authorize(nwid, node.address(), Some(ip))?;
        node.join(nwid)?;
    }
    for node in [&c, &d] {
        node.wait_for_ip(nwid, Duration::from_secs(60))?;
    }
    let (c_ns, d_ns) = (lan.host("c")?.netns.clone(), lan.host("d")?.netns.clone());
    ztplane_testkit::zerotier::wait_until("a first ping c → d", Duration::from_secs(30), || {
        let ok =
            c_ns.command("ping").args(["-c", "1", "-W", "2", "198.19.0.32"]).output().map_err(|e| e.to_string())?;
        if ok.status.success() { Ok(()) } else { Err("no reply".into()) }
    })?;
    let (base_secs, base_checked) = transfer(&c_ns, &d_ns, "198.19.0.32")?;
    let gbps = |secs: f64| (TRANSFER * 8) as f64 / secs / 1e9;
    println!();
    println!("{:<28} {:>10} {:>9}  intact", "TCP, 1 flow, 64 MiB", "Gbit/s", "ratio");
    println!("{:<28} {:>10.2} {:>9}  {}", "zerotier-one ↔ zerotier-one", gbps(base_secs), "1.00", base_checked);
    println!("{:<28} {:>10.2} {:>9.2}  {}", "ztplane ↔ ztplane", gbps(secs), gbps(secs) / gbps(base_secs), checked);
    drop((c, d));
    drop(controller);
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
