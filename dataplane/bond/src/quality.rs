//! Link quality, measured per path (bonding spec §4.3, §5; issue item 3).
//!
//! zerotier-one 1.14.1 measures only latency (from QOS_MEASUREMENT records) and reports loss and error
//! ratios as 0 (§4.3, §11.9). Here every metric is measured from what the dataplane observes:
//! * round-trip time from OK(ECHO), QoS records (`(now - sent) - holding`) and ztplane path acks, smoothed
//!   like RFC 6298 and recorded in an HDR histogram for percentiles; max and min kept;
//! * packet delay variation as the RFC 3550 interarrival-jitter estimator applied to RTT samples;
//! * loss ratio from acknowledged counts (exact between ztplane nodes), from unreported QoS samples
//!   (zerotier-one peers) and from unanswered probes;
//! * error ratio from authentication failures and malformed packets received on the path;
//! * delivered throughput per 100 ms bucket (mean, max, variance);
//! * availability: the fraction of time the path was usable since it was nominated.
//!
//! Loss, errors and throughput are kept in a ring of time buckets so windows of any length up to
//! [`WINDOW_BUCKETS`] × [`BUCKET_US`] can be read without allocation.

use hdrhistogram::Histogram;

use crate::config::LinkQualitySpec;

/// Width of one accounting bucket.
pub const BUCKET_US: u64 = 100_000;
/// Buckets kept: 10 s of history.
pub const WINDOW_BUCKETS: usize = 100;
/// Window the engine uses for decisions (avoidance, allocation): recent enough to react within a second.
pub const DECISION_WINDOW_BUCKETS: usize = 10;
/// RTT assumed before the first sample (RFC 6298 uses 1 s; links we bond are much shorter).
pub const INITIAL_RTT_US: u64 = 100_000;

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    epoch: u64,
    /// Packets whose fate became known in this bucket, and how many of them arrived.
    outcomes: u64,
    delivered: u64,
    delivered_bytes: u64,
    rx_valid: u64,
    rx_errors: u64,
}

/// One path's measured quality (see module docs).
pub struct LinkQuality {
    srtt_us: Option<f64>,
    rttvar_us: f64,
    /// Recent peak RTT: jumps to a higher sample, decays slowly towards lower ones (bursty jitter).
    rtt_peak_us: f64,
    /// Recent peak of how long the peer held a packet before acking it (ztplane acks).
    ack_holding_peak_us: f64,
    jitter_us: f64,
    last_rtt_us: Option<u64>,
    rtt_max_us: u64,
    rtt_min_us: u64,
    rtt_hist: Histogram<u64>,
    buckets: Box<[Bucket; WINDOW_BUCKETS]>,
    nominated_us: u64,
    usable_since_us: Option<u64>,
    usable_total_us: u64,
    /// Throughput the path delivered while it showed signs of saturation (Mbit/s, smoothed); `None` until
    /// it has been seen saturated.
    capacity_estimate_mbps: Option<f64>,
}

/// Queueing delay above the minimum RTT that counts as a sign of saturation (together with a few times
/// the path's normal delay variation).
pub const SATURATION_QUEUEING_US: f64 = 5_000.0;

/// A point-in-time report of a path's quality (what `zerotier-cli bond <peer> show` would print, and more).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct QualityReport {
    /// Smoothed round-trip time (ms).
    pub latency_ms: f64,
    pub latency_max_ms: f64,
    pub latency_min_ms: f64,
    pub latency_p99_ms: f64,
    pub rtt_samples: u64,
    /// Packet delay variation (ms).
    pub pdv_ms: f64,
    /// Loss ratio over the report window.
    pub loss: f64,
    /// Packets whose fate is known in the report window (the loss ratio's denominator).
    pub loss_samples: u64,
    pub error_ratio: f64,
    pub throughput_mean_mbps: f64,
    pub throughput_max_mbps: f64,
    pub throughput_variance: f64,
    /// Measured capacity (throughput while saturated), if the path has been seen saturated.
    pub capacity_estimate_mbps: Option<f64>,
    pub availability: f64,
}

