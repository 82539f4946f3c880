//! Every JSON example of the 2020 MULTIPATH.md guide is accepted; each 2020-era key it uses is reported
//! by a warning whose path ends in that key (never an error).
//!
//! The examples are extracted from `shared/spec/MULTIPATH-2020.md` at test time, not copied. The file is a
//! rendered page: code blocks are not fenced but start with a line beginning `{` or `"` in column 0 and
//! end with a line `}` in column 0 (fenced ``` blocks are also recognised in case the file changes).

use std::path::PathBuf;

use serde_json::Value;
use ztplane_bond::config::*;

fn guide_text() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/spec/MULTIPATH-2020.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the 2020 guide at {} ({e}); the reference material is expected at <workspace root>/../shared",
            path.display()
        )
    })
}

/// A code block of the guide: its 1-based starting line and its text.
type Block = (usize, String);

/// Code blocks of the guide.
fn code_blocks(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim_start().starts_with("```") {
            let start = i + 1;
            let mut j = start;
            while j < lines.len() && !lines[j].trim_start().starts_with("```") {
                j += 1;
            }
            blocks.push((start + 1, lines[start..j.min(lines.len())].join("\n")));
            i = j + 1;
        } else if line.starts_with('{') || line.starts_with('"') {
            let mut j = i;
            while j < lines.len() && lines[j].trim_end() != "}" {
                j += 1;
            }
            let end = j.min(lines.len() - 1);
            blocks.push((i + 1, lines[i..=end].join("\n")));
            i = end + 1;
        } else {
            i += 1;
        }
    }
    blocks
}

/// Keys that only the 2020 guide uses (renamed or removed since); each occurrence must be warned about.
const KEYS_2020: &[&str] = &[
    "slaves",
    "speed",
    "packetsPerSlave",
    "slaveSelectMethod",
    "linkSelectMethod",
    "pathMonitorStrategy",
    "linkMonitorStrategy",
    "monitorStrategy",
    "monitorInterval",
    "quality",
    "qualityWeights",
    "dedup",
    "rebalanceStrategy",
    "flowRebalanceStrategy",
];

/// JSON paths (our syntax) of every 2020 key in `value`.
fn paths_of_2020_keys(value: &Value, path: &str, out: &mut Vec<String>) {
    if let Value::Object(map) = value {
        for (key, v) in map {
            let p = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            if KEYS_2020.contains(&key.as_str()) {
                out.push(p.clone());
            }
            paths_of_2020_keys(v, &p, out);
        }
    }
}

fn assert_accepted_with_warnings(line: usize, doc_text: &str) -> (BondingConfig, Vec<ConfigWarning>) {
    let (config, warnings) =
        parse_local_conf(doc_text).unwrap_or_else(|e| panic!("2020 example at line {line} rejected: {e}\n{doc_text}"));
    let doc: Value = serde_json::from_str(doc_text).unwrap();
    let mut legacy = Vec::new();
    paths_of_2020_keys(&doc, "", &mut legacy);
    for key_path in legacy {
        assert!(
            warnings.iter().any(|w| w.path == key_path),
            "2020 example at line {line}: no warning for {key_path}; warnings: {warnings:#?}"
        );
    }
    (config, warnings)
}

/// The complete documents and the `"key": value` fragments that are valid JSON once wrapped in `{}`.
fn examples() -> (Vec<Block>, Vec<Block>) {
    let mut documents = Vec::new();
    let mut fragments = Vec::new();
    for (line, block) in code_blocks(&guide_text()) {
        if serde_json::from_str::<Value>(&block).is_ok() {
            documents.push((line, block));
        } else if serde_json::from_str::<Value>(&format!("{{{block}}}")).is_ok() {
            fragments.push((line, block));
        }
    }
    (documents, fragments)
}

#[test]
fn extraction_finds_the_guides_examples() {
    let blocks = code_blocks(&guide_text());
    let (documents, fragments) = examples();
    // The guide has 10 code blocks: 5 complete documents, 2 valid `"slaves": {...}` fragments, and 3
    // pseudo-JSON blocks with comments or alternatives ("a"|"b") that are not JSON at all.
    assert_eq!(blocks.len(), 10, "code blocks found: {:?}", blocks.iter().map(|b| b.0).collect::<Vec<_>>());
    assert_eq!(documents.len(), 5, "complete JSON examples: {:?}", documents.iter().map(|b| b.0).collect::<Vec<_>>());
    assert_eq!(fragments.len(), 2, "JSON fragments: {:?}", fragments.iter().map(|b| b.0).collect::<Vec<_>>());
}

#[test]
fn every_complete_example_is_accepted() {
    let (documents, _) = examples();
    assert!(!documents.is_empty());
    for (line, text) in &documents {
        let (config, _) = assert_accepted_with_warnings(*line, text);
        // Whatever the example, the resolver gives every peer a policy without panicking, and the
        // normalised form re-parses to the same configuration.
        let _ = config.policy_for_peer(0x0102030405);
        let (again, _) = parse_local_conf(&config.to_json().to_string())
            .unwrap_or_else(|e| panic!("normalised form of example at line {line} rejected: {e}"));
        assert_eq!(again, config, "example at line {line} does not round-trip");
    }
}

