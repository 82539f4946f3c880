//! LZ4 block compression of verb payloads (spec §6.7).
//!
//! Decompression writes into a caller buffer and never produces more than
//! [`MAX_DECOMPRESSED_PAYLOAD`] bytes, so a hostile packet cannot make us allocate or write more
//! than one maximum-size packet.

use crate::error::{ProtocolError, Result};
use crate::header::{MAX_PACKET_LEN, PAYLOAD_OFFSET};

/// Largest payload (after the verb byte) a packet can decompress to: 10024 − 28.
pub const MAX_DECOMPRESSED_PAYLOAD: usize = MAX_PACKET_LEN - PAYLOAD_OFFSET;
/// Senders only try to compress payloads longer than this.
pub const COMPRESSION_THRESHOLD: usize = 64;

/// Decompress a raw LZ4 block into `out` (at most `out.len()` and at most
/// [`MAX_DECOMPRESSED_PAYLOAD`] bytes). Returns the decompressed length.
pub fn decompress_payload(compressed: &[u8], out: &mut [u8]) -> Result<usize> {
    let limit = out.len().min(MAX_DECOMPRESSED_PAYLOAD);
    lz4_flex::block::decompress_into(compressed, &mut out[..limit])
        .map_err(|e| ProtocolError::Decompression(e.to_string()))
}

/// Compress `payload` into `out` if that makes it smaller and the payload is above the
/// sender threshold. Returns the compressed length, or [`ProtocolError::Incompressible`] when
/// the payload should be sent as is.
pub fn compress_payload(payload: &[u8], out: &mut [u8]) -> Result<usize> {
    if payload.len() <= COMPRESSION_THRESHOLD {
        return Err(ProtocolError::Incompressible);
    }
    let bound = lz4_flex::block::get_maximum_output_size(payload.len());
    if out.len() < bound {
        // lz4_flex needs worst-case room; use a stack buffer for packet-sized payloads.
        let mut scratch = [0u8; MAX_PACKET_LEN + MAX_PACKET_LEN / 255 + 64];
        if scratch.len() < bound {
            return Err(ProtocolError::TooLarge {
                what: "payload to compress",
                value: payload.len(),
                limit: MAX_PACKET_LEN,
            });
        }
        let n = lz4_flex::block::compress_into(payload, &mut scratch)
            .map_err(|e| ProtocolError::Decompression(e.to_string()))?;
        if n >= payload.len() || n > out.len() {
            return Err(ProtocolError::Incompressible);
        }
        out[..n].copy_from_slice(&scratch[..n]);
        return Ok(n);
    }
    let n = lz4_flex::block::compress_into(payload, out).map_err(|e| ProtocolError::Decompression(e.to_string()))?;
    if n >= payload.len() {
        return Err(ProtocolError::Incompressible);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let payload: Vec<u8> = (0..2000).map(|i| (i % 17) as u8).collect();
        let mut c = [0u8; MAX_PACKET_LEN];
        let n = compress_payload(&payload, &mut c).unwrap();
        assert!(n < payload.len());
        let mut d = [0u8; MAX_PACKET_LEN];
        let m = decompress_payload(&c[..n], &mut d).unwrap();
        assert_eq!(&d[..m], &payload[..]);
    }

    #[test]
    fn small_or_random_payloads_stay_plain() {
        let mut c = [0u8; 256];
        assert_eq!(compress_payload(&[0u8; 64], &mut c), Err(ProtocolError::Incompressible));
        let noise: Vec<u8> = (0..200u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        assert!(compress_payload(&noise, &mut c).is_err());
    }

    #[test]
    fn decompression_is_bounded() {
        // A block claiming a huge run of zeros: literal 0 then a match of ~20000 bytes.
        let payload = vec![0u8; 20_000];
        let compressed = lz4_flex::block::compress(&payload);
        let mut out = vec![0u8; 20_000];
        assert!(decompress_payload(&compressed, &mut out).is_err(), "output above 9996 bytes must fail");
        assert!(decompress_payload(&[0xff, 0xff, 0xff], &mut out).is_err());
    }
}
