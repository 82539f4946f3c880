//! What a simulation run reports (the JSON `ztplanectl policy simulate` prints).

use crate::bond::BondEvent;

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
    /// Longest time one flow went without deliveries (beyond its own packet spacing, from its first
    /// expected delivery), not counting time when no link was up.
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
    /// Why: `failure` / `reselect` / `rotate` (active-backup), or how the path was found dead
    /// (`ack-timeout`, `probe-timeout`, `failover-interval`) for the other policies.
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

impl SimResult {
    /// A link's share of data packets sent between `from_ms` and `to_ms`.
    pub fn share_between(&self, link: usize, from_ms: u64, to_ms: u64) -> f64 {
        let range = (from_ms / TIMELINE_BUCKET_MS) as usize..(to_ms / TIMELINE_BUCKET_MS) as usize;
        let total: u64 = self.timeline.iter().map(|t| t[range.clone()].iter().sum::<u64>()).sum();
        let mine: u64 = self.timeline[link][range].iter().sum();
        if total == 0 { 0.0 } else { mine as f64 / total as f64 }
    }
}
