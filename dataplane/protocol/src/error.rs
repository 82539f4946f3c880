//! The crate's single error type.
//!
//! Every parser returns [`ProtocolError`] instead of panicking; variants say what was wrong so a
//! caller can count drop reasons (spec §3.2 "dropped", §6.4 "counted as packet error").

use thiserror::Error;

/// Why a datagram, packet, verb payload, credential, dictionary, world file or capture could not
/// be parsed, built or accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The input ended before a field was complete.
    #[error("truncated {what}: need {needed} bytes, have {available}")]
    Truncated { what: &'static str, needed: usize, available: usize },
    /// A length, count or size is above what the protocol (or our fixed buffers) allow.
    #[error("{what} too large: {value} > limit {limit}")]
    TooLarge { what: &'static str, value: usize, limit: usize },
    /// A field holds a value the format does not allow.
    #[error("invalid {what}: {value:#x}")]
    InvalidValue { what: &'static str, value: u64 },
    /// Bytes were left over where the format says the input ends.
    #[error("{count} trailing bytes after {what}")]
    TrailingBytes { what: &'static str, count: usize },
    /// The datagram is neither a packet head nor a fragment (spec §3.2).
    #[error("datagram of {len} bytes is not a ZeroTier packet head or fragment")]
    NotZeroTier { len: usize },
    /// LZ4 payload did not decompress within the maximum packet size (spec §6.7).
    #[error("LZ4 decompression failed: {0}")]
    Decompression(String),
    /// Compression was asked for but would not shrink the payload.
    #[error("payload does not compress")]
    Incompressible,
    /// The packet failed authentication or could not be armored (spec §6); the crypto crate's
    /// reason (MAC mismatch, unsupported suite, length) is kept for counting.
    #[error("armor/dearmor failed: {0}")]
    Armor(#[from] ztplane_crypto::ArmorError),
    /// No key is available for this (source, destination) pair.
    #[error("no key for {0}")]
    NoKey(String),
    /// A signature did not verify or the signer is unknown.
    #[error("bad signature on {what}")]
    BadSignature { what: &'static str },
    /// A pcap file is malformed (bad magic, link type or record).
    #[error("pcap: {0}")]
    Pcap(String),
    /// Text (identity, dictionary) could not be parsed.
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
}

/// Shorthand used throughout the crate.
pub type Result<T> = core::result::Result<T, ProtocolError>;
