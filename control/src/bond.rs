//! `ztplanectl bond list | show PEER | rotate PEER`: zerotier-cli's `bond` commands
//! (zerotier-bonding.md §9) for a running `ztplane node`.
//!
//! `list` and `show` read the per-link quality map the node pins as
//! `<bpffs>/<instance>/link_quality` (layout: `ztplane_ebpf_common::LinkQuality`, rewritten by the
//! node every 100 ms): reading it never waits for, or stops, the node. Their text is zerotier-cli
//! 1.14.1's (`bond list`: `<peer> <bondtype> <links>` rows, or its `NONE` row; `bond <peer> show`:
//! the bond's settings, then the paths table and the quality table), and `show` adds ztplane's
//! measured figures as a third table: state, loss and error ratios, throughput, share of the
//! peer's traffic, failovers. `-j` prints zerotier-one's peer JSON (bond fields, per-path fields)
//! for the bonded peers, ztplane's extra figures under `ztplane`; a never-used direction's age is
//! `null` there and `-1` in the tables.
//!
//! `rotate` changes the node's state, so it goes through the node's control socket
//! (`POST /bond/rotate/<peer>` on `<home>/ztplane.sock`) and prints zerotier-cli's `200 rotate OK`.
//!
//! Exit codes: 0 success; 1 no running instance (no map, no control socket), peer not bonded, or the
//! node refused; 2 usage error (a peer address is exactly 10 hex digits), or not root.
use crate::node::{DEFAULT_HOME, format_json};
use anyhow::{Context, Result};
use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use ztplane_bond::config::Policy;
use ztplane_ebpf_common::{LINK_QUALITY_MAP, LinkKey, LinkQuality, LinkState};
use ztplane_host::control_socket::{self, Request, SOCKET_NAME};
use ztplane_protocol::Address;

pub const DEFAULT_BPFFS: &str = "/run/ztplane/bpffs";
pub const DEFAULT_INSTANCE: &str = "default";
/// The node rewrites its records every 100 ms: records this old come from a node that is gone.
pub const STALE_MS: u64 = 5_000;
const ROTATE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
#[command(args_override_self = true)]
pub struct BondArgs {
    #[command(subcommand)]
    pub command: BondCmd,
    /// print JSON: zerotier-one's peer JSON of the bonded peers (also before `bond`, as zerotier-cli -j)
    #[arg(id = "bond_json", short = 'j', global = true)]
    pub json: bool,
    /// name of the dataplane instance (default "default"); for list and show
    #[arg(long, global = true, value_name = "NAME", allow_hyphen_values = true)]
    pub instance: Option<String>,
    /// bpffs mount with the pinned maps (default /run/ztplane/bpffs); for list and show
    #[arg(long, global = true, value_name = "PATH", allow_hyphen_values = true)]
    pub bpffs: Option<PathBuf>,
    /// the node's home directory, where its control socket is (default /var/lib/zerotier-one); for rotate
    // Its own id: `home` is the top-level -D, and a global argument shares its id with the parent's.
    #[arg(id = "bond_home", long = "home", global = true, value_name = "DIR", allow_hyphen_values = true)]
    pub home: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub enum BondCmd {
    /// the bonded peers: address, policy, alive/total links (as zerotier-cli bond list)
    List,
    /// one peer's bond and the quality of each link (as zerotier-cli bond PEER show, plus ztplane's
    /// loss, error ratio, throughput, share and failovers)
    Show {
        /// the peer's ZeroTier address: 10 hex digits
        #[arg(value_name = "PEER", value_parser = peer_arg)]
        peer: Address,
    },
    /// active-backup: make the next link in failover order the active one (through the node's
    /// control socket)
    Rotate {
        /// the peer's ZeroTier address: 10 hex digits
        #[arg(value_name = "PEER", value_parser = peer_arg)]
        peer: Address,
    },
}

fn peer_arg(value: &str) -> Result<Address, String> {
    value.parse().map_err(|_| "not a ZeroTier address (10 hex digits)".to_string())
}

/// Where the node of `instance` pins its link quality map.
pub fn pin_path(bpffs: &Path, instance: &str) -> PathBuf {
    bpffs.join(instance).join(LINK_QUALITY_MAP)
}

/// Why the records could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no link quality map at {0} (is ztplane running? right --instance/--bpffs?)")]
    NotRunning(PathBuf),
    #[error("{0} not accessible (try again as root)")]
    NotRoot(PathBuf),
    #[error("opening {path}: {reason}")]
    Other { path: PathBuf, reason: String },
}

