//! Robustness under hostile input (zerotier-vl2.md §1.3–§1.5; VL1 §3.2, §5.1, §9): floods of
//! arbitrary datagrams, of unauthenticated heads, of bad HELLOs and of incomplete fragment sets
//! never panic, create no peer before authentication, keep every table within its bound, never
//! make the node answer with more than a few datagrams per datagram received — and the network
//! keeps working afterwards.

mod common;

use common::*;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use ztplane_crypto::{CipherSuite, Identity, PeerKey};
use ztplane_node::{Address, Instant, NetworkId, Node, NodeConfig};
use ztplane_protocol::fragment::fragment_packet;
use ztplane_protocol::header::{DEFAULT_PHYS_MTU, FLAG_FRAGMENTED, Verb, VerbByte, write_header};
use ztplane_protocol::inet::write_inet;
use ztplane_protocol::verbs::{Hello, OkHello, OkMessage, OkPayload};

/// The node's bounds (zerotier-vl2.md §1.4, VL1 §3.2): parked packets and the TX queue hold 32
/// entries, outstanding WHOIS 1024, reassembly 32 incomplete sets.
const MAX_PARKED: usize = 32;
const MAX_TX_QUEUE: usize = 32;
const MAX_WHOIS: usize = 1024;
const MAX_REASSEMBLING: usize = 32;
/// Datagrams in the arbitrary flood (debug builds run a quarter: the crypto is unoptimized).
const FLOOD: usize = if cfg!(debug_assertions) { 25_000 } else { 100_000 };

// ---- helpers ----

/// splitmix64: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
    /// A non-reserved address that is none of `known`.
    fn address(&mut self, known: &[Address]) -> Address {
        loop {
            let a = Address::from_bytes(&self.next().to_be_bytes()[..5].try_into().unwrap());
            if !a.is_reserved() && !known.contains(&a) {
                return a;
            }
        }
    }
    fn ipv4(&mut self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(self.next() as u32)), self.next() as u16)
    }
}

fn assert_bounded(node: &Node, peers: usize, what: &str) {
    let (parked, queued) = node.queued();
    assert!(parked <= MAX_PARKED, "{what}: {parked} packets parked");
    assert!(queued <= MAX_TX_QUEUE, "{what}: {queued} messages in the TX queue");
    assert!(node.pending_whois() <= MAX_WHOIS, "{what}: {} WHOIS outstanding", node.pending_whois());
    assert!(node.reassembling() <= MAX_REASSEMBLING, "{what}: {} sets reassembling", node.reassembling());
    let now = node.peers().count();
    assert!(now <= peers, "{what}: peers grew from {peers} to {now} without authentication");
}

/// A node alone (no roots, no networks), as the HELLO and fragment floods need it.
fn lone_node(identity: &Identity, now: Instant) -> Node {
    let config = NodeConfig {
        identity: identity.clone(),
        planet: empty_planet(),
        moons: Vec::new(),
        cached_peers: Vec::new(),
        networks: Vec::new(),
        seed: [9; 32],
    };
    let mut node = Node::new(config, now).expect("node");
    node.handle_timeout(now);
    drain(&mut node);
    node
}

/// Empties the node's outputs; returns the datagrams it sent.
fn drain(node: &mut Node) -> Vec<ztplane_node::Transmit> {
    while node.poll_event().is_some() {}
    std::iter::from_fn(|| node.poll_transmit()).collect()
}

/// Every datagram the sim carried, once each (replay material for the floods).
#[derive(Default)]
struct Capture {
    seen: HashSet<Vec<u8>>,
    datagrams: Vec<Vec<u8>>,
    /// (sender index, destination) of each of `datagrams`.
    ends: Vec<(usize, SocketAddr)>,
}

impl Capture {
    fn take(&mut self, sim: &Sim) {
        for (from, to, d) in sim.in_flight() {
            if self.seen.insert(d.to_vec()) {
                self.datagrams.push(d.to_vec());
                self.ends.push((from, to));
            }
        }
    }
}

fn run_until_capturing(sim: &mut Sim, limit_ms: u64, cap: &mut Capture, done: impl Fn(&Sim) -> bool) -> bool {
    for _ in 0..limit_ms {
        if done(sim) {
            return true;
        }
        sim.run(1);
        cap.take(sim);
    }
    done(sim)
}

