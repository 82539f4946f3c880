//! Networks: joining and configuration (§2), membership credentials and the gate (§3).
//!
//! A network exists from `join` on, with or without a config; its port comes up at once. The
//! config is requested from the controller (`nwid >> 24`) every 5 s until one is installed,
//! then every 60 s; chunks are verified against the controller's signature and assembled
//! before a config is installed. Members prove membership with a certificate (COM) that must
//! agree with ours; frames from peers failing that gate are answered with
//! ERROR(NEED_MEMBERSHIP_CERTIFICATE) and parked until credentials arrive.

use crate::config::NetworkConfig;
use crate::node::{Outgoing, Received};
use crate::time::{Instant, elapsed, since};
use crate::{Address, Event, Mac, MulticastGroup, NetworkId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use ztplane_crypto::Identity;
use ztplane_protocol::credentials::{
    CertificateOfMembership, CertificateOfOwnership, NetworkCredentials, Revocation, Tag,
};
use ztplane_protocol::header::Verb;
use ztplane_protocol::verbs::{ConfigAssembler, ConfigChunk, ErrorCode, NetworkConfigRequest, OkMessage, OkPayload};
use ztplane_protocol::wire::{Reader, WriteExt};

/// Config refresh after the last accepted one (`ZT_NETWORK_AUTOCONF_DELAY`).
pub const CONFIG_REFRESH_MS: u64 = 60_000;
/// Credentials pushed to a peer are pushed again after this long (§3.3).
pub(crate) const CREDENTIALS_REPUSH_MS: u64 = 500_000;
/// ...or, when the peer asks (NEED_MEMBERSHIP_CERTIFICATE), after this long.
const CREDENTIALS_ASKED_MS: u64 = 1_000;
/// One NETWORK_CREDENTIALS per peer per second is processed (§3.4).
const CREDENTIALS_ACCEPT_MS: u64 = 1_000;
/// Members we keep per network (memberships are created by passing the gate or pushing credentials).
const MAX_MEMBERSHIPS: usize = 65_536;
/// Paths we remember as trust-established (relaying, §3.1).
const MAX_TRUSTED_PATHS: usize = 65_536;
/// MACs behind other bridges we remember per network (§4.4); beyond, new ones are not learned
/// and frames to them go as to an unknown MAC.
const BRIDGE_ROUTES_MAX: usize = 1 << 16;

/// Network status values (§2.6), as zerotier-one numbers and names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkStatus {
    RequestingConfiguration,
    Ok,
    AccessDenied,
    NotFound,
    PortError,
    ClientTooOld,
    AuthenticationRequired,
}

impl NetworkStatus {
    pub fn name(self) -> &'static str {
        match self {
            NetworkStatus::RequestingConfiguration => "REQUESTING_CONFIGURATION",
            NetworkStatus::Ok => "OK",
            NetworkStatus::AccessDenied => "ACCESS_DENIED",
            NetworkStatus::NotFound => "NOT_FOUND",
            NetworkStatus::PortError => "PORT_ERROR",
            NetworkStatus::ClientTooOld => "CLIENT_TOO_OLD",
            NetworkStatus::AuthenticationRequired => "AUTHENTICATION_REQUIRED",
        }
    }
}

/// What we know of one member's credentials on one network.
#[derive(Debug, Clone, Default)]
pub struct Membership {
    pub com: Option<CertificateOfMembership>,
    /// COMs at or below this timestamp fail every gate (revocations, §3.6).
    pub com_revocation_threshold: u64,
    pub coos: Vec<CertificateOfOwnership>,
    pub tags: BTreeMap<u32, Tag>,
    /// When we last pushed our credentials to this member, and the config timestamp then.
    pub last_pushed: Option<Instant>,
    pub pushed_config_timestamp: u64,
    /// When we last sent this member all our multicast groups (§3.1).
    pub last_announced: Option<Instant>,
}

/// A queued multicast (§5.4): sent to members as they are found, up to `limit` copies.
#[derive(Debug, Clone)]
pub struct OutboundMulticast {
    pub group: MulticastGroup,
    pub source_mac: Option<Mac>,
    pub ethertype: u16,
    pub payload: Vec<u8>,
    pub limit: usize,
    /// The gather limit G every copy carries (flag 0x02), later ones too, as upstream re-sends
    /// the same packet (§5.4).
    pub gather_limit: u32,
    pub sent_to: Vec<Address>,
    pub since: Instant,
}

