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
    // zerotier-one needs failoverInterval (5 s here; 0.52 s measured at its 0.5 s minimum).
    assert!(d < 300.0, "detection {d} ms");
    assert!(r.outage_ms < 300.0, "{}", r.outage_ms);
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
