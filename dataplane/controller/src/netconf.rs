//! The config a member gets (§2.3 "Config contents", §2.5): the netconf dictionary in the key
//! order and value forms of a 1.14.1 controller (`v nwid ts ctmd r id tt tl f ml t n mtu C CAP
//! TAG COO S RT I R DNS ssov ssoe`, integers as 16 hex digits), with the credentials signed by
//! the controller: the COM (VL1 §8.16), one COO for the member's static IPs, its tags and
//! capabilities (§3.7).
//!
//! Not issued: DNS beyond what the network record says, SSO (`ssoEnabled` networks are served as
//! if it were off), the legacy pre-1.2 keys.

use crate::assign;
use crate::inet::InetAddr;
use crate::json::{self, Object};
use crate::rules_json::parse_rule;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use ztplane_crypto::{Address, Identity};
use ztplane_protocol::credentials::{CertificateOfMembership, CertificateOfOwnership, OwnedThing, Tag};
use ztplane_protocol::dictionary::Dictionary;
use ztplane_protocol::inet::write_inet;
use ztplane_protocol::network::NetworkId;
use ztplane_protocol::rules::{MAX_NETWORK_RULES, Rule, RuleKind, encode_rules};
use ztplane_protocol::verbs::ErrorCode;
use ztplane_protocol::wire::WriteExt;

/// `ctmd` bounds and default (ms).
pub const CREDENTIAL_WINDOW_MIN: u64 = 300_000;
pub const CREDENTIAL_WINDOW_MAX: u64 = 7_200_000;
pub const CREDENTIAL_WINDOW_DEFAULT: u64 = 1_800_000;
/// `ZT_MAX_ZT_ASSIGNED_ADDRESSES`, `ZT_MAX_NETWORK_CAPABILITIES`, `ZT_MAX_NETWORK_TAGS`,
/// `ZT_MAX_CAPABILITY_RULES`, COO things.
const MAX_ADDRESSES: usize = 32;
const MAX_CAPABILITIES: usize = 128;
const MAX_TAGS: usize = 128;
const MAX_CAPABILITY_RULES: usize = 64;
const MAX_COO_THINGS: usize = 16;
/// Config flags (§2.5).
const FLAG_BROADCAST: u64 = 0x02;
const FLAG_NDP_EMULATION: u64 = 0x04;
/// Specialist flag of an active bridge (§2.5 `S`).
const SPECIALIST_ACTIVE_BRIDGE: u64 = 0x0000_0200_0000_0000;
/// The netconf format version written (`v`).
const CONFIG_VERSION: u64 = 7;

/// What a config is issued from.
pub struct Issue<'a> {
    pub network_id: NetworkId,
    pub network: &'a Object,
    /// The member's record: pool addresses and default tags/capabilities are added to it.
    pub member: &'a mut Object,
    /// The record did not exist before this request (default capabilities are granted then).
    pub new_member: bool,
    pub identity: &'a Identity,
    /// The request's metadata dictionary (§2.2).
    pub metadata: &'a Dictionary,
    /// Controller clock, Unix ms: `ts` and the credentials' timestamps.
    pub now: u64,
    /// Every address in any member's `ipAssignments`.
    pub taken: &'a BTreeSet<IpAddr>,
    /// Members marked `activeBridge`, in address order.
    pub active_bridges: &'a [Address],
    /// The controller's identity, with its secret.
    pub signer: &'a Identity,
}

