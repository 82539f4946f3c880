//! An overlay bed: ztplane nodes and zerotier-one members on one ZeroTier network, in namespaces
//! on one switch. The moon and controller is zerotier-one (`../shared/ref` or a given binary).
//!
//! ```text
//!   [moon]     zerotier-one moon + controller   198.18.0.1
//!   [members]  ztplane or zerotier-one          198.18.0.2 …   overlay 198.19.0.21 …
//! ```
//! The `cargo xtask run` demo and `cargo xtask bench overlay` measure on it, so both compare
//! the two implementations on exactly the same topology in the same run.
use crate::Netns;
use crate::Topology;
use crate::lan::Lan;
use crate::zerotier::{Moon, NodeConfig, TempDir, ZeroTierNode, wait_until};
use crate::ztplane::ZtplaneNode;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::time::Duration;

/// Which implementation a member runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ztplane,
    ZeroTier,
}

/// A running member's process.
pub enum Process {
    Ztplane(ZtplaneNode),
    ZeroTier(ZeroTierNode),
}

/// One member of the network.
pub struct Member {
    pub host: String,
    pub kind: Kind,
    /// Its managed address on the network.
    pub ip: String,
    pub netns: Netns,
    pub address: String,
    pub process: Process,
}

/// The bed. Fields drop in order: members, controller, LAN, namespaces, files.
pub struct OverlayBed {
    pub members: Vec<Member>,
    pub controller: ZeroTierNode,
    pub nwid: u64,
    pub lan: Lan,
    _topology: Topology,
    _dir: TempDir,
}

impl OverlayBed {
    /// Starts the moon/controller and `members` (host name, kind), authorizes each with overlay
    /// address 198.19.0.(21 + index), and waits until every member has its address. ztplane
    /// members run `ztplane node --iface eth0 --join NWID ZTPLANE_ARGS`. Veths have two queues,
    /// one per core of this machine kind. `progress` gets a line per step.
    pub fn start(
        zerotier: &Path,
        ztplane: &Path,
        members: &[(&str, Kind)],
        ztplane_args: &[&str],
        progress: impl Fn(&str),
    ) -> Result<OverlayBed> {
        let dir = TempDir::new("overlay")?;
        let mut topology = Topology::new()?;
        let hosts: Vec<&str> = std::iter::once("moon").chain(members.iter().map(|(h, _)| *h)).collect();
        let lan = Lan::with_queues(&mut topology, &hosts, 2)?;
        let moon = Moon::prepare(zerotier, lan.host("moon")?.ip)?;
        let controller = ZeroTierNode::start(zerotier, &lan.host("moon")?.netns, NodeConfig::moon(&moon))?;
        let nwid = controller.create_private_network("ztplane-overlay")?;
        progress(&format!("moon + controller {} (zerotier-one), network {nwid:016x} (198.19.0.0/24)", moon.address()));
        let mut started = Vec::new();
        for (i, (host, kind)) in members.iter().enumerate() {
            let ip = format!("198.19.0.{}", 21 + i);
            let netns = lan.host(host)?.netns.clone();
            let process = match kind {
                Kind::Ztplane => {
                    let home = dir.path().join(host);
                    std::fs::create_dir_all(home.join("moons.d"))?;
                    std::fs::write(home.join("moons.d").join(&moon.file_name), &moon.bytes)?;
                    let join = format!("{nwid:016x}");
                    let args: Vec<&str> =
                        ["--join", join.as_str()].into_iter().chain(ztplane_args.iter().copied()).collect();
                    Process::Ztplane(ZtplaneNode::start(ztplane, &netns, &home, &["eth0"], &args)?)
                }
                Kind::ZeroTier => Process::ZeroTier(ZeroTierNode::start(zerotier, &netns, NodeConfig::member(&moon))?),
            };
            let address = match &process {
                Process::Ztplane(n) => n.address()?,
                Process::ZeroTier(n) => n.address().to_string(),
            };
            controller.authorize(nwid, &address, Some(&ip))?;
            if let Process::ZeroTier(n) = &process {
                n.join(nwid)?;
            }
            progress(&format!("{host}: {kind:?} {address}, authorized as {ip}"));
            started.push(Member { host: host.to_string(), kind: *kind, ip, netns, address, process });
        }
        for m in &started {
            let got = match &m.process {
                Process::Ztplane(n) => n.wait_for_ip(nwid, Duration::from_secs(60)),
                Process::ZeroTier(n) => n.wait_for_ip(nwid, Duration::from_secs(60)),
            }
            .with_context(|| format!("{} joining", m.host))?;
            if got != m.ip {
                bail!("{} got {got}, expected {}", m.host, m.ip);
            }
        }
        Ok(OverlayBed { members: started, controller, nwid, lan, _topology: topology, _dir: dir })
    }

    pub fn member(&self, host: &str) -> Result<&Member> {
        self.members.iter().find(|m| m.host == host).with_context(|| format!("no member {host:?}"))
    }

    /// Waits (≤ 30 s) until `from` gets a ping reply from `to` through the overlay: paths found,
    /// credentials exchanged.
    pub fn wait_ping(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (self.member(from)?, self.member(to)?);
        let what = format!("a first ping {} → {}", from.host, to.host);
        wait_until(&what, Duration::from_secs(30), || {
            let out =
                from.netns.command("ping").args(["-c", "1", "-W", "2", &to.ip]).output().map_err(|e| e.to_string())?;
            if out.status.success() { Ok(()) } else { Err("no reply".into()) }
        })
    }

    /// Average ping RTT in ms from `from` to `to` over `count` pings 50 ms apart.
    pub fn ping_rtt_ms(&self, from: &str, to: &str, count: u32) -> Result<f64> {
        let (from, to) = (self.member(from)?, self.member(to)?);
        let out = from.netns.command("ping").args(["-c", &count.to_string(), "-i", "0.05", "-q", &to.ip]).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "rtt min/avg/max/mdev = 0.101/0.154/0.287/0.040 ms"
        text.lines()
            .find(|l| l.contains("min/avg/max"))
            .and_then(|l| l.split('=').nth(1))
            .and_then(|v| v.trim().split('/').nth(1))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("ping {} → {}: {}", from.host, to.host, text.trim()))
    }
}
