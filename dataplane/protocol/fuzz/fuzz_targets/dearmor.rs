//! Dearmor + decompress + decode under a fixed peer key.
//!
//! First byte even: the rest is taken as a received packet (almost always fails the MAC: this
//! exercises the rejection paths). First byte odd: the rest is a plaintext packet that we
//! armor with suite `(byte >> 1) % 4` (not 2) and then open; that must succeed and give back the
//! plaintext, and the verb decoders then run on fuzzer-controlled payloads (incl. LZ4).
#![no_main]
use libfuzzer_sys::fuzz_target;
use ztplane_protocol::header::{MAX_PACKET_LEN, MIN_PACKET_LEN};
use ztplane_protocol::packet::open_packet;
use ztplane_protocol::verbs::Message;
use ztplane_protocol::{CipherSuite, PeerKey};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let key = PeerKey::from_bytes([0x5a; 48]);
    let mut scratch = vec![0u8; MAX_PACKET_LEN];
    let mut packet = rest.to_vec();
    if mode & 1 == 1 {
        if packet.len() < MIN_PACKET_LEN || packet.len() > MAX_PACKET_LEN {
            return;
        }
        packet[13] = 0x01; // not a fragment indicator
        packet[18] &= 0x40;
        let suite = match (mode >> 1) % 3 {
            0 => CipherSuite::Poly1305,
            1 => CipherSuite::Salsa2012Poly1305,
            _ => CipherSuite::AesGmacSiv,
        };
        let plain_tail = packet[27..].to_vec();
        ztplane_crypto_armor(&key, &mut packet, suite);
        let opened = match open_packet(&key, &mut packet, &mut scratch) {
            Ok(o) => o,
            // the fuzzer's verb byte may claim LZ4 over garbage; authentication must never fail
            Err(ztplane_protocol::ProtocolError::Decompression(_)) => return,
            Err(e) => panic!("our own armored packet must open: {e}"),
        };
        if !opened.verb_byte.compressed() {
            assert_eq!(opened.payload, &plain_tail[1..]);
        }
        let pid = [0u8; 8];
        let _ = Message::decode(opened.verb_byte.verb(), opened.payload, Some((&key, &pid)));
    } else if let Ok(opened) = open_packet(&key, &mut packet, &mut scratch) {
        let pid = [0u8; 8];
        let _ = Message::decode(opened.verb_byte.verb(), opened.payload, Some((&key, &pid)));
    }
    let _ = ztplane_protocol::compress::decompress_payload(rest, &mut scratch);
});

fn ztplane_crypto_armor(key: &PeerKey, packet: &mut [u8], suite: CipherSuite) {
    ztplane_protocol::packet::armor_in_place(key, packet, suite).expect("armor a valid-length packet");
}
