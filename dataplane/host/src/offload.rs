//! Tap offloads without I/O: splitting the TSO/USO super-frames and CHECKSUM_PARTIAL frames read
//! from an `IFF_VNET_HDR` tap into fully checksummed Ethernet frames (tap-offloads.md §2), and
//! coalescing the TCP segments to be written to the tap into GRO-style super-frames (§3).
//!
//! Everything here is pure: no syscalls, no clocks, and no allocation per frame. [`Segments`]
//! borrows the frame it splits and writes each segment into a caller's buffer; [`Coalescer`]
//! allocates its flow buffers once, at construction.
//!
//! Unlike wireguard-go (a tun, L3 at offset 0), every offset in a tap's vnet header counts from
//! Ethernet byte 0 (tap-offloads.md, introduction and §4.1). Both directions accept one
//! 802.1Q/802.1ad tag (L2 = 18), the tag the kernel may inline from a hardware offload.
//!
//! The vnet header is read and written little-endian: the tap must be set to `TUNSETVNETLE`
//! (tap-offloads.md §1, "Byte order"), which is also what x86-64 and arm64 use by default.

/// Size of the `virtio_net_hdr` in front of every frame; use 10 on a tap (tap-offloads.md §1).
pub const VNET_HDR_LEN: usize = 10;

/// `flags`: the L4 checksum is partial: the field holds the pseudo-header sum (tap-offloads.md §2).
pub const NEEDS_CSUM: u8 = 1;
/// `flags`: the checksums were verified by the kernel (forwarded frames); ignored on write (§3).
pub const DATA_VALID: u8 = 2;
/// `gso_type`: a plain frame.
pub const GSO_NONE: u8 = 0;
/// `gso_type`: TCP over IPv4 super-frame.
pub const GSO_TCPV4: u8 = 1;
/// `gso_type`: TCP over IPv6 super-frame.
pub const GSO_TCPV6: u8 = 4;
/// `gso_type`: UDP super-datagram (USO), IPv4 or IPv6.
pub const GSO_UDP_L4: u8 = 5;
/// `gso_type` bit: the burst carries CWR (only with `TUN_F_TSO_ECN`).
pub const GSO_ECN: u8 = 0x80;

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;
const ETH_8021Q: u16 = 0x8100;
const ETH_8021AD: u16 = 0x88A8;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const TCP_CWR: u8 = 0x80;

/// Largest frame (after the vnet header) the coalescer builds or passes through: an 802.1Q
/// header, an IPv6 header and a 65535-byte payload (the IPv4 total length stays below this).
const FRAME_CAP: usize = 18 + 40 + 65535;

/// The 10-byte `virtio_net_hdr` (tap-offloads.md §2, layout table). Offsets count from Ethernet
/// byte 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    /// Header length; on read only a hint (tap-offloads.md §4.2), never trusted here.
    pub hdr_len: u16,
    /// L4 payload bytes per segment.
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// All zero: a frame whose checksums are final, nothing to segment.
    pub const NONE: VnetHdr = VnetHdr { flags: 0, gso_type: 0, hdr_len: 0, gso_size: 0, csum_start: 0, csum_offset: 0 };

    /// Decodes the first 10 bytes (little-endian fields, `TUNSETVNETLE`); `None` if fewer.
    pub fn parse(bytes: &[u8]) -> Option<VnetHdr> {
        let b = bytes.get(..VNET_HDR_LEN)?;
        let le = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        })
    }

    /// Encodes into the first 10 bytes of `out`.
    ///
    /// # Panics
    /// If `out` is shorter than [`VNET_HDR_LEN`].
    pub fn write(&self, out: &mut [u8]) {
        let out = &mut out[..VNET_HDR_LEN];
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
    }
}

/// Why a frame read from the tap cannot be split (tap-offloads.md §2, step 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// The frame ends before a header the vnet header implies.
    #[error("frame truncated")]
    Truncated,
    /// A GSO frame that is neither IPv4 nor IPv6 (by EtherType, after at most one VLAN tag).
    #[error("GSO frame is not IPv4 or IPv6")]
    NotIp,
    /// The IP version disagrees with the EtherType or the GSO type (TCPV4 needs 4, TCPV6 needs 6).
    #[error("IP version does not match the GSO type")]
    VersionMismatch,
    /// IPv4 IHL below 5.
    #[error("bad IP header")]
    BadIpHeader,
    /// `csum_start` points inside the IP header.
    #[error("csum_start inside the IP header")]
    BadCsumStart,
    /// The checksum field is outside the frame, or not where TCP (16) or UDP (6) keeps it.
    #[error("checksum field outside the frame or at the wrong offset")]
    BadCsumOffset,
    /// A `gso_type` this splitter does not handle (UFO 3, ECN on UDP, tunnel bits, …).
    #[error("unsupported gso_type {0:#x}")]
    UnsupportedGso(u8),
    /// `gso_size` 0 with a GSO type.
    #[error("gso_size is 0")]
    ZeroGsoSize,
    /// TCP data offset below 5.
    #[error("bad TCP header")]
    BadL4Header,
    /// A segment would not fit the 16-bit IP or UDP length field.
    #[error("segment too long for its length fields")]
    TooLong,
    /// Segment index `>= count()`.
    #[error("no such segment")]
    NoSuchSegment,
    /// The output buffer is shorter than the segment.
    #[error("output buffer too small: {need} bytes needed, {have} given")]
    BufferTooSmall { need: usize, have: usize },
}

// ---------------------------------------------------------------------------------------------
// Internet checksum

/// Adds `bytes` to a running one's-complement sum (RFC 1071), 8 bytes at a time.
///
/// The bytes are summed as big-endian 16-bit words, so chaining calls is only correct when
/// every slice but the last has an even length (a trailing odd byte counts as the high byte of
/// its word). Slices may start at any address. Finish with [`fold`].
pub fn checksum_add(sum: u64, bytes: &[u8]) -> u64 {
    // u64 words into a u128: no carry handling in the loop, 2^64 words cannot overflow it.
    // 2^64 ≡ 2^32 ≡ 2^16 ≡ 1 (mod 0xFFFF), so wide words fold to the same 16-bit sum.
    let mut acc = sum as u128;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        acc += u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as u128;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut tail = [0u8; 8];
        tail[..rest.len()].copy_from_slice(rest);
        acc += u64::from_be_bytes(tail) as u128;
    }
    let (s, carry) = (acc as u64).overflowing_add((acc >> 64) as u64);
    s + carry as u64
}

/// Folds a sum from [`checksum_add`] to 16 bits (end-around carry). Not inverted.
pub fn fold(sum: u64) -> u16 {
    let mut s = (sum & 0xFFFF_FFFF) + (sum >> 32);
    while s > 0xFFFF {
        s = (s & 0xFFFF) + (s >> 16);
    }
    s as u16
}

/// Adds a small word to a running sum with end-around carry.
fn add_word(sum: u64, w: u64) -> u64 {
    let (s, carry) = sum.overflowing_add(w);
    s + carry as u64
}

/// Pseudo-header sum (src, dst, protocol, L4 length) of the IP header at `l3`.
fn pseudo_sum(frame: &[u8], l3: usize, v6: bool, proto: u8, l4_len: usize) -> u64 {
    let addrs = if v6 { &frame[l3 + 8..l3 + 40] } else { &frame[l3 + 12..l3 + 20] };
    add_word(checksum_add(0, addrs), proto as u64 + l4_len as u64)
}

fn get16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}

fn put16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_be_bytes());
}

fn get32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// Recomputes the IPv4 header checksum of the `ihl`-byte header at `l3`.
fn ipv4_fix_checksum(f: &mut [u8], l3: usize, ihl: usize) {
    put16(f, l3 + 10, 0);
    let c = !fold(checksum_add(0, &f[l3..l3 + ihl]));
    put16(f, l3 + 10, c);
}

/// L2 header length (14, or 18 with one 802.1Q/802.1ad tag) and the EtherType after it.
fn l2_parse(frame: &[u8]) -> Option<(usize, u16)> {
    let et = get16(frame.get(..14)?, 12);
    if et == ETH_8021Q || et == ETH_8021AD { Some((18, get16(frame.get(..18)?, 16))) } else { Some((14, et)) }
}

// ---------------------------------------------------------------------------------------------
// Splitting (read direction)

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// gso_type NONE, no NEEDS_CSUM: bytes as they are.
    Copy,
    /// gso_type NONE with NEEDS_CSUM: complete the checksum (tap-offloads.md §2, step 3).
    Csum,
    /// TCPV4, TCPV6 or UDP_L4 (tap-offloads.md §2, steps 1–2).
    Gso,
}

