//! Traffic of our own for tests and benchmarks (this kernel has no pktgen): a paced UDP sender
//! whose payloads carry sequence numbers, a sink that counts loss, duplicates and reordering per
//! flow, a checked TCP transfer between namespaces, and a raw AF_PACKET blaster for throughput
//! runs. All of it refuses destinations outside 198.18.0.0/15 and stops by itself (bounded count
//! and time).
use crate::{Netns, is_benchmark_addr};
use anyhow::{Context, Result, bail, ensure};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Payload layout: sequence number (u64 LE) ‖ flow number (u32 LE) ‖ filler.
pub const HEADER_LEN: usize = 12;

/// What a paced sender should send.
#[derive(Clone, Debug)]
pub struct SendSpec {
    pub src_ip: Ipv4Addr,
    /// One socket (one 4-tuple, one flow) per source port.
    pub src_ports: Vec<u16>,
    pub dst: SocketAddrV4,
    /// Datagrams in total, spread round-robin over the flows.
    pub count: u64,
    /// Datagrams per second (all flows together).
    pub rate: u64,
    pub payload_len: usize,
    /// Hard stop, whatever has been sent.
    pub max_duration: Duration,
}

#[derive(Clone, Debug, Default)]
pub struct SendReport {
    pub sent: u64,
    pub errors: u64,
    pub elapsed: Duration,
}

/// Fails unless the calling thread has entered a network namespace other than the process's own
/// (see [`crate::Netns::thread`]): test traffic never leaves from the host's namespace.
pub fn require_test_namespace() -> Result<()> {
    let here = std::fs::read_link("/proc/thread-self/ns/net").context("reading this thread's netns")?;
    let home = std::fs::read_link("/proc/self/ns/net").context("reading the process's netns")?;
    if here == home {
        bail!("refusing to send from the process's own network namespace: run this inside a test namespace");
    }
    Ok(())
}

