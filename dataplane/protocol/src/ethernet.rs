//! Summaries of the Ethernet payloads carried by FRAME, EXT_FRAME and MULTICAST_FRAME, and the
//! flow ID used for multi-core delivery and bonding (spec §10).

use std::net::Ipv4Addr;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Name of an ethertype (as in the expected decodings).
pub fn ethertype_name(ethertype: u16) -> &'static str {
    match ethertype {
        ETHERTYPE_IPV4 => "IPv4",
        ETHERTYPE_ARP => "ARP",
        ETHERTYPE_IPV6 => "IPv6",
        0x8100 => "VLAN",
        _ => "other",
    }
}

/// IP protocol names.
pub fn ip_proto_name(proto: u8) -> &'static str {
    match proto {
        1 => "ICMP",
        2 => "IGMP",
        6 => "TCP",
        17 => "UDP",
        58 => "ICMPv6",
        132 => "SCTP",
        136 => "UDPLite",
        _ => "other",
    }
}

/// What an IPv4 packet carries, when its first bytes are present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        payload_len: usize,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Icmp {
        icmp_type: u8,
        code: u8,
        id_seq: Option<(u16, u16)>,
    },
    /// Non-first fragment, unknown protocol or truncated header.
    None,
}

/// IPv4 header summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Summary {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub total_len: u16,
    pub ttl: u8,
    /// Byte offset of this fragment (present only if the packet is an IP fragment).
    pub fragment: Option<(u16, bool)>,
    pub transport: Transport,
}

/// ARP summary (Ethernet/IPv4 ARP only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpSummary {
    pub op: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

/// An Ethernet payload summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InnerFrame {
    Ipv4(Ipv4Summary),
    Arp(ArpSummary),
    Other,
}

