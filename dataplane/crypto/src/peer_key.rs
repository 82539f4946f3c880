//! The per-peer symmetric key (§4.2) and what is derived from it once per peer: the AES-GMAC-SIV keys (§6.3).
use crate::gmac_siv::{AesGmacSiv, Implementation};
use hmac::{Hmac, Mac};
use sha2::Sha384;
use std::fmt;
use zeroize::Zeroizing;

/// Length of the agreed key (`ZT_SYMMETRIC_KEY_SIZE`).
pub const PEER_KEY_LEN: usize = 48;

/// The 48-byte key shared with one peer, plus the AES-GMAC-SIV key schedules derived from it.
///
/// Derive once per peer and share by reference or `Arc`: it is `Send + Sync` and every packet operation takes
/// `&PeerKey`.
#[derive(Clone)]
pub struct PeerKey {
    bytes: Zeroizing<[u8; PEER_KEY_LEN]>,
    pub(crate) gmac_siv: AesGmacSiv,
}

impl PeerKey {
    /// From the 48 agreed bytes; derives K0 and K1 (HMAC-SHA-384, labels '0' and '1').
    pub fn from_bytes(bytes: [u8; PEER_KEY_LEN]) -> Self {
        let k0 = Self::derive_aes_key(&bytes, b'0');
        let k1 = Self::derive_aes_key(&bytes, b'1');
        PeerKey { gmac_siv: AesGmacSiv::new(&k0, &k1), bytes: Zeroizing::new(bytes) }
    }

    /// Like [`PeerKey::from_bytes`] with a given AES-GMAC-SIV implementation (tests and benchmarks compare
    /// them); `None` if this CPU cannot run it.
    pub fn from_bytes_with(bytes: [u8; PEER_KEY_LEN], implementation: Implementation) -> Option<Self> {
        let k0 = Self::derive_aes_key(&bytes, b'0');
        let k1 = Self::derive_aes_key(&bytes, b'1');
        let gmac_siv = AesGmacSiv::with_implementation(&k0, &k1, implementation)?;
        Some(PeerKey { gmac_siv, bytes: Zeroizing::new(bytes) })
    }

    /// The AES-GMAC-SIV implementation this key uses.
    pub fn gmac_siv_implementation(&self) -> Implementation {
        self.gmac_siv.variant()
    }

    pub fn as_bytes(&self) -> &[u8; PEER_KEY_LEN] {
        &self.bytes
    }

    /// The first 32 bytes: the Salsa20/12 key of suites 0/1 before mangling (§6.1) and of the HELLO field
    /// (§6.6).
    pub(crate) fn salsa_key(&self) -> &[u8; 32] {
        self.bytes[..32].try_into().expect("32 bytes")
    }

    /// §6.3 key derivation: HMAC-SHA-384(peer key, BE32 0 ‖ "ZT" ‖ label ‖ 0 ‖ 0 ‖ BE32 384), first 32 bytes.
    fn derive_aes_key(bytes: &[u8; PEER_KEY_LEN], label: u8) -> Zeroizing<[u8; 32]> {
        let message = [0, 0, 0, 0, b'Z', b'T', label, 0, 0, 0, 0, 0x01, 0x80];
        let mut mac = <Hmac<Sha384> as Mac>::new_from_slice(bytes).expect("HMAC takes any key length");
        mac.update(&message);
        let out = mac.finalize().into_bytes();
        Zeroizing::new(out[..32].try_into().expect("32 bytes"))
    }
}

impl fmt::Debug for PeerKey {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerKey(..)")
    }
}

impl PartialEq for PeerKey {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.bytes[..].ct_eq(&other.bytes[..]))
    }
}
impl Eq for PeerKey {}