/// One joined network.
pub struct Network {
    pub id: NetworkId,
    /// Our MAC on this network (VL1 §10).
    pub mac: Mac,
    pub config: Option<Arc<NetworkConfig>>,
    pub status: NetworkStatus,
    /// When the current config was accepted (`Instant::ZERO`: request now, §2.1).
    pub last_config_update: Instant,
    pub(crate) last_request: Instant,
    pub(crate) assembler: ConfigAssembler,
    pub(crate) memberships: HashMap<Address, Membership>,
    /// Groups the host's port subscribed to (link-layer multicast scan, §5.1).
    pub(crate) host_groups: BTreeSet<MulticastGroup>,
    /// Groups announced so far (to tell new subscriptions from old).
    pub(crate) announced: BTreeSet<MulticastGroup>,
    pub(crate) last_announce_round: Instant,
    pub(crate) outbound: Vec<OutboundMulticast>,
    pub(crate) last_gather: HashMap<MulticastGroup, Instant>,
    /// Bridge routes learned from active bridges: MAC behind a bridge → the bridge (§4.4).
    pub(crate) bridge_routes: HashMap<Mac, Address>,
    /// `bridge_routes` as the workers' snapshot holds them, until they change.
    bridge_routes_view: Option<Arc<HashMap<Mac, Address>>>,
    /// The LAN bridged into this network (gateway mode).
    pub lan: Option<crate::bridge::LanSide>,
}

impl Network {
    fn new(id: NetworkId, me: Address) -> Self {
        Network {
            id,
            mac: id.mac_for(&me),
            config: None,
            status: NetworkStatus::RequestingConfiguration,
            last_config_update: Instant::ZERO,
            last_request: Instant::ZERO,
            assembler: ConfigAssembler::new(3),
            memberships: HashMap::new(),
            host_groups: BTreeSet::new(),
            announced: BTreeSet::new(),
            last_announce_round: Instant::ZERO,
            outbound: Vec::new(),
            last_gather: HashMap::new(),
            bridge_routes: HashMap::new(),
            bridge_routes_view: None,
            lan: None,
        }
    }

    /// `mac` is behind active bridge `bridge` (§4.4); true if that is news (the workers' copy is
    /// stale). At most 65,536 routes are kept.
    pub(crate) fn learn_bridge_route(&mut self, mac: Mac, bridge: Address) -> bool {
        let news =
            self.bridge_routes.len() < BRIDGE_ROUTES_MAX && self.bridge_routes.insert(mac, bridge) != Some(bridge);
        if news {
            self.bridge_routes_view = None;
        }
        news
    }

    /// The bridge routes for the workers' snapshot (built again only after a change).
    pub(crate) fn bridge_routes_view(&mut self) -> Arc<HashMap<Mac, Address>> {
        self.bridge_routes_view.get_or_insert_with(|| Arc::new(self.bridge_routes.clone())).clone()
    }

    /// Entries the snapshot's tables hold for this network (learned LAN MACs and bridge routes).
    pub(crate) fn table_entries(&self) -> usize {
        self.bridge_routes.len() + self.lan.as_ref().map_or(0, |l| l.macs())
    }

    /// The port MTU: the config's, or 2800 before one arrives.
    pub fn mtu(&self) -> u32 {
        self.config.as_ref().map_or(crate::config::DEFAULT_MTU, |c| c.mtu)
    }

    pub fn membership(&self, member: Address) -> Option<&Membership> {
        self.memberships.get(&member)
    }

    /// The gate (§3.1): a config, and the network is public or we hold a COM for `peer` above its
    /// revocation threshold that our own COM agrees with (§3.2).
    pub fn gate(&self, peer: &Identity) -> bool {
        let Some(config) = &self.config else { return false };
        if config.public {
            return true;
        }
        let (Some(mine), Some(m)) = (&config.com, self.memberships.get(&peer.address())) else { return false };
        let Some(theirs) = &m.com else { return false };
        theirs.timestamp().is_some_and(|t| t > m.com_revocation_threshold) && com_agrees(mine, theirs, peer)
    }
}

