//! Encode → decode round trips for every verb codec, whole packets armored by one node and
//! opened with the key derived on the other side, fragmentation + reassembly of built packets,
//! and world (moon/planet) files.

mod common;

use std::net::SocketAddr;
use ztplane_protocol::credentials::{
    CertificateOfMembership, CertificateOfOwnership, NetworkCredentials, OwnedThing, Revocation, Tag,
};
use ztplane_protocol::dictionary::Dictionary;
use ztplane_protocol::fragment::{FragmentSlots, FragmentView, Reassembly};
use ztplane_protocol::header::{DatagramKind, MAX_PACKET_LEN, Verb, classify};
use ztplane_protocol::network::{Mac, MulticastGroup, NetworkId};
use ztplane_protocol::packet::{Outgoing, open_packet, send_datagrams};
use ztplane_protocol::verbs::*;
use ztplane_protocol::wire::address_from_u64;
use ztplane_protocol::world::{WORLD_TYPE_MOON, WORLD_TYPE_PLANET, World};
use ztplane_protocol::{Address, CipherSuite, Identity, PeerKey};

const NWID: NetworkId = NetworkId(0x2c80d4374849700f);

struct Nodes {
    a: Identity,
    b: Identity,
    c: Identity,
}

fn nodes() -> Nodes {
    let ids = common::load_identities();
    let get = |addr: &str| ids.iter().find(|i| i.address().to_string() == addr).unwrap().clone();
    Nodes { a: get("cfe2482597"), b: get("f2281a769d"), c: get("2c80d43748") }
}

fn addr(v: u64) -> Address {
    address_from_u64(v)
}

/// Encode with `msg.encode`, decode with `Message::decode`, compare.
fn round_trip(msg: &Message<'_>, key: Option<(&PeerKey, &[u8; 8])>) {
    let mut wire = Vec::new();
    msg.encode(&mut wire, key).unwrap();
    let back = Message::decode(msg.verb(), &wire, key).unwrap();
    assert_eq!(&back, msg, "verb {:?}", msg.verb());
    let mut again = Vec::new();
    back.encode(&mut again, key).unwrap();
    assert_eq!(again, wire, "re-encoding is byte-identical for {:?}", msg.verb());
}

fn signed_com(n: &Nodes, member: &Identity) -> CertificateOfMembership {
    let mut com = CertificateOfMembership::new_for_member(NWID, 1_795_315_286_466, 1_800_000, member);
    com.sign(&n.c).unwrap();
    com
}

fn signed_coo(n: &Nodes) -> CertificateOfOwnership {
    let mut coo = CertificateOfOwnership {
        network_id: NWID,
        timestamp: 1_795_315_286_466,
        flags: 0,
        id: 1,
        things: vec![
            OwnedThing::Ipv4("198.19.0.241".parse().unwrap()),
            OwnedThing::Mac([0x0e, 0xbf, 0xab, 0, 0x12, 0x43]),
        ],
        issued_to: n.a.address(),
        signed_by: addr(0),
        signature_type: 0,
        signature: Vec::new(),
        extension: Vec::new(),
    };
    coo.sign(&n.c).unwrap();
    coo
}

