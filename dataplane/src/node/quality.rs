//! Per-link quality of every bonded peer, published for the control process (zerotier-bonding.md
//! §9: what `zerotier-cli bond list` / `bond <peer> show` print, plus ztplane's measured loss,
//! error ratio, throughput, share and failovers).
//!
//! The slow path writes one [`LinkQuality`] per (bonded peer, path) into a userspace BPF hash map
//! pinned at `<bpffs>/<instance>/link_quality` (layout: `ztplane_ebpf_common`), at most every
//! [`PUBLISH_INTERVAL_MS`], and deletes the records of paths and peers that are gone. `ztplanectl`
//! opens the pin and reads it whenever it likes: nothing is shared with the workers and no lock is
//! shared with the slow path, so a control process that hangs, dies or restarts never disturbs
//! the dataplane. The pin is root-only (0600), replaced at start and removed on a clean exit (as
//! the steering pins are); a node that cannot create it still runs, without these figures.
use crate::error::DataplaneError;
use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use ztplane_bond::failover::LinkState as BondLinkState;
use ztplane_bond::{Bond, BondReport};
use ztplane_ebpf_common::{LINK_QUALITY_MAP, LinkKey, LinkQuality, LinkState, MAX_LINKS};
use ztplane_node::{Instant, LocalSocket, Node};

/// Records are rewritten at most this often (ms of the node's clock).
pub const PUBLISH_INTERVAL_MS: u64 = 100;
/// `BPF_F_NO_PREALLOC`: memory in proportion to the records held, not to [`MAX_LINKS`].
const NO_PREALLOC: u32 = 1;

/// What a record carries besides the bond: when it was taken and the node's UDP port.
#[derive(Clone, Copy, Debug)]
pub struct Stamp {
    pub unix_ms: u64,
    pub local_port: u16,
}

/// The pinned map and what was last written to it.
pub struct QualityPublisher {
    map: BpfHashMap<MapData, LinkKey, LinkQuality>,
    pin: PathBuf,
    written: HashSet<LinkKey>,
    /// Bytes the bond had sent on each path at the previous publication (for the shares).
    sent_bytes: HashMap<LinkKey, u64>,
    last_ms: Option<u64>,
    full_reported: bool,
}

impl QualityPublisher {
    /// Creates the map and pins it as `pin_dir/link_quality`, replacing a pin a crashed run left.
    pub fn create(pin_dir: &Path) -> Result<Self, DataplaneError> {
        let pin = pin_dir.join(LINK_QUALITY_MAP);
        let bpffs =
            |what: &str, e: &dyn std::fmt::Display| DataplaneError::Bpffs(format!("{what} {}: {e}", pin.display()));
        std::fs::create_dir_all(pin_dir).map_err(|e| bpffs("creating the directory of", &e))?;
        let _ = std::fs::remove_file(&pin);
        let created = BpfHashMap::<MapData, LinkKey, LinkQuality>::create(MAX_LINKS, NO_PREALLOC)
            .map_err(|e| DataplaneError::Internal(format!("creating the link quality map: {e}")))?;
        // Pinning consumes the creating handle; the pin keeps the map, which is reopened through it.
        created.pin(&pin).map_err(|e| bpffs("pinning", &e))?;
        let opened = std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| bpffs("restricting", &e))
            .and_then(|()| MapData::from_pin(&pin).map_err(|e| bpffs("opening", &e)))
            .and_then(|data| Map::from_map_data(data).map_err(|e| bpffs("opening", &e)))
            .and_then(|map| BpfHashMap::try_from(map).map_err(|e| bpffs("opening", &e)));
        let map = match opened {
            Ok(map) => map,
            Err(e) => {
                let _ = std::fs::remove_file(&pin);
                return Err(e);
            }
        };
        Ok(QualityPublisher {
            map,
            pin,
            written: HashSet::new(),
            sent_bytes: HashMap::new(),
            last_ms: None,
            full_reported: false,
        })
    }

    pub fn pin(&self) -> &Path {
        &self.pin
    }

    /// Rewrites every bonded peer's records if [`PUBLISH_INTERVAL_MS`] has passed since the last
    /// time, and deletes the records of paths and peers that are gone.
    pub fn publish(&mut self, node: &Node, now: Instant, local_port: u16) {
        let bonds =
            node.bonded_peers().filter_map(|peer| node.bond(peer).map(|(bond, paths)| (peer.as_u64(), bond, paths)));
        self.publish_bonds(bonds, now, local_port);
    }

    /// [`QualityPublisher::publish`] for these bonds: (peer address, bond, the node's (local socket,
    /// remote) of each path index).
    pub fn publish_bonds<'a>(
        &mut self,
        bonds: impl Iterator<Item = (u64, &'a Bond, &'a [(LocalSocket, SocketAddr)])>,
        now: Instant,
        local_port: u16,
    ) {
        let now_ms = now.as_millis();
        if self.last_ms.is_some_and(|last| now_ms < last + PUBLISH_INTERVAL_MS) {
            return;
        }
        self.last_ms = Some(now_ms);
        let stamp = Stamp { unix_ms: unix_ms(), local_port };
        let mut current = HashSet::new();
        let mut sent_bytes = HashMap::new();
        for (peer, bond, paths) in bonds {
            // Bytes sent since the previous publication; a path seen for the first time starts now.
            let sent: Vec<u64> = bond
                .paths()
                .iter()
                .map(|p| {
                    let key = LinkKey::new(peer, u32::from(p.id.0));
                    let total = p.sent.data_bytes_sent;
                    sent_bytes.insert(key, total);
                    total.saturating_sub(self.sent_bytes.get(&key).copied().unwrap_or(total))
                })
                .collect();
            for (path, record) in link_records(bond, paths, now.as_micros(), &shares(&sent), stamp) {
                let key = LinkKey::new(peer, path);
                match self.map.insert(key, record, 0) {
                    Ok(()) => {
                        current.insert(key);
                    }
                    Err(e) if !self.full_reported => {
                        self.full_reported = true;
                        log::warn!(
                            "{}: cannot publish link {path} of {peer:010x} ({e}); at most {MAX_LINKS} links are published",
                            self.pin.display()
                        );
                    }
                    Err(_) => {}
                }
            }
        }
        for gone in self.written.difference(&current) {
            let _ = self.map.remove(gone);
        }
        self.written = current;
        self.sent_bytes = sent_bytes;
    }
}