/// Moon/controller 0, members a (1) and b (2) with configs, as in tests/network.rs.
fn network(cap: &mut Capture) -> (Sim, NetworkId) {
    let ids = identities();
    let mut sim = Sim::new();
    let (moon, nwid) = moon_and_controller(&mut sim, &ids, 2, vec![]);
    for id in &ids[1..3] {
        let i = sim.add(id.clone(), vec![moon.clone()], vec![], vec![]);
        sim.nodes[i].node.join(nwid, sim.now).unwrap();
    }
    let configured = |s: &Sim| [1, 2].iter().all(|&i| s.config(i, nwid).is_some());
    assert!(run_until_capturing(&mut sim, 30_000, cap, configured), "members did not get a config");
    (sim, nwid)
}

/// ARP a → b and back, then `count` IPv4 frames each way; returns (frames b got, frames a got).
fn exchange(sim: &mut Sim, nwid: NetworkId, count: u32, cap: &mut Capture) -> (usize, usize) {
    let (a, b) = (1, 2);
    let mac = |sim: &Sim, i: usize| sim.nodes[i].node.network(nwid).unwrap().mac.octets();
    let (ma, mb) = (mac(sim, a), mac(sim, b));
    let (ia, ib) = ([198, 19, 0, 1], [198, 19, 0, 2]);
    let (base_a, base_b) = (sim.nodes[a].delivered.len(), sim.nodes[b].delivered.len());
    sim.tap_send(a, nwid, &arp_request(ma, ia, ib));
    cap.take(sim);
    let got = |s: &Sim, i: usize, base: usize, ethertype: [u8; 2]| {
        s.nodes[i].delivered[base..].iter().filter(|(_, f)| f.len() >= 14 && f[12..14] == ethertype).count()
    };
    assert!(run_until_capturing(sim, 10_000, cap, |s| got(s, b, base_b, [8, 6]) > 0), "b never saw a's ARP");
    sim.tap_send(b, nwid, &arp_reply(mb, ib, ma, ia));
    cap.take(sim);
    assert!(run_until_capturing(sim, 10_000, cap, |s| got(s, a, base_a, [8, 6]) > 0), "a never saw b's ARP");
    for seq in 0..count {
        sim.tap_send(a, nwid, &ipv4_frame(mb, ma, ia, ib, seq, 100 + seq as usize));
        sim.tap_send(b, nwid, &ipv4_frame(ma, mb, ib, ia, seq, 1400 + seq as usize));
        cap.take(sim);
        run_until_capturing(sim, 2, cap, |_| false);
    }
    run_until_capturing(sim, 2_000, cap, |_| false);
    (got(sim, b, base_b, [8, 0]), got(sim, a, base_a, [8, 0]))
}

/// A copy of a real datagram with a few random changes (or none: a plain replay).
fn mutate(rng: &mut Rng, real: &[u8], me: [u8; 5]) -> Vec<u8> {
    let mut d = real.to_vec();
    for _ in 0..rng.below(4) {
        let len = d.len().max(1) as u64;
        match rng.below(6) {
            0 if !d.is_empty() => d[rng.below(len) as usize] ^= 1 << rng.below(8),
            1 if !d.is_empty() => d[rng.below(len) as usize] = rng.next() as u8,
            2 => d.truncate(rng.below(len + 1) as usize),
            3 => {
                let n = rng.below(64) as usize;
                let extra = rng.bytes(n);
                d.extend_from_slice(&extra);
            }
            // Hops are outside the MAC: replays with another hop count authenticate.
            4 if d.len() >= 28 && d[13] != 0xff => d[18] = (d[18] & !7) | rng.below(8) as u8,
            5 if d.len() >= 13 => d[8..13].copy_from_slice(&me),
            _ => {}
        }
    }
    d
}

/// Random bytes, random noise addressed to `me` (heads and fragments), or a mutated replay.
fn arbitrary_datagram(rng: &mut Rng, me: [u8; 5], real: &[Vec<u8>]) -> Vec<u8> {
    match rng.below(10) {
        0..=2 => {
            let len = rng.below(1500) as usize;
            rng.bytes(len)
        }
        3..=4 => {
            let len = 13 + rng.below(1488) as usize;
            let mut d = rng.bytes(len);
            d[8..13].copy_from_slice(&me);
            if len > 16 && rng.chance(50) {
                d[13] = 0xff;
                d[14] = (rng.below(8) << 4 | rng.below(8)) as u8;
            }
            d
        }
        _ => {
            let i = rng.below(real.len() as u64) as usize;
            mutate(rng, &real[i], me)
        }
    }
}

