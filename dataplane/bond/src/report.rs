//! The bond as zerotier-one's control plane shows it (bonding spec §9): the peer JSON's bond fields and
//! the per-path table of `zerotier-cli bond <peer> show`, with the same key names, so tools written for
//! zerotier-one read ours. Values that zerotier-one 1.14.1 leaves at 0 (loss and error ratios) are
//! measured here; `assignedFlowCount` counts active flows (balance-xor / balance-aware).

use serde::Serialize;

use crate::bond::Bond;
use crate::quality::DECISION_WINDOW_BUCKETS;
use crate::selection::TableKind;

/// Bond fields of the peer JSON (`GET /peer`, `zerotier-cli bond <peer> show`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BondReport {
    pub is_bonded: bool,
    pub bonding_policy_code: u8,
    pub bonding_policy_str: String,
    pub link_select_method: String,
    pub num_alive_links: usize,
    pub num_total_links: usize,
    pub failover_interval: u64,
    pub down_delay: u64,
    pub up_delay: u64,
    pub packets_per_link: u32,
    pub paths: Vec<PathReport>,
}

/// One nominated path (§9 per-path fields; latencies in ms, ages in ms).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathReport {
    pub ifname: String,
    pub address: String,
    /// Smoothed round-trip time.
    pub latency_mean: f64,
    /// Packet delay variation.
    pub latency_variance: f64,
    pub packet_loss_ratio: f64,
    pub packet_error_ratio: f64,
    pub assigned_flow_count: u32,
    pub last_in_age: u64,
    pub last_out_age: Option<u64>,
    pub bonded: bool,
    pub eligible: bool,
    pub given_link_speed: u64,
    pub relative_quality: f64,
}

impl BondReport {
    pub fn new(bond: &Bond, now_us: u64) -> Self {
        let settings = bond.settings();
        let table = bond.selection_handle().load_full();
        let flows = match &table.kind {
            TableKind::Flows { flows } | TableKind::FlowHash { flows, .. } => Some(flows.clone()),
            _ => None,
        };
        let total_score: f64 = bond.paths().iter().map(|p| p.score).sum();
        let ms = |us: u64| us / 1000;
        let paths: Vec<PathReport> = bond
            .paths()
            .iter()
            .map(|p| PathReport {
                ifname: p.link.clone(),
                address: p.remote.clone(),
                latency_mean: if p.quality.has_rtt() { p.quality.srtt_us() as f64 / 1000.0 } else { 0.0 },
                latency_variance: p.quality.pdv_us() / 1000.0,
                packet_loss_ratio: p.quality.loss_ratio(now_us, DECISION_WINDOW_BUCKETS),
                packet_error_ratio: p.quality.error_ratio(now_us, DECISION_WINDOW_BUCKETS),
                assigned_flow_count: flows.as_ref().map_or(0, |f| f.flows_on(p.id)),
                last_in_age: ms(now_us.saturating_sub(p.liveness.last_rx_us)),
                last_out_age: p.sent.last_sent_us.map(|t| ms(now_us.saturating_sub(t))),
                bonded: table.carries(p.id),
                eligible: p.usable(),
                given_link_speed: p.settings.capacity.unwrap_or(0),
                relative_quality: if total_score > 0.0 { p.score / total_score } else { 0.0 },
            })
            .collect();
        BondReport {
            is_bonded: !paths.is_empty(),
            bonding_policy_code: settings.base.code(),
            bonding_policy_str: settings.base.name().to_string(),
            link_select_method: settings.link_select.name().to_string(),
            num_alive_links: paths.iter().filter(|p| p.eligible).count(),
            num_total_links: paths.len(),
            failover_interval: settings.failover_interval_ms,
            down_delay: settings.down_delay_ms,
            up_delay: settings.up_delay_ms,
            packets_per_link: settings.packets_per_link,
            paths,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Policy, PolicySettings};
    use crate::{FlowHash, PacketKind, PathId};

    #[test]
    fn report_uses_zerotier_keys_and_measured_values() {
        let mut bond = Bond::new(PolicySettings::standard(Policy::BalanceXor), 0);
        bond.add_path("eth0", "198.18.1.3/9993", false, 0).unwrap();
        bond.add_path("eth1", "198.18.2.3/9993", false, 0).unwrap();
        for i in 0..8u64 {
            bond.select(FlowHash(crate::flow::fmix64(i + 1)), 1_000);
        }
        bond.on_data_sent(PathId(0), 1, 100, 2_000).unwrap();
        bond.on_packet_received(PathId(1), 2, 100, PacketKind::Data, 3_000).unwrap();
        let report = BondReport::new(&bond, 5_000);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["bondingPolicyCode"], 4);
        assert_eq!(json["bondingPolicyStr"], "balance-xor");
        assert_eq!(json["numTotalLinks"], 2);
        assert_eq!(json["failoverInterval"], 5000);
        let p0 = &json["paths"][0];
        for key in [
            "ifname",
            "latencyMean",
            "latencyVariance",
            "packetLossRatio",
            "packetErrorRatio",
            "assignedFlowCount",
            "lastInAge",
            "lastOutAge",
            "bonded",
            "eligible",
            "givenLinkSpeed",
            "relativeQuality",
        ] {
            assert!(!p0[key].is_null(), "{key}");
        }
        assert_eq!(p0["lastOutAge"], 3);
        assert_eq!(json["paths"][1]["lastInAge"], 2);
        let flows: u64 = (0..2).map(|i| json["paths"][i]["assignedFlowCount"].as_u64().unwrap()).sum();
        assert_eq!(flows, 8);
    }
}
