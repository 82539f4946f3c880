//! The virtual network port: a multi-queue Linux TAP device (zerotier-vl2.md §7.1) and the
//! zerotier-one rule for naming it.
//!
//! Differences from zerotier-one, on purpose:
//! * `IFF_MULTI_QUEUE` with N queues (N fds) instead of one fd shared by all reader threads, so each
//!   dataplane worker owns a queue. The kernel steers a flow's frames to the queue that last
//!   *wrote* that flow (tap-offloads.md §1, "Multi-queue").
//! * The first attach uses `IFF_TUN_EXCL`, so an existing interface of that name (another node's
//!   tap, a persistent tap left behind) is reported as [`Error::Exists`] instead of silently joined.
//!
//! The device is not persistent: it disappears when its last queue fd closes, i.e. when [`Tap`] is
//! dropped. Every fd (queues and the control socket) is an [`OwnedFd`], so dropping closes them all.
//!
//! Interface ioctls (MAC, MTU, flags) go through a datagram socket made at creation time. A socket
//! belongs to the network namespace it was made in, so those calls keep addressing this tap even
//! from threads that live in another namespace.
//!
//! With [`TapOptions::vnet_hdr`] every frame read or written carries a 10-byte little-endian
//! `virtio_net_hdr` in front (tap-offloads.md §1), and checksum offload plus TSO4/TSO6 are on: the
//! kernel hands over TCP super-frames of up to 64 KiB and accepts merged ones. Splitting and
//! merging them is [`crate::offload`]'s job.

use crate::error::{Error, Result};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// The kernel's limit on queues of one tun/tap device (`MAX_TAP_QUEUES`, E2BIG beyond).
pub const MAX_QUEUES: usize = 256;

/// Largest MTU a tap accepts: `MAX_MTU` (65535) less the Ethernet header, as drivers/net/tun.c
/// sets `max_mtu` (`ip -d link` shows `maxmtu 65521`).
pub const MAX_MTU: u32 = 65535 - 14;

pub use crate::offload::VNET_HDR_LEN;

/// A read buffer that no frame can overflow with offloads: header, Ethernet with a tag, 64 KiB of
/// L3 (reads truncate silently, tap-offloads.md §1 "Read").
pub const READ_BUF_LEN: usize = VNET_HDR_LEN + 18 + 65535;

/// The offloads asked for with [`TapOptions::vnet_hdr`]: checksum, TSO over IPv4 and IPv6.
const OFFLOADS: libc::c_uint = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;

/// How to create a [`Tap`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapOptions {
    /// Number of queues (file descriptors), 1..=[`MAX_QUEUES`].
    pub queues: usize,
    /// Fail with [`Error::Exists`] if an interface of this name already exists (`IFF_TUN_EXCL`).
    /// Without it an existing multi-queue tap of that name would be joined.
    pub exclusive: bool,
    /// Open with `IFF_VNET_HDR` (10-byte header, little-endian) and enable `TUN_F_CSUM | TSO4 |
    /// TSO6` (tap-offloads.md §1). The flag is on every queue's `TUNSETIFF` (it is per device; the
    /// first attach fixes it) and confirmed with `TUNGETIFF`. No USO and no TSO_ECN: ECN bursts are
    /// then segmented by the kernel, and UDP arrives as plain datagrams.
    pub vnet_hdr: bool,
}

impl Default for TapOptions {
    fn default() -> Self {
        TapOptions { queues: 1, exclusive: true, vnet_hdr: false }
    }
}

impl TapOptions {
    /// Default options with `queues` queues.
    pub fn with_queues(queues: usize) -> Self {
        TapOptions { queues, ..TapOptions::default() }
    }
}

/// One queue of a [`Tap`]: a non-blocking fd that reads and writes whole Ethernet frames.
#[derive(Debug)]
pub struct TapQueue {
    fd: OwnedFd,
    vnet_hdr: bool,
}

impl TapQueue {
    /// Another descriptor of the same queue (`dup`), for a thread that reads and writes it while
    /// the owner keeps the [`Tap`]: the device lives until the last descriptor closes.
    pub fn try_clone(&self) -> io::Result<TapQueue> {
        Ok(TapQueue { fd: self.fd.try_clone()?, vnet_hdr: self.vnet_hdr })
    }

    /// Length of the `virtio_net_hdr` in front of every frame on this queue: 10 with offloads, else 0.
    pub fn vnet_hdr_len(&self) -> usize {
        if self.vnet_hdr { VNET_HDR_LEN } else { 0 }
    }

