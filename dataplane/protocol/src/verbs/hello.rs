//! HELLO (0x01) and OK(HELLO) payloads (spec §8.1, §6.6).
//!
//! The moon list at the end of a HELLO is encrypted separately ("cryptField", Salsa20/12 with
//! the un-mangled peer key) before the packet is MACed with suite 0.

use crate::error::{ProtocolError, Result};
use crate::inet::{read_inet, write_inet};
use crate::wire::{Reader, WriteExt};
use crate::{Identity, PeerKey};
use std::net::SocketAddr;

/// Longest moon list we decode (each entry is 17 bytes; a packet holds < 600).
pub const MAX_MOONS: usize = 512;

/// A world (planet or moon) the sender has or wants: type (127 = moon, 1 = planet), ID,
/// timestamp (0 = wanted, not held).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorldRef {
    pub world_type: u8,
    pub id: u64,
    pub timestamp: u64,
}

/// HELLO payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub protocol_version: u8,
    pub version_major: u8,
    pub version_minor: u8,
    pub version_revision: u16,
    /// Sender clock, ms; echoed in OK(HELLO).
    pub timestamp: u64,
    pub identity: Identity,
    /// Physical address the HELLO was sent to (None when sent via a relay).
    pub destination: Option<SocketAddr>,
    pub planet_id: u64,
    pub planet_timestamp: u64,
    /// Decrypted moon list (empty if the tail could not be decrypted).
    pub moons: Vec<WorldRef>,
}

/// How the encrypted tail was handled while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloTail {
    /// Length of the encrypted region (0 for senders that append nothing).
    pub len: usize,
    /// Whether `moons` was filled from it.
    pub decrypted: bool,
}

impl Hello {
    /// Decode a HELLO payload (bytes after the verb). With `tail_key` (peer key and the packet's
    /// wire ID) the moon list is decrypted; without it `moons` stays empty.
    pub fn decode(payload: &[u8], tail_key: Option<(&PeerKey, &[u8; 8])>) -> Result<(Hello, HelloTail)> {
        let mut r = Reader::new(payload);
        let protocol_version = r.u8("HELLO protocol version")?;
        let version_major = r.u8("HELLO major version")?;
        let version_minor = r.u8("HELLO minor version")?;
        let version_revision = r.u16("HELLO revision")?;
        let timestamp = r.u64("HELLO timestamp")?;
        let (identity, used) = Identity::from_bytes(r.rest())
            .map_err(|e| ProtocolError::Malformed { what: "HELLO identity", detail: e.to_string() })?;
        r.take(used, "HELLO identity")?;
        let destination = read_inet(&mut r)?;
        // Very old senders stop here; treat missing world fields as zero.
        let (planet_id, planet_timestamp) =
            if r.remaining() >= 16 { (r.u64("planet id")?, r.u64("planet timestamp")?) } else { (0, 0) };
        let tail = r.take_rest();
        let mut moons = Vec::new();
        let mut decrypted = false;
        if let (Some((key, packet_id)), false) = (tail_key, tail.is_empty()) {
            let mut plain = tail.to_vec();
            crate::hello_crypt(key, packet_id, &mut plain);
            let mut t = Reader::new(&plain);
            let count = t.u16("HELLO moon count")? as usize;
            if count > MAX_MOONS {
                return Err(ProtocolError::TooLarge { what: "HELLO moons", value: count, limit: MAX_MOONS });
            }
            for _ in 0..count {
                moons.push(WorldRef {
                    world_type: t.u8("moon type")?,
                    id: t.u64("moon id")?,
                    timestamp: t.u64("moon timestamp")?,
                });
            }
            decrypted = true;
        }
        let hello = Hello {
            protocol_version,
            version_major,
            version_minor,
            version_revision,
            timestamp,
            identity,
            destination,
            planet_id,
            planet_timestamp,
            moons,
        };
        Ok((hello, HelloTail { len: tail.len(), decrypted }))
    }

    /// Encode, encrypting the moon list with the peer key and the packet ID the packet will carry.
    pub fn encode(&self, out: &mut Vec<u8>, key: &PeerKey, packet_id: &[u8; 8]) {
        out.put_u8(self.protocol_version);
        out.put_u8(self.version_major);
        out.put_u8(self.version_minor);
        out.put_u16(self.version_revision);
        out.put_u64(self.timestamp);
        self.identity.write_bytes(out, false);
        write_inet(out, self.destination.as_ref());
        out.put_u64(self.planet_id);
        out.put_u64(self.planet_timestamp);
        let start = out.len();
        out.put_u16(self.moons.len() as u16);
        for m in &self.moons {
            out.put_u8(m.world_type);
            out.put_u64(m.id);
            out.put_u64(m.timestamp);
        }
        crate::hello_crypt(key, packet_id, &mut out[start..]);
    }
}

/// OK(HELLO) payload (after in-re verb and ID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OkHello {
    pub timestamp_echo: u64,
    pub protocol_version: u8,
    pub version_major: u8,
    pub version_minor: u8,
    pub version_revision: u16,
    /// The requester's physical address as the responder saw it.
    pub reported_address: Option<SocketAddr>,
    /// Serialized world updates (planet/moon), possibly empty.
    pub world_updates: Vec<u8>,
}

impl OkHello {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let timestamp_echo = r.u64("OK(HELLO) timestamp")?;
        let protocol_version = r.u8("OK(HELLO) protocol version")?;
        let version_major = r.u8("OK(HELLO) major")?;
        let version_minor = r.u8("OK(HELLO) minor")?;
        let version_revision = r.u16("OK(HELLO) revision")?;
        let reported_address = read_inet(r)?;
        let world_updates = if r.remaining() >= 2 {
            let len = r.u16("OK(HELLO) world update length")? as usize;
            r.take(len, "OK(HELLO) world updates")?.to_vec()
        } else {
            Vec::new()
        };
        Ok(Self {
            timestamp_echo,
            protocol_version,
            version_major,
            version_minor,
            version_revision,
            reported_address,
            world_updates,
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.timestamp_echo);
        out.put_u8(self.protocol_version);
        out.put_u8(self.version_major);
        out.put_u8(self.version_minor);
        out.put_u16(self.version_revision);
        write_inet(out, self.reported_address.as_ref());
        out.put_u16(self.world_updates.len() as u16);
        out.put_slice(&self.world_updates);
    }
}
