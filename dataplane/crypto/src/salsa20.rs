//! Salsa20 stream cipher (DJB layout: 256-bit key, 64-bit nonce, 64-bit block counter), used with 12 rounds
//! for packet armor (§6.2, §6.6) and with 20 rounds for the identity hashcash (§5.1).
//!
//! The keystream is computed 16 blocks at a time with AVX-512 and 8 at a time with AVX2 (rotations with
//! AVX-512VL when present), chosen at run time; a portable implementation covers other CPUs and short tails, and serves as the reference in
//! tests.

const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];
/// Bytes per Salsa20 block.
pub const BLOCK_LEN: usize = 64;
/// Blocks computed per SIMD batch.
const BATCH_BLOCKS: usize = 8;
const BATCH_LEN: usize = BATCH_BLOCKS * BLOCK_LEN;

/// The 16-word input state for block counter 0.
fn initial_state(key: &[u8; 32], nonce: &[u8; 8]) -> [u32; 16] {
    let word = |bytes: &[u8], i: usize| {
        u32::from_le_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]])
    };
    [
        SIGMA[0],
        word(key, 0),
        word(key, 1),
        word(key, 2),
        word(key, 3),
        SIGMA[1],
        word(nonce, 0),
        word(nonce, 1),
        0,
        0,
        SIGMA[2],
        word(key, 4),
        word(key, 5),
        word(key, 6),
        word(key, 7),
        SIGMA[3],
    ]
}

/// Salsa20 double rounds over any word type; `$add`, `$xor`, `$rotl` are the word operations.
macro_rules! salsa_rounds {
    ($x:ident, $rounds:expr, $add:path, $xor:path, $rotl:ident) => {
        for _ in 0..($rounds / 2) {
            // Column round.
            $x[4] = $xor($x[4], $rotl!($add($x[0], $x[12]), 7));
            $x[8] = $xor($x[8], $rotl!($add($x[4], $x[0]), 9));
            $x[12] = $xor($x[12], $rotl!($add($x[8], $x[4]), 13));
            $x[0] = $xor($x[0], $rotl!($add($x[12], $x[8]), 18));
            $x[9] = $xor($x[9], $rotl!($add($x[5], $x[1]), 7));
            $x[13] = $xor($x[13], $rotl!($add($x[9], $x[5]), 9));
            $x[1] = $xor($x[1], $rotl!($add($x[13], $x[9]), 13));
            $x[5] = $xor($x[5], $rotl!($add($x[1], $x[13]), 18));
            $x[14] = $xor($x[14], $rotl!($add($x[10], $x[6]), 7));
            $x[2] = $xor($x[2], $rotl!($add($x[14], $x[10]), 9));
            $x[6] = $xor($x[6], $rotl!($add($x[2], $x[14]), 13));
            $x[10] = $xor($x[10], $rotl!($add($x[6], $x[2]), 18));
            $x[3] = $xor($x[3], $rotl!($add($x[15], $x[11]), 7));
            $x[7] = $xor($x[7], $rotl!($add($x[3], $x[15]), 9));
            $x[11] = $xor($x[11], $rotl!($add($x[7], $x[3]), 13));
            $x[15] = $xor($x[15], $rotl!($add($x[11], $x[7]), 18));
            // Row round.
            $x[1] = $xor($x[1], $rotl!($add($x[0], $x[3]), 7));
            $x[2] = $xor($x[2], $rotl!($add($x[1], $x[0]), 9));
            $x[3] = $xor($x[3], $rotl!($add($x[2], $x[1]), 13));
            $x[0] = $xor($x[0], $rotl!($add($x[3], $x[2]), 18));
            $x[6] = $xor($x[6], $rotl!($add($x[5], $x[4]), 7));
            $x[7] = $xor($x[7], $rotl!($add($x[6], $x[5]), 9));
            $x[4] = $xor($x[4], $rotl!($add($x[7], $x[6]), 13));
            $x[5] = $xor($x[5], $rotl!($add($x[4], $x[7]), 18));
            $x[11] = $xor($x[11], $rotl!($add($x[10], $x[9]), 7));
            $x[8] = $xor($x[8], $rotl!($add($x[11], $x[10]), 9));
            $x[9] = $xor($x[9], $rotl!($add($x[8], $x[11]), 13));
            $x[10] = $xor($x[10], $rotl!($add($x[9], $x[8]), 18));
            $x[12] = $xor($x[12], $rotl!($add($x[15], $x[14]), 7));
            $x[13] = $xor($x[13], $rotl!($add($x[12], $x[15]), 9));
            $x[14] = $xor($x[14], $rotl!($add($x[13], $x[12]), 13));
            $x[15] = $xor($x[15], $rotl!($add($x[14], $x[13]), 18));
        }
    };
}

