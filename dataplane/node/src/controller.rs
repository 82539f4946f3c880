//! The hook through which a node answers config requests for networks it controls (§2.3:
//! "a node that is its own controller calls it locally"). The node does the protocol part —
//! signing, chunking (≤ 9 740 bytes), OK or ERROR on the request's path; the [`Controller`]
//! only decides what a member gets.

use crate::node::{Outgoing, Received};
use crate::time::Instant;
use crate::{Identity, NetworkId};
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
}

impl crate::Node {
    /// Makes this node the controller of its networks.
    pub fn set_controller(&mut self, controller: Box<dyn Controller>) {
        self.controller = Some(controller);
    }

    /// NETWORK_CONFIG_REQUEST: answered by our controller for our networks; without one, or for
    /// another controller's network, UNSUPPORTED_OPERATION (§2.3).
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
            _ => Some(Err(ErrorCode::UNSUPPORTED_OPERATION)),
        };
        match answer {
            None => {}
            Some(Err(code)) => self.reply_error(now, rx, code, Some(id)),
            Some(Ok(dictionary)) => {
                let update_id = self.random_u64().max(1);
                let total = dictionary.len() as u32;
                for (index, piece) in dictionary.chunks(MAX_CHUNK_LEN).enumerate() {
                    let mut chunk = ConfigChunk { network_id: id, data: piece.to_vec(), signed: None };
                    let offset = (index * MAX_CHUNK_LEN) as u32;
                    if chunk.sign(&self.identity, 0, update_id, total, offset).is_err() {
                        return;
                    }
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
}
