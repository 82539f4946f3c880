//! The whole node (`ztplane-node`) under arbitrary input: datagrams from arbitrary addresses,
//! packets sealed by its known peer or its moon (so the fuzzer reaches every verb handler past
//! the MAC check), and frames from its port, on an advancing virtual clock. Checks the node's
//! bounds after every step (zerotier-vl2.md §1.4, VL1 §3.2): ≤ 32 parked packets, ≤ 32 queued
//! messages, ≤ 1024 outstanding WHOIS, ≤ 32 incomplete fragment sets; and that an
//! unauthenticated datagram creates no peer and makes the node send at most 3 datagrams.
//!
//! Input: repeated `[op | dt | src | len (u16 LE) | data (len)]`.
//! * `op & 3`: 0 raw datagram to `handle_datagram`; 1 / 2 `data = verb ‖ selector ‖ payload`
//!   sealed as a packet from the peer / the moon (suite, hops, fragment order from the
//!   selector), received through the data path like the workers do (punts go to the node);
//!   3 an Ethernet frame from the port (data path first, punts to `handle_tap_frame`).
//! * `dt`: the clock advances `dt × 16` ms (255: 300 s) and due timers run.
//! * `src`: the source address (the moon's or the peer's endpoint, or others from the byte).
//!
//! Identities are the conformance nodes' (shared/conformance/zt-1.14.1/nodes): a is the fuzzed
//! node, b its known peer (from `peers.d`), c the moon and controller of the public network it
//! has joined (cached config). Keys, worlds and the config are made once; the node itself is
//! rebuilt for every input so that each input reproduces on its own.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;
use ztplane_crypto::{CipherSuite, Identity, PeerKey};
use ztplane_node::datapath::{RxVerdict, TxVerdict, seal_frame};
use ztplane_node::{Instant, NetworkId, Node, NodeConfig};
use ztplane_protocol::dictionary::Dictionary;
use ztplane_protocol::fragment::fragment_packet;
use ztplane_protocol::header::{DEFAULT_PHYS_MTU, FLAG_FRAGMENTED, MAX_PACKET_LEN, VerbByte, write_header};
use ztplane_protocol::inet::write_inet;
use ztplane_protocol::world::{Root, WORLD_TYPE_MOON, WORLD_TYPE_PLANET, World};

/// a.identity.secret: the fuzzed node.
const NODE: &str = "cfe2482597:0:71996e2693877f7a50ad7a951087a44ade9520653a0619b13bab16f40dbf7817df57e5992b1209d0e840be81\
1d8b5dcc4f0abab784fc8be8348c51922114a31a:a898514d4d60ef8aa699c8cb4c9cfc7a9317b2cb7001591cd5e75b0665f6edd6e321aeec5cf60ea\
edee83970d6435501ebf26eaeed738008df3c2f4ce65ba3ac";
/// b.identity.public: the known peer.
const PEER: &str = "f2281a769d:0:9716f6c4b3816030371a2088aaf257b34b7463f0efafe35c9de7c8c5ad2eca16528e95540a26c637502ca5e52e\
0ca7b4bc3247b512ade63c56c435ae832ec8ad";
/// c.identity.public: the moon, and the controller of the joined network.
const MOON: &str = "2c80d43748:0:a3e7be15bf4f822544935796d5f168cbcf4af4eaf0a7cb199619377d1ef0f6257fbd77ffe92af02972612340\
49abf376d4646ad63ea181cc71b813429d0d4fe9";

const MOON_ENDPOINT: ([u8; 4], u16) = ([198, 18, 1, 1], 9993);
const PEER_ENDPOINT: ([u8; 4], u16) = ([198, 18, 0, 3], 9993);
const START: Instant = Instant::from_millis(1_000_000);

