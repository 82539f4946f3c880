//! active-backup on the simulator: fast failover, each reselection method, failoverTo, delays, flaps.
mod sim_common;
use sim_common::*;
use ztplane_bond::BondEvent;
use ztplane_bond::config::{LinkMode, LinkSelectMethod, LinkSettings, Policy, PolicySettings};

fn cut_scenario(primary_ms: u32, spare_ms: u32, back_at_ms: Option<u32>, duration_ms: u32) -> String {
    let back =
        back_at_ms.map_or(String::new(), |t| format!(r#", {{"at_ms": {t}, "link": "eth0", "set": {{"up": true}}}}"#));
    format!(
        r#"{{"duration_ms": {duration_ms}, "seed": 7,
        "links": [{{"name": "eth0", "latency_ms": {primary_ms}, "jitter_ms": 1}}, {{"name": "eth1", "latency_ms": {spare_ms}, "jitter_ms": 1}}],
        "events": [{{"at_ms": 5000, "link": "eth0", "set": {{"up": false}}}}{back}],
        "traffic": {{"flows": 8, "packets_per_second": 2000, "packet_bytes": 1200}}}}"#
    )
}

#[test]
fn primary_cut_loses_at_most_100ms_with_default_settings() {
    for (primary, spare) in [(10, 30), (30, 10), (20, 20), (30, 30)] {
        let settings = active_backup(LinkSelectMethod::Always);
        assert_eq!(settings.failover_interval_ms, 5_000, "default zerotier-one failoverInterval");
        let r = run(&cut_scenario(primary, spare, None, 10_000), settings);
        let f = &r.failovers[0];
        assert_eq!((f.from.as_str(), f.to.as_str()), ("eth0", "eth1"));
        let detection = f.detection_ms.expect("caused by the cut");
        assert!(detection < 100.0, "{primary}/{spare} ms: detection {detection} ms");
        assert!(r.outage_ms <= 100.0, "{primary}/{spare} ms: outage {} ms", r.outage_ms);
        // Lost packets are those sent before detection (2 per ms, under 100 ms) plus those in
        // flight on the primary (up to 30 ms of them here).
        assert!(
            r.lost <= 260,
            "{primary}/{spare}: lost {} (outage {} ms, detection {detection} ms)",
            r.lost,
            r.outage_ms
        );
        assert_eq!(r.failovers.len(), 1, "no flapping: {:?}", r.failovers);
    }
}

#[test]
fn always_returns_to_the_primary_when_it_is_back() {
    let r = run(&cut_scenario(30, 10, Some(9_000), 16_000), active_backup(LinkSelectMethod::Always));
    assert_eq!(r.failovers.len(), 2, "{:?}", r.failovers);
    let back = &r.failovers[1];
    assert_eq!((back.from.as_str(), back.to.as_str(), back.reason.as_str()), ("eth1", "eth0", "reselect"));
    // Back within a probe interval (failoverInterval/3 = 1.67 s) plus an RTT.
    assert!(back.at_ms > 9_000.0 && back.at_ms < 9_000.0 + 1_800.0, "{}", back.at_ms);
    // Although eth0 is the slower link: `always` means the primary.
}

#[test]
fn better_returns_only_to_a_better_primary() {
    // Primary faster than the spare: goes back.
    let r = run(&cut_scenario(10, 30, Some(9_000), 16_000), active_backup(LinkSelectMethod::Better));
    assert_eq!(r.failovers.len(), 2, "{:?}", r.failovers);
    assert_eq!(r.failovers[1].to, "eth0");
    // Primary slower than the spare: stays on the spare.
    let r = run(&cut_scenario(30, 10, Some(9_000), 16_000), active_backup(LinkSelectMethod::Better));
    assert_eq!(r.failovers.len(), 1, "{:?}", r.failovers);
    let tail = r.share_between(link_index(&r, "eth1"), 12_000, 16_000);
    assert!(tail > 0.99, "stays on eth1: {tail}");
}

#[test]
fn failure_changes_only_when_the_active_link_fails() {
    let json = r#"{"duration_ms": 20000, "seed": 3,
        "links": [{"name": "eth0", "latency_ms": 10}, {"name": "eth1", "latency_ms": 20}],
        "events": [{"at_ms": 4000, "link": "eth0", "set": {"up": false}},
                   {"at_ms": 7000, "link": "eth0", "set": {"up": true}},
                   {"at_ms": 14000, "link": "eth1", "set": {"up": false}}],
        "traffic": {"flows": 4, "packets_per_second": 1000}}"#;
    let r = run(json, active_backup(LinkSelectMethod::Failure));
    let hops: Vec<(&str, &str, &str)> =
        r.failovers.iter().map(|f| (f.from.as_str(), f.to.as_str(), f.reason.as_str())).collect();
    assert_eq!(hops, vec![("eth0", "eth1", "failure"), ("eth1", "eth0", "failure")]);
    assert!(r.failovers[1].at_ms > 14_000.0 && r.failovers[1].detection_ms.unwrap() < 100.0);
    assert!(r.outage_ms <= 100.0, "{}", r.outage_ms);
}

