//! Per-peer bonds (bonding spec §1.1): one [`Bond`] per remote peer, created from the policy the
//! configuration gives that peer (`peerSpecificBonds`, else `defaultBondingPolicy`). Roots and moons never
//! bond (their policy is forced to none, as in zerotier-one).

use std::collections::BTreeMap;

use crate::bond::Bond;
use crate::config::{BondingConfig, Policy};

/// The bonds of one node, by 40-bit peer address.
pub struct PeerBonds {
    config: BondingConfig,
    bonds: BTreeMap<u64, Bond>,
    peer_acks: bool,
}

impl PeerBonds {
    pub fn new(config: BondingConfig) -> Self {
        PeerBonds { config, bonds: BTreeMap::new(), peer_acks: false }
    }

    /// New bonds exchange ztplane path acks (set when peers are known to be ztplane nodes).
    pub fn set_peer_acks(&mut self, enabled: bool) {
        self.peer_acks = enabled;
    }

    /// The bond with `peer`, created on first use; `None` if this peer is not bonded (no bonding policy,
    /// or the peer is a root/moon).
    pub fn bond_for(&mut self, peer: u64, is_root: bool, now_us: u64) -> Option<&mut Bond> {
        if is_root || !self.config.bonding_in_use() {
            return None;
        }
        if !self.bonds.contains_key(&peer) {
            let settings = self.config.policy_for_peer(peer);
            if settings.base == Policy::None {
                return None;
            }
            let mut bond = Bond::new(settings, now_us);
            bond.set_peer_acks(self.peer_acks);
            self.bonds.insert(peer, bond);
        }
        self.bonds.get_mut(&peer)
    }

    pub fn get(&self, peer: u64) -> Option<&Bond> {
        self.bonds.get(&peer)
    }

    /// Forget the bond with a peer that has no paths left (§1.1).
    pub fn remove(&mut self, peer: u64) -> Option<Bond> {
        self.bonds.remove(&peer)
    }

    pub fn peers(&self) -> impl Iterator<Item = (&u64, &Bond)> {
        self.bonds.iter()
    }

    /// The earliest timer over all bonds.
    pub fn poll_timeout(&self, now_us: u64) -> Option<u64> {
        self.bonds.values().map(|b| b.poll_timeout(now_us)).min()
    }

    pub fn handle_timeout(&mut self, now_us: u64) {
        for bond in self.bonds.values_mut() {
            if bond.poll_timeout(now_us) <= now_us {
                bond.handle_timeout(now_us);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_local_conf;

    #[test]
    fn peers_get_their_own_policy_and_roots_none() {
        let (config, _) = parse_local_conf(
            r#"{"settings": {"defaultBondingPolicy": "active-backup",
                "policies": {"fast-aware": {"basePolicy": "balance-aware", "failoverInterval": 1000}},
                "peerSpecificBonds": {"f6203a2db3": "fast-aware"}}}"#,
        )
        .unwrap();
        let mut bonds = PeerBonds::new(config);
        let special = bonds.bond_for(0xf6203a2db3, false, 0).unwrap();
        assert_eq!((special.settings().base, special.settings().failover_interval_ms), (Policy::BalanceAware, 1000));
        assert_eq!(bonds.bond_for(0x1122334455, false, 0).unwrap().settings().base, Policy::ActiveBackup);
        assert!(bonds.bond_for(0x778899aabb, true, 0).is_none());
        assert_eq!(bonds.peers().count(), 2);
        assert!(bonds.remove(0x1122334455).is_some());
        let (none, _) = parse_local_conf(r#"{"settings": {}}"#).unwrap();
        assert!(PeerBonds::new(none).bond_for(1, false, 0).is_none());
    }
}
