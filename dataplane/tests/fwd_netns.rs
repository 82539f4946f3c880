//! `ztplane fwd` on real XDP and AF_XDP, in network namespaces this test creates (root only).
//!
//! Each test builds the bed of `ztplane_testkit::bed` (sender ↔ dut ↔ sink on 2-queue veths,
//! 198.18.1.0/24) and removes it afterwards, also when an assertion fails.
use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use ztplane_testkit::bed::{DUT_IP, FwdBed, GEN_IP};
use ztplane_testkit::traffic::{SendSpec, UdpSink, send_udp};

/// These tests saturate both cores; run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn ztplane() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ztplane"))
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn as_u64(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Sends `count` datagrams over `flows` 4-tuples through the dataplane; returns (sent, sink report).
fn send_through(bed: &FwdBed, flows: u16, count: u64, rate: u64) -> (u64, ztplane_testkit::traffic::SinkReport) {
    let sink_addr = bed.sink_addr(9993);
    let sink = bed
        .sink
        .thread(move || {
            let sink = UdpSink::bind(sink_addr).expect("sink bind");
            sink.collect(count, Duration::from_secs(2), Duration::from_secs(60))
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let spec = SendSpec {
        src_ip: GEN_IP,
        src_ports: (0..flows).map(|i| 40000 + i).collect(),
        dst: sink_addr,
        count,
        rate,
        payload_len: 200,
        max_duration: Duration::from_secs(40),
    };
    let sent = bed.sender.run(move || send_udp(&spec)).unwrap().unwrap();
    let report = sink.join().unwrap();
    (sent.sent, report)
}

#[test]
fn forwards_100k_frames_over_two_queues_while_the_kernel_path_keeps_working() {
    let _serial = serial();
    let bed = FwdBed::new(2).unwrap();
    let dataplane = bed.start_ztplane(ztplane(), &["--queues", "0-1", "--cores", "0-1", "--duration", "120"]).unwrap();

    // Kernel path on the same interface: a TCP echo server on a0's address and a pinger.
    let listener = bed.dut.run(|| TcpListener::bind(SocketAddrV4::new(DUT_IP, 7000)).unwrap()).unwrap();
    let server = std::thread::spawn(move || {
        let mut echoed = 0usize;
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    conn.write_all(&buf[..n]).unwrap();
                    echoed += n;
                }
            }
        }
        echoed
    });
    let tcp_client = bed
        .sender
        .thread(|| {
            let mut conn = TcpStream::connect_timeout(&SocketAddrV4::new(DUT_IP, 7000).into(), Duration::from_secs(5))?;
            conn.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut total = 0;
            // Keep the connection busy for the whole UDP run.
            for round in 0..40u8 {
                let msg = [round; 1000];
                conn.write_all(&msg)?;
                let mut back = [0u8; 1000];
                conn.read_exact(&mut back)?;
                assert_eq!(back, msg);
                total += msg.len();
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok::<usize, std::io::Error>(total)
        })
        .unwrap();
    let ping = bed.sender.spawn("ping", &["-c", "20", "-i", "0.1", "-W", "1", "-q", &DUT_IP.to_string()]).unwrap();

    let (sent, report) = send_through(&bed, 8, 100_000, 50_000);

    let ping_ok = ping.wait_with_output().unwrap().status.success();
    let tcp_bytes = tcp_client.join().unwrap().expect("TCP through the kernel path");
    let echoed = server.join().unwrap();
    let exit = dataplane.stop().unwrap();
    let summary = exit.summary().unwrap();

    assert!(exit.status.success(), "ztplane exit {:?}: {}", exit.status, exit.stderr);
    assert_eq!(sent, 100_000, "generator could not send everything");
    assert!(report.received >= 99_900, "only {} of {sent} datagrams arrived (summary {summary})", report.received);
    assert_eq!(report.duplicates, 0);
    assert_eq!(report.reordered, 0, "per-flow order broken");
    assert!(ping_ok, "ping to {DUT_IP} failed while steering");
    assert_eq!(tcp_bytes, 40_000);
    assert_eq!(echoed, 40_000);
    for worker in summary["workers"].as_array().unwrap() {
        assert!(as_u64(worker, "processed") > 1000, "a worker did no work: {summary}");
        assert_eq!(as_u64(worker, "leaked"), 0, "frames leaked: {summary}");
        assert_eq!(as_u64(worker, "surplus"), 0, "a frame counted twice: {summary}");
    }
    let a0 = &summary["xdp"][0];
    assert!(as_u64(a0, "steered") >= 100_000, "{summary}");
    assert!(as_u64(a0, "passed") > 0, "ARP/ICMP/TCP should have been passed: {summary}");
    assert!(!bed.dut.xdp_attached("a0").unwrap() && !bed.dut.xdp_attached("b0").unwrap(), "XDP left attached");
}

#[test]
fn one_flow_is_processed_by_every_worker_and_leaves_in_order() {
    let _serial = serial();
    let bed = FwdBed::new(2).unwrap();
    // More frames than the rings hold: fill and TX pushes must be cut to the free space.
    let args = ["--cores", "0-1", "--duration", "120", "--umem-frames", "16384", "--ring-size", "512"];
    let dataplane = bed.start_ztplane(ztplane(), &args).unwrap();
    let (sent, report) = send_through(&bed, 1, 30_000, 30_000);
    let exit = dataplane.stop().unwrap();
    let summary = exit.summary().unwrap();
    assert!(exit.status.success(), "{}", exit.stderr);
    assert_eq!(report.flows, 1);
    assert!(report.received * 1000 >= sent * 999, "{} of {sent} arrived: {summary}", report.received);
    assert_eq!(report.reordered, 0, "one 4-tuple came out reordered");
    assert_eq!(report.duplicates, 0);
    // One 4-tuple arrives on one queue, so one worker receives it all...
    let rx: Vec<u64> = summary["workers"].as_array().unwrap().iter().map(|w| as_u64(w, "rx")).collect();
    assert_eq!(rx.iter().filter(|&&n| n > 0).count(), 1, "one flow should arrive on one queue: {summary}");
    // ...and every worker processes a fair part of it.
    for worker in summary["workers"].as_array().unwrap() {
        let processed = as_u64(worker, "processed");
        assert!(processed * 10 > report.received, "worker processed only {processed}: {summary}");
    }
}

#[test]
fn no_xdp_program_is_left_after_sigterm_sigint_or_sigkill() {
    let _serial = serial();
    let bed = FwdBed::new(2).unwrap();
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGKILL] {
        let dataplane = bed.start_ztplane(ztplane(), &["--duration", "60"]).unwrap();
        assert!(bed.dut.xdp_attached("a0").unwrap() && bed.dut.xdp_attached("b0").unwrap());
        let exit = dataplane.stop_with(signal).unwrap();
        if signal != libc::SIGKILL {
            assert!(exit.status.success(), "exit after signal {signal}: {:?}: {}", exit.status, exit.stderr);
            assert!(exit.leftovers.is_empty(), "left behind after signal {signal}: {:?}", exit.leftovers);
            assert!(exit.summary().is_ok(), "no final statistics after signal {signal}");
        }
        // The BPF link dies with the last fd: nothing stays attached, even after SIGKILL.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while bed.dut.xdp_attached("a0").unwrap() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let link = bed.dut.ip(&["-d", "link", "show", "a0"]).unwrap();
        assert!(
            !bed.dut.xdp_attached("a0").unwrap(),
            "after signal {signal}: {}",
            String::from_utf8_lossy(&link.stdout)
        );
        assert!(!bed.dut.xdp_attached("b0").unwrap(), "after signal {signal}: b0 still has XDP");
    }
}

