//! Reading JSON the lenient way zerotier-one's controller does (`OSUtils::jsonInt`, `jsonBool`,
//! `jsonString`, `jsonIntHex`): a field of the wrong type gives the default instead of an error,
//! numbers may come as strings and booleans as numbers. Also [`canonical`]: objects with their
//! keys in byte order, as nlohmann::json (a `std::map`) writes them.

use serde_json::{Map, Value};

/// A JSON object: the shape of every record and request body.
pub type Object = Map<String, Value>;

/// `jsonInt`: a number (negative ones wrap, fractions are cut), a decimal string (leading digits),
/// a boolean as 0/1; anything else is `default`.
pub fn int(v: Option<&Value>, default: u64) -> u64 {
    match v {
        Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_i64().map(|i| i as u64)).unwrap_or_else(|| {
            let f = n.as_f64().unwrap_or(0.0);
            if f < 0.0 { (f as i64) as u64 } else { f as u64 }
        }),
        Some(Value::String(s)) => leading_digits(s, 10),
        Some(Value::Bool(b)) => u64::from(*b),
        _ => default,
    }
}

/// `jsonIntHex`: as [`int`], but a string is hexadecimal.
pub fn int_hex(v: Option<&Value>, default: u64) -> u64 {
    match v {
        Some(Value::String(s)) => leading_digits(s, 16),
        other => int(other, default),
    }
}

/// `jsonBool`: a boolean, a number > 0, a string starting with `t`, `T` or `1`; else `default`.
pub fn boolean(v: Option<&Value>, default: bool) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64().is_some_and(|n| n > 0) || n.as_f64().is_some_and(|f| f >= 1.0),
        Some(Value::String(s)) => matches!(s.bytes().next(), Some(b't' | b'T' | b'1')),
        _ => default,
    }
}

/// `jsonString`: a string, a number in decimal, a boolean as `1`/`0`; else `default`.
pub fn string(v: Option<&Value>, default: &str) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(_)) => int(v, 0).to_string(),
        Some(Value::Bool(b)) => if *b { "1" } else { "0" }.to_string(),
        _ => default.to_string(),
    }
}

/// `strtoull`-style: the digits at the start (after blanks and one `+`), wrapping; 0 if none.
fn leading_digits(s: &str, radix: u32) -> u64 {
    let s = s.trim_start();
    let s = s.strip_prefix('+').unwrap_or(s);
    let s = if radix == 16 { s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s) } else { s };
    s.chars()
        .map_while(|c| c.to_digit(radix))
        .fold(0u64, |acc, d| acc.wrapping_mul(u64::from(radix)).wrapping_add(u64::from(d)))
}

/// The value with every object's keys in byte order (nlohmann::json's order); serde_json may keep
/// insertion order when another crate enables its `preserve_order` feature.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), canonical(&map[k]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_like_zerotier_one() {
        assert_eq!(int(Some(&json!(42)), 7), 42);
        assert_eq!(int(Some(&json!("1500abc")), 7), 1500);
        assert_eq!(int(Some(&json!(true)), 7), 1);
        assert_eq!(int(Some(&json!(null)), 7), 7);
        assert_eq!(int(None, 7), 7);
        assert_eq!(int(Some(&json!(2.9)), 7), 2);
        assert_eq!(int_hex(Some(&json!("ff")), 0), 255);
        assert!(boolean(Some(&json!("true")), false));
        assert!(boolean(Some(&json!(1)), false));
        assert!(!boolean(Some(&json!("no")), true));
        assert!(boolean(Some(&json!([])), true));
        assert_eq!(string(Some(&json!(12)), ""), "12");
        assert_eq!(string(Some(&json!({})), "x"), "x");
    }

    #[test]
    fn canonical_sorts_keys() {
        let mut m = Map::new();
        m.insert("b".into(), json!(1));
        m.insert("a".into(), json!({"z": 1, "y": 2}));
        assert_eq!(serde_json::to_string(&canonical(&Value::Object(m))).unwrap(), r#"{"a":{"y":2,"z":1},"b":1}"#);
    }
}