#[test]
fn every_verb_round_trips() {
    let n = nodes();
    let key = n.a.agree(&n.b).unwrap();
    let pid = [1, 2, 3, 4, 5, 6, 7, 8];
    let group = MulticastGroup { mac: Mac::BROADCAST, adi: 0xc613_00e7 };
    let frame_bytes: Vec<u8> = (0..84u8).collect();
    let com = signed_com(&n, &n.a);
    let hello = Hello {
        protocol_version: 12,
        version_major: 1,
        version_minor: 14,
        version_revision: 1,
        timestamp: 1_795_315_285_966,
        identity: n.a.to_public(),
        destination: Some("198.18.1.1:9993".parse().unwrap()),
        planet_id: 149_604_618,
        planet_timestamp: 1_644_592_324_813,
        moons: vec![WorldRef { world_type: 127, id: 0x2c80d43748, timestamp: 1_795_314_542_445 }],
    };
    let chunk = {
        let mut c = ConfigChunk { network_id: NWID, data: b"v=0000000000000007\nn=bench\n".to_vec(), signed: None };
        c.sign(&n.c, 0, 0x74070d0ad6e52792, 27, 0).unwrap();
        assert!(c.verify(&n.c));
        assert!(!c.verify(&n.a));
        c
    };
    let ok = |payload| Message::Ok(Box::new(OkMessage { in_re_verb: Verb::Hello, in_re_packet_id: pid, payload }));
    let ok_with =
        |verb: Verb, payload| Message::Ok(Box::new(OkMessage { in_re_verb: verb, in_re_packet_id: pid, payload }));
    let messages: Vec<Message<'_>> = vec![
        Message::Nop,
        Message::Hello(Box::new(hello), HelloTail { len: 19, decrypted: true }),
        ok(OkPayload::Hello(OkHello {
            timestamp_echo: 5,
            protocol_version: 12,
            version_major: 1,
            version_minor: 14,
            version_revision: 1,
            reported_address: Some("198.18.1.2:9993".parse().unwrap()),
            world_updates: vec![],
        })),
        ok_with(Verb::Whois, OkPayload::Whois(vec![n.c.to_public(), n.b.to_public()])),
        ok_with(Verb::Echo, OkPayload::Echo(vec![9, 9, 9])),
        ok_with(Verb::NetworkConfigRequest, OkPayload::NetworkConfig(chunk.clone())),
        ok_with(
            Verb::MulticastGather,
            OkPayload::MulticastGather(OkMulticastGather {
                network_id: NWID,
                group,
                results: GatherResults { total_known: 1, members: vec![n.b.address()] },
            }),
        ),
        ok_with(
            Verb::MulticastFrame,
            OkPayload::MulticastFrame(OkMulticastFrame {
                network_id: NWID,
                group,
                flags: 2,
                results: Some(GatherResults { total_known: 1, members: vec![n.b.address()] }),
            }),
        ),
        ok_with(Verb::ExtFrame, OkPayload::ExtFrame(NWID)),
        Message::Error(ErrorMessage {
            in_re_verb: Verb::MulticastFrame,
            in_re_packet_id: pid,
            code: ErrorCode::NEED_MEMBERSHIP_CERTIFICATE,
            network_id: Some(NWID),
            group: None,
            dictionary: None,
        }),
        Message::Error(ErrorMessage {
            in_re_verb: Verb::MulticastFrame,
            in_re_packet_id: pid,
            code: ErrorCode::UNWANTED_MULTICAST,
            network_id: Some(NWID),
            group: Some(group),
            dictionary: None,
        }),
        Message::Error(ErrorMessage {
            in_re_verb: Verb::Whois,
            in_re_packet_id: pid,
            code: ErrorCode::OBJ_NOT_FOUND,
            network_id: None,
            group: None,
            dictionary: None,
        }),
        Message::Whois(vec![n.c.address(), n.b.address()]),
        Message::Rendezvous(Rendezvous { flags: 0, peer: n.b.address(), address: "198.18.1.3:9993".parse().unwrap() }),
        Message::Rendezvous(Rendezvous { flags: 0, peer: n.b.address(), address: "[fd00::3]:9993".parse().unwrap() }),
        Message::Frame(Frame { network_id: NWID, ethertype: 0x0800, payload: &frame_bytes }),
        Message::ExtFrame(ExtFrame {
            network_id: NWID,
            flags: 0,
            com: None,
            dst_mac: Mac(0x025a11223344),
            src_mac: NWID.mac_for(&n.a.address()),
            ethertype: 0x0806,
            payload: &frame_bytes[..28],
        }),
        Message::ExtFrame(ExtFrame {
            network_id: NWID,
            flags: 1,
            com: Some(com.clone()),
            dst_mac: Mac(0x025a11223344),
            src_mac: NWID.mac_for(&n.a.address()),
            ethertype: 0x0806,
            payload: &frame_bytes[..28],
        }),
        Message::Echo(&frame_bytes[..0]),
        Message::Echo(&frame_bytes[..8]),
        Message::MulticastLike(vec![
            MulticastLike { network_id: NWID, group: MulticastGroup { mac: Mac(0x01005e000001), adi: 0 } },
            MulticastLike { network_id: NWID, group },
        ]),
        Message::NetworkCredentials(Box::new(NetworkCredentials {
            coms: vec![com.clone()],
            capabilities: vec![],
            tags: vec![Tag {
                network_id: NWID,
                timestamp: 7,
                id: 3,
                value: 4,
                issued_to: n.a.address(),
                signed_by: n.c.address(),
                signature_type: 1,
                signature: vec![7; 96],
                extension: vec![],
            }],
            revocations: vec![Revocation {
                id: 1,
                network_id: NWID,
                credential_id: 2,
                threshold: 3,
                flags: 0,
                target: n.b.address(),
                signed_by: n.c.address(),
                credential_type: 1,
                signature_type: 1,
                signature: vec![1; 96],
                extension: vec![1, 2],
            }],
            certificates_of_ownership: vec![signed_coo(&n)],
        })),
        Message::NetworkConfigRequest(NetworkConfigRequest {
            network_id: NWID,
            metadata: {
                let mut d = Dictionary::new();
                d.set_u64("v", 7);
                d.set("o", b"linux/x86_64".to_vec());
                d.encode()
            },
            have_revision: 1,
            have_timestamp: 1_795_315_267_374,
        }),
        Message::NetworkConfig(chunk),
        Message::MulticastGather(Box::new(MulticastGather {
            network_id: NWID,
            flags: 1,
            group,
            gather_limit: 33,
            com: Some(com),
        })),
        Message::MulticastFrame(MulticastFrame {
            network_id: NWID,
            flags: 2,
            com: None,
            gather_limit: Some(33),
            src_mac: None,
            group,
            ethertype: 0x0806,
            payload: &frame_bytes[..28],
        }),
        Message::MulticastFrame(MulticastFrame {
            network_id: NWID,
            flags: 4,
            com: None,
            gather_limit: None,
            src_mac: Some(Mac(0x025a11223344)),
            group,
            ethertype: 0x0800,
            payload: &frame_bytes,
        }),
        Message::PushDirectPaths(vec![
            DirectPath { flags: 0, extension: vec![], address: Some("198.18.1.3:9993".parse().unwrap()) },
            DirectPath { flags: 1, extension: vec![1, 2, 3], address: Some("[fd00::1]:9993".parse().unwrap()) },
        ]),
        Message::Ack(1234),
        Message::QosMeasurement(vec![
            QosRecord { packet_id: [0x60, 0xa7, 0x61, 0xd8, 0x32, 0xd2, 0x72, 0x89], holding_ms: 723 },
            QosRecord { packet_id: [1; 8], holding_ms: 0xffff },
        ]),
        Message::UserMessage(UserMessage { type_id: 0x10000, data: vec![1, 2, 3] }),
        Message::Raw(Verb::RemoteTrace, b"a=b\n\0"),
    ];
    for msg in &messages {
        round_trip(msg, Some((&key, &pid)));
    }
}

