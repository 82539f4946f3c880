//! Gateways bridging LANs into a ZeroTier network (zerotier-vl2.md §4.4: active bridges), in
//! namespaces (root only): two gateways g1 and g2 on a WAN switch, each with a LAN host behind its
//! `lan0` (lan1 198.19.0.101, lan2 198.19.0.102, bridged onto the network's 198.19.0.0/24), a
//! zerotier-one member `zt` (198.19.0.11) and a zerotier-one moon + controller
//! (`../shared/ref`). The bed is `ztplane_testkit::gateway_bed`.
//!
//! The same checks run with zerotier-one gateways (a tap in a Linux bridge with `lan0`: the bed's
//! own validation and the baseline) and with ztplane gateways (`ztplane node --bridge NWID=lan0`).
//! Step timings go to stderr: `cargo test --test gateway_netns -- --nocapture` shows them.
use anyhow::{Context, Result, ensure};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use ztplane_testkit::bond_bed::ping_settled;
use ztplane_testkit::gateway_bed::{
    GatewayBed, GatewaySystem, HOST_IFACE, LAN_IFACE, OVERLAY_BROADCAST, Steps, ZT_IP, broadcast_responders,
    link_local, neighbour_mac, parse_mac, random_source_frames,
};
use ztplane_testkit::overlay::Process;
use ztplane_testkit::traffic::{send_frames, tcp_transfer};
use ztplane_testkit::zerotier::{ZeroTierBinary, wait_until};

/// Each test builds seven namespaces and three to five daemons: one at a time on 2 cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// Bytes of each checked TCP transfer between the LANs.
const TRANSFER: usize = 16 << 20;
/// Distinct source MACs of the flood: far more than a gateway should remember for one LAN port.
const FLOOD_SOURCES: usize = 100_000;

fn ztplane() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ztplane"))
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn bed(system: GatewaySystem, steps: &Steps) -> Result<GatewayBed> {
    let bed = GatewayBed::start(system, &ZeroTierBinary::locate()?, ztplane())?;
    steps.done(&format!("{system:?} gateways g1 and g2, member zt and the moon up, both bridging"));
    Ok(bed)
}

/// LAN host behind g1 ↔ LAN host behind g2 through both gateways: ARP, ping, checked TCP both
/// ways, a subnet broadcast, IPv6 neighbour discovery on link-local addresses; and the
/// zerotier-one member reaches both LAN hosts.
fn gateways_bridge_two_lans(system: GatewaySystem) -> Result<()> {
    let _serial = serial();
    let steps = Steps::start();
    let bed = bed(system, &steps)?;
    let (l1, l2) = (bed.lan("g1")?, bed.lan("g2")?);
    let logs = || bed.logs();

    ping_settled(&l1.netns, &l2.ip.to_string()).with_context(logs)?;
    ping_settled(&l2.netns, &l1.ip.to_string()).with_context(logs)?;
    for (from, to) in [(l1, l2), (l2, l1)] {
        let seen = neighbour_mac(&from.netns, HOST_IFACE, &to.ip.to_string())?;
        ensure!(
            seen.as_deref() == Some(to.mac.as_str()),
            "{} resolved {} to {seen:?}, not {}'s MAC {}",
            from.name,
            to.ip,
            to.name,
            to.mac
        );
    }
    steps.done("lan1 <-> lan2: ARP resolved across both gateways, pings answered");

    for (from, to) in [(l1, l2), (l2, l1)] {
        let took = tcp_transfer(&from.netns, &to.netns, to.ip, TRANSFER).with_context(logs)?;
        eprintln!(
            "{system:?} gateways, TCP {} -> {}: {} MiB in {:.2} s = {:.0} Mbit/s, every byte checked",
            from.name,
            to.name,
            TRANSFER >> 20,
            took.as_secs_f64(),
            TRANSFER as f64 * 8.0 / took.as_secs_f64() / 1e6
        );
    }
    steps.done("checked TCP transfers both ways");

    let answered = wait_until("lan2 answering lan1's broadcast ping", Duration::from_secs(10), || {
        let seen = broadcast_responders(&l1.netns, OVERLAY_BROADCAST, 2).map_err(|e| format!("{e:#}"))?;
        if seen.contains(&l2.ip) { Ok(seen) } else { Err(format!("replies from {seen:?}")) }
    })
    .with_context(logs)?;
    eprintln!("broadcast ping from lan1 to {OVERLAY_BROADCAST}: replies from {answered:?}");
    steps.done("a broadcast from lan1 reached lan2");

    let (ll1, ll2) = (link_local(&l1.netns, HOST_IFACE)?, link_local(&l2.netns, HOST_IFACE)?);
    ping_settled(&l1.netns, &format!("{ll2}%{HOST_IFACE}")).with_context(logs)?;
    ping_settled(&l2.netns, &format!("{ll1}%{HOST_IFACE}")).with_context(logs)?;
    for (from, to, ll) in [(l1, l2, &ll2), (l2, l1, &ll1)] {
        let seen = neighbour_mac(&from.netns, HOST_IFACE, ll)?;
        ensure!(seen.as_deref() == Some(to.mac.as_str()), "{} resolved {ll} to {seen:?}, not {}", from.name, to.mac);
    }
    steps.done("IPv6 neighbour discovery and ping on link-local addresses across the gateways");

    for lan in [l1, l2] {
        ping_settled(bed.zt_netns(), &lan.ip.to_string()).with_context(logs)?;
        ping_settled(&lan.netns, &ZT_IP.to_string()).with_context(logs)?;
    }
    steps.done("the zerotier-one member and both LAN hosts reach each other");
    Ok(())
}