struct Fixture {
    node: Identity,
    peer: Identity,
    moon: Identity,
    peer_key: PeerKey,
    moon_key: PeerKey,
    nwid: NetworkId,
    moon_world: World,
    peer_cache: Vec<u8>,
    dictionary: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let node: Identity = NODE.parse().expect("node identity");
        let peer: Identity = PEER.parse().expect("peer identity");
        let moon: Identity = MOON.parse().expect("moon identity");
        let nwid = NetworkId((moon.address().as_u64() << 24) | 0x01);
        // Moons given at start are orbited without a signature check (zerotier-vl2.md §1.1).
        let moon_world = World::unsigned(
            WORLD_TYPE_MOON,
            moon.address().as_u64(),
            vec![Root { identity: moon.clone(), stable_endpoints: vec![MOON_ENDPOINT.into()] }],
        );
        // peers.d entry (§1.5): 02 ‖ identity ‖ proto ‖ major ‖ minor ‖ revision ‖ n ‖ addresses.
        let mut peer_cache = vec![2u8];
        peer.write_bytes(&mut peer_cache, false);
        for v in [12u16, 1, 14, 1, 1] {
            peer_cache.extend_from_slice(&v.to_be_bytes());
        }
        write_inet(&mut peer_cache, Some(&PEER_ENDPOINT.into()));
        // A public network's config (§2.5): no COM needed, so the peer passes the gate.
        let mut d = Dictionary::new();
        d.set("v", b"7".to_vec());
        d.set("nwid", format!("{:016x}", nwid.0));
        d.set("ts", "f4240");
        d.set("ctmd", "1b7740");
        d.set("r", "1");
        d.set("id", format!("{:010x}", node.address().as_u64()));
        d.set("f", "2");
        d.set("ml", "20");
        d.set("t", "1");
        d.set("n", "fuzz");
        d.set("mtu", "af0");
        d.set("RT", vec![0x04, 198, 19, 0, 0, 0, 24, 0x00, 0, 0, 0, 0]);
        d.set("I", vec![0x04, 198, 19, 0, 1, 0, 24]);
        d.set("R", vec![0x01, 0x00]);
        let peer_key = node.agree(&peer).expect("peer key");
        let moon_key = node.agree(&moon).expect("moon key");
        Fixture { node, peer, moon, peer_key, moon_key, nwid, moon_world, peer_cache, dictionary: d.encode() }
    })
}

fn new_node(f: &Fixture) -> Node {
    let planet = World::unsigned(WORLD_TYPE_PLANET, 7, Vec::new());
    let config = NodeConfig {
        identity: f.node.clone(),
        planet,
        moons: vec![f.moon_world.clone()],
        cached_peers: vec![f.peer_cache.clone()],
        networks: vec![(f.nwid, f.dictionary.clone())],
        seed: [7; 32],
    };
    let mut node = Node::new(config, START).expect("node");
    node.set_local_addresses(vec![(1, SocketAddr::from(([198, 18, 0, 2], 9993)))]);
    node
}

fn source(src: u8) -> SocketAddr {
    match src % 8 {
        0 => MOON_ENDPOINT.into(),
        1 => PEER_ENDPOINT.into(),
        2 => SocketAddr::from(([198, 18, 0, src], 9993)),
        3 => SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(src))), 9993),
        4 => SocketAddr::from(([127, 0, 0, 1], u16::from(src))),
        _ => SocketAddr::new(IpAddr::V4(Ipv4Addr::new(src, 7, src, 1)), u16::from(src) << 4),
    }
}

/// Empties the node's outputs; returns how many datagrams it sent.
fn drain(node: &mut Node) -> usize {
    while node.poll_event().is_some() {}
    std::iter::from_fn(|| node.poll_transmit()).count()
}

fn check_bounds(node: &Node) {
    let (parked, queued) = node.queued();
    assert!(parked <= 32, "{parked} packets parked");
    assert!(queued <= 32, "{queued} messages queued");
    assert!(node.pending_whois() <= 1024, "{} WHOIS outstanding", node.pending_whois());
    assert!(node.reassembling() <= 32, "{} fragment sets held", node.reassembling());
}

