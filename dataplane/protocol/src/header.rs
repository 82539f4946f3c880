//! Packet head layout, flags byte, verb byte and datagram classification (spec §2, §3.2, §7).

use crate::Address;
use crate::error::{ProtocolError, Result};
use crate::wire::{address_from_bytes, address_to_bytes};

/// Header bytes before the verb byte (packet ID, destination, source, flags, MAC).
pub const HEADER_LEN: usize = 27;
/// Offset of the verb byte, the first byte of the encrypted/authenticated region.
pub const VERB_OFFSET: usize = 27;
/// Offset of the first payload byte after the verb.
pub const PAYLOAD_OFFSET: usize = 28;
/// `ZT_PROTO_MIN_PACKET_LENGTH`: shorter heads are dropped.
pub const MIN_PACKET_LEN: usize = 28;
/// `ZT_PROTO_MAX_PACKET_LENGTH` = 7 × 1432: capacity of one reassembled packet.
pub const MAX_PACKET_LEN: usize = 10024;
/// `ZT_DEFAULT_PHYSMTU`.
pub const DEFAULT_PHYS_MTU: usize = 1432;
/// Length of a legacy LAN beacon datagram.
pub const BEACON_LEN: usize = 13;
/// `ZT_PROTO_VERSION` of zerotier-one 1.14.1.
pub const PROTOCOL_VERSION: u8 = 12;
/// `ZT_PROTO_VERSION_MIN`.
pub const PROTOCOL_VERSION_MIN: u8 = 4;
/// Relays drop packets at or above this hop count (`ZT_RELAY_MAX_HOPS`).
pub const RELAY_MAX_HOPS: u8 = 3;

/// Flags byte: legacy "encrypted" bit, set iff cipher suite 1 (spec §2).
pub const FLAG_LEGACY_ENCRYPTED: u8 = 0x80;
/// Flags byte: more fragments follow this head.
pub const FLAG_FRAGMENTED: u8 = 0x40;
const CIPHER_MASK: u8 = 0x38;
const HOPS_MASK: u8 = 0x07;

/// Verb byte: payload is an LZ4 block (spec §6.7).
pub const VERB_FLAG_COMPRESSED: u8 = 0x80;
const VERB_MASK: u8 = 0x1f;

/// The verbs of protocol 12 (spec §7). Unknown codes are kept as [`Verb::Unknown`] since
/// authenticated unknown verbs are treated like NOP, not as errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Nop,
    Hello,
    Error,
    Ok,
    Whois,
    Rendezvous,
    Frame,
    ExtFrame,
    Echo,
    MulticastLike,
    NetworkCredentials,
    NetworkConfigRequest,
    NetworkConfig,
    MulticastGather,
    MulticastFrame,
    PushDirectPaths,
    Ack,
    QosMeasurement,
    UserMessage,
    RemoteTrace,
    PathNegotiationRequest,
    Unknown(u8),
}

impl Verb {
    /// From the low 5 bits of a verb byte.
    pub fn from_code(code: u8) -> Verb {
        match code & VERB_MASK {
            0x00 => Verb::Nop,
            0x01 => Verb::Hello,
            0x02 => Verb::Error,
            0x03 => Verb::Ok,
            0x04 => Verb::Whois,
            0x05 => Verb::Rendezvous,
            0x06 => Verb::Frame,
            0x07 => Verb::ExtFrame,
            0x08 => Verb::Echo,
            0x09 => Verb::MulticastLike,
            0x0a => Verb::NetworkCredentials,
            0x0b => Verb::NetworkConfigRequest,
            0x0c => Verb::NetworkConfig,
            0x0d => Verb::MulticastGather,
            0x0e => Verb::MulticastFrame,
            0x10 => Verb::PushDirectPaths,
            0x12 => Verb::Ack,
            0x13 => Verb::QosMeasurement,
            0x14 => Verb::UserMessage,
            0x15 => Verb::RemoteTrace,
            0x16 => Verb::PathNegotiationRequest,
            other => Verb::Unknown(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Verb::Nop => 0x00,
            Verb::Hello => 0x01,
            Verb::Error => 0x02,
            Verb::Ok => 0x03,
            Verb::Whois => 0x04,
            Verb::Rendezvous => 0x05,
            Verb::Frame => 0x06,
            Verb::ExtFrame => 0x07,
            Verb::Echo => 0x08,
            Verb::MulticastLike => 0x09,
            Verb::NetworkCredentials => 0x0a,
            Verb::NetworkConfigRequest => 0x0b,
            Verb::NetworkConfig => 0x0c,
            Verb::MulticastGather => 0x0d,
            Verb::MulticastFrame => 0x0e,
            Verb::PushDirectPaths => 0x10,
            Verb::Ack => 0x12,
            Verb::QosMeasurement => 0x13,
            Verb::UserMessage => 0x14,
            Verb::RemoteTrace => 0x15,
            Verb::PathNegotiationRequest => 0x16,
            Verb::Unknown(c) => c & VERB_MASK,
        }
    }

    /// Upstream's constant name without the `VERB_` prefix (as in the expected decodings).
    pub fn name(self) -> &'static str {
        match self {
            Verb::Nop => "NOP",
            Verb::Hello => "HELLO",
            Verb::Error => "ERROR",
            Verb::Ok => "OK",
            Verb::Whois => "WHOIS",
            Verb::Rendezvous => "RENDEZVOUS",
            Verb::Frame => "FRAME",
            Verb::ExtFrame => "EXT_FRAME",
            Verb::Echo => "ECHO",
            Verb::MulticastLike => "MULTICAST_LIKE",
            Verb::NetworkCredentials => "NETWORK_CREDENTIALS",
            Verb::NetworkConfigRequest => "NETWORK_CONFIG_REQUEST",
            Verb::NetworkConfig => "NETWORK_CONFIG",
            Verb::MulticastGather => "MULTICAST_GATHER",
            Verb::MulticastFrame => "MULTICAST_FRAME",
            Verb::PushDirectPaths => "PUSH_DIRECT_PATHS",
            Verb::Ack => "ACK",
            Verb::QosMeasurement => "QOS_MEASUREMENT",
            Verb::UserMessage => "USER_MESSAGE",
            Verb::RemoteTrace => "REMOTE_TRACE",
            Verb::PathNegotiationRequest => "PATH_NEGOTIATION_REQUEST",
            Verb::Unknown(_) => "UNKNOWN",
        }
    }
}

