//! Path liveness and failure detection (bonding spec §4.1, §4.4; issue item 4).
//!
//! zerotier-one declares a path dead only when nothing has been received on it for `failoverInterval`
//! (5 s by default, 0.5 s at least; measured 0.52 s in the capture, §6.2). ztplane uses the traffic it
//! already sends as the probe:
//! * **missing acknowledgements** (ztplane peers): data sent on the path but not acknowledged within
//!   `srtt + 4·rttvar + ack interval + slack`, with enough unacknowledged packets (or an unanswered probe)
//!   that the silence cannot plausibly be ordinary loss at the path's measured loss rate, and while
//!   another path with data in flight still hears acks (when every such path falls silent at once,
//!   the peer or this host stalled: no path is to blame and none would do better);
//! * **silence while traffic is expected** (any peer): data sent after the last thing received, and nothing
//!   arriving within about one RTT → an ECHO probe goes out at once; an unanswered probe means failure;
//! * **unanswered probes** on idle paths (ECHO every monitor interval, §4.1);
//! * the `failoverInterval` backstop of zerotier-one.
//!
//! `downDelay` keeps a failing path in use for that long before it is dropped; `upDelay` makes a recovered
//! path wait before it rejoins. A path that keeps failing is held down with an exponential back-off that
//! decays while it stays healthy (zerotier-one computes such a "refractory period" but never applies it,
//! §4.4, §11.5).

/// How often a receiver acknowledges data on a path (ztplane peers).
pub const ACK_INTERVAL_US: u64 = 2_000;
/// Allowance for scheduling delay in the peer and in us.
pub const SCHEDULING_SLACK_US: u64 = 5_000;
/// Longest ack gap that counts towards [`Liveness::ack_gap_peak_us`]: the silence of an outage
/// must not make the next one slow to detect.
pub const ACK_GAP_SAMPLE_MAX_US: u64 = 40_000;
/// Smallest probe interval towards a zerotier-one peer: it answers at most one ECHO per 166 ms per path (§8.8).
pub const ZEROTIER_ECHO_MIN_INTERVAL_US: u64 = 170_000;
/// Smallest probe interval towards a ztplane peer.
pub const ZTPLANE_ECHO_MIN_INTERVAL_US: u64 = 20_000;
/// First hold-down applied to a path that fails again soon after recovering.
pub const FLAP_BASE_US: u64 = 1_000_000;
/// Longest hold-down.
pub const FLAP_MAX_US: u64 = 64_000_000;
/// Healthy time after which the flap level drops by one.
pub const FLAP_DECAY_US: u64 = 20_000_000;
/// Odds we accept of declaring a healthy path dead from a run of losses.
const FALSE_FAILURE_ODDS: f64 = 1e-6;

/// Why a path was declared failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureReason {
    AckTimeout,
    ProbeTimeout,
    FailoverInterval,
}

impl FailureReason {
    pub fn name(self) -> &'static str {
        match self {
            FailureReason::AckTimeout => "ack-timeout",
            FailureReason::ProbeTimeout => "probe-timeout",
            FailureReason::FailoverInterval => "failover-interval",
        }
    }
}

/// Liveness state of one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Alive and usable.
    Up,
    /// Failure detected at `since`; still used until `downDelay` has passed.
    Failing { since_us: u64, reason: FailureReason },
    /// Not usable.
    Down { since_us: u64, reason: FailureReason },
    /// Receiving again since `since`; rejoins after `upDelay` and any flap hold-down.
    Recovering { since_us: u64 },
}