/// Every record of the map pinned at `pin`, by (peer, path). Records deleted while being read are
/// skipped: the node rewrites the map as it likes, readers never hold it up.
pub fn read_links(pin: &Path) -> Result<Vec<(LinkKey, LinkQuality)>, ReadError> {
    let classify = |reason: String| {
        if reason.contains("Operation not permitted") || reason.contains("Permission denied") {
            ReadError::NotRoot(pin.to_path_buf())
        } else {
            ReadError::Other { path: pin.to_path_buf(), reason }
        }
    };
    match std::fs::symlink_metadata(pin) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(ReadError::NotRunning(pin.to_path_buf())),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => return Err(ReadError::NotRoot(pin.to_path_buf())),
        _ => {}
    }
    let chain = |e: &dyn std::error::Error| {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(inner) = source {
            text += &format!(": {inner}");
            source = inner.source();
        }
        text
    };
    let data = MapData::from_pin(pin).map_err(|e| classify(chain(&e)))?;
    let map = Map::from_map_data(data).map_err(|e| classify(chain(&e)))?;
    let map: BpfHashMap<MapData, LinkKey, LinkQuality> = BpfHashMap::try_from(map).map_err(|e| classify(chain(&e)))?;
    let keys: Vec<LinkKey> = map.keys().filter_map(Result::ok).collect();
    let mut links: Vec<(LinkKey, LinkQuality)> =
        keys.into_iter().filter_map(|k| map.get(&k, 0).ok().map(|v| (k, v))).collect();
    links.sort_by_key(|(k, _)| *k);
    Ok(links)
}

/// The links of each bonded peer, by peer, each peer's in path order.
pub fn by_peer(links: &[(LinkKey, LinkQuality)]) -> BTreeMap<u64, Vec<(u32, LinkQuality)>> {
    let mut peers: BTreeMap<u64, Vec<(u32, LinkQuality)>> = BTreeMap::new();
    for (key, value) in links {
        peers.entry(key.peer).or_default().push((key.path, *value));
    }
    for paths in peers.values_mut() {
        paths.sort_by_key(|(path, _)| *path);
    }
    peers
}

/// zerotier-one's `bondingPolicyStr` for a policy code (`none` for a code it does not know).
pub fn policy_name(code: u8) -> &'static str {
    Policy::ALL.get(usize::from(code)).map_or("none", |p| p.name())
}

/// The link's state name, or `unknown` for a code this ztplanectl does not know.
pub fn state_name(q: &LinkQuality) -> &'static str {
    q.link_state().map_or("unknown", LinkState::name)
}

/// An age the node published, aged to `now_ms`; `None` for never.
fn age_now(age_ms: u32, q: &LinkQuality, now_ms: u64) -> Option<u64> {
    (age_ms != u32::MAX).then(|| u64::from(age_ms) + now_ms.saturating_sub(q.updated_unix_ms))
}

fn ratio(ppm: u32) -> f64 {
    f64::from(ppm) / 1e6
}

fn alive(links: &[(u32, LinkQuality)]) -> usize {
    links.iter().filter(|(_, q)| q.has(LinkQuality::ELIGIBLE)).count()
}

fn remote_text(q: &LinkQuality) -> String {
    q.remote().map_or_else(|| "-".to_string(), |a| format!("{}/{}", a.ip(), a.port()))
}

