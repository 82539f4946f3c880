//! `ztplane_steer`: the XDP program in front of every ztplane interface.
//!
//! Frames to a UDP destination port in [`ZT_PORTS`] (ZeroTier: 9993 by default) go to the AF_XDP
//! socket bound to the queue they arrived on; everything else — ARP, ICMP, TCP, other UDP, IP
//! fragments, IPv6 with extension headers, truncated or malformed frames — is passed to the
//! kernel untouched. The kernel only lets a frame be redirected to the socket of its own RX
//! queue, so spreading one flow over cores is userspace's job (see `dataplane/src/handoff.rs`).
//!
//! `ztplane_lan`: the XDP program of a gateway's LAN port (`--bridge NWID=LANIF`). The port is
//! bridged into a ZeroTier network, so the workers must see every frame the LAN carries, whatever
//! its protocol: all of them go to the AF_XDP socket of their queue and none to the kernel. The
//! exception is the operator's way back in: a frame whose outer 802.1Q / 802.1ad tag carries a
//! VLAN ID of [`EXCLUDED_VLANS`] (the management VLAN, say) is passed to the kernel. The tag must
//! be in the frame: a NIC that strips it into the descriptor (rx VLAN offload) hides it from XDP.
//!
//! Both programs pass a frame to the kernel when no socket is bound to its queue (the node is
//! starting or stopping), and share the socket map and counters; each interface loads its own
//! instance of the object, so their maps never mix.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod program {
    use aya_ebpf::{
        bindings::xdp_action,
        macros::{map, xdp},
        maps::{HashMap, PerCpuArray, XskMap},
        programs::XdpContext,
    };
    use ztplane_ebpf_common::{Counter, MAX_EXCLUDED_VLANS, MAX_PORTS, MAX_QUEUES};

    #[map]
    static ZT_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(MAX_PORTS, 0);

    #[map]
    static EXCLUDED_VLANS: HashMap<u16, u8> = HashMap::with_max_entries(MAX_EXCLUDED_VLANS, 0);

    #[map]
    static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);

    #[map]
    static STEER_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

    const ETH_HEADER: usize = 14;
    const VLAN_TAG: usize = 4;
    const ETH_P_IPV4: u16 = 0x0800;
    const ETH_P_IPV6: u16 = 0x86dd;
    const ETH_P_8021Q: u16 = 0x8100;
    const ETH_P_8021AD: u16 = 0x88a8;
    const VLAN_ID_MASK: u16 = 0x0fff;
    const IPPROTO_UDP: u8 = 17;
    const IPV6_HEADER: usize = 40;
    const UDP_HEADER: usize = 8;

    /// What the parser decided about a frame.
    enum Verdict {
        /// UDP to this destination port, well-formed up to the UDP header.
        Udp(u16),
        /// Well-formed but not a candidate (not IP, not UDP, IP fragment, extension headers).
        NotUdp,
        /// Headers truncated or inconsistent.
        Malformed,
    }

    #[xdp]
    pub fn ztplane_steer(ctx: XdpContext) -> u32 {
        count(Counter::Seen);
        let verdict = classify(&ctx);
        if let Verdict::Udp(port) = verdict {
            if ZT_PORTS.get_ptr(port).is_some() {
                // Falls back to XDP_PASS when no socket is bound to this queue.
                if let Ok(action) = XSKS.redirect(ctx.rx_queue_index(), xdp_action::XDP_PASS as u64) {
                    count(Counter::Steered);
                    return action;
                }
            }
        }
        if let Verdict::Malformed = verdict {
            count(Counter::Malformed);
        }
        count(Counter::Passed);
        xdp_action::XDP_PASS
    }

    /// The outer tag of a frame on a LAN port.
    enum Tag {
        /// No 802.1Q / 802.1ad tag.
        Untagged,
        /// The VLAN ID of the outer tag (its TCI without priority and DEI bits).
        Vlan(u16),
        /// Too short for an Ethernet header, or for the tag it announces.
        Malformed,
    }

    #[xdp]
    pub fn ztplane_lan(ctx: XdpContext) -> u32 {
        count(Counter::Seen);
        let to_kernel = match outer_tag(&ctx) {
            Tag::Untagged => false,
            Tag::Vlan(id) => EXCLUDED_VLANS.get_ptr(id).is_some(),
            // The kernel drops it; the workers must not bridge it.
            Tag::Malformed => {
                count(Counter::Malformed);
                true
            }
        };
        if !to_kernel {
            // Falls back to XDP_PASS when no socket is bound to this queue.
            if let Ok(action) = XSKS.redirect(ctx.rx_queue_index(), xdp_action::XDP_PASS as u64) {
                count(Counter::Steered);
                return action;
            }
        }
        count(Counter::Passed);
        xdp_action::XDP_PASS
    }

    /// Only the outer tag counts: with 802.1ad it is the service VLAN, the one a management
    /// network is reached through.
    #[inline(always)]
    fn outer_tag(ctx: &XdpContext) -> Tag {
        let Some(ethertype) = be16(ctx, 12) else {
            return Tag::Malformed;
        };
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            return Tag::Untagged;
        }
        match be16(ctx, ETH_HEADER) {
            Some(tci) => Tag::Vlan(tci & VLAN_ID_MASK),
            None => Tag::Malformed,
        }
    }

    #[inline(always)]
    fn count(counter: Counter) {
        if let Some(slot) = STEER_COUNTERS.get_ptr_mut(counter as u32) {
            // Per-CPU slot: no other writer while this program runs on this CPU.
            unsafe { *slot += 1 };
        }
    }

    /// Reads `N` bytes at `offset` if the frame holds them.
    #[inline(always)]
    fn bytes<const N: usize>(ctx: &XdpContext, offset: usize) -> Option<[u8; N]> {
        let start = ctx.data();
        let end = ctx.data_end();
        if start + offset + N > end {
            return None;
        }
        Some(unsafe { core::ptr::read_unaligned((start + offset) as *const [u8; N]) })
    }

    #[inline(always)]
    fn be16(ctx: &XdpContext, offset: usize) -> Option<u16> {
        bytes::<2>(ctx, offset).map(u16::from_be_bytes)
    }

    #[inline(always)]
    fn classify(ctx: &XdpContext) -> Verdict {
        let Some(mut ethertype) = be16(ctx, 12) else {
            return Verdict::Malformed;
        };
        let mut l3 = ETH_HEADER;
        if ethertype == ETH_P_8021Q {
            let Some(inner) = be16(ctx, ETH_HEADER + 2) else {
                return Verdict::Malformed;
            };
            ethertype = inner;
            l3 += VLAN_TAG;
        }
        match ethertype {
            ETH_P_IPV4 => ipv4(ctx, l3),
            ETH_P_IPV6 => ipv6(ctx, l3),
            _ => Verdict::NotUdp,
        }
    }

    #[inline(always)]
    fn ipv4(ctx: &XdpContext, l3: usize) -> Verdict {
        let Some(head) = bytes::<20>(ctx, l3) else {
            return Verdict::Malformed;
        };
        let version = head[0] >> 4;
        let header_len = ((head[0] & 0x0f) as usize) * 4;
        let total_len = u16::from_be_bytes([head[2], head[3]]) as usize;
        // The IP packet must fit the frame (padding after it is fine): the kernel would drop a
        // truncated one, so must we.
        if version != 4 || header_len < 20 || total_len < header_len || ctx.data() + l3 + total_len > ctx.data_end() {
            return Verdict::Malformed;
        }
        if head[9] != IPPROTO_UDP {
            return Verdict::NotUdp;
        }
        // Fragments (MF set or a non-zero offset) are reassembled by the kernel, not by us.
        let frag = u16::from_be_bytes([head[6], head[7]]);
        if frag & 0x3fff != 0 {
            return Verdict::NotUdp;
        }
        udp(ctx, l3 + header_len, total_len - header_len)
    }

    #[inline(always)]
    fn ipv6(ctx: &XdpContext, l3: usize) -> Verdict {
        let Some(head) = bytes::<8>(ctx, l3) else {
            return Verdict::Malformed;
        };
        if head[0] >> 4 != 6 {
            return Verdict::Malformed;
        }
        // Extension headers (including fragments) go to the kernel.
        if head[6] != IPPROTO_UDP {
            return Verdict::NotUdp;
        }
        let payload_len = u16::from_be_bytes([head[4], head[5]]) as usize;
        if ctx.data() + l3 + IPV6_HEADER + payload_len > ctx.data_end() {
            return Verdict::Malformed;
        }
        udp(ctx, l3 + IPV6_HEADER, payload_len)
    }

    #[inline(always)]
    fn udp(ctx: &XdpContext, l4: usize, ip_payload_len: usize) -> Verdict {
        let Some(head) = bytes::<UDP_HEADER>(ctx, l4) else {
            return Verdict::Malformed;
        };
        let udp_len = u16::from_be_bytes([head[4], head[5]]) as usize;
        // The UDP length must fit the IP payload and the frame: no truncated datagrams to workers.
        if udp_len < UDP_HEADER || udp_len > ip_payload_len || ctx.data() + l4 + udp_len > ctx.data_end() {
            return Verdict::Malformed;
        }
        Verdict::Udp(u16::from_be_bytes([head[2], head[3]]))
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
