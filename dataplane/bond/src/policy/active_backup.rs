//! active-backup (bonding spec §6.2).
//!
//! Differences from zerotier-one 1.14.1, on purpose (§11.12): the failover queue is ordered (the failed
//! link's `failoverTo` first, then primary links, then by measured quality) instead of insertion order, and
//! `always` returns to a primary link whenever one is usable, not only if it happens to head the queue.

use crate::config::LinkSelectMethod;
use crate::path::{PathId, PathState};

/// Hold-down between optimize-driven changes (`ZT_BOND_OPTIMIZE_INTERVAL`, §3).
pub const OPTIMIZE_HOLD_DOWN_US: u64 = 15_000_000;
/// Relative score gain required by `better` and `optimize` (avoids flapping on measurement noise).
pub const BETTER_MARGIN: f64 = 0.005;
pub const OPTIMIZE_MARGIN: f64 = 0.01;

/// Why the active path changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeReason {
    Initial,
    Failure,
    /// The reselection method (always / better / optimize) preferred another path.
    Reselect,
    /// `zerotier-cli bond <peer> rotate`.
    Rotate,
}

impl ChangeReason {
    pub fn name(self) -> &'static str {
        match self {
            ChangeReason::Initial => "initial",
            ChangeReason::Failure => "failure",
            ChangeReason::Reselect => "reselect",
            ChangeReason::Rotate => "rotate",
        }
    }
}

/// The failover order after `failed` (if any): the failed link's `failoverTo` link, then primaries, then
/// best score, then nomination order.
pub fn failover_order<'a>(paths: &'a [PathState], failed: Option<&PathState>) -> Vec<&'a PathState> {
    let target = failed.and_then(|f| f.settings.failover_to.clone());
    let mut candidates: Vec<&PathState> =
        paths.iter().filter(|p| p.usable() && Some(p.id) != failed.map(|f| f.id)).collect();
    candidates.sort_by(|a, b| {
        let a_target = target.as_deref() == Some(a.link.as_str());
        let b_target = target.as_deref() == Some(b.link.as_str());
        b_target
            .cmp(&a_target)
            .then(b.is_primary().cmp(&a.is_primary()))
            .then(b.score.total_cmp(&a.score))
            .then(a.id.cmp(&b.id))
    });
    candidates
}

/// Decide the active path. Returns `Some((new, reason))` when it should change.
pub fn reselect(
    paths: &[PathState],
    active: Option<PathId>,
    method: LinkSelectMethod,
    last_change_us: u64,
    now_us: u64,
) -> Option<(PathId, ChangeReason)> {
    let current = active.and_then(|a| paths.iter().find(|p| p.id == a));
    let Some(current) = current else {
        return failover_order(paths, None).first().map(|p| (p.id, ChangeReason::Initial));
    };
    if !current.usable() {
        return failover_order(paths, Some(current)).first().map(|p| (p.id, ChangeReason::Failure));
    }
    let best_primary = paths
        .iter()
        .filter(|p| p.usable() && p.is_primary() && p.id != current.id)
        .max_by(|a, b| a.score.total_cmp(&b.score).then(b.id.cmp(&a.id)));
    match method {
        LinkSelectMethod::Failure => None,
        LinkSelectMethod::Always => {
            if current.is_primary() {
                None
            } else {
                best_primary.map(|p| (p.id, ChangeReason::Reselect))
            }
        }
        LinkSelectMethod::Better => {
            if current.is_primary() {
                return None;
            }
            best_primary
                .filter(|p| p.score > current.score * (1.0 + BETTER_MARGIN))
                .map(|p| (p.id, ChangeReason::Reselect))
        }
        LinkSelectMethod::Optimize => {
            if now_us < last_change_us + OPTIMIZE_HOLD_DOWN_US {
                return None;
            }
            paths
                .iter()
                .filter(|p| p.usable() && p.id != current.id && p.quality.has_rtt())
                .max_by(|a, b| a.score.total_cmp(&b.score).then(b.id.cmp(&a.id)))
                .filter(|p| p.score > current.score * (1.0 + OPTIMIZE_MARGIN))
                .map(|p| (p.id, ChangeReason::Reselect))
        }
    }
}
