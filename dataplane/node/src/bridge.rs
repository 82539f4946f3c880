//! Gateway mode: a LAN segment bridged into a network (zerotier-vl2.md §4.4).
//!
//! The node is then an active bridge with two ports on the network: its own port (the tap, the
//! gateway's own address) and the LAN. Frames from the LAN leave as EXT_FRAME with their own
//! source MAC (§4.1, "bridged"); frames from the network for a MAC that is not ours go to the LAN,
//! multicast to both ports. The LAN side learns source MACs (bounded, aged as a Linux bridge
//! does), so that a frame between two LAN hosts, which the LAN delivered already, is not sent
//! back into it or into the network; the network side learns MACs behind other bridges from
//! their EXT_FRAMEs (`Network::bridge_routes`).
//!
//! The controller must mark this member `activeBridge`, or every peer drops what we bridge: until
//! it does, LAN frames are dropped here with one log line saying so.

use crate::time::Instant;
use crate::{Event, Mac, NetworkId, Node, NodeError};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// LAN MACs a bridged network remembers at most: a flood of random source MACs fills it and is
/// then forwarded without being learned (nothing is lost, the table stays bounded).
pub const LAN_MACS_MAX: usize = 8192;
/// A LAN MAC not heard from for this long is forgotten (the Linux bridge's default ageing).
pub const LAN_MAC_AGEING_MS: u64 = 300_000;
/// How often aged LAN MACs are swept.
const SWEEP_INTERVAL_MS: u64 = 10_000;

/// The LAN side of a bridged network.
#[derive(Debug, Default)]
pub struct LanSide {
    /// Source MACs seen on the LAN, and when last.
    pub(crate) macs: HashMap<Mac, Instant>,
    /// Frames whose source MAC found the table full (forwarded, not learned).
    pub unlearned: u64,
    /// Frames from the LAN dropped because the controller has not made us an active bridge.
    pub dropped_not_bridge: u64,
    /// LAN frames to a MAC on the LAN itself (the LAN delivered them; not forwarded).
    pub hairpin: u64,
    /// LAN frames larger than the network MTU: dropped, counted (never silently).
    pub too_large: u64,
    /// Frames from the network larger than the LAN's MTU: dropped, counted.
    pub too_large_for_lan: u64,
    /// New LAN source MACs that have this network's ZeroTier MAC prefix (VL1 §10): frames to such
    /// a host go to the ZeroTier address its MAC encodes, as zerotier-one sends them, not to this
    /// gateway. Counted, and logged once.
    pub zerotier_macs: u64,
    /// The LAN interface's MTU.
    pub mtu: u32,
    pub(crate) last_sweep: Instant,
    warned_not_bridge: bool,
    /// The learned MACs as the workers' snapshot holds them, until the table changes: a snapshot
    /// rebuilt for another reason shares it instead of copying up to [`LAN_MACS_MAX`] entries.
    view: Option<Arc<HashSet<Mac>>>,
}

impl LanSide {
    /// MACs learned on the LAN.
    pub fn macs(&self) -> usize {
        self.macs.len()
    }

    pub fn knows(&self, mac: Mac) -> bool {
        self.macs.contains_key(&mac)
    }

    /// The learned MACs for the workers' snapshot (built again only after a change).
    pub(crate) fn view(&mut self) -> Arc<HashSet<Mac>> {
        self.view.get_or_insert_with(|| Arc::new(self.macs.keys().copied().collect())).clone()
    }

    /// Notes `mac` as heard now; true if the table changed (the workers' copy is stale).
    fn learn(&mut self, mac: Mac, now: Instant) -> bool {
        if let Some(seen) = self.macs.get_mut(&mac) {
            *seen = now;
            false
        } else if self.macs.len() < LAN_MACS_MAX {
            self.macs.insert(mac, now);
            self.view = None;
            true
        } else {
            self.unlearned += 1;
            false
        }
    }

    /// Forgets MACs not heard from for the ageing time; true if any went.
    fn sweep(&mut self, now: Instant) -> bool {
        if crate::time::since(now, self.last_sweep) < SWEEP_INTERVAL_MS {
            return false;
        }
        self.last_sweep = now;
        let before = self.macs.len();
        self.macs.retain(|_, seen| crate::time::since(now, *seen) < LAN_MAC_AGEING_MS);
        let changed = self.macs.len() != before;
        if changed {
            self.view = None;
        }
        changed
    }
}

impl Node {
    /// Bridges a LAN whose interface has MTU `lan_mtu` into joined network `id` (`ztplane node
    /// --bridge NWID=LANIF`).
    pub fn bridge_lan(&mut self, id: NetworkId, lan_mtu: u32) -> Result<(), NodeError> {
        let network = self.networks.get_mut(&id).ok_or(NodeError::NotJoined(id))?;
        network.lan.get_or_insert_with(LanSide::default).mtu = lan_mtu;
        self.data_path_dirty = true;
        Ok(())
    }

