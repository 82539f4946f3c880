//! Multicast and broadcast (§5): our subscriptions and their announcement (MULTICAST_LIKE),
//! the member table fed by LIKEs and gather results, MULTICAST_GATHER both ways, and sending
//! and receiving MULTICAST_FRAME. ARP goes through the group (ff:ff:ff:ff:ff:ff, target IPv4).

use crate::node::{Outgoing, Received};
use crate::time::{Instant, since};
use crate::{Address, Mac, MulticastGroup, NetworkId};
use std::collections::BTreeSet;
use std::net::IpAddr;
use ztplane_protocol::credentials::CertificateOfMembership;
use ztplane_protocol::header::Verb;
use ztplane_protocol::verbs::multicast::{
    GatherResults, MFRAME_FLAG_GATHER_LIMIT, MFRAME_FLAG_SOURCE_MAC, MulticastFrame, MulticastGather, MulticastLike,
    OkMulticastFrame, OkMulticastGather, decode_likes, encode_likes,
};
use ztplane_protocol::verbs::{OkMessage, OkPayload};

/// Re-announce period (`ZT_MULTICAST_ANNOUNCE_PERIOD`), explicit gather delay.
pub const ANNOUNCE_MS: u64 = 60_000;
const EXPLICIT_GATHER_MS: u64 = 60_000;
/// LIKEs expire after this long (`ZT_MULTICAST_LIKE_EXPIRE`).
const LIKE_EXPIRE_MS: u64 = 600_000;
/// Queued multicasts wait for members at most this long (`ZT_MULTICAST_TRANSMIT_TIMEOUT`).
const TRANSMIT_TIMEOUT_MS: u64 = 5_000;
/// Bounds: queued multicasts per network, members per group, groups per network.
const MAX_OUTBOUND: usize = 32;
const MAX_MEMBERS_PER_GROUP: usize = 4_096;
const MAX_GROUPS: usize = 4_096;
/// LIKE records per packet (18 bytes each, well inside one datagram after compression).
const LIKES_PER_PACKET: usize = 72;

pub const BROADCAST: Mac = Mac::BROADCAST;

/// The ARP group of an IPv4 address, and the IPv6 solicited-node group (§5.1).
pub fn resolution_group(ip: IpAddr) -> MulticastGroup {
    match ip {
        IpAddr::V4(v4) => MulticastGroup { mac: BROADCAST, adi: u32::from(v4) },
        IpAddr::V6(v6) => {
            let o = v6.octets();
            MulticastGroup { mac: Mac::from_octets([0x33, 0x33, 0xff, o[13], o[14], o[15]]), adi: 0 }
        }
    }
}

impl crate::Node {
    /// Link-layer groups the host joined on the network's port (the 5 s scan of §5.1); new ones
    /// are announced at once.
    pub fn set_host_groups(&mut self, now: Instant, id: NetworkId, groups: impl IntoIterator<Item = Mac>) {
        let Some(network) = self.networks.get_mut(&id) else { return };
        network.host_groups = groups
            .into_iter()
            .filter(|m| m.is_multicast())
            .take(256)
            .map(|mac| MulticastGroup { mac, adi: 0 })
            .collect();
        self.announce_groups(now, id);
    }

    /// Everything we announce for `id` (§5.1): host groups, the resolution group of each of our
    /// addresses, and broadcast if enabled.
    pub(crate) fn our_groups(&self, id: NetworkId) -> BTreeSet<MulticastGroup> {
        let mut out = BTreeSet::new();
        let Some(network) = self.networks.get(&id) else { return out };
        out.extend(network.host_groups.iter().copied());
        if let Some(config) = &network.config {
            for a in &config.addresses {
                out.insert(resolution_group(a.ip));
            }
            if config.broadcast_enabled() {
                out.insert(MulticastGroup { mac: BROADCAST, adi: 0 });
            }
        }
        out
    }

    /// The announce set (§5.2): the controller and every upstream, plus anchors and replicators.
    fn announce_targets(&self, id: NetworkId) -> Vec<Address> {
        let mut out: Vec<Address> = self.upstreams.keys().copied().collect();
        out.push(id.controller());
        if let Some(config) = self.networks.get(&id).and_then(|n| n.config.as_ref()) {
            out.extend(config.always_contact());
        }
        out.retain(|a| *a != self.me);
        out.sort();
        out.dedup();
        out
    }

