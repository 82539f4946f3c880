//! VL1: roots and upstreams (§1.2), HELLO/OK, WHOIS, ECHO, RENDEZVOUS, PUSH_DIRECT_PATHS,
//! ERROR, relaying (VL1 §9), path learning (§1.5), the ping pass and housekeeping (§1.3).

use crate::node::{HOUSEKEEPING_MS, IDENTITY_VALIDATION_MS, MAX_PEERS, Outgoing, Received};
use crate::peer::{CachedPeer, PATH_EXPIRATION_MS, Peer, scope, usable_physical_address};
use crate::time::{Instant, elapsed, since};
use crate::{ANNOUNCED_VERSION, Address, Event, LocalSocket, Transmit};
use std::net::{IpAddr, SocketAddr};
use ztplane_crypto::{CipherSuite, Identity};
use ztplane_protocol::header::{PROTOCOL_VERSION, PROTOCOL_VERSION_MIN, RELAY_MAX_HOPS, Verb};
use ztplane_protocol::verbs::{
    DirectPath, ErrorCode, ErrorMessage, Hello, OkHello, OkMessage, OkPayload, Rendezvous, WorldRef,
};
use ztplane_protocol::wire::WriteExt;
use ztplane_protocol::world::{WORLD_TYPE_MOON, WORLD_TYPE_PLANET, World};

/// Full HELLO to every direct path at least this often (`ZT_PEER_PING_PERIOD`).
const FULL_HELLO_MS: u64 = 60_000;
/// ECHO a path nothing was sent on for this long (`ZT_PATH_HEARTBEAT_PERIOD`).
const PATH_HEARTBEAT_MS: u64 = 14_000;
/// Peers with frames or configs within this long get keepalives (`ZT_PEER_ACTIVITY_TIMEOUT`).
const PEER_ACTIVITY_MS: u64 = 500_000;
/// Answer one ECHO per path per 166 ms, one WHOIS per peer per 100 ms (§1.3 table).
const ECHO_ANSWER_MS: u64 = 166;
/// The same for a bonded ztplane peer, which retries probes of a suspect path every 20 ms.
const ZTPLANE_ECHO_ANSWER_MS: u64 = 10;
const WHOIS_ANSWER_MS: u64 = 100;
/// HELLO an unknown address of a peer at most once per second (`ZT_PATH_HELLO_RATE_LIMIT`).
const PATH_HELLO_MS: u64 = 1_000;
/// Trust-established window for relaying and direct-path pushes (`ZT_TRUST_EXPIRATION`).
pub(crate) const TRUST_MS: u64 = 600_000;
/// RENDEZVOUS per (source, destination) at most every 30 s (`ZT_MIN_UNITE_INTERVAL`).
const UNITE_MS: u64 = 30_000;
/// PUSH_DIRECT_PATHS cadence with / without a direct path (§1.7).
const PUSH_HAVE_PATH_MS: u64 = 120_000;
const PUSH_NO_PATH_MS: u64 = 15_000;

impl crate::Node {
    // ---- roots ----

    /// Upstreams = roots of the planet and the moons except ourselves; a peer is made for each
    /// from the world, so upstreams never need WHOIS (§1.2).
    pub(crate) fn memoize_upstreams(&mut self, now: Instant) {
        self.upstreams.clear();
        let worlds: Vec<World> = std::iter::once(self.planet.clone()).chain(self.moons.iter().cloned()).collect();
        for world in worlds {
            for root in world.roots {
                let address = root.identity.address();
                if address == self.me {
                    continue;
                }
                self.upstreams.entry(address).or_default().extend(root.stable_endpoints.iter().copied());
                if !self.peers.contains_key(&address) {
                    self.add_peer(root.identity.clone(), now);
                }
            }
        }
        self.data_path_dirty = true;
    }

    /// Best upstream: lowest latency × (silent minutes + 1); ties to the highest address (§1.2).
    pub(crate) fn best_upstream(&self, now: Instant) -> Option<Address> {
        self.upstreams
            .keys()
            .map(|a| {
                let cost = match self.peers.get(a) {
                    Some(p) => {
                        let silent = since(now, p.last_receive);
                        if silent >= 500_000 || p.best_path(now).is_none() {
                            u64::from(u32::MAX)
                        } else {
                            u64::from(p.latency.unwrap_or(0xffff)) * (silent / 61_000 + 1)
                        }
                    }
                    None => u64::from(u32::MAX),
                };
                (cost, std::cmp::Reverse(*a), *a)
            })
            .min()
            .map(|(_, _, a)| a)
    }

    /// The physical path to relay through: the best upstream's best path (never `exclude`).
    pub(crate) fn best_upstream_path(
        &self,
        now: Instant,
        exclude: Option<Address>,
    ) -> Option<(Option<LocalSocket>, SocketAddr)> {
        let root = self.best_upstream(now)?;
        if Some(root) == exclude {
            return None;
        }
        let path = self.peers.get(&root)?.best_path(now)?;
        Some((Some(path.local), path.remote))
    }