    /// Reads one frame (destination MAC first, no packet-info header; with offloads the
    /// [`vnet_hdr_len`](Self::vnet_hdr_len) header comes first). `WouldBlock` when the queue is
    /// empty. A frame longer than `buf` is truncated by the kernel without notice, so size `buf`
    /// for MTU + 14 at least (zerotier-one uses 16 KiB), or [`READ_BUF_LEN`] with offloads.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Writes one plain, fully checksummed Ethernet frame (one syscall per frame; with offloads an
    /// all-zero header goes in front, so the kernel checks its checksums). EIO while the interface
    /// is down, EINVAL for a frame under 14 bytes; a full queue ring drops silently (no
    /// backpressure on a tap).
    pub fn write(&self, frame: &[u8]) -> io::Result<()> {
        if self.vnet_hdr { self.write_parts(&[0; VNET_HDR_LEN], frame) } else { self.write_parts(&[], frame) }
    }

    /// Writes `header` then `frame` as one frame (one `writev`). With offloads `header` is the
    /// `virtio_net_hdr` (e.g. from [`crate::offload::Coalescer`]); without, it is empty.
    pub fn write_parts(&self, header: &[u8], frame: &[u8]) -> io::Result<()> {
        let iov = [
            libc::iovec { iov_base: header.as_ptr() as *mut _, iov_len: header.len() },
            libc::iovec { iov_base: frame.as_ptr() as *mut _, iov_len: frame.len() },
        ];
        let total = header.len() + frame.len();
        loop {
            // SAFETY: both iovecs point at live buffers of the stated lengths, only read by writev.
            let n = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
            if n >= 0 {
                return check_whole(n as usize, total);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

/// tun_get_user takes the whole frame or fails; a short count would be a kernel change.
fn check_whole(written: usize, total: usize) -> io::Result<()> {
    if written == total {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::WriteZero, format!("tap took {written} of {total} bytes")))
    }
}

impl AsRawFd for TapQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for TapQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A multi-queue TAP device. Dropping it closes every queue and so removes the interface.
#[derive(Debug)]
pub struct Tap {
    name: String,
    ifindex: u32,
    queues: Vec<TapQueue>,
    /// AF_INET datagram socket for SIOC*IF* ioctls, in the tap's namespace.
    ctl: OwnedFd,
}

impl Tap {
    /// Creates tap `name` (an empty name lets the kernel pick `tapN`) with `opts.queues` queues,
    /// `IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE`, all fds non-blocking and close-on-exec. The
    /// interface starts down; see [`Tap::set_mac`], [`Tap::set_mtu`], [`Tap::set_up`].
    pub fn create(name: &str, opts: &TapOptions) -> Result<Tap> {
        let what = || format!("create tap {name:?}");
        validate_ifname(name, true).map_err(|d| Error::invalid(what(), d))?;
        if opts.queues == 0 || opts.queues > MAX_QUEUES {
            return Err(Error::invalid(what(), format!("{} queues, must be 1..={MAX_QUEUES}", opts.queues)));
        }
        let vnet = if opts.vnet_hdr { libc::IFF_VNET_HDR } else { 0 };
        let base = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE | vnet;
        let mut actual = name.to_string();
        let mut queues = Vec::with_capacity(opts.queues);
        for q in 0..opts.queues {
            let fd = open_clone_device().map_err(|e| Error::from_io(format!("{}: open /dev/net/tun", what()), e))?;
            // EXCL only on the first attach: later queues must join the device the first one made.
            let excl = if q == 0 && opts.exclusive && !name.is_empty() { libc::IFF_TUN_EXCL } else { 0 };
            let mut ifr = IfReq::new(&actual);
            ifr.set_short((base | excl) as libc::c_short);
            ifreq_ioctl(fd.as_fd(), libc::TUNSETIFF as _, &mut ifr)
                .map_err(|e| Error::from_io(format!("{} (queue {q} of {})", what(), opts.queues), e))?;
            if q == 0 {
                actual = ifr.name();
                if opts.vnet_hdr {
                    enable_offloads(fd.as_fd(), &actual)?;
                }
            }
            queues.push(TapQueue { fd, vnet_hdr: opts.vnet_hdr });
        }
        // SAFETY: plain socket(2) call; the result is checked before use.
        let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if s < 0 {
            return Err(Error::last_os(format!("create tap {actual}: control socket")));
        }
        // SAFETY: `s` is a freshly created fd that nothing else owns.
        let ctl = unsafe { OwnedFd::from_raw_fd(s) };
        let mut ifr = IfReq::new(&actual);
        ifreq_ioctl(ctl.as_fd(), libc::SIOCGIFINDEX as _, &mut ifr)
            .map_err(|e| Error::from_io(format!("ifindex of tap {actual}"), e))?;
        let ifindex = ifr.int() as u32;
        log::debug!("tap {actual} (ifindex {ifindex}) created with {} queues", queues.len());
        Ok(Tap { name: actual, ifindex, queues, ctl })
    }

    /// The interface name the kernel gave (equal to the requested one unless that was empty).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface index, in the namespace the tap was created in.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Number of queues.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Queue `queue` (panics if out of range), e.g. to hand its fd to poll/epoll.
    pub fn queue(&self, queue: usize) -> &TapQueue {
        &self.queues[queue]
    }

    /// All queues, in order.
    pub fn queues(&self) -> &[TapQueue] {
        &self.queues
    }

    /// Raw fd of queue `queue`, for polling (panics if out of range).
    pub fn raw_fd(&self, queue: usize) -> RawFd {
        self.queues[queue].as_raw_fd()
    }

    /// Reads one frame from `queue`; `WouldBlock` when empty. See [`TapQueue::read`].
    pub fn read(&self, queue: usize, buf: &mut [u8]) -> io::Result<usize> {
        self.queues[queue].read(buf)
    }

    /// Writes one frame on `queue`. See [`TapQueue::write`].
    pub fn write(&self, queue: usize, frame: &[u8]) -> io::Result<()> {
        self.queues[queue].write(frame)
    }

    /// Sets the MAC address (SIOCSIFHWADDR). Must be unicast and non-zero.
    pub fn set_mac(&self, mac: [u8; 6]) -> Result<()> {
        let what = || format!("set MAC {} on {}", format_mac(&mac), self.name);
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(Error::invalid(what(), "not a unicast address"));
        }
        let mut ifr = IfReq::new(&self.name);
        ifr.data[..2].copy_from_slice(&libc::ARPHRD_ETHER.to_ne_bytes());
        ifr.data[2..8].copy_from_slice(&mac);
        self.ioctl(libc::SIOCSIFHWADDR as _, &mut ifr).map_err(|e| Error::from_io(what(), e))
    }

    /// The MAC address (SIOCGIFHWADDR).
    pub fn mac(&self) -> Result<[u8; 6]> {
        let mut ifr = IfReq::new(&self.name);
        self.ioctl(libc::SIOCGIFHWADDR as _, &mut ifr)
            .map_err(|e| Error::from_io(format!("MAC of {}", self.name), e))?;
        Ok(ifr.data[2..8].try_into().expect("6 bytes"))
    }

    /// Sets the MTU (SIOCSIFMTU). zerotier-one uses 2800 before the first config, then the
    /// network's `mtu` (§7.1). The kernel accepts 68..=[`MAX_MTU`] on a tap.
    pub fn set_mtu(&self, mtu: u32) -> Result<()> {
        let what = || format!("set MTU {mtu} on {}", self.name);
        if mtu > MAX_MTU {
            return Err(Error::invalid(what(), format!("above {MAX_MTU}")));
        }
        let mut ifr = IfReq::new(&self.name);
        ifr.set_int(mtu as i32);
        self.ioctl(libc::SIOCSIFMTU as _, &mut ifr).map_err(|e| Error::from_io(what(), e))
    }

    /// The MTU (SIOCGIFMTU).
    pub fn mtu(&self) -> Result<u32> {
        let mut ifr = IfReq::new(&self.name);
        self.ioctl(libc::SIOCGIFMTU as _, &mut ifr).map_err(|e| Error::from_io(format!("MTU of {}", self.name), e))?;
        Ok(ifr.int() as u32)
    }

    /// Brings the interface up with `IFF_UP | IFF_MULTICAST` (§7.1), or takes it down (clears
    /// `IFF_UP` only). Other flags are kept.
    pub fn set_up(&self, up: bool) -> Result<()> {
        let what = || format!("set {} {}", self.name, if up { "up" } else { "down" });
        let mut ifr = IfReq::new(&self.name);
        self.ioctl(libc::SIOCGIFFLAGS as _, &mut ifr).map_err(|e| Error::from_io(what(), e))?;
        let mut flags = ifr.short() as libc::c_int;
        if up {
            flags |= libc::IFF_UP | libc::IFF_MULTICAST;
        } else {
            flags &= !libc::IFF_UP;
        }
        ifr.set_short(flags as libc::c_short);
        self.ioctl(libc::SIOCSIFFLAGS as _, &mut ifr).map_err(|e| Error::from_io(what(), e))
    }

    /// Whether `IFF_UP` is set.
    pub fn is_up(&self) -> Result<bool> {
        let mut ifr = IfReq::new(&self.name);
        self.ioctl(libc::SIOCGIFFLAGS as _, &mut ifr)
            .map_err(|e| Error::from_io(format!("flags of {}", self.name), e))?;
        Ok(ifr.short() as libc::c_int & libc::IFF_UP != 0)
    }

    /// Sets the length of each queue's ring (SIOCSIFTXQLEN; 1000 on a new tap). A full ring drops the
    /// kernel's frames without backpressure, so a busy node raises it (tap-offloads.md §1).
    pub fn set_txqueuelen(&self, len: u32) -> Result<()> {
        let what = || format!("set txqueuelen {len} on {}", self.name);
        let len = i32::try_from(len).map_err(|_| Error::invalid(what(), "too large"))?;
        let mut ifr = IfReq::new(&self.name);
        ifr.set_int(len);
        self.ioctl(libc::SIOCSIFTXQLEN as _, &mut ifr).map_err(|e| Error::from_io(what(), e))
    }

    fn ioctl(&self, req: libc::Ioctl, ifr: &mut IfReq) -> io::Result<()> {
        ifreq_ioctl(self.ctl.as_fd(), req, ifr)
    }
}

/// Header size, byte order and offload set of a freshly attached vnet-header tap, then a check
/// that the device really has `IFF_VNET_HDR` (a persistent device can lose it, tap-offloads.md §1).
fn enable_offloads(fd: BorrowedFd<'_>, name: &str) -> Result<()> {
    let what = |step: &str| format!("offloads on tap {name}: {step}");
    let size: libc::c_int = VNET_HDR_LEN as libc::c_int;
    // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, which is valid for the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETHDRSZ as _, &size as *const libc::c_int) } < 0 {
        return Err(Error::last_os(what("TUNSETVNETHDRSZ 10")));
    }
    let le: libc::c_int = 1;
    // SAFETY: TUNSETVNETLE reads one int through the pointer, which is valid for the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETLE as _, &le as *const libc::c_int) } < 0 {
        return Err(Error::last_os(what("TUNSETVNETLE")));
    }
    // SAFETY: TUNSETOFFLOAD takes the flag word as the value, not a pointer (tap-offloads.md §1).
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETOFFLOAD as _, OFFLOADS as libc::c_ulong) } < 0 {
        return Err(Error::last_os(what("TUNSETOFFLOAD csum|tso4|tso6")));
    }
    let mut ifr = IfReq::new(name);
    ifreq_ioctl(fd, libc::TUNGETIFF as _, &mut ifr).map_err(|e| Error::from_io(what("TUNGETIFF"), e))?;
    if ifr.short() as libc::c_int & libc::IFF_VNET_HDR == 0 {
        return Err(Error::invalid(
            what("TUNGETIFF"),
            "the device has no IFF_VNET_HDR (a persistent tap left behind?)",
        ));
    }
    Ok(())
}