impl QualityReport {
    /// A link's quality from its paths' (a link can carry several paths, e.g. IPv4 and IPv6): loss and
    /// latency weighted by their samples, throughput summed, the best availability, the worst maxima.
    pub fn combine(paths: &[QualityReport]) -> QualityReport {
        let weighted = |value: fn(&QualityReport) -> f64, weight: fn(&QualityReport) -> f64| {
            let total: f64 = paths.iter().map(weight).sum();
            if total == 0.0 { 0.0 } else { paths.iter().map(|p| value(p) * weight(p)).sum::<f64>() / total }
        };
        let max = |value: fn(&QualityReport) -> f64| paths.iter().map(value).fold(0.0, f64::max);
        QualityReport {
            latency_ms: weighted(|p| p.latency_ms, |p| p.rtt_samples as f64),
            latency_max_ms: max(|p| p.latency_max_ms),
            latency_min_ms: paths.iter().map(|p| p.latency_min_ms).filter(|&m| m > 0.0).reduce(f64::min).unwrap_or(0.0),
            latency_p99_ms: max(|p| p.latency_p99_ms),
            rtt_samples: paths.iter().map(|p| p.rtt_samples).sum(),
            pdv_ms: weighted(|p| p.pdv_ms, |p| p.rtt_samples as f64),
            loss: weighted(|p| p.loss, |p| p.loss_samples as f64),
            loss_samples: paths.iter().map(|p| p.loss_samples).sum(),
            error_ratio: max(|p| p.error_ratio),
            throughput_mean_mbps: paths.iter().map(|p| p.throughput_mean_mbps).sum(),
            throughput_max_mbps: paths.iter().map(|p| p.throughput_max_mbps).sum(),
            throughput_variance: paths.iter().map(|p| p.throughput_variance).sum(),
            capacity_estimate_mbps: paths.iter().filter_map(|p| p.capacity_estimate_mbps).reduce(f64::max),
            availability: max(|p| p.availability),
        }
    }
}

impl LinkQuality {
    pub fn new(now_us: u64) -> Self {
        LinkQuality {
            srtt_us: None,
            rttvar_us: INITIAL_RTT_US as f64 / 2.0,
            rtt_peak_us: 0.0,
            ack_holding_peak_us: 0.0,
            jitter_us: 0.0,
            last_rtt_us: None,
            rtt_max_us: 0,
            rtt_min_us: u64::MAX,
            // 1 µs .. 100 s, 3 significant digits: fixed size, allocated once per path.
            rtt_hist: Histogram::new_with_bounds(1, 100_000_000, 3).expect("static histogram bounds are valid"),
            buckets: Box::new([Bucket::default(); WINDOW_BUCKETS]),
            nominated_us: now_us,
            usable_since_us: Some(now_us),
            usable_total_us: 0,
            capacity_estimate_mbps: None,
        }
    }

    /// A round-trip-time sample (RFC 6298 smoothing; RFC 3550 jitter over successive samples).
    pub fn record_rtt(&mut self, rtt_us: u64) {
        let rtt = rtt_us.max(1);
        match self.srtt_us {
            None => {
                self.srtt_us = Some(rtt as f64);
                self.rttvar_us = rtt as f64 / 2.0;
            }
            Some(srtt) => {
                self.rttvar_us = 0.75 * self.rttvar_us + 0.25 * (srtt - rtt as f64).abs();
                self.srtt_us = Some(0.875 * srtt + 0.125 * rtt as f64);
            }
        }
        if let Some(last) = self.last_rtt_us {
            let d = (rtt as f64 - last as f64).abs();
            self.jitter_us += (d - self.jitter_us) / 16.0;
        }
        self.last_rtt_us = Some(rtt);
        if rtt as f64 >= self.rtt_peak_us {
            self.rtt_peak_us = rtt as f64;
        } else {
            self.rtt_peak_us -= (self.rtt_peak_us - rtt as f64) / 32.0;
        }
        self.rtt_max_us = self.rtt_max_us.max(rtt);
        self.rtt_min_us = self.rtt_min_us.min(rtt);
        let _ = self.rtt_hist.record(rtt.min(100_000_000));
    }

