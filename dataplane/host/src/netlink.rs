//! rtnetlink, synchronous: the managed addresses and routes of zerotier-vl2.md §7.2, and the
//! lookups an AF_XDP sender needs to build Ethernet frames itself (route, neighbour, link; see
//! [`crate::egress`]).
//!
//! Messages are built and parsed with `netlink-packet-route` and sent on a blocking
//! `netlink-sys` socket, one request at a time: send, then read until the kernel's ACK, error or
//! end of dump for that sequence number. A [`Netlink`] handle belongs to the network namespace of
//! the thread that opened it, wherever it is used afterwards.
//!
//! What the kernel does on its own is left to it: adding an address adds its subnet route, and a
//! route lookup does not create a neighbour entry.

use crate::error::{Error, Result};
use crate::tap::{format_mac, validate_ifname};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Receive buffer: kernel dump batches stay below 32 KiB; single replies are far smaller.
const RECV_BUF: usize = 64 * 1024;

/// An address with its prefix length, as on an interface (`198.19.0.5/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IfAddress {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl fmt::Display for IfAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// A route to add or remove: `dst/prefix_len [via G] dev IFINDEX [metric M] [src S]`, main table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    pub dst: IpAddr,
    pub prefix_len: u8,
    /// Gateway; `None` for a directly connected prefix.
    pub via: Option<IpAddr>,
    /// Output interface.
    pub ifindex: u32,
    /// Route priority; zerotier-one uses 5000 for routes with a `via` (§7.2). `None` = kernel default.
    pub metric: Option<u32>,
    /// Preferred source address (RTA_PREFSRC).
    pub src: Option<IpAddr>,
}

impl RouteSpec {
    /// `dst/prefix_len dev ifindex`, no gateway, metric or source.
    pub fn new(dst: IpAddr, prefix_len: u8, ifindex: u32) -> Self {
        RouteSpec { dst, prefix_len, via: None, ifindex, metric: None, src: None }
    }

    pub fn via(mut self, gateway: IpAddr) -> Self {
        self.via = Some(gateway);
        self
    }

    pub fn metric(mut self, metric: u32) -> Self {
        self.metric = Some(metric);
        self
    }

    pub fn src(mut self, src: IpAddr) -> Self {
        self.src = Some(src);
        self
    }
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.dst, self.prefix_len)?;
        if let Some(via) = self.via {
            write!(f, " via {via}")?;
        }
        write!(f, " dev #{}", self.ifindex)?;
        if let Some(metric) = self.metric {
            write!(f, " metric {metric}")?;
        }
        if let Some(src) = self.src {
            write!(f, " src {src}")?;
        }
        Ok(())
    }
}

/// Result of a route lookup ([`Netlink::route_get`]), like `ip route get`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Output interface index.
    pub oif: u32,
    /// Next hop, if the destination is not on a connected subnet.
    pub gateway: Option<IpAddr>,
    /// The source address the kernel would pick.
    pub prefsrc: Option<IpAddr>,
}

/// An interface ([`Netlink::link`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Hardware address; `None` for interfaces without a 6-byte one (tun, wireguard, …).
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
}

/// Which interface [`Netlink::link`] should look up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkId<'a> {
    Index(u32),
    Name(&'a str),
}

impl From<u32> for LinkId<'_> {
    fn from(index: u32) -> Self {
        LinkId::Index(index)
    }
}

impl<'a> From<&'a str> for LinkId<'a> {
    fn from(name: &'a str) -> Self {
        LinkId::Name(name)
    }
}

impl fmt::Display for LinkId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkId::Index(i) => write!(f, "ifindex {i}"),
            LinkId::Name(n) => f.write_str(n),
        }
    }
}

/// A failed request: errno plus the kernel's extended-ACK message, if it gave one.
struct Failure {
    err: io::Error,
    msg: Option<String>,
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Self {
        Failure { err, msg: None }
    }
}