/// COM agreement (§3.2): for each of our qualifiers theirs has the same ID within our max
/// delta; if ours carries the identity hash (IDs 3..6), theirs must hash `peer`'s identity.
pub fn com_agrees(mine: &CertificateOfMembership, theirs: &CertificateOfMembership, peer: &Identity) -> bool {
    if mine.qualifiers.is_empty() || theirs.qualifiers.is_empty() {
        return false;
    }
    for q in &mine.qualifiers {
        let Some(t) = theirs.qualifiers.iter().find(|t| t.id == q.id) else { return false };
        if q.value.abs_diff(t.value) > q.max_delta {
            return false;
        }
    }
    if theirs.issued_to() != Some(peer.address()) {
        return false;
    }
    if mine.qualifiers.iter().any(|q| (3..=6).contains(&q.id)) {
        return theirs.identity_hash_matches(peer);
    }
    true
}

/// Config request metadata of a 1.14.1 node (§2.2), byte for byte (263 bytes).
fn request_metadata() -> Vec<u8> {
    let hex = [
        ("v", 7u64),
        ("vend", 1),
        ("pv", 0xc),
        ("majv", u64::from(crate::ANNOUNCED_VERSION.0)),
        ("minv", u64::from(crate::ANNOUNCED_VERSION.1)),
        ("revv", u64::from(crate::ANNOUNCED_VERSION.2)),
        ("mr", 0x400),
        ("mc", 0x80),
        ("mcr", 0x40),
        ("mt", 0x80),
        ("f", 0),
        ("revr", 1),
    ];
    let mut text: Vec<String> = hex.iter().map(|(k, v)| format!("{k}={v:016x}")).collect();
    text.push(format!("o={}/{}", std::env::consts::OS, std::env::consts::ARCH));
    text.join("\n").into_bytes()
}

impl crate::Node {
    /// Creates the network (with a cached config if it parses) and brings its port up (§2.1).
    pub(crate) fn join_with_cache(
        &mut self,
        id: NetworkId,
        dictionary: &[u8],
        now: Instant,
    ) -> Result<(), crate::NodeError> {
        if id.0 == 0 {
            return Err(crate::NodeError::BadNetwork);
        }
        let mut network = Network::new(id, self.me);
        let cached = NetworkConfig::parse(dictionary, id, self.me).ok().map(Arc::new);
        self.events.push_back(Event::NetworkJoined {
            network: id,
            mac: network.mac,
            mtu: cached.as_ref().map_or(crate::config::DEFAULT_MTU, |c| c.mtu),
        });
        if let Some(config) = cached {
            // Installed at once but re-requested at once too (lastConfigUpdate = 0).
            network.config = Some(config.clone());
            network.status = NetworkStatus::Ok;
            self.events.push_back(Event::NetworkConfigured { network: id, config });
        }
        self.networks.insert(id, network);
        self.data_path_dirty = true;
        let _ = now;
        Ok(())
    }

    /// Something is waiting for the 500 ms tick in a network (multicasts awaiting members).
    pub(crate) fn any_pending(&self) -> bool {
        self.networks.values().any(|n| !n.outbound.is_empty())
    }

    /// The per-network part of the 5 s pass: config requests and multicast announcements (§1.3).
    pub(crate) fn network_pass(&mut self, now: Instant) {
        let ids: Vec<NetworkId> = self.networks.keys().copied().collect();
        for id in ids {
            let due = self.networks.get(&id).is_some_and(|n| {
                n.config.is_none()
                    || n.last_config_update == Instant::ZERO
                    || since(now, n.last_config_update) >= CONFIG_REFRESH_MS
            });
            if due {
                self.request_config(now, id);
            }
            self.announce_groups(now, id);
        }
    }

