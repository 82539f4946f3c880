//! Classic pcap reader for Ethernet/IPv4/UDP captures (the conformance captures' format).
//!
//! Pure: parses a byte slice the caller has read. Every length is checked; truncated or
//! garbage input yields [`ProtocolError::Pcap`], never a panic or a huge allocation.

use crate::error::{ProtocolError, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Largest record we accept (pcap's usual snaplen ceiling).
pub const MAX_RECORD_LEN: usize = 262_144;
const LINKTYPE_ETHERNET: u32 = 1;

/// One captured frame, decoded down to UDP where possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedFrame<'a> {
    /// 0-based frame number.
    pub index: usize,
    /// Capture timestamp in microseconds since the epoch (nanosecond files are truncated).
    pub timestamp_us: i64,
    pub content: FrameContent<'a>,
}

/// What a frame held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameContent<'a> {
    Udp(UdpDatagram<'a>),
    /// Not an (unfragmented) IPv4/UDP frame; the reason says why.
    NotUdp(&'static str),
}

/// A UDP datagram with its IP addressing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ip_ttl: u8,
    pub payload: &'a [u8],
}

/// Iterates over the records of a classic pcap file held in memory.
#[derive(Debug, Clone)]
pub struct PcapReader<'a> {
    data: &'a [u8],
    pos: usize,
    index: usize,
    big_endian: bool,
    nanos: bool,
    failed: bool,
}

impl<'a> PcapReader<'a> {
    /// Check the 24-byte global header (magic, version, link type = Ethernet).
    pub fn new(data: &'a [u8]) -> Result<Self> {
        if data.len() < 24 {
            return Err(ProtocolError::Pcap(format!(
                "file of {} bytes is shorter than the 24-byte pcap header",
                data.len()
            )));
        }
        let magic = [data[0], data[1], data[2], data[3]];
        let (big_endian, nanos) = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => (false, false),
            [0xa1, 0xb2, 0xc3, 0xd4] => (true, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (false, true),
            [0xa1, 0xb2, 0x3c, 0x4d] => (true, true),
            [0x0a, 0x0d, 0x0d, 0x0a] => {
                return Err(ProtocolError::Pcap("pcapng files are not supported; convert to classic pcap".into()));
            }
            _ => return Err(ProtocolError::Pcap(format!("bad magic {:02x?}: not a pcap file", magic))),
        };
        let reader = Self { data, pos: 24, index: 0, big_endian, nanos, failed: false };
        let link = reader.u32_at(20);
        if link != LINKTYPE_ETHERNET {
            return Err(ProtocolError::Pcap(format!("link type {link} is not Ethernet (1)")));
        }
        Ok(reader)
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = [self.data[at], self.data[at + 1], self.data[at + 2], self.data[at + 3]];
        if self.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
    }

    fn next_record(&mut self) -> Result<Option<CapturedFrame<'a>>> {
        if self.pos == self.data.len() {
            return Ok(None);
        }
        if self.data.len() - self.pos < 16 {
            return Err(ProtocolError::Pcap(format!(
                "record {} header truncated at byte {} (file ends)",
                self.index, self.pos
            )));
        }
        let secs = self.u32_at(self.pos) as i64;
        let frac = self.u32_at(self.pos + 4) as i64;
        let incl = self.u32_at(self.pos + 8) as usize;
        if incl > MAX_RECORD_LEN {
            return Err(ProtocolError::Pcap(format!("record {} claims {incl} bytes (> {MAX_RECORD_LEN})", self.index)));
        }
        let start = self.pos + 16;
        if self.data.len() - start < incl {
            return Err(ProtocolError::Pcap(format!(
                "record {} truncated: needs {incl} bytes, {} left",
                self.index,
                self.data.len() - start
            )));
        }
        let frame = &self.data[start..start + incl];
        self.pos = start + incl;
        let timestamp_us = secs * 1_000_000 + if self.nanos { frac / 1000 } else { frac };
        let index = self.index;
        self.index += 1;
        Ok(Some(CapturedFrame { index, timestamp_us, content: parse_ethernet(frame) }))
    }
}

impl<'a> Iterator for PcapReader<'a> {
    type Item = Result<CapturedFrame<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_record() {
            Ok(Some(f)) => Some(Ok(f)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Ethernet (optionally one 802.1Q tag) → IPv4 → UDP.
pub fn parse_ethernet(frame: &[u8]) -> FrameContent<'_> {
    if frame.len() < 14 {
        return FrameContent::NotUdp("truncated Ethernet header");
    }
    let mut ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let mut at = 14;
    if ethertype == 0x8100 {
        if frame.len() < 18 {
            return FrameContent::NotUdp("truncated VLAN tag");
        }
        ethertype = u16::from_be_bytes([frame[16], frame[17]]);
        at = 18;
    }
    match ethertype {
        0x0800 => parse_ipv4_udp(&frame[at..]),
        0x86dd => parse_ipv6_udp(&frame[at..]),
        _ => FrameContent::NotUdp("not IPv4 or IPv6"),
    }
}

/// IPv6 with UDP as the first next-header (no extension headers), as ZeroTier sends it.
fn parse_ipv6_udp(ip: &[u8]) -> FrameContent<'_> {
    if ip.len() < 40 || ip[0] >> 4 != 6 {
        return FrameContent::NotUdp("truncated or invalid IPv6 header");
    }
    if ip[6] != 17 {
        return FrameContent::NotUdp("not UDP");
    }
    let payload_len = u16::from_be_bytes([ip[4], ip[5]]) as usize;
    if ip.len() < 40 + payload_len {
        return FrameContent::NotUdp("truncated IPv6 payload");
    }
    let mut a = [0u8; 16];
    let mut b = [0u8; 16];
    a.copy_from_slice(&ip[8..24]);
    b.copy_from_slice(&ip[24..40]);
    udp(&ip[40..40 + payload_len], IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)), ip[7])
}