#[test]
fn path_acks_round_trip_and_other_acks_are_not_path_acks() {
    let ack = PathAck {
        flags: PathAck::FAST,
        received_count: 0x0102_0304_0506_0708,
        received_bytes: 9_000_000_001,
        newest_packet_id: [9, 8, 7, 6, 5, 4, 3, 2],
        holding_us: 1_500,
    };
    let mut wire = Vec::new();
    ack.encode(&mut wire);
    assert_eq!(wire.len(), PathAck::LEN);
    assert_eq!(&wire[..6], b"ZTPA\x01\x01");
    assert_eq!(&wire[6..14], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(PathAck::decode(&wire), Some(ack));
    // zerotier-one 1.6's 4-byte ACK, a truncated or longer ack, another version: not ours.
    assert_eq!(PathAck::decode(&1234u32.to_be_bytes()), None);
    assert_eq!(PathAck::decode(&wire[..33]), None);
    let mut longer = wire.clone();
    longer.push(0);
    assert_eq!(PathAck::decode(&longer), None);
    let mut v2 = wire.clone();
    v2[4] = 2;
    assert_eq!(PathAck::decode(&v2), None);
    // The generic decoder still reads any ACK (zerotier-one 1.14 ignores the payload).
    assert!(matches!(Message::decode(Verb::Ack, &wire, None), Ok(Message::Ack(_))));
}

#[test]
fn qos_records_are_byte_reversed_on_the_wire() {
    let mut wire = Vec::new();
    Message::QosMeasurement(vec![QosRecord { packet_id: [1, 2, 3, 4, 5, 6, 7, 8], holding_ms: 0x0102 }])
        .encode(&mut wire, None)
        .unwrap();
    assert_eq!(wire, vec![8, 7, 6, 5, 4, 3, 2, 1, 0x02, 0x01]);
}

#[test]
fn hello_moons_need_the_peer_key() {
    let n = nodes();
    let key_ab = n.a.agree(&n.b).unwrap();
    let key_ba = n.b.agree(&n.a).unwrap();
    let pid = [0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 0xff];
    let hello = Hello {
        protocol_version: 12,
        version_major: 1,
        version_minor: 14,
        version_revision: 1,
        timestamp: 1,
        identity: n.a.to_public(),
        destination: None,
        planet_id: 149_604_618,
        planet_timestamp: 2,
        moons: vec![WorldRef { world_type: 127, id: 0x2c80d43748, timestamp: 3 }],
    };
    let mut wire = Vec::new();
    hello.encode(&mut wire, &key_ab, &pid);
    let (back, tail) = Hello::decode(&wire, Some((&key_ba, &pid))).unwrap();
    assert_eq!(back, hello);
    assert_eq!(tail.len, 19);
    let (no_key, tail) = Hello::decode(&wire, None).unwrap();
    assert!(!tail.decrypted);
    assert!(no_key.moons.is_empty());
    // wrong key: the count decrypts to garbage, so the list does not parse or differs
    let key_ac = n.a.agree(&n.c).unwrap();
    if let Ok((garbled, _)) = Hello::decode(&wire, Some((&key_ac, &pid))) {
        assert_ne!(garbled.moons, hello.moons);
    }
}

#[test]
fn packets_armored_by_one_side_open_on_the_other() {
    let n = nodes();
    let key_ab = n.a.agree(&n.b).unwrap();
    let key_ba = n.b.agree(&n.a).unwrap();
    let payload: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let compressible = vec![0x42u8; 3000];
    let random: Vec<u8> = (0..2810u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    let cases: Vec<(CipherSuite, Message<'_>, bool)> = vec![
        (
            CipherSuite::AesGmacSiv,
            Message::Frame(Frame { network_id: NWID, ethertype: 0x0800, payload: &payload }),
            false,
        ),
        (
            CipherSuite::AesGmacSiv,
            Message::Frame(Frame { network_id: NWID, ethertype: 0x0800, payload: &random }),
            false,
        ),
        (CipherSuite::Salsa2012Poly1305, Message::Echo(&compressible), true),
        (CipherSuite::Poly1305, Message::Echo(&payload[..10]), false),
        (CipherSuite::Poly1305, Message::QosMeasurement(vec![QosRecord { packet_id: [3; 8], holding_ms: 9 }]), false),
        // 5-byte payload: below the 64-byte threshold, sent plain even when compression is asked
        (CipherSuite::AesGmacSiv, Message::Whois(vec![n.c.address()]), true),
    ];
    let expect_compressed = [false, false, true, false, false, false];
    for (i, (suite, msg, compress)) in cases.into_iter().enumerate() {
        let out = Outgoing {
            key: &key_ab,
            packet_id: [i as u8 + 1, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77],
            destination: n.b.address(),
            source: n.a.address(),
            suite,
            compress,
            mtu: 1432,
        };
        let datagrams = send_datagrams(&out, &msg).unwrap();
        assert!(datagrams.iter().all(|d| d.len() <= 1432));
        // reassemble on the receiving side, in reverse order for good measure
        let mut slots: FragmentSlots<[u8; 8], usize, 4> = FragmentSlots::new(5000);
        let mut packet = vec![0u8; MAX_PACKET_LEN];
        let mut len = None;
        if datagrams.len() == 1 {
            packet[..datagrams[0].len()].copy_from_slice(&datagrams[0]);
            len = Some(datagrams[0].len());
        } else {
            for (j, d) in datagrams.iter().enumerate().rev() {
                let r = match classify(d) {
                    DatagramKind::Head => slots.push_head(d[..8].try_into().unwrap(), d, j, 0, &mut packet).unwrap(),
                    DatagramKind::Fragment => {
                        let f = FragmentView::parse(d).unwrap();
                        slots.push_fragment(f.packet_id(), &f, j, 0, &mut packet).unwrap()
                    }
                    other => panic!("{other:?}"),
                };
                if let Reassembly::Complete { len: l, .. } = r {
                    len = Some(l);
                }
            }
        }
        let len = len.expect("complete");
        let mut scratch = vec![0u8; MAX_PACKET_LEN];
        let opened = open_packet(&key_ba, &mut packet[..len], &mut scratch).unwrap();
        assert_eq!(opened.suite, suite);
        assert_eq!(opened.verb_byte.verb(), msg.verb());
        assert!(!compress || opened.verb_byte.compressed() == expect_compressed[i], "case {i}");
        assert_eq!(opened.verb_byte.compressed(), expect_compressed[i], "case {i}");
        let decoded = Message::decode(msg.verb(), opened.payload, None).unwrap();
        assert_eq!(decoded, msg, "case {i}");
        // a key for another pair must not open it
        let key_ac = n.a.agree(&n.c).unwrap();
        let mut copy = datagrams[0].clone();
        if datagrams.len() == 1 {
            assert!(open_packet(&key_ac, &mut copy, &mut scratch).is_err());
        }
    }
}

#[test]
fn moon_file_parses_and_verifies() {
    let dir = common::conformance_dir();
    let bytes = std::fs::read(dir.join("nodes/0000002c80d43748.moon")).unwrap();
    let world = World::parse(&bytes).unwrap();
    assert_eq!(world.world_type, WORLD_TYPE_MOON);
    assert_eq!(world.id, 0x2c80d43748);
    assert_eq!(world.timestamp, 1_795_314_542_445, "timestamp announced in HELLO moon lists");
    assert_eq!(world.roots.len(), 1);
    assert_eq!(world.roots[0].identity.address().to_string(), "2c80d43748");
    assert_eq!(world.roots[0].stable_endpoints, vec!["198.18.1.1:9993".parse::<SocketAddr>().unwrap()]);
    assert!(world.verify(), "moon signature verifies with its signing key");
    assert_eq!(world.encode(), bytes, "re-encodes byte for byte");
    for i in [1usize, 20, 100, 200, 250] {
        let mut bad = bytes.clone();
        bad[i] ^= 0x04;
        if let Ok(w) = World::parse(&bad) {
            assert!(!w.verify(), "flipped byte {i} must break the signature");
        }
    }
}

#[test]
fn planet_built_signed_and_updated() {
    let n = nodes();
    let dir = common::conformance_dir();
    // The moon's signing key pair (moon.json) stands in for a planet key.
    let moon: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("nodes/moon.json")).unwrap()).unwrap();
    let signer: Identity = format!(
        "0000000001:0:{}:{}",
        moon["signingKey"].as_str().unwrap(),
        moon["signingKey_SECRET"].as_str().unwrap()
    )
    .parse()
    .unwrap();
    let mut planet = World {
        world_type: WORLD_TYPE_PLANET,
        id: 149_604_618,
        timestamp: 1_644_592_324_813,
        updates_must_be_signed_by: [0; 64],
        signature: [0; 96],
        roots: vec![ztplane_protocol::world::Root {
            identity: n.c.to_public(),
            stable_endpoints: vec!["198.18.1.1:9993".parse().unwrap(), "[fd00::1]:9993".parse().unwrap()],
        }],
        moon_extension: vec![],
    };
    planet.sign(&signer).unwrap();
    assert!(planet.verify());
    let bytes = planet.encode();
    let back = World::parse(&bytes).unwrap();
    assert_eq!(back, planet);
    assert!(back.verify());
    let mut update = planet.clone();
    update.timestamp += 1;
    update.sign(&signer).unwrap();
    assert!(update.verify_update_of(&planet));
    assert!(!planet.verify_update_of(&update), "older timestamp");
    let mut forged = update.clone();
    forged.sign(&n.a).unwrap();
    assert!(!forged.verify_update_of(&planet), "signed by a key the current planet does not name");
}

