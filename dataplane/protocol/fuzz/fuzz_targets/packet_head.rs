//! Packet head classification/parsing and every verb payload decoder on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ztplane_protocol::header::{PacketView, Verb, classify};
use ztplane_protocol::verbs::Message;

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
    if let Ok(v) = PacketView::parse(data) {
        let _ = (v.packet_id(), v.source(), v.destination(), v.flags().hops(), v.raw_verb_byte());
        let payload = &data[28..];
        let _ = Message::decode(Verb::from_code(v.raw_verb_byte()), payload, None);
    }
    if let Some((&code, rest)) = data.split_first() {
        let _ = Message::decode(Verb::from_code(code), rest, None);
    }
});
