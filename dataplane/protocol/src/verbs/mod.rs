//! Verb payload codecs (spec §8): one typed struct per verb, `decode(&[u8])` and `encode`.
//!
//! [`Message`] dispatches on the verb. Decoders never panic and allocate at most in
//! proportion to their input.

pub mod frame;
pub mod hello;
pub mod multicast;
pub mod netconf;
pub mod ok;
pub mod small;

pub use frame::{ExtFrame, Frame};
pub use hello::{Hello, HelloTail, OkHello, WorldRef};
pub use multicast::{
    GatherResults, MulticastFrame, MulticastGather, MulticastLike, OkMulticastFrame, OkMulticastGather,
};
pub use netconf::{ChunkSignature, ConfigAssembler, ConfigChunk, NetworkConfigRequest};
pub use ok::{OkMessage, OkPayload};
pub use small::{DirectPath, ErrorCode, ErrorMessage, PathAck, QosRecord, Rendezvous, UserMessage};

use crate::PeerKey;
use crate::credentials::NetworkCredentials;
use crate::error::Result;
use crate::header::Verb;
use crate::wire::Reader;

/// A decoded verb payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    Nop,
    Hello(Box<Hello>, HelloTail),
    Error(ErrorMessage),
    Ok(Box<OkMessage>),
    Whois(Vec<crate::Address>),
    Rendezvous(Rendezvous),
    Frame(Frame<'a>),
    /// Not boxed: frames are the hot path and decode without allocating.
    ExtFrame(ExtFrame<'a>),
    Echo(&'a [u8]),
    MulticastLike(Vec<MulticastLike>),
    NetworkCredentials(Box<NetworkCredentials>),
    NetworkConfigRequest(NetworkConfigRequest),
    NetworkConfig(ConfigChunk),
    MulticastGather(Box<MulticastGather>),
    MulticastFrame(MulticastFrame<'a>),
    PushDirectPaths(Vec<DirectPath>),
    /// ACK: bytes received since the last ACK (disabled in 1.14, still parsed).
    Ack(u32),
    QosMeasurement(Vec<QosRecord>),
    UserMessage(UserMessage),
    /// REMOTE_TRACE / PATH_NEGOTIATION_REQUEST / unknown verbs: raw payload.
    Raw(Verb, &'a [u8]),
}

impl<'a> Message<'a> {
    /// Decode `payload` (the bytes after the verb byte, decrypted and decompressed). HELLO needs
    /// `hello_tail_key` (peer key, wire packet ID) to decrypt its moon list.
    pub fn decode(verb: Verb, payload: &'a [u8], hello_tail_key: Option<(&PeerKey, &[u8; 8])>) -> Result<Self> {
        Ok(match verb {
            Verb::Nop => Message::Nop,
            Verb::Hello => {
                let (h, tail) = Hello::decode(payload, hello_tail_key)?;
                Message::Hello(Box::new(h), tail)
            }
            Verb::Error => Message::Error(ErrorMessage::decode(payload)?),
            Verb::Ok => Message::Ok(Box::new(OkMessage::decode(payload)?)),
            Verb::Whois => Message::Whois(small::decode_whois(payload)?),
            Verb::Rendezvous => Message::Rendezvous(Rendezvous::decode(payload)?),
            Verb::Frame => Message::Frame(Frame::decode(payload)?),
            Verb::ExtFrame => Message::ExtFrame(ExtFrame::decode(payload)?),
            Verb::Echo => Message::Echo(payload),
            Verb::MulticastLike => Message::MulticastLike(multicast::decode_likes(payload)?),
            Verb::NetworkCredentials => Message::NetworkCredentials(Box::new(NetworkCredentials::decode(payload)?)),
            Verb::NetworkConfigRequest => Message::NetworkConfigRequest(NetworkConfigRequest::decode(payload)?),
            Verb::NetworkConfig => Message::NetworkConfig(ConfigChunk::decode(&mut Reader::new(payload))?),
            Verb::MulticastGather => Message::MulticastGather(Box::new(MulticastGather::decode(payload)?)),
            Verb::MulticastFrame => Message::MulticastFrame(MulticastFrame::decode(payload)?),
            Verb::PushDirectPaths => Message::PushDirectPaths(small::decode_push_direct_paths(payload)?),
            Verb::Ack => Message::Ack(Reader::new(payload).u32("ACK byte count")?),
            Verb::QosMeasurement => Message::QosMeasurement(small::decode_qos(payload)?),
            Verb::UserMessage => Message::UserMessage(UserMessage::decode(payload)?),
            other => Message::Raw(other, payload),
        })
    }

    /// The verb this message is sent with.
    pub fn verb(&self) -> Verb {
        match self {
            Message::Nop => Verb::Nop,
            Message::Hello(..) => Verb::Hello,
            Message::Error(_) => Verb::Error,
            Message::Ok(_) => Verb::Ok,
            Message::Whois(_) => Verb::Whois,
            Message::Rendezvous(_) => Verb::Rendezvous,
            Message::Frame(_) => Verb::Frame,
            Message::ExtFrame(_) => Verb::ExtFrame,
            Message::Echo(_) => Verb::Echo,
            Message::MulticastLike(_) => Verb::MulticastLike,
            Message::NetworkCredentials(_) => Verb::NetworkCredentials,
            Message::NetworkConfigRequest(_) => Verb::NetworkConfigRequest,
            Message::NetworkConfig(_) => Verb::NetworkConfig,
            Message::MulticastGather(_) => Verb::MulticastGather,
            Message::MulticastFrame(_) => Verb::MulticastFrame,
            Message::PushDirectPaths(_) => Verb::PushDirectPaths,
            Message::Ack(_) => Verb::Ack,
            Message::QosMeasurement(_) => Verb::QosMeasurement,
            Message::UserMessage(_) => Verb::UserMessage,
            Message::Raw(v, _) => *v,
        }
    }

    /// Encode the payload (after the verb byte). HELLO needs the peer key and packet ID for
    /// its encrypted tail: pass them in `hello_tail_key` (ignored for other verbs).
    pub fn encode(&self, out: &mut Vec<u8>, hello_tail_key: Option<(&PeerKey, &[u8; 8])>) -> Result<()> {
        use crate::wire::WriteExt;
        match self {
            Message::Nop => {}
            Message::Hello(h, _) => match hello_tail_key {
                Some((key, id)) => h.encode(out, key, id),
                None => {
                    return Err(crate::error::ProtocolError::NoKey("HELLO moon list".into()));
                }
            },
            Message::Error(e) => e.encode(out),
            Message::Ok(ok) => ok.encode(out),
            Message::Whois(a) => small::encode_whois(a, out),
            Message::Rendezvous(r) => r.encode(out),
            Message::Frame(f) => f.encode(out),
            Message::ExtFrame(f) => f.encode(out),
            Message::Echo(d) => out.put_slice(d),
            Message::MulticastLike(l) => multicast::encode_likes(l, out),
            Message::NetworkCredentials(c) => c.encode(out),
            Message::NetworkConfigRequest(r) => r.encode(out),
            Message::NetworkConfig(c) => c.encode(out),
            Message::MulticastGather(g) => g.encode(out),
            Message::MulticastFrame(f) => f.encode(out),
            Message::PushDirectPaths(p) => small::encode_push_direct_paths(p, out),
            Message::Ack(n) => out.put_u32(*n),
            Message::QosMeasurement(q) => small::encode_qos(q, out),
            Message::UserMessage(m) => m.encode(out),
            Message::Raw(_, d) => out.put_slice(d),
        }
        Ok(())
    }
}
