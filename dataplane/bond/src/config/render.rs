//! Normalised JSON form of the bonding settings (for `ztplanectl policy show` and round-trips).
//!
//! Output is a valid `local.conf` document using only today's key names with every setting that applies
//! to the policy explicit, so
//! `parse_local_conf(&config.to_json().to_string())` yields the same [`BondingConfig`]. (2020-style
//! standard-policy overrides are emitted where they were read, `settings["<standard>"]`, which re-parses
//! with the same warning.)

use serde_json::{Map, Value, json};

use super::settings::*;

impl LinkSettings {
    /// The link object (without its name, which is the key in `links`).
    pub fn to_json(&self) -> Value {
        let mut link = Map::new();
        link.insert("mode".into(), json!(self.mode.name()));
        if let Some(target) = &self.failover_to {
            link.insert("failoverTo".into(), json!(target));
        }
        link.insert("ipvPref".into(), json!(self.ipv_pref.code()));
        if let Some(capacity) = self.capacity {
            link.insert("capacity".into(), json!(capacity));
        }
        if let Some(alloc) = self.alloc {
            link.insert("alloc".into(), json!(alloc));
        }
        link.insert("enabled".into(), json!(self.enabled));
        if let Some(mtu) = self.mtu {
            link.insert("mtu".into(), json!(mtu));
        }
        Value::Object(link)
    }
}

impl LinkQualitySpec {
    /// The 8-key `linkQuality` object (all keys, as zerotier-one requires).
    pub fn to_json(&self) -> Value {
        json!({
            "lat_max": self.lat_max_ms,
            "pdv_max": self.pdv_max_ms,
            "plr_max": self.plr_max,
            "per_max": self.per_max,
            "lat_weight": self.weights.lat,
            "pdv_weight": self.weights.pdv,
            "plr_weight": self.weights.plr,
            "per_weight": self.weights.per,
        })
    }
}

impl PolicySettings {
    /// The policy object as it would appear under `settings.policies.<name>`, every setting explicit.
    pub fn to_json(&self) -> Value {
        let mut links = Map::new();
        for link in &self.links {
            links.insert(link.name.clone(), link.to_json());
        }
        let mut policy = Map::new();
        policy.insert("basePolicy".into(), json!(self.base.name()));
        policy.insert("failoverInterval".into(), json!(self.failover_interval_ms));
        policy.insert("upDelay".into(), json!(self.up_delay_ms));
        policy.insert("downDelay".into(), json!(self.down_delay_ms));
        // Settings used by one base policy only are shown for that policy, or elsewhere when they differ
        // from the default (so the output re-parses to the same value and the same warnings).
        let defaults = PolicySettings::standard(self.base);
        if self.base == Policy::ActiveBackup || self.link_select != defaults.link_select {
            policy.insert("activeReselect".into(), json!(self.link_select.name()));
        }
        if self.base == Policy::BalanceRr || self.packets_per_link != defaults.packets_per_link {
            policy.insert("packetsPerLink".into(), json!(self.packets_per_link));
        }
        if self.base == Policy::BalanceAware || self.balance != defaults.balance {
            policy.insert("balancePolicy".into(), json!(self.balance.name()));
        }
        policy.insert("linkQuality".into(), self.quality.to_json());
        policy.insert("links".into(), Value::Object(links));
        Value::Object(policy)
    }
}

impl BondingConfig {
    /// A normalised `local.conf` holding only the bonding settings.
    pub fn to_json(&self) -> Value {
        let mut settings = Map::new();
        if let Some(default) = &self.default_policy {
            settings.insert("defaultBondingPolicy".into(), json!(default.name()));
        }
        if !self.policies.is_empty() {
            let policies: Map<String, Value> =
                self.policies.iter().map(|(name, p)| (name.clone(), p.to_json())).collect();
            settings.insert("policies".into(), Value::Object(policies));
        }
        if !self.peer_specific.is_empty() {
            let peers: Map<String, Value> =
                self.peer_specific.iter().map(|(peer, r)| (format!("{peer:010x}"), json!(r.name()))).collect();
            settings.insert("peerSpecificBonds".into(), Value::Object(peers));
        }
        for (standard, p) in &self.standard_overrides {
            settings.insert(standard.name().into(), p.to_json());
        }
        json!({ "settings": settings })
    }
}
