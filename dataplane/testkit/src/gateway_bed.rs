//! A gateway bed: two gateways each bridging a LAN into one ZeroTier network (zerotier-vl2.md
//! §4.4: active bridges), a zerotier-one member, and a zerotier-one moon + controller, all on one
//! WAN switch.
//!
//! ```text
//!                        [switch] br0  WAN 198.18.0.0/24
//!            sw1 /         sw2 |            sw3 |          \ sw4
//!     eth0 [moon]        eth0 [g1]        eth0 [g2]        eth0 [zt]
//!     198.18.0.1         198.18.0.2       198.18.0.3       198.18.0.4     overlay 198.19.0.11
//!     controller         lan0 (no IP)     lan0 (no IP)
//!                          |  veth          |  veth
//!                     eth0 [lan1]      eth0 [lan2]
//!                     198.19.0.101     198.19.0.102       (bridged onto the network at layer 2)
//! ```
//!
//! The network is private, routes 198.19.0.0/24 and hands out pool addresses only from
//! 198.19.0.10-99, so the LAN hosts' static addresses never collide with a member's. Both
//! gateways are authorized before anyone joins, with `activeBridge: true` and
//! `noAutoAssignIps: true` (a gateway has no address on the network), so every member's first
//! config already names both bridges.
//!
//! A gateway runs one of two systems ([`GatewaySystem`]):
//! * `ZeroTier`: zerotier-one joins the network and its tap goes into a Linux bridge `br0` with
//!   `lan0`, as operators set it up (§7.1: the tap takes frames for any destination once it is a
//!   bridge port). The bridge does no multicast snooping (multicast crosses like broadcast) and
//!   no netfilter; `lan0`, the tap and `br0` have IPv6 off, so the gateway has no address on the
//!   LAN side and zerotier-one binds nothing there.
//! * `Ztplane`: `ztplane node --iface eth0 --bridge NWID=lan0 --join NWID --cores 0,1`
//!   ([`ztplane_gateway_args`]), `lan0` handed to it as is (IPv6 off, no address).
//!
//! Every LAN host sends on its veth without checksum offload (no TSO either), as a frame on a
//! real wire is complete, and has GRO on, so frames a kernel-bypass gateway redirects into the
//! veth are not dropped (platform.md). Hosts answer broadcast pings
//! (`icmp_echo_ignore_broadcasts=0`) and have their subnet broadcast address set.
use crate::lan::Lan;
use crate::overlay::Process;
use crate::zerotier::{Identity, Moon, NodeConfig, TempDir, ZeroTierNode, nwid_hex, wait_until};
use crate::ztplane::ZtplaneNode;
use crate::{Netns, Topology, is_benchmark_addr};
use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which implementation runs on the gateways: the same enum as the overlay bed's members.
pub use crate::overlay::Kind as GatewaySystem;

/// The gateways' LAN interface: a plain veth end the gateway owns, without any address.
pub const LAN_IFACE: &str = "lan0";
/// The LAN hosts' interface.
pub const HOST_IFACE: &str = "eth0";
/// The zerotier-one member's fixed address on the network.
pub const ZT_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 11);
/// The network's subnet broadcast address.
pub const OVERLAY_BROADCAST: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 255);
/// How long a gateway or member may take to have its network up.
pub const JOIN: Duration = Duration::from_secs(60);
/// Pool addresses stop below the LAN hosts' (198.19.0.101 ...).
const POOL_START: &str = "198.19.0.10";
const POOL_END: &str = "198.19.0.99";
/// EtherType of the flood frames: IEEE 802 local experimental, which no host stack handles.
pub const FLOOD_ETHERTYPE: u16 = 0x88b5;

/// A host on a gateway's LAN, bridged onto the network.
#[derive(Clone, Debug)]
pub struct BridgedHost {
    /// `lan1` behind `g1`, `lan2` behind `g2`.
    pub name: String,
    pub netns: Netns,
    /// Static address in the network's subnet (198.19.0.101 behind g1, .102 behind g2).
    pub ip: Ipv4Addr,
    /// MAC of its [`HOST_IFACE`].
    pub mac: String,
}

/// One gateway: its namespace on the WAN, its process and the host on its LAN.
pub struct Gateway {
    /// `g1` or `g2`.
    pub name: String,
    pub netns: Netns,
    /// Its ZeroTier address.
    pub address: String,
    pub process: Process,
    pub lan: BridgedHost,
}

