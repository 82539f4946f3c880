//! World (planet/moon) parsing and signature checking; parsed worlds must round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ztplane_protocol::world::World;

fuzz_target!(|data: &[u8]| {
    if let Ok((w, used)) = World::read(data) {
        assert!(used <= data.len());
        let again = World::parse(&w.encode()).unwrap();
        assert_eq!(again, w);
        let _ = w.verify();
    }
});
