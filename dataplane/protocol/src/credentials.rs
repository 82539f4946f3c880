//! Network credentials (spec §8.16): certificate of membership (COM), certificate of ownership
//! (COO), tags, revocations and capabilities, plus the NETWORK_CREDENTIALS payload that carries
//! them. COM is also carried by MULTICAST_GATHER / EXT_FRAME and as netconf key `C`.
//!
//! Capabilities are parsed only far enough to skip them exactly (rule list and custody chain).

use crate::error::{ProtocolError, Result};
use crate::network::NetworkId;
use crate::wire::{Reader, WriteExt, address_to_bytes};
use crate::{Address, Identity};
use sha2::{Digest, Sha384};
use std::net::{Ipv4Addr, Ipv6Addr};

/// `ZT_C25519_SIGNATURE_LEN`.
pub const SIGNATURE_LEN: usize = 96;
/// `ZT_NETWORK_COM_MAX_QUALIFIERS`.
pub const COM_MAX_QUALIFIERS: usize = 8;
/// `ZT_CERTIFICATEOFOWNERSHIP_MAX_THINGS`.
pub const COO_MAX_THINGS: usize = 16;
/// `ZT_MAX_CAPABILITY_RULES`.
pub const CAPABILITY_MAX_RULES: usize = 64;
/// `ZT_MAX_CAPABILITY_CUSTODY_CHAIN_LENGTH`.
pub const CAPABILITY_MAX_CUSTODY: usize = 7;
/// Upper bound on any credential count field we accept in one payload.
pub const MAX_CREDENTIALS: usize = 256;

/// Qualifier IDs of a COM.
pub const COM_QUALIFIER_TIMESTAMP: u64 = 0;
pub const COM_QUALIFIER_NETWORK_ID: u64 = 1;
pub const COM_QUALIFIER_ISSUED_TO: u64 = 2;

/// One COM qualifier: (id, value, max delta).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Qualifier {
    pub id: u64,
    pub value: u64,
    pub max_delta: u64,
}

/// Certificate of membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateOfMembership {
    pub qualifiers: Vec<Qualifier>,
    /// Zero address = unsigned.
    pub signed_by: Address,
    pub signature: Option<[u8; SIGNATURE_LEN]>,
}

impl CertificateOfMembership {
    /// Parse one COM starting with its `0x01` type byte.
    pub fn read(r: &mut Reader<'_>) -> Result<Self> {
        let kind = r.u8("COM type")?;
        if kind != 1 {
            return Err(ProtocolError::InvalidValue { what: "COM type", value: kind as u64 });
        }
        let count = r.u16("COM qualifier count")? as usize;
        if count > COM_MAX_QUALIFIERS {
            return Err(ProtocolError::TooLarge { what: "COM qualifiers", value: count, limit: COM_MAX_QUALIFIERS });
        }
        let mut qualifiers = Vec::with_capacity(count);
        for _ in 0..count {
            qualifiers.push(Qualifier {
                id: r.u64("COM qualifier id")?,
                value: r.u64("COM qualifier value")?,
                max_delta: r.u64("COM qualifier max delta")?,
            });
        }
        let signed_by = r.address("COM signer")?;
        let signature = if signed_by.as_u64() != 0 { Some(r.array("COM signature")?) } else { None };
        Ok(Self { qualifiers, signed_by, signature })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.put_u8(1);
        out.put_u16(self.qualifiers.len() as u16);
        out.put_slice(&self.signed_bytes());
        out.put_address(&self.signed_by);
        if let Some(sig) = &self.signature {
            out.put_slice(sig);
        }
    }

