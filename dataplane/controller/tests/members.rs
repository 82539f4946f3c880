//! A ztplane node as the controller of its own network, on the node tests' virtual network
//! (`../node/tests/common`): members are denied until an operator authorizes them through the
//! API paths, then get a pool address and a COM; a network change reaches them at once; a
//! deauthorized member is revoked everywhere; the controller joins its own network; the stored
//! records load back into a new controller.

#[path = "../../node/tests/common/mod.rs"]
mod common;

use common::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use ztplane_controller::api::{self, Answer};
use ztplane_controller::{NetworkController, StoreChange};
use ztplane_node::network::NetworkStatus;
use ztplane_node::{Instant, NetworkId};

/// Unix time of the sim's `Instant::ZERO` (any fixed value: the controller's clock is wall time).
const ORIGIN_MS: u64 = 1_790_000_000_000;

struct Net {
    sim: Sim,
    controller: Arc<Mutex<NetworkController>>,
    nwid: NetworkId,
}

impl Net {
    /// One API request, as the node's control socket makes it; changes are pushed at once.
    fn api(&mut self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let now = self.sim.now;
        let answer = api::handle(&mut self.controller.lock().unwrap(), now, method, path, body.as_ref());
        self.sim.nodes[0].node.poll_controller(now);
        answer
    }

    fn status(&self, i: usize) -> NetworkStatus {
        self.sim.nodes[i].node.network(self.nwid).map_or(NetworkStatus::NotFound, |n| n.status)
    }

    fn address_of(&self, i: usize) -> String {
        self.sim.nodes[i].identity.address().to_string()
    }

    fn member_path(&self, i: usize) -> String {
        format!("/controller/network/{:016x}/member/{}", self.nwid.0, self.address_of(i))
    }
}

/// The controller (moon, index 0, the conformance capture's c) with a network made through the
/// API like the capture's, and members a (1) and b (2) joining it.
fn network() -> Net {
    let ids = identities();
    let mut sim = Sim::new();
    let moon = moon(&ids[0], sim.underlay(0));
    let c = sim.add(ids[0].clone(), vec![moon.clone()], vec![], vec![]);
    let controller = Arc::new(Mutex::new(NetworkController::new(ids[0].clone(), ORIGIN_MS, 7)));
    sim.nodes[c].node.set_controller(Box::new(controller.clone()));
    let mut net = Net { sim, controller, nwid: NetworkId(0) };
    let created = net.api(
        "POST",
        &format!("/controller/network/{}______", ids[0].address()),
        Some(json!({"name": "bench", "private": true, "v4AssignMode": {"zt": true},
            "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
            "routes": [{"target": "198.19.0.0/24"}]})),
    );
    assert_eq!(created.status, 200);
    let body = created.body.unwrap();
    net.nwid = NetworkId(u64::from_str_radix(body["id"].as_str().unwrap(), 16).unwrap());
    assert_eq!(net.nwid.controller(), ids[0].address());
    assert_eq!(body["revision"], 1);
    for id in &ids[1..3] {
        let i = net.sim.add(id.clone(), vec![moon.clone()], vec![], vec![]);
        net.sim.nodes[i].node.join(net.nwid, net.sim.now).unwrap();
    }
    net
}