/// `verb ‖ selector ‖ payload` sealed from `from` with `key`; returns its datagrams.
fn seal(f: &Fixture, from: &Identity, key: &PeerKey, id: u64, data: &[u8]) -> Vec<Vec<u8>> {
    let (verb, selector, payload) = match data {
        [verb, selector, payload @ ..] => (*verb, *selector, payload),
        _ => return Vec::new(),
    };
    let payload = &payload[..payload.len().min(MAX_PACKET_LEN - 28)];
    let mut packet = vec![0u8; 28 + payload.len()];
    let flags = if packet.len() > DEFAULT_PHYS_MTU { FLAG_FRAGMENTED } else { 0 };
    let (me, source) = (f.node.address(), from.address());
    if write_header(&mut packet, id.to_be_bytes(), &me, &source, flags, VerbByte(verb)).is_err() {
        return Vec::new();
    }
    packet[28..].copy_from_slice(payload);
    let suite = match selector % 3 {
        0 => CipherSuite::Poly1305,
        1 => CipherSuite::Salsa2012Poly1305,
        _ => CipherSuite::AesGmacSiv,
    };
    if ztplane_crypto::armor(key, &mut packet, suite).is_err() {
        return Vec::new();
    }
    packet[18] |= (selector >> 2) & 7; // hops: outside the MAC
    let mut pieces = Vec::new();
    if fragment_packet(&packet, DEFAULT_PHYS_MTU, |d| pieces.push(d.to_vec())).is_err() {
        return Vec::new();
    }
    if selector & 0x20 != 0 {
        pieces.reverse();
    }
    pieces
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let mut node = new_node(f);
    let mut now = START;
    node.handle_timeout(now);
    drain(&mut node);
    let mut rest = data;
    let mut packet_id = 0x5eed_0000_0000_0000u64;
    let mut random = 0x9e37_79b9u32;
    let mut next_random = move || {
        random ^= random << 13;
        random ^= random >> 17;
        random ^= random << 5;
        random
    };
    while rest.len() >= 5 {
        let (op, dt, src) = (rest[0], rest[1], rest[2]);
        let len = (u16::from_le_bytes([rest[3], rest[4]]) as usize).min(rest.len() - 5);
        let body = &rest[5..5 + len];
        rest = &rest[5 + len..];
        now = now.add_ms(if dt == 255 { 300_000 } else { u64::from(dt) * 16 });
        if node.poll_timeout() <= now {
            node.handle_timeout(now);
            drain(&mut node);
            check_bounds(&node);
        }
        let remote = source(src);
        let local = u32::from(op >> 7);
        let peers = node.peers().count();
        match op & 3 {
            0 => {
                node.handle_datagram(now, local, remote, body);
                let sent = drain(&mut node);
                assert!(sent <= 3, "one unauthenticated datagram made the node send {sent}");
                assert!(node.peers().count() <= peers, "an unauthenticated datagram created a peer");
            }
            1 | 2 => {
                let (from, key) = if op & 3 == 1 { (&f.peer, &f.peer_key) } else { (&f.moon, &f.moon_key) };
                packet_id = packet_id.wrapping_add(0x0001_0000_0001);
                for datagram in seal(f, from, key, packet_id, body) {
                    if op & 4 != 0 {
                        node.handle_datagram(now, local, remote, &datagram);
                        continue;
                    }
                    // As the workers do: whole packets through the data path, punts to the node.
                    if datagram.len() < 28 || datagram[13] == 0xff || datagram[18] & FLAG_FRAGMENTED != 0 {
                        node.handle_datagram(now, local, remote, &datagram);
                        continue;
                    }
                    let mut packet = datagram.clone();
                    match node.data_path().receive(&mut packet, (local, remote), &mut next_random) {
                        RxVerdict::Punt => node.handle_packet(now, local, remote, &mut packet),
                        RxVerdict::PuntOpened(suite) => node.handle_opened(now, local, remote, &packet, suite),
                        RxVerdict::Deliver { start, len, .. } => assert!(start + len <= packet.len()),
                        RxVerdict::Drop | RxVerdict::Duplicate { .. } => {}
                    }
                }
                drain(&mut node);
            }
            _ => {
                match node.data_path().route_frame(now, f.nwid, body, &mut next_random, &mut ztplane_bond::WorkerCursor::new(0)) {
                    TxVerdict::Send { dest, key, suite, .. } => {
                        let mut out = vec![0u8; MAX_PACKET_LEN];
                        let me = f.node.address();
                        let _ = seal_frame(me, dest, &key, suite, [1; 8], f.nwid, body, &mut out);
                    }
                    TxVerdict::Punt => node.handle_tap_frame(now, f.nwid, body),
                    TxVerdict::Loopback | TxVerdict::Drop => {}
                }
                drain(&mut node);
            }
        }
        check_bounds(&node);
    }
});