/// Mostly random IPv4 and IPv6 addresses; sometimes the moon's or b's real address (a path
/// with established trust: such datagrams for others are relayed, VL1 §9).
fn arbitrary_source(rng: &mut Rng) -> SocketAddr {
    match rng.below(10) {
        0 => SocketAddr::new(IpAddr::V6(Ipv6Addr::from(u128::from(rng.next()) << 64 | 1)), rng.next() as u16),
        1 => underlay(if rng.chance(50) { 0 } else { 2 }),
        _ => rng.ipv4(),
    }
}

/// A head from `source` to `dest` with a valid header (suite 1 or 3, any verb but HELLO) and a
/// random body: it cannot authenticate, but nothing says so before the MAC check.
fn unauthenticated_head(rng: &mut Rng, dest: Address, source: Address) -> Vec<u8> {
    let len = 28 + rng.below(1200) as usize;
    let mut p = rng.bytes(len);
    let verb = loop {
        let v = rng.below(0x17) as u8;
        if v != Verb::Hello.code() {
            break v;
        }
    };
    let suite = if rng.chance(50) { 1 } else { 3 };
    let id: [u8; 8] = p[..8].try_into().unwrap();
    write_header(&mut p, id, &dest, &source, suite << 3, VerbByte(verb)).unwrap();
    p[19..27].copy_from_slice(&rng.bytes(8));
    p
}

/// A HELLO carrying `claimed`, armored with `key` (suite 0, VL1 §8.1).
fn hello_packet(key: &PeerKey, claimed: &Identity, to: Address, id: [u8; 8], now: Instant) -> Vec<u8> {
    let hello = Hello {
        protocol_version: 12,
        version_major: 1,
        version_minor: 14,
        version_revision: 1,
        timestamp: now.as_millis(),
        identity: claimed.to_public(),
        destination: None,
        planet_id: 7,
        planet_timestamp: 1,
        moons: Vec::new(),
    };
    let mut payload = Vec::new();
    hello.encode(&mut payload, key, &id);
    let mut p = vec![0u8; 28 + payload.len()];
    write_header(&mut p, id, &to, &claimed.address(), 0, VerbByte::new(Verb::Hello, false)).unwrap();
    p[28..].copy_from_slice(&payload);
    ztplane_crypto::armor(key, &mut p, CipherSuite::Poly1305).unwrap();
    p
}

/// OK(HELLO) from `from` in re `in_re`, echoing `echo` as the HELLO's timestamp (VL1 §8.1, §8.3).
fn ok_hello(key: &PeerKey, from: Address, to: Address, in_re: [u8; 8], id: [u8; 8], echo: Instant) -> Vec<u8> {
    let reply = OkMessage {
        in_re_verb: Verb::Hello,
        in_re_packet_id: in_re,
        payload: OkPayload::Hello(OkHello {
            timestamp_echo: echo.as_millis(),
            protocol_version: 12,
            version_major: 1,
            version_minor: 14,
            version_revision: 1,
            reported_address: None,
            world_updates: Vec::new(),
        }),
    };
    let mut payload = Vec::new();
    reply.encode(&mut payload);
    let mut p = vec![0u8; 28 + payload.len()];
    write_header(&mut p, id, &to, &from, 0, VerbByte::new(Verb::Ok, false)).unwrap();
    p[28..].copy_from_slice(&payload);
    ztplane_crypto::armor(key, &mut p, CipherSuite::Salsa2012Poly1305).unwrap();
    p
}

/// An identity that fails the memory-hard check (§5.1) yet agrees to the same key as `base`:
/// `base`'s X25519 half, a random Ed25519 half and a random address.
fn forged_identity(rng: &mut Rng, base: &Identity, known: &[Address]) -> Identity {
    let mut public = *base.public_key();
    public[32..].copy_from_slice(&rng.bytes(32));
    Identity::from_parts(rng.address(known), public, None)
}

