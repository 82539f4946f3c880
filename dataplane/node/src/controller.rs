//! The hook through which a node answers config requests for networks it controls (§2.3:
//! "a node that is its own controller calls it locally"). The node does the protocol part —
//! signing, chunking (≤ 9 740 bytes), OK or ERROR on the request's path, NETWORK_CONFIG pushes
//! and revocations after a change; the [`Controller`] only decides what a member gets.

use crate::node::{Outgoing, Received};
use crate::time::Instant;
use crate::{Address, Identity, NetworkId};
use std::sync::{Arc, Mutex};
use ztplane_protocol::credentials::{NetworkCredentials, Revocation};
use ztplane_protocol::header::Verb;
use ztplane_protocol::verbs::netconf::MAX_CHUNK_LEN;
use ztplane_protocol::verbs::{ConfigChunk, ErrorCode, NetworkConfigRequest, OkMessage, OkPayload};

/// Decides configs for the networks whose ID starts with our address.
pub trait Controller: Send {
    /// The netconf dictionary (§2.5) for `member` on `network`, or the error to answer
    /// (OBJ_NOT_FOUND, NETWORK_ACCESS_DENIED, ...). `None`: stay silent (upstream's controller
    /// drops requests repeated within 1 s).
    fn request(
        &mut self,
        now: Instant,
        network: NetworkId,
        member: &Identity,
        metadata: &[u8],
    ) -> Option<Result<Vec<u8>, ErrorCode>>;

    /// What to send since the last call because the controller's state changed (§2.3
    /// "Pushes", §3.6). The node drains this in [`crate::Node::poll_controller`].
    fn poll_push(&mut self, _now: Instant) -> Option<Push> {
        None
    }
}

/// A message the controller wants sent without a request to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// The member's current answer (§2.3 "Pushes"): a config goes out as NETWORK_CONFIG (0x0c),
    /// or is installed if the member is this node; an error reaches only this node's own
    /// membership (upstream sends no ERROR without a request to answer).
    Config { network: NetworkId, member: Address, answer: Result<Vec<u8>, ErrorCode> },
    /// A signed revocation (§3.6) for `to`, in NETWORK_CREDENTIALS `00 ‖ 0000 ‖ 0000 ‖ 0001 ‖
    /// revocation ‖ 0000`, or accepted locally if `to` is this node.
    Revocation { to: Address, revocation: Revocation },
}

/// A controller shared with the host (which also manages it): the node locks it per call.
impl<C: Controller> Controller for Arc<Mutex<C>> {
    fn request(
        &mut self,
        now: Instant,
        network: NetworkId,
        member: &Identity,
        metadata: &[u8],
    ) -> Option<Result<Vec<u8>, ErrorCode>> {
        self.lock().unwrap_or_else(|e| e.into_inner()).request(now, network, member, metadata)
    }

    fn poll_push(&mut self, now: Instant) -> Option<Push> {
        self.lock().unwrap_or_else(|e| e.into_inner()).poll_push(now)
    }
}

impl crate::Node {
    /// Makes this node the controller of its networks. As in zerotier-one (whose nodes always
    /// have one), requests for networks of other controllers are then dropped silently.
    pub fn set_controller(&mut self, controller: Box<dyn Controller>) {
        self.controller = Some(controller);
    }

    /// Sends what the controller queued after a change (pushed configs, revocations). Call it
    /// after changing the controller's state; [`crate::Node::handle_timeout`] calls it too.
    pub fn poll_controller(&mut self, now: Instant) {
        loop {
            let Some(push) = self.controller.as_mut().and_then(|c| c.poll_push(now)) else { return };
            match push {
                Push::Config { network, member, answer } if member == self.me => match answer {
                    Ok(dictionary) => self.install_config(now, network, &dictionary),
                    Err(code) => self.on_network_error(now, self.me, network, Verb::NetworkConfigRequest, code),
                },
                Push::Config { network, member, answer: Ok(dictionary) } => {
                    for chunk in self.config_chunks(network, &dictionary) {
                        let mut payload = Vec::new();
                        chunk.encode(&mut payload);
                        self.send(now, member, Outgoing::new(Verb::NetworkConfig, payload).compressed());
                    }
                }
                Push::Config { answer: Err(_), .. } => {}
                Push::Revocation { to, revocation } if to == self.me => {
                    if self.accept_revocation(&revocation).is_some() {
                        self.data_path_dirty = true;
                        self.publish_now();
                    }
                }
                Push::Revocation { to, revocation } => {
                    let credentials = NetworkCredentials { revocations: vec![revocation], ..Default::default() };
                    let mut payload = Vec::new();
                    credentials.encode(&mut payload);
                    self.send(now, to, Outgoing::new(Verb::NetworkCredentials, payload).compressed());
                }
            }
        }
    }

    /// NETWORK_CONFIG_REQUEST: answered by our controller for our networks, dropped for others;
    /// without a controller, UNSUPPORTED_OPERATION (§2.3).
    pub(crate) fn on_config_request(&mut self, now: Instant, rx: &Received<'_>) {
        let Ok(request) = NetworkConfigRequest::decode(rx.payload) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        let id = request.network_id;
        let member = self.peers.get(&rx.source).map(|p| p.identity.clone());
        let answer = match (&mut self.controller, member) {
            (Some(controller), Some(member)) if id.controller() == self.me => {
                controller.request(now, id, &member, &request.metadata)
            }
            (Some(_), _) => None,
            (None, _) => Some(Err(ErrorCode::UNSUPPORTED_OPERATION)),
        };
        match answer {
            None => {}
            Some(Err(code)) => self.reply_error(now, rx, code, Some(id)),
            Some(Ok(dictionary)) => {
                for chunk in self.config_chunks(id, &dictionary) {
                    let ok = OkMessage {
                        in_re_verb: Verb::NetworkConfigRequest,
                        in_re_packet_id: rx.packet_id,
                        payload: OkPayload::NetworkConfig(chunk),
                    };
                    let mut payload = Vec::new();
                    ok.encode(&mut payload);
                    self.reply(now, rx, Outgoing::new(Verb::Ok, payload).compressed());
                }
            }
        }
    }

    /// One config update as signed chunks of ≤ 9 740 bytes sharing a random update ID (§2.3
    /// "Delivery"); each chunk is signed over nwid … offset.
    fn config_chunks(&mut self, id: NetworkId, dictionary: &[u8]) -> Vec<ConfigChunk> {
        let update_id = self.random_u64().max(1);
        let total = dictionary.len() as u32;
        let mut chunks = Vec::new();
        for (index, piece) in dictionary.chunks(MAX_CHUNK_LEN).enumerate() {
            let mut chunk = ConfigChunk { network_id: id, data: piece.to_vec(), signed: None };
            let offset = (index * MAX_CHUNK_LEN) as u32;
            if chunk.sign(&self.identity, 0, update_id, total, offset).is_err() {
                return Vec::new();
            }
            chunks.push(chunk);
        }
        chunks
    }
}
