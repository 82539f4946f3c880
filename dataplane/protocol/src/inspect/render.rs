//! JSON rendering of decoded messages for the capture decoder (README "`decoded` by verb"):
//! one function per structure, all reading the typed values produced by [`crate::verbs`] and
//! [`crate::credentials`]; signature checks use the inspector's identities.

use super::{Ctx, Inspector, hex, nwid};
use crate::credentials::{CertificateOfMembership, CertificateOfOwnership, NetworkCredentials};
use crate::dictionary::{Dictionary, is_printable};
use crate::ethernet::{InnerFrame, Transport, ethertype_name, ip_proto_name, summarize, tcp_flag_letters};
use crate::inet::read_inet;
use crate::network::Mac;
use crate::verbs::{ConfigChunk, Message, OkPayload};
use crate::wire::Reader;
use serde_json::{Map, Value, json};

impl Inspector {
    pub(super) fn com_json(&self, com: &CertificateOfMembership) -> Value {
        let mut m = Map::new();
        m.insert("qualifier_count".into(), json!(com.qualifiers.len()));
        if let Some(ts) = com.timestamp() {
            m.insert("timestamp".into(), json!(ts));
        }
        if let Some(n) = com.network_id() {
            m.insert("network_id".into(), nwid(n));
        }
        if let Some(a) = com.issued_to() {
            m.insert("issued_to".into(), json!(a.to_string()));
            m.insert(
                "identity_hash_ok".into(),
                json!(self.identity(&a).is_some_and(|id| com.identity_hash_matches(id))),
            );
        }
        m.insert("signed_by".into(), json!(com.signed_by.to_string()));
        m.insert("signature_ok".into(), json!(self.identity(&com.signed_by).is_some_and(|id| com.verify(id))));
        Value::Object(m)
    }

    pub(super) fn coo_json(&self, coo: &CertificateOfOwnership) -> Value {
        json!({
            "network_id": nwid(coo.network_id),
            "timestamp": coo.timestamp,
            "id": coo.id,
            "things": coo.things.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            "issued_to": coo.issued_to.to_string(),
            "signed_by": coo.signed_by.to_string(),
            "signature_ok": self.identity(&coo.signed_by).is_some_and(|id| coo.verify(id)),
        })
    }

    pub(super) fn dictionary_json(&self, dict: &Dictionary, network_config: bool) -> Value {
        let mut text = Map::new();
        let mut binary = Map::new();
        for (k, v) in dict.entries() {
            if is_printable(v) {
                text.insert(k.clone(), json!(String::from_utf8_lossy(v)));
            } else {
                binary.insert(k.clone(), json!(v.len()));
            }
        }
        let mut m = Map::new();
        m.insert("keys".into(), json!(dict.keys().collect::<Vec<_>>()));
        m.insert("text_values".into(), Value::Object(text));
        m.insert("binary_value_lengths".into(), Value::Object(binary));
        if network_config {
            m.insert("decoded_values".into(), self.netconf_values_json(dict));
        }
        Value::Object(m)
    }

