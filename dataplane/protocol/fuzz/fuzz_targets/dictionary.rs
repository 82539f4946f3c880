//! Dictionary parsing; anything that parses must re-encode to the same dictionary.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ztplane_protocol::dictionary::Dictionary;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = Dictionary::parse(data) {
        assert_eq!(Dictionary::parse(&d.encode()).unwrap(), d);
    }
});