/// Inputs the detector needs from the rest of the engine.
#[derive(Clone, Copy, Debug)]
pub struct DetectorContext {
    pub srtt_us: u64,
    pub rttvar_us: u64,
    /// Recent peak RTT: with bursty jitter, srtt + 4·rttvar can be shorter than what the path just did.
    pub rtt_peak_us: u64,
    /// Recent peak of how long the peer holds a packet before acking it (0 before any ack).
    pub ack_holding_us: u64,
    /// Measured loss ratio on the path (decides how much silence is proof of failure).
    pub loss: f64,
    pub failover_interval_us: u64,
    pub monitor_interval_us: u64,
    pub up_delay_us: u64,
    pub down_delay_us: u64,
    /// The peer acknowledges data per path (ztplane).
    pub peer_acks: bool,
    /// Data packets sent on the path more than [`DetectorContext::ack_deadline_us`] ago and not yet
    /// acknowledged (ztplane peers), and how long the oldest of them has been overdue.
    pub overdue_packets: u64,
    pub overdue_for_us: u64,
    /// Another usable path of the bond with data awaiting acks has had no ack for as long: the
    /// silence is the peer's or ours (a stalled host), not this path's, and failing this path
    /// over would gain nothing. An ack timeout then waits; probes and the backstop still apply.
    pub silent_together: bool,
}

impl DetectorContext {
    /// Chance that one packet goes unconfirmed on a healthy path: it or its acknowledgement is lost.
    fn unconfirmed_chance(&self) -> f64 {
        let p = self.loss.clamp(0.02, 0.9);
        1.0 - (1.0 - p) * (1.0 - p)
    }

    /// Consecutive unconfirmed packets (and ack intervals) that are "impossible" on a healthy path at
    /// the measured loss rate.
    pub fn losses_needed(&self) -> u64 {
        (FALSE_FAILURE_ODDS.ln() / self.unconfirmed_chance().ln()).ceil() as u64
    }

    /// Unanswered probes in a row that make a failure (more on a lossy path).
    pub fn probes_needed(&self) -> u32 {
        ((1e-4f64).ln() / self.unconfirmed_chance().ln()).ceil().clamp(2.0, 16.0) as u32
    }

    fn rtt_bound_us(&self) -> u64 {
        (self.srtt_us + 4 * self.rttvar_us.max(1_000)).max(self.rtt_peak_us)
    }

    fn probe_timeout_us(&self) -> u64 {
        self.rtt_bound_us() + SCHEDULING_SLACK_US
    }

    /// How long an ack may take: the RTT bound, the peer's ack coalescing (at least the ack
    /// interval, more if its acks show it holds packets longer) and scheduling slack.
    pub fn ack_deadline_us(&self) -> u64 {
        self.rtt_bound_us() + ACK_INTERVAL_US.max(self.ack_holding_us) + SCHEDULING_SLACK_US
    }

    /// The longest gap between acks that make progress on a path that is alive: acks come at the
    /// peer's cadence however long the path's queue is.
    pub fn ack_gap_limit_us(&self) -> u64 {
        ACK_INTERVAL_US.max(self.ack_holding_us) + 4 * self.rttvar_us.max(1_000) + SCHEDULING_SLACK_US
    }

    fn probe_min_interval_us(&self) -> u64 {
        if self.peer_acks { ZTPLANE_ECHO_MIN_INTERVAL_US } else { ZEROTIER_ECHO_MIN_INTERVAL_US }
    }

    /// Keepalive probe interval for a silent path: the monitor interval, but no faster than the peer
    /// answers.
    fn probe_interval_us(&self) -> u64 {
        self.monitor_interval_us.max(self.probe_min_interval_us())
    }

    /// The `failoverInterval` backstop, but never shorter than a keepalive probe and its answer take: an
    /// idle path is silent between probes, and a very small `failoverInterval` must not kill healthy ones.
    fn silence_limit_us(&self) -> u64 {
        self.failover_interval_us.max(self.probe_interval_us() + self.probe_timeout_us())
    }
}

