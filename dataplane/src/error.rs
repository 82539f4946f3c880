//! The dataplane's error type: one variant per thing an operator can fix.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DataplaneError {
    #[error("unknown interface {0:?} (check `ip link`; inside a namespace, run ztplane there)")]
    UnknownInterface(String),
    #[error("queue {queue} is out of range for {ifname}: {available}")]
    QueueOutOfRange { ifname: String, queue: u32, available: String },
    #[error("permission denied: {0} (ztplane needs root: CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN)")]
    Permission(String),
    #[error("bpffs: {0} (run `cargo xtask setup`, or `mount -t bpf bpf /run/ztplane/bpffs`)")]
    Bpffs(String),
    #[error("not enough memory for the UMEM: {0}")]
    Memory(String),
    #[error("XDP on {ifname}: {reason}")]
    Xdp { ifname: String, reason: String },
    #[error("AF_XDP socket on {ifname} queue {queue}: {reason}")]
    Socket { ifname: String, queue: u32, reason: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("VLAN ID {0} cannot be excluded: use 1 to 4094 (0 is a priority tag, 4095 is reserved)")]
    InvalidVlan(u16),
    #[error("{given} VLANs to exclude; a LAN port takes at most {max}")]
    TooManyVlans { given: usize, max: u32 },
    #[error("instance {name:?} is already running (pid {pid}); stop it or pick another --instance")]
    InstanceRunning { name: String, pid: u32 },
    #[error("internal error: {0}")]
    Internal(String),
}

impl DataplaneError {
    pub(crate) fn from_ebpf(err: aya::EbpfError) -> Self {
        let text = format!("{err:#}");
        if is_permission(&text) {
            DataplaneError::Permission(format!("loading the XDP program: {text}"))
        } else {
            DataplaneError::Internal(format!("loading the XDP program: {text}"))
        }
    }

    pub(crate) fn from_program(ifname: &str, err: aya::programs::ProgramError) -> Self {
        use aya::programs::ProgramError;
        if let ProgramError::UnknownInterface { name } = &err {
            return DataplaneError::UnknownInterface(name.clone());
        }
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(inner) = source {
            text.push_str(": ");
            text.push_str(&inner.to_string());
            source = inner.source();
        }
        if is_permission(&text) {
            DataplaneError::Permission(format!("attaching XDP to {ifname}: {text}"))
        } else {
            DataplaneError::Xdp { ifname: ifname.to_string(), reason: text }
        }
    }
}

fn is_permission(text: &str) -> bool {
    text.contains("Operation not permitted") || text.contains("Permission denied") || text.contains("EPERM")
}
