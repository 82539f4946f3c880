//! `ztplanectl policy simulate` end to end: the built binary on a config and a scenario.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn shared_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    assert!(dir.is_dir(), "reference material not found at {} (expected <workspace>/../shared)", dir.display());
    dir
}

/// Write `files` into a fresh temporary directory and run `ztplanectl policy simulate`.
fn simulate(name: &str, config: &str, scenario: &str, extra: &[&str]) -> Output {
    let dir = std::env::temp_dir().join(format!("ztplanectl-policy-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("local.conf");
    let scenario_path = dir.join("scenario.json");
    std::fs::write(&config_path, config).unwrap();
    std::fs::write(&scenario_path, scenario).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ztplanectl"))
        .args(["policy", "simulate", "--config"])
        .arg(&config_path)
        .arg("--scenario")
        .arg(&scenario_path)
        .args(extra)
        .output()
        .expect("run ztplanectl");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "exit {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

const AB_CONFIG: &str = r#"{ "settings": { "defaultBondingPolicy": "ab",
  "policies": { "ab": { "basePolicy": "active-backup",
    "links": { "eth0": { "mode": "primary" }, "eth1": { "mode": "spare" } } } } } }"#;

const CUT_SCENARIO: &str = r#"{"duration_ms": 8000, "seed": 1, "comment": "extra keys are allowed",
  "links": [{"name": "eth0", "latency_ms": 10, "jitter_ms": 1, "loss": 0.0, "capacity_mbps": 1000},
            {"name": "eth1", "latency_ms": 20, "jitter_ms": 1, "loss": 0.0, "capacity_mbps": 1000}],
  "events": [{"at_ms": 3000, "link": "eth0", "set": {"up": false}}],
  "traffic": {"flows": 64, "packets_per_second": 5000, "packet_bytes": 1400}}"#;

#[test]
fn active_backup_cut_reports_a_fast_failover() {
    let r = json(&simulate("ab", AB_CONFIG, CUT_SCENARIO, &[]));
    assert_eq!(r["policy"], "ab");
    for key in ["delivered", "lost", "duplicates_delivered", "reordered", "flow_moves", "outage_ms"] {
        assert!(r[key].is_number(), "missing {key}: {r}");
    }
    assert!(r["outage_ms"].as_f64().unwrap() <= 100.0, "{r}");
    let f = &r["failovers"][0];
    assert_eq!((f["from"].as_str(), f["to"].as_str()), (Some("eth0"), Some("eth1")));
    assert!(f["at_ms"].as_f64().unwrap() >= 3000.0 && f["detection_ms"].as_f64().unwrap() < 100.0, "{f}");
    let links = r["links"].as_array().unwrap();
    assert_eq!(links.len(), 2);
    let share: f64 = links.iter().map(|l| l["share"].as_f64().unwrap()).sum();
    assert!((share - 1.0).abs() < 1e-9);
    assert!(links[0]["packets"].as_u64().unwrap() > 10_000);
    // Estimated latency is the round-trip time: 2 × 10 ms.
    let rtt = links[0]["estimated"]["latency_ms"].as_f64().unwrap();
    assert!((rtt - 20.0).abs() < 2.0, "{rtt}");
    for key in ["pdv_ms", "loss", "throughput_mbps"] {
        assert!(links[0]["estimated"][key].is_number(), "{key}");
    }
    assert_eq!(r["delivered"].as_u64().unwrap() + r["lost"].as_u64().unwrap(), 40_000);
}

#[test]
fn real_zerotier_config_from_the_capture_runs() {
    let conf = std::fs::read_to_string(shared_dir().join("conformance/zt-1.14.1/nodes/a.bond-ab.local.conf"))
        .expect("conformance config present");
    let scenario = r#"{"duration_ms": 6000, "seed": 2,
      "links": [{"name": "ea", "latency_ms": 15}, {"name": "ea2", "latency_ms": 15}],
      "events": [{"at_ms": 2000, "link": "ea", "set": {"up": false}}],
      "traffic": {"flows": 4, "packets_per_second": 1000}}"#;
    let r = json(&simulate("zt", &conf, scenario, &[]));
    assert_eq!(r["policy"], "fast-ab");
    assert_eq!(r["failovers"][0]["to"], "ea2");
    // zerotier-one 1.14.1 with this config (failoverInterval 500) lost 520 ms; the engine far less.
    assert!(r["outage_ms"].as_f64().unwrap() < 100.0, "{r}");
}