    /// An ack arrived that the peer had held for `us` after the packet it names (its ack
    /// coalescing plus its own scheduling): a recent peak, decaying like the RTT's.
    pub fn record_ack_holding(&mut self, us: u64) {
        let us = us.min(1_000_000) as f64;
        if us >= self.ack_holding_peak_us {
            self.ack_holding_peak_us = us;
        } else {
            self.ack_holding_peak_us -= (self.ack_holding_peak_us - us) / 32.0;
        }
    }

    pub fn ack_holding_peak_us(&self) -> u64 {
        self.ack_holding_peak_us as u64
    }

    /// Smoothed RTT, or the initial guess before any sample.
    pub fn srtt_us(&self) -> u64 {
        self.srtt_us.map_or(INITIAL_RTT_US, |s| s as u64)
    }

    pub fn rttvar_us(&self) -> u64 {
        self.rttvar_us as u64
    }

    /// Recent peak RTT (0 before any sample).
    pub fn rtt_peak_us(&self) -> u64 {
        self.rtt_peak_us as u64
    }

    pub fn has_rtt(&self) -> bool {
        self.srtt_us.is_some()
    }

    fn bucket_mut(&mut self, now_us: u64) -> &mut Bucket {
        // Epochs are numbered from 1 so that a zeroed bucket is recognisably empty.
        let epoch = now_us / BUCKET_US + 1;
        let slot = &mut self.buckets[(epoch % WINDOW_BUCKETS as u64) as usize];
        if slot.epoch != epoch {
            *slot = Bucket { epoch, ..Bucket::default() };
        }
        slot
    }

    /// `known` packets' fate became known now, `delivered` of them arrived (carrying `delivered_bytes`).
    pub fn record_outcomes(&mut self, now_us: u64, known: u64, delivered: u64, delivered_bytes: u64) {
        let b = self.bucket_mut(now_us);
        b.outcomes += known;
        b.delivered += delivered.min(known);
        b.delivered_bytes += delivered_bytes;
    }

    /// A packet received on this path passed (or failed) authentication / parsing.
    pub fn record_rx(&mut self, now_us: u64, valid: bool) {
        let b = self.bucket_mut(now_us);
        if valid {
            b.rx_valid += 1;
        } else {
            b.rx_errors += 1;
        }
    }

    /// The path became usable or unusable (for availability).
    pub fn set_usable(&mut self, now_us: u64, usable: bool) {
        match (self.usable_since_us, usable) {
            (None, true) => self.usable_since_us = Some(now_us),
            (Some(since), false) => {
                self.usable_total_us += now_us.saturating_sub(since);
                self.usable_since_us = None;
            }
            _ => {}
        }
    }

    fn window(&self, now_us: u64, buckets: usize) -> impl Iterator<Item = &Bucket> {
        let newest = now_us / BUCKET_US + 1;
        let oldest = newest.saturating_sub(buckets.clamp(1, WINDOW_BUCKETS) as u64 - 1).max(1);
        self.buckets.iter().filter(move |b| b.epoch >= oldest && b.epoch <= newest)
    }

    /// (lost, known) over the last `buckets` buckets.
    pub fn loss_counts(&self, now_us: u64, buckets: usize) -> (u64, u64) {
        let (mut known, mut delivered) = (0, 0);
        for b in self.window(now_us, buckets) {
            known += b.outcomes;
            delivered += b.delivered;
        }
        (known - delivered.min(known), known)
    }

    /// Loss ratio over the last `buckets` buckets (0 when nothing is known).
    pub fn loss_ratio(&self, now_us: u64, buckets: usize) -> f64 {
        let (lost, known) = self.loss_counts(now_us, buckets);
        if known == 0 { 0.0 } else { lost as f64 / known as f64 }
    }