/// The bed. Fields drop in order: processes first, then the namespaces, then the files.
pub struct GatewayBed {
    pub system: GatewaySystem,
    pub gateways: Vec<Gateway>,
    /// The zerotier-one member on the WAN, [`ZT_IP`] on the network.
    pub zt: ZeroTierNode,
    pub controller: ZeroTierNode,
    pub moon: Moon,
    pub nwid: u64,
    pub wan: Lan,
    /// ztplane gateways' homes.
    _homes: TempDir,
    // Last: the namespaces go after everything running in them.
    _topology: Topology,
}

impl GatewayBed {
    /// Builds the WAN (moon, g1, g2, zt) and the two LANs with 2-queue veths, starts the moon +
    /// controller, creates the network, authorizes both gateways as active bridges and `zt` as
    /// [`ZT_IP`], starts them and waits until every gateway has the network up as a bridge and
    /// `zt` has its address. `zerotier` is the reference binary, `ztplane` this build's.
    pub fn start(system: GatewaySystem, zerotier: &Path, ztplane: &Path) -> Result<GatewayBed> {
        let homes = TempDir::new("gateway")?;
        let mut topology = Topology::new()?;
        let wan = Lan::with_queues(&mut topology, &["moon", "g1", "g2", "zt"], 2)?;
        let mut lans = Vec::new();
        for (gateway, host, ip) in [("g1", "lan1", 101), ("g2", "lan2", 102)] {
            let lan = bridged_host(&mut topology, &wan.host(gateway)?.netns, host, Ipv4Addr::new(198, 19, 0, ip))?;
            lans.push((gateway, lan));
        }

        let moon = Moon::prepare(zerotier, wan.host("moon")?.ip)?;
        let controller = ZeroTierNode::start(zerotier, &wan.host("moon")?.netns, NodeConfig::moon(&moon))?;
        let nwid = controller.create_network(&json!({
            "name": "gateways",
            "private": true,
            "v4AssignMode": { "zt": true },
            "ipAssignmentPools": [{ "ipRangeStart": POOL_START, "ipRangeEnd": POOL_END }],
            "routes": [{ "target": crate::zerotier::OVERLAY_SUBNET }],
        }))?;

        // Everyone is authorized before anyone asks for a config.
        let mut identities = Vec::new();
        for (gateway, _) in &lans {
            let identity = Identity::generate(zerotier)?;
            let body = json!({ "authorized": true, "activeBridge": true, "noAutoAssignIps": true });
            let member = controller.member_update(nwid, identity.address(), &body)?;
            ensure!(member["activeBridge"] == true, "{gateway} is not an active bridge: {member}");
            identities.push(identity);
        }
        let zt_identity = Identity::generate(zerotier)?;
        controller.authorize(nwid, zt_identity.address(), Some(&ZT_IP.to_string()))?;

        let mut gateways = Vec::new();
        for ((name, lan), identity) in lans.into_iter().zip(identities) {
            let netns = wan.host(name)?.netns.clone();
            let process = match system {
                GatewaySystem::ZeroTier => {
                    let config = NodeConfig { identity: Some(identity.clone()), ..NodeConfig::member(&moon) };
                    let node = ZeroTierNode::start(zerotier, &netns, config)?;
                    node.join(nwid)?;
                    Process::ZeroTier(node)
                }
                GatewaySystem::Ztplane => {
                    let home = ztplane_home(homes.path(), name, &identity, &moon)?;
                    let args = ztplane_gateway_args(nwid);
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    Process::Ztplane(ZtplaneNode::start(ztplane, &netns, &home, &["eth0"], &args)?)
                }
            };
            let address = identity.address().to_string();
            gateways.push(Gateway { name: name.to_string(), netns, address, process, lan });
        }
        let zt_config = NodeConfig { identity: Some(zt_identity), ..NodeConfig::member(&moon) };
        let zt = ZeroTierNode::start(zerotier, &wan.host("zt")?.netns, zt_config)?;
        zt.join(nwid)?;

        let bed = GatewayBed { system, gateways, zt, controller, moon, nwid, wan, _homes: homes, _topology: topology };
        for gateway in &bed.gateways {
            let network = bed.wait_bridging(gateway).with_context(|| bed.logs())?;
            if let Process::ZeroTier(_) = gateway.process {
                let tap = network["portDeviceName"].as_str().context("no tap")?;
                bridge_tap(&gateway.netns, tap)?;
            }
        }
        let got = bed.zt.wait_for_ip(nwid, JOIN)?;
        ensure!(got == ZT_IP.to_string(), "zt got {got}, not {ZT_IP}");
        Ok(bed)
    }

