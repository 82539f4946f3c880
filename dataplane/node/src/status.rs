//! zerotier-one-shaped views of the node (its local API's `/status`, `/network`, `/peer`
//! objects, same field names), so `ztplanectl` prints what `zerotier-cli` prints and scripts
//! written for zerotier-one's JSON keep working.
//!
//! Times are milliseconds since the Unix epoch (zerotier-cli subtracts them from its wall
//! clock), 0 for "never": callers pass `unix_origin`, the Unix time of the node's `Instant(0)`.

use crate::network::Network;
use crate::peer::Peer;
use crate::time::Instant;
use crate::{ANNOUNCED_VERSION, NetworkId, Node};
use serde_json::{Value, json};

/// `/status`.
pub fn node_status(node: &Node, now: Instant, unix_origin: u64) -> Value {
    let (major, minor, rev) = ANNOUNCED_VERSION;
    json!({
        "address": node.address().to_string(),
        "publicIdentity": node.identity().to_public_string(),
        "online": node.online(),
        "tcpFallbackActive": false,
        "clock": now.as_millis() + unix_origin,
        "planetWorldId": node.planet.id,
        "planetWorldTimestamp": node.planet.timestamp,
        "version": format!("{major}.{minor}.{rev}"),
        "versionMajor": major,
        "versionMinor": minor,
        "versionRev": rev,
        "versionBuild": 0,
    })
}

/// One `/network` entry; `device` is the port's interface name.
pub fn network_status(network: &Network, device: &str) -> Value {
    let config = network.config.as_ref();
    let state = network.status.name();
    let groups: Vec<Value> =
        network.announced.iter().map(|g| json!({"mac": g.mac.to_string(), "adi": g.adi})).collect();
    // As zerotier-one: whether the controller lets us bridge (our address is in our MAC).
    let me = network.id.address_for(network.mac);
    let bridge = config.is_some_and(|c| me.is_some_and(|me| c.is_active_bridge(me)));
    let mut status = json!({
        "id": network.id.to_string(),
        "nwid": network.id.to_string(),
        "mac": network.mac.to_string(),
        "name": config.map_or(String::new(), |c| c.name.clone()),
        "status": state,
        "type": config.map_or("PRIVATE", |c| c.type_name()),
        "mtu": network.mtu(),
        "dhcp": false,
        "bridge": bridge,
        "broadcastEnabled": config.is_some_and(|c| c.broadcast_enabled()),
        "portError": 0,
        "netconfRevision": config.map_or(0, |c| c.revision),
        "assignedAddresses": config.map_or_else(Vec::new, |c| c.addresses.iter().map(|a| a.to_string()).collect()),
        "routes": config.map_or_else(Vec::new, |c| c.routes.iter().map(|r| json!({
            "target": format!("{}/{}", r.target, r.prefix_len),
            "via": r.via.map(|v| v.to_string()),
            "flags": r.flags,
            "metric": r.metric,
        })).collect()),
        "multicastSubscriptions": groups,
        "portDeviceName": device,
        "allowManaged": true,
        "allowGlobal": false,
        "allowDefault": false,
        "allowDNS": false,
        "dns": {
            "domain": config.map_or(String::new(), |c| c.dns_domain.clone()),
            "servers": config.map_or_else(Vec::new, |c| c.dns_servers.iter().map(|s| s.to_string()).collect()),
        },
    });
    if let Some(lan) = &network.lan {
        status["ztplane"] = json!({ "lan": {
            "macs": lan.macs(),
            "macLimit": crate::bridge::LAN_MACS_MAX,
            "unlearned": lan.unlearned,
            "droppedNotBridge": lan.dropped_not_bridge,
            "hairpin": lan.hairpin,
            "tooLarge": lan.too_large,
            "tooLargeForLan": lan.too_large_for_lan,
            "zeroTierMacs": lan.zerotier_macs,
            "mtu": lan.mtu,
        }});
    }
    status
}

/// `/network`: every joined network, each with its port name from `device_of`.
pub fn networks(node: &Node, device_of: &dyn Fn(NetworkId) -> String) -> Value {
    Value::Array(node.networks().map(|n| network_status(n, &device_of(n.id))).collect())
}

