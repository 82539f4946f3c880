//! Capture-decoder behaviour outside the happy path: orphan fragments, incomplete heads,
//! fragments on another 4-tuple, unknown keys, beacons and non-UDP frames.

mod common;

use serde_json::Value;
use std::net::SocketAddr;
use ztplane_protocol::inspect::{Datagram, Inspector};

use common::Frame;

fn basic_frames() -> Vec<Frame> {
    common::udp_frames("basic")
}

fn run(frames: &[Frame], identities: Vec<ztplane_protocol::Identity>) -> ztplane_protocol::inspect::Inspection {
    let mut insp = Inspector::new(identities);
    for (t, s, d, ttl, p) in frames {
        insp.push(Datagram { src: *s, dst: *d, time_us: *t, ip_ttl: *ttl, payload: p });
    }
    insp.finish()
}

#[test]
fn fragment_on_another_path_is_an_orphan_and_its_head_stays_incomplete() {
    // records 164 (head) and 165 (its fragment) in the basic capture
    let frames = basic_frames();
    let mut picked: Vec<Frame> = frames[164..166].to_vec();
    picked[1].1 = "198.18.9.9:9993".parse().unwrap();
    let out = run(&picked, common::load_identities());
    let head = &out.records[0];
    let frag = &out.records[1];
    assert_eq!(frag["orphan"], Value::Bool(true));
    assert!(frag.get("head_index").is_none());
    assert_eq!(head["mac_ok"], Value::Null);
    assert!(head.get("decoded").is_none());
    assert_eq!(out.summary["undecoded"], 2);
    assert_eq!(out.summary["reassembled_packets"], 0);
    assert_eq!(out.summary["undecoded_reasons"]["orphan fragment"], 1);
    assert_eq!(out.summary["undecoded_reasons"]["incomplete fragmented packet"], 1);
}

#[test]
fn fragment_before_head_still_reassembles() {
    let frames = basic_frames();
    let picked: Vec<Frame> = vec![frames[165].clone(), frames[164].clone()];
    let out = run(&picked, common::load_identities());
    assert_eq!(out.records[0]["head_index"], 1);
    assert_eq!(out.records[1]["reassembled_from"], serde_json::json!([1, 0]));
    assert_eq!(out.records[1]["mac_ok"], Value::Bool(true));
    assert_eq!(out.records[1]["packet_len"], 2838);
}

#[test]
fn without_keys_packets_are_unverifiable_not_failures() {
    let frames = basic_frames();
    let out = run(&frames[..40], Vec::new());
    assert_eq!(out.summary["mac_verified"], 0);
    assert_eq!(out.summary["mac_failures"], 0);
    assert_eq!(out.summary["mac_unverifiable"], 40);
    assert!(out.records.iter().all(|r| r["mac_ok"].is_null() && r.get("verb").is_none()));
}

#[test]
fn hello_from_unknown_sender_uses_the_identity_it_carries() {
    // Only the moon's secret is held; a's HELLO (record 0) still verifies via its embedded identity.
    let frames = basic_frames();
    let c = common::load_identities().into_iter().filter(|i| i.address().to_string() == "2c80d43748").collect();
    let out = run(&frames[..1], c);
    assert_eq!(out.records[0]["mac_ok"], Value::Bool(true));
    assert_eq!(out.records[0]["verb"], "HELLO");
    assert!(out.records[0]["decoded"].get("identity_matches_known").is_none(), "a's identity file was not given");
}

#[test]
fn beacons_junk_and_non_udp_frames_are_other() {
    let a: SocketAddr = "10.0.0.1:9993".parse().unwrap();
    let b: SocketAddr = "10.0.0.2:9993".parse().unwrap();
    let frames: Vec<Frame> =
        vec![(0, a, b, 64, vec![1; 13]), (10, a, b, 2, vec![1, 2, 3, 4]), (20, a, b, 64, vec![7; 20])];
    let mut insp = Inspector::new(Vec::new());
    for (t, s, d, ttl, p) in &frames {
        insp.push(Datagram { src: *s, dst: *d, time_us: *t, ip_ttl: *ttl, payload: p });
    }
    insp.push_non_udp(30, "not IPv4");
    let out = insp.finish();
    let reasons: Vec<&str> = out.records.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(
        reasons,
        vec![
            "13-byte legacy LAN beacon",
            "4-byte NAT-traversal junk datagram (low IP TTL)",
            "20-byte datagram is neither a packet head nor a fragment",
            "not IPv4"
        ]
    );
    assert_eq!(out.summary["kinds"]["other"], 4);
    assert_eq!(out.summary["undecoded"], 4);
    assert_eq!(out.records[3]["time"], 3e-5);
}

/// With only a's secret, the decoder learns b's and the moon's identities from their
/// authenticated HELLOs (as a node would) and verifies later traffic with them.
#[test]
fn identities_are_learned_from_authenticated_hellos() {
    let only_a: Vec<_> =
        common::load_identities().into_iter().filter(|i| i.address().to_string() == "cfe2482597").collect();
    let out = run(&basic_frames(), only_a);
    let mac = |i: usize| out.records[i]["mac_ok"].clone();
    assert_eq!(mac(52), Value::Null, "a -> moon WHOIS before the moon's HELLO: no key yet");
    assert_eq!(mac(103), Value::Null, "a -> b ECHO before b's HELLO");
    assert_eq!(mac(105), Value::Bool(true), "b's HELLO verifies with the identity it carries");
    assert_eq!(out.records[105]["decoded"].get("identity_matches_known"), None, "b was learned, not given");
    assert_eq!(mac(110), Value::Bool(true), "b -> a ERROR after learning b");
    assert_eq!(mac(409), Value::Bool(true), "the moon's HELLO");
    assert_eq!(mac(411), Value::Bool(true), "a -> moon WHOIS after learning the moon");
    assert_eq!(mac(413), Value::Null, "b -> moon: neither secret is held");
    assert_eq!(out.summary["mac_failures"], 0);
}