impl Failure {
    fn into_error(self, what: String) -> Error {
        let what = match self.msg {
            Some(msg) => format!("{what} (kernel: {msg})"),
            None => what,
        };
        Error::from_io(what, self.err)
    }
}

/// An rtnetlink socket in the namespace of the thread that opened it.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl fmt::Debug for Netlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netlink").field("seq", &self.seq).finish_non_exhaustive()
    }
}

impl Netlink {
    /// Opens a NETLINK_ROUTE socket with extended ACKs (so kernel error messages reach ours).
    pub fn open() -> Result<Netlink> {
        let what = "open rtnetlink socket";
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| Error::from_io(what, e))?;
        socket.bind_auto().map_err(|e| Error::from_io(what, e))?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(|e| Error::from_io(what, e))?;
        // Best effort: only improves messages.
        let _ = socket.set_ext_ack(true);
        Ok(Netlink { socket, seq: 0, buf: vec![0; RECV_BUF] })
    }

    /// Adds `addr/prefix_len` to interface `ifindex`, permanent (no lifetimes). [`Error::Exists`]
    /// if that exact address is already there. IPv4 gets a broadcast address like zerotier-one's.
    pub fn add_address(&mut self, ifindex: u32, addr: IpAddr, prefix_len: u8) -> Result<()> {
        self.new_address(ifindex, addr, prefix_len, NLM_F_CREATE | NLM_F_EXCL, "add")
    }

    /// Makes `addr/prefix_len` present on `ifindex`, replacing the same IP with another prefix
    /// length (§7.2: "a same-IP/different-prefix address is replaced"). Idempotent.
    pub fn replace_address(&mut self, ifindex: u32, addr: IpAddr, prefix_len: u8) -> Result<()> {
        check_prefix(addr, prefix_len)
            .map_err(|d| Error::invalid(format!("replace address {addr}/{prefix_len}"), d))?;
        // NLM_F_REPLACE matches only the same address *and* prefix, so other prefixes go first.
        for old in self.addresses(ifindex)? {
            if old.addr == addr && old.prefix_len != prefix_len {
                match self.remove_address(ifindex, old.addr, old.prefix_len) {
                    Ok(()) | Err(Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.new_address(ifindex, addr, prefix_len, NLM_F_CREATE | NLM_F_REPLACE, "replace")
    }

    /// Removes `addr/prefix_len` from `ifindex`; [`Error::NotFound`] if it is not there.
    pub fn remove_address(&mut self, ifindex: u32, addr: IpAddr, prefix_len: u8) -> Result<()> {
        let what = |this: &mut Self| format!("remove address {addr}/{prefix_len} from {}", this.dev_label(ifindex));
        check_prefix(addr, prefix_len).map_err(|d| Error::invalid(what(self), d))?;
        let msg = address_message(ifindex, addr, prefix_len);
        match self.exchange(RouteNetlinkMessage::DelAddress(msg), NLM_F_ACK) {
            Ok(_) => Ok(()),
            Err(f) => Err(f.into_error(what(self))),
        }
    }

    /// The addresses on `ifindex`, both families, in kernel order.
    pub fn addresses(&mut self, ifindex: u32) -> Result<Vec<IfAddress>> {
        let replies = match self.exchange(RouteNetlinkMessage::GetAddress(AddressMessage::default()), NLM_F_DUMP) {
            Ok(r) => r,
            Err(f) => return Err(f.into_error(format!("list addresses of {}", self.dev_label(ifindex)))),
        };
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == ifindex => parse_address(&a),
                _ => None,
            })
            .collect())
    }

    /// Adds a route (static protocol, universe scope, main table, §7.2). [`Error::Exists`] if an
    /// equal route (same prefix, metric) is there.
    pub fn add_route(&mut self, route: &RouteSpec) -> Result<()> {
        self.new_route(route, NLM_F_CREATE | NLM_F_EXCL, "add")
    }

    /// Adds a route or replaces the one with the same prefix and metric.
    pub fn replace_route(&mut self, route: &RouteSpec) -> Result<()> {
        self.new_route(route, NLM_F_CREATE | NLM_F_REPLACE, "replace")
    }

    /// Removes a route matching `route` (prefix, device, and gateway/metric/source where given);
    /// [`Error::NotFound`] if none does.
    pub fn remove_route(&mut self, route: &RouteSpec) -> Result<()> {
        let what = |this: &mut Self| format!("remove route {}", this.route_label(route));
        check_route(route).map_err(|d| Error::invalid(what(self), d))?;
        let mut msg = route_message(route);
        // Wildcards, as `ip route del` sends them: match any protocol, scope and type.
        msg.header.protocol = RouteProtocol::Unspec;
        msg.header.scope = RouteScope::NoWhere;
        msg.header.kind = RouteType::Unspec;
        match self.exchange(RouteNetlinkMessage::DelRoute(msg), NLM_F_ACK) {
            Ok(_) => Ok(()),
            Err(f) => Err(f.into_error(what(self))),
        }
    }

    /// Looks up the route the kernel would use for `dst` (RTM_GETROUTE, like `ip route get`).
    /// [`Error::Unreachable`] if there is none.
    pub fn route_get(&mut self, dst: IpAddr) -> Result<Route> {
        self.route_get_with(dst, &[])
    }

    /// [`Netlink::route_get`] with extra selectors (RTA_OIF for a scoped IPv6 address, RTA_IP_PROTO
    /// and RTA_DPORT so policy rules on protocol and port apply).
    pub(crate) fn route_get_with(&mut self, dst: IpAddr, extra: &[RouteAttribute]) -> Result<Route> {
        let dst = dst.to_canonical();
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(dst);
        msg.header.destination_prefix_length = full_prefix(dst);
        msg.attributes.push(RouteAttribute::Destination(RouteAddress::from(dst)));
        msg.attributes.extend_from_slice(extra);
        let replies = self
            .exchange(RouteNetlinkMessage::GetRoute(msg), NLM_F_ACK)
            .map_err(|f| f.into_error(format!("route get {dst}")))?;
        let reply = replies
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })
            .ok_or_else(|| Error::Io {
                what: format!("route get {dst}"),
                source: io::Error::new(io::ErrorKind::InvalidData, "no route in the kernel's reply"),
            })?;
        let mut route = Route { oif: 0, gateway: None, prefsrc: None };
        for attr in &reply.attributes {
            match attr {
                RouteAttribute::Oif(i) => route.oif = *i,
                RouteAttribute::Gateway(a) => route.gateway = route_ip(a),
                RouteAttribute::PrefSource(a) => route.prefsrc = route_ip(a),
                _ => {}
            }
        }
        if matches!(reply.header.kind, RouteType::Unreachable | RouteType::BlackHole | RouteType::Prohibit)
            || route.oif == 0
        {
            return Err(Error::Unreachable {
                what: format!("route get {dst} ({:?} route)", reply.header.kind),
                source: None,
            });
        }
        Ok(route)
    }

    /// The link-layer address of neighbour `ip` on `ifindex`, if the kernel has a usable entry
    /// (REACHABLE, STALE, DELAY, PROBE, PERMANENT or NOARP). `None` when there is no entry, or it is
    /// INCOMPLETE or FAILED: the kernel is still resolving it, or gave up. Does not trigger
    /// resolution.
    pub fn neighbour(&mut self, ifindex: u32, ip: IpAddr) -> Result<Option<[u8; 6]>> {
        let ip = ip.to_canonical();
        let mut msg = NeighbourMessage::default();
        msg.header.family = family(ip);
        msg.header.ifindex = ifindex;
        msg.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
        let replies = match self.exchange(RouteNetlinkMessage::GetNeighbour(msg.clone()), NLM_F_ACK) {
            Ok(r) => r,
            Err(f) if f.err.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            // Kernels before 5.0 have no single-entry get: dump the table and filter.
            Err(f) if matches!(f.err.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
                let mut dump = NeighbourMessage::default();
                dump.header.family = family(ip);
                match self.exchange(RouteNetlinkMessage::GetNeighbour(dump), NLM_F_DUMP) {
                    Ok(r) => r,
                    Err(f) => return Err(f.into_error(format!("neighbour {ip} on {}", self.dev_label(ifindex)))),
                }
            }
            Err(f) => return Err(f.into_error(format!("neighbour {ip} on {}", self.dev_label(ifindex)))),
        };
        Ok(replies.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewNeighbour(n) if n.header.ifindex == ifindex => usable_neighbour(&n, ip),
            _ => None,
        }))
    }

    /// Index, name, MAC and MTU of an interface. [`Error::NoSuchDevice`] if it does not exist.
    pub fn link<'a>(&mut self, id: impl Into<LinkId<'a>>) -> Result<Link> {
        let id = id.into();
        let mut msg = LinkMessage::default();
        match id {
            LinkId::Index(i) => msg.header.index = i,
            LinkId::Name(n) => {
                validate_ifname(n, false).map_err(|d| Error::invalid(format!("look up interface {n:?}"), d))?;
                msg.attributes.push(LinkAttribute::IfName(n.to_string()));
            }
        }
        let replies = self
            .exchange(RouteNetlinkMessage::GetLink(msg), NLM_F_ACK)
            .map_err(|f| f.into_error(format!("look up interface {id}")))?;
        replies
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(parse_link(&l)),
                _ => None,
            })
            .ok_or_else(|| Error::NoSuchDevice { what: format!("look up interface {id}"), source: None })
    }

    fn new_address(&mut self, ifindex: u32, addr: IpAddr, prefix_len: u8, flags: u16, verb: &str) -> Result<()> {
        let what = |this: &mut Self| format!("{verb} address {addr}/{prefix_len} on {}", this.dev_label(ifindex));
        check_prefix(addr, prefix_len).map_err(|d| Error::invalid(what(self), d))?;
        let mut msg = address_message(ifindex, addr, prefix_len);
        if let IpAddr::V4(a) = addr
            && prefix_len < 31
        {
            let host_mask = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
            msg.attributes.push(AddressAttribute::Broadcast(Ipv4Addr::from(u32::from(a) | host_mask)));
        }
        match self.exchange(RouteNetlinkMessage::NewAddress(msg), NLM_F_ACK | flags) {
            Ok(_) => Ok(()),
            Err(f) => Err(f.into_error(what(self))),
        }
    }

    fn new_route(&mut self, route: &RouteSpec, flags: u16, verb: &str) -> Result<()> {
        let what = |this: &mut Self| format!("{verb} route {}", this.route_label(route));
        check_route(route).map_err(|d| Error::invalid(what(self), d))?;
        match self.exchange(RouteNetlinkMessage::NewRoute(route_message(route)), NLM_F_ACK | flags) {
            Ok(_) => Ok(()),
            Err(f) => Err(f.into_error(what(self))),
        }
    }

    /// `zt0 (ifindex 7)` for messages; the bare index if the lookup fails.
    fn dev_label(&mut self, ifindex: u32) -> String {
        match self.link(ifindex) {
            Ok(link) => format!("{} (ifindex {ifindex})", link.name),
            Err(_) => format!("ifindex {ifindex}"),
        }
    }

    fn route_label(&mut self, route: &RouteSpec) -> String {
        route.to_string().replace(&format!("dev #{}", route.ifindex), &format!("dev {}", self.dev_label(route.ifindex)))
    }

    /// Sends one request and collects the replies with its sequence number, until the ACK (or
    /// error) for a plain request, or NLMSG_DONE for a dump.
    fn exchange(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        let sent = self.socket.send(&out, 0)?;
        if sent != out.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "netlink request cut short").into());
        }
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        loop {
            let n = self.socket.recv(&mut &mut self.buf[..], libc::MSG_TRUNC)?;
            if n > self.buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("netlink reply of {n} bytes truncated"),
                )
                .into());
            }
            let mut off = 0;
            while off < n {
                let nb = NetlinkBuffer::new_checked(&self.buf[off..n])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = nb.length() as usize;
                let (msg_seq, msg_flags) = (nb.sequence_number(), nb.flags());
                let bytes = &self.buf[off..off + len];
                off += len.next_multiple_of(4);
                if msg_seq != seq {
                    // A late reply to an earlier request; not ours.
                    continue;
                }
                let parsed = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
                    Ok(m) => m,
                    Err(e) if dump => {
                        // One odd entry (a new attribute layout, say) should not hide the others.
                        log::debug!("skipping undecodable netlink dump entry: {e}");
                        continue;
                    }
                    Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()).into()),
                };
                match parsed.payload {
                    NetlinkPayload::Done(done) => {
                        if done.code < 0 {
                            return Err(io::Error::from_raw_os_error(-done.code).into());
                        }
                        return Ok(replies);
                    }
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(replies),
                            Some(_) => Err(Failure { err: e.to_io(), msg: ext_ack_message(msg_flags, &e.header) }),
                        };
                    }
                    NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                    _ => {}
                }
            }
        }
    }
}

