//! The bond with one peer: events and `now` in; decisions, packets to send and the next timer out
//! (quinn-proto style). Bonding spec §1 (model), §4 (measurement), §6 (policies).
//!
//! The owner (the dataplane's slow path, or the simulator) feeds every event for the peer's paths and calls
//! [`Bond::handle_timeout`] when [`Bond::poll_timeout`] says; it drains [`Bond::poll_transmit`] (ECHO
//! probes, QoS records, path acks to send) and [`Bond::poll_event`] (failovers, path up/down). Workers
//! decide per packet through [`Bond::selection_handle`] without touching the bond.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::config::{Policy, PolicySettings};
use crate::dedup::DuplicateFilter;
use crate::error::BondError;
use crate::failover::{ACK_INTERVAL_US, DetectorContext, FailureReason, LinkState};
use crate::flow::FlowHash;
use crate::measure::{PacketKind, PathAck, QOS_RECORDS_PER_PACKET, QosRecord, TxRecord};
use crate::path::{MAX_PATHS, PathId, PathState};
use crate::policy::active_backup::{self, ChangeReason};
use crate::policy::balance;
use crate::quality::{BUCKET_US, QualityReport};
use crate::selection::{
    ASSIGN_SEQUENCE_LEN, FlowTable, HASH_BUCKETS, Selection, SelectionHandle, SelectionTable, TableKind, WorkerCursor,
    flow_epoch, proportional_targets, rebalance_buckets, weighted_sequence,
};

/// How often scores, avoidance and allocation are re-estimated.
pub const ESTIMATE_INTERVAL_US: u64 = 100_000;
/// How often balance-aware flow-dynamic rebalances flows.
pub const REBALANCE_INTERVAL_US: u64 = 1_000_000;
/// Flows seen within this many epochs (~1 s each) count as active for rebalancing.
pub const ACTIVE_FLOW_EPOCHS: u16 = 3;
/// QoS records are sent at least this often when there is something to report (zerotier-one uses
/// 2 × failoverInterval; more often only sharpens the peer's estimate)...
pub const QOS_INTERVAL_US: u64 = 1_000_000;
/// ...and never more often than this (zerotier-one rate-gates QoS arriving faster than interval/64).
pub const QOS_MIN_SPACING_US: u64 = 250_000;
/// QoS samples older than this are forgotten (§3: 3 × QoS interval).
pub const QOS_SAMPLE_TIMEOUT_US: u64 = 30_000_000;
/// First avoidance hold-down; doubles for a path avoided again soon after, up to the maximum.
pub const AVOID_HOLD_MIN_US: u64 = 5_000_000;
pub const AVOID_HOLD_MAX_US: u64 = 120_000_000;
/// Events kept for [`Bond::poll_event`]; beyond this the oldest are dropped (and counted).
pub const MAX_QUEUED_EVENTS: usize = 1024;
/// Flow table size for balance-xor and balance-aware (entries; zerotier-one keeps up to 65 536 flows).
pub const FLOW_TABLE_ENTRIES: usize = 16_384;
/// Acks offered to a peer not yet known to answer them (see [`Bond::set_announce_acks`]).
pub const ANNOUNCE_ACK_INTERVAL_US: u64 = 1_000_000;

/// Something to send on a path on the bond's behalf.
#[derive(Clone, Debug, PartialEq)]
pub enum Transmit {
    /// Send an (empty) ECHO on `path`, then report its packet ID with [`Bond::on_echo_sent`].
    Echo { path: PathId },
    /// Send QOS_MEASUREMENT with these records on `path` (cipher suite 0, §8.13).
    Qos { path: PathId, records: Vec<QosRecord> },
    /// Send a ztplane path ack on `path` (only to peers that understand it).
    Ack { path: PathId, ack: PathAck },
}

/// Something that happened, for logs, the CLI and the simulator.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum BondEvent {
    PathDown {
        at_us: u64,
        path: u8,
        link: String,
        reason: FailureReason,
    },
    PathUp {
        at_us: u64,
        path: u8,
        link: String,
    },
    /// active-backup changed its active path.
    ActiveChanged {
        at_us: u64,
        from: Option<String>,
        to: String,
        reason: ChangeReason,
    },
    /// balance-aware moved flows between paths (rebalancing or failure).
    FlowsMoved {
        at_us: u64,
        count: u64,
    },
    AvoidanceChanged {
        at_us: u64,
        link: String,
        avoided: bool,
    },
}

/// What to do with a received data packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Deliver,
    /// Already delivered (broadcast copy, or a replay): drop it.
    Duplicate,
}

/// Counters over the bond's life.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct BondStats {
    pub flow_moves: u64,
    pub active_changes: u64,
    pub duplicates_suppressed: u64,
    pub path_failures: u64,
    /// Events dropped because [`Bond::poll_event`] was not called and the queue was full.
    pub events_dropped: u64,
}

