//! Nodes on a virtual clock: joining through a moon that is also the controller, ARP and
//! unicast frames both ways (mostly on the data path), the membership gate, relaying when the
//! direct path is cut, and a restart that keeps the membership (zerotier-vl2.md §8).

mod common;

use common::*;
use std::sync::{Arc, Mutex};
use ztplane_node::network::NetworkStatus;
use ztplane_node::{Event, NetworkId};

struct Net {
    sim: Sim,
    moon: ztplane_protocol::world::World,
    nwid: NetworkId,
    plans: Arc<Mutex<std::collections::HashMap<u64, MemberPlan>>>,
}

/// Moon/controller at index 0, members a (1) and b (2), both authorized.
fn network(rules: Vec<u8>) -> Net {
    network_on(Sim::new(), rules)
}

fn network_on(mut sim: Sim, rules: Vec<u8>) -> Net {
    let ids = identities();
    let moon = moon(&ids[0], sim.underlay(0));
    let nwid = controlled_network(&ids[0]);
    let plans = Arc::new(Mutex::new(std::collections::HashMap::new()));
    plans.lock().unwrap().insert(ids[1].address().as_u64(), MemberPlan { authorized: true, ip: "198.19.0.1".into() });
    plans.lock().unwrap().insert(ids[2].address().as_u64(), MemberPlan { authorized: true, ip: "198.19.0.2".into() });
    let c = sim.add(ids[0].clone(), vec![moon.clone()], vec![], vec![]);
    sim.nodes[c].node.set_controller(Box::new(TestController {
        identity: ids[0].clone(),
        members: plans.clone(),
        revision: 1,
        rules,
        extra_flags: 0,
        bridges: vec![],
    }));
    for id in &ids[1..3] {
        let i = sim.add(id.clone(), vec![moon.clone()], vec![], vec![]);
        sim.nodes[i].node.join(nwid, sim.now).unwrap();
    }
    Net { sim, moon, nwid, plans }
}

fn mac(sim: &Sim, i: usize, nwid: NetworkId) -> [u8; 6] {
    sim.nodes[i].node.network(nwid).unwrap().mac.octets()
}

fn wait_configured(sim: &mut Sim, nwid: NetworkId, nodes: &[usize]) {
    let ok = sim.run_until(30_000, |s| nodes.iter().all(|&i| s.config(i, nwid).is_some()));
    assert!(
        ok,
        "members did not get a config in 30 s: {:?}",
        nodes.iter().map(|&i| s_status(sim, i, nwid)).collect::<Vec<_>>()
    );
}

fn s_status(sim: &Sim, i: usize, nwid: NetworkId) -> String {
    sim.nodes[i].node.network(nwid).map_or("none".into(), |n| n.status.name().to_string())
}