    pub(super) fn netconf_values_json(&self, dict: &Dictionary) -> Value {
        let mut m = Map::new();
        if let Some(v) = dict.get("C")
            && let Ok(com) = CertificateOfMembership::read(&mut Reader::new(v))
        {
            m.insert("C".into(), self.com_json(&com));
        }
        if let Some(v) = dict.get("COO") {
            let mut r = Reader::new(v);
            let mut coos = Vec::new();
            while !r.is_empty() {
                match CertificateOfOwnership::read(&mut r) {
                    Ok(c) => coos.push(self.coo_json(&c)),
                    Err(_) => break,
                }
            }
            match coos.len() {
                0 => {}
                1 => {
                    m.insert("COO".into(), coos.remove(0));
                }
                _ => {
                    m.insert("COO".into(), Value::Array(coos));
                }
            }
        }
        if let Some(v) = dict.get("I") {
            let mut r = Reader::new(v);
            let mut ips = Vec::new();
            while !r.is_empty() {
                match read_inet(&mut r) {
                    Ok(Some(sa)) => ips.push(json!(format!("{}/{}", sa.ip(), sa.port()))),
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
            m.insert("I".into(), Value::Array(ips));
        }
        if let Some(v) = dict.get("RT") {
            let mut r = Reader::new(v);
            let mut routes = Vec::new();
            while !r.is_empty() {
                let route = (|| -> crate::Result<Value> {
                    let target = read_inet(&mut r)?;
                    let via = read_inet(&mut r)?;
                    let flags = r.u16("route flags")?;
                    let metric = r.u16("route metric")?;
                    let mut o = Map::new();
                    o.insert(
                        "target".into(),
                        json!(target.map(|t| format!("{}/{}", t.ip(), t.port())).unwrap_or_default()),
                    );
                    if let Some(via) = via {
                        o.insert("via".into(), json!(via.ip().to_string()));
                    }
                    o.insert("flags".into(), json!(flags));
                    o.insert("metric".into(), json!(metric));
                    Ok(Value::Object(o))
                })();
                match route {
                    Ok(v) => routes.push(v),
                    Err(_) => break,
                }
            }
            m.insert("RT".into(), Value::Array(routes));
        }
        Value::Object(m)
    }

    pub(super) fn chunk_json(&mut self, chunk: &ConfigChunk) -> Value {
        let mut m = Map::new();
        m.insert("network_id".into(), nwid(chunk.network_id));
        m.insert("chunk_len".into(), json!(chunk.data.len()));
        let controller = chunk.network_id.controller();
        let signature_ok = self.identity(&controller).is_some_and(|id| chunk.verify(id));
        if let Some(s) = &chunk.signed {
            m.insert("flags".into(), json!(s.flags));
            m.insert("config_update_id".into(), json!(hex(&s.update_id.to_be_bytes())));
            m.insert("total_len".into(), json!(s.total_len));
            m.insert("chunk_index".into(), json!(s.chunk_index));
            m.insert("signature_type".into(), json!(s.signature_type));
            m.insert("signature_len".into(), json!(s.signature.len()));
            m.insert("signature_ok".into(), json!(signature_ok));
        }
        if (signature_ok || chunk.signed.is_none())
            && let Ok(Some(whole)) = self.configs.add(chunk)
            && let Ok(dict) = Dictionary::parse(&whole)
        {
            m.insert("dictionary".into(), self.dictionary_json(&dict, true));
        }
        Value::Object(m)
    }

    pub(super) fn inner_frame_json(m: &mut Map<String, Value>, ethertype: u16, payload: &[u8]) {
        m.insert("ethertype".into(), json!(format!("{ethertype:#06x}")));
        m.insert("frame_len".into(), json!(payload.len()));
        m.insert("ethertype_name".into(), json!(ethertype_name(ethertype)));
        match summarize(ethertype, payload) {
            InnerFrame::Ipv4(ip) => {
                let mut o = Map::new();
                o.insert("proto".into(), json!(ip.proto));
                o.insert("src".into(), json!(ip.src.to_string()));
                o.insert("dst".into(), json!(ip.dst.to_string()));
                o.insert("total_len".into(), json!(ip.total_len));
                o.insert("ttl".into(), json!(ip.ttl));
                o.insert("proto_name".into(), json!(ip_proto_name(ip.proto)));
                if let Some((offset, more)) = ip.fragment {
                    o.insert("fragment_offset".into(), json!(offset));
                    o.insert("more_fragments".into(), json!(more));
                }
                match ip.transport {
                    Transport::Tcp { sport, dport, flags, payload_len } => {
                        o.insert("sport".into(), json!(sport));
                        o.insert("dport".into(), json!(dport));
                        o.insert("tcp_flags".into(), json!(tcp_flag_letters(flags)));
                        o.insert("tcp_payload_len".into(), json!(payload_len));
                    }
                    Transport::Udp { sport, dport } => {
                        o.insert("sport".into(), json!(sport));
                        o.insert("dport".into(), json!(dport));
                    }
                    Transport::Icmp { icmp_type, code, id_seq } => {
                        o.insert("icmp_type".into(), json!(icmp_type));
                        o.insert("icmp_code".into(), json!(code));
                        if let Some((id, seq)) = id_seq {
                            o.insert("icmp_id".into(), json!(id));
                            o.insert("icmp_seq".into(), json!(seq));
                        }
                    }
                    Transport::None => {}
                }
                m.insert("ipv4".into(), Value::Object(o));
            }
            InnerFrame::Arp(a) => {
                m.insert(
                    "arp".into(),
                    json!({
                        "op": a.op,
                        "sender_mac": Mac::from_octets(a.sender_mac).to_string(),
                        "sender_ip": a.sender_ip.to_string(),
                        "target_mac": Mac::from_octets(a.target_mac).to_string(),
                        "target_ip": a.target_ip.to_string(),
                    }),
                );
            }
            InnerFrame::Other => {}
        }
    }

    pub(super) fn message_json(&mut self, msg: &Message<'_>, ctx: &Ctx) -> crate::Result<Value> {
        let mut m = Map::new();
        match msg {
            Message::Hello(h, tail) => {
                m.insert("protocol_version".into(), json!(h.protocol_version));
                m.insert("version_major".into(), json!(h.version_major));
                m.insert("version_minor".into(), json!(h.version_minor));
                m.insert("version_revision".into(), json!(h.version_revision));
                m.insert("timestamp".into(), json!(h.timestamp));
                let addr = h.identity.address();
                m.insert("identity".into(), json!(addr.to_string()));
                m.insert("identity_matches_source".into(), json!(addr == ctx.source));
                if let Some(known) = self.identities.get(&addr) {
                    m.insert("identity_matches_known".into(), json!(known.public_key() == h.identity.public_key()));
                }
                if let Some(dest) = &h.destination {
                    m.insert("destination_address".into(), json!(dest.to_string()));
                }
                m.insert("planet_id".into(), json!(h.planet_id));
                m.insert("planet_timestamp".into(), json!(h.planet_timestamp));
                m.insert("encrypted_tail_len".into(), json!(tail.len));
                if tail.decrypted {
                    let moons: Vec<Value> = h
                        .moons
                        .iter()
                        .map(
                            |w| json!({"type": w.world_type, "id": format!("{:016x}", w.id), "timestamp": w.timestamp}),
                        )
                        .collect();
                    m.insert("moons".into(), Value::Array(moons));
                }
            }
            Message::Ok(ok) => {
                *self.counters.ok_in_re.entry(ok.in_re_verb.name().to_string()).or_default() += 1;
                m.insert("in_re_verb".into(), json!(ok.in_re_verb.name()));
                m.insert("in_re_packet_id".into(), json!(hex(&ok.in_re_packet_id)));
                if let Some(i) = self.find_request(&ok.in_re_packet_id, ctx.destination, ctx.source, ctx.head_index) {
                    m.insert("in_re_index".into(), json!(i));
                }
                let in_re = match &ok.payload {
                    OkPayload::Hello(h) => {
                        let mut o = Map::new();
                        o.insert("timestamp_echo".into(), json!(h.timestamp_echo));
                        o.insert("protocol_version".into(), json!(h.protocol_version));
                        o.insert("version_major".into(), json!(h.version_major));
                        o.insert("version_minor".into(), json!(h.version_minor));
                        o.insert("version_revision".into(), json!(h.version_revision));
                        if let Some(a) = &h.reported_address {
                            o.insert("reported_address".into(), json!(a.to_string()));
                        }
                        o.insert("world_updates_len".into(), json!(h.world_updates.len()));
                        Value::Object(o)
                    }
                    OkPayload::Whois(ids) => {
                        json!({"identities": ids.iter().map(|i| i.address().to_string()).collect::<Vec<_>>()})
                    }
                    OkPayload::Echo(data) => json!({"echo_payload_len": data.len()}),
                    OkPayload::NetworkConfig(chunk) => self.chunk_json(chunk),
                    OkPayload::MulticastGather(g) => json!({
                        "network_id": nwid(g.network_id),
                        "mac": g.group.mac.to_string(),
                        "adi": g.group.adi,
                        "total_known": g.results.total_known,
                        "members": g.results.members.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    }),
                    OkPayload::MulticastFrame(f) => {
                        let mut o = Map::new();
                        o.insert("network_id".into(), nwid(f.network_id));
                        o.insert("mac".into(), json!(f.group.mac.to_string()));
                        o.insert("adi".into(), json!(f.group.adi));
                        o.insert("flags".into(), json!(f.flags));
                        if let Some(res) = &f.results {
                            o.insert("total_known".into(), json!(res.total_known));
                            o.insert(
                                "members".into(),
                                json!(res.members.iter().map(|a| a.to_string()).collect::<Vec<_>>()),
                            );
                        }
                        Value::Object(o)
                    }
                    OkPayload::ExtFrame(n) => json!({"network_id": nwid(*n)}),
                    OkPayload::Other(data) => json!({"payload_len": data.len()}),
                };
                m.insert("in_re".into(), in_re);
            }
            Message::Error(e) => {
                *self.counters.error_in_re.entry(e.in_re_verb.name().to_string()).or_default() += 1;
                m.insert("in_re_verb".into(), json!(e.in_re_verb.name()));
                m.insert("in_re_packet_id".into(), json!(hex(&e.in_re_packet_id)));
                if let Some(i) = self.find_request(&e.in_re_packet_id, ctx.destination, ctx.source, ctx.head_index) {
                    m.insert("in_re_index".into(), json!(i));
                }
                m.insert("error_code".into(), json!(e.code.0));
                m.insert("error_name".into(), json!(e.code.name()));
                if let Some(n) = e.network_id {
                    m.insert("network_id".into(), nwid(n));
                }
                if let Some(g) = &e.group {
                    m.insert("mac".into(), json!(g.mac.to_string()));
                    m.insert("adi".into(), json!(g.adi));
                }
            }
            Message::Whois(addrs) => {
                m.insert("addresses".into(), json!(addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>()));
            }
            Message::Rendezvous(r) => {
                m.insert("flags".into(), json!(r.flags));
                m.insert("peer".into(), json!(r.peer.to_string()));
                m.insert("address".into(), json!(r.address.to_string()));
            }
            Message::Frame(f) => {
                m.insert("network_id".into(), nwid(f.network_id));
                m.insert("src_mac".into(), json!(f.network_id.mac_for(&ctx.source).to_string()));
                m.insert("dst_mac".into(), json!(f.network_id.mac_for(&ctx.destination).to_string()));
                m.insert("macs_implied".into(), json!(true));
                Self::inner_frame_json(&mut m, f.ethertype, f.payload);
            }
            Message::ExtFrame(f) => {
                m.insert("network_id".into(), nwid(f.network_id));
                m.insert("flags".into(), json!(f.flags));
                if let Some(com) = &f.com {
                    m.insert("com".into(), self.com_json(com));
                }
                m.insert("dst_mac".into(), json!(f.dst_mac.to_string()));
                m.insert("src_mac".into(), json!(f.src_mac.to_string()));
                Self::inner_frame_json(&mut m, f.ethertype, f.payload);
            }
            Message::Echo(data) => {
                m.insert("payload_len".into(), json!(data.len()));
            }
            Message::MulticastLike(likes) => {
                let list: Vec<Value> = likes
                    .iter()
                    .map(|l| json!({"network_id": nwid(l.network_id), "mac": l.group.mac.to_string(), "adi": l.group.adi}))
                    .collect();
                m.insert("likes".into(), Value::Array(list));
            }
            Message::MulticastGather(g) => {
                m.insert("network_id".into(), nwid(g.network_id));
                m.insert("flags".into(), json!(g.flags));
                m.insert("mac".into(), json!(g.group.mac.to_string()));
                m.insert("adi".into(), json!(g.group.adi));
                m.insert("gather_limit".into(), json!(g.gather_limit));
                if let Some(com) = &g.com {
                    m.insert("com".into(), self.com_json(com));
                }
            }
            Message::MulticastFrame(f) => {
                m.insert("network_id".into(), nwid(f.network_id));
                m.insert("flags".into(), json!(f.flags));
                if let Some(limit) = f.gather_limit {
                    m.insert("gather_limit".into(), json!(limit));
                }
                let src = f.src_mac.unwrap_or_else(|| f.network_id.mac_for(&ctx.source));
                m.insert("src_mac".into(), json!(src.to_string()));
                m.insert("src_mac_implied".into(), json!(f.src_mac.is_none()));
                m.insert("dst_mac".into(), json!(f.group.mac.to_string()));
                m.insert("adi".into(), json!(f.group.adi));
                Self::inner_frame_json(&mut m, f.ethertype, f.payload);
            }
            Message::NetworkCredentials(c) => self.credentials_json(&mut m, c),
            Message::NetworkConfigRequest(r) => {
                m.insert("network_id".into(), nwid(r.network_id));
                m.insert("dictionary_len".into(), json!(r.metadata.len()));
                let dict = Dictionary::parse(&r.metadata)?;
                m.insert("dictionary".into(), self.dictionary_json(&dict, false));
                m.insert("have_revision".into(), json!(r.have_revision));
                m.insert("have_timestamp".into(), json!(r.have_timestamp));
            }
            Message::NetworkConfig(chunk) => {
                if let Value::Object(o) = self.chunk_json(chunk) {
                    m = o;
                }
            }
            Message::PushDirectPaths(paths) => {
                let list: Vec<Value> = paths
                    .iter()
                    .map(|p| {
                        let mut o = Map::new();
                        o.insert("flags".into(), json!(p.flags));
                        if let Some(a) = &p.address {
                            o.insert("address".into(), json!(a.to_string()));
                        }
                        Value::Object(o)
                    })
                    .collect();
                m.insert("paths".into(), Value::Array(list));
            }
            Message::QosMeasurement(records) => {
                let list: Vec<Value> = records
                    .iter()
                    .map(|r| {
                        let mut o = Map::new();
                        o.insert("packet_id".into(), json!(hex(&r.packet_id)));
                        o.insert("holding_ms".into(), json!(r.holding_ms));
                        if let Some(i) = self.find_sampled(&r.packet_id, ctx.destination, ctx.source, ctx.head_index) {
                            o.insert("index".into(), json!(i));
                        }
                        Value::Object(o)
                    })
                    .collect();
                m.insert("records".into(), Value::Array(list));
            }
            Message::UserMessage(u) => {
                m.insert("type_id".into(), json!(format!("{:016x}", u.type_id)));
                m.insert("payload_len".into(), json!(u.data.len()));
            }
            Message::Ack(bytes) => {
                m.insert("bytes".into(), json!(bytes));
            }
            Message::Nop => {}
            Message::Raw(_, data) => {
                m.insert("payload_len".into(), json!(data.len()));
            }
        }
        Ok(Value::Object(m))
    }

    pub(super) fn credentials_json(&self, m: &mut Map<String, Value>, c: &NetworkCredentials) {
        m.insert("coms".into(), Value::Array(c.coms.iter().map(|com| self.com_json(com)).collect()));
        m.insert("capabilities".into(), json!(c.capabilities.len()));
        m.insert(
            "tags".into(),
            Value::Array(
                c.tags
                    .iter()
                    .map(|t| {
                        json!({"network_id": nwid(t.network_id), "id": t.id, "value": t.value,
                               "issued_to": t.issued_to.to_string(), "signed_by": t.signed_by.to_string()})
                    })
                    .collect(),
            ),
        );
        m.insert(
            "revocations".into(),
            Value::Array(
                c.revocations
                    .iter()
                    .map(|r| {
                        json!({"network_id": nwid(r.network_id), "id": r.id, "credential_id": r.credential_id,
                               "credential_type": r.credential_type, "target": r.target.to_string(),
                               "signed_by": r.signed_by.to_string()})
                    })
                    .collect(),
            ),
        );
        m.insert(
            "certificates_of_ownership".into(),
            Value::Array(c.certificates_of_ownership.iter().map(|coo| self.coo_json(coo)).collect()),
        );
    }
}