mod portable {
    use super::BLOCK_LEN;

    macro_rules! rotl32 {
        ($v:expr, $n:literal) => {
            u32::rotate_left($v, $n)
        };
    }

    /// One keystream block at `counter`.
    #[inline]
    pub fn block<const ROUNDS: usize>(state: &[u32; 16], counter: u64) -> [u8; BLOCK_LEN] {
        let mut input = *state;
        input[8] = counter as u32;
        input[9] = (counter >> 32) as u32;
        let mut x = input;
        salsa_rounds!(x, ROUNDS, u32::wrapping_add, core::ops::BitXor::bitxor, rotl32);
        let mut out = [0u8; BLOCK_LEN];
        for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(&x[i].wrapping_add(input[i]).to_le_bytes());
        }
        out
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{BATCH_LEN, BLOCK_LEN};
    use core::arch::x86_64::*;

    macro_rules! rotl_avx2 {
        ($v:expr, $n:literal) => {{
            let v = $v;
            _mm256_or_si256(_mm256_slli_epi32::<$n>(v), _mm256_srli_epi32::<{ 32 - $n }>(v))
        }};
    }
    macro_rules! rotl_avx512vl {
        ($v:expr, $n:literal) => {
            _mm256_rol_epi32::<$n>($v)
        };
    }

    /// XORs 8 blocks held word-sliced in `$x` (16 vectors, lane j = block j) into 512 bytes: `$dst` =
    /// `$src` XOR keystream.
    macro_rules! xor_out8 {
        ($x:expr, $src:expr, $dst:expr) => {{
            let x: &[__m256i; 16] = &$x;
            // Words 0..8 and 8..16 each form an 8x8 matrix (rows = words, columns = blocks): transpose
            // so that each vector holds 32 consecutive keystream bytes of one block.
            for half in 0..2 {
                let r = &x[half * 8..half * 8 + 8];
                let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
                let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
                let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
                let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
                let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
                let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
                let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
                let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
                let u0 = _mm256_unpacklo_epi64(t0, t2);
                let u1 = _mm256_unpackhi_epi64(t0, t2);
                let u2 = _mm256_unpacklo_epi64(t1, t3);
                let u3 = _mm256_unpackhi_epi64(t1, t3);
                let u4 = _mm256_unpacklo_epi64(t4, t6);
                let u5 = _mm256_unpackhi_epi64(t4, t6);
                let u6 = _mm256_unpacklo_epi64(t5, t7);
                let u7 = _mm256_unpackhi_epi64(t5, t7);
                let blocks = [
                    _mm256_permute2x128_si256::<0x20>(u0, u4),
                    _mm256_permute2x128_si256::<0x20>(u1, u5),
                    _mm256_permute2x128_si256::<0x20>(u2, u6),
                    _mm256_permute2x128_si256::<0x20>(u3, u7),
                    _mm256_permute2x128_si256::<0x31>(u0, u4),
                    _mm256_permute2x128_si256::<0x31>(u1, u5),
                    _mm256_permute2x128_si256::<0x31>(u2, u6),
                    _mm256_permute2x128_si256::<0x31>(u3, u7),
                ];
                for (j, ks) in blocks.into_iter().enumerate() {
                    let offset = j * BLOCK_LEN + half * 32;
                    // SAFETY: caller guarantees 512 readable bytes at src and writable at dst.
                    unsafe {
                        let p = $src.add(offset) as *const __m256i;
                        let q = $dst.add(offset) as *mut __m256i;
                        _mm256_storeu_si256(q, _mm256_xor_si256(_mm256_loadu_si256(p), ks));
                    }
                }
            }
        }};
    }

