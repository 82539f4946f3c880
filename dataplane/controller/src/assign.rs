//! Managed addresses (§2.3 "Static IPs"; EmbeddedNetworkController.cpp `_request`): which of a
//! member's addresses are issued, with which prefix length, and how a new one is picked from the
//! network's pools.
//!
//! * A member's own `ipAssignments` are issued only inside a route, with the prefix of the
//!   **longest** route containing them.
//! * IPv4 pool pick: from `start + (address mod 2³²) mod (end − start)` onwards (`end` itself
//!   only when `start = end`), skipping `.255`, at most 1 000 tries, the first address that is
//!   free and inside an IPv4 route — the *first* route in the list that matches decides the
//!   prefix (compared as upstream's x86-64 build does, shift count mod 32).
//! * IPv6 pool pick: `start + address` in the low 64 bits when the pool spans ≥ 2⁴⁰ there;
//!   otherwise upstream draws random addresses, which here are drawn from a generator seeded by
//!   (network, member, try), so a member always gets the same address for the same pool state.
//!   The address must be free and inside an IPv6 route without gateway (the last such route
//!   decides the prefix).
//! * rfc4193 (`fd ‖ nwid ‖ 99 93 ‖ address` /88) and 6plane (`fc ‖ nwid folded to 32 bits ‖
//!   address ‖ 0… ‖ 01` /40) addresses (InetAddress.cpp `makeIpv6rfc4193`, `makeIpv66plane`).
//!
//! Every address in any member's `ipAssignments` counts as taken, so two members never get the
//! same pool address.

use crate::inet::InetAddr;
use crate::json::{self, Object};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use ztplane_protocol::network::NetworkId;

/// `ZT_MAX_NETWORK_ROUTES`.
pub const MAX_ROUTES: usize = 128;

/// A route of the network (`routes[]`): target prefix (port = bits) and gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub target: InetAddr,
    pub via: Option<IpAddr>,
}

/// The routes a config carries: targets that parse, a gateway only of the same family.
pub fn routes(network: &Object) -> Vec<Route> {
    let Some(Value::Array(list)) = network.get("routes") else { return Vec::new() };
    list.iter()
        .filter_map(|r| {
            let target = InetAddr::parse(r.get("target")?.as_str()?)?;
            let via = r
                .get("via")
                .and_then(Value::as_str)
                .and_then(InetAddr::parse)
                .map(|v| v.ip)
                .filter(|v| v.is_ipv4() == target.ip.is_ipv4());
            Some(Route { target, via })
        })
        .take(MAX_ROUTES)
        .collect()
}

/// The prefix an assigned address is issued with: that of the longest route containing it.
pub fn routed_prefix(routes: &[Route], ip: IpAddr) -> Option<u16> {
    routes.iter().filter(|r| r.target.contains(ip)).map(|r| r.target.port).max()
}

/// An address range (`ipAssignmentPools[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub start: IpAddr,
    pub end: IpAddr,
}

/// The pools of a network, in order.
pub fn pools(network: &Object) -> Vec<Pool> {
    let Some(Value::Array(list)) = network.get("ipAssignmentPools") else { return Vec::new() };
    list.iter()
        .filter_map(|p| {
            let start = InetAddr::parse(&json::string(p.get("ipRangeStart"), ""))?.ip;
            let end = InetAddr::parse(&json::string(p.get("ipRangeEnd"), ""))?.ip;
            Some(Pool { start, end })
        })
        .collect()
}