#[test]
fn broadcast_via_the_default_policy() {
    let r =
        json(&simulate("bc", r#"{"settings": {"defaultBondingPolicy": "broadcast"}}"#, CUT_SCENARIO, &["--pretty"]));
    assert_eq!(r["policy"], "broadcast");
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicates_delivered"], 0);
}

fn assert_input_error(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(2), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(needle), "stderr should mention {needle:?}: {stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_scenarios_exit_2_with_the_offending_key() {
    let bad_loss = CUT_SCENARIO.replace(
        r#""loss": 0.0, "capacity_mbps": 1000},
            {"name": "eth1""#,
        r#""loss": 2.0, "capacity_mbps": 1000},
            {"name": "eth1""#,
    );
    assert_input_error(&simulate("s1", AB_CONFIG, &bad_loss, &[]), "links[0].loss");
    let unknown_link = CUT_SCENARIO.replace(r#""link": "eth0""#, r#""link": "wlan9""#);
    assert_input_error(&simulate("s2", AB_CONFIG, &unknown_link, &[]), "events[0].link");
    assert_input_error(&simulate("s3", AB_CONFIG, "{\"duration_ms\": ", &[]), "invalid scenario");
    assert_input_error(&simulate("s4", AB_CONFIG, r#"{"duration_ms": 10, "links": []}"#, &[]), "traffic");
}

#[test]
fn bad_configs_exit_2_with_the_json_path() {
    let unknown_key = AB_CONFIG.replace(r#""mode": "spare""#, r#""mode": "spare", "sped": 10"#);
    assert_input_error(&simulate("c1", &unknown_key, CUT_SCENARIO, &[]), "settings.policies.ab.links.eth1");
    assert_input_error(&simulate("c2", "not json", CUT_SCENARIO, &[]), "invalid config");
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_ztplanectl")).args(["policy", "simulate", "--config"]).output().unwrap();
    assert_input_error(&out, "--scenario are required");
    let out = Command::new(env!("CARGO_BIN_EXE_ztplanectl")).args(["policy", "frobnicate"]).output().unwrap();
    assert_input_error(&out, "usage");
    let out = Command::new(env!("CARGO_BIN_EXE_ztplanectl"))
        .args(["policy", "simulate", "--config", "/nonexistent/local.conf", "--scenario", "/nonexistent/s.json"])
        .output()
        .unwrap();
    assert_input_error(&out, "cannot read config");
}

#[test]
fn a_peer_specific_bond_is_used_when_the_scenario_names_the_peer() {
    let config = r#"{"settings": {"defaultBondingPolicy": "active-backup",
        "policies": {"spray": {"basePolicy": "balance-rr", "packetsPerLink": 4}},
        "peerSpecificBonds": {"f6203a2db3": "spray"}}}"#;
    let with_peer = CUT_SCENARIO.replace(r#""seed": 1,"#, r#""seed": 1, "peer": "f6203a2db3","#);
    let r = json(&simulate("peer", config, &with_peer, &[]));
    assert_eq!(r["policy"], "spray");
    assert_eq!(r["base_policy"], "balance-rr");
    let r = json(&simulate("nopeer", config, CUT_SCENARIO, &[]));
    assert_eq!(r["policy"], "active-backup");
    let bad_peer = CUT_SCENARIO.replace(r#""seed": 1,"#, r#""seed": 1, "peer": "xyz","#);
    assert_input_error(&simulate("badpeer", config, &bad_peer, &[]), "peer");
}