/// ARP a → b and back, then `count` IPv4 frames each way; returns frames b and a received.
fn exchange(sim: &mut Sim, nwid: NetworkId, a: usize, b: usize, count: u32, len: usize) -> (usize, usize) {
    let (ma, mb) = (mac(sim, a, nwid), mac(sim, b, nwid));
    let (ia, ib) = ([198, 19, 0, a as u8], [198, 19, 0, b as u8]);
    let before_b = sim.nodes[b].delivered.len();
    sim.tap_send(a, nwid, &arp_request(ma, ia, ib));
    let got_arp = sim.run_until(10_000, |s| {
        s.nodes[b].delivered[before_b..].iter().any(|(_, f)| f.len() >= 42 && f[12..14] == [8, 6] && f[38..42] == ib)
    });
    assert!(got_arp, "b never saw a's ARP request");
    let before_a = sim.nodes[a].delivered.len();
    sim.tap_send(b, nwid, &arp_reply(mb, ib, ma, ia));
    assert!(
        sim.run_until(10_000, |s| s.nodes[a].delivered[before_a..]
            .iter()
            .any(|(_, f)| f[12..14] == [8, 6] && f[0..6] == ma)),
        "a never saw b's ARP reply"
    );
    let (base_a, base_b) = (sim.nodes[a].delivered.len(), sim.nodes[b].delivered.len());
    for seq in 0..count {
        sim.tap_send(a, nwid, &ipv4_frame(mb, ma, ia, ib, seq, len));
        sim.tap_send(b, nwid, &ipv4_frame(ma, mb, ib, ia, seq, len));
        sim.run(2);
    }
    sim.run(2_000);
    let check = |frames: &[(NetworkId, Vec<u8>)], dst: [u8; 6], src: [u8; 6]| {
        let ip: Vec<&Vec<u8>> = frames.iter().map(|(_, f)| f).filter(|f| f[12..14] == [8, 0]).collect();
        for (seq, f) in ip.iter().enumerate() {
            let want = ipv4_frame(dst, src, [0; 4], [0; 4], seq as u32, len);
            assert_eq!((&f[..12], f.len()), (&want[..12], want.len()), "frame {seq}: MACs or length");
            assert_eq!(&f[42..], &want[42..], "frame {seq} differs or is out of order");
        }
        ip.len()
    };
    let to_b = check(&sim.nodes[b].delivered[base_b..], mb, ma);
    let to_a = check(&sim.nodes[a].delivered[base_a..], ma, mb);
    (to_b, to_a)
}

#[test]
fn members_join_through_the_moon_and_exchange_frames() {
    let mut net = network(vec![0x01, 0x00]);
    let nwid = net.nwid;
    wait_configured(&mut net.sim, nwid, &[1, 2]);
    for i in [1, 2] {
        let n = net.sim.nodes[i].node.network(nwid).unwrap();
        assert_eq!(n.status, NetworkStatus::Ok);
        assert_eq!(n.mtu(), 2800);
        let c = n.config.as_ref().unwrap();
        assert_eq!(c.addresses[0].to_string(), format!("198.19.0.{i}/24"));
        assert!(net.sim.nodes[i].events.iter().any(|e| matches!(e, Event::NetworkJoined { .. })));
        assert!(
            net.sim.nodes[i]
                .events
                .iter()
                .any(|e| matches!(e, Event::SaveNetwork { dictionary, .. } if dictionary.len() > 100))
        );
        assert!(net.sim.nodes[i].node.online());
    }
    // 2800-byte frames: two datagrams each, reassembled on the way in.
    let (to_b, to_a) = exchange(&mut net.sim, nwid, 1, 2, 200, 2772);
    assert_eq!((to_b, to_a), (200, 200));
    // Once credentials are pushed and paths learned, frames never touch the node.
    let (a, b) = (&net.sim.nodes[1], &net.sim.nodes[2]);
    assert!(a.fast_tx >= 190 && b.fast_tx >= 190, "fast tx {} {}", a.fast_tx, b.fast_tx);
    assert!(a.fast_rx >= 190 && b.fast_rx >= 190, "fast rx {} {}", a.fast_rx, b.fast_rx);
    // A direct path between the members was learned (RENDEZVOUS / HELLO), not only the moon.
    let peer_b = net.sim.nodes[1].node.peer(net.sim.nodes[2].identity.address()).unwrap();
    assert!(peer_b.paths.iter().any(|p| p.remote == underlay(2)), "no direct path a→b");
}

#[test]
fn relayed_through_the_moon_when_the_direct_path_is_cut() {
    let mut net = network(vec![0x01, 0x00]);
    let nwid = net.nwid;
    net.sim.cut(1, 2);
    wait_configured(&mut net.sim, nwid, &[1, 2]);
    let (to_b, to_a) = exchange(&mut net.sim, nwid, 1, 2, 50, 100);
    assert_eq!((to_b, to_a), (50, 50));
    let peer_b = net.sim.nodes[1].node.peer(net.sim.nodes[2].identity.address()).unwrap();
    assert!(peer_b.paths.is_empty(), "a learned a path it cannot use: {:?}", peer_b.paths);
    assert!(net.sim.nodes[0].node.counters().relayed >= 100);
}