    /// New subscriptions go out at once; every 60 s all of them (§5.2).
    pub(crate) fn announce_groups(&mut self, now: Instant, id: NetworkId) {
        let groups = self.our_groups(id);
        let Some(network) = self.networks.get_mut(&id) else { return };
        if network.config.is_none() {
            return;
        }
        let round =
            since(now, network.last_announce_round) >= ANNOUNCE_MS || network.last_announce_round == Instant::ZERO;
        let fresh: Vec<MulticastGroup> = groups.difference(&network.announced).copied().collect();
        network.announced = groups.clone();
        if round {
            network.last_announce_round = now;
        }
        let members: Vec<Address> = network.memberships.keys().copied().collect();
        let to_send: Vec<MulticastGroup> = if round { groups.iter().copied().collect() } else { fresh.clone() };
        if !to_send.is_empty() {
            for target in self.announce_targets(id) {
                self.send_likes(now, id, target, &to_send);
            }
        }
        if !fresh.is_empty() {
            let agreeing: Vec<Address> = members.iter().copied().filter(|m| self.passes_gate(id, *m)).collect();
            for member in agreeing {
                self.send_likes(now, id, member, &fresh);
            }
        }
        // Members whose own 60 s timer ran out get everything.
        for member in members {
            let due = self
                .networks
                .get(&id)
                .and_then(|n| n.memberships.get(&member))
                .is_some_and(|m| m.last_announced.is_some_and(|t| since(now, t) >= ANNOUNCE_MS));
            if due && self.passes_gate(id, member) {
                if let Some(m) = self.networks.get_mut(&id).and_then(|n| n.memberships.get_mut(&member)) {
                    m.last_announced = Some(now);
                }
                self.announce_groups_to(now, id, member);
            }
        }
    }

    pub(crate) fn announce_groups_to(&mut self, now: Instant, id: NetworkId, peer: Address) {
        let groups: Vec<MulticastGroup> = self.our_groups(id).into_iter().collect();
        if !groups.is_empty() {
            self.send_likes(now, id, peer, &groups);
        }
    }

    fn send_likes(&mut self, now: Instant, id: NetworkId, to: Address, groups: &[MulticastGroup]) {
        for chunk in groups.chunks(LIKES_PER_PACKET) {
            let likes: Vec<MulticastLike> = chunk.iter().map(|g| MulticastLike { network_id: id, group: *g }).collect();
            let mut payload = Vec::new();
            encode_likes(&likes, &mut payload);
            self.send(now, to, Outgoing::new(Verb::MulticastLike, payload).compressed());
        }
    }

    /// MULTICAST_LIKE (§5.2): records from gate-passing senders (or any, if we are a root).
    pub(crate) fn on_multicast_like(&mut self, now: Instant, rx: &Received<'_>) {
        let Ok(likes) = decode_likes(rx.payload) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        let am_upstream = self.am_upstream();
        for like in likes {
            if !(am_upstream || self.passes_gate(like.network_id, rx.source)) {
                continue;
            }
            self.add_member(now, like.network_id, like.group, rx.source);
        }
    }

    pub(crate) fn am_upstream(&self) -> bool {
        self.planet
            .roots
            .iter()
            .chain(self.moons.iter().flat_map(|m| m.roots.iter()))
            .any(|r| r.identity.address() == self.me)
    }

    /// Adds or refreshes `member` of `group`; returns whether it is new. The table is the
    /// node's, not a joined network's: a root keeps members of networks it is not in (§5.3).
    fn add_member(&mut self, now: Instant, id: NetworkId, group: MulticastGroup, member: Address) -> bool {
        if member == self.me {
            return false;
        }
        if !self.multicast_members.contains_key(&(id, group)) && self.multicast_members.len() >= MAX_GROUPS {
            return false;
        }
        let list = self.multicast_members.entry((id, group)).or_default();
        if let Some(entry) = list.iter_mut().find(|(a, _)| *a == member) {
            entry.1 = now;
            return false;
        }
        if list.len() >= MAX_MEMBERS_PER_GROUP {
            return false;
        }
        list.push((member, now));
        true
    }

