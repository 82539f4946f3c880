//! Network and member records as zerotier-one 1.14.1's controller keeps them (controller/DB.cpp
//! `initNetwork`, `initMember`, `cleanNetwork`, `cleanMember`; EmbeddedNetworkController.cpp
//! `networkUpdateFromPostData` and the member POST handler): JSON objects with its field names,
//! defaults and normalisation, so its files and API answers read the same.
//!
//! Kept as JSON rather than typed structs: upstream stores whatever fields a record has and
//! sends them back, and its tools rely on that. What the controller *uses* is read through the
//! lenient accessors of [`crate::json`] when a config is built.
//!
//! Upstream quirks kept: `remoteTraceLevel` is reset to 0 whenever a record is initialised (its
//! check looks for the misspelt `removeTraceLevel`); a new network's `authTokens` is `[null]`;
//! `v6AssignMode` given as an object keeps only the modes it names.

use crate::inet::InetAddr;
use crate::json::{self, Object};
use crate::rules_json::{parse_rule, render_rule};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `ZT_CONTROLLER_MAX_ARRAY_SIZE`: longest array a POST may set.
const MAX_ARRAY: usize = 16384;
/// MTU bounds and default (VL1 §1.1).
pub const MIN_MTU: u64 = 1280;
pub const MAX_MTU: u64 = 10_000;
pub const DEFAULT_MTU: u64 = 2800;

fn default(record: &mut Object, key: &str, value: Value) {
    if !record.contains_key(key) {
        record.insert(key.to_string(), value);
    }
}

/// `DB::initNetwork`: the fields every network has, with their defaults (rules: accept all).
pub fn init_network(network: &mut Object, now_ms: u64) {
    default(network, "private", json!(true));
    default(network, "creationTime", json!(now_ms));
    default(network, "name", json!(""));
    default(network, "multicastLimit", json!(32));
    default(network, "enableBroadcast", json!(true));
    default(network, "v4AssignMode", json!({"zt": false}));
    default(network, "v6AssignMode", json!({"rfc4193": false, "zt": false, "6plane": false}));
    default(network, "authTokens", json!([null]));
    default(network, "capabilities", json!([]));
    default(network, "tags", json!([]));
    default(network, "routes", json!([]));
    default(network, "ipAssignmentPools", json!([]));
    default(network, "mtu", json!(DEFAULT_MTU));
    default(network, "remoteTraceTarget", Value::Null);
    network.insert("remoteTraceLevel".into(), json!(0));
    default(network, "rulesSource", json!(""));
    default(network, "rules", json!([{"not": false, "or": false, "type": "ACTION_ACCEPT"}]));
    default(network, "dns", json!([]));
    default(network, "ssoEnabled", json!(false));
    default(network, "clientId", json!(""));
    default(network, "authorizationEndpoint", json!(""));
    network.insert("objtype".into(), json!("network"));
}

/// `DB::initMember`: the fields every member has (new members are not authorized).
pub fn init_member(member: &mut Object, now_ms: u64) {
    default(member, "authorized", json!(false));
    default(member, "ssoExempt", json!(false));
    default(member, "ipAssignments", json!([]));
    default(member, "activeBridge", json!(false));
    default(member, "tags", json!([]));
    default(member, "capabilities", json!([]));
    default(member, "creationTime", json!(now_ms));
    default(member, "noAutoAssignIps", json!(false));
    default(member, "revision", json!(0));
    default(member, "lastDeauthorizedTime", json!(0));
    default(member, "lastAuthorizedTime", json!(0));
    default(member, "lastAuthorizedCredentialType", Value::Null);
    default(member, "lastAuthorizedCredential", Value::Null);
    default(member, "authenticationExpiryTime", json!(0));
    default(member, "vMajor", json!(-1));
    default(member, "vMinor", json!(-1));
    default(member, "vRev", json!(-1));
    default(member, "vProto", json!(-1));
    default(member, "remoteTraceTarget", Value::Null);
    member.insert("remoteTraceLevel".into(), json!(0));
    member.insert("objtype".into(), json!("member"));
}

/// `DB::cleanNetwork`: computed fields are never stored.
pub fn clean_network(network: &mut Object) {
    for key in ["clock", "authorizedMemberCount", "activeMemberCount", "totalMemberCount", "lastModified"] {
        network.remove(key);
    }
}

/// `DB::cleanMember`.
pub fn clean_member(member: &mut Object) {
    for key in [
        "clock",
        "physicalAddr",
        "recentLog",
        "lastModified",
        "lastRequestMetaData",
        "authenticationURL",
        "authenticationClientID",
    ] {
        member.remove(key);
    }
}

