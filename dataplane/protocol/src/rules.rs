//! The VL2 rules engine: rule-list codec and frame filtering (spec `zerotier-vl2.md` §6; upstream
//! `Capability.hpp: serializeRules/deserializeRules`, `Network.cpp: _doZtFilter, filterOutgoingPacket,
//! filterIncomingPacket`).
//!
//! * Encoding (§6.1): [`decode_rules`] / [`encode_rules`] for the netconf `R` value, [`capability_rules`] for
//!   the rule list inside a capability (layout §3.7). A rule is `type ‖ u8 len ‖ value`; the type byte carries
//!   NOT (0x80), OR (0x40) and the 6-bit type.
//! * Evaluation (§6.2): [`evaluate`] runs one rule list over one frame (the upstream `_doZtFilter`); it is pure
//!   and allocation-free — tags, certificates of ownership and randomness come in through [`TagSource`],
//!   [`OwnershipSource`] and a `FnMut() -> u32`.
//! * Outer procedures (§6.2 "Result"): [`filter_outbound`] and [`filter_inbound`] try the network's rules,
//!   then capabilities on NO MATCH, and say what to do with the frame, its TEE/WATCH copies and a REDIRECT.
//!
//! # What is implemented, and how the rest behaves (§6.3)
//!
//! Every action (0–6) and every match type (24–51) is implemented as 1.14.1 evaluates it, so no known type
//! fails closed. Reserved actions (7–15) are no-ops, reserved matches (16–23, 52–63) give `m` = config flag
//! 0x08 ([`FilterContext::unknown_match_true`]), and every type is skipped by its `len`, as upstream does.
//! Three corners of upstream cannot be reproduced byte for byte; they are decided as follows:
//!
//! * IPv4 prefix lengths > 32 and IPv6 prefix lengths > 128 are undefined behaviour in upstream (shift count
//!   out of range); we reproduce what the x86-64 build does (the shift count is taken modulo the word size).
//! * CHARACTERISTICS on IPv4/TCP reads the TCP flag bytes without a bounds check upstream; bytes past the end
//!   of the payload read as 0 here.
//! * A capability whose last rules are shorter than their fields, so that upstream would read the fields from
//!   bytes *after* the capability, makes [`capability_rules`] fail; a capability that cannot be decoded must
//!   not be applied, which fails closed (a capability can only grant: accept or redirect).
//!
//! # Where the spec is terse, upstream 1.14.1 decides (and the tests pin it)
//!
//! * Short values of known types: fields are read from the start of the value *through the following bytes
//!   of the list* (the next rule, or for a capability the custody chain), as upstream's bounds-checked buffer
//!   reads do; if the list ends first the whole list is rejected (upstream then rejects the config). A final
//!   value whose `len` runs past the end is accepted when its fields fit. Longer values are read from their
//!   start and skipped by `len`. Re-encoding always writes the canonical length (as upstream).
//! * More than 1 024 rules: the rest is ignored, as upstream does (not an error).
//! * "Cannot apply" (`m` chosen so the result is false whatever NOT says) covers: IPv4/IPv6 address, TOS,
//!   protocol rules on other ethertypes or short headers; ICMP on non-ICMP or a *different type*; port ranges
//!   on non-IP or an unparseable IPv6 chain; tag-pair rules (44–48) when we lack our tag, TAG_SENDER/RECEIVER
//!   when the compared tag is missing on the strict side. Two results are **true whatever
//!   NOT says**: ICMP with the right type and flag 0x01 clear, and a peer's unknown tag on the lenient side
//!   (which also sets `skipDrop`).
//! * Port ranges: IPv4 TCP/UDP/SCTP/UDP-Lite need more than `header + 4` bytes; port 0 can match on IPv4.
//! * Tags: the lenient "peer tag unknown" branch also applies inbound once `superAccept` is set. TAG_SENDER
//!   inbound / TAG_RECEIVER outbound compare the peer's tag (lenient outbound, strict inbound);
//!   TAG_SENDER outbound / TAG_RECEIVER inbound compare our own tag; with `superAccept` both are true and set
//!   `skipDrop`. AND/OR/XOR need `(ours op theirs) == value`.
//! * IPv6 prefix: the packet address is masked, the rule address is **not** (a rule address with host bits
//!   set never matches); IPv4 compares both shifted.
//! * INTEGER_RANGE: `bytes = ceil(bits / 8)`; big-endian reads `bytes` bytes at `offset + 8 − bytes` (the
//!   offset names an 8-byte window, the integer is right-aligned in it) and keeps the low `bits`;
//!   little-endian reads `bytes` bytes at `offset` and keeps the high `bits` of the little-endian value. Past
//!   the end of the payload the integer is 0 (not "cannot apply"). The end bound is `start + ((end − start)
//!   mod 2³²)` (wrapping), since upstream stores it as a 32-bit difference.
//! * PRIORITY accepts (never super-accepts) with QoS bucket 0; TEE/WATCH to address 0 clears the pending copy
//!   (upstream sends no copy to 0); REDIRECT to 0 behaves as ACCEPT in the outer procedures.

use crate::Address;
use crate::credentials::Capability;
use crate::error::{ProtocolError, Result};
use crate::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::network::Mac;
use crate::wire::{Reader, WriteExt, address_from_u64};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `ZT_MAX_NETWORK_RULES`: rules kept from a netconf `R` value (later ones are ignored).
pub const MAX_NETWORK_RULES: usize = 1024;

/// Type byte: NOT bit (inverts a match).
pub const RULE_NOT: u8 = 0x80;
/// Type byte: OR bit (the match is OR-ed into the set instead of AND-ed).
pub const RULE_OR: u8 = 0x40;
/// Highest action type (`ZT_NETWORK_RULE_ACTION__MAX_ID`); 0..=15 are actions, 16..=63 matches.
pub const ACTION_MAX_ID: u8 = 15;

/// CHARACTERISTICS bits (§6.2; `ZT_RULE_PACKET_CHARACTERISTICS_*`).
pub const CHAR_INBOUND: u64 = 1 << 63;
pub const CHAR_MULTICAST: u64 = 1 << 62;
pub const CHAR_BROADCAST: u64 = 1 << 61;
pub const CHAR_SENDER_IP_AUTHENTICATED: u64 = 1 << 60;
pub const CHAR_SENDER_MAC_AUTHENTICATED: u64 = 1 << 59;
pub const CHAR_TCP_NS: u64 = 0x100;
pub const CHAR_TCP_CWR: u64 = 0x80;
pub const CHAR_TCP_ECE: u64 = 0x40;
pub const CHAR_TCP_URG: u64 = 0x20;
pub const CHAR_TCP_ACK: u64 = 0x10;
pub const CHAR_TCP_PSH: u64 = 0x08;
pub const CHAR_TCP_RST: u64 = 0x04;
pub const CHAR_TCP_SYN: u64 = 0x02;
pub const CHAR_TCP_FIN: u64 = 0x01;

/// Wire type codes (§6.1 table).
pub mod code {
    pub const ACTION_DROP: u8 = 0;
    pub const ACTION_ACCEPT: u8 = 1;
    pub const ACTION_TEE: u8 = 2;
    pub const ACTION_WATCH: u8 = 3;
    pub const ACTION_REDIRECT: u8 = 4;
    pub const ACTION_BREAK: u8 = 5;
    pub const ACTION_PRIORITY: u8 = 6;
    pub const MATCH_SOURCE_ZEROTIER_ADDRESS: u8 = 24;
    pub const MATCH_DEST_ZEROTIER_ADDRESS: u8 = 25;
    pub const MATCH_VLAN_ID: u8 = 26;
    pub const MATCH_VLAN_PCP: u8 = 27;
    pub const MATCH_VLAN_DEI: u8 = 28;
    pub const MATCH_MAC_SOURCE: u8 = 29;
    pub const MATCH_MAC_DEST: u8 = 30;
    pub const MATCH_IPV4_SOURCE: u8 = 31;
    pub const MATCH_IPV4_DEST: u8 = 32;
    pub const MATCH_IPV6_SOURCE: u8 = 33;
    pub const MATCH_IPV6_DEST: u8 = 34;
    pub const MATCH_IP_TOS: u8 = 35;
    pub const MATCH_IP_PROTOCOL: u8 = 36;
    pub const MATCH_ETHERTYPE: u8 = 37;
    pub const MATCH_ICMP: u8 = 38;
    pub const MATCH_IP_SOURCE_PORT_RANGE: u8 = 39;
    pub const MATCH_IP_DEST_PORT_RANGE: u8 = 40;
    pub const MATCH_CHARACTERISTICS: u8 = 41;
    pub const MATCH_FRAME_SIZE_RANGE: u8 = 42;
    pub const MATCH_RANDOM: u8 = 43;
    pub const MATCH_TAGS_DIFFERENCE: u8 = 44;
    pub const MATCH_TAGS_BITWISE_AND: u8 = 45;
    pub const MATCH_TAGS_BITWISE_OR: u8 = 46;
    pub const MATCH_TAGS_BITWISE_XOR: u8 = 47;
    pub const MATCH_TAGS_EQUAL: u8 = 48;
    pub const MATCH_TAG_SENDER: u8 = 49;
    pub const MATCH_TAG_RECEIVER: u8 = 50;
    pub const MATCH_INTEGER_RANGE: u8 = 51;
}

/// Value of TEE / WATCH / REDIRECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Forward {
    /// The wire u64; only its low 40 bits are the target (upstream masks on every use). Kept whole so
    /// re-encoding is lossless.
    pub address: u64,
    /// Carried but not interpreted by 1.14.1.
    pub flags: u32,
    /// TEE/WATCH: bytes of the payload to copy, 0 = all (unused for REDIRECT).
    pub length: u16,
}

impl Forward {
    /// The target address (low 40 bits of [`Forward::address`]).
    pub fn target(&self) -> Address {
        address_from_u64(self.address)
    }
}

/// Value of the seven tag matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TagMatch {
    pub id: u32,
    pub value: u32,
}

/// What a rule does, with its typed value (§6.1 table). One variant per wire type; reserved types keep their
/// code and value bytes so every wire rule has exactly one representation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// 0.
    Drop,
    /// 1.
    Accept,
    /// 2.
    Tee(Forward),
    /// 3.
    Watch(Forward),
    /// 4.
    Redirect(Forward),
    /// 5.
    Break,
    /// 6. 1.14.1 writes and reads no bucket byte (any value bytes are skipped).
    Priority,
    /// 7..=15: no-op when reached. `code` must be in that range and `value` at most 255 bytes (the encoder
    /// cuts it there).
    ReservedAction { code: u8, value: Vec<u8> },
    /// 24.
    SourceZeroTierAddress(Address),
    /// 25.
    DestZeroTierAddress(Address),
    /// 26.
    VlanId(u16),
    /// 27.
    VlanPcp(u8),
    /// 28.
    VlanDei(u8),
    /// 29.
    MacSource(Mac),
    /// 30.
    MacDest(Mac),
    /// 31.
    Ipv4Source { ip: Ipv4Addr, bits: u8 },
    /// 32.
    Ipv4Dest { ip: Ipv4Addr, bits: u8 },
    /// 33.
    Ipv6Source { ip: Ipv6Addr, bits: u8 },
    /// 34.
    Ipv6Dest { ip: Ipv6Addr, bits: u8 },
    /// 35: `(tos & mask)` in `[low, high]`.
    IpTos { mask: u8, low: u8, high: u8 },
    /// 36.
    IpProtocol(u8),
    /// 37.
    Ethertype(u16),
    /// 38: flag 0x01 = compare the code too.
    Icmp { icmp_type: u8, code: u8, flags: u8 },
    /// 39.
    SourcePortRange { low: u16, high: u16 },
    /// 40.
    DestPortRange { low: u16, high: u16 },
    /// 41: `m = (cf & mask) != 0`.
    Characteristics(u64),
    /// 42: payload length in `[low, high]`.
    FrameSizeRange { low: u16, high: u16 },
    /// 43: fresh random u32 ≤ probability.
    Random(u32),
    /// 44: `|ours − theirs| ≤ value`.
    TagsDifference(TagMatch),
    /// 45: `(ours & theirs) == value`.
    TagsBitwiseAnd(TagMatch),
    /// 46: `(ours | theirs) == value`.
    TagsBitwiseOr(TagMatch),
    /// 47: `(ours ^ theirs) == value`.
    TagsBitwiseXor(TagMatch),
    /// 48: both equal `value`.
    TagsEqual(TagMatch),
    /// 49: the sender's tag equals `value`.
    TagSender(TagMatch),
    /// 50: the receiver's tag equals `value`.
    TagReceiver(TagMatch),
    /// 51: `end` is absolute as on the wire; see the module doc for the exact read.
    IntegerRange { start: u64, end: u64, offset: u16, format: u8 },
    /// 16..=23 and 52..=63: `m` = config flag 0x08. Same constraints as [`RuleKind::ReservedAction`].
    ReservedMatch { code: u8, value: Vec<u8> },
}

impl RuleKind {
    /// The 6-bit wire type.
    pub fn code(&self) -> u8 {
        use code::*;
        match self {
            RuleKind::Drop => ACTION_DROP,
            RuleKind::Accept => ACTION_ACCEPT,
            RuleKind::Tee(_) => ACTION_TEE,
            RuleKind::Watch(_) => ACTION_WATCH,
            RuleKind::Redirect(_) => ACTION_REDIRECT,
            RuleKind::Break => ACTION_BREAK,
            RuleKind::Priority => ACTION_PRIORITY,
            RuleKind::ReservedAction { code, .. } | RuleKind::ReservedMatch { code, .. } => *code & 0x3f,
            RuleKind::SourceZeroTierAddress(_) => MATCH_SOURCE_ZEROTIER_ADDRESS,
            RuleKind::DestZeroTierAddress(_) => MATCH_DEST_ZEROTIER_ADDRESS,
            RuleKind::VlanId(_) => MATCH_VLAN_ID,
            RuleKind::VlanPcp(_) => MATCH_VLAN_PCP,
            RuleKind::VlanDei(_) => MATCH_VLAN_DEI,
            RuleKind::MacSource(_) => MATCH_MAC_SOURCE,
            RuleKind::MacDest(_) => MATCH_MAC_DEST,
            RuleKind::Ipv4Source { .. } => MATCH_IPV4_SOURCE,
            RuleKind::Ipv4Dest { .. } => MATCH_IPV4_DEST,
            RuleKind::Ipv6Source { .. } => MATCH_IPV6_SOURCE,
            RuleKind::Ipv6Dest { .. } => MATCH_IPV6_DEST,
            RuleKind::IpTos { .. } => MATCH_IP_TOS,
            RuleKind::IpProtocol(_) => MATCH_IP_PROTOCOL,
            RuleKind::Ethertype(_) => MATCH_ETHERTYPE,
            RuleKind::Icmp { .. } => MATCH_ICMP,
            RuleKind::SourcePortRange { .. } => MATCH_IP_SOURCE_PORT_RANGE,
            RuleKind::DestPortRange { .. } => MATCH_IP_DEST_PORT_RANGE,
            RuleKind::Characteristics(_) => MATCH_CHARACTERISTICS,
            RuleKind::FrameSizeRange { .. } => MATCH_FRAME_SIZE_RANGE,
            RuleKind::Random(_) => MATCH_RANDOM,
            RuleKind::TagsDifference(_) => MATCH_TAGS_DIFFERENCE,
            RuleKind::TagsBitwiseAnd(_) => MATCH_TAGS_BITWISE_AND,
            RuleKind::TagsBitwiseOr(_) => MATCH_TAGS_BITWISE_OR,
            RuleKind::TagsBitwiseXor(_) => MATCH_TAGS_BITWISE_XOR,
            RuleKind::TagsEqual(_) => MATCH_TAGS_EQUAL,
            RuleKind::TagSender(_) => MATCH_TAG_SENDER,
            RuleKind::TagReceiver(_) => MATCH_TAG_RECEIVER,
            RuleKind::IntegerRange { .. } => MATCH_INTEGER_RANGE,
        }
    }

    /// Actions are types 0..=15.
    pub fn is_action(&self) -> bool {
        self.code() <= ACTION_MAX_ID
    }

