//! Whole packets: building (encode payload → compress → header → armor → fragment) and opening
//! (dearmor → verb byte → decompress) — spec §2, §3.1, §6, §6.7.
//!
//! Opening works in place on the caller's packet buffer plus one fixed scratch buffer for
//! decompression; nothing is allocated per packet.

use crate::compress::{compress_payload, decompress_payload};
use crate::error::{ProtocolError, Result};
use crate::fragment::fragment_packet;
use crate::header::{FLAG_FRAGMENTED, MAX_PACKET_LEN, PAYLOAD_OFFSET, VERB_OFFSET, VerbByte, write_header};
use crate::verbs::Message;
use crate::{Address, CipherSuite, PeerKey};

/// A packet after successful [`open_packet`].
#[derive(Debug)]
pub struct Opened<'a> {
    pub suite: CipherSuite,
    /// Suite 3: the IV recovered from the tag.
    pub aes_iv: Option<[u8; 8]>,
    /// Decrypted verb byte (verb + compressed flag).
    pub verb_byte: VerbByte,
    /// Verb payload, decrypted and decompressed.
    pub payload: &'a [u8],
}

/// Authenticate, decrypt and decompress a whole (reassembled) packet in place. `scratch`
/// receives the decompressed payload when the verb byte has the compressed flag.
pub fn open_packet<'a>(key: &PeerKey, packet: &'a mut [u8], scratch: &'a mut [u8]) -> Result<Opened<'a>> {
    let d = ztplane_crypto::dearmor(key, packet)?;
    let packet: &'a [u8] = packet;
    let verb_byte = VerbByte(packet[VERB_OFFSET]);
    let payload = if verb_byte.compressed() {
        let n = decompress_payload(&packet[PAYLOAD_OFFSET..], scratch)?;
        &scratch[..n]
    } else {
        &packet[PAYLOAD_OFFSET..]
    };
    Ok(Opened { suite: d.suite, aes_iv: d.aes_iv, verb_byte, payload })
}

/// Armor an already laid-out packet in place (header with hops 0, verb byte, payload): sets the
/// cipher bits and MAC and encrypts (spec §6). Thin wrapper over `ztplane_crypto::armor`.
pub fn armor_in_place(key: &PeerKey, packet: &mut [u8], suite: CipherSuite) -> Result<()> {
    Ok(ztplane_crypto::armor(key, packet, suite)?)
}

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'k> {
    pub key: &'k PeerKey,
    /// Random per packet (the caller supplies randomness: this crate is pure).
    pub packet_id: [u8; 8],
    pub destination: Address,
    pub source: Address,
    pub suite: CipherSuite,
    /// Try LZ4 (kept only if smaller, spec §6.7).
    pub compress: bool,
    /// Path MTU used to decide the fragmented flag.
    pub mtu: usize,
}

/// Build one armored packet carrying `message`. The returned bytes are the whole packet; use
/// [`send_datagrams`] (or [`fragment_packet`]) to cut it for the wire.
pub fn build_packet(out: &Outgoing<'_>, message: &Message<'_>) -> Result<Vec<u8>> {
    let mut payload = Vec::new();
    message.encode(&mut payload, Some((out.key, &out.packet_id)))?;
    let mut compressed_buf = [0u8; MAX_PACKET_LEN];
    let (body, compressed) = match out.compress {
        true => match compress_payload(&payload, &mut compressed_buf) {
            Ok(n) => (&compressed_buf[..n], true),
            Err(ProtocolError::Incompressible) => (&payload[..], false),
            Err(e) => return Err(e),
        },
        false => (&payload[..], false),
    };
    let total = PAYLOAD_OFFSET + body.len();
    if total > MAX_PACKET_LEN {
        return Err(ProtocolError::TooLarge { what: "packet", value: total, limit: MAX_PACKET_LEN });
    }
    let mut packet = vec![0u8; total];
    let flags = if total > out.mtu { FLAG_FRAGMENTED } else { 0 };
    write_header(
        &mut packet,
        out.packet_id,
        &out.destination,
        &out.source,
        flags,
        VerbByte::new(message.verb(), compressed),
    )?;
    packet[PAYLOAD_OFFSET..].copy_from_slice(body);
    armor_in_place(out.key, &mut packet, out.suite)?;
    Ok(packet)
}