/// `_compareRecords`: the same fields with the same values, `revision` aside.
pub fn same_record(a: &Object, b: &Object) -> bool {
    a.len() == b.len() && a.iter().all(|(k, v)| k == "revision" || b.get(k) == Some(v))
}

/// Applies a network POST body (`networkUpdateFromPostData`): only the fields present change,
/// each normalised as upstream does; malformed entries of arrays are dropped.
pub fn update_network(network: &mut Object, body: &Value) {
    let Some(b) = body.as_object() else { return };
    let mut set = |k: &str, v: Value| {
        network.insert(k.to_string(), v);
    };
    if let Some(v) = b.get("name") {
        set("name", json!(json::string(Some(v), "")));
    }
    if let Some(v) = b.get("private") {
        set("private", json!(json::boolean(Some(v), true)));
    }
    if let Some(v) = b.get("enableBroadcast") {
        set("enableBroadcast", json!(json::boolean(Some(v), false)));
    }
    if let Some(v) = b.get("multicastLimit") {
        set("multicastLimit", json!(json::int(Some(v), 32)));
    }
    if let Some(v) = b.get("mtu") {
        set("mtu", json!((json::int(Some(v), DEFAULT_MTU) as u32 as u64).clamp(MIN_MTU, MAX_MTU)));
    }
    if let Some(v) = b.get("remoteTraceTarget") {
        let target = json::string(Some(v), "");
        set("remoteTraceTarget", if target.len() == 10 { json!(target) } else { Value::Null });
    }
    if let Some(v) = b.get("remoteTraceLevel") {
        set("remoteTraceLevel", json!(json::int(Some(v), 0)));
    }
    if let Some(v) = b.get("v4AssignMode") {
        let zt = match v {
            Value::String(s) => s == "zt",
            Value::Object(o) => json::boolean(o.get("zt"), false),
            _ => false,
        };
        set("v4AssignMode", json!({"zt": zt}));
    }
    if let Some(v) = b.get("v6AssignMode") {
        let mut modes = Object::new();
        match v {
            Value::String(s) => {
                let named: Vec<&str> = s.split(',').map(str::trim).collect();
                for mode in ["rfc4193", "zt", "6plane"] {
                    modes.insert(mode.into(), json!(named.contains(&mode)));
                }
            }
            Value::Object(o) => {
                for mode in ["rfc4193", "zt", "6plane"] {
                    if let Some(flag) = o.get(mode) {
                        modes.insert(mode.into(), json!(json::boolean(Some(flag), false)));
                    }
                }
            }
            _ => {
                for mode in ["rfc4193", "zt", "6plane"] {
                    modes.insert(mode.into(), json!(false));
                }
            }
        }
        set("v6AssignMode", Value::Object(modes));
    }
    if let Some(Value::Array(routes)) = b.get("routes") {
        let mut out = Vec::new();
        for route in routes.iter().filter_map(Value::as_object) {
            let Some(target) = route.get("target").and_then(Value::as_str).and_then(InetAddr::parse) else {
                continue;
            };
            if !target.prefix_valid() {
                continue;
            }
            let via = route.get("via").and_then(Value::as_str).and_then(InetAddr::parse);
            let via = via.filter(|v| v.ip.is_ipv4() == target.ip.is_ipv4()).map(|v| json!(v.ip_string()));
            out.push(json!({"target": target.with_port(), "via": via.unwrap_or(Value::Null)}));
            if out.len() >= MAX_ARRAY {
                break;
            }
        }
        set("routes", Value::Array(out));
    }
    if let Some(Value::Array(pools)) = b.get("ipAssignmentPools") {
        let mut out = Vec::new();
        for pool in pools.iter().filter_map(Value::as_object) {
            let (Some(start), Some(end)) = (pool.get("ipRangeStart"), pool.get("ipRangeEnd")) else { continue };
            let start = InetAddr::parse(&json::string(Some(start), ""));
            let end = InetAddr::parse(&json::string(Some(end), ""));
            if let (Some(start), Some(end)) = (start, end)
                && start.ip.is_ipv4() == end.ip.is_ipv4()
            {
                out.push(json!({"ipRangeStart": start.ip_string(), "ipRangeEnd": end.ip_string()}));
                if out.len() >= MAX_ARRAY {
                    break;
                }
            }
        }
        set("ipAssignmentPools", Value::Array(out));
    }
    if let Some(Value::Array(rules)) = b.get("rules") {
        set("rules", Value::Array(normalise_rules(rules)));
    }
    if let Some(v) = b.get("authTokens") {
        let tokens = match v {
            Value::Object(o) => Value::Object(
                o.iter()
                    .filter(|(_, t)| t.as_u64().is_some() || t.as_f64().is_some_and(|f| f >= 0.0))
                    .map(|(k, t)| (k.clone(), t.clone()))
                    .collect(),
            ),
            _ => json!([null]),
        };
        set("authTokens", tokens);
    }
    if let Some(Value::Array(caps)) = b.get("capabilities") {
        let mut by_id: BTreeMap<u64, Value> = BTreeMap::new();
        for cap in caps.iter().filter_map(Value::as_object) {
            let id = json::int(cap.get("id"), 0);
            let rules = match cap.get("rules") {
                Some(Value::Array(rules)) => normalise_rules(rules),
                _ => Vec::new(),
            };
            by_id.insert(id, json!({"id": id, "default": json::boolean(cap.get("default"), false), "rules": rules}));
        }
        set("capabilities", Value::Array(by_id.into_values().take(MAX_ARRAY).collect()));
    }
    if let Some(Value::Array(tags)) = b.get("tags") {
        let mut by_id: BTreeMap<u64, Value> = BTreeMap::new();
        for tag in tags.iter().filter_map(Value::as_object) {
            let id = json::int(tag.get("id"), 0);
            let default = match tag.get("default") {
                None | Some(Value::Null) => Value::Null,
                Some(d) => json!(json::int(Some(d), 0)),
            };
            by_id.insert(id, json!({"id": id, "default": default}));
        }
        set("tags", Value::Array(by_id.into_values().take(MAX_ARRAY).collect()));
    }
    if let Some(Value::Object(dns)) = b.get("dns") {
        let mut out = Object::new();
        out.insert("domain".into(), dns.get("domain").cloned().unwrap_or(Value::Null));
        if let Some(Value::Array(servers)) = dns.get("servers") {
            out.insert("servers".into(), Value::Array(servers.clone()));
        }
        set("dns", Value::Object(out));
    }
}

