//! NETWORK_CONFIG_REQUEST (0x0b), config chunks in NETWORK_CONFIG (0x0c) and
//! OK(NETWORK_CONFIG_REQUEST), and chunk reassembly (spec §8.10).

use crate::Identity;
use crate::dictionary::MAX_DICTIONARY_LEN;
use crate::error::{ProtocolError, Result};
use crate::network::NetworkId;
use crate::wire::{Reader, WriteExt};

/// Signature type 1: the 96-byte Ed25519 form of spec §4.1.
pub const SIGNATURE_TYPE_ED25519: u8 = 1;
/// Chunk flag: members should re-flood the chunk.
pub const CHUNK_FLAG_FAST_PROPAGATE: u8 = 0x01;
/// Largest chunk a controller cuts: 10024 − (28 + 256).
pub const MAX_CHUNK_LEN: usize = 9740;

/// NETWORK_CONFIG_REQUEST payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfigRequest {
    pub network_id: NetworkId,
    /// Request-metadata dictionary, raw text.
    pub metadata: Vec<u8>,
    /// Revision and timestamp of the config the requester already holds (0 if none).
    pub have_revision: u64,
    pub have_timestamp: u64,
}

impl NetworkConfigRequest {
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let network_id = NetworkId(r.u64("config request network id")?);
        let len = if r.is_empty() { 0 } else { r.u16("config request dictionary length")? as usize };
        let metadata = r.take(len, "config request dictionary")?.to_vec();
        let have_revision = if r.remaining() >= 8 { r.u64("config request revision")? } else { 0 };
        let have_timestamp = if r.remaining() >= 8 { r.u64("config request timestamp")? } else { 0 };
        Ok(Self { network_id, metadata, have_revision, have_timestamp })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.network_id.0);
        out.put_u16(self.metadata.len() as u16);
        out.put_slice(&self.metadata);
        out.put_u64(self.have_revision);
        out.put_u64(self.have_timestamp);
    }
}

/// The signed trailer of a chunk (absent in legacy unsigned single-chunk configs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkSignature {
    pub flags: u8,
    pub update_id: u64,
    pub total_len: u32,
    pub chunk_index: u32,
    pub signature_type: u8,
    pub signature: Vec<u8>,
}

/// One config chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChunk {
    pub network_id: NetworkId,
    pub data: Vec<u8>,
    pub signed: Option<ChunkSignature>,
}

impl ConfigChunk {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let network_id = NetworkId(r.u64("config chunk network id")?);
        let len = r.u16("config chunk length")? as usize;
        let data = r.take(len, "config chunk")?.to_vec();
        if r.is_empty() {
            return Ok(Self { network_id, data, signed: None });
        }
        let flags = r.u8("config chunk flags")?;
        let update_id = r.u64("config update id")?;
        let total_len = r.u32("config total length")?;
        let chunk_index = r.u32("config chunk index")?;
        let signature_type = r.u8("config signature type")?;
        let sig_len = r.u16("config signature length")? as usize;
        if sig_len > 96 {
            return Err(ProtocolError::TooLarge { what: "config signature", value: sig_len, limit: 96 });
        }
        let signature = r.take(sig_len, "config signature")?.to_vec();
        Ok(Self {
            network_id,
            data,
            signed: Some(ChunkSignature { flags, update_id, total_len, chunk_index, signature_type, signature }),
        })
    }

    /// Network ID through chunk index: what the controller signs.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 32);
        out.put_u64(self.network_id.0);
        out.put_u16(self.data.len() as u16);
        out.put_slice(&self.data);
        if let Some(s) = &self.signed {
            out.put_u8(s.flags);
            out.put_u64(s.update_id);
            out.put_u32(s.total_len);
            out.put_u32(s.chunk_index);
        }
        out
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_slice(&self.signed_bytes());
        if let Some(s) = &self.signed {
            out.put_u8(s.signature_type);
            out.put_u16(s.signature.len() as u16);
            out.put_slice(&s.signature);
        }
    }

    /// Sign with the controller (whose address must be the top 40 bits of the network ID).
    pub fn sign(
        &mut self,
        controller: &Identity,
        flags: u8,
        update_id: u64,
        total_len: u32,
        chunk_index: u32,
    ) -> Result<()> {
        self.signed = Some(ChunkSignature {
            flags,
            update_id,
            total_len,
            chunk_index,
            signature_type: SIGNATURE_TYPE_ED25519,
            signature: Vec::new(),
        });
        let sig = controller
            .sign(&self.signed_bytes())
            .map_err(|e| ProtocolError::Malformed { what: "controller identity", detail: e.to_string() })?;
        if let Some(s) = self.signed.as_mut() {
            s.signature = sig.to_vec();
        }
        Ok(())
    }

    /// Verify with the controller identity; the controller must own the network ID.
    pub fn verify(&self, controller: &Identity) -> bool {
        match &self.signed {
            Some(s) => {
                s.signature_type == SIGNATURE_TYPE_ED25519
                    && controller.address() == self.network_id.controller()
                    && controller.verify(&self.signed_bytes(), &s.signature)
            }
            None => false,
        }
    }
}