/// The decrypted verb byte: verb code plus the compressed flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerbByte(pub u8);

impl VerbByte {
    pub fn new(verb: Verb, compressed: bool) -> Self {
        VerbByte(verb.code() | if compressed { VERB_FLAG_COMPRESSED } else { 0 })
    }
    pub fn verb(self) -> Verb {
        Verb::from_code(self.0)
    }
    pub fn code(self) -> u8 {
        self.0 & VERB_MASK
    }
    pub fn compressed(self) -> bool {
        self.0 & VERB_FLAG_COMPRESSED != 0
    }
}

/// Byte 18 of a head: `FFCCCHHH` (spec §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(pub u8);

impl Flags {
    /// Cipher suite number (0..7).
    pub fn cipher(self) -> u8 {
        (self.0 & CIPHER_MASK) >> 3
    }
    pub fn hops(self) -> u8 {
        self.0 & HOPS_MASK
    }
    pub fn fragmented(self) -> bool {
        self.0 & FLAG_FRAGMENTED != 0
    }
    /// Flags with the mutable hop bits cleared (what the MAC covers).
    pub fn without_hops(self) -> u8 {
        self.0 & !HOPS_MASK
    }
}

/// A read-only view of a packet head (or a reassembled packet), validated to be at least
/// [`MIN_PACKET_LEN`] bytes and not a fragment.
#[derive(Debug, Clone, Copy)]
pub struct PacketView<'a> {
    bytes: &'a [u8],
}

impl<'a> PacketView<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < MIN_PACKET_LEN {
            return Err(ProtocolError::Truncated {
                what: "packet head",
                needed: MIN_PACKET_LEN,
                available: bytes.len(),
            });
        }
        if bytes[13] == FRAGMENT_INDICATOR {
            return Err(ProtocolError::InvalidValue { what: "source address (0xff prefix)", value: 0xff });
        }
        Ok(Self { bytes })
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Wire bytes 0..8 (for suite 3 these are tag bytes, spec §6.3).
    pub fn packet_id(&self) -> [u8; 8] {
        self.bytes[0..8].try_into().unwrap_or([0; 8])
    }
    /// Packet ID as the big-endian integer upstream compares.
    pub fn packet_id_u64(&self) -> u64 {
        u64::from_be_bytes(self.packet_id())
    }
    pub fn destination(&self) -> Address {
        address_from_bytes(&self.bytes[8..13].try_into().unwrap_or([0; 5]))
    }
    pub fn source(&self) -> Address {
        address_from_bytes(&self.bytes[13..18].try_into().unwrap_or([0; 5]))
    }
    pub fn flags(&self) -> Flags {
        Flags(self.bytes[18])
    }
    pub fn mac(&self) -> [u8; 8] {
        self.bytes[19..27].try_into().unwrap_or([0; 8])
    }
    /// The verb byte as on the wire (still encrypted for suites 1 and 3).
    pub fn raw_verb_byte(&self) -> u8 {
        self.bytes[VERB_OFFSET]
    }
}

