//! Gateway mode on the virtual clock (zerotier-vl2.md §4.4): two members each bridge a LAN into
//! the network; LAN hosts reach each other with ARP and unicast, multicast reaches every port,
//! the LAN MAC table stays bounded under a flood, and nothing is bridged until the controller
//! marks the member an active bridge.

mod common;

use common::*;
use ztplane_node::{NetworkId, bridge::LAN_MACS_MAX};

/// LAN hosts: 52:… is never a ZeroTier MAC (VL1 §10 maps that first octet away).
const H1: [u8; 6] = [0x52, 0x54, 0, 0, 0x01, 0x01];
const H2: [u8; 6] = [0x52, 0x54, 0, 0, 0x02, 0x02];

/// Moon/controller (0), gateways g1 (1) and g2 (2); `bridges`: whether the controller marks them
/// active bridges. Both have their LAN bridged into the network.
fn gateways(bridges: bool) -> (Sim, NetworkId) {
    let mut sim = Sim::new();
    let ids = identities();
    let (moon, nwid) = moon_and_controller(
        &mut sim,
        &ids,
        2,
        if bridges { ids[1..3].iter().map(|i| i.address().as_u64()).collect() } else { vec![] },
    );
    for id in &ids[1..3] {
        let i = sim.add(id.clone(), vec![moon.clone()], vec![], vec![]);
        let now = sim.now;
        sim.nodes[i].node.join(nwid, now).unwrap();
        sim.nodes[i].node.bridge_lan(nwid, 1500).unwrap();
    }
    assert!(sim.run_until(30_000, |s| [1, 2].iter().all(|&i| s.config(i, nwid).is_some())), "not configured");
    (sim, nwid)
}

fn arp_for(from: [u8; 6], ip: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    arp_request(from, ip, target)
}

/// LAN frames node `i` wrote from index `from` on, that went to `mac`.
fn lan_frames_to(sim: &Sim, i: usize, from: usize, mac: [u8; 6]) -> Vec<Vec<u8>> {
    sim.lan_delivered(i)[from..].iter().filter(|f| f[0..6] == mac).cloned().collect()
}

#[test]
fn lan_hosts_behind_two_gateways_resolve_and_reach_each_other() {
    let (mut sim, nwid) = gateways(true);
    // H1 (behind g1) asks for H2's address: a broadcast, to every port of the network.
    sim.lan_send(1, nwid, &arp_for(H1, [198, 19, 0, 101], [198, 19, 0, 102]));
    sim.run(100);
    let broadcasts: Vec<Vec<u8>> = lan_frames_to(&sim, 2, 0, [0xff; 6]);
    assert_eq!(broadcasts.len(), 1, "the ARP request did not reach g2's LAN exactly once");
    assert_eq!(broadcasts[0][6..12], H1, "source MAC not carried (EXT multicast)");
    assert!(
        sim.nodes[2].delivered.iter().any(|(_, f)| f[0..6] == [0xff; 6] && f[6..12] == H1),
        "g2's own port did not see the broadcast"
    );
    // H2 answers H1: unicast to a MAC behind g1, learned from the broadcast's bridge route.
    let g1_seen = sim.lan_delivered(1).len();
    sim.lan_send(2, nwid, &arp_reply(H2, [198, 19, 0, 102], H1, [198, 19, 0, 101]));
    sim.run(100);
    let replies = lan_frames_to(&sim, 1, g1_seen, H1);
    assert_eq!(replies.len(), 1, "the ARP reply did not reach H1");
    assert_eq!(replies[0][6..12], H2);
    // Unicast both ways, in order.
    let fast_before = sim.nodes[1].fast_tx;
    let fast_rx_before = sim.nodes[2].fast_rx;
    for seq in 0..50u32 {
        sim.lan_send(1, nwid, &ipv4_frame(H2, H1, [198, 19, 0, 101], [198, 19, 0, 102], seq, 1200));
        sim.run(1);
    }
    // Sealed as EXT_FRAME by the data path (a worker), not by the node.
    assert!(sim.nodes[1].fast_tx - fast_before >= 45, "{} of 50 on the fast path", sim.nodes[1].fast_tx - fast_before);
    sim.run(50);
    let got: Vec<u8> =
        lan_frames_to(&sim, 2, 0, H2).iter().filter(|f| f.len() > 42 && f[12..14] == [8, 0]).map(|f| f[42]).collect();
    assert_eq!(got, (0..50u8).collect::<Vec<_>>());
    // ...and opened and handed to the LAN by g2's data path.
    assert!(
        sim.nodes[2].fast_rx - fast_rx_before >= 45,
        "{} of 50 received on the fast path",
        sim.nodes[2].fast_rx - fast_rx_before
    );
    // A config refresh (a new timestamp, about a minute on) makes our credentials stale at g2:
    // bridged traffic itself re-pushes them, and the data path takes it again at once.
    let installed = sim.nodes[1].node.counters().configs_installed;
    sim.run_until(120_000, |s| s.nodes[1].node.counters().configs_installed > installed);
    assert!(sim.nodes[1].node.counters().configs_installed > installed, "no config refresh in two minutes");
    let fast_before = sim.nodes[1].fast_tx;
    for seq in 0..50u32 {
        sim.lan_send(1, nwid, &ipv4_frame(H2, H1, [198, 19, 0, 101], [198, 19, 0, 102], seq, 1200));
        sim.run(1);
    }
    let fast = sim.nodes[1].fast_tx - fast_before;
    assert!(fast >= 45, "after a config refresh only {fast} of 50 LAN frames on the fast path");
    // Only the gateways' LAN MACs were learned; the frames never went to the ports.
    assert_eq!(sim.nodes[1].node.lan(nwid).unwrap().macs(), 1);
    assert!(!sim.nodes[2].delivered.iter().any(|(_, f)| f[0..6] == H2), "a LAN host's frame went to g2's port");
}