    pub(crate) fn forget_member(&mut self, id: NetworkId, group: MulticastGroup, member: Address, _now: Instant) {
        if let Some(list) = self.multicast_members.get_mut(&(id, group)) {
            list.retain(|(a, _)| *a != member);
        }
    }

    /// Known members of a group (never ourselves).
    fn members_of(&self, id: NetworkId, group: MulticastGroup) -> Vec<Address> {
        self.multicast_members.get(&(id, group)).map(|l| l.iter().map(|(a, _)| *a).collect()).unwrap_or_default()
    }

    /// Drops LIKEs older than 10 minutes and queued multicasts past their timeout.
    pub(crate) fn expire_multicast(&mut self, now: Instant) {
        for list in self.multicast_members.values_mut() {
            list.retain(|(_, t)| since(now, *t) < LIKE_EXPIRE_MS);
        }
        self.multicast_members.retain(|_, l| !l.is_empty());
        for network in self.networks.values_mut() {
            network.outbound.retain(|o| since(now, o.since) < TRANSMIT_TIMEOUT_MS);
            network.last_gather.retain(|_, t| since(now, *t) < EXPLICIT_GATHER_MS);
        }
    }

    /// The 500 ms multicast duty: queued multicasts time out after 5 s.
    pub(crate) fn multicast_tick(&mut self, now: Instant) {
        for network in self.networks.values_mut() {
            network.outbound.retain(|o| since(now, o.since) < TRANSMIT_TIMEOUT_MS && o.sent_to.len() < o.limit);
        }
    }

    /// MULTICAST_GATHER received (§5.3): answer with members we know, ourselves first if
    /// subscribed, never the requester; nothing if the list is empty.
    pub(crate) fn on_gather(&mut self, now: Instant, rx: &Received<'_>) {
        let Ok(gather) = MulticastGather::decode(rx.payload) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        if let Some(com) = &gather.com {
            self.accept_inline_com(now, com);
        }
        let id = gather.network_id;
        if gather.gather_limit == 0 || !(self.am_upstream() || self.passes_gate(id, rx.source)) {
            return;
        }
        self.mark_trusted(now, id, rx);
        let results = self.gather_results(id, gather.group, gather.gather_limit as usize, rx.source);
        if results.members.is_empty() {
            return;
        }
        let ok = OkMessage {
            in_re_verb: Verb::MulticastGather,
            in_re_packet_id: rx.packet_id,
            payload: OkPayload::MulticastGather(OkMulticastGather { network_id: id, group: gather.group, results }),
        };
        let mut payload = Vec::new();
        ok.encode(&mut payload);
        self.reply(now, rx, Outgoing::new(Verb::Ok, payload));
    }

    fn gather_results(
        &mut self,
        id: NetworkId,
        group: MulticastGroup,
        limit: usize,
        requester: Address,
    ) -> GatherResults {
        let subscribed = self.our_groups(id).contains(&group);
        let mut known: Vec<Address> = self.members_of(id, group);
        known.retain(|a| *a != requester);
        self.shuffle(&mut known);
        let total = known.len() + usize::from(subscribed);
        let mut members = Vec::new();
        if subscribed {
            members.push(self.me);
        }
        members.extend(known.into_iter().take(limit.min(200)));
        members.truncate(limit.clamp(1, 200));
        GatherResults { total_known: total as u32, members }
    }

    fn shuffle(&mut self, list: &mut [Address]) {
        for i in (1..list.len()).rev() {
            let j = (self.random_u32() as usize) % (i + 1);
            list.swap(i, j);
        }
    }