    /// Body of an 8-block batch: lane j of every vector belongs to block `counter + j`. Reads 512 bytes at
    /// `src`, XORs them with the keystream and writes 512 bytes at `dst` (they may alias exactly).
    macro_rules! batch8_body {
        ($rotl:ident, $rounds:expr, $state:expr, $counter:expr, $src:expr, $dst:expr) => {{
            let state: &[u32; 16] = $state;
            let counter: u64 = $counter;
            let mut input = [_mm256_setzero_si256(); 16];
            for i in 0..16 {
                input[i] = _mm256_set1_epi32(state[i] as i32);
            }
            let c = |j: u64| counter.wrapping_add(j);
            input[8] = _mm256_setr_epi32(
                c(0) as i32,
                c(1) as i32,
                c(2) as i32,
                c(3) as i32,
                c(4) as i32,
                c(5) as i32,
                c(6) as i32,
                c(7) as i32,
            );
            input[9] = _mm256_setr_epi32(
                (c(0) >> 32) as i32,
                (c(1) >> 32) as i32,
                (c(2) >> 32) as i32,
                (c(3) >> 32) as i32,
                (c(4) >> 32) as i32,
                (c(5) >> 32) as i32,
                (c(6) >> 32) as i32,
                (c(7) >> 32) as i32,
            );
            let mut x = input;
            salsa_rounds!(x, $rounds, _mm256_add_epi32, _mm256_xor_si256, $rotl);
            for i in 0..16 {
                x[i] = _mm256_add_epi32(x[i], input[i]);
            }
            xor_out8!(x, $src, $dst);
        }};
    }

    /// # Safety
    /// CPU supports AVX2; `src` readable and `dst` writable for 512 bytes.
    #[target_feature(enable = "avx2")]
    pub unsafe fn batch8_avx2<const ROUNDS: usize>(state: &[u32; 16], counter: u64, src: *const u8, dst: *mut u8) {
        batch8_body!(rotl_avx2, ROUNDS, state, counter, src, dst)
    }

    /// # Safety
    /// CPU supports AVX2, AVX-512F and AVX-512VL; `src` readable and `dst` writable for 512 bytes.
    #[target_feature(enable = "avx2,avx512f,avx512vl")]
    pub unsafe fn batch8_avx512vl<const ROUNDS: usize>(state: &[u32; 16], counter: u64, src: *const u8, dst: *mut u8) {
        batch8_body!(rotl_avx512vl, ROUNDS, state, counter, src, dst)
    }

    macro_rules! rotl_avx512 {
        ($v:expr, $n:literal) => {
            _mm512_rol_epi32::<$n>($v)
        };
    }

