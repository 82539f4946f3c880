//! Fragment datagrams, sender-side fragmentation at a path MTU and bounded receiver reassembly
//! (spec §3, §3.1, §3.2).
//!
//! [`FragmentSlots`] is a fixed ring of reassembly slots, each with a fixed
//! [`MAX_PACKET_LEN`]-byte arena, so memory is bounded no matter what arrives. Differences from
//! upstream, on purpose: the slot key is generic (upstream matches by packet ID alone; a capture
//! decoder keys by UDP 4-tuple + ID), and incomplete sets expire after a caller-chosen timeout
//! (time passed in) instead of living until the ring wraps.

use crate::Address;
use crate::error::{ProtocolError, Result};
use crate::header::{FLAG_FRAGMENTED, FRAGMENT_HEADER_LEN, FRAGMENT_INDICATOR, MAX_PACKET_LEN, MIN_PACKET_LEN};
use crate::wire::address_from_bytes;

/// `ZT_MAX_PACKET_FRAGMENTS`: head plus at most 6 fragments.
pub const MAX_FRAGMENTS: usize = 7;
/// `ZT_RX_QUEUE_SIZE`.
pub const DEFAULT_SLOTS: usize = 32;
/// `ZT_RECEIVE_QUEUE_TIMEOUT`, a sensible expiry for incomplete sets.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;

/// A parsed fragment datagram (not a head).
#[derive(Debug, Clone, Copy)]
pub struct FragmentView<'a> {
    bytes: &'a [u8],
}

impl<'a> FragmentView<'a> {
    /// Parse a fragment: more than 16 bytes, byte 13 = 0xff. Number/total are range-checked
    /// as upstream does (total ≤ 7, 1 ≤ number < total).
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() <= FRAGMENT_HEADER_LEN {
            return Err(ProtocolError::Truncated {
                what: "fragment",
                needed: FRAGMENT_HEADER_LEN + 1,
                available: bytes.len(),
            });
        }
        if bytes[13] != FRAGMENT_INDICATOR {
            return Err(ProtocolError::InvalidValue { what: "fragment indicator", value: bytes[13] as u64 });
        }
        let view = Self { bytes };
        let (no, total) = (view.fragment_no(), view.fragment_total());
        if total as usize > MAX_FRAGMENTS || total < 2 || no == 0 || no >= total {
            return Err(ProtocolError::InvalidValue { what: "fragment number/total", value: bytes[14] as u64 });
        }
        Ok(view)
    }

    pub fn packet_id(&self) -> [u8; 8] {
        self.bytes[0..8].try_into().unwrap_or([0; 8])
    }
    pub fn destination(&self) -> Address {
        address_from_bytes(&self.bytes[8..13].try_into().unwrap_or([0; 5]))
    }
    /// Low nibble of byte 14.
    pub fn fragment_no(&self) -> u8 {
        self.bytes[14] & 0x0f
    }
    /// High nibble of byte 14: total count including the head.
    pub fn fragment_total(&self) -> u8 {
        self.bytes[14] >> 4
    }
    pub fn hops(&self) -> u8 {
        self.bytes[15] & 0x07
    }
    /// Fragment data after the 16-byte header.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[FRAGMENT_HEADER_LEN..]
    }
}

