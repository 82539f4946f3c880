//! Deterministic simulator: the real engine on both ends of a bond over simulated links, with a virtual
//! clock (issue item 6). Node A sends the scenario's traffic to node B; both bonds run their timers,
//! probes, acks and QoS records over the same links, so failure detection and estimates are the engine's
//! own, not the simulator's.
//!
//! Link i of A talks to link i of B (one path per link). Everything is seeded; the same scenario and
//! configuration always give the same result.

pub mod link;
pub mod result;
pub mod scenario;
mod stats;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
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
pub use result::{Estimated, Failover, LinkResult, SimResult, TIMELINE_BUCKET_MS};
pub use scenario::Scenario;
use stats::{ReceiverStats, SenderStats};

/// After the traffic stops, the simulation runs this long so packets in flight land.
pub const DRAIN_US: u64 = 1_000_000;
/// A zerotier-one peer answers at most one ECHO per this long per path (spec §4.1, §8.8).
pub const ZEROTIER_ECHO_RATE_LIMIT_US: u64 = 166_000;

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

/// Node A (index 0) sends the traffic; node B (index 1) receives it.
const SENDER: usize = 0;
const RECEIVER: usize = 1;

struct Sim<'a> {
    scenario: &'a Scenario,
    base: Policy,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    links: Vec<SimLink>,
    rng: SeededRng,
    nodes: [Node; 2],
    flows: Vec<FlowHash>,
    /// Packets generated so far (the next one's index) and per-flow sequence numbers.
    generated: u64,
    flow_seq: Vec<u64>,
    sender: SenderStats,
    receiver: ReceiverStats,
    /// When each link last went down or degraded (for detection times).
    last_link_event: Vec<Option<u64>>,
    failovers: Vec<Failover>,
    events: Vec<BondEvent>,
    /// When the receiving node last answered an ECHO on each link (rate-limited like zerotier-one when the
    /// scenario's peer is one, i.e. without path acks).
    echo_answered: Vec<Option<u64>>,
    typical_latency_us: u64,
}

/// The smallest one-way link delay of the scenario.
fn typical_latency_us(scenario: &Scenario) -> u64 {
    scenario.links.iter().map(|l| (l.latency_ms * 1000.0) as u64).min().unwrap_or(0)
}

impl Sim<'_> {
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
            let host = |rng: &mut SeededRng| {
                IpAddr::V4(Ipv4Addr::new(10, 147, (rng.below(4)) as u8, 1 + rng.below(250) as u8))
            };
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

fn make_node(scenario: &Scenario, settings: &PolicySettings, remote: &str) -> Result<(Node, Vec<String>), BondError> {
    let mut bond = Bond::new(settings.clone(), 0);
    bond.set_peer_acks(scenario.peer_acks);
    let mut path_of_link = Vec::new();
    let mut link_of_path = Vec::new();
    let mut warnings = Vec::new();
    for (i, l) in scenario.links.iter().enumerate() {
        match bond.add_path(&l.name, &format!("{remote}-{}", l.name), false, 0) {
            Ok(p) => {
                path_of_link.push(Some(p));
                link_of_path.push(i);
            }
            Err(BondError::LinkNotAllowed { .. }) => {
                warnings
                    .push(format!("link {:?} is not listed by policy {:?}; it carries nothing", l.name, settings.name));
                path_of_link.push(None);
            }
            Err(e) => return Err(e),
        }
    }
    Ok((Node { bond, path_of_link, link_of_path, next_timer: u64::MAX }, warnings))
}