    /// Members named by OK(MULTICAST_GATHER) / OK(MULTICAST_FRAME): each new one gets every
    /// queued multicast for the group at once (§5.3).
    pub(crate) fn on_gather_results(
        &mut self,
        now: Instant,
        id: NetworkId,
        group: MulticastGroup,
        members: &[Address],
    ) {
        if !self.networks.contains_key(&id) {
            return;
        }
        let mut fresh = Vec::new();
        for &member in members.iter().take(256) {
            if self.add_member(now, id, group, member) {
                fresh.push(member);
            }
        }
        for member in fresh {
            let pending: Vec<usize> = self
                .networks
                .get(&id)
                .map(|n| {
                    (0..n.outbound.len())
                        .filter(|&i| {
                            let o = &n.outbound[i];
                            o.group == group && !o.sent_to.contains(&member) && o.sent_to.len() < o.limit
                        })
                        .collect()
                })
                .unwrap_or_default();
            for i in pending {
                let Some(o) = self.networks.get_mut(&id).map(|n| {
                    n.outbound[i].sent_to.push(member);
                    n.outbound[i].clone()
                }) else {
                    continue;
                };
                self.send_multicast_copy(now, id, member, &o);
            }
        }
    }

    /// Sends a multicast from our port (§5.4).
    pub(crate) fn send_multicast(
        &mut self,
        now: Instant,
        id: NetworkId,
        group: MulticastGroup,
        source_mac: Option<Mac>,
        ethertype: u16,
        payload: &[u8],
    ) {
        let Some(config) = self.networks.get(&id).and_then(|n| n.config.clone()) else { return };
        let limit = config.multicast_limit as usize;
        if limit == 0 {
            return;
        }
        self.counters.multicast_out += 1;
        let bridges: Vec<Address> = config.active_bridges().filter(|a| *a != self.me).collect();
        let mut known: Vec<Address> = self.members_of(id, group);
        known.retain(|a| !bridges.contains(a));
        self.shuffle(&mut known);
        let mut recipients = bridges;
        recipients.extend(known.iter().copied());
        recipients.truncate(limit);
        let gather_limit = if known.len() >= limit {
            1
        } else {
            let g = (limit - known.len() + 1) as u32;
            let due = self
                .networks
                .get(&id)
                .and_then(|n| n.last_gather.get(&group))
                .is_none_or(|t| since(now, *t) >= EXPLICIT_GATHER_MS);
            if known.is_empty() || due {
                self.send_gather(now, id, group, g);
            }
            g
        };
        let mut outbound = crate::network::OutboundMulticast {
            group,
            source_mac,
            ethertype,
            payload: payload.to_vec(),
            limit,
            gather_limit,
            sent_to: Vec::new(),
            since: now,
        };
        for &to in &recipients {
            outbound.sent_to.push(to);
            self.send_multicast_copy(now, id, to, &outbound);
        }
        if known.len() < limit
            && let Some(network) = self.networks.get_mut(&id)
        {
            if network.outbound.len() >= MAX_OUTBOUND {
                network.outbound.remove(0);
            }
            network.outbound.push(outbound);
        }
    }

    /// MULTICAST_GATHER (COM attached) to the best upstream and the controller (§5.4).
    fn send_gather(&mut self, now: Instant, id: NetworkId, group: MulticastGroup, limit: u32) {
        let Some(network) = self.networks.get_mut(&id) else { return };
        network.last_gather.insert(group, now);
        let com = network.config.as_ref().and_then(|c| c.com.clone());
        let gather = MulticastGather { network_id: id, flags: 0, group, gather_limit: limit, com };
        let mut payload = Vec::new();
        gather.encode(&mut payload);
        let mut targets: Vec<Address> = self.best_upstream(now).into_iter().collect();
        targets.push(id.controller());
        if let Some(config) = self.networks.get(&id).and_then(|n| n.config.as_ref()) {
            targets.extend(config.always_contact().take(16));
        }
        let me = self.me;
        for to in targets.into_iter().filter(|a| *a != me) {
            // Never compressed (VL1 §6.7 correction).
            self.send(now, to, Outgoing::new(Verb::MulticastGather, payload.clone()).expecting_reply());
        }
    }

