//! Runs the built `ztplanectl decode` on each conformance capture and compares its output with
//! `expected-*.json`; checks clear errors for bad input.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn conformance_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/zt-1.14.1");
    assert!(
        dir.join("README.md").is_file(),
        "reference material missing: expected {} (`shared/` must sit beside the workspace root)",
        dir.display()
    );
    dir
}

fn identity_args(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("nodes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".identity.secret") || n.ends_with(".identity.public")
        })
        .collect();
    files.sort();
    files.iter().flat_map(|p| ["--identity".to_string(), p.display().to_string()]).collect()
}

fn num_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_u64(), y.as_u64()) {
            (Some(p), Some(q)) => p == q,
            _ => (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 5e-7,
        },
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| num_eq(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| num_eq(v, w)),
        _ => a == b,
    }
}

fn run_decode(args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ztplanectl")).arg("decode").args(args).output().expect("run ztplanectl")
}

fn check(capture: &str) {
    let dir = conformance_dir();
    let mut args = vec!["--pcap".to_string(), dir.join(format!("zt-1.14.1-{capture}.pcap")).display().to_string()];
    args.extend(identity_args(&dir));
    let out = run_decode(&args);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("expected-{capture}.json"))).unwrap()).unwrap();
    let want = expected["records"].as_array().unwrap();
    assert_eq!(lines.len(), want.len() + 1, "one line per datagram plus the summary");
    for (g, w) in lines.iter().zip(want) {
        assert!(g == w && num_eq(g, w), "record {} differs:\n got {g}\nwant {w}", w["index"]);
    }
    assert_eq!(lines.last().unwrap(), &expected["summary"], "summary differs");
}

#[test]
fn decode_basic() {
    check("basic");
}

#[test]
fn decode_bond_ab() {
    check("bond-ab");
}

#[test]
fn decode_bridge() {
    check("bridge");
}

fn expect_error(args: &[String], needle: &str) {
    let out = run_decode(args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(needle), "stderr {stderr:?} should mention {needle:?}");
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
}

#[test]
fn bad_input_gives_one_clear_error() {
    let dir = conformance_dir();
    let pcap = dir.join("zt-1.14.1-basic.pcap").display().to_string();
    let ident = dir.join("nodes/a.identity.secret").display().to_string();
    let tmp = std::env::temp_dir().join(format!("ztplanectl-decode-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let s = |x: &str| x.to_string();

    expect_error(&[s("--pcap"), s("/nonexistent/x.pcap"), s("--identity"), ident.clone()], "cannot read pcap file");
    expect_error(&[s("--pcap"), pcap.clone(), s("--identity"), s("/nonexistent/id")], "cannot read identity file");
    let bad_id = tmp.join("bad.identity.public");
    std::fs::write(&bad_id, "not an identity\n").unwrap();
    expect_error(&[s("--pcap"), pcap.clone(), s("--identity"), bad_id.display().to_string()], "bad identity file");
    let bad_pcap = tmp.join("garbage.pcap");
    std::fs::write(&bad_pcap, b"this is not a capture file at all").unwrap();
    expect_error(&[s("--pcap"), bad_pcap.display().to_string(), s("--identity"), ident.clone()], "bad pcap file");
    let truncated = tmp.join("truncated.pcap");
    let full = std::fs::read(&pcap).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    expect_error(&[s("--pcap"), truncated.display().to_string(), s("--identity"), ident.clone()], "truncated");
    expect_error(&[s("--pcap"), pcap.clone()], "--identity");
    expect_error(&[s("--identity"), ident], "--pcap");
    let _ = std::fs::remove_dir_all(&tmp);
}