/// Inputs of a published selection table: bonded mask, active path, quantised weights, fallback path.
type PublishKey = (u64, Option<PathId>, Vec<u64>, Option<PathId>);

/// The bond with one peer (see module docs).
pub struct Bond {
    settings: PolicySettings,
    peer_acks: bool,
    announce_acks: bool,
    fast_acks: bool,
    paths: Vec<PathState>,
    active: Option<PathId>,
    last_active_change_us: u64,
    handle: Arc<SelectionHandle>,
    generation: u64,
    flows: Arc<FlowTable>,
    buckets: Vec<PathId>,
    dedup: DuplicateFilter,
    transmits: VecDeque<Transmit>,
    events: VecDeque<BondEvent>,
    next_estimate_us: u64,
    next_rebalance_us: u64,
    /// Inputs of the published table: bonded mask, active path, quantised weights, fallback path (when
    /// nothing is usable).
    published_key: Option<PublishKey>,
    cursor: WorkerCursor,
    stats: BondStats,
}

impl Bond {
    pub fn new(settings: PolicySettings, now_us: u64) -> Self {
        // Only flow-pinning policies need a real flow table (128 KiB).
        let flow_entries = match settings.base {
            Policy::BalanceXor | Policy::BalanceAware => FLOW_TABLE_ENTRIES,
            _ => 0,
        };
        Bond {
            settings,
            peer_acks: false,
            announce_acks: false,
            fast_acks: false,
            paths: Vec::new(),
            active: None,
            last_active_change_us: now_us,
            handle: Arc::new(SelectionHandle::new(SelectionTable::empty())),
            generation: 0,
            flows: Arc::new(FlowTable::new(flow_entries)),
            buckets: Vec::new(),
            dedup: DuplicateFilter::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_estimate_us: now_us,
            next_rebalance_us: now_us + REBALANCE_INTERVAL_US,
            published_key: None,
            cursor: WorkerCursor::new(u64::MAX),
            stats: BondStats::default(),
        }
    }

    pub fn settings(&self) -> &PolicySettings {
        &self.settings
    }

    /// The peer is a ztplane node: exchange path acks (exact loss, fast failure detection).
    pub fn set_peer_acks(&mut self, enabled: bool) {
        self.peer_acks = enabled;
    }

    /// Offer path acks (one a second while data arrives) to a peer that has not acked yet, so that
    /// a ztplane peer can tell we are one; a zerotier-one peer ignores them (bonding spec §4.3).
    pub fn set_announce_acks(&mut self, enabled: bool) {
        self.announce_acks = enabled;
    }

    /// The peer is known to be a ztplane node (it acked): send acks at the short interval even
    /// before it is known to send them that fast to us.
    pub fn set_fast_acks(&mut self, enabled: bool) {
        self.fast_acks = enabled;
    }

    /// Whether acks go out at the short interval.
    pub fn fast_acks(&self) -> bool {
        self.fast_acks || self.peer_acks
    }

    /// Whether the peer acks every path at the short interval (overdue acks mean failure).
    pub fn peer_acks(&self) -> bool {
        self.peer_acks
    }

    /// How often acks go out, if at all.
    fn ack_interval_us(&self) -> Option<u64> {
        if self.peer_acks || self.fast_acks {
            Some(ACK_INTERVAL_US)
        } else if self.announce_acks {
            Some(ANNOUNCE_ACK_INTERVAL_US)
        } else {
            None
        }
    }

    /// Nominate a path on local interface `link` (§1.1). Refused if the policy lists its links and this
    /// one is not an enabled member.
    pub fn add_path(&mut self, link: &str, remote: &str, is_ipv6: bool, now_us: u64) -> Result<PathId, BondError> {
        if self.paths.len() >= MAX_PATHS {
            return Err(BondError::TooManyPaths { max: MAX_PATHS });
        }
        if !self.settings.allows_interface(link) {
            return Err(BondError::LinkNotAllowed { link: link.to_string(), policy: self.settings.name.clone() });
        }
        let link_settings = self.settings.link(link).cloned().unwrap_or_else(|| crate::config::LinkSettings::new(link));
        let id = PathId(self.paths.len() as u8);
        self.paths.push(PathState::new(id, link, remote, is_ipv6, link_settings, now_us));
        self.refresh(now_us);
        Ok(id)
    }

    pub fn paths(&self) -> &[PathState] {
        &self.paths
    }

    pub fn path(&self, id: PathId) -> Result<&PathState, BondError> {
        self.paths.get(id.0 as usize).ok_or(BondError::UnknownPath(id))
    }

