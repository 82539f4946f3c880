//! A virtual network for node tests: nodes on one virtual clock, datagrams delivered after a
//! fixed latency between underlay addresses 198.18.0.N:9993, with links that can be cut. A node
//! can have a second link ([`Sim::add_link`]: local socket 2, 198.18.1.N:9993), cut on its own.
//!
//! Each node is driven the way ztplane's shell drives it: received packets go through the
//! data path snapshot first (as the workers do) and reach the node only when punted; frames
//! from a port likewise. A small controller answers config requests for the moon.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use ztplane_bond::WorkerCursor;
use ztplane_crypto::Identity;
use ztplane_node::bonding::PathRecord;
use ztplane_node::config::NetworkConfig;
use ztplane_node::datapath::{RxVerdict, TxVerdict, seal_ext_frame, seal_frame};
use ztplane_node::{Controller, Event, Instant, NetworkId, Node, NodeConfig};
use ztplane_protocol::credentials::CertificateOfMembership;
use ztplane_protocol::dictionary::Dictionary;
use ztplane_protocol::fragment::fragment_packet;
use ztplane_protocol::header::{DEFAULT_PHYS_MTU, MAX_PACKET_LEN};
use ztplane_protocol::rx::{Inbound, Receiver};
use ztplane_protocol::verbs::ErrorCode;
use ztplane_protocol::world::{Root, WORLD_TYPE_MOON, WORLD_TYPE_PLANET, World};

/// Identities with secrets that need no memory-hard generation: the conformance nodes and
/// the valid identity vectors.
pub fn identities() -> Vec<Identity> {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    let mut out = Vec::new();
    for name in ["c", "a", "b"] {
        let path = shared.join(format!("conformance/zt-1.14.1/nodes/{name}.identity.secret"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push(text.trim().parse().expect("conformance identity"));
    }
    let vectors: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shared.join("vectors/identities.json")).unwrap()).unwrap();
    for v in vectors["vectors"].as_array().unwrap() {
        if v["expectedValid"] == true {
            out.push(v["identity"].as_str().unwrap().parse().unwrap());
        }
    }
    out
}

/// A moon world with one root at `endpoint`, signed by it.
pub fn moon(root: &Identity, endpoint: SocketAddr) -> World {
    let mut key = [0u8; 64];
    key.copy_from_slice(root.public_key());
    let mut w = World {
        world_type: WORLD_TYPE_MOON,
        id: root.address().as_u64(),
        timestamp: 1,
        updates_must_be_signed_by: key,
        signature: [0; 96],
        roots: vec![Root { identity: root.to_public(), stable_endpoints: vec![endpoint] }],
        moon_extension: Vec::new(),
    };
    w.sign(root).expect("sign moon");
    w
}

/// A planet without roots: the sim never tries to reach the real Earth.
pub fn empty_planet() -> World {
    World::unsigned(WORLD_TYPE_PLANET, 7, Vec::new())
}

/// What the test controller gives each member.
#[derive(Clone)]
pub struct MemberPlan {
    pub authorized: bool,
    pub ip: String,
}

/// The embedded test controller: the 1.14.1 controller's config shape (§2.3, §2.5), one
/// private network, fixed member addresses.
pub struct TestController {
    pub identity: Identity,
    pub members: Arc<std::sync::Mutex<HashMap<u64, MemberPlan>>>,
    pub revision: u64,
    pub rules: Vec<u8>,
    pub extra_flags: u64,
    /// Members marked `activeBridge` (specialists in every config, §4.4).
    pub bridges: Vec<u64>,
}

