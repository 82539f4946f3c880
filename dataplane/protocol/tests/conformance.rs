//! Conformance against real zerotier-one 1.14.1 traffic: every datagram of the three captures
//! decodes to exactly the record in `expected-*.json` (whole-record equality), and the summary
//! matches. Also the README's negative tests (step 5).

mod common;

use common::*;
use serde_json::Value;
use ztplane_protocol::header::{DatagramKind, classify};
use ztplane_protocol::inspect::inspect_pcap;

fn check_capture(capture: &str) {
    let identities = load_identities();
    let expected = expected(capture);
    let got = inspect_pcap(&pcap_bytes(capture), identities).expect("decode capture");
    let want = expected["records"].as_array().unwrap();
    assert_eq!(got.records.len(), want.len(), "{capture}: record count");
    let mut failures = Vec::new();
    for (g, w) in got.records.iter().zip(want) {
        // strict equality: same members, same values (times are bit-identical f64s)
        if g != w {
            let mut d = Vec::new();
            diff(&format!("record {}", w["index"]), g, w, &mut d);
            failures.extend(d);
        }
    }
    assert!(
        failures.is_empty(),
        "{capture}: {} field mismatches, first 30:\n{}",
        failures.len(),
        failures.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
    );
    let mut d = Vec::new();
    diff("summary", &got.summary, &expected["summary"], &mut d);
    assert!(d.is_empty(), "{capture} summary:\n{}", d.join("\n"));
    assert_eq!(got.summary, expected["summary"]);
    assert_eq!(got.summary["mac_failures"], 0);
    // every packet authenticated
    for r in &got.records {
        if r["kind"] == "packet" {
            assert_eq!(r["mac_ok"], Value::Bool(true), "record {}", r["index"]);
        }
    }
}

#[test]
fn basic_capture_matches_expected() {
    check_capture("basic");
}

#[test]
fn bond_ab_capture_matches_expected() {
    check_capture("bond-ab");
}

#[test]
fn bridge_capture_matches_expected() {
    check_capture("bridge");
}

/// README step 5: flipping a bit of a head at offset ≥ 19 (or of a fragment at offset ≥ 16)
/// makes authentication fail; changing only the hop bits does not.
#[test]
fn tampering_fails_authentication_but_hops_do_not() {
    let identities = load_identities();
    let frames = common::udp_frames("basic");
    let run = |frames: &[common::Frame]| {
        let mut insp = ztplane_protocol::inspect::Inspector::new(identities.clone());
        for (t, s, d, ttl, p) in frames {
            insp.push(ztplane_protocol::inspect::Datagram { src: *s, dst: *d, time_us: *t, ip_ttl: *ttl, payload: p });
        }
        insp.finish()
    };
    // Pick heads of every suite and a fragment; mutate at several offsets.
    let mut targets = Vec::new();
    let mut seen_cipher = [false; 4];
    for (i, f) in frames.iter().enumerate() {
        match classify(&f.4) {
            DatagramKind::Head => {
                let c = ((f.4[18] >> 3) & 7) as usize;
                if c < 4 && !seen_cipher[c] {
                    seen_cipher[c] = true;
                    targets.push((i, 19usize));
                    targets.push((i, 27));
                    targets.push((i, f.4.len() - 1));
                }
            }
            DatagramKind::Fragment if targets.iter().all(|(_, o)| *o != 16) => {
                targets.push((i, 16));
                targets.push((i, f.4.len() - 1));
            }
            _ => {}
        }
    }
    assert!(targets.len() >= 11, "found heads of suites 0, 1, 3 and a fragment");
    let mut mutated = frames.clone();
    for (i, off) in &targets {
        mutated[*i].4[*off] ^= 0x01;
    }
    let result = run(&mutated);
    for (i, off) in &targets {
        let rec = &result.records[*i];
        let head = if rec["kind"] == "fragment" { rec["head_index"].as_u64().map(|h| h as usize) } else { Some(*i) };
        let head = head.unwrap_or_else(|| panic!("fragment {i} lost its head"));
        assert_eq!(result.records[head]["mac_ok"], Value::Bool(false), "datagram {i} offset {off}");
    }
    assert!(result.summary["mac_failures"].as_u64().unwrap() >= 4);

    // Hop bits only: everything still authenticates.
    let mut hopped = frames.clone();
    for f in hopped.iter_mut() {
        match classify(&f.4) {
            DatagramKind::Head => f.4[18] = (f.4[18] & 0xf8) | 5,
            DatagramKind::Fragment => f.4[15] = 3,
            _ => {}
        }
    }
    let result = run(&hopped);
    assert_eq!(result.summary["mac_failures"], 0);
    assert_eq!(result.summary["mac_verified"], 341);
}