    pub fn error_ratio(&self, now_us: u64, buckets: usize) -> f64 {
        let (mut valid, mut errors) = (0, 0);
        for b in self.window(now_us, buckets) {
            valid += b.rx_valid;
            errors += b.rx_errors;
        }
        if valid + errors == 0 { 0.0 } else { errors as f64 / (valid + errors) as f64 }
    }

    /// (mean, max, variance) of delivered throughput in Mbit/s over buckets that carried traffic.
    pub fn throughput_mbps(&self, now_us: u64, buckets: usize) -> (f64, f64, f64) {
        let current = now_us / BUCKET_US + 1;
        let samples: Vec<f64> = self
            .window(now_us, buckets)
            .filter(|b| b.epoch != current && b.delivered_bytes > 0)
            .map(|b| b.delivered_bytes as f64 * 8.0 / BUCKET_US as f64)
            .collect();
        if samples.is_empty() {
            return (0.0, 0.0, 0.0);
        }
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let max = samples.iter().cloned().fold(0.0, f64::max);
        let var = samples.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / n;
        (mean, max, var)
    }

    /// Update the capacity estimate from the last complete bucket: if the path delivered traffic while
    /// its RTT was inflated by queueing, what it delivered is what it can carry. (Loss alone is not
    /// taken as saturation: a lossy radio link is not a full one.)
    pub fn update_capacity_estimate(&mut self, now_us: u64) {
        let previous = (now_us / BUCKET_US).saturating_sub(1) + 1;
        let Some(b) = self.buckets.iter().find(|b| b.epoch == previous && b.delivered_bytes > 0) else {
            return;
        };
        let mbps = b.delivered_bytes as f64 * 8.0 / BUCKET_US as f64;
        let queueing = match (self.srtt_us, self.rtt_min_us) {
            (Some(srtt), min) if min != u64::MAX => {
                srtt - min as f64 > SATURATION_QUEUEING_US.max(4.0 * self.jitter_us)
            }
            _ => false,
        };
        if queueing {
            self.capacity_estimate_mbps = Some(match self.capacity_estimate_mbps {
                None => mbps,
                Some(old) => 0.8 * old + 0.2 * mbps,
            });
        }
    }

    pub fn capacity_estimate_mbps(&self) -> Option<f64> {
        self.capacity_estimate_mbps
    }

    pub fn availability(&self, now_us: u64) -> f64 {
        let total = now_us.saturating_sub(self.nominated_us);
        if total == 0 {
            return 1.0;
        }
        let usable = self.usable_total_us + self.usable_since_us.map_or(0, |s| now_us.saturating_sub(s));
        (usable as f64 / total as f64).min(1.0)
    }

    pub fn pdv_us(&self) -> f64 {
        self.jitter_us
    }

    /// Quality score in (0, 1] per §5's shape (exp(-4·x/max) per metric, weighted), using one-way latency
    /// (RTT / 2, what zerotier-one compares with `lat_max`). Also returns whether any metric exceeds its
    /// maximum (the link should be avoided).
    pub fn score(&self, now_us: u64, spec: &LinkQualitySpec) -> (f64, bool) {
        let one_way_ms = self.srtt_us() as f64 / 2000.0;
        let pdv_ms = self.jitter_us / 1000.0;
        let (lost, known) = self.loss_counts(now_us, DECISION_WINDOW_BUCKETS);
        let plr = if known == 0 { 0.0 } else { lost as f64 / known as f64 };
        let per = self.error_ratio(now_us, DECISION_WINDOW_BUCKETS);
        let term = |x: f64, max: f64| if max > 0.0 { (-4.0 * x / max).exp() } else { 1.0 };
        let w = &spec.weights;
        let score = w.lat * term(one_way_ms, spec.lat_max_ms)
            + w.pdv * term(pdv_ms, spec.pdv_max_ms)
            + w.plr * term(plr, spec.plr_max)
            + w.per * term(per, spec.per_max);
        // A couple of losses in a small sample is not evidence; require at least 3 lost packets.
        let lossy = lost >= 3 && plr > spec.plr_max;
        let avoid =
            (self.has_rtt() && one_way_ms > spec.lat_max_ms) || pdv_ms > spec.pdv_max_ms || lossy || per > spec.per_max;
        (score.max(1e-9), avoid)
    }

