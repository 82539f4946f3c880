//! Ground truth the simulator keeps on both ends, independent of the engine's own estimates.

use std::collections::HashSet;

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

/// Receiver side: deliveries, duplicates that got through, reordering, and the longest outage.
pub struct ReceiverStats {
    delivered_ids: HashSet<u64>,
    flow_max_seq: Vec<Option<u64>>,
    pub delivered: u64,
    pub duplicates_delivered: u64,
    pub reordered: u64,
    pub outage: OutageTracker,
}

impl ReceiverStats {
    pub fn new(flows: usize) -> Self {
        ReceiverStats {
            delivered_ids: HashSet::new(),
            flow_max_seq: vec![None; flows],
            delivered: 0,
            duplicates_delivered: 0,
            reordered: 0,
            outage: OutageTracker::default(),
        }
    }

    /// The receiving bond delivered packet `id` (sequence `seq` of `flow`) to the host.
    pub fn delivered(&mut self, id: u64, flow: usize, seq: u64, now_us: u64) {
        if !self.delivered_ids.insert(id) {
            self.duplicates_delivered += 1;
            return;
        }
        self.delivered += 1;
        match self.flow_max_seq[flow] {
            Some(max) if seq < max => self.reordered += 1,
            _ => self.flow_max_seq[flow] = Some(seq),
        }
        self.outage.delivery(now_us);
    }
}

/// Longest gap between deliveries, not counting time when every link was down (no usable link, so no
/// policy could have delivered anything).
#[derive(Default)]
pub struct OutageTracker {
    last_delivery_us: Option<u64>,
    max_gap_us: u64,
    all_down_since_us: Option<u64>,
    /// Time with every link down since the last delivery (closed intervals only).
    all_down_in_gap_us: u64,
}

impl OutageTracker {
    fn down_time_until(&self, now_us: u64) -> u64 {
        self.all_down_in_gap_us + self.all_down_since_us.map_or(0, |s| now_us.saturating_sub(s))
    }

    pub fn delivery(&mut self, now_us: u64) {
        if let Some(prev) = self.last_delivery_us {
            let gap = (now_us - prev).saturating_sub(self.down_time_until(now_us));
            self.max_gap_us = self.max_gap_us.max(gap);
        }
        self.last_delivery_us = Some(now_us);
        self.all_down_in_gap_us = 0;
        if let Some(since) = self.all_down_since_us.as_mut() {
            *since = now_us;
        }
    }

    /// Whether every link is down, after a link change at `now_us`.
    pub fn links_changed(&mut self, now_us: u64, all_down: bool) {
        match (all_down, self.all_down_since_us) {
            (true, None) => self.all_down_since_us = Some(now_us),
            (false, Some(since)) => {
                self.all_down_in_gap_us += now_us - since;
                self.all_down_since_us = None;
            }
            _ => {}
        }
    }

    /// The longest gap, counting packets still undelivered when the traffic stopped (less the one-way
    /// delay they would have needed anyway).
    pub fn finish(&self, traffic_end_us: u64, typical_latency_us: u64) -> u64 {
        let tail = self.last_delivery_us.map_or(0, |prev| {
            traffic_end_us
                .saturating_sub(prev)
                .saturating_sub(self.down_time_until(traffic_end_us))
                .saturating_sub(typical_latency_us)
        });
        self.max_gap_us.max(tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_excludes_time_with_every_link_down() {
        let mut o = OutageTracker::default();
        o.delivery(0);
        o.delivery(10);
        o.links_changed(100, true);
        o.links_changed(1_100, false);
        o.delivery(1_150);
        // Gap 1 140, of which 1 000 with no link up.
        assert_eq!(o.finish(1_150, 0), 140);
        o.delivery(1_200);
        assert_eq!(o.finish(2_000, 100), 700);
    }
}
