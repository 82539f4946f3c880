//! Map layouts shared by the XDP program (`ebpf/`) and userspace (`dataplane/`, `control/`).
//!
//! The kernel side and the user side must agree on map names, key/value types and counter
//! slots; keeping them in this one `#![no_std]` crate makes a mismatch a compile error.
#![no_std]

/// Map: UDP destination ports (host byte order) whose frames are steered to AF_XDP.
/// `HashMap<u16, u8>`; the value is unused (1).
pub const PORTS_MAP: &str = "ZT_PORTS";
/// Map: RX queue index → AF_XDP socket (`XskMap`).
pub const XSKS_MAP: &str = "XSKS";
/// Map: per-CPU steering counters (`PerCpuArray<u64>`, indexed by [`Counter`]).
pub const COUNTERS_MAP: &str = "STEER_COUNTERS";
/// Name of the XDP program in the object file.
pub const PROGRAM: &str = "ztplane_steer";
/// Name of the LAN-port XDP program in the same object (gateway mode: every frame to AF_XDP
/// except the VLANs in [`EXCLUDED_VLANS_MAP`]).
pub const LAN_PROGRAM: &str = "ztplane_lan";
/// Map: 802.1Q VLAN IDs (1..=4094) whose tagged frames the LAN program passes to the kernel
/// (a management VLAN, say). `HashMap<u16, u8>`; the value is unused (1).
pub const EXCLUDED_VLANS_MAP: &str = "EXCLUDED_VLANS";

/// Capacity of [`PORTS_MAP`].
pub const MAX_PORTS: u32 = 64;
/// Capacity of [`EXCLUDED_VLANS_MAP`].
pub const MAX_EXCLUDED_VLANS: u32 = 64;
/// Capacity of [`XSKS_MAP`]: the highest usable RX queue index + 1.
pub const MAX_QUEUES: u32 = 256;
/// The ZeroTier default port, steered unless configured otherwise.
pub const DEFAULT_PORT: u16 = 9993;

/// Steering counter slots in [`COUNTERS_MAP`].
///
/// Every frame is counted in `Seen` and in exactly one of `Steered` / `Passed`;
/// `Malformed` frames (truncated or inconsistent headers) are also counted in `Passed`. Both
/// programs use the same slots: on a LAN port `Passed` counts the frames of excluded VLANs (and
/// any that arrive while no socket is bound), `Malformed` a frame too short for its Ethernet
/// header or VLAN tag.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Seen = 0,
    Steered = 1,
    Passed = 2,
    Malformed = 3,
}

impl Counter {
    pub const ALL: [Counter; 4] = [Counter::Seen, Counter::Steered, Counter::Passed, Counter::Malformed];
    pub const COUNT: u32 = 4;

    pub const fn name(self) -> &'static str {
        match self {
            Counter::Seen => "seen",
            Counter::Steered => "steered",
            Counter::Passed => "passed",
            Counter::Malformed => "malformed",
        }
    }
}

/// Map: per-link quality of every bonded peer, written by the dataplane's slow path and read by
/// `ztplanectl bond` and its Prometheus endpoint (zerotier-bonding.md §9). A userspace-only
/// `HashMap<LinkKey, LinkQuality>` (no BPF program touches it), pinned as
/// `<bpffs>/<instance>/link_quality` with mode 0600. Each update replaces a whole value, so a
/// reader sees either the old record or the new one, never a mix.
pub const LINK_QUALITY_MAP: &str = "link_quality";
/// Capacity of [`LINK_QUALITY_MAP`]: (peer, path) records; paths beyond it are not published.
pub const MAX_LINKS: u32 = 4096;
/// Bytes of [`LinkQuality::link`]: an interface name (IFNAMSIZ), NUL-padded.
pub const LINK_NAME_LEN: usize = 16;

