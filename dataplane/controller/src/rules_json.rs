//! Rules in the controller's JSON (`{"type":"MATCH_ETHERTYPE","etherType":2048,"not":true}`)
//! and on the wire (§6.1), as zerotier-one 1.14.1's controller reads and writes them
//! (`_parseRule`, `_renderRule` in EmbeddedNetworkController.cpp).
//!
//! Upstream quirks kept: `ACTION_PRIORITY` and `INTEGER_RANGE` are not accepted (its parser never
//! sets their type), actions are rendered without `not`/`or`, a port or frame-size range without
//! `end` is the single value `start`.

use crate::json::{self, Object};
use serde_json::{Value, json};
use std::net::IpAddr;
use ztplane_protocol::network::Mac;
use ztplane_protocol::rules::{Forward, Rule, RuleKind, TagMatch};
use ztplane_protocol::wire::address_from_u64;

/// The rule a JSON object describes, or `None` if zerotier-one would drop it (unknown type, not
/// an object).
pub fn parse_rule(value: &Value) -> Option<Rule> {
    let r = value.as_object()?;
    let get = |key: &str| r.get(key);
    let int = |key: &str, default: u64| json::int(get(key), default);
    let hex_address = |key: &str| address_from_u64(parse_hex(&json::string(get(key), "0")) & 0xff_ffff_ffff);
    let forward = |length: bool| Forward {
        address: parse_hex(&json::string(get("address"), "0")) & 0xff_ffff_ffff,
        flags: int("flags", 0) as u32,
        length: if length { int("length", 0) as u16 } else { 0 },
    };
    let range = || {
        let low = int("start", 0) as u16;
        (low, int("end", u64::from(low)) as u16)
    };
    let tag = || TagMatch { id: int("id", 0) as u32, value: int("value", 0) as u32 };
    let kind = match json::string(get("type"), "").as_str() {
        "ACTION_DROP" => RuleKind::Drop,
        "ACTION_ACCEPT" => RuleKind::Accept,
        "ACTION_TEE" => RuleKind::Tee(forward(true)),
        "ACTION_WATCH" => RuleKind::Watch(forward(true)),
        "ACTION_REDIRECT" => RuleKind::Redirect(forward(false)),
        "ACTION_BREAK" => RuleKind::Break,
        "MATCH_SOURCE_ZEROTIER_ADDRESS" => RuleKind::SourceZeroTierAddress(hex_address("zt")),
        "MATCH_DEST_ZEROTIER_ADDRESS" => RuleKind::DestZeroTierAddress(hex_address("zt")),
        "MATCH_VLAN_ID" => RuleKind::VlanId(int("vlanId", 0) as u16),
        "MATCH_VLAN_PCP" => RuleKind::VlanPcp(int("vlanPcp", 0) as u8),
        "MATCH_VLAN_DEI" => RuleKind::VlanDei(int("vlanDei", 0) as u8),
        "MATCH_MAC_SOURCE" => RuleKind::MacSource(parse_mac(&json::string(get("mac"), "0"))),
        "MATCH_MAC_DEST" => RuleKind::MacDest(parse_mac(&json::string(get("mac"), "0"))),
        t @ ("MATCH_IPV4_SOURCE" | "MATCH_IPV4_DEST") => {
            let (ip, bits) = match crate::inet::InetAddr::parse(&json::string(get("ip"), "0.0.0.0")) {
                Some(a) => match a.ip {
                    IpAddr::V4(v4) => (v4, (a.port & 0xff).min(32) as u8),
                    IpAddr::V6(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0),
                },
                None => (std::net::Ipv4Addr::UNSPECIFIED, 0),
            };
            if t == "MATCH_IPV4_SOURCE" { RuleKind::Ipv4Source { ip, bits } } else { RuleKind::Ipv4Dest { ip, bits } }
        }
        t @ ("MATCH_IPV6_SOURCE" | "MATCH_IPV6_DEST") => {
            let (ip, bits) = match crate::inet::InetAddr::parse(&json::string(get("ip"), "::0")) {
                Some(a) => match a.ip {
                    IpAddr::V6(v6) => (v6, (a.port & 0xff).min(128) as u8),
                    IpAddr::V4(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0),
                },
                None => (std::net::Ipv6Addr::UNSPECIFIED, 0),
            };
            if t == "MATCH_IPV6_SOURCE" { RuleKind::Ipv6Source { ip, bits } } else { RuleKind::Ipv6Dest { ip, bits } }
        }
        "MATCH_IP_TOS" => {
            RuleKind::IpTos { mask: int("mask", 0) as u8, low: int("start", 0) as u8, high: int("end", 0) as u8 }
        }
        "MATCH_IP_PROTOCOL" => RuleKind::IpProtocol(int("ipProtocol", 0) as u8),
        "MATCH_ETHERTYPE" => RuleKind::Ethertype(int("etherType", 0) as u16),
        "MATCH_ICMP" => {
            let icmp_type = int("icmpType", 0) as u8;
            match get("icmpCode") {
                None | Some(Value::Null) => RuleKind::Icmp { icmp_type, code: 0, flags: 0 },
                Some(code) => RuleKind::Icmp { icmp_type, code: json::int(Some(code), 0) as u8, flags: 0x01 },
            }
        }
        "MATCH_IP_SOURCE_PORT_RANGE" => {
            let (low, high) = range();
            RuleKind::SourcePortRange { low, high }
        }
        "MATCH_IP_DEST_PORT_RANGE" => {
            let (low, high) = range();
            RuleKind::DestPortRange { low, high }
        }
        "MATCH_CHARACTERISTICS" => RuleKind::Characteristics(match get("mask") {
            Some(Value::Number(_)) => json::int(get("mask"), 0),
            Some(Value::String(s)) => parse_hex(s),
            _ => 0,
        }),
        "MATCH_FRAME_SIZE_RANGE" => {
            let (low, high) = range();
            RuleKind::FrameSizeRange { low, high }
        }
        "MATCH_RANDOM" => RuleKind::Random(int("probability", 0) as u32),
        "MATCH_TAGS_DIFFERENCE" => RuleKind::TagsDifference(tag()),
        "MATCH_TAGS_BITWISE_AND" => RuleKind::TagsBitwiseAnd(tag()),
        "MATCH_TAGS_BITWISE_OR" => RuleKind::TagsBitwiseOr(tag()),
        "MATCH_TAGS_BITWISE_XOR" => RuleKind::TagsBitwiseXor(tag()),
        "MATCH_TAGS_EQUAL" => RuleKind::TagsEqual(tag()),
        "MATCH_TAG_SENDER" => RuleKind::TagSender(tag()),
        "MATCH_TAG_RECEIVER" => RuleKind::TagReceiver(tag()),
        _ => return None,
    };
    Some(Rule { not: json::boolean(get("not"), false), or: json::boolean(get("or"), false), kind })
}