    /// Read the value of a rule of type `code` (6 bits). `tail` starts at the value and runs to the end of
    /// the list, so fields of a short value are read from the following bytes as upstream does; `len` is the
    /// declared value length.
    fn decode(code: u8, tail: &[u8], len: usize) -> Result<Self> {
        use code::*;
        let mut r = Reader::new(tail);
        let fwd = |r: &mut Reader<'_>| -> Result<Forward> {
            Ok(Forward {
                address: r.u64("rule forward address")?,
                flags: r.u32("rule flags")?,
                length: r.u16("rule length")?,
            })
        };
        let tag = |r: &mut Reader<'_>| -> Result<TagMatch> {
            Ok(TagMatch { id: r.u32("rule tag id")?, value: r.u32("rule tag value")? })
        };
        let v4 = |r: &mut Reader<'_>| -> Result<(Ipv4Addr, u8)> {
            Ok((Ipv4Addr::from(r.array::<4>("rule IPv4")?), r.u8("rule IPv4 prefix")?))
        };
        let v6 = |r: &mut Reader<'_>| -> Result<(Ipv6Addr, u8)> {
            Ok((Ipv6Addr::from(r.array::<16>("rule IPv6")?), r.u8("rule IPv6 prefix")?))
        };
        let range =
            |r: &mut Reader<'_>| -> Result<(u16, u16)> { Ok((r.u16("rule range low")?, r.u16("rule range high")?)) };
        Ok(match code {
            ACTION_DROP => RuleKind::Drop,
            ACTION_ACCEPT => RuleKind::Accept,
            ACTION_TEE => RuleKind::Tee(fwd(&mut r)?),
            ACTION_WATCH => RuleKind::Watch(fwd(&mut r)?),
            ACTION_REDIRECT => RuleKind::Redirect(fwd(&mut r)?),
            ACTION_BREAK => RuleKind::Break,
            ACTION_PRIORITY => RuleKind::Priority,
            MATCH_SOURCE_ZEROTIER_ADDRESS => RuleKind::SourceZeroTierAddress(r.address("rule address")?),
            MATCH_DEST_ZEROTIER_ADDRESS => RuleKind::DestZeroTierAddress(r.address("rule address")?),
            MATCH_VLAN_ID => RuleKind::VlanId(r.u16("rule VLAN id")?),
            MATCH_VLAN_PCP => RuleKind::VlanPcp(r.u8("rule VLAN PCP")?),
            MATCH_VLAN_DEI => RuleKind::VlanDei(r.u8("rule VLAN DEI")?),
            MATCH_MAC_SOURCE => RuleKind::MacSource(Mac::from_octets(r.array("rule MAC")?)),
            MATCH_MAC_DEST => RuleKind::MacDest(Mac::from_octets(r.array("rule MAC")?)),
            MATCH_IPV4_SOURCE => {
                let (ip, bits) = v4(&mut r)?;
                RuleKind::Ipv4Source { ip, bits }
            }
            MATCH_IPV4_DEST => {
                let (ip, bits) = v4(&mut r)?;
                RuleKind::Ipv4Dest { ip, bits }
            }
            MATCH_IPV6_SOURCE => {
                let (ip, bits) = v6(&mut r)?;
                RuleKind::Ipv6Source { ip, bits }
            }
            MATCH_IPV6_DEST => {
                let (ip, bits) = v6(&mut r)?;
                RuleKind::Ipv6Dest { ip, bits }
            }
            MATCH_IP_TOS => RuleKind::IpTos {
                mask: r.u8("rule TOS mask")?,
                low: r.u8("rule TOS low")?,
                high: r.u8("rule TOS high")?,
            },
            MATCH_IP_PROTOCOL => RuleKind::IpProtocol(r.u8("rule IP protocol")?),
            MATCH_ETHERTYPE => RuleKind::Ethertype(r.u16("rule ethertype")?),
            MATCH_ICMP => RuleKind::Icmp {
                icmp_type: r.u8("rule ICMP type")?,
                code: r.u8("rule ICMP code")?,
                flags: r.u8("rule ICMP flags")?,
            },
            MATCH_IP_SOURCE_PORT_RANGE => {
                let (low, high) = range(&mut r)?;
                RuleKind::SourcePortRange { low, high }
            }
            MATCH_IP_DEST_PORT_RANGE => {
                let (low, high) = range(&mut r)?;
                RuleKind::DestPortRange { low, high }
            }
            MATCH_CHARACTERISTICS => RuleKind::Characteristics(r.u64("rule characteristics")?),
            MATCH_FRAME_SIZE_RANGE => {
                let (low, high) = range(&mut r)?;
                RuleKind::FrameSizeRange { low, high }
            }
            MATCH_RANDOM => RuleKind::Random(r.u32("rule probability")?),
            MATCH_TAGS_DIFFERENCE => RuleKind::TagsDifference(tag(&mut r)?),
            MATCH_TAGS_BITWISE_AND => RuleKind::TagsBitwiseAnd(tag(&mut r)?),
            MATCH_TAGS_BITWISE_OR => RuleKind::TagsBitwiseOr(tag(&mut r)?),
            MATCH_TAGS_BITWISE_XOR => RuleKind::TagsBitwiseXor(tag(&mut r)?),
            MATCH_TAGS_EQUAL => RuleKind::TagsEqual(tag(&mut r)?),
            MATCH_TAG_SENDER => RuleKind::TagSender(tag(&mut r)?),
            MATCH_TAG_RECEIVER => RuleKind::TagReceiver(tag(&mut r)?),
            MATCH_INTEGER_RANGE => RuleKind::IntegerRange {
                start: r.u64("rule integer range start")?,
                end: r.u64("rule integer range end")?,
                offset: r.u16("rule integer range offset")?,
                format: r.u8("rule integer range format")?,
            },
            _ => {
                // Reserved: keep what is there of the value (a final value may run past the end).
                let value = tail[..len.min(tail.len())].to_vec();
                if code <= ACTION_MAX_ID {
                    RuleKind::ReservedAction { code, value }
                } else {
                    RuleKind::ReservedMatch { code, value }
                }
            }
        })
    }

    /// Append `u8 len ‖ value` (canonical length; reserved values are cut at 255 bytes).
    fn encode_value(&self, out: &mut Vec<u8>) {
        match self {
            RuleKind::Drop | RuleKind::Accept | RuleKind::Break | RuleKind::Priority => out.put_u8(0),
            RuleKind::Tee(f) | RuleKind::Watch(f) | RuleKind::Redirect(f) => {
                out.put_u8(14);
                out.put_u64(f.address);
                out.put_u32(f.flags);
                out.put_u16(f.length);
            }
            RuleKind::ReservedAction { value, .. } | RuleKind::ReservedMatch { value, .. } => {
                let value = &value[..value.len().min(255)];
                out.put_u8(value.len() as u8);
                out.put_slice(value);
            }
            RuleKind::SourceZeroTierAddress(a) | RuleKind::DestZeroTierAddress(a) => {
                out.put_u8(5);
                out.put_address(a);
            }
            RuleKind::VlanId(v) => {
                out.put_u8(2);
                out.put_u16(*v);
            }
            RuleKind::VlanPcp(v) | RuleKind::VlanDei(v) | RuleKind::IpProtocol(v) => {
                out.put_u8(1);
                out.put_u8(*v);
            }
            RuleKind::MacSource(m) | RuleKind::MacDest(m) => {
                out.put_u8(6);
                out.put_slice(&m.octets());
            }
            RuleKind::Ipv4Source { ip, bits } | RuleKind::Ipv4Dest { ip, bits } => {
                out.put_u8(5);
                out.put_slice(&ip.octets());
                out.put_u8(*bits);
            }
            RuleKind::Ipv6Source { ip, bits } | RuleKind::Ipv6Dest { ip, bits } => {
                out.put_u8(17);
                out.put_slice(&ip.octets());
                out.put_u8(*bits);
            }
            RuleKind::IpTos { mask, low, high } => {
                out.put_u8(3);
                out.put_slice(&[*mask, *low, *high]);
            }
            RuleKind::Ethertype(v) => {
                out.put_u8(2);
                out.put_u16(*v);
            }
            RuleKind::Icmp { icmp_type, code, flags } => {
                out.put_u8(3);
                out.put_slice(&[*icmp_type, *code, *flags]);
            }
            RuleKind::SourcePortRange { low, high }
            | RuleKind::DestPortRange { low, high }
            | RuleKind::FrameSizeRange { low, high } => {
                out.put_u8(4);
                out.put_u16(*low);
                out.put_u16(*high);
            }
            RuleKind::Characteristics(v) => {
                out.put_u8(8);
                out.put_u64(*v);
            }
            RuleKind::Random(v) => {
                out.put_u8(4);
                out.put_u32(*v);
            }
            RuleKind::TagsDifference(t)
            | RuleKind::TagsBitwiseAnd(t)
            | RuleKind::TagsBitwiseOr(t)
            | RuleKind::TagsBitwiseXor(t)
            | RuleKind::TagsEqual(t)
            | RuleKind::TagSender(t)
            | RuleKind::TagReceiver(t) => {
                out.put_u8(8);
                out.put_u32(t.id);
                out.put_u32(t.value);
            }
            RuleKind::IntegerRange { start, end, offset, format } => {
                out.put_u8(19);
                out.put_u64(*start);
                out.put_u64(*end);
                out.put_u16(*offset);
                out.put_u8(*format);
            }
        }
    }
}

/// One rule: the NOT/OR bits of its type byte and what it does. NOT/OR are kept on actions too (they are
/// ignored there) so that decoding and re-encoding preserve the type byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub not: bool,
    pub or: bool,
    pub kind: RuleKind,
}

impl Rule {
    /// A plain rule (no NOT, no OR).
    pub fn new(kind: RuleKind) -> Self {
        Rule { not: false, or: false, kind }
    }

    /// The wire type byte.
    pub fn type_byte(&self) -> u8 {
        (if self.not { RULE_NOT } else { 0 }) | (if self.or { RULE_OR } else { 0 }) | self.kind.code()
    }

    /// Append `type ‖ len ‖ value`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.type_byte());
        self.kind.encode_value(out);
    }
}

/// Decode a rule list (§6.1), e.g. the netconf `R` value. At most [`MAX_NETWORK_RULES`] rules are kept; the
/// rest is ignored, as upstream does. Errors when the list ends inside a type/length pair or before the fields
/// of a known type (upstream rejects the whole config then).
pub fn decode_rules(bytes: &[u8]) -> Result<Vec<Rule>> {
    decode_rule_list(bytes, MAX_NETWORK_RULES)
}

/// Upstream `deserializeRules`: read rules while fewer than `max` are read and bytes remain.
fn decode_rule_list(bytes: &[u8], max: usize) -> Result<Vec<Rule>> {
    let mut rules = Vec::new();
    let mut p = 0usize;
    while rules.len() < max && p < bytes.len() {
        let t = bytes[p];
        let len = *bytes.get(p + 1).ok_or(ProtocolError::Truncated { what: "rule length", needed: 1, available: 0 })?
            as usize;
        let tail = &bytes[p + 2..];
        let kind = RuleKind::decode(t & 0x3f, tail, len)?;
        rules.push(Rule { not: t & RULE_NOT != 0, or: t & RULE_OR != 0, kind });
        p += 2 + len;
    }
    Ok(rules)
}

/// Encode a rule list (canonical lengths, as upstream `serializeRules`).
pub fn encode_rules(rules: &[Rule], out: &mut Vec<u8>) {
    for rule in rules {
        rule.encode(out);
    }
}

/// Bytes before the rules of a serialized capability: `nwid ‖ ts ‖ u32 id ‖ u16 ruleCount` (§3.7).
const CAPABILITY_RULES_OFFSET: usize = 8 + 8 + 4 + 2;

/// The rule list of a capability (§3.7), decoded from [`Capability::raw`]; `rule_count` rules are read, fields
/// of short values running into the custody chain as upstream. Errors if a value's fields would lie beyond the
/// capability (upstream would read the next credential): such a capability must not be applied.
pub fn capability_rules(cap: &Capability) -> Result<Vec<Rule>> {
    let body = cap.raw.get(CAPABILITY_RULES_OFFSET..).ok_or(ProtocolError::Truncated {
        what: "capability header",
        needed: CAPABILITY_RULES_OFFSET,
        available: cap.raw.len(),
    })?;
    let want = cap.rule_count as usize;
    let rules = decode_rule_list(body, want)?;
    if rules.len() != want {
        return Err(ProtocolError::Truncated { what: "capability rules", needed: want, available: rules.len() });
    }
    Ok(rules)
}

// ---------------------------------------------------------------------------------------------------------
// Evaluation (§6.2)
// ---------------------------------------------------------------------------------------------------------

/// One frame as the filter sees it (upstream `_doZtFilter` arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo<'a> {
    /// Received from a peer (inbound) or from our tap (outbound).
    pub inbound: bool,
    /// Sending node: us outbound, the peer inbound.
    pub zt_source: Address,
    /// Receiving node; 0 when an outbound multicast is filtered once before choosing recipients.
    pub zt_dest: Address,
    pub mac_source: Mac,
    /// Also decides the CHARACTERISTICS multicast (group bit) and broadcast (ff:…:ff) bits.
    pub mac_dest: Mac,
    pub ethertype: u16,
    /// Always 0 in 1.14.1 (VL2 carries no VLAN tag); VLAN_ID rules compare with it.
    pub vlan_id: u16,
    /// The Ethernet payload (no Ethernet header).
    pub payload: &'a [u8],
}

impl<'a> FrameInfo<'a> {
    /// A frame `from` a peer to `to` (us), VLAN 0 as in 1.14.1.
    pub fn inbound(
        from: Address,
        to: Address,
        mac_source: Mac,
        mac_dest: Mac,
        ethertype: u16,
        payload: &'a [u8],
    ) -> Self {
        FrameInfo { inbound: true, zt_source: from, zt_dest: to, mac_source, mac_dest, ethertype, vlan_id: 0, payload }
    }

    /// A frame from us (`from`) to peer `to`, VLAN 0 as in 1.14.1.
    pub fn outbound(
        from: Address,
        to: Address,
        mac_source: Mac,
        mac_dest: Mac,
        ethertype: u16,
        payload: &'a [u8],
    ) -> Self {
        FrameInfo { inbound: false, ..Self::inbound(from, to, mac_source, mac_dest, ethertype, payload) }
    }
}

/// Tags for the tag matches. Only valid tags count (timestamp within the config's max delta, not revoked —
/// §3.4); that filtering is the caller's.
pub trait TagSource {
    /// Our own tag `id` (from our network config).
    fn ours(&self, id: u32) -> Option<u32>;
    /// The peer's tag `id`: the destination's outbound (none when the destination is 0), the sender's inbound.
    fn theirs(&self, id: u32) -> Option<u32>;
}

/// Certificates of ownership for the CHARACTERISTICS "sender authenticated" bits (§6.2).
/// Inbound: whether the sending peer holds a valid COO for the address, or (IPs) the address lies in the
/// network's NDP-emulated prefix; outbound: whether one of **our** COOs owns it.
pub trait OwnershipSource {
    fn owns_ip(&self, ip: IpAddr) -> bool;
    fn owns_mac(&self, mac: Mac) -> bool;
}

/// No tags at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTags;

impl TagSource for NoTags {
    fn ours(&self, _id: u32) -> Option<u32> {
        None
    }
    fn theirs(&self, _id: u32) -> Option<u32> {
        None
    }
}

/// No certificates of ownership (default controller networks have COOs, but with no CHARACTERISTICS rule
/// they are never asked about).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOwnership;

impl OwnershipSource for NoOwnership {
    fn owns_ip(&self, _ip: IpAddr) -> bool {
        false
    }
    fn owns_mac(&self, _mac: Mac) -> bool {
        false
    }
}

/// What the filter knows besides the frame.
#[derive(Clone, Copy)]
pub struct FilterContext<'a> {
    /// Our address (TEE/WATCH/REDIRECT naming us).
    pub me: Address,
    pub tags: &'a dyn TagSource,
    pub ownership: &'a dyn OwnershipSource,
    /// Network config flag 0x08 (`ZT_NETWORKCONFIG_FLAG_RULES_RESULT_OF_UNSUPPORTED_MATCH`): `m` of reserved
    /// match types.
    pub unknown_match_true: bool,
}

/// Result of one rule list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Drop,
    Accept,
    /// Accept skipping the MAC/bridging checks (inbound, we are a TEE/WATCH/REDIRECT target).
    SuperAccept,
    /// Send the frame to this node instead (as EXT_FRAME) and drop it locally. May be 0 (see module doc).
    Redirect(Address),
    /// End of the list or BREAK.
    NoMatch,
}

/// A pending TEE/WATCH copy (sent as EXT_FRAME only if the frame is accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tee {
    /// Never 0.
    pub target: Address,
    /// Payload bytes to copy: the rule's length capped at the payload length, or all of it if the rule says 0.
    pub length: usize,
    /// WATCH rather than TEE (EXT_FRAME flags 0x16/0x1c instead of 0x02/0x08).
    pub watch: bool,
}