/// Run a scenario with explicit policy settings (both ends use them).
pub fn run_policy(scenario: &Scenario, settings: PolicySettings) -> Result<SimResult, BondError> {
    scenario.validate()?;
    let mut rng = SeededRng::new(scenario.seed);
    let flows = flow_keys(scenario.traffic.flows, &mut rng);
    let (a, warnings) = make_node(scenario, &settings, "b")?;
    let (b, _) = make_node(scenario, &settings, "a")?;
    if a.link_of_path.is_empty() {
        return Err(BondError::Scenario {
            path: "links".into(),
            reason: format!("policy {:?} allows none of the scenario's links", settings.name),
        });
    }
    let nlinks = scenario.links.len();
    // Each flow sends every `flows` packets (round robin), and the fastest link's one-way delay is what a
    // packet needs at best.
    let flow_interval_us = (flows.len() as f64 * 1e6 / scenario.traffic.packets_per_second) as u64;
    let typical_latency_us = typical_latency_us(scenario);
    let mut sim = Sim {
        scenario,
        base: settings.base,
        now: 0,
        seq: 0,
        queue: BinaryHeap::new(),
        links: scenario.links.iter().map(SimLink::new).collect(),
        rng,
        nodes: [a, b],
        generated: 0,
        flow_seq: vec![0; flows.len()],
        sender: SenderStats::new(nlinks, flows.len(), scenario.duration_ms),
        receiver: ReceiverStats::new(flows.len(), flow_interval_us),
        typical_latency_us,
        flows,
        last_link_event: vec![None; nlinks],
        failovers: Vec::new(),
        events: Vec::new(),
        echo_answered: vec![None; nlinks],
    };
    for (i, e) in scenario.events.iter().enumerate() {
        sim.push(e.at_ms * 1000, Action::LinkChange { event: i });
    }
    sim.push(0, Action::SendData);
    sim.service(SENDER);
    sim.service(RECEIVER);

    let traffic_end = scenario.duration_ms * 1000;
    let end = traffic_end + DRAIN_US;
    while let Some(Reverse(q)) = sim.queue.pop() {
        if q.at > end {
            break;
        }
        sim.now = q.at;
        let touched = match q.action {
            Action::SendData => sim.send_data(traffic_end),
            Action::Timer { node } => sim.timer(node),
            Action::LinkChange { event } => sim.link_change(event),
            Action::Arrive { to, link, payload } => sim.arrive(to, link, payload),
        };
        for (node, touched) in touched.into_iter().enumerate() {
            if touched {
                sim.service(node);
            }
        }
        sim.collect_events();
    }
    Ok(sim.finish(settings, warnings, traffic_end, end))
}

