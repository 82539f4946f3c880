//! Map layouts shared by the XDP program (`ebpf/`) and userspace (`dataplane/`, `control/`).
//!
//! The kernel side and the user side must agree on map names, key/value types and counter
//! slots; keeping them in this one `#![no_std]` crate makes a mismatch a compile error.
#![no_std]

/// Map: UDP destination ports (host byte order) whose frames are steered to AF_XDP.
/// `HashMap<u16, u8>`; the value is unused (1).
pub const PORTS_MAP: &str = "ZT_PORTS";
/// Map: RX queue index → AF_XDP socket (`XskMap`).
pub const XSKS_MAP: &str = "XSKS";
/// Map: per-CPU steering counters (`PerCpuArray<u64>`, indexed by [`Counter`]).
pub const COUNTERS_MAP: &str = "STEER_COUNTERS";
/// Name of the XDP program in the object file.
pub const PROGRAM: &str = "ztplane_steer";

/// Capacity of [`PORTS_MAP`].
pub const MAX_PORTS: u32 = 64;
/// Capacity of [`XSKS_MAP`]: the highest usable RX queue index + 1.
pub const MAX_QUEUES: u32 = 256;
/// The ZeroTier default port, steered unless configured otherwise.
pub const DEFAULT_PORT: u16 = 9993;

/// Steering counter slots in [`COUNTERS_MAP`].
///
/// Every frame is counted in `Seen` and in exactly one of `Steered` / `Passed`;
/// `Malformed` frames (truncated or inconsistent headers) are also counted in `Passed`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Seen = 0,
    Steered = 1,
    Passed = 2,
    Malformed = 3,
}

impl Counter {
    pub const ALL: [Counter; 4] = [Counter::Seen, Counter::Steered, Counter::Passed, Counter::Malformed];
    pub const COUNT: u32 = 4;

    pub const fn name(self) -> &'static str {
        match self {
            Counter::Seen => "seen",
            Counter::Steered => "steered",
            Counter::Passed => "passed",
            Counter::Malformed => "malformed",
        }
    }
}
