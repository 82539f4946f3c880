//! The slow path: the one thread that owns the [`Node`]. It takes what the workers punt, runs
//! the node's timers, sends the node's datagrams through a kernel UDP socket (which also makes
//! the kernel resolve neighbours), carries out its events on the host (taps, addresses, routes,
//! files) and publishes the data path snapshot and the egress headers the workers use. The
//! control socket's requests are answered here too, between packets, including the network
//! controller's (`/controller/...`), whose records it writes to `controller.d`.

use super::args::TapOffload;
use super::headers::{Egress, EgressTable};
use super::worker::{Shared, TapStats};
use super::{Punt, WorkerCommand};
use crate::error::DataplaneError;
use crate::stats::{self, WorkerStats};
use crossbeam::channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};
use ztplane_controller::NetworkController;
use ztplane_host::control_socket::{ControlServer, Request, Response, SOCKET_NAME};
use ztplane_host::controller_db::ControllerDb;
use ztplane_host::home::Home;
use ztplane_host::netlink::{Netlink, RouteSpec};
use ztplane_host::tap::{Tap, TapOptions};
use ztplane_node::config::NetworkConfig;
use ztplane_node::{Event, Instant, Mac, NetworkId, Node};

/// Egress headers are re-resolved this often (neighbours come and go).
const EGRESS_REFRESH: Duration = Duration::from_secs(2);
/// Frames each tap queue holds for the workers (the kernel's default is 1000).
const TAP_TXQUEUELEN: u32 = 4096;
/// The taps' multicast subscriptions are scanned this often (§5.1).
const MULTICAST_SCAN: Duration = Duration::from_secs(5);

/// The kernel UDP sockets of the slow path (IPv4 and IPv6, the node's port).
pub struct Sockets {
    v4: UdpSocket,
    v6: Option<UdpSocket>,
}

impl Sockets {
    pub fn bind(port: u16) -> Result<Sockets, DataplaneError> {
        let v4 = UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
            .map_err(|e| DataplaneError::Config(format!("UDP port {port}: {e} (another ZeroTier node running?)")))?;
        v4.set_nonblocking(true).map_err(|e| DataplaneError::Internal(e.to_string()))?;
        let v6 = bind_v6only(port).ok();
        Ok(Sockets { v4, v6 })
    }

    fn send(&self, to: SocketAddr, data: &[u8], ttl: Option<u8>) {
        let socket = match to {
            SocketAddr::V4(_) => &self.v4,
            SocketAddr::V6(_) => match &self.v6 {
                Some(s) => s,
                None => return,
            },
        };
        if let Some(ttl) = ttl {
            set_ttl(socket, to.is_ipv4(), ttl);
        }
        if let Err(e) = socket.send_to(data, to) {
            log::debug!("send to {to}: {e}");
        }
        if ttl.is_some() {
            set_ttl(socket, to.is_ipv4(), 64);
        }
    }

    /// Datagrams the XDP program passed to the kernel (no AF_XDP socket on that queue).
    fn receive(&self, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        self.v4.recv_from(buf).ok().or_else(|| self.v6.as_ref().and_then(|s| s.recv_from(buf).ok()))
    }
}

fn bind_v6only(port: u16) -> std::io::Result<UdpSocket> {
    // SAFETY: plain socket/setsockopt/bind calls on a descriptor we own.
    unsafe {
        let fd = libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let socket = <UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        );
        let mut addr: libc::sockaddr_in6 = std::mem::zeroed();
        addr.sin6_family = libc::AF_INET6 as u16;
        addr.sin6_port = port.to_be();
        if libc::bind(fd, &addr as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_in6>() as u32)
            != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(socket)
    }
}

fn set_ttl(socket: &UdpSocket, v4: bool, ttl: u8) {
    if v4 {
        let _ = socket.set_ttl(u32::from(ttl));
    } else {
        let hops: libc::c_int = ttl.into();
        // SAFETY: setsockopt on our own socket with a correctly sized value.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_UNICAST_HOPS,
                &hops as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
    }
}

