//! Prometheus text exposition (format 0.0.4) of what the node reports on its control socket. Nothing is
//! estimated: a figure the node does not report is not exported.
//!
//! zerotier-one names (node/Metrics.cpp, 1.14.1), where ztplane has the same figure:
//! - `zt_num_networks` (gauge): networks joined.
//! - `zt_network_multicast_groups_subscribed{network_id}` (gauge): multicast groups subscribed per network.
//! - `zt_peer_path_count{node_id,status="alive"|"dead"}` (gauge): a peer's paths, alive or not.
//!
//! Not exported because ztplane does not count them that way (yet): `zt_packet{packet_type,direction}` (per-verb
//! counts), `zt_data` (bytes), `zt_peer_packets`, `zt_network_packets`, and `zt_peer_latency`, a histogram of
//! every latency measurement (the node reports the current latency only: `ztplane_peer_latency_milliseconds`).
//!
//! ztplane's own, `ztplane_*`: the node's state (`/status`, `/network`, `/peer`) and its `/stats` counters (per
//! worker: sockets, fast path, tap; per node: the protocol engine's counters).
//!
//! Per link of each bonded peer, `ztplane_link_*{peer,link,remote}` from the link quality map the node pins
//! (zerotier-bonding.md §9; read on each scrape, never through the node): `latency_seconds` and `pdv_seconds`
//! (absent until a round trip is measured), `loss_ratio`, `error_ratio`, `throughput_bits_per_second`,
//! `share_ratio` (of the bytes sent to the peer), `up` (eligible), `active`, `bonded`, and the counters
//! `failovers_total`, `packets_sent_total`, `packets_received_total`. No map (no bonds, not root, a node gone for
//! more than `bond::STALE_MS`): no such series.
use crate::bond;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::io;
use std::path::Path;
use ztplane_ebpf_common::{LinkKey, LinkQuality};
use ztplane_host::control_socket::{Request, Response};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The node documents one scrape is made from.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub status: Value,
    pub networks: Value,
    pub peers: Value,
    pub stats: Value,
    /// The node's per-link quality records, by (peer, path).
    pub links: Vec<(LinkKey, LinkQuality)>,
}

impl Snapshot {
    /// Asks the node for `/status`, `/network`, `/peer` and `/stats`, and reads its link quality map pinned at
    /// `link_quality` (absent or unreadable: no links).
    pub fn take_from(
        node: &(dyn Fn(&Request) -> io::Result<Response> + Send + Sync),
        link_quality: &Path,
    ) -> io::Result<Snapshot> {
        let get = |path: &str| -> io::Result<Value> {
            let resp = node(&Request::new("GET", path, None))?;
            if resp.status != 200 {
                return Err(io::Error::other(format!("GET {path}: node answered {}", resp.status)));
            }
            Ok(resp.body)
        };
        Ok(Snapshot {
            status: get("/status")?,
            networks: get("/network")?,
            peers: get("/peer")?,
            stats: get("/stats")?,
            links: fresh_links(link_quality),
        })
    }
}

/// The records of the map at `pin` that a running node wrote (a crashed node's pin keeps old ones).
fn fresh_links(pin: &Path) -> Vec<(LinkKey, LinkQuality)> {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut links = bond::read_links(pin).unwrap_or_default();
    links.retain(|(_, q)| now_ms.saturating_sub(q.updated_unix_ms) <= bond::STALE_MS);
    links
}

/// Help texts of the `/stats` counters ztplane documents; others are exported with a generic one.
const WORKER_HELP: &[(&str, &str)] = &[
    ("rx", "Frames received on the worker's underlay sockets"),
    ("tx", "Frames transmitted from the worker's underlay sockets"),
    ("processed", "Frames the worker processed, for itself or another worker"),
    ("stolen", "Frames of its own the worker processed before their processor started on them"),
    ("leaked", "Frames not accounted for (must stay 0)"),
    ("tap_rx", "Frames read from the network taps"),
    ("tap_tx", "Frames written to the network taps"),
    ("fast_rx", "Underlay packets handled entirely on the fast path"),
    ("fast_tx", "Tap frames sent entirely on the fast path"),
    ("punted", "Packets handed to the slow path"),
    ("tap_dropped", "Tap reads that could not be used"),
    ("tap_super_reads", "Tap reads that were TSO super-frames"),
    ("tap_merged_writes", "Merged super-frames written to the taps"),
    ("tap_write_errors", "Failed tap writes"),
];

/// One metric family: its samples in the order added.
struct Family {
    kind: &'static str,
    help: String,
    samples: Vec<(String, f64)>,
}

/// Families by name, rendered in name order.
#[derive(Default)]
struct Exposition(BTreeMap<String, Family>);

