//! Nominated paths and the links they run over (bonding spec §1, §4.4).
//!
//! A link is a local interface (by name); a path is (local link, remote endpoint). Several paths may share
//! a link. Each path carries its own measurements, liveness detector and the link's configured options.

use crate::config::{LinkMode, LinkSettings};
use crate::failover::Liveness;
use crate::measure::{ReceiveLog, SentLog};
use crate::quality::LinkQuality;

/// Index of a path in its bond (< 64, like zerotier-one's nominated-path table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathId(pub u8);

/// Most paths a bond nominates (`ZT_MAX_PEER_NETWORK_PATHS`).
pub const MAX_PATHS: usize = 64;

/// Everything the bond knows about one path.
pub struct PathState {
    pub id: PathId,
    /// Local interface name.
    pub link: String,
    /// Remote endpoint, for reports only.
    pub remote: String,
    pub is_ipv6: bool,
    /// The user's settings for this link, or an implicit primary link (§2).
    pub settings: LinkSettings,
    pub quality: LinkQuality,
    pub liveness: Liveness,
    pub sent: SentLog,
    pub received: ReceiveLog,
    /// Quality score from the last estimation, and whether the path is avoided (over a `linkQuality` max).
    pub score: f64,
    pub avoided: bool,
    /// Avoidance hold-down: not before this time may the path be tried again, and the current hold.
    pub avoid_until_us: u64,
    pub avoid_hold_us: u64,
    /// Re-admitted after avoidance, carrying a reduced share until the next estimation confirms it.
    pub on_trial: bool,
    pub nominated_us: u64,
    /// Data packets the local bond chose this path for.
    pub packets_sent: u64,
}

impl PathState {
    pub fn new(id: PathId, link: &str, remote: &str, is_ipv6: bool, settings: LinkSettings, now_us: u64) -> Self {
        PathState {
            id,
            link: link.to_string(),
            remote: remote.to_string(),
            is_ipv6,
            settings,
            quality: LinkQuality::new(now_us),
            liveness: Liveness::new(now_us),
            sent: SentLog::new(),
            received: ReceiveLog::default(),
            score: 1.0,
            avoided: false,
            avoid_until_us: 0,
            avoid_hold_us: 0,
            on_trial: false,
            nominated_us: now_us,
            packets_sent: 0,
        }
    }

    pub fn is_primary(&self) -> bool {
        self.settings.mode == LinkMode::Primary
    }

    /// Usable: alive (or within downDelay), enabled, and its address family allowed on the link.
    pub fn usable(&self) -> bool {
        self.liveness.usable() && self.settings.enabled && self.settings.ipv_pref.allows(self.is_ipv6)
    }
}