/// Key of [`LINK_QUALITY_MAP`]: a bonded peer and one of its bond's paths.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkKey {
    /// The peer's 40-bit ZeroTier address.
    pub peer: u64,
    /// The bond's path index (its `PathId`: the peer's paths in nomination order).
    pub path: u32,
    pub _pad: u32,
}

impl LinkKey {
    pub const fn new(peer: u64, path: u32) -> Self {
        LinkKey { peer, path, _pad: 0 }
    }
}

/// A link's state in [`LinkQuality::state`] (the bond's failure detector, zerotier-bonding.md §7).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Up = 0,
    /// Failure detected; still carries traffic until `downDelay` has passed.
    Failing = 1,
    Down = 2,
    /// Receiving again; rejoins after `upDelay`.
    Recovering = 3,
}

impl LinkState {
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(LinkState::Up),
            1 => Some(LinkState::Failing),
            2 => Some(LinkState::Down),
            3 => Some(LinkState::Recovering),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::Failing => "failing",
            LinkState::Down => "down",
            LinkState::Recovering => "recovering",
        }
    }
}

/// Value of [`LINK_QUALITY_MAP`]: one path of a peer's bond as the slow path last measured it.
///
/// The bond-wide fields (policy and timers) repeat in every record of a peer so that one record
/// is enough for `zerotier-cli bond <peer> show`'s header. Fixed-point units keep the layout free
/// of floats: ratios in parts per million, times in µs or ms. Fields are ordered by size: no
/// implicit padding (checked by the tests).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkQuality {
    /// Unix time of this record (ms): a reader can tell a stale map (a crashed node) and age
    /// [`LinkQuality::last_in_age_ms`] / [`LinkQuality::last_out_age_ms`] to its own clock.
    pub updated_unix_ms: u64,
    /// Data packets sent / received on the path since it was nominated.
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Times this link failed (each moved its traffic to other links).
    pub failovers: u64,
    /// Changes of the bond's active link (active-backup), for the whole peer.
    pub bond_active_changes: u64,
    /// Smoothed round-trip time (µs); meaningful only with [`LinkQuality::HAS_LATENCY`].
    pub latency_us: u32,
    /// Packet delay variation (µs).
    pub pdv_us: u32,
    pub loss_ppm: u32,
    pub error_ppm: u32,
    /// Delivered throughput (kbit/s).
    pub throughput_kbps: u32,
    /// This path's share of the bytes the bond sent to the peer since the previous record (ppm).
    pub share_ppm: u32,
    /// zerotier-one's `relativeQuality` (ppm).
    pub quality_ppm: u32,
    /// zerotier-one's `givenLinkSpeed`: the configured capacity (Mbit/s), 0 if none.
    pub link_speed_mbps: u32,
    /// zerotier-one's `assignedFlowCount`.
    pub flows: u32,
    /// Time since the last packet received / sent on the path (ms); `u32::MAX` for never.
    pub last_in_age_ms: u32,
    pub last_out_age_ms: u32,
    /// The bond's settings (ms, packets), as zerotier-one reports them.
    pub failover_interval_ms: u32,
    pub up_delay_ms: u32,
    pub down_delay_ms: u32,
    pub packets_per_link: u32,
    /// The node's local socket of the path (an interface index).
    pub local_socket: u32,
    pub remote_port: u16,
    /// The node's UDP port.
    pub local_port: u16,
    /// zerotier-one's `bondingPolicyCode` (0 none, 1 active-backup, 2 broadcast, 3 balance-rr,
    /// 4 balance-xor, 5 balance-aware).
    pub policy: u8,
    /// A [`LinkState`] code.
    pub state: u8,
    /// [`LinkQuality::BONDED`], [`LinkQuality::ELIGIBLE`], [`LinkQuality::ACTIVE`],
    /// [`LinkQuality::HAS_LATENCY`].
    pub flags: u8,
    /// [`LinkQuality::FAMILY_V4`] or [`LinkQuality::FAMILY_V6`].
    pub remote_family: u8,
    /// The link's name (its interface), NUL-padded.
    pub link: [u8; LINK_NAME_LEN],
    /// The remote IP: 4 bytes then zeros for IPv4, 16 for IPv6.
    pub remote_addr: [u8; 16],
}

