//! A simulated link: one-way delay with jitter (order-preserving, like queueing jitter), random loss,
//! serialization at a capacity with a bounded queue, and up/down.

use crate::rng::SeededRng;
use crate::sim::scenario::{LinkChange, LinkSpec};

/// Longest queueing delay before tail drop.
pub const QUEUE_LIMIT_US: u64 = 50_000;

#[derive(Clone, Debug, Default)]
struct Direction {
    next_free_us: u64,
    last_arrival_us: u64,
}

#[derive(Clone, Debug)]
pub struct SimLink {
    pub name: String,
    pub latency_us: f64,
    pub jitter_us: f64,
    pub loss: f64,
    pub capacity_mbps: Option<f64>,
    pub up: bool,
    dirs: [Direction; 2],
}

impl SimLink {
    pub fn new(spec: &LinkSpec) -> Self {
        SimLink {
            name: spec.name.clone(),
            latency_us: spec.latency_ms * 1000.0,
            jitter_us: spec.jitter_ms * 1000.0,
            loss: spec.loss,
            capacity_mbps: spec.capacity_mbps,
            up: spec.up,
            dirs: [Direction::default(), Direction::default()],
        }
    }

    pub fn apply(&mut self, change: &LinkChange) {
        if let Some(v) = change.up {
            self.up = v;
        }
        if let Some(v) = change.latency_ms {
            self.latency_us = v * 1000.0;
        }
        if let Some(v) = change.jitter_ms {
            self.jitter_us = v * 1000.0;
        }
        if let Some(v) = change.loss {
            self.loss = v;
        }
        if let Some(v) = change.capacity_mbps {
            self.capacity_mbps = Some(v);
        }
    }

    /// Send `bytes` in direction `dir` (0 = A→B, 1 = B→A) at `now_us`: the arrival time, or `None` if lost.
    pub fn transmit(&mut self, dir: usize, bytes: u32, now_us: u64, rng: &mut SeededRng) -> Option<u64> {
        if !self.up {
            return None;
        }
        let lost = rng.chance(self.loss);
        let jitter = if self.jitter_us > 0.0 { (rng.next_f64() * 2.0 - 1.0) * self.jitter_us } else { 0.0 };
        let d = &mut self.dirs[dir & 1];
        let departs = match self.capacity_mbps {
            Some(mbps) => {
                let start = d.next_free_us.max(now_us);
                if start - now_us > QUEUE_LIMIT_US {
                    return None;
                }
                let done = start + (bytes as f64 * 8.0 / mbps).ceil() as u64;
                d.next_free_us = done;
                done
            }
            None => now_us,
        };
        if lost {
            return None;
        }
        let arrival = (departs as f64 + (self.latency_us + jitter).max(0.0)) as u64;
        let arrival = arrival.max(d.last_arrival_us);
        d.last_arrival_us = arrival;
        Some(arrival)
    }
}