#[test]
fn optimize_moves_to_the_best_link_after_the_hold_down() {
    // No primary preference: both links primary; eth0 is chosen first, eth1 is much better.
    let settings = PolicySettings {
        link_select: LinkSelectMethod::Optimize,
        links: vec![link("eth0", LinkMode::Primary), link("eth1", LinkMode::Primary)],
        quality: ztplane_bond::config::LinkQualitySpec { lat_max_ms: 100.0, ..Default::default() },
        ..policy(Policy::ActiveBackup)
    };
    let json = r#"{"duration_ms": 20000, "seed": 5,
        "links": [{"name": "eth0", "latency_ms": 40}, {"name": "eth1", "latency_ms": 5}],
        "traffic": {"flows": 2, "packets_per_second": 1000}}"#;
    let r = run(json, settings);
    assert_eq!(r.failovers.len(), 1, "{:?}", r.failovers);
    let f = &r.failovers[0];
    assert_eq!((f.from.as_str(), f.to.as_str(), f.reason.as_str()), ("eth0", "eth1", "reselect"));
    assert!(f.at_ms >= 15_000.0 && f.at_ms < 15_500.0, "after the 15 s hold-down: {}", f.at_ms);
    assert_eq!(r.lost, 0);
}

#[test]
fn failover_to_chain_is_followed() {
    let settings = PolicySettings {
        links: vec![
            LinkSettings { failover_to: Some("eth2".into()), ..link("eth0", LinkMode::Primary) },
            link("eth1", LinkMode::Spare),
            LinkSettings { failover_to: Some("eth1".into()), ..link("eth2", LinkMode::Spare) },
        ],
        ..policy(Policy::ActiveBackup)
    };
    let json = r#"{"duration_ms": 12000, "seed": 11,
        "links": [{"name": "eth0", "latency_ms": 10}, {"name": "eth1", "latency_ms": 10}, {"name": "eth2", "latency_ms": 25}],
        "events": [{"at_ms": 3000, "link": "eth0", "set": {"up": false}}, {"at_ms": 7000, "link": "eth2", "set": {"up": false}}],
        "traffic": {"flows": 4, "packets_per_second": 1000}}"#;
    let r = run(json, settings);
    let hops: Vec<(&str, &str)> = r.failovers.iter().map(|f| (f.from.as_str(), f.to.as_str())).collect();
    // eth1 scores as well as eth2 or better, but eth0's failoverTo names eth2, and eth2's names eth1.
    assert_eq!(hops, vec![("eth0", "eth2"), ("eth2", "eth1")]);
    assert!(r.outage_ms <= 100.0, "{}", r.outage_ms);
}

#[test]
fn down_delay_and_up_delay_are_honoured() {
    let settings = PolicySettings { down_delay_ms: 400, up_delay_ms: 3_000, ..active_backup(LinkSelectMethod::Always) };
    let r = run(&cut_scenario(10, 20, Some(8_000), 16_000), settings);
    assert_eq!(r.failovers.len(), 2, "{:?}", r.failovers);
    let down = r.failovers[0].detection_ms.unwrap();
    assert!((400.0..500.0).contains(&down), "downDelay 400 ms: {down}");
    let back = r.failovers[1].at_ms;
    assert!((11_000.0..12_800.0).contains(&back), "upDelay 3 s after the link is back at 8 s: {back}");
}

