//! zerotier-one 1.14.1's local HTTP API, answered from the node's control socket: routing, the token and address
//! checks, and the bodies and status codes zerotier-one sends, so the real `zerotier-cli` cannot tell the
//! difference. Independent of the HTTP server: [`Api::handle`] maps a request to a response.
//!
//! Upstream behaviour reproduced (service/OneService.cpp):
//! - Every request but `/health` needs the token (see [`crate::auth`]) and, except `/metrics`, a loopback peer or
//!   one inside `local.conf` `settings.allowManagementFrom`; otherwise `401 {}`.
//! - Paths must match whole: `/network/<16 hex>`, `/peer/<10 hex>`, `/bond/show/<10 hex>`, ... Anything else,
//!   including a known path with another method, is a 404 with an empty body.
//! - An empty handler result is sent as `{}` (its `setContent`): e.g. `GET /network/<not joined>` is `404 {}`.
//! - `GET /peer/<unknown>` is `200 {}`; `DELETE /network/<not joined>` is `200 {}`.
//! - Bonds: `GET /bond/show/<peer>` is the bonded peer's JSON, or `400` with an empty body when the peer has no
//!   bond; `POST /bond/rotate/<peer>` is `200 {}` or `400 {}` (active-backup only). `zerotier-cli bond list` reads
//!   `GET /peer` (bonded peers carry `isBonded: true` and the bond's fields). Per-link MTUs are not supported:
//!   `POST /bond/setmtu/...` is `400 Bonding layer isn't active yet`, as zerotier-one without bonding.
//!
//! - The network controller: `/controller`, `/controller/network[/<nwid>[/member[/<address>]]]`,
//!   `/controller/network/<our address>______` and `/unstable/controller/...` (GET, POST, PUT, DELETE) are relayed
//!   to the node, whose controller answers as zerotier-one's does (`ztplane_controller::api`). A POST or PUT body
//!   that is not JSON is `500 {"error":500,"description":...}` (zerotier-one's exception handler); a `404` or `400`
//!   from the controller has an empty body, as upstream's.
//!
//! Not provided (404): `/moon` writes (orbit, deorbit: put the file in `moons.d/`), `/config`, `/sso`, `/app`, the `jsonp` parameter.
use crate::auth::Presented;
use crate::metrics;
use crate::node::dump;
use serde_json::{Value, json};
use std::io;
use std::net::IpAddr;
use ztplane_host::control_socket::{Request, Response};

/// Asks the node one control request.
pub type NodeClient = dyn Fn(&Request) -> io::Result<Response> + Send + Sync;

/// The parts of an HTTP request the API looks at.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// Path and query as sent (`/status?auth=...`).
    pub url: &'a str,
    pub x_zt1_auth: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub remote: Option<IpAddr>,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl HttpResponse {
    fn json(status: u16, body: String) -> Self {
        HttpResponse { status, content_type: "application/json", body }
    }

    /// Through zerotier-one's `setContent`: an empty body goes out as `{}`.
    fn content(status: u16, body: &str) -> Self {
        HttpResponse::json(status, if body.is_empty() { "{}".into() } else { body.into() })
    }

    /// No route: nothing at all in the body (zerotier-cli prints nothing after the code).
    fn not_found() -> Self {
        HttpResponse::json(404, String::new())
    }

    fn node_down(err: &io::Error) -> Self {
        let body = json!({"error": format!("ztplane node not reachable on its control socket: {err}")});
        HttpResponse::json(503, dump(&body, None))
    }
}

/// What a path and method ask for.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Status,
    Health,
    Networks,
    Network(String),
    Join(String),
    Leave(String),
    Peers,
    Peer(String),
    BondShow(String),
    BondRotate(String),
    BondSetMtu,
    /// `/moon` (`id` empty) or `/moon/<id>`: the moons the node orbits.
    Moon(String),
    Metrics,
    /// `/controller...` and `/unstable/controller/...`: relayed with the method and path.
    Controller,
    NotFound,
}