    pub fn report(&self, now_us: u64) -> QualityReport {
        let ms = |us: f64| us / 1000.0;
        let (thr_mean, thr_max, thr_var) = self.throughput_mbps(now_us, WINDOW_BUCKETS);
        let (lost, known) = self.loss_counts(now_us, WINDOW_BUCKETS);
        QualityReport {
            latency_ms: if self.has_rtt() { ms(self.srtt_us() as f64) } else { 0.0 },
            latency_max_ms: ms(self.rtt_max_us as f64),
            latency_min_ms: if self.rtt_min_us == u64::MAX { 0.0 } else { ms(self.rtt_min_us as f64) },
            latency_p99_ms: ms(self.rtt_hist.value_at_quantile(0.99) as f64),
            rtt_samples: self.rtt_hist.len(),
            pdv_ms: ms(self.jitter_us),
            loss: if known == 0 { 0.0 } else { lost as f64 / known as f64 },
            loss_samples: known,
            error_ratio: self.error_ratio(now_us, WINDOW_BUCKETS),
            throughput_mean_mbps: thr_mean,
            throughput_max_mbps: thr_max,
            throughput_variance: thr_var,
            capacity_estimate_mbps: self.capacity_estimate_mbps,
            availability: self.availability(now_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_smoothing_tracks_samples() {
        let mut q = LinkQuality::new(0);
        assert_eq!(q.srtt_us(), INITIAL_RTT_US);
        for i in 0..100 {
            q.record_rtt(20_000 + (i % 3) * 1000);
        }
        assert!((q.srtt_us() as i64 - 21_000).abs() < 1_000, "{}", q.srtt_us());
        let r = q.report(1_000_000);
        assert!(r.latency_max_ms >= 22.0 && r.latency_min_ms <= 20.0);
        assert!(r.pdv_ms > 0.5 && r.pdv_ms < 2.0, "{}", r.pdv_ms);
    }

    #[test]
    fn loss_window_counts_only_recent_buckets() {
        let mut q = LinkQuality::new(0);
        q.record_outcomes(50_000, 100, 50, 0);
        q.record_outcomes(2_050_000, 100, 90, 0);
        assert!((q.loss_ratio(2_050_000, 10) - 0.10).abs() < 1e-9);
        assert!((q.loss_ratio(2_050_000, 100) - 0.30).abs() < 1e-9);
        q.record_rx(2_050_000, false);
        q.record_rx(2_050_000, true);
        assert!((q.error_ratio(2_050_000, 10) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn link_quality_combines_its_paths() {
        let a = QualityReport {
            latency_ms: 10.0,
            rtt_samples: 30,
            loss: 0.1,
            loss_samples: 100,
            throughput_mean_mbps: 5.0,
            availability: 0.5,
            ..Default::default()
        };
        let b = QualityReport {
            latency_ms: 20.0,
            rtt_samples: 10,
            loss: 0.0,
            loss_samples: 300,
            throughput_mean_mbps: 7.0,
            availability: 1.0,
            ..Default::default()
        };
        let l = QualityReport::combine(&[a, b]);
        assert!((l.latency_ms - 12.5).abs() < 1e-9);
        assert!((l.loss - 0.025).abs() < 1e-9);
        assert_eq!((l.throughput_mean_mbps, l.availability, l.loss_samples), (12.0, 1.0, 400));
        assert_eq!(QualityReport::combine(&[]), QualityReport::default());
    }

    #[test]
    fn availability_counts_usable_time() {
        let mut q = LinkQuality::new(0);
        q.set_usable(1_000_000, false);
        q.set_usable(3_000_000, true);
        assert!((q.availability(4_000_000) - 0.5).abs() < 1e-9);
    }
}
