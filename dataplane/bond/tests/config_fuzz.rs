//! Robustness: no input makes the parser panic; every error points at (or under) the value that was
//! broken, or is a reference to it; everything accepted survives the normalised-JSON round-trip.
//! Deterministic (fixed-seed xorshift), no extra dependencies.

use std::path::PathBuf;

use serde_json::Value;
use ztplane_bond::config::*;

fn fixtures() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut out = Vec::new();
    for name in ["full.local.conf", "legacy-2020.local.conf"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
        out.push((name.to_string(), text));
    }
    let conformance = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/zt-1.14.1/nodes/a.bond-ab.local.conf");
    let text = std::fs::read_to_string(&conformance).unwrap_or_else(|e| {
        panic!("{} ({e}); reference material expected at <workspace root>/../shared", conformance.display())
    });
    out.push(("a.bond-ab.local.conf".to_string(), text));
    out
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Whatever was accepted must come back identical from its normalised form.
#[track_caller]
fn check_round_trip(config: &BondingConfig, origin: &str) {
    let normalised = config.to_json().to_string();
    let (again, _) = parse_local_conf(&normalised)
        .unwrap_or_else(|e| panic!("{origin}: normalised form rejected: {e}\n{normalised}"));
    assert_eq!(&again, config, "{origin}: round-trip changed the config");
}

#[test]
fn byte_mutations_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let alphabet = b"{}[]\":,0123456789.-eE truefalsnul\\\n";
    let mut accepted = 0;
    let mut rejected = 0;
    for (name, text) in fixtures() {
        for _ in 0..3000 {
            let mut bytes = text.clone().into_bytes();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len());
                match rng.below(3) {
                    0 => bytes[at] = alphabet[rng.below(alphabet.len())],
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, alphabet[rng.below(alphabet.len())]),
                }
            }
            let Ok(mutated) = String::from_utf8(bytes) else {
                continue;
            };
            match parse_local_conf(&mutated) {
                Ok((config, _)) => {
                    accepted += 1;
                    check_round_trip(&config, &name);
                }
                Err(e) => {
                    rejected += 1;
                    assert!(!e.reason.is_empty());
                }
            }
        }
    }
    assert!(accepted > 0 && rejected > 0, "mutations should both keep and break validity ({accepted}/{rejected})");
}

#[test]
fn truncations_never_panic() {
    for (_, text) in fixtures() {
        // Cut anywhere before the closing brace (cutting trailing blanks leaves valid JSON).
        let last_brace = text.rfind('}').unwrap();
        for end in (0..last_brace).filter(|&i| text.is_char_boundary(i)) {
            let e = parse_local_conf(&text[..end]).expect_err("a truncated document is not JSON");
            assert_eq!(e.kind, ConfigErrorKind::Syntax);
        }
    }
}

/// The config path syntax (see `ConfigError::path`): plain keys dotted, awkward keys as `["key"]`.
fn child(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && !key.chars().any(|c| matches!(c, '.' | '[' | ']' | '"') || c.is_whitespace() || c.is_control());
    match (plain, parent.is_empty()) {
        (true, true) => key.to_string(),
        (true, false) => format!("{parent}.{key}"),
        (false, _) => format!("{parent}[{}]", Value::String(key.to_string())),
    }
}

/// Every node of a document as (config path, JSON pointer).
fn nodes(value: &Value, path: &str, pointer: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = child(path, k);
                let q = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push((p.clone(), q.clone()));
                nodes(v, &p, &q, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                let q = format!("{pointer}/{i}");
                out.push((p.clone(), q.clone()));
                nodes(v, &p, &q, out);
            }
        }
        _ => {}
    }
}

#[test]
fn replacing_any_value_gives_a_precise_error_or_a_valid_config() {
    let odd_values: Vec<Value> = [
        "null",
        "true",
        "false",
        "-1",
        "0",
        "1",
        "0.5",
        "7",
        "64",
        "1e300",
        "4294967296",
        "\"\"",
        "\"primary\"",
        "\"active-backup\"",
        "\"eth1\"",
        "[]",
        "[1]",
        "{}",
        "{\"x\": 1}",
    ]
    .iter()
    .map(|t| serde_json::from_str(t).unwrap())
    .collect();
    let mut checked = 0;
    for (name, text) in fixtures() {
        let doc: Value = serde_json::from_str(&text).unwrap();
        let mut paths = Vec::new();
        nodes(&doc, "", "", &mut paths);
        for (path, pointer) in &paths {
            for odd in &odd_values {
                let mut mutated = doc.clone();
                *mutated.pointer_mut(pointer).unwrap() = odd.clone();
                checked += 1;
                match parse_local_conf(&mutated.to_string()) {
                    Ok((config, _)) => check_round_trip(&config, &format!("{name} with {path} = {odd}")),
                    Err(e) => {
                        let at_or_under = e.path == *path
                            || e.path.starts_with(&format!("{path}."))
                            || e.path.starts_with(&format!("{path}["));
                        // Breaking a policy or link can orphan a reference to it elsewhere; changing
                        // one value can also break a sum or an all-or-none rule over its siblings.
                        let consequence = matches!(
                            e.kind,
                            ConfigErrorKind::UnknownPolicy
                                | ConfigErrorKind::UnknownLink
                                | ConfigErrorKind::BadSum
                                | ConfigErrorKind::MissingKey
                                | ConfigErrorKind::Conflict
                        );
                        assert!(
                            at_or_under || consequence,
                            "{name}: setting {path} = {odd} gave an error elsewhere: {e:?}"
                        );
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}
