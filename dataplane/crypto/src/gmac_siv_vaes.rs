//! AES-GMAC-SIV (§6.3) with 512-bit VAES and VPCLMULQDQ (AVX-512BW for byte shuffles and masked tails).
//!
//! GHASH is computed through POLYVAL (RFC 8452 appendix A: GHASH_H(X) = ByteReverse(POLYVAL_H'(ByteReverse
//! X)) with H' = mulX(ByteReverse H)), which maps onto carry-less multiplication without bit reflection.
//! Sixteen blocks are multiplied by H'^16..H'^1 and summed before a single reduction; AES-CTR runs sixteen
//! blocks per iteration in four independent 512-bit chains.
use core::arch::x86_64::*;
// The 128-bit building blocks (key schedule, single blocks) are the AES-NI module's: VAES CPUs have its features.
use crate::gmac_siv_aesni::{encrypt_block, expand_key, reverse_mask as reverse_mask128};

/// Whether this CPU can run this module.
pub(crate) fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("vaes")
        && std::is_x86_feature_detected!("vpclmulqdq")
        && std::is_x86_feature_detected!("aes")
        && std::is_x86_feature_detected!("pclmulqdq")
}

/// Expanded keys. Only constructed after [`available`] returned true.
#[derive(Clone)]
pub(crate) struct VaesKeys {
    k0: [__m128i; 15],
    k1: [__m128i; 15],
    /// POLYVAL powers in descending order: `descending[i]` = H'^(16 - i) for i < 16, then three zero
    /// entries so that the powers for a chunk of n < 16 blocks are the 16 - n .. 16 - n + 4k window.
    descending: [__m128i; 19],
}

