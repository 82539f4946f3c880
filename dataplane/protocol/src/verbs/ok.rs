//! OK (0x03) payloads, by in-re verb (spec §8.3 and the per-verb sections).

use super::hello::OkHello;
use super::multicast::{OkMulticastFrame, OkMulticastGather};
use super::netconf::ConfigChunk;
use crate::Identity;
use crate::error::{ProtocolError, Result};
use crate::header::Verb;
use crate::network::NetworkId;
use crate::wire::{Reader, WriteExt};

/// Upper bound on identities in one OK(WHOIS) (each is at least 71 bytes).
pub const MAX_WHOIS_IDENTITIES: usize = 160;

/// The part of an OK after in-re verb and packet ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OkPayload {
    Hello(OkHello),
    Whois(Vec<Identity>),
    /// Copy of the ECHO payload (or, for a pushed-config ack, nwid ‖ update ID).
    Echo(Vec<u8>),
    NetworkConfig(ConfigChunk),
    MulticastGather(OkMulticastGather),
    MulticastFrame(OkMulticastFrame),
    ExtFrame(NetworkId),
    /// In-re verbs without a defined OK payload: kept raw.
    Other(Vec<u8>),
}

/// An OK message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OkMessage {
    pub in_re_verb: Verb,
    pub in_re_packet_id: [u8; 8],
    pub payload: OkPayload,
}

impl OkMessage {
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let in_re_verb = Verb::from_code(r.u8("OK in-re verb")?);
        let in_re_packet_id = r.array("OK in-re packet id")?;
        let payload = match in_re_verb {
            Verb::Hello => OkPayload::Hello(OkHello::decode(&mut r)?),
            Verb::Whois => {
                let mut ids = Vec::new();
                while !r.is_empty() {
                    if ids.len() >= MAX_WHOIS_IDENTITIES {
                        return Err(ProtocolError::TooLarge {
                            what: "OK(WHOIS) identities",
                            value: ids.len() + 1,
                            limit: MAX_WHOIS_IDENTITIES,
                        });
                    }
                    let (id, used) = Identity::from_bytes(r.rest())
                        .map_err(|e| ProtocolError::Malformed { what: "OK(WHOIS) identity", detail: e.to_string() })?;
                    r.take(used, "OK(WHOIS) identity")?;
                    ids.push(id);
                }
                OkPayload::Whois(ids)
            }
            Verb::Echo => OkPayload::Echo(r.take_rest().to_vec()),
            Verb::NetworkConfigRequest | Verb::NetworkConfig => OkPayload::NetworkConfig(ConfigChunk::decode(&mut r)?),
            Verb::MulticastGather => OkPayload::MulticastGather(OkMulticastGather::decode(&mut r)?),
            Verb::MulticastFrame => OkPayload::MulticastFrame(OkMulticastFrame::decode(&mut r)?),
            Verb::ExtFrame => OkPayload::ExtFrame(NetworkId(r.u64("OK(EXT_FRAME) network id")?)),
            _ => OkPayload::Other(r.take_rest().to_vec()),
        };
        Ok(Self { in_re_verb, in_re_packet_id, payload })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.in_re_verb.code());
        out.put_slice(&self.in_re_packet_id);
        match &self.payload {
            OkPayload::Hello(h) => h.encode(out),
            OkPayload::Whois(ids) => {
                for id in ids {
                    id.write_bytes(out, false);
                }
            }
            OkPayload::Echo(data) | OkPayload::Other(data) => out.put_slice(data),
            OkPayload::NetworkConfig(c) => c.encode(out),
            OkPayload::MulticastGather(g) => g.encode(out),
            OkPayload::MulticastFrame(f) => f.encode(out),
            OkPayload::ExtFrame(n) => out.put_u64(n.0),
        }
    }
}