/// Sends `spec.count` datagrams paced at `spec.rate`. Run it inside a namespace thread.
pub fn send_udp(spec: &SendSpec) -> Result<SendReport> {
    if !is_benchmark_addr(*spec.dst.ip()) {
        bail!("refusing to send to {}: outside 198.18.0.0/15", spec.dst);
    }
    require_test_namespace()?;
    if spec.src_ports.is_empty() || spec.payload_len < HEADER_LEN {
        bail!("need at least one source port and a payload of {HEADER_LEN}+ bytes");
    }
    let sockets = spec
        .src_ports
        .iter()
        .map(|&port| {
            let socket = UdpSocket::bind(SocketAddrV4::new(spec.src_ip, port))
                .with_context(|| format!("binding {}:{port}", spec.src_ip))?;
            socket.connect(spec.dst).context("connect")?;
            Ok(socket)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut payload = vec![0x5au8; spec.payload_len];
    let mut seq_per_flow = vec![0u64; sockets.len()];
    let start = Instant::now();
    let mut report = SendReport::default();
    let interval = Duration::from_secs_f64(1.0 / spec.rate.max(1) as f64);
    for n in 0..spec.count {
        let due = start + interval.mul_f64(n as f64);
        let now = Instant::now();
        if now - start > spec.max_duration {
            break;
        }
        if due > now {
            let wait = due - now;
            if wait > Duration::from_micros(200) {
                std::thread::sleep(wait);
            }
        }
        let flow = (n % sockets.len() as u64) as usize;
        payload[..8].copy_from_slice(&seq_per_flow[flow].to_le_bytes());
        payload[8..12].copy_from_slice(&(flow as u32).to_le_bytes());
        match sockets[flow].send(&payload) {
            Ok(_) => {
                report.sent += 1;
                seq_per_flow[flow] += 1;
            }
            // ENOBUFS and friends: count, keep the sequence (the datagram was not sent).
            Err(_) => report.errors += 1,
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// What a sink saw.
#[derive(Clone, Debug, Default)]
pub struct SinkReport {
    pub received: u64,
    /// Datagrams whose sequence number was lower than one already seen on the same flow.
    pub reordered: u64,
    pub duplicates: u64,
    pub malformed: u64,
    pub flows: usize,
}

/// A UDP socket that counts what arrives. Bind it before traffic starts.
pub struct UdpSink {
    socket: UdpSocket,
}

impl UdpSink {
    pub fn bind(addr: SocketAddrV4) -> Result<Self> {
        let socket = UdpSocket::bind(addr).with_context(|| format!("binding sink {addr}"))?;
        set_rcvbuf(&socket, 64 << 20);
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        Ok(UdpSink { socket })
    }

    /// Receives until `expected` datagrams arrived, `idle` passed without any, or `deadline`.
    pub fn collect(&self, expected: u64, idle: Duration, deadline: Duration) -> SinkReport {
        let start = Instant::now();
        let mut last_rx = Instant::now();
        let mut report = SinkReport::default();
        // Per flow: highest sequence seen, and which sequences were seen.
        let mut flows: HashMap<u32, (u64, Vec<u64>)> = HashMap::new();
        let mut buf = vec![0u8; 65536];
        while report.received + report.malformed < expected && start.elapsed() < deadline {
            match self.socket.recv(&mut buf) {
                Ok(n) if n >= HEADER_LEN => {
                    last_rx = Instant::now();
                    let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
                    let flow = u32::from_le_bytes(buf[8..12].try_into().unwrap());
                    let (highest, seen) = flows.entry(flow).or_insert((0, Vec::new()));
                    let (word, bit) = ((seq / 64) as usize, seq % 64);
                    if seen.len() <= word {
                        seen.resize(word + 1, 0);
                    }
                    if seen[word] & (1 << bit) != 0 {
                        report.duplicates += 1;
                        continue;
                    }
                    seen[word] |= 1 << bit;
                    if seq < *highest {
                        report.reordered += 1;
                    }
                    *highest = (*highest).max(seq);
                    report.received += 1;
                }
                Ok(_) => report.malformed += 1,
                Err(_) => {
                    if report.received > 0 && last_rx.elapsed() > idle {
                        break;
                    }
                }
            }
        }
        report.flows = flows.len();
        report
    }
}

/// The port [`tcp_transfer`] listens on.
pub const TRANSFER_PORT: u16 = 5201;

/// Sends `bytes` of pseudo-random data over one TCP connection from namespace `from` to `to_ip`
/// (an address of namespace `to`), checks every byte on arrival and returns how long it took
/// from connect to the last byte. The receiver gives up after 30 s without data.
pub fn tcp_transfer(from: &Netns, to: &Netns, to_ip: Ipv4Addr, bytes: usize) -> Result<Duration> {
    tcp_transfer_mss(from, to, to_ip, bytes, None)
}

/// As [`tcp_transfer`], with the receiver advertising `mss` (TCP_MAXSEG on the listener).
pub fn tcp_transfer_mss(from: &Netns, to: &Netns, to_ip: Ipv4Addr, bytes: usize, mss: Option<i32>) -> Result<Duration> {
    if !is_benchmark_addr(to_ip) {
        bail!("refusing to send to {to_ip}: outside 198.18.0.0/15");
    }
    let data: Vec<u8> = (0..bytes).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[1]).collect();
    let expected = data.clone();
    let addr = SocketAddrV4::new(to_ip, TRANSFER_PORT);
    let listener = to.run(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, TRANSFER_PORT)))??;
    if let Some(mss) = mss {
        use std::os::fd::AsRawFd;
        // SAFETY: setsockopt reads one int through a pointer valid for the call.
        let r = unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_MAXSEG,
                (&mss as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if r != 0 {
            bail!("TCP_MAXSEG: {}", std::io::Error::last_os_error());
        }
    }
    let server = to.thread(move || -> Result<Vec<u8>> {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut got = Vec::new();
        s.read_to_end(&mut got).context("receiving")?;
        Ok(got)
    })?;
    let start = Instant::now();
    from.run(move || -> Result<()> {
        let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(10))
            .with_context(|| format!("connecting to {addr}"))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        s.write_all(&data).context("sending")
    })??;
    let got = server.join().map_err(|_| anyhow::anyhow!("transfer receiver panicked"))??;
    let elapsed = start.elapsed();
    if got.len() != expected.len() {
        bail!("received {} of {} bytes", got.len(), expected.len());
    }
    if let Some(at) = got.iter().zip(&expected).position(|(g, e)| g != e) {
        bail!("TCP data differs from byte {at} on");
    }
    Ok(elapsed)
}

fn set_rcvbuf(socket: &UdpSocket, bytes: i32) {
    use std::os::fd::AsRawFd;
    // SO_RCVBUFFORCE ignores rmem_max (we are root); fall back to the capped option.
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &bytes as *const i32 as *const libc::c_void,
                std::mem::size_of::<i32>() as u32,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

/// A frame template for the raw blaster: Ethernet/IPv4/UDP with valid IP checksum.
#[derive(Clone, Debug)]
pub struct RawFlow {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    /// Whole Ethernet frame length (without FCS), at least 60.
    pub frame_len: usize,
}

impl RawFlow {
    pub fn frame(&self, seq: u64) -> Vec<u8> {
        let len = self.frame_len.max(60);
        let mut f = vec![0u8; len];
        f[0..6].copy_from_slice(&self.dst_mac);
        f[6..12].copy_from_slice(&self.src_mac);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip_len = (len - 14) as u16;
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&self.src.ip().octets());
        ip[16..20].copy_from_slice(&self.dst.ip().octets());
        let sum = ipv4_checksum(ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let udp_len = ip_len - 20;
        f[34..36].copy_from_slice(&self.src.port().to_be_bytes());
        f[36..38].copy_from_slice(&self.dst.port().to_be_bytes());
        f[38..40].copy_from_slice(&udp_len.to_be_bytes());
        // UDP checksum 0: "none" is valid for IPv4.
        if len >= 42 + 8 {
            f[42..50].copy_from_slice(&seq.to_le_bytes());
        }
        f
    }
}

/// The Internet checksum (RFC 1071) of `header`, an even number of bytes.
pub(crate) fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An AF_PACKET socket bound to one interface, for sending whole Ethernet frames (and, bound to
/// a protocol, receiving them: [`PacketTap`]).
struct PacketSocket {
    fd: i32,
}

impl PacketSocket {
    /// A socket that sends only (protocol 0: the kernel hands it nothing).
    fn bind(ifname: &str, bypass_qdisc: bool) -> Result<Self> {
        PacketSocket::bind_protocol(ifname, 0, bypass_qdisc)
    }

    /// A socket that also receives frames of `protocol` (an ethertype, or `ETH_P_ALL`).
    fn bind_protocol(ifname: &str, protocol: u16, bypass_qdisc: bool) -> Result<Self> {
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol.to_be())) };
        if fd < 0 {
            bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
        }
        let socket = PacketSocket { fd };
        let cname = std::ffi::CString::new(ifname)?;
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            bail!("no interface {ifname}");
        }
        if bypass_qdisc {
            let one: i32 = 1;
            unsafe {
                libc::setsockopt(fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &one as *const i32 as *const _, 4)
            };
        }
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol.to_be();
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        let len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        if unsafe { libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len) } != 0 {
            bail!("bind AF_PACKET to {ifname}: {}", std::io::Error::last_os_error());
        }
        Ok(socket)
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        unsafe { libc::close(self.fd) };
    }
}

