//! The AF_XDP generator across a veth pair between two namespaces (root only): every frame sent
//! arrives, in order per flow, at the configured size, with a plausible latency.
//!
//! The receiver is steered by ztplane's own XDP program (native mode on the veth), with the
//! generator's UDP destination port as the one steered port.
use std::time::Duration;
use ztplane::steering::{AttachMode, Steering};
use ztplane_testkit::pktgen::{self, Config, Report, Steer, SteerRequest};
use ztplane_testkit::{PinDir, Topology};

const COUNT: u64 = 10_000;
const FLOWS: u16 = 4;
const RATE: u64 = 20_000;

/// The tests share two cores: one unpaced run beside a paced one would make the paced one lossy.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn is_root() -> bool {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: the pktgen test needs root (AF_XDP, XDP, network namespaces)");
        return false;
    }
    true
}

/// Attaches ztplane's steering program to the receiving veth and registers the sockets.
fn ztplane_steering() -> Steer {
    Box::new(|request: &SteerRequest| {
        let pins = PinDir::new("pktgen-test");
        let mut steering = Steering::attach(&request.ifname, AttachMode::Auto, &[request.dst_port], &pins.0)?;
        for &(queue, fd) in &request.sockets {
            // SAFETY: the fd is the receiver's socket, open for the whole run.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            steering.register_socket(queue, &fd)?;
        }
        eprintln!("steering on {} in {} mode", request.ifname, steering.mode());
        // Fields drop in order: the program and its pins first, then their directory.
        Ok(Box::new((steering, pins)) as Box<dyn std::any::Any>)
    })
}

/// A generator namespace and a sink namespace joined by one single-queue veth pair. Returns the
/// report and the frames the veth itself dropped (generator TX + sink RX counters).
fn run(size: usize, rate: Option<u64>, count: u64) -> (Report, u64) {
    let mut topo = Topology::new().unwrap();
    let gen_ns = topo.netns("pgtx").unwrap();
    let sink = topo.netns("pgrx").unwrap();
    topo.veth(&gen_ns, "pg0", &sink, "pg1", 1).unwrap();
    gen_ns.addr("pg0", "198.18.0.1/15").unwrap();
    sink.addr("pg1", "198.19.0.1/15").unwrap();
    let mut config = Config::new("pg0", "pg1");
    config.size = size;
    config.flows = FLOWS;
    config.rate = rate;
    config.count = Some(count);
    config.duration = Duration::from_secs(10);
    config.verify = true;
    config.src_mac = pktgen::parse_mac(&gen_ns.mac("pg0").unwrap()).unwrap();
    config.dst_mac = pktgen::parse_mac(&sink.mac("pg1").unwrap()).unwrap();
    let report = pktgen::run(&config, Some(&gen_ns), Some(&sink), ztplane_steering()).unwrap();
    println!("{}", report.table());
    println!("{}", report.to_json());
    assert!(!sink.xdp_attached("pg1").unwrap(), "the steering program is detached after the run");
    let veth_drops =
        gen_ns.link_counter("pg0", "tx_dropped").unwrap() + sink.link_counter("pg1", "rx_dropped").unwrap();
    (report, veth_drops)
}

#[test]
fn paced_traffic_arrives_complete_in_order_and_timed() {
    if !is_root() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for size in [64, 1518] {
        let (r, _) = run(size, Some(RATE), COUNT);
        assert_eq!(r.sent, COUNT, "size {size}: the count caps the run");
        assert_eq!((r.received, r.lost), (COUNT, 0), "size {size}: a quiet veth at {RATE} pps loses nothing");
        assert_eq!((r.reordered, r.duplicates), (0, 0), "size {size}");
        assert_eq!((r.foreign, r.bad_checksums), (0, 0), "size {size}");
        assert_eq!(r.rx_len, (size - 4, size - 4), "size {size}: frames on the wire are size - FCS");
        assert_eq!(r.per_flow.len(), usize::from(FLOWS));
        for f in &r.per_flow {
            assert_eq!((f.sent, f.received), (COUNT / u64::from(FLOWS), COUNT / u64::from(FLOWS)), "flow {}", f.flow);
        }
        assert_eq!(r.latency.samples, COUNT);
        assert!(r.latency.p50_us > 0.0 && r.latency.p50_us < 10_000.0, "p50 {} µs", r.latency.p50_us);
        assert!(r.latency.min_us <= r.latency.p50_us && r.latency.p50_us <= r.latency.max_us);
        // The pacer never offers more than the rate (plus its initial burst); a loaded machine
        // may offer less.
        let offered_pps = r.offered_mpps * 1e6;
        assert!(offered_pps <= RATE as f64 * 1.05 && offered_pps >= RATE as f64 * 0.5, "offered {offered_pps} pps");
        assert!((r.offered_gbps_l1 / r.offered_gbps_l2 - (size + 20) as f64 / size as f64).abs() < 1e-9);
    }
}

/// Unpaced: what one shared core gets through a veth, and that losses, if any, are accounted
/// for by the kernel's drop counters: the receiving socket's (`dropped` includes frames that
/// found the fill ring empty; `rx_ring_full` is separate) or the veth's (which counts a failed
/// redirect to the socket as well, so the two overlap: the larger must cover the loss).
#[test]
fn unpaced_traffic_is_accounted_for() {
    if !is_root() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (r, veth_drops) = run(64, None, 200_000);
    assert_eq!(r.sent, 200_000);
    assert!(r.received > 0);
    assert_eq!((r.reordered, r.duplicates, r.bad_checksums), (0, 0, 0));
    let (dropped, ring_full, _fill_empty) = r.rx_kernel_drops;
    println!("lost {}: socket drops {:?}, veth drops {veth_drops}", r.lost, r.rx_kernel_drops);
    assert!(
        r.lost <= (dropped + ring_full).max(veth_drops),
        "lost {} not explained by socket drops {:?} and veth drops {veth_drops}",
        r.lost,
        r.rx_kernel_drops
    );
}
