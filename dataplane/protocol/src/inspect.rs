//! Capture decoder: turns a sequence of captured UDP datagrams into one JSON record per
//! datagram plus a summary, in the schema of `conformance/zt-1.14.1/README.md`
//! (`expected-*.json`). Pure: datagrams, times and identities come in, JSON values come out.
//!
//! It uses the same pieces as the data path — classification (§3.2), [`FragmentSlots`]
//! reassembly keyed by UDP 4-tuple + packet ID, [`open_packet`] (dearmor, §6; LZ4, §6.7) and
//! the verb codecs of [`crate::verbs`] — and adds the cross-references a capture reader wants:
//! `in_re_index` for OK/ERROR, `index` for QoS records and `head_index` for fragments.

use crate::credentials::{CertificateOfMembership, CertificateOfOwnership, NetworkCredentials};
use crate::dictionary::{Dictionary, is_printable};
use crate::ethernet::{InnerFrame, Transport, ethertype_name, ip_proto_name, summarize, tcp_flag_letters};
use crate::fragment::{FragmentSlots, FragmentView, Reassembly};
use crate::header::{DatagramKind, MAX_PACKET_LEN, PacketView, Verb, classify};
use crate::inet::read_inet;
use crate::network::{Mac, NetworkId};
use crate::packet::open_packet;
use crate::verbs::{ConfigAssembler, ConfigChunk, Message, OkPayload};
use crate::wire::Reader;
use crate::{Address, Identity, PeerKey};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

/// Expected-file `schema_version`.
pub const SCHEMA_VERSION: u64 = 1;
/// Reassembly slots held by the decoder (a capture may interleave many flows).
const REASSEMBLY_SLOTS: usize = 64;
/// Incomplete fragment sets are dropped after this long (capture time).
const REASSEMBLY_TIMEOUT_MS: u64 = 30_000;
/// Config updates assembled at once.
const CONFIG_UPDATES_IN_FLIGHT: usize = 16;

/// One captured UDP datagram, in capture order.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// Capture timestamp, microseconds (any epoch; records are relative to the first).
    pub time_us: i64,
    pub ip_ttl: u8,
    pub payload: &'a [u8],
}

type PathKey = (SocketAddr, SocketAddr, [u8; 8]);

#[derive(Debug, Clone, Copy)]
struct HeadSeen {
    index: usize,
    source: Address,
    destination: Address,
    src: SocketAddr,
    dst: SocketAddr,
}

#[derive(Debug, Default)]
struct Counters {
    kinds: BTreeMap<String, u64>,
    verbs: BTreeMap<String, u64>,
    ok_in_re: BTreeMap<String, u64>,
    error_in_re: BTreeMap<String, u64>,
    cipher_suites: BTreeMap<String, u64>,
    fragments: u64,
    reassembled: u64,
    compressed: u64,
    mac_verified: u64,
    mac_failures: u64,
    mac_unverifiable: u64,
}

/// The decoder state for one capture.
pub struct Inspector {
    identities: HashMap<Address, Identity>,
    keys: HashMap<(Address, Address), Option<Arc<PeerKey>>>,
    slots: FragmentSlots<PathKey, usize, REASSEMBLY_SLOTS>,
    records: Vec<Map<String, Value>>,
    /// UDP (source, destination) of every record (None for non-UDP frames).
    paths: Vec<Option<(SocketAddr, SocketAddr)>>,
    /// Record index → undecoded reason (kind other, orphan fragment, packet without decode).
    undecoded: BTreeMap<usize, String>,
    first_time_us: Option<i64>,
    heads_by_id: HashMap<[u8; 8], Vec<HeadSeen>>,
    configs: ConfigAssembler,
    counters: Counters,
    scratch: Vec<u8>,
}

/// Result of decoding a capture.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub records: Vec<Value>,
    pub summary: Value,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn nwid(n: NetworkId) -> Value {
    Value::String(n.to_string())
}

impl Inspector {
    /// `identities`: every identity the "receiver" holds (secret or public).
    pub fn new(identities: impl IntoIterator<Item = Identity>) -> Self {
        let identities = identities.into_iter().map(|i| (i.address(), i)).collect();
        Self {
            identities,
            keys: HashMap::new(),
            slots: FragmentSlots::new(REASSEMBLY_TIMEOUT_MS),
            records: Vec::new(),
            paths: Vec::new(),
            undecoded: BTreeMap::new(),
            first_time_us: None,
            heads_by_id: HashMap::new(),
            configs: ConfigAssembler::new(CONFIG_UPDATES_IN_FLIGHT),
            counters: Counters::default(),
            scratch: vec![0u8; MAX_PACKET_LEN],
        }
    }

