//! The small fixed-layout payloads: ERROR (spec §8.2), WHOIS (§8.4), RENDEZVOUS (§8.5),
//! PUSH_DIRECT_PATHS (§8.11), QOS_MEASUREMENT (§8.13), USER_MESSAGE (§8.15).

use crate::Address;
use crate::error::{ProtocolError, Result};
use crate::header::Verb;
use crate::inet::{read_inet, write_inet};
use crate::network::{Mac, MulticastGroup, NetworkId};
use crate::wire::{Reader, WriteExt};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// ERROR codes (spec §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub u8);

impl ErrorCode {
    pub const NONE: ErrorCode = ErrorCode(0);
    pub const INVALID_REQUEST: ErrorCode = ErrorCode(1);
    pub const BAD_PROTOCOL_VERSION: ErrorCode = ErrorCode(2);
    pub const OBJ_NOT_FOUND: ErrorCode = ErrorCode(3);
    pub const IDENTITY_COLLISION: ErrorCode = ErrorCode(4);
    pub const UNSUPPORTED_OPERATION: ErrorCode = ErrorCode(5);
    pub const NEED_MEMBERSHIP_CERTIFICATE: ErrorCode = ErrorCode(6);
    pub const NETWORK_ACCESS_DENIED: ErrorCode = ErrorCode(7);
    pub const UNWANTED_MULTICAST: ErrorCode = ErrorCode(8);
    pub const NETWORK_AUTHENTICATION_REQUIRED: ErrorCode = ErrorCode(9);

    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "NONE",
            1 => "INVALID_REQUEST",
            2 => "BAD_PROTOCOL_VERSION",
            3 => "OBJ_NOT_FOUND",
            4 => "IDENTITY_COLLISION",
            5 => "UNSUPPORTED_OPERATION",
            6 => "NEED_MEMBERSHIP_CERTIFICATE",
            7 => "NETWORK_ACCESS_DENIED",
            8 => "UNWANTED_MULTICAST",
            9 => "NETWORK_AUTHENTICATION_REQUIRED",
            _ => "UNKNOWN",
        }
    }

    fn carries_network_id(self) -> bool {
        matches!(self.0, 3 | 5 | 6 | 7 | 8 | 9)
    }
}

/// ERROR payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMessage {
    pub in_re_verb: Verb,
    pub in_re_packet_id: [u8; 8],
    pub code: ErrorCode,
    pub network_id: Option<NetworkId>,
    /// UNWANTED_MULTICAST: the group.
    pub group: Option<MulticastGroup>,
    /// NETWORK_AUTHENTICATION_REQUIRED: optional dictionary text.
    pub dictionary: Option<Vec<u8>>,
}

impl ErrorMessage {
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let in_re_verb = Verb::from_code(r.u8("ERROR in-re verb")?);
        let in_re_packet_id = r.array("ERROR in-re packet id")?;
        let code = ErrorCode(r.u8("ERROR code")?);
        let mut out =
            ErrorMessage { in_re_verb, in_re_packet_id, code, network_id: None, group: None, dictionary: None };
        if code.carries_network_id() && r.remaining() >= 8 {
            out.network_id = Some(NetworkId(r.u64("ERROR network id")?));
            if code == ErrorCode::UNWANTED_MULTICAST && r.remaining() >= 10 {
                let mac = Mac::from_octets(r.array("ERROR multicast MAC")?);
                out.group = Some(MulticastGroup { mac, adi: r.u32("ERROR multicast ADI")? });
            }
            if code == ErrorCode::NETWORK_AUTHENTICATION_REQUIRED && r.remaining() >= 2 {
                let len = r.u16("ERROR dictionary length")? as usize;
                out.dictionary = Some(r.take(len, "ERROR dictionary")?.to_vec());
            }
        }
        Ok(out)
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.in_re_verb.code());
        out.put_slice(&self.in_re_packet_id);
        out.put_u8(self.code.0);
        if let Some(n) = self.network_id {
            out.put_u64(n.0);
            if let Some(g) = &self.group {
                out.put_slice(&g.mac.octets());
                out.put_u32(g.adi);
            }
            if let Some(d) = &self.dictionary {
                out.put_u16(d.len() as u16);
                out.put_slice(d);
            }
        }
    }
}