/// zerotier-one's peer JSON for a bonded peer (§9), from its records (at least one).
pub fn peer_json(peer: u64, links: &[(u32, LinkQuality)], now_ms: u64) -> Value {
    let first = &links[0].1;
    let paths: Vec<Value> = links
        .iter()
        .map(|(path, q)| {
            let latency = |us: u32| if q.has(LinkQuality::HAS_LATENCY) { f64::from(us) / 1000.0 } else { 0.0 };
            json!({
                "ifname": q.link_name(),
                "address": remote_text(q),
                "latencyMean": latency(q.latency_us),
                "latencyVariance": latency(q.pdv_us),
                "packetLossRatio": ratio(q.loss_ppm),
                "packetErrorRatio": ratio(q.error_ppm),
                "assignedFlowCount": q.flows,
                "lastInAge": age_now(q.last_in_age_ms, q, now_ms),
                "lastOutAge": age_now(q.last_out_age_ms, q, now_ms),
                "bonded": q.has(LinkQuality::BONDED),
                "eligible": q.has(LinkQuality::ELIGIBLE),
                "givenLinkSpeed": q.link_speed_mbps,
                "relativeQuality": ratio(q.quality_ppm),
                "localSocket": q.local_socket,
                "localPort": q.local_port,
                "ztplane": {
                    "path": path,
                    "state": state_name(q),
                    "active": q.has(LinkQuality::ACTIVE),
                    "throughputMbps": f64::from(q.throughput_kbps) / 1000.0,
                    "share": ratio(q.share_ppm),
                    "failovers": q.failovers,
                    "packetsSent": q.packets_sent,
                    "packetsReceived": q.packets_received,
                },
            })
        })
        .collect();
    json!({
        "address": format!("{peer:010x}"),
        "isBonded": true,
        "bondingPolicyCode": first.policy,
        "bondingPolicyStr": policy_name(first.policy),
        "numAliveLinks": alive(links),
        "numTotalLinks": links.len(),
        "failoverInterval": first.failover_interval_ms,
        "downDelay": first.down_delay_ms,
        "upDelay": first.up_delay_ms,
        "packetsPerLink": first.packets_per_link,
        "paths": paths,
        "ztplane": {
            "activeChanges": first.bond_active_changes,
            "updated": links.iter().map(|(_, q)| q.updated_unix_ms).max().unwrap_or(0),
        },
    })
}

/// zerotier-cli's `bond list` table.
pub fn format_list(peers: &BTreeMap<u64, Vec<(u32, LinkQuality)>>) -> String {
    let mut out = String::from("    <peer>                        <bondtype>     <links>\n");
    for (peer, links) in peers {
        let address = format!("{peer:010x}");
        out += &format!(
            "{address:>10}  {:>32}         {}/{}\n",
            policy_name(links[0].1.policy),
            alive(links),
            links.len()
        );
    }
    if peers.is_empty() {
        out += "      NONE\t\t\t\tNONE\t    NONE       NONE\n";
    }
    out
}

/// zerotier-cli's `bond <peer> show`, then ztplane's quality table.
pub fn format_show(peer: u64, links: &[(u32, LinkQuality)], now_ms: u64) -> String {
    let first = &links[0].1;
    let dashes = "-".repeat(120);
    let mut out = format!("Peer                   : {peer:010x}\n");
    out += &format!("Bond                   : {}\n", policy_name(first.policy));
    // zerotier-cli reads a key zerotier-one never sends: always 0 (§9).
    out += "Link Select Method     : 0\n";
    out += &format!("Links                  : {}/{}\n", alive(links), links.len());
    out += &format!("Failover Interval (ms) : {}\n", first.failover_interval_ms as i32);
    out += &format!("Up Delay (ms)          : {}\n", first.up_delay_ms as i32);
    out += &format!("Down Delay (ms)        : {}\n", first.down_delay_ms as i32);
    out += &format!("Packets Per Link       : {}\n", first.packets_per_link as i32);
    // zerotier-cli's header strings, piece by piece as it prints them.
    out += concat!(
        "\nidx",
        "                  interface",
        "                                  ",
        "path               socket             local port\n"
    );
    out += &format!("{dashes}\n");
    for (i, (_, q)) in links.iter().enumerate() {
        out += &format!(
            "{i:>2}: {:>26} {:>51} {:016x} {:>12}\n",
            q.link_name(),
            remote_text(q),
            u64::from(q.local_socket),
            q.local_port
        );
    }
    out += concat!(
        "\nidx     lat      pdv    ",
        "capacity    qual      ",
        "rx_age      tx_age  eligible  bonded   flows\n"
    );
    out += &format!("{dashes}\n");
    let age = |a: Option<u64>| a.map_or(-1, |a| a.min(i32::MAX as u64) as i64);
    for (i, (_, q)) in links.iter().enumerate() {
        let latency = |us: u32| if q.has(LinkQuality::HAS_LATENCY) { f64::from(us) / 1000.0 } else { 0.0 };
        out += &format!(
            "{i:>2}: {:>8.2} {:>8.2} {:>10} {:>7.4} {:>11} {:>11} {:>9} {:>7} {:>7}\n",
            latency(q.latency_us),
            latency(q.pdv_us),
            q.link_speed_mbps as i32,
            ratio(q.quality_ppm),
            age(age_now(q.last_in_age_ms, q, now_ms)),
            age(age_now(q.last_out_age_ms, q, now_ms)),
            u8::from(q.has(LinkQuality::ELIGIBLE)),
            u8::from(q.has(LinkQuality::BONDED)),
            q.flows as i32
        );
    }
    out += &format!(
        "\n{:<3} {:<10} {:>9} {:>9} {:>11} {:>9} {:>10} {:>7}\n",
        "idx", "state", "loss", "per", "Mbit/s", "share", "failovers", "active"
    );
    out += &format!("{dashes}\n");
    for (i, (_, q)) in links.iter().enumerate() {
        out += &format!(
            "{i:>2}: {:<10} {:>9.4} {:>9.4} {:>11.2} {:>9.4} {:>10} {:>7}\n",
            state_name(q),
            ratio(q.loss_ppm),
            ratio(q.error_ppm),
            f64::from(q.throughput_kbps) / 1000.0,
            ratio(q.share_ppm),
            q.failovers,
            u8::from(q.has(LinkQuality::ACTIVE))
        );
    }
    out
}

