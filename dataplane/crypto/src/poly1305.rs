//! Poly1305 one-time authenticator (RFC 8439), used by suites 0 and 1 (§6.2) with its tag truncated to 8
//! bytes on the wire.
//!
//! Scalar code: radix 2^64 with 128-bit products (two full limbs plus a small third), about one cycle per
//! byte on x86-64. Long messages on CPUs with AVX-512 IFMA: eight blocks in parallel in radix 2^44
//! (52-bit multiply-add), each lane accumulating every eighth block with r^8, the lanes finally weighted
//! by r^8..r^1 and summed; chosen at run time.

/// Incremental Poly1305 state.
#[derive(Clone)]
pub struct Poly1305 {
    r0: u64,
    r1: u64,
    /// 5·r1/4: folds the 2^130 wrap-around into the multiplication (r1 is a multiple of 4 after clamping).
    s1: u64,
    h0: u64,
    h1: u64,
    h2: u64,
    pad: [u64; 2],
    partial: [u8; 16],
    partial_len: usize,
}

fn le64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

impl Poly1305 {
    /// From the 32-byte one-time key (r ‖ s); r is clamped.
    pub fn new(key: &[u8; 32]) -> Self {
        let r0 = le64(&key[0..8]) & 0x0fff_fffc_0fff_ffff;
        let r1 = le64(&key[8..16]) & 0x0fff_fffc_0fff_fffc;
        Poly1305 {
            r0,
            r1,
            s1: r1 + (r1 >> 2),
            h0: 0,
            h1: 0,
            h2: 0,
            pad: [le64(&key[16..24]), le64(&key[24..32])],
            partial: [0; 16],
            partial_len: 0,
        }
    }

    /// Absorbs 16-byte blocks; `high_bit` is 1 for full blocks (the 2^128 term), 0 for the padded final one.
    #[inline(always)]
    fn blocks(&mut self, data: &[u8], high_bit: u64) {
        let (r0, r1, s1) = (u128::from(self.r0), u128::from(self.r1), u128::from(self.s1));
        let (mut h0, mut h1, mut h2) = (self.h0, self.h1, self.h2);
        for block in data.chunks_exact(16) {
            let t = u128::from(h0) + u128::from(le64(&block[0..8]));
            h0 = t as u64;
            let t = u128::from(h1) + u128::from(le64(&block[8..16])) + (t >> 64);
            h1 = t as u64;
            h2 += (t >> 64) as u64 + high_bit;
            // h·r with 2^128·r1 terms folded through s1 (2^130 ≡ 5).
            let d0 = u128::from(h0) * r0 + u128::from(h1) * s1;
            let d1 = u128::from(h0) * r1 + u128::from(h1) * r0 + u128::from(h2) * s1;
            let d2 = h2 * self.r0;
            h0 = d0 as u64;
            let d1 = d1 + (d0 >> 64);
            h1 = d1 as u64;
            let d2 = d2 + (d1 >> 64) as u64;
            // Keep 130 bits; everything above 2^130 comes back multiplied by 5.
            h2 = d2 & 3;
            let carry = (d2 & !3) + (d2 >> 2);
            let t = u128::from(h0) + u128::from(carry);
            h0 = t as u64;
            let t = u128::from(h1) + (t >> 64);
            h1 = t as u64;
            h2 += (t >> 64) as u64;
        }
        (self.h0, self.h1, self.h2) = (h0, h1, h2);
    }

