//! [`NetworkController`]: the networks under our address and their members, answering config
//! requests (§2.3) and the management operations behind zerotier-one's `/controller/...` API.
//!
//! Pure: it never reads a clock or a file. The node passes its [`Instant`] and the host says, at
//! construction, which Unix time that instant's origin is (the controller's clock is wall time:
//! `ts`, credential timestamps and the records' times are Unix milliseconds, so they stay valid
//! across restarts). The host loads the stored records with [`NetworkController::load_network`]
//! and [`NetworkController::load_member`], and persists what [`NetworkController::poll_store`]
//! returns.
//!
//! Behaviour (EmbeddedNetworkController.cpp `request`, `_request`, `onNetworkUpdate`,
//! `onNetworkMemberUpdate`, `onNetworkMemberDeauthorize`; FileDB.cpp `save`):
//! * requests for networks of other controllers are not answered; repeats within 1 000 ms per
//!   (network, member) are dropped;
//! * unknown network → OBJ_NOT_FOUND; a member whose stored identity differs from the
//!   requester's → NETWORK_ACCESS_DENIED; an unauthorized member → NETWORK_ACCESS_DENIED, its
//!   record created (unauthorized) so that an operator can authorize it. Authorized = the
//!   member's flag, a public network (which authorizes it, type `public`), or a valid
//!   `token:` in the request's `a` metadata;
//! * a record is written (and its `revision` incremented) only when something other than the
//!   revision changed;
//! * after a network or member change, members that asked within 120 s and were authorized
//!   then get the new config pushed; deauthorizing (or deleting an authorized member, or the
//!   network) sends a COM revocation to every member that asked within 120 s (§3.6).
//!
//! Not reproduced: upstream also pushes after the member record changes *during* a request
//! (the first config is then sent twice); SSO; remote trace reports.