    /// `"<address> (secret)"` / `"<address> (public)"`, sorted.
    pub fn identity_labels(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .identities
            .values()
            .map(|i| format!("{} ({})", i.address(), if i.has_secret() { "secret" } else { "public" }))
            .collect();
        v.sort();
        v
    }

    fn key_for(&mut self, a: Address, b: Address) -> Option<Arc<PeerKey>> {
        let pair = if a <= b { (a, b) } else { (b, a) };
        if let Some(k) = self.keys.get(&pair) {
            return k.clone();
        }
        let key = match (self.identities.get(&a), self.identities.get(&b)) {
            (Some(x), Some(y)) if x.has_secret() => x.agree(y).ok(),
            (Some(x), Some(y)) if y.has_secret() => y.agree(x).ok(),
            _ => None,
        }
        .map(Arc::new);
        self.keys.insert(pair, key.clone());
        key
    }

    fn base_record(&mut self, d: &Datagram<'_>) -> Map<String, Value> {
        let first = *self.first_time_us.get_or_insert(d.time_us);
        let mut m = Map::new();
        m.insert("index".into(), json!(self.records.len()));
        m.insert("time".into(), json!((d.time_us - first) as f64 / 1e6));
        m.insert("src".into(), json!(d.src.to_string()));
        m.insert("dst".into(), json!(d.dst.to_string()));
        m.insert("udp_len".into(), json!(d.payload.len()));
        m
    }

    fn count_kind(&mut self, kind: &str) {
        *self.counters.kinds.entry(kind.to_string()).or_default() += 1;
    }

    /// Add a frame that was not an IPv4/UDP datagram (keeps indexes aligned with the pcap).
    pub fn push_non_udp(&mut self, time_us: i64, reason: &str) {
        let first = *self.first_time_us.get_or_insert(time_us);
        let index = self.records.len();
        let mut m = Map::new();
        m.insert("index".into(), json!(index));
        m.insert("time".into(), json!((time_us - first) as f64 / 1e6));
        m.insert("kind".into(), json!("other"));
        m.insert("reason".into(), json!(reason));
        self.count_kind("other");
        self.undecoded.insert(index, reason.to_string());
        self.records.push(m);
        self.paths.push(None);
    }

    /// Feed the next datagram in capture order.
    pub fn push(&mut self, d: Datagram<'_>) {
        self.push_datagram(d);
        self.mark_evicted();
    }