/// WHOIS: one or more addresses.
pub fn decode_whois(payload: &[u8]) -> Result<Vec<Address>> {
    if payload.is_empty() || !payload.len().is_multiple_of(5) {
        return Err(ProtocolError::InvalidValue { what: "WHOIS payload length", value: payload.len() as u64 });
    }
    let mut r = Reader::new(payload);
    let mut out = Vec::with_capacity(payload.len() / 5);
    while !r.is_empty() {
        out.push(r.address("WHOIS address")?);
    }
    Ok(out)
}

pub fn encode_whois(addresses: &[Address], out: &mut Vec<u8>) {
    for a in addresses {
        out.put_address(a);
    }
}

/// RENDEZVOUS: introduction of a peer at a physical address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendezvous {
    pub flags: u8,
    pub peer: Address,
    pub address: SocketAddr,
}

impl Rendezvous {
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let flags = r.u8("RENDEZVOUS flags")?;
        let peer = r.address("RENDEZVOUS peer")?;
        let port = r.u16("RENDEZVOUS port")?;
        let ip = match r.u8("RENDEZVOUS address length")? {
            4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>("RENDEZVOUS IPv4")?)),
            16 => IpAddr::V6(Ipv6Addr::from(r.array::<16>("RENDEZVOUS IPv6")?)),
            other => {
                return Err(ProtocolError::InvalidValue { what: "RENDEZVOUS address length", value: other as u64 });
            }
        };
        Ok(Self { flags, peer, address: SocketAddr::new(ip, port) })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.flags);
        out.put_address(&self.peer);
        out.put_u16(self.address.port());
        match self.address.ip() {
            IpAddr::V4(a) => {
                out.put_u8(4);
                out.put_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                out.put_u8(16);
                out.put_slice(&a.octets());
            }
        }
    }
}

/// One PUSH_DIRECT_PATHS record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectPath {
    /// 0x01 forget, 0x02 cluster redirect.
    pub flags: u8,
    pub extension: Vec<u8>,
    /// None for address types we do not know (skipped by length).
    pub address: Option<SocketAddr>,
}

/// Upper bound on records in one push.
pub const MAX_DIRECT_PATHS: usize = 256;

pub fn decode_push_direct_paths(payload: &[u8]) -> Result<Vec<DirectPath>> {
    let mut r = Reader::new(payload);
    let count = r.u16("PUSH_DIRECT_PATHS count")? as usize;
    if count > MAX_DIRECT_PATHS {
        return Err(ProtocolError::TooLarge { what: "direct paths", value: count, limit: MAX_DIRECT_PATHS });
    }
    // Each path takes at least 5 bytes: never reserve for more than the payload can hold.
    let mut out = Vec::with_capacity(count.min(r.remaining() / 5));
    for _ in 0..count {
        let flags = r.u8("path flags")?;
        let ext_len = r.u16("path extension length")? as usize;
        let extension = r.take(ext_len, "path extension")?.to_vec();
        let kind = r.u8("path address type")?;
        let len = r.u8("path address length")? as usize;
        let body = r.take(len, "path address")?;
        let address = match (kind, len) {
            (4, 6) => Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(body[0], body[1], body[2], body[3])),
                u16::from_be_bytes([body[4], body[5]]),
            )),
            (6, 18) => {
                let mut ip = [0u8; 16];
                ip.copy_from_slice(&body[..16]);
                Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), u16::from_be_bytes([body[16], body[17]])))
            }
            _ => None,
        };
        out.push(DirectPath { flags, extension, address });
    }
    Ok(out)
}

pub fn encode_push_direct_paths(paths: &[DirectPath], out: &mut Vec<u8>) {
    out.put_u16(paths.len() as u16);
    for p in paths {
        out.put_u8(p.flags);
        out.put_u16(p.extension.len() as u16);
        out.put_slice(&p.extension);
        match &p.address {
            Some(SocketAddr::V4(a)) => {
                out.put_u8(4);
                out.put_u8(6);
                out.put_slice(&a.ip().octets());
                out.put_u16(a.port());
            }
            Some(SocketAddr::V6(a)) => {
                out.put_u8(6);
                out.put_u8(18);
                out.put_slice(&a.ip().octets());
                out.put_u16(a.port());
            }
            None => {
                out.put_u8(0);
                out.put_u8(0);
            }
        }
    }
}

/// One QoS record: the wire packet ID it refers to and the holding time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QosRecord {
    /// Wire-order packet ID (the sender writes the big-endian-decoded u64 little-endian; we
    /// reverse it back).
    pub packet_id: [u8; 8],
    pub holding_ms: u16,
}

