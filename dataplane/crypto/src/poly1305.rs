//! Poly1305 one-time authenticator (RFC 8439), used by suites 0 and 1 (§6.2) with its tag truncated to 8
//! bytes on the wire.
//!
//! Radix 2^64 with 128-bit products (two full limbs plus a small third), which on x86-64 runs at about one
//! cycle per byte without SIMD and needs no run-time feature detection.

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
        let (r0, r1, s1) = (
            u128::from(self.r0),
            u128::from(self.r1),
            u128::from(self.s1),
        );
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
        let full = data.len() & !15;
        self.blocks(&data[..full], 1);
        let rest = &data[full..];
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len = rest.len();
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

/// One-shot tag of `message`.
pub fn tag(key: &[u8; 32], message: &[u8]) -> [u8; 16] {
    let mut state = Poly1305::new(key);
    state.update(message);
    state.finalize()
}
