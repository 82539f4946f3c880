//! Network IDs, Ethernet MAC addresses and the ZT-address ↔ MAC mapping (spec §10).

use crate::Address;
use crate::wire::{address_from_u64, address_to_u64};
use core::fmt;

/// A 64-bit ZeroTier network ID; its top 40 bits are the controller's address (spec §8.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(pub u64);

impl NetworkId {
    /// The network controller's address (top 40 bits).
    pub fn controller(self) -> Address {
        address_from_u64(self.0 >> 24)
    }

    /// First octet of every MAC derived on this network (spec §10): the network ID's low byte
    /// with the multicast bit cleared and the locally-administered bit set; 0x52 is avoided.
    pub fn mac_first_octet(self) -> u8 {
        let b = ((self.0 as u8) & 0xfe) | 0x02;
        if b == 0x52 { 0x32 } else { b }
    }

    /// The 40-bit XOR mask applied to an address to form MAC bytes 1..5 (network ID bytes 6,5,4,3,2
    /// in big-endian numbering).
    fn mac_mask(self) -> u64 {
        let n = self.0;
        (((n >> 8) & 0xff) << 32)
            | (((n >> 16) & 0xff) << 24)
            | (((n >> 24) & 0xff) << 16)
            | (((n >> 32) & 0xff) << 8)
            | ((n >> 40) & 0xff)
    }

    /// MAC(address, network) — spec §10.
    pub fn mac_for(self, address: &Address) -> Mac {
        let low = (address_to_u64(address) ^ self.mac_mask()) & 0xff_ffff_ffff;
        Mac(((self.mac_first_octet() as u64) << 40) | low)
    }

    /// Reverse mapping: the ZT address behind a derived MAC, or `None` if the MAC was not
    /// derived on this network (first octet differs).
    pub fn address_for(self, mac: Mac) -> Option<Address> {
        if mac.octets()[0] != self.mac_first_octet() {
            return None;
        }
        Some(address_from_u64((mac.0 ^ self.mac_mask()) & 0xff_ffff_ffff))
    }
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A 48-bit Ethernet MAC address held in the low bits of a `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mac(pub u64);

impl Mac {
    pub const BROADCAST: Mac = Mac(0xffff_ffff_ffff);

    pub fn from_octets(b: [u8; 6]) -> Self {
        Mac(u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]]))
    }

    pub fn octets(self) -> [u8; 6] {
        let b = self.0.to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    }

    /// Group (multicast/broadcast) bit.
    pub fn is_multicast(self) -> bool {
        self.octets()[0] & 1 != 0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.octets();
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3], o[4], o[5])
    }
}

/// A multicast group: MAC plus "additional distinguishing information" (spec §8.9; ARP uses the
/// target IPv4 address as ADI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MulticastGroup {
    pub mac: Mac,
    pub adi: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(v: u64) -> Address {
        address_from_u64(v)
    }

    #[test]
    fn member_macs_match_capture() {
        // README: network 2c80d4374849700f, a = cfe2482597 -> 0e:bf:ab:00:12:43,
        // b = f2281a769d -> 0e:82:61:52:41:49.
        let nwid = NetworkId(0x2c80d4374849700f);
        assert_eq!(nwid.mac_for(&addr(0xcfe2482597)).to_string(), "0e:bf:ab:00:12:43");
        assert_eq!(nwid.mac_for(&addr(0xf2281a769d)).to_string(), "0e:82:61:52:41:49");
        let back = nwid.address_for(Mac::from_octets([0x0e, 0x82, 0x61, 0x52, 0x41, 0x49]));
        assert_eq!(back.map(|a| address_to_u64(&a)), Some(0xf2281a769d));
        assert_eq!(nwid.address_for(Mac::from_octets([2, 0x5a, 0x11, 0x22, 0x33, 0x44])), None);
        assert_eq!(nwid.controller().to_string(), "2c80d43748");
    }

    #[test]
    fn first_octet_avoids_0x52() {
        assert_eq!(NetworkId(0x52).mac_first_octet(), 0x32);
        assert_eq!(NetworkId(0x53).mac_first_octet(), 0x32);
        assert_eq!(NetworkId(0x01).mac_first_octet(), 0x02);
    }

    #[test]
    fn mac_round_trip_many() {
        for (i, n) in [0u64, 1, 0xffff_ffff_ffff_ffff, 0x8056c2e21c000001].iter().enumerate() {
            let nwid = NetworkId(*n);
            let a = addr(0x0123456789 + i as u64);
            let mac = nwid.mac_for(&a);
            assert!(!mac.is_multicast());
            assert_eq!(nwid.address_for(mac), Some(a));
        }
    }
}