/// What the kernel's receive path gets on one interface: an AF_PACKET socket for every
/// protocol, which sees a frame only if nothing took it before the stack (an XDP program that
/// redirects it to AF_XDP or drops it). Open it inside a namespace thread; read it from any.
pub struct PacketTap {
    socket: PacketSocket,
}

impl PacketTap {
    pub fn open(ifname: &str) -> Result<PacketTap> {
        require_test_namespace()?;
        let socket = PacketSocket::bind_protocol(ifname, libc::ETH_P_ALL as u16, false)?;
        let one: i32 = 1;
        // The kernel takes the outer VLAN tag off before its taps: auxdata says what it was.
        if unsafe {
            libc::setsockopt(socket.fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, &one as *const i32 as *const _, 4)
        } != 0
        {
            bail!("PACKET_AUXDATA on {ifname}: {}", std::io::Error::last_os_error());
        }
        Ok(PacketTap { socket })
    }

    /// The frames the interface received (not those it sent) within `wait`, in order, each as it
    /// was on the wire: an outer VLAN tag the kernel took off is put back.
    pub fn receive_for(&self, wait: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + wait;
        let mut frames = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            match self.receive_one(&mut buf) {
                Some(Some(frame)) => frames.push(frame),
                Some(None) => {}
                None => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return frames;
                    }
                    let mut fd = libc::pollfd { fd: self.socket.fd, events: libc::POLLIN, revents: 0 };
                    // SAFETY: one valid pollfd for the duration of the call.
                    unsafe { libc::poll(&mut fd, 1, left.as_millis().clamp(1, 100) as i32) };
                }
            }
        }
    }

    /// One queued frame: `None` if there is none, `Some(None)` for one the interface sent.
    fn receive_one(&self, buf: &mut [u8]) -> Option<Option<Vec<u8>>> {
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut control = [0u64; 8]; // room for one cmsg with tpacket_auxdata, 8-byte aligned
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut _, iov_len: buf.len() };
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = &mut from as *mut libc::sockaddr_ll as *mut _;
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut _;
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: every pointer in `msg` is to a live buffer of the stated length.
        let n = unsafe { libc::recvmsg(self.socket.fd, &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return None;
        }
        if from.sll_pkttype == libc::PACKET_OUTGOING {
            return Some(None);
        }
        let mut frame = buf[..n as usize].to_vec();
        // SAFETY: the kernel filled `control` with `msg_controllen` bytes of cmsgs.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            // SAFETY: `cmsg` points into `control`, at a header the kernel wrote.
            let header = unsafe { &*cmsg };
            if header.cmsg_level == libc::SOL_PACKET && header.cmsg_type == libc::PACKET_AUXDATA {
                // SAFETY: a PACKET_AUXDATA cmsg carries a tpacket_auxdata (read unaligned).
                let aux = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::tpacket_auxdata) };
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 && frame.len() >= 12 {
                    let tpid =
                        if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 { aux.tp_vlan_tpid } else { 0x8100 };
                    let mut tag = tpid.to_be_bytes().to_vec();
                    tag.extend_from_slice(&aux.tp_vlan_tci.to_be_bytes());
                    frame.splice(12..12, tag);
                }
            }
            // SAFETY: as above; the next header or null.
            cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
        }
        Some(Some(frame))
    }
}