/// Split an armored packet into datagrams for a path MTU (spec §3.1) and hand each to `emit`.
///
/// The caller must already have set [`FLAG_FRAGMENTED`] before armoring when
/// `packet.len() > mtu` (see [`needs_fragmentation`]); this function checks that.
pub fn fragment_packet(packet: &[u8], mtu: usize, mut emit: impl FnMut(&[u8])) -> Result<usize> {
    if packet.len() < MIN_PACKET_LEN {
        return Err(ProtocolError::Truncated { what: "packet", needed: MIN_PACKET_LEN, available: packet.len() });
    }
    if packet.len() > MAX_PACKET_LEN {
        return Err(ProtocolError::TooLarge { what: "packet", value: packet.len(), limit: MAX_PACKET_LEN });
    }
    if mtu <= FRAGMENT_HEADER_LEN || mtu < MIN_PACKET_LEN {
        return Err(ProtocolError::InvalidValue { what: "path MTU", value: mtu as u64 });
    }
    if packet.len() <= mtu {
        emit(packet);
        return Ok(1);
    }
    if packet[18] & FLAG_FRAGMENTED == 0 {
        return Err(ProtocolError::InvalidValue { what: "flags (fragmented bit not set)", value: packet[18] as u64 });
    }
    let chunk = mtu - FRAGMENT_HEADER_LEN;
    let rest = packet.len() - mtu;
    let total = 1 + rest.div_ceil(chunk);
    if total > MAX_FRAGMENTS {
        return Err(ProtocolError::TooLarge { what: "fragment count", value: total, limit: MAX_FRAGMENTS });
    }
    emit(&packet[..mtu]);
    let mut buf = [0u8; MAX_PACKET_LEN];
    for (i, piece) in packet[mtu..].chunks(chunk).enumerate() {
        let n = FRAGMENT_HEADER_LEN + piece.len();
        buf[..FRAGMENT_HEADER_LEN].copy_from_slice(&fragment_header(packet, total, i + 1));
        buf[FRAGMENT_HEADER_LEN..n].copy_from_slice(piece);
        emit(&buf[..n]);
    }
    Ok(total)
}

/// The 16-byte header of fragment `number` (1-based; the head is 0) of `total` pieces of
/// `packet` (spec §3.1): packet ID and destination copied from the packet, the indicator, the
/// counts, hops 0. For callers that place the pieces themselves (`fragment_packet` copies).
pub fn fragment_header(packet: &[u8], total: usize, number: usize) -> [u8; FRAGMENT_HEADER_LEN] {
    let mut h = [0u8; FRAGMENT_HEADER_LEN];
    h[0..13].copy_from_slice(&packet[0..13]);
    h[13] = FRAGMENT_INDICATOR;
    h[14] = ((total as u8) << 4) | (number as u8 & 0x0f);
    h
}

/// Whether a packet of `len` bytes must be sent as head + fragments on a path of `mtu`.
pub fn needs_fragmentation(len: usize, mtu: usize) -> bool {
    len > mtu
}

/// The caller tags of the pieces of one set, in fragment order (head first); fixed size, no
/// allocation. Derefs to a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceTags<T> {
    tags: [T; MAX_FRAGMENTS],
    len: u8,
}

impl<T: Copy + Default> PieceTags<T> {
    fn collect(pieces: &[Piece<T>; MAX_FRAGMENTS]) -> Self {
        let mut tags = [T::default(); MAX_FRAGMENTS];
        let mut len = 0;
        for tag in pieces.iter().filter_map(|p| p.tag) {
            tags[len] = tag;
            len += 1;
        }
        Self { tags, len: len as u8 }
    }
}

impl<T> core::ops::Deref for PieceTags<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.tags[..self.len as usize]
    }
}

/// Result of offering a datagram to [`FragmentSlots`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reassembly<T> {
    /// Stored; more pieces are needed.
    Pending,
    /// This piece was already held (same key, same fragment number): ignored.
    Duplicate,
    /// The packet is complete: `len` bytes were written to the output buffer; `tags` are the
    /// caller's tags of the pieces in fragment order (head first).
    Complete { len: usize, tags: PieceTags<T> },
}

/// An incomplete set that was dropped, with the tags of the pieces it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evicted<K, T> {
    pub key: K,
    pub tags: PieceTags<T>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Piece<T> {
    offset: u16,
    len: u16,
    tag: Option<T>,
}