/// WHOIS requests among `sent` that go to `root`, opened with `key`: the addresses asked for.
fn whois_requests<'a>(
    sent: impl Iterator<Item = (SocketAddr, &'a [u8])>,
    root: SocketAddr,
    key: &PeerKey,
) -> Vec<Address> {
    let mut out = Vec::new();
    for (to, data) in sent {
        let mut p = data.to_vec();
        if to != root || p.len() < 28 || p[13] == 0xff || ztplane_crypto::dearmor(key, &mut p).is_err() {
            continue;
        }
        if p[27] & 0x1f == Verb::Whois.code() {
            out.extend(p[28..].chunks_exact(5).map(|c| Address::from_bytes(c.try_into().unwrap())));
        }
    }
    out
}

// ---- tests ----

/// 100 000 arbitrary datagrams (random bytes, random noise addressed to a, mutated replays of
/// the network's real traffic) from arbitrary addresses into member a: no panic, every table
/// bounded at every step, no peer created, a small constant of datagrams out per datagram in —
/// and a and b still exchange frames afterwards.
#[test]
fn arbitrary_flood_keeps_the_node_bounded_and_the_network_working() {
    let mut cap = Capture::default();
    let (mut sim, nwid) = network(&mut cap);
    assert_eq!(exchange(&mut sim, nwid, 5, &mut cap), (5, 5), "the network works before the flood");
    assert!(cap.datagrams.len() > 50, "only {} real datagrams captured", cap.datagrams.len());
    let real = cap.datagrams.clone();
    let me = sim.nodes[1].node.address().to_bytes();
    let peers = sim.nodes[1].node.peers().count();
    assert_eq!(peers, 2, "a knows the moon and b");
    let mut rng = Rng(0x5eed_0001);
    let (mut bytes_in, mut bytes_out, mut direct, mut from_timers, mut events, mut burst) = (0, 0, 0, 0, 0, 0);
    for i in 0..FLOOD {
        let datagram = arbitrary_datagram(&mut rng, me, &real);
        let from = arbitrary_source(&mut rng);
        let now = sim.now;
        let node = &mut sim.nodes[1].node;
        node.handle_datagram(now, 1, from, &datagram);
        bytes_in += datagram.len().max(1);
        let mut n = 0;
        while let Some(t) = node.poll_transmit() {
            n += 1;
            bytes_out += t.data.len();
        }
        while node.poll_event().is_some() {
            events += 1;
        }
        direct += n;
        burst = burst.max(n);
        assert_bounded(node, peers, &format!("datagram {i}"));
        // 10 datagrams per virtual millisecond: the rest of the network and a's timers run too.
        if i % 10 == 9 {
            sim.run(1);
            from_timers += sim.in_flight().filter(|(f, _, _)| *f == 1).count();
            assert_bounded(&sim.nodes[1].node, peers, &format!("timers after datagram {i}"));
        }
    }
    let c = sim.nodes[1].node.counters().clone();
    eprintln!(
        "flood of {FLOOD}: {direct} datagrams out directly (largest burst {burst}), {from_timers} from timers, \
         {events} events, {bytes_out} of {bytes_in} bytes; {c:?}"
    );
    // Most of the flood is dropped as malformed or unauthenticated; each reply is bounded.
    assert!(burst <= 4, "one datagram made a send {burst} datagrams");
    assert!(direct + from_timers <= FLOOD / 4, "{direct} + {from_timers} datagrams out for {FLOOD} in");
    assert!(bytes_out <= bytes_in / 4, "{bytes_out} bytes out for {bytes_in} in");
    assert!(events <= FLOOD, "{events} events for {FLOOD} datagrams");
    assert!(c.dropped_malformed + c.dropped_auth > FLOOD as u64 / 4, "the flood was not mostly dropped: {c:?}");
    assert!(c.parked > 0 && c.whois_sent > 0, "heads from unknown sources were parked and asked about");
    // Parked packets, WHOIS and fragments expire.
    sim.run(6_000);
    let node = &sim.nodes[1].node;
    assert_eq!(node.queued(), (0, 0), "parked packets and the TX queue expire");
    assert_eq!(node.reassembling(), 0, "incomplete fragment sets expire");
    assert!(node.pending_whois() <= 2, "{} WHOIS still outstanding", node.pending_whois());
    // Plain replays of b's recent OKs (still expected, VL1 §8.3) from spoofed addresses taught a
    // paths to b there: ZT 1.x has no replay protection (VL1 §3.2) and zerotier-one learns them
    // the same way. Nothing is heard on them again, so 19 s after the flood they are no longer
    // alive, and the next ping pass gives the data path a's real route to b again (VL1 §9).
    sim.run(19_000);
    let b = sim.nodes[2].node.address();
    let best = sim.nodes[1].node.peer(b).and_then(|p| p.best_path(sim.now)).map(|p| p.remote);
    assert_eq!(best, Some(underlay(2)), "a's best path to b after the flood");
    let via = sim.nodes[1].node.data_path().peers[&b].via.map(|(_, remote)| remote);
    assert_eq!(via, best, "the data path's route to b");
    // The network still works.
    assert_eq!(exchange(&mut sim, nwid, 20, &mut cap), (20, 20), "frames after the flood");
    assert!(sim.nodes[1].node.online() && sim.nodes[2].node.online());
}