#[test]
fn unauthorized_member_is_denied_and_gated() {
    let mut net = network(vec![0x01, 0x00]);
    let nwid = net.nwid;
    let ids = identities();
    net.plans
        .lock()
        .unwrap()
        .insert(ids[3].address().as_u64(), MemberPlan { authorized: false, ip: "198.19.0.3".into() });
    let moon = net.moon.clone();
    let c = net.sim.add(ids[3].clone(), vec![moon], vec![], vec![]);
    net.sim.nodes[c].node.join(nwid, net.sim.now).unwrap();
    wait_configured(&mut net.sim, nwid, &[1, 2]);
    assert!(net.sim.run_until(20_000, |s| s_status(s, c, nwid) == "ACCESS_DENIED"));
    assert!(net.sim.config(c, nwid).is_none());
    // Authorizing it lets it in within a few polls (every 5 s while denied).
    net.plans.lock().unwrap().get_mut(&ids[3].address().as_u64()).unwrap().authorized = true;
    assert!(net.sim.run_until(15_000, |s| s_status(s, c, nwid) == "OK"));
    let (to_c, to_a) = exchange(&mut net.sim, nwid, 1, c, 5, 64);
    assert_eq!((to_c, to_a), (5, 5));
}

#[test]
fn restart_keeps_address_and_membership() {
    let mut net = network(vec![0x01, 0x00]);
    let nwid = net.nwid;
    wait_configured(&mut net.sim, nwid, &[1, 2]);
    let (to_b, _) = exchange(&mut net.sim, nwid, 1, 2, 3, 64);
    assert_eq!(to_b, 3);
    let moon = net.moon.clone();
    net.sim.restart(1, vec![moon]);
    // The cached config is installed at once, before any packet.
    assert!(net.sim.config(1, nwid).is_some(), "cached config not installed on restart");
    assert_eq!(net.sim.nodes[1].node.address(), identities()[1].address());
    net.sim.run(12_000);
    let (to_b, to_a) = exchange(&mut net.sim, nwid, 1, 2, 3, 64);
    assert_eq!((to_b, to_a), (3, 3));
}

#[test]
fn rules_drop_what_the_network_forbids() {
    // Central's default minus IPv4: drop not ARP and not IPv6; accept.
    let rules = vec![0xa5, 0x02, 0x08, 0x06, 0xa5, 0x02, 0x86, 0xdd, 0x00, 0x00, 0x01, 0x00];
    let mut net = network(rules);
    let nwid = net.nwid;
    wait_configured(&mut net.sim, nwid, &[1, 2]);
    let (to_b, to_a) = exchange(&mut net.sim, nwid, 1, 2, 10, 64);
    assert_eq!((to_b, to_a), (0, 0), "IPv4 crossed a network that drops it");
}

#[test]
fn unknown_network_is_not_found() {
    let mut net = network(vec![0x01, 0x00]);
    let other = NetworkId(net.nwid.0 + 1);
    let now = net.sim.now;
    net.sim.nodes[1].node.join(other, now).unwrap();
    assert!(net.sim.run_until(20_000, |s| s_status(s, 1, other) == "NOT_FOUND"), "{}", s_status(&net.sim, 1, other));
    assert!(net.sim.config(1, other).is_none());
    // The other network is unaffected.
    assert_eq!(s_status(&net.sim, 1, net.nwid), "OK");
}