    pub(crate) fn add_peer(&mut self, identity: Identity, now: Instant) -> bool {
        let Ok(key) = self.identity.agree(&identity) else { return false };
        if self.peers.len() >= MAX_PEERS {
            self.evict_one_peer();
        }
        let address = identity.address();
        self.peers.insert(address, Peer::new(identity, key, now));
        self.data_path_dirty = true;
        true
    }

    fn evict_one_peer(&mut self) {
        let victim = self
            .peers
            .values()
            .filter(|p| !self.upstreams.contains_key(&p.address()))
            .min_by_key(|p| p.last_receive)
            .map(|p| p.address());
        if let Some(v) = victim
            && let Some(p) = self.peers.remove(&v)
        {
            self.drop_bond(v);
            self.events.push_back(Event::SavePeer { address: v, cache: p.to_cache() });
        }
    }

    /// A peer from `peers.d`: its identity, version, and a HELLO to each cached address (§1.5).
    pub(crate) fn restore_peer(&mut self, cached: CachedPeer, now: Instant) {
        let address = cached.identity.address();
        if address == self.me || !self.add_peer(cached.identity, now) {
            return;
        }
        if let Some(p) = self.peers.get_mut(&address) {
            p.protocol_version = cached.protocol_version;
            p.version = cached.version;
            p.last_receive = Instant::ZERO;
        }
        for remote in cached.addresses.into_iter().filter(usable_physical_address).take(4) {
            self.send_hello(now, address, None, remote, false);
        }
    }

    // ---- receive ----

    /// Bookkeeping for every authenticated packet: liveness, path learning (§1.5), online state.
    pub(crate) fn on_authenticated(&mut self, now: Instant, rx: &Received<'_>) {
        // An OK counts only in reply to a packet we sent (VL1 §8.3; upstream's `_doOK` returns
        // before `Peer::received`): a replayed old OK from a spoofed address teaches no path.
        if rx.verb == Verb::Ok {
            let in_re = rx.payload.get(1..9).and_then(|id| id.try_into().ok()).map(u64::from_be_bytes);
            if !in_re.is_some_and(|id| self.expecting.expecting(id)) {
                return;
            }
        }
        let upstream = self.upstreams.contains_key(&rx.source);
        let learnable =
            rx.hops == 0 && usable_physical_address(&rx.remote) && !self.inside_our_networks(rx.remote.ip());
        let Some(peer) = self.peers.get_mut(&rx.source) else { return };
        peer.last_receive = now;
        if matches!(
            rx.verb,
            Verb::Frame | Verb::ExtFrame | Verb::NetworkConfigRequest | Verb::NetworkConfig | Verb::MulticastFrame
        ) {
            peer.last_activity = now;
        }
        if upstream {
            self.last_upstream_receive = now;
            self.online = true;
        }
        if !learnable {
            return;
        }
        if let Some(path) = peer.path_mut(rx.local, rx.remote) {
            path.last_receive = now;
            if !upstream {
                self.nominate(now, rx.source, rx.local, rx.remote);
                let bytes = rx.packet.len();
                self.bond_received(now, rx.source, (rx.local, rx.remote), rx.packet_id, bytes, rx.verb);
            }
            return;
        }
        // A root with stable endpoints only gets paths at those IPs (§1.2).
        if let Some(endpoints) = self.upstreams.get(&rx.source)
            && !endpoints.is_empty()
            && !endpoints.iter().any(|e| e.ip() == rx.remote.ip())
        {
            return;
        }
        if rx.verb == Verb::Ok {
            peer.learn_path(rx.local, rx.remote, now);
            self.data_path_dirty = true;
            if !upstream {
                self.nominate(now, rx.source, rx.local, rx.remote);
            }
        } else {
            let recently = peer.hello_attempts.iter().any(|(a, t)| *a == rx.remote && since(now, *t) < PATH_HELLO_MS);
            if !recently {
                peer.hello_attempts.retain(|(_, t)| since(now, *t) < PATH_HELLO_MS);
                if peer.hello_attempts.len() < 16 {
                    peer.hello_attempts.push((rx.remote, now));
                    let (source, local, remote) = (rx.source, rx.local, rx.remote);
                    self.send_hello(now, source, Some(local), remote, false);
                }
            }
        }
    }

