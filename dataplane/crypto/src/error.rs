//! Error types: [`CryptoError`] for identities, addresses and keys; [`ArmorError`] for the per-packet path,
//! with one variant per drop reason so that callers can count them.
use thiserror::Error;

/// Failures of identity / address / key operations (§4, §5).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CryptoError {
    /// A text field was not the expected hexadecimal string.
    #[error("{field}: expected {expected_len} hex digits, got {got:?}")]
    BadHex { field: &'static str, expected_len: usize, got: String },
    /// The identity text did not have the `address:0:public[:private]` shape.
    #[error("identity text must be `address:0:public[:private]`, got {fields} fields")]
    BadIdentityText { fields: usize },
    /// The identity type is not 0 (C25519), the only type in ZeroTier 1.x.
    #[error("unsupported identity type {0} (only type 0 exists in ZeroTier 1.x)")]
    UnsupportedIdentityType(u8),
    /// A binary identity ended early.
    #[error("binary identity truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    /// The binary private-key length byte was neither 0 nor 64.
    #[error("binary identity private key length {0} (must be 0 or 64)")]
    BadSecretLength(u8),
    /// A value does not fit a 40-bit ZeroTier address.
    #[error("{0:#x} does not fit in a 40-bit ZeroTier address")]
    AddressOutOfRange(u64),
    /// A byte slice given as an address was not 5 bytes.
    #[error("a ZeroTier address is 5 bytes, got {0}")]
    BadAddressLength(usize),
    /// The operation needs the private key and this identity holds only the public one.
    #[error("identity {0} has no secret key")]
    NoSecretKey(crate::Address),
    /// The random source failed (identity generation).
    #[error("random number source failed: {0}")]
    Random(String),
}

/// Why [`crate::armor`] or [`crate::dearmor`] refused a packet (§6). Every failure leaves no usable
/// plaintext: see [`crate::dearmor`] for what the buffer holds afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ArmorError {
    /// Shorter than the 28-byte minimum (header + verb byte).
    #[error("packet of {0} bytes is shorter than the 28-byte minimum")]
    TooShort(usize),
    /// Longer than the 10024-byte reassembly limit (`ZT_PROTO_MAX_PACKET_LENGTH`).
    #[error("packet of {0} bytes exceeds the 10024-byte maximum")]
    TooLong(usize),
    /// Cipher suite bits 4..=7: unused in ZeroTier 1.x.
    #[error("unsupported cipher suite {0}")]
    UnsupportedSuite(u8),
    /// Suite 2 (trusted path) carries no cryptography: the caller must check the path ID itself (§6.5).
    #[error("cipher suite 2 (trusted path) has no crypto; check the trusted path ID instead")]
    TrustedPathSuite,
    /// The Poly1305 MAC (suites 0/1) or the AES-GMAC-SIV tag (suite 3) did not verify.
    #[error("message authentication failed")]
    MacMismatch,
}