    /// 16 blocks in 512-bit vectors; the two 256-bit halves are then written out like two 8-block batches.
    ///
    /// # Safety
    /// CPU supports AVX2, AVX-512F and AVX-512VL; `src` readable and `dst` writable for 1024 bytes.
    #[target_feature(enable = "avx2,avx512f,avx512vl")]
    pub unsafe fn batch16_avx512<const ROUNDS: usize>(state: &[u32; 16], counter: u64, src: *const u8, dst: *mut u8) {
        let mut input = [_mm512_setzero_si512(); 16];
        for i in 0..16 {
            input[i] = _mm512_set1_epi32(state[i] as i32);
        }
        let mut low = [0u32; 16];
        let mut high = [0u32; 16];
        for j in 0..16 {
            let c = counter.wrapping_add(j as u64);
            low[j] = c as u32;
            high[j] = (c >> 32) as u32;
        }
        // SAFETY: reading two local arrays of 64 bytes.
        unsafe {
            input[8] = _mm512_loadu_si512(low.as_ptr() as *const __m512i);
            input[9] = _mm512_loadu_si512(high.as_ptr() as *const __m512i);
        }
        let mut x = input;
        salsa_rounds!(x, ROUNDS, _mm512_add_epi32, _mm512_xor_si512, rotl_avx512);
        for half in 0..2 {
            let mut y = [_mm256_setzero_si256(); 16];
            for i in 0..16 {
                let sum = _mm512_add_epi32(x[i], input[i]);
                y[i] = if half == 0 { _mm512_castsi512_si256(sum) } else { _mm512_extracti64x4_epi64::<1>(sum) };
            }
            // SAFETY: caller guarantees 1024 bytes at src and dst.
            let (s, d) = unsafe { (src.add(half * BATCH_LEN), dst.add(half * BATCH_LEN)) };
            xor_out8!(y, s, d);
        }
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Level {
        Portable,
        Avx2,
        Avx512Vl,
    }

    #[inline]
    pub fn level() -> Level {
        if std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx2")
        {
            Level::Avx512Vl
        } else if std::is_x86_feature_detected!("avx2") {
            Level::Avx2
        } else {
            Level::Portable
        }
    }

    /// XORs one 16-block batch in place (AVX-512 only).
    #[inline]
    pub fn xor_batch16<const ROUNDS: usize>(state: &[u32; 16], counter: u64, data: &mut [u8; 2 * BATCH_LEN]) {
        let p = data.as_mut_ptr();
        // SAFETY: only called at Level::Avx512Vl; `data` is 1024 bytes.
        unsafe { batch16_avx512::<ROUNDS>(state, counter, p, p) }
    }

    /// XORs one 8-block batch in place; false if no SIMD level is available.
    #[inline]
    pub fn xor_batch<const ROUNDS: usize>(
        level: Level,
        state: &[u32; 16],
        counter: u64,
        data: &mut [u8; BATCH_LEN],
    ) -> bool {
        let p = data.as_mut_ptr();
        match level {
            // SAFETY: features checked by `level()`; `data` is 512 bytes.
            Level::Avx512Vl => unsafe { batch8_avx512vl::<ROUNDS>(state, counter, p, p) },
            Level::Avx2 => unsafe { batch8_avx2::<ROUNDS>(state, counter, p, p) },
            Level::Portable => return false,
        }
        true
    }
}

/// XOR `data` with the keystream starting at block `counter`, portable code only (reference for tests).
pub fn xor_portable<const ROUNDS: usize>(key: &[u8; 32], nonce: &[u8; 8], counter: u64, data: &mut [u8]) {
    let state = initial_state(key, nonce);
    xor_portable_state::<ROUNDS>(&state, counter, data);
}

fn xor_portable_state<const ROUNDS: usize>(state: &[u32; 16], mut counter: u64, data: &mut [u8]) {
    for chunk in data.chunks_mut(BLOCK_LEN) {
        let ks = portable::block::<ROUNDS>(state, counter);
        for (d, k) in chunk.iter_mut().zip(ks.iter()) {
            *d ^= k;
        }
        counter = counter.wrapping_add(1);
    }
}

fn xor_state<const ROUNDS: usize>(state: &[u32; 16], counter: u64, data: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        xor_state_at::<ROUNDS>(x86::level(), state, counter, data);
    }
    #[cfg(not(target_arch = "x86_64"))]
    xor_portable_state::<ROUNDS>(state, counter, data);
}

