//! Reading `local.conf` text into a `serde_json::Value` while rejecting duplicate object keys.
//!
//! serde_json (like zerotier-one's nlohmann parser) silently keeps one of two equal keys, so two links
//! named `eth0` would quietly become one. We parse through a seed that tracks the JSON path and stops at
//! the first duplicate, reporting it as a [`ConfigError`] with that path.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::error::{ConfigError, ConfigErrorKind, TextPosition};
use super::path;

/// Parse JSON text, rejecting duplicate keys in any object.
pub(crate) fn parse_strict(text: &str) -> Result<Value, ConfigError> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = ValueSeed { path: String::new(), duplicate: &duplicate }.deserialize(&mut de).and_then(|v| {
        de.end()?;
        Ok(v)
    });
    match parsed {
        Ok(v) => Ok(v),
        Err(e) => match duplicate.into_inner() {
            Some(mut dup) => {
                // The second occurrence of the key is the offending one.
                dup.position = key_occurrences(text).get(&dup.path).and_then(|at| at.get(1)).copied();
                Err(dup)
            }
            None => {
                let mut error = ConfigError::new(
                    ConfigErrorKind::Syntax,
                    "",
                    format!("invalid JSON at line {}, column {}: {}", e.line(), e.column(), syntax_message(&e)),
                );
                error.position = Some(TextPosition { line: e.line(), column: e.column() });
                Err(error)
            }
        },
    }
}

/// Position of every key (and array element) by JSON path, for text that already parsed.
pub(crate) fn key_positions(text: &str) -> HashMap<String, TextPosition> {
    key_occurrences(text).into_iter().filter_map(|(path, at)| at.first().map(|p| (path, *p))).collect()
}

/// Every position at which each path occurs (more than one only when the text repeats a key). The
/// root is at the first non-blank character. Tolerates malformed text (stops scanning).
fn key_occurrences(text: &str) -> HashMap<String, Vec<TextPosition>> {
    let mut scanner = Scanner { bytes: text.as_bytes(), text, at: 0, found: HashMap::new() };
    scanner.skip_blank();
    let root = scanner.position();
    scanner.found.entry(String::new()).or_default().push(root);
    scanner.value("", 0);
    scanner.found
}

/// A minimal JSON walker that only records where keys are; values are skipped. Depth is bounded so
/// hostile input cannot exhaust the stack (serde_json rejects deeper documents anyway).
struct Scanner<'a> {
    bytes: &'a [u8],
    text: &'a str,
    at: usize,
    found: HashMap<String, Vec<TextPosition>>,
}

const MAX_SCAN_DEPTH: usize = 256;

impl Scanner<'_> {
    fn position(&self) -> TextPosition {
        let before = self.text.get(..self.at).unwrap_or(self.text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        TextPosition { line: before.matches('\n').count() + 1, column: before[line_start..].chars().count() + 1 }
    }

    fn skip_blank(&mut self) {
        while self.at < self.bytes.len() && self.bytes[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// Skip a string token starting at `"`; returns its decoded content.
    fn string(&mut self) -> Option<String> {
        let start = self.at;
        self.at += 1;
        while self.at < self.bytes.len() {
            match self.bytes[self.at] {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    return serde_json::from_str(self.text.get(start..self.at)?).ok();
                }
                _ => self.at += 1,
            }
        }
        None
    }

    /// Skip one value, recording the keys inside it. Returns false on malformed text.
    fn value(&mut self, path: &str, depth: usize) -> bool {
        if depth > MAX_SCAN_DEPTH {
            return false;
        }
        self.skip_blank();
        match self.peek() {
            Some(b'{') => {
                self.at += 1;
                loop {
                    self.skip_blank();
                    match self.peek() {
                        Some(b'}') => {
                            self.at += 1;
                            return true;
                        }
                        Some(b',') => self.at += 1,
                        Some(b'"') => {
                            let position = self.position();
                            let Some(key) = self.string() else {
                                return false;
                            };
                            let key_path = path::child(path, &key);
                            self.found.entry(key_path.clone()).or_default().push(position);
                            self.skip_blank();
                            if self.peek() != Some(b':') {
                                return false;
                            }
                            self.at += 1;
                            if !self.value(&key_path, depth + 1) {
                                return false;
                            }
                        }
                        _ => return false,
                    }
                }
            }
            Some(b'[') => {
                self.at += 1;
                let mut index = 0;
                loop {
                    self.skip_blank();
                    match self.peek() {
                        Some(b']') => {
                            self.at += 1;
                            return true;
                        }
                        Some(b',') => self.at += 1,
                        Some(_) => {
                            let element_path = path::index(path, index);
                            let position = self.position();
                            self.found.entry(element_path.clone()).or_default().push(position);
                            if !self.value(&element_path, depth + 1) {
                                return false;
                            }
                            index += 1;
                        }
                        None => return false,
                    }
                }
            }
            Some(b'"') => self.string().is_some(),
            Some(_) => {
                while let Some(b) = self.peek() {
                    if b == b',' || b == b'}' || b == b']' || b.is_ascii_whitespace() {
                        break;
                    }
                    self.at += 1;
                }
                true
            }
            None => false,
        }
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
        while let Some(item) =
            seq.next_element_seed(ValueSeed { path: path::index(&self.path, items.len()), duplicate: self.duplicate })?
        {
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
            let value = map.next_value_seed(ValueSeed { path: key_path, duplicate: self.duplicate })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}