    fn push_datagram(&mut self, d: Datagram<'_>) {
        let index = self.records.len();
        let mut rec = self.base_record(&d);
        self.paths.push(Some((d.src, d.dst)));
        let now_ms = (d.time_us - self.first_time_us.unwrap_or(d.time_us)).max(0) as u64 / 1000;
        match classify(d.payload) {
            DatagramKind::Fragment => {
                rec.insert("kind".into(), json!("fragment"));
                self.count_kind("fragment");
                self.counters.fragments += 1;
                let p = d.payload;
                rec.insert("packet_id".into(), json!(hex(&p[0..8])));
                rec.insert("dest".into(), json!(hex(&p[8..13])));
                rec.insert("fragment_no".into(), json!(p[14] & 0x0f));
                rec.insert("fragment_total".into(), json!(p[14] >> 4));
                rec.insert("hops".into(), json!(p[15] & 0x07));
                self.records.push(rec);
                match FragmentView::parse(d.payload) {
                    Ok(f) => {
                        let key = (d.src, d.dst, f.packet_id());
                        let mut out = [0u8; MAX_PACKET_LEN];
                        match self.slots.push_fragment(key, &f, index, now_ms, &mut out) {
                            Ok(Reassembly::Complete { len, tags }) => self.process_packet(&mut out[..len], &tags),
                            Ok(_) => {}
                            Err(e) => {
                                self.undecoded.insert(index, format!("fragment rejected: {e}"));
                            }
                        }
                    }
                    Err(e) => {
                        self.undecoded.insert(index, format!("invalid fragment: {e}"));
                    }
                }
            }
            DatagramKind::Head => {
                rec.insert("kind".into(), json!("packet"));
                self.count_kind("packet");
                let view = match PacketView::parse(d.payload) {
                    Ok(v) => v,
                    Err(e) => {
                        rec.insert("error".into(), json!(e.to_string()));
                        self.undecoded.insert(index, "invalid packet head".into());
                        self.records.push(rec);
                        return;
                    }
                };
                let flags = view.flags();
                rec.insert("packet_id".into(), json!(hex(&view.packet_id())));
                rec.insert("dest".into(), json!(view.destination().to_string()));
                rec.insert("source".into(), json!(view.source().to_string()));
                rec.insert("flags".into(), json!(flags.0));
                rec.insert("cipher".into(), json!(flags.cipher()));
                rec.insert("hops".into(), json!(flags.hops()));
                rec.insert("fragmented".into(), json!(flags.fragmented()));
                rec.insert("packet_len".into(), json!(d.payload.len()));
                rec.insert("mac_ok".into(), Value::Null);
                *self.counters.cipher_suites.entry(flags.cipher().to_string()).or_default() += 1;
                self.heads_by_id.entry(view.packet_id()).or_default().push(HeadSeen {
                    index,
                    source: view.source(),
                    destination: view.destination(),
                    src: d.src,
                    dst: d.dst,
                });
                self.records.push(rec);
                if flags.fragmented() {
                    let key = (d.src, d.dst, view.packet_id());
                    let mut out = [0u8; MAX_PACKET_LEN];
                    match self.slots.push_head(key, d.payload, index, now_ms, &mut out) {
                        Ok(Reassembly::Complete { len, tags }) => self.process_packet(&mut out[..len], &tags),
                        Ok(_) => {}
                        Err(e) => {
                            self.undecoded.insert(index, format!("reassembly failed: {e}"));
                        }
                    }
                } else {
                    let mut buf = d.payload.to_vec();
                    self.process_packet(&mut buf, &[index]);
                }
            }
            DatagramKind::Beacon | DatagramKind::Other => {
                rec.insert("kind".into(), json!("other"));
                let reason = if d.payload.len() == crate::header::BEACON_LEN {
                    "13-byte legacy LAN beacon".to_string()
                } else if d.ip_ttl <= 8 {
                    format!("{}-byte NAT-traversal junk datagram (low IP TTL)", d.payload.len())
                } else {
                    format!("{}-byte datagram is neither a packet head nor a fragment", d.payload.len())
                };
                rec.insert("reason".into(), json!(reason));
                rec.insert("ip_ttl".into(), json!(d.ip_ttl));
                self.count_kind("other");
                self.undecoded.insert(index, reason);
                self.records.push(rec);
            }
        }
    }