#[test]
fn every_fragment_is_accepted_inside_a_policy() {
    let (_, fragments) = examples();
    assert!(!fragments.is_empty());
    for (line, fragment) in &fragments {
        let text = format!(
            "{{\"settings\": {{\"defaultBondingPolicy\": \"frag\", \"policies\": {{\"frag\": \
             {{\"basePolicy\": \"balance-aware\", {fragment}}}}}}}}}"
        );
        let (config, _) = assert_accepted_with_warnings(*line, &text);
        let policy = &config.policies["frag"];
        assert_eq!(policy.links.len(), 3, "fragment at line {line}");
        // Either capacities (from "speed") or allocations were given for all three links.
        assert!(
            policy.links.iter().all(|l| l.capacity.is_some()) || policy.links.iter().all(|l| l.alloc.is_some()),
            "fragment at line {line}: {policy:?}"
        );
    }
}

/// Find the one complete example containing `needle`.
fn example_with(needle: &str) -> Block {
    let (documents, _) = examples();
    let found: Vec<_> = documents.into_iter().filter(|(_, t)| t.contains(needle)).collect();
    assert_eq!(found.len(), 1, "expected exactly one example containing {needle:?}");
    found.into_iter().next().unwrap()
}

#[test]
fn standard_policy_example() {
    let (line, text) = example_with("\"defaultBondingPolicy\": \"active-backup\"\n");
    let (config, warnings) = assert_accepted_with_warnings(line, &text);
    assert!(warnings.is_empty());
    assert_eq!(config.default_policy, Some(PolicyRef::Standard(Policy::ActiveBackup)));
    assert_eq!(config.policy_for_peer(0x1234567890), PolicySettings::standard(Policy::ActiveBackup));
}

#[test]
fn aggressive_custom_policy_example() {
    let (line, text) = example_with("pathMonitorStrategy");
    let (config, warnings) = assert_accepted_with_warnings(line, &text);
    let policy = &config.policies["aggressive-active-backup"];
    assert_eq!(policy.base, Policy::ActiveBackup);
    assert_eq!(policy.failover_interval_ms, 250, "250 ms is above ztplane's 10 ms floor: kept, not raised");
    assert!(policy.links.is_empty());
    assert_eq!(config.default_policy, Some(PolicyRef::Custom("aggressive-active-backup".into())));
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].message.contains("no longer exists"), "{:?}", warnings[0]);
}

#[test]
fn slave_interfaces_example_maps_to_links() {
    let (line, text) = example_with("\"ipvPref\": 46");
    let (config, warnings) = assert_accepted_with_warnings(line, &text);
    let policy = &config.policies["aggressive-active-backup"];
    // The example omits basePolicy (it continues the previous one): accepted, warned, no bond formed.
    assert_eq!(policy.base, Policy::None);
    assert!(warnings.iter().any(|w| w.path == "settings.policies.aggressive-active-backup.basePolicy"));
    let names: Vec<&str> = policy.links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["eth0", "eth1", "eth2"]);
    for name in ["eth0", "eth1"] {
        let link = policy.link(name).unwrap();
        assert_eq!(link.mode, LinkMode::Primary);
        assert_eq!(link.failover_to.as_deref(), Some("eth2"));
        assert_eq!(link.ipv_pref, IpvPref::V4ThenV6);
    }
    let eth2 = policy.link("eth2").unwrap();
    assert_eq!((eth2.mode, eth2.ipv_pref, eth2.failover_to.as_deref()), (LinkMode::Spare, IpvPref::V6, None));
    assert_eq!(config.policy_for_peer(1).base, Policy::None);
}

#[test]
fn peer_specific_example() {
    let (line, text) = example_with("peerSpecificBonds");
    let (config, _) = assert_accepted_with_warnings(line, &text);
    let custom = &config.policies["my-custom-balance-aware"];
    assert_eq!((custom.base, custom.failover_interval_ms), (Policy::BalanceAware, 2000));
    for peer in [0xf6203a2db3, 0x45b0301da2, 0xa92cb526fa] {
        assert_eq!(config.peer_specific[&peer], PolicyRef::Custom("my-custom-balance-aware".into()));
        assert_eq!(&config.policy_for_peer(peer), custom);
    }
    assert_eq!(config.policy_for_peer(0x0000000001), PolicySettings::standard(Policy::ActiveBackup));
}

#[test]
fn policy_object_under_settings_example_tunes_the_standard_policy() {
    let (line, text) = example_with("\"slaveSelectMethod\": \"always\"");
    let (config, warnings) = assert_accepted_with_warnings(line, &text);
    assert!(warnings.iter().any(|w| w.path == "settings.active-backup"), "{warnings:#?}");
    let ab = config.policy_for_peer(0x0a0b0c0d0e);
    assert_eq!(ab.base, Policy::ActiveBackup);
    assert_eq!(ab.link_select, LinkSelectMethod::Always);
    let modes: Vec<(&str, LinkMode, Option<&str>)> =
        ab.links.iter().map(|l| (l.name.as_str(), l.mode, l.failover_to.as_deref())).collect();
    assert_eq!(
        modes,
        [
            ("eth0", LinkMode::Primary, Some("eth1")),
            ("eth1", LinkMode::Spare, None),
            ("eth2", LinkMode::Spare, None),
            ("eth3", LinkMode::Spare, None),
        ]
    );
}