/// Heads with valid headers from unknown sources (each asks for a WHOIS and parks, §1.4): the
/// park stays at 32, each address is asked about at most once per 500 ms, the WHOIS table stops
/// at 1024, and all of it drains within 5 s.
#[test]
fn unknown_sources_park_bounded_and_whois_is_rate_limited() {
    let mut cap = Capture::default();
    let (mut sim, _) = network(&mut cap);
    let ids = identities();
    let root = underlay(0);
    let key = ids[1].agree(&ids[0]).unwrap();
    let me = sim.nodes[1].node.address();
    let known: Vec<Address> = ids.iter().map(Identity::address).collect();
    let peers = sim.nodes[1].node.peers().count();
    let mut rng = Rng(0x5eed_0002);
    let pool: Vec<Address> = (0..64).map(|_| rng.address(&known)).collect();
    let mut asked: HashMap<Address, Vec<u64>> = HashMap::new();
    let record = |asked: &mut HashMap<Address, Vec<u64>>, now: Instant, addresses: Vec<Address>| {
        for a in addresses {
            asked.entry(a).or_default().push(now.as_millis());
        }
    };
    // Phase 1: 3 s of 8 heads per millisecond from 64 addresses.
    let start = sim.now;
    for ms in 0..3_000u64 {
        for _ in 0..8 {
            let source = pool[rng.below(pool.len() as u64) as usize];
            let head = unauthenticated_head(&mut rng, me, source);
            let (now, from) = (sim.now, rng.ipv4());
            let node = &mut sim.nodes[1].node;
            node.handle_datagram(now, 1, from, &head);
            let sent = drain(node);
            assert!(sent.len() <= 1, "one head made a send {} datagrams", sent.len());
            record(&mut asked, now, whois_requests(sent.iter().map(|t| (t.remote, &t.data[..])), root, &key));
            assert_bounded(node, peers, &format!("head at {ms} ms"));
        }
        sim.run(1);
        let timers = whois_requests(sim.in_flight().filter(|(f, _, _)| *f == 1).map(|(_, to, d)| (to, d)), root, &key);
        record(&mut asked, sim.now, timers);
    }
    let c = sim.nodes[1].node.counters().clone();
    assert!(c.park_overflow > 20_000, "the park bound was exercised: {c:?}");
    let elapsed = sim.now.as_millis() - start.as_millis();
    let mut total = 0;
    for a in &pool {
        let times = asked.get(a).map_or(&[][..], Vec::as_slice);
        assert!(!times.is_empty(), "{a} was never asked about");
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= 500, "{a} asked about twice within 500 ms: {times:?}");
        }
        assert!(times.len() as u64 <= elapsed / 500 + 1, "{a} asked about {} times", times.len());
        total += times.len();
    }
    eprintln!("phase 1: {total} WHOIS for 24000 heads from 64 addresses; {c:?}");
    // Phase 2: 4000 fresh addresses within one second: the WHOIS table stops at 1024.
    let mut fresh = HashSet::new();
    for i in 0..4_000 {
        let source = rng.address(&known);
        let head = unauthenticated_head(&mut rng, me, source);
        let (now, from) = (sim.now, rng.ipv4());
        let node = &mut sim.nodes[1].node;
        node.handle_datagram(now, 1, from, &head);
        let sent = drain(node);
        fresh.extend(whois_requests(sent.iter().map(|t| (t.remote, &t.data[..])), root, &key));
        assert_bounded(node, peers, &format!("fresh address {i}"));
        if i % 4 == 3 {
            sim.run(1);
        }
    }
    assert_eq!(sim.nodes[1].node.pending_whois(), MAX_WHOIS, "the WHOIS table fills up to its bound");
    assert!(fresh.len() <= MAX_WHOIS, "{} fresh addresses asked about", fresh.len());
    // Everything drains once the flood stops.
    sim.run(6_000);
    let node = &sim.nodes[1].node;
    assert_eq!(node.queued(), (0, 0));
    assert!(node.pending_whois() <= 2, "{} WHOIS still outstanding", node.pending_whois());
    assert_eq!(node.peers().count(), peers);
}

