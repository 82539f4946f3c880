//! Peers and their physical paths (`zerotier-vl2.md` §1.5, VL1 §9).
//!
//! A peer is an identity we hold a key with; a path is one (local socket, remote address)
//! pair we have heard the peer on. Paths are learned only from hops-0 packets, and an unknown
//! address becomes a path only through an OK (the node HELLOs it first), so a spoofed source
//! address cannot redirect a peer's traffic.

use crate::time::{Instant, since};
use crate::{Address, LocalSocket};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use ztplane_crypto::{CipherSuite, Identity, PeerKey};

/// `ZT_MAX_PEER_NETWORK_PATHS`.
pub const MAX_PATHS: usize = 64;
/// A path heard within this long is alive (path choice).
pub const PATH_ALIVE_MS: u64 = 19_000;
/// A path not heard for this long is removed (`ZT_PEER_PATH_EXPIRATION`).
pub const PATH_EXPIRATION_MS: u64 = 243_000;

/// One physical path to a peer.
#[derive(Debug, Clone)]
pub struct Path {
    pub local: LocalSocket,
    pub remote: SocketAddr,
    pub last_send: Instant,
    pub last_receive: Instant,
    /// Smoothed latency in ms (`(old + new) / 2`), once measured.
    pub latency: Option<u32>,
    /// Last ECHO we answered on this path (rate limit, VL1 §8.8).
    pub last_echo_answered: Option<Instant>,
    /// Last packet from a network member on this path (relaying and PUSH_DIRECT_PATHS, §3.1).
    pub trust_established: Option<Instant>,
}

impl Path {
    pub fn new(local: LocalSocket, remote: SocketAddr, now: Instant) -> Self {
        Path {
            local,
            remote,
            last_send: Instant::ZERO,
            last_receive: now,
            latency: None,
            last_echo_answered: None,
            trust_established: None,
        }
    }

    pub fn alive(&self, now: Instant) -> bool {
        since(now, self.last_receive) < PATH_ALIVE_MS
    }

    pub fn usable(&self, now: Instant) -> bool {
        since(now, self.last_receive) < PATH_EXPIRATION_MS
    }

    fn note_latency(&mut self, ms: u32) {
        self.latency = Some(match self.latency {
            Some(old) => old / 2 + ms / 2,
            None => ms,
        });
    }

    /// Lower is better (VL1 §9): latency while alive, else latency + 65535 + age; divided by
    /// nothing (all our paths have the same priority), weighed by the IP scope.
    fn cost(&self, now: Instant) -> u64 {
        let latency = u64::from(self.latency.unwrap_or(0xffff));
        let base = if self.alive(now) { latency } else { latency + 65_535 + since(now, self.last_receive) };
        base * (MAX_SCOPE - scope(self.remote.ip()) + 1)
    }
}

/// A peer: its identity, the key we share with it and the paths we have to it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub identity: Identity,
    pub key: Arc<PeerKey>,
    /// Announced protocol version; 0 until its HELLO or OK(HELLO).
    pub protocol_version: u8,
    pub version: (u8, u8, u16),
    pub paths: Vec<Path>,
    pub last_receive: Instant,
    /// Last "active" traffic (frames, configs) in either direction (§1.3).
    pub last_activity: Instant,
    pub last_full_hello: Instant,
    /// Address we HELLOed last to learn a path, and when (≤ 1/s per path).
    pub hello_attempts: Vec<(SocketAddr, Instant)>,
    pub last_whois_answered: Option<Instant>,
    pub last_direct_path_push: Option<Instant>,
    /// PUSH_DIRECT_PATHS receive rate limit: count of pushes each < 30 s after the last.
    pub direct_push_burst: (u32, Instant),
    pub last_credentials_accepted: Option<Instant>,
    /// Peer latency as measured by OK(HELLO), for the `listpeers` view.
    pub latency: Option<u32>,
}

impl Peer {
    pub fn new(identity: Identity, key: PeerKey, now: Instant) -> Self {
        Peer {
            identity,
            key: Arc::new(key),
            protocol_version: 0,
            version: (0, 0, 0),
            paths: Vec::new(),
            last_receive: now,
            last_activity: Instant::ZERO,
            last_full_hello: Instant::ZERO,
            hello_attempts: Vec::new(),
            last_whois_answered: None,
            last_direct_path_push: None,
            direct_push_burst: (0, Instant::ZERO),
            last_credentials_accepted: None,
            latency: None,
        }
    }

    pub fn address(&self) -> Address {
        self.identity.address()
    }

    /// Suite for encrypted packets: AES-GMAC-SIV once the peer announced protocol ≥ 12 (VL1 §6.4).
    pub fn suite(&self) -> CipherSuite {
        if self.protocol_version >= 12 { CipherSuite::AesGmacSiv } else { CipherSuite::Salsa2012Poly1305 }
    }

    pub fn path_index(&self, local: LocalSocket, remote: SocketAddr) -> Option<usize> {
        self.paths.iter().position(|p| p.remote == remote && p.local == local)
    }

    pub fn path_mut(&mut self, local: LocalSocket, remote: SocketAddr) -> Option<&mut Path> {
        self.paths.iter_mut().find(|p| p.remote == remote && p.local == local)
    }

    /// Adds a learned path (slot choice of §1.5): a dead path with the same IP and socket is
    /// replaced, else the first free slot, else the oldest path.
    pub fn learn_path(&mut self, local: LocalSocket, remote: SocketAddr, now: Instant) {
        if let Some(p) = self.path_mut(local, remote) {
            p.last_receive = now;
            return;
        }
        let path = Path::new(local, remote, now);
        if let Some(slot) =
            self.paths.iter().position(|p| p.local == local && p.remote.ip() == remote.ip() && !p.alive(now))
        {
            self.paths[slot] = path;
        } else if self.paths.len() < MAX_PATHS {
            self.paths.push(path);
        } else if let Some(oldest) = (0..self.paths.len()).min_by_key(|&i| self.paths[i].last_receive) {
            self.paths[oldest] = path;
        }
    }