/// Sends raw frames on `ifname` as fast as the socket takes them, cycling over `flows`, until
/// `duration` passes or `max_frames` are sent. Returns frames sent. Run inside a namespace thread.
pub fn blast_raw(ifname: &str, flows: &[RawFlow], duration: Duration, max_frames: u64) -> Result<u64> {
    for flow in flows {
        if !is_benchmark_addr(*flow.dst.ip()) {
            bail!("refusing to send to {}: outside 198.18.0.0/15", flow.dst);
        }
    }
    require_test_namespace()?;
    let socket = PacketSocket::bind(ifname, true)?;
    const BURST: usize = 64;
    let mut frames: Vec<Vec<u8>> = (0..BURST).map(|i| flows[i % flows.len()].frame(i as u64)).collect();
    let mut iovs: Vec<libc::iovec> =
        frames.iter_mut().map(|f| libc::iovec { iov_base: f.as_mut_ptr() as *mut _, iov_len: f.len() }).collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov as *mut libc::iovec;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut seq = 0u64;
    while start.elapsed() < duration && sent < max_frames {
        for f in frames.iter_mut() {
            if f.len() >= 50 {
                f[42..50].copy_from_slice(&seq.to_le_bytes());
            }
            seq += 1;
        }
        let n = unsafe { libc::sendmmsg(socket.fd, msgs.as_mut_ptr(), BURST as u32, 0) };
        if n > 0 {
            sent += n as u64;
        } else {
            std::thread::yield_now();
        }
    }
    Ok(sent)
}

