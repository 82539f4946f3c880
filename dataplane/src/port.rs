//! One AF_XDP socket: an (interface, queue) pair bound to its worker's UMEM, with its four
//! rings and the count of frames the kernel holds in each, so that a frame is never lost.
use crate::error::DataplaneError;
use xsk_rs::config::{BindFlags, Interface, LibxdpFlags, QueueSize, SocketConfig};
use xsk_rs::socket::{RxQueue, Socket, TxQueue};
use xsk_rs::umem::frame::FrameDesc;
use xsk_rs::umem::{CompQueue, FillQueue, Umem};

/// Whether to ask for zero-copy sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Zero-copy where the driver supports it, copy mode otherwise.
    Auto,
    On,
    Off,
}

impl std::str::FromStr for ZeroCopy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ZeroCopy::Auto),
            "on" => Ok(ZeroCopy::On),
            "off" => Ok(ZeroCopy::Off),
            _ => Err(format!("unknown zero-copy setting {s:?} (auto, on, off)")),
        }
    }
}

/// An AF_XDP socket and its rings.
pub struct Port {
    pub ifname: String,
    pub queue: u32,
    pub zero_copy: bool,
    pub rx: RxQueue,
    pub tx: TxQueue,
    pub fill: FillQueue,
    pub comp: CompQueue,
    /// Frames handed to the kernel through the fill ring and not yet received.
    pub in_fill: usize,
    /// Frames handed to the kernel through the TX ring and not yet completed.
    pub in_tx: usize,
    /// How many frames to keep in the fill ring.
    pub fill_target: usize,
}

impl Port {
    /// Binds a socket to (`ifname`, `queue`) on `umem`. Program loading by libxdp is inhibited:
    /// our own XDP program steers, and the caller registers the socket in its map.
    pub fn open(
        umem: &Umem,
        ifname: &str,
        queue: u32,
        ring_size: u32,
        zero_copy: ZeroCopy,
    ) -> Result<Self, DataplaneError> {
        let attempts: &[(BindFlags, bool)] = match zero_copy {
            ZeroCopy::Auto => &[(BindFlags::XDP_ZEROCOPY, true), (BindFlags::XDP_COPY, false)],
            ZeroCopy::On => &[(BindFlags::XDP_ZEROCOPY, true)],
            ZeroCopy::Off => &[(BindFlags::XDP_COPY, false)],
        };
        let socket_error = |reason: String| DataplaneError::Socket { ifname: ifname.to_string(), queue, reason };
        let interface: Interface = ifname.parse().map_err(|e| socket_error(format!("interface name: {e}")))?;
        let ring =
            QueueSize::new(ring_size).map_err(|e| DataplaneError::Config(format!("ring size {ring_size}: {e}")))?;
        let mut last_error = String::new();
        for &(mode, zc) in attempts {
            let config = SocketConfig::builder()
                .rx_queue_size(ring)
                .tx_queue_size(ring)
                .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
                .bind_flags(mode | BindFlags::XDP_USE_NEED_WAKEUP)
                .build();
            // SAFETY: the UMEM outlives the socket (the worker holds both, UMEM last), and frames
            // are only touched while owned by userspace (see `worker`).
            match unsafe { Socket::new(config, umem, &interface, queue) } {
                Ok((tx, rx, Some((fill, comp)))) => {
                    // A socket sharing a UMEM inherits the first one's mode whatever we asked:
                    // ask the kernel which mode it got.
                    let zero_copy = zc && is_zero_copy(rx.fd()).unwrap_or(zc);
                    return Ok(Port {
                        ifname: ifname.to_string(),
                        queue,
                        zero_copy,
                        rx,
                        tx,
                        fill,
                        comp,
                        in_fill: 0,
                        in_tx: 0,
                        fill_target: 0,
                    });
                }
                Ok((_, _, None)) => return Err(socket_error("queue already bound on this UMEM".into())),
                Err(e) => last_error = format!("{e}"),
            }
        }
        if last_error.contains("Operation not permitted") || last_error.contains("Permission denied") {
            return Err(DataplaneError::Permission(format!("binding AF_XDP to {ifname} queue {queue}: {last_error}")));
        }
        if last_error.contains("Cannot allocate memory") {
            return Err(DataplaneError::Memory(format!("AF_XDP rings on {ifname} queue {queue}: {last_error}")));
        }
        Err(socket_error(last_error))
    }

