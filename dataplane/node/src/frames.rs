//! Ethernet frames (§4): from the port to the network (FRAME, EXT_FRAME, multicast, NDP
//! emulation §5.6) and from peers to the port, with the membership gate and the rules engine
//! (§6) on both ways.

use crate::multicast::{BROADCAST, ethernet_frame};
use crate::node::{Outgoing, Received};
use crate::time::Instant;
use crate::{Address, Event, Mac, MulticastGroup, NetworkId};
use std::net::Ipv6Addr;
use ztplane_protocol::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV6};
use ztplane_protocol::header::Verb;
use ztplane_protocol::rules::{self, FrameInfo};
use ztplane_protocol::verbs::frame::EXT_FRAME_FLAG_ACK;
use ztplane_protocol::verbs::{ErrorCode, ExtFrame, Frame, OkMessage, OkPayload};

/// Active bridges an unknown-destination frame is sprayed to at most (§4.1 step 5).
const MAX_BRIDGE_SPRAY: usize = 32;

impl crate::Node {
    /// An Ethernet frame read from the port of network `id` (§4.1).
    pub fn handle_tap_frame(&mut self, now: Instant, id: NetworkId, frame: &[u8]) {
        self.last_seen_now = now;
        if frame.len() >= 14 && self.port_to_lan(id, frame) {
            self.publish();
            return;
        }
        self.tap_frame(now, id, frame);
        self.publish();
    }

    pub(crate) fn tap_frame(&mut self, now: Instant, id: NetworkId, frame: &[u8]) {
        if frame.len() < 14 {
            return;
        }
        let (dst, src) = crate::datapath::frame_macs(frame);
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let payload = &frame[14..];
        let Some(network) = self.networks.get(&id) else { return };
        let Some(config) = network.config.clone() else { return };
        let our_mac = network.mac;
        let bridged = src != our_mac;
        if bridged && !config.is_active_bridge(self.me) {
            return;
        }
        if dst.is_multicast() {
            let group = if dst == BROADCAST {
                if ethertype == ETHERTYPE_ARP
                    && payload.len() >= 28
                    && payload[2..4] == [0x08, 0x00]
                    && payload[4] == 6
                    && payload[5] == 4
                    && payload[7] == 1
                {
                    MulticastGroup {
                        mac: BROADCAST,
                        adi: u32::from_be_bytes(payload[24..28].try_into().unwrap_or([0; 4])),
                    }
                } else if !config.broadcast_enabled() {
                    return;
                } else {
                    MulticastGroup { mac: dst, adi: 0 }
                }
            } else {
                if ethertype == ETHERTYPE_IPV6 && config.ndp_emulation() && self.emulate_ndp(id, src, payload) {
                    return;
                }
                MulticastGroup { mac: dst, adi: 0 }
            };
            if config.multicast_limit == 0
                || !self.filter_outbound(now, id, Address::from_bytes(&[0; 5]), src, dst, ethertype, payload)
            {
                return;
            }
            self.send_multicast(now, id, group, bridged.then_some(src), ethertype, payload);
            return;
        }
        if dst == our_mac {
            self.events.push_back(Event::Deliver { network: id, frame: frame.to_vec() });
            return;
        }
        if let Some(peer) = id.address_for(dst) {
            if peer == self.me || !self.filter_outbound(now, id, peer, src, dst, ethertype, payload) {
                return;
            }
            self.push_credentials_if_needed(now, id, peer);
            let mut body = Vec::with_capacity(payload.len() + 23);
            let verb = if bridged {
                ExtFrame { network_id: id, flags: 0, com: None, dst_mac: dst, src_mac: src, ethertype, payload }
                    .encode(&mut body);
                Verb::ExtFrame
            } else {
                Frame { network_id: id, ethertype, payload }.encode(&mut body);
                Verb::Frame
            };
            self.counters.frames_out += 1;
            // Unicast frames are never compressed (VL1 §6.7).
            self.send(now, peer, Outgoing::new(verb, body));
            return;
        }
        // Behind a bridge: the learned bridge, else every active bridge (§4.1 step 5).
        let zero = Address::from_bytes(&[0; 5]);
        if !self.filter_outbound(now, id, zero, src, dst, ethertype, payload) {
            return;
        }
        let learned = self.networks.get(&id).and_then(|n| n.bridge_routes.get(&dst).copied());
        let bridges: Vec<Address> = match learned.filter(|b| config.is_active_bridge(*b)) {
            Some(b) => {
                // A learned bridge gets our credentials as any unicast destination does (§3.3):
                // zerotier-one skips this for bridges, but the data path only sends to members
                // holding our current credentials, and a gateway's traffic is all of this kind.
                self.push_credentials_if_needed(now, id, b);
                vec![b]
            }
            None => config.active_bridges().filter(|b| *b != self.me).take(MAX_BRIDGE_SPRAY).collect(),
        };
        for bridge in bridges {
            if !self.filter_outbound(now, id, bridge, src, dst, ethertype, payload) {
                continue;
            }
            let mut body = Vec::with_capacity(payload.len() + 23);
            ExtFrame { network_id: id, flags: 0, com: None, dst_mac: dst, src_mac: src, ethertype, payload }
                .encode(&mut body);
            self.send(now, bridge, Outgoing::new(Verb::ExtFrame, body));
        }
    }

