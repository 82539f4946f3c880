//! What accepted configurations mean: values, defaults, 2020 mappings, resolution, warnings, round-trips.

use std::path::PathBuf;

use ztplane_bond::config::*;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

fn parse(text: &str) -> (BondingConfig, Vec<ConfigWarning>) {
    parse_local_conf(text).unwrap_or_else(|e| panic!("rejected: {e}\n{text}"))
}

fn warning_paths(warnings: &[ConfigWarning]) -> Vec<&str> {
    warnings.iter().map(|w| w.path.as_str()).collect()
}

#[track_caller]
fn assert_close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
}

#[test]
fn full_current_schema() {
    let (config, warnings) = parse(&fixture("full.local.conf"));
    assert!(warnings.is_empty(), "only current keys, so no warnings: {warnings:#?}");

    let wan = &config.policies["wan-ab"];
    let expected_wan = PolicySettings {
        name: "wan-ab".into(),
        base: Policy::ActiveBackup,
        failover_interval_ms: 200,
        up_delay_ms: 1000,
        down_delay_ms: 50,
        link_select: LinkSelectMethod::Better,
        packets_per_link: DEFAULT_PACKETS_PER_LINK,
        balance: BalanceMode::FlowDynamic,
        quality: LinkQualitySpec {
            lat_max_ms: 150.0,
            pdv_max_ms: 20.0,
            plr_max: 0.01,
            per_max: 0.001,
            weights: QualityWeights { lat: 0.4, pdv: 0.3, plr: 0.2, per: 0.1 },
        },
        links: vec![
            LinkSettings {
                mode: LinkMode::Primary,
                failover_to: Some("lte0".into()),
                ipv_pref: IpvPref::V4ThenV6,
                capacity: Some(1000),
                mtu: Some(1500),
                ..LinkSettings::new("fiber0")
            },
            LinkSettings {
                mode: LinkMode::Spare,
                failover_to: Some("sat0".into()),
                ipv_pref: IpvPref::V6,
                capacity: Some(50),
                ..LinkSettings::new("lte0")
            },
            LinkSettings {
                mode: LinkMode::Spare,
                ipv_pref: IpvPref::V4,
                capacity: Some(10),
                enabled: false,
                mtu: Some(1280),
                ..LinkSettings::new("sat0")
            },
        ],
    };
    assert_eq!(wan, &expected_wan);
    assert!(!wan.allows_interface("sat0"), "disabled link");
    assert!(wan.allows_interface("lte0"));

    let aware = &config.policies["lan-aware"];
    assert_eq!(
        (aware.base, aware.balance, aware.failover_interval_ms),
        (Policy::BalanceAware, BalanceMode::FlowStatic, 1000)
    );
    let allocs: Vec<Option<f64>> = aware.links.iter().map(|l| l.alloc).collect();
    assert_eq!(allocs, [Some(0.75), Some(0.25)]);
    assert!(aware.links.iter().all(|l| l.enabled), "enabled: 1 is true");

    let stripe = &config.policies["stripe"];
    assert_eq!((stripe.base, stripe.packets_per_link), (Policy::BalanceRr, 0));

    // Resolution: peer-specific first, then the default.
    assert_eq!(config.default_policy, Some(PolicyRef::Custom("wan-ab".into())));
    assert_eq!(&config.policy_for_peer(0x0123456789), aware);
    assert_eq!(&config.policy_for_peer(0xabcdef0123), stripe, "addresses are case-insensitive");
    assert_eq!(config.policy_for_peer(0x1111111111), PolicySettings::standard(Policy::Broadcast));
    assert_eq!(config.policy_for_peer(0x2222222222).base, Policy::None, "a peer can be opted out");
    assert_eq!(&config.policy_for_peer(0x3333333333), wan);
    assert!(config.bonding_in_use());

    let (again, again_warnings) = parse(&config.to_json().to_string());
    assert_eq!(again, config);
    assert!(again_warnings.is_empty(), "{again_warnings:#?}");
}