    pub fn gateway(&self, name: &str) -> Result<&Gateway> {
        self.gateways.iter().find(|g| g.name == name).with_context(|| format!("no gateway {name:?}"))
    }

    /// The host on `gateway`'s LAN.
    pub fn lan(&self, gateway: &str) -> Result<&BridgedHost> {
        Ok(&self.gateway(gateway)?.lan)
    }

    /// The zerotier-one member's namespace.
    pub fn zt_netns(&self) -> &Netns {
        self.zt.netns()
    }

    /// Waits until `gateway` has the network `OK` as an active bridge (`bridge: true`) without
    /// any assigned address; returns its network JSON.
    fn wait_bridging(&self, gateway: &Gateway) -> Result<Value> {
        let what = format!("{} bridging network {}", gateway.name, nwid_hex(self.nwid));
        let network = wait_until(&what, JOIN, || {
            let network = match &gateway.process {
                Process::ZeroTier(node) => node.network(self.nwid),
                Process::Ztplane(node) => node.network(self.nwid),
            }
            .map_err(|e| format!("{e:#}"))?;
            let has_port = match gateway.process {
                Process::ZeroTier(_) => network["portDeviceName"].as_str().is_some_and(|t| !t.is_empty()),
                Process::Ztplane(_) => true,
            };
            if network["status"] == "OK" && network["bridge"] == true && has_port {
                Ok(network)
            } else {
                Err(format!(
                    "status={} bridge={} portDeviceName={}",
                    network["status"], network["bridge"], network["portDeviceName"]
                ))
            }
        })?;
        let assigned = network["assignedAddresses"].as_array().map_or(0, Vec::len);
        ensure!(assigned == 0, "{} has addresses on the network, a gateway should have none: {network}", gateway.name);
        Ok(network)
    }

    /// What to quote when a check fails: per gateway its `lan0` counters, network status and
    /// log tail.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for gateway in &self.gateways {
            let counter =
                |c| gateway.netns.link_counter(LAN_IFACE, c).map_or_else(|e| format!("{e:#}"), |n| n.to_string());
            let (network, log, state) = match &gateway.process {
                Process::ZeroTier(node) => (node.network(self.nwid), tail(&node.log(), 30), String::new()),
                Process::Ztplane(node) => (node.network(self.nwid), node.log_tail(30), ztplane_state(node)),
            };
            let network = network.map_or_else(
                |e| format!("{e:#}"),
                |n| {
                    format!(
                        "status={} bridge={} port={} lan={}",
                        n["status"], n["bridge"], n["portDeviceName"], n["ztplane"]["lan"]
                    )
                },
            );
            let log = format!("{state}{log}");
            out.push_str(&format!(
                "--- {} ({:?} {}): lan0 rx {} tx {} packets; network {network}; log:\n{log}\n",
                gateway.name,
                self.system,
                gateway.address,
                counter("rx_packets"),
                counter("tx_packets"),
            ));
        }
        out
    }
}