/// The netconf dictionary for an authorized member; its record is updated in place. Errors only
/// when the controller cannot sign (OBJ_NOT_FOUND, upstream's internal-error answer).
pub fn issue(i: Issue<'_>) -> Result<Vec<u8>, ErrorCode> {
    let net = |k: &str| i.network.get(k);
    let member_id = i.identity.address().as_u64();
    let window = match net("certificateTimeoutWindowSize") {
        Some(v) => json::int(Some(v), CREDENTIAL_WINDOW_DEFAULT),
        None => CREDENTIAL_WINDOW_DEFAULT,
    }
    .clamp(CREDENTIAL_WINDOW_MIN, CREDENTIAL_WINDOW_MAX);
    let mut flags = if json::boolean(net("enableBroadcast"), true) { FLAG_BROADCAST } else { 0 };
    let mut name = json::string(net("name"), "").into_bytes();
    name.truncate(127);
    let mtu = (json::int(net("mtu"), 2800) as u32 as u64).clamp(1280, 10_000);
    let multicast_limit = json::int(net("multicastLimit"), 32) as u32;
    let (trace_target, trace_level) = remote_trace(i.network, i.member);

    let revr = i.metadata.get_u64("revr").unwrap_or(0);
    let (rules, capabilities, tags) = if revr == 0 {
        // Nodes without a rules engine get one ACCEPT (they still filter inbound themselves).
        (vec![Rule::new(RuleKind::Accept)], Vec::new(), Vec::new())
    } else {
        let rules: Vec<Rule> = match net("rules") {
            Some(Value::Array(list)) => list.iter().filter_map(parse_rule).take(MAX_NETWORK_RULES).collect(),
            _ => Vec::new(),
        };
        if i.new_member {
            add_default_capabilities(i.network, i.member);
        }
        add_default_tags(i.network, i.member);
        let capabilities = capabilities(&i)?;
        let tags = tags(&i)?;
        (rules, capabilities, tags)
    };

    let routes = assign::routes(i.network);
    let mut addresses: Vec<InetAddr> = Vec::new();
    let no_auto = json::boolean(i.member.get("noAutoAssignIps"), false);
    let v6_modes = net("v6AssignMode").and_then(Value::as_object);
    if let Some(modes) = v6_modes.filter(|_| !no_auto) {
        if json::boolean(modes.get("rfc4193"), false) {
            addresses.push(assign::rfc4193(i.network_id, member_id));
            flags |= FLAG_NDP_EMULATION;
        }
        if json::boolean(modes.get("6plane"), false) {
            addresses.push(assign::six_plane(i.network_id, member_id));
            flags |= FLAG_NDP_EMULATION;
        }
    }
    let (mut have_v4, mut have_v6) = (false, false);
    let mut assigned: Vec<Value> = match i.member.get("ipAssignments") {
        Some(Value::Array(list)) => list.clone(),
        _ => Vec::new(),
    };
    for text in assigned.iter().filter_map(Value::as_str) {
        let Some(ip) = InetAddr::parse(text).map(|a| a.ip) else { continue };
        if let Some(bits) = assign::routed_prefix(&routes, ip) {
            if addresses.len() < MAX_ADDRESSES {
                addresses.push(InetAddr::new(ip, bits));
            }
            if ip.is_ipv4() {
                have_v4 = true;
            } else {
                have_v6 = true;
            }
        }
    }
    let pools = assign::pools(i.network);
    let v4_auto = net("v4AssignMode").and_then(Value::as_object).is_some_and(|m| json::boolean(m.get("zt"), false));
    let v6_auto = v6_modes.is_some_and(|m| json::boolean(m.get("zt"), false));
    let mut add_pool_address = |ip: IpAddr, bits: u16, addresses: &mut Vec<InetAddr>| {
        let text = Value::String(ip.to_string());
        if !assigned.contains(&text) {
            assigned.push(text);
            i.member.insert("ipAssignments".into(), Value::Array(assigned.clone()));
            if addresses.len() < MAX_ADDRESSES {
                addresses.push(InetAddr::new(ip, bits));
            }
        }
    };
    if v6_auto
        && !have_v6
        && !no_auto
        && let Some((ip, bits)) = assign::pick_ipv6(&pools, &routes, i.network_id, member_id, i.taken)
    {
        add_pool_address(IpAddr::V6(ip), bits, &mut addresses);
    }
    if v4_auto
        && !have_v4
        && !no_auto
        && let Some((ip, bits)) = assign::pick_ipv4(&pools, &routes, member_id, i.taken)
    {
        add_pool_address(IpAddr::V4(ip), bits, &mut addresses);
    }

    let mut d = Dictionary::new();
    d.set_u64("v", CONFIG_VERSION);
    d.set_u64("nwid", i.network_id.0);
    d.set_u64("ts", i.now);
    d.set_u64("ctmd", window);
    d.set_u64("r", json::int(net("revision"), 0));
    d.set("id", i.identity.address().to_string());
    d.set("tt", format!("{:010x}", trace_target));
    d.set_u64("tl", trace_level);
    d.set_u64("f", flags);
    d.set_u64("ml", u64::from(multicast_limit));
    d.set_u64("t", if json::boolean(net("private"), true) { 0 } else { 1 });
    d.set("n", name);
    d.set_u64("mtu", mtu);
    let mut com = CertificateOfMembership::new_for_member(i.network_id, i.now, window, i.identity);
    com.sign(i.signer).map_err(|_| ErrorCode::OBJ_NOT_FOUND)?;
    let mut bytes = Vec::new();
    com.write(&mut bytes);
    d.set("C", bytes);
    if !capabilities.is_empty() {
        d.set("CAP", capabilities.concat());
    }
    if !tags.is_empty() {
        d.set("TAG", tags.concat());
    }
    if !addresses.is_empty() {
        let mut coo = CertificateOfOwnership {
            network_id: i.network_id,
            timestamp: i.now,
            flags: 0,
            id: 1,
            things: addresses
                .iter()
                .take(MAX_COO_THINGS)
                .map(|a| match a.ip {
                    IpAddr::V4(v4) => OwnedThing::Ipv4(v4),
                    IpAddr::V6(v6) => OwnedThing::Ipv6(v6),
                })
                .collect(),
            issued_to: i.identity.address(),
            signed_by: i.signer.address(),
            signature_type: 0,
            signature: Vec::new(),
            extension: Vec::new(),
        };
        coo.sign(i.signer).map_err(|_| ErrorCode::OBJ_NOT_FOUND)?;
        let mut bytes = Vec::new();
        coo.write(&mut bytes);
        d.set("COO", bytes);
    }
    if !i.active_bridges.is_empty() {
        let mut bytes = Vec::new();
        for bridge in i.active_bridges.iter().take(256) {
            bytes.put_u64(bridge.as_u64() | SPECIALIST_ACTIVE_BRIDGE);
        }
        d.set("S", bytes);
    }
    if !routes.is_empty() {
        let mut bytes = Vec::new();
        for r in &routes {
            write_inet(&mut bytes, Some(&SocketAddr::new(r.target.ip, r.target.port)));
            write_inet(&mut bytes, r.via.map(|v| SocketAddr::new(v, 0)).as_ref());
            bytes.put_u16(0);
            bytes.put_u16(0);
        }
        d.set("RT", bytes);
    }
    if !addresses.is_empty() {
        let mut bytes = Vec::new();
        for a in &addresses {
            write_inet(&mut bytes, Some(&SocketAddr::new(a.ip, a.port)));
        }
        d.set("I", bytes);
    }
    if !rules.is_empty() {
        let mut bytes = Vec::new();
        encode_rules(&rules, &mut bytes);
        d.set("R", bytes);
    }
    d.set("DNS", dns(i.network));
    d.set_u64("ssov", 0);
    d.set("ssoe", "0");
    Ok(d.encode())
}