#[test]
fn a_flapping_link_is_held_down_longer_each_time() {
    // eth0 goes down for 0.5 s every 2.5 s; each return to it must wait longer (1 s, 2 s, 4 s, ...).
    let mut events = Vec::new();
    for i in 0..6 {
        let t = 2_000 + i * 2_500;
        events.push(format!(r#"{{"at_ms": {t}, "link": "eth0", "set": {{"up": false}}}}"#));
        events.push(format!(r#"{{"at_ms": {}, "link": "eth0", "set": {{"up": true}}}}"#, t + 500));
    }
    let json = format!(
        r#"{{"duration_ms": 20000, "seed": 2,
        "links": [{{"name": "eth0", "latency_ms": 10}}, {{"name": "eth1", "latency_ms": 15}}],
        "events": [{}], "traffic": {{"flows": 2, "packets_per_second": 1000}}}}"#,
        events.join(",")
    );
    let settings = PolicySettings { failover_interval_ms: 600, ..active_backup(LinkSelectMethod::Always) };
    let r = run(&json, settings);
    let ups: Vec<u64> = r
        .events
        .iter()
        .filter_map(|e| match e {
            BondEvent::PathUp { at_us, link, .. } if link == "eth0" => Some(*at_us),
            _ => None,
        })
        .collect();
    let downs: Vec<u64> = r
        .events
        .iter()
        .filter_map(|e| match e {
            BondEvent::PathDown { at_us, link, .. } if link == "eth0" => Some(*at_us),
            _ => None,
        })
        .collect();
    assert!(downs.len() >= 3, "{downs:?}");
    // Time from the link coming back (the event) to the path being used again.
    let waits: Vec<u64> = ups.iter().map(|&u| (u / 1000 - 2_500) % 2_500).collect();
    assert!(ups.len() < downs.len() + 1 && ups.len() >= 2, "ups {ups:?} downs {downs:?}");
    assert!(waits[1] > waits[0] + 500, "back-off grows: {waits:?}");
    // Fewer returns to eth0 than cuts: the back-off kept it out for some of the cycles.
    let returns = r.failovers.iter().filter(|f| f.to == "eth0").count();
    assert!(returns < 6, "{:?}", r.failovers);
}

#[test]
fn lossy_or_jittery_links_are_not_mistaken_for_dead_ones() {
    // Detection adapts to the measured loss rate (how many unconfirmed packets and unanswered probes are
    // needed) and to the recent RTT peak; up to 30% loss in both directions causes no false failover.
    for (loss, pps, jitter) in [(0.1, 2000, 8), (0.2, 200, 1), (0.3, 2000, 1), (0.3, 50, 1), (0.3, 2000, 8)] {
        let json = format!(
            r#"{{"duration_ms": 15000, "seed": 3,
            "links": [{{"name": "eth0", "latency_ms": 10, "jitter_ms": {jitter}, "loss": {loss}}}, {{"name": "eth1", "latency_ms": 20}}],
            "traffic": {{"flows": 8, "packets_per_second": {pps}}}}}"#
        );
        let r = run(&json, active_backup(LinkSelectMethod::Always));
        let downs = r.events.iter().filter(|e| matches!(e, BondEvent::PathDown { .. })).count();
        assert_eq!(downs, 0, "loss {loss}, {pps} packets/s, jitter {jitter} ms: {:?}", r.failovers);
        let est = r.links[0].estimated.loss;
        assert!((est - loss).abs() < 0.05, "loss {loss}: estimated {est}");
    }
}

#[test]
fn a_tiny_failover_interval_does_not_kill_healthy_links() {
    // 10 ms is the smallest failoverInterval the config accepts; links here have 20–60 ms RTTs.
    let settings = PolicySettings { failover_interval_ms: 10, ..active_backup(LinkSelectMethod::Always) };
    let r = run(&cut_scenario(10, 30, Some(7_000), 10_000), settings);
    let hops: Vec<(&str, &str)> = r.failovers.iter().map(|f| (f.from.as_str(), f.to.as_str())).collect();
    assert_eq!(hops, vec![("eth0", "eth1"), ("eth1", "eth0")], "{:?}", r.failovers);
    assert!(r.outage_ms <= 100.0);
}

#[test]
fn with_nothing_usable_traffic_follows_the_path_heard_most_recently() {
    // eth0 dies, then eth1; eth0 comes back at 4.5 s but upDelay (5 s) keeps it unusable. Meanwhile the
    // bond must send on eth0 (heard from again), not on the dead eth1.
    let json = r#"{"duration_ms": 12000, "seed": 3,
        "links": [{"name": "eth0", "latency_ms": 10}, {"name": "eth1", "latency_ms": 10}],
        "events": [{"at_ms": 3000, "link": "eth0", "set": {"up": false}},
                   {"at_ms": 3500, "link": "eth1", "set": {"up": false}},
                   {"at_ms": 4500, "link": "eth0", "set": {"up": true}}],
        "traffic": {"flows": 4, "packets_per_second": 1000}}"#;
    let settings = PolicySettings { up_delay_ms: 5_000, ..active_backup(LinkSelectMethod::Always) };
    let r = run(json, settings);
    let eth0 = r.share_between(link_index(&r, "eth0"), 6_000, 9_000);
    assert!(eth0 > 0.99, "on eth0 during its upDelay: {eth0}");
    // Lost: eth0's cut until eth1 takes over, eth1's cut until eth0 is back and heard (~1.1 s at 1/ms).
    assert!(r.lost <= 1_500, "lost {}", r.lost);
}

#[test]
fn a_primary_dead_from_the_start_is_an_outage_too() {
    // Nothing gets through until the dead primary is detected: the simulator's outage counts it (it used to
    // start measuring at the first delivery).
    let json = r#"{"duration_ms": 5000, "seed": 3,
        "links": [{"name": "eth0", "latency_ms": 10, "up": false}, {"name": "eth1", "latency_ms": 10}],
        "traffic": {"flows": 4, "packets_per_second": 1000}}"#;
    let r = run(json, active_backup(LinkSelectMethod::Always));
    // 1 packet per ms: the lost packets are (about) the time nothing was delivered.
    assert!(r.lost > 10, "lost {}", r.lost);
    assert!(r.outage_ms + 10.0 >= r.lost as f64, "outage {} ms, lost {}", r.outage_ms, r.lost);
    // Before any RTT sample the engine assumes 100 ms ± 50 ms (ack deadline ~307 ms), so a primary dead
    // from the start costs about that.
    assert!(r.outage_ms <= 400.0, "outage {} ms", r.outage_ms);
}