impl Drop for VaesKeys {
    /// Key schedules are secret: overwrite them (volatile, so the stores are not elided).
    fn drop(&mut self) {
        let zero = [0u8; 16];
        for slot in self.k0.iter_mut().chain(self.k1.iter_mut()).chain(self.descending.iter_mut()) {
            // SAFETY: `slot` is a valid, aligned __m128i; any bit pattern is a valid __m128i.
            unsafe { core::ptr::write_volatile(slot as *mut __m128i as *mut [u8; 16], zero) };
        }
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3")]
fn reverse_mask512() -> __m512i {
    _mm512_broadcast_i32x4(reverse_mask128())
}

/// Reduces a 256-bit carry-less product given as low, middle (cross terms) and high parts to a POLYVAL
/// element (multiplied by x^-128).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3")]
fn reduce(lo: __m128i, mid: __m128i, hi: __m128i) -> __m128i {
    let lo = _mm_xor_si128(lo, _mm_slli_si128::<8>(mid));
    let hi = _mm_xor_si128(hi, _mm_srli_si128::<8>(mid));
    // Montgomery reduction modulo x^128 + x^127 + x^126 + x^121 + 1 (two folds by 0xc2 << 56).
    let poly = _mm_set_epi64x(0xc200_0000_0000_0000u64 as i64, 1);
    let t = _mm_clmulepi64_si128::<0x10>(lo, poly);
    let lo = _mm_xor_si128(_mm_shuffle_epi32::<0x4e>(lo), t);
    let t = _mm_clmulepi64_si128::<0x10>(lo, poly);
    let lo = _mm_xor_si128(_mm_shuffle_epi32::<0x4e>(lo), t);
    _mm_xor_si128(hi, lo)
}

/// POLYVAL dot product a·b·x^-128.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3")]
fn dot(a: __m128i, b: __m128i) -> __m128i {
    let lo = _mm_clmulepi64_si128::<0x00>(a, b);
    let hi = _mm_clmulepi64_si128::<0x11>(a, b);
    let mid = _mm_xor_si128(_mm_clmulepi64_si128::<0x01>(a, b), _mm_clmulepi64_si128::<0x10>(a, b));
    reduce(lo, mid, hi)
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3")]
fn fold_lanes(x: __m512i) -> __m128i {
    let y = _mm256_xor_si256(_mm512_castsi512_si256(x), _mm512_extracti64x4_epi64::<1>(x));
    _mm_xor_si128(_mm256_castsi256_si128(y), _mm256_extracti128_si256::<1>(y))
}

/// Byte mask for bytes `[start, start + 64)` of a chunk holding `len` bytes.
#[inline(always)]
fn lane_mask(len: usize, start: usize) -> u64 {
    if len >= start + 64 {
        u64::MAX
    } else if len > start {
        (1u64 << (len - start)) - 1
    } else {
        0
    }
}

impl VaesKeys {
    /// # Safety
    /// [`available`] must have returned true.
    #[target_feature(enable = "avx512f,avx512bw,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3")]
    pub(crate) unsafe fn new(k0: &[u8; 32], k1: &[u8; 32]) -> Self {
        let k0 = expand_key(k0);
        let k1 = expand_key(k1);
        let h = encrypt_block(&k0, _mm_setzero_si128());
        // H' = mulX_POLYVAL(ByteReverse(H)).
        let mut h_bytes = [0u8; 16];
        unsafe { _mm_storeu_si128(h_bytes.as_mut_ptr() as *mut __m128i, _mm_shuffle_epi8(h, reverse_mask128())) };
        let v = u128::from_le_bytes(h_bytes);
        let top = v >> 127;
        let v = (v << 1) ^ top ^ (top << 127) ^ (top << 126) ^ (top << 121);
        let h1 = unsafe { _mm_loadu_si128(v.to_le_bytes().as_ptr() as *const __m128i) };
        let mut descending = [_mm_setzero_si128(); 19];
        let mut power = h1;
        descending[15] = h1;
        for i in (0..15).rev() {
            power = dot(power, h1);
            descending[i] = power;
        }
        VaesKeys { k0, k1, descending }
    }

    /// Absorbs `data` (zero-padded to 16 bytes) into the POLYVAL state `s`.
    #[target_feature(enable = "avx512f,avx512bw,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3")]
    unsafe fn polyval_update(&self, mut s: __m128i, data: &[u8]) -> __m128i {
        let reverse = reverse_mask512();
        let mut offset = 0;
        while offset < data.len() {
            let len = (data.len() - offset).min(256);
            let blocks = len.div_ceil(16);
            let p = unsafe { data.as_ptr().add(offset) };
            let powers = unsafe { self.descending.as_ptr().add(16 - blocks) as *const __m512i };
            let (mut lo, mut mid, mut hi) = (_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512());
            for k in 0..blocks.div_ceil(4) {
                // SAFETY: masked loads touch only bytes inside `data`; the power table has 3 spare entries.
                let x = unsafe {
                    if len >= 64 * (k + 1) {
                        _mm512_loadu_si512(p.add(64 * k) as *const __m512i)
                    } else {
                        _mm512_maskz_loadu_epi8(lane_mask(len, 64 * k), p.add(64 * k) as *const i8)
                    }
                };
                let mut x = _mm512_shuffle_epi8(x, reverse);
                if k == 0 {
                    x = _mm512_xor_si512(x, _mm512_zextsi128_si512(s));
                }
                let h = unsafe { _mm512_loadu_si512(powers.cast::<__m128i>().add(4 * k) as *const __m512i) };
                lo = _mm512_xor_si512(lo, _mm512_clmulepi64_epi128::<0x00>(x, h));
                hi = _mm512_xor_si512(hi, _mm512_clmulepi64_epi128::<0x11>(x, h));
                mid = _mm512_xor_si512(mid, _mm512_clmulepi64_epi128::<0x01>(x, h));
                mid = _mm512_xor_si512(mid, _mm512_clmulepi64_epi128::<0x10>(x, h));
            }
            s = reduce(fold_lanes(lo), fold_lanes(mid), fold_lanes(hi));
            offset += len;
        }
        s
    }

    /// GMAC_K0(iv ‖ 0⁴; aad ‖ pad ‖ payload ‖ pad) folded to 64 bits.
    #[target_feature(enable = "avx512f,avx512bw,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3")]
    unsafe fn folded_gmac(&self, iv: &[u8; 8], aad: &[u8], payload: &[u8]) -> [u8; 8] {
        let mut s = unsafe { self.polyval_update(_mm_setzero_si128(), aad) };
        s = unsafe { self.polyval_update(s, payload) };
        let authenticated_bits = ((aad.len().next_multiple_of(16) + payload.len()) as u64) * 8;
        let mut lengths = [0u8; 16];
        lengths[..8].copy_from_slice(&authenticated_bits.to_be_bytes());
        s = unsafe { self.polyval_update(s, &lengths) };
        let ghash = _mm_shuffle_epi8(s, reverse_mask128());
        let mut j0 = [0u8; 16];
        j0[..8].copy_from_slice(iv);
        j0[15] = 1;
        let mask = encrypt_block(&self.k0, unsafe { _mm_loadu_si128(j0.as_ptr() as *const __m128i) });
        let tag = _mm_xor_si128(ghash, mask);
        let folded = _mm_xor_si128(tag, _mm_srli_si128::<8>(tag));
        (_mm_cvtsi128_si64(folded) as u64).to_le_bytes()
    }

    /// AES-256-CTR under K1, 32-bit big-endian counter in the last word of `iv`.
    #[target_feature(enable = "avx512f,avx512bw,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3")]
    unsafe fn ctr_xor(&self, iv: &[u8; 16], data: &mut [u8]) {
        let reverse = reverse_mask512();
        let mut rk = [_mm512_setzero_si512(); 15];
        for (wide, key) in rk.iter_mut().zip(&self.k1) {
            *wide = _mm512_broadcast_i32x4(*key);
        }
        // Counters are kept byte-reversed so that the big-endian counter word is dword 0 of each lane.
        let counter = _mm_shuffle_epi8(unsafe { _mm_loadu_si128(iv.as_ptr() as *const __m128i) }, reverse_mask128());
        let mut next = _mm512_add_epi32(
            _mm512_broadcast_i32x4(counter),
            _mm512_set_epi32(0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0),
        );
        let four = _mm512_set_epi32(0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4);
        let p = data.as_mut_ptr();
        let mut offset = 0;
        macro_rules! rounds {
            ($($x:ident),+) => {
                $( $x = _mm512_xor_si512($x, rk[0]); )+
                for key in &rk[1..14] {
                    $( $x = _mm512_aesenc_epi128($x, *key); )+
                }
                $( $x = _mm512_aesenclast_epi128($x, rk[14]); )+
            };
        }
        while data.len() - offset >= 256 {
            let mut x0 = _mm512_shuffle_epi8(next, reverse);
            next = _mm512_add_epi32(next, four);
            let mut x1 = _mm512_shuffle_epi8(next, reverse);
            next = _mm512_add_epi32(next, four);
            let mut x2 = _mm512_shuffle_epi8(next, reverse);
            next = _mm512_add_epi32(next, four);
            let mut x3 = _mm512_shuffle_epi8(next, reverse);
            next = _mm512_add_epi32(next, four);
            rounds!(x0, x1, x2, x3);
            // SAFETY: 256 bytes remain at `offset`.
            unsafe {
                for (k, ks) in [x0, x1, x2, x3].into_iter().enumerate() {
                    let q = p.add(offset + 64 * k) as *mut __m512i;
                    _mm512_storeu_si512(q, _mm512_xor_si512(_mm512_loadu_si512(q), ks));
                }
            }
            offset += 256;
        }
        while offset < data.len() {
            let mut x0 = _mm512_shuffle_epi8(next, reverse);
            next = _mm512_add_epi32(next, four);
            rounds!(x0);
            let mask = lane_mask(data.len() - offset, 0);
            // SAFETY: masked to the bytes that remain.
            unsafe {
                let q = p.add(offset) as *mut i8;
                _mm512_mask_storeu_epi8(q, mask, _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, q), x0));
            }
            offset += 64;
        }
    }

    /// Encrypts in place; returns the 16-byte SIV tag.
    ///
    /// # Safety
    /// [`available`] must have returned true.
    #[target_feature(enable = "avx512f,avx512bw,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3")]
    pub(crate) unsafe fn encrypt_in_place(&self, iv: &[u8; 8], aad: &[u8], payload: &mut [u8]) -> [u8; 16] {
        let folded = unsafe { self.folded_gmac(iv, aad, payload) };
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(iv);
        block[8..].copy_from_slice(&folded);
        let tag = encrypt_block(&self.k1, unsafe { _mm_loadu_si128(block.as_ptr() as *const __m128i) });
        let mut tag_bytes = [0u8; 16];
        unsafe { _mm_storeu_si128(tag_bytes.as_mut_ptr() as *mut __m128i, tag) };
        let mut ctr_iv = tag_bytes;
        ctr_iv[12] &= 0x7f;
        unsafe { self.ctr_xor(&ctr_iv, payload) };
        tag_bytes
    }

    /// CTR half of decryption: XORs `payload` with the key stream selected by `tag`.
    ///
    /// # Safety
    /// [`available`] must have returned true.
    #[target_feature(enable = "avx512f,avx512bw,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3")]
    pub(crate) unsafe fn decrypt_ctr(&self, tag: &[u8; 16], payload: &mut [u8]) {
        let mut ctr_iv = *tag;
        ctr_iv[12] &= 0x7f;
        unsafe { self.ctr_xor(&ctr_iv, payload) };
    }

    /// Folded GMAC for verification after [`VaesKeys::decrypt_ctr`].
    ///
    /// # Safety
    /// [`available`] must have returned true.
    #[target_feature(enable = "avx512f,avx512bw,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3")]
    pub(crate) unsafe fn gmac(&self, iv: &[u8; 8], aad: &[u8], payload: &[u8]) -> [u8; 8] {
        unsafe { self.folded_gmac(iv, aad, payload) }
    }
}
