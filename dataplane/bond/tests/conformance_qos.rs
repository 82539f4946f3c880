//! Replays the real zerotier-one 1.14.1 bond capture (`shared/conformance/zt-1.14.1/`) through the engine
//! as node a: the QOS_MEASUREMENT records node b sent feed our latency estimates (every one that names a
//! packet a sent on that path), and the QoS records our engine would send name the same packets
//! zerotier-one's own QoS named — the 1.14.1 sampling rule, ID format and per-path attribution.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;
use ztplane_bond::config::{Policy, PolicySettings};
use ztplane_bond::{Bond, PacketKind, PathId, QosRecord, Transmit};

const NODE_A: &str = "cfe2482597";
const NODE_B: &str = "f2281a769d";

fn capture() -> Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/zt-1.14.1");
    assert!(dir.is_dir(), "conformance captures not found at {} (expected <workspace>/../shared)", dir.display());
    let text = std::fs::read_to_string(dir.join("expected-bond-ab.json")).expect("expected-bond-ab.json readable");
    serde_json::from_str(&text).expect("expected-bond-ab.json is JSON")
}

fn ip(endpoint: &str) -> &str {
    endpoint.split(':').next().unwrap_or(endpoint)
}

fn id(hex: &Value) -> u64 {
    u64::from_str_radix(hex.as_str().expect("hex ID"), 16).expect("hex ID parses")
}

