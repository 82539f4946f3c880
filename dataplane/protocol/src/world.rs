//! World definitions: planet and moon files and the world updates carried in OK(HELLO).
//!
//! Layout (the spec leaves World serialization open, §13; this follows the upstream format and
//! is checked against `nodes/0000002c80d43748.moon`): type (1: 1 = planet, 127 = moon) ‖ ID (8) ‖
//! timestamp (8) ‖ updates-must-be-signed-by public key (64) ‖ signature (96) ‖ root count (1) ‖
//! roots × {identity (binary, §5.2) ‖ endpoint count (1) ‖ endpoints × InetAddress} ‖ moons only:
//! u16 length ‖ reserved bytes. The signature (§4.1 form) covers 8 × 0x7f ‖ the same fields
//! without the signature ‖ 8 × 0xf7.

use crate::Identity;
use crate::error::{ProtocolError, Result};
use crate::inet::{read_inet, write_inet};
use crate::wire::{Reader, WriteExt, address_from_u64};
use std::net::SocketAddr;

pub const WORLD_TYPE_PLANET: u8 = 1;
pub const WORLD_TYPE_MOON: u8 = 127;
/// `ZT_WORLD_MAX_ROOTS`.
pub const MAX_ROOTS: usize = 4;
/// `ZT_WORLD_MAX_STABLE_ENDPOINTS_PER_ROOT`.
pub const MAX_ENDPOINTS_PER_ROOT: usize = 32;
/// `ZT_WORLD_MAX_SERIALIZED_LENGTH`-like bound for the reserved moon trailer.
pub const MAX_WORLD_LEN: usize = 8192;

/// One root server of a world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub identity: Identity,
    pub stable_endpoints: Vec<SocketAddr>,
}

/// A planet or moon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    pub world_type: u8,
    pub id: u64,
    pub timestamp: u64,
    /// Ed25519-capable C25519 public key (64 bytes) that must sign updates of this world.
    pub updates_must_be_signed_by: [u8; 64],
    pub signature: [u8; 96],
    pub roots: Vec<Root>,
    /// Moons: the reserved trailer (normally empty).
    pub moon_extension: Vec<u8>,
}

impl World {
    /// A world nobody signed (zero update key and signature), with `roots`: moons given to a
    /// node at start and test planets, which are taken without a signature check (§1.1). A
    /// planet with no roots keeps a node off the Internet's roots.
    pub fn unsigned(world_type: u8, id: u64, roots: Vec<Root>) -> World {
        World {
            world_type,
            id,
            timestamp: 1,
            updates_must_be_signed_by: [0; 64],
            signature: [0; 96],
            roots,
            moon_extension: Vec::new(),
        }
    }

    /// Parse one world from the start of `bytes`; returns it and the bytes consumed.
    pub fn read(bytes: &[u8]) -> Result<(World, usize)> {
        if bytes.len() > MAX_WORLD_LEN {
            // only the prefix can be a world; keep parsing bounded
            return World::read(&bytes[..MAX_WORLD_LEN]);
        }
        let mut r = Reader::new(bytes);
        let world_type = r.u8("world type")?;
        if world_type != WORLD_TYPE_PLANET && world_type != WORLD_TYPE_MOON {
            return Err(ProtocolError::InvalidValue { what: "world type", value: world_type as u64 });
        }
        let id = r.u64("world id")?;
        let timestamp = r.u64("world timestamp")?;
        let updates_must_be_signed_by = r.array("world signing key")?;
        let signature = r.array("world signature")?;
        let count = r.u8("world root count")? as usize;
        if count > MAX_ROOTS {
            return Err(ProtocolError::TooLarge { what: "world roots", value: count, limit: MAX_ROOTS });
        }
        let mut roots = Vec::with_capacity(count);
        for _ in 0..count {
            let (identity, used) = Identity::from_bytes(r.rest())
                .map_err(|e| ProtocolError::Malformed { what: "world root identity", detail: e.to_string() })?;
            r.take(used, "world root identity")?;
            let n = r.u8("root endpoint count")? as usize;
            if n > MAX_ENDPOINTS_PER_ROOT {
                return Err(ProtocolError::TooLarge {
                    what: "root endpoints",
                    value: n,
                    limit: MAX_ENDPOINTS_PER_ROOT,
                });
            }
            let mut stable_endpoints = Vec::with_capacity(n);
            for _ in 0..n {
                if let Some(ep) = read_inet(&mut r)? {
                    stable_endpoints.push(ep);
                }
            }
            roots.push(Root { identity: identity.to_public(), stable_endpoints });
        }
        let moon_extension = if world_type == WORLD_TYPE_MOON {
            let len = r.u16("moon extension length")? as usize;
            r.take(len, "moon extension")?.to_vec()
        } else {
            Vec::new()
        };
        let world = World { world_type, id, timestamp, updates_must_be_signed_by, signature, roots, moon_extension };
        Ok((world, r.position()))
    }

    /// Parse a whole world file (no trailing bytes allowed).
    pub fn parse(bytes: &[u8]) -> Result<World> {
        let (w, used) = World::read(bytes)?;
        if used != bytes.len() {
            return Err(ProtocolError::TrailingBytes { what: "world", count: bytes.len() - used });
        }
        Ok(w)
    }

    fn write_body(&self, out: &mut Vec<u8>, with_signature: bool) {
        out.put_u8(self.world_type);
        out.put_u64(self.id);
        out.put_u64(self.timestamp);
        out.put_slice(&self.updates_must_be_signed_by);
        if with_signature {
            out.put_slice(&self.signature);
        }
        out.put_u8(self.roots.len() as u8);
        for root in &self.roots {
            root.identity.write_bytes(out, false);
            out.put_u8(root.stable_endpoints.len() as u8);
            for ep in &root.stable_endpoints {
                write_inet(out, Some(ep));
            }
        }
        if self.world_type == WORLD_TYPE_MOON {
            out.put_u16(self.moon_extension.len() as u16);
            out.put_slice(&self.moon_extension);
        }
    }

    /// Serialized form (as in a `.moon` / planet file).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_body(&mut out, true);
        out
    }

    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = vec![0x7f; 8];
        self.write_body(&mut out, false);
        out.put_slice(&[0xf7; 8]);
        out
    }

    /// Verify the signature with this world's own signing key (initial install). For an update,
    /// use [`World::verify_update_of`] with the currently held world.
    pub fn verify(&self) -> bool {
        verify_with_key(&self.updates_must_be_signed_by, &self.signed_bytes(), &self.signature)
    }

    /// An update is acceptable if it has the same type and ID, a newer timestamp, and is signed
    /// by the key the current world names.
    pub fn verify_update_of(&self, current: &World) -> bool {
        self.world_type == current.world_type
            && self.id == current.id
            && self.timestamp > current.timestamp
            && verify_with_key(&current.updates_must_be_signed_by, &self.signed_bytes(), &self.signature)
    }

    /// Sign with a key pair given as an identity whose public key is `updates_must_be_signed_by`.
    pub fn sign(&mut self, signer: &Identity) -> Result<()> {
        self.updates_must_be_signed_by = *signer.public_key();
        self.signature = signer
            .sign(&self.signed_bytes())
            .map_err(|e| ProtocolError::Malformed { what: "world signing key", detail: e.to_string() })?;
        Ok(())
    }
}

fn verify_with_key(public_key: &[u8; 64], message: &[u8], signature: &[u8; 96]) -> bool {
    // A signing key is a bare key pair, not a node identity; wrap it to reuse the §4.1 check.
    let signer = Identity::from_parts(address_from_u64(1), *public_key, None);
    signer.verify(message, signature)
}