#[test]
fn vlan_tagged_frames_cross_untouched() {
    let (mut sim, nwid) = gateways(true);
    // Both hosts known on their LANs, H2's gateway known behind g2 (an ARP exchange).
    sim.lan_send(1, nwid, &arp_for(H1, [198, 19, 0, 101], [198, 19, 0, 102]));
    sim.run(100);
    sim.lan_send(2, nwid, &arp_reply(H2, [198, 19, 0, 102], H1, [198, 19, 0, 101]));
    sim.run(100);
    // An 802.1Q frame (VLAN 42, priority 5) H1 → H2: the tag and everything after it arrive as sent.
    let mut tagged = Vec::new();
    tagged.extend_from_slice(&H2);
    tagged.extend_from_slice(&H1);
    tagged.extend_from_slice(&[0x81, 0x00, 0xa0, 42, 0x08, 0x00]);
    tagged.extend((0..600u32).map(|i| (i * 13) as u8));
    let before = sim.lan_delivered(2).len();
    sim.lan_send(1, nwid, &tagged);
    sim.run(50);
    assert_eq!(lan_frames_to(&sim, 2, before, H2), vec![tagged], "the tagged frame changed on the way");
}

#[test]
fn frames_between_hosts_on_one_lan_stay_there_and_the_gateways_own_port_is_on_the_segment() {
    let (mut sim, nwid) = gateways(true);
    let h1b = [0x52, 0x54, 0, 0, 0x01, 0x02];
    sim.lan_send(1, nwid, &arp_for(h1b, [198, 19, 0, 103], [198, 19, 0, 1]));
    let sent_before = sim.in_flight().count();
    // H1 → H1b: both on g1's LAN, which delivered it already.
    sim.lan_send(1, nwid, &ipv4_frame(h1b, H1, [198, 19, 0, 101], [198, 19, 0, 103], 1, 100));
    assert_eq!(sim.in_flight().count(), sent_before, "a frame within the LAN was sent to the network");
    assert_eq!(sim.nodes[1].node.lan(nwid).unwrap().hairpin, 1);
    // A LAN host talks to the gateway itself: its port gets it, the network does not.
    let g1_mac = sim.nodes[1].node.network(nwid).unwrap().mac.octets();
    sim.lan_send(1, nwid, &ipv4_frame(g1_mac, H1, [198, 19, 0, 101], [198, 19, 0, 1], 2, 100));
    assert_eq!(sim.in_flight().count(), sent_before);
    assert!(sim.nodes[1].delivered.iter().any(|(_, f)| f[0..6] == g1_mac && f[6..12] == H1));
    // And the gateway answers on its port: to the LAN only.
    let lan_before = sim.lan_delivered(1).len();
    sim.tap_send(1, nwid, &ipv4_frame(H1, g1_mac, [198, 19, 0, 1], [198, 19, 0, 101], 3, 100));
    assert_eq!(lan_frames_to(&sim, 1, lan_before, H1).len(), 1, "the gateway's answer did not reach the LAN");
    assert_eq!(sim.in_flight().count(), sent_before);
}