/// What a ztplane gateway knows that explains a failure: its peers and their paths, and the
/// node's and workers' counters (drops, punts).
fn ztplane_state(node: &crate::ztplane::ZtplaneNode) -> String {
    let peers = node.request("GET", "/peer").map_or_else(
        |e| format!("{e:#}"),
        |v| {
            let list = v.as_array().cloned().unwrap_or_default();
            list.iter()
                .map(|p| {
                    let paths: Vec<String> = p["paths"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|q| {
                                    format!(
                                        "{}{}",
                                        q["address"].as_str().unwrap_or("?"),
                                        if q["active"] == true { "" } else { "(inactive)" }
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    format!(
                        "{} {} [{}]",
                        p["address"].as_str().unwrap_or("?"),
                        p["role"].as_str().unwrap_or("?"),
                        paths.join(", ")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        },
    );
    let stats = node.request("GET", "/stats").map_or_else(|e| format!("{e:#}"), |v| v.to_string());
    format!("peers: {peers}\nstats: {stats}\n")
}

/// The arguments after `ztplane node --home HOME --iface eth0` that make a gateway of `nwid`.
pub fn ztplane_gateway_args(nwid: u64) -> Vec<String> {
    let nwid = nwid_hex(nwid);
    ["--bridge", &format!("{nwid}={LAN_IFACE}"), "--join", &nwid, "--cores", "0,1"].map(str::to_string).to_vec()
}

/// A ztplane home `dir/name` holding `identity` (secret mode 0600) and `moon`.
pub fn ztplane_home(dir: &Path, name: &str, identity: &Identity, moon: &Moon) -> Result<PathBuf> {
    let home = dir.join(name);
    std::fs::create_dir_all(home.join("moons.d"))?;
    let secret = home.join("identity.secret");
    std::fs::write(&secret, &identity.secret)?;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(home.join("identity.public"), &identity.public)?;
    std::fs::write(home.join("moons.d").join(&moon.file_name), &moon.bytes)?;
    Ok(home)
}

/// Namespace `name` on a veth to `gateway`'s [`LAN_IFACE`], as `ip`/24 (see the module doc).
pub fn bridged_host(topology: &mut Topology, gateway: &Netns, name: &str, ip: Ipv4Addr) -> Result<BridgedHost> {
    ensure!(is_benchmark_addr(ip), "{ip} is outside 198.18.0.0/15: tests use only benchmark addresses");
    let netns = topology.netns(name)?;
    topology.veth(gateway, LAN_IFACE, &netns, HOST_IFACE, 2)?;
    sysctl(gateway, &format!("net.ipv6.conf.{LAN_IFACE}.disable_ipv6"), "1")?;
    // A fixed MAC that can never be a ZeroTier MAC: a random one has the network's first octet
    // about one time in 64, and a gateway then takes it for a member's own MAC (zerotier-one
    // does the same, VL1 §10) and looks up a ZeroTier address that does not exist.
    let [a, b, c, d] = ip.octets();
    let mac = format!("52:54:{a:02x}:{b:02x}:{c:02x}:{d:02x}");
    netns.ip(&["link", "set", HOST_IFACE, "address", &mac])?;
    netns.ip(&["addr", "add", &format!("{ip}/24"), "brd", "+", "dev", HOST_IFACE])?;
    netns.ethtool_k(HOST_IFACE, "tx", false)?;
    netns.ethtool_k(HOST_IFACE, "gro", true)?;
    sysctl(&netns, "net.ipv4.icmp_echo_ignore_broadcasts", "0")?;
    let mac = netns.mac(HOST_IFACE)?;
    Ok(BridgedHost { name: name.to_string(), netns, ip, mac })
}

/// zerotier-one's way: bridge `br0` over its tap and `lan0` (see the module doc).
fn bridge_tap(gateway: &Netns, tap: &str) -> Result<()> {
    gateway.bridge("br0", &[tap, LAN_IFACE])?;
    gateway.ip(&["link", "set", "br0", "type", "bridge", "mcast_snooping", "0"])?;
    for ifname in [tap, "br0"] {
        sysctl(gateway, &format!("net.ipv6.conf.{ifname}.disable_ipv6"), "1")?;
    }
    // With br_netfilter loaded (docker loads it) bridged frames would also cross iptables.
    for family in ["iptables", "ip6tables", "arptables"] {
        let key = format!("net.bridge.bridge-nf-call-{family}");
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        if gateway.run(move || Path::new(&path).exists())? {
            sysctl(gateway, &key, "0")?;
        }
    }
    Ok(())
}

fn sysctl(netns: &Netns, key: &str, value: &str) -> Result<()> {
    netns.exec("sysctl", &["-q", "-w", &format!("{key}={value}")])?;
    Ok(())
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The link-layer address `netns` has for `ip` on `ifname` (`ip neigh`), if any entry resolved.
pub fn neighbour_mac(netns: &Netns, ifname: &str, ip: &str) -> Result<Option<String>> {
    let out = netns.ip(&["neigh", "show", "to", ip, "dev", ifname])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mac = text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        words.by_ref().find(|w| *w == "lladdr")?;
        words.next().map(str::to_string)
    });
    Ok(mac)
}

/// The IPv6 link-local address of `ifname` once duplicate address detection is over.
pub fn link_local(netns: &Netns, ifname: &str) -> Result<String> {
    wait_until(&format!("a usable link-local address on {ifname} in {}", netns.name), Duration::from_secs(10), || {
        let out = netns.ip(&["-6", "-o", "addr", "show", "dev", ifname, "scope", "link"]).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // "2: eth0    inet6 fe80::.../64 scope link \       valid_lft forever ..."
        let line = text.lines().find(|l| l.contains("inet6 fe80:")).ok_or_else(|| text.clone())?;
        if line.contains("tentative") {
            return Err(line.to_string());
        }
        let cidr = line.split_whitespace().skip_while(|w| *w != "inet6").nth(1).ok_or_else(|| line.to_string())?;
        Ok(cidr.split('/').next().unwrap_or(cidr).to_string())
    })
}

/// Who answers `count` broadcast pings (`ping -b`) from `from` to `broadcast`: the addresses that
/// replied, the sender itself included (the kernel loops a broadcast back).
pub fn broadcast_responders(from: &Netns, broadcast: Ipv4Addr, count: u32) -> Result<BTreeSet<Ipv4Addr>> {
    ensure!(is_benchmark_addr(broadcast), "refusing to ping {broadcast}: outside 198.18.0.0/15");
    let out = from
        .command("ping")
        .args(["-n", "-b", "-c", &count.to_string(), "-i", "0.2", "-W", "2", &broadcast.to_string()])
        .output()
        .context("ping -b")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "64 bytes from 198.19.0.102: icmp_seq=1 ttl=64 time=0.9 ms"
    Ok(text.lines().filter_map(|l| l.split_once(" bytes from ")?.1.split(':').next()?.parse().ok()).collect())
}

/// `count` Ethernet frames to `dst` of [`FLOOD_ETHERTYPE`], each from its own source MAC: unicast,
/// locally administered, all distinct (a bijection of the frame number, keyed by `seed`), as a
/// MAC flooding attack sends them. 60 bytes each, the frame number in the payload.
pub fn random_source_frames(dst: [u8; 6], count: usize, seed: u64) -> Vec<Vec<u8>> {
    const MASK: u64 = (1 << 40) - 1;
    let key = splitmix64(seed) & MASK;
    (0..count as u64)
        .map(|n| {
            // An odd multiplier and a XOR are both bijections modulo 2^40.
            let low = (n.wrapping_mul(0x9e37_79b9_7f4b) ^ key) & MASK;
            let mut frame = vec![0u8; 60];
            frame[..6].copy_from_slice(&dst);
            frame[6] = 0x02;
            frame[7..12].copy_from_slice(&low.to_be_bytes()[3..]);
            frame[12..14].copy_from_slice(&FLOOD_ETHERTYPE.to_be_bytes());
            frame[14..22].copy_from_slice(&n.to_be_bytes());
            frame
        })
        .collect()
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A MAC address as `ip` prints it, as bytes.
pub fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let parts: Vec<u8> = text.split(':').map(|p| u8::from_str_radix(p, 16)).collect::<Result<_, _>>()?;
    match <[u8; 6]>::try_from(parts) {
        Ok(mac) => Ok(mac),
        Err(_) => bail!("bad MAC {text:?}"),
    }
}

/// Prints how long the steps of a test took, on stderr (`--nocapture` shows it).
pub struct Steps(Instant);

impl Steps {
    pub fn start() -> Steps {
        Steps(Instant::now())
    }

    pub fn done(&self, what: &str) {
        eprintln!("[{:6.2} s] {what}", self.0.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_sources_are_distinct_unicast_and_locally_administered() {
        let dst = [0x02, 1, 2, 3, 4, 5];
        let frames = random_source_frames(dst, 50_000, 7);
        let sources: BTreeSet<[u8; 6]> = frames.iter().map(|f| f[6..12].try_into().unwrap()).collect();
        assert_eq!(sources.len(), frames.len());
        assert!(sources.iter().all(|s| s[0] == 0x02));
        assert!(frames.iter().all(|f| f.len() == 60 && f[..6] == dst && f[12..14] == [0x88, 0xb5]));
        assert_ne!(random_source_frames(dst, 1, 8)[0], frames[0], "the seed picks the MACs");
    }

    #[test]
    fn ztplane_gateway_command_line() {
        assert_eq!(
            ztplane_gateway_args(0x2c80d4374849700f).join(" "),
            "--bridge 2c80d4374849700f=lan0 --join 2c80d4374849700f --cores 0,1"
        );
    }

    #[test]
    fn macs_parse() {
        assert_eq!(parse_mac("02:0a:ff:00:01:10").unwrap(), [2, 10, 255, 0, 1, 16]);
        assert!(parse_mac("02:0a:ff:00:01").is_err());
        assert!(parse_mac("zz:0a:ff:00:01:10").is_err());
    }
}