/// Makes `ids[0]` node 0 of `sim` (added here): the moon and the controller of
/// [`controlled_network`] (accept-all rules), with `ids[1..=members]` authorized at 198.19.0.1,
/// .2, ... and the addresses in `bridges` marked active bridges. Returns the moon (for the
/// members to orbit) and the network.
pub fn moon_and_controller(
    sim: &mut Sim,
    ids: &[Identity],
    members: usize,
    bridges: Vec<u64>,
) -> (ztplane_protocol::world::World, NetworkId) {
    let moon = moon(&ids[0], sim.underlay(0));
    let plans = Arc::new(std::sync::Mutex::new(HashMap::new()));
    for (i, id) in ids[1..=members].iter().enumerate() {
        let plan = MemberPlan { authorized: true, ip: format!("198.19.0.{}", i + 1) };
        plans.lock().unwrap().insert(id.address().as_u64(), plan);
    }
    let c = sim.add(ids[0].clone(), vec![moon.clone()], vec![], vec![]);
    sim.nodes[c].node.set_controller(Box::new(TestController {
        identity: ids[0].clone(),
        members: plans,
        revision: 1,
        rules: vec![0x01, 0x00],
        extra_flags: 0,
        bridges,
    }));
    (moon, controlled_network(&ids[0]))
}

/// The one network the test controller knows: network number 1 of its address.
pub fn controlled_network(controller: &Identity) -> NetworkId {
    NetworkId((controller.address().as_u64() << 24) | 0x01)
}

impl Controller for TestController {
    fn request(
        &mut self,
        now: Instant,
        network: NetworkId,
        member: &Identity,
        _metadata: &[u8],
    ) -> Option<Result<Vec<u8>, ErrorCode>> {
        if network != controlled_network(&self.identity) {
            return Some(Err(ErrorCode::OBJ_NOT_FOUND));
        }
        let plans = self.members.lock().unwrap();
        let Some(plan) = plans.get(&member.address().as_u64()) else {
            return Some(Err(ErrorCode::NETWORK_ACCESS_DENIED));
        };
        if !plan.authorized {
            return Some(Err(ErrorCode::NETWORK_ACCESS_DENIED));
        }
        let ts = now.as_millis() + 1_000_000;
        let mut com = CertificateOfMembership::new_for_member(network, ts, 1_800_000, member);
        com.sign(&self.identity).unwrap();
        let mut com_bytes = Vec::new();
        com.write(&mut com_bytes);
        let ip: std::net::Ipv4Addr = plan.ip.parse().unwrap();
        let mut rt = vec![0x04, 198, 19, 0, 0, 0, 24, 0x00];
        rt.extend_from_slice(&[0, 0, 0, 0]);
        let mut addr = vec![0x04];
        addr.extend_from_slice(&ip.octets());
        addr.extend_from_slice(&[0, 24]);
        let mut d = Dictionary::new();
        d.set("v", b"7".to_vec());
        d.set("nwid", format!("{:016x}", network.0));
        d.set("ts", format!("{ts:x}"));
        d.set("ctmd", "1b7740");
        d.set("r", format!("{:x}", self.revision));
        d.set("id", format!("{:010x}", member.address().as_u64()));
        d.set("f", format!("{:x}", 0x02 | self.extra_flags));
        d.set("ml", "20");
        d.set("t", "0");
        d.set("n", "sim");
        d.set("mtu", "af0");
        d.set("C", com_bytes);
        d.set("RT", rt);
        d.set("I", addr);
        d.set("R", self.rules.clone());
        if !self.bridges.is_empty() {
            let specialists: Vec<u8> = self
                .bridges
                .iter()
                .flat_map(|a| (a | ztplane_node::config::SPECIALIST_ACTIVE_BRIDGE).to_be_bytes())
                .collect();
            d.set("S", specialists);
        }
        Some(Ok(d.encode()))
    }
}

pub struct SimNode {
    pub node: Node,
    pub addr: SocketAddr,
    /// Every (local socket, address) of the node: `addr` on socket 1 first.
    pub links: Vec<(u32, SocketAddr)>,
    /// The node's position in bonds' path sequences (a worker's own).
    cursor: WorkerCursor,
    pub identity: Identity,
    /// Frames written to the node's ports.
    pub delivered: Vec<(NetworkId, Vec<u8>)>,
    pub events: Vec<Event>,
    /// Frames the data path handled without the node, each way.
    pub fast_rx: u64,
    pub fast_tx: u64,
    pub punted_rx: u64,
    pub punted_tx: u64,
    reassembly: Receiver,
    rng: u64,
    /// Send records a worker has not reported yet (see [`Sim::record_delay_ms`]).
    held_records: VecDeque<PathRecord>,
}

