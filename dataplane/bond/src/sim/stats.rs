//! Ground truth the simulator keeps on both ends, independent of the engine's own estimates.

use std::collections::{HashSet, VecDeque};

use crate::sim::result::TIMELINE_BUCKET_MS;

/// Sender side: what went out on which link, and how often flows changed link.
pub struct SenderStats {
    pub sent: u64,
    pub link_packets: Vec<u64>,
    pub timeline: Vec<Vec<u64>>,
    flow_last_link: Vec<Option<usize>>,
    pub flow_links: Vec<Vec<usize>>,
    pub flow_moves: u64,
}

impl SenderStats {
    pub fn new(links: usize, flows: usize, duration_ms: u64) -> Self {
        let buckets = (duration_ms / TIMELINE_BUCKET_MS + 1) as usize;
        SenderStats {
            sent: 0,
            link_packets: vec![0; links],
            timeline: vec![vec![0; buckets]; links],
            flow_last_link: vec![None; flows],
            flow_links: vec![Vec::new(); flows],
            flow_moves: 0,
        }
    }

    /// One copy of a data packet went out on `link`.
    pub fn copy_sent(&mut self, link: usize, now_us: u64) {
        self.link_packets[link] += 1;
        let bucket = ((now_us / 1000) / TIMELINE_BUCKET_MS) as usize;
        if let Some(slot) = self.timeline[link].get_mut(bucket) {
            *slot += 1;
        }
    }

    /// Flow `flow`'s packet went out on `link` alone (not broadcast).
    pub fn flow_used(&mut self, flow: usize, link: usize) {
        if self.flow_last_link[flow].is_some_and(|l| l != link) {
            self.flow_moves += 1;
        }
        if !self.flow_links[flow].contains(&link) {
            self.flow_links[flow].push(link);
        }
        self.flow_last_link[flow] = Some(link);
    }
}

/// Packet IDs remembered to spot duplicates that got through (bounded: the oldest are forgotten).
pub const DELIVERED_IDS_REMEMBERED: usize = 1 << 17;

/// Receiver side: deliveries, duplicates that got through, reordering, and the longest outage.
pub struct ReceiverStats {
    delivered_ids: HashSet<u64>,
    delivered_order: VecDeque<u64>,
    flow_max_seq: Vec<Option<u64>>,
    pub delivered: u64,
    pub duplicates_delivered: u64,
    pub reordered: u64,
    pub outage: OutageTracker,
}

impl ReceiverStats {
    /// `flow_interval_us`: how often each flow sends a packet.
    pub fn new(flows: usize, flow_interval_us: u64) -> Self {
        ReceiverStats {
            delivered_ids: HashSet::new(),
            delivered_order: VecDeque::new(),
            flow_max_seq: vec![None; flows],
            delivered: 0,
            duplicates_delivered: 0,
            reordered: 0,
            outage: OutageTracker::new(flows, flow_interval_us),
        }
    }

    /// The receiving bond delivered packet `id` (sequence `seq` of `flow`) to the host.
    pub fn delivered(&mut self, id: u64, flow: usize, seq: u64, now_us: u64) {
        if !self.delivered_ids.insert(id) {
            self.duplicates_delivered += 1;
            return;
        }
        self.delivered_order.push_back(id);
        if self.delivered_order.len() > DELIVERED_IDS_REMEMBERED
            && let Some(old) = self.delivered_order.pop_front()
        {
            self.delivered_ids.remove(&old);
        }
        self.delivered += 1;
        match self.flow_max_seq[flow] {
            Some(max) if seq < max => self.reordered += 1,
            _ => self.flow_max_seq[flow] = Some(seq),
        }
        self.outage.delivery(flow, now_us);
    }
}

/// Longest time any one flow went without deliveries beyond its own packet spacing, not counting time when
/// every link was down (no usable link, so no policy could have delivered anything). Per flow, so a black
/// hole for some flows is not hidden by the others' deliveries; each flow's clock starts at its first
/// expected delivery, so a flow that never gets through counts from the start.
pub struct OutageTracker {
    /// Per flow: the last delivery, or the first expected one (`None`: the flow has not sent yet).
    flow_last_us: Vec<Option<u64>>,
    flow_interval_us: u64,
    max_gap_us: u64,
    all_down_since_us: Option<u64>,
    /// Closed intervals with every link down.
    all_down: Vec<(u64, u64)>,
}

impl OutageTracker {
    pub fn new(flows: usize, flow_interval_us: u64) -> Self {
        OutageTracker {
            flow_last_us: vec![None; flows],
            flow_interval_us,
            max_gap_us: 0,
            all_down_since_us: None,
            all_down: Vec::new(),
        }
    }

