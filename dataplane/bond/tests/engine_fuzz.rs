//! Arbitrary event sequences never panic the engine (overflow checks are on in test builds), and the
//! per-packet decision always names a path the bond has.

use ztplane_bond::config::{BalanceMode, LinkMode, LinkSelectMethod, LinkSettings, Policy, PolicySettings};
use ztplane_bond::rng::SeededRng;
use ztplane_bond::{Bond, FlowHash, PacketKind, PathAck, PathId, QosRecord, Selection, TxRecord, WorkerCursor};

fn settings(rng: &mut SeededRng) -> PolicySettings {
    let base = Policy::ALL[rng.below(6) as usize];
    PolicySettings {
        failover_interval_ms: [10, 500, 5_000][rng.below(3) as usize],
        up_delay_ms: rng.below(2) * 300,
        down_delay_ms: rng.below(2) * 200,
        link_select: LinkSelectMethod::ALL[rng.below(4) as usize],
        packets_per_link: rng.below(3) as u32 * 7,
        balance: BalanceMode::ALL[rng.below(3) as usize],
        links: if rng.chance(0.5) {
            Vec::new()
        } else {
            (0..4)
                .map(|i| LinkSettings {
                    mode: if i == 0 { LinkMode::Primary } else { LinkMode::Spare },
                    failover_to: (i < 3).then(|| format!("eth{}", i + 1)),
                    capacity: rng.chance(0.5).then(|| rng.below(1000)),
                    ..LinkSettings::new(format!("eth{i}"))
                })
                .collect()
        },
        ..PolicySettings::standard(base)
    }
}

#[test]
fn random_event_sequences_do_not_panic() {
    let mut rng = SeededRng::new(99);
    for round in 0..60 {
        let s = settings(&mut rng);
        let mut bond = Bond::new(s, 0);
        bond.set_peer_acks(rng.chance(0.5));
        let mut now = rng.below(1_000_000);
        for i in 0..(1 + rng.below(6)) {
            let _ = bond.add_path(&format!("eth{i}"), "peer", rng.chance(0.3), now);
        }
        let mut cursor = WorkerCursor::new(round);
        for _ in 0..3_000 {
            // Mostly forward in time, sometimes backwards (a caller's clock glitch must not panic).
            now = if rng.chance(0.02) { now.saturating_sub(rng.below(100_000)) } else { now + rng.below(3_000) };
            let path = PathId(rng.below(8) as u8);
            let id = rng.next_u64();
            match rng.below(12) {
                0 => drop(bond.on_data_sent(path, id, rng.below(9000) as usize, now)),
                1 => drop(bond.on_packet_received(path, id, rng.below(9000) as usize, PacketKind::Data, now)),
                2 => drop(bond.on_packet_received(path, id, 40, PacketKind::Control, now)),
                3 => drop(bond.on_echo_sent(path, id, now)),
                4 => drop(bond.on_echo_reply(path, if rng.chance(0.5) { id } else { u64::MAX }, now)),
                5 => {
                    let records: Vec<QosRecord> = (0..rng.below(200))
                        .map(|_| QosRecord { packet_id: rng.next_u64() | 1, holding_ms: rng.below(70_000) as u16 })
                        .collect();
                    let _ = bond.on_qos_records(path, &records, now);
                }
                6 => {
                    let ack = PathAck {
                        received_count: rng.next_u64() >> rng.below(64),
                        received_bytes: rng.next_u64(),
                        newest_packet_id: id,
                        holding_us: rng.next_u64() as u32,
                    };
                    let _ = bond.on_path_ack(path, ack, now);
                }
                7 => drop(bond.on_auth_failure(path, now)),
                8 => drop(bond.on_flow_received(FlowHash(id), path, now)),
                9 => drop(bond.on_data_sent_batch(&[TxRecord { path, packet_id: id, bytes: 100, at_us: now }])),
                10 => drop(bond.rotate(now)),
                _ => {
                    bond.handle_timeout(now);
                    while bond.poll_transmit().is_some() {}
                    while bond.poll_event().is_some() {}
                    let _ = bond.poll_timeout(now);
                }
            }
            let table = bond.selection_handle().load_full();
            match table.select(FlowHash(rng.next_u64()), now, &mut cursor) {
                Selection::One(p) => assert!((p.0 as usize) < bond.paths().len(), "round {round}: {p:?}"),
                Selection::All(ps) => assert!(ps.iter().all(|p| (p.0 as usize) < bond.paths().len())),
                Selection::NoPath => assert!(bond.paths().is_empty(), "round {round}: no path with paths"),
            }
        }
        let _ = ztplane_bond::BondReport::new(&bond, now);
    }
}

#[test]
fn mutated_scenarios_are_rejected_or_run_cleanly() {
    use ztplane_bond::sim::{Scenario, run_policy};
    let base = r#"{"duration_ms": 800, "seed": 1, "links": [{"name": "eth0", "latency_ms": 10, "jitter_ms": 1, "loss": 0.1, "capacity_mbps": 50}, {"name": "eth1", "latency_ms": 20}], "events": [{"at_ms": 300, "link": "eth0", "set": {"up": false}}, {"at_ms": 500, "link": "eth1", "set": {"loss": 0.5, "latency_ms": 0}}], "traffic": {"flows": 4, "packets_per_second": 2000, "packet_bytes": 1400}}"#;
    let mut rng = SeededRng::new(5);
    let alphabet = b"0123456789-.e:,{}[]\" aeflnrstu";
    let (mut rejected, mut ran) = (0, 0);
    for _ in 0..400 {
        let mut bytes = base.as_bytes().to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(bytes.len() as u64) as usize;
            match rng.below(3) {
                0 => bytes[at] = alphabet[rng.below(alphabet.len() as u64) as usize],
                1 => drop(bytes.remove(at)),
                _ => bytes.insert(at, alphabet[rng.below(alphabet.len() as u64) as usize]),
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        match Scenario::from_json(&text) {
            Err(e) => {
                rejected += 1;
                assert!(e.to_string().starts_with("invalid scenario: "), "{e}");
            }
            Ok(s) => {
                if s.duration_ms <= 5_000 && s.traffic.packets_per_second <= 5_000.0 {
                    let policy = Policy::ALL[rng.below(6) as usize];
                    run_policy(&s, PolicySettings::standard(policy)).expect("a valid scenario runs");
                    ran += 1;
                }
            }
        }
    }
    assert!(rejected > 100 && ran > 20, "rejected {rejected}, ran {ran}");
}