    /// IPv6 NDP emulation (§5.6): a neighbour solicitation for an address of our rfc4193 /88 or
    /// 6plane /40 prefix names the ZeroTier node in the address; answer it locally.
    fn emulate_ndp(&mut self, id: NetworkId, from: Mac, ip6: &[u8]) -> bool {
        if ip6.len() < 40 + 8 + 16 || ip6[6] != 58 || ip6[40] != 135 {
            return false;
        }
        let Some(config) = self.networks.get(&id).and_then(|n| n.config.clone()) else { return false };
        let target: [u8; 16] = ip6[48..64].try_into().unwrap_or([0; 16]);
        let nwid32 = ((id.0 ^ (id.0 >> 32)) & 0xffff_ffff) as u32;
        let mut embedded = None;
        let mut mine = [0u8; 16];
        for a in &config.addresses {
            let std::net::IpAddr::V6(v6) = a.ip else { continue };
            let my6 = v6.octets();
            if a.prefix_len == 88 && my6[0] == 0xfd && my6[9] == 0x99 && my6[10] == 0x93 && target[..11] == my6[..11] {
                embedded = Some(Address::from_bytes(&target[11..16].try_into().unwrap_or([0; 5])));
            } else if a.prefix_len == 40
                && my6[0] == 0xfc
                && my6[1..5] == nwid32.to_be_bytes()
                && target[..5] == my6[..5]
            {
                embedded = Some(Address::from_bytes(&target[5..10].try_into().unwrap_or([0; 5])));
            }
            if embedded.is_some() {
                mine = my6;
                break;
            }
        }
        let Some(peer) = embedded.filter(|a| *a != self.me) else { return false };
        let peer_mac = id.mac_for(&peer);
        let mut adv = [0u8; 72];
        adv[0] = 0x60;
        adv[5] = 0x20; // payload length 32
        adv[6] = 58; // ICMPv6
        adv[7] = 0xff; // hop limit 255, as NDP requires
        adv[8..24].copy_from_slice(&target);
        adv[24..40].copy_from_slice(&mine);
        adv[40] = 136; // neighbour advertisement
        adv[44] = 0x60; // solicited + override
        adv[48..64].copy_from_slice(&target);
        adv[64] = 2; // target link-layer address option, 8 bytes
        adv[65] = 1;
        adv[66..72].copy_from_slice(&peer_mac.octets());
        let sum = icmpv6_checksum(&Ipv6Addr::from(target), &Ipv6Addr::from(mine), &adv[40..72]);
        adv[42..44].copy_from_slice(&sum.to_be_bytes());
        let frame = ethernet_frame(from, peer_mac, ETHERTYPE_IPV6, &adv);
        // To whoever asked: our port, or a host on the bridged LAN.
        self.deliver(id, frame);
        true
    }