/// A network's port on the host.
struct Port {
    tap: Tap,
    /// Managed addresses and routes we put on it (removed when the config drops them).
    addresses: Vec<(IpAddr, u8)>,
    routes: Vec<RouteSpec>,
}

pub struct SlowSetup {
    pub node: Node,
    pub home: Home,
    pub shared: Arc<Shared>,
    pub punts: Receiver<Punt>,
    pub workers: Vec<Sender<WorkerCommand>>,
    pub sockets: Sockets,
    pub ifindexes: Vec<u32>,
    pub port: u16,
    pub stop: Arc<AtomicBool>,
    pub duration: Option<Duration>,
    pub ready_file: Option<PathBuf>,
    pub worker_stats: Vec<Arc<WorkerStats>>,
    pub tap_stats: Vec<Arc<TapStats>>,
    pub tap_offload: TapOffload,
    /// Per-link quality for the control process (absent if its map could not be created).
    pub quality: Option<super::quality::QualityPublisher>,
    /// The network controller, shared with the node (which asks it for configs).
    pub controller: Arc<Mutex<NetworkController>>,
    /// Where the controller's records are kept (`DIR/controller.d`).
    pub controller_db: ControllerDb,
    /// LAN interfaces bridged into networks (gateway mode).
    pub lans: Vec<super::LanPort>,
}

pub struct SlowPath {
    s: SlowSetup,
    ports: HashMap<NetworkId, Port>,
    netlink: Option<Netlink>,
    generation: u64,
    last_egress: StdInstant,
    last_scan: StdInstant,
    /// Unix time (ms) of the node's `Instant(0)`: the control API reports wall-clock times.
    unix_origin: u64,
    /// Each network's status when last looked at, to log changes.
    statuses: HashMap<NetworkId, &'static str>,
    /// How the slow path writes to each bridged LAN.
    lan_senders: HashMap<NetworkId, ztplane_host::packet_socket::PacketSocket>,
}

type Control = (Request, Sender<Response>);

impl SlowPath {
    pub fn new(s: SlowSetup) -> Self {
        let netlink = match Netlink::open() {
            Ok(n) => Some(n),
            Err(e) => {
                log::error!("netlink: {e}: managed addresses and AF_XDP egress are unavailable");
                None
            }
        };
        let unix_origin = unix_origin_ms(&s.shared);
        let mut lan_senders = HashMap::new();
        for lan in &s.lans {
            match ztplane_host::packet_socket::PacketSocket::open(&lan.ifname, lan.ifindex) {
                Ok(socket) => {
                    lan_senders.insert(lan.network, socket);
                }
                Err(e) => log::error!("{}: {e}: frames from the network cannot reach the LAN", lan.network),
            }
        }
        SlowPath {
            lan_senders,
            s,
            ports: HashMap::new(),
            netlink,
            generation: u64::MAX,
            last_egress: StdInstant::now(),
            last_scan: StdInstant::now(),
            unix_origin,
            statuses: HashMap::new(),
        }
    }

    fn now(&self) -> Instant {
        self.s.shared.now()
    }

