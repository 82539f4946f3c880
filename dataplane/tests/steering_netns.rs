//! The XDP program's classification on real traffic (root only): what is steered, what is
//! passed, what counts as malformed; and changing the steered ports while ztplane runs.
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;
use ztplane_testkit::bed::{FwdBed, GEN_IP, SINK_IP};
use ztplane_testkit::crafted::{Ends, Tag, ipv6_udp, udp};
use ztplane_testkit::traffic::send_frames;

static SERIAL: Mutex<()> = Mutex::new(());

fn ztplane() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ztplane"))
}

/// Frames from the generator to the sink, as the bed's static neighbours expect them.
fn ends(bed: &FwdBed) -> Ends {
    Ends { src_mac: bed.gen_mac, dst_mac: bed.sink_mac, src_ip: GEN_IP, dst_ip: SINK_IP }
}

/// Ethernet header (optionally with an 802.1Q tag) + `l3`.
fn ether(bed: &FwdBed, ethertype: u16, vlan: Option<u16>, l3: &[u8]) -> Vec<u8> {
    let tags: Vec<Tag> = vlan.into_iter().map(Tag::q).collect();
    ends(bed).ether(&tags, ethertype, l3)
}

fn counters(summary: &serde_json::Value) -> [u64; 4] {
    let a0 = &summary["xdp"][0];
    ["seen", "steered", "passed", "malformed"].map(|k| a0[k].as_u64().unwrap())
}

#[test]
fn classifies_vlan_ipv6_fragments_and_malformed_frames() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = FwdBed::new(1).unwrap();
    let e = ends(&bed);
    let dataplane = bed.start_ztplane(ztplane(), &["--duration", "60"]).unwrap();
    let payload = [0x11u8; 40];
    let steered: Vec<Vec<u8>> = vec![
        ether(&bed, 0x0800, None, &e.ipv4(17, 0x4000, &udp(9993, &payload))),
        ether(&bed, 0x0800, Some(5), &e.ipv4(17, 0, &udp(9993, &payload))),
        ether(&bed, 0x86dd, None, &ipv6_udp(9993, &payload)),
        ether(&bed, 0x86dd, Some(7), &ipv6_udp(9993, &payload)),
    ];
    let passed: Vec<Vec<u8>> = vec![
        ether(&bed, 0x0800, None, &e.ipv4(17, 0, &udp(53, &payload))),
        ether(&bed, 0x0800, None, &e.ipv4(6, 0, &udp(9993, &payload))),
        ether(&bed, 0x0800, None, &e.ipv4(17, 0x2000, &udp(9993, &payload))), // MF: a fragment
        ether(&bed, 0x0800, None, &e.ipv4(17, 0x0010, &payload)),             // later fragment
        ether(&bed, 0x0806, None, &[0u8; 28]),                                // ARP
    ];
    let mut truncated_udp = e.ipv4(17, 0, &udp(9993, &payload));
    truncated_udp.truncate(20 + 8 + 10); // UDP length says 48, 18 bytes present
    let mut claims_1500 = e.ipv4(17, 0, &udp(9993, &payload));
    claims_1500[2..4].copy_from_slice(&1500u16.to_be_bytes()); // UDP length still consistent
    let malformed: Vec<Vec<u8>> = vec![
        ether(&bed, 0x0800, None, &[0x45, 0, 0, 20, 0, 0]), // IPv4 header cut short
        ether(&bed, 0x0800, None, &truncated_udp),
        ether(&bed, 0x0800, None, &e.ipv4(17, 0, &[0x9c, 0x40, 0x27])), // UDP header cut short
        ether(&bed, 0x86dd, None, &[0x60, 0, 0]),                       // IPv6 header cut short
        ether(&bed, 0x0800, Some(9), &[0x55; 20]),                      // version 5
        ether(&bed, 0x0800, None, &claims_1500),                        // IP length beyond the frame
    ];
    let mut all = Vec::new();
    for (group, times) in [(&steered, 3), (&passed, 2), (&malformed, 1)] {
        for _ in 0..times {
            all.extend(group.iter().cloned());
        }
    }
    let sent = bed.sender.run(move || send_frames("gen0", &all)).unwrap().unwrap();
    assert_eq!(sent, 4 * 3 + 5 * 2 + 6);
    std::thread::sleep(Duration::from_millis(300));
    let exit = dataplane.stop().unwrap();
    assert!(exit.status.success(), "{}", exit.stderr);
    let [seen, steered_n, passed_n, malformed_n] = counters(&exit.summary().unwrap());
    assert_eq!(steered_n, 12, "VLAN/IPv6/IPv4 UDP to 9993 steered");
    assert_eq!(malformed_n, 6, "malformed counted");
    // The kernel may send a few frames of its own (IPv6 router solicitations…): passed ≥ ours.
    assert!(passed_n >= 10 + 6, "passed {passed_n}");
    assert_eq!(seen, steered_n + passed_n);
}

#[test]
fn steered_ports_change_while_running() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = FwdBed::new(1).unwrap();
    let e = ends(&bed);
    let dataplane = bed.start_ztplane(ztplane(), &["--duration", "60"]).unwrap();
    // Built beside ztplane by the same `cargo test --workspace` (control has integration tests).
    let ctl = ztplane().with_file_name("ztplanectl");
    assert!(ctl.exists(), "{} missing: run the workspace tests (`cargo xtask test`)", ctl.display());
    let instance = bed.dut.name.clone();
    let ctl_run = |args: &[&str]| {
        let out = Command::new(&ctl).args(["xdp"]).args(args).args(["--instance", &instance]).output().unwrap();
        assert!(out.status.success(), "ztplanectl xdp {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let frame = |port| ether(&bed, 0x0800, None, &e.ipv4(17, 0, &udp(port, &[1u8; 32])));
    let before = vec![frame(9994); 5];
    bed.sender.run(move || send_frames("gen0", &before)).unwrap().unwrap();
    ctl_run(&["ports", "add", "9994"]);
    assert!(ctl_run(&["ports", "list"]).contains("[9993,9994]"));
    let delivered_before = bed.sink.link_counter("sink0", "rx_packets").unwrap();
    let after = vec![frame(9994); 7];
    bed.sender.run(move || send_frames("gen0", &after)).unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let delivered = bed.sink.link_counter("sink0", "rx_packets").unwrap() - delivered_before;
    assert!(delivered >= 7, "frames to the newly steered port were not forwarded: {delivered} of 7");
    ctl_run(&["ports", "remove", "9993"]);
    let removed = vec![frame(9993); 3];
    bed.sender.run(move || send_frames("gen0", &removed)).unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let live = ctl_run(&["stats"]);
    assert!(live.contains("\"steered\":7"), "live counters: {live}");
    let exit = dataplane.stop().unwrap();
    let [_, steered, _, _] = counters(&exit.summary().unwrap());
    assert_eq!(steered, 7, "only the frames sent while 9994 was steered");
}