    /// The LAN side of network `id`, if it is bridged.
    pub fn lan(&self, id: NetworkId) -> Option<&LanSide> {
        self.networks.get(&id)?.lan.as_ref()
    }

    /// An Ethernet frame that arrived on the LAN port of bridged network `id`.
    pub fn handle_lan_frame(&mut self, now: Instant, id: NetworkId, frame: &[u8]) {
        self.last_seen_now = now;
        self.lan_frame(now, id, frame);
        self.publish();
    }

    fn lan_frame(&mut self, now: Instant, id: NetworkId, frame: &[u8]) {
        if frame.len() < 14 {
            return;
        }
        let (dst, src) = crate::datapath::frame_macs(frame);
        let me = self.me;
        let Some(network) = self.networks.get_mut(&id) else { return };
        let our_mac = network.mac;
        let mtu = network.mtu() as usize;
        let active = network.config.as_ref().map(|c| c.is_active_bridge(me));
        let Some(lan) = network.lan.as_mut() else { return };
        // Our own MAC as a LAN source is a loop (or a spoof): never learned, never forwarded.
        if src == our_mac || src.is_multicast() || src.0 == 0 {
            return;
        }
        let learned = lan.learn(src, now);
        if learned && let Some(member) = id.address_for(src) {
            lan.zerotier_macs += 1;
            if lan.zerotier_macs == 1 {
                log::warn!(
                    "{id}: LAN host {src} has this network's ZeroTier MAC prefix: members send frames for it to \
                     ZeroTier address {member}, not to this gateway; give it another MAC"
                );
            }
        }
        let changed = lan.sweep(now) | learned;
        self.data_path_dirty |= changed;
        let Some(lan) = self.networks.get_mut(&id).and_then(|n| n.lan.as_mut()) else { return };
        if !dst.is_multicast() && lan.knows(dst) {
            lan.hairpin += 1;
            return;
        }
        if dst == our_mac || dst.is_multicast() {
            // The gateway's own port is on the segment too.
            self.events.push_back(Event::Deliver { network: id, frame: frame.to_vec() });
            if dst == our_mac {
                return;
            }
        }
        match active {
            None => return,
            Some(false) => {
                lan.dropped_not_bridge += 1;
                if !std::mem::replace(&mut lan.warned_not_bridge, true) {
                    log::warn!(
                        "{id}: frames from the LAN are dropped: the controller has not marked this member \
                         activeBridge (set it on the member, e.g. `\"activeBridge\": true`)"
                    );
                }
                return;
            }
            Some(true) => lan.warned_not_bridge = false,
        }
        if frame.len() - 14 > mtu {
            lan.too_large += 1;
            log::debug!("{id}: LAN frame of {} bytes dropped: above the network MTU {mtu}", frame.len() - 14);
            return;
        }
        self.tap_frame(now, id, frame);
    }

    /// Where a frame from the network for bridged network `id` goes: our port for our MAC, the LAN
    /// for any other, both for multicast.
    pub(crate) fn deliver(&mut self, id: NetworkId, frame: Vec<u8>) {
        let Some(network) = self.networks.get(&id) else { return };
        if network.lan.is_none() || frame.len() < 14 {
            self.events.push_back(Event::Deliver { network: id, frame });
            return;
        }
        let (dst, _) = crate::datapath::frame_macs(&frame);
        let too_large = network.lan.as_ref().is_some_and(|lan| frame.len() - 14 > lan.mtu as usize);
        if dst == network.mac {
            self.events.push_back(Event::Deliver { network: id, frame });
        } else if too_large {
            // The LAN would drop it silently: counted here (the network MTU is larger than the LAN's).
            if let Some(lan) = self.networks.get_mut(&id).and_then(|n| n.lan.as_mut()) {
                lan.too_large_for_lan += 1;
            }
            if dst.is_multicast() {
                self.events.push_back(Event::Deliver { network: id, frame });
            }
        } else if dst.is_multicast() {
            self.events.push_back(Event::DeliverLan { network: id, frame: frame.clone() });
            self.events.push_back(Event::Deliver { network: id, frame });
        } else {
            self.events.push_back(Event::DeliverLan { network: id, frame });
        }
    }

    /// A frame from our own port of bridged network `id` for a MAC on the LAN (or for every port):
    /// true if it went to the LAN only.
    pub(crate) fn port_to_lan(&mut self, id: NetworkId, frame: &[u8]) -> bool {
        let Some(lan) = self.networks.get(&id).and_then(|n| n.lan.as_ref()) else { return false };
        let (dst, _) = crate::datapath::frame_macs(frame);
        let known = lan.knows(dst);
        let to_zerotier =
            id.address_for(dst).is_some() || self.networks.get(&id).is_some_and(|n| n.bridge_routes.contains_key(&dst));
        if dst.is_multicast() || known || !to_zerotier {
            self.events.push_back(Event::DeliverLan { network: id, frame: frame.to_vec() });
        }
        known
    }
}
