//! The LAN-port program of gateway mode (`Steering::attach_lan`) on a veth pair (root only):
//! every frame (ARP, ICMP, TCP, UDP to any port, IPv6, other ethertypes, a VLAN that is not
//! excluded) goes to the AF_XDP socket and none to the kernel; a frame of an excluded VLAN goes
//! to the kernel and never to the socket; with no socket bound the kernel gets everything.
//!
//! ```text
//!  [peer] peer0 ──────veth────── lan0 [lan]     ztplane_lan on lan0, an AF_XDP socket on queue 0
//!         198.18.0.1             198.18.0.2     and a packet tap: what the kernel receives
//! ```
//!
//! What reached the kernel is read from an AF_PACKET tap on lan0 (`PacketTap`): the stack's
//! taps see a frame after XDP, only if the program passed it. This kernel has no 802.1Q support
//! (no VLAN subinterfaces, no VLAN-aware bridge), so the excluded VLAN's frames are shown reaching
//! the kernel there, not answered by it; untagged traffic is also checked with the kernel's own
//! ping and its IP counters.
use anyhow::{Context, Result, bail, ensure};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;
use ztplane::error::DataplaneError;
use ztplane::steering::{AttachMode, Steering};
use ztplane_ebpf_common::{COUNTERS_MAP, EXCLUDED_VLANS_MAP, PORTS_MAP};
use ztplane_testkit::crafted::{
    ETH_P_8021Q, ETH_P_ARP, ETH_P_IPV4, ETH_P_IPV6, Ends, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Tag, icmp_echo,
    inner_ethertype, ipv6_udp, outer_vlan, tcp_syn, udp,
};
use ztplane_testkit::pktgen::parse_mac;
use ztplane_testkit::pktgen::xsk::{Mode, Xsk};
use ztplane_testkit::traffic::{PacketTap, send_frames};
use ztplane_testkit::{Netns, PinDir, Topology};

/// Both tests use the same interface names (pinned under the same directory) and share 2 cores.
static SERIAL: Mutex<()> = Mutex::new(());

const PEER_IF: &str = "peer0";
const LAN_IF: &str = "lan0";
const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const LAN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// How long the socket and the tap are read after a burst of frames: a veth delivers at once.
const SETTLE: Duration = Duration::from_millis(500);

/// Whether the test can run; says why not when it cannot.
fn is_root() -> bool {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: the LAN steering test needs root (XDP, AF_XDP, network namespaces)");
        return false;
    }
    true
}

struct Bed {
    peer: Netns,
    lan: Netns,
    lan_mac: String,
    /// Crafted frames from the peer to the LAN side.
    ends: Ends,
    /// Last: the namespaces go after everything that runs in them.
    _topo: Topology,
}

/// The LAN side of a [`Bed`]: the program on lan0, its socket, and the kernel's view.
struct LanPort {
    steering: Steering,
    xsk: Xsk,
    kernel: PacketTap,
}

impl LanPort {
    /// Both views over `wait`: (frames on the AF_XDP socket, frames the kernel received).
    fn receive_for(&mut self, wait: Duration) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let socket = self.xsk.receive_for(wait);
        (socket, self.kernel.receive_for(Duration::ZERO))
    }
}

impl Bed {
    fn new() -> Result<Bed> {
        let mut topo = Topology::new()?;
        let peer = topo.netns("peer")?;
        let lan = topo.netns("lan")?;
        topo.veth(&peer, PEER_IF, &lan, LAN_IF, 1)?;
        peer.addr(PEER_IF, &format!("{PEER_IP}/24"))?;
        lan.addr(LAN_IF, &format!("{LAN_IP}/24"))?;
        let lan_mac = lan.mac(LAN_IF)?;
        let ends = Ends {
            src_mac: parse_mac(&peer.mac(PEER_IF)?)?,
            dst_mac: parse_mac(&lan_mac)?,
            src_ip: PEER_IP,
            dst_ip: LAN_IP,
        };
        Ok(Bed { peer, lan, lan_mac, ends, _topo: topo })
    }

    /// Attaches the LAN program to lan0 excluding `vlans`, opens (does not register) an AF_XDP
    /// socket on its queue 0 and a tap, all from inside the LAN namespace.
    fn lan_port(&self, vlans: &[u16], pins: &PinDir) -> Result<LanPort> {
        let (vlans, pins) = (vlans.to_vec(), pins.0.clone());
        self.lan.run(move || -> Result<LanPort> {
            let kernel = PacketTap::open(LAN_IF)?;
            let steering = Steering::attach_lan(LAN_IF, AttachMode::Auto, &vlans, &pins)?;
            let mut xsk = Xsk::open(LAN_IF, 0, Mode::Copy)?;
            xsk.stock_fill();
            eprintln!("{LAN_IF}: LAN program in {} mode", steering.mode());
            Ok(LanPort { steering, xsk, kernel })
        })?
    }

