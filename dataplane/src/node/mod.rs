//! `ztplane node`: a ZeroTier node on AF_XDP. The pure state machine (`ztplane-node`) runs in
//! one slow-path thread ([`slow`]); frames between known peers never leave the data-path
//! workers ([`worker`]), which read the node's published [`DataPath`] snapshot and send the
//! slow path what they cannot decide ([`Punt`]).
//!
//! ```text
//!  underlay NICs ─XDP─► AF_XDP ─► workers (hand-off, every core) ─► taps (one queue per worker)
//!        ▲                         │  ▲ DataPath, egress headers (ArcSwap)        │
//!        └── kernel UDP socket ◄── slow path (Node, timers, control, netlink) ◄──┘ punts
//! ```

pub mod args;
pub mod headers;
pub mod quality;
mod slow;
pub mod worker;

use crate::error::DataplaneError;
use crate::handoff::Fabric;
use crate::port::Port;
use crate::stats::WorkerStats;
use crate::steering::Steering;
use crate::system;
use arc_swap::ArcSwap;
use args::NodeArgs;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use worker::{NodeWorker, Shared, TapStats};
use xsk_rs::config::{FrameSize, QueueSize, UmemConfig};
use xsk_rs::umem::Umem;
use ztplane_crypto::CipherSuite;
use ztplane_host::tap::TapQueue;
use ztplane_node::{Address, NetworkId};

/// What a worker hands the slow path.
pub enum Punt {
    /// A whole packet for us the data path could not open (unknown sender, HELLO, ...).
    Packet { local: u32, remote: SocketAddr, packet: Vec<u8> },
    /// A packet the worker authenticated and decrypted (control verbs, gated frames).
    Opened { local: u32, remote: SocketAddr, packet: Vec<u8>, suite: CipherSuite },
    /// A datagram not for us, or not a packet (relaying, beacons).
    Datagram { local: u32, remote: SocketAddr, data: Vec<u8> },
    /// A frame from a tap the data path could not send.
    TapFrame { network: NetworkId, frame: Vec<u8> },
    /// A frame from the LAN bridged into `network` (gateway mode).
    LanFrame { network: NetworkId, frame: Vec<u8> },
    /// A decrypted frame too large for a UMEM frame: write it to the tap.
    Deliver { network: NetworkId, frame: Vec<u8> },
    /// The same for the LAN bridged into `network`.
    DeliverLan { network: NetworkId, frame: Vec<u8> },
    /// Frames moved between us and `peer` on a path (throttled per worker).
    Activity { peer: Address, local: u32, remote: SocketAddr, received: bool, direct: bool },
    /// Data packets moved on bonded paths (one processed batch's worth).
    PathRecords(Vec<ztplane_node::bonding::PathRecord>),
}

/// What the slow path tells a worker.
pub enum WorkerCommand {
    /// Serve this queue of `network`'s tap; `merge`: coalesce frames written to it (offloads on).
    AddTap {
        network: NetworkId,
        queue: TapQueue,
        merge: bool,
    },
    RemoveTap {
        network: NetworkId,
    },
}

/// Bound of the punt channel: a flood from the network fills it and is dropped there, never
/// in the workers.
const PUNT_QUEUE: usize = 8192;
/// Batches an owner may have outstanding per processor.
const HANDOFF_DEPTH: usize = 8;
const FRAME_SIZE: u32 = 4096;

/// A LAN interface bridged into a network (gateway mode).
pub struct LanPort {
    pub network: NetworkId,
    pub ifname: String,
    pub ifindex: u32,
    pub mtu: u32,
}