#[test]
fn legacy_2020_keys_are_mapped_with_warnings() {
    let (config, warnings) = parse(&fixture("legacy-2020.local.conf"));
    let paths = warning_paths(&warnings);
    for expected in [
        "settings.multipathMode",
        "settings.policies.old-aware.monitorInterval",
        "settings.policies.old-aware.linkMonitorStrategy",
        "settings.policies.old-aware.flowRebalanceStrategy",
        "settings.policies.old-aware.maxAcceptableLatency",
        "settings.policies.old-aware.maxAcceptablePacketDelayVariance",
        "settings.policies.old-aware.maxAcceptablePacketLossRatio",
        "settings.policies.old-aware.maxAcceptablePacketErrorRatio",
        "settings.policies.old-aware.qualityWeights",
        "settings.policies.old-aware.slaves",
        "settings.policies.old-aware.slaves.eth0.speed",
        "settings.policies.old-aware.slaves.eth0.upDelay",
        "settings.policies.old-aware.slaves.eth0.alloc",
        "settings.policies.old-aware.slaves.eth1.speed",
        "settings.policies.old-aware.slaves.eth1.failoverInterval",
        "settings.policies.old-aware.slaves.eth1.alloc",
        "settings.policies.old-rr.packetsPerSlave",
        "settings.policies.old-rr.allowFlowHashing",
        "settings.broadcast",
        "settings.broadcast.dedup",
        "settings.active-backup",
        "settings.active-backup.slaveSelectMethod",
        "settings.active-backup.slaves",
    ] {
        assert!(paths.contains(&expected), "no warning at {expected}; got {paths:#?}");
    }
    // Renamed keys name the current key.
    let speed = warnings.iter().find(|w| w.path == "settings.policies.old-aware.slaves.eth0.speed").unwrap();
    assert!(speed.message.contains("capacity"), "{speed}");
    let quality = warnings.iter().find(|w| w.path == "settings.policies.old-aware.qualityWeights").unwrap();
    assert!(quality.message.contains("linkQuality") && quality.message.contains("ltm=0.2"), "{quality}");

    let aware = &config.policies["old-aware"];
    assert_eq!(aware.failover_interval_ms, 3000);
    assert_close(aware.quality.lat_max_ms, 120.0);
    assert_close(aware.quality.pdv_max_ms, 30.0);
    assert_close(aware.quality.plr_max, 0.05);
    assert_close(aware.quality.per_max, 0.02);
    // lat .3 / pdv .3 / plr .1 / per .1 kept (ltm .2 dropped), rescaled by 1/0.8.
    let w = aware.quality.weights;
    assert_close(w.lat, 0.375);
    assert_close(w.pdv, 0.375);
    assert_close(w.plr, 0.125);
    assert_close(w.per, 0.125);
    let capacities: Vec<Option<u64>> = aware.links.iter().map(|l| l.capacity).collect();
    assert_eq!(capacities, [Some(10000), Some(1000)]);
    assert_close(aware.links[0].alloc.unwrap(), 128.0 / 255.0);
    assert_close(aware.links[1].alloc.unwrap(), 127.0 / 255.0);

    assert_eq!(config.policies["old-rr"].packets_per_link, 8);

    let ab = config.resolve(&PolicyRef::Standard(Policy::ActiveBackup));
    assert_eq!(ab.link_select, LinkSelectMethod::Failure);
    assert_eq!(ab.links.iter().map(|l| l.mode).collect::<Vec<_>>(), [LinkMode::Primary, LinkMode::Primary]);
    assert_eq!(ab.links[0].failover_to.as_deref(), Some("eth1"));
    assert_eq!(config.resolve(&PolicyRef::Standard(Policy::Broadcast)).base, Policy::Broadcast);
    // Not overridden: defaults.
    assert_eq!(config.resolve(&PolicyRef::Standard(Policy::BalanceXor)), PolicySettings::standard(Policy::BalanceXor));

    let (again, _) = parse(&config.to_json().to_string());
    assert_eq!(again, config);
}

#[test]
fn defaults_match_zerotier_one_1_14_1() {
    let p = PolicySettings::standard(Policy::BalanceRr);
    assert_eq!(p.failover_interval_ms, 5000);
    assert_eq!((p.up_delay_ms, p.down_delay_ms), (0, 0));
    assert_eq!(p.link_select, LinkSelectMethod::Always);
    assert_eq!(p.packets_per_link, 64);
    assert_eq!(p.monitor_interval_ms(), 1666);
    let q = LinkQualitySpec::default();
    assert_eq!((q.lat_max_ms, q.pdv_max_ms, q.plr_max, q.per_max), (500.0, 100.0, 0.001, 0.0001));
    assert_eq!(q.weights, QualityWeights { lat: 0.25, pdv: 0.25, plr: 0.25, per: 0.25 });
    assert!(p.links.is_empty() && p.allows_interface("anything"));
    let link = LinkSettings::new("eth0");
    assert_eq!(
        (link.mode, link.ipv_pref, link.enabled, link.capacity, link.mtu),
        (LinkMode::Primary, IpvPref::Any, true, None, None)
    );
}