    /// Absorbs message bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        if self.partial_len > 0 {
            let take = (16 - self.partial_len).min(data.len());
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&data[..take]);
            self.partial_len += take;
            data = &data[take..];
            if self.partial_len < 16 {
                return;
            }
            let block = self.partial;
            self.blocks(&block, 1);
            self.partial_len = 0;
        }
        let mut full = data.len() & !15;
        #[cfg(target_arch = "x86_64")]
        if full >= ifma::MIN_LEN && ifma::available() {
            let wide = full & !(ifma::CHUNK - 1);
            // SAFETY: features checked; `wide` is a non-zero multiple of the chunk size.
            let h = unsafe { ifma::blocks(self.radix44(), &ifma::Powers::new(self.r0, self.r1), &data[..wide]) };
            self.set_radix44(h);
            data = &data[wide..];
            full -= wide;
        }
        self.blocks(&data[..full], 1);
        let rest = &data[full..];
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len = rest.len();
    }

    /// The accumulator in 44/44/42-bit limbs.
    #[cfg(target_arch = "x86_64")]
    fn radix44(&self) -> [u64; 3] {
        [self.h0 & ifma::M44, ((self.h0 >> 44) | (self.h1 << 20)) & ifma::M44, (self.h1 >> 24) | (self.h2 << 40)]
    }

    /// Sets the accumulator from 44/44/42-bit limbs (carried so that h2 stays tiny).
    #[cfg(target_arch = "x86_64")]
    fn set_radix44(&mut self, limbs: [u64; 3]) {
        let [l0, l1, l2] = ifma::carry(limbs);
        self.h0 = l0 | (l1 << 44);
        self.h1 = (l1 >> 20) | (l2 << 24);
        self.h2 = l2 >> 40;
    }

    /// The 16-byte tag.
    pub fn finalize(mut self) -> [u8; 16] {
        if self.partial_len > 0 {
            let mut last = [0u8; 16];
            last[..self.partial_len].copy_from_slice(&self.partial[..self.partial_len]);
            last[self.partial_len] = 1;
            self.blocks(&last, 0);
        }
        // h < 2p here: subtract p once if h ≥ p, i.e. if h + 5 reaches 2^130 (constant time).
        let t = u128::from(self.h0) + 5;
        let g0 = t as u64;
        let t = u128::from(self.h1) + (t >> 64);
        let g1 = t as u64;
        let g2 = self.h2 + (t >> 64) as u64;
        let use_g = ((g2 >> 2) & 1).wrapping_neg();
        let h0 = (self.h0 & !use_g) | (g0 & use_g);
        let h1 = (self.h1 & !use_g) | (g1 & use_g);
        let t = u128::from(h0) + u128::from(self.pad[0]);
        let t1 = u128::from(h1) + u128::from(self.pad[1]) + (t >> 64);
        let mut tag = [0u8; 16];
        tag[..8].copy_from_slice(&(t as u64).to_le_bytes());
        tag[8..].copy_from_slice(&(t1 as u64).to_le_bytes());
        tag
    }
}

/// Name of the implementation used for long messages on this CPU (for benchmark reports).
pub fn implementation() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if ifma::available() {
        return "avx512ifma 8-way + scalar radix 2^64";
    }
    "scalar radix 2^64"
}

/// One-shot tag of `message`.
pub fn tag(key: &[u8; 32], message: &[u8]) -> [u8; 16] {
    let mut state = Poly1305::new(key);
    state.update(message);
    state.finalize()
}

#[cfg(target_arch = "x86_64")]
mod ifma {
    use core::arch::x86_64::*;

    pub const M44: u64 = (1 << 44) - 1;
    const M42: u64 = (1 << 42) - 1;
    /// Bytes per vector iteration: eight blocks.
    pub const CHUNK: usize = 128;
    /// Below this the r^2..r^8 precomputation does not pay off.
    pub const MIN_LEN: usize = 256;

    pub fn available() -> bool {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512ifma")
    }

    /// Carries 44/44/42-bit limbs (values above 2^130 fold back times 5); limbs end below 2^44,
    /// 2^44 and 2^42 + 2.
    pub fn carry([mut l0, mut l1, mut l2]: [u64; 3]) -> [u64; 3] {
        for _ in 0..2 {
            l1 += l0 >> 44;
            l0 &= M44;
            l2 += l1 >> 44;
            l1 &= M44;
            let over = l2 >> 42;
            l2 &= M42;
            l0 += over * 5;
        }
        l1 += l0 >> 44;
        l0 &= M44;
        // That last step can leave l1 at exactly 2^44: move it on, or callers that join the
        // limbs with `|` would drop the bit.
        l2 += l1 >> 44;
        l1 &= M44;
        [l0, l1, l2]
    }