/// Routes like zerotier-one's whole-path patterns (the query string is not part of the path).
pub fn route(method: &str, path: &str) -> Route {
    let parts: Vec<&str> = path.strip_prefix('/').unwrap_or("\0").split('/').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let write = matches!(method, "POST" | "PUT");
    match (method, parts.as_slice()) {
        ("GET", ["status"]) => Route::Status,
        ("GET", ["health"]) => Route::Health,
        ("GET", ["metrics"]) => Route::Metrics,
        ("GET", ["network"]) => Route::Networks,
        ("GET", ["network", id]) if hex(id, 16) => Route::Network(id.to_ascii_lowercase()),
        (_, ["network", id]) if write && hex(id, 16) => Route::Join(id.to_ascii_lowercase()),
        ("DELETE", ["network", id]) if hex(id, 16) => Route::Leave(id.to_ascii_lowercase()),
        ("GET", ["peer"]) => Route::Peers,
        ("GET", ["moon"]) => Route::Moon(String::new()),
        ("GET", ["moon", id]) if hex(id, 16) => Route::Moon(id.to_ascii_lowercase()),
        ("GET", ["peer", address]) if hex(address, 10) => Route::Peer(address.to_ascii_lowercase()),
        ("GET", ["bond", "show", address]) if hex(address, 10) => Route::BondShow(address.to_ascii_lowercase()),
        (_, ["bond", "rotate", address]) if write && hex(address, 10) => {
            Route::BondRotate(address.to_ascii_lowercase())
        }
        (_, ["bond", "setmtu", mtu, iface, ip]) if write && is_setmtu(mtu, iface, ip) => Route::BondSetMtu,
        ("GET" | "POST" | "PUT" | "DELETE", ["controller", ..] | ["unstable", "controller", "network", ..]) => {
            Route::Controller
        }
        _ => Route::NotFound,
    }
}