/// zerotier-one 1.14.1 gateways: the bed itself, and the baseline the ztplane gateway is compared
/// with.
#[test]
fn zerotier_one_gateways_bridge_two_lans() -> Result<()> {
    gateways_bridge_two_lans(GatewaySystem::ZeroTier)
}

#[test]
fn ztplane_gateways_bridge_two_lans() -> Result<()> {
    gateways_bridge_two_lans(GatewaySystem::Ztplane)
}

/// A MAC flood from lan1: [`FLOOD_SOURCES`] frames to lan2, each from a new random source MAC.
/// Afterwards the LAN hosts and the member still reach each other through the gateways.
fn gateways_survive_a_flood_of_source_macs(system: GatewaySystem) -> Result<()> {
    let _serial = serial();
    let steps = Steps::start();
    let bed = bed(system, &steps)?;
    let (l1, l2) = (bed.lan("g1")?, bed.lan("g2")?);
    let logs = || bed.logs();
    ping_settled(&l1.netns, &l2.ip.to_string()).with_context(logs)?;
    steps.done("lan1 -> lan2 answered");

    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;
    let frames = random_source_frames(parse_mac(&l2.mac)?, FLOOD_SOURCES, seed);
    let lan_tx = |gateway: &str| bed.gateway(gateway).and_then(|g| g.netns.link_counter(LAN_IFACE, "tx_packets"));
    let before = lan_tx("g2")?;
    let sent = l1.netns.run(move || send_frames(HOST_IFACE, &frames))??;
    // Whatever the gateways still carry of it arrives within a second or two.
    std::thread::sleep(Duration::from_secs(2));
    eprintln!(
        "lan1 sent {sent} frames from {FLOOD_SOURCES} source MACs to lan2; g2 put {} frames into lan2 meanwhile",
        lan_tx("g2")? - before
    );
    steps.done("flood sent");

    ping_settled(&l1.netns, &l2.ip.to_string()).with_context(logs)?;
    ping_settled(&l2.netns, &l1.ip.to_string()).with_context(logs)?;
    ping_settled(bed.zt_netns(), &l1.ip.to_string()).with_context(logs)?;
    steps.done("lan1 <-> lan2 and zt -> lan1 still answered after the flood");

    if let Process::Ztplane(g1) = &bed.gateway("g1")?.process {
        // The table of MACs behind lan0 filled to its bound; the rest were forwarded unlearned.
        let lan = g1.network(bed.nwid)?["ztplane"]["lan"].clone();
        ensure!(lan["macs"] == lan["macLimit"], "g1's LAN MAC table is not at its limit: {lan}");
        ensure!(lan["unlearned"].as_u64().unwrap_or(0) > 0, "no source MAC went unlearned: {lan}");
        eprintln!("g1's LAN side after the flood: {lan}");
    }
    Ok(())
}

/// ztplane gateways under the flood; g1 must report its table of LAN MACs full rather than
/// growing without bound.
#[test]
fn ztplane_gateways_survive_a_flood_of_source_macs() -> Result<()> {
    gateways_survive_a_flood_of_source_macs(GatewaySystem::Ztplane)
}
