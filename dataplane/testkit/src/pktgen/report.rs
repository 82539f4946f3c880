//! The result of one run: counts, rates and latency, as a table and as JSON.
//!
//! Rates are taken over the generator's time span (its start to its last queued frame), for
//! what was offered and for what arrived alike: "achieved" is the RFC 2544 view, frames received
//! per second of offered traffic. Bit rates come in two flavours: L2 counts each frame's bytes
//! with FCS (the `size` convention), L1 adds the 20 bytes of preamble and inter-frame gap that
//! each frame occupies on an Ethernet wire (what "line rate" means; 64 B at 10 Gbit/s L1 is
//! 14.88 Mpps).
use super::Config;
use super::frame::L1_OVERHEAD;
use super::rx::RxStats;
use super::tx::TxStats;
use serde_json::{Value, json};

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    pub samples: u64,
    pub min_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FlowReport {
    pub flow: u16,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub reordered: u64,
    pub duplicates: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub size: usize,
    pub flows: u16,
    /// Configured rate (pps); `None`: as fast as possible.
    pub rate: Option<u64>,
    /// Frames the kernel completed on the TX side.
    pub sent: u64,
    /// Distinct frames of ours that arrived.
    pub received: u64,
    pub lost: u64,
    pub reordered: u64,
    pub duplicates: u64,
    /// Frames on the receiving sockets that were not ours.
    pub foreign: u64,
    pub bad_checksums: u64,
    /// Smallest and largest received frame (bytes without FCS; 0, 0 if none arrived).
    pub rx_len: (usize, usize),
    pub tx_secs: f64,
    pub offered_mpps: f64,
    pub achieved_mpps: f64,
    pub offered_gbps_l2: f64,
    pub offered_gbps_l1: f64,
    pub achieved_gbps_l2: f64,
    pub achieved_gbps_l1: f64,
    pub latency: Latency,
    pub per_flow: Vec<FlowReport>,
    /// Kernel drops on the receiving sockets: (dropped, RX ring full, fill ring empty). `dropped`
    /// includes the frames that found the fill ring empty; RX-ring-full drops are counted apart.
    pub rx_kernel_drops: (u64, u64, u64),
    pub tx_zero_copy: bool,
    pub rx_zero_copy: bool,
    /// Times the TX ring or the UMEM, rather than the pacer, held the generator back.
    pub tx_ring_stalls: u64,
}

impl Report {
    pub fn new(config: &Config, tx: &TxStats, rx: &RxStats) -> Report {
        let per_flow: Vec<FlowReport> = rx
            .per_flow
            .iter()
            .zip(&tx.per_flow)
            .enumerate()
            .map(|(i, (r, &sent))| FlowReport {
                flow: i as u16,
                sent,
                received: r.unique(),
                lost: sent.saturating_sub(r.unique()),
                reordered: r.reordered,
                duplicates: r.duplicates,
            })
            .collect();
        let received: u64 = per_flow.iter().map(|f| f.received).sum();
        let tx_secs = (tx.last_ns.saturating_sub(tx.first_ns)).max(1) as f64 / 1e9;
        let pps = |frames: u64| frames as f64 / tx_secs;
        let gbps = |frames: u64, extra: usize| pps(frames) * ((config.size + extra) * 8) as f64 / 1e9;
        let h = &rx.latency;
        let us = |ns: u64| ns as f64 / 1000.0;
        let latency = if h.is_empty() {
            Latency::default()
        } else {
            Latency {
                samples: h.len(),
                min_us: us(h.min()),
                p50_us: us(h.value_at_quantile(0.5)),
                p99_us: us(h.value_at_quantile(0.99)),
                p999_us: us(h.value_at_quantile(0.999)),
                max_us: us(h.max()),
                mean_us: h.mean() / 1000.0,
            }
        };
        Report {
            size: config.size,
            flows: config.flows,
            rate: config.rate,
            sent: tx.completed,
            received,
            lost: per_flow.iter().map(|f| f.lost).sum(),
            reordered: per_flow.iter().map(|f| f.reordered).sum(),
            duplicates: per_flow.iter().map(|f| f.duplicates).sum(),
            foreign: rx.foreign,
            bad_checksums: rx.bad_checksums,
            rx_len: if received == 0 { (0, 0) } else { (rx.min_len, rx.max_len) },
            tx_secs,
            offered_mpps: pps(tx.completed) / 1e6,
            achieved_mpps: pps(received) / 1e6,
            offered_gbps_l2: gbps(tx.completed, 0),
            offered_gbps_l1: gbps(tx.completed, L1_OVERHEAD),
            achieved_gbps_l2: gbps(received, 0),
            achieved_gbps_l1: gbps(received, L1_OVERHEAD),
            latency,
            per_flow,
            rx_kernel_drops: rx.kernel_drops,
            tx_zero_copy: tx.zero_copy,
            rx_zero_copy: rx.zero_copy,
            tx_ring_stalls: tx.ring_stalls,
        }
    }

