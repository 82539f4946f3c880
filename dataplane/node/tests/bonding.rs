//! Bonding between two nodes with two links each, on the virtual clock (zerotier-bonding.md;
//! the engine itself is tested in `ztplane-bond`): both links' paths join the bond, path acks
//! discover the other side as a ztplane node, traffic follows the policy, and cutting the active
//! link fails over while frames keep flowing.

mod common;

use common::*;
use ztplane_bond::config::parse_local_conf;
use ztplane_node::{Event, NetworkId};

/// Moon/controller (0) on link 1 only; members a (1) and b (2) on links 1 and 2, bonding with
/// `local_conf`, configured, with both paths in each other's bond.
fn bonded_pair(local_conf: &str) -> (Sim, NetworkId) {
    let mut sim = Sim::new();
    let ids = identities();
    let (moon, nwid) = moon_and_controller(&mut sim, &ids, 2, vec![]);
    let (config, _) = parse_local_conf(local_conf).expect("local.conf");
    for id in &ids[1..3] {
        let i = sim.add(id.clone(), vec![moon.clone()], vec![], vec![]);
        sim.add_link(i);
        let now = sim.now;
        let node = &mut sim.nodes[i].node;
        node.set_links(vec![(1, "eth0".into()), (2, "eth1".into())]);
        node.set_bonding(config.clone(), now);
        node.join(nwid, now).unwrap();
    }
    let configured = sim.run_until(30_000, |s| [1, 2].iter().all(|&i| s.config(i, nwid).is_some()));
    assert!(configured, "members not configured");
    // Frames both ways make the members find each other directly, then push their second link.
    let both = sim.run_until(30_000, |s| {
        let (a, b) = (&s.nodes[1], &s.nodes[2]);
        [(a, b), (b, a)].iter().all(|(x, y)| x.node.bond(y.identity.address()).is_some_and(|(_, p)| p.len() == 2))
    });
    if !both {
        exchange_ping(&mut sim, nwid, 20);
    }
    let both = sim.run_until(60_000, |s| {
        let (a, b) = (&s.nodes[1], &s.nodes[2]);
        [(a, b), (b, a)].iter().all(|(x, y)| x.node.bond(y.identity.address()).is_some_and(|(_, p)| p.len() == 2))
    });
    let paths = |i: usize, j: usize| sim.nodes[i].node.bond(sim.nodes[j].identity.address()).map(|(_, p)| p.to_vec());
    assert!(both, "both links not bonded: a→b {:?}, b→a {:?}", paths(1, 2), paths(2, 1));
    (sim, nwid)
}

fn mac(sim: &Sim, i: usize, nwid: NetworkId) -> [u8; 6] {
    sim.nodes[i].node.network(nwid).unwrap().mac.octets()
}

/// ARP both ways, then `count` frames a → b, 2 ms apart; returns how many arrived in order.
fn exchange_ping(sim: &mut Sim, nwid: NetworkId, count: u32) -> usize {
    let (ma, mb) = (mac(sim, 1, nwid), mac(sim, 2, nwid));
    sim.tap_send(1, nwid, &arp_request(ma, [198, 19, 0, 1], [198, 19, 0, 2]));
    sim.tap_send(2, nwid, &arp_reply(mb, [198, 19, 0, 2], ma, [198, 19, 0, 1]));
    sim.run(200);
    let before = sim.nodes[2].delivered.len();
    for seq in 0..count {
        sim.tap_send(1, nwid, &udp(mb, ma, seq));
        sim.run(2);
    }
    sim.run(500);
    sequence_of(&sim.nodes[2].delivered[before..]).len()
}

fn udp(dst: [u8; 6], src: [u8; 6], seq: u32) -> Vec<u8> {
    ipv4_frame(dst, src, [198, 19, 0, 1], [198, 19, 0, 2], seq, 1200)
}

/// Sequence numbers of the test frames among delivered frames (the first payload byte).
fn sequence_of(frames: &[(NetworkId, Vec<u8>)]) -> Vec<u8> {
    frames.iter().filter(|(_, f)| f.len() > 42 && f[12..14] == [8, 0]).map(|(_, f)| f[42]).collect()
}