#[test]
fn no_bonding_without_settings() {
    for text in ["{}", r#"{"settings": {}}"#, r#"{"settings": {"defaultBondingPolicy": "none"}}"#] {
        let (config, warnings) = parse(text);
        assert!(warnings.is_empty());
        assert!(!config.bonding_in_use(), "{text}");
        assert_eq!(config.policy_for_peer(0x0102030405).base, Policy::None);
    }
}

#[test]
fn standard_default_policy() {
    for policy in Policy::ALL {
        let (config, _) = parse(&format!(r#"{{"settings": {{"defaultBondingPolicy": "{}"}}}}"#, policy.name()));
        assert_eq!(config.default_policy, Some(PolicyRef::Standard(policy)));
        assert_eq!(config.policy_for_peer(0x0102030405), PolicySettings::standard(policy));
        assert_eq!(config.bonding_in_use(), policy != Policy::None);
    }
}

#[test]
fn link_mode_defaults() {
    // Another link is explicitly primary: unspecified links are spare (zerotier-one's default).
    let (config, warnings) = parse(
        r#"{"settings": {"policies": {"p": {"basePolicy": "active-backup",
            "links": {"a": {"mode": "primary"}, "b": {}, "c": {}}}}}}"#,
    );
    let modes: Vec<LinkMode> = config.policies["p"].links.iter().map(|l| l.mode).collect();
    assert_eq!(modes, [LinkMode::Primary, LinkMode::Spare, LinkMode::Spare]);
    assert!(warnings.is_empty());

    // No explicit primary: unspecified links are primary (zerotier-one would leave no primary), warned.
    let (config, warnings) = parse(
        r#"{"settings": {"policies": {"p": {"basePolicy": "balance-xor",
            "links": {"a": {}, "b": {"mode": "spare"}}}}}}"#,
    );
    let modes: Vec<LinkMode> = config.policies["p"].links.iter().map(|l| l.mode).collect();
    assert_eq!(modes, [LinkMode::Primary, LinkMode::Spare]);
    assert_eq!(warning_paths(&warnings), ["settings.policies.p.links"]);
}

#[test]
fn every_link_spare_is_warned() {
    let (config, warnings) = parse(
        r#"{"settings": {"policies": {"p": {"basePolicy": "active-backup",
            "links": {"a": {"mode": "spare"}, "b": {"mode": "spare"}}}}}}"#,
    );
    assert!(config.policies["p"].links.iter().all(|l| l.mode == LinkMode::Spare));
    assert_eq!(warning_paths(&warnings), ["settings.policies.p.links"]);
}

#[test]
fn zero_capacity_and_mtu_mean_unset() {
    let (config, _) = parse(
        r#"{"settings": {"policies": {"p": {"basePolicy": "balance-aware",
            "links": {"a": {"mode": "primary", "capacity": 0, "mtu": 0}}}}}}"#,
    );
    let link = &config.policies["p"].links[0];
    assert_eq!((link.capacity, link.mtu), (None, None));
}

#[test]
fn partial_link_quality_is_applied_and_warned() {
    let (config, warnings) = parse(
        r#"{"settings": {"policies": {"p": {"basePolicy": "balance-aware",
            "linkQuality": {"lat_max": 80, "lat_weight": 0.5, "pdv_weight": 0.5}}}}}"#,
    );
    let q = config.policies["p"].quality;
    assert_eq!(q.lat_max_ms, 80.0);
    assert_eq!(q.pdv_max_ms, LinkQualitySpec::default().pdv_max_ms);
    assert_eq!(q.weights, QualityWeights { lat: 0.5, pdv: 0.5, plr: 0.0, per: 0.0 });
    assert_eq!(warning_paths(&warnings), ["settings.policies.p.linkQuality"]);
    assert!(warnings[0].message.contains("all 8 keys"));
}

