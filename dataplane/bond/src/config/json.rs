//! Reading `local.conf` text into a `serde_json::Value` while rejecting duplicate object keys.
//!
//! serde_json (like zerotier-one's nlohmann parser) silently keeps one of two equal keys, so two links
//! named `eth0` would quietly become one. We parse through a seed that tracks the JSON path and stops at
//! the first duplicate, reporting it as a [`ConfigError`] with that path.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::error::{ConfigError, ConfigErrorKind};
use super::path;

/// Parse JSON text, rejecting duplicate keys in any object.
pub(crate) fn parse_strict(text: &str) -> Result<Value, ConfigError> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = ValueSeed {
        path: String::new(),
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| {
        de.end()?;
        Ok(v)
    });
    match parsed {
        Ok(v) => Ok(v),
        Err(e) => Err(duplicate.into_inner().unwrap_or_else(|| {
            ConfigError::new(
                ConfigErrorKind::Syntax,
                "",
                format!(
                    "invalid JSON at line {}, column {}: {}",
                    e.line(),
                    e.column(),
                    syntax_message(&e)
                ),
            )
        })),
    }
}

/// serde_json's message without its own " at line L column C" suffix (we print position first).
fn syntax_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full,
    }
}

struct ValueSeed<'a> {
    path: String,
    duplicate: &'a RefCell<Option<ConfigError>>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text cannot express NaN/inf, so this only maps non-finite to null defensively.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(ValueSeed {
            path: path::index(&self.path, items.len()),
            duplicate: self.duplicate,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let key_path = path::child(&self.path, &key);
            if object.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(ConfigError::new(
                    ConfigErrorKind::DuplicateKey,
                    key_path,
                    format!("duplicate key {key:?} (each key may appear once per object)"),
                ));
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(ValueSeed {
                path: key_path,
                duplicate: self.duplicate,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}
