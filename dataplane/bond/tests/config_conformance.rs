//! The real zerotier-one 1.14.1 configs from the conformance capture load with the expected values.

use std::path::PathBuf;

use ztplane_bond::config::*;

fn shared_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    assert!(dir.is_dir(), "reference material not found at {} (expected <workspace root>/../shared)", dir.display());
    dir
}

fn load(node: &str) -> (BondingConfig, Vec<ConfigWarning>) {
    let path = shared_dir().join(format!("conformance/zt-1.14.1/nodes/{node}.bond-ab.local.conf"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_local_conf(&text).unwrap_or_else(|e| panic!("{} rejected: {e}", path.display()))
}

fn check_node(node: &str, primary: &str, spare: &str) {
    let (config, warnings) = load(node);
    // allowTcpFallbackRelay is false in these files, so nothing to warn about.
    assert!(warnings.is_empty(), "{node}: unexpected warnings {warnings:?}");
    assert_eq!(config.default_policy, Some(PolicyRef::Custom("fast-ab".into())));
    assert!(config.peer_specific.is_empty());
    assert!(config.standard_overrides.is_empty());
    assert_eq!(config.policies.len(), 1);
    assert!(config.bonding_in_use());

    let policy = &config.policies["fast-ab"];
    let mut expected = PolicySettings::standard(Policy::ActiveBackup);
    expected.name = "fast-ab".into();
    expected.failover_interval_ms = 500;
    expected.links = vec![
        LinkSettings { mode: LinkMode::Primary, ..LinkSettings::new(primary) },
        LinkSettings { mode: LinkMode::Spare, ..LinkSettings::new(spare) },
    ];
    assert_eq!(policy, &expected);
    assert_eq!(policy.monitor_interval_ms(), 166, "ECHO every failoverInterval/3 (spec §1.1 capture)");
    assert_eq!(policy.link_select, LinkSelectMethod::Always);
    assert!(policy.allows_interface(primary) && policy.allows_interface(spare));
    assert!(!policy.allows_interface("eth0"), "only listed links may carry bonded paths");

    // Every peer (none is listed) gets the custom default.
    assert_eq!(config.policy_for_peer(0x1122334455), expected);

    // Normalised JSON round-trips.
    let again = parse_local_conf(&config.to_json().to_string()).expect("normalised form re-parses");
    assert_eq!(again.0, config);
    assert!(again.1.is_empty());
}

#[test]
fn node_a_bond_ab_config_loads() {
    check_node("a", "ea", "ea2");
}

#[test]
fn node_b_bond_ab_config_loads() {
    check_node("b", "eb", "eb2");
}

#[test]
fn normalised_json_shape() {
    let (config, _) = load("a");
    let json = config.to_json();
    let policy = &json["settings"]["policies"]["fast-ab"];
    assert_eq!(json["settings"]["defaultBondingPolicy"], "fast-ab");
    assert_eq!(policy["basePolicy"], "active-backup");
    assert_eq!(policy["failoverInterval"], 500);
    assert_eq!(policy["upDelay"], 0);
    assert_eq!(policy["downDelay"], 0);
    assert_eq!(policy["activeReselect"], "always");
    assert!(policy.get("packetsPerLink").is_none(), "balance-rr only, default");
    assert_eq!(policy["linkQuality"].as_object().map(|o| o.len()), Some(8));
    assert_eq!(policy["links"]["ea"]["mode"], "primary");
    assert_eq!(policy["links"]["ea2"]["mode"], "spare");
    let link_order: Vec<&String> = policy["links"].as_object().unwrap().keys().collect();
    assert_eq!(link_order, ["ea", "ea2"], "config order is preserved");
}
