//! Receive-side front end for the data path (spec §3.2): classify each UDP payload, pass whole
//! heads through untouched, and reassemble fragmented packets in bounded [`FragmentSlots`]
//! keyed — as upstream does — by packet ID alone. Keys and verbs are the caller's business:
//! follow with [`crate::packet::open_packet`].
//!
//! Each piece may carry a caller tag (where it arrived from); a reassembled packet is
//! attributed to its **head's** tag (spec §3.2): fragments carry no MAC, so a forged last
//! fragment from another address must not decide the packet's path.

use crate::fragment::{DEFAULT_SLOTS, DEFAULT_TIMEOUT_MS, FragmentSlots, FragmentView, Reassembly};
use crate::header::{BEACON_LEN, DatagramKind, classify};
use crate::wire::address_from_bytes;
use crate::{Address, ProtocolError};

/// What one datagram amounted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// The datagram itself is a whole, unfragmented packet: open it in place.
    Packet,
    /// A fragmented packet completed: `len` bytes are in the output buffer.
    Reassembled { len: usize },
    /// Stored; waiting for more pieces.
    Pending,
    /// A piece we already hold.
    Duplicate,
    /// Legacy LAN beacon (spec §1) from this address.
    Beacon(Address),
    /// Not usable; the reason is for counters.
    Dropped(ProtocolError),
}

/// Reassembly front end with `N` slots (default `ZT_RX_QUEUE_SIZE` = 32); `T` tags pieces.
pub struct Receiver<T: Copy + Default = (), const N: usize = DEFAULT_SLOTS> {
    slots: FragmentSlots<[u8; 8], T, N>,
}

impl<T: Copy + Default, const N: usize> Receiver<T, N> {
    /// Incomplete sets are dropped `timeout_ms` after their first piece.
    pub fn new(timeout_ms: u64) -> Self {
        Self { slots: FragmentSlots::new(timeout_ms) }
    }

    /// Offer one UDP payload received at `now_ms`. `out` must hold a maximum-size packet
    /// (10024 bytes) to receive reassembled packets.
    pub fn receive(&mut self, datagram: &[u8], now_ms: u64, out: &mut [u8]) -> Inbound {
        self.receive_tagged(datagram, T::default(), now_ms, out).0
    }

    /// [`Receiver::receive`] with a tag for this piece; a reassembled packet comes with the tag
    /// its head was offered with.
    pub fn receive_tagged(&mut self, datagram: &[u8], tag: T, now_ms: u64, out: &mut [u8]) -> (Inbound, Option<T>) {
        let result = match classify(datagram) {
            DatagramKind::Beacon => {
                let address = address_from_bytes(&datagram[8..BEACON_LEN].try_into().unwrap_or([0; 5]));
                return (Inbound::Beacon(address), None);
            }
            DatagramKind::Other => return (Inbound::Dropped(ProtocolError::NotZeroTier { len: datagram.len() }), None),
            DatagramKind::Head if datagram[18] & crate::header::FLAG_FRAGMENTED == 0 => {
                return (Inbound::Packet, Some(tag));
            }
            DatagramKind::Head => {
                let id: [u8; 8] = datagram[..8].try_into().unwrap_or([0; 8]);
                self.slots.push_head(id, datagram, tag, now_ms, out)
            }
            DatagramKind::Fragment => match FragmentView::parse(datagram) {
                Ok(f) => self.slots.push_fragment(f.packet_id(), &f, tag, now_ms, out),
                Err(e) => return (Inbound::Dropped(e), None),
            },
        };
        // Evictions are visible through `in_progress`; nothing to report per datagram.
        self.slots.drain_evicted().for_each(drop);
        match result {
            // Pieces are tagged in fragment order, head first.
            Ok(Reassembly::Complete { len, tags }) => (Inbound::Reassembled { len }, tags.first().copied()),
            Ok(Reassembly::Pending) => (Inbound::Pending, None),
            Ok(Reassembly::Duplicate) => (Inbound::Duplicate, None),
            Err(e) => (Inbound::Dropped(e), None),
        }
    }

