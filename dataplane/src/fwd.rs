//! Raw forwarding mode (`ztplane fwd`): frames steered on one interface leave on the other,
//! through the workers and the hand-off. It is the I/O ceiling the ZeroTier packet path is
//! measured against, so it does everything the real path does except the protocol work.
use crate::config::FwdConfig;
use crate::error::DataplaneError;
use crate::frame::locate_udp;
use crate::handoff::Fabric;
use crate::port::Port;
use crate::stats::{self, QueueStats, WorkerStats};
use crate::steering::Steering;
use crate::system;
use crate::worker::{Shared, Worker};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use xsk_rs::config::{FrameSize, QueueSize, UmemConfig};
use xsk_rs::umem::Umem;

/// Batches an owner may have outstanding per processor in the hand-off.
const HANDOFF_DEPTH: usize = 8;
/// Workers one dataplane runs (the hand-off has a queue pair per two workers).
const MAX_WORKERS: usize = 64;

/// One socket as the summary reports it: where it is bound, its worker and its counters.
struct QueueSlot {
    ifname: String,
    queue: u32,
    worker: usize,
    stats: Arc<QueueStats>,
    zero_copy: bool,
}

/// Runs the forwarder until `stop` is set or the configured duration passes; returns the final
/// statistics as JSON.
pub fn run(config: &FwdConfig, stop: Arc<AtomicBool>) -> Result<Value, DataplaneError> {
    system::require_root()?;
    let queues = choose_queues(config)?;
    system::require_bpffs(&config.bpffs)?;
    let cores = match &config.cores {
        Some(cores) => cores.clone(),
        None => {
            let usable = system::usable_cores();
            (0..queues.len()).map(|i| usable.get(i % usable.len().max(1)).copied().unwrap_or(0)).collect()
        }
    };
    let workers = cores.len();
    if workers > MAX_WORKERS {
        return Err(DataplaneError::Config(format!(
            "{workers} workers (one per queue) is more than {MAX_WORKERS}: choose them with --cores"
        )));
    }
    let frame_bytes = u64::from(config.umem_frames) * u64::from(config.frame_size);
    system::require_memory(frame_bytes * workers as u64)?;
    let _lock = InstanceLock::acquire(&config.instance)?;
    let pin_dir = config.bpffs.join(&config.instance);

    let mut steering = Vec::new();
    for ifname in &config.ifaces {
        steering.push(Steering::attach(ifname, config.xdp_mode, &config.ports, &pin_dir)?);
    }

    // One UMEM per worker, shared by that worker's sockets on both interfaces.
    let umem_config = UmemConfig::builder()
        .frame_size(FrameSize::new(config.frame_size).map_err(|e| DataplaneError::Config(e.to_string()))?)
        .fill_queue_size(QueueSize::new(config.ring_size).map_err(|e| DataplaneError::Config(e.to_string()))?)
        .comp_queue_size(QueueSize::new(config.ring_size).map_err(|e| DataplaneError::Config(e.to_string()))?)
        .build()
        .map_err(|e| DataplaneError::Config(e.to_string()))?;
    let frame_count = std::num::NonZeroU32::new(config.umem_frames).expect("validated non-zero");
    let mut umems = Vec::new();
    let mut worker_states = Vec::new();
    let mut slots = Vec::new();
    for (index, &core) in cores.iter().enumerate() {
        let (umem, descs) = Umem::new(umem_config, frame_count, false).map_err(|e| {
            DataplaneError::Memory(format!("UMEM of {} MiB for worker {index}: {e}", frame_bytes >> 20))
        })?;
        let mut ports = Vec::new();
        let mut egress_of = Vec::new();
        let mut queue_stats = Vec::new();
        for &queue in queues.iter().skip(index).step_by(workers) {
            let base = ports.len() as u16;
            for (side, ifname) in config.ifaces.iter().enumerate() {
                let port = Port::open(&umem, ifname, queue, config.ring_size, config.zero_copy)?;
                steering[side].register_socket(queue, port.rx.fd())?;
                let stats = Arc::new(QueueStats::default());
                slots.push(QueueSlot {
                    ifname: ifname.clone(),
                    queue,
                    worker: index,
                    stats: stats.clone(),
                    zero_copy: port.zero_copy,
                });
                queue_stats.push(stats);
                ports.push(port);
                // Frames from side 0 leave on side 1 of the same queue pair, and back.
                egress_of.push(base + (1 - side as u16));
            }
        }
        worker_states.push(Worker {
            index,
            core: Some(core),
            ports,
            egress_of,
            total_frames: descs.len(),
            ring_size: config.ring_size as usize,
            free: descs,
            stats: Arc::new(WorkerStats::default()),
            queue_stats,
        });
        umems.push(umem);
    }
    let mode = slots.first().map_or("none", |s| if s.zero_copy { "zero-copy" } else { "copy" });
    log::info!(
        "fwd {} <-> {}: {} queue(s) {:?}, {workers} worker(s) on cores {cores:?}, AF_XDP {mode} mode, ports {:?}",
        config.ifaces[0],
        config.ifaces[1],
        queues.len(),
        queues,
        config.ports
    );

    let shared = Arc::new(Shared {
        fabric: Fabric::new(workers, HANDOFF_DEPTH),
        umems,
        stop: stop.clone(),
        drained: AtomicUsize::new(0),
        // Defence in depth: forward only well-formed UDP. (Which ports are steered is the XDP
        // program's decision, and it changes at run time: `ztplanectl xdp ports`.)
        process: Box::new(|frame| locate_udp(frame).is_some()),
    });
    let worker_stats: Vec<Arc<WorkerStats>> = worker_states.iter().map(|w| w.stats.clone()).collect();
    let mut handles = Vec::new();
    for worker in worker_states {
        let shared = shared.clone();
        let spawned =
            std::thread::Builder::new().name(format!("ztplane-w{}", worker.index)).spawn(move || worker.run(shared));
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                // Stop the workers already running before reporting.
                stop.store(true, Ordering::Relaxed);
                for handle in handles {
                    let _ = handle.join();
                }
                return Err(DataplaneError::Internal(format!("spawning worker: {e}")));
            }
        }
    }

    if let Some(path) = &config.ready_file
        && let Err(err) = std::fs::write(path, format!("{}\n", std::process::id()))
    {
        log::error!("--ready-file {}: {err}; stopping", path.display());
        stop.store(true, Ordering::Relaxed);
    }
    let started = Instant::now();
    let mut last = (Instant::now(), worker_stats.iter().map(|s| stats::get(&s.tx)).collect::<Vec<_>>());
    while !stop.load(Ordering::Relaxed) {
        if config.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if !config.stats_interval.is_zero() && last.0.elapsed() >= config.stats_interval {
            let now_tx: Vec<u64> = worker_stats.iter().map(|s| stats::get(&s.tx)).collect();
            let secs = last.0.elapsed().as_secs_f64();
            let rates: Vec<String> = now_tx
                .iter()
                .zip(&last.1)
                .enumerate()
                .map(|(i, (now, before))| format!("w{i} {:.3} Mpps", (now - before) as f64 / secs / 1e6))
                .collect();
            log::info!("tx rate: {}", rates.join(", "));
            last = (Instant::now(), now_tx);
        }
    }
    stop.store(true, Ordering::Relaxed);
    // From now on steered frames go to the kernel (XDP_PASS fallback) instead of sockets
    // that no longer read.
    for side in &mut steering {
        for &queue in &queues {
            side.unregister_socket(queue);
        }
    }
    for handle in handles {
        if handle.join().is_err() {
            log::error!("a worker thread panicked");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    let xdp: Vec<Value> = steering
        .iter()
        .map(|s| {
            let c = s.counters().unwrap_or_default();
            json!({"iface": s.ifname(), "mode": s.mode(), "seen": c[0], "steered": c[1], "passed": c[2], "malformed": c[3]})
        })
        .collect();
    drop(steering);
    let _ = std::fs::remove_dir(&pin_dir); // the instance directory, empty once the pins are gone
    if let Some(path) = &config.ready_file {
        let _ = std::fs::remove_file(path);
    }
    let summary = json!({
        "mode": "fwd",
        "ifaces": config.ifaces,
        "elapsed_s": elapsed,
        "workers": worker_stats.iter().enumerate().map(|(i, s)| json!({
            "index": i, "core": cores[i], "rx": stats::get(&s.rx), "tx": stats::get(&s.tx),
            "processed": stats::get(&s.processed), "stolen": stats::get(&s.stolen),
            "dropped": stats::get(&s.dropped),
            "leaked": stats::get(&s.leaked), "surplus": stats::get(&s.surplus),
        })).collect::<Vec<_>>(),
        "queues": slots.iter().map(|s| json!({
            "iface": s.ifname, "queue": s.queue, "worker": s.worker, "zero_copy": s.zero_copy,
            "rx": stats::get(&s.stats.rx), "tx": stats::get(&s.stats.tx),
            "kernel_rx_dropped": stats::get(&s.stats.kernel_rx_dropped),
            "kernel_rx_ring_full": stats::get(&s.stats.kernel_rx_ring_full),
            "kernel_fill_ring_empty": stats::get(&s.stats.kernel_fill_ring_empty),
        })).collect::<Vec<_>>(),
        "xdp": xdp,
    });
    Ok(summary)
}

fn choose_queues(config: &FwdConfig) -> Result<Vec<u32>, DataplaneError> {
    let mut available = u32::MAX;
    for ifname in &config.ifaces {
        available = available.min(system::rx_queues(ifname)?);
    }
    let queues = config.queues.clone().unwrap_or_else(|| (0..available).collect());
    for &queue in &queues {
        if queue >= available {
            let ifname = config
                .ifaces
                .iter()
                .find(|i| system::rx_queues(i).is_ok_and(|n| queue >= n))
                .cloned()
                .unwrap_or_default();
            return Err(DataplaneError::QueueOutOfRange {
                ifname,
                queue,
                available: format!("it has {available} RX queue(s), 0..={}", available.saturating_sub(1)),
            });
        }
    }
    if queues.is_empty() {
        return Err(DataplaneError::Config("no queues to serve".into()));
    }
    Ok(queues)
}

/// `/run/ztplane/<instance>.pid`: one dataplane per instance name at a time.
pub(crate) struct InstanceLock {
    path: PathBuf,
}

impl InstanceLock {
    pub(crate) fn acquire(instance: &str) -> Result<Self, DataplaneError> {
        let dir = PathBuf::from("/run/ztplane");
        std::fs::create_dir_all(&dir)
            .map_err(|e| DataplaneError::Internal(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join(format!("{instance}.pid"));
        let me = std::process::id();
        // Twice at most: a stale file (its process gone) is removed and the creation retried.
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    use std::io::Write;
                    file.write_all(format!("{me}\n").as_bytes())
                        .map_err(|e| DataplaneError::Internal(format!("writing {}: {e}", path.display())))?;
                    return Ok(InstanceLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = read_pid(&path);
                    if let Some(pid) = holder.filter(|&pid| Path::new(&format!("/proc/{pid}")).exists()) {
                        return Err(DataplaneError::InstanceRunning { name: instance.to_string(), pid });
                    }
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => return Err(DataplaneError::Internal(format!("creating {}: {e}", path.display()))),
            }
        }
        Err(DataplaneError::Internal(format!("{} keeps reappearing: another ztplane starting?", path.display())))
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        // Only our own: never a file another instance has written since.
        if read_pid(&self.path) == Some(std::process::id()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