/// Opens the tun/tap clone device; `/dev/tun` is the fallback zerotier-one also tries (§7.1).
fn open_clone_device() -> io::Result<OwnedFd> {
    let mut last = io::Error::from_raw_os_error(libc::ENOENT);
    for path in [c"/dev/net/tun", c"/dev/tun"] {
        // SAFETY: `path` is a NUL-terminated string; the result is checked before use.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: `fd` is a freshly opened fd that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        last = io::Error::last_os_error();
        if last.raw_os_error() != Some(libc::ENOENT) {
            break;
        }
    }
    Err(last)
}

/// `struct ifreq`: name, then a union whose used members all start at offset 16 (flags, ifindex,
/// MTU, queue length, hardware `sockaddr`). 40 bytes as on 64-bit Linux; on 32-bit the kernel
/// copies only its own 32.
#[repr(C, align(8))]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: [u8; 24],
}

impl IfReq {
    /// `name` must have passed [`validate_ifname`] (shorter than IFNAMSIZ, so NUL-terminated).
    fn new(name: &str) -> IfReq {
        let mut ifr = IfReq { name: [0; libc::IFNAMSIZ], data: [0; 24] };
        let n = name.len().min(libc::IFNAMSIZ - 1);
        ifr.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        ifr
    }

    fn name(&self) -> String {
        CStr::from_bytes_until_nul(&self.name).map(|c| c.to_string_lossy().into_owned()).unwrap_or_default()
    }

