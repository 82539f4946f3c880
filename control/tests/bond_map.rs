//! `ztplanectl bond list` / `bond show` read a link quality map pinned with the layout the node
//! uses (`ztplane_ebpf_common::LinkQuality`), here written by the test itself: root, and the bpffs
//! mount `cargo xtask` sets up (/run/ztplane/bpffs), in an instance directory of this test's own.
mod common;

use aya::maps::{HashMap as BpfHashMap, MapData};
use common::{text, ztplanectl};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use ztplane_ebpf_common::{LINK_QUALITY_MAP, LinkKey, LinkQuality, MAX_LINKS};

const BPFFS: &str = "/run/ztplane/bpffs";
const PEER: u64 = 0x0123456789;

/// The test's instance directory in the bpffs, removed with its pin on drop.
struct Instance(PathBuf);

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0.join(LINK_QUALITY_MAP));
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn ctl(instance: &str, args: &[&str]) -> Output {
    std::process::Command::new(ztplanectl())
        .args(args)
        .args(["--bpffs", BPFFS, "--instance", instance])
        .output()
        .unwrap()
}

fn record(link: &str, remote: &str, flags: u8, state: u8) -> LinkQuality {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut q = LinkQuality {
        updated_unix_ms: now,
        policy: 1,
        failover_interval_ms: 5000,
        up_delay_ms: 0,
        down_delay_ms: 0,
        packets_per_link: 64,
        latency_us: 2_500,
        pdv_us: 400,
        loss_ppm: 20_000,
        error_ppm: 0,
        throughput_kbps: 123_456,
        share_ppm: if flags & LinkQuality::ACTIVE != 0 { 1_000_000 } else { 0 },
        quality_ppm: 500_000,
        failovers: 3,
        packets_sent: 1000,
        packets_received: 900,
        last_in_age_ms: 5,
        last_out_age_ms: 1,
        local_socket: 4,
        local_port: 9993,
        state,
        flags: flags | LinkQuality::HAS_LATENCY,
        ..LinkQuality::default()
    };
    q.set_link_name(link);
    q.set_remote(remote.parse().unwrap());
    q
}

#[test]
fn bond_list_and_show_read_the_pinned_map() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "pinning BPF maps needs root (run `cargo xtask test` as root)");
    assert!(Path::new(BPFFS).is_dir(), "no bpffs at {BPFFS} (`cargo xtask setup` mounts it)");
    let name = format!("ztplanectl-bond-{}", std::process::id());
    let instance = Instance(Path::new(BPFFS).join(&name));
    std::fs::create_dir_all(&instance.0).unwrap();

    // Before the node publishes anything: no map, a clear error naming it.
    let out = ctl(&name, &["bond", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no link quality map at"), "{out:?}");

    let mut map = BpfHashMap::<MapData, LinkKey, LinkQuality>::create(MAX_LINKS, 1).unwrap();
    let active = LinkQuality::ELIGIBLE | LinkQuality::BONDED | LinkQuality::ACTIVE;
    map.insert(LinkKey::new(PEER, 0), record("eth0", "198.18.1.3:9993", active, 0), 0).unwrap();
    map.insert(LinkKey::new(PEER, 1), record("eth1", "[2001:db8::3]:9993", 0, 2), 0).unwrap();
    map.pin(instance.0.join(LINK_QUALITY_MAP)).unwrap();

    let list = ctl(&name, &["bond", "list"]);
    assert_eq!(list.status.code(), Some(0), "{list:?}");
    assert!(list.stderr.is_empty(), "{list:?}");
    assert_eq!(
        text(&list),
        "    <peer>                        <bondtype>     <links>\n\
         0123456789                     active-backup         1/2\n"
    );

    for args in [&["bond", "list", "-j"][..], &["-j", "bond", "list"]] {
        let out = ctl(&name, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        let peers: Value = serde_json::from_slice(&out.stdout).unwrap();
        let peers = peers.as_array().unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0]["address"], "0123456789");
        assert_eq!(peers[0]["isBonded"], true);
        assert_eq!(peers[0]["bondingPolicyStr"], "active-backup");
        assert_eq!((peers[0]["numAliveLinks"].as_u64(), peers[0]["numTotalLinks"].as_u64()), (Some(1), Some(2)));
    }

    let show = ctl(&name, &["bond", "show", "0123456789", "-j"]);
    assert_eq!(show.status.code(), Some(0), "{show:?}");
    let peer: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(peer["failoverInterval"], 5000);
    assert_eq!(peer["packetsPerLink"], 64);
    let paths = peer["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 2);
    assert_eq!((paths[0]["ifname"].as_str(), paths[0]["address"].as_str()), (Some("eth0"), Some("198.18.1.3/9993")));
    assert_eq!(paths[1]["address"], "2001:db8::3/9993");
    assert_eq!(paths[0]["latencyMean"], 2.5);
    assert_eq!(paths[0]["packetLossRatio"], 0.02);
    assert_eq!((paths[0]["eligible"].as_bool(), paths[1]["eligible"].as_bool()), (Some(true), Some(false)));
    assert_eq!(paths[0]["ztplane"]["throughputMbps"], 123.456);
    assert_eq!(paths[0]["ztplane"]["share"], 1.0);
    assert_eq!(paths[0]["ztplane"]["failovers"], 3);
    assert_eq!(
        (paths[0]["ztplane"]["state"].as_str(), paths[1]["ztplane"]["state"].as_str()),
        (Some("up"), Some("down"))
    );
    assert_eq!(paths[0]["ztplane"]["active"], true);

    let show = ctl(&name, &["bond", "show", "0123456789"]);
    assert_eq!(show.status.code(), Some(0), "{show:?}");
    let table = text(&show);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "Peer                   : 0123456789");
    assert_eq!(lines[1], "Bond                   : active-backup");
    assert_eq!(lines[3], "Links                  : 1/2");
    assert!(
        lines[11].starts_with(" 0:                       eth0 ")
            && lines[11].ends_with("198.18.1.3/9993 0000000000000004         9993")
    );
    assert!(lines[16].starts_with(" 0:     2.50     0.40          0  0.5000 "), "{table}");
    assert!(
        lines[21].starts_with(" 0: up            0.0200    0.0000      123.46    1.0000          3       1"),
        "{table}"
    );
    assert!(lines[22].starts_with(" 1: down "), "{table}");

    // A peer without records, and the pin beside the interface directories of `xdp`.
    let out = ctl(&name, &["bond", "show", "1111111111"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("peer 1111111111 is not bonded"), "{out:?}");
    let out = ctl(&name, &["xdp", "stats"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no interfaces"), "{out:?}");
}
