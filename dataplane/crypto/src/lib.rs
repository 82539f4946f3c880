//! ZeroTier 1.x (zerotier-one 1.14.1) identities and packet cryptography.
//!
//! Spec: `shared/spec/zerotier-protocol.md`
//! * §4 keys: [`Identity::sign`]/[`Identity::verify`] (96-byte signatures), [`Identity::agree`] → [`PeerKey`];
//! * §5 identities: [`Address`], [`Identity`] (text and binary forms, memory-hard address check);
//! * §6 packet armor: [`armor`], [`dearmor`] for cipher suites 0, 1 and 3, and [`hello_crypt_field`] (§6.6).
//!
//! The packet path ([`armor`]/[`dearmor`]) never allocates and works on one packet buffer in place; a
//! [`PeerKey`] holds every per-peer precomputation (mangling key, AES-GMAC-SIV key schedules and GHASH
//! tables) and is `Send + Sync`, so many cores can use one key at once through a shared reference.
//!
//! The library does no I/O and reads no clock; the only source of randomness is identity generation. The one
//! exception to "no I/O": a line on standard error when `ZTPLANE_GMAC_SIV` asks for something this CPU cannot
//! run (see [`gmac_siv::ENV_VAR`]).
//!
//! ```
//! use ztplane_crypto::{CipherSuite, PeerKey, armor, dearmor};
//! // Normally `my_identity.agree(&their_identity)?`, once per peer.
//! let key = PeerKey::from_bytes([7; 48]);
//! let mut packet = vec![0u8; 100]; // ID 0..8, dest 8..13, source 13..18, flags 18, MAC 19..27, verb 27
//! packet[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
//! packet[27] = 0x06; // FRAME
//! armor(&key, &mut packet, CipherSuite::AesGmacSiv)?;
//! let opened = dearmor(&key, &mut packet)?;
//! assert_eq!(opened.suite, CipherSuite::AesGmacSiv);
//! assert_eq!(opened.aes_iv, Some([1, 2, 3, 4, 5, 6, 7, 8]));
//! assert_eq!(packet[27], 0x06);
//! # Ok::<(), ztplane_crypto::ArmorError>(())
//! ```
//!
//! Speed (x86-64, chosen at run time, portable code elsewhere): Salsa20 in 16-block AVX-512 or 8-block
//! AVX2 batches ([`salsa20`]); Poly1305 eight blocks at a time with AVX-512 IFMA, else scalar radix 2^64
//! ([`poly1305`]); AES-GMAC-SIV with 512-bit VAES and VPCLMULQDQ, else 128-bit AES-NI and PCLMULQDQ
//! (8 blocks in flight), else the `aes`/`ghash` crates ([`gmac_siv`]; `ZTPLANE_GMAC_SIV=vaes|aesni|portable`
//! forces one, see [`gmac_siv::ENV_VAR`]). `cargo xtask bench crypto` compares suites 1 and 3 with OpenSSL.

mod address;
mod armor;
mod error;
pub mod gmac_siv;
#[cfg(target_arch = "x86_64")]
mod gmac_siv_aesni;
#[cfg(target_arch = "x86_64")]
mod gmac_siv_vaes;
mod hashcash;
mod identity;
mod peer_key;
pub mod poly1305;
pub mod salsa20;

pub use address::Address;
pub use armor::{
    CipherSuite, Dearmored, HEADER_LEN, MAX_PACKET_LEN, MIN_PACKET_LEN, armor, dearmor, hello_crypt_field,
};
pub use error::{ArmorError, CryptoError};
pub use identity::{Identity, PUBLIC_KEY_LEN, SECRET_KEY_LEN, SIGNATURE_LEN};
pub use peer_key::{PEER_KEY_LEN, PeerKey};

/// Poly1305 one-time authenticator (RFC 8439), full 16-byte tag; ZeroTier puts the first 8 bytes on the
/// wire (§6.2). Exposed for test vectors and benchmarks.
pub fn poly1305_tag(one_time_key: &[u8; 32], message: &[u8]) -> [u8; 16] {
    poly1305::tag(one_time_key, message)
}