    /// FRAME (§4.3): gate, inbound filter, deliver with the implied MACs.
    pub(crate) fn on_frame(&mut self, now: Instant, rx: &Received<'_>) {
        let Ok(frame) = Frame::decode(rx.payload) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        let id = frame.network_id;
        let Some(network) = self.networks.get(&id) else { return };
        let our_mac = network.mac;
        if !self.admit_frame(now, id, rx) {
            return;
        }
        let src = id.mac_for(&rx.source);
        if self.filter_inbound(now, id, rx.source, src, our_mac, frame.ethertype, frame.payload) == 0 {
            self.counters.frames_dropped_rules += 1;
            return;
        }
        if frame.payload.len() > self.networks.get(&id).map_or(0, |n| n.mtu() as usize) {
            return;
        }
        self.counters.frames_in += 1;
        let eth = ethernet_frame(our_mac, src, frame.ethertype, frame.payload);
        self.deliver(id, eth);
    }

    /// EXT_FRAME (§4.3): explicit MACs, bridging checks.
    pub(crate) fn on_ext_frame(&mut self, now: Instant, rx: &Received<'_>) {
        let Ok(frame) = ExtFrame::decode(rx.payload) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        let id = frame.network_id;
        let Some(network) = self.networks.get(&id) else { return };
        let our_mac = network.mac;
        let Some(config) = network.config.clone() else { return };
        if let Some(com) = &frame.com {
            self.accept_inline_com(now, com);
        }
        if !self.admit_frame(now, id, rx) {
            return;
        }
        if frame.src_mac.0 == 0 || frame.src_mac == our_mac {
            return;
        }
        let verdict =
            self.filter_inbound(now, id, rx.source, frame.src_mac, frame.dst_mac, frame.ethertype, frame.payload);
        match verdict {
            0 => {
                self.counters.frames_dropped_rules += 1;
                return;
            }
            1 => {
                if frame.src_mac != id.mac_for(&rx.source) {
                    if !config.is_active_bridge(rx.source) {
                        return;
                    }
                    if let Some(network) = self.networks.get_mut(&id)
                        && network.learn_bridge_route(frame.src_mac, rx.source)
                    {
                        self.data_path_dirty = true;
                    }
                }
                if frame.dst_mac != our_mac {
                    let allowed = if frame.dst_mac.is_multicast() {
                        config.multicast_limit > 0
                    } else {
                        config.is_active_bridge(self.me)
                    };
                    if !allowed {
                        return;
                    }
                }
            }
            _ => {}
        }
        self.counters.frames_in += 1;
        let eth = ethernet_frame(frame.dst_mac, frame.src_mac, frame.ethertype, frame.payload);
        self.deliver(id, eth);
        if frame.flags & EXT_FRAME_FLAG_ACK != 0 {
            let ok = OkMessage {
                in_re_verb: Verb::ExtFrame,
                in_re_packet_id: rx.packet_id,
                payload: OkPayload::ExtFrame(id),
            };
            let mut payload = Vec::new();
            ok.encode(&mut payload);
            self.reply(now, rx, Outgoing::new(Verb::Ok, payload));
        }
    }

    /// The gate for frames (§3.1, §3.5): a sender failing it gets
    /// ERROR(NEED_MEMBERSHIP_CERTIFICATE) and its frame is parked until credentials arrive; a
    /// sender passing it becomes trusted on its path.
    pub(crate) fn admit_frame(&mut self, now: Instant, id: NetworkId, rx: &Received<'_>) -> bool {
        if !self.passes_gate(id, rx.source) {
            self.counters.frames_dropped_gate += 1;
            self.reply_error(now, rx, ErrorCode::NEED_MEMBERSHIP_CERTIFICATE, Some(id));
            self.park_opened(now, rx);
            return false;
        }
        self.mark_trusted(now, id, rx);
        true
    }

