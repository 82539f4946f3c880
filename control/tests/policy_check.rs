//! `ztplanectl policy check`: what an operator runs on a local.conf before deploying it.
use std::path::PathBuf;
use std::process::Command;

fn ctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ztplanectl")).args(args).output().expect("ztplanectl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn shared_node(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/zt-1.14.1/nodes").join(file);
    assert!(path.exists(), "{} missing: tests need ../shared beside the repository", path.display());
    path.to_string_lossy().into_owned()
}

fn temp_conf(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("ztplanectl-check-{}-{name}.conf", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn a_real_config_resolves_with_defaults_filled_in() {
    let (code, stdout, stderr) = ctl(&["policy", "check", "--config", &shared_node("b.bond-ab.local.conf")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.is_empty(), "no warnings expected: {stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let policy = &json["settings"]["policies"]["fast-ab"];
    assert_eq!(policy["basePolicy"], "active-backup");
    assert_eq!(policy["failoverInterval"], 500);
    assert_eq!(policy["links"]["eb"]["mode"], "primary");
    assert_eq!(policy["links"]["eb2"]["mode"], "spare");
    assert_eq!(policy["activeReselect"], "always", "default filled in");
}

#[test]
fn legacy_keys_warn_and_bad_values_fail_with_their_path() {
    let legacy = temp_conf(
        "legacy",
        r#"{"settings": {"defaultBondingPolicy": "old", "policies": {"old": {"basePolicy": "balance-rr",
            "packetsPerSlave": 8, "slaves": {"eth0": {"speed": 1000}, "eth1": {"speed": 100}}}}}}"#,
    );
    let (code, stdout, stderr) = ctl(&["policy", "check", "--config", &legacy]);
    assert_eq!(code, 0, "{stderr}");
    for (old, new) in [("packetsPerSlave", "packetsPerLink"), ("slaves", "links"), ("speed", "capacity")] {
        assert!(stderr.contains(old) && stderr.contains(new), "no warning naming {old} -> {new}: {stderr}");
    }
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["settings"]["policies"]["old"]["packetsPerLink"], 8);

    let bad = temp_conf("bad", r#"{"settings": {"policies": {"p": {"basePolicy": "active-backup", "upDelay": -5}}}}"#);
    let (code, stdout, stderr) = ctl(&["policy", "check", "--config", &bad]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(stderr.contains("settings.policies.p.upDelay"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");

    let (code, _, stderr) = ctl(&["policy", "check"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--config"), "{stderr}");
    let _ = std::fs::remove_file(legacy);
    let _ = std::fs::remove_file(bad);
}