pub struct Sim {
    pub now: Instant,
    pub nodes: Vec<SimNode>,
    /// Underlay pairs (by node index, both ways) whose datagrams are dropped.
    pub cut: HashSet<(usize, usize)>,
    /// Address pairs (one link between two nodes, both ways) whose datagrams are dropped.
    pub cut_links: HashSet<(SocketAddr, SocketAddr)>,
    pub latency_ms: u64,
    /// How long the data path's send records take to reach the node (a worker reports per
    /// batch, and a busy one later than the peer's acks come back on a LAN).
    pub record_delay_ms: u64,
    /// (arrival, sender, source address, destination address, datagram).
    in_flight: VecDeque<(Instant, usize, SocketAddr, SocketAddr, Vec<u8>)>,
    /// Datagrams sent to addresses no node has (e.g. unreachable roots).
    pub unroutable: u64,
    /// Per node, the wire ID of the last packet head it sent.
    last_head: HashMap<usize, [u8; 8]>,
    /// IPv6 underlay ([`underlay_v6`]) instead of IPv4.
    pub v6: bool,
}

/// Node `i`'s IPv6 underlay address in a [`Sim::new_v6`] network: the documentation prefix,
/// only ever an address inside this virtual network.
pub fn underlay_v6(i: usize) -> SocketAddr {
    format!("[2001:db8::{}]:9993", i + 1).parse().unwrap()
}

pub fn underlay(i: usize) -> SocketAddr {
    format!("198.18.0.{}:9993", i + 1).parse().unwrap()
}

impl Sim {
    pub fn new() -> Self {
        Sim {
            now: Instant::from_millis(1_000_000),
            nodes: Vec::new(),
            cut: HashSet::new(),
            cut_links: HashSet::new(),
            latency_ms: 1,
            record_delay_ms: 0,
            in_flight: VecDeque::new(),
            unroutable: 0,
            last_head: HashMap::new(),
            v6: false,
        }
    }

    /// Adds a node orbiting `moons`, with `networks` joined from the given cached dictionaries.
    pub fn add(
        &mut self,
        identity: Identity,
        moons: Vec<World>,
        networks: Vec<(NetworkId, Vec<u8>)>,
        peers: Vec<Vec<u8>>,
    ) -> usize {
        let index = self.nodes.len();
        let mut seed = [0u8; 32];
        seed[0] = index as u8;
        let config = NodeConfig {
            identity: identity.clone(),
            planet: empty_planet(),
            moons,
            cached_peers: peers,
            networks,
            seed,
        };
        let mut node = Node::new(config, self.now).expect("node");
        let addr = self.underlay(index);
        node.set_local_addresses(vec![(1, addr)]);
        self.nodes.push(SimNode {
            node,
            addr,
            links: vec![(1, addr)],
            cursor: WorkerCursor::new(index as u64),
            identity,
            delivered: Vec::new(),
            events: Vec::new(),
            fast_rx: 0,
            fast_tx: 0,
            punted_rx: 0,
            punted_tx: 0,
            reassembly: Receiver::default(),
            rng: 0x9e37_79b9_7f4a_7c15 ^ index as u64,
            held_records: VecDeque::new(),
        });
        self.nodes[index].node.handle_timeout(self.now);
        self.drain(index);
        index
    }

    /// The same virtual network on an IPv6 underlay.
    pub fn new_v6() -> Self {
        Sim { v6: true, ..Sim::new() }
    }

    /// Node `i`'s underlay address.
    pub fn underlay(&self, i: usize) -> SocketAddr {
        if self.v6 { underlay_v6(i) } else { underlay(i) }
    }