    /// a·b mod 2^130 - 5 in 44/44/42-bit limbs (2^132 ≡ 20).
    fn mul(a: [u64; 3], b: [u64; 3]) -> [u64; 3] {
        let [a0, a1, a2] = a.map(u128::from);
        let [b0, b1, b2] = b.map(u128::from);
        let (s1, s2) = (b1 * 20, b2 * 20);
        let d0 = a0 * b0 + a1 * s2 + a2 * s1;
        let d1 = a0 * b1 + a1 * b0 + a2 * s2 + (d0 >> 44);
        let d2 = a0 * b2 + a1 * b1 + a2 * b0 + (d1 >> 44);
        let over = (d2 >> 42) as u64;
        carry([(d0 as u64 & M44) + over * 5, d1 as u64 & M44, d2 as u64 & M42])
    }

    /// r^8 for the loop and r^8..r^1 per lane for the final weighting.
    pub struct Powers {
        r8: [u64; 3],
        /// `lanes[limb][j]` = limb of r^(8 - j) for limbs 0..3; rows 3 and 4 are 20 times limbs 1 and 2.
        lanes: [[u64; 8]; 5],
    }

    impl Powers {
        pub fn new(r0: u64, r1: u64) -> Self {
            let r = [r0 & M44, ((r0 >> 44) | (r1 << 20)) & M44, r1 >> 24];
            let mut powers = [r; 8];
            for i in 1..8 {
                powers[i] = mul(powers[i - 1], r);
            }
            let mut lanes = [[0u64; 8]; 5];
            for (j, lane_power) in powers.iter().rev().enumerate() {
                for limb in 0..3 {
                    lanes[limb][j] = lane_power[limb];
                }
                lanes[3][j] = lane_power[1] * 20;
                lanes[4][j] = lane_power[2] * 20;
            }
            Powers { r8: powers[7], lanes }
        }
    }