    /// Exactly the serialized qualifiers: what the controller signs.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.qualifiers.len() * 24);
        for q in &self.qualifiers {
            out.put_u64(q.id);
            out.put_u64(q.value);
            out.put_u64(q.max_delta);
        }
        out
    }

    /// Sign with the controller identity (sets `signed_by` and `signature`).
    pub fn sign(&mut self, controller: &Identity) -> Result<()> {
        let sig = controller
            .sign(&self.signed_bytes())
            .map_err(|e| ProtocolError::Malformed { what: "COM signer identity", detail: e.to_string() })?;
        self.signed_by = controller.address();
        self.signature = Some(sig);
        Ok(())
    }

    fn qualifier(&self, id: u64) -> Option<u64> {
        self.qualifiers.iter().find(|q| q.id == id).map(|q| q.value)
    }
    pub fn timestamp(&self) -> Option<u64> {
        self.qualifier(COM_QUALIFIER_TIMESTAMP)
    }
    pub fn network_id(&self) -> Option<NetworkId> {
        self.qualifier(COM_QUALIFIER_NETWORK_ID).map(NetworkId)
    }
    pub fn issued_to(&self) -> Option<Address> {
        self.qualifier(COM_QUALIFIER_ISSUED_TO).map(crate::wire::address_from_u64)
    }

    /// Qualifiers 3..6 hold SHA-384(address ‖ public key)[0..32] of the member (spec §8.16).
    pub fn identity_hash_matches(&self, member: &Identity) -> bool {
        let expected = identity_hash(member);
        (0..4).all(|i| {
            let want = u64::from_be_bytes(expected[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
            self.qualifier(3 + i as u64) == Some(want)
        })
    }

    /// Verify the controller's signature over the qualifiers.
    pub fn verify(&self, signer: &Identity) -> bool {
        match &self.signature {
            Some(sig) => signer.address() == self.signed_by && signer.verify(&self.signed_bytes(), sig),
            None => false,
        }
    }

    /// Build a COM the way a 1.14.1 controller does (7 qualifiers), unsigned.
    pub fn new_for_member(network_id: NetworkId, timestamp: u64, window_ms: u64, member: &Identity) -> Self {
        let hash = identity_hash(member);
        let mut qualifiers = vec![
            Qualifier { id: COM_QUALIFIER_TIMESTAMP, value: timestamp, max_delta: window_ms },
            Qualifier { id: COM_QUALIFIER_NETWORK_ID, value: network_id.0, max_delta: 0 },
            Qualifier {
                id: COM_QUALIFIER_ISSUED_TO,
                value: crate::wire::address_to_u64(&member.address()),
                max_delta: u64::MAX,
            },
        ];
        for i in 0..4 {
            let value = u64::from_be_bytes(hash[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
            qualifiers.push(Qualifier { id: 3 + i as u64, value, max_delta: u64::MAX });
        }
        Self { qualifiers, signed_by: crate::wire::address_from_u64(0), signature: None }
    }
}

fn identity_hash(member: &Identity) -> [u8; 48] {
    let mut h = Sha384::new();
    h.update(address_to_bytes(&member.address()));
    h.update(member.public_key());
    h.finalize().into()
}

/// A thing a COO claims (spec §8.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnedThing {
    Mac([u8; 6]),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Other { kind: u8, value: [u8; 16] },
}

impl std::fmt::Display for OwnedThing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OwnedThing::Mac(m) => write!(f, "mac:{}", crate::network::Mac::from_octets(*m)),
            OwnedThing::Ipv4(a) => write!(f, "ipv4:{a}"),
            OwnedThing::Ipv6(a) => write!(f, "ipv6:{a}"),
            OwnedThing::Other { kind, .. } => write!(f, "type{kind}"),
        }
    }
}

impl OwnedThing {
    fn to_wire(self) -> (u8, [u8; 16]) {
        let mut v = [0u8; 16];
        match self {
            OwnedThing::Mac(m) => {
                v[..6].copy_from_slice(&m);
                (1, v)
            }
            OwnedThing::Ipv4(a) => {
                v[..4].copy_from_slice(&a.octets());
                (2, v)
            }
            OwnedThing::Ipv6(a) => (3, a.octets()),
            OwnedThing::Other { kind, value } => (kind, value),
        }
    }
    fn from_wire(kind: u8, v: [u8; 16]) -> Self {
        match kind {
            1 => OwnedThing::Mac([v[0], v[1], v[2], v[3], v[4], v[5]]),
            2 => OwnedThing::Ipv4(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
            3 => OwnedThing::Ipv6(Ipv6Addr::from(v)),
            kind => OwnedThing::Other { kind, value: v },
        }
    }
}

/// Certificate of ownership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateOfOwnership {
    pub network_id: NetworkId,
    pub timestamp: u64,
    pub flags: u64,
    pub id: u32,
    pub things: Vec<OwnedThing>,
    pub issued_to: Address,
    pub signed_by: Address,
    pub signature_type: u8,
    pub signature: Vec<u8>,
    pub extension: Vec<u8>,
}