    /// Replaces node `i` by a fresh one built from what it saved (restart).
    pub fn restart(&mut self, i: usize, moons: Vec<World>) {
        let mut networks: HashMap<NetworkId, Vec<u8>> = HashMap::new();
        let mut peers: HashMap<u64, Vec<u8>> = HashMap::new();
        self.nodes[i].node.save_peers();
        self.drain(i);
        for e in &self.nodes[i].events {
            match e {
                Event::SaveNetwork { network, dictionary } => {
                    networks.insert(*network, dictionary.clone());
                }
                Event::NetworkLeft { network } => {
                    networks.remove(network);
                }
                Event::SavePeer { address, cache } => {
                    peers.insert(address.as_u64(), cache.clone());
                }
                _ => {}
            }
        }
        let identity = self.nodes[i].identity.clone();
        let mut seed = [0u8; 32];
        seed[0] = i as u8;
        seed[1] = 1;
        let config = NodeConfig {
            identity: identity.clone(),
            planet: empty_planet(),
            moons,
            cached_peers: peers.into_values().collect(),
            networks: networks.into_iter().collect(),
            seed,
        };
        let node = Node::new(config, self.now).expect("node");
        let n = &mut self.nodes[i];
        n.node = node;
        n.node.set_local_addresses(n.links.clone());
        n.delivered.clear();
        n.events.clear();
        n.node.handle_timeout(self.now);
        self.drain(i);
    }

    /// Gives node `i` a second link: local socket 2 at 198.18.1.(i + 1):9993 (IPv4 only).
    pub fn add_link(&mut self, i: usize) -> SocketAddr {
        let addr: SocketAddr = format!("198.18.1.{}:9993", i + 1).parse().unwrap();
        let n = &mut self.nodes[i];
        n.links.push((2, addr));
        n.node.set_local_addresses(n.links.clone());
        addr
    }

    /// Drops datagrams between `a`'s and `b`'s addresses on link `socket` (1 or 2), both ways.
    pub fn cut_link(&mut self, a: usize, b: usize, socket: u32) {
        let (x, y) = (self.link_addr(a, socket), self.link_addr(b, socket));
        self.cut_links.insert((x, y));
        self.cut_links.insert((y, x));
    }

    pub fn restore_link(&mut self, a: usize, b: usize, socket: u32) {
        let (x, y) = (self.link_addr(a, socket), self.link_addr(b, socket));
        self.cut_links.remove(&(x, y));
        self.cut_links.remove(&(y, x));
    }

    fn link_addr(&self, i: usize, socket: u32) -> SocketAddr {
        self.nodes[i].links.iter().find(|(l, _)| *l == socket).map(|(_, a)| *a).expect("no such link")
    }

    /// The node and local socket an address belongs to.
    fn index_of(&self, addr: SocketAddr) -> Option<(usize, u32)> {
        self.nodes.iter().enumerate().find_map(|(i, n)| n.links.iter().find(|(_, a)| *a == addr).map(|(l, _)| (i, *l)))
    }

    /// The address node `i` sends from: that of `local`, else (the kernel's choice) the one on
    /// the destination's subnet, else its first.
    fn source_for(&self, i: usize, local: Option<u32>, to: SocketAddr) -> SocketAddr {
        let links = &self.nodes[i].links;
        let same_subnet = |a: &SocketAddr| match (a.ip(), to.ip()) {
            (std::net::IpAddr::V4(x), std::net::IpAddr::V4(y)) => x.octets()[..3] == y.octets()[..3],
            _ => false,
        };
        local
            .and_then(|l| links.iter().find(|(s, _)| *s == l))
            .or_else(|| links.iter().find(|(_, a)| same_subnet(a)))
            .map_or(self.nodes[i].addr, |(_, a)| *a)
    }