/// Failure detector and state machine for one path (see module docs).
#[derive(Clone, Debug)]
pub struct Liveness {
    pub state: LinkState,
    pub last_rx_us: u64,
    /// Send time of the oldest data packet not yet covered by an ack (ztplane peers) or sent after the last
    /// receive (any peer).
    pub unacked_since_us: Option<u64>,
    /// Since when the sender has been waiting for ack progress: the last ack that covered new
    /// packets, or the start of the current unacked run if later (ztplane peers).
    pub ack_wait_since_us: u64,
    /// Recent peak of the gaps between acks that made progress (a decaying maximum, each gap at
    /// most [`ACK_GAP_SAMPLE_MAX_US`]): on a busy host the peer acks late now and then, and a
    /// silence that long is normal there.
    pub ack_gap_peak_us: u64,
    /// Outstanding probe: (ECHO packet ID, sent at), and unanswered probes in a row.
    pub probe: Option<(u64, u64)>,
    pub unanswered_probes: u32,
    pub last_probe_us: u64,
    /// Whether an ECHO should be sent now (drained by the bond).
    pub probe_wanted: bool,
    pub flap_level: u32,
    pub flap_changed_us: u64,
    pub failures: u64,
}

impl Liveness {
    pub fn new(now_us: u64) -> Self {
        Liveness {
            state: LinkState::Up,
            last_rx_us: now_us,
            unacked_since_us: None,
            ack_wait_since_us: now_us,
            ack_gap_peak_us: 0,
            probe: None,
            unanswered_probes: 0,
            last_probe_us: 0,
            probe_wanted: true,
            flap_level: 0,
            flap_changed_us: now_us,
            failures: 0,
        }
    }

    pub fn usable(&self) -> bool {
        matches!(self.state, LinkState::Up | LinkState::Failing { .. })
    }

    /// Hold-down after the current number of recent failures: none for the first, then 1 s, 2 s, 4 s, ...
    pub fn flap_hold_us(&self) -> u64 {
        match self.flap_level {
            0 | 1 => 0,
            n => (FLAP_BASE_US << (n - 2).min(20)).min(FLAP_MAX_US),
        }
    }

    pub fn on_data_sent(&mut self, now_us: u64) {
        if self.unacked_since_us.is_none() {
            self.unacked_since_us = Some(now_us);
            self.ack_wait_since_us = self.ack_wait_since_us.max(now_us);
        }
    }

    /// Anything authenticated arrived on the path.
    pub fn on_receive(&mut self, now_us: u64, peer_acks: bool) {
        self.last_rx_us = now_us;
        // Anything arriving proves the path carries traffic; earlier unanswered probes were just lost.
        self.unanswered_probes = 0;
        if !peer_acks {
            // Without acks, a receive is the only sign that earlier sends got through.
            self.unacked_since_us = None;
        }
        match self.state {
            // Overdue acks mean our sending direction is broken: traffic from the peer says nothing about
            // it, so only ack progress ([`Liveness::on_ack`]) clears that (else `downDelay` restarts forever).
            LinkState::Failing { reason: FailureReason::AckTimeout, .. } if peer_acks => {}
            LinkState::Failing { .. } => self.state = LinkState::Up,
            LinkState::Down { .. } => self.state = LinkState::Recovering { since_us: now_us },
            _ => {}
        }
    }

    /// An ack arrived; `next_unacked` is the send time of the first packet it does not cover, `progress`
    /// whether it covers packets no earlier ack did (which clears an ack-timeout `Failing`).
    pub fn on_ack(&mut self, now_us: u64, next_unacked: Option<u64>, progress: bool) {
        self.unacked_since_us = next_unacked;
        if progress {
            let gap = now_us.saturating_sub(self.ack_wait_since_us).min(ACK_GAP_SAMPLE_MAX_US);
            self.ack_gap_peak_us = if gap >= self.ack_gap_peak_us {
                gap
            } else {
                self.ack_gap_peak_us - (self.ack_gap_peak_us - gap) / 32
            };
            self.ack_wait_since_us = now_us;
        }
        if progress && matches!(self.state, LinkState::Failing { reason: FailureReason::AckTimeout, .. }) {
            self.state = LinkState::Up;
        }
    }

    /// The bond queued the wanted probe; it is outstanding from now (its packet ID follows with
    /// [`Liveness::on_probe_sent`]), so it is not requested twice.
    pub fn begin_probe(&mut self, now_us: u64) {
        self.probe_wanted = false;
        self.last_probe_us = now_us;
        self.probe = Some((u64::MAX, now_us));
    }

