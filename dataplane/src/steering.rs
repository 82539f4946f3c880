//! The XDP steering program on one interface: load, attach, socket registration, counters.
//!
//! Two programs come in the same object: `ztplane_steer` on an underlay port steers ZeroTier UDP
//! (its port set) to AF_XDP and passes the rest to the kernel; `ztplane_lan` on a gateway's LAN
//! port steers every frame to AF_XDP except those of excluded VLANs (see `ebpf/src/main.rs`).
//!
//! Each interface gets its own instance of the program (and so its own maps): the socket map is
//! indexed by RX queue, and queue 0 of two interfaces must not share a slot. The program is
//! attached through a BPF link, which the kernel removes when the last file descriptor to it
//! closes: a crashed or killed ztplane leaves nothing attached. The port set and the counters
//! are pinned under `<bpffs>/<instance>/<ifname>/` so that `ztplanectl` can read and change them
//! at run time (a LAN port pins its VLAN exclusions instead of the port set); the pins are
//! removed on a clean exit and replaced on the next start.
use crate::error::DataplaneError;
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use ztplane_ebpf_common::{
    COUNTERS_MAP, Counter, EXCLUDED_VLANS_MAP, LAN_PROGRAM, MAX_EXCLUDED_VLANS, PORTS_MAP, PROGRAM, XSKS_MAP,
};

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

/// Which of the object's programs an interface runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// `ztplane_steer`: ZeroTier UDP to the workers, the rest to the kernel.
    Underlay,
    /// `ztplane_lan`: every frame to the workers, excluded VLANs to the kernel.
    Lan,
}

impl Role {
    fn program(self) -> &'static str {
        match self {
            Role::Underlay => PROGRAM,
            Role::Lan => LAN_PROGRAM,
        }
    }

    /// The map `ztplanectl` edits at run time: the steered ports or the excluded VLANs.
    fn config_map(self) -> &'static str {
        match self {
            Role::Underlay => PORTS_MAP,
            Role::Lan => EXCLUDED_VLANS_MAP,
        }
    }

    fn pinned_maps(self) -> [&'static str; 2] {
        [self.config_map(), COUNTERS_MAP]
    }

    fn describe(self) -> &'static str {
        match self {
            Role::Underlay => "XDP steering",
            Role::Lan => "XDP LAN steering",
        }
    }
}

/// The steering program attached to one interface: an underlay port ([`Steering::attach`]) or a
/// gateway's LAN port ([`Steering::attach_lan`]).
pub struct Steering {
    ifname: String,
    ebpf: Ebpf,
    mode: XdpMode,
    pin_dir: PathBuf,
    role: Role,
}

impl Steering {
    /// Loads and attaches the program to `ifname`, steering `ports`.
    pub fn attach(ifname: &str, mode: AttachMode, ports: &[u16], pin_dir: &Path) -> Result<Self, DataplaneError> {
        let mut steering = Steering::load(ifname, mode, pin_dir, Role::Underlay)?;
        steering.set_ports(ports)?;
        steering.pin()?;
        Ok(steering)
    }

    /// Loads and attaches the LAN program to `ifname`: every frame goes to the AF_XDP socket of
    /// its queue except those whose outer 802.1Q / 802.1ad tag carries one of `excluded_vlans`,
    /// which the kernel gets. The tag must reach XDP: turn rx VLAN offload off on NICs that strip
    /// it (`ethtool -K LANIF rxvlan off`).
    pub fn attach_lan(
        ifname: &str,
        mode: AttachMode,
        excluded_vlans: &[u16],
        pin_dir: &Path,
    ) -> Result<Self, DataplaneError> {
        // Checked before anything is attached: a typo must not leave the LAN without its
        // management VLAN, even briefly.
        check_vlans(excluded_vlans)?;
        let mut steering = Steering::load(ifname, mode, pin_dir, Role::Lan)?;
        steering.set_excluded_vlans(excluded_vlans)?;
        steering.pin()?;
        Ok(steering)
    }

    /// Loads the object and attaches `role`'s program, with empty port and VLAN sets.
    fn load(ifname: &str, mode: AttachMode, pin_dir: &Path, role: Role) -> Result<Self, DataplaneError> {
        let name = role.program();
        let mut ebpf = EbpfLoader::new().load(STEER_OBJECT).map_err(DataplaneError::from_ebpf)?;
        let program: &mut Xdp = ebpf
            .program_mut(name)
            .ok_or_else(|| DataplaneError::Internal(format!("program {name} missing from object")))?
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
        log::info!("{ifname}: {} attached in {} mode", role.describe(), mode_name(attached));
        Ok(Steering { ifname: ifname.to_string(), ebpf, mode: attached, pin_dir: pin_dir.to_path_buf(), role })
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// "native" or "generic".
    pub fn mode(&self) -> &'static str {
        mode_name(self.mode)
    }