/// One frame read from the tap, seen as the list of fully checksummed frames it stands for
/// (tap-offloads.md §2). Validation happens in [`Segments::new`]; [`Segments::write`] then only
/// fails on a bad index or a short buffer.
#[derive(Clone, Copy, Debug)]
pub struct Segments<'a> {
    hdr: VnetHdr,
    frame: &'a [u8],
    mode: Mode,
    /// L2 header length: offset of the IP header.
    l3: usize,
    v6: bool,
    udp: bool,
    /// IPv4 header length (IHL × 4); 40 for IPv6.
    ip_hdr: usize,
    /// End of the L4 header: `csum_start` + TCP data offset × 4, or + 8 for UDP.
    h: usize,
    /// gso_size.
    g: usize,
    count: usize,
    max_len: usize,
}

impl<'a> Segments<'a> {
    /// Validates `frame` (the Ethernet frame after the vnet header) against `hdr`
    /// (tap-offloads.md §2, step 1). `hdr_len` is ignored: the header end is derived from
    /// `csum_start` plus the L4 header length (§4.2).
    pub fn new(hdr: VnetHdr, frame: &'a [u8]) -> Result<Segments<'a>, OffloadError> {
        let len = frame.len();
        let mut s = Segments {
            hdr,
            frame,
            mode: Mode::Copy,
            l3: 0,
            v6: false,
            udp: false,
            ip_hdr: 0,
            h: 0,
            g: 0,
            count: 1,
            max_len: len,
        };
        if hdr.gso_type == GSO_NONE {
            if hdr.flags & NEEDS_CSUM != 0 {
                // Generic: csum_start may point at an inner header (encapsulation), §2.
                if hdr.csum_start as usize + hdr.csum_offset as usize + 2 > len {
                    return Err(OffloadError::BadCsumOffset);
                }
                s.mode = Mode::Csum;
            }
            return Ok(s);
        }
        s.mode = Mode::Gso;
        s.udp = match hdr.gso_type & !GSO_ECN {
            GSO_TCPV4 | GSO_TCPV6 => false,
            // ECN is a TCP notion; the kernel never sets it on USO.
            GSO_UDP_L4 if hdr.gso_type & GSO_ECN == 0 => true,
            _ => return Err(OffloadError::UnsupportedGso(hdr.gso_type)),
        };
        let (l3, et) = l2_parse(frame).ok_or(OffloadError::Truncated)?;
        s.l3 = l3;
        s.v6 = match et {
            ETH_IPV4 => false,
            ETH_IPV6 => true,
            _ => return Err(OffloadError::NotIp),
        };
        if len < l3 + if s.v6 { 40 } else { 20 } {
            return Err(OffloadError::Truncated);
        }
        let version = frame[l3] >> 4;
        let wrong_type = match hdr.gso_type & !GSO_ECN {
            GSO_TCPV4 => s.v6,
            GSO_TCPV6 => !s.v6,
            _ => false,
        };
        if version != if s.v6 { 6 } else { 4 } || wrong_type {
            return Err(OffloadError::VersionMismatch);
        }
        s.ip_hdr = if s.v6 { 40 } else { (frame[l3] & 0x0F) as usize * 4 };
        if s.ip_hdr < 20 {
            return Err(OffloadError::BadIpHeader);
        }
        // IPv6 may have extension headers before csum_start; IPv4 options are inside IHL.
        let cs = hdr.csum_start as usize;
        if cs < l3 + s.ip_hdr {
            return Err(OffloadError::BadCsumStart);
        }
        if hdr.gso_size == 0 {
            return Err(OffloadError::ZeroGsoSize);
        }
        // The checksum is recomputed where the protocol keeps it; another offset is a bad header
        // (the kernel itself rejects it on write, §3 "Kernel acceptance").
        if hdr.csum_offset != if s.udp { 6 } else { 16 } {
            return Err(OffloadError::BadCsumOffset);
        }
        let l4_hdr = if s.udp {
            8
        } else {
            if len < cs + 20 {
                return Err(OffloadError::Truncated);
            }
            let doff = (frame[cs + 12] >> 4) as usize * 4;
            if doff < 20 {
                return Err(OffloadError::BadL4Header);
            }
            doff
        };
        s.h = cs + l4_hdr;
        if len < s.h {
            return Err(OffloadError::Truncated);
        }
        s.g = hdr.gso_size as usize;
        let payload = len - s.h;
        // A payload that fits one segment is one segment, fixed up like any other (§3 acceptance).
        s.count = if payload <= s.g { 1 } else { payload.div_ceil(s.g) };
        s.max_len = if s.count == 1 { len } else { s.h + s.g };
        let ip_len = if s.v6 { s.max_len - l3 - 40 } else { s.max_len - l3 };
        if ip_len > 0xFFFF || (s.udp && s.max_len - cs > 0xFFFF) {
            return Err(OffloadError::TooLong);
        }
        Ok(s)
    }

    /// Number of segments: 1 unless the frame is a super-frame longer than one `gso_size`.
    /// Can be large with a small MSS (up to `gso_max_segs`, §2 "Segment count").
    pub fn count(&self) -> usize {
        self.count
    }

    /// Length of the largest segment, for sizing the output buffer.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The vnet header this frame came with.
    pub fn header(&self) -> VnetHdr {
        self.hdr
    }

    /// Length of segment `i`, `None` past the end.
    pub fn segment_len(&self, i: usize) -> Option<usize> {
        if i >= self.count {
            return None;
        }
        if self.mode != Mode::Gso || self.count == 1 {
            return Some(self.frame.len());
        }
        let start = self.h + i * self.g;
        Some(self.h + (self.frame.len() - start).min(self.g))
    }

    /// Writes segment `i` into `out` as a complete Ethernet frame with every checksum final (IPv4
    /// header, TCP/UDP), and returns its length (tap-offloads.md §2, steps 2–3).
    pub fn write(&self, i: usize, out: &mut [u8]) -> Result<usize, OffloadError> {
        let n = self.segment_len(i).ok_or(OffloadError::NoSuchSegment)?;
        if out.len() < n {
            return Err(OffloadError::BufferTooSmall { need: n, have: out.len() });
        }
        let out = &mut out[..n];
        match self.mode {
            Mode::Copy => out.copy_from_slice(self.frame),
            Mode::Csum => {
                out.copy_from_slice(self.frame);
                // Summing the area with the seed still in the field adds the seed (§2, step 3).
                let cs = self.hdr.csum_start as usize;
                let at = cs + self.hdr.csum_offset as usize;
                let c = !fold(checksum_add(0, &out[cs..]));
                put16(out, at, if c == 0 { 0xFFFF } else { c });
            }
            Mode::Gso => self.write_gso(i, out),
        }
        Ok(n)
    }

    /// Header copy and fix-ups of one GSO segment; `out` is exactly the segment long.
    fn write_gso(&self, i: usize, out: &mut [u8]) {
        let (l3, h, n) = (self.l3, self.h, out.len());
        let start = h + i * self.g;
        out[..h].copy_from_slice(&self.frame[..h]);
        out[h..].copy_from_slice(&self.frame[start..start + (n - h)]);
        if self.v6 {
            // Everything after the fixed header counts, extension headers included (§2 step 2).
            put16(out, l3 + 4, (n - l3 - 40) as u16);
        } else {
            put16(out, l3 + 2, (n - l3) as u16);
            let id = get16(out, l3 + 4).wrapping_add(i as u16);
            put16(out, l3 + 4, id);
            ipv4_fix_checksum(out, l3, self.ip_hdr);
        }
        let cs = self.hdr.csum_start as usize;
        let (proto, field) = if self.udp {
            put16(out, cs + 4, (n - cs) as u16);
            (PROTO_UDP, cs + 6)
        } else {
            // u32 arithmetic: i·g can exceed 16 bits with many small segments (§4.10).
            let seq = get32(out, cs + 4).wrapping_add((i as u32).wrapping_mul(self.g as u32));
            out[cs + 4..cs + 8].copy_from_slice(&seq.to_be_bytes());
            if i + 1 < self.count {
                out[cs + 13] &= !(TCP_FIN | TCP_PSH);
            }
            if i > 0 {
                out[cs + 13] &= !TCP_CWR;
            }
            (PROTO_TCP, cs + 16)
        };
        put16(out, field, 0);
        let sum = add_word(pseudo_sum(out, l3, self.v6, proto, n - cs), checksum_add(0, &out[cs..]));
        let c = !fold(sum);
        // UDP: 0 means "no checksum", so a computed 0 is sent as 0xFFFF (CSUM_MANGLED_0, §4.8).
        put16(out, field, if self.udp && c == 0 { 0xFFFF } else { c });
    }
}

// ---------------------------------------------------------------------------------------------
// Coalescing (write direction)

/// Flows tracked at once; when full, the oldest pending item is written out.
const FLOWS: usize = 8;

/// Layout of an IP/TCP frame: offsets from Ethernet byte 0.
#[derive(Clone, Copy, Debug, Default)]
struct Meta {
    /// L2 header length (14 or 18).
    l3: usize,
    v6: bool,
    /// Start of the TCP header (`csum_start`).
    l4: usize,
    /// End of the TCP header.
    h: usize,
    /// End of the IP packet; Ethernet padding after it is dropped from merged items.
    end: usize,
}

impl Meta {
    fn addrs<'f>(&self, f: &'f [u8]) -> &'f [u8] {
        if self.v6 { &f[self.l3 + 8..self.l3 + 40] } else { &f[self.l3 + 12..self.l3 + 20] }
    }

    fn ports<'f>(&self, f: &'f [u8]) -> &'f [u8] {
        &f[self.l4..self.l4 + 4]
    }
}

