//! Real zerotier-one 1.14.1 traffic (`shared/conformance/zt-1.14.1`): node identities, agreement, and
//! dearmor of captured packets of suites 0, 1 and 3, with negative checks derived from the same bytes.
mod common;
use common::*;
use std::collections::HashMap;
use ztplane_crypto::gmac_siv::Implementation;
use ztplane_crypto::{Address, ArmorError, CipherSuite, Identity, PeerKey, dearmor, hello_crypt_field};

const NODES: &str = "conformance/zt-1.14.1/nodes";

fn all_identities() -> HashMap<Address, Identity> {
    let mut map = HashMap::new();
    for entry in std::fs::read_dir(shared_dir().join(NODES)).expect("nodes dir") {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".identity.secret") || name.ends_with(".identity.public") {
            let (identity, _) = node_identity(&name);
            let slot = map.entry(identity.address()).or_insert_with(|| identity.clone());
            if identity.has_secret() {
                *slot = identity;
            }
        }
    }
    map
}

/// The end-to-end key between two addresses, from whichever side's secret is known, with the given
/// AES-GMAC-SIV implementation (every test that dearmors suite 3 runs once per implementation this CPU has).
fn key_between(
    ids: &HashMap<Address, Identity>,
    x: Address,
    y: Address,
    cache: &mut HashMap<(Address, Address), PeerKey>,
    variant: Implementation,
) -> PeerKey {
    cache
        .entry((x.min(y), x.max(y)))
        .or_insert_with(|| {
            let (ix, iy) = (&ids[&x], &ids[&y]);
            let key = if ix.has_secret() { ix.agree(iy).unwrap() } else { iy.agree(ix).unwrap() };
            let key = PeerKey::from_bytes_with(*key.as_bytes(), variant).expect("available variant");
            assert_eq!(key.gmac_siv_implementation(), variant);
            key
        })
        .clone()
}

#[test]
fn node_identities_parse_validate_and_round_trip() {
    let mut count = 0;
    for entry in std::fs::read_dir(shared_dir().join(NODES)).expect("nodes dir") {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !(name.ends_with(".identity.secret") || name.ends_with(".identity.public")) {
            continue;
        }
        let (identity, text) = node_identity(&name);
        assert!(identity.validate(), "{name} does not validate");
        assert_eq!(identity.has_secret(), name.ends_with(".secret"), "{name}");
        assert_eq!(identity.to_string(), text.trim_end(), "{name} does not round-trip");
        assert!(text[text.trim_end().len()..].chars().all(char::is_whitespace));
        let mut binary = Vec::new();
        identity.write_bytes(&mut binary, true);
        let (parsed, used) = Identity::from_bytes(&binary).unwrap();
        assert_eq!(used, binary.len());
        assert_eq!(parsed.to_string(), identity.to_string());
        count += 1;
    }
    assert_eq!(count, 10, "expected a/b/c secret+public and four Earth roots");
    for node in ["a", "b", "c"] {
        let (secret, _) = node_identity(&format!("{node}.identity.secret"));
        let (public, public_text) = node_identity(&format!("{node}.identity.public"));
        assert_eq!(secret, public);
        assert_eq!(secret.to_public_string(), public_text.trim_end());
    }
}

#[test]
fn agreement_is_symmetric_between_nodes() {
    let (a, _) = node_identity("a.identity.secret");
    let (b, _) = node_identity("b.identity.secret");
    let (c, _) = node_identity("c.identity.secret");
    assert_eq!(a.agree(&b).unwrap(), b.agree(&a).unwrap());
    assert_eq!(a.agree(&c).unwrap(), c.agree(&a).unwrap());
    assert_ne!(a.agree(&b).unwrap(), a.agree(&c).unwrap());
    assert!(a.agree(&b.to_public()).is_ok());
    assert!(b.to_public().agree(&a).is_err(), "agreement needs a secret");
    let signature = a.sign(b"conformance").unwrap();
    assert!(a.to_public().verify(b"conformance", &signature));
    assert!(!b.verify(b"conformance", &signature));
}

struct CapturedPacket {
    index: usize,
    record: serde_json::Value,
    bytes: Vec<u8>,
}

/// Every packet head of the basic capture, reassembled with its fragments when it has any.
fn captured_packets() -> Vec<CapturedPacket> {
    packets_of("basic")
}