/// A free IPv4 address for `member` from the first pool that has one, with its route's prefix.
pub fn pick_ipv4(pools: &[Pool], routes: &[Route], member: u64, taken: &BTreeSet<IpAddr>) -> Option<(Ipv4Addr, u16)> {
    for pool in pools {
        let (IpAddr::V4(start), IpAddr::V4(end)) = (pool.start, pool.end) else { continue };
        let (start, end) = (u32::from(start), u32::from(end));
        if end < start || start == 0 {
            continue;
        }
        let len = end - start;
        let mut counter = member as u32;
        let mut k = u64::from(start);
        let mut tries = 0;
        while k <= u64::from(end) && tries < 1000 {
            let ip = if len > 0 { start.wrapping_add(counter % len) } else { start };
            counter = counter.wrapping_add(1);
            k += 1;
            tries += 1;
            if ip & 0xff == 0xff {
                continue;
            }
            let bits = routes.iter().find_map(|r| match r.target.ip {
                IpAddr::V4(target) => {
                    let shift = (32i32 - i32::from(r.target.port)) as u32 & 31;
                    ((ip & (u32::MAX << shift)) == u32::from(target)).then_some(r.target.port)
                }
                IpAddr::V6(_) => None,
            });
            let ip = Ipv4Addr::from(ip);
            if let Some(bits) = bits.filter(|&b| b > 0)
                && !taken.contains(&IpAddr::V4(ip))
            {
                return Some((ip, bits));
            }
        }
    }
    None
}

