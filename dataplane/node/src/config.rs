//! A network configuration as the controller issues it: the netconf Dictionary of
//! `zerotier-vl2.md` §2.5, parsed into typed fields and checked as §2.4 requires before install.
//!
//! Keys we do not use are kept in the raw dictionary (it is what we cache in
//! `networks.d/<nwid>.conf`), so nothing is lost across a restart.

use crate::Address;
use std::net::{IpAddr, SocketAddr};
use ztplane_protocol::credentials::{CertificateOfMembership, CertificateOfOwnership, Tag};
use ztplane_protocol::dictionary::Dictionary;
use ztplane_protocol::inet::read_inet;
use ztplane_protocol::network::NetworkId;
use ztplane_protocol::rules::{Rule, decode_rules};
use ztplane_protocol::wire::{Reader, address_from_u64};

/// Config flags (`f`, §2.5).
pub const FLAG_BROADCAST: u64 = 0x02;
pub const FLAG_NDP_EMULATION: u64 = 0x04;
pub const FLAG_UNKNOWN_MATCH_TRUE: u64 = 0x08;
pub const FLAG_NO_COMPRESSION: u64 = 0x10;

/// Specialist flags (`S`, §2.5).
pub const SPECIALIST_ACTIVE_BRIDGE: u64 = 0x0000_0200_0000_0000;
pub const SPECIALIST_ANCHOR: u64 = 0x0000_0400_0000_0000;
pub const SPECIALIST_MULTICAST_REPLICATOR: u64 = 0x0000_0800_0000_0000;

/// Virtual MTU bounds and default (VL1 §1.1).
pub const DEFAULT_MTU: u32 = 2800;
pub const MIN_MTU: u32 = 1280;
pub const MAX_MTU: u32 = 10_000;
/// Default multicast limit when `ml` is absent.
pub const DEFAULT_MULTICAST_LIMIT: u32 = 32;
/// The oldest netconf format 1.14.1 installs (`v` ≥ 6).
const MIN_CONFIG_VERSION: u64 = 6;

/// A managed route (`RT`): target prefix, optional gateway, flags, metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagedRoute {
    pub target: IpAddr,
    pub prefix_len: u8,
    pub via: Option<IpAddr>,
    pub flags: u16,
    pub metric: u16,
}

/// An assigned address (`I`) with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssignedAddress {
    pub ip: IpAddr,
    pub prefix_len: u8,
}

impl std::fmt::Display for AssignedAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix_len)
    }
}

/// A network specialist (`S`): an address with role flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Specialist {
    pub address: Address,
    pub flags: u64,
}

/// A parsed, validated network configuration.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    pub network_id: NetworkId,
    pub issued_to: Address,
    pub timestamp: u64,
    /// Credential time max delta (`ctmd`).
    pub credential_window: u64,
    pub revision: u64,
    pub flags: u64,
    pub multicast_limit: u32,
    pub public: bool,
    pub name: String,
    pub mtu: u32,
    pub com: Option<CertificateOfMembership>,
    pub coos: Vec<CertificateOfOwnership>,
    pub tags: Vec<Tag>,
    /// Capabilities as received (rule lists are extracted where needed).
    pub capabilities: Vec<ztplane_protocol::credentials::Capability>,
    pub specialists: Vec<Specialist>,
    pub routes: Vec<ManagedRoute>,
    pub addresses: Vec<AssignedAddress>,
    pub rules: Vec<Rule>,
    pub dns_domain: String,
    pub dns_servers: Vec<IpAddr>,
    /// The dictionary this was parsed from (what gets cached on disk).
    pub dictionary: Vec<u8>,
}

