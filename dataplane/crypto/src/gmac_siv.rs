//! AES-GMAC-SIV (§6.3): a synthetic-IV construction from AES-256-GMAC (key K0) and AES-256 ECB + CTR (key K1),
//! used by cipher suite 3. The 16-byte tag travels in the packet ID field (bytes 0..8) and the MAC field
//! (bytes 19..27).
//!
//! Three implementations, chosen per key at run time (see [`Implementation`]): 512-bit VAES + VPCLMULQDQ,
//! 128-bit AES-NI + PCLMULQDQ, and the portable `aes`/`ghash` crates. The environment variable
//! [`ENV_VAR`] (`ZTPLANE_GMAC_SIV=vaes|aesni|portable`) forces one of them.
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes::{Aes256Dec, Aes256Enc};
use ctr::cipher::{InnerIvInit, StreamCipher};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use subtle::ConstantTimeEq;

/// Name of the environment variable that forces an implementation: `vaes`, `aesni` or `portable`.
///
/// Read once per process, at the first key setup. If the CPU cannot run the forced variant, or the value is
/// not one of the three names, the best variant this CPU can run is used instead and one line saying so is
/// written to standard error (the only output of this library): key setup cannot fail, and a node must not
/// refuse to start because of a tuning knob, but silently measuring a different variant would be worse.
pub const ENV_VAR: &str = "ZTPLANE_GMAC_SIV";

/// An implementation of AES-GMAC-SIV. All produce identical output; they differ in speed and CPU needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Implementation {
    /// 512-bit VAES + VPCLMULQDQ (x86-64 with AVX-512F/BW): 16 blocks per GHASH reduction.
    Vaes,
    /// 128-bit AES-NI + PCLMULQDQ (x86-64 with SSE4.1): 8 blocks in flight, CTR and GHASH stitched on
    /// decryption.
    AesNi,
    /// The `aes`, `ctr` and `ghash` crates (which use AES-NI/PCLMULQDQ one block at a time where present).
    Portable,
}

impl Implementation {
    /// Fastest first.
    pub const ALL: [Implementation; 3] = [Implementation::Vaes, Implementation::AesNi, Implementation::Portable];

    /// Short name, as accepted by [`ENV_VAR`].
    pub fn name(self) -> &'static str {
        match self {
            Implementation::Vaes => "vaes",
            Implementation::AesNi => "aesni",
            Implementation::Portable => "portable",
        }
    }

    /// Short name followed by what it uses (for benchmark reports).
    pub fn description(self) -> &'static str {
        match self {
            Implementation::Vaes => "vaes (vaes+vpclmulqdq, avx512)",
            Implementation::AesNi => "aesni (aes-ni+pclmulqdq, 128-bit, 8 blocks)",
            Implementation::Portable => "portable (aes/ctr/ghash crates)",
        }
    }

    /// The inverse of [`Implementation::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.name() == name)
    }

    /// Whether this CPU can run it.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Implementation::Vaes => crate::gmac_siv_vaes::available(),
            #[cfg(target_arch = "x86_64")]
            Implementation::AesNi => crate::gmac_siv_aesni::available(),
            #[cfg(not(target_arch = "x86_64"))]
            Implementation::Vaes | Implementation::AesNi => false,
            Implementation::Portable => true,
        }
    }

    /// Every implementation this CPU can run, fastest first (never empty: the portable one always runs).
    pub fn available() -> Vec<Implementation> {
        Self::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// The fastest implementation this CPU can run.
    pub fn best() -> Self {
        Self::ALL.into_iter().find(|i| i.is_available()).unwrap_or(Implementation::Portable)
    }

    /// What [`AesGmacSiv::new`] uses: [`ENV_VAR`] if set and runnable, else [`Implementation::best`]
    /// (decided once per process).
    pub fn selected() -> Self {
        static SELECTED: std::sync::OnceLock<Implementation> = std::sync::OnceLock::new();
        *SELECTED.get_or_init(|| {
            let Some(value) = std::env::var_os(ENV_VAR) else { return Self::best() };
            let value = value.to_string_lossy();
            let best = Self::best();
            match Self::from_name(value.trim()) {
                Some(forced) if forced.is_available() => forced,
                Some(forced) => {
                    eprintln!(
                        "ztplane-crypto: {ENV_VAR}={value}: this CPU cannot run {}, using {}",
                        forced.name(),
                        best.name()
                    );
                    best
                }
                None => {
                    eprintln!(
                        "ztplane-crypto: {ENV_VAR}={value:?} is not vaes, aesni or portable, using {}",
                        best.name()
                    );
                    best
                }
            }
        })
    }
}