    fn path_mut(&mut self, id: PathId) -> Result<&mut PathState, BondError> {
        self.paths.get_mut(id.0 as usize).ok_or(BondError::UnknownPath(id))
    }

    pub fn active_path(&self) -> Option<PathId> {
        self.active
    }

    pub fn stats(&self) -> BondStats {
        BondStats { duplicates_suppressed: self.dedup.suppressed, ..self.stats.clone() }
    }

    /// The shared handle workers read selection tables through.
    pub fn selection_handle(&self) -> Arc<SelectionHandle> {
        self.handle.clone()
    }

    /// Convenience for a single-threaded owner: decide with the bond's own cursor.
    pub fn select(&mut self, flow: FlowHash, now_us: u64) -> Vec<PathId> {
        let table = self.handle.load();
        match table.select(flow, now_us, &mut self.cursor) {
            Selection::NoPath => Vec::new(),
            Selection::One(p) => vec![p],
            Selection::All(ps) => ps.to_vec(),
        }
    }

    pub fn quality(&self, id: PathId, now_us: u64) -> Result<QualityReport, BondError> {
        Ok(self.path(id)?.quality.report(now_us))
    }

    /// The quality of a local link over all its paths (`None` if no path uses it).
    pub fn link_quality(&self, link: &str, now_us: u64) -> Option<QualityReport> {
        let reports: Vec<QualityReport> =
            self.paths.iter().filter(|p| p.link == link).map(|p| p.quality.report(now_us)).collect();
        (!reports.is_empty()).then(|| QualityReport::combine(&reports))
    }

    // ---- events -------------------------------------------------------------------------------------

    /// A data packet (FRAME / EXT_FRAME) was sent on `path`.
    pub fn on_data_sent(&mut self, path: PathId, packet_id: u64, bytes: usize, now_us: u64) -> Result<(), BondError> {
        let p = self.path_mut(path)?;
        p.sent.record(PacketKind::Data, packet_id, bytes, now_us);
        p.liveness.on_data_sent(now_us);
        p.packets_sent += 1;
        if let Some((ack, arrived_us)) = p.sent.held_ack
            && ack.newest_packet_id == packet_id
        {
            p.sent.held_ack = None;
            p.sent.acks_late += 1;
            let seq = p.sent.data_sent - 1;
            let sent_at = p.sent.send_time_of_seq(seq).unwrap_or(now_us);
            apply_ack(p, ack, seq, sent_at, arrived_us.max(sent_at));
        }
        Ok(())
    }

    /// A batch of data packets sent by a worker (see [`TxRecord`]). Records naming unknown paths are
    /// skipped; the count of those is returned.
    pub fn on_data_sent_batch(&mut self, records: &[TxRecord]) -> usize {
        records.iter().filter(|r| self.on_data_sent(r.path, r.packet_id, r.bytes as usize, r.at_us).is_err()).count()
    }

    /// A data packet of `flow` arrived on `path`: balance-aware pins a flow it does not know yet to the
    /// path it arrived on, so that return traffic follows the ingress path (§6.5).
    pub fn on_flow_received(&mut self, flow: FlowHash, path: PathId, now_us: u64) -> Result<(), BondError> {
        let usable = self.path(path)?.usable();
        if usable
            && self.settings.base == Policy::BalanceAware
            && self.settings.balance != crate::config::BalanceMode::Packet
        {
            self.flows.pin_if_absent(flow, flow_epoch(now_us), path);
        }
        Ok(())
    }

    /// Any other packet (not QoS/ACK) was sent on `path` (sampled for QoS like zerotier-one, §4.2).
    pub fn on_control_sent(&mut self, path: PathId, packet_id: u64, now_us: u64) -> Result<(), BondError> {
        self.path_mut(path)?.sent.record(PacketKind::Control, packet_id, 0, now_us);
        Ok(())
    }

    /// The ECHO requested by [`Transmit::Echo`] went out with this packet ID.
    pub fn on_echo_sent(&mut self, path: PathId, packet_id: u64, now_us: u64) -> Result<(), BondError> {
        let p = self.path_mut(path)?;
        p.sent.record(PacketKind::Control, packet_id, 0, now_us);
        p.liveness.on_probe_sent(packet_id, now_us);
        Ok(())
    }