    /// One copy of a multicast to `to`: filtered for that recipient, credentials pushed first.
    fn send_multicast_copy(&mut self, now: Instant, id: NetworkId, to: Address, o: &crate::network::OutboundMulticast) {
        let gather_limit = Some(o.gather_limit);
        let Some(config) = self.networks.get(&id).and_then(|n| n.config.clone()) else { return };
        let our_mac = id.mac_for(&self.me);
        let source = o.source_mac.unwrap_or(our_mac);
        if !self.filter_outbound(now, id, to, source, o.group.mac, o.ethertype, &o.payload) {
            return;
        }
        self.push_credentials_if_needed(now, id, to);
        let frame = MulticastFrame {
            network_id: id,
            flags: (if gather_limit.is_some() { MFRAME_FLAG_GATHER_LIMIT } else { 0 })
                | (if o.source_mac.is_some() { MFRAME_FLAG_SOURCE_MAC } else { 0 }),
            com: None,
            gather_limit,
            src_mac: o.source_mac,
            group: o.group,
            ethertype: o.ethertype,
            payload: &o.payload,
        };
        let mut payload = Vec::new();
        frame.encode(&mut payload);
        let mut msg = Outgoing::new(Verb::MulticastFrame, payload).expecting_reply();
        msg.compress = config.compression_allowed();
        self.send(now, to, msg);
    }

    /// MULTICAST_FRAME received (§5.5).
    pub(crate) fn on_multicast_frame(&mut self, now: Instant, rx: &Received<'_>) {
        let Ok(frame) = MulticastFrame::decode(rx.payload) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        let id = frame.network_id;
        let Some(network) = self.networks.get(&id) else { return };
        let Some(config) = network.config.clone() else { return };
        if let Some(com) = &frame.com {
            self.accept_inline_com(now, com);
        }
        if !self.admit_frame(now, id, rx) {
            return;
        }
        if config.multicast_limit == 0 || frame.payload.is_empty() || frame.payload.len() > 10_000 {
            return;
        }
        let sender_mac = id.mac_for(&rx.source);
        let source = frame.src_mac.unwrap_or(sender_mac);
        let our_mac = id.mac_for(&self.me);
        if !frame.group.mac.is_multicast() || source.0 == 0 || source.is_multicast() || source == our_mac {
            return;
        }
        if source != sender_mac {
            if !config.is_active_bridge(rx.source) {
                return;
            }
            if let Some(network) = self.networks.get_mut(&id)
                && network.learn_bridge_route(source, rx.source)
            {
                self.data_path_dirty = true;
            }
        }
        let verdict = self.filter_inbound(now, id, rx.source, source, frame.group.mac, frame.ethertype, frame.payload);
        if verdict > 0 {
            self.counters.multicast_in += 1;
            let eth = ethernet_frame(frame.group.mac, source, frame.ethertype, frame.payload);
            self.deliver(id, eth);
        }
        if let Some(limit) = frame.gather_limit
            && limit > 0
        {
            let results = self.gather_results(id, frame.group, limit as usize, rx.source);
            if !results.members.is_empty() {
                let ok = OkMessage {
                    in_re_verb: Verb::MulticastFrame,
                    in_re_packet_id: rx.packet_id,
                    payload: OkPayload::MulticastFrame(OkMulticastFrame {
                        network_id: id,
                        group: frame.group,
                        flags: 0x02,
                        results: Some(results),
                    }),
                };
                let mut payload = Vec::new();
                ok.encode(&mut payload);
                self.reply(now, rx, Outgoing::new(Verb::Ok, payload));
            }
        }
    }

    /// A COM carried inline (GATHER, EXT_FRAME, MULTICAST_FRAME flag 0x01) is added as if pushed.
    pub(crate) fn accept_inline_com(&mut self, now: Instant, com: &CertificateOfMembership) {
        match self.accept_com(now, com) {
            crate::network::ComOutcome::NeedSigner(controller) => self.request_whois(now, controller),
            crate::network::ComOutcome::Accepted(_) => self.data_path_dirty = true,
            crate::network::ComOutcome::Rejected => {}
        }
    }
}

/// An Ethernet frame: destination, source, ethertype, payload.
pub fn ethernet_frame(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + payload.len());
    out.extend_from_slice(&dst.octets());
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_groups_match_the_capture() {
        // capture [64]: ADI 3323134193 = 198.19.0.241
        let g = resolution_group("198.19.0.241".parse().unwrap());
        assert_eq!((g.mac, g.adi), (BROADCAST, 3_323_134_193));
        let g6 = resolution_group("fd00::12:3456".parse().unwrap());
        assert_eq!(g6.mac.to_string(), "33:33:ff:12:34:56");
        let _ = decode_likes(&[]);
    }
}