/// HELLOs from fresh identities that fail the memory-hard check (with valid MACs) or carry bad
/// MACs create no peer; new identities are looked at (rate gate passed, key agreement, MAC, then
/// validation) at most once per 2 s per source /24 (VL1 §5.1) — counted through the counters: a
/// HELLO not dropped as malformed or rate-limited passed the gate. A correct HELLO does create a
/// peer (the floods are well-formed), but only when the gate lets it through.
#[test]
fn hello_floods_create_no_peers_and_validation_is_rate_limited() {
    let ids = identities();
    let (node_id, base) = (&ids[1], &ids[3]);
    let known: Vec<Address> = ids.iter().map(Identity::address).collect();
    let me = node_id.address();
    let mut now = Instant::from_millis(1_000_000);
    let mut node = lone_node(node_id, now);
    let key = base.agree(node_id).unwrap();
    let bad_key = ztplane_crypto::PeerKey::from_bytes([0x42; 48]);
    let mut rng = Rng(0x5eed_0003);
    let subnet = |rng: &mut Rng| SocketAddr::from(([203, 0, 113, rng.next() as u8], rng.next() as u16));
    let passed = |c: &ztplane_node::Counters| c.packets - c.dropped_rate_limited - c.dropped_malformed;
    // Phase 1: 4 s of 5 HELLOs per millisecond from one /24: half forged identities with good
    // MACs (each costs a validation if let through), half bad MACs (valid or forged identities).
    let (start, before) = (now, node.counters().clone());
    for ms in 0..4_000u64 {
        for _ in 0..5 {
            let id: [u8; 8] = rng.next().to_be_bytes();
            let hello = match rng.below(4) {
                0 | 1 => hello_packet(&key, &forged_identity(&mut rng, base, &known), me, id, now),
                2 => hello_packet(&bad_key, &forged_identity(&mut rng, base, &known), me, id, now),
                _ => hello_packet(&bad_key, &ids[3 + rng.below(5) as usize], me, id, now),
            };
            node.handle_datagram(now, 1, subnet(&mut rng), &hello);
            let sent = drain(&mut node);
            assert!(sent.is_empty(), "an unauthenticated HELLO was answered");
            assert_bounded(&node, 0, &format!("HELLO at {ms} ms"));
        }
        now = now.add_ms(1);
        if node.poll_timeout() <= now {
            node.handle_timeout(now);
            drain(&mut node);
        }
    }
    let c = node.counters().clone();
    let through = passed(&c) - passed(&before);
    let elapsed = now.as_millis() - start.as_millis();
    eprintln!("phase 1: {through} of 20000 HELLOs through the validation gate in {elapsed} ms; {c:?}");
    assert!(through >= 1 && through <= elapsed / 2_000 + 1, "{through} HELLOs through the gate in {elapsed} ms");
    assert_eq!(c.dropped_rate_limited - before.dropped_rate_limited, 20_000 - through);
    // Phase 2: bad MACs from 1000 different /24s each get through the gate (cheap: the MAC
    // fails before any validation) and create nothing.
    let before = node.counters().clone();
    for i in 0..1_000u32 {
        let id: [u8; 8] = rng.next().to_be_bytes();
        let hello = hello_packet(&bad_key, &forged_identity(&mut rng, base, &known), me, id, now);
        let from = SocketAddr::from(([10, (i >> 8) as u8, i as u8, 1], 9993));
        node.handle_datagram(now, 1, from, &hello);
        assert!(drain(&mut node).is_empty());
        assert_bounded(&node, 0, &format!("bad MAC from subnet {i}"));
    }
    let c = node.counters().clone();
    assert_eq!(c.dropped_auth - before.dropped_auth, passed(&c) - passed(&before), "{c:?}");
    // Phase 3: a correct HELLO from a valid identity is refused while its /24 is rate-limited
    // (another identity's HELLO went through just now), then accepted.
    let src = |host: u8| SocketAddr::from(([198, 51, 100, host], 9993));
    let forged = forged_identity(&mut rng, base, &known);
    node.handle_datagram(now, 1, src(1), &hello_packet(&key, &forged, me, [1; 8], now));
    let good_key = ids[4].agree(node_id).unwrap();
    node.handle_datagram(now.add_ms(1_000), 1, src(2), &hello_packet(&good_key, &ids[4], me, [2; 8], now));
    assert_eq!(node.peers().count(), 0, "the gate refused the valid HELLO within 2 s");
    now = now.add_ms(2_000);
    node.handle_datagram(now, 1, src(3), &hello_packet(&good_key, &ids[4], me, [3; 8], now));
    assert_eq!(node.peers().count(), 1, "a correct HELLO creates its peer");
    assert!(node.peer(ids[4].address()).is_some());
    // Answered with OK(HELLO) (and a HELLO to the new address, to learn the path, §1.5).
    let verbs: Vec<u8> = drain(&mut node)
        .into_iter()
        .filter_map(|t| {
            let mut p = t.data;
            ztplane_crypto::dearmor(&good_key, &mut p).ok().map(|_| p[27] & 0x1f)
        })
        .collect();
    assert!(verbs.contains(&Verb::Ok.code()) && verbs.len() <= 2, "answered with verbs {verbs:?}");
}

