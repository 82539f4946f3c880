//! Hand-built frames for classification tests: Ethernet with any stack of 802.1Q / 802.1ad tags,
//! IPv4 (any protocol, fragment bits as given), IPv6/UDP, UDP, a TCP SYN, an ICMP echo request,
//! an ARP request. Every header is exactly as the caller asks, so a test can also cut one short or
//! make it lie about its length; send them with [`crate::traffic::send_frames`].
//!
//! IPv4 headers carry a valid checksum (a kernel that gets one must not drop it for that); UDP,
//! TCP and ICMP checksums are left 0 unless stated: the tests look at where a frame goes, not at
//! what a stack makes of it.
use std::net::Ipv4Addr;

pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
/// The TPID of a customer tag (802.1Q).
pub const ETH_P_8021Q: u16 = 0x8100;
/// The TPID of a service tag (802.1ad, QinQ's outer tag).
pub const ETH_P_8021AD: u16 = 0x88a8;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
/// The UDP source port of [`udp`] and the TCP source port of [`tcp_syn`].
pub const SOURCE_PORT: u16 = 40000;

/// One VLAN tag: its TPID ([`ETH_P_8021Q`] or [`ETH_P_8021AD`]) and TCI (priority, DEI and the
/// 12-bit VLAN ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    pub tpid: u16,
    pub tci: u16,
}

impl Tag {
    /// An 802.1Q tag for VLAN `id`, priority 0.
    pub const fn q(id: u16) -> Tag {
        Tag { tpid: ETH_P_8021Q, tci: id }
    }

    /// An 802.1ad (service) tag for VLAN `id`, priority 0.
    pub const fn ad(id: u16) -> Tag {
        Tag { tpid: ETH_P_8021AD, tci: id }
    }
}

/// The two ends of crafted frames: who sends them and who they are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ends {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
}

impl Ends {
    /// Ethernet header from `src_mac` to `dst_mac`, `tags` outermost first, then `ethertype`
    /// and `l3`. No padding to 60 bytes: a veth carries short frames as they are.
    pub fn ether(&self, tags: &[Tag], ethertype: u16, l3: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(14 + 4 * tags.len() + l3.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        for tag in tags {
            f.extend_from_slice(&tag.tpid.to_be_bytes());
            f.extend_from_slice(&tag.tci.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(l3);
        f
    }

    /// An IPv4 header (20 bytes, TTL 64, fragment field `frag`: flags and offset) from `src_ip`
    /// to `dst_ip`, then `l4`.
    pub fn ipv4(&self, proto: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
        let total = (20 + l4.len()) as u16;
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&frag.to_be_bytes());
        h.extend_from_slice(&[64, proto, 0, 0]);
        h.extend_from_slice(&self.src_ip.octets());
        h.extend_from_slice(&self.dst_ip.octets());
        let sum = crate::traffic::ipv4_checksum(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        h.extend_from_slice(l4);
        h
    }

    /// An ARP request (the payload of an [`ETH_P_ARP`] frame): who has `dst_ip`, tell `src_ip`.
    pub fn arp_request(&self) -> Vec<u8> {
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
        a.extend_from_slice(&self.src_mac);
        a.extend_from_slice(&self.src_ip.octets());
        a.extend_from_slice(&[0; 6]);
        a.extend_from_slice(&self.dst_ip.octets());
        a
    }
}

/// A UDP header from [`SOURCE_PORT`] to `dport` (checksum 0: none, valid for IPv4), then
/// `payload`.
pub fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut u = Vec::with_capacity(usize::from(len));
    u.extend_from_slice(&SOURCE_PORT.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// A TCP SYN from [`SOURCE_PORT`] to `dport` (20-byte header, no options).
pub fn tcp_syn(dport: u16, seq: u32) -> Vec<u8> {
    let mut t = Vec::with_capacity(20);
    t.extend_from_slice(&SOURCE_PORT.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&[0; 4]); // ack
    t.extend_from_slice(&[5 << 4, 0x02]); // data offset 5 words, SYN
    t.extend_from_slice(&64240u16.to_be_bytes()); // window
    t.extend_from_slice(&[0; 4]); // checksum, urgent pointer
    t
}

/// An ICMP echo request with a valid ICMP checksum.
pub fn icmp_echo(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    // The checksum covers the message padded to whole 16-bit words; the message keeps its length.
    let mut padded = m.clone();
    padded.resize(m.len().next_multiple_of(2), 0);
    let sum = crate::traffic::ipv4_checksum(&padded);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

/// An IPv6 header (hop limit 64) from fd00:1981::2 to fd00:1981::3 with a [`udp`] datagram to
/// `dport`.
pub fn ipv6_udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    let udp = udp(dport, payload);
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(udp.len() as u16).to_be_bytes());
    h.extend_from_slice(&[IPPROTO_UDP, 64]);
    h.extend_from_slice(&[0xfd, 0x00, 0x19, 0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    h.extend_from_slice(&[0xfd, 0x00, 0x19, 0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
    h.extend_from_slice(&udp);
    h
}

/// The outer VLAN tag of an Ethernet frame: (TPID, VLAN ID), or `None` if untagged or too short.
pub fn outer_vlan(frame: &[u8]) -> Option<(u16, u16)> {
    let tpid = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if tpid != ETH_P_8021Q && tpid != ETH_P_8021AD {
        return None;
    }
    let tci = u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]);
    Some((tpid, tci & 0x0fff))
}

/// The ethertype after any VLAN tags, and the offset of the layer-3 header.
pub fn inner_ethertype(frame: &[u8]) -> Option<(u16, usize)> {
    let mut offset = 12;
    loop {
        let ethertype = u16::from_be_bytes([*frame.get(offset)?, *frame.get(offset + 1)?]);
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            return Some((ethertype, offset + 2));
        }
        offset += 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends() -> Ends {
        Ends {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(198, 18, 0, 1),
            dst_ip: Ipv4Addr::new(198, 18, 0, 2),
        }
    }

    #[test]
    fn tags_stack_outermost_first_and_are_read_back() {
        let e = ends();
        let f = e.ether(&[Tag::ad(10), Tag { tpid: ETH_P_8021Q, tci: 0xe014 }], ETH_P_IPV4, &[0x45]);
        assert_eq!(&f[12..22], &[0x88, 0xa8, 0, 10, 0x81, 0x00, 0xe0, 0x14, 0x08, 0x00]);
        assert_eq!(outer_vlan(&f), Some((ETH_P_8021AD, 10)));
        assert_eq!(inner_ethertype(&f), Some((ETH_P_IPV4, 22)));
        let untagged = e.ether(&[], ETH_P_ARP, &e.arp_request());
        assert_eq!((outer_vlan(&untagged), inner_ethertype(&untagged)), (None, Some((ETH_P_ARP, 14))));
        assert_eq!(untagged.len(), 14 + 28);
        assert_eq!(outer_vlan(&f[..15]), None, "a tag cut short");
    }

    #[test]
    fn checksums_hold() {
        let ip = ends().ipv4(IPPROTO_TCP, 0x4000, &tcp_syn(22, 1));
        assert_eq!(crate::traffic::ipv4_checksum(&ip[..20]), 0);
        assert_eq!((ip[9], ip[20 + 13]), (IPPROTO_TCP, 0x02));
        for payload in [&b"odd"[..], &b"even"[..]] {
            let mut icmp = icmp_echo(7, 1, payload);
            if icmp.len() % 2 == 1 {
                icmp.push(0);
            }
            assert_eq!(crate::traffic::ipv4_checksum(&icmp), 0);
        }
    }
}