/// Lay out and armor one packet in `buf` without allocating (the hot send path; no
/// compression, as 1.14 never compresses unicast frames): header, verb byte, then the payload
/// that `write_payload` writes into the buffer after byte 28, returning its length. Returns
/// the packet length; the fragmented flag is set when it exceeds `out.mtu`.
pub fn seal_into(
    buf: &mut [u8],
    out: &Outgoing<'_>,
    verb: crate::header::Verb,
    write_payload: impl FnOnce(&mut [u8]) -> Result<usize>,
) -> Result<usize> {
    let cap = buf.len().min(MAX_PACKET_LEN);
    if cap < PAYLOAD_OFFSET {
        return Err(ProtocolError::Truncated { what: "packet buffer", needed: PAYLOAD_OFFSET, available: cap });
    }
    let body = write_payload(&mut buf[PAYLOAD_OFFSET..cap])?;
    let total = PAYLOAD_OFFSET + body;
    if total > cap {
        return Err(ProtocolError::TooLarge { what: "packet", value: total, limit: cap });
    }
    let flags = if total > out.mtu { FLAG_FRAGMENTED } else { 0 };
    write_header(&mut buf[..total], out.packet_id, &out.destination, &out.source, flags, VerbByte::new(verb, false))?;
    armor_in_place(out.key, &mut buf[..total], out.suite)?;
    Ok(total)
}

/// FRAME (spec §8.6) straight into `buf`: network ID, ethertype, Ethernet payload.
pub fn seal_frame_into(
    buf: &mut [u8],
    out: &Outgoing<'_>,
    network_id: crate::network::NetworkId,
    ethertype: u16,
    ethernet_payload: &[u8],
) -> Result<usize> {
    seal_into(buf, out, crate::header::Verb::Frame, |p| {
        let n = 10 + ethernet_payload.len();
        if p.len() < n {
            return Err(ProtocolError::TooLarge { what: "FRAME payload", value: n, limit: p.len() });
        }
        p[..8].copy_from_slice(&network_id.0.to_be_bytes());
        p[8..10].copy_from_slice(&ethertype.to_be_bytes());
        p[10..n].copy_from_slice(ethernet_payload);
        Ok(n)
    })
}

/// As [`seal_frame_into`] for a bridged frame: EXT_FRAME `nwid ‖ flags 0 ‖ dest MAC ‖ source MAC ‖
/// ethertype ‖ payload` (VL2 §4.1), `ethernet_frame` whole (its MACs are carried).
pub fn seal_ext_frame_into(
    buf: &mut [u8],
    out: &Outgoing<'_>,
    network_id: crate::network::NetworkId,
    ethernet_frame: &[u8],
) -> Result<usize> {
    if ethernet_frame.len() < 14 {
        return Err(ProtocolError::Truncated { what: "Ethernet frame", needed: 14, available: ethernet_frame.len() });
    }
    seal_into(buf, out, crate::header::Verb::ExtFrame, |p| {
        // nwid, flags, then the frame as it is: dest MAC, source MAC, ethertype, payload.
        let n = 9 + ethernet_frame.len();
        if p.len() < n {
            return Err(ProtocolError::TooLarge { what: "EXT_FRAME payload", value: n, limit: p.len() });
        }
        p[..8].copy_from_slice(&network_id.0.to_be_bytes());
        p[8] = 0;
        p[9..n].copy_from_slice(ethernet_frame);
        Ok(n)
    })
}

/// Build and cut into datagrams at `out.mtu`.
pub fn send_datagrams(out: &Outgoing<'_>, message: &Message<'_>) -> Result<Vec<Vec<u8>>> {
    let packet = build_packet(out, message)?;
    let mut datagrams = Vec::new();
    fragment_packet(&packet, out.mtu, |d| datagrams.push(d.to_vec()))?;
    Ok(datagrams)
}