/// What a frame to be written means for the coalescer.
enum Class {
    /// Not TCP (ARP, ICMP, UDP, …): written at once; other flows' order does not matter.
    Other,
    /// Might be TCP but the ports are unknown (IPv4 fragment, IPv6 extension headers, malformed):
    /// flush every item between the same two addresses first, to keep order.
    Hosts(Meta),
    /// A TCP frame that cannot be merged (SYN, FIN, pure ACK, options in IPv4, …): flush its
    /// flow's item first.
    Flow(Meta),
    /// Could be merged, once its checksums are verified.
    Candidate(Meta),
}

fn classify(f: &[u8]) -> Class {
    let Some((l3, et)) = l2_parse(f) else { return Class::Other };
    let mut m = Meta { l3, ..Meta::default() };
    let len = f.len();
    match et {
        ETH_IPV4 => {
            if len < l3 + 20 || f[l3] >> 4 != 4 || f[l3 + 9] != PROTO_TCP {
                return Class::Other;
            }
            let ihl = (f[l3] & 0x0F) as usize * 4;
            m.end = l3 + get16(f, l3 + 2) as usize;
            m.l4 = l3 + ihl;
            let fragment = get16(f, l3 + 6) & 0x3FFF != 0;
            if ihl < 20 || fragment || m.end > len || m.l4 + 20 > m.end {
                return Class::Hosts(m);
            }
        }
        ETH_IPV6 => {
            if len < l3 + 40 || f[l3] >> 4 != 6 {
                return Class::Other;
            }
            m.v6 = true;
            m.end = l3 + 40 + get16(f, l3 + 4) as usize;
            m.l4 = l3 + 40;
            match f[l3 + 6] {
                PROTO_TCP => {}
                PROTO_UDP | 58 => return Class::Other,
                // Extension headers (or something unknown) may hide TCP: keep the order.
                _ => return Class::Hosts(m),
            }
            if m.end > len || m.l4 + 20 > m.end {
                return Class::Hosts(m);
            }
        }
        _ => return Class::Other,
    }
    let doff = (f[m.l4 + 12] >> 4) as usize * 4;
    m.h = m.l4 + doff;
    // Merge rules (tap-offloads.md §3): IPv4 without options, flags exactly ACK or ACK|PSH (no
    // ECE/CWR/URG/AE, never SYN/FIN/RST), payload > 0.
    let flags = f[m.l4 + 13];
    let candidate = doff >= 20
        && m.h < m.end
        && (m.v6 || m.l4 == l3 + 20)
        && f[m.l4 + 12] & 0x0F == 0
        && (flags == TCP_ACK || flags == TCP_ACK | TCP_PSH);
    if candidate { Class::Candidate(m) } else { Class::Flow(m) }
}

/// The IPv4 header checksum and the TCP checksum of a candidate verify: the merged item goes out
/// as NEEDS_CSUM, which the kernel trusts without checking (tap-offloads.md §3, "Trust").
fn checksums_ok(f: &[u8], m: &Meta) -> bool {
    if !m.v6 && fold(checksum_add(0, &f[m.l3..m.l4])) != 0xFFFF {
        return false;
    }
    let sum = add_word(pseudo_sum(f, m.l3, m.v6, PROTO_TCP, m.end - m.l4), checksum_add(0, &f[m.l4..m.end]));
    fold(sum) == 0xFFFF
}