/// Rules as stored: each parsed and rendered again; the ones upstream cannot parse are dropped.
fn normalise_rules(rules: &[Value]) -> Vec<Value> {
    rules.iter().filter_map(parse_rule).map(|r| render_rule(&r)).take(MAX_ARRAY).collect()
}

/// Applies a member POST body (the handler behind `POST /controller/network/<nwid>/member/<id>`).
/// Authorizing stamps `lastAuthorizedTime` (credential type `api`), deauthorizing
/// `lastDeauthorizedTime`.
pub fn update_member(member: &mut Object, body: &Value, now_ms: u64) {
    let Some(b) = body.as_object() else { return };
    if let Some(v) = b.get("activeBridge") {
        member.insert("activeBridge".into(), json!(json::boolean(Some(v), false)));
    }
    if let Some(v) = b.get("noAutoAssignIps") {
        member.insert("noAutoAssignIps".into(), json!(json::boolean(Some(v), false)));
    }
    if let Some(v) = b.get("authenticationExpiryTime") {
        member.insert("authenticationExpiryTime".into(), json!(json::int(Some(v), 0)));
    }
    if let Some(v) = b.get("name") {
        member.insert("name".into(), json!(json::string(Some(v), "")));
    }
    if let Some(v) = b.get("remoteTraceTarget") {
        let target = json::string(Some(v), "");
        member.insert("remoteTraceTarget".into(), if target.len() == 10 { json!(target) } else { Value::Null });
    }
    if let Some(v) = b.get("remoteTraceLevel") {
        member.insert("remoteTraceLevel".into(), json!(json::int(Some(v), 0)));
    }
    if let Some(v) = b.get("authorized") {
        let authorized = json::boolean(Some(v), false);
        if authorized != json::boolean(member.get("authorized"), false) {
            member.insert("authorized".into(), json!(authorized));
            let stamp = if authorized { "lastAuthorizedTime" } else { "lastDeauthorizedTime" };
            member.insert(stamp.into(), json!(now_ms));
            if authorized {
                member.insert("lastAuthorizedCredentialType".into(), json!("api"));
                member.insert("lastAuthorizedCredential".into(), Value::Null);
            }
        }
    }
    if let Some(Value::Array(ips)) = b.get("ipAssignments") {
        let ips: Vec<Value> = ips
            .iter()
            .filter_map(Value::as_str)
            .filter_map(InetAddr::parse)
            .map(|a| json!(a.ip_string()))
            .take(MAX_ARRAY)
            .collect();
        member.insert("ipAssignments".into(), Value::Array(ips));
    }
    if let Some(Value::Array(tags)) = b.get("tags") {
        let mut by_id: BTreeMap<u64, u64> = BTreeMap::new();
        for tag in tags.iter().filter_map(Value::as_array).filter(|t| t.len() == 2) {
            by_id.insert(json::int(Some(&tag[0]), 0) & 0xffff_ffff, json::int(Some(&tag[1]), 0) & 0xffff_ffff);
        }
        let tags: Vec<Value> = by_id.into_iter().take(MAX_ARRAY).map(|(id, v)| json!([id, v])).collect();
        member.insert("tags".into(), Value::Array(tags));
    }
    if let Some(Value::Array(caps)) = b.get("capabilities") {
        let mut ids: Vec<u64> = caps.iter().take(MAX_ARRAY).map(|c| json::int(Some(c), 0)).collect();
        ids.sort_unstable();
        ids.dedup();
        member.insert("capabilities".into(), json!(ids));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The network object the conformance controller (zerotier-one 1.14.1) wrote for the network
    /// created with the README's POST body.
    #[test]
    fn a_new_network_reads_as_zerotier_one_writes_it() {
        let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
        let path = shared.join("conformance/zt-1.14.1/nodes/controller-network.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let reference: Value = serde_json::from_str(&text).unwrap();
        let mut network = Object::new();
        init_network(&mut network, reference["creationTime"].as_u64().unwrap());
        update_network(
            &mut network,
            &json!({"name": "bench", "private": true, "v4AssignMode": {"zt": true},
                "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
                "routes": [{"target": "198.19.0.0/24"}]}),
        );
        network.insert("id".into(), json!("2c80d4374849700f"));
        network.insert("nwid".into(), json!("2c80d4374849700f"));
        network.insert("revision".into(), json!(1));
        clean_network(&mut network);
        assert_eq!(serde_json::to_string(&json::canonical(&Value::Object(network))).unwrap(), text.trim_end(),);
    }

    #[test]
    fn member_updates() {
        let mut m = Object::new();
        init_member(&mut m, 5);
        let before = m.clone();
        update_member(&mut m, &json!({"authorized": true, "ipAssignments": ["198.19.0.5", 7, "junk"]}), 9);
        assert_eq!(m["lastAuthorizedTime"], 9);
        assert_eq!(m["lastAuthorizedCredentialType"], "api");
        assert_eq!(m["ipAssignments"], json!(["198.19.0.5"]));
        assert!(!same_record(&before, &m));
        update_member(&mut m, &json!({"authorized": true}), 11);
        assert_eq!(m["lastAuthorizedTime"], 9, "re-authorizing changes nothing");
        update_member(&mut m, &json!({"tags": [[2, 7], [1, 3], [2, 8], "x"], "capabilities": [5, 1, 5]}), 12);
        assert_eq!(m["tags"], json!([[1, 3], [2, 8]]));
        assert_eq!(m["capabilities"], json!([1, 5]));
        let mut r = m.clone();
        r.insert("revision".into(), json!(99));
        assert!(same_record(&m, &r));
    }

    #[test]
    fn network_updates_normalise() {
        let mut n = Object::new();
        init_network(&mut n, 1);
        update_network(
            &mut n,
            &json!({"mtu": 99999, "v6AssignMode": {"rfc4193": true}, "v4AssignMode": "zt",
                "routes": [{"target": "198.19.0.0/24", "via": "fd00::1"}, {"target": "198.19.0.0/40"},
                    {"target": "fd00::/64", "via": "fd00::1"}, {"nope": 1}],
                "rules": [{"type": "ACTION_ACCEPT", "not": true}, {"type": "BOGUS"}],
                "authTokens": {"a": 0, "b": -5, "c": "x"}}),
        );
        assert_eq!(n["mtu"], 10_000);
        assert_eq!(n["v6AssignMode"], json!({"rfc4193": true}));
        assert_eq!(n["v4AssignMode"], json!({"zt": true}));
        assert_eq!(
            n["routes"],
            json!([{"target": "198.19.0.0/24", "via": null}, {"target": "fd00::/64", "via": "fd00::1"}])
        );
        assert_eq!(n["rules"], json!([{"type": "ACTION_ACCEPT"}]));
        assert_eq!(n["authTokens"], json!({"a": 0}));
    }
}