pub fn run(args: &BondArgs, json_before: bool) -> Result<ExitCode> {
    let json = args.json || json_before;
    if let BondCmd::Rotate { peer } = &args.command {
        return rotate(*peer, args.home.as_deref().unwrap_or(Path::new(DEFAULT_HOME)), json);
    }
    let bpffs = args.bpffs.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_BPFFS));
    let pin = pin_path(&bpffs, args.instance.as_deref().unwrap_or(DEFAULT_INSTANCE));
    let links = match read_links(&pin) {
        Ok(links) => links,
        Err(e @ ReadError::NotRoot(_)) => {
            eprintln!("ztplanectl: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    let now_ms = now_ms();
    let newest = links.iter().map(|(_, q)| q.updated_unix_ms).max();
    if let Some(newest) = newest.filter(|&t| now_ms.saturating_sub(t) > STALE_MS) {
        eprintln!(
            "ztplanectl: warning: the link records in {} are {} s old (is ztplane still running?)",
            pin.display(),
            now_ms.saturating_sub(newest) / 1000
        );
    }
    let peers = by_peer(&links);
    let text = match &args.command {
        BondCmd::List if json => {
            format_json(&Value::Array(peers.iter().map(|(p, l)| peer_json(*p, l, now_ms)).collect()))
        }
        BondCmd::List => format_list(&peers),
        BondCmd::Show { peer } => {
            let Some(links) = peers.get(&peer.as_u64()) else {
                eprintln!("ztplanectl: peer {peer} is not bonded (no links in {})", pin.display());
                return Ok(ExitCode::from(1));
            };
            if json {
                format_json(&peer_json(peer.as_u64(), links, now_ms))
            } else {
                format_show(peer.as_u64(), links, now_ms)
            }
        }
        BondCmd::Rotate { .. } => unreachable!("handled above"),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// `POST /bond/rotate/<peer>` on the node's control socket.
fn rotate(peer: Address, home: &Path, json: bool) -> Result<ExitCode> {
    let socket = home.join(SOCKET_NAME);
    let request = Request::new("POST", &format!("/bond/rotate/{peer}"), Some(json!({})));
    let response = match control_socket::request(&socket, &request, ROTATE_TIMEOUT) {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            eprintln!("ztplanectl: {} not accessible (try again as root)", socket.display());
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!("no node answers at {} (is ztplane running? right --home?)", socket.display())
            });
        }
    };
    match response.status {
        200 if json => print!("{}", format_json(&response.body)),
        200 => println!("200 rotate OK"),
        400 => {
            eprintln!(
                "ztplanectl: the node did not rotate {peer}: it is not bonded, or its policy is not active-backup"
            );
            return Ok(ExitCode::from(1));
        }
        status => {
            eprintln!("ztplanectl: the node answered {status} {}", response.body);
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, remote: &str, flags: u8) -> LinkQuality {
        let mut q = LinkQuality {
            updated_unix_ms: 1_000_000,
            policy: 1,
            failover_interval_ms: 5000,
            packets_per_link: 64,
            latency_us: 1_250,
            pdv_us: 300,
            loss_ppm: 12_500,
            throughput_kbps: 940_000,
            share_ppm: 1_000_000,
            quality_ppm: 600_000,
            last_in_age_ms: 3,
            flags: flags | LinkQuality::HAS_LATENCY,
            local_socket: 2,
            local_port: 9993,
            failovers: 1,
            ..LinkQuality::default()
        };
        q.set_link_name(name);
        q.set_remote(remote.parse().unwrap());
        q
    }

    #[test]
    fn list_as_zerotier_cli() {
        let mut peers = BTreeMap::new();
        assert_eq!(
            format_list(&peers),
            "    <peer>                        <bondtype>     <links>\n      NONE\t\t\t\tNONE\t    NONE       NONE\n"
        );
        let eligible = LinkQuality::ELIGIBLE | LinkQuality::BONDED;
        peers.insert(
            0x77dcbe7120,
            vec![(0, link("eth0", "198.18.1.3:9993", eligible)), (1, link("eth1", "198.18.2.3:9993", 0))],
        );
        assert_eq!(
            format_list(&peers).lines().nth(1).unwrap(),
            "77dcbe7120                     active-backup         1/2"
        );
        assert_eq!(policy_name(9), "none");
    }

    #[test]
    fn show_as_zerotier_cli_with_quality() {
        let links = vec![
            (0, link("eth0", "198.18.1.3:9993", LinkQuality::ELIGIBLE | LinkQuality::BONDED | LinkQuality::ACTIVE)),
            (1, link("eth1", "[2001:db8::3]:9993", LinkQuality::ELIGIBLE)),
        ];
        let text = format_show(0x77dcbe7120, &links, 1_000_010);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Peer                   : 77dcbe7120");
        assert_eq!(lines[1], "Bond                   : active-backup");
        assert_eq!(lines[3], "Links                  : 2/2");
        assert_eq!(lines[4], "Failover Interval (ms) : 5000");
        assert_eq!(lines[7], "Packets Per Link       : 64");
        assert_eq!(lines[9].len(), 112);
        assert_eq!(lines[10], "-".repeat(120));
        assert_eq!(lines[11], format!(" 0: {:>26} {:>51} 0000000000000002         9993", "eth0", "198.18.1.3/9993"));
        assert!(lines[12].ends_with(" 2001:db8::3/9993 0000000000000002         9993"), "{}", lines[12]);
        // Ages move on from the record's time: 3 ms then, 13 ms now; never sent: -1.
        assert_eq!(
            lines[16],
            " 0:     1.25     0.30          0  0.6000          13          -1         1       1       0"
        );
        assert_eq!(lines[19].trim_end(), "idx state           loss       per      Mbit/s     share  failovers  active");
        assert_eq!(lines[21], " 0: up            0.0125    0.0000      940.00    1.0000          1       1");
    }

    #[test]
    fn json_has_zerotier_keys_and_ztplane_figures() {
        let links = vec![(0, link("eth0", "198.18.1.3:9993", LinkQuality::ELIGIBLE))];
        let v = peer_json(0x0123456789, &links, 1_000_000);
        assert_eq!(v["address"], "0123456789");
        assert_eq!((v["bondingPolicyCode"].as_u64(), v["bondingPolicyStr"].as_str()), (Some(1), Some("active-backup")));
        assert_eq!((v["numAliveLinks"].as_u64(), v["numTotalLinks"].as_u64()), (Some(1), Some(1)));
        let p = &v["paths"][0];
        assert_eq!(p["address"], "198.18.1.3/9993");
        assert_eq!(p["latencyMean"], 1.25);
        assert_eq!(p["packetLossRatio"], 0.0125);
        assert_eq!(p["lastOutAge"], Value::Null);
        assert_eq!(p["ztplane"]["throughputMbps"], 940.0);
        assert_eq!(p["ztplane"]["state"], "up");
    }
}