    /// Drop incomplete sets older than the timeout (call from a timer; receive does it too).
    pub fn expire(&mut self, now_ms: u64) {
        self.slots.expire(now_ms);
        self.slots.drain_evicted().for_each(drop);
    }

    /// Incomplete packets currently held.
    pub fn in_progress(&self) -> usize {
        self.slots.in_progress()
    }
}

impl<T: Copy + Default> Default for Receiver<T, DEFAULT_SLOTS> {
    fn default() -> Self {
        Self::new(DEFAULT_TIMEOUT_MS)
    }
}

/// True if a head or fragment is addressed to `me` (destination at bytes 8..13 in both);
/// anything else goes to relaying (spec §9).
pub fn is_for(datagram: &[u8], me: &Address) -> bool {
    datagram.len() >= 13 && datagram[8..13] == me.to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fragment::fragment_packet;
    use crate::header::MAX_PACKET_LEN;

    #[test]
    fn heads_pass_through_and_fragments_reassemble() {
        let mut rx: Receiver<(), 4> = Receiver::new(1000);
        let mut out = vec![0u8; MAX_PACKET_LEN];
        let mut packet: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        packet[13] = 0x01;
        packet[18] = 0x58;
        let mut parts = Vec::new();
        fragment_packet(&packet, 1432, |d| parts.push(d.to_vec())).unwrap();
        assert_eq!(rx.receive(&parts[2], 0, &mut out), Inbound::Pending);
        assert_eq!(rx.receive(&parts[2], 0, &mut out), Inbound::Duplicate);
        assert_eq!(rx.receive(&parts[0], 1, &mut out), Inbound::Pending);
        assert_eq!(rx.receive(&parts[1], 2, &mut out), Inbound::Reassembled { len: 3000 });
        assert_eq!(&out[..3000], &packet[..]);
        assert_eq!(rx.in_progress(), 0);
        let me = crate::wire::address_from_bytes(&packet[8..13].try_into().unwrap());
        assert!(is_for(&parts[1], &me));
        let mut whole = packet[..100].to_vec();
        whole[18] = 0x18;
        assert_eq!(rx.receive(&whole, 3, &mut out), Inbound::Packet);
        let mut beacon = [0u8; 13];
        beacon[8..13].copy_from_slice(&[1, 2, 3, 4, 5]);
        assert_eq!(rx.receive(&beacon, 4, &mut out), Inbound::Beacon(crate::wire::address_from_u64(0x0102030405)));
        assert!(matches!(rx.receive(&[0u8; 4], 5, &mut out), Inbound::Dropped(_)));
        // an incomplete set expires
        assert_eq!(rx.receive(&parts[0], 10, &mut out), Inbound::Pending);
        rx.expire(2000);
        assert_eq!(rx.in_progress(), 0);
    }

    #[test]
    fn a_reassembled_packet_belongs_to_its_heads_path() {
        let mut rx: Receiver<u16, 4> = Receiver::new(1000);
        let mut out = vec![0u8; MAX_PACKET_LEN];
        let mut packet: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        packet[13] = 0x01;
        packet[18] = 0x58;
        let mut parts = Vec::new();
        fragment_packet(&packet, 1432, |d| parts.push(d.to_vec())).unwrap();
        assert_eq!(rx.receive_tagged(&parts[0], 7, 0, &mut out), (Inbound::Pending, None));
        assert_eq!(rx.receive_tagged(&parts[2], 9, 0, &mut out), (Inbound::Pending, None));
        assert_eq!(rx.receive_tagged(&parts[1], 9, 0, &mut out), (Inbound::Reassembled { len: 3000 }, Some(7)));
        // the last piece may be the head: still its tag
        assert_eq!(rx.receive_tagged(&parts[1], 9, 1, &mut out), (Inbound::Pending, None));
        assert_eq!(rx.receive_tagged(&parts[2], 9, 1, &mut out), (Inbound::Pending, None));
        assert_eq!(rx.receive_tagged(&parts[0], 5, 1, &mut out), (Inbound::Reassembled { len: 3000 }, Some(5)));
    }
}