/// Summarize an Ethernet payload of the given ethertype. Never panics on short input.
pub fn summarize(ethertype: u16, payload: &[u8]) -> InnerFrame {
    match ethertype {
        ETHERTYPE_IPV4 => ipv4(payload).map(InnerFrame::Ipv4).unwrap_or(InnerFrame::Other),
        ETHERTYPE_ARP => arp(payload).map(InnerFrame::Arp).unwrap_or(InnerFrame::Other),
        _ => InnerFrame::Other,
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn ipv4(p: &[u8]) -> Option<Ipv4Summary> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = ((p[0] & 0x0f) as usize) * 4;
    if ihl < 20 || p.len() < ihl {
        return None;
    }
    let total_len = be16(p, 2)?;
    let frag = be16(p, 6)?;
    let more = frag & 0x2000 != 0;
    let offset = (frag & 0x1fff) * 8;
    let proto = p[9];
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let fragment = if more || offset != 0 { Some((offset, more)) } else { None };
    let l4 = &p[ihl..];
    let transport = if offset != 0 {
        Transport::None
    } else {
        match proto {
            6 if l4.len() >= 20 => {
                let doff = ((l4[12] >> 4) as usize) * 4;
                let ip_payload = (total_len as usize).saturating_sub(ihl);
                Transport::Tcp {
                    sport: be16(l4, 0)?,
                    dport: be16(l4, 2)?,
                    flags: l4[13],
                    payload_len: ip_payload.saturating_sub(doff),
                }
            }
            17 if l4.len() >= 8 => Transport::Udp { sport: be16(l4, 0)?, dport: be16(l4, 2)? },
            1 if l4.len() >= 4 => {
                let id_seq =
                    if matches!(l4[0], 0 | 8) && l4.len() >= 8 { Some((be16(l4, 4)?, be16(l4, 6)?)) } else { None };
                Transport::Icmp { icmp_type: l4[0], code: l4[1], id_seq }
            }
            _ => Transport::None,
        }
    };
    Some(Ipv4Summary { proto, src, dst, total_len, ttl: p[8], fragment, transport })
}

fn arp(p: &[u8]) -> Option<ArpSummary> {
    // htype 1, ptype IPv4, hlen 6, plen 4
    if p.len() < 28 || be16(p, 0)? != 1 || be16(p, 2)? != ETHERTYPE_IPV4 || p[4] != 6 || p[5] != 4 {
        return None;
    }
    let mac = |at: usize| -> [u8; 6] { [p[at], p[at + 1], p[at + 2], p[at + 3], p[at + 4], p[at + 5]] };
    Some(ArpSummary {
        op: be16(p, 6)?,
        sender_mac: mac(8),
        sender_ip: Ipv4Addr::new(p[14], p[15], p[16], p[17]),
        target_mac: mac(18),
        target_ip: Ipv4Addr::new(p[24], p[25], p[26], p[27]),
    })
}

/// TCP flag letters from `SAFRP` (SYN, ACK, FIN, RST, PSH), in that order.
pub fn tcp_flag_letters(flags: u8) -> String {
    let mut s = String::new();
    for (bit, letter) in [(0x02, 'S'), (0x10, 'A'), (0x01, 'F'), (0x04, 'R'), (0x08, 'P')] {
        if flags & bit != 0 {
            s.push(letter);
        }
    }
    s
}

/// Flow ID (spec §10): `sport ^ dport ^ proto` for TCP/UDP/SCTP/UDP-Lite over IPv4 or IPv6 (with
/// extension headers walked), `None` for everything else (ICMP, fragments, non-IP).
pub fn flow_id(ethertype: u16, payload: &[u8]) -> Option<u16> {
    let (proto, l4) = match ethertype {
        ETHERTYPE_IPV4 => {
            if payload.len() < 20 || payload[0] >> 4 != 4 {
                return None;
            }
            let ihl = ((payload[0] & 0x0f) as usize) * 4;
            let frag = be16(payload, 6)?;
            if frag & 0x3fff != 0 {
                return None;
            }
            (payload[9], payload.get(ihl..)?)
        }
        ETHERTYPE_IPV6 => {
            if payload.len() < 40 {
                return None;
            }
            let mut next = payload[6];
            let mut at = 40usize;
            // hop-by-hop, routing, destination options, mobility
            while matches!(next, 0 | 43 | 60 | 135) {
                let hdr = payload.get(at..at + 2)?;
                next = hdr[0];
                at += (hdr[1] as usize + 1) * 8;
            }
            (next, payload.get(at..)?)
        }
        _ => return None,
    };
    if !matches!(proto, 6 | 17 | 132 | 136) || l4.len() < 4 {
        return None;
    }
    Some(be16(l4, 0)? ^ be16(l4, 2)? ^ proto as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_flags_and_flow() {
        assert_eq!(tcp_flag_letters(0x12), "SA");
        assert_eq!(tcp_flag_letters(0x18), "AP");
        let mut ip = [0u8; 40];
        ip[0] = 0x45;
        ip[3] = 40;
        ip[9] = 6;
        ip[20..22].copy_from_slice(&48960u16.to_be_bytes());
        ip[22..24].copy_from_slice(&5201u16.to_be_bytes());
        ip[32] = 0x50;
        ip[33] = 0x10;
        assert_eq!(flow_id(ETHERTYPE_IPV4, &ip), Some(48960 ^ 5201 ^ 6));
        match summarize(ETHERTYPE_IPV4, &ip) {
            InnerFrame::Ipv4(s) => {
                assert_eq!(s.transport, Transport::Tcp { sport: 48960, dport: 5201, flags: 0x10, payload_len: 0 })
            }
            other => panic!("{other:?}"),
        }
        ip[9] = 1;
        assert_eq!(flow_id(ETHERTYPE_IPV4, &ip), None);
        assert_eq!(summarize(ETHERTYPE_IPV4, &ip[..10]), InnerFrame::Other);
        assert_eq!(flow_id(ETHERTYPE_ARP, &ip), None);
    }
}
