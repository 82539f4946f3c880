//! zerotier-one 1.14.1's controller API paths (EmbeddedNetworkController.cpp
//! `configureHTTPControlPlane`) over a [`NetworkController`]: which path does what, and the status
//! and body it answers. The HTTP server, the token and the address checks are the host's.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/controller` | `{"controller":true,"apiVersion":4,"clock":…,"databaseReady":true}` |
//! | GET | `/controller/network` | the network IDs |
//! | POST, PUT | `/controller/network` | a new network with a random ID under our address |
//! | POST, PUT | `/controller/network/<our address>______` | the same (400 for another address) |
//! | GET, POST, PUT, DELETE | `/controller/network/<nwid>` | the network; create/update; delete |
//! | GET | `/controller/network/<nwid>/member` | `{address: revision}` |
//! | GET, POST, PUT, DELETE | `/controller/network/<nwid>/member/<address>` | the member; create/update; delete |
//! | GET | `/unstable/controller/network[/<nwid>/member]` | whole records with counts |
//!
//! Unknown networks and members are `404` with no body, as upstream; a path that matches nothing
//! too ([`Answer::body`] `None`: the HTTP layer sends an empty body, or `{}` where upstream's
//! `setContent` would).

use crate::controller::NetworkController;
use serde_json::{Value, json};
use ztplane_crypto::Address;
use ztplane_node::{Instant, NetworkId};
use ztplane_protocol::wire::address_from_u64;

/// An API answer: HTTP status and JSON body (`None`: no body).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Option<Value>,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Answer { status: 200, body: Some(body) }
    }

    fn empty(status: u16) -> Self {
        Answer { status, body: None }
    }
}

/// Whether `path` is one of the controller's (so the caller can send everything else elsewhere).
pub fn is_controller_path(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    path == "/controller" || path.starts_with("/controller/") || path.starts_with("/unstable/controller/")
}

fn hex(s: &str, digits: usize) -> Option<u64> {
    (s.len() == digits && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| u64::from_str_radix(s, 16).ok())?
}

/// Answers one request; `body` is the request's JSON (absent: an empty object).
pub fn handle(
    controller: &mut NetworkController,
    now: Instant,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let empty = json!({});
    let body = body.unwrap_or(&empty);
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let write = matches!(method, "POST" | "PUT");
    let network = |s: &str| hex(s, 16).map(NetworkId);
    let member = |s: &str| hex(s, 10).map(address_from_u64);
    match (method, parts.as_slice()) {
        ("GET", ["controller"]) => Answer::ok(controller.status(now)),
        ("GET", ["controller", "network"]) => {
            let ids: Vec<String> = controller.network_ids().iter().map(|n| format!("{:016x}", n.0)).collect();
            Answer::ok(json!(ids))
        }
        ("GET", ["unstable", "controller", "network"]) => Answer::ok(controller.network_summaries()),
        (_, ["controller", "network"]) if write => match controller.create_network(now, body) {
            Some(record) => Answer::ok(record),
            None => Answer::empty(503),
        },
        (_, ["controller", "network", id]) if write && id.len() == 16 && id.ends_with("______") => {
            match hex(&id[..10], 10) {
                Some(a) if a == controller.address().as_u64() => match controller.create_network(now, body) {
                    Some(record) => Answer::ok(record),
                    None => Answer::empty(503),
                },
                Some(_) => Answer::empty(400),
                None => Answer::empty(404),
            }
        }
        (_, ["controller", "network", id]) => match (method, network(id)) {
            ("GET", Some(id)) => controller.network(id).map_or(Answer::empty(404), Answer::ok),
            (_, Some(id)) if write => Answer::ok(controller.post_network(now, id, body)),
            ("DELETE", Some(id)) => controller.delete_network(now, id).map_or(Answer::empty(404), Answer::ok),
            _ => Answer::empty(404),
        },
        ("GET", ["controller", "network", id, "member"]) => {
            network(id).and_then(|id| controller.member_revisions(id)).map_or(Answer::empty(404), Answer::ok)
        }
        ("GET", ["unstable", "controller", "network", id, "member"]) => {
            network(id).and_then(|id| controller.member_records(id)).map_or(Answer::empty(404), Answer::ok)
        }
        (_, ["controller", "network", id, "member", address]) => {
            let (Some(id), Some(address)) = (network(id), member(address)) else { return Answer::empty(404) };
            member_request(controller, now, method, id, address, body)
        }
        _ => Answer::empty(404),
    }
}