impl CertificateOfOwnership {
    pub fn read(r: &mut Reader<'_>) -> Result<Self> {
        let network_id = NetworkId(r.u64("COO network id")?);
        let timestamp = r.u64("COO timestamp")?;
        let flags = r.u64("COO flags")?;
        let id = r.u32("COO id")?;
        let count = r.u16("COO thing count")? as usize;
        if count > COO_MAX_THINGS {
            return Err(ProtocolError::TooLarge { what: "COO things", value: count, limit: COO_MAX_THINGS });
        }
        let mut things = Vec::with_capacity(count);
        for _ in 0..count {
            let kind = r.u8("COO thing type")?;
            things.push(OwnedThing::from_wire(kind, r.array("COO thing value")?));
        }
        let issued_to = r.address("COO issued-to")?;
        let signed_by = r.address("COO signer")?;
        let signature_type = r.u8("COO signature type")?;
        let sig_len = r.u16("COO signature length")? as usize;
        if sig_len > SIGNATURE_LEN {
            return Err(ProtocolError::TooLarge { what: "COO signature", value: sig_len, limit: SIGNATURE_LEN });
        }
        let signature = r.take(sig_len, "COO signature")?.to_vec();
        let ext_len = r.u16("COO extension length")? as usize;
        let extension = r.take(ext_len, "COO extension")?.to_vec();
        Ok(Self {
            network_id,
            timestamp,
            flags,
            id,
            things,
            issued_to,
            signed_by,
            signature_type,
            signature,
            extension,
        })
    }

    fn write_body(&self, out: &mut Vec<u8>) {
        out.put_u64(self.network_id.0);
        out.put_u64(self.timestamp);
        out.put_u64(self.flags);
        out.put_u32(self.id);
        out.put_u16(self.things.len() as u16);
        for t in &self.things {
            let (kind, v) = t.to_wire();
            out.put_u8(kind);
            out.put_slice(&v);
        }
        out.put_address(&self.issued_to);
        out.put_address(&self.signed_by);
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        self.write_body(out);
        out.put_u8(self.signature_type);
        out.put_u16(self.signature.len() as u16);
        out.put_slice(&self.signature);
        out.put_u16(self.extension.len() as u16);
        out.put_slice(&self.extension);
    }

    /// 8 × 0x7f ‖ nwid..signer ‖ u16 extension length ‖ extension ‖ 8 × 0x7f.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = vec![0x7f; 8];
        self.write_body(&mut out);
        out.put_u16(self.extension.len() as u16);
        out.put_slice(&self.extension);
        out.put_slice(&[0x7f; 8]);
        out
    }

    pub fn sign(&mut self, signer: &Identity) -> Result<()> {
        self.signed_by = signer.address();
        let sig = signer
            .sign(&self.signed_bytes())
            .map_err(|e| ProtocolError::Malformed { what: "COO signer identity", detail: e.to_string() })?;
        self.signature_type = 1;
        self.signature = sig.to_vec();
        Ok(())
    }

    pub fn verify(&self, signer: &Identity) -> bool {
        self.signature_type == 1
            && signer.address() == self.signed_by
            && signer.verify(&self.signed_bytes(), &self.signature)
    }
}

/// A tag credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub network_id: NetworkId,
    pub timestamp: u64,
    pub id: u32,
    pub value: u32,
    pub issued_to: Address,
    pub signed_by: Address,
    pub signature_type: u8,
    pub signature: Vec<u8>,
    pub extension: Vec<u8>,
}

impl Tag {
    /// What the controller signs (zerotier-vl2 §3.7): `7f×8 ‖ nwid ‖ ts ‖ id ‖ value ‖ issued-to ‖ signer ‖
    /// u16 0 ‖ 7f×8`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = vec![0x7f; 8];
        out.put_u64(self.network_id.0);
        out.put_u64(self.timestamp);
        out.put_u32(self.id);
        out.put_u32(self.value);
        out.put_address(&self.issued_to);
        out.put_address(&self.signed_by);
        out.put_u16(0);
        out.extend_from_slice(&[0x7f; 8]);
        out
    }

    pub fn read(r: &mut Reader<'_>) -> Result<Self> {
        let network_id = NetworkId(r.u64("tag network id")?);
        let timestamp = r.u64("tag timestamp")?;
        let id = r.u32("tag id")?;
        let value = r.u32("tag value")?;
        let issued_to = r.address("tag issued-to")?;
        let signed_by = r.address("tag signer")?;
        let (signature_type, signature, extension) = read_signature_and_extension(r, "tag")?;
        Ok(Self { network_id, timestamp, id, value, issued_to, signed_by, signature_type, signature, extension })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.put_u64(self.network_id.0);
        out.put_u64(self.timestamp);
        out.put_u32(self.id);
        out.put_u32(self.value);
        out.put_address(&self.issued_to);
        out.put_address(&self.signed_by);
        write_signature_and_extension(out, self.signature_type, &self.signature, &self.extension);
    }
}