/// A free IPv6 address for `member` from the first pool that has one, with its route's prefix.
pub fn pick_ipv6(
    pools: &[Pool],
    routes: &[Route],
    network: NetworkId,
    member: u64,
    taken: &BTreeSet<IpAddr>,
) -> Option<(Ipv6Addr, u16)> {
    for pool in pools {
        let (IpAddr::V6(start), IpAddr::V6(end)) = (pool.start, pool.end) else { continue };
        let (s, e) = (u128::from(start), u128::from(end));
        let (s_hi, s_lo, e_hi, e_lo) = ((s >> 64) as u64, s as u64, (e >> 64) as u64, e as u64);
        for trial in 0..1000u64 {
            let (hi, lo) = if trial == 0 && e_lo > s_lo && e_lo - s_lo >= 0xff_ffff_ffff {
                (s_hi, s_lo.wrapping_add(member))
            } else {
                let mut seed = network.0 ^ member.rotate_left(24) ^ trial.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let (r_hi, r_lo) = (splitmix(&mut seed), splitmix(&mut seed));
                let hi = if e_hi > s_hi { r_hi % (e_hi - s_hi) } else { 0 };
                let lo = if e_lo > s_lo { r_lo % (e_lo - s_lo) } else { 0 };
                (s_hi.wrapping_add(hi), s_lo.wrapping_add(lo))
            };
            let ip = Ipv6Addr::from((u128::from(hi) << 64) | u128::from(lo));
            let bits = routes
                .iter()
                .filter(|r| r.via.is_none() && r.target.ip.is_ipv6() && r.target.contains(IpAddr::V6(ip)))
                .map(|r| r.target.port)
                .next_back()
                .unwrap_or(0);
            if bits > 0 && !taken.contains(&IpAddr::V6(ip)) {
                return Some((ip, bits));
            }
        }
    }
    None
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `fd ‖ nwid ‖ 99 93 ‖ address`, prefix 88.
pub fn rfc4193(network: NetworkId, member: u64) -> InetAddr {
    let mut b = [0u8; 16];
    b[0] = 0xfd;
    b[1..9].copy_from_slice(&network.0.to_be_bytes());
    b[9] = 0x99;
    b[10] = 0x93;
    b[11..16].copy_from_slice(&member.to_be_bytes()[3..8]);
    InetAddr::new(IpAddr::V6(Ipv6Addr::from(b)), 88)
}

/// `fc ‖ (nwid ^ nwid >> 32) low 32 bits ‖ address ‖ 0… ‖ 01`, prefix 40.
pub fn six_plane(network: NetworkId, member: u64) -> InetAddr {
    let folded = (network.0 ^ (network.0 >> 32)) as u32;
    let mut b = [0u8; 16];
    b[0] = 0xfc;
    b[1..5].copy_from_slice(&folded.to_be_bytes());
    b[5..10].copy_from_slice(&member.to_be_bytes()[3..8]);
    b[15] = 0x01;
    InetAddr::new(IpAddr::V6(Ipv6Addr::from(b)), 40)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn network() -> Object {
        json!({
            "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
            "routes": [{"target": "198.19.0.0/24", "via": null}]
        })
        .as_object()
        .unwrap()
        .clone()
    }

    /// The conformance capture's controller gave a (cfe2482597) 198.19.0.241 and b (f2281a769d)
    /// 198.19.0.231 from this pool.
    #[test]
    fn ipv4_picks_match_zerotier_one() {
        let n = network();
        let (pools, routes) = (pools(&n), routes(&n));
        let none = BTreeSet::new();
        assert_eq!(pick_ipv4(&pools, &routes, 0xcfe2482597, &none), Some(("198.19.0.241".parse().unwrap(), 24)));
        assert_eq!(pick_ipv4(&pools, &routes, 0xf2281a769d, &none), Some(("198.19.0.231".parse().unwrap(), 24)));
        // Taken: the next one.
        let taken: BTreeSet<IpAddr> = ["198.19.0.241".parse().unwrap()].into();
        assert_eq!(pick_ipv4(&pools, &routes, 0xcfe2482597, &taken), Some(("198.19.0.242".parse().unwrap(), 24)));
        // Without a route nothing is issued.
        assert_eq!(pick_ipv4(&pools, &[], 0xcfe2482597, &none), None);
        assert_eq!(routed_prefix(&routes, "198.19.0.7".parse().unwrap()), Some(24));
        assert_eq!(routed_prefix(&routes, "198.18.0.7".parse().unwrap()), None);
    }

    #[test]
    fn a_full_pool_gives_nothing_and_never_255() {
        let n = json!({
            "ipAssignmentPools": [{"ipRangeStart": "198.19.0.253", "ipRangeEnd": "198.19.1.0"}],
            "routes": [{"target": "198.19.0.0/23"}]
        });
        let n = n.as_object().unwrap();
        let (pools, routes) = (pools(n), routes(n));
        let mut taken = BTreeSet::new();
        for m in 0..10u64 {
            if let Some((ip, _)) = pick_ipv4(&pools, &routes, m, &taken) {
                assert_ne!(ip.octets()[3], 255);
                taken.insert(IpAddr::V4(ip));
            }
        }
        assert_eq!(taken.len(), 2, "{taken:?}");
    }

    #[test]
    fn ipv6_addresses() {
        let nwid = NetworkId(0x2c80d4374849700f);
        assert_eq!(rfc4193(nwid, 0xcfe2482597).with_port(), "fd2c:80d4:3748:4970:f99:93cf:e248:2597/88");
        assert_eq!(six_plane(nwid, 0xcfe2482597).with_port(), "fc64:c9a4:38cf:e248:2597::1/40");
        let n = json!({
            "ipAssignmentPools": [{"ipRangeStart": "fd00::", "ipRangeEnd": "fd00::ffff:ffff:ffff:ffff"}],
            "routes": [{"target": "fd00::/64"}]
        });
        let n = n.as_object().unwrap();
        let got = pick_ipv6(&pools(n), &routes(n), nwid, 0xcfe2482597, &BTreeSet::new()).unwrap();
        assert_eq!(got, ("fd00::cf:e248:2597".parse().unwrap(), 64));
        let small = json!({
            "ipAssignmentPools": [{"ipRangeStart": "fd00::10", "ipRangeEnd": "fd00::20"}],
            "routes": [{"target": "fd00::/120"}]
        });
        let small = small.as_object().unwrap();
        let a = pick_ipv6(&pools(small), &routes(small), nwid, 1, &BTreeSet::new()).unwrap();
        assert_eq!(a, pick_ipv6(&pools(small), &routes(small), nwid, 1, &BTreeSet::new()).unwrap());
        assert!(a.0 >= "fd00::10".parse::<Ipv6Addr>().unwrap() && a.0 < "fd00::20".parse::<Ipv6Addr>().unwrap());
    }
}