    /// NETWORK_CONFIG_REQUEST to the controller (§2.2).
    pub(crate) fn request_config(&mut self, now: Instant, id: NetworkId) {
        let Some(network) = self.networks.get_mut(&id) else { return };
        // At most one request per second, whatever triggers it (`ZT_NETCONF_MIN_REQUEST_PERIOD`).
        if !elapsed(now, network.last_request, 1_000) {
            return;
        }
        network.last_request = now;
        let (revision, timestamp) = network.config.as_ref().map_or((0, 0), |c| (c.revision, c.timestamp));
        let request = NetworkConfigRequest {
            network_id: id,
            metadata: request_metadata(),
            have_revision: revision,
            have_timestamp: timestamp,
        };
        let mut payload = Vec::new();
        request.encode(&mut payload);
        let controller = id.controller();
        if controller == self.me {
            // Our own network: ask our controller directly (§2.2).
            let me = self.identity.to_public();
            let answer = self.controller.as_mut().and_then(|c| c.request(now, id, &me, &request.metadata));
            match answer {
                Some(Ok(dictionary)) => self.install_config(now, id, &dictionary),
                Some(Err(code)) => self.on_network_error(now, controller, id, Verb::NetworkConfigRequest, code),
                None => {}
            }
            return;
        }
        self.send(now, controller, Outgoing::new(Verb::NetworkConfigRequest, payload).compressed().expecting_reply());
    }

    /// A pushed config chunk (NETWORK_CONFIG, §2.4): accepted from anyone, the signature decides.
    pub(crate) fn on_pushed_config(&mut self, now: Instant, rx: &Received<'_>) {
        match ConfigChunk::decode(&mut Reader::new(rx.payload)) {
            Ok(chunk) => self.on_config_chunk(now, rx, chunk, false),
            Err(_) => self.counters.dropped_malformed += 1,
        }
    }

    /// One config chunk, from OK(NETWORK_CONFIG_REQUEST) (`reply`) or NETWORK_CONFIG (§2.4).
    pub(crate) fn on_config_chunk(&mut self, now: Instant, rx: &Received<'_>, chunk: ConfigChunk, reply: bool) {
        let id = chunk.network_id;
        let controller = id.controller();
        if !self.networks.contains_key(&id) {
            return;
        }
        match &chunk.signed {
            Some(sig) => {
                let Some(identity) = self.identity_of(controller) else {
                    self.request_whois(now, controller);
                    self.park_opened(now, rx);
                    return;
                };
                if sig.chunk_index as usize + chunk.data.len() > sig.total_len as usize || !chunk.verify(&identity) {
                    self.counters.configs_rejected += 1;
                    return;
                }
            }
            // The unsigned legacy form only from the controller itself, as one chunk.
            None if rx.source != controller => return,
            None => {}
        }
        let update_id = chunk.signed.as_ref().map_or(0, |s| s.update_id);
        let assembled = match self.networks.get_mut(&id).map(|n| n.assembler.add(&chunk)) {
            Some(Ok(Some(dictionary))) => dictionary,
            Some(Ok(None)) => return,
            Some(Err(_)) | None => {
                self.counters.configs_rejected += 1;
                return;
            }
        };
        self.install_config(now, id, &assembled);
        if !reply {
            // A completed push is acknowledged with OK in-re ECHO (VL1 §8.3).
            let mut payload = Vec::new();
            payload.put_u64(id.0);
            payload.put_u64(update_id);
            let ok =
                OkMessage { in_re_verb: Verb::Echo, in_re_packet_id: rx.packet_id, payload: OkPayload::Other(payload) };
            let mut bytes = Vec::new();
            ok.encode(&mut bytes);
            self.reply(now, rx, Outgoing::new(Verb::Ok, bytes));
        }
    }

    /// Installs a verified, assembled config (§2.4).
    pub(crate) fn install_config(&mut self, now: Instant, id: NetworkId, dictionary: &[u8]) {
        let config = match NetworkConfig::parse(dictionary, id, self.me) {
            Ok(c) => c,
            Err(_) => {
                self.counters.configs_rejected += 1;
                return;
            }
        };
        let Some(network) = self.networks.get_mut(&id) else { return };
        network.last_config_update = now;
        network.status = NetworkStatus::Ok;
        if network.config.as_ref().is_some_and(|c| c.dictionary == dictionary) {
            return;
        }
        let config = Arc::new(config);
        network.config = Some(config.clone());
        self.counters.configs_installed += 1;
        self.events.push_back(Event::NetworkConfigured { network: id, config });
        self.events.push_back(Event::SaveNetwork { network: id, dictionary: dictionary.to_vec() });
        // A new config can shut members out: no spacing.
        self.data_path_dirty = true;
        self.publish_now();
        // New addresses mean new ARP/ND groups: announce them now.
        self.announce_groups(now, id);
        // Credentials may now let parked frames through.
        self.retry_parked(now, None);
    }