#[test]
fn credentials_verify_and_detect_tampering() {
    let n = nodes();
    let com = signed_com(&n, &n.a);
    assert!(com.verify(&n.c));
    assert!(com.identity_hash_matches(&n.a));
    assert!(!com.identity_hash_matches(&n.b));
    assert!(!com.verify(&n.a));
    let mut tampered = com.clone();
    tampered.qualifiers[0].value += 1;
    assert!(!tampered.verify(&n.c));
    let coo = signed_coo(&n);
    assert!(coo.verify(&n.c));
    let mut t = coo.clone();
    t.things.pop();
    assert!(!t.verify(&n.c));
}

#[test]
fn config_chunks_reassemble_in_any_order() {
    let n = nodes();
    let mut dict = Dictionary::new();
    dict.set_u64("v", 7);
    dict.set("n", b"bench".to_vec());
    dict.set("C", vec![0u8; 3000]);
    let whole = dict.encode();
    let parts: Vec<&[u8]> = whole.chunks(1000).collect();
    let mut chunks: Vec<ConfigChunk> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut c = ConfigChunk { network_id: NWID, data: p.to_vec(), signed: None };
            // The chunk index is the chunk's byte offset in the update, as upstream sends it.
            c.sign(&n.c, 0, 42, whole.len() as u32, (i * 1000) as u32).unwrap();
            c
        })
        .collect();
    chunks.reverse();
    let mut asm = ConfigAssembler::new(4);
    let mut done = None;
    for (i, c) in chunks.iter().enumerate() {
        assert!(c.verify(&n.c));
        let r = asm.add(c).unwrap();
        assert_eq!(r.is_some(), i == chunks.len() - 1);
        assert!(asm.add(c).unwrap().is_none() || i == chunks.len() - 1);
        done = r.or(done);
    }
    assert_eq!(Dictionary::parse(&done.unwrap()).unwrap(), dict);

    // A chunk that reaches past the update's length, or overlaps another, drops the update.
    let mut asm = ConfigAssembler::new(4);
    let mut past_end = ConfigChunk { network_id: NWID, data: vec![b'x'; 10], signed: None };
    past_end.sign(&n.c, 0, 43, 15, 8).unwrap();
    assert!(asm.add(&past_end).is_err());
    let mut first = ConfigChunk { network_id: NWID, data: vec![b'x'; 10], signed: None };
    first.sign(&n.c, 0, 44, 15, 0).unwrap();
    let mut overlapping = ConfigChunk { network_id: NWID, data: vec![b'y'; 5], signed: None };
    overlapping.sign(&n.c, 0, 44, 15, 8).unwrap();
    assert!(asm.add(&first).unwrap().is_none());
    assert!(asm.add(&overlapping).is_err());
}