/// The JSON zerotier-one's controller stores for a rule it accepted.
pub fn render_rule(rule: &Rule) -> Value {
    let mut r = Object::new();
    let mut set = |k: &str, v: Value| {
        r.insert(k.to_string(), v);
    };
    let forward = |set: &mut dyn FnMut(&str, Value), f: &Forward, length: bool| {
        set("address", json!(format!("{:010x}", f.address & 0xff_ffff_ffff)));
        set("flags", json!(f.flags));
        if length {
            set("length", json!(f.length));
        }
    };
    let tag = |set: &mut dyn FnMut(&str, Value), t: &TagMatch| {
        set("id", json!(t.id));
        set("value", json!(t.value));
    };
    let (name, is_match) = match &rule.kind {
        RuleKind::Drop => ("ACTION_DROP", false),
        RuleKind::Accept => ("ACTION_ACCEPT", false),
        RuleKind::Tee(f) => {
            forward(&mut set, f, true);
            ("ACTION_TEE", false)
        }
        RuleKind::Watch(f) => {
            forward(&mut set, f, true);
            ("ACTION_WATCH", false)
        }
        RuleKind::Redirect(f) => {
            forward(&mut set, f, false);
            ("ACTION_REDIRECT", false)
        }
        RuleKind::Break => ("ACTION_BREAK", false),
        RuleKind::SourceZeroTierAddress(a) => {
            set("zt", json!(a.to_string()));
            ("MATCH_SOURCE_ZEROTIER_ADDRESS", true)
        }
        RuleKind::DestZeroTierAddress(a) => {
            set("zt", json!(a.to_string()));
            ("MATCH_DEST_ZEROTIER_ADDRESS", true)
        }
        RuleKind::VlanId(v) => {
            set("vlanId", json!(v));
            ("MATCH_VLAN_ID", true)
        }
        RuleKind::VlanPcp(v) => {
            set("vlanPcp", json!(v));
            ("MATCH_VLAN_PCP", true)
        }
        RuleKind::VlanDei(v) => {
            set("vlanDei", json!(v));
            ("MATCH_VLAN_DEI", true)
        }
        RuleKind::MacSource(m) => {
            set("mac", json!(m.to_string()));
            ("MATCH_MAC_SOURCE", true)
        }
        RuleKind::MacDest(m) => {
            set("mac", json!(m.to_string()));
            ("MATCH_MAC_DEST", true)
        }
        RuleKind::Ipv4Source { ip, bits } => {
            set("ip", json!(format!("{ip}/{bits}")));
            ("MATCH_IPV4_SOURCE", true)
        }
        RuleKind::Ipv4Dest { ip, bits } => {
            set("ip", json!(format!("{ip}/{bits}")));
            ("MATCH_IPV4_DEST", true)
        }
        RuleKind::Ipv6Source { ip, bits } => {
            set("ip", json!(format!("{ip}/{bits}")));
            ("MATCH_IPV6_SOURCE", true)
        }
        RuleKind::Ipv6Dest { ip, bits } => {
            set("ip", json!(format!("{ip}/{bits}")));
            ("MATCH_IPV6_DEST", true)
        }
        RuleKind::IpTos { mask, low, high } => {
            set("mask", json!(mask));
            set("start", json!(low));
            set("end", json!(high));
            ("MATCH_IP_TOS", true)
        }
        RuleKind::IpProtocol(p) => {
            set("ipProtocol", json!(p));
            ("MATCH_IP_PROTOCOL", true)
        }
        RuleKind::Ethertype(e) => {
            set("etherType", json!(e));
            ("MATCH_ETHERTYPE", true)
        }
        RuleKind::Icmp { icmp_type, code, flags } => {
            set("icmpType", json!(icmp_type));
            set("icmpCode", if flags & 0x01 != 0 { json!(code) } else { Value::Null });
            ("MATCH_ICMP", true)
        }
        RuleKind::SourcePortRange { low, high } => {
            set("start", json!(low));
            set("end", json!(high));
            ("MATCH_IP_SOURCE_PORT_RANGE", true)
        }
        RuleKind::DestPortRange { low, high } => {
            set("start", json!(low));
            set("end", json!(high));
            ("MATCH_IP_DEST_PORT_RANGE", true)
        }
        RuleKind::Characteristics(mask) => {
            set("mask", json!(format!("{mask:016x}")));
            ("MATCH_CHARACTERISTICS", true)
        }
        RuleKind::FrameSizeRange { low, high } => {
            set("start", json!(low));
            set("end", json!(high));
            ("MATCH_FRAME_SIZE_RANGE", true)
        }
        RuleKind::Random(p) => {
            set("probability", json!(p));
            ("MATCH_RANDOM", true)
        }
        RuleKind::TagsDifference(t) => {
            tag(&mut set, t);
            ("MATCH_TAGS_DIFFERENCE", true)
        }
        RuleKind::TagsBitwiseAnd(t) => {
            tag(&mut set, t);
            ("MATCH_TAGS_BITWISE_AND", true)
        }
        RuleKind::TagsBitwiseOr(t) => {
            tag(&mut set, t);
            ("MATCH_TAGS_BITWISE_OR", true)
        }
        RuleKind::TagsBitwiseXor(t) => {
            tag(&mut set, t);
            ("MATCH_TAGS_BITWISE_XOR", true)
        }
        RuleKind::TagsEqual(t) => {
            tag(&mut set, t);
            ("MATCH_TAGS_EQUAL", true)
        }
        RuleKind::TagSender(t) => {
            tag(&mut set, t);
            ("MATCH_TAG_SENDER", true)
        }
        RuleKind::TagReceiver(t) => {
            tag(&mut set, t);
            ("MATCH_TAG_RECEIVER", true)
        }
        // Never produced by `parse_rule`; upstream renders them as an empty object.
        RuleKind::Priority
        | RuleKind::ReservedAction { .. }
        | RuleKind::ReservedMatch { .. }
        | RuleKind::IntegerRange { .. } => return Value::Object(Object::new()),
    };
    r.insert("type".into(), json!(name));
    if is_match {
        r.insert("not".into(), json!(rule.not));
        r.insert("or".into(), json!(rule.or));
    }
    Value::Object(r)
}