/// `tt`/`tl`: the member's remote trace target if it has one, else the network's.
fn remote_trace(network: &Object, member: &Object) -> (u64, u64) {
    let target = |r: &Object| {
        let t = json::string(r.get("remoteTraceTarget"), "");
        (t.len() == 10).then(|| json::int_hex(Some(&Value::String(t)), 0))
    };
    match target(member) {
        Some(t) => (t, json::int(member.get("remoteTraceLevel"), 0)),
        None => (target(network).unwrap_or(0), json::int(network.get("remoteTraceLevel"), 0)),
    }
}

/// `DNS`: 128-byte NUL-padded domain ‖ 4 InetAddresses (null if unused); always present.
fn dns(network: &Object) -> Vec<u8> {
    let mut out = vec![0u8; 128];
    let mut servers: Vec<IpAddr> = Vec::new();
    if let Some(Value::Object(dns)) = network.get("dns") {
        let domain = json::string(dns.get("domain"), "");
        let len = domain.len().min(127);
        out[..len].copy_from_slice(&domain.as_bytes()[..len]);
        if let Some(Value::Array(list)) = dns.get("servers") {
            servers =
                list.iter().take(4).filter_map(|s| InetAddr::parse(&json::string(Some(s), ""))).map(|a| a.ip).collect();
        }
    }
    for slot in 0..4 {
        write_inet(&mut out, servers.get(slot).map(|ip| SocketAddr::new(*ip, 0)).as_ref());
    }
    out
}

/// The member's capabilities (its `capabilities` IDs that the network defines), each signed for
/// it: a custody chain of one, controller → member.
fn capabilities(i: &Issue<'_>) -> Result<Vec<Vec<u8>>, ErrorCode> {
    let mut by_id: BTreeMap<u32, &Value> = BTreeMap::new();
    if let Some(Value::Array(caps)) = i.network.get("capabilities") {
        for cap in caps.iter().filter(|c| c.is_object()) {
            by_id.insert(json::int(cap.get("id"), 0) as u32, cap);
        }
    }
    let mut out = Vec::new();
    let Some(Value::Array(member_caps)) = i.member.get("capabilities") else { return Ok(out) };
    for id in member_caps.iter().map(|c| json::int(Some(c), 0) as u32) {
        let Some(cap) = by_id.get(&id) else { continue };
        let rules: Vec<Rule> = match cap.get("rules") {
            Some(Value::Array(list)) => list.iter().filter_map(parse_rule).take(MAX_CAPABILITY_RULES).collect(),
            _ => Vec::new(),
        };
        out.push(capability(i.network_id, i.now, id, &rules, i.identity.address(), i.signer)?);
        if out.len() >= MAX_CAPABILITIES {
            break;
        }
    }
    Ok(out)
}