/// Every packet head of `zt-1.14.1-<capture>.pcap`, reassembled with its fragments when it has any.
fn packets_of(capture: &str) -> Vec<CapturedPacket> {
    let datagrams = read_pcap(&format!("conformance/zt-1.14.1/zt-1.14.1-{capture}.pcap"));
    let expected = json(&format!("conformance/zt-1.14.1/expected-{capture}.json"));
    let records = expected["records"].as_array().unwrap();
    assert_eq!(records.len(), datagrams.len());
    let mut packets = Vec::new();
    for record in records {
        if record["kind"] != "packet" {
            continue;
        }
        let index = record["index"].as_u64().unwrap() as usize;
        let head = &datagrams[index].payload;
        assert!(head.len() >= 28 && head[13] != 0xff, "record {index} is not a head");
        let mut bytes = head.clone();
        if let Some(parts) = record["reassembled_from"].as_array() {
            for part in &parts[1..] {
                bytes.extend_from_slice(&datagrams[part.as_u64().unwrap() as usize].payload[16..]);
            }
        }
        assert_eq!(bytes.len() as u64, record["packet_len"].as_u64().unwrap(), "record {index}");
        packets.push(CapturedPacket { index, record: record.clone(), bytes });
    }
    packets
}

fn packet_key(
    ids: &HashMap<Address, Identity>,
    bytes: &[u8],
    cache: &mut HashMap<(Address, Address), PeerKey>,
    variant: Implementation,
) -> PeerKey {
    let dest = Address::from_slice(&bytes[8..13]).unwrap();
    let source = Address::from_slice(&bytes[13..18]).unwrap();
    key_between(ids, source, dest, cache, variant)
}

#[test]
fn captured_packets_dearmor() {
    for variant in Implementation::available() {
        captured_packets_dearmor_with(variant);
    }
}

fn captured_packets_dearmor_with(variant: Implementation) {
    let ids = all_identities();
    let mut cache = HashMap::new();
    let mut per_suite = HashMap::new();
    let mut fragmented = 0;
    for packet in captured_packets() {
        let key = packet_key(&ids, &packet.bytes, &mut cache, variant);
        let mut bytes = packet.bytes.clone();
        let result =
            dearmor(&key, &mut bytes).unwrap_or_else(|e| panic!("{} record {}: {e}", variant.name(), packet.index));
        let suite = packet.record["cipher"].as_u64().unwrap();
        assert_eq!(result.suite as u64, suite, "record {}", packet.index);
        match result.suite {
            CipherSuite::AesGmacSiv => {
                assert_eq!(hex(&result.aes_iv.unwrap()), field(&packet.record, "aes_iv"), "record {}", packet.index)
            }
            _ => assert_eq!(result.aes_iv, None),
        }
        // The decrypted verb byte matches the expected decode.
        assert_eq!(
            u64::from(bytes[27] & 0x1f),
            packet.record["verb_code"].as_u64().unwrap(),
            "record {}",
            packet.index
        );
        assert_eq!(bytes[27] & 0x80 != 0, packet.record["compressed"].as_bool().unwrap(), "record {}", packet.index);
        assert_eq!(&bytes[..27], &packet.bytes[..27], "header must be left as received");
        if suite == 0 {
            assert_eq!(bytes, packet.bytes, "suite 0 is not encrypted");
        }
        *per_suite.entry(suite).or_insert(0) += 1;
        if packet.record["fragmented"].as_bool().unwrap() {
            fragmented += 1;
        }
    }
    assert_eq!(per_suite.get(&0), Some(&9));
    assert_eq!(per_suite.get(&1), Some(&40));
    assert_eq!(per_suite.get(&3), Some(&292));
    assert_eq!(fragmented, 72);
}

#[test]
fn captured_hello_crypt_field_decrypts_moon_list() {
    let ids = all_identities();
    let mut cache = HashMap::new();
    let packet = captured_packets().into_iter().find(|p| p.index == 0).unwrap();
    assert_eq!(packet.record["verb"], "HELLO");
    let key = packet_key(&ids, &packet.bytes, &mut cache, Implementation::best());
    let mut bytes = packet.bytes.clone();
    dearmor(&key, &mut bytes).unwrap();
    let tail_len = packet.record["decoded"]["encrypted_tail_len"].as_u64().unwrap() as usize;
    let start = bytes.len() - tail_len;
    let id: [u8; 8] = bytes[..8].try_into().unwrap();
    hello_crypt_field(&key, &id, &mut bytes[start..]);
    let tail = &bytes[start..];
    let moon = &packet.record["decoded"]["moons"][0];
    assert_eq!(u16::from_be_bytes([tail[0], tail[1]]), 1, "one moon entry");
    assert_eq!(u64::from(tail[2]), moon["type"].as_u64().unwrap());
    assert_eq!(hex(&tail[3..11]), field(moon, "id"));
    assert_eq!(u64::from_be_bytes(tail[11..19].try_into().unwrap()), moon["timestamp"].as_u64().unwrap());
}