impl Exposition {
    fn add(&mut self, name: &str, kind: &'static str, help: &str, labels: &[(&str, &str)], value: f64) {
        let family = self.0.entry(name.to_string()).or_insert_with(|| Family {
            kind,
            help: help.to_string(),
            samples: Vec::new(),
        });
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape_label(v))).collect();
        let labels = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
        family.samples.push((labels, value));
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (name, family) in &self.0 {
            let _ = writeln!(out, "# HELP {name} {}", family.help.replace('\\', "\\\\").replace('\n', "\\n"));
            let _ = writeln!(out, "# TYPE {name} {}", family.kind);
            for (labels, value) in &family.samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        }
        out
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `snake_case` of a counter name the node reports, safe as a metric name.
fn metric_word(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            if !out.is_empty() {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    out
}

fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// The Prometheus text for `snap`.
pub fn render(snap: &Snapshot) -> String {
    let mut e = Exposition::default();
    let str_of = |v: &Value| v.as_str().unwrap_or("").to_string();

    // zerotier-one's names.
    if let Some(networks) = snap.networks.as_array() {
        e.add("zt_num_networks", "gauge", "number of networks this instance is joined to", &[], networks.len() as f64);
    }
    for n in items(&snap.networks) {
        let id = str_of(&n["nwid"]);
        if let Some(groups) = n["multicastSubscriptions"].as_array() {
            let help = "number of multicast groups networks are subscribed to";
            e.add("zt_network_multicast_groups_subscribed", "gauge", help, &[("network_id", &id)], groups.len() as f64);
        }
    }
    for p in items(&snap.peers) {
        let id = str_of(&p["address"]);
        if let Some(paths) = p["paths"].as_array() {
            let alive = paths.iter().filter(|path| path["active"] == Value::Bool(true)).count();
            for (status, count) in [("alive", alive), ("dead", paths.len() - alive)] {
                let labels = [("node_id", id.as_str()), ("status", status)];
                e.add("zt_peer_path_count", "gauge", "number of paths to peer", &labels, count as f64);
            }
        }
    }

    // ztplane's own: state.
    if let Some(online) = snap.status["online"].as_bool() {
        e.add(
            "ztplane_online",
            "gauge",
            "1 if the node reaches a root (zerotier-cli's ONLINE)",
            &[],
            f64::from(u8::from(online)),
        );
    }
    if let (Some(address), Some(version)) = (snap.status["address"].as_str(), snap.status["version"].as_str()) {
        let labels = [("address", address), ("version", version)];
        e.add("ztplane_node_info", "gauge", "The node's address and announced version", &labels, 1.0);
    }
    for n in items(&snap.networks) {
        let (id, status, kind, dev) =
            (str_of(&n["nwid"]), str_of(&n["status"]), str_of(&n["type"]), str_of(&n["portDeviceName"]));
        let labels = [
            ("network_id", id.as_str()),
            ("status", status.as_str()),
            ("type", kind.as_str()),
            ("device", dev.as_str()),
        ];
        e.add("ztplane_network_info", "gauge", "A joined network with its status", &labels, 1.0);
        if let Some(addrs) = n["assignedAddresses"].as_array() {
            let help = "Addresses the network's controller assigned to this node";
            e.add("ztplane_network_assigned_addresses", "gauge", help, &[("network_id", &id)], addrs.len() as f64);
        }
    }
    let mut roles: BTreeMap<String, usize> = BTreeMap::new();
    for p in items(&snap.peers) {
        *roles.entry(str_of(&p["role"])).or_default() += 1;
        let latency = p["latency"].as_f64().filter(|l| *l >= 0.0);
        if let Some(latency) = latency {
            let help = "Latest measured latency to the peer (absent while unknown)";
            e.add("ztplane_peer_latency_milliseconds", "gauge", help, &[("node_id", &str_of(&p["address"]))], latency);
        }
    }
    if snap.peers.is_array() {
        for role in ["LEAF", "MOON", "PLANET"] {
            roles.entry(role.to_string()).or_default();
        }
        for (role, count) in &roles {
            e.add("ztplane_peers", "gauge", "Known peers by role", &[("role", role)], *count as f64);
        }
    }

    // ztplane's own: /stats counters.
    for w in items(&snap.stats["workers"]) {
        let Some(obj) = w.as_object() else { continue };
        let worker = w["index"].as_u64().map_or_else(String::new, |i| i.to_string());
        for (key, value) in obj.iter().filter(|(k, _)| k.as_str() != "index") {
            let Some(value) = value.as_f64() else { continue };
            let help =
                WORKER_HELP.iter().find(|(k, _)| k == key).map_or("Worker counter reported by the node", |h| h.1);
            let name = format!("ztplane_worker_{}_total", metric_word(key));
            e.add(&name, "counter", help, &[("worker", &worker)], value);
        }
    }
    for (key, value) in snap.stats["node"].as_object().into_iter().flatten() {
        let Some(value) = value.as_f64() else { continue };
        let name = format!("ztplane_node_{}_total", metric_word(key));
        e.add(&name, "counter", &format!("Protocol engine counter {key}"), &[], value);
    }

    // ztplane's own: per-link quality of the bonded peers.
    for (key, q) in &snap.links {
        let peer = format!("{:010x}", key.peer);
        let remote = q.remote().map_or_else(String::new, |a| format!("{}/{}", a.ip(), a.port()));
        let labels = [("peer", peer.as_str()), ("link", q.link_name()), ("remote", remote.as_str())];
        let mut gauge = |name: &str, help: &str, value: f64| e.add(name, "gauge", help, &labels, value);
        if q.has(LinkQuality::HAS_LATENCY) {
            gauge(
                "ztplane_link_latency_seconds",
                "Smoothed round-trip time of the link",
                f64::from(q.latency_us) / 1e6,
            );
            gauge("ztplane_link_pdv_seconds", "Packet delay variation of the link", f64::from(q.pdv_us) / 1e6);
        }
        gauge(
            "ztplane_link_loss_ratio",
            "Share of the packets sent on the link that were lost",
            f64::from(q.loss_ppm) / 1e6,
        );
        gauge(
            "ztplane_link_error_ratio",
            "Share of the packets received on the link that failed",
            f64::from(q.error_ppm) / 1e6,
        );
        let bits = f64::from(q.throughput_kbps) * 1000.0;
        gauge("ztplane_link_throughput_bits_per_second", "Throughput delivered over the link", bits);
        gauge(
            "ztplane_link_share_ratio",
            "The link's share of the bytes sent to the peer",
            f64::from(q.share_ppm) / 1e6,
        );
        let flag = |f: u8| f64::from(u8::from(q.has(f)));
        gauge("ztplane_link_up", "1 if the link may carry the peer's traffic (eligible)", flag(LinkQuality::ELIGIBLE));
        gauge(
            "ztplane_link_active",
            "1 if the link is the bond's active link (active-backup)",
            flag(LinkQuality::ACTIVE),
        );
        gauge(
            "ztplane_link_bonded",
            "1 if the link carries traffic in the bond's selection",
            flag(LinkQuality::BONDED),
        );
        let mut counter = |name: &str, help: &str, value: u64| e.add(name, "counter", help, &labels, value as f64);
        counter("ztplane_link_failovers_total", "Times the link failed and its traffic moved to others", q.failovers);
        counter("ztplane_link_packets_sent_total", "Data packets sent on the link", q.packets_sent);
        counter("ztplane_link_packets_received_total", "Data packets received on the link", q.packets_received);
    }
    e.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snapshot() -> Snapshot {
        Snapshot {
            status: json!({"address": "0123456789", "version": "1.14.1", "online": true}),
            networks: json!([{
                "nwid": "8056c2e21c000001", "status": "OK", "type": "PRIVATE", "portDeviceName": "ztabc",
                "multicastSubscriptions": [{"mac": "ff:ff:ff:ff:ff:ff", "adi": 0}, {"mac": "01:00:5e:00:00:01", "adi": 0}],
                "assignedAddresses": ["198.19.0.5/24"],
            }]),
            peers: json!([
                {"address": "aaaaaaaaaa", "role": "MOON", "latency": 3, "paths": [{"active": true}, {"active": false}]},
                {"address": "bbbbbbbbbb", "role": "LEAF", "latency": -1, "paths": []},
            ]),
            stats: json!({
                "workers": [{"index": 0, "rx": 10, "tx": 11, "fast_rx": 7}, {"index": 1, "rx": 20, "tx": 21, "fast_rx": 0}],
                "node": {"datagrams": 30, "dropped_auth": 2},
            }),
            links: Vec::new(),
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn zerotier_one_names_and_labels() {
        let text = render(&snapshot());
        let l = lines(&text);
        for want in [
            "zt_num_networks 1",
            "zt_network_multicast_groups_subscribed{network_id=\"8056c2e21c000001\"} 2",
            "zt_peer_path_count{node_id=\"aaaaaaaaaa\",status=\"alive\"} 1",
            "zt_peer_path_count{node_id=\"aaaaaaaaaa\",status=\"dead\"} 1",
            "zt_peer_path_count{node_id=\"bbbbbbbbbb\",status=\"alive\"} 0",
        ] {
            assert!(l.contains(&want), "missing {want:?} in\n{text}");
        }
        assert!(text.contains("# TYPE zt_num_networks gauge\n"));
    }

    #[test]
    fn ztplane_counters_as_reported() {
        let text = render(&snapshot());
        let l = lines(&text);
        for want in [
            "ztplane_worker_rx_total{worker=\"0\"} 10",
            "ztplane_worker_rx_total{worker=\"1\"} 20",
            "ztplane_worker_fast_rx_total{worker=\"0\"} 7",
            "ztplane_node_datagrams_total 30",
            "ztplane_node_dropped_auth_total 2",
            "ztplane_online 1",
            "ztplane_node_info{address=\"0123456789\",version=\"1.14.1\"} 1",
            "ztplane_peers{role=\"MOON\"} 1",
            "ztplane_peers{role=\"LEAF\"} 1",
            "ztplane_peers{role=\"PLANET\"} 0",
            "ztplane_peer_latency_milliseconds{node_id=\"aaaaaaaaaa\"} 3",
            "ztplane_network_assigned_addresses{network_id=\"8056c2e21c000001\"} 1",
        ] {
            assert!(l.contains(&want), "missing {want:?} in\n{text}");
        }
        // An unknown latency is not exported as a number.
        assert!(!text.contains("node_id=\"bbbbbbbbbb\"} -1"));
        assert!(text.contains("# TYPE ztplane_worker_rx_total counter\n"));
        // One HELP/TYPE per family, samples grouped under it.
        assert_eq!(text.matches("# TYPE ztplane_worker_rx_total").count(), 1);
    }

    #[test]
    fn link_quality_per_peer_and_link() {
        let mut up = LinkQuality {
            latency_us: 1_500,
            pdv_us: 250,
            loss_ppm: 10_000,
            throughput_kbps: 250_000,
            share_ppm: 750_000,
            failovers: 2,
            packets_sent: 40,
            flags: LinkQuality::ELIGIBLE | LinkQuality::ACTIVE | LinkQuality::HAS_LATENCY,
            ..LinkQuality::default()
        };
        up.set_link_name("eth0");
        up.set_remote("198.18.1.3:9993".parse().unwrap());
        let mut down = LinkQuality { state: 2, ..LinkQuality::default() };
        down.set_link_name("eth1");
        down.set_remote("[2001:db8::3]:9993".parse().unwrap());
        let snap = Snapshot {
            links: vec![(LinkKey::new(0xaaaaaaaaaa, 0), up), (LinkKey::new(0xaaaaaaaaaa, 1), down)],
            ..Snapshot::default()
        };
        let text = render(&snap);
        let l = lines(&text);
        let a = r#"{peer="aaaaaaaaaa",link="eth0",remote="198.18.1.3/9993"}"#;
        let b = r#"{peer="aaaaaaaaaa",link="eth1",remote="2001:db8::3/9993"}"#;
        for want in [
            format!("ztplane_link_latency_seconds{a} 0.0015"),
            format!("ztplane_link_pdv_seconds{a} 0.00025"),
            format!("ztplane_link_loss_ratio{a} 0.01"),
            format!("ztplane_link_throughput_bits_per_second{a} 250000000"),
            format!("ztplane_link_share_ratio{a} 0.75"),
            format!("ztplane_link_up{a} 1"),
            format!("ztplane_link_active{a} 1"),
            format!("ztplane_link_failovers_total{a} 2"),
            format!("ztplane_link_packets_sent_total{a} 40"),
            format!("ztplane_link_up{b} 0"),
            format!("ztplane_link_loss_ratio{b} 0"),
        ] {
            assert!(l.contains(&want.as_str()), "missing {want:?} in\n{text}");
        }
        // No round trip measured on eth1: no latency series for it.
        assert!(!text.contains(&format!("ztplane_link_latency_seconds{b}")));
        assert!(text.contains("# TYPE ztplane_link_failovers_total counter\n"));
        assert!(text.contains("# TYPE ztplane_link_up gauge\n"));
    }

    #[test]
    fn absent_map_no_link_series() {
        let pin = std::env::temp_dir().join(format!("ztplanectl-no-map-{}", std::process::id()));
        assert!(fresh_links(&pin).is_empty());
        let node = |_: &Request| Ok(Response::new(200, serde_json::json!([])));
        let snap = Snapshot::take_from(&node, &pin).unwrap();
        assert!(!render(&snap).contains("ztplane_link_"));
    }

    #[test]
    fn nothing_reported_nothing_exported() {
        let text = render(&Snapshot::default());
        assert_eq!(text, "");
    }

    #[test]
    fn label_escaping_and_names() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(metric_word("framesDroppedGate"), "frames_dropped_gate");
        assert_eq!(metric_word("a-b"), "a_b");
    }

    #[test]
    fn snapshot_fails_when_the_node_does() {
        let down = |_: &Request| Err(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(Snapshot::take_from(&down, Path::new("/nonexistent")).is_err());
        let partial = |r: &Request| Ok(Response::new(if r.path == "/stats" { 404 } else { 200 }, json!([])));
        assert!(Snapshot::take_from(&partial, Path::new("/nonexistent")).is_err());
    }
}
