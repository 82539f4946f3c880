//! The engine through its public API, without the simulator: per-packet decisions (allocation-free,
//! shared by threads), measurement inputs, errors.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ztplane_bond::config::{BalanceMode, LinkMode, LinkSettings, Policy, PolicySettings};
use ztplane_bond::measure::REORDER_WINDOW_US;
use ztplane_bond::{
    Bond, BondError, BondEvent, Delivery, FlowHash, PacketKind, PathId, QosRecord, Selection, Transmit, TxRecord,
    WorkerCursor,
};

/// Counts allocations per thread (tests run in parallel) to prove the decision allocates nothing.
struct CountingAlloc;
thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}
fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}
#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn bond_with(settings: PolicySettings, links: usize) -> Bond {
    let mut bond = Bond::new(settings, 0);
    for i in 0..links {
        bond.add_path(&format!("eth{i}"), "198.18.0.2:9993", false, 0).unwrap();
    }
    bond
}

/// An active-backup bond of one path whose peer acks it (a ztplane node).
fn acked_single_path() -> Bond {
    let mut bond = bond_with(PolicySettings::standard(Policy::ActiveBackup), 1);
    bond.set_peer_acks(true);
    bond
}

/// A path ack from the peer: `count` data packets of 1,000 bytes received, the newest `newest`.
fn ack(count: u64, newest: u64) -> ztplane_bond::PathAck {
    ztplane_bond::PathAck {
        received_count: count,
        received_bytes: count * 1000,
        newest_packet_id: newest,
        holding_us: 0,
    }
}

fn one(s: Selection<'_>) -> PathId {
    match s {
        Selection::One(p) => p,
        other => panic!("expected one path, got {other:?}"),
    }
}

#[test]
fn balance_rr_turns_carry_exactly_packets_per_link() {
    let bond = bond_with(PolicySettings { packets_per_link: 8, ..PolicySettings::standard(Policy::BalanceRr) }, 3);
    let table = bond.selection_handle().load_full();
    let mut cursor = WorkerCursor::new(0);
    let picks: Vec<u8> = (0..48).map(|_| one(table.select(FlowHash(1), 0, &mut cursor)).0).collect();
    let expected: Vec<u8> = (0..48).map(|i| ((i / 8) % 3) as u8).collect();
    assert_eq!(picks, expected, "8 packets per link, in turn (zerotier-one always sends 65)");
    // 0 = a random link per packet.
    let bond = bond_with(PolicySettings { packets_per_link: 0, ..PolicySettings::standard(Policy::BalanceRr) }, 4);
    let table = bond.selection_handle().load_full();
    let mut counts = [0u32; 4];
    for _ in 0..40_000 {
        counts[one(table.select(FlowHash(1), 0, &mut cursor)).0 as usize] += 1;
    }
    assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
}

#[test]
fn the_per_packet_decision_allocates_nothing() {
    let variants = [
        PolicySettings::standard(Policy::ActiveBackup),
        PolicySettings::standard(Policy::Broadcast),
        PolicySettings::standard(Policy::BalanceRr),
        PolicySettings::standard(Policy::BalanceXor),
        PolicySettings::standard(Policy::BalanceAware),
        PolicySettings { balance: BalanceMode::Packet, ..PolicySettings::standard(Policy::BalanceAware) },
    ];
    for settings in variants {
        let base = settings.base;
        let bond = bond_with(settings, 8);
        let handle = bond.selection_handle();
        let mut cursor = WorkerCursor::new(3);
        let mut sink = 0usize;
        let before = allocations();
        for i in 0..10_000u64 {
            let table = handle.load();
            sink += match table.select(FlowHash(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)), 1_000_000, &mut cursor) {
                Selection::One(p) => p.0 as usize,
                Selection::All(ps) => ps.len(),
                Selection::NoPath => 1000,
            };
        }
        let after = allocations();
        assert_eq!(after - before, 0, "{base:?} allocated during 10 000 decisions");
        assert!(sink < 1000 * 10_000, "{base:?} always decided");
    }
}

