//! Bounds-checked big-endian reader and writer for packet payloads (spec §0: every multi-byte
//! integer is big-endian unless noted).
//!
//! All verb codecs build on these two types so that a short or hostile input can only ever
//! produce [`ProtocolError::Truncated`], never a panic or an out-of-bounds read.

use crate::Address;
use crate::error::{ProtocolError, Result};

/// A cursor over a byte slice; every read checks the remaining length.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread tail, without consuming it.
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    /// Consume `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(ProtocolError::Truncated { what, needed: n, available: self.remaining() });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Consume everything that is left.
    pub fn take_rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        out
    }

    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A 40-bit ZeroTier address (5 bytes, big-endian).
    pub fn address(&mut self, what: &'static str) -> Result<Address> {
        let bytes: [u8; 5] = self.array(what)?;
        Ok(address_from_bytes(&bytes))
    }

    /// Fail if anything is left (for fixed-size payloads).
    pub fn finish(&self, what: &'static str) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(ProtocolError::TrailingBytes { what, count }),
        }
    }
}

/// Appends big-endian fields to a `Vec<u8>` (used by encoders, which are off the hot path or
/// write into a pre-sized buffer).
pub trait WriteExt {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_address(&mut self, a: &Address);
    fn put_slice(&mut self, b: &[u8]);
}

impl WriteExt for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_address(&mut self, a: &Address) {
        self.extend_from_slice(&address_to_bytes(a));
    }
    fn put_slice(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
}

/// Convert 5 wire bytes to an [`Address`].
pub fn address_from_bytes(bytes: &[u8; 5]) -> Address {
    Address::from_bytes(bytes)
}

/// The 5 wire bytes of an [`Address`].
pub fn address_to_bytes(a: &Address) -> [u8; 5] {
    a.to_bytes()
}

/// Address as a `u64` (low 40 bits), for MAC derivation and network-ID arithmetic.
pub fn address_to_u64(a: &Address) -> u64 {
    let b = a.to_bytes();
    u64::from_be_bytes([0, 0, 0, b[0], b[1], b[2], b[3], b[4]])
}

/// Address from the low 40 bits of a `u64`.
pub fn address_from_u64(v: u64) -> Address {
    let b = v.to_be_bytes();
    address_from_bytes(&[b[3], b[4], b[5], b[6], b[7]])
}