/// NLMSGERR_ATTR_MSG from an error message's payload (after the errno): the original request
/// (only its header if NLM_F_CAPPED), then attributes if NLM_F_ACK_TLVS.
fn ext_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    const NLMSGERR_ATTR_MSG: u16 = 1;
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < 16 {
        return None;
    }
    let request_len =
        if flags & NLM_F_CAPPED != 0 { 16 } else { u32::from_ne_bytes(payload[..4].try_into().ok()?) as usize };
    let mut tlvs = payload.get(request_len.next_multiple_of(4)..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            break;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|&b| b == 0).next().unwrap_or(text);
            return Some(String::from_utf8_lossy(text).into_owned()).filter(|s| !s.is_empty());
        }
        tlvs = tlvs.get(len.next_multiple_of(4)..).unwrap_or(&[]);
    }
    None
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn full_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn check_prefix(addr: IpAddr, prefix_len: u8) -> std::result::Result<(), String> {
    if prefix_len > full_prefix(addr) {
        return Err(format!("prefix length {prefix_len} > {}", full_prefix(addr)));
    }
    Ok(())
}

fn check_route(route: &RouteSpec) -> std::result::Result<(), String> {
    check_prefix(route.dst, route.prefix_len)?;
    for (label, other) in [("via", route.via), ("src", route.src)] {
        if let Some(other) = other
            && other.is_ipv4() != route.dst.is_ipv4()
        {
            return Err(format!("{label} {other} is not of the destination's family"));
        }
    }
    if route.ifindex == 0 {
        return Err("no output interface".into());
    }
    Ok(())
}

