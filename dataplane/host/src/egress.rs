//! Where a UDP packet to a physical peer leaves this host, down to the Ethernet header: what an
//! AF_XDP sender must fill in itself because it bypasses the kernel's routing and neighbour code.
//!
//! [`resolve`] asks the kernel the same questions `ip route get` and `ip neigh` do: route
//! (output interface, gateway, source address), then the output interface's MAC and MTU, then the
//! next hop's MAC. A next hop without a usable neighbour entry gives `dst_mac: None`: the caller
//! then sends through a kernel UDP socket, which makes the kernel resolve it (ARP/NDP), and asks
//! again later. This module never triggers resolution itself. A destination on this host resolves
//! to `lo` and never gets a `dst_mac`, so such traffic stays on the kernel path, as it must.

use crate::error::{Error, Result};
use crate::netlink::Netlink;
use netlink_packet_route::route::RouteAttribute;
use std::net::{IpAddr, SocketAddr};

/// The egress path to one destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Egress {
    /// Output interface.
    pub ifindex: u32,
    pub ifname: String,
    /// The source address the kernel would use (RTA_PREFSRC, else the interface's first address
    /// of the destination's family).
    pub src_ip: IpAddr,
    /// The output interface's MAC.
    pub src_mac: [u8; 6],
    /// The gateway, or the destination itself when it is on a connected subnet.
    pub next_hop: IpAddr,
    /// The next hop's MAC; `None` while the kernel has no usable neighbour entry.
    pub dst_mac: Option<[u8; 6]>,
    /// The output interface's MTU: the largest IP packet the sender may put in one frame.
    pub mtu: u32,
}

/// Resolves the egress path to `dst` on a fresh netlink socket in the calling thread's namespace.
pub fn resolve(dst: SocketAddr) -> Result<Egress> {
    resolve_with(&mut Netlink::open()?, dst)
}

/// [`resolve`] on an open handle (cheaper when resolving many destinations).
///
/// The route lookup carries the UDP protocol and destination port, so policy-routing rules that
/// match on them (`ip rule … ipproto udp dport …`) are honoured, and an IPv6 scope id as the output
/// interface. Errors: [`Error::Unreachable`] without a route or source address;
/// [`Error::Unsupported`] if the route leaves through an interface without a MAC (tun, wireguard).
pub fn resolve_with(nl: &mut Netlink, dst: SocketAddr) -> Result<Egress> {
    let ip = dst.ip().to_canonical();
    let mut extra = vec![RouteAttribute::IpProto(libc::IPPROTO_UDP as u8), RouteAttribute::Dport(dst.port())];
    if let SocketAddr::V6(v6) = dst
        && v6.scope_id() != 0
        && ip.is_ipv6()
    {
        extra.push(RouteAttribute::Oif(v6.scope_id()));
    }
    let route = nl.route_get_with(ip, &extra)?;
    let link = nl.link(route.oif)?;
    let Some(src_mac) = link.mac else {
        return Err(Error::Unsupported { what: format!("egress to {dst} through {}, which has no MAC", link.name) });
    };
    let src_ip = match route.prefsrc {
        Some(src) => src,
        None => nl.addresses(route.oif)?.into_iter().map(|a| a.addr).find(|a| a.is_ipv4() == ip.is_ipv4()).ok_or_else(
            || Error::Unreachable {
                what: format!("egress to {dst}: no source address on {}", link.name),
                source: None,
            },
        )?,
    };
    let next_hop = route.gateway.unwrap_or(ip);
    let dst_mac = nl.neighbour(route.oif, next_hop)?;
    Ok(Egress { ifindex: route.oif, ifname: link.name, src_ip, src_mac, next_hop, dst_mac, mtu: link.mtu })
}
