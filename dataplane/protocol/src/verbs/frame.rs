//! FRAME (0x06) and EXT_FRAME (0x07) payloads (spec §8.6, §8.7).

use crate::credentials::CertificateOfMembership;
use crate::error::Result;
use crate::network::{Mac, NetworkId};
use crate::wire::{Reader, WriteExt};

/// EXT_FRAME flag: a COM follows the flags byte (deprecated).
pub const EXT_FRAME_FLAG_COM: u8 = 0x01;
/// EXT_FRAME flag: the receiver should answer OK(EXT_FRAME).
pub const EXT_FRAME_FLAG_ACK: u8 = 0x10;

/// A unicast frame whose MACs are implied by the sender/receiver addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    pub network_id: NetworkId,
    pub ethertype: u16,
    /// Ethernet payload (no Ethernet header).
    pub payload: &'a [u8],
}

impl<'a> Frame<'a> {
    pub fn decode(payload: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let network_id = NetworkId(r.u64("FRAME network id")?);
        let ethertype = r.u16("FRAME ethertype")?;
        Ok(Self { network_id, ethertype, payload: r.take_rest() })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.network_id.0);
        out.put_u16(self.ethertype);
        out.put_slice(self.payload);
    }
}

/// A frame with explicit MACs (bridging).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtFrame<'a> {
    pub network_id: NetworkId,
    pub flags: u8,
    pub com: Option<CertificateOfMembership>,
    pub dst_mac: Mac,
    pub src_mac: Mac,
    pub ethertype: u16,
    pub payload: &'a [u8],
}

impl<'a> ExtFrame<'a> {
    pub fn decode(payload: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let network_id = NetworkId(r.u64("EXT_FRAME network id")?);
        let flags = r.u8("EXT_FRAME flags")?;
        let com = if flags & EXT_FRAME_FLAG_COM != 0 { Some(CertificateOfMembership::read(&mut r)?) } else { None };
        let dst_mac = Mac::from_octets(r.array("EXT_FRAME destination MAC")?);
        let src_mac = Mac::from_octets(r.array("EXT_FRAME source MAC")?);
        let ethertype = r.u16("EXT_FRAME ethertype")?;
        Ok(Self { network_id, flags, com, dst_mac, src_mac, ethertype, payload: r.take_rest() })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.network_id.0);
        let flags = if self.com.is_some() { self.flags | EXT_FRAME_FLAG_COM } else { self.flags & !EXT_FRAME_FLAG_COM };
        out.put_u8(flags);
        if let Some(com) = &self.com {
            com.write(out);
        }
        out.put_slice(&self.dst_mac.octets());
        out.put_slice(&self.src_mac.octets());
        out.put_u16(self.ethertype);
        out.put_slice(self.payload);
    }
}