    pub fn on_probe_sent(&mut self, packet_id: u64, now_us: u64) {
        self.probe = Some((packet_id, now_us));
        self.last_probe_us = now_us;
        self.probe_wanted = false;
    }

    /// Returns the RTT if `packet_id` is the outstanding probe.
    pub fn on_probe_answered(&mut self, packet_id: u64, now_us: u64) -> Option<u64> {
        match self.probe {
            Some((id, sent)) if id == packet_id => {
                self.probe = None;
                self.unanswered_probes = 0;
                Some(now_us.saturating_sub(sent))
            }
            _ => None,
        }
    }

    fn fail(&mut self, now_us: u64, reason: FailureReason, ctx: &DetectorContext) {
        if ctx.down_delay_us == 0 {
            self.go_down(now_us, reason);
        } else {
            self.state = LinkState::Failing { since_us: now_us, reason };
        }
    }

    fn go_down(&mut self, now_us: u64, reason: FailureReason) {
        self.state = LinkState::Down { since_us: now_us, reason };
        self.unacked_since_us = None;
        self.failures += 1;
        self.flap_level = (self.flap_level + 1).min(24);
        self.flap_changed_us = now_us;
    }

    /// Advance the state machine; returns the next time it needs to run.
    pub fn evaluate(&mut self, now_us: u64, ctx: &DetectorContext) -> u64 {
        let mut next = u64::MAX;
        // Probe bookkeeping: an outstanding probe past its timeout counts as unanswered.
        if let Some((_, sent)) = self.probe {
            let deadline = sent + ctx.probe_timeout_us();
            if now_us >= deadline {
                // The retry is scheduled by the state below: no sooner than the peer answers (a zerotier-one
                // peer drops ECHOs less than 166 ms apart, so a faster retry would only go unanswered too).
                self.probe = None;
                self.unanswered_probes += 1;
            } else {
                next = next.min(deadline);
            }
        }
        let silent_for = now_us.saturating_sub(self.last_rx_us);
        match self.state {
            LinkState::Up | LinkState::Failing { .. } => {
                if let LinkState::Failing { since_us, reason } = self.state {
                    if now_us >= since_us + ctx.down_delay_us {
                        self.go_down(now_us, reason);
                        return self.evaluate(now_us, ctx);
                    }
                    next = next.min(since_us + ctx.down_delay_us);
                }
                let failing = matches!(self.state, LinkState::Failing { .. });
                if !failing {
                    if let Some(reason) = self.failure_evidence(now_us, ctx, &mut next) {
                        self.fail(now_us, reason, ctx);
                        return self.evaluate(now_us, ctx).min(now_us + 1);
                    }
                    // Decay the flap level while healthy.
                    if self.flap_level > 0 {
                        if now_us >= self.flap_changed_us + FLAP_DECAY_US {
                            self.flap_level -= 1;
                            self.flap_changed_us = now_us;
                        }
                        next = next.min(self.flap_changed_us + FLAP_DECAY_US);
                    }
                }
                // Retry an unanswered probe as soon as the peer would answer it.
                if self.unanswered_probes > 0 {
                    self.probe_at(now_us, self.last_probe_us + ctx.probe_min_interval_us(), &mut next);
                }
                // Idle keepalive probes (§4.1): when nothing has arrived for a monitor interval.
                let idle_probe_at = self.last_rx_us.max(self.last_probe_us) + ctx.probe_interval_us();
                if self.probe.is_none() && now_us >= idle_probe_at {
                    self.probe_wanted = true;
                } else if self.probe.is_none() {
                    next = next.min(idle_probe_at);
                }
            }
            LinkState::Down { .. } => {
                let at = self.last_probe_us + ctx.probe_interval_us();
                if self.probe.is_none() && now_us >= at {
                    self.probe_wanted = true;
                } else if self.probe.is_none() {
                    next = next.min(at);
                }
            }
            LinkState::Recovering { since_us } => {
                // Falling silent again while recovering is another failure.
                if silent_for >= ctx.silence_limit_us() || self.unanswered_probes >= ctx.probes_needed() {
                    self.unanswered_probes = 0;
                    self.go_down(now_us, FailureReason::ProbeTimeout);
                    return self.evaluate(now_us, ctx);
                }
                let ready_at = since_us + ctx.up_delay_us.max(self.flap_hold_us());
                if now_us >= ready_at {
                    self.state = LinkState::Up;
                    self.unanswered_probes = 0;
                    self.flap_changed_us = now_us;
                    return self.evaluate(now_us, ctx).min(now_us + 1);
                }
                next = next.min(ready_at);
                if self.unanswered_probes > 0 {
                    self.probe_at(now_us, self.last_probe_us + ctx.probe_min_interval_us(), &mut next);
                }
                // Keep probing so that silence during the hold-down is noticed.
                let at = self.last_rx_us.max(self.last_probe_us) + ctx.probe_interval_us();
                if self.probe.is_none() && now_us >= at {
                    self.probe_wanted = true;
                } else if self.probe.is_none() {
                    next = next.min(at);
                }
            }
        }
        if self.probe_wanted {
            next = now_us;
        }
        next
    }