    /// Kernel-side drop counters of this socket: (rx dropped, rx ring full, fill ring empty).
    pub fn kernel_drops(&self) -> (u64, u64, u64) {
        match self.rx.fd().xdp_statistics() {
            Ok(s) => (s.rx_dropped(), s.rx_ring_full(), s.rx_fill_ring_empty_descs()),
            Err(_) => (0, 0, 0),
        }
    }

    /// Moves up to `fill_target - in_fill` frames from `free` into the fill ring.
    pub fn refill(&mut self, free: &mut Vec<FrameDesc>) {
        let want = self.fill_target.saturating_sub(self.in_fill).min(free.len());
        if want == 0 {
            return;
        }
        // `produce` reserves all or nothing: never ask for more than the ring has room for.
        let want = want.min(self.fill.nb_free(want as u32) as usize);
        if want == 0 {
            return;
        }
        let start = free.len() - want;
        // SAFETY: frames in `free` are owned by userspace and belong to this port's UMEM.
        let produced = unsafe { self.fill.produce(&free[start..]) };
        free.truncate(free.len() - produced);
        self.in_fill += produced;
        if produced > 0 && self.fill.needs_wakeup() {
            let _ = self.fill.wakeup(self.rx.fd_mut(), 0);
        }
    }

    /// Moves completed TX frames into `free`; returns how many.
    pub fn reclaim(&mut self, free: &mut Vec<FrameDesc>, scratch: &mut [FrameDesc]) -> usize {
        if self.in_tx == 0 {
            return 0;
        }
        // SAFETY: completed frames come back to userspace ownership.
        let n = unsafe { self.comp.consume(scratch) };
        free.extend_from_slice(&scratch[..n]);
        self.in_tx -= n;
        if n == 0 && self.tx.needs_wakeup() {
            // Copy mode transmits only when kicked; kick again if frames wait for completion.
            let _ = self.tx.wakeup();
        }
        n
    }

    /// Receives up to `scratch.len()` frames.
    pub fn receive(&mut self, scratch: &mut [FrameDesc]) -> usize {
        // SAFETY: received frames are owned by userspace until produced again.
        let n = unsafe { self.rx.consume(scratch) };
        self.in_fill -= n;
        n
    }

    /// Queues frames for transmission; returns how many the TX ring took (a prefix).
    pub fn transmit(&mut self, frames: &[FrameDesc]) -> usize {
        if frames.is_empty() {
            return 0;
        }
        // `produce` reserves all or nothing: offer only what the ring has room for.
        let room = (self.tx.nb_free(frames.len() as u32) as usize).min(frames.len());
        // SAFETY: the frames are owned by userspace, filled, and belong to this UMEM.
        // (Not `produce_and_wakeup`: it loses the produced count when the kick fails.)
        let n = if room == 0 { 0 } else { unsafe { self.tx.produce(&frames[..room]) } };
        self.in_tx += n;
        if self.tx.needs_wakeup() {
            let _ = self.tx.wakeup();
        }
        n
    }
}

/// Asks the kernel whether the socket runs in zero-copy mode (`XDP_OPTIONS`).
fn is_zero_copy(fd: &impl std::os::fd::AsRawFd) -> Option<bool> {
    const SOL_XDP: i32 = 283;
    const XDP_OPTIONS: i32 = 8;
    const XDP_OPTIONS_ZEROCOPY: u32 = 1;
    let mut flags: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(fd.as_raw_fd(), SOL_XDP, XDP_OPTIONS, &mut flags as *mut u32 as *mut libc::c_void, &mut len)
    };
    (rc == 0).then_some(flags & XDP_OPTIONS_ZEROCOPY != 0)
}