#[test]
fn members_are_denied_until_authorized_then_get_pool_addresses() {
    let mut net = network();
    assert!(net.sim.run_until(20_000, |s| {
        [1, 2]
            .iter()
            .all(|&i| s.nodes[i].node.network(net.nwid).is_some_and(|n| n.status == NetworkStatus::AccessDenied))
    }));
    // Each asked once and now has an unauthorized record an operator can see and authorize.
    let list = net.api("GET", &format!("/controller/network/{:016x}/member", net.nwid.0), None);
    let list = list.body.unwrap();
    assert_eq!(list.as_object().unwrap().len(), 2, "{list}");
    assert_eq!(list[net.address_of(1)], 1);
    let record = net.api("GET", &net.member_path(1), None).body.unwrap();
    assert_eq!(record["authorized"], false);
    assert_eq!(record["identity"], net.sim.nodes[1].identity.to_public().to_public_string());
    assert_eq!(record["ipAssignments"], json!([]));

    for i in [1, 2] {
        let path = net.member_path(i);
        let answer = net.api("POST", &path, Some(json!({"authorized": true})));
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body.as_ref().unwrap()["lastAuthorizedCredentialType"], "api");
    }
    // Denied members poll every 5 s, so they notice within seconds.
    assert!(net.sim.run_until(15_000, |s| [1, 2].iter().all(|&i| s.config(i, net.nwid).is_some())));
    // The addresses the conformance capture's zerotier-one controller picked for a and b.
    for (i, ip) in [(1, "198.19.0.241/24"), (2, "198.19.0.231/24")] {
        let config = net.sim.config(i, net.nwid).unwrap();
        assert_eq!(config.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>(), [ip]);
        assert_eq!(config.name, "bench");
        assert_eq!(config.routes[0].prefix_len, 24);
        assert_eq!(config.rules.len(), 1);
        assert_eq!(config.credential_window, 1_800_000);
        assert!(config.timestamp >= ORIGIN_MS);
        assert_eq!(config.coos.len(), 1);
        let record = net.api("GET", &net.member_path(i), None).body.unwrap();
        assert_eq!(record["ipAssignments"], json!([ip.split('/').next().unwrap()]));
        assert_eq!(record["vMajor"], 1);
        assert_eq!(record["vProto"], 12);
    }
    // The COMs agree: a and b let each other's frames through.
    let a = net.sim.nodes[1].identity.clone();
    let mac_a = net.sim.nodes[1].node.network(net.nwid).unwrap().mac.octets();
    let before = net.sim.nodes[2].delivered.len();
    net.sim.tap_send(1, net.nwid, &arp_request(mac_a, [198, 19, 0, 241], [198, 19, 0, 231]));
    assert!(net.sim.run_until(10_000, |s| s.nodes[2].delivered.len() > before), "b never saw a's ARP");
    assert!(net.sim.nodes[2].node.network(net.nwid).unwrap().gate(&a));
}

#[test]
fn changes_are_pushed_and_deauthorization_revokes() {
    let mut net = network();
    for i in [1, 2] {
        let path = net.member_path(i);
        net.api("POST", &path, Some(json!({"authorized": true})));
    }
    assert!(net.sim.run_until(20_000, |s| [1, 2].iter().all(|&i| s.config(i, net.nwid).is_some())));
    net.sim.run(2_000);

    // A network change reaches the members within milliseconds, not at the 60 s refresh.
    let path = format!("/controller/network/{:016x}", net.nwid.0);
    let changed = net.api("POST", &path, Some(json!({"name": "renamed", "mtu": 1400}))).body.unwrap();
    assert_eq!(changed["revision"], 2);
    assert!(net.sim.run_until(100, |s| [1, 2].iter().all(|&i| s.config(i, net.nwid).unwrap().name == "renamed")));
    assert_eq!(net.sim.config(1, net.nwid).unwrap().mtu, 1400);
    assert_eq!(net.sim.config(1, net.nwid).unwrap().revision, 2);

    // A fixed address for b replaces its pool address at once.
    let path = net.member_path(2);
    net.api("POST", &path, Some(json!({"ipAssignments": ["198.19.0.5"]})));
    assert!(net.sim.run_until(100, |s| s.config(2, net.nwid).unwrap().addresses[0].to_string() == "198.19.0.5/24"));

    // Deauthorizing a: every online member gets a revocation, so b shuts a out at once.
    let a = net.sim.nodes[1].identity.clone();
    let mac_a = net.sim.nodes[1].node.network(net.nwid).unwrap().mac.octets();
    net.sim.tap_send(1, net.nwid, &arp_request(mac_a, [198, 19, 0, 241], [198, 19, 0, 5]));
    assert!(net.sim.run_until(5_000, |s| s.nodes[2].node.network(net.nwid).unwrap().gate(&a)));
    let path = net.member_path(1);
    let record = net.api("POST", &path, Some(json!({"authorized": false}))).body.unwrap();
    assert_eq!(record["authorized"], false);
    assert!(record["lastDeauthorizedTime"].as_u64().unwrap() >= ORIGIN_MS);
    assert!(net.sim.run_until(100, |s| !s.nodes[2].node.network(net.nwid).unwrap().gate(&a)));
    let threshold = net.sim.nodes[2].node.network(net.nwid).unwrap().membership(a.address()).unwrap();
    assert!(threshold.com_revocation_threshold >= ORIGIN_MS);
    // a itself learns at its next request that it is out.
    assert!(
        net.sim.run_until(70_000, |s| s.nodes[1].node.network(net.nwid).unwrap().status == NetworkStatus::AccessDenied)
    );
}