    /// An authenticated packet arrived on `path`. Call for every packet, including OK(ECHO), QoS and acks
    /// (their contents go to the specific handlers too). Data packets are checked for duplicates.
    pub fn on_packet_received(
        &mut self,
        path: PathId,
        packet_id: u64,
        bytes: usize,
        kind: PacketKind,
        now_us: u64,
    ) -> Result<Delivery, BondError> {
        let peer_acks = self.peer_acks;
        let p = self.path_mut(path)?;
        let was_usable = p.usable();
        p.liveness.on_receive(now_us, peer_acks);
        p.quality.record_rx(now_us, true);
        p.received.record(kind, packet_id, bytes, now_us);
        let usability_changed = was_usable != p.usable();
        // With nothing usable the table sends on the path heard from most recently: follow it.
        let stale_fallback = self.published_key.as_ref().is_some_and(|k| k.0 == 0 && k.3 != self.fallback_path());
        if usability_changed || stale_fallback {
            self.refresh(now_us);
        }
        if kind == PacketKind::Data && !self.dedup.first_sighting(packet_id) {
            return Ok(Delivery::Duplicate);
        }
        Ok(Delivery::Deliver)
    }

    /// A packet on `path` failed authentication (MAC) — counted in the path's error ratio.
    pub fn on_auth_failure(&mut self, path: PathId, now_us: u64) -> Result<(), BondError> {
        self.path_mut(path)?.quality.record_rx(now_us, false);
        Ok(())
    }

    /// A malformed packet arrived on `path` — counted in the path's error ratio.
    pub fn on_malformed(&mut self, path: PathId, now_us: u64) -> Result<(), BondError> {
        self.on_auth_failure(path, now_us)
    }

    /// OK(ECHO) arrived on `path` in reply to `in_re_packet_id`.
    pub fn on_echo_reply(&mut self, path: PathId, in_re_packet_id: u64, now_us: u64) -> Result<(), BondError> {
        let p = self.path_mut(path)?;
        if let Some(rtt) = p.liveness.on_probe_answered(in_re_packet_id, now_us) {
            p.quality.record_rtt(rtt);
        }
        Ok(())
    }

    /// QOS_MEASUREMENT records arrived on `path` (from zerotier-one or ztplane).
    pub fn on_qos_records(&mut self, path: PathId, records: &[QosRecord], now_us: u64) -> Result<(), BondError> {
        let peer_acks = self.peer_acks;
        let p = self.path_mut(path)?;
        let mut matched = 0u64;
        let mut first_matched_sent = u64::MAX;
        for r in records {
            if let Some(sent_at) = p.sent.take_qos(r.packet_id) {
                matched += 1;
                first_matched_sent = first_matched_sent.min(sent_at);
                // Holding times are whole milliseconds (truncated), so on short paths this is an
                // upper bound that can exceed the real RTT by up to 1 ms.
                let rtt = now_us.saturating_sub(sent_at).saturating_sub(r.holding_ms as u64 * 1000);
                p.quality.record_rtt(rtt);
            }
        }
        // Loss from a zerotier-one peer: a short QoS packet means its table was drained, so sampled packets
        // sent within the window it covers (from its oldest record until about an RTT ago) and still
        // unreported were lost — valid only if the peer's table could not have overflowed since the previous
        // report. Packets older than the window may have been in a report that was itself lost: not counted.
        if !peer_acks {
            if matched > 0
                && records.len() < QOS_RECORDS_PER_PACKET
                && p.sent.sampled_since_qos <= QOS_RECORDS_PER_PACKET as u64
            {
                let grace = p.quality.srtt_us() + 4 * p.quality.rttvar_us() + 50_000;
                let lost = p.sent.settle_qos(first_matched_sent, now_us.saturating_sub(grace));
                p.quality.record_outcomes(now_us, matched + lost, matched, 0);
            }
            p.sent.sampled_since_qos = 0;
        }
        Ok(())
    }

    /// A ztplane path ack arrived on `path`.
    pub fn on_path_ack(&mut self, path: PathId, ack: PathAck, now_us: u64) -> Result<(), BondError> {
        let p = self.path_mut(path)?;
        p.sent.last_ack_us = Some(now_us);
        // Whatever ack was held, this newer one covers at least as much.
        if p.sent.held_ack.take().is_some() {
            p.sent.acks_unmatched += 1;
        }
        match p.sent.find_data(ack.newest_packet_id) {
            Some((seq, sent_at)) => {
                p.sent.acks_matched += 1;
                apply_ack(p, ack, seq, sent_at, now_us);
            }
            None => p.sent.held_ack = Some((ack, now_us)),
        }
        Ok(())
    }

    /// `zerotier-cli bond <peer> rotate`: make the next path in failover order active (active-backup).
    pub fn rotate(&mut self, now_us: u64) -> bool {
        if self.settings.base != Policy::ActiveBackup {
            return false;
        }
        let current = self.active.and_then(|a| self.paths.get(a.0 as usize));
        let next = active_backup::failover_order(&self.paths, current).first().map(|p| p.id);
        match next {
            Some(n) => {
                self.set_active(n, ChangeReason::Rotate, now_us);
                self.publish(now_us, true);
                true
            }
            None => false,
        }
    }

