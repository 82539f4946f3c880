//! `local.conf` → [`BondingConfig`]: the bonding keys validated strictly, everything else accepted.
//!
//! Spec: `shared/spec/zerotier-bonding.md` §2 (schema), §3 (ranges/defaults), §10 (2020 keys), §11.
//! Where zerotier-one 1.14.1 silently ignores or "fixes up" a bad value (unknown key, wrong type, out of
//! range, weights not summing to 1, a dangling `failoverTo`), we return a [`ConfigError`] naming the JSON
//! path. 2020-era keys (MULTIPATH.md) are accepted: mapped to today's setting where one exists, otherwise
//! ignored, each with a [`ConfigWarning`] naming the current key (or saying the option no longer exists).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::{ConfigError, ConfigErrorKind as Kind};
use super::json;
use super::path::child;
use super::settings::*;
use super::settings::{MAX_PEER_SPECIFIC_BONDS, MAX_POLICIES};

/// Parse `local.conf` text. Duplicate keys in any object are rejected (with their path).
pub fn parse_local_conf(text: &str) -> Result<(BondingConfig, Vec<ConfigWarning>), ConfigError> {
    let doc = json::parse_strict(text)?;
    match from_json(&doc) {
        Ok((config, mut warnings)) => {
            if !warnings.is_empty() {
                let positions = json::key_positions(text);
                for w in &mut warnings {
                    w.position = positions.get(&w.path).copied();
                }
            }
            Ok((config, warnings))
        }
        Err(mut e) => {
            e.position = json::key_positions(text).get(&e.path).copied();
            Err(e)
        }
    }
}

/// Interpret an already-parsed `local.conf` document. (A `Value` cannot hold duplicate keys, so that
/// check only happens in [`parse_local_conf`].)
pub fn from_json(doc: &Value) -> Result<(BondingConfig, Vec<ConfigWarning>), ConfigError> {
    let mut parser = Parser::default();
    let config = parser.document(doc)?;
    Ok((config, parser.warnings))
}

/// `settings` keys zerotier-one 1.14.1 reads that have nothing to do with bonding: accepted as-is.
const KNOWN_NON_BONDING_SETTINGS: &[&str] = &[
    "primaryPort",
    "secondaryPort",
    "tertiaryPort",
    "allowSecondaryPort",
    "portMappingEnabled",
    "allowTcpFallbackRelay",
    "forceTcpRelay",
    "tcpFallbackRelay",
    "enableWebServer",
    "softwareUpdate",
    "softwareUpdateChannel",
    "softwareUpdateDist",
    "interfacePrefixBlacklist",
    "allowManagementFrom",
    "bind",
    "multicoreEnabled",
    "concurrency",
    "cpuPinningEnabled",
    "lowBandwidthMode",
    "controllerDbPath",
    "ssoRedirectURL",
    "redis",
    "vault",
];

/// 2020-era policy keys with no counterpart today, and why.
const REMOVED_POLICY_KEYS: &[(&str, &str)] = &[
    ("monitorInterval", "ECHO probes are sent every failoverInterval / 3; set failoverInterval instead"),
    ("pathMonitorStrategy", "monitoring strategies were removed; probing follows failoverInterval"),
    ("linkMonitorStrategy", "monitoring strategies were removed; probing follows failoverInterval"),
    ("monitorStrategy", "monitoring strategies were removed; probing follows failoverInterval"),
    ("rebalanceStrategy", "rebalancing is chosen with balancePolicy (flow-dynamic rebalances, flow-static does not)"),
    (
        "flowRebalanceStrategy",
        "rebalancing is chosen with balancePolicy (flow-dynamic rebalances, flow-static does not)",
    ),
    ("allowFlowHashing", "balance-xor and balance-aware always hash flows"),
    ("allowPathNegotiation", "path negotiation is not implemented (it is inert in zerotier-one 1.14.1)"),
    ("minAcceptableAllocation", "links are avoided by linkQuality maxima instead"),
    ("overflow", "no longer exists"),
];

/// 2020-era per-link keys that moved to the policy (or vanished).
const REMOVED_LINK_KEYS: &[(&str, &str)] = &[
    ("failoverInterval", "set failoverInterval on the policy"),
    ("upDelay", "set upDelay on the policy"),
    ("downDelay", "set downDelay on the policy"),
    ("monitorInterval", "ECHO probes are sent every failoverInterval / 3 of the policy"),
];

#[derive(Default)]
struct Parser {
    warnings: Vec<ConfigWarning>,
}

/// A setting that may be given under a current key and a 2020 alias; both must agree.
struct Slot<T> {
    value: Option<(T, String)>,
}

impl<T: PartialEq + std::fmt::Debug> Slot<T> {
    fn new() -> Self {
        Slot { value: None }
    }

