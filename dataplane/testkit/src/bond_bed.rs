//! A bonding bed: every host on two underlay links (zerotier-bonding.md), a zerotier-one moon and
//! controller, and members of either implementation bonding both links.
//!
//! ```text
//!   [switch] br0 198.18.0.0/24               [switch-b] br0 198.18.1.0/24
//!  eth0 [moon]  eth0 [a]  eth0 [b] ...       eth1 [moon]  eth1 [a]  eth1 [b] ...
//!                 overlay 198.19.0.0/24 (addresses chosen by the caller)
//! ```
//!
//! ztplane members run `ztplane node --iface eth0 --iface eth1` (each interface a bonding link,
//! §1); zerotier-one members bind every interface, so both links too. Each gets its bonding
//! policy from `local.conf`. Links are cut and impaired at their switch ([`crate::lan`]). A member
//! keeps its identity (and its authorization) across restarts on the same host, so a pair can be
//! restarted with another policy in seconds.
//!
//! The helpers measure what bonding is for: which link carries a peer's traffic (interface
//! counters: a bond report cannot say, §6.2), how long a 10 ms ping stops when that link is cut
//! ([`PingRun`]), and TCP throughput ([`iperf3`]). `tests/bond_netns.rs` and
//! `cargo xtask bench bond-live` are built on it.
use crate::lan::TwoLinks;
use crate::zerotier::{Identity, Moon, NodeConfig, TempDir, ZeroTierNode, wait_until};
use crate::ztplane::ZtplaneNode;
use crate::{Netns, Topology};
use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

/// How long a started member may take to get its address.
pub const JOIN: Duration = Duration::from_secs(60);
/// How long a bond may take to have an eligible path on both links.
pub const BOTH_LINKS: Duration = Duration::from_secs(30);
/// The ping that times a failover: one echo every 10 ms.
pub const PING_INTERVAL_MS: u64 = 10;
/// The custom policy of [`fast_active_backup`].
pub const FAST_AB: &str = "ab";
/// zerotier-one holds a newly nominated path eligible, however silent, for 15 s (§4.4 `inTrial`,
/// §3): a cut before that goes unnoticed. Half a second more for its bond tick. A path that comes
/// back after a cut is not nominated again, so this applies once per bond.
pub const ZEROTIER_TRIAL: Duration = Duration::from_millis(15_500);

/// `local.conf` selecting the standard `policy` for every peer (§2), default settings.
pub fn standard_policy(policy: &str) -> Value {
    json!({ "settings": { "defaultBondingPolicy": policy } })
}

/// `local.conf` with [`FAST_AB`]: active-backup failing over after 500 ms of silence, zerotier-one's
/// shortest failover interval (§2: values below 500 are raised).
pub fn fast_active_backup() -> Value {
    json!({ "settings": {
        "policies": { FAST_AB: { "basePolicy": "active-backup", "failoverInterval": 500 } },
        "defaultBondingPolicy": FAST_AB,
    } })
}

/// The namespaces (every host on both links), the moon + controller and the network. Members
/// are owned by the caller: declare them after the bed so they stop before it goes.
pub struct BondBed {
    pub controller: ZeroTierNode,
    pub moon: Moon,
    pub nwid: u64,
    pub links: TwoLinks,
    zerotier: PathBuf,
    ztplane: PathBuf,
    /// zerotier-one members' identities by host, kept across restarts.
    identities: Mutex<HashMap<String, Identity>>,
    /// ztplane homes, one per host.
    homes: TempDir,
    // Last: the namespaces go after everything running in them.
    _topology: Topology,
}

impl BondBed {
    /// Namespaces `members` (and `moon`) on both links with 2-queue veths (one per core of this
    /// machine kind), the moon + controller on `moon` and a private network.
    pub fn start(zerotier: &Path, ztplane: &Path, members: &[&str]) -> Result<BondBed> {
        let mut topology = Topology::new()?;
        let hosts: Vec<&str> = std::iter::once("moon").chain(members.iter().copied()).collect();
        let links = TwoLinks::new(&mut topology, &hosts, 2)?;
        let moon = Moon::prepare(zerotier, links.a.host("moon")?.ip)?;
        let controller = ZeroTierNode::start(zerotier, &links.a.host("moon")?.netns, NodeConfig::moon(&moon))?;
        let nwid = controller.create_private_network("bond")?;
        Ok(BondBed {
            controller,
            moon,
            nwid,
            links,
            zerotier: zerotier.to_path_buf(),
            ztplane: ztplane.to_path_buf(),
            identities: Mutex::new(HashMap::new()),
            homes: TempDir::new("bond")?,
            _topology: topology,
        })
    }

    pub fn netns(&self, host: &str) -> Result<&Netns> {
        Ok(&self.links.a.host(host)?.netns)
    }