    fn failure_evidence(&mut self, now_us: u64, ctx: &DetectorContext, next: &mut u64) -> Option<FailureReason> {
        if now_us.saturating_sub(self.last_rx_us) >= ctx.silence_limit_us() {
            return Some(FailureReason::FailoverInterval);
        }
        *next = (*next).min(self.last_rx_us + ctx.silence_limit_us());
        if self.unanswered_probes >= ctx.probes_needed() {
            return Some(FailureReason::ProbeTimeout);
        }
        if ctx.peer_acks {
            // Overdue packets: more in a row than the path's loss rate explains means it is dead; fewer
            // are worth a direct question.
            let needed = ctx.losses_needed();
            // Acks still coming, only later than the RTT promised (a queue filling as traffic moves
            // onto the path), are life: failure needs the acks themselves to stop, i.e. miss their
            // cadence (the ack interval or the peer's holding, plus jitter and slack) whatever the RTT.
            let gap_limit = ctx.ack_gap_limit_us().max(2 * self.ack_gap_peak_us);
            let ack_silent = now_us.saturating_sub(self.ack_wait_since_us) >= gap_limit;
            if ack_silent
                && !ctx.silent_together
                && ctx.overdue_packets >= needed
                && ctx.overdue_for_us >= needed * ACK_INTERVAL_US
            {
                return Some(FailureReason::AckTimeout);
            }
            if ctx.overdue_packets > 0 {
                self.want_probe(now_us, ctx);
            }
            if ctx.overdue_packets > 0 {
                *next = (*next).min(now_us + ACK_INTERVAL_US);
            } else if let Some(since) = self.unacked_since_us {
                *next = (*next).min((since + ctx.ack_deadline_us()).max(now_us + 1));
            }
        } else if let Some(since) = self.unacked_since_us {
            // Without acks we only know that the peer usually sends something back within an RTT or so.
            let deadline = since + ctx.probe_timeout_us() + ctx.srtt_us;
            if now_us >= deadline {
                self.want_probe(now_us, ctx);
            } else {
                *next = (*next).min(deadline);
            }
        }
        None
    }

    /// Want a probe at `at` (now if due), unless one is outstanding.
    fn probe_at(&mut self, now_us: u64, at: u64, next: &mut u64) {
        if self.probe.is_none() {
            if now_us >= at {
                self.probe_wanted = true;
            } else {
                *next = (*next).min(at);
            }
        }
    }