/// `/bond/setmtu/([0-9]{1,6})/([a-zA-Z0-9_]{1,16})/([0-9a-fA-F\.\:]{1,39})`.
fn is_setmtu(mtu: &str, iface: &str, ip: &str) -> bool {
    let all = |s: &str, max: usize, ok: fn(u8) -> bool| (1..=max).contains(&s.len()) && s.bytes().all(ok);
    all(mtu, 6, |b| b.is_ascii_digit())
        && all(iface, 16, |b| b.is_ascii_alphanumeric() || b == b'_')
        && all(ip, 39, |b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
}

/// An address block from `allowManagementFrom` (`ip/bits`, or a bare address for one host).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (ip, bits) = text.split_once('/').unwrap_or((text, ""));
        let addr: IpAddr = ip.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = if bits.is_empty() { max } else { bits.trim().parse().ok().filter(|b| *b <= max)? };
        Some(Cidr { addr, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let (net, ip, width) = match (canonical(self.addr), ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => (u128::from(u32::from(n)), u128::from(u32::from(i)), 32),
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
            _ => return false,
        };
        let shift = width - u32::from(self.bits);
        shift >= 128 || (net >> shift) == (ip >> shift)
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The API: the node to ask, the tokens, and who may manage it.
pub struct Api {
    node: Box<NodeClient>,
    auth_token: String,
    metrics_token: Option<String>,
    allow_management_from: Vec<Cidr>,
    /// The node's pinned link quality map, read on every scrape.
    link_quality: std::path::PathBuf,
}

impl Api {
    pub fn new(
        node: Box<NodeClient>,
        auth_token: String,
        metrics_token: Option<String>,
        allow_management_from: Vec<Cidr>,
    ) -> Self {
        let link_quality =
            crate::bond::pin_path(std::path::Path::new(crate::bond::DEFAULT_BPFFS), crate::bond::DEFAULT_INSTANCE);
        Api { node, auth_token, metrics_token, allow_management_from, link_quality }
    }

    /// Reads link metrics from this pin instead of the default instance's.
    pub fn with_link_quality(mut self, pin: std::path::PathBuf) -> Self {
        self.link_quality = pin;
        self
    }

    pub fn handle(&self, req: &HttpRequest) -> HttpResponse {
        let (path, query) = req.url.split_once('?').map_or((req.url, None), |(p, q)| (p, Some(q)));
        let presented = Presented::from_request(req.x_zt1_auth, query, req.authorization);
        let route = route(req.method, path);
        let authorized = if path == "/metrics" {
            // zerotier-one checks no address for /metrics, and takes either token.
            let tokens: Vec<&str> =
                [Some(self.auth_token.as_str()), self.metrics_token.as_deref()].into_iter().flatten().collect();
            presented.matches_any(&tokens)
        } else {
            self.address_allowed(req.remote) && (path == "/health" || presented.matches_any(&[&self.auth_token]))
        };
        if !authorized {
            return HttpResponse::content(401, "{}");
        }
        if route == Route::Controller {
            return self.controller(req.method, path, req.body).unwrap_or_else(|err| HttpResponse::node_down(&err));
        }
        match self.answer(route, req.body) {
            Ok(response) => response,
            Err(err) => HttpResponse::node_down(&err),
        }
    }

    /// `/metrics` in Prometheus text format, or 503 if the node does not answer.
    pub fn metrics(&self) -> HttpResponse {
        match metrics::Snapshot::take_from(&*self.node, &self.link_quality) {
            Ok(snap) => HttpResponse { status: 200, content_type: metrics::CONTENT_TYPE, body: metrics::render(&snap) },
            Err(err) => HttpResponse::node_down(&err),
        }
    }

    fn address_allowed(&self, remote: Option<IpAddr>) -> bool {
        let Some(ip) = remote.map(canonical) else { return false };
        ip.is_loopback() || self.allow_management_from.iter().any(|c| c.contains(ip))
    }

    fn ask(&self, method: &str, path: &str, body: Option<Value>) -> io::Result<Response> {
        (self.node)(&Request::new(method, path, body))
    }

    /// A node answer as zerotier-one's HTTP answer: its compact JSON, a missing body as `{}`.
    fn relay(&self, method: &str, path: &str, body: Option<Value>) -> io::Result<HttpResponse> {
        let resp = self.ask(method, path, body)?;
        let text = if resp.body.is_null() { String::new() } else { dump(&resp.body, None) };
        Ok(HttpResponse::content(resp.status, &text))
    }

    /// The controller API: the node's answer with its status; no body where zerotier-one sends none.
    fn controller(&self, method: &str, path: &str, body: &[u8]) -> io::Result<HttpResponse> {
        let body = match method {
            "POST" | "PUT" => match serde_json::from_slice::<Value>(body) {
                Ok(value) => Some(value),
                Err(e) => {
                    let error = json!({"error": 500, "description": e.to_string()});
                    return Ok(HttpResponse::json(500, dump(&error, None)));
                }
            },
            _ => None,
        };
        let resp = self.ask(method, path, body)?;
        let text = if resp.body.is_null() { String::new() } else { dump(&resp.body, None) };
        Ok(HttpResponse::json(resp.status, text))
    }

    fn answer(&self, route: Route, body: &[u8]) -> io::Result<HttpResponse> {
        Ok(match route {
            Route::Status => self.relay("GET", "/status", None)?,
            Route::Networks => self.relay("GET", "/network", None)?,
            Route::Peers => self.relay("GET", "/peer", None)?,
            Route::Moon(id) if id.is_empty() => self.relay("GET", "/moon", None)?,
            Route::Moon(id) => self.relay("GET", &format!("/moon/{id}"), None)?,
            Route::Network(id) => self.relay("GET", &format!("/network/{id}"), None)?,
            Route::Leave(id) => self.relay("DELETE", &format!("/network/{id}"), None)?,
            Route::Join(id) => {
                // zerotier-one reads allowManaged & co. from the body and ignores a body that is not JSON.
                let settings = serde_json::from_slice::<Value>(body).ok().filter(Value::is_object);
                let settings = settings.unwrap_or_else(|| json!({}));
                self.relay("POST", &format!("/network/{id}"), Some(settings))?
            }
            Route::Peer(address) => {
                let resp = self.ask("GET", &format!("/peer/{address}"), None)?;
                match resp.status {
                    // zerotier-one answers an unknown peer with an empty object, not an error.
                    404 => HttpResponse::content(200, "{}"),
                    status => HttpResponse::content(status, &dump(&resp.body, None)),
                }
            }
            Route::Health => {
                let resp = self.ask("GET", "/status", None)?;
                let status = &resp.body;
                let mut health = serde_json::Map::new();
                for key in ["online", "versionMajor", "versionMinor", "versionRev", "versionBuild", "version", "clock"]
                {
                    if let Some(v) = status.get(key) {
                        health.insert(key.into(), v.clone());
                    }
                }
                HttpResponse::content(resp.status, &dump(&Value::Object(health), None))
            }
            Route::BondShow(address) => {
                let resp = self.ask("GET", &format!("/bond/show/{address}"), None)?;
                match resp.status {
                    200 => HttpResponse::content(200, &dump(&resp.body, None)),
                    status => HttpResponse::content(status, ""),
                }
            }
            Route::BondRotate(address) => {
                let resp = self.ask("POST", &format!("/bond/rotate/{address}"), None)?;
                HttpResponse::content(resp.status, "{}")
            }
            Route::BondSetMtu => HttpResponse::content(400, "Bonding layer isn't active yet"),
            Route::Metrics => self.metrics(),
            Route::Controller | Route::NotFound => HttpResponse::not_found(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    const TOKEN: &str = "abcdefghijklmnopqrstuvwx";

    /// An API over a fake node that records what it was asked and answers from `answer`.
    fn api(answer: fn(&Request) -> Response) -> (Api, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let node = move |req: &Request| {
            log.lock().unwrap().push(format!(
                "{} {} {}",
                req.method,
                req.path,
                req.body.clone().unwrap_or(Value::Null)
            ));
            Ok(answer(req))
        };
        (Api::new(Box::new(node), TOKEN.into(), Some("metricsmetricsmetricsmetr".into()), Vec::new()), seen)
    }

    fn node_like(req: &Request) -> Response {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/status") => Response::new(
                200,
                json!({"address": "0123456789", "online": true, "version": "1.14.1", "clock": 5, "publicIdentity": "x"}),
            ),
            ("GET", "/peer/aaaaaaaaaa") => Response::new(200, json!({"address": "aaaaaaaaaa"})),
            ("GET", "/peer/" | "/peer/bbbbbbbbbb") => Response::new(404, json!({})),
            ("GET", "/network/8056c2e21c000001") => Response::new(404, Value::Null),
            ("GET", "/bond/show/cccccccccc") => Response::new(200, json!({"address": "cccccccccc", "isBonded": true})),
            ("GET", p) if p.starts_with("/bond/show/") => Response::new(400, json!({})),
            ("POST", "/bond/rotate/cccccccccc") => Response::new(200, json!({})),
            ("POST", p) if p.starts_with("/bond/rotate/") => Response::new(400, json!({})),
            ("POST", p) if p.starts_with("/network/") => Response::new(200, json!({"nwid": &p[9..], "b": 1, "a": 2})),
            _ => Response::new(200, json!([])),
        }
    }

    fn get<'a>(url: &'a str, token: Option<&'a str>) -> HttpRequest<'a> {
        HttpRequest {
            method: "GET",
            url,
            x_zt1_auth: token,
            remote: Some("127.0.0.1".parse().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn routes_like_zerotier_one() {
        assert_eq!(route("GET", "/status"), Route::Status);
        assert_eq!(route("GET", "/network/8056C2E21C000001"), Route::Network("8056c2e21c000001".into()));
        assert_eq!(route("POST", "/network/8056c2e21c000001"), Route::Join("8056c2e21c000001".into()));
        assert_eq!(route("PUT", "/network/8056c2e21c000001"), Route::Join("8056c2e21c000001".into()));
        assert_eq!(route("DELETE", "/network/8056c2e21c000001"), Route::Leave("8056c2e21c000001".into()));
        assert_eq!(route("GET", "/peer/0123456789"), Route::Peer("0123456789".into()));
        assert_eq!(route("GET", "/bond/show/0123456789"), Route::BondShow("0123456789".into()));
        assert_eq!(route("POST", "/bond/rotate/0123456789"), Route::BondRotate("0123456789".into()));
        assert_eq!(route("GET", "/moon"), Route::Moon(String::new()));
        assert_eq!(route("GET", "/moon/000000ABCDEF0123"), Route::Moon("000000abcdef0123".into()));
        assert_eq!(route("POST", "/bond/setmtu/1400/eth0/198.18.0.1"), Route::BondSetMtu);
        for (method, path) in [
            ("GET", "/network/8056c2e21c00001"),
            ("GET", "/network/8056c2e21c00000g"),
            ("GET", "/network/8056c2e21c000001/"),
            ("GET", "/status/"),
            ("POST", "/status"),
            ("DELETE", "/peer/0123456789"),
            ("GET", "/peer/012345678"),
            ("GET", "/bond/show/xyz"),
            ("GET", "/bond/list"),
            ("GET", "/bond/rotate/0123456789"),
            ("GET", "/moon/0123"),
            ("POST", "/moon"),
            ("GET", "/controllers"),
            ("PATCH", "/controller/network"),
            ("GET", "/unstable/controller"),
            ("GET", ""),
            ("GET", "/"),
            ("PATCH", "/network/8056c2e21c000001"),
        ] {
            assert_eq!(route(method, path), Route::NotFound, "{method} {path}");
        }
    }

    #[test]
    fn token_checks() {
        let (api, seen) = api(node_like);
        let ok = api.handle(&get("/status", Some(TOKEN)));
        assert_eq!(ok.status, 200);
        assert!(ok.body.starts_with(r#"{"address":"0123456789","clock":5,"#), "{}", ok.body);
        let refused = HttpResponse::json(401, "{}".into());
        assert_eq!(api.handle(&get("/status", None)), refused);
        assert_eq!(api.handle(&get("/status", Some("wrong"))), refused);
        assert_eq!(api.handle(&get("/status", Some(""))), refused);
        // Query and bearer forms; a wrong header is not rescued by a right query parameter.
        assert_eq!(api.handle(&get(&format!("/status?x=1&auth={TOKEN}"), None)).status, 200);
        assert_eq!(api.handle(&get(&format!("/status?auth={TOKEN}"), Some("wrong"))), refused);
        let bearer = format!("bEaReR {TOKEN}");
        assert_eq!(api.handle(&HttpRequest { authorization: Some(&bearer), ..get("/status", None) }).status, 200);
        let basic = format!("Basic {TOKEN}");
        assert_eq!(api.handle(&HttpRequest { authorization: Some(&basic), ..get("/status", None) }), refused);
        // The metrics token opens /metrics only; unknown paths are refused before routing.
        assert_eq!(api.handle(&get("/status", Some("metricsmetricsmetricsmetr"))), refused);
        assert_eq!(api.handle(&get("/nothing", None)), refused);
        // A refused join never reaches the node.
        let join = HttpRequest { method: "POST", body: b"{}", ..get("/network/8056c2e21c000001", Some("bad")) };
        assert_eq!(api.handle(&join), refused);
        assert_eq!(seen.lock().unwrap().as_slice(), ["GET /status null", "GET /status null", "GET /status null"]);
        // /health needs no token.
        assert_eq!(api.handle(&get("/health", None)).body, r#"{"clock":5,"online":true,"version":"1.14.1"}"#);
    }

    #[test]
    fn remote_addresses() {
        let (mut api, _) = api(node_like);
        let from = |ip: &str| HttpRequest { remote: Some(ip.parse().unwrap()), ..get("/status", Some(TOKEN)) };
        assert_eq!(api.handle(&from("::1")).status, 200);
        assert_eq!(api.handle(&from("::ffff:127.0.0.1")).status, 200);
        assert_eq!(api.handle(&from("198.18.0.5")).status, 401);
        api.allow_management_from = vec![Cidr::parse("198.18.0.0/24").unwrap()];
        assert_eq!(api.handle(&from("198.18.0.5")).status, 200);
        assert_eq!(api.handle(&from("198.18.1.5")).status, 401);
        assert_eq!(api.handle(&HttpRequest { remote: None, ..get("/status", Some(TOKEN)) }).status, 401);
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("198.18.0.0/15").unwrap();
        assert!(c.contains("198.19.255.1".parse().unwrap()));
        assert!(!c.contains("198.20.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("1.2.3.4".parse().unwrap()));
        assert!(Cidr::parse("fd00::/8").unwrap().contains("fd12::1".parse().unwrap()));
        assert!(Cidr::parse("198.18.0.7").unwrap().contains("198.18.0.7".parse().unwrap()));
        assert!(!Cidr::parse("198.18.0.7").unwrap().contains("fd00::1".parse().unwrap()));
        assert_eq!(Cidr::parse("198.18.0.0/33"), None);
        assert_eq!(Cidr::parse("nonsense"), None);
    }

    #[test]
    fn bodies_as_zerotier_one_sends_them() {
        let (api, seen) = api(node_like);
        let join = HttpRequest { method: "POST", body: b"{}", ..get("/network/8056C2E21C000001", Some(TOKEN)) };
        let joined = api.handle(&join);
        assert_eq!((joined.status, joined.body.as_str()), (200, r#"{"a":2,"b":1,"nwid":"8056c2e21c000001"}"#));
        let junk = HttpRequest { method: "PUT", body: b"not json", ..get("/network/8056c2e21c000002", Some(TOKEN)) };
        assert_eq!(api.handle(&junk).status, 200);
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            ["POST /network/8056c2e21c000001 {}", "POST /network/8056c2e21c000002 {}"]
        );
        let missing = api.handle(&get("/network/8056c2e21c000001", Some(TOKEN)));
        assert_eq!((missing.status, missing.body.as_str()), (404, "{}"));
        assert_eq!(api.handle(&get("/peer/bbbbbbbbbb", Some(TOKEN))), HttpResponse::json(200, "{}".into()));
        assert_eq!(api.handle(&get("/peer/aaaaaaaaaa", Some(TOKEN))).body, r#"{"address":"aaaaaaaaaa"}"#);
        assert_eq!(api.handle(&get("/network/xyz", Some(TOKEN))), HttpResponse::json(404, String::new()));
        // A peer without a bond: 400 with zerotier-one's empty content; a bonded one: its JSON.
        assert_eq!(api.handle(&get("/bond/show/aaaaaaaaaa", Some(TOKEN))), HttpResponse::json(400, "{}".into()));
        let bonded = api.handle(&get("/bond/show/CCCCCCCCCC", Some(TOKEN)));
        assert_eq!((bonded.status, bonded.body.as_str()), (200, r#"{"address":"cccccccccc","isBonded":true}"#));
        let rotate = |peer: &str| {
            let url = format!("/bond/rotate/{peer}");
            let r = api.handle(&HttpRequest { method: "POST", ..get(&url, Some(TOKEN)) });
            (r.status, r.body)
        };
        assert_eq!(rotate("cccccccccc"), (200, "{}".to_string()));
        assert_eq!(rotate("aaaaaaaaaa"), (400, "{}".to_string()));
        let mtu = HttpRequest { method: "POST", ..get("/bond/setmtu/1400/eth0/198.18.0.1", Some(TOKEN)) };
        assert_eq!(api.handle(&mtu).body, "Bonding layer isn't active yet");
    }

    #[test]
    fn controller_paths_are_relayed() {
        let answer = |req: &Request| match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/controller/network/8056c2e21c000001") => Response::new(404, Value::Null),
            (_, path) => Response::new(200, json!({"path": path, "body": req.body.clone()})),
        };
        let (api, seen) = api(answer);
        assert_eq!(route("GET", "/controller"), Route::Controller);
        assert_eq!(route("DELETE", "/controller/network/8056c2e21c000001/member/0123456789"), Route::Controller);
        assert_eq!(route("GET", "/unstable/controller/network"), Route::Controller);
        let post = HttpRequest {
            method: "POST",
            body: br#"{"authorized":true}"#,
            ..get("/controller/network/8056c2e21c000001/member/0123456789?x=1", Some(TOKEN))
        };
        let r = api.handle(&post);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body,
            r#"{"body":{"authorized":true},"path":"/controller/network/8056c2e21c000001/member/0123456789"}"#
        );
        // No body from the controller: none in the reply (zerotier-one's 404s are empty).
        let missing = api.handle(&get("/controller/network/8056c2e21c000001", Some(TOKEN)));
        assert_eq!((missing.status, missing.body.as_str()), (404, ""));
        // A body that is not JSON never reaches the node.
        let junk = HttpRequest { method: "POST", body: b"{", ..get("/controller/network", Some(TOKEN)) };
        let r = api.handle(&junk);
        assert_eq!(r.status, 500);
        assert!(r.body.starts_with(r#"{"description":"#), "{}", r.body);
        // The token is checked as everywhere else.
        assert_eq!(api.handle(&get("/controller", None)).status, 401);
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[test]
    fn node_down_is_503() {
        let node = |_: &Request| Err(io::Error::from(io::ErrorKind::NotFound));
        let api = Api::new(Box::new(node), TOKEN.into(), None, Vec::new());
        let resp = api.handle(&get("/status", Some(TOKEN)));
        assert_eq!(resp.status, 503);
        let body: Value = serde_json::from_str(&resp.body).unwrap();
        assert!(body["error"].as_str().unwrap().contains("control socket"), "{body}");
        // Still refused first without the token.
        assert_eq!(api.handle(&get("/status", None)).status, 401);
    }
}
