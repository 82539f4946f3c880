//! Property tests: dearmor and the parsers never panic, whatever the input.
mod common;
use proptest::prelude::*;
use ztplane_crypto::{Address, CipherSuite, Identity, PeerKey, armor, dearmor};

fn key() -> PeerKey {
    PeerKey::from_bytes(std::array::from_fn(|i| (i * 7) as u8))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn dearmor_random_bytes_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let _ = dearmor(&key(), &mut bytes);
    }

    #[test]
    fn dearmor_mutated_packets_fail_cleanly(
        len in 28usize..2000,
        suite in prop_oneof![Just(CipherSuite::Poly1305), Just(CipherSuite::Salsa2012Poly1305), Just(CipherSuite::AesGmacSiv)],
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let key = key();
        let mut packet: Vec<u8> = (0..len).map(|i| (i * 31 + 5) as u8).collect();
        packet[18] = 0;
        armor(&key, &mut packet, suite).unwrap();
        let mut mutated = packet.clone();
        for (position, mask) in flips {
            let position = position % len;
            // Hop bits are not authenticated; everything else is.
            let mask = if position == 18 { mask & 0xf8 } else { mask };
            mutated[position] ^= mask;
        }
        if let Some(cut) = cut {
            mutated.truncate(cut % (len + 1));
        }
        let changed = mutated != packet;
        let result = dearmor(&key, &mut mutated);
        if changed {
            prop_assert!(result.is_err());
        } else {
            prop_assert!(result.is_ok());
        }
    }

    #[test]
    fn identity_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), text in ".{0,300}") {
        let _ = Identity::from_bytes(&bytes);
        let _ = text.parse::<Identity>();
        let _ = text.parse::<Address>();
        let _ = Address::from_slice(&bytes);
    }

    #[test]
    fn verify_never_panics(message in proptest::collection::vec(any::<u8>(), 0..100), signature in proptest::collection::vec(any::<u8>(), 0..120)) {
        let (a, _) = common::node_identity("a.identity.public");
        prop_assert!(!a.verify(&message, &signature));
    }
}