fn udp<'a>(udp: &'a [u8], src: IpAddr, dst: IpAddr, ttl: u8) -> FrameContent<'a> {
    if udp.len() < 8 {
        return FrameContent::NotUdp("truncated UDP header");
    }
    let udp_len = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    if udp_len < 8 || udp_len > udp.len() {
        return FrameContent::NotUdp("bad UDP length");
    }
    let src = SocketAddr::new(src, u16::from_be_bytes([udp[0], udp[1]]));
    let dst = SocketAddr::new(dst, u16::from_be_bytes([udp[2], udp[3]]));
    FrameContent::Udp(UdpDatagram { src, dst, ip_ttl: ttl, payload: &udp[8..udp_len] })
}

fn parse_ipv4_udp(ip: &[u8]) -> FrameContent<'_> {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return FrameContent::NotUdp("truncated or invalid IPv4 header");
    }
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if ihl < 20 || total < ihl || ip.len() < total {
        return FrameContent::NotUdp("truncated or invalid IPv4 header");
    }
    if ip[9] != 17 {
        return FrameContent::NotUdp("not UDP");
    }
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return FrameContent::NotUdp("IPv4 fragment");
    }
    let src = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
    udp(&ip[ihl..total], src, dst, ip[8])
}

/// Build a classic little-endian microsecond pcap of Ethernet/IPv4/UDP frames (for tests and
/// fuzz seeds). `frames` = (timestamp µs, src, dst, ttl, payload).
pub fn write_pcap(frames: &[(i64, std::net::SocketAddrV4, std::net::SocketAddrV4, u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    for (ts, src, dst, ttl, payload) in frames {
        let udp_len = 8 + payload.len();
        let ip_len = 20 + udp_len;
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        f.extend_from_slice(&[0x45, 0, (ip_len >> 8) as u8, ip_len as u8, 0, 0, 0x40, 0, *ttl, 17, 0, 0]);
        f.extend_from_slice(&src.ip().octets());
        f.extend_from_slice(&dst.ip().octets());
        f.extend_from_slice(&src.port().to_be_bytes());
        f.extend_from_slice(&dst.port().to_be_bytes());
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        out.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let a: std::net::SocketAddrV4 = "198.18.1.2:9993".parse().unwrap();
        let b: std::net::SocketAddrV4 = "198.18.1.3:9993".parse().unwrap();
        let file = write_pcap(&[(1_000_000_123, a, b, 64, b"hello"), (1_000_000_200, b, a, 2, b"junk")]);
        let frames: Vec<_> = PcapReader::new(&file).unwrap().collect::<Result<_>>().unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].timestamp_us, 1_000_000_123);
        match &frames[1].content {
            FrameContent::Udp(d) => {
                assert_eq!((d.src, d.dst, d.ip_ttl, d.payload), (b.into(), a.into(), 2, &b"junk"[..]));
            }
            other => panic!("{other:?}"),
        }
        let cut = &file[..file.len() - 3];
        let results: Vec<_> = PcapReader::new(cut).unwrap().collect();
        assert!(results[0].is_ok());
        assert!(results[1].is_err());
        assert_eq!(results.len(), 2);
        assert!(PcapReader::new(&file[..10]).is_err());
        assert!(PcapReader::new(b"not a pcap file at all, definitely").is_err());
    }

    #[test]
    fn ipv6_udp_frames() {
        let mut f = vec![0u8; 14];
        f[12] = 0x86;
        f[13] = 0xdd;
        let mut ip = vec![0x60, 0, 0, 0, 0, 12, 17, 64];
        ip.extend_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
        ip.extend_from_slice(&"fd00::2".parse::<Ipv6Addr>().unwrap().octets());
        ip.extend_from_slice(&[0x27, 0x09, 0x27, 0x09, 0, 12, 0, 0, 1, 2, 3, 4]);
        f.extend_from_slice(&ip);
        match parse_ethernet(&f) {
            FrameContent::Udp(d) => {
                assert_eq!(d.src, "[fd00::1]:9993".parse().unwrap());
                assert_eq!(d.payload, &[1, 2, 3, 4]);
                assert_eq!(d.ip_ttl, 64);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_ethernet(&f[..50]), FrameContent::NotUdp("truncated or invalid IPv6 header"));
    }
}
