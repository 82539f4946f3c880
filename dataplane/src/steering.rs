//! The XDP steering program on one interface: load, attach, socket registration, counters.
//!
//! Each interface gets its own instance of the program (and so its own maps): the socket map is
//! indexed by RX queue, and queue 0 of two interfaces must not share a slot. The program is
//! attached through a BPF link, which the kernel removes when the last file descriptor to it
//! closes: a crashed or killed ztplane leaves nothing attached. The port set and the counters
//! are pinned under `<bpffs>/<instance>/<ifname>/` so that `ztplanectl` can read and change them
//! at run time; the pins are removed on a clean exit and replaced on the next start.
use crate::error::DataplaneError;
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use ztplane_ebpf_common::{COUNTERS_MAP, Counter, PORTS_MAP, PROGRAM, XSKS_MAP};

/// The compiled XDP object, embedded at build time.
static STEER_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ztplane-steer"));

/// How to attach: native (driver) first with a fallback to generic, or one of them only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    Auto,
    Native,
    Generic,
}

impl std::str::FromStr for AttachMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AttachMode::Auto),
            "native" | "drv" | "driver" => Ok(AttachMode::Native),
            "generic" | "skb" => Ok(AttachMode::Generic),
            _ => Err(format!("unknown XDP mode {s:?} (auto, native, generic)")),
        }
    }
}

/// The steering program attached to one interface.
pub struct Steering {
    ifname: String,
    ebpf: Ebpf,
    mode: XdpMode,
    pin_dir: PathBuf,
}

impl Steering {
    /// Loads and attaches the program to `ifname`, steering `ports`.
    pub fn attach(ifname: &str, mode: AttachMode, ports: &[u16], pin_dir: &Path) -> Result<Self, DataplaneError> {
        let mut ebpf = EbpfLoader::new().load(STEER_OBJECT).map_err(DataplaneError::from_ebpf)?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| DataplaneError::Internal(format!("program {PROGRAM} missing from object")))?
            .try_into()
            .map_err(|e| DataplaneError::from_program(ifname, e))?;
        program.load().map_err(|e| DataplaneError::from_program(ifname, e))?;
        let attached = match mode {
            AttachMode::Native => attach_one(program, ifname, XdpMode::Driver),
            AttachMode::Generic => attach_one(program, ifname, XdpMode::Skb),
            AttachMode::Auto => attach_one(program, ifname, XdpMode::Driver).or_else(|err| {
                log::warn!("{ifname}: native XDP not available ({err}); falling back to generic (SKB) mode");
                attach_one(program, ifname, XdpMode::Skb)
            }),
        }?;
        if aya::util::KernelVersion::current().is_ok_and(|v| v < aya::util::KernelVersion::new(5, 9, 0)) {
            // aya falls back to netlink there: such an attachment outlives a crashed process.
            log::warn!(
                "{ifname}: kernel before 5.9, XDP attached through netlink; after a crash remove it with `ip link set dev {ifname} xdp off`"
            );
        }
        log::info!("{ifname}: XDP steering attached in {} mode", mode_name(attached));
        let mut steering =
            Steering { ifname: ifname.to_string(), ebpf, mode: attached, pin_dir: pin_dir.to_path_buf() };
        steering.set_ports(ports)?;
        steering.pin()?;
        Ok(steering)
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// "native" or "generic".
    pub fn mode(&self) -> &'static str {
        mode_name(self.mode)
    }

    /// Replaces the steered port set.
    pub fn set_ports(&mut self, ports: &[u16]) -> Result<(), DataplaneError> {
        let mut map: BpfHashMap<&mut MapData, u16, u8> = map_mut(&mut self.ebpf, PORTS_MAP)?;
        let old: Vec<u16> = map.keys().filter_map(Result::ok).collect();
        for port in old {
            let _ = map.remove(&port);
        }
        for &port in ports {
            map.insert(port, 1, 0).map_err(|e| DataplaneError::Internal(format!("port map: {e}")))?;
        }
        Ok(())
    }

    /// Registers an AF_XDP socket for RX queue `queue`.
    pub fn register_socket(&mut self, queue: u32, fd: &impl AsRawFd) -> Result<(), DataplaneError> {
        let mut map: XskMap<&mut MapData> = map_mut(&mut self.ebpf, XSKS_MAP)?;
        map.set(queue, fd.as_raw_fd(), 0).map_err(|e| DataplaneError::QueueOutOfRange {
            ifname: self.ifname.clone(),
            queue,
            available: format!("socket map rejected it: {e}"),
        })
    }

    /// Removes queue `queue`'s socket: its steered frames fall back to the kernel.
    pub fn unregister_socket(&mut self, queue: u32) {
        if let Ok(mut map) = map_mut::<XskMap<&mut MapData>>(&mut self.ebpf, XSKS_MAP) {
            let _ = map.unset(queue);
        }
    }

    /// Counters summed over CPUs, in [`Counter::ALL`] order.
    pub fn counters(&self) -> Result<[u64; 4], DataplaneError> {
        let map: PerCpuArray<&MapData, u64> = map_ref(&self.ebpf, COUNTERS_MAP)?;
        let mut out = [0u64; 4];
        for counter in Counter::ALL {
            let values =
                map.get(&(counter as u32), 0).map_err(|e| DataplaneError::Internal(format!("counter map: {e}")))?;
            out[counter as usize] = values.iter().sum();
        }
        Ok(out)
    }

    fn pin(&mut self) -> Result<(), DataplaneError> {
        let dir = self.pin_dir.join(&self.ifname);
        remove_pins(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| DataplaneError::Bpffs(format!("creating {}: {e}", dir.display())))?;
        for name in [PORTS_MAP, COUNTERS_MAP] {
            let map = self.ebpf.map(name).ok_or_else(|| DataplaneError::Internal(format!("map {name} missing")))?;
            map.pin(dir.join(name))
                .map_err(|e| DataplaneError::Bpffs(format!("pinning {name} in {}: {e}", dir.display())))?;
        }
        Ok(())
    }
}

impl Drop for Steering {
    fn drop(&mut self) {
        remove_pins(&self.pin_dir.join(&self.ifname));
        log::info!("{}: XDP steering detached", self.ifname);
        // Dropping `ebpf` closes the link and program: the kernel detaches them.
    }
}

fn remove_pins(dir: &Path) {
    for name in [PORTS_MAP, COUNTERS_MAP] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let _ = std::fs::remove_dir(dir);
}

fn attach_one(program: &mut Xdp, ifname: &str, mode: XdpMode) -> Result<XdpMode, DataplaneError> {
    program.attach(ifname, mode).map(|_| mode).map_err(|e| DataplaneError::from_program(ifname, e))
}

fn mode_name(mode: XdpMode) -> &'static str {
    match mode {
        XdpMode::Driver => "native",
        XdpMode::Skb => "generic",
        XdpMode::Hardware => "offload",
        XdpMode::Default => "default",
    }
}

fn map_mut<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<T, DataplaneError>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map_mut(name).ok_or_else(|| DataplaneError::Internal(format!("map {name} missing")))?;
    T::try_from(map).map_err(|e| DataplaneError::Internal(format!("map {name}: {e}")))
}

fn map_ref<'a, T>(ebpf: &'a Ebpf, name: &str) -> Result<T, DataplaneError>
where
    T: TryFrom<&'a aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map(name).ok_or_else(|| DataplaneError::Internal(format!("map {name} missing")))?;
    T::try_from(map).map_err(|e| DataplaneError::Internal(format!("map {name}: {e}")))
}