#[test]
fn zero_allocation_frame_path_matches_the_general_builder() {
    use ztplane_protocol::packet::{build_packet, seal_frame_into};
    let n = nodes();
    let key_ab = n.a.agree(&n.b).unwrap();
    let key_ba = n.b.agree(&n.a).unwrap();
    let ether: Vec<u8> = (0..2800u32).map(|i| i as u8).collect();
    for (suite, len) in
        [(CipherSuite::AesGmacSiv, 2800usize), (CipherSuite::Salsa2012Poly1305, 84), (CipherSuite::Poly1305, 0)]
    {
        let out = Outgoing {
            key: &key_ab,
            packet_id: [9, 8, 7, 6, 5, 4, 3, 2],
            destination: n.b.address(),
            source: n.a.address(),
            suite,
            compress: false,
            mtu: 1432,
        };
        let mut buf = [0u8; MAX_PACKET_LEN];
        let total = seal_frame_into(&mut buf, &out, NWID, 0x0800, &ether[..len]).unwrap();
        assert_eq!(total, 38 + len);
        let general =
            build_packet(&out, &Message::Frame(Frame { network_id: NWID, ethertype: 0x0800, payload: &ether[..len] }))
                .unwrap();
        assert_eq!(&buf[..total], &general[..], "same bytes as the allocating builder ({suite:?})");
        assert_eq!(buf[18] & 0x40 != 0, total > 1432);
        let mut scratch = vec![0u8; MAX_PACKET_LEN];
        let opened = open_packet(&key_ba, &mut buf[..total], &mut scratch).unwrap();
        match Message::decode(opened.verb_byte.verb(), opened.payload, None).unwrap() {
            Message::Frame(f) => assert_eq!(f.payload, &ether[..len]),
            other => panic!("{other:?}"),
        }
    }
    let mut small = [0u8; 100];
    let out = Outgoing {
        key: &key_ab,
        packet_id: [1; 8],
        destination: n.b.address(),
        source: n.a.address(),
        suite: CipherSuite::AesGmacSiv,
        compress: false,
        mtu: 1432,
    };
    assert!(seal_frame_into(&mut small, &out, NWID, 0x0800, &ether[..200]).is_err());
}

