//! Checks of the host made before anything is attached, so that bad configuration fails with
//! one clear line: interfaces and their queues, privileges, bpffs, memory for the UMEMs.
use crate::error::DataplaneError;
use std::ffi::CString;
use std::path::Path;

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// The interface index, or `UnknownInterface`.
pub fn ifindex(ifname: &str) -> Result<u32, DataplaneError> {
    let name = CString::new(ifname).map_err(|_| DataplaneError::UnknownInterface(ifname.to_string()))?;
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(DataplaneError::UnknownInterface(ifname.to_string())),
        index => Ok(index),
    }
}

/// Number of RX queues of `ifname` (from sysfs of the current network namespace).
pub fn rx_queues(ifname: &str) -> Result<u32, DataplaneError> {
    ifindex(ifname)?;
    let dir = format!("/sys/class/net/{ifname}/queues");
    let count = std::fs::read_dir(&dir)
        .map_err(|e| DataplaneError::Internal(format!("reading {dir}: {e}")))?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    Ok(count as u32)
}

/// The MTU of `ifname` (sysfs of the current network namespace).
pub fn mtu(ifname: &str) -> Result<u32, DataplaneError> {
    ifindex(ifname)?;
    let path = format!("/sys/class/net/{ifname}/mtu");
    let text = std::fs::read_to_string(&path).map_err(|e| DataplaneError::Internal(format!("reading {path}: {e}")))?;
    text.trim().parse().map_err(|e| DataplaneError::Internal(format!("{path}: {e}")))
}

/// Fails unless we run as root.
pub fn require_root() -> Result<(), DataplaneError> {
    if unsafe { libc::geteuid() } != 0 {
        return Err(DataplaneError::Permission("not running as root".into()));
    }
    Ok(())
}

/// Fails unless `path` is a mounted bpffs.
pub fn require_bpffs(path: &Path) -> Result<(), DataplaneError> {
    let cpath = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| DataplaneError::Bpffs(format!("bad path {}", path.display())))?;
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(cpath.as_ptr(), &mut stat) } != 0 {
        return Err(DataplaneError::Bpffs(format!("{} does not exist", path.display())));
    }
    if stat.f_type as i64 != BPF_FS_MAGIC {
        return Err(DataplaneError::Bpffs(format!("{} is not a bpffs mount", path.display())));
    }
    Ok(())
}

/// Fails if `bytes` of UMEM would not fit in available memory.
pub fn require_memory(bytes: u64) -> Result<(), DataplaneError> {
    let available = mem_available().unwrap_or(u64::MAX);
    if bytes > available / 2 {
        return Err(DataplaneError::Memory(format!(
            "{} MiB of UMEM requested, {} MiB available (lower --umem-frames or use fewer workers)",
            bytes >> 20,
            available >> 20
        )));
    }
    // Kernels before 5.11 charge UMEM to RLIMIT_MEMLOCK; lift it where we may.
    let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    Ok(())
}

fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Cores this process may run on.
pub fn usable_cores() -> Vec<usize> {
    core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect()
}