    pub(crate) fn dispatch(&mut self, now: Instant, rx: &Received<'_>) {
        match rx.verb {
            Verb::Nop | Verb::Hello => {}
            Verb::Error => match ErrorMessage::decode(rx.payload) {
                Ok(e) => self.on_error(now, rx, e),
                Err(_) => self.counters.dropped_malformed += 1,
            },
            Verb::Ok => match OkMessage::decode(rx.payload) {
                Ok(ok) if self.expecting.expecting(u64::from_be_bytes(ok.in_re_packet_id)) => self.on_ok(now, rx, ok),
                Ok(_) => self.counters.dropped_rate_limited += 1,
                Err(_) => self.counters.dropped_malformed += 1,
            },
            Verb::Whois => self.on_whois(now, rx),
            Verb::Rendezvous => match Rendezvous::decode(rx.payload) {
                Ok(r) => self.on_rendezvous(now, rx, r),
                Err(_) => self.counters.dropped_malformed += 1,
            },
            Verb::Echo => self.on_echo(now, rx),
            Verb::Frame => self.on_frame(now, rx),
            Verb::ExtFrame => self.on_ext_frame(now, rx),
            Verb::MulticastLike => self.on_multicast_like(now, rx),
            Verb::NetworkCredentials => self.on_credentials(now, rx),
            Verb::NetworkConfigRequest => self.on_config_request(now, rx),
            Verb::NetworkConfig => self.on_pushed_config(now, rx),
            Verb::MulticastGather => self.on_gather(now, rx),
            Verb::MulticastFrame => self.on_multicast_frame(now, rx),
            Verb::PushDirectPaths => self.on_push_direct_paths(now, rx),
            // Bonding measurements (zerotier-bonding.md §4), only from the peer itself.
            Verb::QosMeasurement if rx.hops == 0 => self.bond_qos(now, rx.source, rx.local, rx.remote, rx.payload),
            Verb::Ack if rx.hops == 0 => self.bond_ack(now, rx.source, rx.local, rx.remote, rx.payload),
            // Path negotiation (inert in 1.14), user messages and traces: accepted and ignored.
            _ => {}
        }
    }

    // ---- HELLO ----

    /// A HELLO (suite 0, possibly from a node we do not know yet), VL1 §8.1.
    pub(crate) fn receive_hello(&mut self, now: Instant, local: LocalSocket, remote: SocketAddr, packet: &mut [u8]) {
        if packet[27] & 0x80 != 0 {
            self.counters.dropped_malformed += 1;
            return;
        }
        let Ok((hello, _)) = Hello::decode(&packet[28..], None) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        let source = hello.identity.address();
        if hello.protocol_version < PROTOCOL_VERSION_MIN || packet[13..18] != source.to_bytes() {
            self.counters.dropped_malformed += 1;
            return;
        }
        let known = self.peers.get(&source).map(|p| (p.identity == hello.identity, p.key.clone()));
        let was_known = known.is_some();
        let key = match known {
            Some((true, key)) => key,
            Some((false, _)) => {
                // Another identity claims a known address: answer only if it authenticates, and
                // at most as often as new identities are validated (the agreement is work).
                if !self.validation_allowed(now, remote.ip()) {
                    self.counters.dropped_rate_limited += 1;
                    return;
                }
                if let Ok(key) = self.identity.agree(&hello.identity)
                    && ztplane_crypto::dearmor(&key, packet).is_ok()
                {
                    let mut payload = Vec::new();
                    ErrorMessage {
                        in_re_verb: Verb::Hello,
                        in_re_packet_id: packet[..8].try_into().unwrap_or([0; 8]),
                        code: ErrorCode::IDENTITY_COLLISION,
                        network_id: None,
                        group: None,
                        dictionary: None,
                    }
                    .encode(&mut payload);
                    self.emit_packet(
                        now,
                        &key,
                        source,
                        Some(local),
                        remote,
                        Outgoing::new(Verb::Error, payload),
                        CipherSuite::Poly1305,
                    );
                }
                self.counters.dropped_auth += 1;
                return;
            }
            None => {
                // New identities cost a memory-hard validation: rate-limit per source network.
                if !self.validation_allowed(now, remote.ip()) {
                    self.counters.dropped_rate_limited += 1;
                    return;
                }
                let Ok(key) = self.identity.agree(&hello.identity) else { return };
                std::sync::Arc::new(key)
            }
        };
        if ztplane_crypto::dearmor(&key, packet).is_err() {
            self.counters.dropped_auth += 1;
            return;
        }
        let packet_id: [u8; 8] = packet[..8].try_into().unwrap_or([0; 8]);
        let Ok((hello, _)) = Hello::decode(&packet[28..], Some((&key, &packet_id))) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        if !was_known {
            if !hello.identity.validate() {
                self.counters.dropped_auth += 1;
                return;
            }
            self.add_peer(hello.identity.clone(), now);
        }
        let hops = packet[18] & 7;
        // The OK goes out with what we knew before this HELLO: suite 1 to a peer never heard
        // (§1.5: the version is stored only afterwards).
        let world_updates = self.world_updates_for(&hello);
        let reported = (hops == 0).then(|| {
            let mut r = remote;
            if hello.protocol_version < 5 {
                r.set_port(0);
            }
            r
        });
        let ok = OkMessage {
            in_re_verb: Verb::Hello,
            in_re_packet_id: packet_id,
            payload: OkPayload::Hello(OkHello {
                timestamp_echo: hello.timestamp,
                protocol_version: PROTOCOL_VERSION,
                version_major: ANNOUNCED_VERSION.0,
                version_minor: ANNOUNCED_VERSION.1,
                version_revision: ANNOUNCED_VERSION.2,
                reported_address: reported,
                world_updates,
            }),
        };
        let mut payload = Vec::new();
        ok.encode(&mut payload);
        let suite = self.peers.get(&source).map_or(CipherSuite::Salsa2012Poly1305, Peer::suite);
        self.emit_packet(now, &key, source, Some(local), remote, Outgoing::new(Verb::Ok, payload), suite);
        if let Some(peer) = self.peers.get_mut(&source) {
            if peer.protocol_version != hello.protocol_version {
                self.data_path_dirty = true;
            }
            peer.protocol_version = hello.protocol_version;
            peer.version = (hello.version_major, hello.version_minor, hello.version_revision);
        }
        let rx = Received {
            source,
            local,
            remote,
            hops,
            packet_id,
            verb: Verb::Hello,
            payload: &[],
            suite: CipherSuite::Poly1305,
            packet,
        };
        self.on_authenticated(now, &rx);
        self.maybe_push_direct_paths(now, &rx);
        // Packets that waited for this identity can go now.
        self.whois.remove(&source);
        self.retry_parked(now, Some(source));
        self.flush_tx_queue(now);
    }