/// A revocation credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub id: u32,
    pub network_id: NetworkId,
    pub credential_id: u32,
    pub threshold: u64,
    pub flags: u64,
    pub target: Address,
    pub signed_by: Address,
    pub credential_type: u8,
    pub signature_type: u8,
    pub signature: Vec<u8>,
    pub extension: Vec<u8>,
}

impl Revocation {
    /// What the controller signs (zerotier-vl2 §3.6): the serialized fields before the signature, with a zero
    /// extension length, between `7f×8` guards.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = vec![0x7f; 8];
        out.put_u32(0);
        out.put_u32(self.id);
        out.put_u64(self.network_id.0);
        out.put_u32(0);
        out.put_u32(self.credential_id);
        out.put_u64(self.threshold);
        out.put_u64(self.flags);
        out.put_address(&self.target);
        out.put_address(&self.signed_by);
        out.put_u8(self.credential_type);
        out.put_u16(0);
        out.extend_from_slice(&[0x7f; 8]);
        out
    }

    pub fn read(r: &mut Reader<'_>) -> Result<Self> {
        r.take(4, "revocation reserved")?;
        let id = r.u32("revocation id")?;
        let network_id = NetworkId(r.u64("revocation network id")?);
        r.take(4, "revocation reserved")?;
        let credential_id = r.u32("revocation credential id")?;
        let threshold = r.u64("revocation threshold")?;
        let flags = r.u64("revocation flags")?;
        let target = r.address("revocation target")?;
        let signed_by = r.address("revocation signer")?;
        let credential_type = r.u8("revocation credential type")?;
        let (signature_type, signature, extension) = read_signature_and_extension(r, "revocation")?;
        Ok(Self {
            id,
            network_id,
            credential_id,
            threshold,
            flags,
            target,
            signed_by,
            credential_type,
            signature_type,
            signature,
            extension,
        })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.put_u32(0);
        out.put_u32(self.id);
        out.put_u64(self.network_id.0);
        out.put_u32(0);
        out.put_u32(self.credential_id);
        out.put_u64(self.threshold);
        out.put_u64(self.flags);
        out.put_address(&self.target);
        out.put_address(&self.signed_by);
        out.put_u8(self.credential_type);
        write_signature_and_extension(out, self.signature_type, &self.signature, &self.extension);
    }
}

fn read_signature_and_extension(r: &mut Reader<'_>, _what: &'static str) -> Result<(u8, Vec<u8>, Vec<u8>)> {
    let signature_type = r.u8("credential signature type")?;
    let sig_len = r.u16("credential signature length")? as usize;
    if sig_len > SIGNATURE_LEN {
        return Err(ProtocolError::TooLarge { what: "credential signature", value: sig_len, limit: SIGNATURE_LEN });
    }
    let signature = r.take(sig_len, "credential signature")?.to_vec();
    let ext_len = r.u16("credential extension length")? as usize;
    let extension = r.take(ext_len, "credential extension")?.to_vec();
    Ok((signature_type, signature, extension))
}

fn write_signature_and_extension(out: &mut Vec<u8>, kind: u8, sig: &[u8], ext: &[u8]) {
    out.put_u8(kind);
    out.put_u16(sig.len() as u16);
    out.put_slice(sig);
    out.put_u16(ext.len() as u16);
    out.put_slice(ext);
}

/// A capability, kept as its raw serialized bytes (rules are not interpreted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    pub network_id: NetworkId,
    pub timestamp: u64,
    pub id: u32,
    pub rule_count: u16,
    /// The whole serialized capability, for re-encoding.
    pub raw: Vec<u8>,
}

