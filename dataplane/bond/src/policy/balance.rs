//! Bonded set and allocation for broadcast, balance-rr, balance-xor and balance-aware (bonding spec §4.5,
//! §5, §6.3–§6.6).
//!
//! Allocation (balance-aware): configured `alloc` shares if any link has one; else configured `capacity`
//! scaled by measured quality (§5's exp(-4·x/max) score, relative to the best path); else measured
//! capacity (throughput delivered while saturated, see [`crate::quality`]) scaled by quality once any path
//! has been seen saturated; else quality alone — never zerotier-one's 0/0 when no capacity is configured
//! (§11.6). Paths exceeding a
//! `linkQuality` maximum are avoided (no share) unless every path is.

use crate::path::{PathId, PathState};

/// Share factor of a path re-admitted after avoidance, until it proves itself.
pub const TRIAL_FACTOR: f64 = 0.1;

/// Paths that carry traffic under balance policies: usable primaries, or usable spares when no primary is
/// usable (§4.5, warm spares); avoided paths only if every candidate is avoided.
pub fn bonded_set(paths: &[PathState], respect_avoidance: bool) -> Vec<PathId> {
    let usable: Vec<&PathState> = paths.iter().filter(|p| p.usable()).collect();
    let primaries: Vec<&PathState> = usable.iter().copied().filter(|p| p.is_primary()).collect();
    let pool = if primaries.is_empty() { usable } else { primaries };
    if respect_avoidance {
        let clean: Vec<PathId> = pool.iter().filter(|p| !p.avoided).map(|p| p.id).collect();
        if !clean.is_empty() {
            return clean;
        }
    }
    pool.iter().map(|p| p.id).collect()
}

/// Target weights for `bonded` paths (balance-aware).
pub fn allocation_weights(paths: &[PathState], bonded: &[PathId], now_us: u64) -> Vec<f64> {
    let members: Vec<&PathState> = bonded.iter().filter_map(|id| paths.iter().find(|p| p.id == *id)).collect();
    let any_alloc = members.iter().any(|p| p.settings.alloc.is_some());
    let any_capacity = members.iter().any(|p| p.settings.capacity.is_some_and(|c| c > 0));
    let best_score = members.iter().map(|p| p.score).fold(0.0, f64::max).max(1e-9);
    let max_measured = members.iter().filter_map(|p| p.quality.capacity_estimate_mbps()).reduce(f64::max);
    members
        .iter()
        .map(|p| {
            let base = if any_alloc {
                p.settings.alloc.unwrap_or(0.0)
            } else if any_capacity {
                p.settings.capacity.unwrap_or(0) as f64 * (p.score / best_score)
            } else if let Some(known) = max_measured {
                // A path not yet seen saturated can carry at least what it carries now; assume it is as
                // large as the largest measured one or half again its current load, whichever is more.
                let own = p.quality.capacity_estimate_mbps().unwrap_or_else(|| {
                    let (mean, _, _) = p.quality.throughput_mbps(now_us, crate::quality::DECISION_WINDOW_BUCKETS);
                    known.max(1.5 * mean)
                });
                own * (p.score / best_score)
            } else {
                p.score / best_score
            };
            if p.on_trial { base * TRIAL_FACTOR } else { base }
        })
        .collect()
}