impl Sim<'_> {
    /// Generate the next data packet at the sender. Returns which nodes need servicing.
    fn send_data(&mut self, traffic_end: u64) -> [bool; 2] {
        if self.now >= traffic_end {
            return [false; 2];
        }
        let now = self.now;
        let f = (self.generated % self.flows.len() as u64) as usize;
        self.generated += 1;
        let next = (self.generated as f64 * 1e6 / self.scenario.traffic.packets_per_second) as u64;
        self.push(next, Action::SendData);
        let id = self.new_id();
        let seq = self.flow_seq[f];
        self.flow_seq[f] += 1;
        self.sender.sent += 1;
        if seq == 0 {
            self.receiver.outage.flow_started(f, now + self.typical_latency_us);
        }
        let chosen = self.nodes[SENDER].bond.select(self.flows[f], now);
        let bytes = self.scenario.traffic.packet_bytes;
        for path in &chosen {
            let link = self.nodes[SENDER].link_of_path[path.0 as usize];
            let _ = self.nodes[SENDER].bond.on_data_sent(*path, id, bytes as usize, now);
            self.sender.copy_sent(link, now);
            self.transmit(SENDER, link, bytes, Payload::Data { id, flow: f as u32, seq, bytes });
        }
        if let [single] = chosen.as_slice() {
            let link = self.nodes[SENDER].link_of_path[single.0 as usize];
            self.sender.flow_used(f, link);
        }
        [true, false]
    }

    fn timer(&mut self, node: usize) -> [bool; 2] {
        // Stale timers (superseded by an earlier one) are skipped.
        if self.nodes[node].next_timer != self.now {
            return [false; 2];
        }
        self.nodes[node].next_timer = u64::MAX;
        self.nodes[node].bond.handle_timeout(self.now);
        let mut touched = [false; 2];
        touched[node] = true;
        touched
    }

    fn link_change(&mut self, event: usize) -> [bool; 2] {
        let e = &self.scenario.events[event];
        let Some(link) = self.scenario.links.iter().position(|l| l.name == e.link) else {
            return [false; 2];
        };
        self.links[link].apply(&e.set);
        if e.set.up == Some(false) || e.set.loss.is_some_and(|l| l > 0.0) || e.set.latency_ms.is_some() {
            self.last_link_event[link] = Some(self.now);
        }
        let all_down = self.links.iter().all(|l| !l.up);
        self.receiver.outage.links_changed(self.now, all_down);
        [false; 2]
    }

    fn arrive(&mut self, to: usize, link: usize, payload: Payload) -> [bool; 2] {
        // A link cut also loses what was in flight on it.
        if !self.links[link].up {
            return [false; 2];
        }
        let Some(path) = self.nodes[to].path_of_link[link] else {
            return [false; 2];
        };
        let now = self.now;
        let bond = &mut self.nodes[to].bond;
        match payload {
            Payload::Data { id, flow, seq, bytes } => {
                if bond.on_packet_received(path, id, bytes as usize, PacketKind::Data, now).ok()
                    == Some(Delivery::Deliver)
                {
                    self.receiver.delivered(id, flow as usize, seq, now);
                }
            }
            Payload::Echo { id } => {
                let _ = bond.on_packet_received(path, id, 28, PacketKind::Control, now);
                if to == RECEIVER && !self.scenario.peer_acks {
                    // zerotier-one's rate gate: ECHOs within 166 ms of the last one answered are dropped.
                    if self.echo_answered[link].is_some_and(|t| now < t + ZEROTIER_ECHO_RATE_LIMIT_US) {
                        let mut touched = [false; 2];
                        touched[to] = true;
                        return touched;
                    }
                    self.echo_answered[link] = Some(now);
                }
                let reply = self.rng.next_u64();
                let _ = self.nodes[to].bond.on_control_sent(path, reply, now);
                self.transmit(to, link, 37, Payload::EchoReply { id: reply, in_re: id });
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
        let mut touched = [false; 2];
        touched[to] = true;
        touched
    }

    fn link_name(&self, node: usize, path: u8) -> Option<&str> {
        let link = *self.nodes[node].link_of_path.get(path as usize)?;
        Some(self.scenario.links[link].name.as_str())
    }

    /// Time from the last event that took down or degraded `link_name` to `at_us`.
    fn detection_ms(&self, link_name: &str, at_us: u64) -> Option<f64> {
        let l = self.scenario.links.iter().position(|l| l.name == link_name)?;
        self.last_link_event[l].filter(|&t| t <= at_us).map(|t| (at_us - t) as f64 / 1000.0)
    }

    /// Record the sender's engine events; failovers are what the result reports.
    fn collect_events(&mut self) {
        while let Some(ev) = self.nodes[SENDER].bond.poll_event() {
            let failover = match &ev {
                BondEvent::ActiveChanged { at_us, from: Some(from), to, reason }
                    if *reason != ChangeReason::Initial =>
                {
                    Some(Failover {
                        at_ms: *at_us as f64 / 1000.0,
                        from: from.clone(),
                        to: to.clone(),
                        detection_ms: if *reason == ChangeReason::Failure {
                            self.detection_ms(from, *at_us)
                        } else {
                            None
                        },
                        reason: reason.name().to_string(),
                    })
                }
                // Balance policies and broadcast: the failed path's traffic goes to the others.
                BondEvent::PathDown { at_us, path, link, reason } if self.base != Policy::ActiveBackup => {
                    let others: Vec<&str> = self.nodes[SENDER]
                        .bond
                        .paths()
                        .iter()
                        .filter(|p| p.usable() && p.id.0 != *path)
                        .filter_map(|p| self.link_name(SENDER, p.id.0))
                        .collect();
                    Some(Failover {
                        at_ms: *at_us as f64 / 1000.0,
                        from: link.clone(),
                        to: others.join("+"),
                        detection_ms: self.detection_ms(link, *at_us),
                        reason: reason.name().to_string(),
                    })
                }
                _ => None,
            };
            self.failovers.extend(failover);
            self.events.push(ev);
        }
        while self.nodes[RECEIVER].bond.poll_event().is_some() {}
    }

    fn finish(self, settings: PolicySettings, warnings: Vec<String>, traffic_end: u64, end: u64) -> SimResult {
        let outage_us = self.receiver.outage.finish(traffic_end, self.typical_latency_us);
        let total_link_packets: u64 = self.sender.link_packets.iter().sum();
        let a = &self.nodes[SENDER];
        let links = self
            .scenario
            .links
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let q = a.bond.link_quality(&l.name, end).unwrap_or_default();
                let packets = self.sender.link_packets[i];
                LinkResult {
                    name: l.name.clone(),
                    packets,
                    share: if total_link_packets == 0 { 0.0 } else { packets as f64 / total_link_packets as f64 },
                    estimated: Estimated {
                        latency_ms: q.latency_ms,
                        latency_max_ms: q.latency_max_ms,
                        pdv_ms: q.pdv_ms,
                        loss: q.loss,
                        error_ratio: q.error_ratio,
                        throughput_mbps: q.throughput_mean_mbps,
                        throughput_max_mbps: q.throughput_max_mbps,
                        capacity_mbps: q.capacity_estimate_mbps,
                        availability: q.availability,
                    },
                }
            })
            .collect();
        SimResult {
            policy: settings.name.clone(),
            base_policy: settings.base.name().to_string(),
            sent: self.sender.sent,
            delivered: self.receiver.delivered,
            lost: self.sender.sent - self.receiver.delivered,
            duplicates_delivered: self.receiver.duplicates_delivered,
            duplicates_suppressed: self.nodes[RECEIVER].bond.stats().duplicates_suppressed,
            reordered: self.receiver.reordered,
            flow_moves: self.sender.flow_moves,
            outage_ms: outage_us as f64 / 1000.0,
            failovers: self.failovers,
            links,
            warnings,
            events: self.events,
            timeline: self.sender.timeline,
            flow_links: self.sender.flow_links,
        }
    }
}