    /// ERRORs about a network from its controller (§2.6).
    pub(crate) fn on_network_error(
        &mut self,
        _now: Instant,
        source: Address,
        id: NetworkId,
        in_re: Verb,
        code: ErrorCode,
    ) {
        if source != id.controller() {
            return;
        }
        let Some(network) = self.networks.get_mut(&id) else { return };
        network.status = match code {
            ErrorCode::OBJ_NOT_FOUND | ErrorCode::UNSUPPORTED_OPERATION if in_re == Verb::NetworkConfigRequest => {
                NetworkStatus::NotFound
            }
            ErrorCode::NETWORK_ACCESS_DENIED => NetworkStatus::AccessDenied,
            ErrorCode::NETWORK_AUTHENTICATION_REQUIRED => NetworkStatus::AuthenticationRequired,
            _ => return,
        };
    }

    // ---- credentials (§3.3, §3.4) ----

    /// Our credentials for `id`: COM ‖ 00 ‖ capabilities ‖ tags ‖ no revocations ‖ COOs.
    fn credentials_payload(&self, id: NetworkId) -> Option<Vec<u8>> {
        let config = self.networks.get(&id)?.config.as_ref()?;
        let credentials = NetworkCredentials {
            coms: config.com.iter().cloned().collect(),
            capabilities: config.capabilities.clone(),
            tags: config.tags.clone(),
            revocations: Vec::new(),
            certificates_of_ownership: config.coos.clone(),
        };
        let mut payload = Vec::new();
        credentials.encode(&mut payload);
        Some(payload)
    }

    /// Pushes our credentials to `peer` if it never had them, our config changed since, or the
    /// last push is 500 s old (§3.3) — before unicast frames and multicast copies.
    pub(crate) fn push_credentials_if_needed(&mut self, now: Instant, id: NetworkId, peer: Address) {
        self.push_credentials_after(now, id, peer, CREDENTIALS_REPUSH_MS);
    }

    /// The peer asked (NEED_MEMBERSHIP_CERTIFICATE): push if the config changed or ≥ 1 s passed.
    pub(crate) fn repush_credentials(&mut self, now: Instant, id: NetworkId, peer: Address) {
        self.push_credentials_after(now, id, peer, CREDENTIALS_ASKED_MS);
    }

    fn push_credentials_after(&mut self, now: Instant, id: NetworkId, peer: Address, min_age: u64) {
        if !self.make_room(id, peer) {
            return;
        }
        let Some(network) = self.networks.get_mut(&id) else { return };
        let Some(config_ts) = network.config.as_ref().map(|c| c.timestamp) else { return };
        let m = network.memberships.entry(peer).or_default();
        let fresh = m.last_pushed.is_some_and(|t| since(now, t) < min_age) && m.pushed_config_timestamp == config_ts;
        if fresh {
            return;
        }
        m.last_pushed = Some(now);
        m.pushed_config_timestamp = config_ts;
        self.data_path_dirty = true;
        if let Some(payload) = self.credentials_payload(id) {
            self.send(now, peer, Outgoing::new(Verb::NetworkCredentials, payload).compressed());
        }
    }