/// `ZT_QOS_TABLE_SIZE`.
pub const QOS_MAX_RECORDS: usize = 140;
/// Accepted payload sizes.
pub const QOS_MIN_PAYLOAD: usize = 9;
pub const QOS_MAX_PAYLOAD: usize = 1400;

pub fn decode_qos(payload: &[u8]) -> Result<Vec<QosRecord>> {
    if !(QOS_MIN_PAYLOAD..=QOS_MAX_PAYLOAD).contains(&payload.len()) {
        return Err(ProtocolError::InvalidValue {
            what: "QOS_MEASUREMENT payload length",
            value: payload.len() as u64,
        });
    }
    let mut out = Vec::new();
    for rec in payload.chunks_exact(10).take(QOS_MAX_RECORDS) {
        let mut id = [0u8; 8];
        id.copy_from_slice(&rec[..8]);
        id.reverse();
        out.push(QosRecord { packet_id: id, holding_ms: u16::from_le_bytes([rec[8], rec[9]]) });
    }
    Ok(out)
}

pub fn encode_qos(records: &[QosRecord], out: &mut Vec<u8>) {
    for rec in records.iter().take(QOS_MAX_RECORDS) {
        let mut id = rec.packet_id;
        id.reverse();
        out.put_slice(&id);
        out.extend_from_slice(&rec.holding_ms.to_le_bytes());
    }
}

/// A ztplane path acknowledgement, carried in the payload of ACK (0x12).
///
/// zerotier-one 1.14.1 accepts ACK and ignores its payload (`_doACK` has its body commented
/// out; bonding spec §4.3), so these reach a zerotier-one peer harmlessly and two ztplane nodes
/// find each other by receiving one. Layout, big-endian: magic `ZTPA` ‖ version 1 ‖ flags ‖ data
/// packets received on the path (u64) ‖ their bytes (u64) ‖ wire ID of the newest (8) ‖
/// microseconds it was held before this ack (u32) = 34 bytes. The 4-byte ACK of zerotier-one 1.6
/// can never match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathAck {
    /// [`PathAck::FAST`] and future bits.
    pub flags: u8,
    pub received_count: u64,
    pub received_bytes: u64,
    pub newest_packet_id: [u8; 8],
    pub holding_us: u32,
}

impl PathAck {
    pub const MAGIC: [u8; 4] = *b"ZTPA";
    pub const VERSION: u8 = 1;
    pub const LEN: usize = 34;
    /// The sender knows the receiver acks too and acks every path at the short interval: the
    /// receiver may treat a late ack as evidence of a dead path.
    pub const FAST: u8 = 0x01;

    /// `None` for any other ACK payload (zerotier-one's, or a later version of ours).
    pub fn decode(payload: &[u8]) -> Option<Self> {
        if payload.len() != Self::LEN || payload[..4] != Self::MAGIC || payload[4] != Self::VERSION {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(payload[i..i + 8].try_into().unwrap_or([0; 8]));
        Some(PathAck {
            flags: payload[5],
            received_count: u64_at(6),
            received_bytes: u64_at(14),
            newest_packet_id: payload[22..30].try_into().unwrap_or([0; 8]),
            holding_us: u32::from_be_bytes(payload[30..34].try_into().unwrap_or([0; 4])),
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_slice(&Self::MAGIC);
        out.put_u8(Self::VERSION);
        out.put_u8(self.flags);
        out.put_u64(self.received_count);
        out.put_u64(self.received_bytes);
        out.put_slice(&self.newest_packet_id);
        out.put_u32(self.holding_us);
    }
}

/// USER_MESSAGE: application type ID and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMessage {
    pub type_id: u64,
    pub data: Vec<u8>,
}

impl UserMessage {
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let type_id = r.u64("USER_MESSAGE type")?;
        Ok(Self { type_id, data: r.take_rest().to_vec() })
    }
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.type_id);
        out.put_slice(&self.data);
    }
}

/// Read an `InetAddress` with the "port" as prefix length (netconf `I`, `RT`).
pub fn read_prefix(r: &mut Reader<'_>) -> Result<Option<(IpAddr, u16)>> {
    Ok(read_inet(r)?.map(|s| (s.ip(), s.port())))
}

pub fn write_prefix(out: &mut Vec<u8>, p: Option<(IpAddr, u16)>) {
    let sa = p.map(|(ip, bits)| SocketAddr::new(ip, bits));
    write_inet(out, sa.as_ref());
}