    /// One identity validation (or collision check) per 2 s per source /24 or /48.
    fn validation_allowed(&mut self, now: Instant, ip: IpAddr) -> bool {
        let bucket = validation_bucket(ip);
        if self.validations.get(&bucket).is_some_and(|&last| since(now, last) < IDENTITY_VALIDATION_MS) {
            return false;
        }
        if self.validations.len() > 16_384 {
            self.validations.retain(|_, t| since(now, *t) < IDENTITY_VALIDATION_MS);
        }
        self.validations.insert(bucket, now);
        true
    }

    /// Planet and moons newer than the ones a HELLO listed (§1.1).
    fn world_updates_for(&self, hello: &Hello) -> Vec<u8> {
        let mut out = Vec::new();
        if hello.planet_id == self.planet.id && hello.planet_timestamp < self.planet.timestamp {
            out.extend_from_slice(&self.planet.encode());
        }
        for moon in &self.moons {
            if hello
                .moons
                .iter()
                .any(|m| m.world_type == WORLD_TYPE_MOON && m.id == moon.id && m.timestamp < moon.timestamp)
            {
                out.extend_from_slice(&moon.encode());
            }
        }
        if out.len() > 60_000 { Vec::new() } else { out }
    }

    /// HELLO `dest` at `remote` (VL1 §8.1): suite 0, our identity, the planet and moons we have.
    pub(crate) fn send_hello(
        &mut self,
        now: Instant,
        dest: Address,
        local: Option<LocalSocket>,
        remote: SocketAddr,
        via_relay: bool,
    ) {
        let Some(peer) = self.peers.get(&dest) else { return };
        let key = peer.key.clone();
        let id = self.packet_id();
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            version_major: ANNOUNCED_VERSION.0,
            version_minor: ANNOUNCED_VERSION.1,
            version_revision: ANNOUNCED_VERSION.2,
            timestamp: now.as_millis(),
            identity: self.identity.to_public(),
            destination: (!via_relay).then_some(remote),
            planet_id: self.planet.id,
            planet_timestamp: self.planet.timestamp,
            moons: self
                .moons
                .iter()
                .map(|m| WorldRef { world_type: WORLD_TYPE_MOON, id: m.id, timestamp: m.timestamp })
                .collect(),
        };
        let mut payload = Vec::new();
        hello.encode(&mut payload, &key, &id);
        let msg = Outgoing::new(Verb::Hello, payload).expecting_reply();
        let Some(packet) = crate::node::seal(&key, id, dest, self.me, &msg, CipherSuite::Poly1305) else { return };
        self.expecting.register(u64::from_be_bytes(id));
        self.emit_datagrams(local, remote, &packet);
        if let Some(peer) = self.peers.get_mut(&dest)
            && let Some(local) = local
            && let Some(path) = peer.path_mut(local, remote)
        {
            path.last_send = now;
        }
    }

    // ---- OK ----

    fn on_ok(&mut self, now: Instant, rx: &Received<'_>, ok: OkMessage) {
        if ok.in_re_verb == Verb::Echo && rx.hops == 0 {
            self.bond_echo_reply(now, rx.source, rx.local, rx.remote, ok.in_re_packet_id);
        }
        match ok.payload {
            OkPayload::Hello(h) => {
                if rx.hops == 0 {
                    let rtt = since(now, Instant::from_millis(h.timestamp_echo)).min(u64::from(u32::MAX)) as u32;
                    if let Some(peer) = self.peers.get_mut(&rx.source) {
                        peer.note_latency(rx.local, rx.remote, rtt);
                    }
                }
                if let Some(peer) = self.peers.get_mut(&rx.source) {
                    if peer.protocol_version != h.protocol_version {
                        self.data_path_dirty = true;
                    }
                    peer.protocol_version = h.protocol_version;
                    peer.version = (h.version_major, h.version_minor, h.version_revision);
                }
                if let Some(surface) = h.reported_address.filter(|_| rx.hops == 0) {
                    self.surface_addresses.retain(|(a, _)| *a != surface);
                    if self.surface_addresses.len() < 16 {
                        self.surface_addresses.push((surface, now));
                    }
                }
                if !h.world_updates.is_empty() && self.upstreams.contains_key(&rx.source) {
                    self.accept_world_updates(now, &h.world_updates);
                }
            }
            OkPayload::Whois(identities) => {
                // Trusted only from an upstream (§1.4), without local re-validation.
                if !self.upstreams.contains_key(&rx.source) {
                    return;
                }
                for identity in identities {
                    let address = identity.address();
                    if address == self.me || identity.address().is_reserved() {
                        continue;
                    }
                    if !self.peers.contains_key(&address) {
                        self.add_peer(identity, now);
                    }
                    self.whois.remove(&address);
                    self.retry_parked(now, Some(address));
                }
                self.flush_tx_queue(now);
            }
            OkPayload::NetworkConfig(chunk) => self.on_config_chunk(now, rx, chunk, true),
            // Gathers go to roots, the controller and anchors; multicast frames to members: only
            // they may name members (§5.3), or anyone could flood our groups with fakes.
            OkPayload::MulticastGather(g) => {
                let asked = self.upstreams.contains_key(&rx.source)
                    || rx.source == g.network_id.controller()
                    || self
                        .networks
                        .get(&g.network_id)
                        .and_then(|n| n.config.as_ref())
                        .is_some_and(|c| c.always_contact().any(|a| a == rx.source));
                if asked {
                    self.on_gather_results(now, g.network_id, g.group, &g.results.members);
                }
            }
            OkPayload::MulticastFrame(f) => {
                if let Some(results) = f.results
                    && self.passes_gate(f.network_id, rx.source)
                {
                    self.on_gather_results(now, f.network_id, f.group, &results.members);
                }
            }
            OkPayload::Echo(_) | OkPayload::ExtFrame(_) | OkPayload::Other(_) => {}
        }
    }

    /// Planet/moon updates carried by OK(HELLO) from an upstream: same ID and type, newer,
    /// signed by the key the current version names (§1.1).
    fn accept_world_updates(&mut self, now: Instant, mut bytes: &[u8]) {
        let mut changed = false;
        while !bytes.is_empty() {
            let Ok((world, used)) = World::read(bytes) else { break };
            bytes = &bytes[used.max(1)..];
            let current = if world.world_type == WORLD_TYPE_PLANET && world.id == self.planet.id {
                Some(&mut self.planet)
            } else {
                self.moons.iter_mut().find(|m| m.world_type == world.world_type && m.id == world.id)
            };
            if let Some(current) = current
                && world.timestamp > current.timestamp
                && world.verify_update_of(current)
            {
                *current = world.clone();
                self.events.push_back(Event::SaveWorld {
                    world_type: world.world_type,
                    id: world.id,
                    bytes: world.encode(),
                });
                changed = true;
            }
        }
        if changed {
            self.memoize_upstreams(now);
        }
    }

    // ---- ERROR ----

    fn on_error(&mut self, now: Instant, rx: &Received<'_>, e: ErrorMessage) {
        match e.code {
            ErrorCode::IDENTITY_COLLISION if self.upstreams.contains_key(&rx.source) => {
                self.events.push_back(Event::IdentityCollision);
            }
            ErrorCode::NEED_MEMBERSHIP_CERTIFICATE => {
                if let Some(nwid) = e.network_id {
                    self.repush_credentials(now, nwid, rx.source);
                }
            }
            ErrorCode::UNWANTED_MULTICAST => {
                if let (Some(nwid), Some(group)) = (e.network_id, e.group) {
                    self.forget_member(nwid, group, rx.source, now);
                }
            }
            code => {
                if let Some(nwid) = e.network_id {
                    self.on_network_error(now, rx.source, nwid, e.in_re_verb, code);
                }
            }
        }
    }

    /// ERROR(code) in-re `packet_id`, on the path the request came in on.
    pub(crate) fn reply_error(
        &mut self,
        now: Instant,
        rx: &Received<'_>,
        code: ErrorCode,
        network_id: Option<ztplane_protocol::network::NetworkId>,
    ) {
        let mut payload = Vec::new();
        ErrorMessage {
            in_re_verb: rx.verb,
            in_re_packet_id: rx.packet_id,
            code,
            network_id,
            group: None,
            dictionary: None,
        }
        .encode(&mut payload);
        self.reply(now, rx, Outgoing::new(Verb::Error, payload));
    }

    /// Sends a reply on the arrival path (for a relayed request that is the relay, §1.4).
    pub(crate) fn reply(&mut self, now: Instant, rx: &Received<'_>, msg: Outgoing) {
        self.send_via(now, rx.source, Some(rx.local), rx.remote, msg);
    }

    // ---- WHOIS, ECHO ----

    fn on_whois(&mut self, now: Instant, rx: &Received<'_>) {
        let Ok(addresses) = ztplane_protocol::verbs::small::decode_whois(rx.payload) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        if !self.upstreams.contains_key(&rx.source)
            && let Some(peer) = self.peers.get_mut(&rx.source)
        {
            if peer.last_whois_answered.is_some_and(|t| since(now, t) < WHOIS_ANSWER_MS) {
                self.counters.dropped_rate_limited += 1;
                return;
            }
            peer.last_whois_answered = Some(now);
        }
        let mut payload = Vec::new();
        payload.put_u8(Verb::Whois.code());
        payload.put_slice(&rx.packet_id);
        let mut any = false;
        for address in addresses.iter().take(64) {
            let identity = if *address == self.me {
                Some(self.identity.to_public())
            } else {
                self.peers.get(address).map(|p| p.identity.clone())
            };
            if let Some(identity) = identity {
                identity.write_bytes(&mut payload, false);
                any = true;
            }
        }
        if any {
            self.reply(now, rx, Outgoing::new(Verb::Ok, payload));
        }
    }

    fn on_echo(&mut self, now: Instant, rx: &Received<'_>) {
        // A ztplane peer probes a suspect path every 20 ms (it expects the answer that fast).
        let limit = if self.is_ztplane_bond_peer(rx.source) { ZTPLANE_ECHO_ANSWER_MS } else { ECHO_ANSWER_MS };
        if let Some(path) = self.peers.get_mut(&rx.source).and_then(|p| p.path_mut(rx.local, rx.remote)) {
            if path.last_echo_answered.is_some_and(|t| since(now, t) < limit) {
                self.counters.dropped_rate_limited += 1;
                return;
            }
            path.last_echo_answered = Some(now);
        }
        let mut payload = Vec::with_capacity(9 + rx.payload.len());
        payload.put_u8(Verb::Echo.code());
        payload.put_slice(&rx.packet_id);
        payload.put_slice(rx.payload);
        self.reply(now, rx, Outgoing::new(Verb::Ok, payload));
    }

    /// An empty ECHO (or HELLO to peers of unknown or old protocol) to `remote`.
    pub(crate) fn probe(&mut self, now: Instant, dest: Address, local: Option<LocalSocket>, remote: SocketAddr) {
        let old = self.peers.get(&dest).is_none_or(|p| p.protocol_version < 5);
        if old {
            self.send_hello(now, dest, local, remote, false);
        } else {
            self.send_via(now, dest, local, remote, Outgoing::new(Verb::Echo, Vec::new()).expecting_reply());
        }
    }

    // ---- RENDEZVOUS, PUSH_DIRECT_PATHS ----

    fn on_rendezvous(&mut self, now: Instant, rx: &Received<'_>, r: Rendezvous) {
        if !self.upstreams.contains_key(&rx.source) || !self.peers.contains_key(&r.peer) {
            return;
        }
        if !usable_physical_address(&r.address) || self.inside_our_networks(r.address.ip()) {
            return;
        }
        // Open a NAT mapping first: 4 junk bytes that die after two hops (VL1 §1).
        let junk = self.random_u32().to_be_bytes().to_vec();
        self.transmits.push_back(Transmit { local: None, remote: r.address, data: junk, ttl: Some(2) });
        self.probe(now, r.peer, None, r.address);
    }

    fn on_push_direct_paths(&mut self, now: Instant, rx: &Received<'_>) {
        let Ok(paths) = ztplane_protocol::verbs::small::decode_push_direct_paths(rx.payload) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        let Some(peer) = self.peers.get_mut(&rx.source) else { return };
        // Ignore pushes once 8 arrived each < 30 s after the previous (§1.7).
        let (count, last) = peer.direct_push_burst;
        let count = if since(now, last) < 30_000 { count + 1 } else { 0 };
        peer.direct_push_burst = (count, now);
        if count >= 8 {
            self.counters.dropped_rate_limited += 1;
            return;
        }
        let known: Vec<SocketAddr> = peer.paths.iter().filter(|p| p.alive(now)).map(|p| p.remote).collect();
        let mut per_scope: std::collections::HashMap<(u64, bool), usize> = Default::default();
        for DirectPath { flags, address, .. } in paths {
            let Some(address) = address else { continue };
            if flags & 0x01 != 0 || known.contains(&address) || !usable_physical_address(&address) {
                continue;
            }
            if self.inside_our_networks(address.ip()) {
                continue;
            }
            let n = per_scope.entry((scope(address.ip()), address.is_ipv4())).or_default();
            if *n >= 8 {
                continue;
            }
            *n += 1;
            self.probe(now, rx.source, None, address);
        }
    }

    /// PUSH_DIRECT_PATHS to a peer that sent us trust-established traffic (§1.7): all bound
    /// local addresses, then the surface addresses peers reported.
    pub(crate) fn maybe_push_direct_paths(&mut self, now: Instant, rx: &Received<'_>) {
        let Some(peer) = self.peers.get(&rx.source) else { return };
        let trusted = peer.paths.iter().any(|p| p.trust_established.is_some_and(|t| since(now, t) < TRUST_MS));
        if !trusted {
            return;
        }
        let interval = if rx.hops == 0 { PUSH_HAVE_PATH_MS } else { PUSH_NO_PATH_MS };
        if peer.last_direct_path_push.is_some_and(|t| since(now, t) < interval) {
            return;
        }
        let mut paths: Vec<DirectPath> = self
            .local_addresses
            .iter()
            .map(|(_, a)| *a)
            .chain(self.surface_addresses.iter().map(|(a, _)| *a))
            .filter(usable_physical_address)
            .map(|a| DirectPath { flags: 0, extension: Vec::new(), address: Some(a) })
            .collect();
        paths.truncate(32);
        if paths.is_empty() {
            return;
        }
        if let Some(peer) = self.peers.get_mut(&rx.source) {
            peer.last_direct_path_push = Some(now);
        }
        let mut payload = Vec::new();
        ztplane_protocol::verbs::small::encode_push_direct_paths(&paths, &mut payload);
        let msg = Outgoing::new(Verb::PushDirectPaths, payload).compressed();
        self.reply(now, rx, msg);
    }

    // ---- relaying (VL1 §9) ----

    pub(crate) fn relay(&mut self, now: Instant, local: LocalSocket, remote: SocketAddr, datagram: &[u8]) {
        let kind = ztplane_protocol::header::classify(datagram);
        let hops_at = match kind {
            ztplane_protocol::header::DatagramKind::Head => 18,
            ztplane_protocol::header::DatagramKind::Fragment => 15,
            _ => {
                self.counters.dropped_malformed += 1;
                return;
            }
        };
        let dest = Address::from_bytes(&datagram[8..13].try_into().unwrap_or([0; 5]));
        let am_upstream = self
            .planet
            .roots
            .iter()
            .chain(self.moons.iter().flat_map(|m| m.roots.iter()))
            .any(|r| r.identity.address() == self.me);
        let trusted = self.peers.values().any(|p| {
            p.paths.iter().any(|path| {
                path.remote == remote
                    && path.local == local
                    && path.trust_established.is_some_and(|t| since(now, t) < TRUST_MS)
            })
        });
        if !(am_upstream || trusted) || datagram[hops_at] & 7 >= RELAY_MAX_HOPS {
            self.counters.dropped_malformed += 1;
            return;
        }
        let mut copy = datagram.to_vec();
        if ztplane_protocol::header::increment_hops(&mut copy).is_err() {
            return;
        }
        let direct = self.peers.get(&dest).and_then(|p| p.best_path(now)).map(|p| (p.local, p.remote));
        self.counters.relayed += 1;
        match direct {
            Some((l, r)) => {
                self.transmits.push_back(Transmit { local: Some(l), remote: r, data: copy, ttl: None });
                if kind == ztplane_protocol::header::DatagramKind::Head {
                    let source = Address::from_bytes(&datagram[13..18].try_into().unwrap_or([0; 5]));
                    self.introduce(now, source, dest);
                }
            }
            None => {
                let source = Address::from_bytes(&datagram[13..18].try_into().unwrap_or([0; 5]));
                let exclude = (kind == ztplane_protocol::header::DatagramKind::Head).then_some(source);
                if let Some((l, r)) = self.best_upstream_path(now, exclude) {
                    self.transmits.push_back(Transmit { local: l, remote: r, data: copy, ttl: None });
                }
            }
        }
    }

    /// RENDEZVOUS to both ends of a relayed conversation, ≤ once per 30 s per pair (§1.7).
    fn introduce(&mut self, now: Instant, a: Address, b: Address) {
        let key = if a < b { (a, b) } else { (b, a) };
        if self.introductions.get(&key).is_some_and(|t| since(now, *t) < UNITE_MS) {
            return;
        }
        let (Some(pa), Some(pb)) = (
            self.peers.get(&a).and_then(|p| p.best_path(now)).map(|p| p.remote),
            self.peers.get(&b).and_then(|p| p.best_path(now)).map(|p| p.remote),
        ) else {
            return;
        };
        if self.introductions.len() > 65_536 {
            self.introductions.retain(|_, t| since(now, *t) < UNITE_MS);
        }
        self.introductions.insert(key, now);
        for (to, other, address) in [(a, b, pb), (b, a, pa)] {
            let mut payload = Vec::new();
            Rendezvous { flags: 0, peer: other, address }.encode(&mut payload);
            self.send(now, to, Outgoing::new(Verb::Rendezvous, payload));
        }
    }

    // ---- timers (§1.3) ----

    /// The 5 s ping pass.
    pub(crate) fn ping_pass(&mut self, now: Instant) {
        // Always-contact set: upstreams, and anchors / replicators of our networks.
        let mut always: Vec<Address> = self.upstreams.keys().copied().collect();
        for network in self.networks.values() {
            if let Some(config) = &network.config {
                always.extend(config.always_contact().filter(|a| *a != self.me));
            }
        }
        always.sort();
        always.dedup();
        let mut whois_needed = Vec::new();
        for address in always {
            let Some(peer) = self.peers.get(&address) else {
                whois_needed.push(address);
                continue;
            };
            let upstream = self.upstreams.contains_key(&address);
            let has_path = peer.best_path(now).is_some();
            let scale = if !upstream {
                2
            } else if has_path {
                16
            } else {
                0
            };
            if peer.last_full_hello != Instant::ZERO && since(now, peer.last_full_hello) <= 14_000 * scale {
                continue;
            }
            let sent = self.keepalive(now, address);
            if !sent {
                let endpoints = self.upstreams.get(&address).cloned().unwrap_or_default();
                let v4: Vec<SocketAddr> = endpoints.iter().copied().filter(SocketAddr::is_ipv4).collect();
                let v6: Vec<SocketAddr> = endpoints.iter().copied().filter(SocketAddr::is_ipv6).collect();
                let mut any = false;
                for family in [v4, v6] {
                    if !family.is_empty() {
                        let pick = family[(self.random_u32() as usize) % family.len()];
                        self.send_hello(now, address, None, pick, false);
                        any = true;
                    }
                }
                if !any && let Some((l, r)) = self.best_upstream_path(now, Some(address)) {
                    self.send_hello(now, address, l, r, true);
                }
            }
            if let Some(peer) = self.peers.get_mut(&address) {
                peer.last_full_hello = now;
            }
        }
        // Other peers: keepalive while active (frames or configs within 500 s).
        let active: Vec<Address> = self
            .peers
            .values()
            .filter(|p| !self.upstreams.contains_key(&p.address()) && since(now, p.last_activity) < PEER_ACTIVITY_MS)
            .filter(|p| p.last_activity != Instant::ZERO)
            .map(Peer::address)
            .collect();
        for address in active {
            self.keepalive(now, address);
        }
        for address in whois_needed {
            self.request_whois(now, address);
        }
        self.online = since(now, self.last_upstream_receive) < 500_000 && self.last_upstream_receive != Instant::ZERO;
    }

    /// Keepalive of one peer (§1.3): expire dead paths; full HELLO every 60 s, else ECHO paths
    /// nothing was sent on for 14 s. Returns whether anything went out.
    fn keepalive(&mut self, now: Instant, address: Address) -> bool {
        let Some(peer) = self.peers.get_mut(&address) else { return false };
        let full = elapsed(now, peer.last_full_hello, FULL_HELLO_MS);
        if full {
            peer.last_full_hello = now;
        }
        let before = peer.paths.len();
        peer.expire_paths(now);
        if peer.paths.len() != before {
            self.data_path_dirty = true;
        }
        let paths: Vec<(LocalSocket, SocketAddr, Instant)> =
            peer.paths.iter().map(|p| (p.local, p.remote, p.last_send)).collect();
        let mut sent = false;
        for (local, remote, last_send) in paths {
            if full {
                self.send_hello(now, address, Some(local), remote, false);
                sent = true;
            } else if elapsed(now, last_send, PATH_HEARTBEAT_MS) {
                self.probe(now, address, Some(local), remote);
                sent = true;
            }
        }
        sent
    }

    /// Every 30 s: forget silent peers (saved to `peers.d`), stale surface addresses and
    /// multicast members (§1.3).
    pub(crate) fn housekeeping(&mut self, now: Instant) {
        let silent: Vec<Address> = self
            .peers
            .values()
            .filter(|p| !self.upstreams.contains_key(&p.address()) && since(now, p.last_receive) >= PEER_ACTIVITY_MS)
            .map(Peer::address)
            .filter(|a| !self.networks.keys().any(|n| n.controller() == *a))
            .collect();
        for address in silent {
            if let Some(p) = self.peers.remove(&address) {
                self.drop_bond(address);
                if !p.paths.is_empty() {
                    self.events.push_back(Event::SavePeer { address, cache: p.to_cache() });
                }
                self.data_path_dirty = true;
            }
        }
        self.surface_addresses.retain(|(_, t)| since(now, *t) < 600_000);
        self.validations.retain(|_, t| since(now, *t) < IDENTITY_VALIDATION_MS);
        self.introductions.retain(|_, t| since(now, *t) < UNITE_MS);
        self.trusted_paths.retain(|_, t| since(now, *t) < TRUST_MS);
        self.expire_multicast(now);
        self.expire_memberships(now);
        let _ = HOUSEKEEPING_MS;
        let _ = PATH_EXPIRATION_MS;
    }

    /// Cache every peer with paths (at exit, §1.5).
    pub fn save_peers(&mut self) {
        let saves: Vec<Event> = self
            .peers
            .values()
            .filter(|p| !p.paths.is_empty())
            .map(|p| Event::SavePeer { address: p.address(), cache: p.to_cache() })
            .collect();
        self.events.extend(saves);
    }

    /// Whether `ip` lies inside an assigned subnet of a joined network: such addresses never
    /// carry ZeroTier itself (§1.6), or the overlay would tunnel through itself.
    pub(crate) fn inside_our_networks(&self, ip: IpAddr) -> bool {
        self.networks.values().filter_map(|n| n.config.as_ref()).any(|c| {
            c.addresses.iter().any(|a| prefix_contains(a.ip, a.prefix_len, ip))
                || c.routes
                    .iter()
                    .any(|r| r.via.is_none() && r.prefix_len > 0 && prefix_contains(r.target, r.prefix_len, ip))
        })
    }
}

/// Whether `ip` is inside `net/bits` (same family only).
pub fn prefix_contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let bits = u32::from(bits.min(32));
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            (u32::from(n) & mask) == (u32::from(i) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let bits = u32::from(bits.min(128));
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            (u128::from(n) & mask) == (u128::from(i) & mask)
        }
        _ => false,
    }
}

/// 14-bit bucket of a source IP's prefix (/24 or /48) for the identity-validation rate limit.
fn validation_bucket(ip: IpAddr) -> u16 {
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets()[..3].to_vec(),
        IpAddr::V6(v6) => v6.octets()[..6].to_vec(),
    };
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h & 0x3fff) as u16
}