#[test]
fn captured_packets_reject_tampering_but_not_hop_changes() {
    for variant in Implementation::available() {
        captured_packets_reject_tampering_with(variant);
    }
}

fn captured_packets_reject_tampering_with(variant: Implementation) {
    let ids = all_identities();
    let mut cache = HashMap::new();
    let mut checked = HashMap::new();
    for packet in captured_packets() {
        let suite = packet.record["cipher"].as_u64().unwrap();
        let seen = checked.entry(suite).or_insert(0usize);
        if *seen >= 12 {
            continue;
        }
        *seen += 1;
        let key = packet_key(&ids, &packet.bytes, &mut cache, variant);
        // Any bit at offset 19 or beyond (MAC, verb, payload), and in the authenticated header bytes.
        let len = packet.bytes.len();
        let offsets = [0, 7, 8, 12, 13, 17, 19, 26, 27, 28, len / 2, len - 1];
        for (n, &offset) in offsets.iter().enumerate() {
            let mut bytes = packet.bytes.clone();
            bytes[offset] ^= 1 << (n % 8);
            assert_eq!(
                dearmor(&key, &mut bytes),
                Err(ArmorError::MacMismatch),
                "{} record {} offset {offset}",
                variant.name(),
                packet.index
            );
        }
        // Flags other than hops are authenticated too (the fragmented bit).
        let mut bytes = packet.bytes.clone();
        bytes[18] ^= 0x40;
        assert_eq!(dearmor(&key, &mut bytes), Err(ArmorError::MacMismatch), "record {} flags", packet.index);
        // Hops are not.
        for hops in 0..8u8 {
            let mut bytes = packet.bytes.clone();
            bytes[18] = (bytes[18] & 0xf8) | hops;
            assert!(dearmor(&key, &mut bytes).is_ok(), "record {} hops {hops}", packet.index);
        }
        // The wrong key fails.
        let wrong = PeerKey::from_bytes_with([7; 48], variant).unwrap();
        assert_eq!(dearmor(&wrong, &mut packet.bytes.clone()), Err(ArmorError::MacMismatch));
    }
    // All 9 suite-0 heads, 12 each of suites 1 and 3.
    assert_eq!((checked[&0], checked[&1], checked[&3]), (9, 12, 12));
}

#[test]
fn every_packet_of_the_bond_and_bridge_captures_dearmors() {
    for variant in Implementation::available() {
        every_packet_of_the_bond_and_bridge_captures_dearmors_with(variant);
    }
}

fn every_packet_of_the_bond_and_bridge_captures_dearmors_with(variant: Implementation) {
    let ids = all_identities();
    let mut cache = HashMap::new();
    for capture in ["bond-ab", "bridge"] {
        let expected = json(&format!("conformance/zt-1.14.1/expected-{capture}.json"));
        let mut per_suite: HashMap<String, u64> = HashMap::new();
        for packet in packets_of(capture) {
            let key = packet_key(&ids, &packet.bytes, &mut cache, variant);
            let mut bytes = packet.bytes.clone();
            let result = dearmor(&key, &mut bytes)
                .unwrap_or_else(|e| panic!("{} {capture} record {}: {e}", variant.name(), packet.index));
            if let Some(iv) = packet.record["aes_iv"].as_str() {
                assert_eq!(hex(&result.aes_iv.unwrap()), iv, "{capture} record {}", packet.index);
            }
            assert_eq!(u64::from(bytes[27] & 0x1f), packet.record["verb_code"].as_u64().unwrap());
            *per_suite.entry((result.suite as u8).to_string()).or_default() += 1;
        }
        let summary = expected["summary"]["cipher_suites"].as_object().unwrap();
        for (suite, count) in summary {
            assert_eq!(per_suite.get(suite).copied().unwrap_or(0), count.as_u64().unwrap(), "{capture} suite {suite}");
        }
    }
}
