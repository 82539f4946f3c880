//! The pcap reader and the whole capture decoder (no identities: exercises classification,
//! reassembly and record building) on arbitrary files.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ztplane_protocol::inspect::inspect_pcap;
use ztplane_protocol::pcap::PcapReader;

fuzz_target!(|data: &[u8]| {
    if let Ok(reader) = PcapReader::new(data) {
        for frame in reader {
            let _ = frame;
        }
    }
    let _ = inspect_pcap(data, Vec::new());
});