/// IFA_LOCAL and IFA_ADDRESS both set to the address, as `ip addr add` does without a peer.
fn address_message(ifindex: u32, addr: IpAddr, prefix_len: u8) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family(addr);
    msg.header.prefix_len = prefix_len;
    msg.header.index = ifindex;
    msg.attributes.push(AddressAttribute::Local(addr));
    msg.attributes.push(AddressAttribute::Address(addr));
    msg
}

fn parse_address(msg: &AddressMessage) -> Option<IfAddress> {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point links
    // and the only one IPv6 reports otherwise.
    let mut local = None;
    let mut address = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            _ => {}
        }
    }
    local.or(address).map(|addr| IfAddress { addr, prefix_len: msg.header.prefix_len })
}

fn route_message(route: &RouteSpec) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family(route.dst);
    msg.header.destination_prefix_length = route.prefix_len;
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Static;
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = RouteType::Unicast;
    msg.attributes.push(RouteAttribute::Destination(RouteAddress::from(masked(route.dst, route.prefix_len))));
    if let Some(via) = route.via {
        msg.attributes.push(RouteAttribute::Gateway(RouteAddress::from(via)));
    }
    msg.attributes.push(RouteAttribute::Oif(route.ifindex));
    if let Some(metric) = route.metric {
        msg.attributes.push(RouteAttribute::Priority(metric));
    }
    if let Some(src) = route.src {
        msg.attributes.push(RouteAttribute::PrefSource(RouteAddress::from(src)));
    }
    msg
}

