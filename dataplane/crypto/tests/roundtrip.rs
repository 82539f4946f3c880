//! armor → dearmor round trips for every suite, many sizes, both key directions; identity generation.
mod common;
use common::*;
use ztplane_crypto::gmac_siv::Implementation;
use ztplane_crypto::{
    Address, ArmorError, CipherSuite, Identity, MAX_PACKET_LEN, PeerKey, armor, dearmor, hello_crypt_field,
};

fn test_packet(len: usize, seed: u64, dest: Address, source: Address, fragmented: bool) -> Vec<u8> {
    let mut next = xorshift(seed);
    let mut packet: Vec<u8> = (0..len).map(|_| next() as u8).collect();
    packet[8..13].copy_from_slice(&dest.to_bytes());
    packet[13..18].copy_from_slice(&source.to_bytes());
    packet[18] = if fragmented { 0x40 } else { 0 };
    packet
}

const SIZES: [usize; 16] = [28, 29, 43, 44, 64, 91, 92, 475, 476, 539, 540, 1400, 1432, 2800, 2838, MAX_PACKET_LEN];

#[test]
fn armor_dearmor_round_trip_all_suites_both_directions() {
    // Suite 3 once per AES-GMAC-SIV implementation this CPU can run, sender and receiver each with a different
    // one as well (the wire format must not depend on the variant).
    let variants = Implementation::available();
    for (n, &sender) in variants.iter().enumerate() {
        let receiver = variants[(n + 1) % variants.len()];
        round_trip_with(sender, sender);
        round_trip_with(sender, receiver);
    }
}

fn round_trip_with(sender: Implementation, receiver: Implementation) {
    let (a, _) = node_identity("a.identity.secret");
    let (b, _) = node_identity("b.identity.secret");
    let a_to_b = PeerKey::from_bytes_with(*a.agree(&b).unwrap().as_bytes(), sender).unwrap();
    let b_to_a = PeerKey::from_bytes_with(*b.agree(&a).unwrap().as_bytes(), receiver).unwrap();
    for suite in [CipherSuite::Poly1305, CipherSuite::Salsa2012Poly1305, CipherSuite::AesGmacSiv] {
        for (n, &len) in SIZES.iter().chain(&[100, 1000, 5000, 9999]).enumerate() {
            for (sender_key, receiver_key, src, dst) in
                [(&a_to_b, &b_to_a, a.address(), b.address()), (&b_to_a, &a_to_b, b.address(), a.address())]
            {
                let original = test_packet(len, (n as u64 + 1) * 7919, dst, src, n % 3 == 0);
                let mut packet = original.clone();
                armor(sender_key, &mut packet, suite).unwrap();
                assert_eq!(CipherSuite::from_flags(packet[18]).unwrap(), suite);
                assert_eq!(packet[18] & 0x80 != 0, suite == CipherSuite::Salsa2012Poly1305, "legacy bit");
                assert_eq!(packet[18] & 0x40, original[18] & 0x40, "fragmented bit kept");
                assert_eq!(packet[8..18], original[8..18], "addresses untouched");
                match suite {
                    CipherSuite::Poly1305 => {
                        assert_eq!(packet[27..], original[27..], "suite 0 is cleartext")
                    }
                    _ if len >= 36 => {
                        assert_ne!(packet[27..], original[27..], "payload must be encrypted")
                    }
                    _ => {}
                }
                if suite == CipherSuite::AesGmacSiv {
                    assert_ne!(packet[..8], original[..8], "suite 3 replaces the packet ID with the tag");
                }
                // A relay incrementing hops does not matter.
                packet[18] |= 3;
                let wire = packet.clone();
                let result = dearmor(receiver_key, &mut packet).unwrap();
                assert_eq!(result.suite, suite);
                assert_eq!(packet[27..], original[27..], "suite {suite:?} len {len}");
                match suite {
                    CipherSuite::AesGmacSiv => {
                        assert_eq!(result.aes_iv, Some(original[..8].try_into().unwrap()))
                    }
                    _ => assert_eq!(result.aes_iv, None),
                }
                // Flip one payload bit: rejected.
                let mut tampered = wire.clone();
                tampered[27 + (n * 31) % (len - 27)] ^= 0x20;
                assert_eq!(dearmor(receiver_key, &mut tampered), Err(ArmorError::MacMismatch));
                // Suites 0/1 verify before decrypting: a rejected payload is left as received.
                if suite != CipherSuite::AesGmacSiv {
                    let mut expected = wire.clone();
                    expected[27 + (n * 31) % (len - 27)] ^= 0x20;
                    assert_eq!(tampered, expected);
                }
                // Truncation changes the size bound into the MAC: rejected.
                if len > 28 {
                    let mut short = wire[..len - 1].to_vec();
                    assert_eq!(dearmor(receiver_key, &mut short), Err(ArmorError::MacMismatch));
                }
            }
        }
    }
}

