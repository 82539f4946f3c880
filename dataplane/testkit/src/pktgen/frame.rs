//! The generator's frames: Ethernet/IPv4/UDP with a 16-byte probe at the start of the UDP payload.
//!
//! Size convention (RFC 2544, and what kernel pktgen reports as "64-byte packets"): `size` is the
//! Ethernet frame *including* the 4-byte FCS, 64..=1518. The buffer we build is `size - 4` bytes
//! (60..=1514): the NIC appends the FCS (a veth has none). Kernel pktgen's `pkt_size` is that
//! buffer length, so `--size 64` here is `pkt_size 60` there. The smallest frame leaves 18 bytes
//! of UDP payload, which is why the probe is 16 bytes and the rest is zero padding.
//!
//! Probe layout (network byte order, at UDP payload offset 0, 2-byte aligned in the UDP header's
//! checksum domain): magic `u16`, flow id `u16`, per-flow sequence `u32`, TX time `u64`
//! (CLOCK_MONOTONIC ns, written just before the descriptor is queued).
//!
//! The UDP checksum is real, not 0: the template is summed once with a zero probe, and each stamp
//! folds the probe's words into it (RFC 1624 incremental update), which costs the same for 64
//! and 1518 bytes.
use std::net::Ipv4Addr;

/// Smallest and largest frame size, FCS included.
pub const MIN_SIZE: usize = 64;
pub const MAX_SIZE: usize = 1518;
/// Bytes of FCS the NIC adds after our buffer.
pub const FCS: usize = 4;
/// Preamble + start delimiter (8) and inter-frame gap (12): what a frame costs on the wire beyond
/// its own bytes, for L1 rates.
pub const L1_OVERHEAD: usize = 20;

const ETH_HDR: usize = 14;
const IP_HDR: usize = 20;
const UDP_HDR: usize = 8;
/// Offset of the UDP header and of the probe in the frame.
pub const UDP_OFFSET: usize = ETH_HDR + IP_HDR;
pub const PROBE_OFFSET: usize = UDP_OFFSET + UDP_HDR;
pub const PROBE_LEN: usize = 16;
/// Identifies our frames among whatever else arrives on the receiving queue ("ZP").
pub const MAGIC: u16 = 0x5a50;

/// What goes into every frame of one flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowAddr {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// The fields the receiver reads back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub flow: u16,
    pub seq: u32,
    pub tx_ns: u64,
}

/// A prebuilt frame of one flow: headers, checksums over a zero probe, zero padding.
#[derive(Clone, Debug)]
pub struct Template {
    pub bytes: Vec<u8>,
    pub flow: u16,
    /// The UDP checksum field of `bytes`, as one's-complement sum state (not yet inverted).
    udp_sum: u16,
}

impl Template {
    /// Builds the frame of `flow` for RFC 2544 size `size` (FCS included, see the module doc).
    pub fn new(addr: &FlowAddr, flow: u16, size: usize) -> Template {
        assert!((MIN_SIZE..=MAX_SIZE).contains(&size), "frame size {size} outside {MIN_SIZE}..={MAX_SIZE}");
        let len = size - FCS;
        let mut f = vec![0u8; len];
        f[0..6].copy_from_slice(&addr.dst_mac);
        f[6..12].copy_from_slice(&addr.src_mac);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip_len = (len - ETH_HDR) as u16;
        let ip = &mut f[ETH_HDR..UDP_OFFSET];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
        ip[6] = 0x40; // DF: a generator's frames are never fragmented
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&addr.src_ip.octets());
        ip[16..20].copy_from_slice(&addr.dst_ip.octets());
        let sum = !fold(sum_words(ip, 0));
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let udp_len = ip_len - IP_HDR as u16;
        f[UDP_OFFSET..UDP_OFFSET + 2].copy_from_slice(&addr.src_port.to_be_bytes());
        f[UDP_OFFSET + 2..UDP_OFFSET + 4].copy_from_slice(&addr.dst_port.to_be_bytes());
        f[UDP_OFFSET + 4..UDP_OFFSET + 6].copy_from_slice(&udp_len.to_be_bytes());
        f[PROBE_OFFSET..PROBE_OFFSET + 2].copy_from_slice(&MAGIC.to_be_bytes());
        f[PROBE_OFFSET + 2..PROBE_OFFSET + 4].copy_from_slice(&flow.to_be_bytes());
        // Pseudo-header (src, dst, protocol, UDP length) plus the UDP header and payload.
        let pseudo = sum_words(&addr.src_ip.octets(), 0)
            + sum_words(&addr.dst_ip.octets(), 0)
            + 17
            + u32::from(udp_len)
            + sum_words(&f[UDP_OFFSET..], 0);
        let udp_sum = fold(pseudo);
        let mut template = Template { bytes: f, flow, udp_sum };
        let field = finish_udp(udp_sum);
        template.bytes[UDP_OFFSET + 6..UDP_OFFSET + 8].copy_from_slice(&field.to_be_bytes());
        template
    }

    /// Writes `seq` and `tx_ns` into `frame` (a copy of this template) and updates its UDP
    /// checksum to match.
    pub fn stamp(&self, frame: &mut [u8], seq: u32, tx_ns: u64) {
        frame[PROBE_OFFSET + 4..PROBE_OFFSET + 8].copy_from_slice(&seq.to_be_bytes());
        frame[PROBE_OFFSET + 8..PROBE_OFFSET + 16].copy_from_slice(&tx_ns.to_be_bytes());
        // The template summed zeros in these 12 bytes: adding their words is the whole update.
        let sum = fold(u32::from(self.udp_sum) + sum_words(&frame[PROBE_OFFSET + 4..PROBE_OFFSET + 16], 0));
        frame[UDP_OFFSET + 6..UDP_OFFSET + 8].copy_from_slice(&finish_udp(sum).to_be_bytes());
    }
}