#[test]
fn zero_allocation_ext_frame_matches_the_general_builder() {
    use ztplane_protocol::packet::{build_packet, seal_ext_frame_into};
    let n = nodes();
    let key_ab = n.a.agree(&n.b).unwrap();
    let ether: Vec<u8> = (0..1514u32).map(|i| (i * 7) as u8).collect();
    let outgoing = |suite| Outgoing {
        key: &key_ab,
        packet_id: [3; 8],
        destination: n.b.address(),
        source: n.a.address(),
        suite,
        compress: false,
        mtu: 1432,
    };
    for suite in [CipherSuite::AesGmacSiv, CipherSuite::Salsa2012Poly1305] {
        let out = outgoing(suite);
        let mut buf = [0u8; MAX_PACKET_LEN];
        let total = seal_ext_frame_into(&mut buf, &out, NWID, &ether).unwrap();
        let frame = ExtFrame {
            network_id: NWID,
            flags: 0,
            com: None,
            dst_mac: Mac::from_octets(ether[0..6].try_into().unwrap()),
            src_mac: Mac::from_octets(ether[6..12].try_into().unwrap()),
            ethertype: u16::from_be_bytes([ether[12], ether[13]]),
            payload: &ether[14..],
        };
        let general = build_packet(&out, &Message::ExtFrame(frame)).unwrap();
        assert_eq!(&buf[..total], &general[..], "same bytes as the allocating builder ({suite:?})");
    }
    let out = outgoing(CipherSuite::Poly1305);
    assert!(seal_ext_frame_into(&mut [0u8; MAX_PACKET_LEN], &out, NWID, &ether[..13]).is_err());
}

