//! Flow identification for balance-xor / balance-aware (bonding spec §6.5, protocol spec §10).
//!
//! zerotier-one's flow ID is `srcPort ^ dstPort ^ proto` and ignores IP addresses (§11.14), so every host
//! pair talking on the same ports shares one flow and one link. ztplane hashes the inner frame's source and
//! destination addresses, ports and protocol; traffic without ports (ICMP, fragments, non-IP) hashes its
//! addresses and protocol, so it is still pinned per host pair instead of being sprayed per packet.

use std::net::IpAddr;

/// The fields of an inner frame that identify a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (TCP 6, UDP 17, ...).
    pub protocol: u8,
    /// Source and destination ports; 0 when the protocol has none or the packet is a non-first fragment.
    pub src_port: u16,
    pub dst_port: u16,
}

/// A 64-bit flow hash; the per-packet decision indexes tables with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowHash(pub u64);

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const PROTOCOLS_WITH_PORTS: [u8; 4] = [6, 17, 132, 136];

impl FlowKey {
    /// Hash of the five fields (murmur3 finalizer over a folded word; good avalanche, no allocation).
    pub fn hash(&self) -> FlowHash {
        let mut h: u64 = 0x5851_F42D_4C95_7F2D ^ (self.protocol as u64);
        let mut mix = |word: u64| {
            h = (h ^ fmix64(word)).rotate_left(27).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        };
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => mix(((u32::from(s) as u64) << 32) | u32::from(d) as u64),
            (s, d) => {
                let s = ip_bits(s);
                let d = ip_bits(d);
                mix(s as u64);
                mix((s >> 64) as u64);
                mix(d as u64);
                mix((d >> 64) as u64);
            }
        }
        mix(((self.src_port as u64) << 16) | self.dst_port as u64);
        FlowHash(fmix64(h))
    }

    /// Parse an Ethernet payload (`ethertype` + bytes after the Ethernet header, as carried in FRAME /
    /// EXT_FRAME). `None` for non-IP or truncated packets.
    pub fn from_ethernet_payload(ethertype: u16, payload: &[u8]) -> Option<FlowKey> {
        match ethertype {
            ETHERTYPE_IPV4 => parse_ipv4(payload),
            ETHERTYPE_IPV6 => parse_ipv6(payload),
            _ => None,
        }
    }
}

/// The hash the engine uses for a frame: the flow hash for IP traffic, a hash of the ethertype otherwise
/// (non-IP traffic between two peers is one flow).
pub fn frame_flow_hash(ethertype: u16, payload: &[u8]) -> FlowHash {
    match FlowKey::from_ethernet_payload(ethertype, payload) {
        Some(key) => key.hash(),
        None => FlowHash(fmix64(0xE7E7_0000_0000_0000 | ethertype as u64)),
    }
}

fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// MurmurHash3's 64-bit finalizer.
pub(crate) fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    k ^= k >> 33;
    k = k.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    k ^ (k >> 33)
}

fn ports_at(payload: &[u8], offset: usize) -> (u16, u16) {
    match payload.get(offset..offset + 4) {
        Some(p) => (u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]])),
        None => (0, 0),
    }
}

fn parse_ipv4(p: &[u8]) -> Option<FlowKey> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let header_len = ((p[0] & 0x0F) as usize) * 4;
    if header_len < 20 {
        return None;
    }
    let protocol = p[9];
    let src = IpAddr::from(<[u8; 4]>::try_from(&p[12..16]).ok()?);
    let dst = IpAddr::from(<[u8; 4]>::try_from(&p[16..20]).ok()?);
    // Only the first fragment carries ports; others hash on addresses alone (consistently for the flow).
    let fragment_offset = u16::from_be_bytes([p[6], p[7]]) & 0x1FFF;
    let more_fragments = p[6] & 0x20 != 0;
    let (src_port, dst_port) = if PROTOCOLS_WITH_PORTS.contains(&protocol) && fragment_offset == 0 && !more_fragments {
        ports_at(p, header_len)
    } else {
        (0, 0)
    };
    Some(FlowKey { src, dst, protocol, src_port, dst_port })
}

fn parse_ipv6(p: &[u8]) -> Option<FlowKey> {
    if p.len() < 40 || p[0] >> 4 != 6 {
        return None;
    }
    let src = IpAddr::from(<[u8; 16]>::try_from(&p[8..24]).ok()?);
    let dst = IpAddr::from(<[u8; 16]>::try_from(&p[24..40]).ok()?);
    let mut next = p[6];
    let mut offset = 40usize;
    // Walk hop-by-hop (0), routing (43), destination options (60) and mobility (135) headers (§10).
    for _ in 0..8 {
        match next {
            0 | 43 | 60 | 135 => {
                let ext = p.get(offset..offset + 2)?;
                next = ext[0];
                offset += (ext[1] as usize + 1) * 8;
            }
            44 => {
                // Fragment header: ports only in the first fragment.
                let frag = p.get(offset..offset + 8)?;
                let first = u16::from_be_bytes([frag[2], frag[3]]) & 0xFFF8 == 0 && frag[3] & 1 == 0;
                let protocol = frag[0];
                let (src_port, dst_port) =
                    if first && PROTOCOLS_WITH_PORTS.contains(&protocol) { ports_at(p, offset + 8) } else { (0, 0) };
                return Some(FlowKey { src, dst, protocol, src_port, dst_port });
            }
            _ => break,
        }
    }
    let (src_port, dst_port) = if PROTOCOLS_WITH_PORTS.contains(&next) { ports_at(p, offset) } else { (0, 0) };
    Some(FlowKey { src, dst, protocol: next, src_port, dst_port })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[9] = 17;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p
    }

    #[test]
    fn addresses_take_part_in_the_hash_unlike_zerotier() {
        let a = FlowKey::from_ethernet_payload(0x0800, &ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5000, 53)).unwrap();
        let b = FlowKey::from_ethernet_payload(0x0800, &ipv4_udp([10, 0, 0, 3], [10, 0, 0, 2], 5000, 53)).unwrap();
        assert_eq!(a.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!((a.src_port, a.dst_port, a.protocol), (5000, 53, 17));
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), a.hash());
    }

    #[test]
    fn ipv6_extension_headers_are_walked() {
        let mut p = vec![0u8; 40 + 8 + 8];
        p[0] = 0x60;
        p[6] = 0; // hop-by-hop
        p[40] = 6; // next: TCP
        p[41] = 0; // 8 bytes
        p[48..50].copy_from_slice(&443u16.to_be_bytes());
        p[50..52].copy_from_slice(&40000u16.to_be_bytes());
        let key = FlowKey::from_ethernet_payload(0x86DD, &p).unwrap();
        assert_eq!((key.protocol, key.src_port, key.dst_port), (6, 443, 40000));
    }

    #[test]
    fn truncated_and_non_ip_frames_do_not_panic() {
        for len in 0..60 {
            let p = vec![0x45u8; len];
            let _ = FlowKey::from_ethernet_payload(0x0800, &p);
            let _ = FlowKey::from_ethernet_payload(0x86DD, &p);
        }
        assert!(FlowKey::from_ethernet_payload(0x0806, &[0u8; 28]).is_none());
        assert_eq!(frame_flow_hash(0x0806, &[]), frame_flow_hash(0x0806, &[1, 2]));
    }
}
