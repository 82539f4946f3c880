//! MULTICAST_LIKE (0x09), MULTICAST_GATHER (0x0d), MULTICAST_FRAME (0x0e) and their OK
//! payloads (spec §8.9).

use crate::Address;
use crate::credentials::CertificateOfMembership;
use crate::error::{ProtocolError, Result};
use crate::network::{Mac, MulticastGroup, NetworkId};
use crate::wire::{Reader, WriteExt};

/// MULTICAST_GATHER flag: a COM follows the gather limit.
pub const GATHER_FLAG_COM: u8 = 0x01;
/// MULTICAST_FRAME flags.
pub const MFRAME_FLAG_COM: u8 = 0x01;
pub const MFRAME_FLAG_GATHER_LIMIT: u8 = 0x02;
pub const MFRAME_FLAG_SOURCE_MAC: u8 = 0x04;
/// OK(MULTICAST_FRAME) flag: gather results follow.
pub const OK_MFRAME_FLAG_GATHER_RESULTS: u8 = 0x02;

fn read_group(r: &mut Reader<'_>) -> Result<MulticastGroup> {
    let mac = Mac::from_octets(r.array("multicast MAC")?);
    let adi = r.u32("multicast ADI")?;
    Ok(MulticastGroup { mac, adi })
}

fn write_group(out: &mut Vec<u8>, g: &MulticastGroup) {
    out.put_slice(&g.mac.octets());
    out.put_u32(g.adi);
}

/// One 18-byte LIKE record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MulticastLike {
    pub network_id: NetworkId,
    pub group: MulticastGroup,
}

/// Decode a MULTICAST_LIKE payload (repeated 18-byte records).
pub fn decode_likes(payload: &[u8]) -> Result<Vec<MulticastLike>> {
    if !payload.len().is_multiple_of(18) {
        return Err(ProtocolError::TrailingBytes { what: "MULTICAST_LIKE records", count: payload.len() % 18 });
    }
    let mut r = Reader::new(payload);
    let mut out = Vec::with_capacity(payload.len() / 18);
    while !r.is_empty() {
        let network_id = NetworkId(r.u64("LIKE network id")?);
        out.push(MulticastLike { network_id, group: read_group(&mut r)? });
    }
    Ok(out)
}

pub fn encode_likes(likes: &[MulticastLike], out: &mut Vec<u8>) {
    for l in likes {
        out.put_u64(l.network_id.0);
        write_group(out, &l.group);
    }
}

/// MULTICAST_GATHER request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MulticastGather {
    pub network_id: NetworkId,
    pub flags: u8,
    pub group: MulticastGroup,
    pub gather_limit: u32,
    pub com: Option<CertificateOfMembership>,
}

impl MulticastGather {
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let network_id = NetworkId(r.u64("GATHER network id")?);
        let flags = r.u8("GATHER flags")?;
        let group = read_group(&mut r)?;
        let gather_limit = r.u32("GATHER limit")?;
        let com = if flags & GATHER_FLAG_COM != 0 { Some(CertificateOfMembership::read(&mut r)?) } else { None };
        Ok(Self { network_id, flags, group, gather_limit, com })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.network_id.0);
        let flags = if self.com.is_some() { self.flags | GATHER_FLAG_COM } else { self.flags & !GATHER_FLAG_COM };
        out.put_u8(flags);
        write_group(out, &self.group);
        out.put_u32(self.gather_limit);
        if let Some(com) = &self.com {
            com.write(out);
        }
    }
}

/// Gather results: total known members and a list of member addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatherResults {
    pub total_known: u32,
    pub members: Vec<Address>,
}

impl GatherResults {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let total_known = r.u32("gather total known")?;
        let count = r.u16("gather member count")? as usize;
        if count * 5 > r.remaining() {
            return Err(ProtocolError::Truncated {
                what: "gather members",
                needed: count * 5,
                available: r.remaining(),
            });
        }
        let mut members = Vec::with_capacity(count);
        for _ in 0..count {
            members.push(r.address("gather member")?);
        }
        Ok(Self { total_known, members })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.put_u32(self.total_known);
        out.put_u16(self.members.len() as u16);
        for m in &self.members {
            out.put_address(m);
        }
    }
}