    fn set(&mut self, value: T, path: String) -> Result<(), ConfigError> {
        if let Some((previous, previous_path)) = &self.value {
            if *previous != value {
                return Err(ConfigError::new(
                    Kind::Conflict,
                    path,
                    format!("value {value:?} contradicts {previous:?} given at {previous_path}"),
                ));
            }
            return Ok(());
        }
        self.value = Some((value, path));
        Ok(())
    }

    fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(v, _)| v)
    }
}

/// Link-quality settings collected from `linkQuality`, 2020 `quality`/`qualityWeights` and
/// `maxAcceptable*` before they are combined.
struct QualityParts {
    lat_max: Slot<f64>,
    pdv_max: Slot<f64>,
    plr_max: Slot<f64>,
    per_max: Slot<f64>,
    weights: Slot<QualityWeights>,
}

impl Parser {
    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(ConfigWarning { path: path.into(), message: message.into(), position: None });
    }

    fn document(&mut self, doc: &Value) -> Result<BondingConfig, ConfigError> {
        let root = expect_object("", doc, "local.conf must be a JSON object")?;
        let mut config = BondingConfig::default();
        for (key, value) in root {
            let path = child("", key);
            match key.as_str() {
                "settings" => {
                    let settings = expect_object(&path, value, "settings must be an object")?;
                    config = self.settings(&path, settings)?;
                }
                // Physical-network and per-peer hints are not bonding settings; zerotier-one owns them.
                "physical" | "virtual" => {}
                _ => self.warn(path, format!("unknown top-level key {key:?}; zerotier-one ignores it")),
            }
        }
        Ok(config)
    }

    fn settings(&mut self, path: &str, settings: &Map<String, Value>) -> Result<BondingConfig, ConfigError> {
        let mut config = BondingConfig::default();
        let mut default_name: Option<(String, String)> = None;
        let mut peers: Vec<(String, u64, String)> = Vec::new();

        for (key, value) in settings {
            let key_path = child(path, key);
            match key.as_str() {
                "defaultBondingPolicy" => {
                    let name = expect_str(&key_path, value)?;
                    default_name = Some((name.to_string(), key_path));
                }
                "policies" => {
                    let policies = expect_object(&key_path, value, "policies must be an object (name → policy)")?;
                    expect_at_most(&key_path, policies.len(), MAX_POLICIES, "custom policies")?;
                    for (name, policy) in policies {
                        let policy_path = child(&key_path, name);
                        if name.is_empty() {
                            return Err(ConfigError::new(Kind::OutOfRange, policy_path, "policy name is empty"));
                        }
                        if let Some(standard) = Policy::from_name(name) {
                            return Err(ConfigError::new(
                                Kind::ReservedName,
                                policy_path,
                                format!(
                                    "{name:?} is a standard policy name; give the custom policy another name \
                                     and set \"basePolicy\": \"{standard}\""
                                ),
                            ));
                        }
                        let object = expect_object(&policy_path, policy, "a policy must be an object")?;
                        let settings = self.policy(&policy_path, name, object, None)?;
                        config.policies.insert(name.clone(), settings);
                    }
                }
                "peerSpecificBonds" => {
                    let bonds =
                        expect_object(&key_path, value, "peerSpecificBonds must be an object (address → policy)")?;
                    expect_at_most(&key_path, bonds.len(), MAX_PEER_SPECIFIC_BONDS, "peer-specific bonds")?;
                    for (address, policy) in bonds {
                        let entry_path = child(&key_path, address);
                        let peer = parse_address(&entry_path, address)?;
                        if peers.iter().any(|(_, a, _)| *a == peer) {
                            return Err(ConfigError::new(
                                Kind::DuplicateKey,
                                entry_path,
                                format!("peer {peer:010x} is listed twice (addresses are case-insensitive)"),
                            ));
                        }
                        let name = expect_str(&entry_path, policy)?;
                        peers.push((entry_path, peer, name.to_string()));
                    }
                }
                _ => {
                    if let Some(standard) = Policy::from_name(key).filter(|p| *p != Policy::None) {
                        // 2020 guide: a standard policy tuned by an object placed directly under settings.
                        let object = expect_object(&key_path, value, "a policy must be an object")?;
                        self.warn(
                            key_path.clone(),
                            format!(
                                "2020-style policy object directly under settings (zerotier-one 1.14.1 ignores \
                                 it); ztplane applies it to every bond using {standard}. Prefer a custom policy \
                                 under settings.policies with \"basePolicy\": \"{standard}\""
                            ),
                        );
                        let settings = self.policy(&key_path, key, object, Some(standard))?;
                        config.standard_overrides.insert(standard, settings);
                    } else if key == "multipathMode" {
                        self.warn(
                            key_path,
                            "multipathMode (zerotier-one 1.4) no longer exists and is ignored; use \
                             defaultBondingPolicy",
                        );
                    } else if !KNOWN_NON_BONDING_SETTINGS.contains(&key.as_str()) {
                        self.warn(key_path, format!("unknown setting {key:?}; zerotier-one ignores it"));
                    }
                }
            }
        }

        if let Some((name, name_path)) = default_name {
            config.default_policy = Some(resolve_name(&name_path, &name, &config.policies)?);
        }
        for (entry_path, peer, name) in peers {
            let policy = resolve_name(&entry_path, &name, &config.policies)?;
            config.peer_specific.insert(peer, policy);
        }

        if config.bonding_in_use() {
            for key in ["allowTcpFallbackRelay", "forceTcpRelay"] {
                if settings.get(key) == Some(&Value::Bool(true)) {
                    self.warn(
                        child(path, key),
                        format!("{key} is forced off while bonding is in use (as in zerotier-one)"),
                    );
                }
            }
        }
        Ok(config)
    }

    /// One policy object: a custom policy (`legacy_base` = None) or a 2020 standard-policy override.
    fn policy(
        &mut self,
        path: &str,
        name: &str,
        object: &Map<String, Value>,
        legacy_base: Option<Policy>,
    ) -> Result<PolicySettings, ConfigError> {
        let mut settings = PolicySettings::standard(legacy_base.unwrap_or(Policy::None));
        settings.name = name.to_string();
        let mut base: Option<Policy> = None;
        let mut link_select = Slot::new();
        let mut packets_per_link = Slot::new();
        let mut links_value: Option<(String, &Map<String, Value>)> = None;
        let mut quality = QualityParts {
            lat_max: Slot::new(),
            pdv_max: Slot::new(),
            plr_max: Slot::new(),
            per_max: Slot::new(),
            weights: Slot::new(),
        };
        let mut given = Vec::new();

        for (key, value) in object {
            let key_path = child(path, key);
            given.push(key.as_str());
            match key.as_str() {
                "basePolicy" => {
                    let base_name = expect_str(&key_path, value)?;
                    let parsed = Policy::from_name(base_name).ok_or_else(|| {
                        ConfigError::new(
                            Kind::UnknownPolicy,
                            key_path.clone(),
                            format!(
                                "unknown base policy {base_name:?} (expected one of {})",
                                quoted_list(Policy::ALL.map(Policy::name))
                            ),
                        )
                    })?;
                    if let Some(standard) = legacy_base.filter(|s| *s != parsed) {
                        return Err(ConfigError::new(
                            Kind::Conflict,
                            key_path,
                            format!("settings.{standard} can only tune {standard}, not {parsed}"),
                        ));
                    }
                    if parsed == Policy::None && legacy_base.is_none() {
                        self.warn(
                            key_path.clone(),
                            "basePolicy none: peers using this policy get no bond (zerotier-one 1.14.1 rejects \
                             such a policy); useful in peerSpecificBonds to opt a peer out",
                        );
                    }
                    base = Some(parsed);
                }
                "failoverInterval" => {
                    settings.failover_interval_ms =
                        expect_uint_in(&key_path, value, MIN_FAILOVER_INTERVAL_MS, MAX_INTERVAL_MS, "ms")?;
                }
                "upDelay" => settings.up_delay_ms = expect_uint_in(&key_path, value, 0, MAX_INTERVAL_MS, "ms")?,
                "downDelay" => settings.down_delay_ms = expect_uint_in(&key_path, value, 0, MAX_INTERVAL_MS, "ms")?,
                "packetsPerLink" | "packetsPerSlave" => {
                    let n = expect_uint_in(&key_path, value, 0, MAX_PACKETS_PER_LINK as u64, "packets")?;
                    if key == "packetsPerSlave" {
                        self.warn(key_path.clone(), renamed(key, "packetsPerLink"));
                    }
                    packets_per_link.set(n as u32, key_path)?;
                }
                "activeReselect" | "linkSelectMethod" | "slaveSelectMethod" => {
                    let method_name = expect_str(&key_path, value)?;
                    let method = LinkSelectMethod::from_name(method_name).ok_or_else(|| {
                        ConfigError::new(
                            Kind::OutOfRange,
                            key_path.clone(),
                            format!(
                                "unknown link select method {method_name:?} (expected one of {})",
                                quoted_list(LinkSelectMethod::ALL.map(LinkSelectMethod::name))
                            ),
                        )
                    })?;
                    match key.as_str() {
                        "linkSelectMethod" => self.warn(
                            key_path.clone(),
                            "zerotier-one 1.14.1 ignores linkSelectMethod (it reads activeReselect); ztplane \
                             applies it, but use activeReselect so both agree",
                        ),
                        "slaveSelectMethod" => self.warn(key_path.clone(), renamed(key, "activeReselect")),
                        _ => {}
                    }
                    link_select.set(method, key_path)?;
                }
                "balancePolicy" => {
                    let mode_name = expect_str(&key_path, value)?;
                    settings.balance = BalanceMode::from_name(mode_name).ok_or_else(|| {
                        ConfigError::new(
                            Kind::OutOfRange,
                            key_path.clone(),
                            format!(
                                "unknown balance policy {mode_name:?} (expected one of {})",
                                quoted_list(BalanceMode::ALL.map(BalanceMode::name))
                            ),
                        )
                    })?;
                }
                "links" | "slaves" => {
                    let links = expect_object(&key_path, value, "links must be an object (interface name → link)")?;
                    expect_at_most(&key_path, links.len(), crate::path::MAX_PATHS, "links (a bond holds 64 paths)")?;
                    if key == "slaves" {
                        self.warn(key_path.clone(), renamed(key, "links"));
                    }
                    if let Some((previous, _)) = &links_value {
                        return Err(ConfigError::new(
                            Kind::Conflict,
                            key_path,
                            format!("links are already given at {previous}; use only \"links\""),
                        ));
                    }
                    links_value = Some((key_path, links));
                }
                "linkQuality" => self.link_quality(&key_path, value, &mut quality)?,
                "quality" | "qualityWeights" => self.quality_2020(&key_path, value, &mut quality)?,
                "maxAcceptableLatency" | "maxAcceptableMeanLatency" => {
                    let v = expect_positive(&key_path, value, None)?;
                    self.warn(
                        key_path.clone(),
                        format!("2020 key; use linkQuality.lat_max (applied as lat_max = {v})"),
                    );
                    quality.lat_max.set(v, key_path)?;
                }
                "maxAcceptablePacketDelayVariance" => {
                    let v = expect_positive(&key_path, value, None)?;
                    self.warn(
                        key_path.clone(),
                        format!("2020 key; use linkQuality.pdv_max (applied as pdv_max = {v})"),
                    );
                    quality.pdv_max.set(v, key_path)?;
                }
                "maxAcceptablePacketLossRatio" => {
                    let v = expect_positive(&key_path, value, Some(1.0))?;
                    self.warn(
                        key_path.clone(),
                        format!("2020 key; use linkQuality.plr_max (applied as plr_max = {v})"),
                    );
                    quality.plr_max.set(v, key_path)?;
                }
                "maxAcceptablePacketErrorRatio" => {
                    let v = expect_positive(&key_path, value, Some(1.0))?;
                    self.warn(
                        key_path.clone(),
                        format!("2020 key; use linkQuality.per_max (applied as per_max = {v})"),
                    );
                    quality.per_max.set(v, key_path)?;
                }
                "dedup" => {
                    let message = if value == &Value::Bool(false) {
                        "dedup no longer exists; ztplane always suppresses duplicate broadcast packets on \
                         receive and this cannot be turned off"
                    } else {
                        "dedup no longer exists; ztplane always suppresses duplicate broadcast packets on receive"
                    };
                    self.warn(key_path, message);
                }
                _ => {
                    if let Some((_, why)) = REMOVED_POLICY_KEYS.iter().find(|(k, _)| k == key) {
                        self.warn(key_path, format!("{key} no longer exists and is ignored: {why}"));
                    } else {
                        return Err(unknown_key(key_path, key, POLICY_KEYS));
                    }
                }
            }
        }

        match (base, legacy_base) {
            (Some(b), _) => settings.base = b,
            (None, Some(standard)) => settings.base = standard,
            (None, None) => self.warn(
                child(path, "basePolicy"),
                "basePolicy is missing; the policy forms no bond (zerotier-one 1.14.1 discards such a policy). \
                 Set basePolicy to one of the standard policies",
            ),
        }
        if let Some(m) = link_select.get() {
            settings.link_select = *m;
        }
        if let Some(n) = packets_per_link.get() {
            settings.packets_per_link = *n;
        }
        settings.quality = combine_quality(&quality);
        let links_path = match links_value {
            Some((links_path, links)) => {
                settings.links = self.links(&links_path, links)?;
                links_path
            }
            None => child(path, "links"),
        };
        self.base_specific_warnings(path, &links_path, &settings, &given);
        Ok(settings)
    }

    /// Warn about settings that only one base policy uses, when the policy is built on another.
    fn base_specific_warnings(&mut self, path: &str, links_path: &str, settings: &PolicySettings, given: &[&str]) {
        let only_for: &[(&[&str], Policy)] = &[
            (&["activeReselect", "linkSelectMethod", "slaveSelectMethod"], Policy::ActiveBackup),
            (&["packetsPerLink", "packetsPerSlave"], Policy::BalanceRr),
            (&["balancePolicy"], Policy::BalanceAware),
        ];
        if settings.base == Policy::None {
            return;
        }
        for (keys, policy) in only_for {
            for key in keys.iter().filter(|k| given.contains(k)) {
                if settings.base != *policy {
                    self.warn(
                        child(path, key),
                        format!("{key} only affects {policy}; this policy is {}", settings.base),
                    );
                }
            }
        }
        if settings.base != Policy::ActiveBackup {
            for link in settings.links.iter().filter(|l| l.failover_to.is_some()) {
                self.warn(
                    child(&child(links_path, &link.name), "failoverTo"),
                    format!("failoverTo only affects active-backup; this policy is {}", settings.base),
                );
            }
        }
    }

    /// `linkQuality`: any subset of the 8 keys (zerotier-one needs all 8 or ignores the object, §11.3).
    fn link_quality(&mut self, path: &str, value: &Value, quality: &mut QualityParts) -> Result<(), ConfigError> {
        let object = expect_object(path, value, "linkQuality must be an object")?;
        let mut weights = [None::<f64>; 4];
        for (key, v) in object {
            let key_path = child(path, key);
            match key.as_str() {
                "lat_max" => quality.lat_max.set(expect_positive(&key_path, v, None)?, key_path)?,
                "pdv_max" => quality.pdv_max.set(expect_positive(&key_path, v, None)?, key_path)?,
                "plr_max" => quality.plr_max.set(expect_positive(&key_path, v, Some(1.0))?, key_path)?,
                "per_max" => quality.per_max.set(expect_positive(&key_path, v, Some(1.0))?, key_path)?,
                "lat_weight" => weights[0] = Some(expect_fraction(&key_path, v)?),
                "pdv_weight" => weights[1] = Some(expect_fraction(&key_path, v)?),
                "plr_weight" => weights[2] = Some(expect_fraction(&key_path, v)?),
                "per_weight" => weights[3] = Some(expect_fraction(&key_path, v)?),
                _ => return Err(unknown_key(key_path, key, LINK_QUALITY_KEYS)),
            }
        }
        if object.len() < LINK_QUALITY_KEYS.len() {
            self.warn(
                path,
                format!(
                    "zerotier-one 1.14.1 ignores linkQuality unless all 8 keys are given; ztplane applies the {} \
                     given (missing maxima keep their defaults, missing weights are 0)",
                    object.len()
                ),
            );
        }
        if weights.iter().any(Option::is_some) {
            let w = QualityWeights {
                lat: weights[0].unwrap_or(0.0),
                pdv: weights[1].unwrap_or(0.0),
                plr: weights[2].unwrap_or(0.0),
                per: weights[3].unwrap_or(0.0),
            };
            check_sum(path, "the weights (lat_weight + pdv_weight + plr_weight + per_weight)", w.sum())?;
            quality.weights.set(w, path.to_string())?;
        }
        Ok(())
    }

    /// 2020 `quality` / `qualityWeights`: nine weights; the four with a counterpart are kept and
    /// renormalised, the others (ltm, thr, thm, thv, avl) are dropped with a warning.
    fn quality_2020(&mut self, path: &str, value: &Value, quality: &mut QualityParts) -> Result<(), ConfigError> {
        const KEYS: &[&str] = &["lat", "ltm", "pdv", "plr", "per", "thr", "thm", "thv", "avl"];
        let object = expect_object(path, value, "quality must be an object of weights")?;
        let mut total = 0.0;
        let mut mapped = QualityWeights { lat: 0.0, pdv: 0.0, plr: 0.0, per: 0.0 };
        let mut dropped = Vec::new();
        for (key, v) in object {
            let key_path = child(path, key);
            let w = match key.as_str() {
                k if KEYS.contains(&k) => expect_fraction(&key_path, v)?,
                _ => return Err(unknown_key(key_path, key, KEYS)),
            };
            total += w;
            match key.as_str() {
                "lat" => mapped.lat = w,
                "pdv" => mapped.pdv = w,
                "plr" => mapped.plr = w,
                "per" => mapped.per = w,
                _ if w > 0.0 => dropped.push(format!("{key}={w}")),
                _ => {}
            }
        }
        check_sum(path, "the quality weights", total)?;
        let kept = mapped.sum();
        if kept <= 0.0 {
            self.warn(
                path,
                format!(
                    "2020 key; use linkQuality. None of its nonzero weights ({}) exists any more, so the default \
                     weights apply",
                    dropped.join(", ")
                ),
            );
            return Ok(());
        }
        let normalised = QualityWeights {
            lat: mapped.lat / kept,
            pdv: mapped.pdv / kept,
            plr: mapped.plr / kept,
            per: mapped.per / kept,
        };
        let mut message = format!(
            "2020 key; use linkQuality (applied as lat_weight={:.4}, pdv_weight={:.4}, plr_weight={:.4}, \
             per_weight={:.4})",
            normalised.lat, normalised.pdv, normalised.plr, normalised.per
        );
        if !dropped.is_empty() {
            message.push_str(&format!(
                "; weights with no counterpart were dropped and the rest rescaled to sum to 1: {}",
                dropped.join(", ")
            ));
        }
        self.warn(path, message);
        quality.weights.set(normalised, path.to_string())
    }

    fn links(&mut self, path: &str, links: &Map<String, Value>) -> Result<Vec<LinkSettings>, ConfigError> {
        struct Parsed {
            link: LinkSettings,
            path: String,
            mode_given: bool,
        }
        let mut parsed = Vec::with_capacity(links.len());
        for (name, value) in links {
            let link_path = child(path, name);
            if name.is_empty() {
                return Err(ConfigError::new(Kind::OutOfRange, link_path, "interface name is empty"));
            }
            let object = expect_object(&link_path, value, "a link must be an object")?;
            let (link, mode_given) = self.link(&link_path, name, object)?;
            parsed.push(Parsed { link, path: link_path, mode_given });
        }

        // failoverTo must name another listed link (zerotier-one keeps a dangling name and never uses it).
        for p in &parsed {
            if let Some(target) = &p.link.failover_to {
                let target_path = child(&p.path, "failoverTo");
                if *target == p.link.name {
                    return Err(ConfigError::new(Kind::Conflict, target_path, "a link cannot fail over to itself"));
                }
                if !parsed.iter().any(|q| q.link.name == *target) {
                    let names: Vec<&str> = parsed.iter().map(|q| q.link.name.as_str()).collect();
                    return Err(ConfigError::new(
                        Kind::UnknownLink,
                        target_path,
                        format!(
                            "failoverTo names {target:?}, which is not a link of this policy ({})",
                            names.join(", ")
                        ),
                    ));
                }
            }
        }

        // Unspecified mode: spare if another link is explicitly primary (zerotier-one's default), else
        // primary — zerotier-one would make every link spare, leaving a bond with no primary (§11.4).
        let any_explicit_primary = parsed.iter().any(|p| p.mode_given && p.link.mode == LinkMode::Primary);
        let defaulted: Vec<&str> = parsed.iter().filter(|p| !p.mode_given).map(|p| p.link.name.as_str()).collect();
        if !defaulted.is_empty() && !any_explicit_primary {
            self.warn(
                path,
                format!(
                    "no link is explicitly primary, so links without a mode ({}) are primary (zerotier-one 1.14.1 \
                     would make them spare); set \"mode\" to be explicit",
                    defaulted.join(", ")
                ),
            );
        }
        if !parsed.is_empty() && parsed.iter().all(|p| p.mode_given && p.link.mode == LinkMode::Spare) {
            self.warn(
                path,
                "every link is spare, so none carries traffic by preference; mark the preferred link(s) \
                 \"mode\": \"primary\"",
            );
        }
        for p in parsed.iter_mut().filter(|p| !p.mode_given) {
            p.link.mode = if any_explicit_primary { LinkMode::Spare } else { LinkMode::Primary };
        }

        // alloc: all or none, summing to 1.
        if let Some(first) = parsed.iter().find(|p| p.link.alloc.is_some()) {
            if let Some(missing) = parsed.iter().find(|p| p.link.alloc.is_none()) {
                return Err(ConfigError::new(
                    Kind::MissingKey,
                    child(&missing.path, "alloc"),
                    format!("alloc is set on {:?} but not here; give every link an alloc, or none", first.link.name),
                ));
            }
            let total: f64 = parsed.iter().filter_map(|p| p.link.alloc).sum();
            check_sum(path, "the links' alloc values", total)?;
        }

        Ok(parsed.into_iter().map(|p| p.link).collect())
    }

    fn link(
        &mut self,
        path: &str,
        name: &str,
        object: &Map<String, Value>,
    ) -> Result<(LinkSettings, bool), ConfigError> {
        let mut link = LinkSettings::new(name);
        let mut mode_given = false;
        let mut capacity = Slot::new();
        for (key, value) in object {
            let key_path = child(path, key);
            match key.as_str() {
                "mode" => {
                    let mode_name = expect_str(&key_path, value)?;
                    link.mode = LinkMode::from_name(mode_name).ok_or_else(|| {
                        ConfigError::new(
                            Kind::OutOfRange,
                            key_path.clone(),
                            format!("unknown link mode {mode_name:?} (expected \"primary\" or \"spare\")"),
                        )
                    })?;
                    mode_given = true;
                }
                "failoverTo" => {
                    let target = expect_str(&key_path, value)?;
                    if target.is_empty() {
                        return Err(ConfigError::new(
                            Kind::UnknownLink,
                            key_path,
                            "failoverTo is empty; name a link of this policy or omit the key",
                        ));
                    }
                    link.failover_to = Some(target.to_string());
                }
                "ipvPref" => {
                    let code = expect_uint_in(&key_path, value, 0, u64::MAX, "")?;
                    link.ipv_pref = IpvPref::from_code(code).ok_or_else(|| {
                        ConfigError::new(
                            Kind::OutOfRange,
                            key_path.clone(),
                            format!("ipvPref {code} is not one of 0, 4, 6, 46, 64"),
                        )
                    })?;
                }
                "capacity" | "speed" => {
                    let c = expect_uint_in(&key_path, value, 0, MAX_LINK_CAPACITY, "")?;
                    if key == "speed" {
                        self.warn(key_path.clone(), renamed(key, "capacity"));
                    }
                    capacity.set(c, key_path)?;
                }
                "alloc" => link.alloc = Some(self.alloc(&key_path, value)?),
                "enabled" => {
                    link.enabled = match value {
                        Value::Bool(b) => *b,
                        // zerotier-one reads this key as an integer, so 0/1 configs exist.
                        Value::Number(n) if n.as_u64() == Some(0) => false,
                        Value::Number(n) if n.as_u64() == Some(1) => true,
                        Value::Number(_) => {
                            return Err(ConfigError::new(
                                Kind::OutOfRange,
                                key_path,
                                format!("enabled must be true or false (or 0/1), got {value}"),
                            ));
                        }
                        _ => return Err(wrong_type(key_path, "a boolean", value)),
                    };
                }
                "mtu" => {
                    let mtu = expect_uint_in(&key_path, value, 0, u16::MAX as u64, "bytes")?;
                    if mtu != 0 && mtu < MIN_LINK_MTU as u64 {
                        return Err(ConfigError::new(
                            Kind::OutOfRange,
                            key_path,
                            format!("mtu {mtu} is below the minimum {MIN_LINK_MTU} (0 = use the physical MTU)"),
                        ));
                    }
                    link.mtu = (mtu != 0).then_some(mtu as u16);
                }
                _ => {
                    if let Some((_, why)) = REMOVED_LINK_KEYS.iter().find(|(k, _)| k == key) {
                        self.warn(key_path, format!("per-link {key} no longer exists and is ignored: {why}"));
                    } else {
                        return Err(unknown_key(key_path, key, LINK_KEYS));
                    }
                }
            }
        }
        // zerotier-one treats capacity 0 as "not configured".
        link.capacity = capacity.get().copied().filter(|c| *c != 0);
        Ok((link, mode_given))
    }

    /// `alloc`: a fraction in [0, 1]; the 2020 guide also allowed 0–255 (8-bit share), converted here.
    fn alloc(&mut self, path: &str, value: &Value) -> Result<f64, ConfigError> {
        let v = expect_number(path, value)?;
        if (0.0..=1.0).contains(&v) {
            return Ok(v);
        }
        if v > 1.0 && v <= 255.0 && v.fract() == 0.0 {
            let fraction = v / 255.0;
            self.warn(
                path,
                format!("2020 8-bit alloc {v} read as the fraction {v}/255 = {fraction:.4}; write fractions"),
            );
            return Ok(fraction);
        }
        Err(ConfigError::new(
            Kind::OutOfRange,
            path,
            format!("alloc {v} is out of range (a fraction of traffic in 0..1, or the 2020 integer form 0..255)"),
        ))
    }
}