#[derive(Debug)]
struct Slot<K, T> {
    key: Option<K>,
    started_ms: u64,
    total: u8,
    have: u8,
    used: usize,
    pieces: [Piece<T>; MAX_FRAGMENTS],
    arena: Box<[u8; MAX_PACKET_LEN]>,
}

impl<K, T: Copy + Default> Slot<K, T> {
    fn new() -> Self {
        Self {
            key: None,
            started_ms: 0,
            total: 0,
            have: 0,
            used: 0,
            pieces: [Piece::default(); MAX_FRAGMENTS],
            arena: Box::new([0u8; MAX_PACKET_LEN]),
        }
    }

    fn clear(&mut self) {
        self.key = None;
        self.total = 0;
        self.have = 0;
        self.used = 0;
        self.pieces = [Piece::default(); MAX_FRAGMENTS];
    }

    fn tags(&self) -> PieceTags<T> {
        PieceTags::collect(&self.pieces)
    }
}

/// Bounded reassembly state: `N` slots (a ring, oldest reused first), each able to hold one
/// packet of up to [`MAX_PACKET_LEN`] bytes. Keys are caller-defined (`K`), pieces carry a
/// caller tag (`T`, e.g. a datagram index) returned on completion or eviction.
pub struct FragmentSlots<K, T, const N: usize = DEFAULT_SLOTS> {
    slots: Vec<Slot<K, T>>,
    next: usize,
    timeout_ms: u64,
    /// Reports of dropped sets, bounded at `2 × N` (oldest reports give way).
    evicted: Vec<Evicted<K, T>>,
    unreported_evictions: u64,
}

impl<K: Copy + Eq, T: Copy + Default, const N: usize> FragmentSlots<K, T, N> {
    /// All memory is allocated here, once.
    pub fn new(timeout_ms: u64) -> Self {
        Self {
            slots: (0..N).map(|_| Slot::new()).collect(),
            next: 0,
            timeout_ms,
            evicted: Vec::with_capacity(2 * N),
            unreported_evictions: 0,
        }
    }

    fn report_eviction(&mut self, e: Evicted<K, T>) {
        if self.evicted.len() >= 2 * N {
            self.evicted.remove(0);
            self.unreported_evictions += 1;
        }
        self.evicted.push(e);
    }

    /// Evictions whose reports were discarded because nobody drained them in time.
    pub fn unreported_evictions(&self) -> u64 {
        self.unreported_evictions
    }

    /// Number of incomplete sets currently held.
    pub fn in_progress(&self) -> usize {
        self.slots.iter().filter(|s| s.key.is_some()).count()
    }

    /// Drop sets older than the timeout; they are reported by [`Self::drain_evicted`].
    pub fn expire(&mut self, now_ms: u64) {
        for i in 0..N {
            let slot = &mut self.slots[i];
            if slot.key.is_some() && now_ms.saturating_sub(slot.started_ms) > self.timeout_ms {
                let key = slot.key.take();
                let tags = slot.tags();
                slot.clear();
                if let Some(key) = key {
                    self.report_eviction(Evicted { key, tags });
                }
            }
        }
    }