#[test]
fn workers_decide_concurrently_while_the_slow_path_republishes() {
    let settings =
        PolicySettings { balance: BalanceMode::FlowDynamic, ..PolicySettings::standard(Policy::BalanceAware) };
    let mut bond = bond_with(settings, 4);
    let handle = bond.selection_handle();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2u64)
            .map(|w| {
                let handle = handle.clone();
                s.spawn(move || {
                    let mut cursor = WorkerCursor::new(w);
                    let mut seen = [0u64; 4];
                    for i in 0..200_000u64 {
                        let table = handle.load();
                        match table.select(
                            FlowHash((i % 512).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                            2_000_000,
                            &mut cursor,
                        ) {
                            Selection::One(p) => seen[p.0 as usize] += 1,
                            other => panic!("{other:?}"),
                        }
                    }
                    seen
                })
            })
            .collect();
        // Meanwhile the owner keeps running timers, which republish tables as paths are probed and fail.
        for t in 0..200u64 {
            bond.handle_timeout(t * 50_000);
            while bond.poll_transmit().is_some() {}
        }
        for w in workers {
            let seen = w.join().unwrap();
            assert_eq!(seen.iter().sum::<u64>(), 200_000);
        }
    });
}

#[test]
fn qos_records_from_a_zerotier_peer_give_latency() {
    let mut bond = bond_with(PolicySettings::standard(Policy::ActiveBackup), 1);
    let p = PathId(0);
    // Odd IDs are sampled (zerotier-one's rule); even ones are not.
    for i in 0..20u64 {
        bond.on_data_sent(p, 2 * i + 1, 1000, i * 1_000).unwrap();
        bond.on_data_sent(p, 2 * i + 2, 1000, i * 1_000).unwrap();
    }
    // Each packet is reported 40 ms after it was sent, having been held 10 ms by the peer: RTT 30 ms.
    let records: Vec<QosRecord> = (0..20u64).map(|i| QosRecord { packet_id: 2 * i + 1, holding_ms: 10 }).collect();
    for (i, r) in records.iter().enumerate() {
        bond.on_qos_records(p, std::slice::from_ref(r), i as u64 * 1_000 + 40_000).unwrap();
    }
    let q = bond.quality(p, 100_000).unwrap();
    assert!((q.latency_ms - 30.0).abs() < 0.01, "{}", q.latency_ms);
    assert_eq!(q.rtt_samples, 20);
    // Unknown or even IDs are ignored.
    bond.on_qos_records(p, &[QosRecord { packet_id: 2, holding_ms: 0 }], 200_000).unwrap();
    assert_eq!(bond.quality(p, 200_000).unwrap().rtt_samples, 20);
}

#[test]
fn we_emit_qos_records_a_zerotier_peer_understands() {
    let mut bond = bond_with(PolicySettings::standard(Policy::ActiveBackup), 1);
    let p = PathId(0);
    for i in 0..10u64 {
        bond.on_packet_received(p, 100 + i, 500, PacketKind::Data, 1_000_000 + i * 1_000).unwrap();
    }
    bond.on_packet_received(p, 999, 100, PacketKind::Measurement, 1_000_000).unwrap();
    let mut qos = None;
    for t in (1_010_000..3_000_000).step_by(10_000) {
        bond.handle_timeout(t);
        while let Some(tx) = bond.poll_transmit() {
            if let Transmit::Qos { path, records } = tx {
                assert_eq!(path, p, "sent on the path it measures");
                qos.get_or_insert((t, records));
            }
        }
    }
    let (at, records) = qos.expect("a QoS packet within the QoS interval");
    let ids: Vec<u64> = records.iter().map(|r| r.packet_id).collect();
    assert_eq!(ids, vec![101, 103, 105, 107, 109], "odd IDs, ascending, measurement verbs excluded");
    assert_eq!(records[0].holding_ms as u64, (at - 1_001_000) / 1000);
}