const POLICY_KEYS: &[&str] = &[
    "basePolicy",
    "failoverInterval",
    "upDelay",
    "downDelay",
    "activeReselect",
    "packetsPerLink",
    "balancePolicy",
    "linkQuality",
    "links",
];
const LINK_KEYS: &[&str] = &["mode", "failoverTo", "ipvPref", "capacity", "alloc", "enabled", "mtu"];
const LINK_QUALITY_KEYS: &[&str] =
    &["lat_max", "pdv_max", "plr_max", "per_max", "lat_weight", "pdv_weight", "plr_weight", "per_weight"];

fn combine_quality(parts: &QualityParts) -> LinkQualitySpec {
    let defaults = LinkQualitySpec::default();
    LinkQualitySpec {
        lat_max_ms: parts.lat_max.get().copied().unwrap_or(defaults.lat_max_ms),
        pdv_max_ms: parts.pdv_max.get().copied().unwrap_or(defaults.pdv_max_ms),
        plr_max: parts.plr_max.get().copied().unwrap_or(defaults.plr_max),
        per_max: parts.per_max.get().copied().unwrap_or(defaults.per_max),
        weights: parts.weights.get().copied().unwrap_or(defaults.weights),
    }
}

/// A policy name as used by defaultBondingPolicy / peerSpecificBonds: standard or defined custom.
fn resolve_name(path: &str, name: &str, policies: &BTreeMap<String, PolicySettings>) -> Result<PolicyRef, ConfigError> {
    if let Some(standard) = Policy::from_name(name) {
        return Ok(PolicyRef::Standard(standard));
    }
    if policies.contains_key(name) {
        return Ok(PolicyRef::Custom(name.to_string()));
    }
    let custom: Vec<String> = policies.keys().map(|k| format!("{k:?}")).collect();
    Err(ConfigError::new(
        Kind::UnknownPolicy,
        path,
        format!(
            "unknown policy {name:?}: not a standard policy ({}) and not defined under settings.policies{}",
            quoted_list(Policy::ALL.map(Policy::name)),
            if custom.is_empty() { String::new() } else { format!(" ({})", custom.join(", ")) }
        ),
    ))
}

