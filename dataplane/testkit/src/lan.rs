//! Underlay LANs: stars of host namespaces around a bridge, with per-link impairments.
//!
//! ```text
//!   one link (Lan::with_queues)            two links (TwoLinks::new): every host on both
//!
//!   [switch] br0                           [switch] br0 198.18.0.0/24    [switch-b] br0 198.18.1.0/24
//!   sw1 |      sw2 \                       sw1 |      sw2 \              sw1 |      sw2 \
//!  eth0 [moon]  eth0 [a]  ...             eth0 [moon]  eth0 [a]  ...    eth1 [moon]  eth1 [a]  ...
//!  198.18.0.1   198.18.0.2                198.18.0.1   198.18.0.2       198.18.1.1   198.18.1.2
//! ```
//!
//! Impairments act on one link, at that link's switch: [`Lan::block`] and [`Lan::set_loss`] filter
//! a host pair with nftables (bridge family, so frames crossing the bridge are seen without
//! br_netfilter), [`Lan::set_rate`] shapes a switch port with tbf, [`Lan::set_link`] takes a port
//! down. All of it lives in the switch namespace and goes with the [`Topology`].
use crate::{Netns, Topology};
use anyhow::{Context, Result, bail};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// First three octets of the (first) underlay: host N of a [`Lan::with_queues`] is 198.18.0.N/24.
pub const UNDERLAY_PREFIX: [u8; 3] = [198, 18, 0];
/// The second link of [`TwoLinks`]: host N is 198.18.1.N/24 on `eth1`.
pub const SECOND_UNDERLAY_PREFIX: [u8; 3] = [198, 18, 1];

/// Where a [`Lan`] sits: the switch namespace that holds its bridge, its subnet and the name of
/// each host's interface on it.
#[derive(Clone, Copy, Debug)]
pub struct LanLink<'a> {
    /// Label of the switch namespace (created by the LAN).
    pub switch: &'a str,
    /// Host N (1-based position in the host list) is PREFIX.N/24.
    pub prefix: [u8; 3],
    /// The interface each host gets.
    pub iface: &'a str,
    /// RX and TX queues on each end of every veth pair.
    pub queues: u32,
}

/// One host of a [`Lan`].
#[derive(Clone, Debug)]
pub struct LanHost {
    pub name: String,
    pub netns: Netns,
    /// Address of the host's interface on this LAN ([`Lan::iface`]).
    pub ip: Ipv4Addr,
    /// The host's port on the switch (in [`Lan::switch`]): cut or impair this host's link there.
    pub switch_port: String,
}

/// A star LAN: a switch namespace with bridge `br0`, and one veth pair per host (the LAN's
/// interface on the host, `swN` on the switch).
pub struct Lan {
    pub switch: Netns,
    pub bridge: String,
    /// The hosts' interface on this LAN (`eth0`, ...).
    pub iface: String,
    hosts: Vec<LanHost>,
    filter: Mutex<Filter>,
}

/// State of the switch's nftables filter, created on first use (most tests never impair a pair).
#[derive(Default)]
struct Filter {
    created: bool,
    blocked: HashSet<(Ipv4Addr, Ipv4Addr)>,
    /// Handle of the random-drop rule of each (source, destination) pair.
    loss: HashMap<(Ipv4Addr, Ipv4Addr), u64>,
}

/// The filter table of a [`Lan`]'s switch.
const FILTER_TABLE: &str = "ztk";

impl Lan {
    /// A star of `hosts` (single-queue veths).
    pub fn new(topo: &mut Topology, hosts: &[&str]) -> Result<Lan> {
        Lan::with_queues(topo, hosts, 1)
    }

    /// A star of new namespaces `hosts` whose veth pairs have `queues` RX and TX queues on each
    /// end: switch namespace `switch`, `eth0` on 198.18.0.0/24.
    pub fn with_queues(topo: &mut Topology, hosts: &[&str], queues: u32) -> Result<Lan> {
        let link = LanLink { switch: "switch", prefix: UNDERLAY_PREFIX, iface: "eth0", queues };
        let hosts = new_hosts(topo, hosts, &[link.switch])?;
        Lan::attach(topo, link, &hosts)
    }