#[test]
fn the_controller_joins_its_own_network() {
    let mut net = network();
    let nwid = net.nwid;
    let now = net.sim.now;
    net.sim.nodes[0].node.join(nwid, now).unwrap();
    net.sim.run_until(10_000, |s| s.nodes[0].node.network(nwid).unwrap().status == NetworkStatus::AccessDenied);
    assert_eq!(net.status(0), NetworkStatus::AccessDenied);
    let path = net.member_path(0);
    net.api("POST", &path, Some(json!({"authorized": true, "activeBridge": true})));
    assert!(net.sim.run_until(10_000, |s| s.config(0, nwid).is_some()));
    let config = net.sim.config(0, nwid).unwrap();
    assert_eq!(config.addresses[0].to_string(), "198.19.0.162/24");
    // The active bridge is named in every member's config.
    let path = net.member_path(1);
    net.api("POST", &path, Some(json!({"authorized": true})));
    assert!(net.sim.run_until(10_000, |s| s.config(1, nwid).is_some()));
    let bridges: Vec<_> = net.sim.config(1, nwid).unwrap().active_bridges().collect();
    assert_eq!(bridges, [net.sim.nodes[0].identity.address()]);
}

#[test]
fn unknown_networks_are_not_found_and_other_controllers_are_ignored() {
    let mut net = network();
    let missing = NetworkId(net.nwid.0 ^ 0x1);
    let now = net.sim.now;
    net.sim.nodes[1].node.join(missing, now).unwrap();
    assert!(net.sim.run_until(10_000, |s| s.nodes[1].node.network(missing).unwrap().status == NetworkStatus::NotFound));
    assert_eq!(
        net.api("GET", &format!("/controller/network/{:016x}", missing.0), None),
        Answer { status: 404, body: None }
    );
    assert_eq!(net.api("GET", "/controller/network/0123456789______", None).status, 404);
    assert_eq!(net.api("POST", "/controller/network/0123456789______", Some(json!({}))).status, 400);
}

#[test]
fn stored_records_load_back() {
    let mut net = network();
    let path = net.member_path(1);
    net.api("POST", &path, Some(json!({"authorized": true, "name": "a"})));
    assert!(net.sim.run_until(20_000, |s| s.config(1, net.nwid).is_some()));
    let mut changes = Vec::new();
    while let Some(c) = net.controller.lock().unwrap().poll_store() {
        changes.push(c);
    }
    assert!(matches!(&changes[0], StoreChange::Network { id, .. } if *id == net.nwid));
    let ids = identities();
    let mut copy = NetworkController::new(ids[0].clone(), ORIGIN_MS, 1);
    let mut last = std::collections::BTreeMap::new();
    for change in changes {
        match change {
            StoreChange::Network { id, record } => {
                last.insert((id.0, 0u64), record);
            }
            StoreChange::Member { network, address, record } => {
                last.insert((network.0, address.as_u64() + 1), record);
            }
            other => panic!("{other:?}"),
        }
    }
    for ((nwid, member), record) in last {
        if member == 0 {
            assert_eq!(copy.load_network(record).unwrap().0, nwid);
        } else {
            copy.load_member(NetworkId(nwid), record).unwrap();
        }
    }
    let original = net.controller.lock().unwrap();
    assert_eq!(copy.network(net.nwid), original.network(net.nwid));
    for i in [1, 2] {
        let address = net.sim.nodes[i].identity.address();
        assert_eq!(copy.member(net.nwid, address), original.member(net.nwid, address));
    }
    assert!(copy.load_member(NetworkId(1), json!({"id": "0123456789"})).is_err());
    assert!(copy.load_network(json!({"id": "12"})).is_err());
    assert!(copy.load_network(json!([])).is_err());
}