/// Fixed-layout structures reject every strict prefix of a valid encoding with a typed error.
#[test]
fn truncated_encodings_give_typed_errors() {
    use ztplane_protocol::ProtocolError;
    use ztplane_protocol::wire::Reader;
    let n = nodes();
    let group = MulticastGroup { mac: Mac::BROADCAST, adi: 7 };
    let com = signed_com(&n, &n.a);
    type Decoder = Box<dyn Fn(&[u8]) -> Result<(), ProtocolError>>;
    let mut cases: Vec<(&str, Vec<u8>, Decoder)> = Vec::new();
    let mut w = Vec::new();
    Rendezvous { flags: 0, peer: n.b.address(), address: "198.18.1.3:9993".parse().unwrap() }.encode(&mut w);
    cases.push(("RENDEZVOUS", w, Box::new(|b| Rendezvous::decode(b).map(drop))));
    let mut w = Vec::new();
    MulticastGather { network_id: NWID, flags: 1, group, gather_limit: 33, com: Some(com.clone()) }.encode(&mut w);
    cases.push(("MULTICAST_GATHER", w, Box::new(|b| MulticastGather::decode(b).map(drop))));
    let mut w = Vec::new();
    OkMulticastGather {
        network_id: NWID,
        group,
        results: GatherResults { total_known: 2, members: vec![n.a.address(), n.b.address()] },
    }
    .encode(&mut w);
    cases.push(("OK(MULTICAST_GATHER)", w, Box::new(|b| OkMulticastGather::decode(&mut Reader::new(b)).map(drop))));
    let mut w = Vec::new();
    com.write(&mut w);
    cases.push(("COM", w, Box::new(|b| CertificateOfMembership::read(&mut Reader::new(b)).map(drop))));
    let mut w = Vec::new();
    signed_coo(&n).write(&mut w);
    cases.push(("COO", w, Box::new(|b| CertificateOfOwnership::read(&mut Reader::new(b)).map(drop))));
    let moon = std::fs::read(common::conformance_dir().join("nodes/0000002c80d43748.moon")).unwrap();
    cases.push(("moon", moon, Box::new(|b| World::parse(b).map(drop))));
    for (name, wire, decode) in &cases {
        assert!(decode(wire).is_ok(), "{name} full encoding decodes");
        for cut in 0..wire.len() {
            match decode(&wire[..cut]) {
                Err(ProtocolError::Truncated { .. }) | Err(ProtocolError::Malformed { .. }) => {}
                other => panic!("{name} cut at {cut}: {other:?}"),
            }
        }
    }
}

