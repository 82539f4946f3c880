//! The link quality map of `ztplane node` (root, the bpffs `cargo xtask` mounts at
//! /run/ztplane/bpffs): pinned root-only, a stale pin replaced, one record per (peer, path)
//! rewritten at most every 100 ms, records of gone paths and peers deleted, the pin removed when
//! the publisher goes. ztplanectl's side of the same map is control/tests/bond_map.rs.
use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use ztplane::node::quality::QualityPublisher;
use ztplane_bond::Bond;
use ztplane_bond::config::{Policy, PolicySettings};
use ztplane_ebpf_common::{LINK_QUALITY_MAP, LinkKey, LinkQuality};
use ztplane_node::{Instant, LocalSocket};

const BPFFS: &str = "/run/ztplane/bpffs";

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0.join(LINK_QUALITY_MAP));
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn records(pin: &Path) -> Vec<(LinkKey, LinkQuality)> {
    let map: BpfHashMap<MapData, LinkKey, LinkQuality> =
        BpfHashMap::try_from(Map::from_map_data(MapData::from_pin(pin).unwrap()).unwrap()).unwrap();
    let mut all: Vec<_> = map.iter().map(Result::unwrap).collect();
    all.sort_by_key(|(k, _)| *k);
    all
}

fn bond(links: &[&str]) -> (Bond, Vec<(LocalSocket, SocketAddr)>) {
    let mut bond = Bond::new(PolicySettings::standard(Policy::ActiveBackup), 0);
    let mut paths = Vec::new();
    for (i, link) in links.iter().enumerate() {
        let remote: SocketAddr = format!("198.18.{}.3:9993", i + 1).parse().unwrap();
        bond.add_path(link, &format!("{}/{}", remote.ip(), remote.port()), false, 0).unwrap();
        paths.push((i as u32 + 2, remote));
    }
    (bond, paths)
}

#[test]
fn published_replaced_pruned_and_removed() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "pinning BPF maps needs root (run `cargo xtask test` as root)");
    assert!(Path::new(BPFFS).is_dir(), "no bpffs at {BPFFS} (`cargo xtask setup` mounts it)");
    let dir = Dir(Path::new(BPFFS).join(format!("ztplane-quality-{}", std::process::id())));
    let pin = dir.0.join(LINK_QUALITY_MAP);

    // A pin left behind (a crashed node) is replaced by the next start's.
    let stale = QualityPublisher::create(&dir.0).unwrap();
    std::mem::forget(stale);
    let (a, a_paths) = bond(&["eth0", "eth1"]);
    let (b, b_paths) = bond(&["eth0"]);
    {
        let mut publisher = QualityPublisher::create(&dir.0).unwrap();
        assert_eq!(publisher.pin(), pin);
        assert_eq!(std::fs::metadata(&pin).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(records(&pin).is_empty());

        let both = || [(0xaaaaaaaaaa, &a, a_paths.as_slice()), (0xbbbbbbbbbb, &b, b_paths.as_slice())].into_iter();
        publisher.publish_bonds(both(), Instant::from_millis(1_000), 9993);
        let all = records(&pin);
        let keys: Vec<(u64, u32)> = all.iter().map(|(k, _)| (k.peer, k.path)).collect();
        assert_eq!(keys, [(0xaaaaaaaaaa, 0), (0xaaaaaaaaaa, 1), (0xbbbbbbbbbb, 0)]);
        assert_eq!(all[1].1.link_name(), "eth1");
        assert_eq!(all[1].1.remote(), Some(a_paths[1].1));
        assert_eq!((all[1].1.local_socket, all[1].1.local_port, all[1].1.policy), (3, 9993, 1));

        // Peer b is gone: within 100 ms nothing changes, after that its record goes.
        let only_a = || [(0xaaaaaaaaaa, &a, a_paths.as_slice())].into_iter();
        publisher.publish_bonds(only_a(), Instant::from_millis(1_050), 9993);
        assert_eq!(records(&pin).len(), 3);
        publisher.publish_bonds(only_a(), Instant::from_millis(1_100), 9993);
        let keys: Vec<(u64, u32)> = records(&pin).iter().map(|(k, _)| (k.peer, k.path)).collect();
        assert_eq!(keys, [(0xaaaaaaaaaa, 0), (0xaaaaaaaaaa, 1)]);
        publisher.publish_bonds(std::iter::empty(), Instant::from_millis(1_200), 9993);
        assert!(records(&pin).is_empty());
    }
    assert!(!pin.exists(), "the pin goes with the publisher (clean exit)");
}