/// Requests straight to the controller: the 1 s repeat limit and an identity that does not match
/// the stored one.
#[test]
fn repeats_are_dropped_and_impostors_denied() {
    use ztplane_node::Controller;
    let ids = identities();
    let mut c = NetworkController::new(ids[0].clone(), ORIGIN_MS, 3);
    let now = Instant::from_millis(5_000);
    let body = json!({"v4AssignMode": {"zt": true}, "private": false,
        "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
        "routes": [{"target": "198.19.0.0/24"}]});
    let nwid = api::handle(&mut c, now, "POST", "/controller/network", Some(&body)).body.unwrap()["id"]
        .as_str()
        .map(|s| NetworkId(u64::from_str_radix(s, 16).unwrap()))
        .unwrap();
    // A public network authorizes whoever asks.
    assert!(matches!(c.request(now, nwid, &ids[1], b"revr=1\n"), Some(Ok(_))));
    let member = c.member(nwid, ids[1].address()).unwrap();
    assert_eq!(member["authorized"], true);
    assert_eq!(member["lastAuthorizedCredentialType"], "public");
    assert_eq!(c.request(now.add_ms(1_000), nwid, &ids[1], b""), None);
    assert!(c.request(now.add_ms(1_001), nwid, &ids[1], b"").is_some());
    // Same address, another key: the stored identity wins.
    let mut record = member.clone();
    record["identity"] = json!(format!("{}:0:{}", ids[2].address(), "00".repeat(64)));
    record["id"] = json!(ids[2].address().to_string());
    c.load_member(nwid, record).unwrap();
    assert_eq!(
        c.request(now.add_ms(5_000), nwid, &ids[2], b""),
        Some(Err(ztplane_protocol::verbs::ErrorCode::NETWORK_ACCESS_DENIED))
    );
    // Not our network: silence.
    assert_eq!(c.request(now, NetworkId(0x1234), &ids[1], b""), None);
}

/// The dictionary has the keys, order and value forms of the conformance capture's config for
/// a (record 21 of `expected-basic.json`): same network, same member, same binary lengths.
#[test]
fn configs_read_as_zerotier_one_writes_them() {
    use ztplane_node::Controller;
    use ztplane_protocol::dictionary::Dictionary;
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/zt-1.14.1");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(shared.join("expected-basic.json")).unwrap()).unwrap();
    let record = expected["records"].as_array().unwrap().iter().find(|r| r["index"] == 21).unwrap();
    let want = &record["decoded"]["in_re"]["dictionary"];
    let network: Value =
        serde_json::from_str(&std::fs::read_to_string(shared.join("nodes/controller-network.json")).unwrap()).unwrap();
    let ids = identities();
    let mut c = NetworkController::new(ids[0].clone(), ORIGIN_MS, 3);
    let nwid = c.load_network(network).unwrap();
    c.post_member(Instant::ZERO, nwid, ids[1].address(), &json!({"authorized": true})).unwrap();
    let metadata = b"v=0000000000000007\nmajv=0000000000000001\nminv=000000000000000e\nrevv=0000000000000001\npv=000000000000000c\nrevr=0000000000000001\n";
    let bytes = c.request(Instant::from_millis(5_000), nwid, &ids[1], metadata).unwrap().unwrap();
    let d = Dictionary::parse(&bytes).unwrap();
    let keys: Vec<&str> = d.keys().collect();
    assert_eq!(json!(keys), want["keys"]);
    for (key, value) in want["text_values"].as_object().unwrap() {
        if key != "ts" {
            assert_eq!(std::str::from_utf8(d.get(key).unwrap()).unwrap(), value.as_str().unwrap(), "{key}");
        }
    }
    assert_eq!(d.get("ts").unwrap(), format!("{:016x}", ORIGIN_MS + 5_000).as_bytes());
    for (key, len) in want["binary_value_lengths"].as_object().unwrap() {
        assert_eq!(d.get(key).unwrap().len() as u64, len.as_u64().unwrap(), "{key}");
    }
    let config = ztplane_node::config::NetworkConfig::parse(&bytes, nwid, ids[1].address()).unwrap();
    assert_eq!(config.addresses[0].to_string(), "198.19.0.241/24");
    assert!(config.com.as_ref().unwrap().verify(&ids[0]));
    assert!(config.coos[0].verify(&ids[0]));
}
