//! Every AES-GMAC-SIV implementation this CPU can run (built explicitly, independent of `ZTPLANE_GMAC_SIV`)
//! against the portable one: byte-identical tags and ciphertexts for every payload length up to 300 and a
//! spread up to 4200, random keys, IVs and AAD, both directions, and tamper detection.
mod common;
use common::*;
use ztplane_crypto::gmac_siv::{AesGmacSiv, Implementation};

/// Every length up to 300 (all tail shapes of the 8- and 16-block batches several times over), then a spread
/// that crosses each batch boundary up to 4200.
fn lengths() -> Vec<usize> {
    let mut lengths: Vec<usize> = (0..=300).collect();
    for boundary in (384..=4200).step_by(128) {
        lengths.extend([boundary - 17, boundary - 1, boundary, boundary + 1, boundary + 15]);
    }
    lengths.extend([1373, 1400, 2773, 2800, 4199, 4200]);
    lengths.retain(|&len| len <= 4200);
    lengths.sort_unstable();
    lengths.dedup();
    lengths
}

fn variants(k0: &[u8; 32], k1: &[u8; 32]) -> Vec<AesGmacSiv> {
    Implementation::available()
        .into_iter()
        .map(|variant| {
            let siv = AesGmacSiv::with_implementation(k0, k1, variant).expect("available variant");
            assert_eq!(siv.variant(), variant);
            siv
        })
        .collect()
}

#[test]
fn portable_is_always_available_and_names_round_trip() {
    assert!(Implementation::available().contains(&Implementation::Portable));
    for variant in Implementation::ALL {
        assert_eq!(Implementation::from_name(variant.name()), Some(variant));
        assert!(variant.description().starts_with(variant.name()));
        let siv = AesGmacSiv::with_implementation(&[1; 32], &[2; 32], variant);
        assert_eq!(siv.is_some(), variant.is_available());
        if let Some(siv) = siv {
            assert_eq!(siv.implementation(), variant.description());
            assert_eq!(siv.without_simd().variant(), Implementation::Portable);
        }
    }
    assert_eq!(Implementation::from_name("avx"), None);
}

#[test]
fn every_variant_matches_portable_for_all_lengths() {
    let mut next = xorshift(0x5eed_0fa1_11e9);
    let lengths = lengths();
    for round in 0..6 {
        let k0: [u8; 32] = std::array::from_fn(|_| next() as u8);
        let k1: [u8; 32] = std::array::from_fn(|_| next() as u8);
        let sivs = variants(&k0, &k1);
        let portable = AesGmacSiv::with_implementation(&k0, &k1, Implementation::Portable).unwrap();
        for &len in &lengths {
            // AAD: the 11 bytes of the packet header usually, any length (including empty and multi-block)
            // sometimes.
            let aad_len = if round % 2 == 0 { 11 } else { (next() % 70) as usize };
            let aad: Vec<u8> = (0..aad_len).map(|_| next() as u8).collect();
            let iv: [u8; 8] = std::array::from_fn(|_| next() as u8);
            let plaintext: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let mut expected = plaintext.clone();
            let expected_tag = portable.encrypt_in_place(&iv, &aad, &mut expected);
            for siv in &sivs {
                let name = siv.variant().name();
                // Encryption: same tag, same ciphertext.
                let mut data = plaintext.clone();
                let tag = siv.encrypt_in_place(&iv, &aad, &mut data);
                assert_eq!(tag, expected_tag, "{name} len {len} aad {aad_len}");
                assert_eq!(data, expected, "{name} len {len} aad {aad_len}");
                // Decryption of the portable ciphertext, and the portable decryption of ours.
                let mut opened = expected.clone();
                assert_eq!(siv.decrypt_in_place(&expected_tag, &aad, &mut opened), Some(iv), "{name} len {len}");
                assert_eq!(opened, plaintext, "{name} len {len}");
                assert_eq!(portable.decrypt_in_place(&tag, &aad, &mut data), Some(iv));
                assert_eq!(data, plaintext);
                // Tampering anywhere (tag, AAD, ciphertext) is detected, and a rejected decryption leaves the
                // same bytes as the portable one (the unauthenticated key stream).
                let mut bad_tag = expected_tag;
                bad_tag[(len * 7) % 16] ^= 1 << (len % 8);
                let (mut ours, mut theirs) = (expected.clone(), expected.clone());
                assert_eq!(siv.decrypt_in_place(&bad_tag, &aad, &mut ours), None, "{name} len {len} tag");
                assert_eq!(portable.decrypt_in_place(&bad_tag, &aad, &mut theirs), None);
                assert_eq!(ours, theirs, "{name} len {len}");
                if !aad.is_empty() {
                    let mut bad_aad = aad.clone();
                    bad_aad[len % aad.len()] ^= 0x80;
                    let mut data = expected.clone();
                    assert_eq!(siv.decrypt_in_place(&expected_tag, &bad_aad, &mut data), None, "{name} len {len}");
                }
                if len > 0 {
                    let mut data = expected.clone();
                    data[(len * 13 + round) % len] ^= 0x04;
                    assert_eq!(siv.decrypt_in_place(&expected_tag, &aad, &mut data), None, "{name} len {len}");
                    // Truncation (the length is in the GHASH length block).
                    let mut short = expected[..len - 1].to_vec();
                    assert_eq!(siv.decrypt_in_place(&expected_tag, &aad, &mut short), None, "{name} len {len}");
                }
            }
        }
    }
}

#[test]
fn every_variant_matches_portable_across_the_counter_word() {
    // CTR IVs (tags) whose last word is near 0x7fffffff, 0xffffffff (after the top bit is cleared: the same)
    // and near a byte carry: decrypting with a chosen tag exercises the 32-bit counter directly.
    let sivs = variants(&[3; 32], &[4; 32]);
    let portable = AesGmacSiv::with_implementation(&[3; 32], &[4; 32], Implementation::Portable).unwrap();
    for last_word in [0x7fff_fff0u32, 0xffff_ffff, 0x0000_00fe, 0x00ff_fff9, 0x7fff_ffff] {
        let mut tag = [0xa5u8; 16];
        tag[12..].copy_from_slice(&last_word.to_be_bytes());
        for len in [0, 15, 16, 17, 127, 128, 129, 255, 256, 257, 1000, 4200] {
            let mut expected = vec![0x5au8; len];
            portable.decrypt_in_place(&tag, b"header", &mut expected);
            for siv in &sivs {
                let mut data = vec![0x5au8; len];
                siv.decrypt_in_place(&tag, b"header", &mut data);
                assert_eq!(data, expected, "{} word {last_word:#x} len {len}", siv.variant().name());
            }
        }
    }
}