/// Fragments without heads and fragmented heads without fragments (VL1 §3.2): at most 32 sets
/// are held, they expire, and reassembly works afterwards.
#[test]
fn incomplete_fragment_sets_stay_bounded_and_expire() {
    let ids = identities();
    let me = ids[1].address();
    let known: Vec<Address> = ids.iter().map(Identity::address).collect();
    let mut now = Instant::from_millis(1_000_000);
    let mut node = lone_node(&ids[1], now);
    let mut rng = Rng(0x5eed_0004);
    for round in 0..2 {
        for i in 0..5_000 {
            let d = if round == 0 {
                // A fragment: ID, destination, 0xff, total/number, hops, data.
                let len = 17 + rng.below(1400) as usize;
                let mut d = rng.bytes(len);
                d[8..13].copy_from_slice(&me.to_bytes());
                d[13] = 0xff;
                let total = 2 + rng.below(6);
                d[14] = (total << 4 | (1 + rng.below(total - 1))) as u8;
                d[15] = 0;
                d
            } else {
                let source = rng.address(&known);
                let mut d = unauthenticated_head(&mut rng, me, source);
                d[18] |= FLAG_FRAGMENTED;
                d
            };
            node.handle_datagram(now, 1, rng.ipv4(), &d);
            assert!(drain(&mut node).is_empty());
            assert_bounded(&node, 0, &format!("round {round} datagram {i}"));
            if i % 10 == 9 {
                now = now.add_ms(1);
                if node.poll_timeout() <= now {
                    node.handle_timeout(now);
                    drain(&mut node);
                }
            }
        }
        assert_eq!(node.reassembling(), MAX_REASSEMBLING, "round {round}: the ring fills up to its bound");
        assert_eq!(node.counters().parked, 0, "round {round}: nothing incomplete was handled as a packet");
        // No more datagrams: the timers alone expire the sets (ZT_RECEIVE_QUEUE_TIMEOUT, 5 s).
        for _ in 0..60 {
            now = now.add_ms(100);
            if node.poll_timeout() <= now {
                node.handle_timeout(now);
                drain(&mut node);
            }
        }
        assert_eq!(node.reassembling(), 0, "round {round}: incomplete sets expire");
    }
    // A real fragmented packet from an unknown sender still reassembles (and is parked for WHOIS).
    let source = rng.address(&known);
    let mut packet = unauthenticated_head(&mut rng, me, source);
    packet.resize(3_000, 7);
    packet[18] |= FLAG_FRAGMENTED;
    let mut pieces = Vec::new();
    fragment_packet(&packet, DEFAULT_PHYS_MTU, |d| pieces.push(d.to_vec())).unwrap();
    assert_eq!(pieces.len(), 3);
    for p in pieces.iter().rev() {
        node.handle_datagram(now, 1, rng.ipv4(), p);
    }
    assert_eq!((node.counters().parked, node.reassembling()), (1, 0), "reassembled and parked");
}