impl Default for LinkQuality {
    fn default() -> Self {
        LinkQuality {
            updated_unix_ms: 0,
            packets_sent: 0,
            packets_received: 0,
            failovers: 0,
            bond_active_changes: 0,
            latency_us: 0,
            pdv_us: 0,
            loss_ppm: 0,
            error_ppm: 0,
            throughput_kbps: 0,
            share_ppm: 0,
            quality_ppm: 0,
            link_speed_mbps: 0,
            flows: 0,
            last_in_age_ms: u32::MAX,
            last_out_age_ms: u32::MAX,
            failover_interval_ms: 0,
            up_delay_ms: 0,
            down_delay_ms: 0,
            packets_per_link: 0,
            local_socket: 0,
            remote_port: 0,
            local_port: 0,
            policy: 0,
            state: LinkState::Up as u8,
            flags: 0,
            remote_family: 0,
            link: [0; LINK_NAME_LEN],
            remote_addr: [0; 16],
        }
    }
}

impl LinkQuality {
    /// The path carries traffic in the bond's current selection (zerotier-one's `bonded`).
    pub const BONDED: u8 = 1;
    /// The path may be used (zerotier-one's `eligible`; counts as an alive link).
    pub const ELIGIBLE: u8 = 2;
    /// The bond's active path (active-backup).
    pub const ACTIVE: u8 = 4;
    /// A round-trip time has been measured: `latency_us` and `pdv_us` mean something.
    pub const HAS_LATENCY: u8 = 8;
    pub const FAMILY_V4: u8 = 4;
    pub const FAMILY_V6: u8 = 6;

    pub const fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub const fn link_state(&self) -> Option<LinkState> {
        LinkState::from_code(self.state)
    }