    /// Time with every link down between `from_us` and `to_us`.
    fn down_time_between(&self, from_us: u64, to_us: u64) -> u64 {
        let overlap = |s: u64, e: u64| e.min(to_us).saturating_sub(s.max(from_us));
        self.all_down.iter().map(|&(s, e)| overlap(s, e)).sum::<u64>()
            + self.all_down_since_us.map_or(0, |s| overlap(s, to_us))
    }

    fn gap(&self, from_us: u64, to_us: u64) -> u64 {
        to_us.saturating_sub(from_us).saturating_sub(self.down_time_between(from_us, to_us))
    }

    /// `flow` sent its first packet; it should arrive at `expected_us`.
    pub fn flow_started(&mut self, flow: usize, expected_us: u64) {
        if let Some(slot @ None) = self.flow_last_us.get_mut(flow) {
            *slot = Some(expected_us);
        }
    }

    pub fn delivery(&mut self, flow: usize, now_us: u64) {
        let Some(slot) = self.flow_last_us.get(flow) else { return };
        if let Some(prev) = *slot {
            let gap = self.gap(prev, now_us).saturating_sub(self.flow_interval_us);
            self.max_gap_us = self.max_gap_us.max(gap);
        }
        self.flow_last_us[flow] = Some(now_us.max(slot.unwrap_or(0)));
    }

    /// Whether every link is down, after a link change at `now_us`.
    pub fn links_changed(&mut self, now_us: u64, all_down: bool) {
        match (all_down, self.all_down_since_us) {
            (true, None) => self.all_down_since_us = Some(now_us),
            (false, Some(since)) => {
                self.all_down.push((since, now_us));
                self.all_down_since_us = None;
            }
            _ => {}
        }
    }

    /// The longest gap, counting packets still undelivered when the traffic stopped (less the one-way
    /// delay they would have needed anyway).
    pub fn finish(&self, traffic_end_us: u64, typical_latency_us: u64) -> u64 {
        let tails = self.flow_last_us.iter().flatten().map(|&prev| {
            self.gap(prev, traffic_end_us).saturating_sub(typical_latency_us).saturating_sub(self.flow_interval_us)
        });
        tails.fold(self.max_gap_us, u64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_excludes_time_with_every_link_down() {
        let mut o = OutageTracker::new(1, 0);
        o.flow_started(0, 0);
        o.delivery(0, 0);
        o.delivery(0, 10);
        o.links_changed(100, true);
        o.links_changed(1_100, false);
        o.delivery(0, 1_150);
        // Gap 1 140, of which 1 000 with no link up.
        assert_eq!(o.finish(1_150, 0), 140);
        o.delivery(0, 1_200);
        assert_eq!(o.finish(2_000, 100), 700);
    }

    #[test]
    fn outage_counts_a_black_hole_at_the_start_and_per_flow() {
        // Nothing delivered for the first 500 ms: that is an outage too.
        let mut o = OutageTracker::new(1, 0);
        o.flow_started(0, 10);
        o.delivery(0, 510);
        assert_eq!(o.finish(510, 0), 500);
        // Flow 1 is black-holed from 100 to 900 while flow 0 keeps being delivered every 10: the longest
        // gap is flow 1's, less its own packet spacing.
        let mut o = OutageTracker::new(2, 20);
        o.flow_started(0, 0);
        o.flow_started(1, 10);
        for t in (0..1_000).step_by(20) {
            o.delivery(0, t);
            if !(100..900).contains(&(t + 10)) {
                o.delivery(1, t + 10);
            }
        }
        assert_eq!(o.finish(1_000, 0), 800);
        // A flow that never got through counts from its first expected delivery to the end.
        let mut o = OutageTracker::new(2, 0);
        o.flow_started(0, 0);
        o.flow_started(1, 0);
        o.delivery(0, 400);
        assert_eq!(o.finish(1_000, 0), 1_000);
    }

    #[test]
    fn delivered_ids_are_bounded() {
        let mut r = ReceiverStats::new(1, 0);
        for id in 0..(DELIVERED_IDS_REMEMBERED as u64 + 10) {
            r.delivered(id, 0, id, id);
        }
        assert_eq!(r.delivered_ids.len(), DELIVERED_IDS_REMEMBERED);
        assert_eq!(r.delivered_order.len(), DELIVERED_IDS_REMEMBERED);
        r.delivered(DELIVERED_IDS_REMEMBERED as u64 + 9, 0, 0, 0);
        assert_eq!(r.duplicates_delivered, 1);
    }
}