/// EXT_FRAME from a member (VL1 §8.7, §4.3): delivered with its MACs when the source is the
/// sender's own MAC, acknowledged when asked (flag 0x10); a bridged source from a member that is
/// not an active bridge is dropped.
#[test]
fn ext_frames_are_delivered_acknowledged_and_bridging_is_checked() {
    use ztplane_protocol::packet::{Outgoing, build_packet};
    use ztplane_protocol::verbs::{ExtFrame, Message};
    let mut net = network(vec![0x01, 0x00]);
    let nwid = net.nwid;
    wait_configured(&mut net.sim, nwid, &[1, 2]);
    // Credentials first: b's COM must reach a (any unicast exchange does it).
    let (to_b, to_a) = exchange(&mut net.sim, nwid, 1, 2, 1, 64);
    assert_eq!((to_b, to_a), (1, 1));
    let (a_id, b_id) = (net.sim.nodes[1].identity.clone(), net.sim.nodes[2].identity.clone());
    let key = b_id.agree(&a_id.to_public()).unwrap();
    let (ma, mb) = (nwid.mac_for(&a_id.address()), nwid.mac_for(&b_id.address()));
    let send = |sim: &mut Sim, src: ztplane_node::Mac, flags: u8, id: u8| {
        let frame = ExtFrame {
            network_id: nwid,
            flags,
            com: None,
            dst_mac: ma,
            src_mac: src,
            ethertype: 0x0800,
            payload: &[id; 60],
        };
        let out = Outgoing {
            key: &key,
            packet_id: [id; 8],
            destination: a_id.address(),
            source: b_id.address(),
            suite: ztplane_crypto::CipherSuite::AesGmacSiv,
            compress: false,
            mtu: 1432,
        };
        let mut packet = build_packet(&out, &Message::ExtFrame(frame)).unwrap();
        let now = sim.now;
        sim.nodes[1].node.handle_packet(now, 1, underlay(2), &mut packet);
        let before = sim.nodes[2].node.counters().packets;
        sim.run(20);
        sim.nodes[2].node.counters().packets - before
    };
    let before = net.sim.nodes[1].delivered.len();
    let replies = send(&mut net.sim, mb, 0x10, 7);
    let got: Vec<&Vec<u8>> = net.sim.nodes[1].delivered[before..].iter().map(|(_, f)| f).collect();
    assert_eq!(got.len(), 1, "EXT_FRAME not delivered");
    assert_eq!(&got[0][..12], &[ma.octets(), mb.octets()].concat()[..]);
    assert_eq!(&got[0][14..], &[7u8; 60][..]);
    assert!(replies >= 1, "no OK(EXT_FRAME) reached b");
    let bridged = ztplane_node::Mac::from_octets([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
    let before = net.sim.nodes[1].delivered.len();
    send(&mut net.sim, bridged, 0, 8);
    assert_eq!(net.sim.nodes[1].delivered.len(), before, "a bridged frame from a non-bridge was delivered");
}

/// OK(MULTICAST_GATHER) names members only when it comes from whom gathers go to (roots, the
/// controller): a member that forges one (in reply to any packet ID it saw) cannot fill our
/// groups with invented addresses.
#[test]
fn gather_results_are_taken_only_from_roots_and_the_controller() {
    use ztplane_node::MulticastGroup;
    use ztplane_protocol::packet::{Outgoing, build_packet};
    use ztplane_protocol::verbs::multicast::{GatherResults, OkMulticastGather};
    use ztplane_protocol::verbs::{Message, OkMessage, OkPayload};
    let mut net = network(vec![0x01, 0x00]);
    let nwid = net.nwid;
    wait_configured(&mut net.sim, nwid, &[1, 2]);
    let group = MulticastGroup { mac: ztplane_node::Mac::from_octets([0x01, 0x00, 0x5e, 0x01, 0x02, 0x03]), adi: 0 };
    let fakes: Vec<ztplane_crypto::Address> =
        (1..=5u64).map(|i| ztplane_crypto::Address::new(0x1100000000 + i).unwrap()).collect();
    let a = net.sim.nodes[1].identity.clone();
    let forge = |sim: &mut Sim, from: usize| {
        // Any packet ID a sent recently is in its expecting table: reply to its latest HELLO/ECHO.
        sim.nodes[1].node.handle_timeout(sim.now);
        let sender = sim.nodes[from].identity.clone();
        let key = sender.agree(&a.to_public()).unwrap();
        let in_re = sim.last_sent_id(1).expect("a sent something");
        let ok = OkMessage {
            in_re_verb: ztplane_protocol::header::Verb::MulticastGather,
            in_re_packet_id: in_re,
            payload: OkPayload::MulticastGather(OkMulticastGather {
                network_id: nwid,
                group,
                results: GatherResults { total_known: 5, members: fakes.clone() },
            }),
        };
        let out = Outgoing {
            key: &key,
            packet_id: [from as u8; 8],
            destination: a.address(),
            source: sender.address(),
            suite: ztplane_crypto::CipherSuite::AesGmacSiv,
            compress: false,
            mtu: 1432,
        };
        let mut packet = build_packet(&out, &Message::Ok(Box::new(ok))).unwrap();
        let now = sim.now;
        sim.nodes[1].node.handle_packet(now, 1, underlay(from), &mut packet);
    };
    let multicast = |sim: &mut Sim, fakes: &[ztplane_crypto::Address]| {
        let mut frame = group.mac.octets().to_vec();
        frame.extend_from_slice(&sim.nodes[1].node.network(nwid).unwrap().mac.octets());
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&[0u8; 40]);
        sim.tap_send(1, nwid, &frame);
        // A copy for an unknown member waits for its identity: a WHOIS for it.
        fakes.iter().filter(|f| sim.nodes[1].node.asking_whois(**f)).count()
    };
    assert_eq!(multicast(&mut net.sim, &fakes), 0);
    forge(&mut net.sim, 2);
    assert_eq!(multicast(&mut net.sim, &fakes), 0, "a member's forged gather results were used");
    forge(&mut net.sim, 0);
    assert_eq!(multicast(&mut net.sim, &fakes), 5, "the controller's gather results were ignored");
}

/// A node that controls a network can join it: it asks its own controller (§2.2) and then
/// talks to the other members like any member.
#[test]
fn the_controller_joins_its_own_network() {
    let mut net = network(vec![0x01, 0x00]);
    let nwid = net.nwid;
    let moon = net.sim.nodes[0].identity.address().as_u64();
    net.plans.lock().unwrap().insert(moon, MemberPlan { authorized: true, ip: "198.19.0.9".into() });
    let now = net.sim.now;
    net.sim.nodes[0].node.join(nwid, now).unwrap();
    wait_configured(&mut net.sim, nwid, &[0, 1, 2]);
    assert_eq!(net.sim.config(0, nwid).unwrap().addresses[0].to_string(), "198.19.0.9/24");
    let (to_a, to_moon) = exchange(&mut net.sim, nwid, 0, 1, 5, 64);
    assert_eq!((to_a, to_moon), (5, 5));
}

/// The same on an IPv6 underlay: HELLO destinations, learned paths, RENDEZVOUS and direct-path
/// pushes carry IPv6 addresses, and frames still cross (mostly on the data path).
#[test]
fn members_exchange_frames_over_an_ipv6_underlay() {
    let mut net = network_on(Sim::new_v6(), vec![0x01, 0x00]);
    let nwid = net.nwid;
    wait_configured(&mut net.sim, nwid, &[1, 2]);
    let (to_b, to_a) = exchange(&mut net.sim, nwid, 1, 2, 50, 2772);
    assert_eq!((to_b, to_a), (50, 50));
    let peer_b = net.sim.nodes[1].node.peer(net.sim.nodes[2].identity.address()).unwrap();
    assert!(peer_b.paths.iter().any(|p| p.remote == underlay_v6(2)), "no direct IPv6 path a→b: {:?}", peer_b.paths);
    assert!(net.sim.nodes[1].fast_tx >= 45 && net.sim.nodes[2].fast_rx >= 45);
}