    fn want_probe(&mut self, now_us: u64, ctx: &DetectorContext) {
        if self.probe.is_none() && now_us >= self.last_probe_us + ctx.probe_min_interval_us() {
            self.probe_wanted = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> DetectorContext {
        DetectorContext {
            srtt_us: 20_000,
            rttvar_us: 1_000,
            rtt_peak_us: 21_000,
            ack_holding_us: 0,
            loss: 0.0,
            failover_interval_us: 5_000_000,
            monitor_interval_us: 1_666_000,
            up_delay_us: 0,
            down_delay_us: 0,
            peer_acks: true,
            overdue_packets: 0,
            silent_together: false,
            overdue_for_us: 0,
        }
    }

    #[test]
    fn overdue_packets_fail_a_path_and_a_few_only_trigger_a_probe() {
        let mut c = ctx();
        assert_eq!(c.ack_deadline_us(), 20_000 + 4_000 + ACK_INTERVAL_US + SCHEDULING_SLACK_US);
        let mut l = Liveness::new(0);
        l.probe_wanted = false;
        l.on_data_sent(0);
        c.overdue_packets = 2;
        l.evaluate(40_000, &c);
        assert_eq!(l.state, LinkState::Up);
        assert!(l.probe_wanted, "a couple of overdue packets: ask the peer");
        c.overdue_packets = c.losses_needed();
        l.evaluate(41_000, &c);
        assert_eq!(l.state, LinkState::Up, "not yet overdue for enough ack intervals");
        c.overdue_for_us = c.losses_needed() * ACK_INTERVAL_US;
        l.evaluate(42_000, &c);
        assert!(matches!(l.state, LinkState::Down { reason: FailureReason::AckTimeout, .. }));
    }

    #[test]
    fn late_acks_that_keep_coming_are_not_a_failure() {
        // A path that just took over a TCP flow: its queue grows, acks arrive later than the RTT
        // said, but every 2 ms; packets are "overdue" for a while.
        let mut c = ctx();
        c.overdue_packets = 1_000;
        c.overdue_for_us = 1_000_000;
        let mut l = Liveness::new(0);
        l.probe_wanted = false;
        l.on_data_sent(0);
        let mut t = 0;
        while t < 500_000 {
            l.on_ack(t, Some(t), true);
            l.evaluate(t + 1_000, &c);
            assert!(l.usable(), "failed at {t} µs with acks arriving: {:?}", l.state);
            t += 2_000;
        }
        // The acks stop: the path fails once the gap since the last one exceeds the ack cadence.
        let last = t - 2_000;
        l.evaluate(last + c.ack_gap_limit_us() - 1, &c);
        assert!(l.usable());
        l.evaluate(last + c.ack_gap_limit_us(), &c);
        assert!(matches!(l.state, LinkState::Down { reason: FailureReason::AckTimeout, .. }), "{:?}", l.state);
    }

    #[test]
    fn unanswered_probes_fail_a_path_but_any_receive_clears_them() {
        let c = ctx();
        let mut l = Liveness::new(0);
        l.on_probe_sent(1, 0);
        l.evaluate(30_000, &c);
        assert_eq!(l.unanswered_probes, 1);
        l.on_receive(31_000, true);
        assert_eq!(l.unanswered_probes, 0);
        for (i, t) in [40_000u64, 70_000, 100_000].into_iter().enumerate() {
            assert!(l.usable());
            l.on_probe_sent(2 + i as u64, t);
            l.evaluate(t + 30_000, &c);
        }
        assert!(matches!(l.state, LinkState::Down { reason: FailureReason::ProbeTimeout, .. }));
    }

    #[test]
    fn down_delay_and_up_delay_are_honoured_and_flaps_back_off() {
        let mut c = ctx();
        c.down_delay_us = 200_000;
        c.up_delay_us = 300_000;
        let mut l = Liveness::new(0);
        l.probe_wanted = false;
        c.overdue_packets = 10;
        c.overdue_for_us = 20_000;
        l.evaluate(40_000, &c);
        assert!(matches!(l.state, LinkState::Failing { .. }));
        assert!(l.usable());
        l.evaluate(239_000, &c);
        assert!(l.usable());
        l.evaluate(240_000, &c);
        assert!(!l.usable());
        c.overdue_packets = 0;
        l.on_receive(1_000_000, true);
        assert!(matches!(l.state, LinkState::Recovering { .. }));
        l.evaluate(1_299_000, &c);
        assert!(!l.usable());
        l.evaluate(1_300_000, &c);
        assert!(l.usable());
        assert_eq!(l.flap_level, 1);
        // A second failure soon after: back-off 1 s exceeds upDelay.
        c.overdue_packets = 10;
        c.overdue_for_us = 20_000;
        l.evaluate(1_440_000, &c);
        l.evaluate(1_640_000, &c);
        assert!(!l.usable());
        assert_eq!(l.flap_level, 2);
        assert_eq!(l.flap_hold_us(), 1_000_000);
        c.overdue_packets = 0;
        l.on_receive(2_000_000, true);
        l.evaluate(2_999_000, &c);
        assert!(!l.usable());
        l.last_rx_us = 2_999_000;
        l.evaluate(3_000_000, &c);
        assert!(l.usable());
        // The level decays after a healthy stretch.
        l.last_rx_us = 23_000_000;
        l.evaluate(23_000_001, &c);
        assert_eq!(l.flap_level, 1);
    }

    #[test]
    fn traffic_from_the_peer_does_not_restart_down_delay_after_an_ack_timeout() {
        // Our sending direction is dead (acks overdue) but the peer's data keeps arriving every 50 ms.
        let mut c = ctx();
        c.down_delay_us = 200_000;
        c.overdue_packets = 100;
        c.overdue_for_us = 100_000;
        let mut l = Liveness::new(0);
        l.probe_wanted = false;
        let mut t = 40_000;
        while t < 1_000_000 && l.usable() {
            l.evaluate(t, &c);
            if t % 50_000 == 0 {
                l.on_receive(t, true);
            }
            t += 10_000;
        }
        assert!(
            matches!(l.state, LinkState::Down { reason: FailureReason::AckTimeout, since_us } if since_us == 240_000),
            "{:?}",
            l.state
        );
        // Ack progress (not mere receives) clears an ack-timeout failure.
        let mut l = Liveness::new(0);
        l.probe_wanted = false;
        l.evaluate(40_000, &c);
        assert!(matches!(l.state, LinkState::Failing { .. }));
        l.on_ack(0, None, false);
        assert!(matches!(l.state, LinkState::Failing { .. }));
        l.on_ack(0, None, true);
        assert_eq!(l.state, LinkState::Up);
    }

    /// Probe send times on a path whose probes go unanswered, from an unanswered probe at 0.
    fn probe_times(c: &DetectorContext, until_us: u64) -> (Vec<u64>, LinkState) {
        let mut l = Liveness::new(0);
        l.on_probe_sent(1, 0);
        let mut sends = vec![0];
        let mut t = 1_000;
        while t < until_us {
            l.evaluate(t, c);
            if l.probe_wanted {
                l.begin_probe(t);
                l.on_probe_sent(t, t);
                sends.push(t);
            }
            t += 1_000;
        }
        (sends, l.state)
    }

    #[test]
    fn probe_retries_respect_the_peers_echo_rate_limit() {
        let mut c = ctx();
        c.peer_acks = false;
        let (sends, state) = probe_times(&c, 600_000);
        // A zerotier-one peer answers at most one ECHO per 166 ms per path: retries no faster than that.
        assert!(sends.windows(2).all(|w| w[1] - w[0] >= ZEROTIER_ECHO_MIN_INTERVAL_US), "{sends:?}");
        assert!(matches!(state, LinkState::Down { reason: FailureReason::ProbeTimeout, .. }), "{state:?}");
        // Once down, a dead path is probed at the probe interval, not every probe timeout.
        let (sends, _) = probe_times(&c, 10_000_000);
        let late: Vec<u64> = sends.iter().copied().filter(|&t| t > 1_000_000).collect();
        assert!(late.windows(2).all(|w| w[1] - w[0] >= c.probe_interval_us()), "{late:?}");
        assert!(late.len() <= 6, "{late:?}");
    }

    #[test]
    fn lossy_paths_need_more_silence() {
        let mut c = ctx();
        assert_eq!((c.losses_needed(), c.probes_needed()), (5, 3));
        c.loss = 0.2;
        assert_eq!((c.losses_needed(), c.probes_needed()), (14, 10));
    }
}
