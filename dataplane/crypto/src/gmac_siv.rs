//! AES-GMAC-SIV (§6.3): a synthetic-IV construction from AES-256-GMAC (key K0) and AES-256 ECB + CTR (key K1),
//! used by cipher suite 3. The 16-byte tag travels in the packet ID field (bytes 0..8) and the MAC field
//! (bytes 19..27).
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes::{Aes256Dec, Aes256Enc};
use ctr::cipher::{InnerIvInit, StreamCipher};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use subtle::ConstantTimeEq;

/// Pre-expanded K0/K1 key schedules and the GHASH key; derive once per peer.
#[derive(Clone)]
pub struct AesGmacSiv {
    k0: Aes256Enc,
    ghash: GHash,
    k1_enc: Aes256Enc,
    k1_dec: Aes256Dec,
    /// The VAES/VPCLMULQDQ implementation, when the CPU has it (chosen at key setup).
    #[cfg(target_arch = "x86_64")]
    vaes: Option<crate::gmac_siv_vaes::VaesKeys>,
}

impl AesGmacSiv {
    /// From the two AES-256 keys (for packets: derived from the peer key, see [`crate::PeerKey`]).
    pub fn new(k0: &[u8; 32], k1: &[u8; 32]) -> Self {
        let k0_bytes = k0;
        let k0 = Aes256Enc::new(k0.into());
        let mut h = aes::Block::default();
        k0.encrypt_block(&mut h);
        AesGmacSiv {
            ghash: GHash::new(&h),
            k0,
            k1_enc: Aes256Enc::new(k1.into()),
            k1_dec: Aes256Dec::new(k1.into()),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU features were just checked.
            vaes: crate::gmac_siv_vaes::available().then(|| unsafe { crate::gmac_siv_vaes::VaesKeys::new(k0_bytes, k1) }),
        }
    }

    /// The same keys without the SIMD implementation (reference for tests and benchmarks).
    pub fn without_simd(&self) -> Self {
        let mut copy = self.clone();
        #[cfg(target_arch = "x86_64")]
        {
            copy.vaes = None;
        }
        copy
    }

    /// Name of the implementation in use.
    pub fn implementation(&self) -> &'static str {
        #[cfg(target_arch = "x86_64")]
        if self.vaes.is_some() {
            return "vaes+vpclmulqdq (avx512)";
        }
        "aes-ni + ghash crates"
    }

    /// GMAC_K0 with 96-bit nonce `iv ‖ 0⁴` over `aad ‖ zero pad to 16 ‖ payload`, folded to 64 bits.
    fn folded_gmac(&self, iv: &[u8; 8], aad: &[u8], payload: &[u8]) -> [u8; 8] {
        let mut ghash = self.ghash.clone();
        ghash.update_padded(aad);
        ghash.update_padded(payload);
        // GCM length block: all of it counts as associated data (padded AAD plus payload), no ciphertext.
        let authenticated_bits = ((aad.len().next_multiple_of(16) + payload.len()) as u64) * 8;
        let mut lengths = aes::Block::default();
        lengths[..8].copy_from_slice(&authenticated_bits.to_be_bytes());
        ghash.update(&[lengths]);
        let mut tag = ghash.finalize();
        let mut j0 = aes::Block::default();
        j0[..8].copy_from_slice(iv);
        j0[15] = 1;
        self.k0.encrypt_block(&mut j0);
        let mut folded = [0u8; 8];
        for i in 0..8 {
            tag[i] ^= j0[i];
            tag[i + 8] ^= j0[i + 8];
            folded[i] = tag[i] ^ tag[i + 8];
        }
        folded
    }

    /// AES-256-CTR under K1 with the tag (top bit of byte 12 cleared) as the initial counter block.
    fn ctr_xor(&self, tag: &[u8; 16], payload: &mut [u8]) {
        let mut iv = *tag;
        iv[12] &= 0x7f;
        let core = ctr::CtrCore::<&Aes256Enc, ctr::flavors::Ctr32BE>::inner_iv_init(&self.k1_enc, &iv.into());
        ctr::Ctr32BE::from_core(core).apply_keystream(payload);
    }

    /// Encrypts `payload` in place and returns the 16-byte SIV tag.
    pub fn encrypt_in_place(&self, iv: &[u8; 8], aad: &[u8], payload: &mut [u8]) -> [u8; 16] {
        #[cfg(target_arch = "x86_64")]
        if let Some(vaes) = &self.vaes {
            // SAFETY: `vaes` exists only if the CPU features were detected.
            return unsafe { vaes.encrypt_in_place(iv, aad, payload) };
        }
        let folded = self.folded_gmac(iv, aad, payload);
        let mut tag = aes::Block::default();
        tag[..8].copy_from_slice(iv);
        tag[8..].copy_from_slice(&folded);
        self.k1_enc.encrypt_block(&mut tag);
        let tag: [u8; 16] = tag.into();
        self.ctr_xor(&tag, payload);
        tag
    }

    /// Decrypts `payload` in place and returns the recovered 8-byte IV if the tag verifies. On failure the
    /// payload has been decrypted with an unauthenticated key stream and is garbage: discard the packet.
    pub fn decrypt_in_place(&self, tag: &[u8; 16], aad: &[u8], payload: &mut [u8]) -> Option<[u8; 8]> {
        let mut iv_and_folded = aes::Block::from(*tag);
        self.k1_dec.decrypt_block(&mut iv_and_folded);
        let iv: [u8; 8] = iv_and_folded[..8].try_into().expect("8 bytes");
        #[cfg(target_arch = "x86_64")]
        if let Some(vaes) = &self.vaes {
            // SAFETY: `vaes` exists only if the CPU features were detected.
            let folded = unsafe {
                vaes.decrypt_ctr(tag, payload);
                vaes.gmac(&iv, aad, payload)
            };
            return bool::from(folded.ct_eq(&iv_and_folded[8..])).then_some(iv);
        }
        self.ctr_xor(tag, payload);
        let folded = self.folded_gmac(&iv, aad, payload);
        bool::from(folded.ct_eq(&iv_and_folded[8..])).then_some(iv)
    }
}