#[test]
fn link_select_method_alias_is_applied() {
    let (config, warnings) =
        parse(r#"{"settings": {"policies": {"p": {"basePolicy": "active-backup", "linkSelectMethod": "optimize"}}}}"#);
    assert_eq!(config.policies["p"].link_select, LinkSelectMethod::Optimize);
    assert_eq!(warning_paths(&warnings), ["settings.policies.p.linkSelectMethod"]);
    assert!(warnings[0].message.contains("activeReselect"));
}

#[test]
fn settings_for_another_base_policy_are_warned() {
    let (config, warnings) = parse(
        r#"{"settings": {"policies": {"p": {"basePolicy": "balance-xor", "packetsPerLink": 4,
            "activeReselect": "failure", "balancePolicy": "packet",
            "links": {"a": {"mode": "primary", "failoverTo": "b"}, "b": {}}}}}}"#,
    );
    assert_eq!(config.policies["p"].packets_per_link, 4, "still stored");
    let mut paths = warning_paths(&warnings);
    paths.sort();
    assert_eq!(
        paths,
        [
            "settings.policies.p.activeReselect",
            "settings.policies.p.balancePolicy",
            "settings.policies.p.links.a.failoverTo",
            "settings.policies.p.packetsPerLink",
        ]
    );
    // The normalised form keeps the non-default values (same config, same warnings on re-parse).
    let (again, again_warnings) = parse(&config.to_json().to_string());
    assert_eq!(again, config);
    assert_eq!(again_warnings.len(), warnings.len());
}

#[test]
fn missing_base_policy_is_no_bond() {
    let (config, warnings) =
        parse(r#"{"settings": {"defaultBondingPolicy": "p", "policies": {"p": {"failoverInterval": 700}}}}"#);
    assert_eq!(config.policy_for_peer(5).base, Policy::None);
    assert_eq!(config.policy_for_peer(5).failover_interval_ms, 700);
    assert_eq!(warning_paths(&warnings), ["settings.policies.p.basePolicy"]);
}

#[test]
fn explicit_none_base_policy_is_warned() {
    let (config, warnings) = parse(r#"{"settings": {"policies": {"off": {"basePolicy": "none"}}}}"#);
    assert_eq!(config.policies["off"].base, Policy::None);
    assert_eq!(warning_paths(&warnings), ["settings.policies.off.basePolicy"]);
}

#[test]
fn non_bonding_settings() {
    let (_, warnings) = parse(
        r#"{"settings": {"primaryPort": 9993, "secondaryPort": 20000, "bind": ["0.0.0.0"],
            "multicoreEnabled": true, "concurrency": 2, "lowBandwidthMode": true, "flux": 1},
            "physical": {"whatever": [1, 2]}, "extra": {}}"#,
    );
    assert_eq!(warning_paths(&warnings), ["settings.flux", "extra"]);
}

#[test]
fn tcp_relay_is_forced_off_while_bonding() {
    let (_, warnings) = parse(
        r#"{"settings": {"defaultBondingPolicy": "active-backup", "allowTcpFallbackRelay": true, "forceTcpRelay": true}}"#,
    );
    assert_eq!(warning_paths(&warnings), ["settings.allowTcpFallbackRelay", "settings.forceTcpRelay"]);
    let (_, warnings) = parse(r#"{"settings": {"allowTcpFallbackRelay": true}}"#);
    assert!(warnings.is_empty(), "no bonding, nothing forced");
}

#[test]
fn enum_names_round_trip() {
    for p in Policy::ALL {
        assert_eq!(p.name().parse::<Policy>().unwrap(), p);
        assert_eq!(Policy::ALL[p.code() as usize], p);
    }
    for m in LinkSelectMethod::ALL {
        assert_eq!(m.name().parse::<LinkSelectMethod>().unwrap(), m);
    }
    for b in BalanceMode::ALL {
        assert_eq!(b.name().parse::<BalanceMode>().unwrap(), b);
    }
    for code in [0u64, 4, 6, 46, 64] {
        assert_eq!(IpvPref::from_code(code).unwrap().code() as u64, code);
    }
    assert_eq!("balance-tlb".parse::<Policy>().unwrap_err().kind, ConfigErrorKind::UnknownPolicy);
    assert!(IpvPref::from_code(5).is_none());
}

#[test]
fn ipv_pref_semantics() {
    assert!(IpvPref::V4.allows(false) && !IpvPref::V4.allows(true));
    assert!(IpvPref::V6.allows(true) && !IpvPref::V6.allows(false));
    assert!(IpvPref::V4ThenV6.allows(true) && IpvPref::V4ThenV6.prefers(false) && !IpvPref::V4ThenV6.prefers(true));
    assert!(IpvPref::V6ThenV4.allows(false) && IpvPref::V6ThenV4.prefers(true) && !IpvPref::V6ThenV4.prefers(false));
    assert!(IpvPref::Any.prefers(true) && IpvPref::Any.prefers(false));
}