    fn short(&self) -> libc::c_short {
        libc::c_short::from_ne_bytes([self.data[0], self.data[1]])
    }

    fn set_short(&mut self, v: libc::c_short) {
        self.data[..2].copy_from_slice(&v.to_ne_bytes());
    }

    fn int(&self) -> libc::c_int {
        libc::c_int::from_ne_bytes(self.data[..4].try_into().expect("4 bytes"))
    }

    fn set_int(&mut self, v: libc::c_int) {
        self.data[..4].copy_from_slice(&v.to_ne_bytes());
    }
}

fn ifreq_ioctl(fd: BorrowedFd<'_>, req: libc::Ioctl, ifr: &mut IfReq) -> io::Result<()> {
    // SAFETY: every request used here (TUNSETIFF, SIOC[GS]IF*) reads and writes only within a
    // `struct ifreq`, and `ifr` is one, valid and exclusively borrowed for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req, ifr as *mut IfReq) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Checks an interface name the way the kernel's `dev_valid_name` does: at most 15 bytes, not `.`
/// or `..`, no `/`, `:` or whitespace. `allow_empty` for "let the kernel choose".
pub fn validate_ifname(name: &str, allow_empty: bool) -> std::result::Result<(), String> {
    if name.is_empty() {
        return if allow_empty { Ok(()) } else { Err("empty interface name".into()) };
    }
    if name.len() >= libc::IFNAMSIZ {
        return Err(format!("interface name longer than {} bytes", libc::IFNAMSIZ - 1));
    }
    if name == "." || name == ".." || name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
    {
        return Err("interface name has a forbidden character".into());
    }
    Ok(())
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// zerotier-one's tap name for network `nwid`, attempt `trial` (§7.1): `zt` + base32 (alphabet
/// `a–z2–7`, 5-bit groups most significant first) of the low 40 bits of
/// `(nwid ^ (nwid >> 24)) + trial`. Always 10 characters.
pub fn zt_device_name(nwid: u64, trial: u32) -> String {
    let v = (nwid ^ (nwid >> 24)).wrapping_add(u64::from(trial)) & 0xff_ffff_ffff;
    let mut name = String::with_capacity(10);
    name.push_str("zt");
    for group in (0..8).rev() {
        name.push(BASE32[((v >> (group * 5)) & 31) as usize] as char);
    }
    name
}

/// The tap name for `nwid` as zerotier-one picks it (§7.1): the name from a `<home>/devicemap`
/// line `<16 hex nwid>=<name>` if that interface does not exist yet; else [`zt_device_name`] with
/// trial 0, 1, … until `/proc/sys/net/ipv4/conf/<name>` does not exist. Looks at the network
/// namespace of the calling thread. (zerotier-one also writes the choice back to `devicemap`;
/// that is the caller's business.)
pub fn choose_device_name(home: &Path, nwid: u64) -> String {
    let devicemap = std::fs::read_to_string(home.join("devicemap")).ok();
    choose_device_name_from(devicemap.as_deref().and_then(|text| devicemap_lookup(text, nwid)).as_deref(), nwid)
}

/// [`choose_device_name`] with the devicemap entry already looked up (`hint`), for callers that
/// read `devicemap` themselves.
pub fn choose_device_name_from(hint: Option<&str>, nwid: u64) -> String {
    pick_device_name(hint, nwid, |name| Path::new("/proc/sys/net/ipv4/conf").join(name).exists())
}

/// The pure part of [`choose_device_name`]: `hint` if it is a valid name and not `taken`, else the
/// first free [`zt_device_name`].
pub fn pick_device_name(hint: Option<&str>, nwid: u64, mut taken: impl FnMut(&str) -> bool) -> String {
    if let Some(name) = hint
        && validate_ifname(name, false).is_ok()
        && !taken(name)
    {
        return name.to_string();
    }
    (0..=u32::MAX).map(|trial| zt_device_name(nwid, trial)).find(|name| !taken(name)).unwrap_or_default()
}

/// The name mapped to `nwid` in devicemap text (last matching line wins, as later lines overwrite
/// earlier ones in zerotier-one's map). Lines that are not `<hex>=<valid name>` are ignored.
pub fn devicemap_lookup(text: &str, nwid: u64) -> Option<String> {
    text.lines()
        .filter_map(|line| {
            let (id, name) = line.trim().split_once('=')?;
            let id = u64::from_str_radix(id.trim(), 16).ok()?;
            let name = name.trim();
            (id == nwid && validate_ifname(name, false).is_ok()).then(|| name.to_string())
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_name() {
        // zerotier-vl2.md §7.1: 2c80d4374849700f → ztdpej2r2h (capture `listnetworks`).
        assert_eq!(zt_device_name(0x2c80d4374849700f, 0), "ztdpej2r2h");
    }

    #[test]
    fn trial_adds_to_the_low_40_bits() {
        let n0 = zt_device_name(0x2c80d4374849700f, 0);
        let n1 = zt_device_name(0x2c80d4374849700f, 1);
        assert_eq!(n0.len(), 10);
        assert_ne!(n0, n1);
        // The last base32 digit counts up by one: h → i.
        assert_eq!(&n1[..9], &n0[..9]);
        assert_eq!(n1.as_bytes()[9], b'i');
        // All-zero input maps to all 'a'; wrap-around stays within 40 bits.
        assert_eq!(zt_device_name(0, 0), "ztaaaaaaaa");
        assert_eq!(zt_device_name(0xff_ffff, 0), "ztaaap7777");
        assert_eq!(zt_device_name(0xff_ffff_ffff ^ (0xff_ffff_ffff >> 24), 1), "ztaaaaaaaa");
    }

    #[test]
    fn devicemap_and_trials() {
        let nwid = 0x2c80d4374849700f;
        let map = "# comment\n8056c2e21c000001=zt0\n2c80d4374849700f=ztmine\nnot a line\n";
        assert_eq!(devicemap_lookup(map, nwid).as_deref(), Some("ztmine"));
        assert_eq!(devicemap_lookup(map, 1), None);
        assert_eq!(devicemap_lookup("2C80D4374849700F = zta\n2c80d4374849700f=ztb", nwid).as_deref(), Some("ztb"));
        assert_eq!(devicemap_lookup("2c80d4374849700f=bad/name", nwid), None);
        assert_eq!(devicemap_lookup("2c80d4374849700f=waytoolongname16", nwid), None);

        assert_eq!(pick_device_name(Some("ztmine"), nwid, |_| false), "ztmine");
        // The mapped name is taken (or unusable): fall back to the computed names.
        assert_eq!(pick_device_name(Some("ztmine"), nwid, |n| n == "ztmine"), "ztdpej2r2h");
        assert_eq!(pick_device_name(Some("bad/name"), nwid, |_| false), "ztdpej2r2h");
        assert_eq!(pick_device_name(None, nwid, |n| n == "ztdpej2r2h"), zt_device_name(nwid, 1));
        let taken = [zt_device_name(nwid, 0), zt_device_name(nwid, 1)];
        assert_eq!(pick_device_name(None, nwid, |n| taken.iter().any(|t| t == n)), zt_device_name(nwid, 2));
    }

    #[test]
    fn choose_reads_devicemap_file() {
        let dir = std::env::temp_dir().join(format!("ztplane-host-devmap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A name no interface of this (or any) namespace has.
        std::fs::write(dir.join("devicemap"), "00000000000000aa=ztq7unusedq\n").unwrap();
        assert_eq!(choose_device_name(&dir, 0xaa), "ztq7unusedq");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(choose_device_name(&dir, 0xaa).starts_with("zt"));
    }

    #[test]
    fn ifname_rules() {
        assert!(validate_ifname("zt0", false).is_ok());
        assert!(validate_ifname("", true).is_ok());
        assert!(validate_ifname("", false).is_err());
        assert!(validate_ifname("123456789012345", false).is_ok());
        assert!(validate_ifname("1234567890123456", false).is_err());
        for bad in [".", "..", "a/b", "a:b", "a b"] {
            assert!(validate_ifname(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn ifreq_layout() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
        let mut ifr = IfReq::new("zt0");
        ifr.set_short(0x1102);
        assert_eq!(ifr.short(), 0x1102);
        ifr.set_int(2800);
        assert_eq!(ifr.int(), 2800);
        assert_eq!(ifr.name(), "zt0");
        assert_eq!(format_mac(&[0x0e, 0xbf, 0xab, 0, 0x12, 0x43]), "0e:bf:ab:00:12:43");
    }

    #[test]
    fn bad_options_are_rejected_before_the_kernel() {
        let e = Tap::create("zt0", &TapOptions::with_queues(0)).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
        let e = Tap::create("way-too-long-name", &TapOptions::default()).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
        assert!(e.to_string().contains("way-too-long-name"), "{e}");
    }
}