/// Why a dictionary was not installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("network config is not a dictionary: {0}")]
    Syntax(String),
    #[error("network config lacks `{0}`")]
    Missing(&'static str),
    #[error("network config format {0} is older than 6")]
    TooOld(u64),
    #[error("network config is for {issued_to}, not for us ({me})")]
    NotForUs { issued_to: Address, me: Address },
    #[error("network config is for network {got}, not {expected}")]
    WrongNetwork { got: NetworkId, expected: NetworkId },
    #[error("network config field `{key}`: {detail}")]
    Field { key: &'static str, detail: String },
}

impl NetworkConfig {
    /// Parses a netconf dictionary and checks it is meant for `me` on `network` (§2.4).
    pub fn parse(dictionary: &[u8], network: NetworkId, me: Address) -> Result<Self, ConfigError> {
        let dict = Dictionary::parse(dictionary).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let hex = |key: &'static str| -> Result<Option<u64>, ConfigError> {
            match dict.get(key) {
                None => Ok(None),
                Some(v) => parse_hex(v).map(Some).ok_or_else(|| ConfigError::Field {
                    key,
                    detail: format!("not hex: {:?}", String::from_utf8_lossy(v)),
                }),
            }
        };
        let version = hex("v")?.unwrap_or(0);
        let network_id = NetworkId(hex("nwid")?.filter(|&n| n != 0).ok_or(ConfigError::Missing("nwid"))?);
        let issued_to = address_from_u64(hex("id")?.filter(|&a| a != 0).ok_or(ConfigError::Missing("id"))?);
        if version < MIN_CONFIG_VERSION {
            return Err(ConfigError::TooOld(version));
        }
        if issued_to != me {
            return Err(ConfigError::NotForUs { issued_to, me });
        }
        if network_id != network {
            return Err(ConfigError::WrongNetwork { got: network_id, expected: network });
        }
        let timestamp = match dict.get("ts") {
            Some(v) if v.first() == Some(&b'-') => 0,
            _ => hex("ts")?.unwrap_or(0),
        };
        let mtu = hex("mtu")?.map_or(DEFAULT_MTU, |m| m.clamp(MIN_MTU as u64, MAX_MTU as u64) as u32);
        let com = match dict.get("C") {
            Some(bytes) if !bytes.is_empty() => Some(
                CertificateOfMembership::read(&mut Reader::new(bytes))
                    .map_err(|e| ConfigError::Field { key: "C", detail: e.to_string() })?,
            ),
            _ => None,
        };
        let mut coos = Vec::new();
        if let Some(bytes) = dict.get("COO") {
            let mut r = Reader::new(bytes);
            while !r.is_empty() && coos.len() < 4 {
                coos.push(
                    CertificateOfOwnership::read(&mut r)
                        .map_err(|e| ConfigError::Field { key: "COO", detail: e.to_string() })?,
                );
            }
        }
        let mut tags = Vec::new();
        if let Some(bytes) = dict.get("TAG") {
            let mut r = Reader::new(bytes);
            while !r.is_empty() && tags.len() < 256 {
                tags.push(Tag::read(&mut r).map_err(|e| ConfigError::Field { key: "TAG", detail: e.to_string() })?);
            }
        }
        let mut capabilities = Vec::new();
        if let Some(bytes) = dict.get("CAP") {
            let mut r = Reader::new(bytes);
            while !r.is_empty() && capabilities.len() < 128 {
                capabilities.push(
                    ztplane_protocol::credentials::Capability::read(&mut r)
                        .map_err(|e| ConfigError::Field { key: "CAP", detail: e.to_string() })?,
                );
            }
        }
        let mut specialists = Vec::new();
        if let Some(bytes) = dict.get("S") {
            for chunk in bytes.chunks_exact(8).take(256) {
                let v = u64::from_be_bytes(chunk.try_into().unwrap_or([0; 8]));
                specialists.push(Specialist { address: address_from_u64(v & 0xff_ffff_ffff), flags: v });
            }
        }
        let routes = match dict.get("RT") {
            Some(bytes) => parse_routes(bytes)?,
            None => Vec::new(),
        };
        let addresses = match dict.get("I") {
            Some(bytes) => parse_addresses(bytes)?,
            None => Vec::new(),
        };
        let rules = match dict.get("R") {
            Some(bytes) => decode_rules(bytes).map_err(|e| ConfigError::Field { key: "R", detail: e.to_string() })?,
            None => Vec::new(),
        };
        let (dns_domain, dns_servers) = dict.get("DNS").map(parse_dns).unwrap_or_default();
        Ok(NetworkConfig {
            network_id,
            issued_to,
            timestamp,
            credential_window: hex("ctmd")?.unwrap_or(7_200_000),
            revision: hex("r")?.unwrap_or(0),
            flags: hex("f")?.unwrap_or(0),
            multicast_limit: hex("ml")?.map_or(DEFAULT_MULTICAST_LIMIT, |v| v.min(u32::MAX as u64) as u32),
            public: hex("t")?.unwrap_or(0) == 1,
            name: dict
                .get("n")
                .map(|n| String::from_utf8_lossy(&n[..n.len().min(127)]).into_owned())
                .unwrap_or_default(),
            mtu,
            com,
            coos,
            tags,
            capabilities,
            specialists,
            routes,
            addresses,
            rules,
            dns_domain,
            dns_servers,
            dictionary: dictionary.to_vec(),
        })
    }

    pub fn broadcast_enabled(&self) -> bool {
        self.flags & FLAG_BROADCAST != 0
    }

    pub fn ndp_emulation(&self) -> bool {
        self.flags & FLAG_NDP_EMULATION != 0
    }

    pub fn compression_allowed(&self) -> bool {
        self.flags & FLAG_NO_COMPRESSION == 0
    }

    /// Active bridges (`S` flag 0x0000020000000000, §4.4).
    pub fn active_bridges(&self) -> impl Iterator<Item = Address> + '_ {
        self.specialists.iter().filter(|s| s.flags & SPECIALIST_ACTIVE_BRIDGE != 0).map(|s| s.address)
    }

    pub fn is_active_bridge(&self, address: Address) -> bool {
        self.active_bridges().any(|a| a == address)
    }

    /// Anchors and multicast replicators: nodes the network wants always contacted (§1.3).
    pub fn always_contact(&self) -> impl Iterator<Item = Address> + '_ {
        self.specialists
            .iter()
            .filter(|s| s.flags & (SPECIALIST_ANCHOR | SPECIALIST_MULTICAST_REPLICATOR) != 0)
            .map(|s| s.address)
    }

    /// Text of the network type as zerotier-cli prints it.
    pub fn type_name(&self) -> &'static str {
        if self.public { "PUBLIC" } else { "PRIVATE" }
    }
}