/// `Utils::hexStrToU64`: the leading hex digits.
fn parse_hex(s: &str) -> u64 {
    json::int_hex(Some(&Value::String(s.to_string())), 0)
}

/// `cleanMac` + `unhex`: `-` and `:` removed, then up to 6 bytes of hex (missing bytes are 0).
fn parse_mac(s: &str) -> Mac {
    let digits: Vec<u8> = s.bytes().filter(|&b| b != b'-' && b != b':').collect();
    let mut octets = [0u8; 6];
    for (i, pair) in digits.chunks(2).take(6).enumerate() {
        let text = std::str::from_utf8(pair).unwrap_or("0");
        match u8::from_str_radix(text, 16) {
            Ok(b) if pair.len() == 2 => octets[i] = b,
            _ => break,
        }
    }
    Mac::from_octets(octets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_usual_rule_sets() {
        let central = json!([
            {"type": "MATCH_ETHERTYPE", "etherType": 2048, "not": true, "or": false},
            {"type": "MATCH_ETHERTYPE", "etherType": 2054, "not": true, "or": false},
            {"type": "MATCH_ETHERTYPE", "etherType": 34525, "not": true, "or": false},
            {"type": "ACTION_DROP"},
            {"type": "ACTION_ACCEPT"}
        ]);
        let rules: Vec<Rule> = central.as_array().unwrap().iter().filter_map(parse_rule).collect();
        let mut wire = Vec::new();
        ztplane_protocol::rules::encode_rules(&rules, &mut wire);
        // §6.3: Central's usual default on the wire.
        assert_eq!(wire, [0xa5, 2, 8, 0, 0xa5, 2, 8, 6, 0xa5, 2, 0x86, 0xdd, 0, 0, 1, 0]);
        let rendered: Vec<Value> = rules.iter().map(render_rule).collect();
        assert_eq!(Value::Array(rendered), central);
    }

    #[test]
    fn fields_and_quirks() {
        let r = parse_rule(&json!({"type": "MATCH_IPV4_DEST", "ip": "198.19.0.0/24", "or": 1})).unwrap();
        assert_eq!(r.kind, RuleKind::Ipv4Dest { ip: "198.19.0.0".parse().unwrap(), bits: 24 });
        assert!(r.or && !r.not);
        let r = parse_rule(&json!({"type": "MATCH_IP_DEST_PORT_RANGE", "start": 22})).unwrap();
        assert_eq!(r.kind, RuleKind::DestPortRange { low: 22, high: 22 });
        let r = parse_rule(&json!({"type": "MATCH_MAC_SOURCE", "mac": "02-5a-11-22-33-44"})).unwrap();
        assert_eq!(render_rule(&r)["mac"], "02:5a:11:22:33:44");
        let r = parse_rule(&json!({"type": "MATCH_ICMP", "icmpType": 8})).unwrap();
        assert_eq!(render_rule(&r)["icmpCode"], Value::Null);
        let r = parse_rule(&json!({"type": "ACTION_TEE", "address": "2c80d43748", "length": 64})).unwrap();
        assert_eq!(render_rule(&r), json!({"type": "ACTION_TEE", "address": "2c80d43748", "flags": 0, "length": 64}));
        assert_eq!(parse_rule(&json!({"type": "INTEGER_RANGE", "start": 0})), None);
        assert_eq!(parse_rule(&json!({"type": "ACTION_PRIORITY"})), None);
        assert_eq!(parse_rule(&json!("ACTION_ACCEPT")), None);
    }
}
