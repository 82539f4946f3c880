//! Each class of bad input is rejected with its kind and the exact JSON path of the offending value.

use ztplane_bond::config::*;

/// A local.conf whose only policy `p` (active-backup) has `policy_extra` merged into it.
fn with_policy(policy_extra: &str) -> String {
    format!(
        r#"{{"settings": {{"defaultBondingPolicy": "p", "policies": {{"p": {{"basePolicy": "active-backup"{}{policy_extra}}}}}}}}}"#,
        if policy_extra.is_empty() { "" } else { ", " }
    )
}

/// A local.conf whose policy `p` lists links `eth0` (with `eth0_extra`) and `eth1`.
fn with_link(eth0_extra: &str) -> String {
    with_policy(&format!(r#""links": {{"eth0": {{{eth0_extra}}}, "eth1": {{"mode": "spare"}}}}"#))
}

#[track_caller]
fn assert_error(text: &str, kind: ConfigErrorKind, path: &str) -> ConfigError {
    match parse_local_conf(text) {
        Ok((config, warnings)) => panic!("accepted: {config:?} {warnings:?}\n{text}"),
        Err(e) => {
            assert_eq!((e.kind, e.path.as_str()), (kind, path), "error was: {e}\n{text}");
            assert!(!e.reason.is_empty());
            e
        }
    }
}

#[test]
fn baseline_is_valid() {
    parse_local_conf(&with_policy("")).unwrap();
    parse_local_conf(&with_link(r#""mode": "primary""#)).unwrap();
}

// ---- syntax and document shape ----

#[test]
fn syntax_error_gives_position() {
    let e = assert_error("{\"settings\": {\n  \"defaultBondingPolicy\": }\n}", ConfigErrorKind::Syntax, "");
    assert!(e.reason.contains("line 2"), "{e}");
    assert_eq!(e.to_string(), format!("(root): {}", e.reason));
    assert_error("", ConfigErrorKind::Syntax, "");
    assert_error("{} {}", ConfigErrorKind::Syntax, "");
    assert_error("{\"settings\": {/* comment */}}", ConfigErrorKind::Syntax, "");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{{\"physical\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert_error(&deep, ConfigErrorKind::Syntax, "");
}

#[test]
fn root_and_settings_must_be_objects() {
    assert_error("[]", ConfigErrorKind::WrongType, "");
    assert_error(r#"{"settings": []}"#, ConfigErrorKind::WrongType, "settings");
    assert_error(r#"{"settings": {"policies": "p"}}"#, ConfigErrorKind::WrongType, "settings.policies");
    assert_error(r#"{"settings": {"policies": {"p": 1}}}"#, ConfigErrorKind::WrongType, "settings.policies.p");
    assert_error(
        r#"{"settings": {"peerSpecificBonds": []}}"#,
        ConfigErrorKind::WrongType,
        "settings.peerSpecificBonds",
    );
    assert_error(r#"{"settings": {"active-backup": true}}"#, ConfigErrorKind::WrongType, "settings.active-backup");
}

// ---- unknown keys ----

#[test]
fn unknown_policy_key() {
    let e = assert_error(
        &with_policy(r#""failoverIntervall": 500"#),
        ConfigErrorKind::UnknownKey,
        "settings.policies.p.failoverIntervall",
    );
    assert!(e.reason.contains("failoverInterval"), "lists the known keys: {e}");
}

#[test]
fn unknown_link_key() {
    assert_error(&with_link(r#""prio": 1"#), ConfigErrorKind::UnknownKey, "settings.policies.p.links.eth0.prio");
}

#[test]
fn unknown_link_quality_key() {
    assert_error(
        &with_policy(r#""linkQuality": {"lat_max": 100, "jitter_max": 5}"#),
        ConfigErrorKind::UnknownKey,
        "settings.policies.p.linkQuality.jitter_max",
    );
    assert_error(
        &with_policy(r#""quality": {"lat": 1.0, "latency": 0}"#),
        ConfigErrorKind::UnknownKey,
        "settings.policies.p.quality.latency",
    );
}

#[test]
fn unknown_key_in_2020_standard_policy_object() {
    assert_error(
        r#"{"settings": {"balance-rr": {"packetsPerSlave": 4, "bogus": 1}}}"#,
        ConfigErrorKind::UnknownKey,
        "settings.balance-rr.bogus",
    );
}

// ---- wrong types ----

#[test]
fn wrong_types() {
    let cases: &[(&str, &str)] = &[
        (r#""failoverInterval": "500""#, "settings.policies.p.failoverInterval"),
        (r#""failoverInterval": 500.5"#, "settings.policies.p.failoverInterval"),
        (r#""upDelay": true"#, "settings.policies.p.upDelay"),
        (r#""activeReselect": 1"#, "settings.policies.p.activeReselect"),
        (r#""links": ["eth0"]"#, "settings.policies.p.links"),
        (r#""links": {"eth0": "primary"}"#, "settings.policies.p.links.eth0"),
        (r#""linkQuality": [1, 2]"#, "settings.policies.p.linkQuality"),
        (r#""linkQuality": {"lat_weight": "0.5"}"#, "settings.policies.p.linkQuality.lat_weight"),
        (r#""basePolicy": null"#, "settings.policies.p.basePolicy"),
    ];
    for (extra, path) in cases {
        // Replace the baseline basePolicy when the case sets its own.
        let text = if extra.starts_with("\"basePolicy\"") {
            format!(r#"{{"settings": {{"policies": {{"p": {{{extra}}}}}}}}}"#)
        } else {
            with_policy(extra)
        };
        assert_error(&text, ConfigErrorKind::WrongType, path);
    }
    assert_error(&with_link(r#""mode": 1"#), ConfigErrorKind::WrongType, "settings.policies.p.links.eth0.mode");
    assert_error(
        &with_link(r#""enabled": "yes""#),
        ConfigErrorKind::WrongType,
        "settings.policies.p.links.eth0.enabled",
    );
    assert_error(
        &with_link(r#""failoverTo": ["eth1"]"#),
        ConfigErrorKind::WrongType,
        "settings.policies.p.links.eth0.failoverTo",
    );
    assert_error(
        &with_link(r#""capacity": "1G""#),
        ConfigErrorKind::WrongType,
        "settings.policies.p.links.eth0.capacity",
    );
    assert_error(
        r#"{"settings": {"defaultBondingPolicy": 1}}"#,
        ConfigErrorKind::WrongType,
        "settings.defaultBondingPolicy",
    );
    assert_error(
        r#"{"settings": {"peerSpecificBonds": {"0123456789": 3}}}"#,
        ConfigErrorKind::WrongType,
        "settings.peerSpecificBonds.0123456789",
    );
}

#[test]
fn integral_floats_are_integers() {
    let (config, _) = parse_local_conf(&with_policy(r#""failoverInterval": 500.0"#)).unwrap();
    assert_eq!(config.policies["p"].failover_interval_ms, 500);
}

// ---- out of range ----

#[test]
fn failover_interval_floor_and_ceiling() {
    let e = assert_error(
        &with_policy(r#""failoverInterval": 9"#),
        ConfigErrorKind::OutOfRange,
        "settings.policies.p.failoverInterval",
    );
    assert!(e.reason.contains("10..=600000"), "{e}");
    assert_error(
        &with_policy(r#""failoverInterval": 0"#),
        ConfigErrorKind::OutOfRange,
        "settings.policies.p.failoverInterval",
    );
    assert_error(
        &with_policy(r#""failoverInterval": -500"#),
        ConfigErrorKind::OutOfRange,
        "settings.policies.p.failoverInterval",
    );
    assert_error(
        &with_policy(r#""failoverInterval": 600001"#),
        ConfigErrorKind::OutOfRange,
        "settings.policies.p.failoverInterval",
    );
    let (config, _) = parse_local_conf(&with_policy(r#""failoverInterval": 10"#)).unwrap();
    assert_eq!(config.policies["p"].failover_interval_ms, MIN_FAILOVER_INTERVAL_MS);
}

#[test]
fn out_of_range_values() {
    let policy_cases: &[(&str, &str)] = &[
        (r#""upDelay": -1"#, "settings.policies.p.upDelay"),
        (r#""downDelay": 10000000"#, "settings.policies.p.downDelay"),
        (r#""packetsPerLink": 70000"#, "settings.policies.p.packetsPerLink"),
        (r#""activeReselect": "sometimes""#, "settings.policies.p.activeReselect"),
        (r#""balancePolicy": "flow-random""#, "settings.policies.p.balancePolicy"),
        (r#""linkQuality": {"lat_max": 0}"#, "settings.policies.p.linkQuality.lat_max"),
        (r#""linkQuality": {"pdv_max": -3}"#, "settings.policies.p.linkQuality.pdv_max"),
        (r#""linkQuality": {"plr_max": 2}"#, "settings.policies.p.linkQuality.plr_max"),
        (r#""linkQuality": {"lat_weight": 1.5}"#, "settings.policies.p.linkQuality.lat_weight"),
        (r#""maxAcceptablePacketLossRatio": 5"#, "settings.policies.p.maxAcceptablePacketLossRatio"),
    ];
    for (extra, path) in policy_cases {
        assert_error(&with_policy(extra), ConfigErrorKind::OutOfRange, path);
    }
    let link_cases: &[(&str, &str)] = &[
        (r#""mode": "backup""#, "mode"),
        (r#""ipvPref": 5"#, "ipvPref"),
        (r#""ipvPref": -4"#, "ipvPref"),
        (r#""mtu": 67"#, "mtu"),
        (r#""mtu": 65536"#, "mtu"),
        (r#""capacity": 4294967296"#, "capacity"),
        (r#""capacity": -1"#, "capacity"),
        (r#""enabled": 2"#, "enabled"),
        (r#""alloc": 256"#, "alloc"),
        (r#""alloc": -0.5"#, "alloc"),
        (r#""alloc": 1.5"#, "alloc"),
    ];
    for (extra, key) in link_cases {
        assert_error(&with_link(extra), ConfigErrorKind::OutOfRange, &format!("settings.policies.p.links.eth0.{key}"));
    }
}

// ---- sums ----

#[test]
fn weights_must_sum_to_one() {
    let e = assert_error(
        &with_policy(r#""linkQuality": {"lat_weight": 0.5, "pdv_weight": 0.5, "plr_weight": 0.5, "per_weight": 0}"#),
        ConfigErrorKind::BadSum,
        "settings.policies.p.linkQuality",
    );
    assert!(e.reason.contains("1.5"), "{e}");
    // The 4-weight example style of the docs, summing to 0.9.
    assert_error(
        &with_policy(r#""linkQuality": {"lat_weight": 0.3, "pdv_weight": 0.3, "plr_weight": 0.3}"#),
        ConfigErrorKind::BadSum,
        "settings.policies.p.linkQuality",
    );
    // 2020 nine-weight object.
    assert_error(
        &with_policy(r#""quality": {"lat": 0.5, "ltm": 0.2, "pdv": 0.5}"#),
        ConfigErrorKind::BadSum,
        "settings.policies.p.quality",
    );
    // Within the ±0.01 tolerance is fine.
    parse_local_conf(&with_policy(r#""linkQuality": {"lat_weight": 0.335, "pdv_weight": 0.333, "plr_weight": 0.333}"#))
        .unwrap();
}

#[test]
fn alloc_must_sum_to_one_and_be_on_every_link() {
    assert_error(
        &with_policy(r#""links": {"eth0": {"alloc": 0.5}, "eth1": {"alloc": 0.4}}"#),
        ConfigErrorKind::BadSum,
        "settings.policies.p.links",
    );
    assert_error(
        &with_policy(r#""links": {"eth0": {"alloc": 1.0}, "eth1": {}}"#),
        ConfigErrorKind::MissingKey,
        "settings.policies.p.links.eth1.alloc",
    );
}

// ---- references ----

#[test]
fn failover_to_must_name_a_link_of_the_policy() {
    let e = assert_error(
        &with_link(r#""mode": "primary", "failoverTo": "eth9""#),
        ConfigErrorKind::UnknownLink,
        "settings.policies.p.links.eth0.failoverTo",
    );
    assert!(e.reason.contains("eth9") && e.reason.contains("eth0, eth1"), "{e}");
    assert_error(
        &with_link(r#""failoverTo": """#),
        ConfigErrorKind::UnknownLink,
        "settings.policies.p.links.eth0.failoverTo",
    );
    assert_error(
        &with_link(r#""failoverTo": "eth0""#),
        ConfigErrorKind::Conflict,
        "settings.policies.p.links.eth0.failoverTo",
    );
    // A policy without links has nothing to fail over to.
    assert_error(
        &with_policy(r#""slaves": {"eth0": {"failoverTo": "eth1"}}"#),
        ConfigErrorKind::UnknownLink,
        "settings.policies.p.slaves.eth0.failoverTo",
    );
}

#[test]
fn unknown_base_policy() {
    let e = assert_error(
        r#"{"settings": {"policies": {"p": {"basePolicy": "balance-tlb"}}}}"#,
        ConfigErrorKind::UnknownPolicy,
        "settings.policies.p.basePolicy",
    );
    assert!(e.reason.contains("balance-aware"), "lists the standard policies: {e}");
    assert_error(
        r#"{"settings": {"policies": {"p": {"basePolicy": "Active-Backup"}}}}"#,
        ConfigErrorKind::UnknownPolicy,
        "settings.policies.p.basePolicy",
    );
}

#[test]
fn custom_policy_named_like_a_standard_one() {
    for name in ["balance-rr", "active-backup", "none"] {
        assert_error(
            &format!(r#"{{"settings": {{"policies": {{"{name}": {{"basePolicy": "balance-xor"}}}}}}}}"#),
            ConfigErrorKind::ReservedName,
            &format!("settings.policies.{name}"),
        );
    }
    assert_error(
        r#"{"settings": {"policies": {"": {"basePolicy": "broadcast"}}}}"#,
        ConfigErrorKind::OutOfRange,
        r#"settings.policies[""]"#,
    );
}

#[test]
fn unknown_default_policy() {
    let e = assert_error(
        r#"{"settings": {"defaultBondingPolicy": "fast", "policies": {"fast-ab": {"basePolicy": "active-backup"}}}}"#,
        ConfigErrorKind::UnknownPolicy,
        "settings.defaultBondingPolicy",
    );
    assert!(e.reason.contains("\"fast-ab\""), "lists the custom policies: {e}");
    assert_error(
        r#"{"settings": {"defaultBondingPolicy": ""}}"#,
        ConfigErrorKind::UnknownPolicy,
        "settings.defaultBondingPolicy",
    );
}

#[test]
fn legacy_standard_object_cannot_change_its_base() {
    assert_error(
        r#"{"settings": {"active-backup": {"basePolicy": "balance-rr"}}}"#,
        ConfigErrorKind::Conflict,
        "settings.active-backup.basePolicy",
    );
}

// ---- duplicates ----

#[test]
fn duplicate_link_names() {
    let e = assert_error(
        r#"{"settings": {"policies": {"p": {"basePolicy": "active-backup",
            "links": {"eth0": {"mode": "primary"}, "eth1": {}, "eth0": {"mode": "spare"}}}}}}"#,
        ConfigErrorKind::DuplicateKey,
        "settings.policies.p.links.eth0",
    );
    assert!(e.reason.contains("eth0"), "{e}");
}

#[test]
fn duplicate_policy_names_and_keys() {
    assert_error(
        r#"{"settings": {"policies": {"p": {"basePolicy": "broadcast"}, "p": {"basePolicy": "balance-rr"}}}}"#,
        ConfigErrorKind::DuplicateKey,
        "settings.policies.p",
    );
    assert_error(
        &with_policy(r#""upDelay": 1, "upDelay": 2"#),
        ConfigErrorKind::DuplicateKey,
        "settings.policies.p.upDelay",
    );
    assert_error(r#"{"settings": {}, "settings": {}}"#, ConfigErrorKind::DuplicateKey, "settings");
}

#[test]
fn links_and_slaves_together() {
    assert_error(
        &with_policy(r#""links": {"eth0": {}}, "slaves": {"eth1": {}}"#),
        ConfigErrorKind::Conflict,
        "settings.policies.p.slaves",
    );
}

#[test]
fn current_key_and_2020_alias_disagree() {
    assert_error(
        &with_policy(r#""activeReselect": "always", "linkSelectMethod": "failure""#),
        ConfigErrorKind::Conflict,
        "settings.policies.p.linkSelectMethod",
    );
    assert_error(
        &with_policy(r#""packetsPerLink": 8, "packetsPerSlave": 16"#),
        ConfigErrorKind::Conflict,
        "settings.policies.p.packetsPerSlave",
    );
    assert_error(
        &with_link(r#""capacity": 100, "speed": 1000"#),
        ConfigErrorKind::Conflict,
        "settings.policies.p.links.eth0.speed",
    );
    assert_error(
        &with_policy(r#""linkQuality": {"lat_max": 100}, "maxAcceptableLatency": 200"#),
        ConfigErrorKind::Conflict,
        "settings.policies.p.maxAcceptableLatency",
    );
    assert_error(
        &with_policy(r#""linkQuality": {"lat_weight": 1}, "quality": {"pdv": 1}"#),
        ConfigErrorKind::Conflict,
        "settings.policies.p.quality",
    );
    // Agreeing values are fine (with a warning).
    let (_, warnings) =
        parse_local_conf(&with_policy(r#""activeReselect": "better", "linkSelectMethod": "better""#)).unwrap();
    assert!(warnings.iter().any(|w| w.path == "settings.policies.p.linkSelectMethod"));
}

// ---- peerSpecificBonds ----

#[test]
fn peer_specific_bad_address() {
    let bad = ["12345", "0123456789a", "zzzzzzzzzz", "0x12345678", "0000000000", "ff00000001", " 123456789"];
    for address in bad {
        let text = format!(r#"{{"settings": {{"peerSpecificBonds": {{"{address}": "balance-rr"}}}}}}"#);
        let path = format!(
            "settings.{}",
            if address.contains(' ') {
                format!(r#"peerSpecificBonds["{address}"]"#)
            } else {
                format!("peerSpecificBonds.{address}")
            }
        );
        assert_error(&text, ConfigErrorKind::BadAddress, &path);
    }
}

#[test]
fn peer_specific_unknown_policy() {
    assert_error(
        r#"{"settings": {"policies": {"fast": {"basePolicy": "broadcast"}},
                         "peerSpecificBonds": {"0123456789": "fast", "abcdef0123": "slow"}}}"#,
        ConfigErrorKind::UnknownPolicy,
        "settings.peerSpecificBonds.abcdef0123",
    );
}

#[test]
fn peer_specific_same_address_twice() {
    assert_error(
        r#"{"settings": {"peerSpecificBonds": {"abcdef0123": "broadcast", "ABCDEF0123": "balance-rr"}}}"#,
        ConfigErrorKind::DuplicateKey,
        "settings.peerSpecificBonds.ABCDEF0123",
    );
}

// ---- paths ----

#[test]
fn path_quotes_interface_names_with_dots() {
    let e = assert_error(
        r#"{"settings": {"policies": {"fast-ab": {"basePolicy": "active-backup",
            "links": {"eth0.100": {"mode": "hot"}}}}}}"#,
        ConfigErrorKind::OutOfRange,
        r#"settings.policies.fast-ab.links["eth0.100"].mode"#,
    );
    assert!(e.to_string().starts_with(r#"settings.policies.fast-ab.links["eth0.100"].mode: "#), "{e}");
}

#[test]
fn display_is_path_colon_reason() {
    let e = assert_error(
        &with_link(r#""mode": "hot""#),
        ConfigErrorKind::OutOfRange,
        "settings.policies.p.links.eth0.mode",
    );
    assert_eq!(e.to_string(), format!("settings.policies.p.links.eth0.mode: {}", e.reason));
}

#[test]
fn from_json_reports_the_same_errors() {
    let doc: serde_json::Value = serde_json::from_str(&with_link(r#""ipvPref": 44"#)).unwrap();
    let e = from_json(&doc).unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (ConfigErrorKind::OutOfRange, "settings.policies.p.links.eth0.ipvPref"));
}

// ---- text positions ----

#[test]
fn errors_carry_the_text_position_of_the_key() {
    let text = "{\n  \"settings\": {\n    \"policies\": {\n      \"p\": { \"basePolicy\": \"active-backup\",\n               \"failoverInterval\": 1 } } } }";
    let e = assert_error(text, ConfigErrorKind::OutOfRange, "settings.policies.p.failoverInterval");
    assert_eq!(e.position, Some(TextPosition { line: 5, column: 16 }));

    let e = assert_error(
        "{\"settings\": {\"policies\": {\"p\": {\"basePolicy\": \"broadcast\",\n \"links\": {\"é0\": {}, \"é0\": {}, \"é0\": {}}}}}}",
        ConfigErrorKind::DuplicateKey,
        "settings.policies.p.links.é0",
    );
    assert_eq!(e.position, Some(TextPosition { line: 2, column: 22 }), "the second occurrence, counted in characters");

    let e = assert_error("{\n\n  \"settings\": [1,, 2]}", ConfigErrorKind::Syntax, "");
    assert_eq!(e.position.map(|p| p.line), Some(3));

    let doc: serde_json::Value = serde_json::from_str(&with_policy(r#""upDelay": -1"#)).unwrap();
    assert_eq!(from_json(&doc).unwrap_err().position, None, "a Value has no text positions");
}

#[test]
fn warnings_carry_the_text_position_of_the_key() {
    let text = "{\"settings\": {\n\"policies\": {\"p\": {\"basePolicy\": \"balance-rr\",\n  \"packetsPerSlave\": 4}}}}";
    let (_, warnings) = parse_local_conf(text).unwrap();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].path, "settings.policies.p.packetsPerSlave");
    assert_eq!(warnings[0].position, Some(TextPosition { line: 3, column: 3 }));
}

// ---- hostile but valid JSON ----

#[test]
fn hostile_sizes_are_refused_with_a_clear_error() {
    let links: Vec<String> = (0..5000).map(|i| format!(r#""eth{i}": {{}}"#)).collect();
    let e = assert_error(
        &with_policy(&format!(r#""links": {{{}}}"#, links.join(", "))),
        ConfigErrorKind::OutOfRange,
        "settings.policies.p.links",
    );
    assert!(e.reason.contains("5000 links"), "{e}");
    let policies: Vec<String> = (0..300).map(|i| format!(r#""p{i}": {{"basePolicy": "active-backup"}}"#)).collect();
    assert_error(
        &format!(r#"{{"settings": {{"policies": {{{}}}}}}}"#, policies.join(", ")),
        ConfigErrorKind::OutOfRange,
        "settings.policies",
    );
    // Huge numbers are out of range, not wrapped.
    assert_error(
        &with_policy(r#""failoverInterval": 18446744073709551616"#),
        ConfigErrorKind::OutOfRange,
        "settings.policies.p.failoverInterval",
    );
    assert_error(
        &with_policy(r#""failoverInterval": 99999999999"#),
        ConfigErrorKind::OutOfRange,
        "settings.policies.p.failoverInterval",
    );
    // Deep nesting is a syntax error (the parser's recursion limit), not a stack overflow.
    let deep = format!(r#"{{"settings": {{"x": {}{}}}}}"#, "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(parse_local_conf(&deep).unwrap_err().kind, ConfigErrorKind::Syntax);
}
