//! The host side against the real kernel, in network namespaces this test creates (root only):
//! a multi-queue tap answering ARP through the kernel, managed addresses and routes (§7.2), and
//! the AF_XDP egress lookup over a veth pair. Addresses only from 198.18.0.0/15.
//!
//! Cleanup: each [`Topology`] deletes its namespaces when dropped (also on a failed assertion),
//! and taps disappear with their fds; both are declared so that the tap drops first.
use anyhow::{Context, Result, bail};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};
use ztplane_host::Error;
use ztplane_host::egress;
use ztplane_host::mcast::link_multicast_groups;
use ztplane_host::netlink::{IfAddress, Netlink, RouteSpec};
use ztplane_host::offload::{NEEDS_CSUM, Segments, VNET_HDR_LEN, VnetHdr};
use ztplane_host::tap::{READ_BUF_LEN, Tap, TapOptions, choose_device_name, format_mac, zt_device_name};
use ztplane_testkit::{Netns, Topology};

const NWID: u64 = 0x2c80d4374849700f;
/// The tap's MAC (the spec's example derived MAC, §7.1).
const TAP_MAC: [u8; 6] = [0x0e, 0xbf, 0xab, 0x00, 0x12, 0x43];
/// The made-up host on the far side of the tap that sends the ARP request.
const PEER_MAC: [u8; 6] = [0x02, 0x5a, 0x00, 0x00, 0x00, 0x09];
const TAP_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 5);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 9);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ip_out(ns: &Netns, args: &[&str]) -> Result<String> {
    Ok(String::from_utf8_lossy(&ns.ip(args)?.stdout).into_owned())
}