#[test]
fn length_limits_and_suite_errors() {
    let key = PeerKey::from_bytes([3; 48]);
    for len in [0, 1, 27] {
        let mut packet = vec![0u8; len];
        assert_eq!(armor(&key, &mut packet, CipherSuite::AesGmacSiv), Err(ArmorError::TooShort(len)));
        assert_eq!(dearmor(&key, &mut packet), Err(ArmorError::TooShort(len)));
    }
    let mut packet = vec![0u8; MAX_PACKET_LEN + 1];
    assert_eq!(armor(&key, &mut packet, CipherSuite::Poly1305), Err(ArmorError::TooLong(MAX_PACKET_LEN + 1)));
    let mut packet = vec![0u8; 40];
    for suite in 4..8u8 {
        packet[18] = suite << 3;
        assert_eq!(dearmor(&key, &mut packet), Err(ArmorError::UnsupportedSuite(suite)));
    }
    // Suite 2: armor only sets the cipher bits; dearmor defers to the caller's trusted path check.
    let mut packet = vec![0x55u8; 40];
    armor(&key, &mut packet, CipherSuite::None).unwrap();
    assert_eq!(packet[18], 0x10 | (0x55 & 0x47));
    assert!(packet[19..].iter().all(|&b| b == 0x55));
    assert_eq!(dearmor(&key, &mut packet), Err(ArmorError::TrustedPathSuite));
}

#[test]
fn peer_key_is_shareable_and_bytes_round_trip() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PeerKey>();
    let bytes: [u8; 48] = std::array::from_fn(|i| i as u8);
    let key = PeerKey::from_bytes(bytes);
    assert_eq!(key.as_bytes(), &bytes);
    assert_eq!(format!("{key:?}"), "PeerKey(..)");
    // Several threads share one key.
    let key = std::sync::Arc::new(key);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let key = key.clone();
            std::thread::spawn(move || {
                let mut packet = test_packet(1400, t + 1, Address::new(1).unwrap(), Address::new(2).unwrap(), false);
                let original = packet.clone();
                armor(&key, &mut packet, CipherSuite::AesGmacSiv).unwrap();
                dearmor(&key, &mut packet).unwrap();
                assert_eq!(packet[27..], original[27..]);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn hello_crypt_field_is_an_involution_with_masked_nonce() {
    let key = PeerKey::from_bytes([9; 48]);
    let original: Vec<u8> = (0..50).collect();
    let mut data = original.clone();
    let id = [1, 2, 3, 4, 5, 6, 7, 0xff];
    hello_crypt_field(&key, &id, &mut data);
    assert_ne!(data, original);
    let mut masked = data.clone();
    hello_crypt_field(&key, &[1, 2, 3, 4, 5, 6, 7, 0xf8], &mut masked);
    assert_eq!(masked, original, "the low 3 bits of byte 7 are not part of the nonce");
}

#[test]
fn address_forms() {
    let address: Address = "cfe2482597".parse().unwrap();
    assert_eq!(address.as_u64(), 0xcfe2482597);
    assert_eq!(address.to_bytes(), [0xcf, 0xe2, 0x48, 0x25, 0x97]);
    assert_eq!(Address::from_bytes(&address.to_bytes()), address);
    assert_eq!(Address::from_slice(&[0xcf, 0xe2, 0x48, 0x25, 0x97]).unwrap(), address);
    assert!(Address::from_slice(&[1, 2, 3]).is_err());
    assert_eq!(address.to_string(), "cfe2482597");
    assert_eq!("CFE2482597".parse::<Address>().unwrap(), address);
    assert!("cfe248259".parse::<Address>().is_err());
    assert!("cfe24825977".parse::<Address>().is_err());
    assert!("zfe2482597".parse::<Address>().is_err());
    assert!(Address::new(1 << 40).is_err());
    assert_eq!(Address::new(0x12).unwrap().to_string(), "0000000012");
    assert!(Address::new(0).unwrap().is_reserved());
    assert!(Address::new(0xff00000001).unwrap().is_reserved());
    assert!(!address.is_reserved());
}

#[test]
fn identity_text_and_binary_errors() {
    let (a, text) = node_identity("a.identity.secret");
    assert!("".parse::<Identity>().is_err());
    assert!(text.replacen(":0:", ":1:", 1).parse::<Identity>().is_err());
    assert!(text.trim_end()[..text.trim_end().len() - 1].parse::<Identity>().is_err());
    assert!(format!("{}:00", text.trim_end()).parse::<Identity>().is_err());
    assert!(format!("{}\r\n\n", text.trim_end()).parse::<Identity>().is_ok());
    let mut binary = Vec::new();
    a.write_bytes(&mut binary, true);
    assert_eq!(binary.len(), 135);
    for cut in 0..binary.len() {
        assert!(Identity::from_bytes(&binary[..cut]).is_err(), "cut {cut}");
    }
    let mut public_form = Vec::new();
    a.write_bytes(&mut public_form, false);
    public_form.extend_from_slice(b"trailing bytes belong to the caller");
    let (public, used) = Identity::from_bytes(&public_form).unwrap();
    assert_eq!(used, 71);
    assert!(!public.has_secret());
    assert_eq!(public, a);
    let mut wrong_type = binary.clone();
    wrong_type[5] = 1;
    assert!(Identity::from_bytes(&wrong_type).is_err());
    let mut wrong_len = binary.clone();
    wrong_len[70] = 32;
    assert!(Identity::from_bytes(&wrong_len).is_err());
    assert!(!format!("{a:?}").contains(&hex(&a.secret_key().unwrap()[..])), "Debug must not leak the secret");
}

#[test]
fn generated_identity_is_valid_and_works() {
    let identity = Identity::generate().unwrap();
    assert!(identity.has_secret());
    assert!(identity.validate());
    assert!(!identity.address().is_reserved());
    let reparsed: Identity = identity.to_string().parse().unwrap();
    assert!(reparsed.validate());
    let (b, _) = node_identity("b.identity.secret");
    assert_eq!(identity.agree(&b).unwrap(), b.agree(&identity).unwrap());
    let signature = identity.sign(b"hello").unwrap();
    assert!(identity.to_public().verify(b"hello", &signature));
}