    /// A ztplane home for `host` with an identity, the moon and `local_conf` (rewritten if the
    /// home exists); returns it and the node's address.
    fn home(&self, host: &str, local_conf: &Value) -> Result<(PathBuf, String)> {
        let home = self.homes.path().join(host);
        if !home.join("identity.public").exists() {
            let identity = Identity::generate(&self.zerotier)?;
            crate::gateway_bed::ztplane_home(self.homes.path(), host, &identity, &self.moon)?;
        }
        std::fs::write(home.join("local.conf"), serde_json::to_vec_pretty(local_conf)?)?;
        let public = std::fs::read_to_string(home.join("identity.public"))?;
        let address = public.split(':').next().unwrap_or_default().to_string();
        Ok((home, address))
    }

    /// Starts ztplane on `host` bonding eth0 and eth1 with `local_conf`, as `ip` on the network,
    /// and waits for the address. The member is authorized before it first asks: a request racing
    /// the authorization can leave the controller's record unauthorized (seen once: the node
    /// stayed ACCESS_DENIED for a minute).
    pub fn ztplane(&self, host: &str, ip: &str, local_conf: &Value) -> Result<ZtplaneNode> {
        let (home, address) = self.home(host, local_conf)?;
        self.controller.authorize(self.nwid, &address, Some(ip))?;
        let nwid = format!("{:016x}", self.nwid);
        let args = ["--join", &nwid, "--cores", "0,1"];
        let node = ZtplaneNode::start(&self.ztplane, self.netns(host)?, &home, &["eth0", "eth1"], &args)?;
        let got = node.wait_for_ip(self.nwid, JOIN).with_context(|| format!("{host} log:\n{}", node.log_tail(30)))?;
        ensure!(got == ip, "{host} got {got}, not {ip}");
        Ok(node)
    }

    /// Starts a zerotier-one member on `host` with `local_conf` (it binds every interface: both
    /// links), authorized as `ip`, and waits for the address. The same host gets the same
    /// identity every time.
    pub fn zerotier(&self, host: &str, ip: &str, local_conf: &Value) -> Result<ZeroTierNode> {
        let identity = {
            let mut known = self.identities.lock().map_err(|_| anyhow::anyhow!("identities lock poisoned"))?;
            match known.get(host) {
                Some(identity) => identity.clone(),
                None => {
                    let identity = Identity::generate(&self.zerotier)?;
                    known.insert(host.to_string(), identity.clone());
                    identity
                }
            }
        };
        self.controller.authorize(self.nwid, identity.address(), Some(ip))?;
        let config = NodeConfig {
            identity: Some(identity),
            local_conf: Some(local_conf.clone()),
            ..NodeConfig::member(&self.moon)
        };
        let node = ZeroTierNode::start(&self.zerotier, self.netns(host)?, config)?;
        node.join(self.nwid)?;
        let got = node.wait_for_ip(self.nwid, JOIN)?;
        ensure!(got == ip, "{host} got {got}, not {ip}");
        Ok(node)
    }
}

/// A ztplane node's bond with `peer` (`GET /bond/show/<peer>`: zerotier-one's peer JSON).
pub fn bond_show(node: &ZtplaneNode, peer: &str) -> Result<Value> {
    node.request("GET", &format!("/bond/show/{peer}"))
}

/// A zerotier-one node's bond with `peer` (the same request on its local API).
pub fn zerotier_bond_show(node: &ZeroTierNode, peer: &str) -> Result<Value> {
    node.api("GET", &format!("/bond/show/{peer}"), None)
}

/// The paths of a bond report on link `iface`.
pub fn paths_on<'a>(show: &'a Value, iface: &str) -> Vec<&'a Value> {
    show["paths"].as_array().map(|p| p.iter().filter(|p| p["ifname"] == iface).collect()).unwrap_or_default()
}

/// zerotier-one writes the per-path flags as 0/1, ztplane as booleans.
pub fn flag(v: &Value) -> bool {
    v == true || v == 1
}

/// Waits until the bond report that `show` fetches has an eligible path on each link; returns it.
/// `log` is quoted when time runs out.
pub fn wait_both_links(what: &str, show: impl Fn() -> Result<Value>, log: impl Fn() -> String) -> Result<Value> {
    wait_until(what, BOTH_LINKS, || {
        let show = show().map_err(|e| format!("{e:#}"))?;
        let alive = |iface| paths_on(&show, iface).iter().any(|p| flag(&p["eligible"]));
        if show["numTotalLinks"].as_u64() >= Some(2) && alive("eth0") && alive("eth1") {
            Ok(show)
        } else {
            Err(show.to_string())
        }
    })
    .with_context(log)
}

/// [`wait_both_links`] for ztplane `node`'s bond with `peer`.
pub fn ztplane_on_both_links(node: &ZtplaneNode, name: &str, peer: &str) -> Result<Value> {
    let what = format!("{name}'s bond with {peer} on both links");
    wait_both_links(&what, || bond_show(node, peer), || format!("{name} log:\n{}", node.log_tail(30)))
}

/// [`wait_both_links`] for zerotier-one `node`'s bond with `peer`.
pub fn zerotier_on_both_links(node: &ZeroTierNode, name: &str, peer: &str) -> Result<Value> {
    let what = format!("{name}'s bond with {peer} on both links");
    wait_both_links(&what, || zerotier_bond_show(node, peer), || format!("{name}'s peers: {:?}", node.peers().ok()))
}