/// Result of [`evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    pub verdict: Verdict,
    /// The last TEE/WATCH taken (upstream keeps one: a later one replaces it), whatever the verdict.
    pub tee: Option<Tee>,
    /// Set by PRIORITY: the QoS bucket (always 0 in 1.14.1, which carries no bucket byte).
    pub qos_bucket: Option<u8>,
}

/// Result of one match: a plain `m` (NOT applies) or a result forced whatever NOT says.
#[derive(Clone, Copy)]
enum M {
    Is(bool),
    /// Cannot apply: the rule's result is false.
    HardNo,
    /// The rule's result is true.
    HardYes,
}

impl From<bool> for M {
    fn from(b: bool) -> Self {
        M::Is(b)
    }
}

/// Per-frame facts computed at most once per evaluation.
struct Lazy<'f> {
    frame: &'f FrameInfo<'f>,
    ipv6: Option<Option<(usize, u8)>>,
    ownership: Option<u64>,
}

impl<'f> Lazy<'f> {
    fn ipv6_payload(&mut self) -> Option<(usize, u8)> {
        *self.ipv6.get_or_insert_with(|| ipv6_payload(self.frame.payload))
    }
}

/// Upstream `_ipv6GetPayload`: skip hop-by-hop (0), routing (43), destination options (60) and mobility (135)
/// headers; `(offset of the upper-layer header, its protocol)`, or `None` if the chain is cut or overruns.
fn ipv6_payload(p: &[u8]) -> Option<(usize, u8)> {
    if p.len() < 40 {
        return None;
    }
    let mut pos = 40usize;
    let mut proto = p[6];
    while pos <= p.len() {
        match proto {
            0 | 43 | 60 | 135 => {
                if pos + 8 > p.len() {
                    return None;
                }
                proto = p[pos];
                pos += (p[pos + 1] as usize) * 8 + 8;
            }
            _ => return Some((pos, proto)),
        }
    }
    None
}

fn be16(p: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([p[at], p[at + 1]])
}

/// IPv4 prefix containment as upstream `InetAddress::containsAddress`: both sides shifted right by
/// `32 − bits`; 0 bits contains everything; > 32 bits takes the shift count modulo 32 (x86-64 behaviour of
/// upstream's undefined shift).
fn ipv4_contains(rule: Ipv4Addr, bits: u8, addr: [u8; 4]) -> bool {
    if bits == 0 {
        return true;
    }
    let shift = 32u32.wrapping_sub(bits as u32) & 31;
    (u32::from_be_bytes(addr) >> shift) == (u32::from(rule) >> shift)
}

/// IPv6 prefix containment as upstream: `(addr & netmask(bits)) == rule` (the rule address itself is not
/// masked). Shift counts beyond the word size follow x86-64 (modulo 64).
fn ipv6_contains(rule: Ipv6Addr, bits: u8, addr: [u8; 16]) -> bool {
    let bits = bits as u32;
    let mask = if bits == 0 {
        0u128
    } else {
        let hi = if bits >= 64 { u64::MAX } else { u64::MAX << (64 - bits) };
        let lo = if bits <= 64 { 0 } else { u64::MAX << (128u32.wrapping_sub(bits) & 63) };
        ((hi as u128) << 64) | lo as u128
    };
    (u128::from_be_bytes(addr) & mask) == u128::from(rule)
}

fn ipv4_at(p: &[u8], at: usize) -> [u8; 4] {
    [p[at], p[at + 1], p[at + 2], p[at + 3]]
}

fn ipv6_at(p: &[u8], at: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&p[at..at + 16]);
    a
}

/// Evaluate one rule list over one frame (§6.2; upstream `_doZtFilter`). Pure and allocation-free; `random`
/// is called once per RANDOM rule reached.
pub fn evaluate(
    rules: &[Rule],
    ctx: &FilterContext<'_>,
    frame: &FrameInfo<'_>,
    random: &mut dyn FnMut() -> u32,
) -> Evaluation {
    let mut set = true;
    let mut skip_drop = false;
    let mut super_accept = false;
    let mut tee: Option<Tee> = None;
    let mut lazy = Lazy { frame, ipv6: None, ownership: None };
    let done = |verdict: Verdict, tee: Option<Tee>| Evaluation { verdict, tee, qos_bucket: None };

    for rule in rules {
        // Actions ------------------------------------------------------------------------------------------
        if rule.kind.is_action() {
            if set {
                match &rule.kind {
                    RuleKind::Priority => return Evaluation { verdict: Verdict::Accept, tee, qos_bucket: Some(0) },
                    RuleKind::Drop => {
                        if skip_drop {
                            skip_drop = false;
                            continue;
                        }
                        return done(Verdict::Drop, tee);
                    }
                    RuleKind::Accept => {
                        return done(if super_accept { Verdict::SuperAccept } else { Verdict::Accept }, tee);
                    }
                    RuleKind::Tee(f) | RuleKind::Watch(f) | RuleKind::Redirect(f) => {
                        let target = f.target();
                        if target == frame.zt_source {
                            // no-op: the source is the target
                        } else if target == ctx.me {
                            if frame.inbound {
                                return done(Verdict::SuperAccept, tee);
                            }
                        } else if target == frame.zt_dest {
                            // no-op: already going there
                        } else if let RuleKind::Redirect(_) = rule.kind {
                            return done(Verdict::Redirect(target), tee);
                        } else {
                            let length = match f.length {
                                0 => frame.payload.len(),
                                n => frame.payload.len().min(n as usize),
                            };
                            let watch = matches!(rule.kind, RuleKind::Watch(_));
                            tee = (target.as_u64() != 0).then_some(Tee { target, length, watch });
                        }
                        continue;
                    }
                    RuleKind::Break => return done(Verdict::NoMatch, tee),
                    _ => continue, // reserved actions are no-ops
                }
            } else {
                if frame.inbound
                    && let RuleKind::Tee(f) | RuleKind::Watch(f) | RuleKind::Redirect(f) = &rule.kind
                    && f.target() == ctx.me
                {
                    super_accept = true;
                }
                set = true;
                continue;
            }
        }

        // Matches ------------------------------------------------------------------------------------------
        if !set && !rule.or {
            continue;
        }
        let result = match match_rule(&rule.kind, ctx, frame, &mut lazy, super_accept, &mut skip_drop, random) {
            M::Is(m) => m ^ rule.not,
            M::HardNo => false,
            M::HardYes => true,
        };
        if rule.or {
            set |= result;
        } else {
            set &= result;
        }
    }
    done(Verdict::NoMatch, tee)
}

fn match_rule(
    kind: &RuleKind,
    ctx: &FilterContext<'_>,
    frame: &FrameInfo<'_>,
    lazy: &mut Lazy<'_>,
    super_accept: bool,
    skip_drop: &mut bool,
    random: &mut dyn FnMut() -> u32,
) -> M {
    let p = frame.payload;
    let len = p.len();
    let is_v4 = frame.ethertype == ETHERTYPE_IPV4 && len >= 20;
    let is_v6 = frame.ethertype == ETHERTYPE_IPV6;
    let is_v6_40 = is_v6 && len >= 40;
    match kind {
        RuleKind::SourceZeroTierAddress(a) => (*a == frame.zt_source).into(),
        RuleKind::DestZeroTierAddress(a) => (*a == frame.zt_dest).into(),
        RuleKind::VlanId(v) => (*v == frame.vlan_id).into(),
        RuleKind::VlanPcp(v) | RuleKind::VlanDei(v) => (*v == 0).into(),
        RuleKind::MacSource(m) => (*m == frame.mac_source).into(),
        RuleKind::MacDest(m) => (*m == frame.mac_dest).into(),
        RuleKind::Ipv4Source { ip, bits } if is_v4 => ipv4_contains(*ip, *bits, ipv4_at(p, 12)).into(),
        RuleKind::Ipv4Dest { ip, bits } if is_v4 => ipv4_contains(*ip, *bits, ipv4_at(p, 16)).into(),
        RuleKind::Ipv6Source { ip, bits } if is_v6_40 => ipv6_contains(*ip, *bits, ipv6_at(p, 8)).into(),
        RuleKind::Ipv6Dest { ip, bits } if is_v6_40 => ipv6_contains(*ip, *bits, ipv6_at(p, 24)).into(),
        RuleKind::Ipv4Source { .. } | RuleKind::Ipv4Dest { .. } => M::HardNo,
        RuleKind::Ipv6Source { .. } | RuleKind::Ipv6Dest { .. } => M::HardNo,
        RuleKind::IpTos { mask, low, high } => {
            let tos = if is_v4 {
                p[1]
            } else if is_v6_40 {
                ((p[0] << 4) & 0xf0) | ((p[1] >> 4) & 0x0f)
            } else {
                return M::HardNo;
            };
            let t = tos & mask;
            (t >= *low && t <= *high).into()
        }
        RuleKind::IpProtocol(proto) => {
            if is_v4 {
                (p[9] == *proto).into()
            } else if is_v6 {
                match lazy.ipv6_payload() {
                    Some((_, next)) => (next == *proto).into(),
                    None => M::HardNo,
                }
            } else {
                M::HardNo
            }
        }
        RuleKind::Ethertype(e) => (*e == frame.ethertype).into(),
        RuleKind::Icmp { icmp_type, code, flags } => {
            let at = if is_v4 {
                let ihl = ((p[0] & 0x0f) as usize) * 4;
                if p[9] != 1 || len < ihl + 2 {
                    return M::HardNo;
                }
                ihl
            } else if is_v6 {
                match lazy.ipv6_payload() {
                    Some((pos, 58)) if len >= pos + 2 => pos,
                    _ => return M::HardNo,
                }
            } else {
                return M::HardNo;
            };
            if p[at] != *icmp_type {
                M::HardNo
            } else if flags & 0x01 != 0 {
                (p[at + 1] == *code).into()
            } else {
                M::HardYes
            }
        }
        RuleKind::SourcePortRange { low, high } | RuleKind::DestPortRange { low, high } => {
            let dest = matches!(kind, RuleKind::DestPortRange { .. });
            let port_at = |at: usize, proto: u8| -> Option<u16> {
                match proto {
                    6 | 17 | 132 | 136 if len > at + 4 => Some(be16(p, at + if dest { 2 } else { 0 })),
                    _ => None,
                }
            };
            if is_v4 {
                let port = port_at(((p[0] & 0x0f) as usize) * 4, p[9]);
                port.is_some_and(|x| x >= *low && x <= *high).into()
            } else if is_v6 {
                match lazy.ipv6_payload() {
                    Some((pos, proto)) => port_at(pos, proto).is_some_and(|x| x > 0 && x >= *low && x <= *high).into(),
                    None => M::HardNo,
                }
            } else {
                M::HardNo
            }
        }
        RuleKind::Characteristics(mask) => ((characteristics(ctx, frame, lazy) & mask) != 0).into(),
        RuleKind::FrameSizeRange { low, high } => (len >= *low as usize && len <= *high as usize).into(),
        RuleKind::Random(prob) => (random() <= *prob).into(),
        RuleKind::TagsDifference(t)
        | RuleKind::TagsBitwiseAnd(t)
        | RuleKind::TagsBitwiseOr(t)
        | RuleKind::TagsBitwiseXor(t)
        | RuleKind::TagsEqual(t) => {
            let Some(ours) = ctx.tags.ours(t.id) else { return M::HardNo };
            match ctx.tags.theirs(t.id) {
                Some(theirs) => match kind {
                    RuleKind::TagsDifference(_) => (ours.abs_diff(theirs) <= t.value).into(),
                    RuleKind::TagsBitwiseAnd(_) => ((ours & theirs) == t.value).into(),
                    RuleKind::TagsBitwiseOr(_) => ((ours | theirs) == t.value).into(),
                    RuleKind::TagsBitwiseXor(_) => ((ours ^ theirs) == t.value).into(),
                    _ => (ours == t.value && theirs == t.value).into(),
                },
                None if frame.inbound && !super_accept => M::HardNo,
                None => {
                    // Lenient: outbound we may not know the receiver's tags yet (it filters inbound), and a
                    // TEE/REDIRECT target likely lacks them.
                    *skip_drop = true;
                    M::HardYes
                }
            }
        }
        RuleKind::TagSender(t) | RuleKind::TagReceiver(t) => {
            let sender = matches!(kind, RuleKind::TagSender(_));
            if super_accept {
                *skip_drop = true;
                M::HardYes
            } else if sender == frame.inbound {
                // The peer's tag: the sender inbound, the receiver outbound.
                match ctx.tags.theirs(t.id) {
                    Some(v) => (v == t.value).into(),
                    None if !sender => {
                        *skip_drop = true;
                        M::HardYes
                    }
                    None => M::HardNo,
                }
            } else {
                match ctx.tags.ours(t.id) {
                    Some(v) => (v == t.value).into(),
                    None => M::HardNo,
                }
            }
        }
        RuleKind::IntegerRange { start, end, offset, format } => {
            let value = integer_at(p, *offset, *format);
            let last = start.wrapping_add(end.wrapping_sub(*start) as u32 as u64);
            (value >= *start && value <= last).into()
        }
        RuleKind::ReservedMatch { .. } => ctx.unknown_match_true.into(),
        // Actions never get here.
        RuleKind::Drop
        | RuleKind::Accept
        | RuleKind::Tee(_)
        | RuleKind::Watch(_)
        | RuleKind::Redirect(_)
        | RuleKind::Break
        | RuleKind::Priority
        | RuleKind::ReservedAction { .. } => M::HardNo,
    }
}

/// The integer an INTEGER_RANGE rule reads (module doc); 0 if it lies beyond the payload.
fn integer_at(p: &[u8], offset: u16, format: u8) -> u64 {
    let bits = (format & 63) as u32 + 1;
    let bytes = bits.div_ceil(8) as usize;
    let mut integer = 0u64;
    if format & 0x80 == 0 {
        let idx = offset as usize + (8 - bytes);
        if let Some(b) = p.get(idx..idx + bytes) {
            for &x in b {
                integer = (integer << 8) | x as u64;
            }
        }
        integer & (u64::MAX >> (64 - bits))
    } else {
        let idx = offset as usize;
        if let Some(b) = p.get(idx..idx + bytes) {
            for &x in b {
                integer = (integer >> 8) | ((x as u64) << 56);
            }
        }
        integer >> (64 - bits)
    }
}

/// The CHARACTERISTICS word `cf` of the frame.
fn characteristics(ctx: &FilterContext<'_>, frame: &FrameInfo<'_>, lazy: &mut Lazy<'_>) -> u64 {
    let p = frame.payload;
    let len = p.len();
    let mut cf = if frame.inbound { CHAR_INBOUND } else { 0 };
    if frame.mac_dest.is_multicast() {
        cf |= CHAR_MULTICAST;
    }
    if frame.mac_dest == Mac::BROADCAST {
        cf |= CHAR_BROADCAST;
    }
    cf |= *lazy.ownership.get_or_insert_with(|| ownership_bits(ctx, frame));
    if frame.ethertype == ETHERTYPE_IPV4 && len >= 20 && p[9] == 6 {
        let h = ((p[0] & 0x0f) as usize) * 4;
        // Unchecked reads upstream; missing bytes count as 0 here.
        cf |= *p.get(h + 13).unwrap_or(&0) as u64;
        cf |= ((*p.get(h + 12).unwrap_or(&0) & 0x0f) as u64) << 8;
    } else if frame.ethertype == ETHERTYPE_IPV6
        && let Some((pos, 6)) = lazy.ipv6_payload()
        && len > pos + 14
    {
        cf |= p[pos + 13] as u64;
        cf |= ((p[pos + 12] & 0x0f) as u64) << 8;
    }
    cf
}

/// SENDER_IP/MAC_AUTHENTICATED: the source IP is IPv4's source, ARP's sender, an NDP neighbour
/// advertisement's target or IPv6's source; a neighbour solicitation always counts as authenticated.
fn ownership_bits(ctx: &FilterContext<'_>, frame: &FrameInfo<'_>) -> u64 {
    let p = frame.payload;
    let len = p.len();
    let mut bits = 0u64;
    let src: Option<IpAddr> = match frame.ethertype {
        ETHERTYPE_IPV4 if len >= 20 => Some(Ipv4Addr::from(ipv4_at(p, 12)).into()),
        ETHERTYPE_IPV6 if len >= 40 => {
            if len >= 64 && p[6] == 58 && (p[40] == 135 || p[40] == 136) {
                if p[40] == 135 {
                    bits |= CHAR_SENDER_IP_AUTHENTICATED;
                    None
                } else {
                    Some(Ipv6Addr::from(ipv6_at(p, 48)).into())
                }
            } else {
                Some(Ipv6Addr::from(ipv6_at(p, 8)).into())
            }
        }
        ETHERTYPE_ARP if len >= 28 => Some(Ipv4Addr::from(ipv4_at(p, 14)).into()),
        _ => None,
    };
    if src.is_some_and(|ip| ctx.ownership.owns_ip(ip)) {
        bits |= CHAR_SENDER_IP_AUTHENTICATED;
    }
    if ctx.ownership.owns_mac(frame.mac_source) {
        bits |= CHAR_SENDER_MAC_AUTHENTICATED;
    }
    bits
}