use crate::error::ControllerError;
use crate::inet::InetAddr;
use crate::json::{self, Object, canonical};
use crate::netconf::{self, Issue};
use crate::records::{
    clean_member, clean_network, init_member, init_network, same_record, update_member, update_network,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use ztplane_crypto::{Address, Identity};
use ztplane_node::controller::{Controller, Push};
use ztplane_node::{Instant, NetworkId};
use ztplane_protocol::credentials::Revocation;
use ztplane_protocol::dictionary::Dictionary;
use ztplane_protocol::verbs::ErrorCode;
use ztplane_protocol::wire::address_from_u64;

/// `ZT_NETCONF_CONTROLLER_API_VERSION` (`GET /controller`).
pub const API_VERSION: u64 = 4;
/// `ZT_NETCONF_MIN_REQUEST_PERIOD`: requests closer together are dropped.
pub const MIN_REQUEST_PERIOD_MS: u64 = 1_000;
/// A member that asked within this long is online: it gets pushes and revocations.
pub const ONLINE_MS: u64 = 120_000;

/// A record to persist (FileDB layout: `network/<nwid>.json`, `network/<nwid>/member/<id>.json`).
#[derive(Debug, Clone, PartialEq)]
pub enum StoreChange {
    Network {
        id: NetworkId,
        record: Value,
    },
    Member {
        network: NetworkId,
        address: Address,
        record: Value,
    },
    /// The network's file and its directory of members.
    NetworkDeleted {
        id: NetworkId,
    },
    MemberDeleted {
        network: NetworkId,
        address: Address,
    },
}

/// A network and its members, as stored.
#[derive(Debug, Clone, Default)]
struct ControlledNetwork {
    record: Object,
    members: BTreeMap<Address, Object>,
}

/// What the controller remembers of a member between requests (not stored).
#[derive(Debug, Clone)]
struct MemberStatus {
    /// Unix ms of the last request.
    last_request: u64,
    /// Set by the last request that was answered with a config: what a push re-uses.
    identity: Option<Identity>,
    metadata: Option<Vec<u8>>,
}

/// zerotier-one's embedded network controller for the networks under one identity.
pub struct NetworkController {
    identity: Identity,
    unix_origin_ms: u64,
    random: u64,
    networks: BTreeMap<NetworkId, ControlledNetwork>,
    status: HashMap<(NetworkId, Address), MemberStatus>,
    pushes: VecDeque<Push>,
    changes: VecDeque<StoreChange>,
}

impl NetworkController {
    /// A controller signing with `identity` (which must hold its secret), whose clock reads
    /// `unix_origin_ms` at the node's `Instant::ZERO`; `seed` drives new network IDs and
    /// revocation IDs.
    pub fn new(identity: Identity, unix_origin_ms: u64, seed: u64) -> Self {
        NetworkController {
            identity,
            unix_origin_ms,
            random: seed,
            networks: BTreeMap::new(),
            status: HashMap::new(),
            pushes: VecDeque::new(),
            changes: VecDeque::new(),
        }
    }

    /// Re-anchors the clock: `unix_origin_ms` is the Unix time at the node's `Instant::ZERO` (set
    /// when the host starts the node's clock after loading the records).
    pub fn set_clock(&mut self, unix_origin_ms: u64) {
        self.unix_origin_ms = unix_origin_ms;
    }

    /// Our address: the first ten digits of every network we control.
    pub fn address(&self) -> Address {
        self.identity.address()
    }

    /// The controller's clock (Unix ms) at the node's `now`.
    pub fn clock(&self, now: Instant) -> u64 {
        self.unix_origin_ms.saturating_add(now.as_millis())
    }

    fn next_random(&mut self) -> u64 {
        self.random = self.random.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.random;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    // ---- loading and persisting ----

    /// Takes a stored network record (`network/<nwid>.json`); returns its ID. A network loaded
    /// again replaces the first (its members stay).
    pub fn load_network(&mut self, record: Value) -> Result<NetworkId, ControllerError> {
        let Value::Object(record) = record else { return Err(ControllerError::NotAnObject) };
        let id = NetworkId(hex_id(record.get("id"), 16, "id")?);
        self.networks.entry(id).or_default().record = record;
        Ok(id)
    }

    /// Takes a stored member record of `network` (`network/<nwid>/member/<id>.json`); returns
    /// its address.
    pub fn load_member(&mut self, network: NetworkId, record: Value) -> Result<Address, ControllerError> {
        let Value::Object(record) = record else { return Err(ControllerError::NotAnObject) };
        let address = address_from_u64(hex_id(record.get("id"), 10, "id")?);
        if let Some(nwid) = record.get("nwid") {
            let text = json::string(Some(nwid), "");
            if u64::from_str_radix(&text, 16).ok() != Some(network.0) {
                return Err(ControllerError::WrongNetwork { expected: network, found: text });
            }
        }
        let net = self.networks.get_mut(&network).ok_or(ControllerError::NoSuchNetwork(network))?;
        net.members.insert(address, record);
        Ok(address)
    }

    /// The next record to write or remove.
    pub fn poll_store(&mut self) -> Option<StoreChange> {
        self.changes.pop_front()
    }

    // ---- the management API (EmbeddedNetworkController::configureHTTPControlPlane) ----

    /// `GET /controller`.
    pub fn status(&self, now: Instant) -> Value {
        json!({"controller": true, "apiVersion": API_VERSION, "clock": self.clock(now), "databaseReady": true})
    }

    /// `GET /controller/network`: the IDs, in order.
    pub fn network_ids(&self) -> Vec<NetworkId> {
        self.networks.keys().copied().collect()
    }

    /// `GET /controller/network/<nwid>`.
    pub fn network(&self, id: NetworkId) -> Option<Value> {
        self.networks.get(&id).map(|n| canonical(&Value::Object(n.record.clone())))
    }

    /// `GET /unstable/controller/network`: every network with member counts.
    pub fn network_summaries(&self) -> Value {
        let data: Vec<Value> = self
            .networks
            .values()
            .map(|n| {
                let mut record = n.record.clone();
                let authorized = n.members.values().filter(|m| json::boolean(m.get("authorized"), false)).count();
                record.insert(
                    "meta".into(),
                    json!({"totalMemberCount": n.members.len(), "authorizedMemberCount": authorized}),
                );
                canonical(&Value::Object(record))
            })
            .collect();
        json!({"data": data, "meta": {"networkCount": self.networks.len()}})
    }

    /// `POST /controller/network/<nwid>`: creates or changes the network; its record after.
    pub fn post_network(&mut self, now: Instant, id: NetworkId, body: &Value) -> Value {
        let now_ms = self.clock(now);
        let mut record = self.networks.get(&id).map(|n| n.record.clone()).unwrap_or_default();
        init_network(&mut record, now_ms);
        update_network(&mut record, body);
        let text = format!("{:016x}", id.0);
        record.insert("id".into(), json!(text));
        record.insert("nwid".into(), json!(text));
        clean_network(&mut record);
        canonical(&Value::Object(self.save_network(now_ms, id, record)))
    }

    /// `POST /controller/network` and `POST /controller/network/<our address>______`: a new
    /// network with a random ID under our address; `None` if none is free.
    pub fn create_network(&mut self, now: Instant, body: &Value) -> Option<Value> {
        let prefix = self.address().as_u64() << 24;
        for _ in 0..100_000 {
            let mut id = prefix | (self.next_random() & 0xff_ffff);
            if id & 0xff_ffff == 0 {
                id |= 1;
            }
            if !self.networks.contains_key(&NetworkId(id)) {
                return Some(self.post_network(now, NetworkId(id), body));
            }
        }
        None
    }

    /// `DELETE /controller/network/<nwid>`: its record, or `None` if unknown. Every online
    /// member gets a revocation for every member (upstream deauthorizes them all).
    pub fn delete_network(&mut self, now: Instant, id: NetworkId) -> Option<Value> {
        let now_ms = self.clock(now);
        let network = self.networks.get(&id)?;
        let record = canonical(&Value::Object(network.record.clone()));
        let members: Vec<Address> = network.members.keys().copied().collect();
        for member in members {
            self.revoke(now_ms, id, member);
        }
        self.networks.remove(&id);
        self.status.retain(|(n, _), _| *n != id);
        self.changes.push_back(StoreChange::NetworkDeleted { id });
        Some(record)
    }

    /// `GET /controller/network/<nwid>/member`: `{address: revision}`, or `None` if unknown.
    pub fn member_revisions(&self, id: NetworkId) -> Option<Value> {
        let network = self.networks.get(&id)?;
        let out: serde_json::Map<String, Value> = network
            .members
            .iter()
            .map(|(address, m)| (address.to_string(), json!(json::int(m.get("revision"), 0))))
            .collect();
        Some(canonical(&Value::Object(out)))
    }

    /// `GET /unstable/controller/network/<nwid>/member`: every member record with counts.
    pub fn member_records(&self, id: NetworkId) -> Option<Value> {
        let network = self.networks.get(&id)?;
        let data: Vec<Value> = network.members.values().map(|m| canonical(&Value::Object(m.clone()))).collect();
        let authorized = network.members.values().filter(|m| json::boolean(m.get("authorized"), false)).count();
        Some(json!({"data": data, "meta": {"totalCount": network.members.len(), "authorizedCount": authorized}}))
    }

    /// `GET /controller/network/<nwid>/member/<address>`.
    pub fn member(&self, id: NetworkId, address: Address) -> Option<Value> {
        let m = self.networks.get(&id)?.members.get(&address)?;
        Some(canonical(&Value::Object(m.clone())))
    }

    /// `POST /controller/network/<nwid>/member/<address>`: creates or changes the member; its
    /// record after, or `None` if the network is unknown.
    pub fn post_member(&mut self, now: Instant, id: NetworkId, address: Address, body: &Value) -> Option<Value> {
        let now_ms = self.clock(now);
        let mut record = self.networks.get(&id)?.members.get(&address).cloned().unwrap_or_default();
        init_member(&mut record, now_ms);
        update_member(&mut record, body, now_ms);
        record.insert("id".into(), json!(address.to_string()));
        record.insert("address".into(), json!(address.to_string()));
        record.insert("nwid".into(), json!(format!("{:016x}", id.0)));
        clean_member(&mut record);
        let (record, old) = self.save_member(id, address, record)?;
        if let Some(old) = old {
            self.member_changed(now_ms, id, address, Some(&old), Some(&record));
        }
        Some(canonical(&Value::Object(record)))
    }

    /// `DELETE /controller/network/<nwid>/member/<address>`: its record, or `None` if unknown.
    /// Deleting an authorized member revokes it.
    pub fn delete_member(&mut self, now: Instant, id: NetworkId, address: Address) -> Option<Value> {
        let now_ms = self.clock(now);
        let old = self.networks.get_mut(&id)?.members.remove(&address)?;
        self.changes.push_back(StoreChange::MemberDeleted { network: id, address });
        self.member_changed(now_ms, id, address, Some(&old), None);
        Some(canonical(&Value::Object(old)))
    }

    // ---- records and what follows from their changes ----

    /// FileDB `save` for a network: stored (revision + 1) only if changed; online members are
    /// then sent the new config.
    fn save_network(&mut self, now_ms: u64, id: NetworkId, mut record: Object) -> Object {
        let network = self.networks.entry(id).or_default();
        let changed = network.record.is_empty() || !same_record(&network.record, &record);
        if !changed {
            return network.record.clone();
        }
        record.insert("revision".into(), json!(json::int(record.get("revision"), 0) + 1));
        network.record = record.clone();
        self.changes.push_back(StoreChange::Network { id, record: canonical(&Value::Object(record.clone())) });
        let online: Vec<Address> = self
            .status
            .iter()
            .filter(|((n, _), s)| *n == id && online(now_ms, s) && s.metadata.is_some())
            .map(|((_, a), _)| *a)
            .collect();
        for member in online {
            self.push_config(now_ms, id, member);
        }
        record
    }

    /// FileDB `save` for a member: stored (revision + 1) only if changed. Returns the record
    /// and, if it changed, the one before (an empty object for a new member); `None` if the
    /// network is unknown.
    fn save_member(&mut self, id: NetworkId, address: Address, mut record: Object) -> Option<(Object, Option<Object>)> {
        let network = self.networks.get_mut(&id)?;
        let old = network.members.get(&address);
        if old.is_some_and(|old| same_record(old, &record)) {
            return Some((old?.clone(), None));
        }
        record.insert("revision".into(), json!(json::int(record.get("revision"), 0) + 1));
        let old = network.members.insert(address, record.clone()).unwrap_or_default();
        let stored = canonical(&Value::Object(record.clone()));
        self.changes.push_back(StoreChange::Member { network: id, address, record: stored });
        Some((record, Some(old)))
    }

    /// `onNetworkMemberUpdate` and `onNetworkMemberDeauthorize`.
    fn member_changed(
        &mut self,
        now_ms: u64,
        id: NetworkId,
        address: Address,
        old: Option<&Object>,
        new: Option<&Object>,
    ) {
        let was = old.is_some_and(|m| json::boolean(m.get("authorized"), false));
        let is = new.is_some_and(|m| json::boolean(m.get("authorized"), false));
        if new.is_some() && self.status.get(&(id, address)).is_some_and(|s| online(now_ms, s) && s.metadata.is_some()) {
            self.push_config(now_ms, id, address);
        }
        if was && !is {
            self.revoke(now_ms, id, address);
        }
    }

    /// Re-runs the member's last request and queues the answer (§2.3 "Pushes").
    fn push_config(&mut self, now_ms: u64, id: NetworkId, member: Address) {
        let Some(status) = self.status.get(&(id, member)) else { return };
        let (Some(identity), Some(metadata)) = (status.identity.clone(), status.metadata.clone()) else { return };
        let answer = self.answer(now_ms, id, &identity, &metadata, false);
        self.pushes.push_back(Push::Config { network: id, member, answer });
    }

    /// A COM revocation for `target`, signed now, for every member online on the network (§3.6).
    fn revoke(&mut self, now_ms: u64, id: NetworkId, target: Address) {
        let mut revocation = Revocation {
            id: self.next_random() as u32,
            network_id: id,
            credential_id: 0,
            threshold: now_ms,
            flags: 0x01,
            target,
            signed_by: self.address(),
            credential_type: 1,
            signature_type: 1,
            signature: Vec::new(),
            extension: Vec::new(),
        };
        let Ok(signature) = self.identity.sign(&revocation.signed_bytes()) else { return };
        revocation.signature = signature.to_vec();
        let mut to: Vec<Address> =
            self.status.iter().filter(|((n, _), s)| *n == id && online(now_ms, s)).map(|((_, a), _)| *a).collect();
        to.sort();
        for member in to {
            self.pushes.push_back(Push::Revocation { to: member, revocation: revocation.clone() });
        }
    }

    /// `_request`: the config for `identity` on `id`, or why not. `genuine`: a request from the
    /// member (not a push), which refreshes what pushes re-use.
    fn answer(
        &mut self,
        now_ms: u64,
        id: NetworkId,
        identity: &Identity,
        metadata: &[u8],
        genuine: bool,
    ) -> Result<Vec<u8>, ErrorCode> {
        let Some(network) = self.networks.get(&id) else { return Err(ErrorCode::OBJ_NOT_FOUND) };
        let address = identity.address();
        let existing = network.members.get(&address);
        let new_member = existing.is_none();
        let mut member = existing.cloned().unwrap_or_default();
        init_member(&mut member, now_ms);
        let known = json::string(member.get("identity"), "");
        if known.is_empty() {
            member.insert("identity".into(), json!(identity.to_public_string()));
        } else if known.parse::<Identity>().ok().as_ref() != Some(identity) {
            // Another node with this address: never let it take the member's place.
            return Err(ErrorCode::NETWORK_ACCESS_DENIED);
        }
        member.insert("id".into(), json!(address.to_string()));
        member.insert("address".into(), json!(address.to_string()));
        member.insert("nwid".into(), json!(format!("{:016x}", id.0)));
        let metadata_dict = Dictionary::parse(metadata).unwrap_or_default();
        let mut authorized = json::boolean(member.get("authorized"), false);
        if !authorized {
            let credential = if !json::boolean(network.record.get("private"), true) {
                Some((json!("public"), Value::Null))
            } else {
                token_authorizes(&network.record, &metadata_dict, now_ms).map(|t| (json!("token"), json!(t)))
            };
            if let Some((kind, credential)) = credential {
                authorized = true;
                member.insert("authorized".into(), json!(true));
                member.insert("lastAuthorizedTime".into(), json!(now_ms));
                member.insert("lastAuthorizedCredentialType".into(), kind);
                member.insert("lastAuthorizedCredential".into(), credential);
            }
        }
        if !authorized {
            clean_member(&mut member);
            self.save_member(id, address, member);
            return Err(ErrorCode::NETWORK_ACCESS_DENIED);
        }
        if genuine {
            for (field, key) in [("vMajor", "majv"), ("vMinor", "minv"), ("vRev", "revv"), ("vProto", "pv")] {
                member.insert(field.into(), json!(metadata_dict.get_u64(key).unwrap_or(0)));
            }
            let status = self.status.entry((id, address)).or_insert(MemberStatus {
                last_request: now_ms,
                identity: None,
                metadata: None,
            });
            status.identity = Some(identity.to_public());
            status.metadata = Some(metadata.to_vec());
        }
        let taken: BTreeSet<std::net::IpAddr> = network
            .members
            .values()
            .filter_map(|m| m.get("ipAssignments")?.as_array())
            .flatten()
            .filter_map(|ip| InetAddr::parse(ip.as_str()?))
            .map(|a| a.ip)
            .collect();
        let bridges: Vec<Address> = network
            .members
            .iter()
            .filter(|(_, m)| json::boolean(m.get("activeBridge"), false))
            .map(|(a, _)| *a)
            .collect();
        let dictionary = netconf::issue(Issue {
            network_id: id,
            network: &network.record,
            member: &mut member,
            new_member,
            identity,
            metadata: &metadata_dict,
            now: now_ms,
            taken: &taken,
            active_bridges: &bridges,
            signer: &self.identity,
        })?;
        clean_member(&mut member);
        self.save_member(id, address, member);
        Ok(dictionary)
    }
}

/// The token of a `token:<token>` in the request's `a` metadata, if the network lists it and
/// it has not expired (expiry 0 = never).
fn token_authorizes(network: &Object, metadata: &Dictionary, now_ms: u64) -> Option<String> {
    let presented = std::str::from_utf8(metadata.get("a")?).ok()?;
    let token = presented.strip_prefix("token:").filter(|t| !t.is_empty())?;
    let expires = network.get("authTokens")?.as_object()?.get(token)?;
    let expires = expires.as_u64().or_else(|| expires.as_f64().map(|f| f as u64))?;
    (expires == 0 || expires > now_ms).then(|| token.to_string())
}

fn online(now_ms: u64, status: &MemberStatus) -> bool {
    now_ms.saturating_sub(status.last_request) < ONLINE_MS
}

/// A record's `id`: lower- or upper-case hex of exactly `digits` digits.
fn hex_id(v: Option<&Value>, digits: usize, field: &'static str) -> Result<u64, ControllerError> {
    let bad = || ControllerError::BadId { field, digits, found: v.map_or("missing".into(), |v| v.to_string()) };
    let text = v.and_then(Value::as_str).ok_or_else(bad)?;
    if text.len() != digits {
        return Err(bad());
    }
    u64::from_str_radix(text, 16).map_err(|_| bad())
}

impl Controller for NetworkController {
    fn request(
        &mut self,
        now: Instant,
        network: NetworkId,
        member: &Identity,
        metadata: &[u8],
    ) -> Option<Result<Vec<u8>, ErrorCode>> {
        if network.controller() != self.address() {
            return None;
        }
        let now_ms = self.clock(now);
        if self.networks.contains_key(&network) {
            let key = (network, member.address());
            if let Some(status) = self.status.get_mut(&key) {
                if now_ms.saturating_sub(status.last_request) <= MIN_REQUEST_PERIOD_MS {
                    return None;
                }
                status.last_request = now_ms;
            } else {
                self.status.insert(key, MemberStatus { last_request: now_ms, identity: None, metadata: None });
            }
        }
        Some(self.answer(now_ms, network, member, metadata, true))
    }

    fn poll_push(&mut self, _now: Instant) -> Option<Push> {
        self.pushes.pop_front()
    }
}
