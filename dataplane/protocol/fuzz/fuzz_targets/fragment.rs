//! Fragment parsing and bounded reassembly driven by arbitrary datagram sequences.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ztplane_protocol::fragment::{FragmentSlots, FragmentView, Reassembly};
use ztplane_protocol::header::{DatagramKind, MAX_PACKET_LEN, classify};

fuzz_target!(|data: &[u8]| {
    // Input: repeated [key (1) | time (1) | len (2) | datagram (len)].
    let mut slots: FragmentSlots<u8, usize, 8> = FragmentSlots::new(1_000);
    let mut out = vec![0u8; MAX_PACKET_LEN];
    let mut rest = data;
    let mut i = 0usize;
    let mut now = 0u64;
    while rest.len() >= 4 {
        let (key, dt) = (rest[0], rest[1] as u64 * 10);
        let len = (u16::from_le_bytes([rest[2], rest[3]]) as usize).min(rest.len() - 4);
        let d = &rest[4..4 + len];
        rest = &rest[4 + len..];
        now += dt;
        let r = match classify(d) {
            DatagramKind::Head => slots.push_head(key, d, i, now, &mut out),
            DatagramKind::Fragment => match FragmentView::parse(d) {
                Ok(f) => slots.push_fragment(key, &f, i, now, &mut out),
                Err(_) => continue,
            },
            _ => continue,
        };
        if let Ok(Reassembly::Complete { len, tags }) = r {
            assert!(len <= MAX_PACKET_LEN && tags.len() >= 2);
        }
        assert!(slots.in_progress() <= 8);
        i += 1;
    }
    let _ = slots.drain_incomplete();
});