// ---------------------------------------------------------------------------------------------------------
// Outer procedures (§6.2 "Result")
// ---------------------------------------------------------------------------------------------------------

/// What to do with a filtered frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Drop,
    /// Send it (outbound) / deliver it after the usual MAC and bridging checks (inbound).
    Accept,
    /// Inbound: deliver without the MAC/bridging checks (we are a TEE/WATCH/REDIRECT target).
    SuperAccept,
    /// Send it as EXT_FRAME (flags 0x04 outbound, 0x0a inbound) to this node, never 0, and drop it locally.
    Redirect(Address),
}

/// Result of [`filter_outbound`] / [`filter_inbound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterOutcome {
    pub disposition: Disposition,
    /// TEE/WATCH copies to send as EXT_FRAME (flags 0x02/0x16 outbound, 0x08/0x1c inbound), in upstream's
    /// order: the accepting capability's, then the network rules'. Empty unless the frame was accepted or
    /// redirected.
    pub copies: [Option<Tee>; 2],
    /// Index (into the capability slice) of the capability that accepted, if any.
    pub capability: Option<usize>,
    /// QoS bucket set by a PRIORITY action (outbound).
    pub qos_bucket: Option<u8>,
}

impl FilterOutcome {
    /// Upstream `filterIncomingPacket`'s return: 0 drop (also after a redirect), 1 accept, 2 super-accept.
    pub fn inbound_code(&self) -> u8 {
        match self.disposition {
            Disposition::Drop | Disposition::Redirect(_) => 0,
            Disposition::Accept => 1,
            Disposition::SuperAccept => 2,
        }
    }

    /// Whether the frame itself goes on (upstream `filterOutgoingPacket` returning true / inbound code > 0).
    pub fn passes(&self) -> bool {
        matches!(self.disposition, Disposition::Accept | Disposition::SuperAccept)
    }

    fn dropped(qos_bucket: Option<u8>) -> Self {
        FilterOutcome { disposition: Disposition::Drop, copies: [None, None], capability: None, qos_bucket }
    }
}

/// Outbound filtering (frame from our tap): the network's rules, then on NO MATCH **our** capabilities in ID
/// order, the first accepting one winning; a capability's DROP only ends that capability. Nothing accepting
/// → drop. `frame.inbound` is forced to false.
pub fn filter_outbound<C: AsRef<[Rule]>>(
    network_rules: &[Rule],
    our_capabilities: &[C],
    ctx: &FilterContext<'_>,
    frame: &FrameInfo<'_>,
    random: &mut dyn FnMut() -> u32,
) -> FilterOutcome {
    let frame = FrameInfo { inbound: false, ..*frame };
    filter(network_rules, our_capabilities, ctx, &frame, random)
}

/// Inbound filtering (frame from peer `frame.zt_source`): the network's rules, then on NO MATCH the
/// **sender's** valid capabilities in the order given (upstream walks a hash table; pass them in ID order).
/// [`FilterOutcome::inbound_code`] gives upstream's 0/1/2. `frame.inbound` is forced to true.
pub fn filter_inbound<C: AsRef<[Rule]>>(
    network_rules: &[Rule],
    sender_capabilities: &[C],
    ctx: &FilterContext<'_>,
    frame: &FrameInfo<'_>,
    random: &mut dyn FnMut() -> u32,
) -> FilterOutcome {
    let frame = FrameInfo { inbound: true, ..*frame };
    filter(network_rules, sender_capabilities, ctx, &frame, random)
}