/// Chunks one config update may arrive in (a full-size update needs a handful).
const MAX_CHUNKS_PER_UPDATE: usize = 256;

/// Collects chunks of one or more config updates until each is complete. Memory is bounded
/// by [`MAX_DICTIONARY_LEN`] per update and `max_updates` updates in flight (oldest dropped).
#[derive(Debug)]
pub struct ConfigAssembler {
    max_updates: usize,
    pending: Vec<PendingUpdate>,
}

#[derive(Debug)]
struct PendingUpdate {
    network_id: NetworkId,
    update_id: u64,
    total_len: usize,
    have: usize,
    chunks: Vec<(u32, Vec<u8>)>,
}

impl ConfigAssembler {
    pub fn new(max_updates: usize) -> Self {
        Self { max_updates: max_updates.max(1), pending: Vec::new() }
    }

    /// Add a chunk (already verified by the caller). Returns the whole config dictionary
    /// text once every chunk of its update is present.
    pub fn add(&mut self, chunk: &ConfigChunk) -> Result<Option<Vec<u8>>> {
        let Some(sig) = &chunk.signed else {
            // Legacy single unsigned chunk: the chunk is the whole config.
            return Ok(Some(chunk.data.clone()));
        };
        let total = sig.total_len as usize;
        if total > MAX_DICTIONARY_LEN {
            return Err(ProtocolError::TooLarge { what: "network config", value: total, limit: MAX_DICTIONARY_LEN });
        }
        let pos =
            match self.pending.iter().position(|p| p.network_id == chunk.network_id && p.update_id == sig.update_id) {
                Some(p) => p,
                None => {
                    if self.pending.len() >= self.max_updates {
                        self.pending.remove(0);
                    }
                    self.pending.push(PendingUpdate {
                        network_id: chunk.network_id,
                        update_id: sig.update_id,
                        total_len: total,
                        have: 0,
                        chunks: Vec::new(),
                    });
                    self.pending.len() - 1
                }
            };
        let p = &mut self.pending[pos];
        // The chunk index is the chunk's byte offset in the update (upstream places it there).
        let start = sig.chunk_index as usize;
        let end = start + chunk.data.len();
        if p.chunks.iter().any(|(i, _)| *i == sig.chunk_index) || chunk.data.is_empty() {
            return Ok(None);
        }
        let overlaps = p.chunks.iter().any(|(i, d)| start < *i as usize + d.len() && (*i as usize) < end);
        if total != p.total_len || end > p.total_len || overlaps || p.chunks.len() >= MAX_CHUNKS_PER_UPDATE {
            let limit = p.total_len;
            self.pending.remove(pos);
            return Err(ProtocolError::TooLarge { what: "config chunk outside its update", value: end, limit });
        }
        p.have += chunk.data.len();
        p.chunks.push((sig.chunk_index, chunk.data.clone()));
        if p.have < p.total_len {
            return Ok(None);
        }
        // Non-overlapping chunks inside [0, total) adding up to total: they tile it exactly.
        let mut done = self.pending.remove(pos);
        done.chunks.sort_by_key(|(i, _)| *i);
        Ok(Some(done.chunks.into_iter().flat_map(|(_, d)| d).collect()))
    }
}