#[test]
fn authentication_failures_and_malformed_packets_count_as_errors() {
    let mut bond = bond_with(PolicySettings::standard(Policy::Broadcast), 2);
    for i in 0..18u64 {
        bond.on_packet_received(PathId(1), 10 + i, 100, PacketKind::Control, 500_000).unwrap();
    }
    bond.on_auth_failure(PathId(1), 500_000).unwrap();
    bond.on_malformed(PathId(1), 500_000).unwrap();
    let q = bond.quality(PathId(1), 600_000).unwrap();
    assert!((q.error_ratio - 0.1).abs() < 1e-9, "{}", q.error_ratio);
    assert_eq!(bond.quality(PathId(0), 600_000).unwrap().error_ratio, 0.0);
}

#[test]
fn duplicate_data_is_suppressed_across_paths() {
    let mut bond = bond_with(PolicySettings::standard(Policy::Broadcast), 2);
    assert_eq!(bond.on_packet_received(PathId(0), 77, 100, PacketKind::Data, 0).unwrap(), Delivery::Deliver);
    assert_eq!(bond.on_packet_received(PathId(1), 77, 100, PacketKind::Data, 5).unwrap(), Delivery::Duplicate);
    assert_eq!(bond.stats().duplicates_suppressed, 1);
}

#[test]
fn rotate_and_errors() {
    let settings = PolicySettings {
        links: vec![
            LinkSettings { mode: LinkMode::Primary, ..LinkSettings::new("eth0") },
            LinkSettings { mode: LinkMode::Spare, ..LinkSettings::new("eth1") },
        ],
        ..PolicySettings::standard(Policy::ActiveBackup)
    };
    let mut bond = bond_with(settings, 2);
    assert_eq!(bond.active_path(), Some(PathId(0)));
    assert!(bond.rotate(10));
    assert_eq!(bond.active_path(), Some(PathId(1)));
    match bond.add_path("wlan0", "x", false, 0) {
        Err(BondError::LinkNotAllowed { link, .. }) => assert_eq!(link, "wlan0"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(bond.on_data_sent(PathId(9), 1, 1, 0), Err(BondError::UnknownPath(PathId(9)))));
    let mut big = Bond::new(PolicySettings::standard(Policy::BalanceRr), 0);
    for i in 0..64 {
        big.add_path(&format!("eth{i}"), "x", false, 0).unwrap();
    }
    assert!(matches!(big.add_path("eth64", "x", false, 0), Err(BondError::TooManyPaths { max: 64 })));
    assert!(!Bond::new(PolicySettings::standard(Policy::Broadcast), 0).rotate(0));
}

#[test]
fn worker_batches_and_ingress_pinning() {
    let settings =
        PolicySettings { balance: BalanceMode::FlowDynamic, ..PolicySettings::standard(Policy::BalanceAware) };
    let mut bond = bond_with(settings, 3);
    // A flow first seen arriving on path 2 is sent back on path 2.
    let flow = FlowHash(0xDEAD_BEEF_1234_5678);
    bond.on_flow_received(flow, PathId(2), 1_000).unwrap();
    let table = bond.selection_handle().load_full();
    let mut cursor = WorkerCursor::new(0);
    assert_eq!(one(table.select(flow, 1_000, &mut cursor)), PathId(2));
    // Known flows are not re-pinned by traffic arriving elsewhere.
    bond.on_flow_received(flow, PathId(0), 2_000).unwrap();
    assert_eq!(one(table.select(flow, 2_000, &mut cursor)), PathId(2));
    // A worker's batch is accounted as individual sends.
    let batch: Vec<TxRecord> =
        (0..10u64).map(|i| TxRecord { path: PathId(1), packet_id: i, bytes: 100, at_us: 3_000 + i }).collect();
    let bad = TxRecord { path: PathId(9), packet_id: 99, bytes: 1, at_us: 3_000 };
    assert_eq!(bond.on_data_sent_batch(&[batch.as_slice(), &[bad]].concat()), 1);
    assert_eq!(bond.path(PathId(1)).unwrap().sent.data_sent, 10);
    assert_eq!(bond.path(PathId(1)).unwrap().sent.data_bytes_sent, 1000);
}

#[test]
fn qos_packets_respect_zerotier_rate_gate() {
    // zerotier-one drops QoS arriving faster than (its QoS interval)/64 for long; we never send on a path
    // more often than every 250 ms, even when records pile up faster than 140 per packet.
    let mut bond = bond_with(PolicySettings::standard(Policy::ActiveBackup), 1);
    let mut sent_at = Vec::new();
    for ms in 0..3_000u64 {
        for k in 0..4u64 {
            bond.on_packet_received(PathId(0), (ms * 4 + k) * 2 + 1, 100, PacketKind::Data, ms * 1_000).unwrap();
        }
        bond.handle_timeout(ms * 1_000);
        while let Some(t) = bond.poll_transmit() {
            if let Transmit::Qos { records, .. } = t {
                assert!(records.len() <= 140);
                sent_at.push(ms);
            }
        }
    }
    assert!(sent_at.len() >= 10, "{sent_at:?}");
    assert!(sent_at.windows(2).all(|w| w[1] - w[0] >= 250), "{sent_at:?}");
}

#[test]
fn unpolled_events_are_capped_and_counted() {
    let mut bond = bond_with(PolicySettings::standard(Policy::ActiveBackup), 2);
    let rotations = ztplane_bond::bond::MAX_QUEUED_EVENTS as u64 + 500;
    for i in 0..rotations {
        assert!(bond.rotate(1_000 + i));
    }
    let mut queued = 0u64;
    let mut last = None;
    while let Some(e) = bond.poll_event() {
        queued += 1;
        last = Some(e);
    }
    assert_eq!(queued, ztplane_bond::bond::MAX_QUEUED_EVENTS as u64);
    assert!(bond.stats().events_dropped >= 500, "{:?}", bond.stats());
    // The newest are kept.
    assert!(matches!(last, Some(BondEvent::ActiveChanged { at_us, .. }) if at_us == 1_000 + rotations - 1));
}

#[test]
fn acks_are_announced_slowly_until_the_peer_acks_back() {
    let acks = |bond: &mut Bond| {
        let mut n = 0;
        while let Some(t) = bond.poll_transmit() {
            n += usize::from(matches!(t, Transmit::Ack { .. }));
        }
        n
    };
    // Two seconds of data, 2 ms apart.
    let received = |bond: &mut Bond, from_us: u64| {
        for i in 0..1000u64 {
            let at = from_us + i * 2_000;
            bond.on_packet_received(PathId(0), 2 * i + at, 1400, PacketKind::Data, at).unwrap();
            if bond.poll_timeout(at) <= at {
                bond.handle_timeout(at);
            }
        }
    };
    // A zerotier-one-like peer: no acks at all unless announcing.
    let mut quiet = bond_with(PolicySettings::standard(Policy::ActiveBackup), 1);
    received(&mut quiet, 0);
    assert_eq!(acks(&mut quiet), 0);
    // Announcing: about one a second while data arrives.
    let mut announcing = bond_with(PolicySettings::standard(Policy::ActiveBackup), 1);
    announcing.set_announce_acks(true);
    received(&mut announcing, 0);
    let first = acks(&mut announcing);
    assert!((1..=2).contains(&first), "{first} acks announced in two seconds");
    // Once the peer acks (a ztplane node), one every ACK_INTERVAL (2 ms).
    announcing.set_peer_acks(true);
    received(&mut announcing, 3_000_000);
    let fast = acks(&mut announcing);
    assert!((900..=1000).contains(&fast), "{fast} acks in two seconds");
}

#[test]
fn receipts_ahead_of_the_senders_log_are_carried_not_counted_as_loss() {
    let mut bond = acked_single_path();
    // 20 packets logged in two halves; the peer saw 14 by the time it acked the 10th logged one
    // (several cores sent them, and the log's order is only nearly the wire's), then all 20.
    for i in 1..=20u64 {
        bond.on_data_sent(PathId(0), i, 1000, 10_000 + i).unwrap();
    }
    bond.on_path_ack(PathId(0), ack(14, 10), 20_000).unwrap();
    bond.on_path_ack(PathId(0), ack(20, 20), 21_000).unwrap();
    let loss = bond.quality(PathId(0), 21_000).unwrap().loss;
    assert_eq!(loss, 0.0, "the early receipts were counted as loss later");
    // Real loss still shows: 10 more sent, 8 received.
    for i in 21..=30u64 {
        bond.on_data_sent(PathId(0), i, 1000, 22_000 + i).unwrap();
    }
    bond.on_path_ack(PathId(0), ack(28, 30), 30_000).unwrap();
    assert_eq!(bond.paths()[0].sent.pending_loss(), 0, "judged at once: the two may still come");
    // No newer ack for a window: the count is final for these packets; the shortfall must then
    // persist a window before it is loss.
    bond.handle_timeout(30_000 + REORDER_WINDOW_US);
    assert_eq!(bond.paths()[0].sent.pending_loss(), 2);
    let judged = 30_000 + 2 * REORDER_WINDOW_US;
    bond.handle_timeout(judged);
    let loss = bond.quality(PathId(0), judged).unwrap().loss;
    assert!((loss - 2.0 / 30.0).abs() < 1e-9, "loss {loss}");
}

#[test]
fn packets_an_ack_overtook_on_the_wire_are_not_loss_when_the_next_ack_counts_them() {
    let mut bond = acked_single_path();
    // Two cores seal packets 1..=10 in that order, but the core holding 4..=6 is preempted
    // before it transmits them: the peer acks 10 having seen 7, then sees the other three.
    for i in 1..=10u64 {
        bond.on_data_sent(PathId(0), i, 1000, 10_000 + i).unwrap();
    }
    bond.on_path_ack(PathId(0), ack(7, 10), 12_000).unwrap();
    assert_eq!(bond.quality(PathId(0), 12_000).unwrap().loss, 0.0, "judged before the reorder window");
    for i in 11..=20u64 {
        bond.on_data_sent(PathId(0), i, 1000, 20_000 + i).unwrap();
    }
    bond.on_path_ack(PathId(0), ack(20, 20), 25_000).unwrap();
    let p = &bond.paths()[0];
    assert_eq!((p.sent.pending_loss(), p.sent.lost), (0, 0));
    let later = 25_000 + 2 * REORDER_WINDOW_US;
    bond.handle_timeout(later);
    let q = bond.quality(PathId(0), later).unwrap();
    assert_eq!(q.loss, 0.0, "the late packets were counted as lost");
    // A shortfall nobody makes up within the window is loss: 10 more sent, the peer counts 5.
    for i in 21..=30u64 {
        bond.on_data_sent(PathId(0), i, 1000, later + i).unwrap();
    }
    bond.on_path_ack(PathId(0), ack(25, 30), later + 1_000).unwrap();
    let judged = later + 1_000 + REORDER_WINDOW_US;
    bond.handle_timeout(judged);
    bond.handle_timeout(judged + REORDER_WINDOW_US);
    let q = bond.quality(PathId(0), judged + REORDER_WINDOW_US).unwrap();
    assert!((q.loss - 5.0 / 30.0).abs() < 1e-9, "loss {}", q.loss);
    // Steady reordering: every ack names a packet logged after 3 still on their way, which the
    // next ack counts. Never the same 3 packets: no more loss.
    let mut next = 31u64;
    let mut t = judged + 200_000;
    for _ in 0..100 {
        for _ in 0..10 {
            bond.on_data_sent(PathId(0), next, 1000, t).unwrap();
            next += 1;
        }
        bond.on_path_ack(PathId(0), ack(25 + (next - 31) - 3, next - 1), t + 500).unwrap();
        bond.handle_timeout(t + 500);
        t += 2_000;
    }
    let p = &bond.paths()[0];
    assert_eq!((p.sent.lost, p.sent.pending_loss()), (5, 0), "steady reordering counted as loss");
}

#[test]
fn an_ack_that_overtakes_its_packets_send_record_counts_when_the_record_comes() {
    use ztplane_bond::PathAck;
    let mut bond = acked_single_path();
    let ack = |count: u64, newest: u64, holding_us: u32| PathAck {
        received_count: count,
        received_bytes: count * 1000,
        newest_packet_id: newest,
        holding_us,
    };
    // A LAN: packets 1..=10 go out at 1 ms spacing, the peer's ack for all ten arrives 300 µs
    // after the 10th was sent, and the owner gets the senders' records 2 ms after that.
    for i in 1..=9u64 {
        bond.on_data_sent(PathId(0), i, 1000, i * 1000).unwrap();
    }
    bond.on_path_ack(PathId(0), ack(10, 10, 100), 10_300).unwrap();
    let p = &bond.paths()[0];
    assert_eq!((p.sent.acks_matched, p.sent.acks_late, p.sent.acked_seq), (0, 0, 0), "applied before its record");
    bond.on_data_sent(PathId(0), 10, 1000, 10_000).unwrap();
    let p = &bond.paths()[0];
    assert_eq!((p.sent.acks_late, p.sent.acks_unmatched, p.sent.acked_seq), (1, 0, 10));
    assert_eq!(p.liveness.unacked_since_us, None, "everything sent is acked");
    // RTT from the ack's arrival, not from when the record came: 300 µs less 100 µs held.
    assert_eq!(bond.paths()[0].quality.srtt_us(), 200);
    assert_eq!(bond.quality(PathId(0), 12_300).unwrap().loss, 0.0);
    // A newer ack replaces a held one; an ack for a packet never logged stays unmatched.
    bond.on_path_ack(PathId(0), ack(11, 999, 0), 13_000).unwrap();
    bond.on_path_ack(PathId(0), ack(12, 998, 0), 14_000).unwrap();
    assert_eq!(bond.paths()[0].sent.acks_unmatched, 1);
}

#[test]
fn the_last_ack_of_a_burst_is_repeated_three_times_then_acks_stop() {
    let mut bond = bond_with(PolicySettings::standard(Policy::BalanceRr), 1);
    bond.set_peer_acks(true);
    for i in 0..10u64 {
        bond.on_packet_received(PathId(0), 100 + i, 1400, PacketKind::Data, 1_000 + i * 100).unwrap();
    }
    // Run the timers for 50 ms after the burst: one ack for it, then its three repeats.
    let mut acks = Vec::new();
    let mut now = 2_000;
    while now < 52_000 {
        if bond.poll_timeout(now) <= now {
            bond.handle_timeout(now);
        }
        while let Some(t) = bond.poll_transmit() {
            if let Transmit::Ack { ack, .. } = t {
                acks.push((now, ack.newest_packet_id, ack.received_count));
            }
        }
        now += 100;
    }
    assert_eq!(acks.len(), 4, "{acks:?}");
    assert!(acks.iter().all(|&(_, id, count)| id == 109 && count == 10), "{acks:?}");
    // The repeats are two ack intervals apart.
    assert!(acks.windows(2).skip(1).all(|w| w[1].0 - w[0].0 >= 4_000), "{acks:?}");
}

#[test]
fn balance_aware_spreads_the_transfers_not_the_idle_flows() {
    let mut bond = bond_with(PolicySettings::standard(Policy::BalanceAware), 2);
    let flow = |i: u64| FlowHash((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    // iperf3 -P 4: a control connection, then four transfers. Ingress pinning left three
    // transfers on path 0 and the fourth beside the (now idle) control connection on path 1:
    // five flows, three and two, which a count of flows calls balanced.
    let control = flow(0);
    let transfers: Vec<FlowHash> = (1..=4).map(flow).collect();
    for (f, p) in [(control, 1), (transfers[0], 0), (transfers[1], 0), (transfers[2], 0), (transfers[3], 1)] {
        bond.on_flow_received(f, PathId(p), 1_000).unwrap();
    }
    let handle = bond.selection_handle();
    let mut cursor = WorkerCursor::new(0);
    let mut packet_id = 0u64;
    for ms in 1..=2_500u64 {
        let now = ms * 1_000;
        let table = handle.load_full();
        // Each transfer sends 2 packets per ms: 2,000 per rebalancing interval, heavy
        // (HEAVY_FLOW_PACKETS); the control connection sends nothing more.
        for f in &transfers {
            for _ in 0..2 {
                one(table.select(*f, now, &mut cursor));
            }
        }
        if ms % 10 == 0 {
            for p in 0..2u8 {
                packet_id += 2;
                bond.on_packet_received(PathId(p), packet_id, 100, PacketKind::Control, now).unwrap();
            }
        }
        bond.handle_timeout(now);
        while bond.poll_transmit().is_some() {}
    }
    let table = handle.load_full();
    let on: Vec<u8> = transfers.iter().map(|f| one(table.select(*f, 2_500_000, &mut cursor)).0).collect();
    let on_zero = on.iter().filter(|&&p| p == 0).count();
    assert_eq!(on_zero, 2, "transfers on paths {on:?}: two per link");
    assert!(bond.stats().flow_moves >= 1);
    // A new transfer goes where fewer transfers are, whatever the weighted sequence says: add a
    // fifth and a sixth: they take different links.
    let (fifth, sixth) = (flow(5), flow(6));
    let a = one(table.select(fifth, 2_500_000, &mut cursor));
    let b = one(table.select(sixth, 2_500_000, &mut cursor));
    assert_ne!(a, b, "two new flows on one link");
}

/// Two ztplane nodes' bond over two paths under balance-rr, the peer side simulated: each path
/// carries 5 data packets per ms, the peer acks each path every 2 ms and answers probes, except
/// while `silent(ms, path)`. Returns a's path-down events as (ms, path, reason) and each path's
/// loss ratio at the end.
fn acked_rr_run(ms_total: u64, silent: impl Fn(u64, u8) -> bool) -> (Vec<(u64, u8, String)>, [f64; 2]) {
    use ztplane_bond::PathAck;
    let mut bond = bond_with(PolicySettings::standard(Policy::BalanceRr), 2);
    bond.set_peer_acks(true);
    let mut next_id = 1u64;
    let mut received = [0u64; 2];
    let mut newest = [0u64; 2];
    let mut echoes: Vec<(u8, u64)> = Vec::new();
    let mut downs = Vec::new();
    for ms in 1..=ms_total {
        let now = ms * 1_000;
        for path in 0..2u8 {
            for _ in 0..5 {
                next_id += 2;
                bond.on_data_sent(PathId(path), next_id, 1000, now).unwrap();
                if !silent(ms, path) {
                    received[path as usize] += 1;
                    newest[path as usize] = next_id;
                }
            }
        }
        let at = now + 300;
        for path in 0..2u8 {
            if silent(ms, path) {
                continue;
            }
            for (p, id) in echoes.iter().filter(|(p, _)| *p == path) {
                bond.on_echo_reply(PathId(*p), *id, at).unwrap();
            }
            echoes.retain(|(p, _)| *p != path);
            if ms % 2 == 0 {
                next_id += 2;
                bond.on_packet_received(PathId(path), next_id, 80, PacketKind::Measurement, at).unwrap();
                let i = path as usize;
                let ack = PathAck {
                    received_count: received[i],
                    received_bytes: received[i] * 1000,
                    newest_packet_id: newest[i],
                    holding_us: 300,
                };
                bond.on_path_ack(PathId(path), ack, at).unwrap();
            }
        }
        for t in [now, at] {
            bond.handle_timeout(t);
            while let Some(tx) = bond.poll_transmit() {
                if let Transmit::Echo { path } = tx {
                    next_id += 2;
                    bond.on_echo_sent(path, next_id, t).unwrap();
                    echoes.push((path.0, next_id));
                }
            }
            while let Some(event) = bond.poll_event() {
                if let BondEvent::PathDown { path, reason, .. } = event {
                    downs.push((ms, path, reason.name().to_string()));
                }
            }
        }
    }
    let loss = |p: u8| bond.quality(PathId(p), ms_total * 1_000).unwrap().loss;
    (downs, [loss(0), loss(1)])
}

#[test]
fn a_stall_that_silences_every_path_at_once_fails_none_and_a_cut_still_fails_its_path() {
    // The peer (or this host) stalls for 40 ms: acks stop on both paths together.
    let (stall, _) = acked_rr_run(1_000, |ms, _| (500..540).contains(&ms));
    assert!(stall.is_empty(), "a stall failed paths over: {stall:?}");
    // Path 0 alone goes silent at 500 ms: it goes down by its acks, well within 100 ms.
    let (cut, _) = acked_rr_run(1_000, |ms, path| path == 0 && ms >= 500);
    assert_eq!(cut.len(), 1, "{cut:?}");
    let (at, path, reason) = &cut[0];
    assert_eq!((*path, reason.as_str()), (0, "ack-timeout"));
    assert!(*at < 560, "detected at {at} ms");
}

#[test]
fn acks_naming_packets_earlier_in_the_log_keep_the_path_up_while_the_peer_counts_more() {
    let mut bond = acked_single_path();
    // 200 packets go out; the first ack names the 100th.
    for i in 1..=200u64 {
        bond.on_data_sent(PathId(0), i, 1000, 1_000 + i).unwrap();
    }
    bond.on_path_ack(PathId(0), ack(100, 100), 2_000).unwrap();
    // For 100 ms the peer keeps receiving (its count rises) while each ack names a packet logged
    // before the 100th: another core's sends, held up before the wire. No new RTT sample, but
    // the path delivers.
    let mut downs = Vec::new();
    for ms in 3..=100u64 {
        let now = ms * 1_000;
        bond.on_data_sent(PathId(0), 1_000 + ms, 1000, now).unwrap();
        if ms % 2 == 0 {
            bond.on_packet_received(PathId(0), 10_001 + 2 * ms, 80, PacketKind::Measurement, now).unwrap();
            bond.on_path_ack(PathId(0), ack(100 + ms, 40 + ms % 40), now).unwrap();
        }
        bond.handle_timeout(now);
        while bond.poll_transmit().is_some() {}
        while let Some(e) = bond.poll_event() {
            if let BondEvent::PathDown { reason, .. } = e {
                downs.push((ms, reason.name()));
            }
        }
    }
    assert!(downs.is_empty(), "the path was failed while the peer kept counting: {downs:?}");
}

#[test]
fn the_last_packets_of_a_burst_sent_out_of_log_order_are_acked_by_the_peers_count() {
    let mut bond = acked_single_path();
    for i in 1..=10u64 {
        bond.on_data_sent(PathId(0), i, 1000, 1_000 + i).unwrap();
    }
    // The 10th logged packet reached the wire before the 9th: the peer's last ack names the 9th
    // but counts all ten. Then the path carries nothing new.
    bond.on_path_ack(PathId(0), ack(10, 9), 2_000).unwrap();
    let p = &bond.paths()[0];
    assert_eq!((p.sent.acked_seq, p.liveness.unacked_since_us), (10, None), "the 10th still awaits an ack");
    // The peer answers probes at once.
    for ms in 3..=300u64 {
        bond.handle_timeout(ms * 1_000);
        while let Some(t) = bond.poll_transmit() {
            if let Transmit::Echo { path } = t {
                let id = 1_001 + 2 * ms;
                bond.on_echo_sent(path, id, ms * 1_000).unwrap();
                bond.on_echo_reply(path, id, ms * 1_000 + 300).unwrap();
            }
        }
        while let Some(e) = bond.poll_event() {
            assert!(!matches!(e, BondEvent::PathDown { .. }), "{e:?} at {ms} ms");
        }
    }
    assert_eq!(bond.quality(PathId(0), 300_000).unwrap().loss, 0.0);
}

#[test]
fn what_a_path_lost_while_it_was_down_is_not_its_loss_once_it_is_back() {
    // Path 0 is cut for 200 ms and comes back; everything sent on it meanwhile is lost.
    let (downs, loss) = acked_rr_run(1_500, |ms, path| path == 0 && (500..700).contains(&ms));
    assert_eq!(downs.len(), 1, "{downs:?}");
    assert_eq!(loss, [0.0, 0.0], "the outage's packets counted as the links' loss");
}