    /// Whether this is a LAN port ([`Steering::attach_lan`]).
    pub fn is_lan(&self) -> bool {
        self.role == Role::Lan
    }

    /// Replaces the steered port set. A LAN port steers every frame and has no port set: there
    /// this is a [`DataplaneError::Config`] error.
    pub fn set_ports(&mut self, ports: &[u16]) -> Result<(), DataplaneError> {
        if self.role == Role::Lan {
            return Err(DataplaneError::Config(format!(
                "{}: a LAN port steers every frame; it has no port set",
                self.ifname
            )));
        }
        replace_set(&mut self.ebpf, PORTS_MAP, ports)
    }

    /// Replaces the VLAN IDs whose frames a LAN port passes to the kernel. Each must be in
    /// 1..=4094, and at most [`MAX_EXCLUDED_VLANS`] of them; otherwise nothing changes. A VLAN in
    /// both the old and the new set stays excluded throughout. On an underlay port this is a
    /// [`DataplaneError::Config`] error (its program passes every VLAN's non-ZeroTier frames).
    pub fn set_excluded_vlans(&mut self, vlans: &[u16]) -> Result<(), DataplaneError> {
        if self.role != Role::Lan {
            return Err(DataplaneError::Config(format!(
                "{}: VLAN exclusions apply to LAN ports only (--bridge)",
                self.ifname
            )));
        }
        check_vlans(vlans)?;
        replace_set(&mut self.ebpf, EXCLUDED_VLANS_MAP, vlans)
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
        for name in self.role.pinned_maps() {
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
        log::info!("{}: {} detached", self.ifname, self.role.describe());
        // Dropping `ebpf` closes the link and program: the kernel detaches them.
    }
}

/// Removes what either role pins (the previous run on this interface may have had the other).
fn remove_pins(dir: &Path) {
    for name in [PORTS_MAP, EXCLUDED_VLANS_MAP, COUNTERS_MAP] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let _ = std::fs::remove_dir(dir);
}

/// VLAN IDs a LAN port may exclude: 0 marks a priority-only tag and 4095 is reserved (802.1Q).
fn check_vlans(vlans: &[u16]) -> Result<(), DataplaneError> {
    if let Some(&vlan) = vlans.iter().find(|v| !(1..=4094).contains(*v)) {
        return Err(DataplaneError::InvalidVlan(vlan));
    }
    let mut distinct = vlans.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() > MAX_EXCLUDED_VLANS as usize {
        return Err(DataplaneError::TooManyVlans { given: distinct.len(), max: MAX_EXCLUDED_VLANS });
    }
    Ok(())
}

/// Makes the keys of a `HashMap<u16, u8>` set exactly `keys`: stale keys go first (so the map
/// never needs room for both sets), then missing ones are added. A key in both sets is never
/// absent, so its frames never take the other path while the set changes.
fn replace_set(ebpf: &mut Ebpf, name: &str, keys: &[u16]) -> Result<(), DataplaneError> {
    let mut map: BpfHashMap<&mut MapData, u16, u8> = map_mut(ebpf, name)?;
    let present: Vec<u16> = map.keys().filter_map(Result::ok).collect();
    for key in present.iter().filter(|k| !keys.contains(k)) {
        let _ = map.remove(key);
    }
    for &key in keys.iter().filter(|k| !present.contains(k)) {
        map.insert(key, 1, 0).map_err(|e| DataplaneError::Internal(format!("map {name}: {e}")))?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excluded_vlans_are_checked_before_anything_changes() {
        assert!(check_vlans(&[]).is_ok());
        assert!(check_vlans(&[1, 10, 4094]).is_ok());
        for bad in [0, 4095, 4096, u16::MAX] {
            assert!(matches!(check_vlans(&[10, bad]), Err(DataplaneError::InvalidVlan(v)) if v == bad), "{bad}");
        }
        let all: Vec<u16> = (1..=MAX_EXCLUDED_VLANS as u16).collect();
        assert!(check_vlans(&all).is_ok());
        let twice: Vec<u16> = all.iter().chain(&all).copied().collect();
        assert!(check_vlans(&twice).is_ok(), "duplicates count once");
        // attach_lan checks before it loads or attaches anything (no root needed to see it).
        let attached = Steering::attach_lan("ztplane-none0", AttachMode::Auto, &[4095], Path::new("/nonexistent"));
        assert!(matches!(attached, Err(DataplaneError::InvalidVlan(4095))));
        let one_more: Vec<u16> = (1..=MAX_EXCLUDED_VLANS as u16 + 1).collect();
        assert!(matches!(
            check_vlans(&one_more),
            Err(DataplaneError::TooManyVlans { given, max }) if given == one_more.len() && max == MAX_EXCLUDED_VLANS
        ));
    }
}
