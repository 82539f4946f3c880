//! `cargo xtask run` with no arguments: a gateway pair that needs nothing outside this project.
//! In namespaces: a ztplane node is the site's root (its own moon, `ztplanectl moon create`) and
//! the network's controller; two ztplane gateways bridge a LAN each into the network
//! (`--bridge NWID=lan0`); the LAN hosts, on one subnet across the two sites, ping each other and
//! move a checked TCP transfer; a table shows what each gateway did.
//!
//! ```text
//!   [site] ztplane root (moon) + controller     WAN 198.18.0.1
//!   [g1]   ztplane gateway  WAN 198.18.0.2      lan0 ── [lan1] 198.19.0.101
//!   [g2]   ztplane gateway  WAN 198.18.0.3      lan0 ── [lan2] 198.19.0.102
//! ```
use anyhow::{Context, Result, ensure};
use serde_json::json;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};
use ztplane_testkit::Topology;
use ztplane_testkit::gateway_bed::{BridgedHost, LAN_IFACE, bridged_host};
use ztplane_testkit::lan::Lan;
use ztplane_testkit::traffic::tcp_transfer;
use ztplane_testkit::zerotier::wait_until;
use ztplane_testkit::ztplane::ZtplaneNode;

const TRANSFER: usize = 64 << 20;
const JOIN: Duration = Duration::from_secs(60);

pub fn run(ztplane: &Path, ztplanectl: &Path) -> Result<()> {
    let started = Instant::now();
    let step = |what: &str| println!("demo: [{:5.1} s] {what}", started.elapsed().as_secs_f64());
    let homes = tempdir()?;
    let mut topology = Topology::new()?;
    let wan = Lan::with_queues(&mut topology, &["site", "g1", "g2"], 2)?;
    let mut lans: Vec<(&str, BridgedHost)> = Vec::new();
    for (gateway, host, ip) in [("g1", "lan1", 101), ("g2", "lan2", 102)] {
        lans.push((
            gateway,
            bridged_host(&mut topology, &wan.host(gateway)?.netns, host, Ipv4Addr::new(198, 19, 0, ip))?,
        ));
    }
    step("namespaces: site, g1, g2 on a WAN switch (198.18.0.0/24); lan1 behind g1, lan2 behind g2");

    // The site's root: a moon signed by the site node, handed to the gateways.
    let site_home = homes.join("site");
    let endpoint = format!("{}/9993", wan.host("site")?.ip);
    let out = std::process::Command::new(ztplanectl)
        .args(["moon", "create", "--home"])
        .arg(&site_home)
        .args(["--endpoint", &endpoint])
        .output()
        .context("running ztplanectl moon create")?;
    ensure!(out.status.success(), "ztplanectl moon create: {}", String::from_utf8_lossy(&out.stderr));
    let moon_file = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    let moon_name = moon_file.file_name().context("moon file name")?.to_owned();
    let site = ZtplaneNode::start(ztplane, &wan.host("site")?.netns, &site_home, &["eth0"], &[])?;
    let site_address = site.address()?;
    step(&format!("site node {site_address}: root of the site's moon at {endpoint}, controller"));

    let network = site.request_with(
        "POST",
        &format!("/controller/network/{site_address}______"),
        json!({"name": "gateway-demo", "private": true, "routes": [{"target": "198.19.0.0/24"}]}),
    )?;
    let nwid_hex = network["id"].as_str().context("no network ID")?.to_string();
    let nwid = u64::from_str_radix(&nwid_hex, 16)?;

    let mut gateways = Vec::new();
    for (name, lan) in &lans {
        let home = homes.join(name);
        std::fs::create_dir_all(home.join("moons.d"))?;
        std::fs::copy(&moon_file, home.join("moons.d").join(&moon_name))?;
        let args = ["--bridge", &format!("{nwid_hex}={LAN_IFACE}"), "--cores", "0,1"];
        let node = ZtplaneNode::start(ztplane, &wan.host(name)?.netns, &home, &["eth0"], &args)?;
        let member = json!({"authorized": true, "activeBridge": true, "noAutoAssignIps": true});
        site.request_with("POST", &format!("/controller/network/{nwid_hex}/member/{}", node.address()?), member)?;
        gateways.push((*name, node, lan));
    }
    for (name, node, _) in &gateways {
        wait_until(&format!("{name} bridging {nwid_hex}"), JOIN, || {
            let n = node.network(nwid).map_err(|e| format!("{e:#}"))?;
            if n["status"] == "OK" && n["bridge"] == true {
                Ok(())
            } else {
                Err(format!("{} {}", n["status"], n["bridge"]))
            }
        })?;
    }
    step(&format!("network {nwid_hex}: g1 and g2 authorized as active bridges, both bridging lan0"));

    let (l1, l2) = (&lans[0].1, &lans[1].1);
    wait_until("a ping from lan1 to lan2", Duration::from_secs(30), || {
        let ok = l1.netns.command("ping").args(["-c", "1", "-W", "1", &l2.ip.to_string()]).output();
        if ok.map(|o| o.status.success()).unwrap_or(false) { Ok(()) } else { Err("no reply".into()) }
    })?;
    let ping = l1.netns.command("ping").args(["-n", "-q", "-c", "20", "-i", "0.05", &l2.ip.to_string()]).output()?;
    let summary = String::from_utf8_lossy(&ping.stdout);
    let rtt = summary.lines().find(|l| l.contains("min/avg/max")).unwrap_or("").trim().to_string();
    step(&format!("lan1 → lan2: ARP across both gateways, 20 pings ({rtt})"));
    let secs = tcp_transfer(&l1.netns, &l2.netns, l2.ip, TRANSFER)?.as_secs_f64();
    step(&format!(
        "lan1 → lan2: TCP {} MiB in {secs:.2} s = {:.0} Mbit/s, every byte checked",
        TRANSFER >> 20,
        (TRANSFER * 8) as f64 / secs / 1e6
    ));

    println!();
    println!(
        "{:<8} {:<11} {:<7} {:<7} {:>8} {:>9} {:>9} {:>7}",
        "gateway", "address", "status", "bridge", "LAN MACs", "fast rx", "fast tx", "punted"
    );
    for (name, node, _) in &gateways {
        let n = node.network(nwid)?;
        let stats = node.request("GET", "/stats")?;
        let sum = |key: &str| -> u64 {
            stats["workers"].as_array().map_or(0, |w| w.iter().map(|x| x[key].as_u64().unwrap_or(0)).sum())
        };
        println!(
            "{:<8} {:<11} {:<7} {:<7} {:>8} {:>9} {:>9} {:>7}",
            name,
            node.address()?,
            n["status"].as_str().unwrap_or("?"),
            n["bridge"],
            n["ztplane"]["lan"]["macs"].as_u64().unwrap_or(0),
            sum("fast_rx"),
            sum("fast_tx"),
            sum("punted"),
        );
    }
    println!();
    println!("demo: no zerotier-one took part: root, controller and gateways are ztplane; everything is removed now");
    drop(gateways);
    drop(site);
    let _ = std::fs::remove_dir_all(&homes);
    Ok(())
}

/// A fresh directory for the nodes' homes.
fn tempdir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ztplane-gateway-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
