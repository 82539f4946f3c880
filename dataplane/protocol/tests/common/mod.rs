//! Shared helpers for the conformance tests: locate `shared/`, load identities and expected files.
#![allow(dead_code)]

use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use ztplane_protocol::Identity;
use ztplane_protocol::pcap::{FrameContent, PcapReader};

/// One captured UDP datagram: time (µs), source, destination, IP TTL, payload.
pub type Frame = (i64, SocketAddr, SocketAddr, u8, Vec<u8>);

/// Every datagram of a capture, in order (the captures hold nothing but UDP).
pub fn udp_frames(capture: &str) -> Vec<Frame> {
    let pcap = pcap_bytes(capture);
    PcapReader::new(&pcap)
        .unwrap()
        .map(|f| {
            let f = f.unwrap();
            match f.content {
                FrameContent::Udp(u) => (f.timestamp_us, u.src, u.dst, u.ip_ttl, u.payload.to_vec()),
                FrameContent::NotUdp(r) => panic!("{r}"),
            }
        })
        .collect()
}

pub const CAPTURES: [&str; 3] = ["basic", "bond-ab", "bridge"];

/// `<workspace root>/../shared/conformance/zt-1.14.1`, or a clear failure.
pub fn conformance_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/zt-1.14.1");
    assert!(
        dir.join("README.md").is_file(),
        "reference material missing: expected {} (the read-only `shared/` directory must sit beside the workspace root)",
        dir.display()
    );
    dir
}

/// Every `nodes/*.identity.secret` and `nodes/*.identity.public` (secret wins for one address).
pub fn load_identities() -> Vec<Identity> {
    let nodes = conformance_dir().join("nodes");
    let mut by_addr: std::collections::BTreeMap<String, Identity> = Default::default();
    let mut files: Vec<_> = std::fs::read_dir(&nodes).expect("nodes dir").map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.ends_with(".identity.secret") || name.ends_with(".identity.public")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let id: Identity = text.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
        let key = id.address().to_string();
        match by_addr.get(&key) {
            Some(existing) if existing.has_secret() => {}
            _ => {
                by_addr.insert(key, id);
            }
        }
    }
    by_addr.into_values().collect()
}

pub fn pcap_bytes(capture: &str) -> Vec<u8> {
    std::fs::read(conformance_dir().join(format!("zt-1.14.1-{capture}.pcap"))).unwrap()
}

pub fn expected(capture: &str) -> Value {
    let text = std::fs::read_to_string(conformance_dir().join(format!("expected-{capture}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Compare two JSON values treating numbers numerically (so 0.5 == 0.5 whatever the spelling).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_u64(), y.as_u64()) {
            (Some(p), Some(q)) => p == q,
            _ => (x.as_f64().unwrap_or(f64::NAN) - y.as_f64().unwrap_or(f64::NAN)).abs() < 5e-7,
        },
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| json_eq(v, w)),
        _ => a == b,
    }
}

/// Paths where two JSON values differ (for readable failures).
pub fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => diff(&format!("{path}.{k}"), v, w, out),
                    None => out.push(format!("{path}.{k}: got {v}, expected absent")),
                }
            }
            for (k, w) in y {
                if !x.contains_key(k) {
                    out.push(format!("{path}.{k}: missing, expected {w}"));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), v, w, out);
            }
        }
        _ => {
            if !json_eq(a, b) {
                out.push(format!("{path}: got {a}, expected {b}"));
            }
        }
    }
}