/// A `peerSpecificBonds` key: exactly 10 hex digits, not 0 and not in the reserved 0xff prefix.
fn parse_address(path: &str, text: &str) -> Result<u64, ConfigError> {
    let bad =
        |why: &str| ConfigError::new(Kind::BadAddress, path, format!("{text:?} is not a ZeroTier address: {why}"));
    if text.len() != 10 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("expected exactly 10 hexadecimal digits"));
    }
    let address = u64::from_str_radix(text, 16).map_err(|_| bad("expected exactly 10 hexadecimal digits"))?;
    if address == 0 {
        return Err(bad("address 0 is reserved"));
    }
    if address >> 32 == 0xff {
        return Err(bad("addresses beginning with ff are reserved"));
    }
    Ok(address)
}

fn renamed(old: &str, current: &str) -> String {
    format!("{old} is the 2020 name of {current}; accepted as {current}, rename it")
}

fn unknown_key(path: String, key: &str, known: &[&str]) -> ConfigError {
    ConfigError::new(
        Kind::UnknownKey,
        path,
        format!("unknown key {key:?} (zerotier-one would silently ignore it); known keys: {}", known.join(", ")),
    )
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

fn wrong_type(path: impl Into<String>, expected: &str, value: &Value) -> ConfigError {
    ConfigError::new(Kind::WrongType, path, format!("expected {expected}, got {}", describe(value)))
}

fn expect_object<'a>(path: &str, value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ConfigError> {
    value.as_object().ok_or_else(|| ConfigError::new(Kind::WrongType, path, format!("{what}, got {}", describe(value))))
}