/// Reads the probe of a received frame; `None` for anything that is not one of ours.
pub fn parse(frame: &[u8]) -> Option<Probe> {
    if frame.len() < PROBE_OFFSET + PROBE_LEN
        || frame[12..14] != [0x08, 0x00]
        || frame[ETH_HDR] != 0x45
        || frame[ETH_HDR + 9] != 17
        || frame[PROBE_OFFSET..PROBE_OFFSET + 2] != MAGIC.to_be_bytes()
    {
        return None;
    }
    let p = &frame[PROBE_OFFSET..];
    Some(Probe {
        flow: u16::from_be_bytes([p[2], p[3]]),
        seq: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        tx_ns: u64::from_be_bytes([p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15]]),
    })
}

/// Whether the IPv4 header checksum and the UDP checksum of `frame` hold (a full recomputation,
/// for the receiver's optional verification).
pub fn checksums_ok(frame: &[u8]) -> bool {
    if frame.len() < PROBE_OFFSET {
        return false;
    }
    let ip = &frame[ETH_HDR..UDP_OFFSET];
    let udp_len = usize::from(u16::from_be_bytes([frame[UDP_OFFSET + 4], frame[UDP_OFFSET + 5]]));
    if fold(sum_words(ip, 0)) != 0xffff || UDP_OFFSET + udp_len > frame.len() {
        return false;
    }
    if frame[UDP_OFFSET + 6..UDP_OFFSET + 8] == [0, 0] {
        return true; // "no checksum", legal for IPv4
    }
    let sum = sum_words(&ip[12..20], 0) + 17 + udp_len as u32 + sum_words(&frame[UDP_OFFSET..UDP_OFFSET + udp_len], 0);
    fold(sum) == 0xffff
}

/// Sums big-endian 16-bit words (an odd last byte is padded with zero) onto `acc`.
fn sum_words(bytes: &[u8], acc: u32) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    let mut sum = acc;
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// Folds carries into 16 bits (one's-complement addition).
fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The UDP checksum field for a folded sum: its complement, with 0 sent as 0xffff (RFC 768: a
/// computed 0 would read as "no checksum").
fn finish_udp(sum: u16) -> u16 {
    match !sum {
        0 => 0xffff,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(src_port: u16) -> FlowAddr {
        FlowAddr {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(198, 18, 0, 1),
            dst_ip: Ipv4Addr::new(198, 19, 0, 2),
            src_port,
            dst_port: 9,
        }
    }

    /// RFC 1071 checksum verification written independently of the module: sum every byte pair
    /// as `hi * 256 + lo` in a u64, fold, and expect all ones.
    fn verifies(words: &[u8], extra: u64) -> bool {
        let mut sum = extra;
        let mut i = 0;
        while i < words.len() {
            let hi = u64::from(words[i]);
            let lo = if i + 1 < words.len() { u64::from(words[i + 1]) } else { 0 };
            sum += hi * 256 + lo;
            i += 2;
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum == 0xffff
    }

    fn udp_verifies(f: &[u8]) -> bool {
        let udp = &f[34..];
        let pseudo: u64 =
            f[26..34].chunks(2).map(|c| u64::from(c[0]) * 256 + u64::from(c[1])).sum::<u64>() + 17 + udp.len() as u64;
        verifies(udp, pseudo)
    }

    #[test]
    fn sizes_follow_the_rfc2544_convention() {
        for size in [64, 65, 128, 512, 1024, 1280, 1517, 1518] {
            let t = Template::new(&addr(1000), 0, size);
            assert_eq!(t.bytes.len(), size - 4, "size {size}");
            assert_eq!(u16::from_be_bytes([t.bytes[16], t.bytes[17]]) as usize, size - 4 - 14, "IP total length");
            assert_eq!(u16::from_be_bytes([t.bytes[38], t.bytes[39]]) as usize, size - 4 - 34, "UDP length");
        }
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn sizes_outside_the_range_are_refused() {
        Template::new(&addr(1000), 0, 1519);
    }

    #[test]
    fn checksums_hold_after_stamping() {
        for size in [64, 65, 100, 1517, 1518] {
            let t = Template::new(&addr(40000), 7, size);
            assert!(verifies(&t.bytes[14..34], 0), "IPv4 header, size {size}");
            assert!(udp_verifies(&t.bytes), "template UDP, size {size}");
            for (seq, ts) in [(0, 0), (1, 1), (u32::MAX, u64::MAX), (0x1234_5678, 0xdead_beef_0bad_f00d), (77, 1 << 63)]
            {
                let mut f = t.bytes.clone();
                t.stamp(&mut f, seq, ts);
                assert!(udp_verifies(&f), "size {size} seq {seq:#x} ts {ts:#x}");
                assert!(checksums_ok(&f));
                assert_ne!(&f[40..42], &[0, 0], "a real checksum, never 'none'");
                assert_eq!(parse(&f), Some(Probe { flow: 7, seq, tx_ns: ts }));
            }
        }
    }

    #[test]
    fn a_corrupted_frame_fails_verification() {
        let t = Template::new(&addr(1), 0, 128);
        let mut f = t.bytes.clone();
        t.stamp(&mut f, 5, 99);
        f[100] ^= 1;
        assert!(!checksums_ok(&f));
        assert!(parse(&[0u8; 60]).is_none(), "not one of ours");
    }
}