/// `ip` with the host bits cleared: the kernel rejects a route whose destination has them set.
pub fn masked(ip: IpAddr, prefix_len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix_len.min(32))).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix_len.min(128))).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

fn route_ip(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn usable_neighbour(msg: &NeighbourMessage, ip: IpAddr) -> Option<[u8; 6]> {
    let usable = matches!(
        msg.header.state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
            | NeighbourState::Noarp
    );
    let mut dst = None;
    let mut lladdr = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => dst = Some(IpAddr::V4(*a)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => dst = Some(IpAddr::V6(*a)),
            NeighbourAttribute::LinkLayerAddress(l) => lladdr = <[u8; 6]>::try_from(l.as_slice()).ok(),
            _ => {}
        }
    }
    if usable && dst == Some(ip) { lladdr } else { None }
}

fn parse_link(msg: &LinkMessage) -> Link {
    let mut link = Link { index: msg.header.index, name: String::new(), mac: None, mtu: 0 };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(a) => link.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            _ => {}
        }
    }
    link
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (ifindex {}, mtu {}", self.name, self.index, self.mtu)?;
        if let Some(mac) = &self.mac {
            write!(f, ", {}", format_mac(mac))?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    #[test]
    fn masks_host_bits() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(masked(ip("198.19.0.5"), 24), ip("198.19.0.0"));
        assert_eq!(masked(ip("198.19.0.5"), 0), ip("0.0.0.0"));
        assert_eq!(masked(ip("198.19.0.5"), 32), ip("198.19.0.5"));
        assert_eq!(masked(ip("2001:2:0:1::5"), 48), ip("2001:2::"));
        assert_eq!(masked(ip("2001:2::5"), 0), ip("::"));
        assert_eq!(masked(ip("2001:2::5"), 128), ip("2001:2::5"));
    }

    #[test]
    fn route_checks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(check_route(&RouteSpec::new(ip("198.18.1.0"), 24, 3).via(ip("198.19.0.1")).metric(5000)).is_ok());
        assert!(check_route(&RouteSpec::new(ip("198.18.1.0"), 33, 3)).is_err());
        assert!(check_route(&RouteSpec::new(ip("198.18.1.0"), 24, 3).via(ip("2001:2::1"))).is_err());
        assert!(check_route(&RouteSpec::new(ip("2001:2::"), 48, 3).src(ip("198.19.0.5"))).is_err());
        assert!(check_route(&RouteSpec::new(ip("198.18.1.0"), 24, 0)).is_err());
        assert_eq!(
            RouteSpec::new(ip("198.18.1.0"), 24, 3)
                .via(ip("198.19.0.1"))
                .metric(5000)
                .src(ip("198.19.0.5"))
                .to_string(),
            "198.18.1.0/24 via 198.19.0.1 dev #3 metric 5000 src 198.19.0.5"
        );
    }

    #[test]
    fn route_message_layout() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Host bits in the destination are cleared; gateway, oif, metric, prefsrc all present.
        let msg = route_message(&RouteSpec::new(ip("198.18.1.7"), 24, 3).via(ip("198.19.0.1")).metric(5000));
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        assert_eq!(&buf[..8], &[libc::AF_INET as u8, 24, 0, 0, 254, 4, 0, 1]);
        assert!(
            msg.attributes.contains(&RouteAttribute::Destination(RouteAddress::Inet("198.18.1.0".parse().unwrap())))
        );
        assert!(msg.attributes.contains(&RouteAttribute::Gateway(RouteAddress::Inet("198.19.0.1".parse().unwrap()))));
        assert!(msg.attributes.contains(&RouteAttribute::Oif(3)));
        assert!(msg.attributes.contains(&RouteAttribute::Priority(5000)));
        // IPv6 takes the same shape.
        let msg = route_message(&RouteSpec::new(ip("2001:2:0:1::5"), 64, 3).src(ip("2001:2::1")));
        assert_eq!(msg.header.address_family, AddressFamily::Inet6);
        assert!(
            msg.attributes.contains(&RouteAttribute::Destination(RouteAddress::Inet6("2001:2:0:1::".parse().unwrap())))
        );
        assert!(
            msg.attributes.contains(&RouteAttribute::PrefSource(RouteAddress::Inet6("2001:2::1".parse().unwrap())))
        );
    }

    #[test]
    fn address_parsing_prefers_local() {
        let mut msg = address_message(4, "198.19.0.5".parse().unwrap(), 24);
        assert_eq!(parse_address(&msg), Some(IfAddress { addr: "198.19.0.5".parse().unwrap(), prefix_len: 24 }));
        // Point-to-point: IFA_ADDRESS is the peer.
        msg.attributes = vec![
            AddressAttribute::Address("198.19.0.9".parse().unwrap()),
            AddressAttribute::Local("198.19.0.5".parse().unwrap()),
        ];
        assert_eq!(parse_address(&msg).unwrap().addr, "198.19.0.5".parse::<IpAddr>().unwrap());
        msg.attributes = vec![AddressAttribute::Address("2001:2::5".parse().unwrap())];
        assert_eq!(parse_address(&msg).unwrap().to_string(), "2001:2::5/24");
    }

    #[test]
    fn neighbour_states() {
        let ip: IpAddr = "198.18.0.2".parse().unwrap();
        let mut msg = NeighbourMessage::default();
        msg.header.ifindex = 2;
        msg.attributes = vec![
            NeighbourAttribute::Destination(NeighbourAddress::Inet("198.18.0.2".parse().unwrap())),
            NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 0, 9]),
        ];
        for (state, ok) in [
            (NeighbourState::Reachable, true),
            (NeighbourState::Stale, true),
            (NeighbourState::Delay, true),
            (NeighbourState::Probe, true),
            (NeighbourState::Permanent, true),
            (NeighbourState::Noarp, true),
            (NeighbourState::Incomplete, false),
            (NeighbourState::Failed, false),
            (NeighbourState::None, false),
        ] {
            msg.header.state = state;
            assert_eq!(usable_neighbour(&msg, ip).is_some(), ok, "{state:?}");
        }
        msg.header.state = NeighbourState::Reachable;
        assert_eq!(usable_neighbour(&msg, "198.18.0.3".parse().unwrap()), None);
    }

    #[test]
    fn ext_ack_text() {
        // Error payload: original header (capped) + NLMSGERR_ATTR_MSG "Bad prefix\0".
        let mut payload = vec![0u8; 16];
        payload[..4].copy_from_slice(&40u32.to_ne_bytes());
        let text = b"Bad prefix\0";
        let len = (4 + text.len()) as u16;
        payload.extend_from_slice(&len.to_ne_bytes());
        payload.extend_from_slice(&1u16.to_ne_bytes());
        payload.extend_from_slice(text);
        assert_eq!(ext_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &payload).as_deref(), Some("Bad prefix"));
        assert_eq!(ext_ack_message(NLM_F_CAPPED, &payload), None);
        assert_eq!(ext_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &payload[..10]), None);
    }
}
