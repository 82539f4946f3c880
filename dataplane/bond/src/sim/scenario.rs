//! Simulator scenario: links, timed link changes and traffic (issue item 6). JSON; extra keys are ignored.

use serde::Deserialize;

use crate::error::BondError;

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Scenario {
    pub duration_ms: u64,
    #[serde(default)]
    pub seed: u64,
    pub links: Vec<LinkSpec>,
    #[serde(default)]
    pub events: Vec<LinkEvent>,
    pub traffic: Traffic,
    /// 10-hex-digit ZeroTier address of the remote peer (selects a `peerSpecificBonds` policy).
    #[serde(default)]
    pub peer: Option<String>,
    /// Whether the remote end is a ztplane node (path acks) or behaves like zerotier-one (QoS only).
    #[serde(default = "default_true")]
    pub peer_acks: bool,
}

fn default_true() -> bool {
    true
}

/// One link, identical in both directions. `latency_ms` is one-way.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct LinkSpec {
    pub name: String,
    pub latency_ms: f64,
    #[serde(default)]
    pub jitter_ms: f64,
    #[serde(default)]
    pub loss: f64,
    /// Serialization rate; absent = unlimited.
    #[serde(default)]
    pub capacity_mbps: Option<f64>,
    #[serde(default = "default_true")]
    pub up: bool,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct LinkEvent {
    pub at_ms: u64,
    pub link: String,
    pub set: LinkChange,
}

/// Link properties an event changes (absent = unchanged).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct LinkChange {
    pub up: Option<bool>,
    pub latency_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub loss: Option<f64>,
    pub capacity_mbps: Option<f64>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Traffic {
    #[serde(default = "one")]
    pub flows: u32,
    pub packets_per_second: f64,
    #[serde(default = "default_packet_bytes")]
    pub packet_bytes: u32,
}

fn one() -> u32 {
    1
}

fn default_packet_bytes() -> u32 {
    1400
}

/// Longest scenario accepted (virtual time).
pub const MAX_DURATION_MS: u64 = 3_600_000;
/// Most packets a scenario may generate (keeps a run bounded).
pub const MAX_PACKETS: f64 = 50_000_000.0;

fn bad(path: impl Into<String>, reason: impl Into<String>) -> BondError {
    BondError::Scenario { path: path.into(), reason: reason.into() }
}

impl Scenario {
    /// Parse and validate a scenario.
    pub fn from_json(text: &str) -> Result<Scenario, BondError> {
        let scenario: Scenario = serde_json::from_str(text)
            .map_err(|e| bad(format!("(line {}, column {})", e.line(), e.column()), e.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    pub fn validate(&self) -> Result<(), BondError> {
        if self.duration_ms == 0 || self.duration_ms > MAX_DURATION_MS {
            return Err(bad("duration_ms", format!("must be in 1..={MAX_DURATION_MS}")));
        }
        if self.links.is_empty() || self.links.len() > crate::path::MAX_PATHS {
            return Err(bad("links", format!("must list 1..={} links", crate::path::MAX_PATHS)));
        }
        for (i, l) in self.links.iter().enumerate() {
            let at = |k: &str| format!("links[{i}].{k}");
            if l.name.is_empty() {
                return Err(bad(at("name"), "must not be empty"));
            }
            if self.links[..i].iter().any(|o| o.name == l.name) {
                return Err(bad(at("name"), format!("duplicate link name {:?}", l.name)));
            }
            check_link_values(&at, Some(l.latency_ms), Some(l.jitter_ms), Some(l.loss), l.capacity_mbps)?;
        }
        for (i, e) in self.events.iter().enumerate() {
            let at = |k: &str| format!("events[{i}].{k}");
            if !self.links.iter().any(|l| l.name == e.link) {
                return Err(bad(at("link"), format!("no link named {:?}", e.link)));
            }
            if e.at_ms > self.duration_ms {
                return Err(bad(at("at_ms"), "is after the end of the scenario"));
            }
            let s = &e.set;
            check_link_values(&|k| at(&format!("set.{k}")), s.latency_ms, s.jitter_ms, s.loss, s.capacity_mbps)?;
        }
        let t = &self.traffic;
        if t.flows == 0 || t.flows > 65_536 {
            return Err(bad("traffic.flows", "must be in 1..=65536"));
        }
        if !(t.packets_per_second.is_finite() && t.packets_per_second > 0.0) {
            return Err(bad("traffic.packets_per_second", "must be a positive number"));
        }
        if t.packets_per_second * self.duration_ms as f64 / 1000.0 > MAX_PACKETS {
            return Err(bad(
                "traffic.packets_per_second",
                format!("the run would send more than {MAX_PACKETS} packets"),
            ));
        }
        if !(64..=10_000).contains(&t.packet_bytes) {
            return Err(bad("traffic.packet_bytes", "must be in 64..=10000"));
        }
        if let Some(peer) = &self.peer {
            parse_peer(peer).ok_or_else(|| bad("peer", "must be a 10-hex-digit ZeroTier address"))?;
        }
        Ok(())
    }

    /// The peer's 40-bit address, if the scenario names one.
    pub fn peer_address(&self) -> Option<u64> {
        self.peer.as_deref().and_then(parse_peer)
    }
}

fn parse_peer(s: &str) -> Option<u64> {
    (s.len() == 10 && s.chars().all(|c| c.is_ascii_hexdigit())).then(|| u64::from_str_radix(s, 16).ok()).flatten()
}

fn check_link_values(
    at: &dyn Fn(&str) -> String,
    latency: Option<f64>,
    jitter: Option<f64>,
    loss: Option<f64>,
    capacity: Option<f64>,
) -> Result<(), BondError> {
    for (key, v) in [("latency_ms", latency), ("jitter_ms", jitter)] {
        if let Some(v) = v
            && !(v.is_finite() && (0.0..=60_000.0).contains(&v))
        {
            return Err(bad(at(key), "must be a number of milliseconds in 0..=60000"));
        }
    }
    if let Some(v) = loss
        && !(v.is_finite() && (0.0..=1.0).contains(&v))
    {
        return Err(bad(at("loss"), "must be a ratio in 0..=1"));
    }
    if let Some(v) = capacity
        && !(v.is_finite() && v > 0.0)
    {
        return Err(bad(at("capacity_mbps"), "must be a positive number"));
    }
    Ok(())
}
