//! Benchmarks: `cargo xtask bench NAME` runs `ztplane-bench NAME` in release mode.
//! Each prints a table with an in-run baseline and writes `target/bench/NAME.json` and a chart of the same
//! records, `target/bench/NAME.svg`; `ztplane-bench plot NAME...` redraws the charts from the JSON alone.
//! `ztplane-bench pktgen ...` is a tool rather than a benchmark: an AF_XDP traffic generator with a
//! latency histogram, run by hand between two interfaces (see `pktgen.rs`).
mod bond;
mod bond_live;
mod crypto;
mod gateway;
mod handoff;
mod io;
mod overlay;
mod peers;
mod pktgen;
mod plot;
mod report;

use anyhow::{Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first() else {
        bail!(
            "usage: ztplane-bench <io|handoff|crypto|bond|peers|overlay|bond-live|gateway> [options] | ztplane-bench plot NAME... \
             | ztplane-bench pktgen --tx-iface IF --rx-iface IF [options]"
        );
    };
    match name.as_str() {
        "crypto" => crypto::run(&args[1..]),
        "bond" => bond::run(&args[1..]),
        "io" => io::run(&args[1..]),
        "handoff" => handoff::run(&args[1..]),
        "peers" => peers::run(&args[1..]),
        "overlay" => overlay::run(&args[1..]),
        "bond-live" => bond_live::run(&args[1..]),
        "gateway" => gateway::run(&args[1..]),
        "plot" => report::replot(&args[1..], figure_for),
        "pktgen" => pktgen::run(&args[1..]),
        other => {
            bail!(
                "unknown benchmark {other:?} (known: io, handoff, crypto, bond, peers, overlay, bond-live, gateway; or plot NAME, pktgen)"
            )
        }
    }
}

/// The chart of each benchmark, drawn from its JSON records.
fn figure_for(name: &str) -> Option<report::FigureFn> {
    Some(match name {
        "crypto" => crypto::figure,
        "bond" => bond::figure,
        "io" => io::figure,
        "handoff" => handoff::figure,
        "peers" => peers::figure,
        "overlay" => overlay::figure,
        "bond-live" => bond_live::figure,
        "gateway" => gateway::figure,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    /// Records of each benchmark's JSON shape (values made up), and a text its chart must show.
    fn samples() -> Vec<(&'static str, Vec<Value>, &'static str)> {
        let crypto = |variant: &str, op: &str, bytes: u64, gbps: f64| {
            json!({"suite": 3, "variant": variant, "op": op, "bytes": bytes, "gbps": gbps,
                "reference": "openssl aes-256-gcm", "reference_gbps": 10.0, "ratio": gbps / 10.0})
        };
        let peers = |n: u64, ns: f64| {
            json!({"peers": n, "baseline_peers": 1000, "bytes_per_peer": 5000.0, "snapshot_bytes_per_peer": 500.0,
                "peer_get_ns": 16.0, "route_frame_ns": ns, "receive_ns": ns * 2.0, "receive_lookup_ns": ns,
                "hot_peers": 1000, "hot_route_frame_ns": 150.0, "hot_receive_ns": 240.0,
                "timer_us_per_peer_per_sim_s": 0.13})
        };
        vec![
            (
                "crypto",
                vec![
                    crypto("vaes", "armor", 64, 5.0),
                    crypto("vaes", "dearmor", 64, 5.2),
                    crypto("portable", "armor", 64, 2.8),
                    json!({"op": "identity_validate", "ms": 3.5}),
                ],
                "OpenSSL aes-256-gcm (baseline)",
            ),
            (
                "bond",
                vec![
                    json!({"policy": "broadcast", "links": 8, "ns_per_decision": 7.3, "baseline_ns": 144.0,
                        "ns_per_decision_burst32": 3.2}),
                    json!({"policy": "balance-xor", "links": 8, "threads": 2, "ns_per_decision": 21.5,
                        "baseline_ns": 123.0}),
                ],
                "naive HashMap selector (baseline)",
            ),
            (
                "io",
                vec![
                    json!({"mode": "kernel-bridge", "workers": 0, "bytes": 64, "mpps": 0.8, "gbps": 0.4}),
                    json!({"mode": "ztplane-fwd", "workers": 2, "bytes": 64, "mpps": 1.0, "gbps": 0.5}),
                ],
                "ztplane-fwd, 2 workers",
            ),
            (
                "handoff",
                vec![
                    json!({"mode": "inline", "suite": 1, "bytes": 1400, "workers": 1, "mpps": 0.72}),
                    json!({"mode": "handoff", "suite": 1, "bytes": 1400, "workers": 2, "mpps": 1.3}),
                ],
                "inline on one core (baseline)",
            ),
            ("peers", vec![peers(1000, 148.0), peers(100_000, 771.0)], "771 (×5.21)"),
            (
                "overlay",
                vec![
                    json!({"pair": "zerotier-zerotier", "from": "c", "to": "d", "streams": 1, "gbps": 0.95,
                        "rtt_ms": 0.43}),
                    json!({"pair": "ztplane-ztplane", "from": "a", "to": "b", "streams": 1, "gbps": 1.7,
                        "rtt_ms": 0.4}),
                    json!({"member": "a", "system": "ztplane", "idle_cpu_pct": 0.4, "rss_mib": 45.8}),
                    json!({"member": "c", "system": "zerotier-one", "idle_cpu_pct": 0.2, "rss_mib": 11.8}),
                ],
                "zerotier c → zerotier d (baseline)",
            ),
            (
                "bond-live",
                vec![
                    json!({"system": "ztplane", "policy": "active-backup", "outage_ms": 40, "lost": 4, "run": 1}),
                    json!({"system": "zerotier-one", "policy": "active-backup", "outage_ms": 520, "lost": 52,
                        "run": 1}),
                    json!({"system": "ztplane", "policy": "balance-rr", "streams": 4, "mbps": 540.0,
                        "ideal_mbps": 600.0}),
                    json!({"system": "zerotier-one", "policy": "balance-rr", "streams": 4, "mbps": null,
                        "ideal_mbps": 600.0, "error": "no bond"}),
                ],
                "zerotier-one 1.14.1, failoverInterval 500 (baseline)",
            ),
            (
                "gateway",
                vec![
                    json!({"system": "ztplane", "bytes": 64, "mpps": 0.42, "gbps": 0.215, "p50_us": 40.0,
                        "p99_us": 120.0, "p999_us": 300.0}),
                    json!({"system": "zerotier-one", "bytes": 64, "mpps": 0.08, "gbps": 0.041, "p50_us": 90.0,
                        "p99_us": 400.0, "p999_us": 900.0}),
                    json!({"system": "ztplane", "bytes": 1518, "mpps": 0.2, "gbps": 2.43, "p50_us": null,
                        "p99_us": null, "p999_us": null}),
                ],
                "zerotier-one 1.14.1, Linux bridge (baseline)",
            ),
        ]
    }

    #[test]
    fn every_benchmark_draws_its_records() {
        for (name, records, expected) in samples() {
            let figure = super::figure_for(name).unwrap_or_else(|| panic!("no chart for {name}"));
            let figure = figure(&records).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            let svg = crate::plot::render(&figure).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(svg.contains(&format!("bench {name}:")), "{name}: title missing");
            assert!(svg.contains(expected), "{name}: {expected:?} missing");
        }
    }

    #[test]
    fn a_chart_needs_records() {
        for name in ["crypto", "bond", "io", "handoff", "peers", "overlay", "bond-live", "gateway"] {
            assert!(super::figure_for(name).expect("chart")(&[]).is_err(), "{name} drew nothing");
        }
    }
}
