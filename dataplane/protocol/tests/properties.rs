//! Property tests: parsers never panic on random or mutated input, and round-trip properties
//! hold for fragmentation and dictionaries. Inputs derive from the real captures where useful.

mod common;

use proptest::prelude::*;
use std::sync::OnceLock;
use ztplane_protocol::dictionary::Dictionary;
use ztplane_protocol::fragment::{FragmentSlots, FragmentView, Reassembly, fragment_packet};
use ztplane_protocol::header::{DatagramKind, MAX_PACKET_LEN, PacketView, Verb, classify};
use ztplane_protocol::inspect::inspect_pcap;
use ztplane_protocol::packet::open_packet;
use ztplane_protocol::pcap::{FrameContent, PcapReader};
use ztplane_protocol::verbs::Message;
use ztplane_protocol::world::World;
use ztplane_protocol::{Identity, PeerKey};

struct Fixture {
    identities: Vec<Identity>,
    /// (key for the pair, unfragmented head) from the basic capture.
    heads: Vec<(PeerKey, Vec<u8>)>,
    moon: Vec<u8>,
    pcap_prefix: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let identities = common::load_identities();
        let pcap = common::pcap_bytes("basic");
        let mut heads = Vec::new();
        let mut end_of_40 = 24;
        for frame in PcapReader::new(&pcap).unwrap() {
            let frame = frame.unwrap();
            if frame.index < 40 {
                // compute the byte length of the first 40 records for a small pcap prefix
                if let FrameContent::Udp(u) = &frame.content {
                    end_of_40 += 16 + 14 + 20 + 8 + u.payload.len();
                }
            }
            let FrameContent::Udp(u) = frame.content else { continue };
            if classify(u.payload) != DatagramKind::Head || u.payload[18] & 0x40 != 0 {
                continue;
            }
            let v = PacketView::parse(u.payload).unwrap();
            let find = |a| identities.iter().find(|i| i.address() == a);
            let (Some(s), Some(d)) = (find(v.source()), find(v.destination())) else { continue };
            let key = if s.has_secret() { s.agree(d) } else { d.agree(s) };
            if let Ok(key) = key
                && heads.len() < 120
            {
                heads.push((key, u.payload.to_vec()));
            }
        }
        let moon = std::fs::read(common::conformance_dir().join("nodes/0000002c80d43748.moon")).unwrap();
        let pcap_prefix = pcap[..end_of_40].to_vec();
        let frames: Vec<_> = PcapReader::new(&pcap_prefix).unwrap().collect();
        assert!(frames.len() == 40 && frames.iter().all(Result::is_ok), "prefix holds exactly 40 whole frames");
        Fixture { identities, heads, moon, pcap_prefix }
    })
}