#[test]
fn a_flood_of_source_macs_fills_the_table_to_its_bound_and_forwarding_goes_on() {
    let (mut sim, nwid) = gateways(true);
    // Teach g2 where H2 is, and g1's network side where H2 is (bridge route from a broadcast).
    sim.lan_send(2, nwid, &arp_for(H2, [198, 19, 0, 102], [198, 19, 0, 101]));
    sim.run(100);
    let generation = |sim: &Sim| sim.nodes[1].node.data_path().generation;
    let before_flood = generation(&sim);
    let mut seed = 0x1234_5678u64;
    for _ in 0..(LAN_MACS_MAX + 2_000) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut src = seed.to_be_bytes()[2..8].try_into().unwrap_or([0; 6]);
        src[0] = 0x52; // unicast, never a ZeroTier MAC
        // To H1b on the same LAN: learned and dropped as hairpin once known, else forwarded.
        sim.nodes[1].node.handle_lan_frame(
            sim.now,
            nwid,
            &ipv4_frame(src, src, [198, 19, 0, 200], [198, 19, 0, 200], 0, 60),
        );
    }
    let lan = sim.nodes[1].node.lan(nwid).unwrap();
    assert_eq!(lan.macs(), LAN_MACS_MAX, "the LAN MAC table is not bounded");
    assert!(lan.unlearned >= 2_000, "{} frames unlearned", lan.unlearned);
    let status = ztplane_node::status::network_status(sim.nodes[1].node.network(nwid).unwrap(), "lan0");
    assert_eq!(status["ztplane"]["lan"]["macs"], LAN_MACS_MAX);
    assert_eq!(status["bridge"], true);
    // The workers' snapshot is rebuilt at most every (peers + MACs) / 1,000 ms: the flood, all at
    // one instant, rebuilt it about once per new MAC only until 1,000 were known.
    let rebuilds = generation(&sim) - before_flood;
    assert!(rebuilds < 1_100, "{rebuilds} snapshot rebuilds for one instant's flood");
    // A rebuild for another reason shares the MAC table instead of copying it.
    sim.run(10);
    let macs = |sim: &Sim| sim.nodes[1].node.data_path().networks[&nwid].lan.as_ref().map(|l| l.macs.clone()).unwrap();
    let (first, at) = (macs(&sim), generation(&sim));
    sim.nodes[1].node.bridge_lan(nwid, 1500).unwrap();
    sim.run(10);
    assert!(generation(&sim) > at, "no rebuild");
    assert!(std::sync::Arc::ptr_eq(&first, &macs(&sim)), "the unchanged MAC table was copied");
    assert_eq!(first.len(), LAN_MACS_MAX);
    // H1 still reaches H2 (H1 is new: not learned, still forwarded).
    sim.run(10);
    let before = sim.lan_delivered(2).len();
    sim.lan_send(1, nwid, &ipv4_frame(H2, H1, [198, 19, 0, 101], [198, 19, 0, 102], 7, 200));
    sim.run(50);
    assert_eq!(lan_frames_to(&sim, 2, before, H2).len(), 1, "forwarding stopped after the flood");
    // Ageing: five minutes later the flood is forgotten.
    sim.run(310_000);
    sim.lan_send(1, nwid, &ipv4_frame(H2, H1, [198, 19, 0, 101], [198, 19, 0, 102], 8, 200));
    assert!(sim.nodes[1].node.lan(nwid).unwrap().macs() <= 2, "aged MACs kept");
}

#[test]
fn nothing_is_bridged_until_the_controller_marks_the_gateway_an_active_bridge() {
    let (mut sim, nwid) = gateways(false);
    let before = sim.in_flight().count();
    sim.lan_send(1, nwid, &arp_for(H1, [198, 19, 0, 101], [198, 19, 0, 102]));
    sim.lan_send(
        1,
        nwid,
        &ipv4_frame(
            sim.nodes[2].node.network(nwid).unwrap().mac.octets(),
            H1,
            [198, 19, 0, 101],
            [198, 19, 0, 2],
            0,
            100,
        ),
    );
    assert_eq!(sim.in_flight().count(), before, "bridged a frame without activeBridge");
    let lan = sim.nodes[1].node.lan(nwid).unwrap();
    assert_eq!(lan.dropped_not_bridge, 2);
    let status = ztplane_node::status::network_status(sim.nodes[1].node.network(nwid).unwrap(), "lan0");
    assert_eq!(status["bridge"], false);
    assert_eq!(status["ztplane"]["lan"]["droppedNotBridge"], 2);
}