    /// A complete packet: `tags` = record indexes, head first.
    fn process_packet(&mut self, packet: &mut [u8], tags: &[usize]) {
        let head_index = tags[0];
        for &frag in &tags[1..] {
            self.records[frag].insert("head_index".into(), json!(head_index));
        }
        let Ok(view) = PacketView::parse(packet) else {
            return;
        };
        let (source, destination, packet_id) = (view.source(), view.destination(), view.packet_id());
        let cipher = view.flags().cipher();
        {
            let rec = &mut self.records[head_index];
            rec.insert("packet_len".into(), json!(packet.len()));
            if tags.len() > 1 {
                rec.insert("reassembled_from".into(), json!(tags));
            }
        }
        if tags.len() > 1 {
            self.counters.reassembled += 1;
        }
        let mut key = self.key_for(source, destination);
        if key.is_none() && cipher == 0 && packet[27] & 0x1f == Verb::Hello.code() {
            key = self.key_from_hello(packet, destination);
        }
        let Some(key) = key else {
            self.counters.mac_unverifiable += 1;
            self.undecoded.insert(head_index, "no key for source and destination".into());
            return;
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.decode_opened(&key, packet, &mut scratch[..], head_index, source, destination, packet_id);
        self.scratch = scratch;
        if let Err(reason) = result {
            self.undecoded.insert(head_index, reason);
        }
    }

    /// Unknown sender of a suite-0 HELLO: derive the key from the identity it carries.
    fn key_from_hello(&mut self, packet: &[u8], destination: Address) -> Option<Arc<PeerKey>> {
        let ident_at = 28 + 13;
        let (id, _) = Identity::from_bytes(packet.get(ident_at..)?).ok()?;
        let ours = self.identities.get(&destination)?;
        ours.agree(&id).ok().map(Arc::new)
    }

    #[allow(clippy::too_many_arguments)]
    fn decode_opened(
        &mut self,
        key: &PeerKey,
        packet: &mut [u8],
        scratch: &mut [u8],
        head_index: usize,
        source: Address,
        destination: Address,
        packet_id: [u8; 8],
    ) -> Result<(), String> {
        let opened = match open_packet(key, packet, scratch) {
            Ok(o) => o,
            Err(crate::ProtocolError::Armor(e)) => {
                self.counters.mac_failures += 1;
                self.records[head_index].insert("mac_ok".into(), json!(false));
                return Err(format!("authentication failed: {e}"));
            }
            Err(e) => {
                // Authenticated, but the payload would not decompress.
                self.counters.mac_verified += 1;
                let rec = &mut self.records[head_index];
                rec.insert("mac_ok".into(), json!(true));
                rec.insert("error".into(), json!(e.to_string()));
                return Err("decompression failed".into());
            }
        };
        self.counters.mac_verified += 1;
        let verb = opened.verb_byte.verb();
        {
            let rec = &mut self.records[head_index];
            rec.insert("mac_ok".into(), json!(true));
            if let Some(iv) = opened.aes_iv {
                rec.insert("aes_iv".into(), json!(hex(&iv)));
            }
            rec.insert("verb".into(), json!(verb.name()));
            rec.insert("verb_code".into(), json!(opened.verb_byte.code()));
            rec.insert("compressed".into(), json!(opened.verb_byte.compressed()));
            rec.insert("payload_len".into(), json!(opened.payload.len()));
        }
        *self.counters.verbs.entry(verb.name().to_string()).or_default() += 1;
        if opened.verb_byte.compressed() {
            self.counters.compressed += 1;
        }
        let payload = opened.payload;
        let ctx = Ctx { head_index, source, destination };
        let decoded = Message::decode(verb, payload, Some((key, &packet_id)))
            .map_err(|e| e.to_string())
            .and_then(|m| self.message_json(&m, &ctx).map_err(|e| e.to_string()));
        match decoded {
            Ok(v) => {
                self.records[head_index].insert("decoded".into(), v);
                Ok(())
            }
            Err(e) => {
                self.records[head_index].insert("error".into(), json!(e));
                Err("payload decode error".into())
            }
        }
    }

    fn head_phys(&self, index: usize) -> Option<(SocketAddr, SocketAddr)> {
        self.paths.get(index).copied().flatten()
    }

    /// First earlier head with this wire ID sent from `from` to `to`.
    fn find_request(&self, id: &[u8; 8], from: Address, to: Address, before: usize) -> Option<usize> {
        self.heads_by_id
            .get(id)?
            .iter()
            .find(|h| h.index < before && h.source == from && h.destination == to)
            .map(|h| h.index)
    }

    /// QoS: head with this wire ID from `from` to `to`, preferring the reverse of this path.
    fn find_sampled(&self, id: &[u8; 8], from: Address, to: Address, qos_index: usize) -> Option<usize> {
        let candidates: Vec<&HeadSeen> = self
            .heads_by_id
            .get(id)?
            .iter()
            .filter(|h| h.index < qos_index && h.source == from && h.destination == to)
            .collect();
        let (qsrc, qdst) = self.head_phys(qos_index)?;
        candidates
            .iter()
            .find(|h| h.src == qdst && h.dst == qsrc)
            .or_else(|| candidates.first())
            .map(|h| h.index)
    }

    fn com_json(&self, com: &CertificateOfMembership) -> Value {
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
                json!(self.identities.get(&a).is_some_and(|id| com.identity_hash_matches(id))),
            );
        }
        m.insert("signed_by".into(), json!(com.signed_by.to_string()));
        m.insert("signature_ok".into(), json!(self.identities.get(&com.signed_by).is_some_and(|id| com.verify(id))));
        Value::Object(m)
    }

    fn coo_json(&self, coo: &CertificateOfOwnership) -> Value {
        json!({
            "network_id": nwid(coo.network_id),
            "timestamp": coo.timestamp,
            "id": coo.id,
            "things": coo.things.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            "issued_to": coo.issued_to.to_string(),
            "signed_by": coo.signed_by.to_string(),
            "signature_ok": self.identities.get(&coo.signed_by).is_some_and(|id| coo.verify(id)),
        })
    }

    fn dictionary_json(&self, dict: &Dictionary, network_config: bool) -> Value {
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

    fn netconf_values_json(&self, dict: &Dictionary) -> Value {
        let mut m = Map::new();
        if let Some(v) = dict.get("C")
            && let Ok(com) = CertificateOfMembership::read(&mut Reader::new(v)) {
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

    fn chunk_json(&mut self, chunk: &ConfigChunk) -> Value {
        let mut m = Map::new();
        m.insert("network_id".into(), nwid(chunk.network_id));
        m.insert("chunk_len".into(), json!(chunk.data.len()));
        let controller = chunk.network_id.controller();
        let signature_ok = self.identities.get(&controller).is_some_and(|id| chunk.verify(id));
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
                && let Ok(dict) = Dictionary::parse(&whole) {
                    m.insert("dictionary".into(), self.dictionary_json(&dict, true));
                }
        Value::Object(m)
    }

    fn inner_frame_json(m: &mut Map<String, Value>, ethertype: u16, payload: &[u8]) {
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

    fn message_json(&mut self, msg: &Message<'_>, ctx: &Ctx) -> crate::Result<Value> {
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
                        .map(|w| json!({"type": w.world_type, "id": format!("{:016x}", w.id), "timestamp": w.timestamp}))
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

    fn credentials_json(&self, m: &mut Map<String, Value>, c: &NetworkCredentials) {
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

    /// A fragment set that never completed: fragments become orphans, a head stays undecoded.
    fn mark_dropped(&mut self, tags: &[usize]) {
        for &idx in tags {
            let rec = &mut self.records[idx];
            if rec.get("kind").and_then(Value::as_str) == Some("fragment") {
                rec.insert("orphan".into(), json!(true));
                self.undecoded.insert(idx, "orphan fragment".into());
            } else {
                rec.insert("error".into(), json!("incomplete: fragments missing"));
                self.counters.mac_unverifiable += 1;
                self.undecoded.insert(idx, "incomplete fragmented packet".into());
            }
        }
    }

    fn mark_evicted(&mut self) {
        let dropped: Vec<_> = self.slots.drain_evicted().collect();
        for set in dropped {
            self.mark_dropped(&set.tags);
        }
    }

    /// End of capture: mark orphan fragments and incomplete packets, build the summary.
    pub fn finish(mut self) -> Inspection {
        for set in self.slots.drain_incomplete() {
            self.mark_dropped(&set.tags);
        }
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        for r in self.undecoded.values() {
            *reasons.entry(r.clone()).or_default() += 1;
        }
        let c = &self.counters;
        let summary = json!({
            "datagrams": self.records.len(),
            "kinds": c.kinds,
            "verbs": c.verbs,
            "ok_in_re": c.ok_in_re,
            "error_in_re": c.error_in_re,
            "cipher_suites": c.cipher_suites,
            "fragments": c.fragments,
            "reassembled_packets": c.reassembled,
            "compressed_packets": c.compressed,
            "mac_verified": c.mac_verified,
            "mac_failures": c.mac_failures,
            "mac_unverifiable": c.mac_unverifiable,
            "undecoded": self.undecoded.len(),
            "undecoded_reasons": reasons,
        });
        Inspection { records: self.records.into_iter().map(Value::Object).collect(), summary }
    }
}

struct Ctx {
    head_index: usize,
    source: Address,
    destination: Address,
}

/// Decode a whole pcap held in memory (convenience for the CLI and tests).
pub fn inspect_pcap(pcap: &[u8], identities: impl IntoIterator<Item = Identity>) -> crate::Result<Inspection> {
    let mut inspector = Inspector::new(identities);
    for frame in crate::pcap::PcapReader::new(pcap)? {
        let frame = frame?;
        match frame.content {
            crate::pcap::FrameContent::Udp(u) => inspector.push(Datagram {
                src: u.src,
                dst: u.dst,
                time_us: frame.timestamp_us,
                ip_ttl: u.ip_ttl,
                payload: u.payload,
            }),
            crate::pcap::FrameContent::NotUdp(reason) => inspector.push_non_udp(frame.timestamp_us, reason),
        }
    }
    Ok(inspector.finish())
}