impl Capability {
    /// Walk a capability: header, rules (type ‖ length ‖ field), custody chain, extension.
    pub fn read(r: &mut Reader<'_>) -> Result<Self> {
        let start = r.clone();
        let network_id = NetworkId(r.u64("capability network id")?);
        let timestamp = r.u64("capability timestamp")?;
        let id = r.u32("capability id")?;
        let rule_count = r.u16("capability rule count")?;
        if rule_count as usize > CAPABILITY_MAX_RULES {
            return Err(ProtocolError::TooLarge {
                what: "capability rules",
                value: rule_count as usize,
                limit: CAPABILITY_MAX_RULES,
            });
        }
        for _ in 0..rule_count {
            r.u8("capability rule type")?;
            let len = r.u8("capability rule length")? as usize;
            r.take(len, "capability rule")?;
        }
        let max_custody = r.u8("capability custody chain length")? as usize;
        if !(1..=CAPABILITY_MAX_CUSTODY).contains(&max_custody) {
            return Err(ProtocolError::InvalidValue {
                what: "capability custody chain length",
                value: max_custody as u64,
            });
        }
        for i in 0.. {
            let to = r.address("capability custody to")?;
            if to.as_u64() == 0 {
                break;
            }
            if i >= max_custody {
                return Err(ProtocolError::TooLarge {
                    what: "capability custody chain",
                    value: i + 1,
                    limit: max_custody,
                });
            }
            r.address("capability custody from")?;
            let sig_type = r.u8("capability signature type")?;
            let len = r.u16("capability signature length")? as usize;
            if sig_type == 1 && len != SIGNATURE_LEN {
                return Err(ProtocolError::InvalidValue { what: "capability signature length", value: len as u64 });
            }
            r.take(len, "capability signature")?;
        }
        let ext = r.u16("capability extension length")? as usize;
        r.take(ext, "capability extension")?;
        let consumed = r.position() - start.position();
        let raw = start.rest()[..consumed].to_vec();
        Ok(Self { network_id, timestamp, id, rule_count, raw })
    }
}

/// The NETWORK_CREDENTIALS payload (verb 0x0a).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkCredentials {
    pub coms: Vec<CertificateOfMembership>,
    pub capabilities: Vec<Capability>,
    pub tags: Vec<Tag>,
    pub revocations: Vec<Revocation>,
    pub certificates_of_ownership: Vec<CertificateOfOwnership>,
}

fn read_count(r: &mut Reader<'_>, what: &'static str) -> Result<Option<usize>> {
    if r.is_empty() {
        return Ok(None);
    }
    let n = r.u16(what)? as usize;
    if n > MAX_CREDENTIALS {
        return Err(ProtocolError::TooLarge { what, value: n, limit: MAX_CREDENTIALS });
    }
    Ok(Some(n))
}

impl NetworkCredentials {
    /// Parse; sections after the COM list are optional (older senders stop early).
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let mut out = NetworkCredentials::default();
        loop {
            if r.is_empty() {
                return Ok(out);
            }
            match r.rest()[0] {
                0 => {
                    r.u8("COM list terminator")?;
                    break;
                }
                _ => {
                    if out.coms.len() >= MAX_CREDENTIALS {
                        return Err(ProtocolError::TooLarge {
                            what: "COMs",
                            value: out.coms.len() + 1,
                            limit: MAX_CREDENTIALS,
                        });
                    }
                    out.coms.push(CertificateOfMembership::read(&mut r)?)
                }
            }
        }
        if let Some(n) = read_count(&mut r, "capability count")? {
            for _ in 0..n {
                out.capabilities.push(Capability::read(&mut r)?);
            }
        }
        if let Some(n) = read_count(&mut r, "tag count")? {
            for _ in 0..n {
                out.tags.push(Tag::read(&mut r)?);
            }
        }
        if let Some(n) = read_count(&mut r, "revocation count")? {
            for _ in 0..n {
                out.revocations.push(Revocation::read(&mut r)?);
            }
        }
        if let Some(n) = read_count(&mut r, "COO count")? {
            for _ in 0..n {
                out.certificates_of_ownership.push(CertificateOfOwnership::read(&mut r)?);
            }
        }
        Ok(out)
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        for com in &self.coms {
            com.write(out);
        }
        out.put_u8(0);
        out.put_u16(self.capabilities.len() as u16);
        for c in &self.capabilities {
            out.put_slice(&c.raw);
        }
        out.put_u16(self.tags.len() as u16);
        for t in &self.tags {
            t.write(out);
        }
        out.put_u16(self.revocations.len() as u16);
        for rv in &self.revocations {
            rv.write(out);
        }
        out.put_u16(self.certificates_of_ownership.len() as u16);
        for coo in &self.certificates_of_ownership {
            coo.write(out);
        }
    }
}