    // ---- timers -------------------------------------------------------------------------------------

    fn context(&self, p: &PathState, now_us: u64) -> DetectorContext {
        let mut ctx = DetectorContext {
            srtt_us: p.quality.srtt_us(),
            rttvar_us: p.quality.rttvar_us(),
            rtt_peak_us: p.quality.rtt_peak_us(),
            ack_holding_us: p.quality.ack_holding_peak_us(),
            loss: p.quality.loss_ratio(now_us, crate::quality::DECISION_WINDOW_BUCKETS),
            failover_interval_us: self.settings.failover_interval_ms * 1000,
            monitor_interval_us: (self.settings.monitor_interval_ms() * 1000).max(1_000),
            up_delay_us: self.settings.up_delay_ms * 1000,
            down_delay_us: self.settings.down_delay_ms * 1000,
            peer_acks: self.peer_acks,
            overdue_packets: 0,
            overdue_for_us: 0,
            silent_together: false,
        };
        if self.peer_acks && p.liveness.usable() {
            let cutoff = now_us.saturating_sub(ctx.ack_deadline_us());
            ctx.overdue_packets = p.sent.count_sent_before(p.sent.acked_seq, cutoff);
            if ctx.overdue_packets > 0 {
                let oldest = p.sent.send_time_of_seq(p.sent.acked_seq).unwrap_or(cutoff);
                ctx.overdue_for_us = cutoff.saturating_sub(oldest);
                let last_ack = p.sent.last_ack_us.unwrap_or(0);
                ctx.silent_together = self.paths.iter().any(|q| {
                    q.id != p.id
                        && q.liveness.usable()
                        && q.liveness.unacked_since_us.is_some()
                        && q.sent.last_ack_us.unwrap_or(0) <= last_ack + crate::failover::ACK_INTERVAL_US
                });
            }
        }
        ctx
    }

    /// The next time [`Bond::handle_timeout`] must run.
    pub fn poll_timeout(&self, now_us: u64) -> u64 {
        let mut next = self.next_estimate_us;
        let ack_interval = self.ack_interval_us();
        for p in &self.paths {
            let ctx = self.context(p, now_us);
            let mut probe = p.liveness.clone();
            next = next.min(probe.evaluate(now_us, &ctx));
            // A state change found on the copy (a failure detected now) is due now: its own
            // follow-up time (`now + 1`) would be found again on every later poll.
            if probe.state != p.liveness.state {
                return now_us;
            }
            if let Some(interval) = ack_interval
                && let Some(at) = p.received.ack_due_at(interval)
            {
                next = next.min(at);
            }
            if let Some(at) = p.received.qos_due_at(QOS_INTERVAL_US, QOS_MIN_SPACING_US) {
                next = next.min(at);
            }
        }
        next.max(now_us)
    }