/// A capability as 1.14.1 serializes it (§3.7): `nwid ‖ ts ‖ id ‖ ruleCount ‖ rules ‖ maxChain 1
/// ‖ to ‖ from ‖ 01 ‖ u16 96 ‖ signature ‖ 5 zero bytes ‖ u16 0`.
fn capability(
    network: NetworkId,
    now: u64,
    id: u32,
    rules: &[Rule],
    to: Address,
    signer: &Identity,
) -> Result<Vec<u8>, ErrorCode> {
    let mut head = Vec::new();
    head.put_u64(network.0);
    head.put_u64(now);
    head.put_u32(id);
    head.put_u16(rules.len() as u16);
    encode_rules(rules, &mut head);
    head.put_u8(1);
    let mut signed = vec![0x7f; 8];
    signed.extend_from_slice(&head);
    signed.put_u16(0);
    signed.extend_from_slice(&[0x7f; 8]);
    let signature = signer.sign(&signed).map_err(|_| ErrorCode::OBJ_NOT_FOUND)?;
    let mut out = head;
    out.put_address(&to);
    out.put_address(&signer.address());
    out.put_u8(1);
    out.put_u16(signature.len() as u16);
    out.extend_from_slice(&signature);
    out.extend_from_slice(&[0; 5]);
    out.put_u16(0);
    Ok(out)
}

/// The member's tags (`[[id, value], ...]` of its record, the network's defaults already added),
/// each signed for it.
fn tags(i: &Issue<'_>) -> Result<Vec<Vec<u8>>, ErrorCode> {
    let mut values: BTreeMap<u32, u32> = BTreeMap::new();
    if let Some(Value::Array(list)) = i.member.get("tags") {
        for t in list.iter().filter_map(Value::as_array).filter(|t| t.len() == 2) {
            values.insert(json::int(Some(&t[0]), 0) as u32, json::int(Some(&t[1]), 0) as u32);
        }
    }
    let mut out = Vec::new();
    for (&id, &value) in values.iter().take(MAX_TAGS) {
        let mut tag = Tag {
            network_id: i.network_id,
            timestamp: i.now,
            id,
            value,
            issued_to: i.identity.address(),
            signed_by: i.signer.address(),
            signature_type: 1,
            signature: Vec::new(),
            extension: Vec::new(),
        };
        tag.signature = i.signer.sign(&tag.signed_bytes()).map_err(|_| ErrorCode::OBJ_NOT_FOUND)?.to_vec();
        let mut bytes = Vec::new();
        tag.write(&mut bytes);
        out.push(bytes);
    }
    Ok(out)
}

/// Adds the network's default tags a member lacks to its record (upstream does this while
/// issuing, for members of rules-engine-capable nodes).
fn add_default_tags(network: &Object, member: &mut Object) {
    let mut tags: Vec<Value> = match member.get("tags") {
        Some(Value::Array(list)) => list.clone(),
        _ => Vec::new(),
    };
    let have: BTreeSet<u32> = tags
        .iter()
        .filter_map(Value::as_array)
        .filter(|t| t.len() == 2)
        .map(|t| json::int(Some(&t[0]), 0) as u32)
        .collect();
    let mut changed = false;
    if let Some(Value::Array(list)) = network.get("tags") {
        for t in list.iter().filter_map(Value::as_object) {
            let id = json::int(t.get("id"), 0) as u32;
            if let Some(d) = t.get("default").filter(|d| d.is_number())
                && !have.contains(&id)
            {
                tags.push(json!([id, d]));
                changed = true;
            }
        }
    }
    if changed {
        member.insert("tags".into(), Value::Array(tags));
    }
}

/// Adds the network's default capabilities to a new member's record.
fn add_default_capabilities(network: &Object, member: &mut Object) {
    let Some(Value::Array(caps)) = network.get("capabilities") else { return };
    let mut list: Vec<Value> = match member.get("capabilities") {
        Some(Value::Array(list)) => list.clone(),
        _ => Vec::new(),
    };
    let mut changed = false;
    for cap in caps.iter().filter(|c| json::boolean(c.get("default"), false)) {
        let id = json::int(cap.get("id"), 0) & 0xffff_ffff;
        if !list.iter().any(|c| json::int(Some(c), 0) & 0xffff_ffff == id) {
            list.push(json!(id));
            changed = true;
        }
    }
    if changed {
        member.insert("capabilities".into(), Value::Array(list));
    }
}