/// Bytes `ns` sent on eth0 and eth1.
pub fn tx_bytes(ns: &Netns) -> Result<[u64; 2]> {
    Ok([ns.link_counter("eth0", "tx_bytes")?, ns.link_counter("eth1", "tx_bytes")?])
}

/// The link `from` sends its traffic to `to` on: the one that carries most of 100 large pings.
/// (The bond report cannot say: active-backup reports every path in its failover queue as
/// `bonded`, as zerotier-one does, §6.2.)
pub fn carrying_link(from: &Netns, to: &str) -> Result<&'static str> {
    // A bond that has just formed may still move its active path (a better second path, §6.1):
    // measure again until one link carries the pings, a few times at most.
    let mut last = [0u64; 2];
    for _ in 0..5 {
        let before = tx_bytes(from)?;
        let out = from
            .command("ping")
            .args(["-n", "-q", "-c", "100", "-i", "0.005", "-s", "1400", "-W", "1", to])
            .output()?;
        ensure!(out.status.success(), "pings to {to} lost: {}", String::from_utf8_lossy(&out.stdout));
        let after = tx_bytes(from)?;
        last = [after[0] - before[0], after[1] - before[1]];
        let total = last[0] + last[1];
        match last {
            [eth0, _] if eth0 * 3 > total * 2 => return Ok("eth0"),
            [_, eth1] if eth1 * 3 > total * 2 => return Ok("eth1"),
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
    bail!("no link carried most of the pings to {to}: eth0 {} bytes, eth1 {} bytes", last[0], last[1])
}

/// Pings until the first reply (ARP through the overlay, paths found), then 3 strict pings.
pub fn ping_settled(from: &Netns, to: &str) -> Result<()> {
    let ping = |count: &str| {
        from.command("ping")
            .args(["-n", "-q", "-c", count, "-W", "2", "-i", "0.2", to])
            .output()
            .map(|o| o.status.success())
    };
    wait_until(&format!("a first reply from {to}"), Duration::from_secs(30), || {
        if ping("1").unwrap_or(false) { Ok(()) } else { Err("no reply".into()) }
    })?;
    ensure!(ping("3")?, "3 pings to {to} did not all come back");
    Ok(())
}

/// What a timed ping saw.
pub struct PingRun {
    pub sent: u64,
    /// Sequence numbers (from 1) of the pings answered.
    pub replied: Vec<u64>,
}

impl PingRun {
    /// Starts `count` pings every [`PING_INTERVAL_MS`] from `from` to `to`, runs `during` after
    /// `after`, and collects the replies.
    pub fn around(
        from: &Netns,
        to: &str,
        count: u64,
        after: Duration,
        during: impl FnOnce() -> Result<()>,
    ) -> Result<PingRun> {
        let interval = format!("{:.3}", PING_INTERVAL_MS as f64 / 1000.0);
        let child = from
            .command("ping")
            .args(["-n", "-i", &interval, "-c", &count.to_string(), "-W", "1", to])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting ping")?;
        std::thread::sleep(after);
        let acted = during();
        let out = child.wait_with_output().context("ping")?;
        acted?;
        let text = String::from_utf8_lossy(&out.stdout);
        let replied = text
            .lines()
            .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("icmp_seq=")))
            .filter_map(|n| n.parse().ok())
            .collect();
        // "500 packets transmitted, 437 received, 12.6% packet loss, time 5009ms"
        let sent = text
            .lines()
            .find_map(|l| l.split_once(" packets transmitted"))
            .and_then(|(n, _)| n.trim().parse().ok())
            .with_context(|| format!("no ping summary in {text:?}"))?;
        Ok(PingRun { sent, replied })
    }

    /// The longest run of unanswered pings (ping numbers from 1), in ms.
    pub fn outage_ms(&self) -> u64 {
        let mut replied = self.replied.clone();
        replied.sort_unstable();
        let mut previous = 0;
        let mut longest = 0;
        for &seq in replied.iter().chain(std::iter::once(&(self.sent + 1))) {
            longest = longest.max(seq.saturating_sub(previous + 1));
            previous = seq;
        }
        longest * PING_INTERVAL_MS
    }

    /// Whether the last `n` pings were answered.
    pub fn recovered(&self, n: u64) -> bool {
        (self.sent.saturating_sub(n) + 1..=self.sent).all(|seq| self.replied.contains(&seq))
    }

    /// Pings not answered.
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.replied.len() as u64)
    }
}

/// The bond log lines (events) of a ztplane node.
pub fn bond_events(node: &ZtplaneNode) -> String {
    node.log().lines().filter(|l| l.contains("\"event\"")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outage_is_the_longest_run_of_lost_pings() {
        let run = PingRun { sent: 10, replied: vec![1, 2, 6, 7, 9, 10] };
        assert_eq!(run.outage_ms(), 3 * PING_INTERVAL_MS);
        assert_eq!(run.lost(), 4);
        assert!(run.recovered(2));
        assert!(!run.recovered(3));
        let tail = PingRun { sent: 10, replied: vec![1, 2, 3] };
        assert_eq!(tail.outage_ms(), 7 * PING_INTERVAL_MS);
    }
}