/// What the coalescer hands out: a whole tap write, or a frame that needs a zero header.
enum Out<'x> {
    /// Vnet header followed by the frame, contiguous.
    Whole(&'x [u8]),
    /// A frame to write unchanged behind an all-zero header.
    Plain(&'x [u8]),
}

/// One pending merged item: the first frame, with the later segments' payloads appended.
struct Item {
    /// Vnet header (written when the item goes out) followed by the frame.
    buf: Box<[u8]>,
    /// Frame bytes in `buf` after the header; 0 = free slot.
    len: usize,
    /// Order of creation, to flush the oldest first.
    age: u64,
    m: Meta,
    first_seq: u32,
    /// Payload bytes so far.
    merged: u32,
    /// Payload of the first segment: the `gso_size` of the item.
    gso: usize,
    segs: u32,
    /// A PSH or short segment was appended: nothing may follow (§3 "Sizes", "PSH").
    closed: bool,
    psh: bool,
}

impl Item {
    fn frame(&self) -> &[u8] {
        &self.buf[VNET_HDR_LEN..VNET_HDR_LEN + self.len]
    }

    fn active(&self) -> bool {
        self.len != 0
    }

    /// Same address pair and ports, same IP version: the unit whose order must be kept.
    fn same_flow(&self, f: &[u8], m: &Meta) -> bool {
        let mine = self.frame();
        self.m.v6 == m.v6 && self.m.addrs(mine) == m.addrs(f) && self.m.ports(mine) == m.ports(f)
    }

    fn same_hosts(&self, f: &[u8], m: &Meta) -> bool {
        self.m.v6 == m.v6 && self.m.addrs(self.frame()) == m.addrs(f)
    }

    /// Merge rules of tap-offloads.md §3, for a verified candidate of the same flow.
    fn can_append(&self, f: &[u8], m: &Meta) -> bool {
        // Same layout first: the byte comparisons below use `m`'s offsets on both frames.
        if self.closed || self.m.l3 != m.l3 || self.m.h != m.h {
            return false;
        }
        let (a, b) = (self.frame(), f);
        let (l3, l4, h) = (m.l3, m.l4, m.h);
        let payload = m.end - h;
        let ip_ok = if m.v6 {
            // Version, traffic class and flow label, then hop limit.
            a[l3..l3 + 4] == b[l3..l3 + 4] && a[l3 + 7] == b[l3 + 7]
        } else {
            // TOS, TTL, DF.
            a[l3 + 1] == b[l3 + 1] && a[l3 + 8] == b[l3 + 8] && (a[l3 + 6] ^ b[l3 + 6]) & 0x40 == 0
        };
        let new_len = self.len + payload;
        let ip_len = if m.v6 { new_len - l3 - 40 } else { new_len - l3 };
        a[..l3] == b[..l3]
            && ip_ok
            && a[l4 + 8..l4 + 12] == b[l4 + 8..l4 + 12]
            && a[l4 + 20..h] == b[l4 + 20..h]
            && get32(b, l4 + 4) == self.first_seq.wrapping_add(self.merged)
            && payload <= self.gso
            && ip_len <= 0xFFFF
            && VNET_HDR_LEN + new_len <= self.buf.len()
    }

    fn start(&mut self, f: &[u8], m: Meta, age: u64) {
        self.buf[VNET_HDR_LEN..VNET_HDR_LEN + m.end].copy_from_slice(&f[..m.end]);
        self.len = m.end;
        self.age = age;
        self.m = m;
        self.first_seq = get32(f, m.l4 + 4);
        self.gso = m.end - m.h;
        self.merged = self.gso as u32;
        self.segs = 1;
        self.psh = f[m.l4 + 13] & TCP_PSH != 0;
        self.closed = self.psh;
    }

    fn append(&mut self, f: &[u8], m: &Meta) {
        let p = &f[m.h..m.end];
        let at = VNET_HDR_LEN + self.len;
        self.buf[at..at + p.len()].copy_from_slice(p);
        self.len += p.len();
        self.merged = self.merged.wrapping_add(p.len() as u32);
        self.segs += 1;
        self.psh = f[m.l4 + 13] & TCP_PSH != 0;
        self.closed = self.psh || p.len() < self.gso;
    }

    /// Writes the item's header and edits (tap-offloads.md §3, header table and "Packet edits"),
    /// hands it out and frees the slot. A single frame goes out unchanged with a zero header.
    fn emit(&mut self, out: &mut impl FnMut(Out<'_>)) {
        let (m, len) = (self.m, self.len);
        let hdr = if self.segs == 1 {
            VnetHdr::NONE
        } else {
            let f = &mut self.buf[VNET_HDR_LEN..VNET_HDR_LEN + len];
            if m.v6 {
                put16(f, m.l3 + 4, (len - m.l3 - 40) as u16);
            } else {
                put16(f, m.l3 + 2, (len - m.l3) as u16);
                ipv4_fix_checksum(f, m.l3, 20);
            }
            if self.psh {
                f[m.l4 + 13] |= TCP_PSH;
            }
            // The kernel completes the checksum from the non-inverted pseudo-header sum.
            put16(f, m.l4 + 16, 0);
            let ps = fold(pseudo_sum(f, m.l3, m.v6, PROTO_TCP, len - m.l4));
            put16(f, m.l4 + 16, ps);
            VnetHdr {
                flags: NEEDS_CSUM,
                gso_type: if m.v6 { GSO_TCPV6 } else { GSO_TCPV4 },
                hdr_len: m.h as u16,
                gso_size: self.gso as u16,
                csum_start: m.l4 as u16,
                csum_offset: 16,
            }
        };
        // A fresh header for every write, never a stale one (tap-offloads.md §4.7).
        hdr.write(&mut self.buf);
        self.len = 0;
        out(Out::Whole(&self.buf[..VNET_HDR_LEN + len]));
    }
}

/// Counters since construction, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoalescerStats {
    /// Frames offered to `push`.
    pub frames: u64,
    /// Writes of merged items (two segments or more).
    pub merged_writes: u64,
    /// Segments that went into those writes.
    pub merged_segments: u64,
    /// TCP candidates with a bad IPv4 or TCP checksum, passed through unmerged.
    pub bad_checksum: u64,
}

/// GRO direction (tap-offloads.md §3): merges consecutive TCP segments of one flow into one
/// super-frame per tap write.
///
/// Only TCP is merged, within one batch: the caller calls [`Coalescer::flush`] after every batch,
/// and nothing waits on a timer. At most one item is pending per flow (addresses + ports), so a
/// frame that does not extend it writes it out first and a flow's order is always kept. Frames of
/// other protocols go out at once, possibly ahead of other flows' pending items.
///
/// 802.1Q/802.1ad-tagged frames (L2 = 18) are merged like untagged ones; frames merge only with
/// an identical Ethernet header. IPv4 packets with options and IPv6 packets with extension
/// headers are never merged.
pub struct Coalescer {
    items: Vec<Item>,
    enabled: bool,
    clock: u64,
    stats: CoalescerStats,
}

impl Default for Coalescer {
    fn default() -> Self {
        Coalescer::new()
    }
}

impl Coalescer {
    /// Allocates all buffers now: 8 flows, 64 KiB each.
    pub fn new() -> Coalescer {
        let item = || Item {
            buf: vec![0; VNET_HDR_LEN + FRAME_CAP].into_boxed_slice(),
            len: 0,
            age: 0,
            m: Meta::default(),
            first_seq: 0,
            merged: 0,
            gso: 0,
            segs: 0,
            closed: false,
            psh: false,
        };
        Coalescer {
            items: (0..FLOWS).map(|_| item()).collect(),
            enabled: true,
            clock: 0,
            stats: CoalescerStats::default(),
        }
    }

    /// Kill switch (tap-offloads.md §4.3): when off, every frame is written at once with a zero
    /// header. Pending items are written before the next frame.
    pub fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn stats(&self) -> CoalescerStats {
        self.stats
    }

    /// Whether any item is waiting for [`Coalescer::flush`].
    pub fn pending(&self) -> bool {
        self.items.iter().any(Item::active)
    }

    /// Offers one Ethernet frame (no vnet header) to be written to the tap. `write` receives
    /// complete tap writes for whatever must go out now to keep order, as the 10-byte vnet header
    /// and the frame in two slices (for `writev`: pass-through frames are not copied); mergeable
    /// frames are copied into their flow's buffer.
    pub fn push(&mut self, frame: &[u8], write: &mut impl FnMut(&[u8], &[u8])) {
        self.push_out(frame, &mut |o: Out<'_>| split_out(o, write));
    }

    /// Writes out every pending item, oldest first, as [`Coalescer::push`] writes. Call it at the
    /// end of every batch.
    pub fn flush(&mut self, write: &mut impl FnMut(&[u8], &[u8])) {
        self.flush_out(&mut |o: Out<'_>| split_out(o, write));
    }

    fn push_out(&mut self, frame: &[u8], out: &mut impl FnMut(Out<'_>)) {
        self.stats.frames += 1;
        if !self.enabled {
            self.flush_out(out);
            out(Out::Plain(frame));
            return;
        }
        match classify(frame) {
            Class::Other => out(Out::Plain(frame)),
            Class::Hosts(m) => {
                for k in 0..FLOWS {
                    if self.items[k].active() && self.items[k].same_hosts(frame, &m) {
                        self.emit(k, out);
                    }
                }
                out(Out::Plain(frame));
            }
            Class::Flow(m) => {
                if let Some(k) = self.find_flow(frame, &m) {
                    self.emit(k, out);
                }
                out(Out::Plain(frame));
            }
            Class::Candidate(m) => {
                let found = self.find_flow(frame, &m);
                if !checksums_ok(frame, &m) {
                    // Unmerged with a zero header, so the kernel checks it and drops it.
                    self.stats.bad_checksum += 1;
                    if let Some(k) = found {
                        self.emit(k, out);
                    }
                    out(Out::Plain(frame));
                    return;
                }
                let k = match found {
                    Some(k) if self.items[k].can_append(frame, &m) => {
                        self.items[k].append(frame, &m);
                        return;
                    }
                    Some(k) => {
                        self.emit(k, out);
                        k
                    }
                    None => match self.items.iter().position(|it| !it.active()) {
                        Some(k) => k,
                        None => {
                            let k = self.oldest().unwrap_or(0);
                            self.emit(k, out);
                            k
                        }
                    },
                };
                self.clock += 1;
                self.items[k].start(frame, m, self.clock);
            }
        }
    }

    fn flush_out(&mut self, out: &mut impl FnMut(Out<'_>)) {
        while let Some(k) = self.oldest() {
            self.emit(k, out);
        }
    }

    fn find_flow(&self, f: &[u8], m: &Meta) -> Option<usize> {
        self.items.iter().position(|it| it.active() && it.same_flow(f, m))
    }

    fn oldest(&self) -> Option<usize> {
        (0..FLOWS).filter(|&k| self.items[k].active()).min_by_key(|&k| self.items[k].age)
    }

    fn emit(&mut self, k: usize, out: &mut impl FnMut(Out<'_>)) {
        let it = &mut self.items[k];
        if it.segs > 1 {
            self.stats.merged_writes += 1;
            self.stats.merged_segments += it.segs as u64;
        }
        it.emit(out);
    }
}

fn split_out(o: Out<'_>, write: &mut impl FnMut(&[u8], &[u8])) {
    const ZERO: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];
    match o {
        Out::Whole(b) => write(&b[..VNET_HDR_LEN], &b[VNET_HDR_LEN..]),
        Out::Plain(f) => write(&ZERO, f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic test data without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    /// RFC 1071 the slow way: big-endian byte pairs, folded at the end.
    fn ref_sum(data: &[u8]) -> u64 {
        let mut s = 0u64;
        for pair in data.chunks(2) {
            s += (pair[0] as u64) << 8 | pair.get(1).copied().unwrap_or(0) as u64;
        }
        s
    }

    fn ref_fold(mut s: u64) -> u16 {
        while s > 0xFFFF {
            s = (s & 0xFFFF) + (s >> 16);
        }
        s as u16
    }

    /// Independent pseudo-header sum, from the frame's own IP header.
    fn ref_pseudo(f: &[u8], l3: usize, v6: bool, proto: u8, l4_len: usize) -> u64 {
        let addrs = if v6 { &f[l3 + 8..l3 + 40] } else { &f[l3 + 12..l3 + 20] };
        ref_sum(addrs) + proto as u64 + (l4_len >> 16) as u64 + (l4_len & 0xFFFF) as u64
    }

    /// Checks every checksum and length of an untunnelled IPv4/IPv6 TCP/UDP frame.
    fn verify(f: &[u8]) {
        let l3 = if f[12..14] == [0x81, 0] { 18 } else { 14 };
        let v6 = f[l3 - 2..l3] == [0x86, 0xdd];
        let (l4, proto) = if v6 {
            assert_eq!(u16::from_be_bytes([f[l3 + 4], f[l3 + 5]]) as usize, f.len() - l3 - 40, "ipv6 payload length");
            (l3 + 40, f[l3 + 6])
        } else {
            assert_eq!(u16::from_be_bytes([f[l3 + 2], f[l3 + 3]]) as usize, f.len() - l3, "ipv4 total length");
            assert_eq!(ref_fold(ref_sum(&f[l3..l3 + 20])), 0xFFFF, "ipv4 header checksum");
            (l3 + 20, f[l3 + 9])
        };
        let l4_len = f.len() - l4;
        if proto == PROTO_UDP {
            assert_eq!(u16::from_be_bytes([f[l4 + 4], f[l4 + 5]]) as usize, l4_len, "udp length");
            assert_ne!(&f[l4 + 6..l4 + 8], &[0, 0], "udp checksum 0");
        }
        assert_eq!(ref_fold(ref_pseudo(f, l3, v6, proto, l4_len) + ref_sum(&f[l4..])), 0xFFFF, "l4 checksum");
    }

    #[derive(Clone)]
    struct Pkt {
        v6: bool,
        vlan: bool,
        udp: bool,
        tos: u8,
        ttl: u8,
        id: u16,
        flow: u32,
        sport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        opts: Vec<u8>,
        payload: Vec<u8>,
    }

    impl Pkt {
        fn new(v6: bool, payload: Vec<u8>) -> Pkt {
            Pkt {
                v6,
                vlan: false,
                udp: false,
                tos: 0,
                ttl: 64,
                id: 0x1234,
                flow: 0xABCDE,
                sport: 40000,
                seq: 1_000_000,
                ack: 77,
                flags: TCP_ACK,
                opts: vec![1, 1, 8, 10, 0, 0, 1, 2, 0, 0, 3, 4], // NOP NOP timestamps
                payload,
            }
        }

        fn l3(&self) -> usize {
            if self.vlan { 18 } else { 14 }
        }

        fn l4(&self) -> usize {
            self.l3() + if self.v6 { 40 } else { 20 }
        }

        fn h(&self) -> usize {
            self.l4() + if self.udp { 8 } else { 20 + self.opts.len() }
        }

        /// The frame with every checksum final.
        fn build(&self) -> Vec<u8> {
            let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
            if self.vlan {
                f.extend([0x81, 0x00, 0x00, 0x05]);
            }
            f.extend(if self.v6 { [0x86, 0xdd] } else { [0x08, 0x00] });
            let l3 = f.len();
            let proto = if self.udp { PROTO_UDP } else { PROTO_TCP };
            let l4_len = self.h() - self.l4() + self.payload.len();
            if self.v6 {
                f.extend([0x60 | self.tos >> 4, self.tos << 4 | (self.flow >> 16) as u8 & 0x0F]);
                f.extend((self.flow as u16).to_be_bytes());
                f.extend((l4_len as u16).to_be_bytes());
                f.extend([proto, self.ttl]);
                f.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
                f.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            } else {
                f.extend([0x45, self.tos]);
                f.extend(((20 + l4_len) as u16).to_be_bytes());
                f.extend(self.id.to_be_bytes());
                f.extend([0x40, 0, self.ttl, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
                let c = !ref_fold(ref_sum(&f[l3..l3 + 20]));
                f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
            }
            let l4 = f.len();
            f.extend(self.sport.to_be_bytes());
            f.extend(443u16.to_be_bytes());
            if self.udp {
                f.extend((l4_len as u16).to_be_bytes());
                f.extend([0, 0]);
            } else {
                f.extend(self.seq.to_be_bytes());
                f.extend(self.ack.to_be_bytes());
                f.extend([(((20 + self.opts.len()) / 4) << 4) as u8, self.flags, 0xFF, 0xF0, 0, 0, 0, 0]);
                f.extend(&self.opts);
            }
            f.extend(&self.payload);
            let at = l4 + if self.udp { 6 } else { 16 };
            let c = !ref_fold(ref_pseudo(&f, l3, self.v6, proto, l4_len) + ref_sum(&f[l4..]));
            let c = if self.udp && c == 0 { 0xFFFF } else { c };
            f[at..at + 2].copy_from_slice(&c.to_be_bytes());
            f
        }

        /// As the kernel hands a CHECKSUM_PARTIAL or TSO frame to a tap reader (§2 "Frames on
        /// read"): the L4 field holds the folded, non-inverted pseudo-header sum.
        fn partial(&self) -> (VnetHdr, Vec<u8>) {
            let mut f = self.build();
            let (l3, l4) = (self.l3(), self.l4());
            let proto = if self.udp { PROTO_UDP } else { PROTO_TCP };
            let at = l4 + if self.udp { 6 } else { 16 };
            let ps = ref_fold(ref_pseudo(&f, l3, self.v6, proto, f.len() - l4));
            f[at..at + 2].copy_from_slice(&ps.to_be_bytes());
            let hdr = VnetHdr {
                flags: NEEDS_CSUM,
                gso_type: GSO_NONE,
                hdr_len: 0,
                gso_size: 0,
                csum_start: l4 as u16,
                csum_offset: if self.udp { 6 } else { 16 },
            };
            (hdr, f)
        }

        fn tso(&self, mss: u16) -> (VnetHdr, Vec<u8>) {
            let (mut hdr, f) = self.partial();
            hdr.gso_type = match (self.udp, self.v6) {
                (true, _) => GSO_UDP_L4,
                (false, false) => GSO_TCPV4,
                (false, true) => GSO_TCPV6,
            };
            hdr.gso_size = mss;
            hdr.hdr_len = self.h() as u16;
            (hdr, f)
        }

        /// Segment `i` of a burst of this packet, as the kernel's software GSO would produce it.
        fn segment(&self, i: usize, mss: usize, count: usize) -> Pkt {
            let mut p = self.clone();
            let start = i * mss;
            p.payload = self.payload[start..(start + mss).min(self.payload.len())].to_vec();
            p.id = self.id.wrapping_add(i as u16);
            p.seq = self.seq.wrapping_add((i * mss) as u32);
            if i + 1 < count {
                p.flags &= !(TCP_FIN | TCP_PSH);
            }
            if i > 0 {
                p.flags &= !TCP_CWR;
            }
            p
        }
    }

    fn payload(n: usize, seed: u64) -> Vec<u8> {
        Rng(seed | 1).bytes(n)
    }

    fn split(hdr: VnetHdr, f: &[u8]) -> Vec<Vec<u8>> {
        let s = Segments::new(hdr, f).unwrap();
        let mut buf = vec![0; s.max_len()];
        (0..s.count())
            .map(|i| {
                let n = s.write(i, &mut buf).unwrap();
                assert_eq!(Some(n), s.segment_len(i));
                buf[..n].to_vec()
            })
            .collect()
    }

    /// Everything `push`/`flush` write for `frames`, each write as header ‖ frame.
    fn coalesce(c: &mut Coalescer, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut w = Vec::new();
        for f in frames {
            c.push(f, &mut |h: &[u8], b: &[u8]| w.push([h, b].concat()));
        }
        c.flush(&mut |h: &[u8], b: &[u8]| w.push([h, b].concat()));
        assert!(!c.pending());
        w
    }

    /// A tap write split back into frames, as the kernel would segment it.
    fn resplit(w: &[u8]) -> Vec<Vec<u8>> {
        split(VnetHdr::parse(w).unwrap(), &w[VNET_HDR_LEN..])
    }

    fn plain(f: &[u8]) -> Vec<u8> {
        [&[0u8; VNET_HDR_LEN][..], f].concat()
    }

    #[test]
    fn checksum_matches_reference() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let lens = (0..200).chain([1499, 1500, 9001, 65535, 65536]);
        for len in lens {
            for _ in 0..4 {
                // Random start inside a buffer: unaligned slices.
                let off = rng.below(8);
                let buf = rng.bytes(len + off);
                let d = &buf[off..];
                assert_eq!(fold(checksum_add(0, d)), ref_fold(ref_sum(d)), "len {len} off {off}");
                let seed = rng.next();
                assert_eq!(fold(checksum_add(seed, d)), ref_fold(ref_sum(d) + ref_sum(&seed.to_be_bytes())));
                // Chained at an even split point.
                let cut = rng.below(len / 2 + 1) * 2;
                assert_eq!(fold(checksum_add(checksum_add(0, &d[..cut]), &d[cut..])), ref_fold(ref_sum(d)));
            }
        }
        assert_eq!(fold(u64::MAX), 0xFFFF);
        assert_eq!(fold(checksum_add(u64::MAX, &[0xFF; 64])), 0xFFFF);
        assert_eq!(fold(0), 0);
    }

    #[test]
    fn vnet_hdr_roundtrip() {
        let h = VnetHdr { flags: 1, gso_type: 4, hdr_len: 86, gso_size: 1440, csum_start: 54, csum_offset: 16 };
        let mut b = [0u8; 12];
        h.write(&mut b);
        assert_eq!(b[..10], [1, 4, 86, 0, 0xA0, 5, 54, 0, 16, 0]);
        assert_eq!(VnetHdr::parse(&b), Some(h));
        assert_eq!(VnetHdr::parse(&b[..9]), None);
        assert_eq!(VnetHdr::parse(&[0; 10]), Some(VnetHdr::NONE));
    }

    /// Splits a kernel-style super-frame, checks each segment against an independently built
    /// one, coalesces the segments back and checks that the write is the super-frame again.
    fn tso_roundtrip(p: &Pkt, mss: usize) -> Vec<Vec<u8>> {
        let (hdr, sf) = p.tso(mss as u16);
        let count = p.payload.len().div_ceil(mss).max(1);
        let s = Segments::new(hdr, &sf).unwrap();
        assert_eq!(s.count(), count);
        assert_eq!(s.max_len(), if count == 1 { sf.len() } else { p.h() + mss });
        let segs = split(hdr, &sf);
        for (i, seg) in segs.iter().enumerate() {
            assert_eq!(seg, &p.segment(i, mss, count).build(), "segment {i}");
            verify(seg);
        }
        if p.udp {
            return segs;
        }
        let writes = coalesce(&mut Coalescer::new(), &segs);
        let fin = p.flags & TCP_FIN != 0;
        let merged = if fin { count - 1 } else { count };
        if merged > 1 {
            let (h, f) = (VnetHdr::parse(&writes[0]).unwrap(), &writes[0][VNET_HDR_LEN..]);
            let want = VnetHdr { hdr_len: p.h() as u16, ..hdr };
            assert_eq!(h, want);
            if fin {
                // The super-frame without the last segment, and no FIN.
                let mut q = p.clone();
                q.flags &= !(TCP_FIN | TCP_PSH);
                q.payload.truncate((count - 1) * mss);
                assert_eq!(f, &q.tso(mss as u16).1[..]);
            } else {
                assert_eq!(f, &sf[..]);
            }
            assert_eq!(resplit(&writes[0]), segs[..merged]);
        } else {
            assert_eq!(writes[0], plain(&segs[0]));
        }
        let tail = if merged > 1 { 1 } else { merged };
        let rest: Vec<Vec<u8>> = segs[merged..].iter().map(|s| plain(s)).collect();
        assert_eq!(writes[tail..], rest[..]);
        segs
    }

    #[test]
    fn tso_ipv4_split_and_merge() {
        // 10 × 1000 + 500 tail, PSH on the burst.
        let mut p = Pkt::new(false, payload(10_500, 1));
        p.flags = TCP_ACK | TCP_PSH;
        let segs = tso_roundtrip(&p, 1000);
        assert_eq!(segs.len(), 11);
        assert_eq!(segs[10].len(), p.h() + 500);
        assert!(segs[..10].iter().all(|s| s[p.l4() + 13] == TCP_ACK));
        assert_eq!(segs[10][p.l4() + 13], TCP_ACK | TCP_PSH);
        // Exact multiple, no options.
        p.opts.clear();
        p.flags = TCP_ACK;
        p.payload = payload(2 * 1448, 2);
        assert_eq!(tso_roundtrip(&p, 1448).len(), 2);
        // Sequence and ID wrap.
        p.seq = u32::MAX - 2500;
        p.id = 0xFFFE;
        p.payload = payload(4 * 1000 + 1, 3);
        let segs = tso_roundtrip(&p, 1000);
        assert_eq!(segs[3][p.l3() + 4..p.l3() + 6], [0, 1]);
        assert_eq!(segs[3][p.l4() + 4..p.l4() + 8], (u32::MAX - 2500).wrapping_add(3000).to_be_bytes());
        // FIN|PSH: only the last segment keeps them; the FIN segment is not merged back.
        p.flags = TCP_ACK | TCP_PSH | TCP_FIN;
        let segs = tso_roundtrip(&p, 1000);
        assert_eq!(segs[4][p.l4() + 13], TCP_ACK | TCP_PSH | TCP_FIN);
        // Nearly 64 KiB.
        p.flags = TCP_ACK;
        p.payload = payload(65535 - 20 - 32, 4);
        assert_eq!(tso_roundtrip(&p, 1448).len(), 46);
    }

    #[test]
    fn tso_ipv6_split_and_merge() {
        let mut p = Pkt::new(true, payload(7 * 1428 + 17, 5));
        p.tos = 0x28;
        assert_eq!(tso_roundtrip(&p, 1428).len(), 8);
        p.flags = TCP_ACK | TCP_PSH;
        p.seq = u32::MAX;
        p.payload = payload(3 * 1428, 6);
        assert_eq!(tso_roundtrip(&p, 1428).len(), 3);
        p.payload = payload(65535 - 32, 7);
        assert_eq!(tso_roundtrip(&p, 1428).len(), 46);
        p.flags = TCP_ACK | TCP_FIN;
        p.payload = payload(5000, 8);
        tso_roundtrip(&p, 1000);
    }

    #[test]
    fn tso_vlan_tagged() {
        let mut p = Pkt::new(false, payload(3000, 9));
        p.vlan = true;
        assert_eq!(p.tso(1000).0.csum_start, 38);
        assert_eq!(tso_roundtrip(&p, 1000).len(), 3);
        p.v6 = true;
        assert_eq!(tso_roundtrip(&p, 1000).len(), 3);
    }

    #[test]
    fn tso_one_segment_and_ecn() {
        // gso_size >= payload: one segment, still fixed up and checksummed.
        let p = Pkt::new(false, payload(800, 10));
        let (hdr, sf) = p.tso(1000);
        let segs = split(hdr, &sf);
        assert_eq!(segs, [p.build()]);
        let (hdr, sf) = p.tso(800);
        assert_eq!(split(hdr, &sf), [p.build()]);
        // gso_type | ECN: CWR only on the first segment.
        let mut p = Pkt::new(true, payload(3000, 11));
        p.flags = TCP_ACK | TCP_CWR | TCP_PSH;
        let (mut hdr, sf) = p.tso(1000);
        hdr.gso_type |= GSO_ECN;
        let segs = split(hdr, &sf);
        let fl: Vec<u8> = segs.iter().map(|s| s[p.l4() + 13]).collect();
        assert_eq!(fl, [TCP_ACK | TCP_CWR, TCP_ACK, TCP_ACK | TCP_PSH]);
        segs.iter().for_each(|s| verify(s));
        // CWR frames are never merged; the two after it are.
        let w = coalesce(&mut Coalescer::new(), &segs);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0], plain(&segs[0]));
        assert_eq!(resplit(&w[1]), segs[1..]);
    }

    #[test]
    fn uso_split() {
        for v6 in [false, true] {
            let mut p = Pkt::new(v6, payload(5 * 1000 + 300, 12));
            p.udp = true;
            let (hdr, _) = p.tso(1000);
            assert_eq!(hdr.gso_type, GSO_UDP_L4);
            assert_eq!(tso_roundtrip(&p, 1000).len(), 6);
            // UDP is never merged.
            let segs = split(hdr, &p.tso(1000).1);
            let w = coalesce(&mut Coalescer::new(), &segs);
            assert_eq!(w, segs.iter().map(|s| plain(s)).collect::<Vec<_>>());
        }
    }

    /// A UDP payload whose checksum comes out as 0, so it must be sent as 0xFFFF.
    fn udp_zero_sum(v6: bool) -> Pkt {
        let mut p = Pkt::new(v6, payload(101, 13));
        p.udp = true;
        p.payload.extend([0, 0]);
        let f = p.build();
        let l4 = p.l4();
        let s = ref_fold(
            ref_pseudo(&f, p.l3(), v6, PROTO_UDP, f.len() - l4) + ref_sum(&f[l4..l4 + 6]) + ref_sum(&f[l4 + 8..]),
        );
        // Add a word at an odd offset (101) so that the data sums to 0xFFFF.
        let w = (!s).rotate_left(8);
        let n = p.payload.len();
        p.payload[n - 2..].copy_from_slice(&w.to_be_bytes());
        p
    }

    #[test]
    fn needs_csum_without_gso() {
        // TCP and UDP CHECKSUM_PARTIAL, both families: the segment is the fully checksummed frame.
        for (v6, udp) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut p = Pkt::new(v6, payload(333, 14));
            p.udp = udp;
            let (hdr, f) = p.partial();
            assert_eq!(split(hdr, &f), [p.build()]);
        }
        // A checksum of 0 goes out as 0xFFFF, also through USO with one segment.
        for v6 in [false, true] {
            let p = udp_zero_sum(v6);
            let (hdr, f) = p.partial();
            let out = split(hdr, &f);
            let at = p.l4() + 6;
            assert_eq!(out[0][at..at + 2], [0xFF, 0xFF]);
            assert_eq!(out, [p.build()]);
            verify(&out[0]);
            let (hdr, f) = p.tso(2000);
            let out = split(hdr, &f);
            assert_eq!(out[0][at..at + 2], [0xFF, 0xFF]);
        }
        // No NEEDS_CSUM: copied unchanged, whatever is in it.
        let junk = payload(61, 15);
        assert_eq!(split(VnetHdr::NONE, &junk), std::slice::from_ref(&junk));
        let dv = VnetHdr { flags: DATA_VALID, ..VnetHdr::NONE };
        assert_eq!(split(dv, &junk), [junk]);
    }

    #[test]
    fn malformed_super_frames() {
        use OffloadError::*;
        let p = Pkt::new(false, payload(3000, 16));
        let (hdr, sf) = p.tso(1000);
        let err = |h: VnetHdr, f: &[u8]| Segments::new(h, f).err();
        assert_eq!(err(hdr, &sf[..30]), Some(Truncated));
        assert_eq!(err(hdr, &sf[..40]), Some(Truncated));
        assert_eq!(err(hdr, &sf[..60]), Some(Truncated)); // options cut
        assert_eq!(err(hdr, &sf[..10]), Some(Truncated));
        assert_eq!(err(VnetHdr { csum_start: 20, ..hdr }, &sf), Some(BadCsumStart));
        assert_eq!(err(VnetHdr { csum_start: 60_000, ..hdr }, &sf), Some(Truncated));
        assert_eq!(err(VnetHdr { csum_offset: 6, ..hdr }, &sf), Some(BadCsumOffset));
        assert_eq!(err(VnetHdr { gso_size: 0, ..hdr }, &sf), Some(ZeroGsoSize));
        assert_eq!(err(VnetHdr { gso_type: GSO_TCPV6, ..hdr }, &sf), Some(VersionMismatch));
        assert_eq!(err(VnetHdr { gso_type: 3, ..hdr }, &sf), Some(UnsupportedGso(3)));
        assert_eq!(err(VnetHdr { gso_type: GSO_UDP_L4 | GSO_ECN, ..hdr }, &sf), Some(UnsupportedGso(0x85)));
        let mut bad = sf.clone();
        bad[p.l4() + 12] = 0x40; // data offset 4
        assert_eq!(err(hdr, &bad), Some(BadL4Header));
        let mut bad = sf.clone();
        bad[14] = 0x65; // version 6 behind EtherType IPv4
        assert_eq!(err(hdr, &bad), Some(VersionMismatch));
        let mut bad = sf.clone();
        bad[14] = 0x44; // IHL 4
        assert_eq!(err(hdr, &bad), Some(BadIpHeader));
        let mut bad = sf.clone();
        bad[12..14].copy_from_slice(&[0x08, 0x06]); // ARP
        assert_eq!(err(hdr, &bad), Some(NotIp));
        let q = Pkt::new(true, payload(3000, 17));
        let (h6, f6) = q.tso(1000);
        assert_eq!(err(VnetHdr { gso_type: GSO_TCPV4, ..h6 }, &f6), Some(VersionMismatch));
        // A plain frame whose checksum field lies beyond its end.
        let n = sf.len() as u16;
        let csum = VnetHdr { flags: NEEDS_CSUM, csum_start: n, csum_offset: 0, ..VnetHdr::NONE };
        assert_eq!(err(csum, &sf), Some(BadCsumOffset));
        assert!(err(VnetHdr { csum_start: n - 2, ..csum }, &sf).is_none());
        assert_eq!(err(VnetHdr { csum_start: n - 2, csum_offset: 1, ..csum }, &sf), Some(BadCsumOffset));
        // Index and buffer checks on write.
        let s = Segments::new(hdr, &sf).unwrap();
        let mut small = vec![0; s.max_len() - 1];
        assert_eq!(s.write(0, &mut small), Err(BufferTooSmall { need: s.max_len(), have: s.max_len() - 1 }));
        let mut buf = vec![0; s.max_len()];
        assert_eq!(s.write(3, &mut buf), Err(NoSuchSegment));
        assert_eq!(s.segment_len(3), None);
    }

    fn stream(p: &Pkt, sizes: &[usize]) -> Vec<Pkt> {
        let mut seq = p.seq;
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let mut q = p.clone();
                q.seq = seq;
                q.id = p.id.wrapping_add(i as u16);
                q.payload = payload(n, i as u64 + 100);
                seq = seq.wrapping_add(n as u32);
                q
            })
            .collect()
    }

    fn frames(ps: &[Pkt]) -> Vec<Vec<u8>> {
        ps.iter().map(Pkt::build).collect()
    }

    /// Number of segments a write stands for, and checks that they all verify.
    fn nsegs(w: &[u8]) -> usize {
        let segs = resplit(w);
        segs.iter().for_each(|s| verify(s));
        segs.len()
    }

    #[test]
    fn interleaved_flows() {
        let a = stream(&Pkt::new(false, vec![]), &[1000; 3]);
        let b = stream(&Pkt { sport: 40001, ..Pkt::new(false, vec![]) }, &[1000; 3]);
        let c = stream(&Pkt::new(true, vec![]), &[1000; 3]);
        let mut all = Vec::new();
        for i in 0..3 {
            all.extend([a[i].build(), b[i].build(), c[i].build()]);
        }
        let mut co = Coalescer::new();
        let w = coalesce(&mut co, &all);
        assert_eq!(w.len(), 3);
        assert_eq!(resplit(&w[0]), frames(&a));
        assert_eq!(resplit(&w[1]), frames(&b));
        assert_eq!(resplit(&w[2]), frames(&c));
        let st = co.stats();
        assert_eq!((st.frames, st.merged_writes, st.merged_segments), (9, 3, 9));
    }

    #[test]
    fn bad_checksum_in_the_middle() {
        let s = frames(&stream(&Pkt::new(false, vec![]), &[1000; 5]));
        for bad_ip in [false, true] {
            let mut f = s.clone();
            let at = if bad_ip { 14 + 10 } else { 14 + 20 + 16 };
            f[2][at] ^= 0x55;
            let mut co = Coalescer::new();
            let w = coalesce(&mut co, &f);
            assert_eq!(w.len(), 3);
            assert_eq!(resplit(&w[0]), s[..2]);
            assert_eq!(w[1], plain(&f[2]));
            assert_eq!(resplit(&w[2]), s[3..]);
            assert_eq!(co.stats().bad_checksum, 1);
        }
        // A bad first frame is not merged either; the next ones start an item.
        let mut f = s.clone();
        f[0][60] ^= 1;
        let w = coalesce(&mut Coalescer::new(), &f);
        assert_eq!(w[0], plain(&f[0]));
        assert_eq!(resplit(&w[1]), s[1..]);
    }

    #[test]
    fn unmergeable_neighbours() {
        let base = Pkt::new(false, vec![]);
        let each_alone = |f: &[Vec<u8>]| {
            let w = coalesce(&mut Coalescer::new(), f);
            assert_eq!(w, f.iter().map(|x| plain(x)).collect::<Vec<_>>());
        };
        // Gap in the sequence.
        let s = stream(&base, &[1000; 3]);
        each_alone(&frames(&[s[0].clone(), s[2].clone()]));
        // Retransmission (same seq).
        each_alone(&frames(&[s[0].clone(), s[0].clone()]));
        // Different ACK.
        let mut t = s.clone();
        t[1].ack += 1;
        each_alone(&frames(&t[..2]));
        // Options differ (timestamp).
        let mut t = s.clone();
        t[1].opts[11] += 1;
        each_alone(&frames(&t[..2]));
        // TTL, TOS differ.
        let mut t = s.clone();
        t[1].ttl -= 1;
        each_alone(&frames(&t[..2]));
        let mut t = s.clone();
        t[1].tos = 4;
        each_alone(&frames(&t[..2]));
        // IPv6 flow label differs.
        let mut t = stream(&Pkt::new(true, vec![]), &[1000; 2]);
        t[1].flow ^= 1;
        each_alone(&frames(&t));
        // Larger after smaller.
        each_alone(&frames(&stream(&base, &[500, 1000])));
        // SYN, FIN, RST, pure ACK, ECE/URG.
        for flags in [0x02, 0x11, 0x14, 0x50, 0x30] {
            let mut t = s.clone();
            t[1].flags = flags;
            each_alone(&frames(&t[..2]));
        }
        let mut t = s.clone();
        t[1].payload.clear();
        each_alone(&frames(&t[..2]));
    }

    #[test]
    fn psh_short_and_pure_ack_end_the_item() {
        let mut s = stream(&Pkt::new(false, vec![]), &[1000; 4]);
        s[1].flags |= TCP_PSH;
        let f = frames(&s);
        let w = coalesce(&mut Coalescer::new(), &f);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0][VNET_HDR_LEN + 14 + 20 + 13], TCP_ACK | TCP_PSH);
        assert_eq!(resplit(&w[0]), f[..2]);
        assert_eq!(resplit(&w[1]), f[2..]);
        // A short segment is the last of its item.
        let f = frames(&stream(&Pkt::new(true, vec![]), &[1000, 1000, 10, 1000]));
        let w = coalesce(&mut Coalescer::new(), &f);
        assert_eq!(resplit(&w[0]), f[..3]);
        assert_eq!(VnetHdr::parse(&w[0]).unwrap().gso_size, 1000);
        assert_eq!(w[1], plain(&f[3]));
        // A pure ACK of the same flow flushes the item before going out.
        let s = stream(&Pkt::new(false, vec![]), &[1000, 1000, 0, 1000]);
        let f = frames(&s);
        let w = coalesce(&mut Coalescer::new(), &f);
        assert_eq!(w.len(), 3);
        assert_eq!(resplit(&w[0]), f[..2]);
        assert_eq!(w[1], plain(&f[2]));
        assert_eq!(w[2], plain(&f[3]));
    }

    #[test]
    fn length_limit() {
        // IPv4: 5 × 13099 payload + 40 header bytes = 65535 exactly; a sixth does not fit.
        let f = frames(&stream(&Pkt { opts: vec![], ..Pkt::new(false, vec![]) }, &[13099; 6]));
        let w = coalesce(&mut Coalescer::new(), &f);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].len(), VNET_HDR_LEN + 14 + 65535);
        assert_eq!(nsegs(&w[0]), 5);
        assert_eq!(w[1], plain(&f[5]));
        // IPv6: the payload length (20-byte TCP header + 5 × 13103) reaches 65535.
        let f = frames(&stream(&Pkt { opts: vec![], ..Pkt::new(true, vec![]) }, &[13103; 6]));
        let w = coalesce(&mut Coalescer::new(), &f);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].len(), VNET_HDR_LEN + 14 + 40 + 65535);
        assert_eq!(resplit(&w[0]), f[..5]);
        // Many MSS-sized segments: 44 fit.
        let f = frames(&stream(&Pkt { opts: vec![], ..Pkt::new(false, vec![]) }, &[1460; 46]));
        let w = coalesce(&mut Coalescer::new(), &f);
        assert_eq!((nsegs(&w[0]), nsegs(&w[1])), (44, 2));
    }

    #[test]
    fn other_protocols_pass_at_once() {
        let s = frames(&stream(&Pkt::new(false, vec![]), &[1000; 2]));
        let mut udp = Pkt::new(false, payload(100, 20));
        udp.udp = true;
        let arp = vec![0xFF; 60].into_iter().enumerate().map(|(i, b)| {
            if i == 12 {
                8
            } else if i == 13 {
                6
            } else {
                b
            }
        });
        let arp: Vec<u8> = arp.collect();
        let f = [s[0].clone(), udp.build(), arp.clone(), vec![1, 2, 3], s[1].clone()];
        let w = coalesce(&mut Coalescer::new(), &f);
        assert_eq!(w.len(), 4);
        assert_eq!(w[0], plain(&f[1]));
        assert_eq!(w[1], plain(&arp));
        assert_eq!(w[2], plain(&[1, 2, 3]));
        assert_eq!(resplit(&w[3]), s);
        // An IPv4 fragment between the same hosts flushes the pending item first.
        let mut frag = s[1].clone();
        frag[14 + 6] = 0x20; // MF
        let w = coalesce(&mut Coalescer::new(), &[s[0].clone(), frag.clone(), s[1].clone()]);
        assert_eq!(w, [plain(&s[0]), plain(&frag), plain(&s[1])]);
    }

    #[test]
    fn padding_is_dropped_from_merged_items() {
        let s = stream(&Pkt { opts: vec![], ..Pkt::new(false, vec![]) }, &[1, 1]);
        let f = frames(&s);
        let padded: Vec<Vec<u8>> = f.iter().map(|x| [&x[..], &[0u8; 5]].concat()).collect();
        let w = coalesce(&mut Coalescer::new(), &padded);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].len(), VNET_HDR_LEN + 14 + 40 + 2);
        assert_eq!(resplit(&w[0]), f);
    }

    #[test]
    fn table_full_flushes_the_oldest() {
        let flows: Vec<Vec<u8>> =
            (0..9).map(|i| Pkt { sport: 1000 + i, ..Pkt::new(false, payload(500, i as u64)) }.build()).collect();
        let mut co = Coalescer::new();
        let mut w = Vec::new();
        for f in &flows {
            co.push(f, &mut |h: &[u8], b: &[u8]| w.push([h, b].concat()));
        }
        assert_eq!(w, [plain(&flows[0])]);
        co.flush(&mut |h: &[u8], b: &[u8]| w.push([h, b].concat()));
        assert_eq!(w, flows.iter().map(|f| plain(f)).collect::<Vec<_>>());
    }

    #[test]
    fn kill_switch() {
        let f = frames(&stream(&Pkt::new(false, vec![]), &[1000; 4]));
        let mut co = Coalescer::new();
        co.set_enabled(false);
        let w = coalesce(&mut co, &f);
        assert_eq!(w, f.iter().map(|x| plain(x)).collect::<Vec<_>>());
        // Switched off mid-batch: the pending item goes out before the next frame.
        let mut co = Coalescer::new();
        let mut w = Vec::new();
        co.push(&f[0], &mut |h: &[u8], b: &[u8]| w.push([h, b].concat()));
        co.push(&f[1], &mut |h: &[u8], b: &[u8]| w.push([h, b].concat()));
        co.set_enabled(false);
        co.push(&f[2], &mut |h: &[u8], b: &[u8]| w.push([h, b].concat()));
        assert_eq!(w.len(), 2);
        assert_eq!(resplit(&w[0]), f[..2]);
        assert_eq!(w[1], plain(&f[2]));
    }

    #[test]
    fn random_inputs_never_panic() {
        let mut rng = Rng(0xDEAD_BEEF_1234_5678);
        let good: Vec<(VnetHdr, Vec<u8>)> = vec![
            Pkt::new(false, payload(3000, 30)).tso(1000),
            Pkt::new(true, payload(2500, 31)).tso(700),
            Pkt { vlan: true, ..Pkt::new(false, payload(900, 32)) }.partial(),
            Pkt { udp: true, ..Pkt::new(true, payload(2000, 33)) }.tso(600),
        ];
        let stream_frames = frames(&stream(&Pkt::new(false, vec![]), &[300; 6]));
        let mut buf = vec![0u8; 70_000];
        let mut co = Coalescer::new();
        for round in 0..20_000 {
            let (mut hdr, mut f) = good[rng.below(good.len())].clone();
            match rng.below(4) {
                0 => {
                    let n = rng.below(120);
                    f = rng.bytes(n);
                }
                1 => {
                    let n = rng.below(f.len() + 1);
                    f.truncate(n);
                }
                2 => {
                    for _ in 0..1 + rng.below(4) {
                        let i = rng.below(f.len());
                        f[i] = rng.next() as u8;
                    }
                }
                _ => {}
            }
            let pick = [0, 1, 2, 3, 4, 5, 0x81, 0xFF];
            match rng.below(6) {
                0 => hdr.gso_type = pick[rng.below(pick.len())],
                1 => hdr.gso_size = rng.next() as u16 % 4,
                2 => hdr.csum_start = rng.next() as u16 % 80,
                3 => hdr.csum_offset = rng.next() as u16,
                4 => hdr.flags = rng.next() as u8,
                _ => {}
            }
            if let Ok(s) = Segments::new(hdr, &f) {
                assert!(s.max_len() <= buf.len());
                let n = s.count();
                for i in [0, 1, n / 2, n.saturating_sub(1), n] {
                    match s.write(i, &mut buf) {
                        Ok(len) => assert!(len <= s.max_len() && i < n),
                        Err(e) => assert_eq!(e, OffloadError::NoSuchSegment),
                    }
                }
            }
            // The coalescer: random frames mixed with a valid stream, some of it damaged. Every
            // write it makes must be splittable again, and merged writes must verify.
            let frame = if rng.below(2) == 0 { stream_frames[round % 6].clone() } else { f };
            let mut check = |h: &[u8], b: &[u8]| {
                if VnetHdr::parse(h).unwrap() != VnetHdr::NONE {
                    nsegs(&[h, b].concat());
                }
            };
            co.push(&frame, &mut check);
            if rng.below(8) == 0 {
                co.flush(&mut check);
            }
        }
    }
}