/// Broadcast ARP request "who has `target`? tell `sender_ip` (`sender_mac`)".
fn arp_request(sender_mac: [u8; 6], sender_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet, IPv4, request
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&sender_ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// Reads all queues until an ARP reply for `from_ip` arrives; returns the queue and frame.
fn wait_arp_reply(tap: &Tap, from_ip: Ipv4Addr, timeout: Duration) -> Result<(usize, Vec<u8>)> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 16384];
    let mut seen = 0;
    while Instant::now() < deadline {
        let mut idle = true;
        for q in 0..tap.queue_count() {
            match tap.read(q, &mut buf) {
                Ok(n) => {
                    idle = false;
                    seen += 1;
                    let f = &buf[..n];
                    let is_reply = n >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2];
                    if is_reply && f[28..32] == from_ip.octets() {
                        return Ok((q, f.to_vec()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e).context(format!("read queue {q}")),
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    bail!("no ARP reply from {from_ip} within {timeout:?} ({seen} other frames read)")
}

#[test]
fn multiqueue_tap_addresses_routes_and_arp() -> Result<()> {
    let mut topo = Topology::new()?;
    let ns = topo.netns("tap")?;

    // Create and configure inside the namespace; the tap's fds and control socket, and the netlink
    // socket, stay bound to it when used from this (outer) thread afterwards.
    let (tap, mut nl, dup, names) = ns.run(|| -> Result<_> {
        let name = choose_device_name(Path::new("/nonexistent-zt-home"), NWID);
        let tap = Tap::create(&name, &TapOptions::with_queues(4))?;
        tap.set_mac(TAP_MAC)?;
        tap.set_mtu(2800)?;
        tap.set_up(true)?;
        // Same name again: exclusive creation refuses to join the existing device.
        let dup = Tap::create(&name, &TapOptions::default()).map(|_| ());
        // With the computed name taken, the next trial is chosen; a free devicemap name wins.
        let home = std::env::temp_dir().join(format!("ztplane-host-test-{}", std::process::id()));
        std::fs::create_dir_all(&home)?;
        std::fs::write(home.join("devicemap"), format!("{NWID:016x}={name}\n"))?;
        let next = choose_device_name(&home, NWID);
        std::fs::write(home.join("devicemap"), format!("{NWID:016x}=ztmapped0\n"))?;
        let mapped = choose_device_name(&home, NWID);
        std::fs::remove_dir_all(&home)?;
        Ok((tap, Netlink::open()?, dup, (next, mapped)))
    })??;
    let name = tap.name().to_string();
    assert_eq!(name, "ztdpej2r2h", "fresh namespace: trial 0 of the spec example");
    assert!(matches!(dup, Err(Error::Exists { .. })), "second create: {dup:?}");
    assert_eq!(names, (zt_device_name(NWID, 1), "ztmapped0".to_string()));
    assert_eq!(tap.queue_count(), 4);

    let link = ip_out(&ns, &["-d", "link", "show", &name])?;
    assert!(link.contains("mtu 2800"), "{link}");
    assert!(link.contains(&format_mac(&TAP_MAC)), "{link}");
    assert!(link.contains("UP") && link.contains("MULTICAST"), "{link}");
    assert!(link.contains("multi_queue"), "{link}");
    assert!(link.contains("tap"), "{link}");
    assert_eq!(tap.mac()?, TAP_MAC);
    assert!(tap.is_up()?);

    // MTU from the outer thread, checked through netlink (by index and by name).
    tap.set_mtu(1400)?;
    assert_eq!(tap.mtu()?, 1400);
    let by_index = nl.link(tap.ifindex())?;
    assert_eq!(by_index, nl.link(name.as_str())?);
    assert_eq!((by_index.name.as_str(), by_index.mac, by_index.mtu), (name.as_str(), Some(TAP_MAC), 1400));
    tap.set_txqueuelen(4096)?;
    assert!(ip_out(&ns, &["link", "show", &name])?.contains("qlen 4096"));
    assert!(matches!(nl.link("ztnosuchdev"), Err(Error::NoSuchDevice { .. })));

    // Managed address: the kernel adds the subnet route.
    let ifindex = tap.ifindex();
    nl.add_address(ifindex, IpAddr::V4(TAP_IP), 24)?;
    let err = nl.add_address(ifindex, IpAddr::V4(TAP_IP), 24).unwrap_err();
    assert!(matches!(err, Error::Exists { .. }), "{err}");
    assert!(err.to_string().contains("198.19.0.5/24") && err.to_string().contains(&name), "{err}");
    let routes = ip_out(&ns, &["route"])?;
    assert!(routes.contains(&format!("198.19.0.0/24 dev {name} proto kernel scope link src 198.19.0.5")), "{routes}");
    assert!(nl.addresses(ifindex)?.contains(&IfAddress { addr: IpAddr::V4(TAP_IP), prefix_len: 24 }));
    let addrs = ip_out(&ns, &["addr", "show", &name])?;
    assert!(addrs.contains("inet 198.19.0.5/24 brd 198.19.0.255"), "{addrs}");
    assert!(addrs.contains("valid_lft forever"), "{addrs}");

    // Multicast groups the kernel joined on the tap (IPv4 all-hosts at least).
    let groups = ns.run(move || link_multicast_groups("ztdpej2r2h"))??;
    assert!(groups.contains(&[0x01, 0x00, 0x5e, 0, 0, 1]), "{groups:02x?}");

    // ARP through the tap: the kernel answers for 198.19.0.5 on one of the queues.
    tap.write(0, &arp_request(PEER_MAC, PEER_IP, TAP_IP))?;
    let (queue, reply) = wait_arp_reply(&tap, TAP_IP, Duration::from_secs(5))?;
    assert_eq!(&reply[0..6], &PEER_MAC, "reply to the asker (queue {queue})");
    assert_eq!(&reply[6..12], &TAP_MAC);
    assert_eq!(&reply[22..28], &TAP_MAC, "sender hardware address");
    assert_eq!(&reply[32..38], &PEER_MAC, "target hardware address");
    assert_eq!(&reply[38..42], &PEER_IP.octets());
    // …and learned the asker.
    assert_eq!(nl.neighbour(ifindex, IpAddr::V4(PEER_IP))?, Some(PEER_MAC));

    // Routes: `via` + metric (zerotier-one's 5000), and one with a preferred source.
    let via = RouteSpec::new(ip("198.18.128.0"), 24, ifindex).via(ip("198.19.0.1")).metric(5000);
    nl.add_route(&via)?;
    assert!(matches!(nl.add_route(&via), Err(Error::Exists { .. })));
    nl.replace_route(&via)?;
    let with_src = RouteSpec::new(ip("198.18.129.0"), 24, ifindex).src(IpAddr::V4(TAP_IP));
    nl.add_route(&with_src)?;
    let routes = ip_out(&ns, &["route"])?;
    assert!(
        routes.contains(&format!("198.18.128.0/24 via 198.19.0.1 dev {name} proto static metric 5000")),
        "{routes}"
    );
    assert!(routes.contains(&format!("198.18.129.0/24 dev {name} proto static src 198.19.0.5")), "{routes}");
    let r = nl.route_get(ip("198.18.128.7"))?;
    assert_eq!((r.oif, r.gateway, r.prefsrc), (ifindex, Some(ip("198.19.0.1")), Some(IpAddr::V4(TAP_IP))));
    nl.remove_route(&via)?;
    nl.remove_route(&with_src)?;
    let err = nl.remove_route(&via).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let routes = ip_out(&ns, &["route"])?;
    assert!(!routes.contains("198.18.128.0") && !routes.contains("198.18.129.0"), "{routes}");
    assert!(matches!(nl.route_get(ip("198.18.200.1")), Err(Error::Unreachable { .. })));
    let bad = nl.add_route(&RouteSpec::new(ip("198.18.128.0"), 24, ifindex).via(ip("198.18.77.1"))).unwrap_err();
    assert!(bad.to_string().contains("198.18.77.1"), "{bad}");

    // Replace with another prefix, then remove.
    nl.replace_address(ifindex, IpAddr::V4(TAP_IP), 16)?;
    nl.replace_address(ifindex, IpAddr::V4(TAP_IP), 16)?;
    let v4: Vec<_> = nl.addresses(ifindex)?.into_iter().filter(|a| a.addr.is_ipv4()).collect();
    assert_eq!(v4, vec![IfAddress { addr: IpAddr::V4(TAP_IP), prefix_len: 16 }]);
    assert!(ip_out(&ns, &["route"])?.contains(&format!("198.19.0.0/16 dev {name}")));
    nl.remove_address(ifindex, IpAddr::V4(TAP_IP), 16)?;
    assert!(matches!(nl.remove_address(ifindex, IpAddr::V4(TAP_IP), 16), Err(Error::NotFound { .. })));
    assert!(!nl.addresses(ifindex)?.iter().any(|a| a.addr.is_ipv4()));

    // Taking it down makes writes fail with EIO (the kernel's answer for a down tap).
    tap.set_up(false)?;
    assert!(!tap.is_up()?);
    let err = tap.write(1, &arp_request(PEER_MAC, PEER_IP, TAP_IP)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");

    // Not persistent: the interface goes with the last fd. Not always at once: a process that the
    // other test forks at that moment holds copies of our (close-on-exec) fds until its exec.
    drop(tap);
    let deadline = Instant::now() + Duration::from_secs(2);
    while ns.ip(&["link", "show", &name]).is_ok() {
        assert!(Instant::now() < deadline, "{name} still exists 2 s after drop");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(topo);
    Ok(())
}

#[test]
fn egress_over_veth() -> Result<()> {
    let mut topo = Topology::new()?;
    let a = topo.netns("ea")?;
    let b = topo.netns("eb")?;
    topo.veth(&a, "va", &b, "vb", 1)?;
    a.addr("va", "198.18.0.1/24")?;
    b.addr("vb", "198.18.0.2/24")?;
    a.ip(&["route", "add", "198.19.64.0/24", "via", "198.18.0.2"])?;
    let va_mac = a.mac("va")?;
    let vb_mac = b.mac("vb")?;
    let va_index = a.run(|| Netlink::open()?.link("va").map(|l| l.index))??;

    // Before any traffic: no neighbour for an unused address.
    let unused = a.run(|| egress::resolve("198.18.0.77:9993".parse().unwrap()))??;
    assert_eq!(unused.ifindex, va_index);
    assert_eq!(unused.dst_mac, None);
    assert_eq!(unused.next_hop, ip("198.18.0.77"));

    a.exec("ping", &["-c", "1", "-W", "2", "198.18.0.2"])?;

    let e = a.run(|| egress::resolve("198.18.0.2:9993".parse().unwrap()))??;
    assert_eq!(e.ifindex, va_index);
    assert_eq!(e.ifname, "va");
    assert_eq!(e.src_ip, ip("198.18.0.1"));
    assert_eq!(format_mac(&e.src_mac), va_mac);
    assert_eq!(e.next_hop, ip("198.18.0.2"));
    assert_eq!(e.dst_mac.map(|m| format_mac(&m)), Some(vb_mac.clone()));
    assert_eq!(e.mtu, 1500);

    // Behind a gateway: the next hop is the gateway, and its MAC is the one to use.
    let g = a.run(|| egress::resolve("198.19.64.9:9993".parse().unwrap()))??;
    assert_eq!((g.next_hop, g.src_ip), (ip("198.18.0.2"), ip("198.18.0.1")));
    assert_eq!(g.dst_mac.map(|m| format_mac(&m)), Some(vb_mac));

    // An IPv4-mapped IPv6 destination is the IPv4 one.
    let m = a.run(|| egress::resolve("[::ffff:198.18.0.2]:9993".parse().unwrap()))??;
    assert_eq!(m.dst_mac, e.dst_mac);

    // Sending to the unused address makes the kernel try ARP; an INCOMPLETE entry is not usable.
    let (before, after) = a.run(move || -> Result<_> {
        let sock = UdpSocket::bind("198.18.0.1:0")?;
        sock.send_to(b"x", "198.18.0.77:9")?;
        std::thread::sleep(Duration::from_millis(50));
        let neigh = Netlink::open()?.neighbour(va_index, ip("198.18.0.77"))?;
        Ok((neigh, egress::resolve(SocketAddr::from(([198, 18, 0, 77], 9)))?.dst_mac))
    })??;
    assert_eq!((before, after), (None, None));
    let neigh = String::from_utf8_lossy(&a.ip(&["neigh", "show", "198.18.0.77"])?.stdout).into_owned();
    assert!(neigh.contains("INCOMPLETE") || neigh.contains("FAILED"), "{neigh}");

    // No route at all.
    let err = a.run(|| egress::resolve("198.19.200.1:9993".parse().unwrap()))?.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("198.19.200.1"), "{err}");
    Ok(())
}

/// Reads queues until a UDP frame to `port` arrives; returns its vnet header and frame.
fn wait_udp(tap: &Tap, port: u16, timeout: Duration) -> Result<(VnetHdr, Vec<u8>)> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; READ_BUF_LEN];
    while Instant::now() < deadline {
        for q in 0..tap.queue_count() {
            match tap.read(q, &mut buf) {
                Ok(n) => {
                    let (hdr, f) = (VnetHdr::parse(&buf[..n]).context("short read")?, &buf[VNET_HDR_LEN..n]);
                    if f.len() >= 42 && f[12..14] == [0x08, 0x00] && f[23] == 17 && f[36..38] == port.to_be_bytes() {
                        return Ok((hdr, f.to_vec()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e).context(format!("read queue {q}")),
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    bail!("no UDP frame to port {port} within {timeout:?}")
}

/// Byte-pair one's-complement sum, independent of `offload::checksum_add`.
fn reference_sum(bytes: &[u8], mut sum: u32) -> u32 {
    for pair in bytes.chunks(2) {
        sum += u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// IPv4 UDP frame `src:sport → dst:dport` with a correct checksum.
fn udp_frame(dst_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    let ip_sum = !(reference_sum(&f[14..34], 0) as u16);
    f[24..26].copy_from_slice(&ip_sum.to_be_bytes());
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let pseudo = reference_sum(&f[26..34], 17 + 8 + payload.len() as u32);
    let sum = !(reference_sum(&f[34..], pseudo) as u16);
    f[40..42].copy_from_slice(&if sum == 0 { 0xffff } else { sum }.to_be_bytes());
    f
}

/// With offloads the kernel hands over frames whose checksum is left to us (NEEDS_CSUM), the
/// splitter completes it, and a plain frame written behind an all-zero header is delivered.
#[test]
fn vnet_header_tap_checksums_both_ways() -> Result<()> {
    let mut topo = Topology::new()?;
    let ns = topo.netns("vnet")?;
    let tap = ns.run(|| -> Result<_> {
        let tap = Tap::create("ztvnet0", &TapOptions { vnet_hdr: true, ..TapOptions::with_queues(2) })?;
        tap.set_mac(TAP_MAC)?;
        tap.set_mtu(2800)?;
        tap.set_up(true)?;
        Ok(tap)
    })??;
    assert_eq!(tap.queue(0).vnet_hdr_len(), VNET_HDR_LEN);
    let details = ip_out(&ns, &["-d", "link", "show", "ztvnet0"])?;
    assert!(details.contains("vnet_hdr on"), "{details}");
    ns.addr("ztvnet0", "198.19.0.5/24")?;
    ns.neigh("ztvnet0", "198.19.0.9", &format_mac(&PEER_MAC))?;

    // Kernel → tap: a UDP datagram leaves with a partial checksum for us to finish.
    let payload: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
    let sent = payload.clone();
    ns.run(move || -> Result<()> {
        let s = UdpSocket::bind("198.19.0.5:4000")?;
        s.send_to(&sent, "198.19.0.9:4001")?;
        Ok(())
    })??;
    let (hdr, frame) = wait_udp(&tap, 4001, Duration::from_secs(5))?;
    assert_eq!((hdr.flags & NEEDS_CSUM, hdr.csum_start, hdr.csum_offset), (NEEDS_CSUM, 34, 6), "{hdr:?}");
    let segments = Segments::new(hdr, &frame)?;
    assert_eq!(segments.count(), 1);
    let mut out = vec![0u8; segments.max_len()];
    let n = segments.write(0, &mut out)?;
    let done = &out[..n];
    assert_eq!(&done[42..], &payload[..]);
    let pseudo = reference_sum(&done[26..34], 17 + (n as u32 - 34));
    assert_eq!(reference_sum(&done[34..], pseudo), 0xffff, "UDP checksum completed by the splitter");

    // Tap → kernel: a fully checksummed frame behind a zero header reaches the socket.
    let receiver = ns.run(|| UdpSocket::bind("198.19.0.5:4002"))??;
    receiver.set_read_timeout(Some(Duration::from_secs(5)))?;
    tap.write(0, &udp_frame(TAP_MAC, PEER_IP, TAP_IP, 4003, 4002, b"through the vnet header"))?;
    let mut buf = [0u8; 64];
    let (len, from) = receiver.recv_from(&mut buf).context("datagram written to the tap")?;
    assert_eq!(&buf[..len], b"through the vnet header");
    assert_eq!(from, SocketAddr::from((PEER_IP, 4003)));
    drop(tap);
    drop(topo);
    Ok(())
}