/// One `/peer` entry.
pub fn peer_status(node: &Node, peer: &Peer, now: Instant, unix_origin: u64) -> Value {
    let wall = |t: Instant| if t == Instant::ZERO { 0 } else { t.as_millis() + unix_origin };
    let role = if node.planet.roots.iter().any(|r| r.identity.address() == peer.address()) {
        "PLANET"
    } else if node.is_upstream(peer.address()) {
        "MOON"
    } else {
        "LEAF"
    };
    let best = peer.best_path(now).map(|p| (p.local, p.remote));
    let version = if peer.protocol_version == 0 {
        "-1.-1.-1".to_string()
    } else {
        format!("{}.{}.{}", peer.version.0, peer.version.1, peer.version.2)
    };
    if let Some((bond, bond_paths)) = node.bond(peer.address()) {
        return bonded_peer_status(peer, bond, bond_paths, role, &version, now, unix_origin);
    }
    json!({
        "address": peer.address().to_string(),
        "isBonded": false,
        "latency": peer.latency.map_or(-1, i64::from),
        "role": role,
        "version": version,
        "versionMajor": if peer.protocol_version == 0 { -1 } else { i64::from(peer.version.0) },
        "versionMinor": if peer.protocol_version == 0 { -1 } else { i64::from(peer.version.1) },
        "versionRev": if peer.protocol_version == 0 { -1 } else { i64::from(peer.version.2) },
        "tunneled": false,
        "paths": peer.paths.iter().map(|p| json!({
            "active": p.alive(now),
            "expired": !p.usable(now),
            "preferred": best == Some((p.local, p.remote)),
            "address": format!("{}/{}", p.remote.ip(), p.remote.port()),
            "lastSend": wall(p.last_send),
            "lastReceive": wall(p.last_receive),
            "localSocket": p.local,
            "trustedPathId": 0,
        })).collect::<Vec<_>>(),
    })
}

/// A bonded peer's `/peer` entry (zerotier-bonding.md §9): the bond's fields, and per
/// nominated path the bond's figures beside the usual path fields.
fn bonded_peer_status(
    peer: &Peer,
    bond: &ztplane_bond::Bond,
    bond_paths: &[(crate::LocalSocket, std::net::SocketAddr)],
    role: &str,
    version: &str,
    now: Instant,
    unix_origin: u64,
) -> Value {
    let wall = |t: Instant| if t == Instant::ZERO { 0 } else { t.as_millis() + unix_origin };
    let report = ztplane_bond::BondReport::new(bond, now.as_micros());
    let mut out = serde_json::to_value(&report).unwrap_or_else(|_| json!({}));
    let best = peer.best_path(now).map(|p| (p.local, p.remote));
    let paths: Vec<Value> = report
        .paths
        .iter()
        .zip(bond_paths)
        .map(|(r, &(local, remote))| {
            let mut v = serde_json::to_value(r).unwrap_or_else(|_| json!({}));
            let known = peer.paths.iter().find(|p| p.local == local && p.remote == remote);
            v["address"] = json!(format!("{}/{}", remote.ip(), remote.port()));
            v["active"] = json!(known.is_some_and(|p| p.alive(now)));
            v["expired"] = json!(known.is_none_or(|p| !p.usable(now)));
            v["preferred"] = json!(best == Some((local, remote)));
            v["lastSend"] = json!(known.map_or(0, |p| wall(p.last_send)));
            v["lastReceive"] = json!(known.map_or(0, |p| wall(p.last_receive)));
            v["localSocket"] = json!(local);
            v["trustedPathId"] = json!(0);
            v
        })
        .collect();
    out["address"] = json!(peer.address().to_string());
    out["latency"] = json!(peer.latency.map_or(-1, i64::from));
    out["role"] = json!(role);
    out["version"] = json!(version);
    out["versionMajor"] = json!(if peer.protocol_version == 0 { -1 } else { i64::from(peer.version.0) });
    out["versionMinor"] = json!(if peer.protocol_version == 0 { -1 } else { i64::from(peer.version.1) });
    out["versionRev"] = json!(if peer.protocol_version == 0 { -1 } else { i64::from(peer.version.2) });
    out["tunneled"] = json!(false);
    out["paths"] = Value::Array(paths);
    out["ztplane"] = json!({
        "peerAcks": bond.peer_acks(),
        "activePath": bond.active_path().map(|p| p.0),
        "stats": bond.stats(),
    });
    out
}

/// `/peer`.
/// `/moon`: the moons the node orbits, as zerotier-one lists them (`zerotier-cli listmoons`).
pub fn moons(node: &Node) -> Value {
    Value::Array(node.moons.iter().map(moon_status).collect())
}

/// One `/moon` entry.
pub fn moon_status(moon: &ztplane_protocol::world::World) -> Value {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    json!({
        "id": format!("{:016x}", moon.id),
        "timestamp": moon.timestamp,
        "signature": hex(&moon.signature),
        "updatesMustBeSignedBy": hex(&moon.updates_must_be_signed_by),
        "waiting": false,
        "roots": moon.roots.iter().map(|r| json!({
            "identity": r.identity.to_public_string(),
            "stableEndpoints": r.stable_endpoints.iter().map(|e| format!("{}/{}", e.ip(), e.port())).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

pub fn peers(node: &Node, now: Instant, unix_origin: u64) -> Value {
    let mut list: Vec<&Peer> = node.peers().collect();
    list.sort_by_key(|p| p.address());
    Value::Array(list.into_iter().map(|p| peer_status(node, p, now, unix_origin)).collect())
}