    /// The best usable direct path (VL1 §9, §1.4 step 1).
    pub fn best_path(&self, now: Instant) -> Option<&Path> {
        self.paths.iter().filter(|p| p.usable(now)).min_by_key(|p| p.cost(now))
    }

    /// The best path even if expired (§1.4 step 3).
    pub fn any_path(&self, now: Instant) -> Option<&Path> {
        self.paths.iter().min_by_key(|p| p.cost(now))
    }

    pub fn note_latency(&mut self, local: LocalSocket, remote: SocketAddr, ms: u32) {
        if let Some(p) = self.path_mut(local, remote) {
            p.note_latency(ms);
        }
        self.latency = Some(match self.latency {
            Some(old) => old / 2 + ms / 2,
            None => ms,
        });
    }

    /// Drops paths silent for [`PATH_EXPIRATION_MS`].
    pub fn expire_paths(&mut self, now: Instant) {
        self.paths.retain(|p| p.usable(now));
    }

    /// `peers.d` cache form (§1.5): `02 ‖ identity ‖ u16 proto ‖ u16 major ‖ u16 minor ‖
    /// u16 revision ‖ u16 n ‖ n × InetAddress`.
    pub fn to_cache(&self) -> Vec<u8> {
        use ztplane_protocol::wire::WriteExt;
        let mut out = vec![2u8];
        self.identity.write_bytes(&mut out, false);
        out.put_u16(u16::from(self.protocol_version));
        out.put_u16(u16::from(self.version.0));
        out.put_u16(u16::from(self.version.1));
        out.put_u16(self.version.2);
        let paths: Vec<&Path> = self.paths.iter().take(16).collect();
        out.put_u16(paths.len() as u16);
        for p in paths {
            ztplane_protocol::inet::write_inet(&mut out, Some(&p.remote));
        }
        out
    }
}

/// A parsed `peers.d` entry.
pub struct CachedPeer {
    pub identity: Identity,
    pub protocol_version: u8,
    pub version: (u8, u8, u16),
    pub addresses: Vec<SocketAddr>,
}

impl CachedPeer {
    pub fn parse(bytes: &[u8]) -> Option<CachedPeer> {
        use ztplane_protocol::wire::Reader;
        let mut r = Reader::new(bytes);
        if r.u8("peer cache version").ok()? != 2 {
            return None;
        }
        let (identity, used) = Identity::from_bytes(r.rest()).ok()?;
        r.take(used, "identity").ok()?;
        let protocol_version = r.u16("proto").ok()?.min(255) as u8;
        let major = r.u16("major").ok()?.min(255) as u8;
        let minor = r.u16("minor").ok()?.min(255) as u8;
        let revision = r.u16("revision").ok()?;
        let n = r.u16("paths").ok()? as usize;
        let mut addresses = Vec::new();
        for _ in 0..n.min(MAX_PATHS) {
            if let Some(a) = ztplane_protocol::inet::read_inet(&mut r).ok()? {
                addresses.push(a);
            }
        }
        Some(CachedPeer { identity, protocol_version, version: (major, minor, revision), addresses })
    }
}

/// IP address scopes (InetAddress.hpp), highest = most preferred.
const MAX_SCOPE: u64 = 7;

/// Scope of an address: 0 none, 1 multicast, 2 loopback, 3 pseudo-private, 4 global, 5 link-local,
/// 6 shared, 7 private — the ordering zerotier-one uses to weigh paths.
pub fn scope(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_unspecified() {
                0
            } else if v4.is_multicast() {
                1
            } else if v4.is_loopback() {
                2
            } else if v4.is_link_local() {
                5
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                6
            } else if v4.is_private() || (o[0] == 198 && (o[1] & 0xfe) == 18) || is_documentation_v4(o) {
                7
            } else {
                4
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if v6.is_unspecified() {
                0
            } else if v6.is_multicast() {
                1
            } else if v6.is_loopback() {
                2
            } else if (s[0] & 0xffc0) == 0xfe80 {
                5
            } else if (s[0] & 0xfe00) == 0xfc00 {
                7
            } else {
                4
            }
        }
    }
}

fn is_documentation_v4(o: [u8; 4]) -> bool {
    matches!((o[0], o[1], o[2]), (192, 0, 2) | (198, 51, 100) | (203, 0, 113))
}

/// Whether a physical address may carry ZeroTier traffic (§1.6): not loopback, link-local,
/// multicast or unspecified; not 2001:470::/32; port non-zero.
pub fn usable_physical_address(addr: &SocketAddr) -> bool {
    if addr.port() == 0 {
        return false;
    }
    let ip = addr.ip();
    if let IpAddr::V6(v6) = ip
        && v6.segments()[0] == 0x2001
        && v6.segments()[1] == 0x0470
    {
        return false;
    }
    matches!(scope(ip), 3 | 4 | 6 | 7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_address_rules() {
        let ok = |s: &str| usable_physical_address(&s.parse().unwrap());
        assert!(ok("198.18.0.2:9993"));
        assert!(ok("8.8.8.8:9993"));
        assert!(ok("[fd00::1]:9993"));
        assert!(!ok("127.0.0.1:9993"));
        assert!(!ok("169.254.1.1:9993"));
        assert!(!ok("[fe80::1]:9993"));
        assert!(!ok("224.0.0.1:9993"));
        assert!(!ok("198.18.0.2:0"));
        assert!(!ok("[2001:470::1]:9993"));
    }
}
