//! Just enough Ethernet/IP/UDP parsing for the RX path to find a ZeroTier datagram.
//!
//! Mirrors the XDP program's classifier (`ebpf/src/main.rs`): Ethernet with at most one 802.1Q
//! tag, IPv4 without fragmentation, IPv6 without extension headers, UDP whose length fits.

const ETH_HEADER: usize = 14;

/// Offset and length of the UDP header + payload within `frame`, and the destination port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpLocation {
    pub l4_offset: usize,
    pub udp_len: usize,
    pub dst_port: u16,
    pub src_port: u16,
}

fn be16(frame: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
}

/// Locates the UDP datagram in an Ethernet frame, or `None` for anything else.
pub fn locate_udp(frame: &[u8]) -> Option<UdpLocation> {
    let mut ethertype = be16(frame, 12)?;
    let mut l3 = ETH_HEADER;
    if ethertype == 0x8100 {
        ethertype = be16(frame, ETH_HEADER + 2)?;
        l3 += 4;
    }
    let (l4, ip_payload_len) = match ethertype {
        0x0800 => {
            let head = frame.get(l3..l3 + 20)?;
            let header_len = usize::from(head[0] & 0x0f) * 4;
            let total_len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let fragmented = u16::from_be_bytes([head[6], head[7]]) & 0x3fff != 0;
            if head[0] >> 4 != 4
                || header_len < 20
                || total_len < header_len
                || l3 + total_len > frame.len()
                || head[9] != 17
                || fragmented
            {
                return None;
            }
            (l3 + header_len, total_len - header_len)
        }
        0x86dd => {
            let head = frame.get(l3..l3 + 40)?;
            let payload_len = usize::from(u16::from_be_bytes([head[4], head[5]]));
            if head[0] >> 4 != 6 || head[6] != 17 || l3 + 40 + payload_len > frame.len() {
                return None;
            }
            (l3 + 40, payload_len)
        }
        _ => return None,
    };
    let udp = frame.get(l4..l4 + 8)?;
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < 8 || udp_len > ip_payload_len || l4 + udp_len > frame.len() {
        return None;
    }
    Some(UdpLocation {
        l4_offset: l4,
        udp_len,
        src_port: u16::from_be_bytes([udp[0], udp[1]]),
        dst_port: u16::from_be_bytes([udp[2], udp[3]]),
    })
}

/// The UDP payload of an Ethernet frame, if it carries a well-formed UDP datagram.
pub fn udp_payload(frame: &[u8]) -> Option<&[u8]> {
    let at = locate_udp(frame)?;
    frame.get(at.l4_offset + 8..at.l4_offset + at.udp_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_udp(payload: &[u8], vlan: bool) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let total = 20 + 8 + payload.len();
        f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
        let ulen = 8 + payload.len();
        f.extend_from_slice(&[0x12, 0x34, 0x27, 0x09, (ulen >> 8) as u8, ulen as u8, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn finds_udp_with_and_without_vlan() {
        for vlan in [false, true] {
            let f = ipv4_udp(b"hello zerotier", vlan);
            let at = locate_udp(&f).unwrap();
            assert_eq!(at.dst_port, 9993);
            assert_eq!(at.src_port, 0x1234);
            assert_eq!(udp_payload(&f).unwrap(), b"hello zerotier");
        }
    }

    proptest::proptest! {
        /// Any bytes, and any mutation of a valid frame: no panic, and what is found lies
        /// inside the frame.
        #[test]
        fn never_panics_and_stays_in_bounds(
            random in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            flips in proptest::collection::vec((0usize..80, proptest::num::u8::ANY), 0..6),
            workers in 1usize..16,
        ) {
            let mut mutated = ipv4_udp(b"0123456789abcdef", flips.len() % 2 == 0);
            for (at, byte) in flips {
                let len = mutated.len();
                mutated[at % len] = byte;
            }
            for frame in [&random, &mutated] {
                if let Some(at) = locate_udp(frame) {
                    proptest::prop_assert!(at.l4_offset + at.udp_len <= frame.len());
                    proptest::prop_assert!(udp_payload(frame).is_some());
                }
                proptest::prop_assert!(crate::handoff::processor_for(frame, 0, workers) < workers);
            }
        }
    }

    #[test]
    fn rejects_truncated_fragmented_and_non_udp() {
        let f = ipv4_udp(b"0123456789", false);
        for cut in 0..f.len() {
            assert!(locate_udp(&f[..cut]).is_none(), "accepted a frame cut at {cut}");
        }
        let mut claims_more = f.clone();
        claims_more[16..18].copy_from_slice(&1500u16.to_be_bytes()); // IP total length beyond the frame
        assert!(locate_udp(&claims_more).is_none());
        let mut frag = f.clone();
        frag[20] = 0x20; // MF
        assert!(locate_udp(&frag).is_none());
        let mut tcp = f.clone();
        tcp[23] = 6;
        assert!(locate_udp(&tcp).is_none());
        let mut arp = f;
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(locate_udp(&arp).is_none());
    }
}