/// Lower-case (or any-case) hex of any length up to 16 digits.
pub fn parse_hex(v: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(v).ok()?.trim();
    if text.is_empty() || text.len() > 16 {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

fn prefix_of(addr: SocketAddr, key: &'static str) -> Result<u8, ConfigError> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = addr.port();
    if bits > max {
        return Err(ConfigError::Field { key, detail: format!("prefix length {bits} for {}", addr.ip()) });
    }
    Ok(bits as u8)
}

fn parse_routes(bytes: &[u8]) -> Result<Vec<ManagedRoute>, ConfigError> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    let err = |e: ztplane_protocol::ProtocolError| ConfigError::Field { key: "RT", detail: e.to_string() };
    while !r.is_empty() && out.len() < 128 {
        let target = read_inet(&mut r).map_err(err)?;
        let via = read_inet(&mut r).map_err(err)?;
        let flags = r.u16("route flags").map_err(err)?;
        let metric = r.u16("route metric").map_err(err)?;
        if let Some(target) = target {
            out.push(ManagedRoute {
                target: target.ip(),
                prefix_len: prefix_of(target, "RT")?,
                via: via.map(|v| v.ip()),
                flags,
                metric,
            });
        }
    }
    Ok(out)
}

fn parse_addresses(bytes: &[u8]) -> Result<Vec<AssignedAddress>, ConfigError> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    while !r.is_empty() && out.len() < 32 {
        let addr = read_inet(&mut r).map_err(|e| ConfigError::Field { key: "I", detail: e.to_string() })?;
        if let Some(addr) = addr {
            out.push(AssignedAddress { ip: addr.ip(), prefix_len: prefix_of(addr, "I")? });
        }
    }
    Ok(out)
}

