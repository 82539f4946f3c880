//! AES-GMAC-SIV (§6.3) with 128-bit AES-NI and PCLMULQDQ, for x86-64 CPUs without VAES/VPCLMULQDQ.
//!
//! Same construction as `gmac_siv_vaes`: GHASH is computed through POLYVAL (RFC 8452 appendix A:
//! GHASH_H(X) = ByteReverse(POLYVAL_H'(ByteReverse X)) with H' = mulX(ByteReverse H)), so carry-less products
//! need no bit reflection. Eight blocks are multiplied by H'^8..H'^1 (Karatsuba, three PCLMULQDQ each, with
//! the folded powers precomputed) and summed before a single Montgomery reduction (aggregated reduction,
//! Gueron/Kounavis); AES-CTR keeps eight independent blocks in flight so that the AESENC latency is hidden
//! behind the other seven.
//!
//! Decryption is stitched: while the eight AES-CTR blocks of chunk i go through their rounds, the GHASH
//! multiplications of the already decrypted chunk i-1 are issued between them. On Intel cores AESENC and
//! PCLMULQDQ run on different ports, so the hash then overlaps the cipher; on AMD Zen they share pipes and
//! the gain measured here was small. Encryption cannot be stitched: the CTR IV is the tag, which depends on
//! the GHASH of the whole plaintext.
use core::arch::x86_64::*;

/// Blocks per CTR batch and per aggregated GHASH reduction.
const LANES: usize = 8;
/// Bytes per batch.
const CHUNK: usize = 16 * LANES;

/// Whether this CPU can run this module.
pub(crate) fn available() -> bool {
    std::is_x86_feature_detected!("aes")
        && std::is_x86_feature_detected!("pclmulqdq")
        && std::is_x86_feature_detected!("sse2")
        && std::is_x86_feature_detected!("ssse3")
        && std::is_x86_feature_detected!("sse4.1")
}

/// Expanded keys. Only constructed after [`available`] returned true.
#[derive(Clone)]
pub(crate) struct AesNiKeys {
    k0: [__m128i; 15],
    k1: [__m128i; 15],
    /// POLYVAL powers in descending order: `descending[i]` = H'^(8 - i), so a batch of n ≤ 8 blocks uses the
    /// window `8 - n .. 8` and its last block is multiplied by H'^1.
    descending: [__m128i; LANES],
    /// `descending[i]` with its two 64-bit halves XORed (in both halves): the Karatsuba middle operand.
    folded: [__m128i; LANES],
}

impl Drop for AesNiKeys {
    /// Key schedules are secret: overwrite them (volatile, so the stores are not elided).
    fn drop(&mut self) {
        let zero = [0u8; 16];
        for slot in
            self.k0.iter_mut().chain(self.k1.iter_mut()).chain(self.descending.iter_mut()).chain(self.folded.iter_mut())
        {
            // SAFETY: `slot` is a valid, aligned __m128i; any bit pattern is a valid __m128i. No CPU feature
            // is involved.
            unsafe { core::ptr::write_volatile(slot as *mut __m128i as *mut [u8; 16], zero) };
        }
    }
}

#[inline]
#[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
pub(crate) fn reverse_mask() -> __m128i {
    _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
}

#[inline]
#[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
fn prefix_xor(x: __m128i) -> __m128i {
    let mut x = x;
    let mut t = _mm_slli_si128::<4>(x);
    x = _mm_xor_si128(x, t);
    t = _mm_slli_si128::<4>(t);
    x = _mm_xor_si128(x, t);
    t = _mm_slli_si128::<4>(t);
    _mm_xor_si128(x, t)
}

#[inline]
#[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
fn load(bytes: &[u8; 16]) -> __m128i {
    // SAFETY: 16 readable bytes; SSE2 is guaranteed by the enclosing target feature (and by x86-64).
    unsafe { _mm_loadu_si128(bytes.as_ptr() as *const __m128i) }
}