    /// Moves node `i`'s transmits into flight and its events into its log.
    fn drain(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].node.poll_transmit() {
            if t.data.len() >= 28 && t.data[13] != 0xff {
                self.last_head.insert(i, t.data[..8].try_into().unwrap());
            }
            let from = self.source_for(i, t.local, t.remote);
            self.in_flight.push_back((self.now.add_ms(self.latency_ms), i, from, t.remote, t.data));
        }
        while let Some(e) = self.nodes[i].node.poll_event() {
            if let Event::Deliver { network, frame } = &e {
                self.nodes[i].delivered.push((*network, frame.clone()));
            }
            self.nodes[i].events.push(e);
        }
    }

    /// A datagram arriving at node `to` on `local`, handled as a worker would.
    fn arrive(&mut self, to: usize, local: u32, from: SocketAddr, data: &[u8]) {
        let now = self.now;
        let n = &mut self.nodes[to];
        let me = n.node.address().to_bytes();
        if data.len() < 13 || data[8..13] != me {
            n.node.handle_datagram(now, local, from, data);
            return;
        }
        let mut buf = vec![0u8; MAX_PACKET_LEN];
        let mut packet = match n.reassembly.receive(data, now.as_millis(), &mut buf) {
            Inbound::Packet => data.to_vec(),
            Inbound::Reassembled { len } => {
                buf.truncate(len);
                buf
            }
            _ => return,
        };
        let original = packet.clone();
        let dp = n.node.data_path();
        let mut rng = n.rng;
        let mut random = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u32
        };
        let bytes = packet.len() as u32;
        match dp.receive(&mut packet, (local, from), &mut random) {
            RxVerdict::Deliver { network, start, len, source, bonded, lan } => {
                n.fast_rx += 1;
                if lan {
                    let frame = packet[start..start + len].to_vec();
                    n.events.push(Event::DeliverLan { network, frame });
                } else {
                    n.delivered.push((network, packet[start..start + len].to_vec()));
                }
                n.node.note_frames(now, source, local, from, original[18] & 7 == 0);
                if let Some(b) = bonded {
                    n.node.bond_records(now, &[PathRecord::arrival(source, b, bytes, now)]);
                }
            }
            RxVerdict::Duplicate { source, bonded: b } => {
                n.node.bond_records(now, &[PathRecord::arrival(source, b, bytes, now)]);
            }
            RxVerdict::PuntOpened(suite) => {
                n.punted_rx += 1;
                n.node.handle_opened(now, local, from, &packet, suite);
            }
            RxVerdict::Punt => {
                n.punted_rx += 1;
                n.node.handle_packet(now, local, from, &mut packet);
            }
            RxVerdict::Drop => {}
        }
    }

    /// Writes `frame` into node `i`'s port of `network` (the host sends it).
    pub fn tap_send(&mut self, i: usize, network: NetworkId, frame: &[u8]) {
        self.port_send(i, network, frame, false);
    }

    fn port_send(&mut self, i: usize, network: NetworkId, frame: &[u8], from_lan: bool) {
        let now = self.now;
        let n = &mut self.nodes[i];
        let dp = n.node.data_path();
        let mut random = || 4u32;
        let verdict = if from_lan {
            dp.route_lan_frame(now, network, frame, &mut random, &mut n.cursor)
        } else {
            dp.route_frame(now, network, frame, &mut random, &mut n.cursor)
        };
        match verdict {
            TxVerdict::Send { dest, key, suite, via, path, bridged } => {
                n.fast_tx += 1;
                n.rng = n.rng.wrapping_mul(6364136223846793005).wrapping_add(1);
                let mut out = vec![0u8; MAX_PACKET_LEN];
                let seal = if bridged { seal_ext_frame } else { seal_frame };
                let len = seal(n.node.address(), dest, &key, suite, n.rng.to_be_bytes(), network, frame, &mut out)
                    .expect("seal");
                let mut pieces = Vec::new();
                fragment_packet(&out[..len], DEFAULT_PHYS_MTU, |d| pieces.push(d.to_vec())).unwrap();
                n.node.note_sent(now, dest, via.0, via.1);
                if let Some(path) = path {
                    let packet_id = u64::from_be_bytes(out[..8].try_into().unwrap());
                    let r = PathRecord {
                        peer: dest,
                        path,
                        packet_id,
                        bytes: len as u32,
                        at: now,
                        received: false,
                        flow: 0,
                    };
                    if self.record_delay_ms == 0 {
                        n.node.bond_records(now, &[r]);
                    } else {
                        n.held_records.push_back(r);
                    }
                }
                let from = self.source_for(i, Some(via.0), via.1);
                for p in pieces {
                    self.in_flight.push_back((now.add_ms(self.latency_ms), i, from, via.1, p));
                }
            }
            TxVerdict::Loopback => n.delivered.push((network, frame.to_vec())),
            TxVerdict::Punt if from_lan => {
                n.punted_tx += 1;
                n.node.handle_lan_frame(now, network, frame);
            }
            TxVerdict::Punt => {
                n.punted_tx += 1;
                n.node.handle_tap_frame(now, network, frame);
            }
            TxVerdict::Drop => {}
        }
        self.drain(i);
    }

    /// Hands `frame` to node `i` as if it arrived on the LAN bridged into `network`: the data
    /// path first, as a worker does, then the node with what it punts.
    pub fn lan_send(&mut self, i: usize, network: NetworkId, frame: &[u8]) {
        self.port_send(i, network, frame, true);
    }

    /// Frames node `i` wrote to the LAN of a bridged network so far.
    pub fn lan_delivered(&self, i: usize) -> Vec<Vec<u8>> {
        self.nodes[i]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::DeliverLan { frame, .. } => Some(frame.clone()),
                _ => None,
            })
            .collect()
    }

    /// Advances the clock by `ms`, delivering datagrams and running timers each millisecond.
    pub fn run(&mut self, ms: u64) {
        let end = self.now.add_ms(ms);
        while self.now < end {
            self.now = self.now.add_ms(1);
            while let Some((at, _, _, _, _)) = self.in_flight.front() {
                if *at > self.now {
                    break;
                }
                let (_, from, src, to, data) = self.in_flight.pop_front().unwrap();
                match self.index_of(to) {
                    Some((t, local)) if !self.cut.contains(&(from, t)) && !self.cut_links.contains(&(src, to)) => {
                        self.arrive(t, local, src, &data);
                        self.drain(t);
                    }
                    Some(_) => {}
                    None => self.unroutable += 1,
                }
            }
            for i in 0..self.nodes.len() {
                let now = self.now;
                let n = &mut self.nodes[i];
                while n.held_records.front().is_some_and(|r| r.at.add_ms(self.record_delay_ms) <= now) {
                    let r = n.held_records.pop_front().unwrap();
                    n.node.bond_records(now, &[r]);
                }
                if self.nodes[i].node.poll_timeout() <= self.now {
                    self.nodes[i].node.handle_timeout(self.now);
                }
                self.drain(i);
            }
        }
    }

    /// Runs until `done` holds, at most `limit_ms`; returns whether it held.
    pub fn run_until(&mut self, limit_ms: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now.add_ms(limit_ms);
        while self.now < end {
            if done(self) {
                return true;
            }
            self.run(10);
        }
        done(self)
    }

    pub fn cut(&mut self, a: usize, b: usize) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    pub fn config(&self, i: usize, network: NetworkId) -> Option<Arc<NetworkConfig>> {
        self.nodes[i].node.network(network).and_then(|n| n.config.clone())
    }
}