    /// NETWORK_CREDENTIALS (§3.4).
    pub(crate) fn on_credentials(&mut self, now: Instant, rx: &Received<'_>) {
        if let Some(peer) = self.peers.get_mut(&rx.source) {
            if peer.last_credentials_accepted.is_some_and(|t| since(now, t) < CREDENTIALS_ACCEPT_MS)
                && self.parking_since.is_none()
            {
                self.counters.dropped_rate_limited += 1;
                return;
            }
            peer.last_credentials_accepted = Some(now);
        }
        let Ok(credentials) = NetworkCredentials::decode(rx.payload) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        let mut changed: BTreeSet<NetworkId> = BTreeSet::new();
        for com in &credentials.coms {
            match self.accept_com(now, com) {
                ComOutcome::Accepted(id) => {
                    changed.insert(id);
                }
                ComOutcome::NeedSigner(controller) => {
                    self.request_whois(now, controller);
                    self.park_opened(now, rx);
                    return;
                }
                ComOutcome::Rejected => {}
            }
        }
        for coo in &credentials.certificates_of_ownership {
            if let Some(id) = self.accept_coo(coo) {
                changed.insert(id);
            }
        }
        for tag in &credentials.tags {
            if let Some(id) = self.accept_tag(tag) {
                changed.insert(id);
            }
        }
        for revocation in &credentials.revocations {
            if let Some(id) = self.accept_revocation(revocation) {
                changed.insert(id);
            }
        }
        if !changed.is_empty() {
            // A revoked member must stop at once: no spacing.
            self.data_path_dirty = true;
            self.publish_now();
            for id in &changed {
                self.mark_trusted(now, *id, rx);
            }
            self.retry_parked(now, Some(rx.source));
        }
    }

    pub(crate) fn accept_com(&mut self, _now: Instant, com: &CertificateOfMembership) -> ComOutcome {
        let (Some(id), Some(member)) = (com.network_id(), com.issued_to()) else { return ComOutcome::Rejected };
        let controller = id.controller();
        if com.signed_by != controller || com.qualifiers.len() > 8 {
            return ComOutcome::Rejected;
        }
        let Some(network) = self.networks.get(&id) else { return ComOutcome::Rejected };
        let m = network.memberships.get(&member);
        let timestamp = com.timestamp().unwrap_or(0);
        if m.is_some_and(|m| {
            timestamp <= m.com_revocation_threshold
                || m.com.as_ref().is_some_and(|c| c.timestamp().unwrap_or(0) > timestamp)
        }) {
            return ComOutcome::Rejected;
        }
        if m.and_then(|m| m.com.as_ref()) == Some(com) {
            return ComOutcome::Rejected; // redundant
        }
        let Some(signer) = self.identity_of(controller) else {
            return ComOutcome::NeedSigner(controller);
        };
        if !com.verify(&signer) {
            return ComOutcome::Rejected;
        }
        if !self.make_room(id, member) {
            return ComOutcome::Rejected;
        }
        let Some(network) = self.networks.get_mut(&id) else { return ComOutcome::Rejected };
        network.memberships.entry(member).or_default().com = Some(com.clone());
        ComOutcome::Accepted(id)
    }

    fn accept_coo(&mut self, coo: &CertificateOfOwnership) -> Option<NetworkId> {
        let id = coo.network_id;
        let signer = self.identity_of(id.controller())?;
        if coo.signed_by != id.controller() || !coo.verify(&signer) {
            return None;
        }
        let network = self.networks.get_mut(&id)?;
        let m = network.memberships.get_mut(&coo.issued_to)?;
        if let Some(old) = m.coos.iter_mut().find(|c| c.id == coo.id) {
            if old.timestamp >= coo.timestamp {
                return None;
            }
            *old = coo.clone();
        } else if m.coos.len() < 4 {
            m.coos.push(coo.clone());
        }
        Some(id)
    }

    fn accept_tag(&mut self, tag: &Tag) -> Option<NetworkId> {
        let id = tag.network_id;
        let signer = self.identity_of(id.controller())?;
        if tag.signed_by != id.controller() || !signer.verify(&tag.signed_bytes(), &tag.signature) {
            return None;
        }
        let network = self.networks.get_mut(&id)?;
        let m = network.memberships.get_mut(&tag.issued_to)?;
        if m.tags.get(&tag.id).is_some_and(|old| old.timestamp >= tag.timestamp) || m.tags.len() >= 64 {
            return None;
        }
        m.tags.insert(tag.id, tag.clone());
        Some(id)
    }