#[test]
fn zerotier_qos_records_feed_our_estimates_and_ours_match_theirs() {
    let doc = capture();
    let records = doc["records"].as_array().expect("records");
    let mut bond =
        Bond::new(PolicySettings { failover_interval_ms: 500, ..PolicySettings::standard(Policy::ActiveBackup) }, 0);
    let mut paths: BTreeMap<(String, String), PathId> = BTreeMap::new();
    let link_of = |local: &str| if local == "198.18.1.2" { "ea" } else { "ea2" };
    // Ground truth from the capture: odd IDs a sent per path, and what each side's QoS named.
    let mut a_sent_sampled: BTreeMap<PathId, BTreeSet<u64>> = BTreeMap::new();
    let mut b_records_naming_a_packets = 0u64;
    let mut zerotier_a_reported: BTreeMap<PathId, BTreeSet<u64>> = BTreeMap::new();
    let mut ours_reported: BTreeMap<PathId, BTreeSet<u64>> = BTreeMap::new();
    // When each packet from b arrived, and when zerotier-one (as a) last sent QoS on each path.
    let mut arrived_at: BTreeMap<u64, u64> = BTreeMap::new();
    let mut zerotier_a_last_qos: BTreeMap<PathId, u64> = BTreeMap::new();
    let mut now = 0u64;
    for r in records {
        now = now.max((r["time"].as_f64().expect("time") * 1e6) as u64);
        let (src, dst) = (ip(r["src"].as_str().unwrap()), ip(r["dst"].as_str().unwrap()));
        let (source, dest) = (r["source"].as_str().unwrap_or(""), r["dest"].as_str().unwrap_or(""));
        let outgoing = source == NODE_A && dest == NODE_B;
        let incoming = source == NODE_B && dest == NODE_A;
        if !outgoing && !incoming {
            continue;
        }
        let (local, remote) = if outgoing { (src, dst) } else { (dst, src) };
        let key = (local.to_string(), remote.to_string());
        let path = match paths.get(&key) {
            Some(p) => *p,
            None => {
                let p = bond.add_path(link_of(local), remote, false, now).expect("path nominated");
                paths.insert(key, p);
                p
            }
        };
        let packet_id = id(&r["packet_id"]);
        let verb = r["verb"].as_str().unwrap_or("");
        let kind = match verb {
            "FRAME" | "EXT_FRAME" | "MULTICAST_FRAME" => PacketKind::Data,
            "QOS_MEASUREMENT" | "ACK" => PacketKind::Measurement,
            _ => PacketKind::Control,
        };
        let qos: Vec<QosRecord> = if verb == "QOS_MEASUREMENT" {
            r["decoded"]["records"]
                .as_array()
                .expect("decoded QoS records")
                .iter()
                .map(|rec| QosRecord {
                    packet_id: id(&rec["packet_id"]),
                    holding_ms: rec["holding_ms"].as_u64().unwrap() as u16,
                })
                .collect()
        } else {
            Vec::new()
        };
        if outgoing {
            match kind {
                PacketKind::Data => {
                    bond.on_data_sent(path, packet_id, r["packet_len"].as_u64().unwrap() as usize, now).unwrap()
                }
                PacketKind::Control => bond.on_control_sent(path, packet_id, now).unwrap(),
                PacketKind::Measurement => {
                    zerotier_a_reported.entry(path).or_default().extend(qos.iter().map(|q| q.packet_id));
                    zerotier_a_last_qos.insert(path, now);
                }
            }
            if kind != PacketKind::Measurement && packet_id & 1 == 1 {
                a_sent_sampled.entry(path).or_default().insert(packet_id);
            }
        } else {
            arrived_at.insert(packet_id, now);
            bond.on_packet_received(path, packet_id, r["packet_len"].as_u64().unwrap() as usize, kind, now).unwrap();
            if !qos.is_empty() {
                let sent = a_sent_sampled.get(&path);
                b_records_naming_a_packets +=
                    qos.iter().filter(|q| sent.is_some_and(|s| s.contains(&q.packet_id))).count() as u64;
                bond.on_qos_records(path, &qos, now).unwrap();
            }
        }
        bond.handle_timeout(now);
        while let Some(t) = bond.poll_transmit() {
            if let Transmit::Qos { path, records } = t {
                ours_reported.entry(path).or_default().extend(records.iter().map(|q| q.packet_id));
            }
        }
    }
    // Flush what is still pending.
    for step in 1..=10 {
        bond.handle_timeout(now + step * 1_000_000);
        while let Some(t) = bond.poll_transmit() {
            if let Transmit::Qos { path, records } = t {
                ours_reported.entry(path).or_default().extend(records.iter().map(|q| q.packet_id));
            }
        }
    }
    assert_eq!(paths.len(), 4, "a talks to b over 2 × 2 address pairs: {paths:?}");

    // 1. Every QoS record from b that names a packet a sent on that path became an RTT sample.
    let samples: u64 = paths.values().map(|&p| bond.quality(p, now).unwrap().rtt_samples).sum();
    assert!(b_records_naming_a_packets > 1_000, "{b_records_naming_a_packets}");
    assert_eq!(samples, b_records_naming_a_packets);
    for (key, &p) in &paths {
        let q = bond.quality(p, now).unwrap();
        if q.rtt_samples > 0 {
            // All namespaces share one host: sub-millisecond RTTs, plus up to 1 ms of holding-time truncation.
            assert!(q.latency_ms > 0.0 && q.latency_ms < 2.5, "{key:?}: {} ms", q.latency_ms);
        }
    }

    // 2. Our QoS records name what zerotier-one's did, path by path. It also named 4 packets received
    //    before the capture started; we also name packets that arrived after its last report on a path
    //    (the capture ends, or link ea was cut before its next report could be seen).
    let (mut common, mut theirs_only, mut ours_only) = (0, 0, 0);
    for (p, theirs) in &zerotier_a_reported {
        let ours = ours_reported.get(p).cloned().unwrap_or_default();
        let last_report = zerotier_a_last_qos[p];
        common += theirs.intersection(&ours).count();
        theirs_only += theirs.difference(&ours).count();
        ours_only += ours.difference(theirs).filter(|id| arrived_at[*id] < last_report).count();
    }
    assert!(common > 1_400, "{common}");
    assert!(theirs_only <= 4, "zerotier-one reported {theirs_only} packets we would not have");
    assert_eq!(ours_only, 0, "we would have reported packets zerotier-one did not, before its last report");
    assert!(ours_reported.values().flatten().all(|id| id & 1 == 1), "only odd IDs are sampled");
}