/// Per link, datagrams a sends to b while it sends `count` frames 1 ms apart.
fn spread(sim: &mut Sim, nwid: NetworkId, count: u32) -> [usize; 2] {
    let (ma, mb) = (mac(sim, 1, nwid), mac(sim, 2, nwid));
    let b_addr = sim.nodes[2].links.clone();
    let mut per_link = [0usize; 2];
    for seq in 0..count {
        sim.tap_send(1, nwid, &udp(mb, ma, seq));
        for (from, to, _) in sim.in_flight() {
            if from == 1
                && let Some(i) = b_addr.iter().position(|(_, a)| *a == to)
            {
                per_link[i] += 1;
            }
        }
        sim.run(1);
    }
    per_link
}

#[test]
fn active_backup_fails_over_when_the_active_link_is_cut() {
    let (mut sim, nwid) = bonded_pair(r#"{"settings": {"defaultBondingPolicy": "active-backup"}}"#);
    let b = sim.nodes[2].identity.address();
    // Steady traffic long enough for path acks to be announced and answered (about 1 s).
    assert_eq!(exchange_ping(&mut sim, nwid, 1000), 1000);
    let (bond, _) = sim.nodes[1].node.bond(b).unwrap();
    assert!(bond.peer_acks(), "a did not discover b as a ztplane node (path acks)");
    let active = bond.active_path().expect("an active path").0 as usize;
    // Everything goes on one link.
    let per_link = spread(&mut sim, nwid, 200);
    assert_eq!(per_link[1 - active], 0, "active-backup used the backup link: {per_link:?}");
    // Cut the active link between a and b; frames every 2 ms must flow again on the other.
    sim.cut_link(1, 2, active as u32 + 1);
    let (ma, mb) = (mac(&sim, 1, nwid), mac(&sim, 2, nwid));
    let before = sim.nodes[2].delivered.len();
    for seq in 0..500u32 {
        sim.tap_send(1, nwid, &udp(mb, ma, seq));
        sim.run(2);
    }
    sim.run(200);
    let got = sequence_of(&sim.nodes[2].delivered[before..]);
    let lost = 500 - got.len();
    // ztplane peers: overdue acks reveal the dead path within tens of ms (2 ms RTT here; the
    // product's target is 100 ms).
    assert!(lost * 2 <= 50, "{lost} frames (2 ms apart) lost in the failover");
    assert!(got.len() > 400, "only {} of 500 frames after the cut", got.len());
    let (bond, _) = sim.nodes[1].node.bond(b).unwrap();
    assert_eq!(bond.active_path().map(|p| p.0 as usize), Some(1 - active), "active path did not move");
    let downs: Vec<&Event> = sim.nodes[1]
        .events
        .iter()
        .filter(|e| matches!(e, Event::Bond { event: ztplane_bond::BondEvent::PathDown { .. }, .. }))
        .collect();
    assert!(!downs.is_empty(), "no path-down event");
    let down_at = match downs.last() {
        Some(Event::Bond { event: ztplane_bond::BondEvent::PathDown { at_us, .. }, .. }) => *at_us,
        _ => 0,
    };
    eprintln!("failover: {lost} frames lost (2 ms apart); path down at {down_at} µs");
}

#[test]
fn balance_rr_uses_both_links_and_keeps_frames_in_order_per_link() {
    let (mut sim, nwid) = bonded_pair(r#"{"settings": {"defaultBondingPolicy": "balance-rr"}}"#);
    assert_eq!(exchange_ping(&mut sim, nwid, 300), 300);
    let per_link = spread(&mut sim, nwid, 512);
    // 64 packets per link in turn (zerotier-one's default packetsPerLink).
    assert!(per_link[0] >= 200 && per_link[1] >= 200, "balance-rr spread {per_link:?}");
    // Both directions are bonded: b's bond with a carries b's replies the same way.
    let a = sim.nodes[1].identity.address();
    assert!(sim.nodes[2].node.bond(a).is_some());
}

#[test]
fn bonds_follow_a_policy_reload_and_drop_without_a_policy() {
    let (mut sim, nwid) = bonded_pair(r#"{"settings": {"defaultBondingPolicy": "balance-xor"}}"#);
    let b = sim.nodes[2].identity.address();
    assert_eq!(exchange_ping(&mut sim, nwid, 200), 200);
    let now = sim.now;
    let (ab, _) = parse_local_conf(r#"{"settings": {"defaultBondingPolicy": "active-backup"}}"#).unwrap();
    sim.nodes[1].node.set_bonding(ab, now);
    let (bond, paths) = sim.nodes[1].node.bond(b).unwrap();
    assert_eq!((bond.settings().base.name(), paths.len()), ("active-backup", 2), "rebuilt with its paths");
    // Traffic keeps flowing across the swap.
    assert_eq!(exchange_ping(&mut sim, nwid, 200), 200);
    let per_link = spread(&mut sim, nwid, 200);
    assert!(per_link.contains(&0), "active-backup after the reload spreads {per_link:?}");
    let (none, _) = parse_local_conf(r#"{"settings": {}}"#).unwrap();
    let now = sim.now;
    sim.nodes[1].node.set_bonding(none, now);
    assert!(sim.nodes[1].node.bond(b).is_none(), "no policy, no bond");
    assert_eq!(exchange_ping(&mut sim, nwid, 100), 100, "unbonded traffic flows");
}

#[test]
fn broadcast_sends_every_frame_on_both_links_and_delivers_it_once() {
    let (mut sim, nwid) = bonded_pair(r#"{"settings": {"defaultBondingPolicy": "broadcast"}}"#);
    assert_eq!(exchange_ping(&mut sim, nwid, 300), 300);
    let per_link = spread(&mut sim, nwid, 200);
    assert!(per_link[0] >= 200 && per_link[1] >= 200, "broadcast spread {per_link:?}");
    // Exactly one copy of each frame reaches b's port, in order.
    let (ma, mb) = (mac(&sim, 1, nwid), mac(&sim, 2, nwid));
    let before = sim.nodes[2].delivered.len();
    for seq in 0..100u32 {
        sim.tap_send(1, nwid, &udp(mb, ma, seq));
        sim.run(1);
    }
    sim.run(100);
    let got = sequence_of(&sim.nodes[2].delivered[before..]);
    assert_eq!(got, (0..100u8).collect::<Vec<_>>(), "duplicates or gaps");
}

/// A second link joins while data flows on the first, on a LAN where the peer's acks come back
/// before the workers' send records reach the node: the acks still count (held until their
/// packet's record comes), and no healthy path is declared dead.
#[test]
fn a_link_that_joins_under_traffic_leaves_the_carrying_path_up() {
    let mut sim = Sim::new();
    let ids = identities();
    let (moon, nwid) = moon_and_controller(&mut sim, &ids, 2, vec![]);
    let (config, _) = parse_local_conf(r#"{"settings": {"defaultBondingPolicy": "active-backup"}}"#).unwrap();
    for id in &ids[1..3] {
        let i = sim.add(id.clone(), vec![moon.clone()], vec![], vec![]);
        let now = sim.now;
        let node = &mut sim.nodes[i].node;
        node.set_links(vec![(1, "eth0".into()), (2, "eth1".into())]);
        node.set_bonding(config.clone(), now);
        node.join(nwid, now).unwrap();
    }
    assert!(sim.run_until(30_000, |s| [1, 2].iter().all(|&i| s.config(i, nwid).is_some())));
    assert_eq!(exchange_ping(&mut sim, nwid, 1500), 1500);
    let b = sim.nodes[2].identity.address();
    assert!(sim.nodes[1].node.bond(b).unwrap().0.peer_acks());
    sim.add_link(1);
    sim.add_link(2);
    // A LAN: acks come back well within the time the node holds the workers' records.
    sim.latency_ms = 0;
    sim.record_delay_ms = 5;
    let (ma, mb) = (mac(&sim, 1, nwid), mac(&sim, 2, nwid));
    for seq in 0..5000u32 {
        sim.tap_send(1, nwid, &udp(mb, ma, seq));
        sim.run(if seq % 50 == 0 { 30 } else { 1 });
    }
    let (bond, paths) = sim.nodes[1].node.bond(b).unwrap();
    assert_eq!(paths.len(), 2, "second link not bonded");
    let unmatched: Vec<(u64, u64)> =
        bond.paths().iter().map(|p| (p.sent.acks_matched, p.sent.acks_unmatched)).collect();
    assert!(unmatched.iter().all(|&(_, u)| u == 0), "acks (matched, unmatched) per path: {unmatched:?}");
    let downs: Vec<String> = sim.nodes[1]
        .events
        .iter()
        .chain(&sim.nodes[2].events)
        .filter_map(|e| match e {
            Event::Bond { event, .. } => Some(format!("{event:?}")),
            _ => None,
        })
        .collect();
    assert!(!downs.iter().any(|e| e.contains("PathDown")), "{downs:#?}");
}