impl Drop for QualityPublisher {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pin);
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A ratio in parts per million (clamped to [0, 1]).
fn ppm(ratio: f64) -> u32 {
    (ratio.clamp(0.0, 1.0) * 1e6).round() as u32
}

/// Each path's share (ppm) of the bytes the bond sent, from the bytes each path sent over the same
/// interval; all 0 when nothing was sent.
pub fn shares(sent: &[u64]) -> Vec<u32> {
    let total: u64 = sent.iter().sum();
    sent.iter().map(|&s| if total == 0 { 0 } else { ppm(s as f64 / total as f64) }).collect()
}

/// The records of one peer's bond: (path index, record) per path of the bond. `paths` are the
/// node's (local socket, remote) for each path index, `shares` the paths' shares (ppm), in the
/// order of `bond.paths()`.
///
/// Figures as the node's control socket reports them (`ztplane_bond::BondReport`: ages, flags,
/// flows, relative quality, and loss and error ratios over the bond's decision window), plus
/// the path's `QualityReport` for round-trip time, PDV and delivered throughput.
pub fn link_records(
    bond: &Bond,
    paths: &[(LocalSocket, SocketAddr)],
    now_us: u64,
    shares: &[u32],
    stamp: Stamp,
) -> Vec<(u32, LinkQuality)> {
    let report = BondReport::new(bond, now_us);
    let active_changes = bond.stats().active_changes;
    let sat = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    bond.paths()
        .iter()
        .zip(&report.paths)
        .zip(shares.iter().copied().chain(std::iter::repeat(0)))
        .map(|((p, r), share_ppm)| {
            let index = usize::from(p.id.0);
            let quality = bond.quality(p.id, now_us).ok();
            let mut flags = 0;
            for (on, flag) in [
                (r.bonded, LinkQuality::BONDED),
                (r.eligible, LinkQuality::ELIGIBLE),
                (bond.active_path() == Some(p.id), LinkQuality::ACTIVE),
                (p.quality.has_rtt(), LinkQuality::HAS_LATENCY),
            ] {
                if on {
                    flags |= flag;
                }
            }
            let state = match p.liveness.state {
                BondLinkState::Up => LinkState::Up,
                BondLinkState::Failing { .. } => LinkState::Failing,
                BondLinkState::Down { .. } => LinkState::Down,
                BondLinkState::Recovering { .. } => LinkState::Recovering,
            };
            let mut record = LinkQuality {
                updated_unix_ms: stamp.unix_ms,
                packets_sent: p.sent.data_sent,
                packets_received: p.received.data_received,
                failovers: p.liveness.failures,
                bond_active_changes: active_changes,
                latency_us: quality.as_ref().map_or(0, |q| (q.latency_ms * 1000.0).round() as u32),
                pdv_us: quality.as_ref().map_or(0, |q| (q.pdv_ms * 1000.0).round() as u32),
                loss_ppm: ppm(r.packet_loss_ratio),
                error_ppm: ppm(r.packet_error_ratio),
                throughput_kbps: quality.as_ref().map_or(0, |q| (q.throughput_mean_mbps * 1000.0).round() as u32),
                share_ppm,
                quality_ppm: ppm(r.relative_quality),
                link_speed_mbps: sat(r.given_link_speed),
                flows: r.assigned_flow_count,
                last_in_age_ms: sat(r.last_in_age),
                last_out_age_ms: r.last_out_age.map_or(u32::MAX, sat),
                failover_interval_ms: sat(report.failover_interval),
                up_delay_ms: sat(report.up_delay),
                down_delay_ms: sat(report.down_delay),
                packets_per_link: report.packets_per_link,
                local_port: stamp.local_port,
                policy: report.bonding_policy_code,
                state: state as u8,
                flags,
                ..LinkQuality::default()
            };
            record.set_link_name(&p.link);
            if let Some(&(local, remote)) = paths.get(index) {
                record.local_socket = local;
                record.set_remote(remote);
            }
            (u32::from(p.id.0), record)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ztplane_bond::config::{Policy, PolicySettings};
    use ztplane_bond::{PacketKind, PathId};

    #[test]
    fn shares_of_the_bytes_sent() {
        assert_eq!(shares(&[300, 100]), vec![750_000, 250_000]);
        assert_eq!(shares(&[0, 0]), vec![0, 0]);
        assert_eq!(shares(&[]), Vec::<u32>::new());
    }

    /// The record of each path carries the bond's report and quality in the shared layout's units.
    #[test]
    fn records_from_a_bond() {
        let mut bond = Bond::new(PolicySettings::standard(Policy::ActiveBackup), 0);
        bond.add_path("eth0", "198.18.1.3/9993", false, 0).unwrap();
        bond.add_path("eth1", "[2001:db8::3]/9993", true, 0).unwrap();
        bond.on_data_sent(PathId(0), 1, 1200, 2_000).unwrap();
        bond.on_data_sent(PathId(0), 2, 1200, 2_500).unwrap();
        bond.on_packet_received(PathId(1), 3, 100, PacketKind::Data, 3_000).unwrap();
        let paths: Vec<(LocalSocket, SocketAddr)> =
            vec![(7, "198.18.1.3:9993".parse().unwrap()), (8, "[2001:db8::3]:9993".parse().unwrap())];
        let stamp = Stamp { unix_ms: 1_700_000_000_000, local_port: 9993 };
        let records = link_records(&bond, &paths, 5_000, &[1_000_000, 0], stamp);
        assert_eq!(records.len(), 2);
        let report = BondReport::new(&bond, 5_000);
        let (i0, r0) = &records[0];
        let (i1, r1) = &records[1];
        assert_eq!((*i0, *i1), (0, 1));
        assert_eq!((r0.link_name(), r1.link_name()), ("eth0", "eth1"));
        assert_eq!(r0.remote(), Some(paths[0].1));
        assert_eq!(r1.remote(), Some(paths[1].1));
        assert_eq!((r0.local_socket, r1.local_socket, r0.local_port), (7, 8, 9993));
        assert_eq!(r0.updated_unix_ms, stamp.unix_ms);
        assert_eq!((r0.policy, r1.policy), (1, 1));
        assert_eq!(r0.failover_interval_ms as u64, report.failover_interval);
        assert_eq!((r0.up_delay_ms as u64, r0.down_delay_ms as u64), (report.up_delay, report.down_delay));
        assert_eq!(r0.packets_per_link, report.packets_per_link);
        assert_eq!((r0.packets_sent, r0.packets_received), (2, 0));
        assert_eq!((r1.packets_sent, r1.packets_received), (0, 1));
        assert_eq!((r0.share_ppm, r1.share_ppm), (1_000_000, 0));
        assert_eq!(r0.last_out_age_ms, 2, "sent at 2.5 ms, published at 5 ms");
        assert_eq!(r1.last_out_age_ms, u32::MAX, "never sent on");
        assert_eq!(r1.last_in_age_ms, 2);
        assert_eq!((r0.link_state(), r1.link_state()), (Some(LinkState::Up), Some(LinkState::Up)));
        // The flags mirror the report; exactly one path is active in active-backup.
        for ((_, r), p) in records.iter().zip(&report.paths) {
            assert_eq!(r.has(LinkQuality::BONDED), p.bonded);
            assert_eq!(r.has(LinkQuality::ELIGIBLE), p.eligible);
            assert_eq!(r.quality_ppm, ppm(p.relative_quality));
            assert!(!r.has(LinkQuality::HAS_LATENCY), "no round trip measured yet");
        }
        let active: Vec<u32> = records.iter().filter(|(_, r)| r.has(LinkQuality::ACTIVE)).map(|(i, _)| *i).collect();
        assert_eq!(active, bond.active_path().map(|p| u32::from(p.0)).into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn ratios_and_bounds() {
        assert_eq!((ppm(0.25), ppm(-1.0), ppm(2.0), ppm(f64::NAN)), (250_000, 0, 1_000_000, 0));
    }
}