/// Keystream XOR with the given SIMD level: 16-block batches (AVX-512), then 8-block batches, then the tail
/// (one more batch through a stack buffer from two blocks on, which beats scalar blocks).
#[cfg(target_arch = "x86_64")]
fn xor_state_at<const ROUNDS: usize>(level: x86::Level, state: &[u32; 16], mut counter: u64, mut data: &mut [u8]) {
    if level == x86::Level::Portable {
        return xor_portable_state::<ROUNDS>(state, counter, data);
    }
    if level == x86::Level::Avx512Vl {
        let mut wide = data.chunks_exact_mut(2 * BATCH_LEN);
        for chunk in &mut wide {
            let chunk: &mut [u8; 2 * BATCH_LEN] = chunk.try_into().expect("exact chunk");
            x86::xor_batch16::<ROUNDS>(state, counter, chunk);
            counter = counter.wrapping_add(2 * BATCH_BLOCKS as u64);
        }
        data = wide.into_remainder();
    }
    let mut chunks = data.chunks_exact_mut(BATCH_LEN);
    for chunk in &mut chunks {
        let chunk: &mut [u8; BATCH_LEN] = chunk.try_into().expect("exact chunk");
        x86::xor_batch::<ROUNDS>(level, state, counter, chunk);
        counter = counter.wrapping_add(BATCH_BLOCKS as u64);
    }
    let tail = chunks.into_remainder();
    if tail.len() > BLOCK_LEN {
        let mut buf = [0u8; BATCH_LEN];
        buf[..tail.len()].copy_from_slice(tail);
        x86::xor_batch::<ROUNDS>(level, state, counter, &mut buf);
        tail.copy_from_slice(&buf[..tail.len()]);
    } else {
        xor_portable_state::<ROUNDS>(state, counter, tail);
    }
}

/// XOR `data` with the Salsa20 keystream (`ROUNDS` = 8, 12 or 20) starting at block `counter`.
/// Encryption and decryption are the same operation.
pub fn xor<const ROUNDS: usize>(key: &[u8; 32], nonce: &[u8; 8], counter: u64, data: &mut [u8]) {
    xor_state::<ROUNDS>(&initial_state(key, nonce), counter, data);
}

/// Like [`xor`] but with the 8-way AVX2 code only (no AVX-512), so tests on AVX-512 machines also cover
/// the AVX2 path. Falls back to [`xor`] if the CPU lacks AVX2.
#[doc(hidden)]
pub fn xor_avx2_only<const ROUNDS: usize>(key: &[u8; 32], nonce: &[u8; 8], counter: u64, data: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        xor_state_at::<ROUNDS>(x86::Level::Avx2, &initial_state(key, nonce), counter, data);
        return;
    }
    xor::<ROUNDS>(key, nonce, counter, data);
}

/// One 64-byte keystream block.
pub fn block<const ROUNDS: usize>(key: &[u8; 32], nonce: &[u8; 8], counter: u64) -> [u8; BLOCK_LEN] {
    portable::block::<ROUNDS>(&initial_state(key, nonce), counter)
}

/// Keystream blocks 0..8 (512 bytes) of Salsa20/12 for suites 0/1 (§6.2): block 0 carries the Poly1305
/// key, blocks 1..8 the first 448 payload bytes. Only the first `blocks_needed` blocks are guaranteed to be
/// filled (the portable path computes no more than that).
pub(crate) fn salsa2012_prefix(key: &[u8; 32], nonce: &[u8; 8], blocks_needed: usize) -> [u8; BATCH_LEN] {
    let state = initial_state(key, nonce);
    let mut keystream = [0u8; BATCH_LEN];
    #[cfg(target_arch = "x86_64")]
    {
        let level = x86::level();
        if level != x86::Level::Portable && blocks_needed >= 2 {
            x86::xor_batch::<12>(level, &state, 0, &mut keystream);
            return keystream;
        }
    }
    for (counter, out) in keystream.chunks_exact_mut(BLOCK_LEN).take(blocks_needed).enumerate() {
        out.copy_from_slice(&portable::block::<12>(&state, counter as u64));
    }
    keystream
}

/// Salsa20/12 keystream XOR from block `counter` on (continues after [`salsa2012_prefix`]).
pub(crate) fn salsa2012_xor_from(key: &[u8; 32], nonce: &[u8; 8], counter: u64, data: &mut [u8]) {
    xor_state::<12>(&initial_state(key, nonce), counter, data);
}

/// Blocks held by [`salsa2012_prefix`].
pub(crate) const PREFIX_BLOCKS: usize = BATCH_BLOCKS;

/// Name of the implementation chosen at run time (for benchmark reports).
pub fn implementation() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        match x86::level() {
            x86::Level::Avx512Vl => return "avx512 16-way + avx512vl 8-way",
            x86::Level::Avx2 => return "avx2",
            x86::Level::Portable => {}
        }
    }
    "portable"
}