    /// A star of existing host namespaces (`(name, namespace)`; host N is the N-th) on a new
    /// switch: how several LANs share their hosts.
    pub fn attach(topo: &mut Topology, link: LanLink<'_>, hosts: &[(String, Netns)]) -> Result<Lan> {
        if hosts.is_empty() || hosts.len() > 253 {
            bail!("a LAN has 1 to 253 hosts, not {}", hosts.len());
        }
        let switch = topo.netns(link.switch)?;
        let bridge = "br0".to_string();
        switch.ip(&["link", "add", &bridge, "type", "bridge"])?;
        switch.ip(&["link", "set", &bridge, "up"])?;
        // A switch does not run the IP firewall: with br_netfilter loaded (docker loads it), every
        // bridged frame would also cross iptables, a per-packet cost no real LAN has. The bridge
        // family filter of the impairments does not depend on it.
        for family in ["iptables", "ip6tables", "arptables"] {
            let key = format!("net.bridge.bridge-nf-call-{family}");
            if switch.run(move || Path::new(&format!("/proc/sys/{}", key.replace('.', "/"))).exists())? {
                switch.exec("sysctl", &["-q", "-w", &format!("net.bridge.bridge-nf-call-{family}=0")])?;
            }
        }
        let mut lan_hosts = Vec::with_capacity(hosts.len());
        for (i, (name, netns)) in hosts.iter().enumerate() {
            let n = i as u8 + 1;
            let [a, b, c] = link.prefix;
            let ip = Ipv4Addr::new(a, b, c, n);
            let switch_port = format!("sw{n}");
            topo.veth(netns, link.iface, &switch, &switch_port, link.queues)?;
            netns.addr(link.iface, &format!("{ip}/24"))?;
            switch.ip(&["link", "set", &switch_port, "master", &bridge])?;
            // An AF_XDP sender on a host transmits into this end: veth drops redirected frames
            // unless the receiving end has GRO on (see bed.rs).
            switch.ethtool_k(&switch_port, "gro", true)?;
            lan_hosts.push(LanHost { name: name.clone(), netns: netns.clone(), ip, switch_port });
        }
        Ok(Lan {
            switch,
            bridge,
            iface: link.iface.to_string(),
            hosts: lan_hosts,
            filter: Mutex::new(Filter::default()),
        })
    }

    pub fn hosts(&self) -> &[LanHost] {
        &self.hosts
    }

    pub fn host(&self, name: &str) -> Result<&LanHost> {
        self.hosts.iter().find(|h| h.name == name).with_context(|| format!("no host {name:?} on this LAN"))
    }

    /// Drops IPv4 between hosts `a` and `b` (both directions) at the switch. ARP still passes.
    pub fn block(&self, a: &str, b: &str) -> Result<()> {
        let (a, b) = (self.host(a)?.ip, self.host(b)?.ip);
        let mut filter = self.filter()?;
        let new: Vec<(Ipv4Addr, Ipv4Addr)> =
            [(a, b), (b, a)].into_iter().filter(|p| !filter.blocked.contains(p)).collect();
        if !new.is_empty() {
            self.switch.exec("nft", &["add", "element", "bridge", FILTER_TABLE, "blocked", &elements(&new)])?;
            filter.blocked.extend(new);
        }
        Ok(())
    }

    /// Undoes [`Lan::block`]; a pair that is not blocked is left alone.
    pub fn unblock(&self, a: &str, b: &str) -> Result<()> {
        let (a, b) = (self.host(a)?.ip, self.host(b)?.ip);
        let mut filter = self.filter()?;
        // nft 1.0.6 has no `destroy element`: deleting an absent element fails, so track them.
        let present: Vec<(Ipv4Addr, Ipv4Addr)> =
            [(a, b), (b, a)].into_iter().filter(|p| filter.blocked.contains(p)).collect();
        if !present.is_empty() {
            self.switch.exec("nft", &["delete", "element", "bridge", FILTER_TABLE, "blocked", &elements(&present)])?;
            for pair in &present {
                filter.blocked.remove(pair);
            }
        }
        Ok(())
    }

    /// Drops a random `percent` of the IPv4 packets between hosts `a` and `b`, each direction
    /// independently (`numgen random mod 100 < percent`); 0 removes the loss.
    pub fn set_loss(&self, a: &str, b: &str, percent: u8) -> Result<()> {
        if percent > 100 {
            bail!("loss of {percent}%");
        }
        let (a, b) = (self.host(a)?.ip, self.host(b)?.ip);
        let mut filter = self.filter()?;
        for (src, dst) in [(a, b), (b, a)] {
            if let Some(handle) = filter.loss.remove(&(src, dst)) {
                let handle = handle.to_string();
                self.switch.exec("nft", &["delete", "rule", "bridge", FILTER_TABLE, "forward", "handle", &handle])?;
            }
            if percent == 0 {
                continue;
            }
            let rule = format!("ip saddr {src} ip daddr {dst} numgen random mod 100 < {percent} drop");
            let out =
                self.switch.exec("nft", &["-e", "-a", "add", "rule", "bridge", FILTER_TABLE, "forward", &rule])?;
            let echo = String::from_utf8_lossy(&out.stdout);
            let handle = rule_handle(&echo).with_context(|| format!("no rule handle in nft's echo {echo:?}"))?;
            filter.loss.insert((src, dst), handle);
        }
        Ok(())
    }

