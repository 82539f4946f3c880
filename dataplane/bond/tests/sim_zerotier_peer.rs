//! Against a peer without ztplane path acks (what a zerotier-one 1.14.1 node provides: ECHO replies and
//! QOS_MEASUREMENT records only), the engine still measures latency and detects failure from silence.
mod sim_common;
use sim_common::*;
use ztplane_bond::config::{LinkSelectMethod, Policy};

const CUT: &str = r#"{"duration_ms": 12000, "seed": 21, "peer_acks": false,
    "links": [{"name": "eth0", "latency_ms": 12, "jitter_ms": 1}, {"name": "eth1", "latency_ms": 22, "jitter_ms": 1}],
    "events": [{"at_ms": 6000, "link": "eth0", "set": {"up": false}}],
    "traffic": {"flows": 4, "packets_per_second": 1000}}"#;

#[test]
fn silence_while_sending_triggers_probes_and_a_failover_well_before_failover_interval() {
    let r = run(CUT, active_backup(LinkSelectMethod::Always));
    assert_eq!(r.failovers.len(), 1, "{:?}", r.failovers);
    let d = r.failovers[0].detection_ms.unwrap();
    // zerotier-one needs failoverInterval (5 s here; 0.52 s measured at its 0.5 s minimum). It answers at
    // most one ECHO per 166 ms per path, so the 3 unanswered probes that prove failure are >= 170 ms apart:
    // up to 170 ms to the first probe after the cut, 340 ms to the third, and its timeout (was < 300 ms
    // when retries ignored the peer's rate limit, which made one lost OK(ECHO) a false failure).
    assert!(d < 600.0, "detection {d} ms");
    assert!(r.outage_ms < 600.0, "{}", r.outage_ms);
}

#[test]
fn lost_echo_replies_do_not_fail_a_healthy_path() {
    // 5% loss each way on a healthy link: an OK(ECHO) is lost now and then; the retry must wait for the peer's
    // ECHO rate limit (166 ms), or it is dropped too and the path is declared dead.
    let json = r#"{"duration_ms": 60000, "seed": 9, "peer_acks": false,
        "links": [{"name": "eth0", "latency_ms": 10, "loss": 0.05}, {"name": "eth1", "latency_ms": 20}],
        "traffic": {"flows": 4, "packets_per_second": 500}}"#;
    let r = run(json, active_backup(LinkSelectMethod::Always));
    let downs = r.events.iter().filter(|e| matches!(e, ztplane_bond::BondEvent::PathDown { .. })).count();
    assert_eq!(downs, 0, "{:?}", r.failovers);
}

#[test]
fn latency_comes_from_qos_records_and_echo_replies() {
    let r = run(CUT, policy(Policy::Broadcast));
    for (l, one_way) in r.links.iter().zip([12.0, 22.0]) {
        let rtt = l.estimated.latency_ms;
        assert!((rtt - 2.0 * one_way).abs() <= 0.1 * 2.0 * one_way, "{}: {rtt}", l.name);
    }
    assert_eq!(r.lost, 0);
}

#[test]
fn qos_based_loss_estimate_without_acks() {
    // Low rate so the peer's 420-entry QoS table never overflows (the estimate is only taken then).
    let json = r#"{"duration_ms": 30000, "seed": 5, "peer_acks": false,
        "links": [{"name": "eth0", "latency_ms": 10, "loss": 0.1}],
        "traffic": {"flows": 1, "packets_per_second": 200}}"#;
    let r = run(json, policy(Policy::Broadcast));
    let loss = r.links[0].estimated.loss;
    assert!((loss - 0.1).abs() <= 0.02, "{loss}");
}