/// OK(MULTICAST_GATHER): nwid ‖ group ‖ results (no flags byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OkMulticastGather {
    pub network_id: NetworkId,
    pub group: MulticastGroup,
    pub results: GatherResults,
}

impl OkMulticastGather {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let network_id = NetworkId(r.u64("OK(GATHER) network id")?);
        let group = read_group(r)?;
        let results = GatherResults::read(r)?;
        Ok(Self { network_id, group, results })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.network_id.0);
        write_group(out, &self.group);
        self.results.write(out);
    }
}

/// OK(MULTICAST_FRAME): nwid ‖ group ‖ flags ‖ [results if flag 0x02].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OkMulticastFrame {
    pub network_id: NetworkId,
    pub group: MulticastGroup,
    pub flags: u8,
    pub results: Option<GatherResults>,
}

impl OkMulticastFrame {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let network_id = NetworkId(r.u64("OK(MULTICAST_FRAME) network id")?);
        let group = read_group(r)?;
        let flags = r.u8("OK(MULTICAST_FRAME) flags")?;
        let results = if flags & OK_MFRAME_FLAG_GATHER_RESULTS != 0 { Some(GatherResults::read(r)?) } else { None };
        Ok(Self { network_id, group, flags, results })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.network_id.0);
        write_group(out, &self.group);
        let flags = if self.results.is_some() {
            self.flags | OK_MFRAME_FLAG_GATHER_RESULTS
        } else {
            self.flags & !OK_MFRAME_FLAG_GATHER_RESULTS
        };
        out.put_u8(flags);
        if let Some(res) = &self.results {
            res.write(out);
        }
    }
}

/// MULTICAST_FRAME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MulticastFrame<'a> {
    pub network_id: NetworkId,
    pub flags: u8,
    pub com: Option<CertificateOfMembership>,
    pub gather_limit: Option<u32>,
    /// Carried source MAC (flag 0x04); otherwise derived from the sender.
    pub src_mac: Option<Mac>,
    pub group: MulticastGroup,
    pub ethertype: u16,
    pub payload: &'a [u8],
}

impl<'a> MulticastFrame<'a> {
    pub fn decode(payload: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let network_id = NetworkId(r.u64("MULTICAST_FRAME network id")?);
        let flags = r.u8("MULTICAST_FRAME flags")?;
        let com = if flags & MFRAME_FLAG_COM != 0 { Some(CertificateOfMembership::read(&mut r)?) } else { None };
        let gather_limit =
            if flags & MFRAME_FLAG_GATHER_LIMIT != 0 { Some(r.u32("MULTICAST_FRAME gather limit")?) } else { None };
        let src_mac = if flags & MFRAME_FLAG_SOURCE_MAC != 0 {
            Some(Mac::from_octets(r.array("MULTICAST_FRAME source MAC")?))
        } else {
            None
        };
        let group = read_group(&mut r)?;
        let ethertype = r.u16("MULTICAST_FRAME ethertype")?;
        Ok(Self { network_id, flags, com, gather_limit, src_mac, group, ethertype, payload: r.take_rest() })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.network_id.0);
        let mut flags = self.flags & !(MFRAME_FLAG_COM | MFRAME_FLAG_GATHER_LIMIT | MFRAME_FLAG_SOURCE_MAC);
        if self.com.is_some() {
            flags |= MFRAME_FLAG_COM;
        }
        if self.gather_limit.is_some() {
            flags |= MFRAME_FLAG_GATHER_LIMIT;
        }
        if self.src_mac.is_some() {
            flags |= MFRAME_FLAG_SOURCE_MAC;
        }
        out.put_u8(flags);
        if let Some(com) = &self.com {
            com.write(out);
        }
        if let Some(limit) = self.gather_limit {
            out.put_u32(limit);
        }
        if let Some(mac) = self.src_mac {
            out.put_slice(&mac.octets());
        }
        write_group(out, &self.group);
        out.put_u16(self.ethertype);
        out.put_slice(self.payload);
    }
}