fn member_request(
    controller: &mut NetworkController,
    now: Instant,
    method: &str,
    id: NetworkId,
    address: Address,
    body: &Value,
) -> Answer {
    let found = match method {
        "GET" => controller.member(id, address),
        "POST" | "PUT" => controller.post_member(now, id, address, body),
        "DELETE" => controller.delete_member(now, id, address),
        _ => None,
    };
    found.map_or(Answer::empty(404), Answer::ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller() -> NetworkController {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/conformance/zt-1.14.1/nodes/c.identity.secret");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        NetworkController::new(text.trim().parse().unwrap(), 1_790_000_000_000, 9)
    }

    #[test]
    fn paths_and_answers() {
        let mut c = controller();
        let now = Instant::from_millis(1_000);
        let mut ask = |method: &str, path: &str, body: Option<Value>| handle(&mut c, now, method, path, body.as_ref());
        let status = ask("GET", "/controller", None);
        assert_eq!(status.body.unwrap()["clock"], 1_790_000_001_000u64);
        assert_eq!(ask("GET", "/controller/network", None), Answer::ok(json!([])));
        let created = ask("PUT", "/controller/network", Some(json!({"name": "x"}))).body.unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("2c80d43748") && created["nwid"] == id.as_str(), "{created}");
        assert_eq!(ask("GET", "/controller/network", None), Answer::ok(json!([id])));
        // Unchanged: same revision, nothing to store.
        let again = ask("POST", &format!("/controller/network/{id}"), Some(json!({"name": "x"}))).body.unwrap();
        assert_eq!(again["revision"], 1);
        let member = format!("/controller/network/{id}/member/cfe2482597");
        assert_eq!(ask("GET", &member, None), Answer::empty(404));
        assert_eq!(ask("DELETE", &member, None), Answer::empty(404));
        // Upper-case hex in the path: the record is still lower-case.
        let m = ask("POST", &format!("/controller/network/{id}/member/CFE2482597"), None);
        assert_eq!((m.status, &m.body.as_ref().unwrap()["id"]), (200, &json!("cfe2482597")));
        assert_eq!(ask("GET", &format!("/controller/network/{id}/member"), None), Answer::ok(json!({"cfe2482597": 1})));
        let listed = ask("GET", &format!("/unstable/controller/network/{id}/member"), None).body.unwrap();
        assert_eq!(listed["meta"], json!({"totalCount": 1, "authorizedCount": 0}));
        let networks = ask("GET", "/unstable/controller/network", None).body.unwrap();
        assert_eq!(networks["data"][0]["meta"], json!({"totalMemberCount": 1, "authorizedMemberCount": 0}));
        assert_eq!(ask("POST", "/controller/network/0000000001/member/cfe2482597", None), Answer::empty(404));
        assert_eq!(ask("GET", "/controller/network/nothex0000000000", None), Answer::empty(404));
        assert_eq!(ask("PATCH", &format!("/controller/network/{id}"), None), Answer::empty(404));
        assert_eq!(ask("DELETE", &member, None).status, 200);
        assert_eq!(ask("DELETE", &format!("/controller/network/{id}"), None).status, 200);
        assert_eq!(ask("GET", &format!("/controller/network/{id}"), None), Answer::empty(404));
        assert!(is_controller_path("/controller?auth=x") && is_controller_path("/unstable/controller/network"));
        assert!(!is_controller_path("/controllers") && !is_controller_path("/network"));
    }
}