fn expect_str<'a>(path: &str, value: &'a Value) -> Result<&'a str, ConfigError> {
    value.as_str().ok_or_else(|| wrong_type(path, "a string", value))
}

fn expect_number(path: &str, value: &Value) -> Result<f64, ConfigError> {
    value.as_f64().ok_or_else(|| wrong_type(path, "a number", value))
}

/// An integer in `min..=max` (`unit` only decorates the message). `500.0` counts as an integer.
fn expect_uint_in(path: &str, value: &Value, min: u64, max: u64, unit: &str) -> Result<u64, ConfigError> {
    let Value::Number(n) = value else {
        return Err(wrong_type(path, "an integer", value));
    };
    let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
    let out_of_range = |shown: String| {
        let range = if max == u64::MAX { format!("at least {min}") } else { format!("{min}..={max}") };
        ConfigError::new(Kind::OutOfRange, path, format!("{shown}{unit} is out of range (accepted: {range}{unit})"))
    };
    let v = if let Some(u) = n.as_u64() {
        u
    } else if let Some(i) = n.as_i64() {
        return Err(out_of_range(i.to_string()));
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f.fract() != 0.0 || !f.is_finite() {
            return Err(wrong_type(path, "an integer", value));
        }
        if f < 0.0 || f > u64::MAX as f64 {
            return Err(out_of_range(n.to_string()));
        }
        f as u64
    };
    if v < min || v > max {
        return Err(out_of_range(v.to_string()));
    }
    Ok(v)
}