#[test]
fn a_gateway_configured_late_bridges_both_ways_once_it_is() {
    let mut sim = Sim::new();
    let ids = identities();
    let bridges = ids[1..3].iter().map(|i| i.address().as_u64()).collect();
    let (moon, nwid) = moon_and_controller(&mut sim, &ids, 2, bridges);
    let g1 = sim.add(ids[1].clone(), vec![moon.clone()], vec![], vec![]);
    let now = sim.now;
    sim.nodes[g1].node.join(nwid, now).unwrap();
    sim.nodes[g1].node.bridge_lan(nwid, 1500).unwrap();
    assert!(sim.run_until(30_000, |s| s.config(g1, nwid).is_some()), "g1 not configured");
    // g2 starts, but joins (and bridges) only 5 s later; meanwhile H1 keeps asking for H2.
    let g2 = sim.add(ids[2].clone(), vec![moon.clone()], vec![], vec![]);
    for _ in 0..5 {
        sim.lan_send(g1, nwid, &arp_for(H1, [198, 19, 0, 101], [198, 19, 0, 102]));
        sim.run(1_000);
    }
    let now = sim.now;
    sim.nodes[g2].node.join(nwid, now).unwrap();
    sim.nodes[g2].node.bridge_lan(nwid, 1500).unwrap();
    assert!(sim.run_until(30_000, |s| s.config(g2, nwid).is_some()), "g2 not configured");
    for attempt in 0..5 {
        let (g1_seen, g2_seen) = (sim.lan_delivered(g1).len(), sim.lan_delivered(g2).len());
        sim.lan_send(g1, nwid, &arp_for(H1, [198, 19, 0, 101], [198, 19, 0, 102]));
        sim.run(200);
        let asked = lan_frames_to(&sim, g2, g2_seen, [0xff; 6]).len();
        sim.lan_send(g2, nwid, &arp_reply(H2, [198, 19, 0, 102], H1, [198, 19, 0, 101]));
        sim.run(200);
        let answered = lan_frames_to(&sim, g1, g1_seen, H1).len();
        if asked == 1 && answered == 1 {
            // And unicast on: H1 → H2 and back.
            sim.lan_send(g1, nwid, &ipv4_frame(H2, H1, [198, 19, 0, 101], [198, 19, 0, 102], 1, 200));
            sim.lan_send(g2, nwid, &ipv4_frame(H1, H2, [198, 19, 0, 102], [198, 19, 0, 101], 2, 200));
            sim.run(200);
            assert_eq!(lan_frames_to(&sim, g2, g2_seen, H2).len(), 1, "H1 → H2 lost");
            assert_eq!(lan_frames_to(&sim, g1, g1_seen, H1).len(), 2, "H2 → H1 lost");
            return;
        }
        eprintln!("attempt {attempt}: request reached g2's LAN {asked} time(s), reply reached H1 {answered} time(s)");
    }
    panic!("the late gateway never bridged both ways");
}

#[test]
fn a_lan_host_with_a_zerotier_mac_is_counted_and_reported() {
    let (mut sim, nwid) = gateways(true);
    // A LAN host whose MAC has the network's ZeroTier prefix (VL1 §10): members would send its
    // frames to the ZeroTier address it encodes. Forwarded as any other, but counted.
    let odd = nwid.mac_for(&ztplane_node::Address::from_bytes(&[1, 2, 3, 4, 5])).octets();
    sim.lan_send(1, nwid, &arp_for(odd, [198, 19, 0, 150], [198, 19, 0, 102]));
    sim.lan_send(1, nwid, &arp_for(H1, [198, 19, 0, 101], [198, 19, 0, 102]));
    sim.run(100);
    let lan = sim.nodes[1].node.lan(nwid).unwrap();
    assert_eq!((lan.macs(), lan.zerotier_macs), (2, 1));
    let status = ztplane_node::status::network_status(sim.nodes[1].node.network(nwid).unwrap(), "lan0");
    assert_eq!(status["ztplane"]["lan"]["zeroTierMacs"], 1);
}
