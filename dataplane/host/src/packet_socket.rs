//! A raw AF_PACKET socket for sending whole Ethernet frames on one interface: how the slow path
//! writes to a bridged LAN (gateway mode) the frames the workers do not (flooded multicast,
//! frames the node itself produced). Sending only: the interface's RX belongs to XDP.

use crate::error::{Error, Result};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A send-only packet socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
    ifname: String,
}

impl PacketSocket {
    /// Opens a socket that sends on `ifname` (index `ifindex`). Needs CAP_NET_RAW.
    pub fn open(ifname: &str, ifindex: u32) -> Result<Self> {
        let what = || format!("packet socket on {ifname}");
        // Protocol 0: the socket receives nothing, so it never competes with XDP for frames.
        // SAFETY: plain socket(2); the descriptor is owned below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(Error::from_io(what(), io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(PacketSocket { fd, ifindex, ifname: ifname.to_string() })
    }

    /// Sends one Ethernet frame (destination MAC first) as it is.
    pub fn send(&self, frame: &[u8]) -> Result<()> {
        if frame.len() < 14 {
            return Err(Error::InvalidArgument {
                what: format!("send on {}", self.ifname),
                detail: Some(format!("a {}-byte frame", frame.len())),
                source: None,
            });
        }
        // SAFETY: zeroed sockaddr_ll is valid; the fields set are the ones sendto needs.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_ifindex = self.ifindex as i32;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: the buffer and address outlive the call; lengths are theirs.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if sent < 0 {
            return Err(Error::from_io(format!("send on {}", self.ifname), io::Error::last_os_error()));
        }
        Ok(())
    }
}