    pub fn run(mut self) -> Result<(), DataplaneError> {
        let locals = self.local_addresses();
        self.s.node.set_local_addresses(locals);
        // Control socket: served on its own thread, answered here.
        let (control_tx, control_rx) = crossbeam::channel::bounded::<Control>(64);
        let socket_path = self.s.home.dir.join(SOCKET_NAME);
        let server = ControlServer::bind(&socket_path)
            .map_err(|e| DataplaneError::Config(format!("control socket {}: {e}", socket_path.display())))?;
        let stop = self.s.stop.clone();
        let control_thread = std::thread::Builder::new()
            .name("ztplane-control".into())
            .spawn(move || {
                server.serve(&stop, &|request: &Request| {
                    let (tx, rx) = crossbeam::channel::bounded(1);
                    if control_tx.send_timeout((request.clone(), tx), Duration::from_secs(2)).is_err() {
                        return Response::new(503, json!({"error": "node busy"}));
                    }
                    rx.recv_timeout(Duration::from_secs(5))
                        .unwrap_or_else(|_| Response::new(503, json!({"error": "node busy"})))
                })
            })
            .map_err(|e| DataplaneError::Internal(format!("control thread: {e}")))?;
        self.step(&control_rx);
        if let Some(path) = &self.s.ready_file
            && let Err(e) = std::fs::write(path, format!("{}\n", std::process::id()))
        {
            log::error!("--ready-file {}: {e}", path.display());
        }
        let started = StdInstant::now();
        while !self.s.stop.load(Ordering::Relaxed) {
            if self.s.duration.is_some_and(|d| started.elapsed() >= d) {
                break;
            }
            self.step(&control_rx);
        }
        self.s.stop.store(true, Ordering::Relaxed);
        let _ = control_thread.join();
        // Cache peers and apply the last events (files) before the taps go.
        self.s.node.save_peers();
        self.events();
        self.save_controller();
        let _ = std::fs::remove_file(&socket_path);
        if let Some(path) = &self.s.ready_file {
            let _ = std::fs::remove_file(path);
        }
        for (network, port) in self.ports.drain() {
            log::info!("{network}: removing {}", port.tap.name());
        }
        self.summary();
        Ok(())
    }