/// Runs the node until `stop` is set (SIGINT/SIGTERM) or `--duration` passes.
pub fn run(args: &NodeArgs, stop: Arc<AtomicBool>) -> Result<(), DataplaneError> {
    system::require_root()?;
    let home = ztplane_host::home::Home::open(&args.home).map_err(|e| DataplaneError::Config(e.to_string()))?;
    let (identity, created) = home.load_or_create_identity().map_err(|e| DataplaneError::Config(e.to_string()))?;
    if created {
        log::info!("generated a new identity {} in {}", identity.address(), args.home.display());
    }
    let planet = home.load_planet().map_err(|e| DataplaneError::Config(e.to_string()))?;
    let moons = home.load_moons().map_err(|e| DataplaneError::Config(e.to_string()))?;
    let networks = home.load_networks().map_err(|e| DataplaneError::Config(e.to_string()))?;
    let local_conf = home.local_conf().map_err(|e| DataplaneError::Config(e.to_string()))?;
    let controller = open_controller(&args.home, &identity)?;
    // Bonding policies (zerotier-bonding.md §2): a bad policy stops the node before it attaches.
    let (bonding, warnings) = ztplane_bond::config::from_json(&local_conf)
        .map_err(|e| DataplaneError::Config(format!("{}: {e}", args.home.join("local.conf").display())))?;
    for w in warnings {
        log::warn!("local.conf: {w}");
    }
    let port = match args.port {
        Some(p) => p,
        None => home.primary_port(&local_conf).map_err(|e| DataplaneError::Config(e.to_string()))?,
    };
    let mut ifindexes = Vec::new();
    let mut queue_counts = Vec::new();
    for ifname in &args.ifaces {
        ifindexes.push(system::ifindex(ifname)?);
        queue_counts.push(system::rx_queues(ifname)?);
    }
    let available = queue_counts.iter().copied().min().unwrap_or(1);
    let queues = args.queues.clone().unwrap_or_else(|| (0..available).collect());
    if let Some(&q) = queues.iter().find(|&&q| q >= available) {
        return Err(DataplaneError::QueueOutOfRange {
            ifname: args.ifaces[0].clone(),
            queue: q,
            available: format!("the interfaces have {available} RX queue(s) in common"),
        });
    }
    let cores = match &args.cores {
        Some(c) => c.clone(),
        None => {
            let usable = system::usable_cores();
            (0..queues.len()).map(|i| usable.get(i % usable.len().max(1)).copied().unwrap_or(0)).collect()
        }
    };
    if cores.len() != queues.len() {
        return Err(DataplaneError::Config(format!(
            "{} cores for {} queues: a node worker serves one queue on every interface",
            cores.len(),
            queues.len()
        )));
    }
    system::require_bpffs(&args.bpffs)?;
    system::require_memory(u64::from(args.umem_frames) * u64::from(FRAME_SIZE) * cores.len() as u64)?;
    let _lock = crate::fwd::InstanceLock::acquire(&args.instance)?;
    let pin_dir = args.bpffs.join(&args.instance);

    // The slow path's own sockets first: a port in use is a clear error before anything attaches.
    let sockets = slow::Sockets::bind(port)?;
    let mut steering = Vec::new();
    for ifname in &args.ifaces {
        steering.push(Steering::attach(ifname, args.xdp_mode, &[port], &pin_dir)?);
    }
    // Gateway mode: each LAN interface on the same queues, every frame to the workers.
    let mut lans = Vec::new();
    for (network, lan) in &args.bridges {
        let available = system::rx_queues(lan)?;
        if let Some(&q) = queues.iter().find(|&&q| q >= available) {
            return Err(DataplaneError::QueueOutOfRange {
                ifname: lan.clone(),
                queue: q,
                available: format!("{lan} has {available} RX queue(s)"),
            });
        }
        let ifindex = system::ifindex(lan)?;
        steering.push(Steering::attach_lan(lan, args.xdp_mode, &args.lan_pass_vlans, &pin_dir)?);
        lans.push(LanPort { network: *network, ifname: lan.clone(), ifindex, mtu: system::mtu(lan)? });
    }
    let umem_config = UmemConfig::builder()
        .frame_size(FrameSize::new(FRAME_SIZE).map_err(|e| DataplaneError::Config(e.to_string()))?)
        .fill_queue_size(QueueSize::new(args.ring_size).map_err(|e| DataplaneError::Config(e.to_string()))?)
        .comp_queue_size(QueueSize::new(args.ring_size).map_err(|e| DataplaneError::Config(e.to_string()))?)
        .build()
        .map_err(|e| DataplaneError::Config(e.to_string()))?;
    let frames =
        std::num::NonZeroU32::new(args.umem_frames).ok_or_else(|| DataplaneError::Config("--umem-frames 0".into()))?;
    let (punt_tx, punt_rx) = crossbeam::channel::bounded(PUNT_QUEUE);
    let mut umems = Vec::new();
    let mut workers = Vec::new();
    let mut commands = Vec::new();
    let mut worker_stats = Vec::new();
    let mut tap_stats = Vec::new();
    for (index, (&core, &queue)) in cores.iter().zip(&queues).enumerate() {
        let (umem, descs) = Umem::new(umem_config, frames, false)
            .map_err(|e| DataplaneError::Memory(format!("UMEM for worker {index}: {e}")))?;
        let mut ports = Vec::new();
        let lan_names = lans.iter().map(|l| &l.ifname);
        for (side, ifname) in args.ifaces.iter().chain(lan_names).enumerate() {
            let p = Port::open(&umem, ifname, queue, args.ring_size, args.zero_copy)?;
            steering[side].register_socket(queue, p.rx.fd())?;
            ports.push(p);
        }
        let (tx, rx) = crossbeam::channel::unbounded();
        commands.push(tx);
        let stats = Arc::new(WorkerStats::default());
        let taps = Arc::new(TapStats::default());
        worker_stats.push(stats.clone());
        tap_stats.push(taps.clone());
        workers.push(NodeWorker {
            index,
            core: Some(core),
            ports,
            total_frames: descs.len(),
            free: descs,
            ring_size: args.ring_size as usize,
            commands: rx,
            stats,
            tap_stats: taps,
        });
        umems.push(umem);
    }
    let epoch = std::time::Instant::now();
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| DataplaneError::Internal(format!("random seed: {e}")))?;
    controller.lock().unwrap_or_else(|e| e.into_inner()).set_clock(unix_ms());
    let controller_db = ztplane_host::controller_db::ControllerDb::new(&args.home);
    let node_config =
        ztplane_node::NodeConfig { identity, planet, moons, cached_peers: home.load_peers(), networks, seed };
    let mut node = ztplane_node::Node::new(node_config, ztplane_node::Instant::ZERO)
        .map_err(|e| DataplaneError::Config(e.to_string()))?;
    // As zerotier-one, every node is the controller of the networks under its address.
    node.set_controller(Box::new(controller.clone()));
    // Each underlay interface is a bonding link named by the interface (§1).
    node.set_links(ifindexes.iter().copied().zip(args.ifaces.iter().cloned()).collect());
    if bonding.bonding_in_use() {
        let default = match &bonding.default_policy {
            Some(ztplane_bond::config::PolicyRef::Standard(p)) => p.name().to_string(),
            Some(ztplane_bond::config::PolicyRef::Custom(name)) => name.clone(),
            None => "none".to_string(),
        };
        log::info!("bonding over {:?}: default policy {default}", args.ifaces);
    }
    node.set_bonding(bonding, ztplane_node::Instant::ZERO);
    let shared = Arc::new(Shared {
        fabric: Fabric::new(cores.len(), HANDOFF_DEPTH),
        umems,
        stop: stop.clone(),
        drained: AtomicUsize::new(0),
        data_path: ArcSwap::new(node.data_path()),
        egress: ArcSwap::new(Arc::new(HashMap::new())),
        punts: punt_tx,
        reassembly: Shared::new_reassembly(),
        ifindexes: ifindexes.clone(),
        lans: lans.iter().map(|l| l.network).collect(),
        epoch,
    });
    let bridged = args.bridges.iter().map(|(n, _)| *n);
    for network in args.join.iter().copied().chain(bridged) {
        match node.join(network, ztplane_node::Instant::ZERO) {
            Ok(()) => log::info!("joining {network}"),
            Err(e) => log::debug!("{e}"),
        }
    }
    for lan in &lans {
        node.bridge_lan(lan.network, lan.mtu).map_err(|e| DataplaneError::Config(e.to_string()))?;
        log::info!("{}: bridging LAN {} (MTU {}; gateway mode)", lan.network, lan.ifname, lan.mtu);
    }
    log::info!(
        "node {} on {:?} port {port}: {} worker(s) on cores {cores:?}, queues {queues:?}",
        node.address(),
        args.ifaces,
        cores.len()
    );
    let mut handles = Vec::new();
    for w in workers {
        let shared = shared.clone();
        let spawned = std::thread::Builder::new().name(format!("ztplane-w{}", w.index)).spawn(move || w.run(shared));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                for h in handles {
                    let _ = h.join();
                }
                return Err(DataplaneError::Internal(format!("spawning a worker: {e}")));
            }
        }
    }
    // Link quality for `ztplanectl bond` and the metrics: useful, not needed to run.
    let quality = quality::QualityPublisher::create(&pin_dir)
        .inspect_err(|e| log::error!("link quality map: {e}: `ztplanectl bond` and the link metrics are unavailable"))
        .ok();
    let slow = slow::SlowPath::new(slow::SlowSetup {
        node,
        home,
        shared: shared.clone(),
        punts: punt_rx,
        workers: commands,
        sockets,
        ifindexes,
        port,
        stop: stop.clone(),
        duration: args.duration,
        ready_file: args.ready_file.clone(),
        worker_stats,
        tap_stats,
        tap_offload: args.tap_offload,
        quality,
        controller,
        controller_db,
        lans,
    });
    let result = slow.run();
    stop.store(true, Ordering::Relaxed);
    for side in &mut steering {
        for &queue in &queues {
            side.unregister_socket(queue);
        }
    }
    for h in handles {
        if h.join().is_err() {
            log::error!("a worker thread panicked");
        }
    }
    drop(steering);
    let _ = std::fs::remove_dir(&pin_dir);
    result
}

/// The network controller (ztplane-controller) with the state stored in `DIR/controller.d`. A
/// damaged record stops the node with the file's name, before anything is attached.
fn open_controller(
    home: &std::path::Path,
    identity: &ztplane_node::Identity,
) -> Result<Arc<std::sync::Mutex<ztplane_controller::NetworkController>>, DataplaneError> {
    let mut seed = [0u8; 8];
    getrandom::getrandom(&mut seed).map_err(|e| DataplaneError::Internal(format!("random seed: {e}")))?;
    let mut controller =
        ztplane_controller::NetworkController::new(identity.clone(), unix_ms(), u64::from_le_bytes(seed));
    let db = ztplane_host::controller_db::ControllerDb::new(home);
    let loaded = db.load_into(&mut controller).map_err(|e| DataplaneError::Config(e.to_string()))?;
    if loaded.networks > 0 {
        log::info!(
            "controller: {} network(s), {} member(s) from {}",
            loaded.networks,
            loaded.members,
            db.dir.display()
        );
    }
    Ok(Arc::new(std::sync::Mutex::new(controller)))
}

/// Now, in Unix milliseconds: the controller's clock is wall time (`ts`, credentials, records).
fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