#[test]
fn bad_configuration_fails_with_one_clear_line() {
    let _serial = serial();
    let bed = FwdBed::new(2).unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["fwd", "--iface", "a0", "--iface", "nosuch0"], "unknown interface \"nosuch0\""),
        (&["fwd", "--iface", "a0", "--iface", "b0", "--queues", "0-5"], "queue 2 is out of range"),
        (&["fwd", "--iface", "a0", "--iface", "b0", "--bpffs", "/tmp"], "is not a bpffs mount"),
        (&["fwd", "--iface", "a0", "--iface", "b0", "--bpffs", "/nonexistent/bpf"], "does not exist"),
        (&["fwd", "--iface", "a0", "--iface", "b0", "--umem-frames", "4194304"], "not enough memory for the UMEM"),
        (&["fwd", "--iface", "a0", "--iface", "b0", "--ring-size", "3"], "--ring-size"),
    ];
    for (args, needle) in cases {
        let out = bed.dut.command(ztplane().to_str().unwrap()).args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("ztplane:")).collect();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert_eq!(errors.len(), 1, "{args:?}: expected one error line, got {stderr}");
        assert!(errors[0].contains(needle), "{args:?}: {:?} lacks {needle:?}", errors[0]);
        assert!(!bed.dut.xdp_attached("a0").unwrap(), "{args:?} left XDP attached");
    }
    // Without privileges.
    let out = bed
        .dut
        .command("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", ztplane().to_str().unwrap()])
        .args(["fwd", "--iface", "a0", "--iface", "b0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("permission denied"), "{stderr}");
}