    /// One round: punts and control requests until the node's next deadline (≤ 50 ms), then
    /// timers, transmits, events and publication.
    fn step(&mut self, control: &Receiver<Control>) {
        let deadline = self.s.node.poll_timeout();
        let now = self.now();
        let wait = Duration::from_millis(deadline.as_millis().saturating_sub(now.as_millis()).clamp(1, 50));
        match self.s.punts.recv_timeout(wait) {
            Ok(p) => {
                self.punt(p);
                // Take what else is waiting, bounded so timers and control still run.
                for _ in 0..1024 {
                    match self.s.punts.try_recv() {
                        Ok(p) => self.punt(p),
                        Err(_) => break,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
        }
        let mut buf = [0u8; 16384];
        for _ in 0..64 {
            let Some((n, from)) = self.s.sockets.receive(&mut buf) else { break };
            let now = self.now();
            self.s.node.handle_datagram(now, 0, from, &buf[..n]);
        }
        while let Ok((request, reply)) = control.try_recv() {
            let response = self.control(&request);
            let _ = reply.send(response);
        }
        let now = self.now();
        if self.s.node.poll_timeout() <= now {
            self.s.node.handle_timeout(now);
        }
        self.transmits();
        self.events();
        self.save_controller();
        self.log_status_changes();
        if self.last_scan.elapsed() >= MULTICAST_SCAN {
            self.last_scan = StdInstant::now();
            self.scan_multicast();
        }
        if self.last_egress.elapsed() >= EGRESS_REFRESH {
            self.publish_egress();
        }
        if let Some(quality) = &mut self.s.quality {
            quality.publish(&self.s.node, self.s.shared.now(), self.s.port);
        }
    }

    fn punt(&mut self, punt: Punt) {
        let now = self.now();
        match punt {
            Punt::Packet { local, remote, mut packet } => self.s.node.handle_packet(now, local, remote, &mut packet),
            Punt::Opened { local, remote, packet, suite } => {
                self.s.node.handle_opened(now, local, remote, &packet, suite)
            }
            Punt::Datagram { local, remote, data } => self.s.node.handle_datagram(now, local, remote, &data),
            Punt::TapFrame { network, frame } => self.s.node.handle_tap_frame(now, network, &frame),
            Punt::LanFrame { network, frame } => self.s.node.handle_lan_frame(now, network, &frame),
            Punt::Deliver { network, frame } => self.write_tap(network, &frame),
            Punt::DeliverLan { network, frame } => self.write_lan(network, &frame),
            Punt::PathRecords(records) => self.s.node.bond_records(now, &records),
            Punt::Activity { peer, local, remote, received, direct } => {
                if received {
                    self.s.node.note_frames(now, peer, local, remote, direct);
                } else {
                    self.s.node.note_sent(now, peer, local, remote);
                }
            }
        }
    }

    fn transmits(&mut self) {
        while let Some(t) = self.s.node.poll_transmit() {
            self.s.sockets.send(t.remote, &t.data, t.ttl);
        }
    }

    fn write_tap(&self, network: NetworkId, frame: &[u8]) {
        if let Some(port) = self.ports.get(&network)
            && let Err(e) = port.tap.write(0, frame)
        {
            log::debug!("{network}: tap write: {e}");
        }
    }

    fn write_lan(&self, network: NetworkId, frame: &[u8]) {
        if let Some(socket) = self.lan_senders.get(&network)
            && let Err(e) = socket.send(frame)
        {
            log::debug!("{network}: LAN write: {e}");
        }
    }

    fn events(&mut self) {
        while let Some(event) = self.s.node.poll_event() {
            match event {
                Event::NetworkJoined { network, mac, mtu } => self.open_port(network, mac, mtu),
                Event::NetworkConfigured { network, config } => self.configure_port(network, &config),
                Event::NetworkLeft { network } => {
                    for w in &self.s.workers {
                        let _ = w.send(WorkerCommand::RemoveTap { network });
                    }
                    if let Some(port) = self.ports.remove(&network) {
                        log::info!("{network}: left, removing {}", port.tap.name());
                    }
                    if let Err(e) = self.s.home.delete_network(network) {
                        log::warn!("{e}");
                    }
                }
                Event::Deliver { network, frame } => self.write_tap(network, &frame),
                Event::DeliverLan { network, frame } => self.write_lan(network, &frame),
                Event::SaveNetwork { network, dictionary } => {
                    if let Err(e) = self.s.home.save_network(network, &dictionary) {
                        log::warn!("{e}");
                    }
                }
                Event::SavePeer { address, cache } => {
                    if let Err(e) = self.s.home.save_peer(address, &cache) {
                        log::debug!("{e}");
                    }
                }
                Event::SaveWorld { world_type, id, bytes } => {
                    if let Err(e) = self.s.home.save_world(world_type, id, &bytes) {
                        log::warn!("{e}");
                    }
                }
                Event::IdentityCollision => {
                    log::error!(
                        "a root reports another node with our address {}: this identity cannot be used",
                        self.s.node.address()
                    );
                }
                Event::DataPathChanged => self.publish(),
                Event::Bond { peer, event } => {
                    log::info!("bond {peer}: {}", serde_json::to_string(&event).unwrap_or_default())
                }
            }
        }
    }

    fn publish(&mut self) {
        let dp = self.s.node.data_path();
        if dp.generation == self.generation {
            return;
        }
        self.generation = dp.generation;
        self.s.shared.data_path.store(dp);
        self.publish_egress();
    }

    /// Resolves the egress headers of every address the data path sends to.
    fn publish_egress(&mut self) {
        self.last_egress = StdInstant::now();
        let Some(nl) = self.netlink.as_mut() else { return };
        let dp = self.s.shared.data_path.load();
        let mut table = EgressTable::new();
        // Every address a worker may send to: each peer's route, and every path of its bond (the
        // bond chooses among them per packet; one missing here would send its frames through us).
        let mut targets: Vec<SocketAddr> = dp
            .peers
            .values()
            .flat_map(|p| p.via.map(|v| v.1).into_iter().chain(p.bond.iter().flat_map(|b| b.paths.iter().map(|x| x.1))))
            .collect();
        targets.sort();
        targets.dedup();
        for dst in targets {
            let Ok(e) = ztplane_host::egress::resolve_with(nl, dst) else { continue };
            let Some(iface) = self.s.ifindexes.iter().position(|&i| i == e.ifindex) else { continue };
            // Unresolved neighbour: the kernel sends (and resolves) until we know the MAC.
            let Some(dst_mac) = e.dst_mac else { continue };
            table.insert(
                dst,
                Egress { iface, src_mac: e.src_mac, dst_mac, src: SocketAddr::new(e.src_ip, self.s.port), dst },
            );
        }
        self.s.shared.egress.store(Arc::new(table));
    }

    /// The tap of a joined network: named as zerotier-one names it, one queue per worker (§7.1).
    fn open_port(&mut self, network: NetworkId, mac: Mac, mtu: u32) {
        if self.ports.contains_key(&network) {
            return;
        }
        let name = ztplane_host::tap::choose_device_name(&self.s.home.dir, network.0);
        let queues = self.s.workers.len().max(1);
        let options = TapOptions { vnet_hdr: self.s.tap_offload != TapOffload::Off, ..TapOptions::with_queues(queues) };
        let tap = match Tap::create(&name, &options) {
            Ok(t) => t,
            Err(e) => {
                log::error!("{network}: cannot create tap {name}: {e}");
                return;
            }
        };
        // A full queue ring drops without backpressure: give bursts room (tap-offloads.md §1).
        let setup = tap
            .set_mac(mac.octets())
            .and_then(|()| tap.set_mtu(mtu))
            .and_then(|()| tap.set_txqueuelen(TAP_TXQUEUELEN))
            .and_then(|()| tap.set_up(true));
        if let Err(e) = setup {
            log::error!("{network}: setting up {name}: {e}");
        }
        for (i, w) in self.s.workers.iter().enumerate() {
            match tap.queue(i % tap.queue_count()).try_clone() {
                Ok(queue) => {
                    let merge = self.s.tap_offload == TapOffload::On;
                    let _ = w.send(WorkerCommand::AddTap { network, queue, merge });
                }
                Err(e) => log::error!("{network}: tap queue for worker {i}: {e}"),
            }
        }
        let _ = self.s.home.remember_device_name(network, &name);
        log::info!("{network}: port {name} up, MAC {mac}, MTU {mtu}");
        self.ports.insert(network, Port { tap, addresses: Vec::new(), routes: Vec::new() });
    }

    /// Managed addresses and routes (§7.2) and the MTU, on every config update.
    fn configure_port(&mut self, network: NetworkId, config: &NetworkConfig) {
        let policy = self.s.home.network_policy(network).unwrap_or_default();
        let Some(port) = self.ports.get_mut(&network) else { return };
        if let Err(e) = port.tap.set_mtu(config.mtu) {
            log::warn!("{network}: MTU {}: {e}", config.mtu);
        }
        let Some(nl) = self.netlink.as_mut() else { return };
        let ifindex = port.tap.ifindex();
        let wanted: Vec<(IpAddr, u8)> = if policy.allow_managed {
            config
                .addresses
                .iter()
                .map(|a| (a.ip, a.prefix_len))
                .filter(|(ip, _)| !ip.is_loopback() && !ip.is_multicast() && !is_link_local(ip))
                .collect()
        } else {
            Vec::new()
        };
        for old in port.addresses.clone() {
            if !wanted.contains(&old) {
                let _ = nl.remove_address(ifindex, old.0, old.1);
            }
        }
        for &(ip, bits) in wanted.iter().filter(|a| !port.addresses.contains(a)) {
            match nl.replace_address(ifindex, ip, bits) {
                Ok(()) => log::info!("{network}: address {ip}/{bits} on {}", port.tap.name()),
                Err(e) => log::warn!("{network}: address {ip}/{bits}: {e}"),
            }
        }
        port.addresses = wanted.clone();
        let mut routes = Vec::new();
        for r in &config.routes {
            if r.prefix_len == 0 && !policy.allow_default {
                continue;
            }
            // Implied by an assigned address (the kernel adds the subnet route), or via ourselves.
            let implied = wanted.iter().any(|(ip, bits)| {
                *bits == r.prefix_len
                    && ztplane_host::netlink::masked(*ip, *bits)
                        == ztplane_host::netlink::masked(r.target, r.prefix_len)
            });
            if implied || r.via.is_some_and(|v| wanted.iter().any(|(ip, _)| *ip == v)) {
                continue;
            }
            let mut spec = RouteSpec::new(r.target, r.prefix_len, ifindex);
            if let Some(via) = r.via {
                spec = spec.via(via).metric(5000);
            }
            routes.push(spec);
        }
        // Only what changed: a config refresh every 60 s must not make routes blink.
        for old in port.routes.iter().filter(|r| !routes.contains(r)) {
            let _ = nl.remove_route(old);
        }
        for spec in routes.iter().filter(|r| !port.routes.contains(r)) {
            if let Err(e) = nl.replace_route(spec) {
                log::warn!("{network}: route {spec:?}: {e}");
            }
        }
        port.routes = routes;
    }

    /// One line per network status change, with what the operator can do about it.
    fn log_status_changes(&mut self) {
        let me = self.s.node.address();
        for network in self.s.node.networks() {
            let status = network.status.name();
            if self.statuses.insert(network.id, status) == Some(status) {
                continue;
            }
            let hint = match network.status {
                ztplane_node::network::NetworkStatus::AccessDenied => {
                    format!(" (authorize {me} on the controller {})", network.id.controller())
                }
                ztplane_node::network::NetworkStatus::NotFound => {
                    format!(" (the controller {} has no such network)", network.id.controller())
                }
                ztplane_node::network::NetworkStatus::Ok => {
                    let ips: Vec<String> = network
                        .config
                        .as_ref()
                        .map_or_else(Vec::new, |c| c.addresses.iter().map(|a| a.to_string()).collect());
                    format!(
                        " ({}, revision {})",
                        if ips.is_empty() { "no managed address".into() } else { ips.join(", ") },
                        network.config.as_ref().map_or(0, |c| c.revision)
                    )
                }
                _ => String::new(),
            };
            log::info!("{}: {status}{hint}", network.id);
        }
        let joined: Vec<NetworkId> = self.s.node.networks().map(|n| n.id).collect();
        self.statuses.retain(|id, _| joined.contains(id));
    }

    /// Link-layer groups the kernel joined on each tap (§5.1) go to the node.
    fn scan_multicast(&mut self) {
        let now = self.now();
        for (network, port) in &self.ports {
            if let Ok(groups) = ztplane_host::mcast::link_multicast_groups(port.tap.name()) {
                let macs = groups.into_iter().map(Mac::from_octets);
                self.s.node.set_host_groups(now, *network, macs);
            }
        }
    }

    /// Our addresses on the underlay interfaces with the node's port (PUSH_DIRECT_PATHS).
    fn local_addresses(&mut self) -> Vec<(u32, SocketAddr)> {
        let mut out = Vec::new();
        let Some(nl) = self.netlink.as_mut() else { return out };
        for &ifindex in &self.s.ifindexes {
            if let Ok(addrs) = nl.addresses(ifindex) {
                for a in addrs {
                    out.push((ifindex, SocketAddr::new(a.addr, self.s.port)));
                }
            }
        }
        out
    }

    fn device_of(&self, network: NetworkId) -> String {
        self.ports.get(&network).map_or(String::new(), |p| p.tap.name().to_string())
    }

    /// `/status` `config`: local.conf as read, with the settings zerotier-one fills in (its
    /// OneService status handler): ports, home directory, the addresses the node listens on.
    /// ztplane has no TCP relay, secondary ports, UPnP or software update.
    fn status_config(&mut self) -> Value {
        let mut config = self.s.home.local_conf().unwrap_or_else(|_| json!({}));
        if !config.is_object() {
            config = json!({});
        }
        let listening: Vec<String> =
            self.local_addresses().iter().map(|(_, a)| format!("{}/{}", a.ip(), a.port())).collect();
        let settings = &mut config["settings"];
        if !settings.is_object() {
            *settings = json!({});
        }
        let mut put = |key: &str, value: Value| settings[key] = value;
        put("allowTcpFallbackRelay", json!(false));
        put("forceTcpRelay", json!(false));
        put("primaryPort", json!(self.s.port));
        put("secondaryPort", json!(0));
        put("tertiaryPort", json!(0));
        put("homeDir", json!(self.s.home.dir.display().to_string()));
        put("listeningOn", json!(listening));
        put("surfaceAddresses", json!([]));
        put("portMappingEnabled", json!(false));
        put("softwareUpdate", json!("disable"));
        put("softwareUpdateChannel", json!("release"));
        config
    }

    /// Writes what the controller changed (records of new members, assigned addresses, API
    /// changes) to `controller.d`.
    fn save_controller(&mut self) {
        loop {
            let change = self.s.controller.lock().unwrap_or_else(|e| e.into_inner()).poll_store();
            let Some(change) = change else { return };
            if let Err(e) = self.s.controller_db.apply(&change) {
                log::error!("controller: {e}");
            }
        }
    }

    /// zerotier-one's controller API (`/controller/...`): answered by the controller, whose
    /// pushes (new configs, revocations) go out at once and whose changes are saved.
    fn control_controller(&mut self, request: &Request, now: Instant) -> Response {
        let answer = {
            let mut controller = self.s.controller.lock().unwrap_or_else(|e| e.into_inner());
            ztplane_controller::api::handle(&mut controller, now, &request.method, &request.path, request.body.as_ref())
        };
        if request.method != "GET" {
            log::info!("controller: {} {} → {}", request.method, request.path, answer.status);
        }
        self.s.node.poll_controller(now);
        self.save_controller();
        Response::new(answer.status, answer.body.unwrap_or(Value::Null))
    }

    /// Requests of the control socket, shaped like zerotier-one's local API.
    fn control(&mut self, request: &Request) -> Response {
        let now = self.now();
        if ztplane_controller::api::is_controller_path(&request.path) {
            return self.control_controller(request, now);
        }
        let path = request.path.trim_end_matches('/');
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match (request.method.as_str(), parts.as_slice()) {
            ("GET", ["status"]) => {
                let mut status = ztplane_node::status::node_status(&self.s.node, now, self.unix_origin);
                status["config"] = self.status_config();
                Response::new(200, status)
            }
            ("GET", ["network"]) => {
                let body = ztplane_node::status::networks(&self.s.node, &|n| self.device_of(n));
                Response::new(200, body)
            }
            ("GET", ["peer"]) => Response::new(200, ztplane_node::status::peers(&self.s.node, now, self.unix_origin)),
            ("GET", ["peer", address]) => match self.s.node.peers().find(|p| p.address().to_string() == *address) {
                Some(p) => {
                    Response::new(200, ztplane_node::status::peer_status(&self.s.node, p, now, self.unix_origin))
                }
                None => Response::new(404, json!({})),
            },
            ("GET", ["stats"]) => Response::new(200, self.stats_json()),
            ("GET", ["moon"]) => Response::new(200, ztplane_node::status::moons(&self.s.node)),
            ("GET", ["moon", id]) => {
                let moon = self.s.node.moons().iter().find(|m| format!("{:016x}", m.id) == id.to_ascii_lowercase());
                match moon {
                    Some(m) => Response::new(200, ztplane_node::status::moon_status(m)),
                    None => Response::new(404, json!({})),
                }
            }
            // zerotier-one answers a peer without a bond with 400 and an empty object.
            ("GET", ["bond", "show", address]) => {
                match self.s.node.peers().find(|p| p.address().to_string() == *address) {
                    Some(p) if self.s.node.bond(p.address()).is_some() => {
                        Response::new(200, ztplane_node::status::peer_status(&self.s.node, p, now, self.unix_origin))
                    }
                    _ => Response::new(400, json!({})),
                }
            }
            // `ztplanectl policy load`: a whole local.conf document; invalid, nothing changes.
            ("POST" | "PUT", ["bond", "policy"]) => self.load_policy(request.body.as_ref(), now),
            ("POST" | "PUT", ["bond", "rotate", address]) => {
                let peer = self.s.node.peers().find(|p| p.address().to_string() == *address).map(|p| p.address());
                match peer {
                    Some(peer) if self.s.node.rotate_bond(peer, now) => {
                        self.events();
                        Response::new(200, json!({}))
                    }
                    _ => Response::new(400, json!({})),
                }
            }
            (method, ["network", id]) => {
                // zerotier-one answers what it cannot route with an empty 404 (zerotier-cli
                // prints nothing after the code).
                let Ok(network) = super::args::parse_network(id) else { return Response::new(404, Value::Null) };
                match method {
                    "GET" => match self.s.node.network(network) {
                        Some(n) => {
                            Response::new(200, ztplane_node::status::network_status(n, &self.device_of(network)))
                        }
                        None => Response::new(404, Value::Null),
                    },
                    "POST" => {
                        if self.s.node.network(network).is_none() {
                            if let Err(e) = self.s.node.join(network, now) {
                                return Response::new(500, json!({"error": e.to_string()}));
                            }
                            log::info!("{network}: joined (control request)");
                            self.events();
                        }
                        match self.s.node.network(network) {
                            Some(n) => {
                                Response::new(200, ztplane_node::status::network_status(n, &self.device_of(network)))
                            }
                            None => Response::new(500, json!({})),
                        }
                    }
                    "DELETE" => match self.s.node.leave(network) {
                        Ok(()) => {
                            log::info!("{network}: left (control request)");
                            self.events();
                            Response::new(200, json!({"result": true}))
                        }
                        // Leaving a network we are not in is not an error for zerotier-one.
                        Err(_) => Response::new(200, json!({})),
                    },
                    _ => Response::new(404, Value::Null),
                }
            }
            _ => Response::new(404, Value::Null),
        }
    }

    /// Swaps the bonding configuration (zerotier-bonding.md §2) into the running node. Bonds whose
    /// policy is unchanged keep running; the others are rebuilt with their paths.
    fn load_policy(&mut self, body: Option<&Value>, now: Instant) -> Response {
        let Some(document) = body else { return Response::new(400, json!({"error": "no local.conf document"})) };
        match ztplane_bond::config::from_json(document) {
            Err(e) => Response::new(400, json!({"error": e.to_string(), "path": e.path})),
            Ok((config, warnings)) => {
                let normalised = config.to_json();
                let in_use = config.bonding_in_use();
                self.s.node.set_bonding(config, now);
                self.events();
                let bonds = self.s.node.bonded_peers().count();
                log::info!("bonding policy loaded (control request): {bonds} bond(s), bonding in use: {in_use}");
                let warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
                Response::new(200, json!({"bonding": normalised, "bonds": bonds, "warnings": warnings}))
            }
        }
    }

    fn stats_json(&self) -> Value {
        let workers: Vec<Value> = self
            .s
            .worker_stats
            .iter()
            .zip(&self.s.tap_stats)
            .enumerate()
            .map(|(i, (w, t))| {
                json!({
                    "index": i,
                    "rx": stats::get(&w.rx), "tx": stats::get(&w.tx), "processed": stats::get(&w.processed),
                    "stolen": stats::get(&w.stolen), "leaked": stats::get(&w.leaked),
                    "tap_rx": stats::get(&t.tap_rx), "tap_tx": stats::get(&t.tap_tx),
                    "fast_rx": stats::get(&t.fast_rx), "fast_tx": stats::get(&t.fast_tx), "punted": stats::get(&t.punted),
                    "punts_dropped": stats::get(&t.punts_dropped),
                    "tap_dropped": stats::get(&t.tap_dropped), "tap_merged_writes": stats::get(&t.tap_merged_writes),
                    "tap_super_reads": stats::get(&t.tap_super_reads),
                    "tap_write_errors": stats::get(&t.tap_write_errors),
                })
            })
            .collect();
        json!({"workers": workers, "node": serde_json::to_value(self.s.node.counters()).unwrap_or(Value::Null)})
    }

    fn summary(&self) {
        let text = self.stats_json().to_string();
        println!("{text}");
    }
}

fn unix_origin_ms(shared: &Shared) -> u64 {
    let unix_now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    unix_now.saturating_sub(shared.now().as_millis())
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80 || *v6 == Ipv6Addr::UNSPECIFIED,
    }
}
