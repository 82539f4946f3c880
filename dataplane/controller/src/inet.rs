//! zerotier-one's `InetAddress` in text: `ip/port`, where the controller's records use the port
//! for a prefix length (`198.19.0.0/24`), and the containment test its controller uses to find
//! the route an address belongs to (§2.3 "Static IPs").

use std::net::IpAddr;

/// An IP address with zerotier-one's "port" (in routes and assignments: prefix bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InetAddr {
    pub ip: IpAddr,
    pub port: u16,
}

impl InetAddr {
    pub fn new(ip: IpAddr, port: u16) -> Self {
        InetAddr { ip, port }
    }

    /// `InetAddress::fromString`: `ip` or `ip/port` (a decimal; only its leading digits count).
    /// An address is IPv6 if it has a `:`, IPv4 if it has a `.`. Unlike upstream, which keeps an
    /// all-zero address of that family, text that does not parse is `None`.
    pub fn parse(text: &str) -> Option<InetAddr> {
        let (ip, port) = text.split_once('/').unwrap_or((text, ""));
        let port = port
            .bytes()
            .take_while(u8::is_ascii_digit)
            .fold(0u32, |acc, d| acc.wrapping_mul(10).wrapping_add(u32::from(d - b'0'))) as u16;
        let ip: IpAddr = if ip.contains(':') || ip.contains('.') { ip.parse().ok()? } else { return None };
        Some(InetAddr { ip, port })
    }

    /// `toIpString`: the address alone.
    pub fn ip_string(&self) -> String {
        self.ip.to_string()
    }

    /// `toString`: `ip/port`.
    pub fn with_port(&self) -> String {
        format!("{}/{}", self.ip, self.port)
    }

    /// `netmaskBitsValid`: the port is a usable prefix length for the family.
    pub fn prefix_valid(&self) -> bool {
        self.port <= self.max_bits()
    }

    fn max_bits(&self) -> u16 {
        if self.ip.is_ipv4() { 32 } else { 128 }
    }

    /// `containsAddress`: `ip` is of the same family and inside this prefix. IPv4 compares both
    /// sides shifted; IPv6 masks `ip` only, so a prefix with host bits set contains nothing.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.port > self.max_bits() {
            return false;
        }
        match (self.ip, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let shift = 32 - u32::from(self.port);
                self.port == 0 || u32::from(net) >> shift == u32::from(ip) >> shift
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.port)).unwrap_or(0);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_contains() {
        let r = InetAddr::parse("198.19.0.0/24").unwrap();
        assert_eq!(r.with_port(), "198.19.0.0/24");
        assert!(r.contains("198.19.0.77".parse().unwrap()));
        assert!(!r.contains("198.19.1.77".parse().unwrap()));
        assert!(!r.contains("fd00::1".parse().unwrap()));
        assert_eq!(InetAddr::parse("198.19.0.5").unwrap().port, 0);
        assert!(InetAddr::parse("0.0.0.0/0").unwrap().contains("1.2.3.4".parse().unwrap()));
        assert!(InetAddr::parse("198.19.0.0/33").is_some_and(|a| !a.prefix_valid()));
        assert_eq!(InetAddr::parse("nonsense"), None);
        assert_eq!(InetAddr::parse("fd00::/8x").unwrap().port, 8);
        let v6 = InetAddr::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!InetAddr::parse("fd00::1/8").unwrap().contains("fd12::1".parse().unwrap()));
    }
}
