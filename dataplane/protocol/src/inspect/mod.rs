//! Capture decoder: turns a sequence of captured UDP datagrams into one JSON record per
//! datagram plus a summary, in the schema of `conformance/zt-1.14.1/README.md`
//! (`expected-*.json`). Pure: datagrams, times and identities come in, JSON values come out.
//!
//! It uses the same pieces as the data path — classification (§3.2), [`FragmentSlots`]
//! reassembly keyed by UDP 4-tuple + packet ID, [`open_packet`] (dearmor, §6; LZ4, §6.7) and
//! the verb codecs of [`crate::verbs`] — and adds the cross-references a capture reader wants:
//! `in_re_index` for OK/ERROR, `index` for QoS records and `head_index` for fragments.
//! The JSON of each decoded message is built in the private `render` submodule.

mod render;

use crate::fragment::{FragmentSlots, FragmentView, Reassembly};
use crate::header::{DatagramKind, MAX_PACKET_LEN, PacketView, Verb, classify};
use crate::network::NetworkId;
use crate::packet::open_packet;
use crate::verbs::{ConfigAssembler, Message};
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
    /// Public identities learned from authenticated HELLOs and OK(WHOIS) (validated first), so
    /// a capture can be read with only some identities in hand, as a real node would.
    learned: HashMap<Address, Identity>,
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
            learned: HashMap::new(),
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
        let key = match (self.identity(&a), self.identity(&b)) {
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

    /// A given identity, else a learned one.
    fn identity(&self, a: &Address) -> Option<&Identity> {
        self.identities.get(a).or_else(|| self.learned.get(a))
    }

    /// Remember an identity carried by an authenticated packet, after the memory-hard address
    /// check (spec §5.1); forget cached "no key" results that involved it.
    fn learn(&mut self, id: &Identity) {
        let a = id.address();
        if self.identity(&a).is_some() || !id.validate() {
            return;
        }
        self.learned.insert(a, id.to_public());
        self.keys.retain(|(x, y), key| key.is_some() || (*x != a && *y != a));
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
        let decoded =
            Message::decode(verb, payload, Some((key, &packet_id))).map_err(|e| e.to_string()).and_then(|m| {
                match &m {
                    Message::Hello(h, _) if h.identity.address() == source => self.learn(&h.identity),
                    Message::Ok(ok) => {
                        if let crate::verbs::OkPayload::Whois(ids) = &ok.payload {
                            ids.iter().for_each(|id| self.learn(id));
                        }
                    }
                    _ => {}
                }
                self.message_json(&m, &ctx).map_err(|e| e.to_string())
            });
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
        candidates.iter().find(|h| h.src == qdst && h.dst == qsrc).or_else(|| candidates.first()).map(|h| h.index)
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