    /// Revocations from the controller raise the target's COM threshold (§3.6; types 2–4 raise
    /// it too, as 1.14.1 does).
    pub(crate) fn accept_revocation(&mut self, revocation: &Revocation) -> Option<NetworkId> {
        let id = revocation.network_id;
        let signer = self.identity_of(id.controller())?;
        if revocation.signed_by != id.controller() || !signer.verify(&revocation.signed_bytes(), &revocation.signature)
        {
            return None;
        }
        let network = self.networks.get_mut(&id)?;
        let m = network.memberships.entry(revocation.target).or_default();
        if revocation.threshold <= m.com_revocation_threshold {
            return None;
        }
        m.com_revocation_threshold = revocation.threshold;
        Some(id)
    }

    /// Gate-passing traffic and accepted credentials mark the peer and its arrival path
    /// trust-established (§3.1), and at most every 60 s the peer gets our groups (§5.2).
    pub(crate) fn mark_trusted(&mut self, now: Instant, id: NetworkId, rx: &Received<'_>) {
        if let Some(path) = self.peers.get_mut(&rx.source).and_then(|p| p.path_mut(rx.local, rx.remote)) {
            path.trust_established = Some(now);
            if self.trusted_paths.len() < MAX_TRUSTED_PATHS || self.trusted_paths.contains_key(&(rx.local, rx.remote)) {
                self.trusted_paths.insert((rx.local, rx.remote), now);
            }
        }
        let announce = match self.networks.get_mut(&id) {
            Some(network)
                if network.memberships.len() < MAX_MEMBERSHIPS || network.memberships.contains_key(&rx.source) =>
            {
                let m = network.memberships.entry(rx.source).or_default();
                let due = m.last_announced.is_none_or(|t| since(now, t) >= crate::multicast::ANNOUNCE_MS);
                if due {
                    m.last_announced = Some(now);
                }
                due
            }
            _ => false,
        };
        if announce {
            self.announce_groups_to(now, id, rx.source);
        }
    }

    /// Housekeeping of memberships: an entry without a certificate whose peer we no longer know,
    /// or that we have not pushed to within 500 s, is dropped, so that pushes to peers that only
    /// asked cannot fill the table and shut real members out (upstream drops memberships of
    /// peers it forgot).
    pub(crate) fn expire_memberships(&mut self, now: Instant) {
        let peers = &self.peers;
        for network in self.networks.values_mut() {
            network.memberships.retain(|address, m| {
                m.com.is_some() && peers.contains_key(address)
                    || m.last_pushed.is_some_and(|t| since(now, t) < CREDENTIALS_REPUSH_MS)
                        && peers.contains_key(address)
            });
        }
    }

    /// Room for a new membership in `id`: when full, one without a certificate gives way.
    fn make_room(&mut self, id: NetworkId, member: Address) -> bool {
        let Some(network) = self.networks.get_mut(&id) else { return false };
        if network.memberships.len() < MAX_MEMBERSHIPS || network.memberships.contains_key(&member) {
            return true;
        }
        let victim = network.memberships.iter().find(|(_, m)| m.com.is_none()).map(|(a, _)| *a);
        match victim {
            Some(v) => {
                network.memberships.remove(&v);
                true
            }
            None => false,
        }
    }

    /// The public identity behind `address`: ours, or a peer's. A controller signs with its own
    /// identity, and may be this node.
    pub(crate) fn identity_of(&self, address: Address) -> Option<Identity> {
        if address == self.me {
            return Some(self.identity.to_public());
        }
        self.peers.get(&address).map(|p| p.identity.clone())
    }

    /// Whether `peer` passes `id`'s gate.
    pub(crate) fn passes_gate(&self, id: NetworkId, peer: Address) -> bool {
        match (self.networks.get(&id), self.peers.get(&peer)) {
            (Some(network), Some(p)) => network.gate(&p.identity),
            _ => false,
        }
    }
}

pub(crate) enum ComOutcome {
    Accepted(NetworkId),
    NeedSigner(Address),
    Rejected,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_metadata_is_what_1_14_1_sends() {
        let m = request_metadata();
        assert_eq!(m.len(), 263, "{}", String::from_utf8_lossy(&m));
        assert!(m.starts_with(b"v=0000000000000007\nvend=0000000000000001\npv=000000000000000c\n"));
        assert!(m.ends_with(b"revr=0000000000000001\no=linux/x86_64"));
    }
}