/// Capabilities are not interpreted, but must be skipped exactly so the credentials after
/// them still parse (spec §8.16).
#[test]
fn capabilities_are_skipped_exactly() {
    let n = nodes();
    let mut cap = Vec::new();
    cap.extend_from_slice(&NWID.0.to_be_bytes());
    cap.extend_from_slice(&1_795_315_286_466u64.to_be_bytes());
    cap.extend_from_slice(&9u32.to_be_bytes());
    cap.extend_from_slice(&2u16.to_be_bytes()); // two rules
    cap.extend_from_slice(&[0x00, 0x00]); // ACTION_DROP, no field
    cap.extend_from_slice(&[0x30, 6, 1, 2, 3, 4, 5, 6]); // a 6-byte match field
    cap.push(7); // max custody chain length
    cap.extend_from_slice(&n.a.address().to_bytes()); // custody: to
    cap.extend_from_slice(&n.c.address().to_bytes()); // from
    cap.push(1);
    cap.extend_from_slice(&96u16.to_be_bytes());
    cap.extend_from_slice(&[0xab; 96]);
    cap.extend_from_slice(&[0; 5]); // terminator
    cap.extend_from_slice(&0u16.to_be_bytes()); // extension
    let tag = Tag {
        network_id: NWID,
        timestamp: 1,
        id: 2,
        value: 3,
        issued_to: n.a.address(),
        signed_by: n.c.address(),
        signature_type: 1,
        signature: vec![5; 96],
        extension: vec![],
    };
    let mut payload = vec![0u8]; // no COMs
    payload.extend_from_slice(&1u16.to_be_bytes());
    payload.extend_from_slice(&cap);
    payload.extend_from_slice(&1u16.to_be_bytes());
    tag.write(&mut payload);
    payload.extend_from_slice(&0u16.to_be_bytes());
    payload.extend_from_slice(&1u16.to_be_bytes());
    signed_coo(&n).write(&mut payload);
    let creds = NetworkCredentials::decode(&payload).unwrap();
    assert_eq!(creds.capabilities.len(), 1);
    assert_eq!(creds.capabilities[0].raw, cap);
    assert_eq!((creds.capabilities[0].id, creds.capabilities[0].rule_count), (9, 2));
    assert_eq!(creds.tags, vec![tag]);
    assert_eq!(creds.certificates_of_ownership.len(), 1);
    assert!(creds.certificates_of_ownership[0].verify(&n.c));
    let mut again = Vec::new();
    creds.encode(&mut again);
    assert_eq!(again, payload);
    // A custody chain longer than its declared maximum is rejected.
    let mut bad = payload.clone();
    let max_at = 1 + 2 + 8 + 8 + 4 + 2 + 2 + 8;
    assert_eq!(bad[max_at], 7);
    bad[max_at] = 0;
    assert!(NetworkCredentials::decode(&bad).is_err());
    // Older senders stop after the COM list.
    assert_eq!(NetworkCredentials::decode(&[0]).unwrap(), NetworkCredentials::default());
}