fn parse_dns(bytes: &[u8]) -> (String, Vec<IpAddr>) {
    if bytes.len() < 128 {
        return (String::new(), Vec::new());
    }
    let name = &bytes[..128];
    let end = name.iter().position(|&b| b == 0).unwrap_or(128);
    let domain = String::from_utf8_lossy(&name[..end]).into_owned();
    let mut r = Reader::new(&bytes[128..]);
    let mut servers = Vec::new();
    for _ in 0..4 {
        match read_inet(&mut r) {
            Ok(Some(a)) => servers.push(a.ip()),
            Ok(None) => {}
            Err(_) => break,
        }
    }
    (domain, servers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ztplane_protocol::wire::address_from_u64;

    fn dict(pairs: &[(&str, &[u8])]) -> Vec<u8> {
        let mut d = Dictionary::new();
        for (k, v) in pairs {
            d.set(k, v.to_vec());
        }
        d.encode()
    }

    #[test]
    fn parses_the_fields_a_member_needs() {
        let me = address_from_u64(0xcfe2482597);
        let nwid = NetworkId(0x2c80d4374849700f);
        let mut ip = vec![0x04, 198, 19, 0, 241, 0, 24];
        let rt = [vec![0x04, 198, 19, 0, 0, 0, 24, 0x00], vec![0, 0, 0, 0]].concat();
        let bytes = dict(&[
            ("v", b"7"),
            ("nwid", b"2c80d4374849700f"),
            ("ts", b"18c4"),
            ("r", b"3"),
            ("id", b"cfe2482597"),
            ("f", b"2"),
            ("ml", b"20"),
            ("n", b"bench"),
            ("mtu", b"af0"),
            ("RT", &rt),
            ("I", &ip),
            ("R", &[0x01, 0x00]),
        ]);
        let c = NetworkConfig::parse(&bytes, nwid, me).unwrap();
        assert_eq!(c.mtu, 2800);
        assert_eq!(c.multicast_limit, 32);
        assert_eq!(c.name, "bench");
        assert!(c.broadcast_enabled());
        assert_eq!(c.addresses[0].to_string(), "198.19.0.241/24");
        assert_eq!(c.routes[0].prefix_len, 24);
        assert_eq!(c.routes[0].via, None);
        assert_eq!(c.rules.len(), 1);
        ip[6] = 99;
        let bad = dict(&[("v", b"7"), ("nwid", b"2c80d4374849700f"), ("id", b"cfe2482597"), ("I", &ip)]);
        assert!(matches!(NetworkConfig::parse(&bad, nwid, me), Err(ConfigError::Field { key: "I", .. })));
    }

    #[test]
    fn refuses_configs_not_for_us() {
        let nwid = NetworkId(0x2c80d4374849700f);
        let bytes = dict(&[("v", b"7"), ("nwid", b"2c80d4374849700f"), ("id", b"cfe2482597")]);
        assert!(matches!(
            NetworkConfig::parse(&bytes, nwid, address_from_u64(0x1111111111)),
            Err(ConfigError::NotForUs { .. })
        ));
        assert!(matches!(
            NetworkConfig::parse(&bytes, NetworkId(1), address_from_u64(0xcfe2482597)),
            Err(ConfigError::WrongNetwork { .. })
        ));
        let old = dict(&[("v", b"5"), ("nwid", b"2c80d4374849700f"), ("id", b"cfe2482597")]);
        assert_eq!(
            NetworkConfig::parse(&old, nwid, address_from_u64(0xcfe2482597)).unwrap_err(),
            ConfigError::TooOld(5)
        );
        assert_eq!(
            NetworkConfig::parse(b"v=7\n", nwid, address_from_u64(1)).unwrap_err(),
            ConfigError::Missing("nwid")
        );
    }
}