/// Pins the calling thread to `cpu` (so a generator does not land on a worker's core).
pub fn pin_current_thread(cpu: usize) -> Result<()> {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        bail!("pinning to CPU {cpu}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sends each of `frames` once, as is, on `ifname` (crafted frames: VLAN, IPv6, malformed).
/// Run inside a namespace thread. Returns how many were sent.
pub fn send_frames(ifname: &str, frames: &[Vec<u8>]) -> Result<usize> {
    require_test_namespace()?;
    let socket = PacketSocket::bind(ifname, false)?;
    let sent = frames
        .iter()
        .filter(|frame| unsafe { libc::send(socket.fd, frame.as_ptr() as *const libc::c_void, frame.len(), 0) } >= 0)
        .count();
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_frames_have_valid_ip_checksums() {
        let flow = RawFlow {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: "198.18.0.1:40000".parse().unwrap(),
            dst: "198.18.0.2:9993".parse().unwrap(),
            frame_len: 64,
        };
        let f = flow.frame(7);
        assert_eq!(f.len(), 64);
        assert_eq!(ipv4_checksum(&f[14..34]), 0, "checksum over a valid header is 0");
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 64 - 34);
        assert_eq!(u64::from_le_bytes(f[42..50].try_into().unwrap()), 7);
    }

    #[test]
    fn refuses_to_send_from_the_process_namespace() {
        let err = send_frames("lo", &[vec![0u8; 60]]).unwrap_err().to_string();
        assert!(err.contains("own network namespace"), "{err}");
    }

    #[test]
    fn refuses_addresses_outside_the_benchmark_block() {
        let spec = SendSpec {
            src_ip: Ipv4Addr::LOCALHOST,
            src_ports: vec![0],
            dst: "10.0.0.1:9993".parse().unwrap(),
            count: 1,
            rate: 1,
            payload_len: 64,
            max_duration: Duration::from_secs(1),
        };
        assert!(send_udp(&spec).is_err());
    }
}

/// What an iperf3 run measured.
#[derive(Clone, Debug)]
pub struct Iperf {
    /// TCP goodput the receiver got, Mbit/s.
    pub received_mbps: f64,
    /// Segments the senders retransmitted.
    pub retransmits: u64,
}

/// The TCP port [`iperf3`] listens on.
pub const IPERF_PORT: u16 = 5202;

/// iperf3 TCP from `from` to `to_ip` (an address of namespace `to`) with `streams` parallel
/// streams for `seconds`, the first second left out (slow start): the receiver's goodput. A server
/// is started for the one run (`-s -1`) and killed after it.
pub fn iperf3(from: &Netns, to: &Netns, to_ip: &str, streams: u32, seconds: u64) -> Result<Iperf> {
    let ip: std::net::Ipv4Addr = to_ip.parse().with_context(|| format!("iperf3 target {to_ip:?}"))?;
    ensure!(is_benchmark_addr(ip), "refusing to send to {to_ip}: outside 198.18.0.0/15");
    let port = IPERF_PORT.to_string();
    let mut server = to
        .command("iperf3")
        .args(["-s", "-1", "-p", &port, "-B", to_ip])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting iperf3 -s")?;
    std::thread::sleep(Duration::from_millis(300));
    let out = from
        .command("iperf3")
        .args(["-c", to_ip, "-p", &port, "-J", "-O", "1", "-t", &seconds.to_string(), "-P", &streams.to_string()])
        .args(["--connect-timeout", "5000"])
        .output()
        .context("iperf3 -c");
    let _ = server.kill();
    let _ = server.wait();
    let out = out?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("iperf3 output: {}", String::from_utf8_lossy(&out.stderr)))?;
    if let Some(err) = report["error"].as_str() {
        bail!("iperf3 to {to_ip}: {err}");
    }
    let bps = report["end"]["sum_received"]["bits_per_second"].as_f64().context("iperf3: no sum_received")?;
    let retransmits = report["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
    Ok(Iperf { received_mbps: bps / 1e6, retransmits })
}
