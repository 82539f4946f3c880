//! 40-bit ZeroTier addresses (§5): the last 5 bytes of an identity's memory-hard digest.
use crate::CryptoError;
use std::fmt;
use std::str::FromStr;

/// A 40-bit ZeroTier node address, held in the low 40 bits of a `u64`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(u64);

impl Address {
    /// Length of an address on the wire.
    pub const LEN: usize = 5;
    const MASK: u64 = 0xff_ffff_ffff;

    /// Address from its 40-bit integer value; errors if the value uses more than 40 bits.
    pub fn new(value: u64) -> Result<Self, CryptoError> {
        if value & !Self::MASK != 0 {
            return Err(CryptoError::AddressOutOfRange(value));
        }
        Ok(Address(value))
    }

    /// Address from its 5 wire bytes (big-endian).
    pub fn from_bytes(bytes: &[u8; 5]) -> Self {
        Address(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// Address from a 5-byte slice (for example a header field).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let bytes: &[u8; 5] = bytes.try_into().map_err(|_| CryptoError::BadAddressLength(bytes.len()))?;
        Ok(Self::from_bytes(bytes))
    }

    /// The 5 wire bytes (big-endian).
    pub fn to_bytes(self) -> [u8; 5] {
        let b = self.0.to_be_bytes();
        [b[3], b[4], b[5], b[6], b[7]]
    }

    /// The 40-bit value.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Reserved addresses (§5.1): zero, and anything whose first byte is 0xff (that byte marks fragments).
    pub fn is_reserved(self) -> bool {
        self.0 == 0 || (self.0 >> 32) == 0xff
    }
}

impl From<[u8; 5]> for Address {
    fn from(bytes: [u8; 5]) -> Self {
        Self::from_bytes(&bytes)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:010x}", self.0)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({:010x})", self.0)
    }
}

impl FromStr for Address {
    type Err = CryptoError;

    /// Exactly 10 hex digits (either case).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 5];
        crate::identity::decode_hex("address", text, &mut bytes)?;
        Ok(Self::from_bytes(&bytes))
    }
}
