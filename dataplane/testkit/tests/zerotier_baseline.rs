//! Baseline for the zerotier-one harness (root only): two real zerotier-one members reach each
//! other over a private network whose controller is also their moon, on a star LAN. Later interop
//! tests swap one member for a ztplane node; if this test fails, the harness or the environment
//! is at fault, not ztplane.
use anyhow::{Context, Result, bail, ensure};
use std::path::Path;
use std::time::{Duration, Instant};
use ztplane_testkit::Topology;
use ztplane_testkit::lan::Lan;
use ztplane_testkit::zerotier::{Moon, NodeConfig, ZeroTierBinary, ZeroTierNode, nwid_hex};

const WAIT: Duration = Duration::from_secs(60);
const IP_A: &str = "198.19.0.11";
const IP_B: &str = "198.19.0.12";

#[test]
fn members_ping_each_other_through_a_moon_controller() -> Result<()> {
    let binary = ZeroTierBinary::locate()?;
    let t0 = Instant::now();
    let lap = |what: &str| eprintln!("[{:6.2} s] {what}", t0.elapsed().as_secs_f64());

    let mut topo = Topology::new()?;
    let lan = Lan::new(&mut topo, &["moon", "a", "b"])?;
    let (moon_host, host_a, host_b) = (lan.host("moon")?, lan.host("a")?, lan.host("b")?);
    underlay_cut_and_restore(&lan)?;
    lap("LAN up, underlay block/unblock works");

    let moon = Moon::prepare(&binary, moon_host.ip)?;
    lap(&format!("moon {} prepared ({})", moon.address(), moon.file_name));
    // Declared after `topo`: dropped (killed) before the namespaces go.
    let controller = ZeroTierNode::start(&binary, &moon_host.netns, NodeConfig::moon(&moon))?;
    let a = ZeroTierNode::start(&binary, &host_a.netns, NodeConfig::member(&moon))?;
    let b = ZeroTierNode::start(&binary, &host_b.netns, NodeConfig::member(&moon))?;
    ensure!(controller.address() == moon.address(), "the moon's node did not take the moon identity");
    lap(&format!("daemons up: controller {}, a {}, b {}", controller.address(), a.address(), b.address()));

    let nwid = controller.create_private_network("baseline")?;
    controller.authorize(nwid, a.address(), Some(IP_A))?;
    controller.authorize(nwid, b.address(), Some(IP_B))?;
    a.join(nwid)?;
    b.join(nwid)?;
    lap(&format!("network {} created, members authorized and joined", nwid_hex(nwid)));

    let ip_a = a.wait_for_ip(nwid, WAIT)?;
    let ip_b = b.wait_for_ip(nwid, WAIT)?;
    ensure!(ip_a == IP_A && ip_b == IP_B, "fixed IPs not honoured: a={ip_a} b={ip_b}");
    lap(&format!("addresses on taps: a {ip_a} on {}, b {ip_b} on {}", a.tap_name(nwid)?, b.tap_name(nwid)?));

    let first = first_reply(&a, &ip_b)?;
    lap(&format!("a -> b first reply after {first:?}"));
    ping(&a, &ip_b)?;
    lap("a -> b ping ok");
    ping(&b, &ip_a)?;
    lap("b -> a ping ok");

    let networks = a.cli(&["listnetworks"])?;
    let line = networks
        .lines()
        .find(|l| l.contains(&nwid_hex(nwid)))
        .with_context(|| format!("listnetworks on a does not name {}: {networks:?}", nwid_hex(nwid)))?;
    ensure!(line.contains(" OK "), "network not OK in listnetworks on a: {line:?}");
    lap(&format!("a: {}", line.trim()));

    // Dropping a node kills and reaps its daemon and removes its home.
    let (pid, home) = (a.pid().context("a has no process")?, a.home().to_path_buf());
    drop(a);
    ensure!(!Path::new(&format!("/proc/{pid}")).exists(), "zerotier-one {pid} outlived its node");
    ensure!(!home.exists(), "{} outlived its node", home.display());
    Ok(())
}

/// The LAN's pair filter works: a and b reach each other, then not, then again.
fn underlay_cut_and_restore(lan: &Lan) -> Result<()> {
    let (a, b) = (lan.host("a")?, lan.host("b")?);
    let reach = || a.netns.command("ping").args(["-c", "1", "-W", "1", &b.ip.to_string()]).output();
    ensure!(reach()?.status.success(), "underlay a -> b does not work");
    lan.block("a", "b")?;
    ensure!(!reach()?.status.success(), "underlay a -> b still works while blocked");
    lan.unblock("a", "b")?;
    ensure!(reach()?.status.success(), "underlay a -> b does not work after unblocking");
    Ok(())
}

/// Pings until a reply comes: ARP needs the target to have subscribed to its address's multicast
/// group, which zerotier-one does on its 5 s scan of the tap after the address appears.
fn first_reply(from: &ZeroTierNode, to: &str) -> Result<Duration> {
    ensure!(to.starts_with("198.19.0."), "refusing to ping {to}: not an overlay test address");
    let start = Instant::now();
    loop {
        let out = from.netns().command("ping").args(["-c", "1", "-W", "1", to]).output()?;
        if out.status.success() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > WAIT {
            bail!(
                "no ping reply {} -> {to} within {WAIT:?}; last ping said: {}",
                from.address(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        // An immediate failure (no route yet, say) must not turn this into a busy loop.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `ping -c 3 -W 2` from `from`'s namespace over the overlay, no loss allowed (ARP is warm).
fn ping(from: &ZeroTierNode, to: &str) -> Result<()> {
    ensure!(to.starts_with("198.19.0."), "refusing to ping {to}: not an overlay test address");
    let out = from.netns().command("ping").args(["-c", "3", "-W", "2", to]).output()?;
    if !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains(" 0% packet loss") {
        bail!(
            "ping {} -> {to} failed: {}\n{}\npeers of the sender: {}",
            from.address(),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim(),
            from.cli(&["listpeers"]).unwrap_or_else(|e| format!("{e:#}"))
        );
    }
    Ok(())
}
