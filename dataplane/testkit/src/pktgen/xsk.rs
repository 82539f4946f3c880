//! One AF_XDP socket with a UMEM of its own, as the generator and the receiver use it.
//!
//! Unlike ztplane's workers (one UMEM shared by many sockets), each socket here owns its UMEM:
//! the generator and the receiver run on different threads, often in different namespaces, and
//! never hand frames to each other. libxdp's own program loading is inhibited: the receiver is
//! steered by whatever XDP program the caller attaches (see [`super::Steer`]), and the generator
//! needs none (AF_XDP TX works without an XDP program).
use anyhow::{Context, Result, anyhow, bail};
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use xsk_rs::config::{BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
use xsk_rs::socket::{RxQueue, Socket, TxQueue};
use xsk_rs::umem::frame::FrameDesc;
use xsk_rs::umem::{CompQueue, FillQueue, Umem};

/// UMEM frames: room for a 1518-byte frame (FCS excluded) with the default headroom.
pub const FRAME_SIZE: u32 = 2048;
/// Ring sizes (descriptors) for every ring of the socket.
pub const RING: u32 = 2048;
/// UMEM frames per socket: both rings' worth, so that neither side starves the other.
pub const FRAMES: u32 = 2 * RING;

/// Zero-copy where the driver offers it, else copy mode (always the case on a veth).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Auto,
    Copy,
    ZeroCopy,
}

pub struct Xsk {
    pub umem: Umem,
    pub tx: TxQueue,
    pub rx: RxQueue,
    pub fill: FillQueue,
    pub comp: CompQueue,
    /// Frames owned by userspace and free to use.
    pub free: Vec<FrameDesc>,
    pub zero_copy: bool,
}

impl Xsk {
    /// Opens a socket on (`ifname`, `queue`) with XDP_USE_NEED_WAKEUP, in the calling thread's
    /// network namespace.
    pub fn open(ifname: &str, queue: u32, mode: Mode) -> Result<Xsk> {
        let umem_config = UmemConfig::builder()
            .frame_size(FrameSize::new(FRAME_SIZE).map_err(|e| anyhow!("frame size: {e}"))?)
            .fill_queue_size(QueueSize::new(RING).map_err(|e| anyhow!("ring size: {e}"))?)
            .comp_queue_size(QueueSize::new(RING).map_err(|e| anyhow!("ring size: {e}"))?)
            .build()
            .map_err(|e| anyhow!("UMEM config: {e}"))?;
        let frames = NonZeroU32::new(FRAMES).expect("non-zero");
        let (umem, free) = Umem::new(umem_config, frames, false).map_err(|e| anyhow!("UMEM: {e}"))?;
        let interface: Interface = ifname.parse().map_err(|e| anyhow!("interface name {ifname:?}: {e}"))?;
        let ring = QueueSize::new(RING).map_err(|e| anyhow!("ring size: {e}"))?;
        let attempts: &[(BindFlags, bool)] = match mode {
            Mode::Auto => &[(BindFlags::XDP_ZEROCOPY, true), (BindFlags::XDP_COPY, false)],
            Mode::Copy => &[(BindFlags::XDP_COPY, false)],
            Mode::ZeroCopy => &[(BindFlags::XDP_ZEROCOPY, true)],
        };
        let mut last_error = String::new();
        for &(flags, zero_copy) in attempts {
            let config = SocketConfig::builder()
                .rx_queue_size(ring)
                .tx_queue_size(ring)
                .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
                .bind_flags(flags | BindFlags::XDP_USE_NEED_WAKEUP)
                .build();
            // SAFETY: the UMEM is a field of the same `Xsk` and so outlives nothing it serves;
            // frames are touched only while userspace owns them (the `free` list).
            match unsafe { Socket::new(config, &umem, &interface, queue) } {
                Ok((tx, rx, Some((fill, comp)))) => {
                    return Ok(Xsk { umem, tx, rx, fill, comp, free, zero_copy });
                }
                Ok((_, _, None)) => bail!("{ifname} queue {queue}: UMEM already bound"),
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(anyhow!("AF_XDP socket on {ifname} queue {queue}: {last_error}"))
            .context("binding needs root, an existing interface and queue, and a kernel with AF_XDP")
    }

    /// Gives free frames to the fill ring (as many as it holds): nothing arrives before this.
    pub fn stock_fill(&mut self) {
        let stock = self.free.len().min(RING as usize);
        let start = self.free.len() - stock;
        // SAFETY: the frames are free, owned by userspace and of this UMEM; the fill ring has room
        // for RING entries and produces at most what it has room for.
        let produced = unsafe { self.fill.produce(&self.free[start..]) };
        self.free.truncate(self.free.len() - produced);
    }

    /// Receives for `wait` and returns a copy of every frame that arrived, in order; each
    /// buffer goes back to the fill ring at once. For tests that look at which frames a program
    /// redirected, not at speed.
    pub fn receive_for(&mut self, wait: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + wait;
        let mut frames = Vec::new();
        let mut batch = vec![FrameDesc::default(); 64];
        loop {
            // SAFETY: received frames are owned by userspace until produced to the fill ring again.
            let n = unsafe { self.rx.consume(&mut batch) };
            for desc in &batch[..n] {
                // SAFETY: as above; the frame is only read.
                frames.push(unsafe { self.umem.data(desc) }.contents().to_vec());
            }
            if n > 0 {
                // SAFETY: the frames came from this UMEM's RX ring and are owned by userspace; the
                // fill ring held them a moment ago, so it has room.
                unsafe { self.fill.produce(&batch[..n]) };
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return frames;
            }
            if self.fill.needs_wakeup() {
                let _ = self.fill.wakeup(self.rx.fd_mut(), 0);
            }
            let mut fd = libc::pollfd { fd: self.rx.fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd for the duration of the call.
            unsafe { libc::poll(&mut fd, 1, left.as_millis().clamp(1, 100) as i32) };
        }
    }

    /// Frames the kernel dropped on this socket's RX side: (dropped, RX ring full, fill ring empty).
    pub fn rx_drops(&self) -> (u64, u64, u64) {
        match self.rx.fd().xdp_statistics() {
            Ok(s) => (s.rx_dropped(), s.rx_ring_full(), s.rx_fill_ring_empty_descs()),
            Err(_) => (0, 0, 0),
        }
    }
}