#[inline]
#[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
fn store(x: __m128i) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    // SAFETY: 16 writable bytes; SSE2 is guaranteed by the enclosing target feature (and by x86-64).
    unsafe { _mm_storeu_si128(bytes.as_mut_ptr() as *mut __m128i, x) };
    bytes
}

/// AES-256 key schedule (FIPS 197) with AESKEYGENASSIST.
#[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
pub(crate) fn expand_key(key: &[u8; 32]) -> [__m128i; 15] {
    let mut rk = [_mm_setzero_si128(); 15];
    let mut a = load(key[..16].try_into().expect("16 bytes"));
    let mut b = load(key[16..].try_into().expect("16 bytes"));
    rk[0] = a;
    rk[1] = b;
    macro_rules! step {
        ($i:literal, $rcon:literal) => {
            a = _mm_xor_si128(prefix_xor(a), _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>(b)));
            rk[2 * $i] = a;
        };
    }
    // The odd round keys: from the previous even one, without the rotation and round constant.
    macro_rules! odd {
        ($i:literal) => {
            b = _mm_xor_si128(prefix_xor(b), _mm_shuffle_epi32::<0xaa>(_mm_aeskeygenassist_si128::<0>(a)));
            rk[2 * $i + 1] = b;
        };
    }
    step!(1, 0x01);
    odd!(1);
    step!(2, 0x02);
    odd!(2);
    step!(3, 0x04);
    odd!(3);
    step!(4, 0x08);
    odd!(4);
    step!(5, 0x10);
    odd!(5);
    step!(6, 0x20);
    odd!(6);
    step!(7, 0x40);
    rk
}

#[inline]
#[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
pub(crate) fn encrypt_block(rk: &[__m128i; 15], block: __m128i) -> __m128i {
    let mut x = _mm_xor_si128(block, rk[0]);
    for key in &rk[1..14] {
        x = _mm_aesenc_si128(x, *key);
    }
    _mm_aesenclast_si128(x, rk[14])
}

/// Unreduced 256-bit carry-less product accumulated as low, middle (cross terms) and high halves.
#[derive(Clone, Copy)]
struct Wide {
    lo: __m128i,
    mid: __m128i,
    hi: __m128i,
}

impl Wide {
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    fn zero() -> Self {
        Wide { lo: _mm_setzero_si128(), mid: _mm_setzero_si128(), hi: _mm_setzero_si128() }
    }

    /// self += a·b (schoolbook, four multiplications: for single products and tails; full batches use
    /// [`Wide::mul_add_karatsuba`].)
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    fn mul_add(&mut self, a: __m128i, b: __m128i) {
        self.lo = _mm_xor_si128(self.lo, _mm_clmulepi64_si128::<0x00>(a, b));
        self.hi = _mm_xor_si128(self.hi, _mm_clmulepi64_si128::<0x11>(a, b));
        self.mid = _mm_xor_si128(self.mid, _mm_clmulepi64_si128::<0x01>(a, b));
        self.mid = _mm_xor_si128(self.mid, _mm_clmulepi64_si128::<0x10>(a, b));
    }

    /// self += a·b by Karatsuba: three multiplications, `b_folded` = b.hi ^ b.lo. `mid` then holds
    /// (a.hi ^ a.lo)(b.hi ^ b.lo) and needs [`Wide::reduce_karatsuba`].
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    fn mul_add_karatsuba(&mut self, a: __m128i, b: __m128i, b_folded: __m128i) {
        self.lo = _mm_xor_si128(self.lo, _mm_clmulepi64_si128::<0x00>(a, b));
        self.hi = _mm_xor_si128(self.hi, _mm_clmulepi64_si128::<0x11>(a, b));
        let a_folded = _mm_xor_si128(a, _mm_shuffle_epi32::<0x4e>(a));
        self.mid = _mm_xor_si128(self.mid, _mm_clmulepi64_si128::<0x00>(a_folded, b_folded));
    }