    /// Outbound filter (§6.2 "Result"): network rules, then our capabilities; TEE/WATCH copies
    /// and REDIRECT are carried out here. True = send the frame.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn filter_outbound(
        &mut self,
        now: Instant,
        id: NetworkId,
        dest: Address,
        src: Mac,
        dst: Mac,
        ethertype: u16,
        payload: &[u8],
    ) -> bool {
        let Some(network) = self.networks.get(&id) else { return false };
        let Some(config) = network.config.clone() else { return false };
        let membership = network.memberships.get(&dest).cloned();
        let capabilities = crate::datapath::capability_lists(&config);
        let info = FrameInfo::outbound(self.me, dest, src, dst, ethertype, payload);
        let me = self.me;
        let rng = &mut self.rng;
        let mut random = || rand_core::RngCore::next_u32(rng);
        let outcome =
            crate::datapath::outbound_filter(&config, &capabilities, me, membership.as_ref(), &info, &mut random);
        self.carry_out(now, id, &outcome, false, src, dst, ethertype, payload);
        if !outcome.passes() {
            self.counters.frames_dropped_rules += 1;
        }
        outcome.passes()
    }

    /// Inbound filter: 0 drop, 1 accept, 2 super-accept (§6.2).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn filter_inbound(
        &mut self,
        now: Instant,
        id: NetworkId,
        sender: Address,
        src: Mac,
        dst: Mac,
        ethertype: u16,
        payload: &[u8],
    ) -> u8 {
        let Some(network) = self.networks.get(&id) else { return 0 };
        let Some(config) = network.config.clone() else { return 0 };
        let membership = network.memberships.get(&sender).cloned();
        let info = FrameInfo::inbound(sender, self.me, src, dst, ethertype, payload);
        let me = self.me;
        let rng = &mut self.rng;
        let mut random = || rand_core::RngCore::next_u32(rng);
        let outcome = crate::datapath::inbound_filter(&config, me, membership.as_ref(), &info, &mut random);
        self.carry_out(now, id, &outcome, true, src, dst, ethertype, payload);
        outcome.inbound_code()
    }

    /// Sends the TEE/WATCH copies and the REDIRECT of a filter outcome as EXT_FRAMEs with the
    /// subtype flags of VL1 §8.7 (outbound TEE 0x02, WATCH 0x16, REDIRECT 0x04; inbound 0x08,
    /// 0x1c, 0x0a).
    #[allow(clippy::too_many_arguments)]
    fn carry_out(
        &mut self,
        now: Instant,
        id: NetworkId,
        outcome: &rules::FilterOutcome,
        inbound: bool,
        src: Mac,
        dst: Mac,
        ethertype: u16,
        payload: &[u8],
    ) {
        let mut sends: Vec<(Address, u8, usize)> = outcome
            .copies
            .iter()
            .flatten()
            .map(|t| {
                let flags = match (t.watch, inbound) {
                    (false, false) => 0x02,
                    (true, false) => 0x16,
                    (false, true) => 0x08,
                    (true, true) => 0x1c,
                };
                (t.target, flags, t.length.min(payload.len()))
            })
            .collect();
        if let rules::Disposition::Redirect(target) = outcome.disposition {
            sends.push((target, if inbound { 0x0a } else { 0x04 }, payload.len()));
        }
        for (target, flags, length) in sends {
            if target == self.me {
                continue;
            }
            let mut body = Vec::with_capacity(length + 23);
            ExtFrame {
                network_id: id,
                flags,
                com: None,
                dst_mac: dst,
                src_mac: src,
                ethertype,
                payload: &payload[..length],
            }
            .encode(&mut body);
            self.send(now, target, Outgoing::new(Verb::ExtFrame, body));
        }
    }
}

/// ICMPv6 checksum over the pseudo-header (RFC 4443 §2.3).
pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(icmp.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    let mut body = icmp.to_vec();
    body[2] = 0;
    body[3] = 0;
    add(&body);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