    /// Sends `frames` from the peer, each once.
    fn send(&self, frames: &[Vec<u8>]) -> Result<()> {
        let owned = frames.to_vec();
        let sent = self.peer.run(move || send_frames(PEER_IF, &owned))??;
        ensure!(sent == frames.len(), "sent {sent} of {} frames", frames.len());
        Ok(())
    }

    /// The peer forgets the LAN side's MAC: its next packet there starts with ARP.
    fn forget_neighbours(&self) -> Result<()> {
        self.peer.ip(&["neigh", "flush", "all"])?;
        Ok(())
    }

    /// IPv4 packets the LAN side's kernel has received (`Ip: InReceives`).
    fn lan_ipv4_received(&self) -> Result<u64> {
        let out = self.lan.exec("cat", &["/proc/net/snmp"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut ip = text.lines().filter(|l| l.starts_with("Ip: "));
        let (names, values) = (ip.next().context("Ip: header")?, ip.next().context("Ip: values")?);
        let column = names.split_whitespace().position(|n| n == "InReceives").context("InReceives")?;
        values.split_whitespace().nth(column).context("InReceives value")?.parse().context("InReceives")
    }
}

/// The protocol, destination and layer-4 bytes of an IPv4 frame (tagged or not).
fn ipv4_to(frame: &[u8]) -> Option<(u8, Ipv4Addr, &[u8])> {
    let (ethertype, l3) = inner_ethertype(frame)?;
    if ethertype != ETH_P_IPV4 || frame.len() < l3 + 20 {
        return None;
    }
    let ip = &frame[l3..];
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    Some((ip[9], Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]), ip.get(header_len..)?))
}

/// An ARP request for `target`.
fn is_arp_request_for(frame: &[u8], target: Ipv4Addr) -> bool {
    let Some((ETH_P_ARP, l3)) = inner_ethertype(frame) else { return false };
    frame.get(l3 + 6..l3 + 8) == Some(&[0, 1]) && frame.get(l3 + 24..l3 + 28) == Some(&target.octets())
}

fn is_echo_request_to(frame: &[u8], target: Ipv4Addr) -> bool {
    matches!(ipv4_to(frame), Some((IPPROTO_ICMP, dst, l4)) if dst == target && l4.first() == Some(&8))
}

/// Each of `frames` is in `seen` (`what`: where).
fn all_in(frames: &[Vec<u8>], seen: &[Vec<u8>], what: &str) -> Result<()> {
    for (i, frame) in frames.iter().enumerate() {
        ensure!(seen.contains(frame), "frame {i} missing from {what} ({} frames there): {frame:02x?}", seen.len());
    }
    Ok(())
}

/// None of `frames` is in `seen`.
fn none_in(frames: &[Vec<u8>], seen: &[Vec<u8>], what: &str) -> Result<()> {
    if let Some(frame) = frames.iter().find(|f| seen.contains(f)) {
        bail!("a frame reached {what}: {frame:02x?}");
    }
    Ok(())
}