    /// [`Wide::reduce`] for sums built with [`Wide::mul_add_karatsuba`]: the cross terms are the middle product
    /// minus (XOR) the low and high ones, which is linear, so it is applied once to the sums.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    fn reduce_karatsuba(self) -> __m128i {
        Wide { mid: _mm_xor_si128(self.mid, _mm_xor_si128(self.lo, self.hi)), ..self }.reduce()
    }

    /// Reduces to a POLYVAL element (the product multiplied by x^-128).
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    fn reduce(self) -> __m128i {
        let lo = _mm_xor_si128(self.lo, _mm_slli_si128::<8>(self.mid));
        let hi = _mm_xor_si128(self.hi, _mm_srli_si128::<8>(self.mid));
        // Montgomery reduction modulo x^128 + x^127 + x^126 + x^121 + 1 (two folds by 0xc2 << 56).
        let poly = _mm_set_epi64x(0xc200_0000_0000_0000u64 as i64, 1);
        let t = _mm_clmulepi64_si128::<0x10>(lo, poly);
        let lo = _mm_xor_si128(_mm_shuffle_epi32::<0x4e>(lo), t);
        let t = _mm_clmulepi64_si128::<0x10>(lo, poly);
        let lo = _mm_xor_si128(_mm_shuffle_epi32::<0x4e>(lo), t);
        _mm_xor_si128(hi, lo)
    }
}

/// POLYVAL dot product a·b·x^-128.
#[inline]
#[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
fn dot(a: __m128i, b: __m128i) -> __m128i {
    let mut wide = Wide::zero();
    wide.mul_add(a, b);
    wide.reduce()
}

/// Counter block `base` with its last 32-bit word replaced by `counter` (big-endian); the word wraps modulo
/// 2^32 without carrying into the rest of the block, as in `ctr::Ctr32BE`.
#[inline]
#[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
fn counter_block(base: __m128i, counter: u32) -> __m128i {
    // Lane 3 holds bytes 12..16 little-endian, so the big-endian counter is its byte swap.
    _mm_insert_epi32::<3>(base, counter.swap_bytes() as i32)
}

impl AesNiKeys {
    /// # Safety
    /// [`available`] must have returned true.
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    pub(crate) unsafe fn new(k0: &[u8; 32], k1: &[u8; 32]) -> Self {
        let k0 = expand_key(k0);
        let k1 = expand_key(k1);
        let h = encrypt_block(&k0, _mm_setzero_si128());
        // H' = mulX_POLYVAL(ByteReverse(H)).
        let v = u128::from_le_bytes(store(_mm_shuffle_epi8(h, reverse_mask())));
        let top = v >> 127;
        let v = (v << 1) ^ top ^ (top << 127) ^ (top << 126) ^ (top << 121);
        let h1 = load(&v.to_le_bytes());
        let mut descending = [_mm_setzero_si128(); LANES];
        let mut power = h1;
        descending[LANES - 1] = h1;
        for i in (0..LANES - 1).rev() {
            power = dot(power, h1);
            descending[i] = power;
        }
        let folded = descending.map(|h| _mm_xor_si128(h, _mm_shuffle_epi32::<0x4e>(h)));
        AesNiKeys { k0, k1, descending, folded }
    }