    /// Shapes what the switch sends to `host` on this link to `mbit` Mbit/s (tbf on its switch
    /// port: the host's receive side); `None` removes the limit.
    pub fn set_rate(&self, host: &str, mbit: Option<u32>) -> Result<()> {
        let port = &self.host(host)?.switch_port;
        match mbit {
            Some(mbit) => {
                let rate = format!("{mbit}mbit");
                self.switch.exec(
                    "tc",
                    &[
                        "qdisc", "replace", "dev", port, "root", "tbf", "rate", &rate, "burst", "64kb", "latency",
                        "50ms",
                    ],
                )?;
            }
            // Back to the veth default.
            None => {
                self.switch.exec("tc", &["qdisc", "replace", "dev", port, "root", "noqueue"])?;
            }
        }
        Ok(())
    }

    /// Sets `host`'s switch port up or down (carrier loss on the host's interface).
    pub fn set_link(&self, host: &str, up: bool) -> Result<()> {
        let port = &self.host(host)?.switch_port;
        self.switch.ip(&["link", "set", port, if up { "up" } else { "down" }])?;
        Ok(())
    }

    /// The filter state, with the table created on first use.
    fn filter(&self) -> Result<MutexGuard<'_, Filter>> {
        let mut filter = self.filter.lock().map_err(|_| anyhow::anyhow!("LAN filter lock poisoned"))?;
        if !filter.created {
            // One nft transaction; this nft (1.0.6) rejects the nested `table { ... }` form as
            // a command-line argument, so spell it as add commands.
            let t = FILTER_TABLE;
            self.switch.exec(
                "nft",
                &[&format!(
                    "add table bridge {t}; \
                     add set bridge {t} blocked {{ type ipv4_addr . ipv4_addr; }}; \
                     add chain bridge {t} forward {{ type filter hook forward priority 0; policy accept; }}; \
                     add rule bridge {t} forward ip saddr . ip daddr @blocked drop"
                )],
            )?;
            filter.created = true;
        }
        Ok(filter)
    }
}

/// Two LANs on the same hosts, for bonding: link A is `eth0` on 198.18.0.0/24 (switch
/// `switch`), link B is `eth1` on 198.18.1.0/24 (switch `switch-b`); host N is .N on both.
pub struct TwoLinks {
    pub a: Lan,
    pub b: Lan,
}

impl TwoLinks {
    /// New namespaces `hosts`, each on both links with `queues`-queue veths.
    pub fn new(topo: &mut Topology, hosts: &[&str], queues: u32) -> Result<TwoLinks> {
        let a = LanLink { switch: "switch", prefix: UNDERLAY_PREFIX, iface: "eth0", queues };
        let b = LanLink { switch: "switch-b", prefix: SECOND_UNDERLAY_PREFIX, iface: "eth1", queues };
        let hosts = new_hosts(topo, hosts, &[a.switch, b.switch])?;
        Ok(TwoLinks { a: Lan::attach(topo, a, &hosts)?, b: Lan::attach(topo, b, &hosts)? })
    }

    /// The link whose hosts' interface is `iface` (what bonding calls the link).
    pub fn by_iface(&self, iface: &str) -> Result<&Lan> {
        [&self.a, &self.b].into_iter().find(|l| l.iface == iface).with_context(|| format!("no link on {iface:?}"))
    }

    /// The other link.
    pub fn other(&self, lan: &Lan) -> &Lan {
        if std::ptr::eq(lan, &self.a) { &self.b } else { &self.a }
    }
}

/// Namespaces for `hosts`, whose names must be distinct and none of `reserved` (the switches).
fn new_hosts(topo: &mut Topology, hosts: &[&str], reserved: &[&str]) -> Result<Vec<(String, Netns)>> {
    let unique: HashSet<&str> = hosts.iter().copied().collect();
    if unique.len() != hosts.len() || reserved.iter().any(|r| unique.contains(r)) {
        bail!("host names must be distinct and none of {reserved:?}: {hosts:?}");
    }
    hosts.iter().map(|name| Ok((name.to_string(), topo.netns(name)?))).collect()
}

fn elements(pairs: &[(Ipv4Addr, Ipv4Addr)]) -> String {
    let list: Vec<String> = pairs.iter().map(|(s, d)| format!("{s} . {d}")).collect();
    format!("{{ {} }}", list.join(", "))
}

/// The handle `nft -e -a` prints after an added rule (`... drop # handle 4`).
fn rule_handle(echo: &str) -> Option<u64> {
    echo.lines().find_map(|line| line.rsplit_once("# handle ")?.1.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_pairs_are_spelled_as_an_nft_set() {
        let (a, b) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 3));
        assert_eq!(elements(&[(a, b), (b, a)]), "{ 198.18.0.2 . 198.18.0.3, 198.18.0.3 . 198.18.0.2 }");
    }

    #[test]
    fn the_handle_of_an_added_rule_is_read_from_the_echo() {
        let echo = "add rule bridge ztk forward ip saddr 198.18.1.2 ip daddr 198.18.1.3 \
                    numgen random mod 100 < 5 drop # handle 4\n# new generation 3 by process 1 (nft)\n";
        assert_eq!(rule_handle(echo), Some(4));
        assert_eq!(rule_handle("add rule bridge ztk forward drop\n"), None);
    }
}