/// A finite number > 0, and ≤ `upper` if given (ratios).
fn expect_positive(path: &str, value: &Value, upper: Option<f64>) -> Result<f64, ConfigError> {
    let v = expect_number(path, value)?;
    let ok = v.is_finite() && v > 0.0 && upper.is_none_or(|u| v <= u);
    if !ok {
        let range = match upper {
            Some(u) => format!("greater than 0 and at most {u}"),
            None => "greater than 0".to_string(),
        };
        return Err(ConfigError::new(Kind::OutOfRange, path, format!("{v} is out of range (must be {range})")));
    }
    Ok(v)
}

/// A weight in [0, 1].
fn expect_fraction(path: &str, value: &Value) -> Result<f64, ConfigError> {
    let v = expect_number(path, value)?;
    if !(0.0..=1.0).contains(&v) {
        return Err(ConfigError::new(Kind::OutOfRange, path, format!("{v} is out of range (a weight in 0..1)")));
    }
    Ok(v)
}

fn check_sum(path: &str, what: &str, total: f64) -> Result<(), ConfigError> {
    if (total - 1.0).abs() > WEIGHT_SUM_TOLERANCE {
        return Err(ConfigError::new(
            Kind::BadSum,
            path,
            format!("{what} sum to {total:.4}; they must sum to 1 (±{WEIGHT_SUM_TOLERANCE})"),
        ));
    }
    Ok(())
}

fn expect_at_most(path: &str, n: usize, max: usize, what: &str) -> Result<(), ConfigError> {
    if n > max {
        return Err(ConfigError::new(Kind::OutOfRange, path, format!("{n} {what}; at most {max} are accepted")));
    }
    Ok(())
}
