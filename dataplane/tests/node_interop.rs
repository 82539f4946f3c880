//! ztplane as a ZeroTier node beside real zerotier-one 1.14.1 nodes (`../shared/ref`), in
//! namespaces: a zerotier-one moon + controller, a zerotier-one member and ztplane members on one
//! switch (198.18.0.0/24 underlay, 198.19.0.0/24 overlay).
//!
//! Needs root (namespaces, XDP, taps) and the reference binary.
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;
use ztplane_testkit::Topology;
use ztplane_testkit::lan::Lan;
use ztplane_testkit::traffic::{tcp_transfer, tcp_transfer_mss};
use ztplane_testkit::zerotier::{Moon, NodeConfig, ZeroTierBinary, ZeroTierNode, wait_until};
use ztplane_testkit::ztplane::ZtplaneNode;

fn ztplane() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ztplane"))
}

/// A home directory for a ztplane node with the moon in `moons.d/`; removed on drop.
struct Home(PathBuf);

impl Home {
    fn new(label: &str, moon: &Moon) -> Home {
        // Tests run in parallel: every home is new, whatever its label.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ztplane-home-{}-{n}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("moons.d")).unwrap();
        std::fs::write(dir.join("moons.d").join(&moon.file_name), &moon.bytes).unwrap();
        Home(dir)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ping(ns: &ztplane_testkit::Netns, target: &str, count: u32) -> bool {
    ns.command("ping")
        .args(["-c", &count.to_string(), "-W", "2", "-i", "0.3", target])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Pings until the first reply (ARP and paths settle), then `count` strict pings.
fn ping_settled(ns: &ztplane_testkit::Netns, target: &str) -> anyhow::Result<()> {
    wait_until(&format!("first reply from {target}"), Duration::from_secs(30), || {
        if ping(ns, target, 1) { Ok(()) } else { Err("no reply".into()) }
    })?;
    anyhow::ensure!(ping(ns, target, 3), "3 pings to {target} did not all come back");
    Ok(())
}

struct Rig {
    lan: Lan,
    moon_node: ZeroTierNode,
    member: ZeroTierNode,
    nwid: u64,
    moon: Moon,
    _dirs: tempdir::Dir,
    // Last: namespaces go after everything running in them.
    _topo: Topology,
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn rig(hosts: &[&str]) -> Rig {
    let binary = ZeroTierBinary::locate().expect("zerotier-one from ../shared/ref");
    let mut topo = Topology::new().unwrap();
    let lan = Lan::with_queues(&mut topo, hosts, 2).unwrap();
    let dir = std::env::temp_dir().join(format!("ztplane-interop-{}-{}", std::process::id(), hosts.join("-")));
    std::fs::create_dir_all(&dir).unwrap();
    let moon = Moon::prepare(&binary, lan.host("moon").unwrap().ip).unwrap();
    let moon_node = ZeroTierNode::start(&binary, &lan.host("moon").unwrap().netns, NodeConfig::moon(&moon)).unwrap();
    let member = ZeroTierNode::start(&binary, &lan.host("zt").unwrap().netns, NodeConfig::member(&moon)).unwrap();
    let nwid = moon_node.create_private_network("interop").unwrap();
    moon_node.authorize(nwid, member.address(), Some("198.19.0.11")).unwrap();
    member.join(nwid).unwrap();
    Rig { lan, moon_node, member, nwid, moon, _dirs: tempdir::Dir(dir), _topo: topo }
}

/// Starts a ztplane member on host `host`, authorizes it with `ip`, waits for the address.
fn ztplane_member(rig: &Rig, host: &str, home: &Home, ip: &str) -> ZtplaneNode {
    let ns = rig.lan.host(host).unwrap().netns.clone();
    let nwid = format!("{:016x}", rig.nwid);
    let node = ZtplaneNode::start(ztplane(), &ns, &home.0, &["eth0"], &["--join", &nwid, "--cores", "0,1"]).unwrap();
    let address = node.address().unwrap();
    rig.moon_node.authorize(rig.nwid, &address, Some(ip)).unwrap();
    let got = node.wait_for_ip(rig.nwid, Duration::from_secs(60)).unwrap();
    assert_eq!(got, ip);
    node
}

#[test]
fn ztplane_and_zerotier_one_carry_frames_both_ways() {
    let rig = rig(&["moon", "zt", "zp"]);
    let home = Home::new("zp", &rig.moon);
    let zp = ztplane_member(&rig, "zp", &home, "198.19.0.21");
    rig.member.wait_for_ip(rig.nwid, Duration::from_secs(60)).unwrap();
    let (zt_ns, zp_ns) = (&rig.lan.host("zt").unwrap().netns, &rig.lan.host("zp").unwrap().netns);

    // ARP through the ADI group, then ping both ways.
    ping_settled(zp_ns, "198.19.0.11").unwrap();
    ping_settled(zt_ns, "198.19.0.21").unwrap();
    // TCP both ways, every byte checked; 2800-byte frames travel as two datagrams.
    tcp_transfer(zp_ns, zt_ns, v4("198.19.0.11"), 4 << 20).unwrap();
    tcp_transfer(zt_ns, zp_ns, v4("198.19.0.21"), 4 << 20).unwrap();
    // IPv6 neighbour discovery over the overlay (link-local addresses of the taps).
    let zt_dev = rig.member.tap_name(rig.nwid).unwrap();
    let zp_dev = zp.network(rig.nwid).unwrap()["portDeviceName"].as_str().unwrap().to_string();
    let zt_ll = link_local(zt_ns, &zt_dev);
    wait_until("ping6 to the zerotier-one member's link-local address", Duration::from_secs(20), || {
        let ok = zp_ns.command("ping").args(["-6", "-c", "1", "-W", "2", &format!("{zt_ll}%{zp_dev}")]).output();
        if ok.map(|o| o.status.success()).unwrap_or(false) { Ok(()) } else { Err("no reply".into()) }
    })
    .unwrap();
    // A broadcast frame from zerotier-one reaches ztplane's host.
    let receiver = zp_ns.run(|| UdpSocket::bind("0.0.0.0:5555")).unwrap().unwrap();
    receiver.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let got = wait_until("a broadcast datagram", Duration::from_secs(15), || {
        zt_ns
            .run(|| {
                let s = UdpSocket::bind("0.0.0.0:0")?;
                s.set_broadcast(true)?;
                s.send_to(b"ztplane-broadcast", "198.19.0.255:5555")
            })
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        match receiver.recv_from(&mut buf) {
            Ok((n, _)) => Ok(buf[..n].to_vec()),
            Err(e) => Err(e.to_string()),
        }
    })
    .unwrap();
    assert_eq!(got, b"ztplane-broadcast");
    // The frames of a known peer stayed in the workers.
    let stats = zp.request("GET", "/stats").unwrap();
    let fast: u64 = stats["workers"].as_array().unwrap().iter().map(|w| w["fast_rx"].as_u64().unwrap_or(0)).sum();
    assert!(fast > 1000, "only {fast} frames went through the data path: {stats}");
    // One peer's traffic arrives on one queue (one owner), yet both workers processed it.
    let workers = stats["workers"].as_array().unwrap();
    let (owner, other) = if workers[0]["rx"].as_u64() >= workers[1]["rx"].as_u64() { (0, 1) } else { (1, 0) };
    assert!(
        workers[other]["processed"].as_u64().unwrap_or(0) > 0,
        "worker {other} processed nothing of worker {owner}'s traffic: {stats}"
    );
    // The peer list shows the moon and the member, both with a path.
    let peers = zp.request("GET", "/peer").unwrap();
    for who in [rig.moon_node.address(), rig.member.address()] {
        let p = peers
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["address"] == who)
            .unwrap_or_else(|| panic!("{who} not in {peers}"));
        assert!(!p["paths"].as_array().unwrap().is_empty(), "{who} has no path: {p}");
    }

    // The membership gate: once zerotier-one's member is deauthorized (the controller revokes
    // its certificate), its frames stop at ztplane's gate.
    let gated =
        |zp: &ZtplaneNode| zp.request("GET", "/stats").unwrap()["node"]["frames_dropped_gate"].as_u64().unwrap_or(0);
    let before = gated(&zp);
    rig.moon_node.deauthorize(rig.nwid, rig.member.address()).unwrap();
    wait_until("deauthorized member shut out", Duration::from_secs(30), || {
        if ping(zt_ns, "198.19.0.21", 1) { Err("still answered".into()) } else { Ok(()) }
    })
    .unwrap();
    assert!(gated(&zp) > before, "ztplane's gate stopped nothing: the member's frames never arrived");
    drop(zp);
}

#[test]
fn two_ztplane_members_direct_and_relayed_and_a_restart() {
    let rig = rig(&["moon", "zt", "zp", "zq"]);
    // zq never reaches the zerotier-one member directly: that traffic goes through the moon.
    rig.lan.block("zq", "zt").unwrap();
    let (hp, hq) = (Home::new("zp", &rig.moon), Home::new("zq", &rig.moon));
    let zp = ztplane_member(&rig, "zp", &hp, "198.19.0.21");
    let zq = ztplane_member(&rig, "zq", &hq, "198.19.0.22");
    rig.member.wait_for_ip(rig.nwid, Duration::from_secs(60)).unwrap();
    let (zp_ns, zq_ns) = (&rig.lan.host("zp").unwrap().netns, &rig.lan.host("zq").unwrap().netns);
    // ztplane ↔ ztplane, directly.
    ping_settled(zq_ns, "198.19.0.21").unwrap();
    tcp_transfer(zq_ns, zp_ns, v4("198.19.0.21"), 2 << 20).unwrap();
    tcp_transfer(zp_ns, zq_ns, v4("198.19.0.22"), 2 << 20).unwrap();
    // A small MSS: 64 KiB super-frames of about 130 segments, more than one hand-off batch.
    tcp_transfer_mss(zp_ns, zq_ns, v4("198.19.0.22"), 2 << 20, Some(500)).unwrap();
    // Tap offloads (on by default): the kernel handed over TSO super-frames and took merged ones.
    for (node, name) in [(&zp, "zp"), (&zq, "zq")] {
        let stats = node.request("GET", "/stats").unwrap();
        let sum =
            |key: &str| stats["workers"].as_array().unwrap().iter().map(|w| w[key].as_u64().unwrap()).sum::<u64>();
        assert!(sum("tap_super_reads") > 0, "{name}: no TSO super-frame read: {stats}");
        assert!(sum("tap_merged_writes") > 0, "{name}: no merged write: {stats}");
        assert_eq!(sum("tap_write_errors"), 0, "{name}: {stats}");
    }
    // ztplane ↔ zerotier-one through the moon (direct path blocked).
    ping_settled(zq_ns, "198.19.0.11").unwrap();
    let peers = zq.request("GET", "/peer").unwrap();
    let zt = peers.as_array().unwrap().iter().find(|p| p["address"] == rig.member.address()).cloned();
    let direct =
        zt.as_ref().is_some_and(|p| p["paths"].as_array().is_some_and(|a| a.iter().any(|path| path["active"] == true)));
    assert!(!direct, "zq claims a live direct path to the blocked member: {zt:?}");

    // Restart: SIGTERM removes the tap and detaches XDP; the same home keeps address and membership.
    let address = zq.address().unwrap();
    let dev = zq.network(rig.nwid).unwrap()["portDeviceName"].as_str().unwrap().to_string();
    let exit = zq.stop_with(libc::SIGTERM).unwrap();
    assert!(exit.status.success(), "ztplane exited with {}: {}", exit.status, exit.stderr);
    assert!(!zq_ns.xdp_attached("eth0").unwrap(), "XDP left attached after SIGTERM");
    assert!(zq_ns.ip(&["link", "show", &dev]).is_err(), "tap {dev} left behind after SIGTERM");
    let nwid = format!("{:016x}", rig.nwid);
    let zq = ZtplaneNode::start(ztplane(), zq_ns, &hq.0, &["eth0"], &["--cores", "0,1"]).unwrap();
    assert_eq!(zq.address().unwrap(), address);
    assert_eq!(zq.wait_for_ip(rig.nwid, Duration::from_secs(60)).unwrap(), "198.19.0.22", "membership lost ({nwid})");
    ping_settled(zq_ns, "198.19.0.21").unwrap();
    // SIGKILL leaves nothing attached either (XDP through a BPF link, taps die with their fds).
    zq.stop_with(libc::SIGKILL).unwrap();
    assert!(!zq_ns.xdp_attached("eth0").unwrap(), "XDP left attached after SIGKILL");
    assert!(zq_ns.ip(&["link", "show", &dev]).is_err(), "tap {dev} left behind after SIGKILL");
    drop(zp);
}

fn v4(ip: &str) -> Ipv4Addr {
    ip.parse().unwrap()
}

fn link_local(ns: &ztplane_testkit::Netns, dev: &str) -> String {
    let found = wait_until("a link-local address", Duration::from_secs(10), || {
        let out = ns.ip(&["-6", "addr", "show", "dev", dev]).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .filter(|a| a.starts_with("fe80"))
            .map(|a| a.split('/').next().unwrap_or("").to_string())
            .ok_or(text)
    });
    found.unwrap()
}
