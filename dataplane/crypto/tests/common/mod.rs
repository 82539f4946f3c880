//! Shared test helpers: locating `shared/`, hex, JSON vectors, identities and a minimal pcap reader.
#![allow(dead_code)]
use std::path::PathBuf;
use ztplane_crypto::Identity;

/// `<workspace root>/../shared`; panics with a clear message if it is missing.
pub fn shared_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    assert!(
        dir.join("vectors").is_dir(),
        "reference material not found at {} (expected <workspace root>/../shared with vectors/ and conformance/)",
        dir.display()
    );
    dir
}

pub fn read_shared(relative: &str) -> Vec<u8> {
    let path = shared_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn json(relative: &str) -> serde_json::Value {
    serde_json::from_slice(&read_shared(relative)).unwrap_or_else(|e| panic!("parsing {relative}: {e}"))
}

/// The non-empty `vectors` array of a vector file.
pub fn vector_list(relative: &str) -> Vec<serde_json::Value> {
    let vectors = json(relative)["vectors"].as_array().cloned().unwrap_or_default();
    assert!(!vectors.is_empty(), "{relative} has no vectors");
    vectors
}

pub fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex_array<const N: usize>(text: &str) -> [u8; N] {
    unhex(text).try_into().unwrap_or_else(|v: Vec<u8>| panic!("expected {N} bytes, got {}", v.len()))
}

pub fn field<'a>(value: &'a serde_json::Value, name: &str) -> &'a str {
    value[name].as_str().unwrap_or_else(|| panic!("missing string field {name}"))
}

/// Node identity from `conformance/zt-1.14.1/nodes/<file>`.
pub fn node_identity(file: &str) -> (Identity, String) {
    let text = String::from_utf8(read_shared(&format!("conformance/zt-1.14.1/nodes/{file}"))).expect("utf-8");
    (text.parse().unwrap_or_else(|e| panic!("{file}: {e}")), text)
}

/// Deterministic pseudo-random numbers (xorshift64) for generated test inputs.
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// One UDP datagram from a capture.
pub struct Datagram {
    pub index: usize,
    pub payload: Vec<u8>,
}

/// Reads a classic little-endian pcap of Ethernet/IPv4/UDP frames and returns every UDP payload in order.
pub fn read_pcap(relative: &str) -> Vec<Datagram> {
    let bytes = read_shared(relative);
    assert!(bytes.len() >= 24, "pcap too short");
    assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1], "expected little-endian microsecond pcap");
    assert_eq!(u32::from_le_bytes(bytes[20..24].try_into().unwrap()), 1, "expected Ethernet link type");
    let mut offset = 24;
    let mut out = Vec::new();
    while offset + 16 <= bytes.len() {
        let captured = u32::from_le_bytes(bytes[offset + 8..offset + 12].try_into().unwrap()) as usize;
        let frame = &bytes[offset + 16..offset + 16 + captured];
        offset += 16 + captured;
        assert_eq!(&frame[12..14], &[0x08, 0x00], "frame {} is not IPv4", out.len());
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        assert_eq!(ip[9], 17, "frame {} is not UDP", out.len());
        let udp = &ip[ihl..];
        let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        out.push(Datagram { index: out.len(), payload: udp[8..udp_len].to_vec() });
    }
    out
}