fn filter<C: AsRef<[Rule]>>(
    network_rules: &[Rule],
    capabilities: &[C],
    ctx: &FilterContext<'_>,
    frame: &FrameInfo<'_>,
    random: &mut dyn FnMut() -> u32,
) -> FilterOutcome {
    let base = evaluate(network_rules, ctx, frame, random);
    let mut qos_bucket = base.qos_bucket;
    let mut capability = None;
    let mut cap_tee = None;
    let (accept, final_dest) = match base.verdict {
        Verdict::Drop => return FilterOutcome::dropped(qos_bucket),
        Verdict::Accept => (Disposition::Accept, None),
        Verdict::SuperAccept => (Disposition::SuperAccept, None),
        Verdict::Redirect(t) => (Disposition::Accept, Some(t)),
        Verdict::NoMatch => {
            let mut found = None;
            for (i, cap) in capabilities.iter().enumerate() {
                let e = evaluate(cap.as_ref(), ctx, frame, random);
                qos_bucket = e.qos_bucket.or(qos_bucket);
                let hit = match e.verdict {
                    Verdict::NoMatch | Verdict::Drop => continue,
                    Verdict::Accept => (Disposition::Accept, None),
                    // Outbound upstream maps a capability's super-accept to accept (it cannot occur there).
                    Verdict::SuperAccept if frame.inbound => (Disposition::SuperAccept, None),
                    Verdict::SuperAccept => (Disposition::Accept, None),
                    Verdict::Redirect(t) => (Disposition::Accept, Some(t)),
                };
                capability = Some(i);
                cap_tee = e.tee;
                found = Some(hit);
                break;
            }
            match found {
                Some(hit) => hit,
                None => return FilterOutcome::dropped(qos_bucket),
            }
        }
    };
    let disposition = match final_dest {
        Some(t) if t.as_u64() != 0 && t != frame.zt_dest => Disposition::Redirect(t),
        _ => accept,
    };
    FilterOutcome { disposition, copies: [cap_tee, base.tee], capability, qos_bucket }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Capability;
    use proptest::prelude::*;

    // ---- fixtures -----------------------------------------------------------------------------------------

    fn addr(v: u64) -> Address {
        address_from_u64(v)
    }
    const ME: u64 = 0x11_1111_1111;
    const PEER: u64 = 0x22_2222_2222;
    const OTHER: u64 = 0x33_3333_3333;
    const MAC_ME: u64 = 0x02_11_11_11_11_11;
    const MAC_PEER: u64 = 0x02_22_22_22_22_22;

    fn r(kind: RuleKind) -> Rule {
        Rule::new(kind)
    }
    fn not(kind: RuleKind) -> Rule {
        Rule { not: true, or: false, kind }
    }
    fn or(kind: RuleKind) -> Rule {
        Rule { not: false, or: true, kind }
    }
    fn or_not(kind: RuleKind) -> Rule {
        Rule { not: true, or: true, kind }
    }

    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], tos: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[1] = tos;
        p[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p.extend_from_slice(l4);
        p
    }
    /// TCP header; `flags` bits 0–7 in byte 13, bit 8 (NS) in byte 12.
    fn tcp(sport: u16, dport: u16, flags: u16) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = 0x50 | ((flags >> 8) as u8 & 0x01);
        t[13] = flags as u8;
        t
    }
    fn udp(sport: u16, dport: u16) -> Vec<u8> {
        let mut u = vec![0u8; 8];
        u[0..2].copy_from_slice(&sport.to_be_bytes());
        u[2..4].copy_from_slice(&dport.to_be_bytes());
        u[4..6].copy_from_slice(&8u16.to_be_bytes());
        u
    }
    fn icmp(t: u8, c: u8) -> Vec<u8> {
        vec![t, c, 0, 0, 0, 1, 0, 1]
    }
    fn ipv6(next: u8, src: Ipv6Addr, dst: Ipv6Addr, tclass: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x60 | (tclass >> 4);
        p[1] = tclass << 4;
        p[4..6].copy_from_slice(&(rest.len() as u16).to_be_bytes());
        p[6] = next;
        p[7] = 64;
        p[8..24].copy_from_slice(&src.octets());
        p[24..40].copy_from_slice(&dst.octets());
        p.extend_from_slice(rest);
        p
    }
    /// An extension header of `8 * (ext_len + 1)` bytes.
    fn ext(next: u8, ext_len: u8) -> Vec<u8> {
        let mut e = vec![0u8; 8 * (ext_len as usize + 1)];
        e[0] = next;
        e[1] = ext_len;
        e
    }
    fn arp(sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0, 1, 8, 0, 6, 4, 0, 1];
        p.extend_from_slice(&[2, 0x22, 0x22, 0x22, 0x22, 0x22]);
        p.extend_from_slice(&sender);
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(&target);
        p
    }
    /// ICMPv6 neighbour solicitation (135) or advertisement (136) for `target`.
    fn ndp(kind: u8, src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
        let mut icmp = vec![kind, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&target.octets());
        ipv6(58, src, "ff02::1:ff00:1".parse().unwrap(), 0, &icmp)
    }
    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn frame(ethertype: u16, payload: &[u8]) -> FrameInfo<'_> {
        FrameInfo {
            inbound: false,
            zt_source: addr(ME),
            zt_dest: addr(PEER),
            mac_source: Mac(MAC_ME),
            mac_dest: Mac(MAC_PEER),
            ethertype,
            vlan_id: 0,
            payload,
        }
    }
    fn inbound(f: FrameInfo<'_>) -> FrameInfo<'_> {
        FrameInfo {
            inbound: true,
            zt_source: addr(PEER),
            zt_dest: addr(ME),
            mac_source: Mac(MAC_PEER),
            mac_dest: Mac(MAC_ME),
            ..f
        }
    }

    #[derive(Default)]
    struct Tags {
        ours: Vec<(u32, u32)>,
        theirs: Vec<(u32, u32)>,
    }
    impl TagSource for Tags {
        fn ours(&self, id: u32) -> Option<u32> {
            self.ours.iter().find(|t| t.0 == id).map(|t| t.1)
        }
        fn theirs(&self, id: u32) -> Option<u32> {
            self.theirs.iter().find(|t| t.0 == id).map(|t| t.1)
        }
    }
    #[derive(Default)]
    struct Owns {
        ips: Vec<IpAddr>,
        macs: Vec<Mac>,
    }
    impl OwnershipSource for Owns {
        fn owns_ip(&self, ip: IpAddr) -> bool {
            self.ips.contains(&ip)
        }
        fn owns_mac(&self, mac: Mac) -> bool {
            self.macs.contains(&mac)
        }
    }

    fn ctx<'a>(tags: &'a dyn TagSource, ownership: &'a dyn OwnershipSource, unknown: bool) -> FilterContext<'a> {
        FilterContext { me: addr(ME), tags, ownership, unknown_match_true: unknown }
    }
    fn eval_with(rules: &[Rule], c: &FilterContext<'_>, f: &FrameInfo<'_>) -> Evaluation {
        evaluate(rules, c, f, &mut || 0)
    }
    fn eval(rules: &[Rule], f: &FrameInfo<'_>) -> Verdict {
        eval_with(rules, &ctx(&NoTags, &NoOwnership, false), f).verdict
    }
    /// (result of `[rule, ACCEPT]`, result of `[NOT rule, ACCEPT]`), as accepted?
    fn check_with(kind: &RuleKind, c: &FilterContext<'_>, f: &FrameInfo<'_>) -> (bool, bool) {
        let plain = eval_with(&[r(kind.clone()), r(RuleKind::Accept)], c, f).verdict == Verdict::Accept;
        let negated = eval_with(&[not(kind.clone()), r(RuleKind::Accept)], c, f).verdict == Verdict::Accept;
        (plain, negated)
    }
    fn check(kind: &RuleKind, f: &FrameInfo<'_>) -> (bool, bool) {
        check_with(kind, &ctx(&NoTags, &NoOwnership, false), f)
    }
    const YES: (bool, bool) = (true, false);
    const NO: (bool, bool) = (false, true);
    const CANNOT: (bool, bool) = (false, false);
    const FORCED: (bool, bool) = (true, true);

    fn fwd(a: u64, length: u16) -> Forward {
        Forward { address: a, flags: 0, length }
    }

    // ---- encoding ---------------------------------------------------------------------------------------

    #[test]
    fn spec_examples_round_trip() {
        let accept = [0x01, 0x00];
        assert_eq!(decode_rules(&accept).unwrap(), vec![r(RuleKind::Accept)]);
        let central = [0xa5, 0x02, 0x08, 0x00, 0xa5, 0x02, 0x08, 0x06, 0xa5, 0x02, 0x86, 0xdd, 0x00, 0x00, 0x01, 0x00];
        let rules = decode_rules(&central).unwrap();
        assert_eq!(
            rules,
            vec![
                not(RuleKind::Ethertype(0x0800)),
                not(RuleKind::Ethertype(0x0806)),
                not(RuleKind::Ethertype(0x86dd)),
                r(RuleKind::Drop),
                r(RuleKind::Accept),
            ]
        );
        for bytes in [&accept[..], &central[..]] {
            let mut out = Vec::new();
            encode_rules(&decode_rules(bytes).unwrap(), &mut out);
            assert_eq!(out, bytes);
        }
        assert_eq!(decode_rules(&[]).unwrap(), vec![]);
    }

    #[test]
    fn every_type_has_its_canonical_length() {
        let lens: &[(RuleKind, usize)] = &[
            (RuleKind::Drop, 0),
            (RuleKind::Tee(fwd(1, 2)), 14),
            (RuleKind::Priority, 0),
            (RuleKind::SourceZeroTierAddress(addr(1)), 5),
            (RuleKind::VlanId(1), 2),
            (RuleKind::VlanPcp(1), 1),
            (RuleKind::MacDest(Mac(1)), 6),
            (RuleKind::Ipv4Source { ip: Ipv4Addr::LOCALHOST, bits: 8 }, 5),
            (RuleKind::Ipv6Dest { ip: Ipv6Addr::LOCALHOST, bits: 8 }, 17),
            (RuleKind::IpTos { mask: 1, low: 2, high: 3 }, 3),
            (RuleKind::IpProtocol(6), 1),
            (RuleKind::Ethertype(1), 2),
            (RuleKind::Icmp { icmp_type: 8, code: 0, flags: 1 }, 3),
            (RuleKind::DestPortRange { low: 1, high: 2 }, 4),
            (RuleKind::Characteristics(1), 8),
            (RuleKind::FrameSizeRange { low: 1, high: 2 }, 4),
            (RuleKind::Random(1), 4),
            (RuleKind::TagReceiver(TagMatch { id: 1, value: 2 }), 8),
            (RuleKind::IntegerRange { start: 1, end: 2, offset: 3, format: 4 }, 19),
            (RuleKind::ReservedMatch { code: 60, value: vec![1, 2, 3] }, 3),
        ];
        for (kind, len) in lens {
            let mut out = Vec::new();
            r(kind.clone()).encode(&mut out);
            assert_eq!(out[1] as usize, *len, "{kind:?}");
            assert_eq!(out.len(), 2 + len);
            assert_eq!(decode_rules(&out).unwrap(), vec![r(kind.clone())]);
        }
    }

    #[test]
    fn field_layouts() {
        // TEE: u64 address ‖ u32 flags ‖ u16 length; NOT|OR bits kept.
        let b = [0xc2, 14, 0xff, 0, 0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0, 0, 0, 7, 0x01, 0x00];
        let rules = decode_rules(&b).unwrap();
        let f = Forward { address: 0xff00_0012_3456_789a, flags: 7, length: 256 };
        assert_eq!(rules, vec![Rule { not: true, or: true, kind: RuleKind::Tee(f) }]);
        assert_eq!(f.target(), addr(0x12_3456_789a));
        let mut out = Vec::new();
        encode_rules(&rules, &mut out);
        assert_eq!(out, b);
        // IPv4: address then prefix bits; INTEGER_RANGE: start ‖ end ‖ offset ‖ format.
        let b = [31, 5, 10, 1, 2, 3, 24, 51, 19, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 14, 0x87];
        assert_eq!(
            decode_rules(&b).unwrap(),
            vec![
                r(RuleKind::Ipv4Source { ip: Ipv4Addr::new(10, 1, 2, 3), bits: 24 }),
                r(RuleKind::IntegerRange { start: 1, end: 9, offset: 14, format: 0x87 }),
            ]
        );
    }

    #[test]
    fn unknown_and_reserved_types_are_skipped_by_length() {
        // reserved action 9 with 3 bytes, reserved match 20 with 0, reserved match 60 with 2, then ACCEPT.
        let b = [9, 3, 1, 2, 3, 20, 0, 0x7c, 2, 0xaa, 0xbb, 1, 0];
        let rules = decode_rules(&b).unwrap();
        assert_eq!(
            rules,
            vec![
                r(RuleKind::ReservedAction { code: 9, value: vec![1, 2, 3] }),
                r(RuleKind::ReservedMatch { code: 20, value: vec![] }),
                or(RuleKind::ReservedMatch { code: 60, value: vec![0xaa, 0xbb] }),
                r(RuleKind::Accept),
            ]
        );
        let mut out = Vec::new();
        encode_rules(&rules, &mut out);
        assert_eq!(out, b);
    }

    #[test]
    fn long_values_read_from_start_and_skip() {
        // ETHERTYPE with len 4 (2 extra bytes), ACCEPT with len 1.
        let b = [37, 4, 0x08, 0x00, 0xee, 0xee, 1, 1, 0xee];
        assert_eq!(decode_rules(&b).unwrap(), vec![r(RuleKind::Ethertype(0x0800)), r(RuleKind::Accept)]);
    }

    #[test]
    fn short_values_read_on_like_upstream() {
        // ETHERTYPE with len 1: upstream reads its u16 from the value byte and the next type byte.
        let b = [37, 1, 0x08, 0x01, 0x00];
        assert_eq!(decode_rules(&b).unwrap(), vec![r(RuleKind::Ethertype(0x0801)), r(RuleKind::Accept)]);
        // A final value whose len runs past the end is fine when its fields fit...
        assert_eq!(decode_rules(&[37, 5, 0x86, 0xdd]).unwrap(), vec![r(RuleKind::Ethertype(0x86dd))]);
        assert_eq!(decode_rules(&[1, 9]).unwrap(), vec![r(RuleKind::Accept)]);
        assert_eq!(decode_rules(&[0x3f, 9, 1]).unwrap(), vec![r(RuleKind::ReservedMatch { code: 63, value: vec![1] })]);
        // ...and rejects the list when they do not (upstream throws, the config is refused).
        assert!(decode_rules(&[37, 2, 0x08]).is_err());
        assert!(decode_rules(&[37, 0]).is_err());
        assert!(decode_rules(&[2, 14, 0, 0, 0, 0, 0, 0, 0, 1]).is_err());
        // A lone type byte.
        assert!(decode_rules(&[1, 0, 1]).is_err());
    }

    #[test]
    fn at_most_1024_rules() {
        let bytes: Vec<u8> = std::iter::repeat_n([0u8, 0], 1030).flatten().collect();
        assert_eq!(decode_rules(&bytes).unwrap().len(), MAX_NETWORK_RULES);
    }

    /// A capability as a 1.14.1 controller issues it: chain 1 {to, from}, no extension.
    fn capability_bytes(rules: &[Rule]) -> Vec<u8> {
        let mut b = Vec::new();
        b.put_u64(0x8056_c2e2_1c00_0001);
        b.put_u64(1_700_000_000_000);
        b.put_u32(42);
        b.put_u16(rules.len() as u16);
        encode_rules(rules, &mut b);
        b.put_u8(1);
        b.put_slice(&[0x22, 0x22, 0x22, 0x22, 0x22]);
        b.put_slice(&[0x80, 0x56, 0xc2, 0xe2, 0x1c]);
        b.put_u8(1);
        b.put_u16(96);
        b.put_slice(&[0x5a; 96]);
        b.put_slice(&[0; 5]);
        b.put_u16(0);
        b
    }

    #[test]
    fn capability_rules_from_raw() {
        let rules =
            vec![r(RuleKind::IpProtocol(6)), r(RuleKind::DestPortRange { low: 22, high: 22 }), r(RuleKind::Accept)];
        let bytes = capability_bytes(&rules);
        let cap = Capability::read(&mut Reader::new(&bytes)).unwrap();
        assert_eq!(cap.rule_count, 3);
        assert_eq!(capability_rules(&cap).unwrap(), rules);
        assert_eq!(capability_rules(&Capability::read(&mut Reader::new(&capability_bytes(&[]))).unwrap()), Ok(vec![]));
        // A short last value reads its fields from the custody chain, as upstream.
        let mut short = capability_bytes(&[]);
        short[21] = 1;
        short.splice(22..22, [37u8, 0]);
        let cap = Capability::read(&mut Reader::new(&short)).unwrap();
        assert_eq!(capability_rules(&cap).unwrap(), vec![r(RuleKind::Ethertype(0x0122))]);
        // Fields running past the capability cannot be read: error (the capability is not applied).
        let mut raw = capability_bytes(&[]);
        raw.truncate(CAPABILITY_RULES_OFFSET);
        raw[21] = 1;
        raw.extend_from_slice(&[51, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        let cap = Capability { network_id: crate::network::NetworkId(1), timestamp: 0, id: 1, rule_count: 1, raw };
        assert!(capability_rules(&cap).is_err());
        // Fewer rules than announced, or no header.
        let cap = Capability { rule_count: 2, raw: [&cap.raw[..22], &[1, 0]].concat(), ..cap };
        assert!(capability_rules(&cap).is_err());
        assert!(capability_rules(&Capability { raw: vec![0; 10], ..cap }).is_err());
    }

    // ---- evaluation: actions ----------------------------------------------------------------------------

    fn tcp4() -> Vec<u8> {
        ipv4(6, [10, 0, 0, 1], [10, 0, 0, 2], 0, &tcp(40000, 22, 0x02))
    }

    #[test]
    fn empty_and_basic_actions() {
        let p = tcp4();
        let f = frame(ETHERTYPE_IPV4, &p);
        assert_eq!(eval(&[], &f), Verdict::NoMatch);
        assert_eq!(eval(&[r(RuleKind::Accept)], &f), Verdict::Accept);
        assert_eq!(eval(&[r(RuleKind::Drop), r(RuleKind::Accept)], &f), Verdict::Drop);
        assert_eq!(eval(&[r(RuleKind::Break), r(RuleKind::Accept)], &f), Verdict::NoMatch);
        // NOT/OR bits on actions are ignored.
        assert_eq!(eval(&[not(RuleKind::Accept)], &f), Verdict::Accept);
        // PRIORITY acts as ACCEPT with bucket 0.
        let e = eval_with(&[r(RuleKind::Priority)], &ctx(&NoTags, &NoOwnership, false), &f);
        assert_eq!((e.verdict, e.qos_bucket), (Verdict::Accept, Some(0)));
        // Reserved actions continue, the set staying true.
        let reserved = RuleKind::ReservedAction { code: 12, value: vec![] };
        assert_eq!(eval(&[r(reserved.clone()), r(RuleKind::Accept)], &f), Verdict::Accept);
        assert_eq!(eval(&[r(RuleKind::Ethertype(1)), r(reserved), r(RuleKind::Accept)], &f), Verdict::Accept);
    }

    #[test]
    fn set_resets_after_every_action() {
        let p = tcp4();
        let f = frame(ETHERTYPE_IPV4, &p);
        // Non-matching set, its DROP not taken; the next set (empty) accepts.
        let rules = [r(RuleKind::Ethertype(0x86dd)), r(RuleKind::Drop), r(RuleKind::Accept)];
        assert_eq!(eval(&rules, &f), Verdict::Accept);
        // After a non-terminating action (TEE) the next set starts true: a bare DROP is taken.
        let rules = [r(RuleKind::Ethertype(0x0800)), r(RuleKind::Tee(fwd(OTHER, 0))), r(RuleKind::Drop)];
        assert_eq!(eval(&rules, &f), Verdict::Drop);
    }

    #[test]
    fn tee_watch_redirect_targets() {
        let p = tcp4();
        let out = frame(ETHERTYPE_IPV4, &p);
        let c = ctx(&NoTags, &NoOwnership, false);
        // Third party: TEE remembered (length capped at the payload), evaluation continues.
        let e = eval_with(&[r(RuleKind::Tee(fwd(OTHER, 16))), r(RuleKind::Accept)], &c, &out);
        assert_eq!(e.verdict, Verdict::Accept);
        assert_eq!(e.tee, Some(Tee { target: addr(OTHER), length: 16, watch: false }));
        let e = eval_with(&[r(RuleKind::Watch(fwd(OTHER, 0))), r(RuleKind::Drop)], &c, &out);
        assert_eq!(e.verdict, Verdict::Drop);
        assert_eq!(e.tee, Some(Tee { target: addr(OTHER), length: p.len(), watch: true }));
        let e = eval_with(&[r(RuleKind::Tee(fwd(OTHER, 60_000)))], &c, &out);
        assert_eq!((e.verdict, e.tee.map(|t| t.length)), (Verdict::NoMatch, Some(p.len())));
        // A later TEE replaces an earlier one; TEE to 0 clears it.
        let e = eval_with(&[r(RuleKind::Tee(fwd(OTHER, 0))), r(RuleKind::Watch(fwd(0x44_4444_4444, 0)))], &c, &out);
        assert_eq!(e.tee.map(|t| t.target), Some(addr(0x44_4444_4444)));
        let e = eval_with(&[r(RuleKind::Tee(fwd(OTHER, 0))), r(RuleKind::Tee(fwd(0, 0)))], &c, &out);
        assert_eq!(e.tee, None);
        // Target bits above 40 are ignored.
        let e = eval_with(&[r(RuleKind::Tee(fwd(0xab00_0000_0000_0000 | OTHER, 0)))], &c, &out);
        assert_eq!(e.tee.map(|t| t.target), Some(addr(OTHER)));
        // REDIRECT ends evaluation.
        let rules = [r(RuleKind::Redirect(fwd(OTHER, 0))), r(RuleKind::Drop)];
        assert_eq!(eval(&rules, &out), Verdict::Redirect(addr(OTHER)));
        // Target = source, = destination: no-op.
        for t in [ME, PEER] {
            let e = eval_with(&[r(RuleKind::Redirect(fwd(t, 0))), r(RuleKind::Tee(fwd(t, 0)))], &c, &out);
            assert_eq!((e.verdict, e.tee), (Verdict::NoMatch, None));
        }
        // Target = us: outbound no-op (we are the source anyway); inbound SUPER-ACCEPT at once.
        let inb = inbound(out);
        for kind in [RuleKind::Tee(fwd(ME, 0)), RuleKind::Watch(fwd(ME, 0)), RuleKind::Redirect(fwd(ME, 0))] {
            assert_eq!(eval(&[r(kind.clone()), r(RuleKind::Drop)], &inb), Verdict::SuperAccept);
        }
        // Order: "= source" is checked before "= us" (inbound frame whose source is named).
        assert_eq!(eval(&[r(RuleKind::Redirect(fwd(PEER, 0))), r(RuleKind::Drop)], &inb), Verdict::Drop);
        // Outbound with us as target and as destination (e.g. multicast loop): the "= us" check wins, no-op.
        let to_me = FrameInfo { zt_dest: addr(ME), zt_source: addr(OTHER), ..out };
        assert_eq!(eval(&[r(RuleKind::Redirect(fwd(ME, 0)))], &to_me), Verdict::NoMatch);
    }

    #[test]
    fn unmatched_action_naming_us_sets_super_accept_inbound() {
        let p = tcp4();
        let inb = inbound(frame(ETHERTYPE_IPV4, &p));
        let rules = [
            r(RuleKind::Ethertype(0x86dd)),
            r(RuleKind::Tee(fwd(ME, 0))), // set = 0 here: not taken, but superAccept := 1
            r(RuleKind::Accept),
        ];
        assert_eq!(eval(&rules, &inb), Verdict::SuperAccept);
        // Outbound: nothing.
        assert_eq!(eval(&rules, &frame(ETHERTYPE_IPV4, &p)), Verdict::Accept);
        // Other target: nothing; PRIORITY stays a plain ACCEPT.
        let rules2 = [r(RuleKind::Ethertype(0x86dd)), r(RuleKind::Redirect(fwd(OTHER, 0))), r(RuleKind::Accept)];
        assert_eq!(eval(&rules2, &inb), Verdict::Accept);
        let rules3 = [r(RuleKind::Ethertype(0x86dd)), r(RuleKind::Watch(fwd(ME, 0))), r(RuleKind::Priority)];
        assert_eq!(eval(&rules3, &inb), Verdict::Accept);
    }

    #[test]
    fn skip_drop_skips_exactly_one_drop() {
        let p = tcp4();
        let out = frame(ETHERTYPE_IPV4, &p);
        let tags = Tags { ours: vec![(1, 5)], theirs: vec![] };
        let c = ctx(&tags, &NoOwnership, false);
        let t = TagMatch { id: 1, value: 0 };
        // Peer tag unknown outbound: the match is true and the next DROP is skipped.
        let rules = [r(RuleKind::TagsDifference(t)), r(RuleKind::Drop), r(RuleKind::Accept)];
        assert_eq!(eval_with(&rules, &c, &out).verdict, Verdict::Accept);
        let rules = [r(RuleKind::TagsDifference(t)), r(RuleKind::Drop), r(RuleKind::Drop)];
        assert_eq!(eval_with(&rules, &c, &out).verdict, Verdict::Drop);
        // The skip survives intervening sets until a DROP is reached with set = 1.
        let rules = [r(RuleKind::TagsEqual(t)), r(RuleKind::Accept), r(RuleKind::Drop)];
        assert_eq!(eval_with(&rules, &c, &out).verdict, Verdict::Accept);
        let rules = [
            r(RuleKind::TagsEqual(t)),
            r(RuleKind::Ethertype(1)),
            r(RuleKind::Drop),
            r(RuleKind::Drop),
            r(RuleKind::Accept),
        ];
        assert_eq!(eval_with(&rules, &c, &out).verdict, Verdict::Accept);
    }

    // ---- evaluation: NOT / OR ---------------------------------------------------------------------------

    #[test]
    fn not_and_or_semantics() {
        let p = tcp4();
        let f = frame(ETHERTYPE_IPV4, &p);
        let ip = RuleKind::Ethertype(0x0800);
        let arp_t = RuleKind::Ethertype(0x0806);
        let a = r(RuleKind::Accept);
        assert_eq!(eval(&[r(ip.clone()), a.clone()], &f), Verdict::Accept);
        assert_eq!(eval(&[not(ip.clone()), a.clone()], &f), Verdict::NoMatch);
        assert_eq!(eval(&[r(arp_t.clone()), a.clone()], &f), Verdict::NoMatch);
        assert_eq!(eval(&[not(arp_t.clone()), a.clone()], &f), Verdict::Accept);
        // AND
        assert_eq!(eval(&[r(ip.clone()), r(RuleKind::IpProtocol(6)), a.clone()], &f), Verdict::Accept);
        assert_eq!(eval(&[r(ip.clone()), r(RuleKind::IpProtocol(17)), a.clone()], &f), Verdict::NoMatch);
        // OR rescues a false set (not short-circuited), and cannot un-set a true one.
        assert_eq!(eval(&[r(arp_t.clone()), or(ip.clone()), a.clone()], &f), Verdict::Accept);
        assert_eq!(eval(&[r(arp_t.clone()), or(arp_t.clone()), a.clone()], &f), Verdict::NoMatch);
        assert_eq!(eval(&[r(ip.clone()), or(arp_t.clone()), a.clone()], &f), Verdict::Accept);
        assert_eq!(eval(&[r(arp_t.clone()), or_not(arp_t.clone()), a.clone()], &f), Verdict::Accept);
        // A AND-ed false after an OR: (F or T) and F.
        assert_eq!(eval(&[r(arp_t.clone()), or(ip.clone()), r(arp_t.clone()), a.clone()], &f), Verdict::NoMatch);
        // OR of a cannot-apply match stays false even with NOT.
        let v6src = RuleKind::Ipv6Source { ip: Ipv6Addr::UNSPECIFIED, bits: 0 };
        assert_eq!(eval(&[r(arp_t.clone()), or_not(v6src.clone()), a.clone()], &f), Verdict::NoMatch);
        assert_eq!(eval(&[r(arp_t), or(v6src), a], &f), Verdict::NoMatch);
    }

    #[test]
    fn short_circuit_skips_side_effects() {
        // A skipped AND match does not call the RNG or touch skipDrop.
        let p = tcp4();
        let f = frame(ETHERTYPE_IPV4, &p);
        let c = ctx(&NoTags, &NoOwnership, false);
        let mut calls = 0;
        let rules = [r(RuleKind::Ethertype(1)), r(RuleKind::Random(u32::MAX)), r(RuleKind::Accept)];
        let e = evaluate(&rules, &c, &f, &mut || {
            calls += 1;
            0
        });
        assert_eq!((e.verdict, calls), (Verdict::NoMatch, 0));
        let rules = [r(RuleKind::Ethertype(1)), or(RuleKind::Random(u32::MAX)), r(RuleKind::Accept)];
        let e = evaluate(&rules, &c, &f, &mut || {
            calls += 1;
            0
        });
        assert_eq!((e.verdict, calls), (Verdict::Accept, 1));
    }

    #[test]
    fn central_default_rule_set() {
        let central = decode_rules(&[
            0xa5, 0x02, 0x08, 0x00, 0xa5, 0x02, 0x08, 0x06, 0xa5, 0x02, 0x86, 0xdd, 0x00, 0x00, 0x01, 0x00,
        ])
        .unwrap();
        let v4 = tcp4();
        let a = arp([10, 0, 0, 1], [10, 0, 0, 2]);
        let v6p = ipv6(17, v6("fd00::1"), v6("fd00::2"), 0, &udp(1, 2));
        for (et, p) in [(ETHERTYPE_IPV4, &v4), (ETHERTYPE_ARP, &a), (ETHERTYPE_IPV6, &v6p)] {
            assert_eq!(eval(&central, &frame(et, p)), Verdict::Accept, "{et:#x}");
            assert_eq!(eval(&central, &inbound(frame(et, p))), Verdict::Accept, "{et:#x}");
        }
        for et in [0x88cc, 0x8100, 0x0000, 0x88e5] {
            assert_eq!(eval(&central, &frame(et, &v4)), Verdict::Drop, "{et:#x}");
        }
        // The embedded controller default accepts everything.
        assert_eq!(eval(&decode_rules(&[1, 0]).unwrap(), &frame(0x88cc, &v4)), Verdict::Accept);
    }

    // ---- evaluation: matches ----------------------------------------------------------------------------

    #[test]
    fn address_mac_vlan_ethertype_matches() {
        let p = tcp4();
        let f = frame(ETHERTYPE_IPV4, &p);
        assert_eq!(check(&RuleKind::SourceZeroTierAddress(addr(ME)), &f), YES);
        assert_eq!(check(&RuleKind::SourceZeroTierAddress(addr(PEER)), &f), NO);
        assert_eq!(check(&RuleKind::DestZeroTierAddress(addr(PEER)), &f), YES);
        assert_eq!(check(&RuleKind::DestZeroTierAddress(addr(OTHER)), &f), NO);
        // Outbound multicast filtered once with destination 0.
        let mc = FrameInfo { zt_dest: addr(0), ..f };
        assert_eq!(check(&RuleKind::DestZeroTierAddress(addr(0)), &mc), YES);
        assert_eq!(check(&RuleKind::MacSource(Mac(MAC_ME)), &f), YES);
        assert_eq!(check(&RuleKind::MacSource(Mac(MAC_PEER)), &f), NO);
        assert_eq!(check(&RuleKind::MacDest(Mac(MAC_PEER)), &f), YES);
        assert_eq!(check(&RuleKind::MacDest(Mac::BROADCAST), &f), NO);
        assert_eq!(check(&RuleKind::VlanId(0), &f), YES);
        assert_eq!(check(&RuleKind::VlanId(5), &f), NO);
        assert_eq!(check(&RuleKind::VlanPcp(0), &f), YES);
        assert_eq!(check(&RuleKind::VlanPcp(3), &f), NO);
        assert_eq!(check(&RuleKind::VlanDei(0), &f), YES);
        assert_eq!(check(&RuleKind::VlanDei(1), &f), NO);
        assert_eq!(check(&RuleKind::Ethertype(0x0800), &f), YES);
        assert_eq!(check(&RuleKind::Ethertype(0x86dd), &f), NO);
    }

    #[test]
    fn ipv4_prefix_matches() {
        let p = ipv4(17, [192, 168, 7, 9], [10, 1, 2, 3], 0, &udp(5, 6));
        let f = frame(ETHERTYPE_IPV4, &p);
        let src = |a: [u8; 4], bits| RuleKind::Ipv4Source { ip: Ipv4Addr::from(a), bits };
        let dst = |a: [u8; 4], bits| RuleKind::Ipv4Dest { ip: Ipv4Addr::from(a), bits };
        assert_eq!(check(&src([192, 168, 0, 0], 16), &f), YES);
        assert_eq!(check(&src([192, 168, 7, 9], 32), &f), YES);
        assert_eq!(check(&src([192, 168, 7, 8], 32), &f), NO);
        assert_eq!(check(&src([192, 169, 0, 0], 16), &f), NO);
        // Host bits of the rule address are ignored (both sides shifted).
        assert_eq!(check(&src([192, 168, 99, 99], 16), &f), YES);
        assert_eq!(check(&src([1, 2, 3, 4], 0), &f), YES);
        assert_eq!(check(&dst([10, 0, 0, 0], 8), &f), YES);
        assert_eq!(check(&dst([11, 0, 0, 0], 8), &f), NO);
        // > 32 bits: x86-64 shift (count mod 32): 33 compares the top bit only, 64 compares all bits.
        assert_eq!(check(&src([128, 0, 0, 0], 33), &f), YES);
        assert_eq!(check(&src([0, 0, 0, 0], 33), &f), NO);
        assert_eq!(check(&src([192, 168, 7, 9], 64), &f), YES);
        assert_eq!(check(&src([192, 168, 7, 8], 64), &f), NO);
        // Cannot apply: ARP, IPv6, short IPv4 — false with and without NOT.
        let a = arp([192, 168, 7, 9], [10, 1, 2, 3]);
        assert_eq!(check(&src([192, 168, 0, 0], 16), &frame(ETHERTYPE_ARP, &a)), CANNOT);
        assert_eq!(check(&dst([0, 0, 0, 0], 0), &frame(ETHERTYPE_IPV6, &p)), CANNOT);
        assert_eq!(check(&src([0, 0, 0, 0], 0), &frame(ETHERTYPE_IPV4, &p[..19])), CANNOT);
        assert_eq!(check(&src([192, 168, 0, 0], 16), &frame(ETHERTYPE_IPV4, &p[..20])), YES);
    }

    #[test]
    fn ipv6_prefix_matches() {
        let p = ipv6(6, v6("fd12:3456:789a::1"), v6("2001:db8::42"), 0, &tcp(1, 2, 0x10));
        let f = frame(ETHERTYPE_IPV6, &p);
        let src = |a: &str, bits| RuleKind::Ipv6Source { ip: v6(a), bits };
        let dst = |a: &str, bits| RuleKind::Ipv6Dest { ip: v6(a), bits };
        assert_eq!(check(&src("fd12:3456:789a::", 48), &f), YES);
        assert_eq!(check(&src("fd12:3456:789a::1", 128), &f), YES);
        assert_eq!(check(&src("fd12:3456:789a::2", 128), &f), NO);
        assert_eq!(check(&src("fd12:3456:789b::", 48), &f), NO);
        assert_eq!(check(&src("fd12:3456:7800::", 40), &f), YES);
        assert_eq!(check(&src("fd12:3456:789a::1", 120), &f), NO, "rule host bits set: never matches");
        assert_eq!(check(&src("::", 0), &f), YES);
        assert_eq!(check(&src("fd00::", 0), &f), NO, "rule address not masked upstream");
        assert_eq!(check(&dst("2001:db8::", 32), &f), YES);
        assert_eq!(check(&dst("2001:db9::", 32), &f), NO);
        // > 128 bits: x86-64 shift count (128 - bits) mod 64: 192 is a full mask, 200 keeps 8 low-half bits.
        assert_eq!(check(&dst("2001:db8::42", 192), &f), YES);
        assert_eq!(check(&dst("2001:db8::43", 192), &f), NO);
        assert_eq!(check(&dst("2001:db8::42", 200), &f), NO);
        assert_eq!(check(&dst("2001:db8::", 200), &f), YES);
        // Cannot apply.
        let v4 = tcp4();
        assert_eq!(check(&src("::", 0), &frame(ETHERTYPE_IPV4, &v4)), CANNOT);
        assert_eq!(check(&dst("::", 0), &frame(ETHERTYPE_IPV6, &p[..39])), CANNOT);
    }

    #[test]
    fn tos_and_protocol_matches() {
        let p = ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], 0xb8, &udp(1, 2)); // DSCP EF
        let f = frame(ETHERTYPE_IPV4, &p);
        assert_eq!(check(&RuleKind::IpTos { mask: 0xfc, low: 0xb8, high: 0xb8 }, &f), YES);
        assert_eq!(check(&RuleKind::IpTos { mask: 0xfc, low: 0x00, high: 0xb7 }, &f), NO);
        assert_eq!(check(&RuleKind::IpTos { mask: 0x03, low: 0, high: 0 }, &f), YES);
        let p6 = ipv6(17, v6("::1"), v6("::2"), 0x2e, &udp(1, 2));
        let f6 = frame(ETHERTYPE_IPV6, &p6);
        assert_eq!(check(&RuleKind::IpTos { mask: 0xff, low: 0x2e, high: 0x2e }, &f6), YES);
        assert_eq!(check(&RuleKind::IpTos { mask: 0xff, low: 0x2f, high: 0xff }, &f6), NO);
        let a = arp([1, 1, 1, 1], [2, 2, 2, 2]);
        assert_eq!(check(&RuleKind::IpTos { mask: 0, low: 0, high: 255 }, &frame(ETHERTYPE_ARP, &a)), CANNOT);
        assert_eq!(check(&RuleKind::IpTos { mask: 0, low: 0, high: 255 }, &frame(ETHERTYPE_IPV6, &p6[..39])), CANNOT);

        assert_eq!(check(&RuleKind::IpProtocol(17), &f), YES);
        assert_eq!(check(&RuleKind::IpProtocol(6), &f), NO);
        assert_eq!(check(&RuleKind::IpProtocol(17), &f6), YES);
        assert_eq!(check(&RuleKind::IpProtocol(17), &frame(ETHERTYPE_ARP, &a)), CANNOT);
        assert_eq!(check(&RuleKind::IpProtocol(17), &frame(ETHERTYPE_IPV4, &p[..19])), CANNOT);
        // IPv6 extension headers 0, 43, 60, 135 are skipped; 44 (fragment) is not.
        let chain = [ext(43, 0), ext(60, 1), ext(135, 0), ext(17, 2), udp(1, 2)].concat();
        let p6x = ipv6(0, v6("::1"), v6("::2"), 0, &chain);
        assert_eq!(check(&RuleKind::IpProtocol(17), &frame(ETHERTYPE_IPV6, &p6x)), YES);
        assert_eq!(check(&RuleKind::IpProtocol(0), &frame(ETHERTYPE_IPV6, &p6x)), NO);
        let frag = ipv6(44, v6("::1"), v6("::2"), 0, &[ext(17, 0), udp(1, 2)].concat());
        assert_eq!(check(&RuleKind::IpProtocol(44), &frame(ETHERTYPE_IPV6, &frag)), YES);
        // Chain cut short: cannot apply.
        let cut = ipv6(0, v6("::1"), v6("::2"), 0, &[0u8; 7]);
        assert_eq!(check(&RuleKind::IpProtocol(0), &frame(ETHERTYPE_IPV6, &cut)), CANNOT);
        let over = ipv6(0, v6("::1"), v6("::2"), 0, &ext(17, 3)[..8]);
        assert_eq!(check(&RuleKind::IpProtocol(17), &frame(ETHERTYPE_IPV6, &over)), CANNOT);
        // Ends exactly at the end of the payload: fine (empty upper layer).
        let exact = ipv6(60, v6("::1"), v6("::2"), 0, &ext(59, 0));
        assert_eq!(check(&RuleKind::IpProtocol(59), &frame(ETHERTYPE_IPV6, &exact)), YES);
    }

    #[test]
    fn icmp_matches() {
        let echo = ipv4(1, [1, 1, 1, 1], [2, 2, 2, 2], 0, &icmp(8, 0));
        let f = frame(ETHERTYPE_IPV4, &echo);
        // Type only (flag clear): true whatever NOT says (upstream "hardYes").
        assert_eq!(check(&RuleKind::Icmp { icmp_type: 8, code: 0, flags: 0 }, &f), FORCED);
        // Wrong type: false whatever NOT says.
        assert_eq!(check(&RuleKind::Icmp { icmp_type: 0, code: 0, flags: 0 }, &f), CANNOT);
        // Type and code: NOT applies to the code comparison.
        assert_eq!(check(&RuleKind::Icmp { icmp_type: 8, code: 0, flags: 1 }, &f), YES);
        assert_eq!(check(&RuleKind::Icmp { icmp_type: 8, code: 1, flags: 1 }, &f), NO);
        assert_eq!(check(&RuleKind::Icmp { icmp_type: 0, code: 0, flags: 1 }, &f), CANNOT);
        // ICMP rule on TCP / on ARP / ICMPv4 header cut.
        let t = tcp4();
        assert_eq!(check(&RuleKind::Icmp { icmp_type: 8, code: 0, flags: 1 }, &frame(ETHERTYPE_IPV4, &t)), CANNOT);
        let a = arp([1, 1, 1, 1], [2, 2, 2, 2]);
        assert_eq!(check(&RuleKind::Icmp { icmp_type: 8, code: 0, flags: 1 }, &frame(ETHERTYPE_ARP, &a)), CANNOT);
        assert_eq!(
            check(&RuleKind::Icmp { icmp_type: 8, code: 0, flags: 1 }, &frame(ETHERTYPE_IPV4, &echo[..21])),
            CANNOT
        );
        assert_eq!(
            check(&RuleKind::Icmp { icmp_type: 8, code: 0, flags: 1 }, &frame(ETHERTYPE_IPV4, &echo[..22])),
            YES
        );
        // ICMPv6 (58), also behind extension headers; ICMPv4 type numbers on IPv6 do not apply.
        let e6 = ipv6(58, v6("::1"), v6("::2"), 0, &icmp(128, 0));
        let f6 = frame(ETHERTYPE_IPV6, &e6);
        assert_eq!(check(&RuleKind::Icmp { icmp_type: 128, code: 0, flags: 1 }, &f6), YES);
        assert_eq!(check(&RuleKind::Icmp { icmp_type: 128, code: 3, flags: 1 }, &f6), NO);
        assert_eq!(check(&RuleKind::Icmp { icmp_type: 8, code: 0, flags: 1 }, &f6), CANNOT);
        let e6x = ipv6(0, v6("::1"), v6("::2"), 0, &[ext(58, 0), icmp(135, 0)].concat());
        assert_eq!(check(&RuleKind::Icmp { icmp_type: 135, code: 0, flags: 0 }, &frame(ETHERTYPE_IPV6, &e6x)), FORCED);
        let u6 = ipv6(17, v6("::1"), v6("::2"), 0, &udp(1, 2));
        assert_eq!(check(&RuleKind::Icmp { icmp_type: 0, code: 0, flags: 0 }, &frame(ETHERTYPE_IPV6, &u6)), CANNOT);
        // ICMP protocol 1 carried in IPv6 is not ICMP.
        let p1 = ipv6(1, v6("::1"), v6("::2"), 0, &icmp(8, 0));
        assert_eq!(check(&RuleKind::Icmp { icmp_type: 8, code: 0, flags: 0 }, &frame(ETHERTYPE_IPV6, &p1)), CANNOT);
    }

    #[test]
    fn port_range_matches() {
        let sp = |low, high| RuleKind::SourcePortRange { low, high };
        let dp = |low, high| RuleKind::DestPortRange { low, high };
        for proto in [6u8, 17, 132, 136] {
            let l4 = if proto == 6 { tcp(40000, 22, 0x02) } else { udp(40000, 22) };
            let p = ipv4(proto, [1, 1, 1, 1], [2, 2, 2, 2], 0, &l4);
            let f = frame(ETHERTYPE_IPV4, &p);
            assert_eq!(check(&dp(22, 22), &f), YES, "{proto}");
            assert_eq!(check(&dp(1, 21), &f), NO, "{proto}");
            assert_eq!(check(&sp(32768, 65535), &f), YES, "{proto}");
            assert_eq!(check(&sp(0, 1024), &f), NO, "{proto}");
            let p6 = ipv6(proto, v6("::1"), v6("::2"), 0, &l4);
            let f6 = frame(ETHERTYPE_IPV6, &p6);
            assert_eq!(check(&dp(22, 22), &f6), YES, "{proto}");
            assert_eq!(check(&sp(0, 100), &f6), NO, "{proto}");
        }
        // Other protocols: m = 0, so NOT makes it true.
        let e = ipv4(1, [1, 1, 1, 1], [2, 2, 2, 2], 0, &icmp(8, 0));
        assert_eq!(check(&dp(0, 65535), &frame(ETHERTYPE_IPV4, &e)), NO);
        let e6 = ipv6(58, v6("::1"), v6("::2"), 0, &icmp(128, 0));
        assert_eq!(check(&dp(0, 65535), &frame(ETHERTYPE_IPV6, &e6)), NO);
        // Needs more than header + 4 bytes.
        let short = ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], 0, &udp(7, 9)[..4]);
        assert_eq!(check(&dp(0, 65535), &frame(ETHERTYPE_IPV4, &short)), NO);
        let five = ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], 0, &udp(7, 9)[..5]);
        assert_eq!(check(&dp(9, 9), &frame(ETHERTYPE_IPV4, &five)), YES);
        // IHL is honoured.
        let mut opt = ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], 0, &[[0u8; 4].to_vec(), udp(7, 9)].concat());
        opt[0] = 0x46;
        assert_eq!(check(&sp(7, 7), &frame(ETHERTYPE_IPV4, &opt)), YES);
        // Port 0: matches on IPv4, never on IPv6.
        let z = ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], 0, &udp(0, 0));
        assert_eq!(check(&sp(0, 10), &frame(ETHERTYPE_IPV4, &z)), YES);
        let z6 = ipv6(17, v6("::1"), v6("::2"), 0, &udp(0, 0));
        assert_eq!(check(&sp(0, 10), &frame(ETHERTYPE_IPV6, &z6)), NO);
        // IPv6 behind extension headers.
        let x6 = ipv6(60, v6("::1"), v6("::2"), 0, &[ext(6, 0), tcp(1000, 443, 0x10)].concat());
        assert_eq!(check(&dp(443, 443), &frame(ETHERTYPE_IPV6, &x6)), YES);
        // Cannot apply: ARP, short IPv4, broken IPv6 chain.
        let a = arp([1, 1, 1, 1], [2, 2, 2, 2]);
        assert_eq!(check(&dp(0, 65535), &frame(ETHERTYPE_ARP, &a)), CANNOT);
        assert_eq!(check(&dp(0, 65535), &frame(ETHERTYPE_IPV4, &z[..19])), CANNOT);
        let cut = ipv6(0, v6("::1"), v6("::2"), 0, &[0u8; 4]);
        assert_eq!(check(&dp(0, 65535), &frame(ETHERTYPE_IPV6, &cut)), CANNOT);
    }

    #[test]
    fn characteristics_matches() {
        let ch = RuleKind::Characteristics;
        // TCP flags, including NS from byte 12.
        let syn = ipv4(6, [1, 1, 1, 1], [2, 2, 2, 2], 0, &tcp(1, 2, 0x02));
        let f = frame(ETHERTYPE_IPV4, &syn);
        assert_eq!(check(&ch(CHAR_TCP_SYN), &f), YES);
        assert_eq!(check(&ch(CHAR_TCP_ACK), &f), NO);
        assert_eq!(check(&ch(CHAR_TCP_ACK | CHAR_TCP_SYN), &f), YES, "any bit of the mask");
        let ns = ipv4(6, [1, 1, 1, 1], [2, 2, 2, 2], 0, &tcp(1, 2, 0x111));
        assert_eq!(check(&ch(CHAR_TCP_NS), &frame(ETHERTYPE_IPV4, &ns)), YES);
        assert_eq!(check(&ch(CHAR_TCP_FIN), &frame(ETHERTYPE_IPV4, &ns)), YES);
        assert_eq!(check(&ch(CHAR_TCP_NS), &f), NO);
        let t6 = ipv6(43, v6("::1"), v6("::2"), 0, &[ext(6, 0), tcp(1, 2, 0x14)].concat());
        let f6 = frame(ETHERTYPE_IPV6, &t6);
        assert_eq!(check(&ch(CHAR_TCP_RST), &f6), YES);
        assert_eq!(check(&ch(CHAR_TCP_SYN), &f6), NO);
        // UDP: no TCP flags; truncated IPv4 TCP: missing bytes are 0.
        let u = ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], 0, &[0xff; 20]);
        assert_eq!(check(&ch(0xfff), &frame(ETHERTYPE_IPV4, &u)), NO);
        assert_eq!(check(&ch(0xfff), &frame(ETHERTYPE_IPV4, &syn[..33])), NO);
        // Direction, multicast, broadcast.
        assert_eq!(check(&ch(CHAR_INBOUND), &f), NO);
        assert_eq!(check(&ch(CHAR_INBOUND), &inbound(f)), YES);
        let mc = FrameInfo { mac_dest: Mac(0x3333_ff00_0001), ..f };
        assert_eq!(check(&ch(CHAR_MULTICAST), &mc), YES);
        assert_eq!(check(&ch(CHAR_BROADCAST), &mc), NO);
        let bc = FrameInfo { mac_dest: Mac::BROADCAST, ..f };
        assert_eq!(check(&ch(CHAR_BROADCAST), &bc), YES);
        assert_eq!(check(&ch(CHAR_MULTICAST), &bc), YES);
        assert_eq!(check(&ch(CHAR_MULTICAST | CHAR_BROADCAST), &f), NO);
        // Non-IP frames still have direction bits.
        assert_eq!(check(&ch(CHAR_INBOUND), &inbound(frame(0x88cc, &[]))), YES);
    }

    #[test]
    fn characteristics_sender_authenticated() {
        let ch = RuleKind::Characteristics;
        let ipa = CHAR_SENDER_IP_AUTHENTICATED;
        let maca = CHAR_SENDER_MAC_AUTHENTICATED;
        let owns = Owns {
            ips: vec![IpAddr::from([10, 0, 0, 1]), IpAddr::from(v6("fd00::1")), IpAddr::from(v6("fd00::77"))],
            macs: vec![Mac(MAC_ME)],
        };
        let c = ctx(&NoTags, &owns, false);
        let none = ctx(&NoTags, &NoOwnership, false);
        let v4 = tcp4(); // source 10.0.0.1
        let f = frame(ETHERTYPE_IPV4, &v4);
        assert_eq!(check_with(&ch(ipa), &c, &f), YES);
        assert_eq!(check_with(&ch(maca), &c, &f), YES);
        assert_eq!(check_with(&ch(ipa | maca), &none, &f), NO);
        let other = ipv4(6, [10, 0, 0, 9], [10, 0, 0, 2], 0, &tcp(1, 2, 0));
        assert_eq!(check_with(&ch(ipa), &c, &frame(ETHERTYPE_IPV4, &other)), NO);
        // ARP: the sender IP.
        let a = arp([10, 0, 0, 1], [10, 0, 0, 9]);
        assert_eq!(check_with(&ch(ipa), &c, &frame(ETHERTYPE_ARP, &a)), YES);
        let a2 = arp([10, 0, 0, 9], [10, 0, 0, 1]);
        assert_eq!(check_with(&ch(ipa), &c, &frame(ETHERTYPE_ARP, &a2)), NO);
        // IPv6: the source; NA: the target; NS: always.
        let u6 = ipv6(17, v6("fd00::1"), v6("fd00::2"), 0, &udp(1, 2));
        assert_eq!(check_with(&ch(ipa), &c, &frame(ETHERTYPE_IPV6, &u6)), YES);
        let na = ndp(136, v6("fe80::1"), v6("fd00::77"));
        assert_eq!(na.len(), 64);
        assert_eq!(check_with(&ch(ipa), &c, &frame(ETHERTYPE_IPV6, &na)), YES);
        let na_other = ndp(136, v6("fd00::1"), v6("fd00::78"));
        assert_eq!(check_with(&ch(ipa), &c, &frame(ETHERTYPE_IPV6, &na_other)), NO);
        let ns = ndp(135, v6("::"), v6("fd00::99"));
        assert_eq!(check_with(&ch(ipa), &none, &frame(ETHERTYPE_IPV6, &ns)), YES);
        assert_eq!(check_with(&ch(ipa), &none, &inbound(frame(ETHERTYPE_IPV6, &ns))), YES);
        // A cut NS (< 64 bytes) is an ordinary IPv6 packet: its source decides.
        assert_eq!(check_with(&ch(ipa), &none, &frame(ETHERTYPE_IPV6, &ns[..63])), NO);
        // MAC: the frame's source MAC.
        assert_eq!(check_with(&ch(maca), &c, &inbound(f)), NO);
        assert_eq!(check_with(&ch(maca), &c, &frame(0x88cc, &[])), YES);
    }

    #[test]
    fn frame_size_and_random_matches() {
        let p = vec![0u8; 100];
        let f = frame(0x88b5, &p);
        assert_eq!(check(&RuleKind::FrameSizeRange { low: 100, high: 100 }, &f), YES);
        assert_eq!(check(&RuleKind::FrameSizeRange { low: 0, high: 99 }, &f), NO);
        assert_eq!(check(&RuleKind::FrameSizeRange { low: 101, high: 1500 }, &f), NO);
        assert_eq!(check(&RuleKind::FrameSizeRange { low: 0, high: 0 }, &frame(0x88b5, &[])), YES);
        let c = ctx(&NoTags, &NoOwnership, false);
        let run = |prob: u32, rnd: u32| {
            evaluate(&[r(RuleKind::Random(prob)), r(RuleKind::Accept)], &c, &f, &mut || rnd).verdict
        };
        assert_eq!(run(u32::MAX, u32::MAX), Verdict::Accept);
        assert_eq!(run(0, 0), Verdict::Accept);
        assert_eq!(run(0, 1), Verdict::NoMatch);
        assert_eq!(run(1000, 1000), Verdict::Accept);
        assert_eq!(run(1000, 1001), Verdict::NoMatch);
    }

    #[test]
    fn tag_matches() {
        let p = tcp4();
        let out = frame(ETHERTYPE_IPV4, &p);
        let inb = inbound(out);
        let tags = Tags { ours: vec![(1, 10), (2, 0b1100)], theirs: vec![(1, 13), (2, 0b1010)] };
        let c = ctx(&tags, &NoOwnership, false);
        let t = |id, value| TagMatch { id, value };
        for f in [&out, &inb] {
            assert_eq!(check_with(&RuleKind::TagsDifference(t(1, 3)), &c, f), YES);
            assert_eq!(check_with(&RuleKind::TagsDifference(t(1, 2)), &c, f), NO);
            assert_eq!(check_with(&RuleKind::TagsBitwiseAnd(t(2, 0b1000)), &c, f), YES);
            assert_eq!(check_with(&RuleKind::TagsBitwiseAnd(t(2, 0b0000)), &c, f), NO);
            assert_eq!(check_with(&RuleKind::TagsBitwiseOr(t(2, 0b1110)), &c, f), YES);
            assert_eq!(check_with(&RuleKind::TagsBitwiseOr(t(2, 0b1111)), &c, f), NO);
            assert_eq!(check_with(&RuleKind::TagsBitwiseXor(t(2, 0b0110)), &c, f), YES);
            assert_eq!(check_with(&RuleKind::TagsBitwiseXor(t(2, 0b1110)), &c, f), NO);
            assert_eq!(check_with(&RuleKind::TagsEqual(t(1, 10)), &c, f), NO);
            // We lack the tag: cannot apply.
            assert_eq!(check_with(&RuleKind::TagsEqual(t(9, 0)), &c, f), CANNOT);
        }
        let same = Tags { ours: vec![(1, 10)], theirs: vec![(1, 10)] };
        assert_eq!(check_with(&RuleKind::TagsEqual(t(1, 10)), &ctx(&same, &NoOwnership, false), &out), YES);
        // Peer's tag unknown: inbound false (whatever NOT), outbound true (whatever NOT).
        let mine = Tags { ours: vec![(1, 10)], theirs: vec![] };
        let cm = ctx(&mine, &NoOwnership, false);
        assert_eq!(check_with(&RuleKind::TagsDifference(t(1, 0)), &cm, &inb), CANNOT);
        assert_eq!(check_with(&RuleKind::TagsDifference(t(1, 0)), &cm, &out), FORCED);
        // ...inbound too once superAccept is set.
        let rules = [
            r(RuleKind::Ethertype(1)),
            r(RuleKind::Redirect(fwd(ME, 0))),
            r(RuleKind::TagsEqual(t(1, 10))),
            r(RuleKind::Drop),
            r(RuleKind::Accept),
        ];
        assert_eq!(eval_with(&rules, &cm, &inb).verdict, Verdict::SuperAccept);
    }

    #[test]
    fn tag_sender_receiver_matches() {
        let p = tcp4();
        let out = frame(ETHERTYPE_IPV4, &p);
        let inb = inbound(out);
        let tags = Tags { ours: vec![(1, 10)], theirs: vec![(1, 20)] };
        let c = ctx(&tags, &NoOwnership, false);
        let t = |value| TagMatch { id: 1, value };
        // Sender = us outbound, the peer inbound; receiver the other way round.
        assert_eq!(check_with(&RuleKind::TagSender(t(10)), &c, &out), YES);
        assert_eq!(check_with(&RuleKind::TagSender(t(20)), &c, &out), NO);
        assert_eq!(check_with(&RuleKind::TagSender(t(20)), &c, &inb), YES);
        assert_eq!(check_with(&RuleKind::TagSender(t(10)), &c, &inb), NO);
        assert_eq!(check_with(&RuleKind::TagReceiver(t(20)), &c, &out), YES);
        assert_eq!(check_with(&RuleKind::TagReceiver(t(10)), &c, &out), NO);
        assert_eq!(check_with(&RuleKind::TagReceiver(t(10)), &c, &inb), YES);
        assert_eq!(check_with(&RuleKind::TagReceiver(t(20)), &c, &inb), NO);
        // Unknown tags: ours missing → cannot apply; the receiver's unknown outbound → lenient; the
        // sender's unknown inbound → cannot apply.
        let n = ctx(&NoTags, &NoOwnership, false);
        assert_eq!(check_with(&RuleKind::TagSender(t(0)), &n, &out), CANNOT);
        assert_eq!(check_with(&RuleKind::TagReceiver(t(0)), &n, &inb), CANNOT);
        assert_eq!(check_with(&RuleKind::TagReceiver(t(0)), &n, &out), FORCED);
        assert_eq!(check_with(&RuleKind::TagSender(t(0)), &n, &inb), CANNOT);
        // The receiver's tag is not needed to be ours (no "our tag" requirement).
        let theirs_only = Tags { ours: vec![], theirs: vec![(1, 20)] };
        assert_eq!(check_with(&RuleKind::TagReceiver(t(20)), &ctx(&theirs_only, &NoOwnership, false), &out), YES);
        // superAccept: true and skipDrop.
        let rules = [
            r(RuleKind::Ethertype(1)),
            r(RuleKind::Watch(fwd(ME, 0))),
            not(RuleKind::TagSender(t(20))),
            r(RuleKind::Drop),
            r(RuleKind::Accept),
        ];
        assert_eq!(eval_with(&rules, &c, &inb).verdict, Verdict::SuperAccept);
    }

    #[test]
    fn integer_range_matches() {
        let mut p = vec![0u8; 32];
        p[8..16].copy_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        let f = frame(0x88b5, &p);
        let ir = |start, end, offset, format| RuleKind::IntegerRange { start, end, offset, format };
        // Big-endian: the integer is right-aligned in the 8 bytes at `offset`.
        assert_eq!(check(&ir(0x0708, 0x0708, 8, 15), &f), YES); // 16 bits: bytes 14..16
        assert_eq!(check(&ir(0x0102, 0x0102, 8, 15), &f), NO);
        assert_eq!(check(&ir(0x0102, 0x0102, 2, 15), &f), YES); // bytes 8..10
        assert_eq!(check(&ir(0x0102_0304_0506_0708, 0x0102_0304_0506_0708, 8, 63), &f), YES);
        assert_eq!(check(&ir(0x08, 0x08, 8, 7), &f), YES);
        assert_eq!(check(&ir(0x708, 0x708, 8, 11), &f), YES, "12 bits: low 12 of bytes 14..16");
        assert_eq!(check(&ir(0, 0, 8, 0), &f), YES, "1 bit of 0x08");
        assert_eq!(check(&ir(0x700, 0x7ff, 8, 15), &f), YES);
        assert_eq!(check(&ir(0x709, 0xffff, 8, 15), &f), NO);
        // Little-endian: `bytes` bytes at `offset`, high `bits` kept.
        assert_eq!(check(&ir(0x0201, 0x0201, 8, 0x80 | 15), &f), YES);
        assert_eq!(check(&ir(0x0807_0605_0403_0201, u64::MAX, 8, 0x80 | 63), &f), YES);
        assert_eq!(check(&ir(0x020, 0x020, 8, 0x80 | 11), &f), YES, "12 bits: 0x0201 >> 4");
        assert_eq!(check(&ir(1, 1, 8, 0x80), &f), NO, "1 bit: top bit of 0x01");
        assert_eq!(check(&ir(0, 0, 8, 0x80), &f), YES);
        // Beyond the payload the integer is 0 (a plain value, so NOT applies).
        assert_eq!(check(&ir(0, 0, 30, 15), &f), YES, "BE reads 36..38");
        assert_eq!(check(&ir(1, 5, 30, 15), &f), NO);
        assert_eq!(check(&ir(0, 0, 31, 0x80 | 15), &f), YES);
        assert_eq!(check(&ir(0x0708, 0x0708, 24, 15), &f), NO, "BE window 24..32 reads bytes 30..32");
        assert_eq!(check(&ir(0, 0, 24, 15), &f), YES);
        // The end bound is start + ((end - start) mod 2^32).
        let big = 0x0102_0304_0506_0708u64;
        assert_eq!(check(&ir(big - 5, big - 5 + (1 << 32), 8, 63), &f), NO, "range collapses to [start, start]");
        assert_eq!(check(&ir(big, big + (1 << 32), 8, 63), &f), YES);
        assert_eq!(check(&ir(big - 5, big + (1 << 32), 8, 63), &f), YES, "[big - 5, big]");
        assert_eq!(check(&ir(big - 5, big + (1 << 32) + 5, 8, 63), &f), YES);
        assert_eq!(check(&ir(big, big - 1, 8, 63), &f), YES, "end < start wraps to start + 2^32 - 1");
        assert_eq!(check(&ir(u64::MAX - 1, 3, 8, 63), &f), NO, "start + diff wraps to 3: empty range");
        let top = {
            let mut q = vec![0u8; 8];
            q.copy_from_slice(&u64::MAX.to_be_bytes());
            q
        };
        assert_eq!(check(&ir(u64::MAX - 1, 3, 0, 63), &frame(0x88b5, &top)), NO);
        assert_eq!(check(&ir(u64::MAX - 1, u64::MAX, 0, 63), &frame(0x88b5, &top)), YES);
    }

    #[test]
    fn reserved_match_follows_flag() {
        let p = tcp4();
        let f = frame(ETHERTYPE_IPV4, &p);
        for code in [16u8, 23, 52, 63] {
            let k = RuleKind::ReservedMatch { code, value: vec![1, 2] };
            assert_eq!(check_with(&k, &ctx(&NoTags, &NoOwnership, false), &f), NO);
            assert_eq!(check_with(&k, &ctx(&NoTags, &NoOwnership, true), &f), YES);
        }
    }

    // ---- outer procedures -------------------------------------------------------------------------------

    #[test]
    fn outbound_uses_capabilities_on_no_match() {
        let p = tcp4();
        let f = frame(ETHERTYPE_IPV4, &p);
        let c = ctx(&NoTags, &NoOwnership, false);
        let mut rnd = || 0u32;
        let none: [Vec<Rule>; 0] = [];
        // No R at all: dropped unless a capability accepts.
        let o = filter_outbound(&[], &none, &c, &f, &mut rnd);
        assert_eq!((o.disposition, o.inbound_code(), o.passes()), (Disposition::Drop, 0, false));
        let ssh =
            vec![r(RuleKind::IpProtocol(6)), r(RuleKind::DestPortRange { low: 22, high: 22 }), r(RuleKind::Accept)];
        let dropper = vec![r(RuleKind::Drop)];
        let web = vec![r(RuleKind::DestPortRange { low: 80, high: 80 }), r(RuleKind::Accept)];
        let caps = [dropper.clone(), web.clone(), ssh.clone()];
        let o = filter_outbound(&[], &caps, &c, &f, &mut rnd);
        assert_eq!((o.disposition, o.capability), (Disposition::Accept, Some(2)));
        // Network DROP ends everything; network ACCEPT does not consult capabilities.
        let o = filter_outbound(&[r(RuleKind::Drop)], &caps, &c, &f, &mut rnd);
        assert_eq!(o.disposition, Disposition::Drop);
        let o = filter_outbound(&[r(RuleKind::Accept)], &caps, &c, &f, &mut rnd);
        assert_eq!((o.disposition, o.capability), (Disposition::Accept, None));
        // None accepting: drop.
        let o = filter_outbound(&[r(RuleKind::Break)], &[dropper, web], &c, &f, &mut rnd);
        assert_eq!(o.disposition, Disposition::Drop);
        // Slices of rules work as capabilities too.
        let o = filter_outbound(&[], &[&ssh[..]], &c, &f, &mut rnd);
        assert_eq!(o.disposition, Disposition::Accept);
    }

    #[test]
    fn outbound_tee_and_redirect() {
        let p = tcp4();
        let f = frame(ETHERTYPE_IPV4, &p);
        let c = ctx(&NoTags, &NoOwnership, false);
        let mut rnd = || 0u32;
        let none: [Vec<Rule>; 0] = [];
        let tee = |a| Tee { target: addr(a), length: p.len(), watch: false };
        // TEE then ACCEPT: one copy.
        let o = filter_outbound(&[r(RuleKind::Tee(fwd(OTHER, 0))), r(RuleKind::Accept)], &none, &c, &f, &mut rnd);
        assert_eq!((o.disposition, o.copies), (Disposition::Accept, [None, Some(tee(OTHER))]));
        // TEE then DROP: no copy.
        let o = filter_outbound(&[r(RuleKind::Tee(fwd(OTHER, 0))), r(RuleKind::Drop)], &none, &c, &f, &mut rnd);
        assert_eq!((o.disposition, o.copies), (Disposition::Drop, [None, None]));
        // TEE then NO MATCH, capability with its own TEE accepts: both copies, capability's first.
        let cap = vec![r(RuleKind::Watch(fwd(0x44_4444_4444, 0))), r(RuleKind::Accept)];
        let o = filter_outbound(&[r(RuleKind::Tee(fwd(OTHER, 0)))], &[cap], &c, &f, &mut rnd);
        let w = Tee { target: addr(0x44_4444_4444), length: p.len(), watch: true };
        assert_eq!((o.disposition, o.copies), (Disposition::Accept, [Some(w), Some(tee(OTHER))]));
        // TEE then NO MATCH, nothing accepts: no copies.
        let o = filter_outbound(&[r(RuleKind::Tee(fwd(OTHER, 0)))], &none, &c, &f, &mut rnd);
        assert_eq!((o.disposition, o.copies), (Disposition::Drop, [None, None]));
        // REDIRECT: to the target, dropped locally; from a capability too.
        let o = filter_outbound(&[r(RuleKind::Redirect(fwd(OTHER, 0)))], &none, &c, &f, &mut rnd);
        assert_eq!((o.disposition, o.passes()), (Disposition::Redirect(addr(OTHER)), false));
        let capr = vec![r(RuleKind::Redirect(fwd(OTHER, 0)))];
        let o = filter_outbound(&[], &[capr], &c, &f, &mut rnd);
        assert_eq!((o.disposition, o.capability), (Disposition::Redirect(addr(OTHER)), Some(0)));
        // REDIRECT to 0: plain accept.
        let o = filter_outbound(&[r(RuleKind::Redirect(fwd(0, 0)))], &none, &c, &f, &mut rnd);
        assert_eq!(o.disposition, Disposition::Accept);
        // PRIORITY's bucket is reported.
        let o = filter_outbound(&[], &[vec![r(RuleKind::Priority)]], &c, &f, &mut rnd);
        assert_eq!((o.disposition, o.qos_bucket), (Disposition::Accept, Some(0)));
    }

    #[test]
    fn inbound_codes() {
        let p = tcp4();
        let f = inbound(frame(ETHERTYPE_IPV4, &p));
        let c = ctx(&NoTags, &NoOwnership, false);
        let mut rnd = || 0u32;
        let none: [Vec<Rule>; 0] = [];
        let code = |rules: &[Rule], caps: &[Vec<Rule>], rnd: &mut dyn FnMut() -> u32| {
            filter_inbound(rules, caps, &c, &f, rnd).inbound_code()
        };
        assert_eq!(code(&[r(RuleKind::Accept)], &none, &mut rnd), 1);
        assert_eq!(code(&[r(RuleKind::Drop)], &none, &mut rnd), 0);
        assert_eq!(code(&[], &none, &mut rnd), 0);
        assert_eq!(code(&[r(RuleKind::Tee(fwd(ME, 0)))], &none, &mut rnd), 2);
        assert_eq!(
            code(&[r(RuleKind::Ethertype(1)), r(RuleKind::Tee(fwd(ME, 0))), r(RuleKind::Accept)], &none, &mut rnd),
            2
        );
        // Sender's capabilities on NO MATCH: accept 1, super-accept 2.
        assert_eq!(code(&[r(RuleKind::Break)], &[vec![r(RuleKind::Accept)]], &mut rnd), 1);
        assert_eq!(code(&[], &[vec![r(RuleKind::Drop)], vec![r(RuleKind::Redirect(fwd(ME, 0)))]], &mut rnd), 2);
        // Redirect elsewhere: code 0, the frame goes to the target.
        let o = filter_inbound(&[r(RuleKind::Redirect(fwd(OTHER, 0)))], &none, &c, &f, &mut rnd);
        assert_eq!((o.disposition, o.inbound_code()), (Disposition::Redirect(addr(OTHER)), 0));
        // filter_inbound forces the direction.
        let out = frame(ETHERTYPE_IPV4, &p);
        let o = filter_inbound(
            &[r(RuleKind::Characteristics(CHAR_INBOUND)), r(RuleKind::Accept)],
            &none,
            &c,
            &out,
            &mut rnd,
        );
        assert_eq!(o.inbound_code(), 1);
        let o = filter_outbound(
            &[r(RuleKind::Characteristics(CHAR_INBOUND)), r(RuleKind::Accept)],
            &none,
            &c,
            &f,
            &mut rnd,
        );
        assert_eq!(o.disposition, Disposition::Drop);
    }

    // ---- properties -------------------------------------------------------------------------------------

    /// A rule of wire type `code` built straight from field bytes (not via the decoder).
    fn make_kind(code: u8, f: &[u8; 19], value: Vec<u8>) -> RuleKind {
        let u16_ = |i: usize| u16::from_be_bytes([f[i], f[i + 1]]);
        let u32_ = |i: usize| u32::from_be_bytes([f[i], f[i + 1], f[i + 2], f[i + 3]]);
        let u64_ = |i: usize| u64::from_be_bytes(f[i..i + 8].try_into().unwrap());
        let fw = Forward { address: u64_(0), flags: u32_(8), length: u16_(12) };
        let tg = TagMatch { id: u32_(0), value: u32_(4) };
        let mac = Mac::from_octets([f[0], f[1], f[2], f[3], f[4], f[5]]);
        let a = address_from_u64(u64_(0));
        let v4 = Ipv4Addr::new(f[0], f[1], f[2], f[3]);
        let v6a = Ipv6Addr::from(<[u8; 16]>::try_from(&f[0..16]).unwrap());
        match code {
            0 => RuleKind::Drop,
            1 => RuleKind::Accept,
            2 => RuleKind::Tee(fw),
            3 => RuleKind::Watch(fw),
            4 => RuleKind::Redirect(fw),
            5 => RuleKind::Break,
            6 => RuleKind::Priority,
            7..=15 => RuleKind::ReservedAction { code, value },
            24 => RuleKind::SourceZeroTierAddress(a),
            25 => RuleKind::DestZeroTierAddress(a),
            26 => RuleKind::VlanId(u16_(0)),
            27 => RuleKind::VlanPcp(f[0]),
            28 => RuleKind::VlanDei(f[0]),
            29 => RuleKind::MacSource(mac),
            30 => RuleKind::MacDest(mac),
            31 => RuleKind::Ipv4Source { ip: v4, bits: f[4] },
            32 => RuleKind::Ipv4Dest { ip: v4, bits: f[4] },
            33 => RuleKind::Ipv6Source { ip: v6a, bits: f[16] },
            34 => RuleKind::Ipv6Dest { ip: v6a, bits: f[16] },
            35 => RuleKind::IpTos { mask: f[0], low: f[1], high: f[2] },
            36 => RuleKind::IpProtocol(f[0]),
            37 => RuleKind::Ethertype(u16_(0)),
            38 => RuleKind::Icmp { icmp_type: f[0], code: f[1], flags: f[2] },
            39 => RuleKind::SourcePortRange { low: u16_(0), high: u16_(2) },
            40 => RuleKind::DestPortRange { low: u16_(0), high: u16_(2) },
            41 => RuleKind::Characteristics(u64_(0)),
            42 => RuleKind::FrameSizeRange { low: u16_(0), high: u16_(2) },
            43 => RuleKind::Random(u32_(0)),
            44 => RuleKind::TagsDifference(tg),
            45 => RuleKind::TagsBitwiseAnd(tg),
            46 => RuleKind::TagsBitwiseOr(tg),
            47 => RuleKind::TagsBitwiseXor(tg),
            48 => RuleKind::TagsEqual(tg),
            49 => RuleKind::TagSender(tg),
            50 => RuleKind::TagReceiver(tg),
            51 => RuleKind::IntegerRange { start: u64_(0), end: u64_(8), offset: u16_(16), format: f[18] },
            _ => RuleKind::ReservedMatch { code, value },
        }
    }

    fn arb_rule() -> impl Strategy<Value = Rule> {
        (0u8..64, any::<[u8; 19]>(), proptest::collection::vec(any::<u8>(), 0..24), any::<bool>(), any::<bool>())
            .prop_map(|(code, f, value, not, or)| Rule { not, or, kind: make_kind(code, &f, value) })
    }

    /// Up to 24 arbitrary rules.
    fn arb_rules() -> impl Strategy<Value = Vec<Rule>> {
        proptest::collection::vec(arb_rule(), 0..24)
    }

    fn arb_payload() -> impl Strategy<Value = (u16, Vec<u8>)> {
        let et = prop_oneof![Just(ETHERTYPE_IPV4), Just(ETHERTYPE_IPV6), Just(ETHERTYPE_ARP), any::<u16>()];
        let bytes = proptest::collection::vec(any::<u8>(), 0..160);
        // Sometimes plausible IP headers with extension chains so deep paths are reached.
        let hdr = (any::<u8>(), prop_oneof![Just(0u8), Just(6), Just(17), Just(43), Just(58), Just(60), Just(135)]);
        (et, bytes, hdr, any::<bool>()).prop_map(|(et, mut b, (b0, next), shape)| {
            if shape && b.len() > 40 {
                if et == ETHERTYPE_IPV6 {
                    b[6] = next;
                } else {
                    b[0] = b0;
                    b[9] = next;
                }
            }
            (et, b)
        })
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(rules) = decode_rules(&bytes) {
                let mut out = Vec::new();
                encode_rules(&rules, &mut out);
                // Canonical re-encoding decodes to the same rules.
                prop_assert_eq!(decode_rules(&out).unwrap(), rules);
            }
        }

        #[test]
        fn decode_encode_round_trip(rules in proptest::collection::vec(arb_rule(), 0..40)) {
            let mut out = Vec::new();
            encode_rules(&rules, &mut out);
            prop_assert_eq!(decode_rules(&out).unwrap(), rules);
        }

        #[test]
        fn evaluate_never_panics(
            rules in arb_rules(),
            caps in proptest::collection::vec(arb_rules(), 0..3),
            (ethertype, payload) in arb_payload(),
            inbound in any::<bool>(),
            unknown in any::<bool>(),
            rnd in any::<u32>(),
            tag_ids in proptest::collection::vec((any::<u32>(), any::<u32>()), 0..3),
            addrs in (0usize..4, 0usize..4),
        ) {
            let pick = [ME, PEER, OTHER, 0];
            let tags = Tags { ours: tag_ids.clone(), theirs: tag_ids.iter().map(|(i, v)| (*i, v ^ 1)).collect() };
            let owns = Owns { ips: vec![IpAddr::from([10, 0, 0, 1])], macs: vec![Mac(MAC_ME)] };
            let c = ctx(&tags, &owns, unknown);
            let f = FrameInfo {
                inbound,
                zt_source: addr(pick[addrs.0]),
                zt_dest: addr(pick[addrs.1]),
                mac_source: Mac(MAC_ME),
                mac_dest: Mac(if rnd & 1 == 0 { MAC_PEER } else { 0xffff_ffff_ffff }),
                ethertype,
                vlan_id: 0,
                payload: &payload,
            };
            let e = evaluate(&rules, &c, &f, &mut || rnd);
            if let Some(t) = e.tee {
                prop_assert!(t.length <= payload.len() && t.target.as_u64() != 0);
            }
            let o = if inbound {
                filter_inbound(&rules, &caps, &c, &f, &mut || rnd)
            } else {
                filter_outbound(&rules, &caps, &c, &f, &mut || rnd)
            };
            prop_assert!(o.inbound_code() <= 2);
            if !inbound {
                prop_assert!(o.disposition != Disposition::SuperAccept);
            }
            if o.disposition == Disposition::Drop {
                prop_assert_eq!(o.copies, [None, None]);
            }
        }
    }
}