/// An ARP request from `mac`/`ip` for `target`.
pub fn arp_request(mac: [u8; 6], ip: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

/// An ARP reply from `mac`/`ip` to `to_mac`/`to_ip`.
pub fn arp_reply(mac: [u8; 6], ip: [u8; 4], to_mac: [u8; 6], to_ip: [u8; 4]) -> Vec<u8> {
    let mut f = to_mac.to_vec();
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&to_mac);
    f.extend_from_slice(&to_ip);
    f
}

/// An IPv4/UDP frame of `len` payload bytes (content = sequence number pattern).
pub fn ipv4_frame(dst: [u8; 6], src: [u8; 6], from: [u8; 4], to: [u8; 4], seq: u32, len: usize) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = 20 + 8 + len;
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&from);
    f.extend_from_slice(&to);
    f.extend_from_slice(&[0x30, 0x39, 0x30, 0x39, ((8 + len) >> 8) as u8, (8 + len) as u8, 0, 0]);
    for i in 0..len {
        f.push((seq as usize + i) as u8);
    }
    f
}

impl Sim {
    /// The wire packet ID of the latest packet head node `i` sent that is still in flight, or
    /// was delivered last (kept from `drain`).
    pub fn last_sent_id(&self, i: usize) -> Option<[u8; 8]> {
        self.last_head.get(&i).copied()
    }

    /// Datagrams in flight: (sender index, destination, bytes). With the default 1 ms latency,
    /// right after [`Sim::run`]`(1)` these are exactly the datagrams sent during that millisecond.
    pub fn in_flight(&self) -> impl Iterator<Item = (usize, SocketAddr, &[u8])> + '_ {
        self.in_flight.iter().map(|(_, from, _, to, data)| (*from, *to, data.as_slice()))
    }
}