/// The SIMD key schedules of the implementation in use (the portable fields are always present: the tag's
/// ECB decryption uses them in every variant).
#[derive(Clone)]
enum Simd {
    None,
    #[cfg(target_arch = "x86_64")]
    Vaes(crate::gmac_siv_vaes::VaesKeys),
    #[cfg(target_arch = "x86_64")]
    AesNi(crate::gmac_siv_aesni::AesNiKeys),
}

/// Pre-expanded K0/K1 key schedules and the GHASH key; derive once per peer.
#[derive(Clone)]
pub struct AesGmacSiv {
    k0: Aes256Enc,
    ghash: GHash,
    k1_enc: Aes256Enc,
    k1_dec: Aes256Dec,
    simd: Simd,
}

impl AesGmacSiv {
    /// From the two AES-256 keys (for packets: derived from the peer key, see [`crate::PeerKey`]), with the
    /// implementation [`Implementation::selected`].
    pub fn new(k0: &[u8; 32], k1: &[u8; 32]) -> Self {
        Self::with_implementation(k0, k1, Implementation::selected())
            .unwrap_or_else(|| Self::with_implementation(k0, k1, Implementation::Portable).expect("portable runs"))
    }

    /// With a given implementation; `None` if this CPU cannot run it.
    pub fn with_implementation(k0: &[u8; 32], k1: &[u8; 32], implementation: Implementation) -> Option<Self> {
        if !implementation.is_available() {
            return None;
        }
        let simd = match implementation {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `is_available` just ran `gmac_siv_vaes::available`, the CPU feature check it requires.
            Implementation::Vaes => Simd::Vaes(unsafe { crate::gmac_siv_vaes::VaesKeys::new(k0, k1) }),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `is_available` just ran `gmac_siv_aesni::available`, the CPU feature check it requires.
            Implementation::AesNi => Simd::AesNi(unsafe { crate::gmac_siv_aesni::AesNiKeys::new(k0, k1) }),
            _ => Simd::None,
        };
        let k0_schedule = Aes256Enc::new(k0.into());
        let mut h = aes::Block::default();
        k0_schedule.encrypt_block(&mut h);
        Some(AesGmacSiv {
            ghash: GHash::new(&h),
            k0: k0_schedule,
            k1_enc: Aes256Enc::new(k1.into()),
            k1_dec: Aes256Dec::new(k1.into()),
            simd,
        })
    }

    /// The same keys with the portable implementation (reference for tests and benchmarks).
    pub fn without_simd(&self) -> Self {
        AesGmacSiv { simd: Simd::None, ..self.clone() }
    }

    /// The implementation in use.
    pub fn variant(&self) -> Implementation {
        match self.simd {
            Simd::None => Implementation::Portable,
            #[cfg(target_arch = "x86_64")]
            Simd::Vaes(_) => Implementation::Vaes,
            #[cfg(target_arch = "x86_64")]
            Simd::AesNi(_) => Implementation::AesNi,
        }
    }

    /// Name of the implementation in use: [`Implementation::description`] of [`AesGmacSiv::variant`].
    pub fn implementation(&self) -> &'static str {
        self.variant().description()
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
        match &self.simd {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Simd::Vaes` is built only after `gmac_siv_vaes::available` returned true.
            Simd::Vaes(vaes) => return unsafe { vaes.encrypt_in_place(iv, aad, payload) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Simd::AesNi` is built only after `gmac_siv_aesni::available` returned true.
            Simd::AesNi(aesni) => return unsafe { aesni.encrypt_in_place(iv, aad, payload) },
            Simd::None => {}
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
        let folded = match &self.simd {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Simd::Vaes` is built only after `gmac_siv_vaes::available` returned true.
            Simd::Vaes(vaes) => unsafe {
                vaes.decrypt_ctr(tag, payload);
                vaes.gmac(&iv, aad, payload)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Simd::AesNi` is built only after `gmac_siv_aesni::available` returned true.
            Simd::AesNi(aesni) => unsafe { aesni.decrypt_and_gmac(tag, &iv, aad, payload) },
            Simd::None => {
                self.ctr_xor(tag, payload);
                self.folded_gmac(&iv, aad, payload)
            }
        };
        bool::from(folded.ct_eq(&iv_and_folded[8..])).then_some(iv)
    }
}