/// Writes a head (bytes 0..28) into `out`, MAC zeroed, hops 0: the input to `armor`.
pub fn write_header(
    out: &mut [u8],
    packet_id: [u8; 8],
    destination: &Address,
    source: &Address,
    flags: u8,
    verb: VerbByte,
) -> Result<()> {
    if out.len() < MIN_PACKET_LEN {
        return Err(ProtocolError::Truncated { what: "packet buffer", needed: MIN_PACKET_LEN, available: out.len() });
    }
    out[0..8].copy_from_slice(&packet_id);
    out[8..13].copy_from_slice(&address_to_bytes(destination));
    out[13..18].copy_from_slice(&address_to_bytes(source));
    out[18] = flags & !HOPS_MASK;
    out[19..27].fill(0);
    out[27] = verb.0;
    Ok(())
}

/// Increment the hop count of a head or fragment in place (relays, spec §3, §9). Returns the
/// new count, or an error when the relay limit is reached.
pub fn increment_hops(datagram: &mut [u8]) -> Result<u8> {
    let idx = match classify(datagram) {
        DatagramKind::Head => 18,
        DatagramKind::Fragment => 15,
        _ => return Err(ProtocolError::NotZeroTier { len: datagram.len() }),
    };
    let hops = datagram[idx] & HOPS_MASK;
    if hops >= RELAY_MAX_HOPS {
        return Err(ProtocolError::TooLarge {
            what: "hop count",
            value: hops as usize,
            limit: RELAY_MAX_HOPS as usize - 1,
        });
    }
    datagram[idx] = (datagram[idx] & !HOPS_MASK) | (hops + 1);
    Ok(hops + 1)
}

/// Byte 13 of a fragment (`ZT_ADDRESS_RESERVED_PREFIX`).
pub const FRAGMENT_INDICATOR: u8 = 0xff;
/// `ZT_PROTO_MIN_FRAGMENT_LENGTH`: fragment header size; a fragment must be longer.
pub const FRAGMENT_HEADER_LEN: usize = 16;

/// What a UDP payload is (spec §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramKind {
    /// 13 bytes: legacy LAN beacon.
    Beacon,
    /// More than 16 bytes with byte 13 = 0xff.
    Fragment,
    /// At least 28 bytes, not a fragment.
    Head,
    /// Anything else (e.g. the 4-byte NAT-traversal junk): dropped.
    Other,
}

/// Classify a UDP payload in the order upstream does.
pub fn classify(datagram: &[u8]) -> DatagramKind {
    let len = datagram.len();
    if len == BEACON_LEN {
        DatagramKind::Beacon
    } else if len > FRAGMENT_HEADER_LEN && datagram[13] == FRAGMENT_INDICATOR {
        DatagramKind::Fragment
    } else if len >= MIN_PACKET_LEN {
        DatagramKind::Head
    } else {
        DatagramKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify(&[0u8; 4]), DatagramKind::Other);
        assert_eq!(classify(&[0u8; 13]), DatagramKind::Beacon);
        assert_eq!(classify(&[0u8; 27]), DatagramKind::Other);
        assert_eq!(classify(&[0u8; 28]), DatagramKind::Head);
        let mut frag = [0u8; 17];
        frag[13] = 0xff;
        assert_eq!(classify(&frag), DatagramKind::Fragment);
        assert_eq!(classify(&frag[..16]), DatagramKind::Other);
        let mut head = [0u8; 40];
        head[13] = 0xff;
        assert_eq!(classify(&head), DatagramKind::Fragment);
    }

    #[test]
    fn verbs_round_trip() {
        for code in 0..32u8 {
            let v = Verb::from_code(code);
            assert_eq!(v.code(), code);
        }
        assert_eq!(Verb::from_code(0x93).name(), "QOS_MEASUREMENT");
        let vb = VerbByte::new(Verb::MulticastLike, true);
        assert_eq!(vb.0, 0x89);
        assert!(vb.compressed());
        assert_eq!(vb.verb(), Verb::MulticastLike);
    }

    #[test]
    fn flags_fields() {
        let f = Flags(0x59);
        assert_eq!(f.cipher(), 3);
        assert_eq!(f.hops(), 1);
        assert!(f.fragmented());
        assert_eq!(f.without_hops(), 0x58);
        assert_eq!(Flags(0x88).cipher(), 1);
    }

    #[test]
    fn hop_increment_stops_at_relay_limit() {
        let mut head = [0u8; 40];
        head[18] = 0x18;
        assert_eq!(increment_hops(&mut head), Ok(1));
        assert_eq!(head[18], 0x19);
        assert_eq!(increment_hops(&mut head), Ok(2));
        assert_eq!(increment_hops(&mut head), Ok(3));
        assert!(increment_hops(&mut head).is_err());
        let mut frag = [0u8; 20];
        frag[13] = 0xff;
        frag[14] = 0x21;
        assert_eq!(increment_hops(&mut frag), Ok(1));
        assert_eq!(frag[15], 1);
        assert!(increment_hops(&mut [0u8; 4]).is_err());
    }
}