    pub fn to_json(&self) -> Value {
        let l = &self.latency;
        json!({
            "size": self.size, "size_convention": "Ethernet frame with FCS (RFC 2544); buffer = size - 4",
            "flows": self.flows, "rate_pps": self.rate,
            "sent": self.sent, "received": self.received, "lost": self.lost, "reordered": self.reordered,
            "duplicates": self.duplicates, "foreign": self.foreign, "bad_checksums": self.bad_checksums,
            "rx_len_min": self.rx_len.0, "rx_len_max": self.rx_len.1,
            "tx_secs": self.tx_secs,
            "offered_mpps": self.offered_mpps, "achieved_mpps": self.achieved_mpps,
            "offered_gbps_l2": self.offered_gbps_l2, "offered_gbps_l1": self.offered_gbps_l1,
            "achieved_gbps_l2": self.achieved_gbps_l2, "achieved_gbps_l1": self.achieved_gbps_l1,
            "latency_us": {"samples": l.samples, "min": l.min_us, "p50": l.p50_us, "p99": l.p99_us,
                "p99_9": l.p999_us, "max": l.max_us, "mean": l.mean_us},
            "per_flow": self.per_flow.iter().map(|f| json!({"flow": f.flow, "sent": f.sent, "received": f.received,
                "lost": f.lost, "reordered": f.reordered, "duplicates": f.duplicates})).collect::<Vec<_>>(),
            "rx_kernel_drops": {"dropped": self.rx_kernel_drops.0, "rx_ring_full": self.rx_kernel_drops.1,
                "fill_ring_empty": self.rx_kernel_drops.2},
            "tx_zero_copy": self.tx_zero_copy, "rx_zero_copy": self.rx_zero_copy,
            "tx_ring_stalls": self.tx_ring_stalls,
        })
    }

    /// A human-readable summary.
    pub fn table(&self) -> String {
        let l = &self.latency;
        let rate = self.rate.map_or("max".to_string(), |r| format!("{r} pps"));
        let mut out = format!(
            "pktgen: {} B frames (FCS incl.), {} flows, rate {rate}, {:.3} s\n\
             {:<10} {:>12} {:>9} {:>12} {:>12}\n\
             {:<10} {:>12} {:>9.4} {:>12.3} {:>12.3}\n\
             {:<10} {:>12} {:>9.4} {:>12.3} {:>12.3}\n",
            self.size,
            self.flows,
            self.tx_secs,
            "",
            "frames",
            "Mpps",
            "Gbit/s L2",
            "Gbit/s L1",
            "offered",
            self.sent,
            self.offered_mpps,
            self.offered_gbps_l2,
            self.offered_gbps_l1,
            "achieved",
            self.received,
            self.achieved_mpps,
            self.achieved_gbps_l2,
            self.achieved_gbps_l1,
        );
        out += &format!(
            "lost {}  reordered {}  duplicates {}  foreign {}  bad checksums {}  rx frame bytes {}..={}\n",
            self.lost, self.reordered, self.duplicates, self.foreign, self.bad_checksums, self.rx_len.0, self.rx_len.1
        );
        out += &format!(
            "latency µs: min {:.1}  p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  ({} samples)\n",
            l.min_us, l.p50_us, l.p99_us, l.p999_us, l.max_us, l.samples
        );
        for f in &self.per_flow {
            out += &format!(
                "  flow {:>3}: sent {:>10} received {:>10} lost {:>6} reordered {:>6} dup {:>6}\n",
                f.flow, f.sent, f.received, f.lost, f.reordered, f.duplicates
            );
        }
        out
    }
}