    /// Sets dropped by expiry, ring reuse or overflow since the last call (no allocation).
    pub fn drain_evicted(&mut self) -> impl Iterator<Item = Evicted<K, T>> + '_ {
        self.evicted.drain(..)
    }

    /// Every dropped and every still-incomplete set (e.g. at the end of a capture); empties
    /// the slots.
    pub fn drain_incomplete(&mut self) -> Vec<Evicted<K, T>> {
        let mut out: Vec<_> = self.evicted.drain(..).collect();
        for slot in &mut self.slots {
            if let Some(key) = slot.key.take() {
                out.push(Evicted { key, tags: slot.tags() });
            }
            slot.clear();
        }
        out
    }

    fn find_or_claim(&mut self, key: K, now_ms: u64) -> usize {
        self.expire(now_ms);
        if let Some(i) = self.slots.iter().position(|s| s.key == Some(key)) {
            return i;
        }
        let i = match self.slots.iter().position(|s| s.key.is_none()) {
            Some(free) => free,
            None => {
                let victim = self.next;
                self.next = (self.next + 1) % N;
                let slot = &mut self.slots[victim];
                let old = slot.key.take();
                let tags = slot.tags();
                slot.clear();
                if let Some(old) = old {
                    self.report_eviction(Evicted { key: old, tags });
                }
                victim
            }
        };
        let slot = &mut self.slots[i];
        slot.key = Some(key);
        slot.started_ms = now_ms;
        i
    }

    /// Offer a head whose flags carry [`FLAG_FRAGMENTED`].
    pub fn push_head(&mut self, key: K, head: &[u8], tag: T, now_ms: u64, out: &mut [u8]) -> Result<Reassembly<T>> {
        if head.len() < MIN_PACKET_LEN {
            return Err(ProtocolError::Truncated {
                what: "packet head",
                needed: MIN_PACKET_LEN,
                available: head.len(),
            });
        }
        self.push_piece(key, 0, None, head, tag, now_ms, out)
    }

    /// Offer a fragment.
    pub fn push_fragment(
        &mut self,
        key: K,
        fragment: &FragmentView<'_>,
        tag: T,
        now_ms: u64,
        out: &mut [u8],
    ) -> Result<Reassembly<T>> {
        self.push_piece(
            key,
            fragment.fragment_no(),
            Some(fragment.fragment_total()),
            fragment.payload(),
            tag,
            now_ms,
            out,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn push_piece(
        &mut self,
        key: K,
        number: u8,
        total: Option<u8>,
        data: &[u8],
        tag: T,
        now_ms: u64,
        out: &mut [u8],
    ) -> Result<Reassembly<T>> {
        if number as usize >= MAX_FRAGMENTS {
            return Err(ProtocolError::InvalidValue { what: "fragment number", value: number as u64 });
        }
        let i = self.find_or_claim(key, now_ms);
        let slot = &mut self.slots[i];
        let bit = 1u8 << number;
        if slot.have & bit != 0 {
            return Ok(Reassembly::Duplicate);
        }
        if let Some(t) = total
            && slot.total != 0
            && slot.total != t
        {
            // Fragments of one packet disagree on its size: the set cannot be trusted, drop it.
            let tags = slot.tags();
            slot.clear();
            self.report_eviction(Evicted { key, tags });
            return Err(ProtocolError::InvalidValue { what: "fragment total changed within a set", value: t as u64 });
        }
        let needed = slot.used + data.len();
        if needed > MAX_PACKET_LEN {
            // A hostile set that would not fit one packet: drop the whole set.
            let tags = slot.tags();
            slot.clear();
            self.report_eviction(Evicted { key, tags });
            return Err(ProtocolError::TooLarge { what: "reassembled packet", value: needed, limit: MAX_PACKET_LEN });
        }
        let offset = slot.used;
        slot.arena[offset..offset + data.len()].copy_from_slice(data);
        slot.used += data.len();
        slot.pieces[number as usize] = Piece { offset: offset as u16, len: data.len() as u16, tag: Some(tag) };
        slot.have |= bit;
        if let Some(t) = total {
            slot.total = t;
        }
        // Complete when exactly pieces 0..total are held (the head is piece 0).
        let complete = slot.total > 1 && u32::from(slot.have) == (1u32 << slot.total) - 1;
        if !complete {
            return Ok(Reassembly::Pending);
        }
        if out.len() < slot.used {
            return Err(ProtocolError::Truncated {
                what: "reassembly output buffer",
                needed: slot.used,
                available: out.len(),
            });
        }
        let mut len = 0;
        for piece in slot.pieces.iter().take(slot.total as usize) {
            let (o, l) = (piece.offset as usize, piece.len as usize);
            out[len..len + l].copy_from_slice(&slot.arena[o..o + l]);
            len += l;
        }
        let tags = slot.tags();
        slot.clear();
        Ok(Reassembly::Complete { len, tags })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(len: usize, id: u8) -> Vec<u8> {
        let mut p: Vec<u8> = (0..len).map(|i| (i * 7 + id as usize) as u8).collect();
        p[..8].fill(id);
        p[13] = 0x11; // not a fragment indicator
        p[18] = 0x18 | if len > 1432 { FLAG_FRAGMENTED } else { 0 };
        p
    }

    fn split(p: &[u8], mtu: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        fragment_packet(p, mtu, |d| out.push(d.to_vec())).unwrap();
        out
    }

    #[test]
    fn a_set_whose_total_changes_is_dropped_not_completed_early() {
        let p = packet(2600, 9);
        let pieces = split(&p, 700); // head + 3 fragments: total 4
        let mut slots: FragmentSlots<u64, usize, 4> = FragmentSlots::new(1000);
        let mut out = vec![0u8; MAX_PACKET_LEN];
        let frag3 = FragmentView::parse(&pieces[3]).unwrap();
        assert!(matches!(slots.push_fragment(1, &frag3, 3, 0, &mut out).unwrap(), Reassembly::Pending));
        assert!(matches!(slots.push_head(1, &pieces[0], 0, 0, &mut out).unwrap(), Reassembly::Pending));
        // Fragment 1 claiming a total of 3: with the old rule 3 pieces of "3" would complete.
        let mut lying = pieces[1].clone();
        lying[14] = (3 << 4) | 1;
        let lying = FragmentView::parse(&lying).unwrap();
        assert!(slots.push_fragment(1, &lying, 1, 0, &mut out).is_err(), "inconsistent total accepted");
    }

    #[test]
    fn split_matches_capture_sizes() {
        // 2838-byte FRAME -> 1432 + 1422 (README), 2796-byte frame packet -> 1432 + 1418.
        let parts = split(&packet(2838, 1), 1432);
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), vec![1432, 1422]);
        assert_eq!(parts[1][14], 0x21);
        assert_eq!(parts[1][15], 0);
        assert_eq!(split(&packet(2834, 1), 1432)[1].len(), 1418);
        assert_eq!(split(&packet(100, 1), 1432).len(), 1);
        // at 1432 the 7-piece limit allows 1432 + 6 * 1416 = 9928 bytes
        assert_eq!(split(&packet(9928, 1), 1432).len(), 7);
        assert!(fragment_packet(&packet(9929, 1), 1432, |_| {}).is_err());
        let mut big = packet(3000, 1);
        big[18] = 0x18;
        assert!(fragment_packet(&big, 1432, |_| {}).is_err(), "unflagged oversize packet");
        assert!(fragment_packet(&packet(10024, 1), 1000, |_| {}).is_err(), "more than 7 pieces");
    }

    #[test]
    fn reassemble_in_any_order_with_duplicates() {
        let p = packet(5000, 9);
        let parts = split(&p, 1432);
        assert_eq!(parts.len(), 4);
        let orders: [[usize; 4]; 3] = [[0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 1, 0]];
        for order in orders {
            let mut slots: FragmentSlots<u64, usize, 4> = FragmentSlots::new(1000);
            let mut out = [0u8; MAX_PACKET_LEN];
            let mut result = None;
            for (step, &i) in order.iter().enumerate() {
                let r = if i == 0 {
                    slots.push_head(9, &parts[0], i, 10, &mut out).unwrap()
                } else {
                    let f = FragmentView::parse(&parts[i]).unwrap();
                    let r = slots.push_fragment(9, &f, i, 10, &mut out).unwrap();
                    if step < 3 {
                        assert_eq!(slots.push_fragment(9, &f, 99, 10, &mut out).unwrap(), Reassembly::Duplicate);
                    }
                    r
                };
                if step < 3 {
                    assert_eq!(r, Reassembly::Pending);
                } else {
                    result = Some(r);
                }
            }
            match result.unwrap() {
                Reassembly::Complete { len, tags } => {
                    assert_eq!(&out[..len], &p[..]);
                    assert_eq!(&*tags, &[0, 1, 2, 3]);
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(slots.in_progress(), 0);
        }
    }

    #[test]
    fn incomplete_sets_expire_and_ring_evicts() {
        let p = packet(3000, 1);
        let parts = split(&p, 1432);
        let mut slots: FragmentSlots<u64, usize, 2> = FragmentSlots::new(100);
        let mut out = [0u8; MAX_PACKET_LEN];
        slots.push_head(1, &parts[0], 0, 0, &mut out).unwrap();
        slots.expire(50);
        assert_eq!(slots.in_progress(), 1);
        slots.expire(101);
        assert_eq!(slots.in_progress(), 0);
        let evicted: Vec<_> = slots.drain_evicted().collect();
        assert_eq!(evicted.len(), 1);
        assert_eq!((evicted[0].key, &*evicted[0].tags), (1, &[0usize][..]));
        // late fragment starts a new set and never completes on its own
        let f = FragmentView::parse(&parts[1]).unwrap();
        assert_eq!(slots.push_fragment(1, &f, 1, 200, &mut out).unwrap(), Reassembly::Pending);
        // ring of 2: two more keys evict the oldest
        slots.push_head(2, &parts[0], 5, 200, &mut out).unwrap();
        slots.push_head(3, &parts[0], 6, 200, &mut out).unwrap();
        assert_eq!(slots.in_progress(), 2);
        assert_eq!(slots.drain_evicted().count(), 1);
    }

    #[test]
    fn eviction_reports_are_bounded() {
        let mut slots: FragmentSlots<u64, usize, 2> = FragmentSlots::new(100);
        let mut out = [0u8; MAX_PACKET_LEN];
        let head = packet(3000, 1);
        for key in 0..10u64 {
            slots.push_head(key, &head[..1432], key as usize, 0, &mut out).unwrap();
        }
        assert_eq!(slots.in_progress(), 2);
        let reports: Vec<_> = slots.drain_evicted().collect();
        assert_eq!(reports.len(), 4, "at most 2 x N reports kept");
        assert_eq!(reports.iter().map(|e| e.key).collect::<Vec<_>>(), vec![4, 5, 6, 7]);
        assert_eq!(slots.unreported_evictions(), 4);
        assert_eq!(slots.drain_incomplete().len(), 2);
        assert_eq!(slots.in_progress(), 0);
    }

    #[test]
    fn oversize_sets_are_rejected() {
        let mut slots: FragmentSlots<u64, usize, 2> = FragmentSlots::new(100);
        let mut out = [0u8; MAX_PACKET_LEN];
        let mut frag = vec![0u8; 16 + 5000];
        frag[13] = 0xff;
        frag[14] = 0x71;
        let f = FragmentView::parse(&frag).unwrap();
        slots.push_fragment(1, &f, 0, 0, &mut out).unwrap();
        frag[14] = 0x72;
        let f = FragmentView::parse(&frag).unwrap();
        slots.push_fragment(1, &f, 0, 0, &mut out).unwrap();
        frag[14] = 0x73;
        let f = FragmentView::parse(&frag).unwrap();
        assert!(slots.push_fragment(1, &f, 0, 0, &mut out).is_err());
        assert_eq!(slots.in_progress(), 0);
    }

    #[test]
    fn fragment_parse_limits() {
        let mut frag = [0u8; 20];
        frag[13] = 0xff;
        for (b, ok) in
            [(0x21, true), (0x71, true), (0x76, true), (0x77, false), (0x81, false), (0x20, false), (0x11, false)]
        {
            frag[14] = b;
            assert_eq!(FragmentView::parse(&frag).is_ok(), ok, "{b:#x}");
        }
    }
}