    /// Eight lanes of 44/44/42-bit limbs times (r0, r1, r2) with s1 = 20·r1, s2 = 20·r2; partially carried.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    #[allow(clippy::too_many_arguments)]
    fn mul8(h: [__m512i; 3], r0: __m512i, r1: __m512i, r2: __m512i, s1: __m512i, s2: __m512i) -> [__m512i; 3] {
        let z = _mm512_setzero_si512();
        let [h0, h1, h2] = h;
        let d0l = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(_mm512_madd52lo_epu64(z, h0, r0), h1, s2), h2, s1);
        let d0h = _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(_mm512_madd52hi_epu64(z, h0, r0), h1, s2), h2, s1);
        let d1l = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(_mm512_madd52lo_epu64(z, h0, r1), h1, r0), h2, s2);
        let d1h = _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(_mm512_madd52hi_epu64(z, h0, r1), h1, r0), h2, s2);
        let d2l = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(_mm512_madd52lo_epu64(z, h0, r2), h1, r1), h2, r0);
        let d2h = _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(_mm512_madd52hi_epu64(z, h0, r2), h1, r1), h2, r0);
        // High halves weigh 2^52 more than their limb: into the next limb shifted by 8; from limb 2 they pass
        // 2^130 and come back to limb 0 as 5·2^10.
        let d2h5 = _mm512_add_epi64(d2h, _mm512_slli_epi64::<2>(d2h));
        let t0 = _mm512_add_epi64(d0l, _mm512_slli_epi64::<10>(d2h5));
        let t1 = _mm512_add_epi64(d1l, _mm512_slli_epi64::<8>(d0h));
        let t2 = _mm512_add_epi64(d2l, _mm512_slli_epi64::<8>(d1h));
        let m44 = _mm512_set1_epi64(M44 as i64);
        let m42 = _mm512_set1_epi64(M42 as i64);
        let t1 = _mm512_add_epi64(t1, _mm512_srli_epi64::<44>(t0));
        let h0 = _mm512_and_si512(t0, m44);
        let t2 = _mm512_add_epi64(t2, _mm512_srli_epi64::<44>(t1));
        let h1 = _mm512_and_si512(t1, m44);
        let over = _mm512_srli_epi64::<42>(t2);
        let h2 = _mm512_and_si512(t2, m42);
        let h0 = _mm512_add_epi64(h0, _mm512_add_epi64(over, _mm512_slli_epi64::<2>(over)));
        let h1 = _mm512_add_epi64(h1, _mm512_srli_epi64::<44>(h0));
        let h0 = _mm512_and_si512(h0, m44);
        [h0, h1, h2]
    }

    /// Eight message blocks (with the 2^128 pad bit) as 44/44/42-bit limbs, lane j = block j.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    unsafe fn load8(p: *const u8) -> [__m512i; 3] {
        // SAFETY: caller guarantees 128 readable bytes.
        let (a, b) =
            unsafe { (_mm512_loadu_si512(p as *const __m512i), _mm512_loadu_si512(p.add(64) as *const __m512i)) };
        let lo = _mm512_permutex2var_epi64(a, _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0), b);
        let hi = _mm512_permutex2var_epi64(a, _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1), b);
        let m44 = _mm512_set1_epi64(M44 as i64);
        [
            _mm512_and_si512(lo, m44),
            _mm512_and_si512(_mm512_or_si512(_mm512_srli_epi64::<44>(lo), _mm512_slli_epi64::<20>(hi)), m44),
            _mm512_or_si512(_mm512_srli_epi64::<24>(hi), _mm512_set1_epi64(1 << 40)),
        ]
    }

    /// Absorbs `data` (a non-zero multiple of 128 bytes, all full blocks) into accumulator `h`.
    ///
    /// # Safety
    /// [`available`] must have returned true.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub unsafe fn blocks(h: [u64; 3], powers: &Powers, data: &[u8]) -> [u64; 3] {
        debug_assert!(!data.is_empty() && data.len().is_multiple_of(CHUNK));
        let broadcast = |v: u64| _mm512_set1_epi64(v as i64);
        let (r0, r1, r2) = (broadcast(powers.r8[0]), broadcast(powers.r8[1]), broadcast(powers.r8[2]));
        let (s1, s2) = (broadcast(powers.r8[1] * 20), broadcast(powers.r8[2] * 20));
        let mut chunks = data.chunks_exact(CHUNK);
        // SAFETY: every chunk is 128 bytes.
        let mut acc = unsafe { load8(chunks.next().expect("non-empty").as_ptr()) };
        // The running accumulator joins the first block (lane 0).
        let carried_in = _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0, h[0] as i64);
        acc[0] = _mm512_add_epi64(acc[0], carried_in);
        acc[1] = _mm512_add_epi64(acc[1], _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0, h[1] as i64));
        acc[2] = _mm512_add_epi64(acc[2], _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0, h[2] as i64));
        for chunk in chunks {
            acc = mul8(acc, r0, r1, r2, s1, s2);
            // SAFETY: every chunk is 128 bytes.
            let m = unsafe { load8(chunk.as_ptr()) };
            for limb in 0..3 {
                acc[limb] = _mm512_add_epi64(acc[limb], m[limb]);
            }
        }
        // SAFETY: reading the 64-byte power rows.
        let lane = |limb: usize| unsafe { _mm512_loadu_si512(powers.lanes[limb].as_ptr() as *const __m512i) };
        let (p0, p1, p2) = (lane(0), lane(1), lane(2));
        let (q1, q2) = (lane(3), lane(4));
        let weighted = mul8(acc, p0, p1, p2, q1, q2);
        carry([
            _mm512_reduce_add_epi64(weighted[0]) as u64,
            _mm512_reduce_add_epi64(weighted[1]) as u64,
            _mm512_reduce_add_epi64(weighted[2]) as u64,
        ])
    }
}
