//! Ethernet/IP/UDP headers for datagrams the workers send on AF_XDP, written in place in front
//! of the ZeroTier datagram. What goes into them (interface, MACs, source address) comes from
//! the kernel's routing and neighbour tables through the slow path ([`EgressTable`]): nothing
//! is hard-coded, and an unresolved neighbour means "let the kernel send it" (the slow path's
//! socket), which also makes the kernel resolve it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use ztplane_host::offload::{checksum_add, fold};

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const UDP_LEN: usize = 8;

/// How to reach one remote address from one of our underlay interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    /// Index of the interface in the node's `--iface` list.
    pub iface: usize,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// Our address and port on that interface.
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

/// Remote address → egress, published by the slow path for the workers.
pub type EgressTable = HashMap<SocketAddr, Egress>;

impl Egress {
    pub fn header_len(&self) -> usize {
        ETH_LEN + if self.dst.is_ipv4() { IPV4_LEN } else { IPV6_LEN } + UDP_LEN
    }

    /// Writes the headers in front of a `payload_len`-byte datagram already at
    /// `out[header_len()..]` (sealed there in place). Returns the frame length, or `None` if
    /// `out` is too small or the families of source and destination differ.
    pub fn write_headers(&self, out: &mut [u8], payload_len: usize) -> Option<usize> {
        let header = self.header_len();
        let total = header + payload_len;
        if out.len() < total || self.src.is_ipv4() != self.dst.is_ipv4() {
            return None;
        }
        let udp_len = (UDP_LEN + payload_len) as u16;
        out[0..6].copy_from_slice(&self.dst_mac);
        out[6..12].copy_from_slice(&self.src_mac);
        let l4 = match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                out[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
                let ip = &mut out[ETH_LEN..ETH_LEN + IPV4_LEN];
                ip[0] = 0x45;
                ip[1] = 0;
                ip[2..4].copy_from_slice(&(IPV4_LEN as u16 + udp_len).to_be_bytes());
                ip[4..6].copy_from_slice(&[0, 0]);
                ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF: ZeroTier fragments itself
                ip[8] = 64;
                ip[9] = 17;
                ip[10..12].copy_from_slice(&[0, 0]);
                ip[12..16].copy_from_slice(&s.octets());
                ip[16..20].copy_from_slice(&d.octets());
                let sum = fold(checksum_add(0, ip));
                ip[10..12].copy_from_slice(&(!sum).to_be_bytes());
                ETH_LEN + IPV4_LEN
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                out[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
                let ip = &mut out[ETH_LEN..ETH_LEN + IPV6_LEN];
                ip[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
                ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
                ip[6] = 17;
                ip[7] = 64;
                ip[8..24].copy_from_slice(&s.octets());
                ip[24..40].copy_from_slice(&d.octets());
                ETH_LEN + IPV6_LEN
            }
            _ => return None,
        };
        out[l4..l4 + 2].copy_from_slice(&self.src.port().to_be_bytes());
        out[l4 + 2..l4 + 4].copy_from_slice(&self.dst.port().to_be_bytes());
        out[l4 + 4..l4 + 6].copy_from_slice(&udp_len.to_be_bytes());
        out[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
        let sum = udp_checksum(self.src.ip(), self.dst.ip(), &out[l4..total]);
        out[l4 + 6..l4 + 8].copy_from_slice(&sum.to_be_bytes());
        Some(total)
    }
}

/// UDP checksum with the IPv4 or IPv6 pseudo-header (RFC 768, RFC 8200 §8.1); 0 is sent as
/// 0xffff.
pub fn udp_checksum(src: IpAddr, dst: IpAddr, udp: &[u8]) -> u16 {
    let mut sum = 17 + udp.len() as u64;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            sum = checksum_add(sum, &s.octets());
            sum = checksum_add(sum, &d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            sum = checksum_add(sum, &s.octets());
            sum = checksum_add(sum, &d.octets());
        }
        _ => {}
    }
    let sum = !fold(checksum_add(sum, udp));
    if sum == 0 { 0xffff } else { sum }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte-pair reference sum, independent of the word-wide `checksum_add` the writer uses.
    fn sum_words(bytes: &[u8], mut sum: u64) -> u64 {
        for pair in bytes.chunks(2) {
            sum += u64::from(pair[0]) << 8 | u64::from(*pair.get(1).unwrap_or(&0));
        }
        sum
    }
    use crate::frame::locate_udp;

    fn verify(frame: &[u8]) {
        let at = locate_udp(frame).expect("a well-formed UDP frame");
        let (src, dst) = if frame[12..14] == [8, 0] {
            let s: [u8; 4] = frame[26..30].try_into().unwrap();
            let d: [u8; 4] = frame[30..34].try_into().unwrap();
            assert_eq!(fold(sum_words(&frame[14..34], 0)), 0xffff, "IPv4 header checksum");
            (IpAddr::from(s), IpAddr::from(d))
        } else {
            let s: [u8; 16] = frame[22..38].try_into().unwrap();
            let d: [u8; 16] = frame[38..54].try_into().unwrap();
            (IpAddr::from(s), IpAddr::from(d))
        };
        let udp = &frame[at.l4_offset..at.l4_offset + at.udp_len];
        let mut pseudo = 0u64;
        for ip in [src, dst] {
            pseudo = match ip {
                IpAddr::V4(v) => sum_words(&v.octets(), pseudo),
                IpAddr::V6(v) => sum_words(&v.octets(), pseudo),
            };
        }
        assert_eq!(fold(sum_words(udp, pseudo + 17 + udp.len() as u64)), 0xffff, "UDP checksum");
    }

    #[test]
    fn frames_parse_back_with_valid_checksums() {
        for (src, dst) in [("198.18.0.2:9993", "198.18.0.1:9993"), ("[fd00::2]:9993", "[fd00::1]:40000")] {
            let e = Egress {
                iface: 0,
                src_mac: [2, 0, 0, 0, 0, 2],
                dst_mac: [2, 0, 0, 0, 0, 1],
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
            };
            for len in [0usize, 1, 28, 1431, 1432] {
                let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut out = vec![0u8; 2000];
                out[e.header_len()..e.header_len() + len].copy_from_slice(&payload);
                let n = e.write_headers(&mut out, len).unwrap();
                verify(&out[..n]);
                let at = locate_udp(&out[..n]).unwrap();
                assert_eq!(&out[at.l4_offset + 8..n], &payload[..]);
                assert_eq!(at.dst_port, e.dst.port());
            }
            assert!(e.write_headers(&mut [0u8; 10], 1).is_none());
        }
    }
}
