//! Deterministic simulator: the real engine on both ends of a bond over simulated links, with a virtual
//! clock (issue item 6). Node A sends the scenario's traffic to node B; both bonds run their timers,
//! probes, acks and QoS records over the same links, so failure detection and estimates are the engine's
//! own, not the simulator's.
//!
//! Link i of A talks to link i of B (one path per link). Everything is seeded; the same scenario and
//! configuration always give the same result.

pub mod link;
pub mod scenario;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use crate::bond::{Bond, BondEvent, Delivery, Transmit};
use crate::config::{BondingConfig, Policy, PolicySettings};
use crate::error::BondError;
use crate::flow::{FlowHash, FlowKey};
use crate::measure::{PacketKind, PathAck, QosRecord};
use crate::path::PathId;
use crate::policy::active_backup::ChangeReason;
use crate::rng::SeededRng;
use link::SimLink;
pub use scenario::Scenario;

/// After the traffic stops, the simulation runs this long so packets in flight land.
pub const DRAIN_US: u64 = 1_000_000;
/// Width of the per-link share timeline buckets.
pub const TIMELINE_BUCKET_MS: u64 = 100;

/// The simulator's JSON result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SimResult {
    pub policy: String,
    pub base_policy: String,
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates_delivered: u64,
    pub duplicates_suppressed: u64,
    pub reordered: u64,
    pub flow_moves: u64,
    /// Longest gap between deliveries, not counting time when no link was up.
    pub outage_ms: f64,
    pub failovers: Vec<Failover>,
    pub links: Vec<LinkResult>,
    pub warnings: Vec<String>,
    /// Engine events of the sending node, in order.
    #[serde(skip)]
    pub events: Vec<BondEvent>,
    /// Data packets per link per [`TIMELINE_BUCKET_MS`] (sender side).
    #[serde(skip)]
    pub timeline: Vec<Vec<u64>>,
    /// Per-flow list of links used, in order of first use (sender side).
    #[serde(skip)]
    pub flow_links: Vec<Vec<usize>>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Failover {
    pub at_ms: f64,
    pub from: String,
    pub to: String,
    /// Time from the link event that caused it (the link going down or degrading); `None` if no event did.
    pub detection_ms: Option<f64>,
    pub reason: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct LinkResult {
    pub name: String,
    pub packets: u64,
    pub share: f64,
    pub estimated: Estimated,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Estimated {
    /// Smoothed round-trip time, as zerotier-cli shows latency.
    pub latency_ms: f64,
    pub latency_max_ms: f64,
    pub pdv_ms: f64,
    pub loss: f64,
    pub error_ratio: f64,
    pub throughput_mbps: f64,
    pub throughput_max_mbps: f64,
    /// Capacity measured while the link was saturated (absent if it never was).
    pub capacity_mbps: Option<f64>,
    pub availability: f64,
}

#[derive(Clone, Debug)]
enum Payload {
    Data { id: u64, flow: u32, seq: u64, bytes: u32 },
    Echo { id: u64 },
    EchoReply { id: u64, in_re: u64 },
    Qos { id: u64, records: Vec<QosRecord> },
    Ack { id: u64, ack: PathAck },
}

#[derive(Clone, Debug)]
enum Action {
    SendData,
    Arrive { to: usize, link: usize, payload: Payload },
    Timer { node: usize },
    LinkChange { event: usize },
}

struct Queued {
    at: u64,
    seq: u64,
    action: Action,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct Node {
    bond: Bond,
    /// Simulator link index of each bond path (None: link not allowed by the policy).
    path_of_link: Vec<Option<PathId>>,
    link_of_path: Vec<usize>,
    next_timer: u64,
}

struct Sim {
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    links: Vec<SimLink>,
    rng: SeededRng,
    nodes: [Node; 2],
}

impl Sim {
    fn push(&mut self, at: u64, action: Action) {
        self.seq += 1;
        self.queue.push(Reverse(Queued { at, seq: self.seq, action }));
    }

    fn new_id(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Put a packet from node `from` on link `link`.
    fn transmit(&mut self, from: usize, link: usize, bytes: u32, payload: Payload) {
        let now = self.now;
        if let Some(at) = self.links[link].transmit(from, bytes, now, &mut self.rng) {
            self.push(at, Action::Arrive { to: 1 - from, link, payload });
        }
    }

    /// Drain a node's transmits and reschedule its timer.
    fn service(&mut self, node: usize) {
        while let Some(t) = self.nodes[node].bond.poll_transmit() {
            let now = self.now;
            match t {
                Transmit::Echo { path } => {
                    let id = self.new_id();
                    let _ = self.nodes[node].bond.on_echo_sent(path, id, now);
                    let link = self.nodes[node].link_of_path[path.0 as usize];
                    self.transmit(node, link, 28, Payload::Echo { id });
                }
                Transmit::Qos { path, records } => {
                    let id = self.new_id();
                    let link = self.nodes[node].link_of_path[path.0 as usize];
                    let bytes = 28 + 10 * records.len() as u32;
                    self.transmit(node, link, bytes, Payload::Qos { id, records });
                }
                Transmit::Ack { path, ack } => {
                    let id = self.new_id();
                    let link = self.nodes[node].link_of_path[path.0 as usize];
                    self.transmit(node, link, 60, Payload::Ack { id, ack });
                }
            }
        }
        let next = self.nodes[node].bond.poll_timeout(self.now);
        if next < self.nodes[node].next_timer {
            self.nodes[node].next_timer = next;
            self.push(next, Action::Timer { node });
        }
    }
}

fn flow_keys(count: u32, rng: &mut SeededRng) -> Vec<FlowHash> {
    (0..count)
        .map(|_| {
            let host = |rng: &mut SeededRng| IpAddr::V4(Ipv4Addr::new(10, 147, (rng.below(4)) as u8, 1 + rng.below(250) as u8));
            FlowKey {
                src: host(rng),
                dst: host(rng),
                protocol: if rng.chance(0.5) { 6 } else { 17 },
                src_port: 1024 + rng.below(60_000) as u16,
                dst_port: [443, 80, 53, 22, 5201][rng.below(5) as usize],
            }
            .hash()
        })
        .collect()
}

/// The policy a scenario runs: the peer's `peerSpecificBonds` entry, else `defaultBondingPolicy`.
pub fn policy_for(scenario: &Scenario, config: &BondingConfig) -> PolicySettings {
    config.policy_for_peer(scenario.peer_address().unwrap_or(u64::MAX))
}

/// Run a scenario with a bonding configuration.
pub fn run(scenario: &Scenario, config: &BondingConfig) -> Result<SimResult, BondError> {
    run_policy(scenario, policy_for(scenario, config))
}

/// Run a scenario with explicit policy settings (both ends use them).
pub fn run_policy(scenario: &Scenario, settings: PolicySettings) -> Result<SimResult, BondError> {
    scenario.validate()?;
    let mut rng = SeededRng::new(scenario.seed);
    let flows = flow_keys(scenario.traffic.flows, &mut rng);
    let mut warnings = Vec::new();
    let make_node = |warnings: &mut Vec<String>, remote: &str| -> Result<Node, BondError> {
        let mut bond = Bond::new(settings.clone(), 0);
        bond.set_peer_acks(scenario.peer_acks);
        let mut path_of_link = Vec::new();
        let mut link_of_path = Vec::new();
        for (i, l) in scenario.links.iter().enumerate() {
            match bond.add_path(&l.name, &format!("{remote}-{}", l.name), false, 0) {
                Ok(p) => {
                    path_of_link.push(Some(p));
                    link_of_path.push(i);
                }
                Err(BondError::LinkNotAllowed { .. }) => {
                    if remote == "b" {
                        warnings.push(format!("link {:?} is not listed by policy {:?}; it carries nothing", l.name, settings.name));
                    }
                    path_of_link.push(None);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Node { bond, path_of_link, link_of_path, next_timer: u64::MAX })
    };
    let a = make_node(&mut warnings, "b")?;
    let b = make_node(&mut warnings, "a")?;
    if a.link_of_path.is_empty() {
        return Err(BondError::Scenario {
            path: "links".into(),
            reason: format!("policy {:?} allows none of the scenario's links", settings.name),
        });
    }
    let mut sim = Sim {
        now: 0,
        seq: 0,
        queue: BinaryHeap::new(),
        links: scenario.links.iter().map(SimLink::new).collect(),
        rng,
        nodes: [a, b],
    };
    for (i, e) in scenario.events.iter().enumerate() {
        sim.push(e.at_ms * 1000, Action::LinkChange { event: i });
    }
    sim.push(0, Action::SendData);
    sim.service(0);
    sim.service(1);

    let traffic_end = scenario.duration_ms * 1000;
    let end = traffic_end + DRAIN_US;
    let interval_us = 1e6 / scenario.traffic.packets_per_second;
    let nlinks = scenario.links.len();
    let mut k: u64 = 0;
    let mut flow_seq = vec![0u64; flows.len()];
    let mut flow_max_delivered = vec![None::<u64>; flows.len()];
    let mut flow_last_link: Vec<Option<usize>> = vec![None; flows.len()];
    let mut flow_links: Vec<Vec<usize>> = vec![Vec::new(); flows.len()];
    let mut flow_moves = 0u64;
    let mut link_packets = vec![0u64; nlinks];
    let buckets = (scenario.duration_ms / TIMELINE_BUCKET_MS + 1) as usize;
    let mut timeline = vec![vec![0u64; buckets]; nlinks];
    let mut sent_ids: u64 = 0;
    let mut delivered_ids: HashSet<u64> = HashSet::new();
    let mut duplicates_delivered = 0u64;
    let mut reordered = 0u64;
    let mut delivered = 0u64;
    // Outage accounting: gaps between deliveries minus time with every link down.
    let mut last_delivery: Option<u64> = None;
    let mut max_gap = 0u64;
    let mut all_down_since: Option<u64> = None;
    let mut all_down_in_gap = 0u64;
    let mut last_link_event: Vec<Option<u64>> = vec![None; nlinks];
    let mut events = Vec::new();
    let mut failovers = Vec::new();

    while let Some(Reverse(q)) = sim.queue.pop() {
        if q.at > end {
            break;
        }
        sim.now = q.at;
        let now = sim.now;
        let mut touched = [false; 2];
        match q.action {
            Action::SendData => {
                if now < traffic_end {
                    let f = (k % flows.len() as u64) as usize;
                    k += 1;
                    sim.push((k as f64 * interval_us) as u64, Action::SendData);
                    let id = sim.new_id();
                    let seq = flow_seq[f];
                    flow_seq[f] += 1;
                    sent_ids += 1;
                    let chosen = sim.nodes[0].bond.select(flows[f], now);
                    let bytes = scenario.traffic.packet_bytes;
                    for path in &chosen {
                        let link = sim.nodes[0].link_of_path[path.0 as usize];
                        let _ = sim.nodes[0].bond.on_data_sent(*path, id, bytes as usize, now);
                        link_packets[link] += 1;
                        timeline[link][((now / 1000) / TIMELINE_BUCKET_MS) as usize] += 1;
                        sim.transmit(0, link, bytes, Payload::Data { id, flow: f as u32, seq, bytes });
                    }
                    if chosen.len() == 1 {
                        let link = sim.nodes[0].link_of_path[chosen[0].0 as usize];
                        if flow_last_link[f].is_some_and(|l| l != link) {
                            flow_moves += 1;
                        }
                        if !flow_links[f].contains(&link) {
                            flow_links[f].push(link);
                        }
                        flow_last_link[f] = Some(link);
                    }
                    touched[0] = true;
                }
            }
            Action::Timer { node } => {
                if sim.nodes[node].next_timer == now {
                    sim.nodes[node].next_timer = u64::MAX;
                    sim.nodes[node].bond.handle_timeout(now);
                    touched[node] = true;
                }
            }
            Action::LinkChange { event } => {
                let e = &scenario.events[event];
                let link = scenario.links.iter().position(|l| l.name == e.link).unwrap_or(0);
                sim.links[link].apply(&e.set);
                let degrades = e.set.up == Some(false) || e.set.loss.is_some_and(|l| l > 0.0) || e.set.latency_ms.is_some();
                if degrades {
                    last_link_event[link] = Some(now);
                }
                let all_down = sim.links.iter().all(|l| !l.up);
                match (all_down, all_down_since) {
                    (true, None) => all_down_since = Some(now),
                    (false, Some(since)) => {
                        all_down_in_gap += now - since;
                        all_down_since = None;
                    }
                    _ => {}
                }
            }
            Action::Arrive { to, link, payload } => {
                if !sim.links[link].up {
                    continue;
                }
                let Some(path) = sim.nodes[to].path_of_link[link] else { continue };
                touched[to] = true;
                let bond = &mut sim.nodes[to].bond;
                match payload {
                    Payload::Data { id, flow, seq, bytes } => {
                        let verdict = bond.on_packet_received(path, id, bytes as usize, PacketKind::Data, now);
                        if verdict.ok() == Some(Delivery::Deliver) {
                            if !delivered_ids.insert(id) {
                                duplicates_delivered += 1;
                                continue;
                            }
                            delivered += 1;
                            let f = flow as usize;
                            match flow_max_delivered[f] {
                                Some(m) if seq < m => reordered += 1,
                                _ => flow_max_delivered[f] = Some(seq),
                            }
                            let down_now = all_down_since.map_or(0, |s| now - s);
                            if let Some(prev) = last_delivery {
                                let gap = (now - prev).saturating_sub(all_down_in_gap + down_now);
                                max_gap = max_gap.max(gap);
                            }
                            last_delivery = Some(now);
                            all_down_in_gap = 0;
                            if let Some(s) = all_down_since.as_mut() {
                                *s = now;
                            }
                        }
                    }
                    Payload::Echo { id } => {
                        let _ = bond.on_packet_received(path, id, 28, PacketKind::Control, now);
                        let reply = sim.rng.next_u64();
                        let _ = sim.nodes[to].bond.on_control_sent(path, reply, now);
                        sim.transmit(to, link, 37, Payload::EchoReply { id: reply, in_re: id });
                    }
                    Payload::EchoReply { id, in_re } => {
                        let _ = bond.on_packet_received(path, id, 37, PacketKind::Control, now);
                        let _ = bond.on_echo_reply(path, in_re, now);
                    }
                    Payload::Qos { id, records } => {
                        let _ = bond.on_packet_received(path, id, 28 + 10 * records.len(), PacketKind::Measurement, now);
                        let _ = bond.on_qos_records(path, &records, now);
                    }
                    Payload::Ack { id, ack } => {
                        let _ = bond.on_packet_received(path, id, 60, PacketKind::Measurement, now);
                        let _ = bond.on_path_ack(path, ack, now);
                    }
                }
            }
        }
        for (node, touched) in touched.into_iter().enumerate() {
            if touched {
                sim.service(node);
            }
        }
        // Engine events of the sender.
        while let Some(ev) = sim.nodes[0].bond.poll_event() {
            let name = |i: u8| sim.nodes[0].link_of_path.get(i as usize).map(|&l| scenario.links[l].name.clone());
            let detection = |link_name: &str, at: u64| {
                let l = scenario.links.iter().position(|l| l.name == link_name)?;
                last_link_event[l].filter(|&t| t <= at).map(|t| (at - t) as f64 / 1000.0)
            };
            match &ev {
                BondEvent::ActiveChanged { at_us, from: Some(from), to, reason } if *reason != ChangeReason::Initial => {
                    failovers.push(Failover {
                        at_ms: *at_us as f64 / 1000.0,
                        from: from.clone(),
                        to: to.clone(),
                        detection_ms: if *reason == ChangeReason::Failure { detection(from, *at_us) } else { None },
                        reason: format!("{reason:?}").to_lowercase(),
                    });
                }
                BondEvent::PathDown { at_us, path, link, reason } if settings.base != Policy::ActiveBackup => {
                    let others: Vec<String> = sim.nodes[0]
                        .bond
                        .paths()
                        .iter()
                        .filter(|p| p.usable() && p.id.0 != *path)
                        .filter_map(|p| name(p.id.0))
                        .collect();
                    failovers.push(Failover {
                        at_ms: *at_us as f64 / 1000.0,
                        from: link.clone(),
                        to: others.join("+"),
                        detection_ms: detection(link, *at_us),
                        reason: format!("{reason:?}").to_lowercase(),
                    });
                }
                _ => {}
            }
            events.push(ev);
        }
        while sim.nodes[1].bond.poll_event().is_some() {}
    }

    // Packets sent but never delivered before the end also make a gap.
    if let Some(prev) = last_delivery {
        let tail = traffic_end.saturating_sub(prev).saturating_sub(all_down_in_gap + all_down_since.map_or(0, |s| traffic_end.saturating_sub(s)));
        let typical_latency = scenario.links.iter().map(|l| (l.latency_ms * 1000.0) as u64).min().unwrap_or(0);
        max_gap = max_gap.max(tail.saturating_sub(typical_latency));
    }
    let total_link_packets: u64 = link_packets.iter().sum();
    let a = &sim.nodes[0];
    let links = scenario
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let estimated = a.path_of_link[i].and_then(|p| a.bond.quality(p, end).ok()).unwrap_or_default();
            LinkResult {
                name: l.name.clone(),
                packets: link_packets[i],
                share: if total_link_packets == 0 { 0.0 } else { link_packets[i] as f64 / total_link_packets as f64 },
                estimated: Estimated {
                    latency_ms: estimated.latency_ms,
                    latency_max_ms: estimated.latency_max_ms,
                    pdv_ms: estimated.pdv_ms,
                    loss: estimated.loss,
                    error_ratio: estimated.error_ratio,
                    throughput_mbps: estimated.throughput_mean_mbps,
                    throughput_max_mbps: estimated.throughput_max_mbps,
                    capacity_mbps: estimated.capacity_estimate_mbps,
                    availability: estimated.availability,
                },
            }
        })
        .collect();
    Ok(SimResult {
        policy: settings.name.clone(),
        base_policy: settings.base.name().to_string(),
        sent: sent_ids,
        delivered,
        lost: sent_ids - delivered,
        duplicates_delivered,
        duplicates_suppressed: sim.nodes[1].bond.stats().duplicates_suppressed,
        reordered,
        flow_moves,
        outage_ms: max_gap as f64 / 1000.0,
        failovers,
        links,
        warnings,
        events,
        timeline,
        flow_links,
    })
}

impl SimResult {
    /// A link's share of data packets sent between `from_ms` and `to_ms`.
    pub fn share_between(&self, link: usize, from_ms: u64, to_ms: u64) -> f64 {
        let range = (from_ms / TIMELINE_BUCKET_MS) as usize..(to_ms / TIMELINE_BUCKET_MS) as usize;
        let total: u64 = self.timeline.iter().map(|t| t[range.clone()].iter().sum::<u64>()).sum();
        let mine: u64 = self.timeline[link][range].iter().sum();
        if total == 0 { 0.0 } else { mine as f64 / total as f64 }
    }
}