    /// Absorbs one full batch of eight blocks at `p` into the POLYVAL state `s` with one reduction.
    ///
    /// # Safety
    /// [`available`] must have returned true and `p` must point to `CHUNK` readable bytes.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    unsafe fn absorb_chunk(&self, s: __m128i, p: *const u8) -> __m128i {
        let reverse = reverse_mask();
        let mut wide = Wide::zero();
        for j in 0..LANES {
            // SAFETY: block j of the CHUNK bytes the caller guarantees.
            let mut x = _mm_shuffle_epi8(unsafe { _mm_loadu_si128(p.add(16 * j) as *const __m128i) }, reverse);
            if j == 0 {
                x = _mm_xor_si128(x, s);
            }
            wide.mul_add_karatsuba(x, self.descending[j], self.folded[j]);
        }
        wide.reduce_karatsuba()
    }

    /// Absorbs `data` (zero-padded to 16 bytes) into the POLYVAL state `s`.
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    fn polyval_update(&self, mut s: __m128i, data: &[u8]) -> __m128i {
        let mut chunks = data.chunks_exact(CHUNK);
        for chunk in &mut chunks {
            // SAFETY: this function's target features are the ones `available` checked before `self` existed;
            // `chunk` has CHUNK bytes.
            s = unsafe { self.absorb_chunk(s, chunk.as_ptr()) };
        }
        self.polyval_tail(s, chunks.remainder())
    }

    /// Absorbs fewer than `CHUNK` bytes (zero-padded to 16) with one reduction.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    fn polyval_tail(&self, s: __m128i, rest: &[u8]) -> __m128i {
        if rest.is_empty() {
            return s;
        }
        let reverse = reverse_mask();
        let blocks = rest.len().div_ceil(16).min(LANES);
        let mut wide = Wide::zero();
        for (j, block) in rest.chunks(16).take(LANES).enumerate() {
            let mut padded = [0u8; 16];
            padded[..block.len()].copy_from_slice(block);
            let mut x = _mm_shuffle_epi8(load(&padded), reverse);
            if j == 0 {
                x = _mm_xor_si128(x, s);
            }
            wide.mul_add(x, self.descending[LANES - blocks + j]);
        }
        wide.reduce()
    }

    /// E_K0(J0) with J0 = iv ‖ 0⁴ ‖ 1: the GMAC tag mask. Computed before the bulk work, as it depends only on
    /// the IV, so that its fourteen-round latency overlaps with it instead of trailing it.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    fn gmac_mask(&self, iv: &[u8; 8]) -> __m128i {
        let mut j0 = [0u8; 16];
        j0[..8].copy_from_slice(iv);
        j0[15] = 1;
        encrypt_block(&self.k0, load(&j0))
    }

    /// Final GHASH steps: the GCM length block, back to GHASH byte order, plus the mask, folded to 64 bits.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    fn finish_gmac(&self, s: __m128i, mask: __m128i, aad_len: usize, payload_len: usize) -> [u8; 8] {
        // GCM length block: all of it counts as associated data (padded AAD plus payload), no ciphertext.
        let authenticated_bits = ((aad_len.next_multiple_of(16) + payload_len) as u64) * 8;
        let mut lengths = [0u8; 16];
        lengths[..8].copy_from_slice(&authenticated_bits.to_be_bytes());
        let s = dot(_mm_xor_si128(s, _mm_shuffle_epi8(load(&lengths), reverse_mask())), self.descending[LANES - 1]);
        let ghash = _mm_shuffle_epi8(s, reverse_mask());
        let tag = _mm_xor_si128(ghash, mask);
        let folded = _mm_xor_si128(tag, _mm_srli_si128::<8>(tag));
        (_mm_cvtsi128_si64(folded) as u64).to_le_bytes()
    }

    /// GMAC_K0(iv ‖ 0⁴; aad ‖ pad ‖ payload ‖ pad) folded to 64 bits.
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    fn folded_gmac(&self, iv: &[u8; 8], aad: &[u8], payload: &[u8]) -> [u8; 8] {
        let mask = self.gmac_mask(iv);
        let s = self.polyval_update(_mm_setzero_si128(), aad);
        let s = self.polyval_update(s, payload);
        self.finish_gmac(s, mask, aad.len(), payload.len())
    }

    /// Eight AES-256 (K1) encryptions of consecutive counter blocks, all in flight together. With `STITCH`,
    /// also absorbs the CHUNK bytes at `hash` into `*s`, one block multiplication between AES rounds.
    ///
    /// # Safety
    /// [`available`] must have returned true; with `STITCH`, `hash` must point to CHUNK readable bytes.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    unsafe fn keystream_chunk<const STITCH: bool>(
        &self,
        base: __m128i,
        counter: u32,
        s: &mut __m128i,
        hash: *const u8,
    ) -> [__m128i; LANES] {
        let rk = &self.k1;
        let mut x = [_mm_setzero_si128(); LANES];
        for (j, lane) in x.iter_mut().enumerate() {
            *lane = _mm_xor_si128(counter_block(base, counter.wrapping_add(j as u32)), rk[0]);
        }
        let reverse = reverse_mask();
        let mut wide = Wide::zero();
        // Rounds written out (not a loop) so that the GHASH steps sit between AES rounds without a branch.
        macro_rules! aes_round {
            ($round:literal) => {
                // Left to itself, LLVM keeps all 15 round keys in the 16 XMM registers, which leaves room for
                // only four AES states and splits the batch into two halves of four blocks run one after the
                // other (half the throughput). Hiding where the key comes from makes it load the key once per
                // round instead, so all eight blocks stay in registers and in flight.
                let key = *core::hint::black_box(&rk[$round]);
                for lane in x.iter_mut() {
                    *lane = _mm_aesenc_si128(*lane, key);
                }
            };
        }
        macro_rules! stitched_round {
            ($round:literal, $block:literal) => {
                aes_round!($round);
                if STITCH {
                    // SAFETY: block `$block` (< 8) of the CHUNK bytes the caller guarantees.
                    let mut y =
                        _mm_shuffle_epi8(unsafe { _mm_loadu_si128(hash.add(16 * $block) as *const __m128i) }, reverse);
                    if $block == 0 {
                        y = _mm_xor_si128(y, *s);
                    }
                    wide.mul_add_karatsuba(y, self.descending[$block], self.folded[$block]);
                }
            };
        }
        stitched_round!(1, 0);
        stitched_round!(2, 1);
        stitched_round!(3, 2);
        stitched_round!(4, 3);
        stitched_round!(5, 4);
        stitched_round!(6, 5);
        stitched_round!(7, 6);
        stitched_round!(8, 7);
        aes_round!(9);
        aes_round!(10);
        aes_round!(11);
        aes_round!(12);
        aes_round!(13);
        let last = *core::hint::black_box(&rk[14]);
        for lane in x.iter_mut() {
            *lane = _mm_aesenclast_si128(*lane, last);
        }
        if STITCH {
            *s = wide.reduce_karatsuba();
        }
        x
    }

    /// XORs the key stream into `data` from `counter` on; `data` holds at most CHUNK bytes.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    fn ctr_tail(&self, base: __m128i, counter: u32, data: &mut [u8]) {
        if data.is_empty() {
            return;
        }
        let mut unused = _mm_setzero_si128();
        // SAFETY: this function's target features are the ones `available` checked; no stitching, so `hash`
        // is never read.
        let stream = unsafe { self.keystream_chunk::<false>(base, counter, &mut unused, core::ptr::null()) };
        xor_partial(data, &stream);
    }

    /// AES-256-CTR under K1, 32-bit big-endian counter in the last word of `iv`.
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    fn ctr_xor(&self, iv: &[u8; 16], data: &mut [u8]) {
        let base = load(iv);
        let mut counter = u32::from_be_bytes(iv[12..].try_into().expect("4 bytes"));
        let mut chunks = data.chunks_exact_mut(CHUNK);
        for chunk in &mut chunks {
            let mut unused = _mm_setzero_si128();
            // SAFETY: target features as checked by `available`; no stitching.
            let stream = unsafe { self.keystream_chunk::<false>(base, counter, &mut unused, core::ptr::null()) };
            xor_chunk(chunk, &stream);
            counter = counter.wrapping_add(LANES as u32);
        }
        self.ctr_tail(base, counter, chunks.into_remainder());
    }

    /// Encrypts in place; returns the 16-byte SIV tag.
    ///
    /// # Safety
    /// [`available`] must have returned true.
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    pub(crate) unsafe fn encrypt_in_place(&self, iv: &[u8; 8], aad: &[u8], payload: &mut [u8]) -> [u8; 16] {
        let folded = self.folded_gmac(iv, aad, payload);
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(iv);
        block[8..].copy_from_slice(&folded);
        let tag = store(encrypt_block(&self.k1, load(&block)));
        let mut ctr_iv = tag;
        ctr_iv[12] &= 0x7f;
        self.ctr_xor(&ctr_iv, payload);
        tag
    }

    /// Decrypts `payload` in place with the key stream selected by `tag` and returns the folded GMAC of the
    /// plaintext under `iv` (CTR and GHASH stitched, see the module documentation).
    ///
    /// # Safety
    /// [`available`] must have returned true.
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    pub(crate) unsafe fn decrypt_and_gmac(
        &self,
        tag: &[u8; 16],
        iv: &[u8; 8],
        aad: &[u8],
        payload: &mut [u8],
    ) -> [u8; 8] {
        let mut ctr_iv = *tag;
        ctr_iv[12] &= 0x7f;
        let base = load(&ctr_iv);
        let mut counter = u32::from_be_bytes(ctr_iv[12..].try_into().expect("4 bytes"));
        let mask = self.gmac_mask(iv);
        let mut s = self.polyval_update(_mm_setzero_si128(), aad);
        let full = payload.len() / CHUNK;
        let p = payload.as_mut_ptr();
        for i in 0..full {
            // SAFETY: target features as checked by `available`; chunk i - 1 (i ≥ 1) lies inside `payload`
            // and has already been decrypted, chunk i lies inside `payload` since i < full.
            unsafe {
                let stream = if i == 0 {
                    self.keystream_chunk::<false>(base, counter, &mut s, core::ptr::null())
                } else {
                    self.keystream_chunk::<true>(base, counter, &mut s, p.add(CHUNK * (i - 1)))
                };
                xor_chunk(core::slice::from_raw_parts_mut(p.add(CHUNK * i), CHUNK), &stream);
            }
            counter = counter.wrapping_add(LANES as u32);
        }
        let has_tail = payload.len() > CHUNK * full;
        if full > 0 && has_tail {
            // The tail's key stream, stitched with the hash of the last full chunk.
            // SAFETY: target features as checked by `available`; the last full chunk lies inside `payload`
            // and is decrypted. The tail slice below is taken after the last use of `p`.
            let stream = unsafe { self.keystream_chunk::<true>(base, counter, &mut s, p.add(CHUNK * (full - 1))) };
            xor_partial(&mut payload[CHUNK * full..], &stream);
        } else if full > 0 {
            // SAFETY: the last full chunk lies inside `payload`.
            s = unsafe { self.absorb_chunk(s, p.add(CHUNK * (full - 1))) };
        } else {
            self.ctr_tail(base, counter, payload);
        }
        s = self.polyval_tail(s, &payload[CHUNK * full..]);
        self.finish_gmac(s, mask, aad.len(), payload.len())
    }
}

/// XORs the first `data.len()` (< CHUNK) bytes of the key stream into `data`.
#[inline]
#[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
fn xor_partial(data: &mut [u8], stream: &[__m128i; LANES]) {
    for (block, ks) in data.chunks_mut(16).zip(stream) {
        let ks = store(*ks);
        for (byte, k) in block.iter_mut().zip(ks) {
            *byte ^= k;
        }
    }
}

/// XORs eight key-stream blocks into a CHUNK-byte slice.
#[inline]
#[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
fn xor_chunk(chunk: &mut [u8], stream: &[__m128i; LANES]) {
    debug_assert_eq!(chunk.len(), CHUNK);
    for (block, ks) in chunk.chunks_exact_mut(16).zip(stream) {
        let block: &mut [u8; 16] = block.try_into().expect("16 bytes");
        *block = store(_mm_xor_si128(load(block), *ks));
    }
}