/// An authenticated OK that answers nothing we sent — e.g. an old OK of a real peer replayed
/// from a spoofed address — teaches no path (VL1 §8.3; upstream's `_doOK` returns before
/// `Peer::received`), while an OK to our HELLO does (§1.5).
#[test]
fn unsolicited_ok_teaches_no_path() {
    let ids = identities();
    let (node_id, peer_id) = (&ids[1], &ids[4]);
    let real: SocketAddr = "198.51.100.20:9993".parse().unwrap();
    // peers.d entry (§1.5): the node HELLOs the cached address at start.
    let mut cache = vec![2u8];
    peer_id.write_bytes(&mut cache, false);
    for v in [12u16, 1, 14, 1, 1] {
        cache.extend_from_slice(&v.to_be_bytes());
    }
    write_inet(&mut cache, Some(&real));
    let now = Instant::from_millis(1_000_000);
    let config = NodeConfig {
        identity: node_id.clone(),
        planet: empty_planet(),
        moons: Vec::new(),
        cached_peers: vec![cache],
        networks: Vec::new(),
        seed: [3; 32],
    };
    let mut node = Node::new(config, now).expect("node");
    let hellos: Vec<[u8; 8]> =
        drain(&mut node).iter().filter(|t| t.remote == real).map(|t| t.data[..8].try_into().unwrap()).collect();
    assert_eq!(hellos.len(), 1, "the cached address is HELLOed");
    let key = peer_id.agree(node_id).unwrap();
    let ok = |in_re: [u8; 8], id: u8| ok_hello(&key, peer_id.address(), node_id.address(), in_re, [id; 8], now);
    let spoofed: SocketAddr = "203.0.113.9:4444".parse().unwrap();
    node.handle_datagram(now.add_ms(5), 1, spoofed, &ok([0x77; 8], 1));
    let peer = node.peer(peer_id.address()).unwrap();
    assert!(peer.paths.is_empty(), "an unsolicited OK taught paths {:?}", peer.paths);
    assert_eq!(node.counters().dropped_rate_limited, 1, "and was dropped");
    node.handle_datagram(now.add_ms(10), 1, real, &ok(hellos[0], 2));
    let paths: Vec<SocketAddr> = node.peer(peer_id.address()).unwrap().paths.iter().map(|p| p.remote).collect();
    assert_eq!(paths, vec![real], "the OK to our HELLO teaches its path");
}

/// The data path follows the node's choice of path when it changes with time alone (VL1 §9):
/// b's OK to a's HELLO arriving from another address with a 0 ms round trip makes a prefer
/// that path (as a replay from a spoofed address can, see the flood above); nothing is heard
/// there again, so 19 s later the node is back on b's real address — and so, within one ping
/// pass, are the data path's frames.
#[test]
fn data_path_follows_the_node_when_a_preferred_path_dies() {
    let mut cap = Capture::default();
    let (mut sim, nwid) = network(&mut cap);
    assert_eq!(exchange(&mut sim, nwid, 5, &mut cap), (5, 5));
    let ids = identities();
    let (a, b) = (ids[1].address(), ids[2].address());
    // A HELLO a sent b (suite 0, so its verb is in the clear): a expects a reply to its ID.
    let hello_id: [u8; 8] = (0..cap.datagrams.len())
        .rev()
        .find(|&i| {
            let d = &cap.datagrams[i];
            cap.ends[i] == (1, underlay(2)) && d.len() >= 28 && d[13] != 0xff && d[18] & 0x38 == 0 && d[27] == 1
        })
        .map(|i| cap.datagrams[i][..8].try_into().unwrap())
        .expect("a HELLOed b");
    let other: SocketAddr = "10.9.9.9:9993".parse().unwrap();
    let key = ids[2].agree(&ids[1]).unwrap();
    let ok = ok_hello(&key, b, a, hello_id, [0x55; 8], sim.now);
    let now = sim.now;
    sim.nodes[1].node.handle_datagram(now, 1, other, &ok);
    let via = |sim: &Sim| sim.nodes[1].node.data_path().peers[&b].via.map(|(_, remote)| remote);
    assert_eq!(via(&sim), Some(other), "a prefers the new path");
    sim.run(25_000);
    let best = sim.nodes[1].node.peer(b).and_then(|p| p.best_path(sim.now)).map(|p| p.remote);
    assert_eq!(best, Some(underlay(2)), "the node is back on b's real address");
    assert_eq!(via(&sim), Some(underlay(2)), "so is the data path");
    assert_eq!(exchange(&mut sim, nwid, 5, &mut cap), (5, 5), "frames after the switch");
}