#[test]
fn every_frame_goes_to_the_socket_and_none_to_the_kernel() -> Result<()> {
    if !is_root() {
        return Ok(());
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Bed::new()?;
    let pins = PinDir::new("lan-steering-test");
    let mut port = bed.lan_port(&[], &pins)?;
    let lan_ip = LAN_IP.to_string();

    // No socket on the queue yet: the kernel gets the frames and answers, as on an underlay port.
    ensure!(bed.peer.ping(&lan_ip, 1)?, "no socket bound, yet the LAN side's kernel did not answer");
    let (socket, kernel) = port.receive_for(Duration::ZERO);
    ensure!(socket.is_empty(), "frames on a socket that is not registered");
    ensure!(kernel.iter().any(|f| is_echo_request_to(f, LAN_IP)), "the tap did not see the kernel's ping");

    port.steering.register_socket(0, port.xsk.rx.fd())?;
    let [_, steered_before, passed_before, _] = port.steering.counters()?;
    let ipv4_before = bed.lan_ipv4_received()?;
    // The peer asks who has the LAN side's address: the request is the socket's, nobody answers.
    bed.forget_neighbours()?;
    ensure!(!bed.peer.ping(&lan_ip, 2)?, "answered: ARP reached the kernel");
    // With the MAC known, the echo requests go to the socket as well.
    bed.peer.neigh(PEER_IF, &lan_ip, &bed.lan_mac)?;
    ensure!(!bed.peer.ping(&lan_ip, 2)?, "answered: ICMP reached the kernel");
    let e = bed.ends;
    let payload = [0x5au8; 32];
    let crafted = vec![
        e.ether(&[], ETH_P_ARP, &e.arp_request()),
        e.ether(&[], ETH_P_IPV4, &e.ipv4(IPPROTO_ICMP, 0, &icmp_echo(0x7a70, 1, &payload))),
        e.ether(&[], ETH_P_IPV4, &e.ipv4(IPPROTO_TCP, 0x4000, &tcp_syn(22, 1))),
        e.ether(&[], ETH_P_IPV4, &e.ipv4(IPPROTO_TCP, 0x4000, &tcp_syn(443, 2))),
        e.ether(&[], ETH_P_IPV4, &e.ipv4(IPPROTO_UDP, 0, &udp(53, &payload))),
        e.ether(&[], ETH_P_IPV4, &e.ipv4(IPPROTO_UDP, 0, &udp(9993, &payload))),
        e.ether(&[], ETH_P_IPV4, &e.ipv4(IPPROTO_UDP, 0, &udp(40001, &payload))),
        e.ether(&[], ETH_P_IPV4, &e.ipv4(IPPROTO_UDP, 0x2000, &udp(9993, &payload))), // a first fragment
        e.ether(&[], ETH_P_IPV6, &ipv6_udp(9993, &payload)),
        e.ether(&[Tag::q(20)], ETH_P_IPV4, &e.ipv4(IPPROTO_UDP, 0, &udp(7, &payload))),
        e.ether(&[], 0x88b5, &payload), // local experimental ethertype: not IP at all
    ];
    bed.send(&crafted)?;
    let (socket, kernel) = port.receive_for(SETTLE);

    all_in(&crafted, &socket, "the socket")?;
    ensure!(socket.iter().filter(|f| is_arp_request_for(f, LAN_IP)).count() >= 2, "the peer's ARP requests");
    ensure!(socket.iter().filter(|f| is_echo_request_to(f, LAN_IP)).count() >= 3, "the peer's echo requests");
    ensure!(kernel.is_empty(), "the kernel received {} frames with a socket bound: {kernel:02x?}", kernel.len());
    let ipv4_received = bed.lan_ipv4_received()? - ipv4_before;
    ensure!(ipv4_received == 0, "the LAN side's IP stack received {ipv4_received} packets");
    let [seen, steered, passed, malformed] = port.steering.counters()?;
    println!(
        "counters: seen {seen} steered {steered} passed {passed} malformed {malformed}; {} on the socket",
        socket.len()
    );
    ensure!(passed == passed_before, "{} frames passed with a socket bound", passed - passed_before);
    ensure!(steered - steered_before >= socket.len() as u64, "steered {} < {}", steered - steered_before, socket.len());
    ensure!((seen, malformed) == (steered + passed, 0), "seen {seen}, malformed {malformed}");

    // Without its socket the queue's frames go back to the kernel.
    port.steering.unregister_socket(0);
    bed.forget_neighbours()?;
    ensure!(bed.peer.ping(&lan_ip, 1)?, "socket unregistered, yet the kernel did not answer");
    drop(port);
    ensure!(!bed.lan.xdp_attached(LAN_IF)?, "the program is still attached after drop");
    Ok(())
}

#[test]
fn excluded_vlans_reach_the_kernel_and_never_the_socket() -> Result<()> {
    if !is_root() {
        return Ok(());
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Bed::new()?;
    let pins = PinDir::new("lan-steering-test");
    let mut port = bed.lan_port(&[10], &pins)?;
    port.steering.register_socket(0, port.xsk.rx.fd())?;
    // A LAN port pins its exclusions (for ztplanectl) instead of a port set.
    let dir = pins.0.join(LAN_IF);
    ensure!(dir.join(EXCLUDED_VLANS_MAP).exists() && dir.join(COUNTERS_MAP).exists(), "pins in {}", dir.display());
    ensure!(!dir.join(PORTS_MAP).exists(), "a LAN port has no port set to pin");

    let e = bed.ends;
    let payload = [0x33u8; 24];
    let datagram = |tags: &[Tag], port| e.ether(tags, ETH_P_IPV4, &e.ipv4(IPPROTO_UDP, 0, &udp(port, &payload)));
    // Outer VLAN 10, whatever the priority bits, the TPID or the tags inside.
    let vlan10 = vec![
        datagram(&[Tag::q(10)], 9),
        e.ether(&[Tag::q(10)], ETH_P_ARP, &e.arp_request()),
        datagram(&[Tag { tpid: ETH_P_8021Q, tci: 0xb00a }], 9993), // priority 5, DEI set, VLAN 10
        datagram(&[Tag::ad(10), Tag::q(20)], 9),
        datagram(&[Tag::ad(10)], 9),
    ];
    let vlan20 = vec![
        datagram(&[Tag::q(20)], 9),
        e.ether(&[Tag::q(20)], ETH_P_ARP, &e.arp_request()),
        datagram(&[Tag::ad(20), Tag::q(10)], 9), // an inner tag of 10 does not count
    ];
    let others = vec![
        datagram(&[Tag::q(0)], 9), // priority-tagged: no VLAN
        datagram(&[Tag::q(30)], 9),
        datagram(&[], 9),
    ];
    let [_, _, passed_before, _] = port.steering.counters()?;
    bed.send(&[vlan10.clone(), vlan20.clone(), others.clone()].concat())?;
    let (socket, kernel) = port.receive_for(SETTLE);

    all_in(&vlan10, &kernel, "the kernel")?;
    if let Some(f) = socket.iter().find(|f| outer_vlan(f).is_some_and(|(_, id)| id == 10)) {
        bail!("a frame of excluded VLAN 10 reached the socket: {f:02x?}");
    }
    all_in(&vlan20, &socket, "the socket")?;
    all_in(&others, &socket, "the socket")?;
    none_in(&vlan20, &kernel, "the kernel")?;
    none_in(&others, &kernel, "the kernel")?;
    let [seen, steered, passed, malformed] = port.steering.counters()?;
    println!(
        "counters: seen {seen} steered {steered} passed {passed} malformed {malformed}; {} on the socket",
        socket.len()
    );
    ensure!(
        passed - passed_before == vlan10.len() as u64,
        "passed {} frames, not {}",
        passed - passed_before,
        vlan10.len()
    );
    ensure!((seen, malformed) == (steered + passed, 0), "seen {seen}, malformed {malformed}");

    // A tag cut short belongs to no VLAN: counted malformed and left to the kernel, which drops
    // it (so its tap never shows it either).
    let cut_short = e.ether(&[], ETH_P_8021Q, &[0x00]);
    bed.send(std::slice::from_ref(&cut_short))?;
    let (socket, _) = port.receive_for(SETTLE);
    none_in(std::slice::from_ref(&cut_short), &socket, "the socket")?;
    let [_, _, passed_now, malformed_now] = port.steering.counters()?;
    ensure!(
        (passed_now - passed, malformed_now - malformed) == (1, 1),
        "passed, malformed: {passed_now}, {malformed_now}"
    );

    // The exclusions change while the program runs: VLAN 20 becomes the kernel's, VLAN 10 not.
    port.steering.set_excluded_vlans(&[20])?;
    bed.send(&[vlan10.clone(), vlan20.clone()].concat())?;
    let (socket, kernel) = port.receive_for(SETTLE);
    all_in(&vlan10, &socket, "the socket")?;
    all_in(&vlan20, &kernel, "the kernel")?;
    none_in(&vlan10, &kernel, "the kernel")?;
    none_in(&vlan20, &socket, "the socket")?;

    // Invalid IDs are refused and leave the set as it was; a LAN port has no port set.
    for bad in [0, 4095] {
        let err = port.steering.set_excluded_vlans(&[10, bad]).unwrap_err();
        ensure!(matches!(err, DataplaneError::InvalidVlan(v) if v == bad), "{bad}: {err}");
    }
    let err = port.steering.set_ports(&[9993]).unwrap_err();
    ensure!(matches!(err, DataplaneError::Config(_)), "set_ports on a LAN port: {err}");
    bed.send(&vlan20)?;
    let (socket, kernel) = port.receive_for(SETTLE);
    all_in(&vlan20, &kernel, "the kernel")?;
    none_in(&vlan20, &socket, "the socket")?;

    drop(port);
    ensure!(!dir.exists(), "pins left in {}", dir.display());
    Ok(())
}