    /// The link name up to its first NUL (an invalid UTF-8 tail is cut off).
    pub fn link_name(&self) -> &str {
        let end = self.link.iter().position(|&b| b == 0).unwrap_or(LINK_NAME_LEN);
        match core::str::from_utf8(&self.link[..end]) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.link[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// Stores `name`, cut at [`LINK_NAME_LEN`] bytes on a character boundary.
    pub fn set_link_name(&mut self, name: &str) {
        let mut end = name.len().min(LINK_NAME_LEN);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        self.link = [0; LINK_NAME_LEN];
        self.link[..end].copy_from_slice(&name.as_bytes()[..end]);
    }

    pub fn remote(&self) -> Option<core::net::SocketAddr> {
        use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let ip = match self.remote_family {
            Self::FAMILY_V4 => {
                let [a, b, c, d, ..] = self.remote_addr;
                IpAddr::V4(Ipv4Addr::new(a, b, c, d))
            }
            Self::FAMILY_V6 => IpAddr::V6(Ipv6Addr::from(self.remote_addr)),
            _ => return None,
        };
        Some(core::net::SocketAddr::new(ip, self.remote_port))
    }

    pub fn set_remote(&mut self, remote: core::net::SocketAddr) {
        self.remote_addr = [0; 16];
        match remote.ip() {
            core::net::IpAddr::V4(v4) => {
                self.remote_family = Self::FAMILY_V4;
                self.remote_addr[..4].copy_from_slice(&v4.octets());
            }
            core::net::IpAddr::V6(v6) => {
                self.remote_family = Self::FAMILY_V6;
                self.remote_addr = v6.octets();
            }
        }
        self.remote_port = remote.port();
    }
}

// SAFETY: both are `#[repr(C)]` with integer and byte-array fields only and no padding (checked by
// `link_quality_layout`): every bit pattern is a valid value.
#[cfg(feature = "user")]
unsafe impl aya::Pod for LinkKey {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for LinkQuality {}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    /// The layout both sides (and any other reader of the pin) rely on: sizes, offsets, no holes.
    #[test]
    fn link_quality_layout() {
        assert_eq!((size_of::<LinkKey>(), align_of::<LinkKey>()), (16, 8));
        assert_eq!((offset_of!(LinkKey, peer), offset_of!(LinkKey, path), offset_of!(LinkKey, _pad)), (0, 8, 12));
        assert_eq!((size_of::<LinkQuality>(), align_of::<LinkQuality>()), (144, 8));
        let offsets = [
            (offset_of!(LinkQuality, updated_unix_ms), 8),
            (offset_of!(LinkQuality, packets_sent), 8),
            (offset_of!(LinkQuality, packets_received), 8),
            (offset_of!(LinkQuality, failovers), 8),
            (offset_of!(LinkQuality, bond_active_changes), 8),
            (offset_of!(LinkQuality, latency_us), 4),
            (offset_of!(LinkQuality, pdv_us), 4),
            (offset_of!(LinkQuality, loss_ppm), 4),
            (offset_of!(LinkQuality, error_ppm), 4),
            (offset_of!(LinkQuality, throughput_kbps), 4),
            (offset_of!(LinkQuality, share_ppm), 4),
            (offset_of!(LinkQuality, quality_ppm), 4),
            (offset_of!(LinkQuality, link_speed_mbps), 4),
            (offset_of!(LinkQuality, flows), 4),
            (offset_of!(LinkQuality, last_in_age_ms), 4),
            (offset_of!(LinkQuality, last_out_age_ms), 4),
            (offset_of!(LinkQuality, failover_interval_ms), 4),
            (offset_of!(LinkQuality, up_delay_ms), 4),
            (offset_of!(LinkQuality, down_delay_ms), 4),
            (offset_of!(LinkQuality, packets_per_link), 4),
            (offset_of!(LinkQuality, local_socket), 4),
            (offset_of!(LinkQuality, remote_port), 2),
            (offset_of!(LinkQuality, local_port), 2),
            (offset_of!(LinkQuality, policy), 1),
            (offset_of!(LinkQuality, state), 1),
            (offset_of!(LinkQuality, flags), 1),
            (offset_of!(LinkQuality, remote_family), 1),
            (offset_of!(LinkQuality, link), LINK_NAME_LEN),
            (offset_of!(LinkQuality, remote_addr), 16),
        ];
        // Each field starts where the previous one ended, and the last one ends the struct.
        let mut end = 0;
        for (offset, size) in offsets {
            assert_eq!(offset, end, "hole before the field at {offset}");
            end = offset + size;
        }
        assert_eq!(end, size_of::<LinkQuality>());
        assert_eq!((offset_of!(LinkQuality, latency_us), offset_of!(LinkQuality, link)), (40, 112));
    }

    #[test]
    fn link_name_and_remote_round_trip() {
        let mut q = LinkQuality::default();
        q.set_link_name("enp5s0f1");
        assert_eq!(q.link_name(), "enp5s0f1");
        q.set_link_name("a-very-long-interface-name");
        assert_eq!(q.link_name(), "a-very-long-inte");
        q.set_link_name("ééééééééé"); // 18 bytes: cut to 16, on a character boundary
        assert_eq!(q.link_name(), "éééééééé");
        for remote in ["198.18.1.3:9993", "[2001:db8::1]:9994"] {
            let addr: core::net::SocketAddr = remote.parse().unwrap();
            q.set_remote(addr);
            assert_eq!(q.remote(), Some(addr));
        }
        assert_eq!(LinkQuality::default().remote(), None);
        assert_eq!(LinkQuality::default().link_state(), Some(LinkState::Up));
        assert_eq!(LinkState::from_code(3).map(LinkState::name), Some("recovering"));
        assert_eq!(LinkState::from_code(4), None);
    }
}