    /// Run timers: failure detection, probes, acks, QoS records, loss judgement, estimation,
    /// rebalancing.
    pub fn handle_timeout(&mut self, now_us: u64) {
        let mut changed = false;
        let ack_interval = self.ack_interval_us();
        for p in &mut self.paths {
            p.sent.judge_quiet(now_us);
            settle_outcomes(p, now_us, 0);
        }
        for i in 0..self.paths.len() {
            let ctx = self.context(&self.paths[i], now_us);
            let p = &mut self.paths[i];
            let was_usable = p.usable();
            p.liveness.evaluate(now_us, &ctx);
            if p.liveness.probe_wanted {
                p.liveness.begin_probe(now_us);
                self.transmits.push_back(Transmit::Echo { path: p.id });
            }
            if let Some(interval) = ack_interval
                && p.received.ack_due_at(interval).is_some_and(|at| now_us >= at)
                && let Some(ack) = p.received.make_ack(now_us)
            {
                self.transmits.push_back(Transmit::Ack { path: p.id, ack });
            }
            if p.received.qos_due_at(QOS_INTERVAL_US, QOS_MIN_SPACING_US).is_some_and(|at| now_us >= at) {
                let records = p.received.take_qos_records(now_us);
                self.transmits.push_back(Transmit::Qos { path: p.id, records });
            }
            if was_usable != p.usable() {
                changed = true;
                p.quality.set_usable(now_us, p.usable());
                if p.usable() {
                    Self::push_event(
                        &mut self.events,
                        &mut self.stats,
                        BondEvent::PathUp { at_us: now_us, path: p.id.0, link: p.link.clone() },
                    );
                } else {
                    self.stats.path_failures += 1;
                    // Whatever was in flight is the outage's; measure afresh once the path is back.
                    p.sent.resync_on_next_ack = true;
                    p.sent.acked_seq = p.sent.data_sent;
                    p.sent.outage();
                    // Only Down paths are unusable after being usable (Failing still carries traffic).
                    let reason = match p.liveness.state {
                        LinkState::Down { reason, .. } => reason,
                        _ => FailureReason::FailoverInterval,
                    };
                    Self::push_event(
                        &mut self.events,
                        &mut self.stats,
                        BondEvent::PathDown { at_us: now_us, path: p.id.0, link: p.link.clone(), reason },
                    );
                }
            }
        }
        if now_us >= self.next_estimate_us {
            self.next_estimate_us = now_us + ESTIMATE_INTERVAL_US;
            for p in &mut self.paths {
                p.sent.expire_qos(now_us.saturating_sub(QOS_SAMPLE_TIMEOUT_US));
            }
            changed |= self.estimate(now_us);
        }
        // Active-backup reselection can fire without a usability change (scores move, hold-downs expire).
        if changed || self.settings.base == Policy::ActiveBackup {
            self.refresh(now_us);
        }
        if now_us >= self.next_rebalance_us {
            self.next_rebalance_us = now_us + REBALANCE_INTERVAL_US;
            match self.settings.base {
                Policy::BalanceAware => self.rebalance_flows(now_us, false),
                // Idle flows leave the counts new xor flows are placed by.
                Policy::BalanceXor => self.flows.refresh_counts(flow_epoch(now_us), ACTIVE_FLOW_EPOCHS),
                _ => {}
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn push_event(events: &mut VecDeque<BondEvent>, stats: &mut BondStats, event: BondEvent) {
        if events.len() >= MAX_QUEUED_EVENTS {
            events.pop_front();
            stats.events_dropped += 1;
        }
        events.push_back(event);
    }

    pub fn poll_event(&mut self) -> Option<BondEvent> {
        self.events.pop_front()
    }

    // ---- decisions ----------------------------------------------------------------------------------

    /// Re-score paths; returns whether avoidance changed.
    fn estimate(&mut self, now_us: u64) -> bool {
        let spec = self.settings.quality;
        let balance = matches!(self.settings.base, Policy::BalanceRr | Policy::BalanceXor | Policy::BalanceAware);
        let mut changed = false;
        for p in &mut self.paths {
            let (score, over_max) = p.quality.score(now_us, &spec);
            p.score = score;
            p.quality.update_capacity_estimate(now_us);
            if !balance {
                continue;
            }
            if over_max && !p.avoided && p.usable() {
                p.avoided = true;
                p.on_trial = false;
                p.avoid_hold_us =
                    if p.avoid_hold_us == 0 { AVOID_HOLD_MIN_US } else { (p.avoid_hold_us * 2).min(AVOID_HOLD_MAX_US) };
                p.avoid_until_us = now_us + p.avoid_hold_us;
                changed = true;
                Self::push_event(
                    &mut self.events,
                    &mut self.stats,
                    BondEvent::AvoidanceChanged { at_us: now_us, link: p.link.clone(), avoided: true },
                );
            } else if p.avoided && now_us >= p.avoid_until_us {
                // Re-admit on a reduced share; the next estimations decide.
                p.avoided = false;
                p.on_trial = true;
                p.avoid_until_us = now_us;
                changed = true;
                Self::push_event(
                    &mut self.events,
                    &mut self.stats,
                    BondEvent::AvoidanceChanged { at_us: now_us, link: p.link.clone(), avoided: false },
                );
            } else if p.on_trial && !over_max {
                let (_, known) = p.quality.loss_counts(now_us, crate::quality::DECISION_WINDOW_BUCKETS);
                let trial_for = now_us.saturating_sub(p.avoid_until_us);
                if known >= 200 || trial_for >= 10 * BUCKET_US * 2 {
                    p.on_trial = false;
                    p.avoid_hold_us /= 2;
                    changed = true;
                }
            }
        }
        changed
    }

    fn set_active(&mut self, to: PathId, reason: ChangeReason, now_us: u64) {
        let from = self.active.and_then(|a| self.paths.get(a.0 as usize)).map(|p| p.link.clone());
        self.active = Some(to);
        self.last_active_change_us = now_us;
        self.stats.active_changes += 1;
        let to_link = self.paths[to.0 as usize].link.clone();
        Self::push_event(
            &mut self.events,
            &mut self.stats,
            BondEvent::ActiveChanged { at_us: now_us, from, to: to_link, reason },
        );
    }

    /// Re-decide the active path (active-backup) and publish a new table if anything changed.
    fn refresh(&mut self, now_us: u64) {
        if self.settings.base == Policy::ActiveBackup
            && let Some((to, reason)) = active_backup::reselect(
                &self.paths,
                self.active,
                self.settings.link_select,
                self.last_active_change_us,
                now_us,
            )
        {
            self.set_active(to, reason, now_us);
        }
        self.publish(now_us, false);
    }

    /// The path to use when nothing is usable: the one heard from most recently (keeps trying, and a
    /// false alarm costs nothing).
    fn fallback_path(&self) -> Option<PathId> {
        self.paths.iter().max_by_key(|p| (p.liveness.last_rx_us, std::cmp::Reverse(p.id))).map(|p| p.id)
    }

    fn publish(&mut self, now_us: u64, force: bool) {
        let base = self.settings.base;
        let respect_avoidance = matches!(base, Policy::BalanceRr | Policy::BalanceXor | Policy::BalanceAware);
        let bonded = match base {
            Policy::Broadcast => self.paths.iter().filter(|p| p.usable()).map(|p| p.id).collect(),
            _ => balance::bonded_set(&self.paths, respect_avoidance),
        };
        let weights = if base == Policy::BalanceAware {
            balance::allocation_weights(&self.paths, &bonded, now_us)
        } else {
            Vec::new()
        };
        // Publish only when the decision inputs changed (weights quantised so noise does not churn tables).
        let key = (
            bonded.iter().fold(0u64, |m, p| m | (1 << p.0)),
            self.active,
            weights.iter().map(|w| (w * 1000.0).round() as u64).collect::<Vec<_>>(),
            if bonded.is_empty() { self.fallback_path() } else { None },
        );
        if !force && self.published_key.as_ref() == Some(&key) {
            return;
        }
        let old_mask = self.published_key.as_ref().map_or(0, |k| k.0);
        let bonded_mask = key.0;
        self.published_key = Some(key);
        let kind = if bonded.is_empty() {
            self.fallback_path().map_or(TableKind::NoPath, TableKind::Single)
        } else {
            match base {
                Policy::None => {
                    let best = bonded.iter().copied().max_by(|a, b| {
                        self.paths[a.0 as usize].score.total_cmp(&self.paths[b.0 as usize].score).then(b.cmp(a))
                    });
                    best.map_or(TableKind::NoPath, TableKind::Single)
                }
                Policy::ActiveBackup => match self.active {
                    Some(a) if self.paths[a.0 as usize].usable() => TableKind::Single(a),
                    _ => self.fallback_path().map_or(TableKind::NoPath, TableKind::Single),
                },
                Policy::Broadcast => TableKind::Broadcast,
                Policy::BalanceRr => TableKind::RoundRobin { packets_per_link: self.settings.packets_per_link },
                Policy::BalanceXor => {
                    self.buckets = rebalance_buckets(&self.buckets, &bonded, HASH_BUCKETS);
                    TableKind::FlowHash {
                        bucket_path: self.buckets.clone().into_boxed_slice(),
                        flows: self.flows.clone(),
                    }
                }
                Policy::BalanceAware => match self.settings.balance {
                    crate::config::BalanceMode::Packet => TableKind::WeightedPackets,
                    _ => TableKind::Flows { flows: self.flows.clone() },
                },
            }
        };
        let paths: Vec<PathId> = if bonded.is_empty() { self.fallback_path().into_iter().collect() } else { bonded };
        let weighted = base == Policy::BalanceAware && paths.len() == weights.len();
        let assign_sequence =
            if weighted { weighted_sequence(&paths, &weights, ASSIGN_SEQUENCE_LEN) } else { paths.clone() };
        let weights = if weighted { weights } else { Vec::new() };
        self.generation += 1;
        let usable_mask = paths.iter().fold(0, |m, p| m | (1u64 << p.0));
        self.handle.publish(SelectionTable {
            generation: self.generation,
            kind,
            paths,
            usable_mask,
            assign_sequence,
            weights,
        });
        if base == Policy::BalanceAware && old_mask != bonded_mask {
            self.rebalance_flows(now_us, true);
        }
    }

    /// Move balance-aware flows towards the target allocation. `membership_changed`: paths joined or left
    /// (flow-static moves flows only then, and only off paths that left).
    fn rebalance_flows(&mut self, now_us: u64, membership_changed: bool) {
        if self.settings.balance == crate::config::BalanceMode::Packet {
            return;
        }
        let table = self.handle.load_full();
        let epoch = flow_epoch(now_us);
        // Once some flows carry real load, only those count: an idle flow beside a transfer on one
        // link is not a transfer (HEAVY_FLOW_PACKETS).
        let (min_load, counts) = self.flows.census(epoch, ACTIVE_FLOW_EPOCHS);
        let bonded: Vec<PathId> = table.paths.clone();
        let weights = balance::allocation_weights(&self.paths, &bonded, now_us);
        let total: u32 = counts.iter().sum();
        let dynamic = self.settings.balance == crate::config::BalanceMode::FlowDynamic;
        let ideal = proportional_targets(total, &weights);
        let mut targets = [0u32; 64];
        for (p, t) in bonded.iter().zip(&ideal) {
            targets[p.0 as usize] = if dynamic { *t } else { (*t).max(counts[p.0 as usize]) };
        }
        // Leave small imbalances alone: moving a flow costs reordering. Moves are wanted once the
        // paths together hold at least one whole flow (and 2 %) beyond their exact shares, so
        // that rounding (three flows on two equal links) does not move a flow to and fro.
        let weight_sum: f64 = weights.iter().sum::<f64>().max(1e-9);
        let over: f64 = bonded
            .iter()
            .zip(&weights)
            .map(|(p, w)| (f64::from(counts[p.0 as usize]) - f64::from(total) * w / weight_sum).max(0.0))
            .sum();
        let stranded = (0..64).any(|i| counts[i] > 0 && table.usable_mask & (1 << i) == 0);
        let wanted =
            (dynamic || membership_changed) && (stranded || (over >= 1.0 - 1e-9 && over > f64::from(total) / 50.0));
        if wanted {
            let moved = self.flows.rebalance(epoch, ACTIVE_FLOW_EPOCHS, table.usable_mask, &targets, min_load);
            if moved > 0 {
                self.stats.flow_moves += moved;
                Self::push_event(
                    &mut self.events,
                    &mut self.stats,
                    BondEvent::FlowsMoved { at_us: now_us, count: moved },
                );
            }
        } else {
            self.flows.set_counts(&counts);
        }
        if !membership_changed {
            // The interval the loads were measured over ends here.
            self.flows.reset_loads();
        }
    }
}

/// Hands the outcomes learnt since the last call to the quality estimate (`bytes`: delivered
/// bytes newly reported).
fn settle_outcomes(p: &mut PathState, now_us: u64, bytes: u64) {
    let (known, delivered) = p.sent.settle_outcomes(now_us);
    if known > 0 || bytes > 0 {
        p.quality.record_outcomes(now_us, known, delivered, bytes);
    }
}

/// Applies a path ack whose newest packet is data packet `seq` of `p`, sent at `sent_at`, the
/// ack having arrived at `arrived_us`: RTT, the peer's ack holding, loss and throughput, and
/// liveness.
fn apply_ack(p: &mut PathState, ack: PathAck, seq: u64, sent_at: u64, arrived_us: u64) {
    let covered = seq + 1;
    let previously_acked = p.sent.acked_seq;
    let progress = p.sent.resync_on_next_ack || covered > previously_acked;
    // The peer counts more packets received: the path delivers, even when the packet it names
    // sits earlier in our log than one acked before (cores' sends reach the wire out of log
    // order), which is no new RTT sample but is life.
    let delivering = ack.received_count > p.sent.peer_received;
    // A repeat of an ack already applied (the receiver repeats the last one of a burst) says
    // nothing new about the RTT, and its holding time is the repeat's delay, not the peer's
    // coalescing.
    if progress {
        let rtt = arrived_us.saturating_sub(sent_at).saturating_sub(ack.holding_us as u64);
        p.quality.record_rtt(rtt.max(1));
        p.quality.record_ack_holding(u64::from(ack.holding_us));
    }
    let mut bytes = 0;
    if p.sent.resync_on_next_ack {
        if covered < p.sent.acked_seq {
            // A late ack for traffic from before the outage.
            return;
        }
        p.sent.resync_on_next_ack = false;
        p.sent.rebase(covered, ack.received_count, ack.received_bytes);
    } else if ack.received_count >= p.sent.peer_received {
        // (An older ack overtaken by a newer one counts nothing.)
        p.sent.acked_seq = p.sent.acked_seq.max(covered);
        // The peer's count covers every packet logged (beyond those judged lost): the path
        // delivered all we sent, whichever packet the ack names. Without this, the last packets
        // of a burst that reached the wire out of log order would wait for an ack naming them,
        // which never comes once the path carries nothing new, and look overdue.
        if p.sent.deficit_at(p.sent.data_sent, ack.received_count) <= p.sent.lost as i64 {
            p.sent.acked_seq = p.sent.data_sent;
            p.sent.judged_seq = p.sent.data_sent;
        } else {
            p.sent.judge_until(sent_at.saturating_sub(crate::measure::REORDER_WINDOW_US));
        }
        p.sent.peer_received = ack.received_count;
        bytes = ack.received_bytes.saturating_sub(p.sent.acked_bytes);
        p.sent.acked_bytes = ack.received_bytes;
        p.sent.note_deficit(arrived_us);
    }
    settle_outcomes(p, arrived_us, bytes);
    if covered >= previously_acked || delivering {
        let next = p.sent.send_time_of_seq(p.sent.acked_seq);
        p.liveness.on_ack(arrived_us, next, progress || delivering);
    }
}