fn decode_all_verbs(payload: &[u8], key: Option<&PeerKey>) {
    let pid = [7u8; 8];
    for code in 0..32u8 {
        let _ = Message::decode(Verb::from_code(code), payload, key.map(|k| (k, &pid)));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn head_and_fragment_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let kind = classify(&bytes);
        if let Ok(v) = PacketView::parse(&bytes) {
            prop_assert!(bytes.len() >= 28);
            let _ = (v.packet_id(), v.source(), v.destination(), v.flags().cipher(), v.mac());
        }
        if let Ok(f) = FragmentView::parse(&bytes) {
            prop_assert_eq!(kind, DatagramKind::Fragment);
            prop_assert!(f.fragment_no() >= 1 && f.fragment_no() < f.fragment_total() && f.fragment_total() <= 7);
        }
    }

    #[test]
    fn verb_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        decode_all_verbs(&bytes, fixture().heads.first().map(|(k, _)| k));
    }

    #[test]
    fn reassembly_never_panics_and_stays_bounded(
        ops in proptest::collection::vec((0u8..4, any::<u8>(), 0usize..1500, 0u64..20_000, any::<bool>()), 1..60)
    ) {
        let mut slots: FragmentSlots<u8, usize, 8> = FragmentSlots::new(5_000);
        let mut out = vec![0u8; MAX_PACKET_LEN];
        for (i, (key, nibbles, len, t, head)) in ops.into_iter().enumerate() {
            let mut d = vec![0xa5u8; 28.max(17 + len)];
            if head {
                d[13] = 1;
                d[18] = 0x58;
                if let Ok(Reassembly::Complete { len, .. }) = slots.push_head(key, &d, i, t, &mut out) {
                    prop_assert!(len <= MAX_PACKET_LEN);
                }
            } else {
                d[13] = 0xff;
                d[14] = nibbles;
                if let Ok(f) = FragmentView::parse(&d)
                    && let Ok(Reassembly::Complete { len, tags }) = slots.push_fragment(key, &f, i, t, &mut out) {
                        prop_assert!(len <= MAX_PACKET_LEN);
                        prop_assert!(tags.len() >= 2);
                    }
            }
            prop_assert!(slots.in_progress() <= 8);
        }
    }

    #[test]
    fn fragmentation_round_trips_in_any_order(
        len in 28usize..9_000, mtu in 1_300usize..2_000, seed in any::<u64>(), dup in any::<bool>()
    ) {
        let mut packet: Vec<u8> = (0..len).map(|i| (i as u64).wrapping_mul(seed | 1).wrapping_shr(7) as u8).collect();
        packet[13] = 0x12;
        packet[18] = if len > mtu { 0x58 } else { 0x18 };
        let mut parts = Vec::new();
        match fragment_packet(&packet, mtu, |d| parts.push(d.to_vec())) {
            Ok(n) => prop_assert_eq!(n, parts.len()),
            Err(_) => { prop_assert!(1 + (len.saturating_sub(mtu)).div_ceil(mtu - 16) > 7); return Ok(()); }
        }
        // deterministic shuffle from the seed
        let mut order: Vec<usize> = (0..parts.len()).collect();
        let mut s = seed;
        for i in (1..order.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (s >> 33) as usize % (i + 1));
        }
        if dup { order.insert(order.len() / 2, order[0]); }
        let mut slots: FragmentSlots<u8, usize, 2> = FragmentSlots::new(1_000);
        let mut out = vec![0u8; MAX_PACKET_LEN];
        let mut done = None;
        if parts.len() == 1 {
            done = Some(parts[0].clone());
        } else {
            for &i in &order {
                let d = &parts[i];
                let r = if i == 0 { slots.push_head(0, d, i, 0, &mut out) } else {
                    slots.push_fragment(0, &FragmentView::parse(d).unwrap(), i, 0, &mut out)
                };
                if let Ok(Reassembly::Complete { len, tags }) = r {
                    prop_assert_eq!(tags.to_vec(), (0..parts.len()).collect::<Vec<_>>());
                    done = Some(out[..len].to_vec());
                }
            }
        }
        prop_assert_eq!(done, Some(packet));
    }

    #[test]
    fn dearmor_and_decode_never_panic_on_mutated_packets(
        pick in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let f = fixture();
        let (key, head) = &f.heads[pick.index(f.heads.len())];
        let mut p = head.clone();
        for (at, x) in flips {
            let i = at.index(p.len());
            p[i] ^= x;
        }
        if truncate {
            p.truncate(cut.index(p.len() + 1));
        }
        let mut scratch = vec![0u8; MAX_PACKET_LEN];
        let untouched = p == *head;
        match open_packet(key, &mut p, &mut scratch) {
            Ok(opened) => {
                let pid = [0u8; 8];
                let _ = Message::decode(opened.verb_byte.verb(), opened.payload, Some((key, &pid)));
                decode_all_verbs(opened.payload, Some(key));
            }
            Err(_) => prop_assert!(!untouched, "an unmodified captured packet must open"),
        }
    }

    #[test]
    fn dictionary_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(d) = Dictionary::parse(&bytes) {
            // whatever parsed re-encodes to something that parses to the same thing
            prop_assert_eq!(Dictionary::parse(&d.encode()).unwrap(), d);
        }
    }

    #[test]
    fn dictionary_round_trips(entries in proptest::collection::vec(("[a-zA-Z0-9]{1,8}", proptest::collection::vec(any::<u8>(), 0..40)), 0..12)) {
        let mut d = Dictionary::new();
        for (k, v) in &entries { d.set(k, v.clone()); }
        prop_assert_eq!(Dictionary::parse(&d.encode()).unwrap(), d);
    }

    #[test]
    fn world_parse_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        random in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let f = fixture();
        let mut m = f.moon.clone();
        for (at, x) in flips { let i = at.index(m.len()); m[i] ^= x; }
        m.truncate(cut.index(m.len() + 1).max(1));
        if let Ok(w) = World::parse(&m) {
            prop_assert_eq!(World::parse(&w.encode()).unwrap(), w.clone());
            let _ = w.verify();
        }
        let _ = World::parse(&random);
    }

    #[test]
    fn pcap_reader_never_panics(random in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(r) = PcapReader::new(&random) {
            for frame in r { let _ = frame; }
        }
        let mut with_header = ztplane_protocol::pcap::write_pcap(&[]);
        with_header.extend_from_slice(&random);
        for frame in PcapReader::new(&with_header).unwrap() { let _ = frame; }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// The whole decoder on a mutated prefix of the real basic capture.
    #[test]
    fn capture_decoder_never_panics_on_mutated_pcap(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        cut in any::<prop::sample::Index>(),
    ) {
        let f = fixture();
        let mut p = f.pcap_prefix.clone();
        for (at, x) in flips { let i = 24 + at.index(p.len() - 24); p[i] ^= x; }
        let cut = 24 + cut.index(p.len() - 23);
        let _ = inspect_pcap(&p[..cut], f.identities.clone());
    }
}
