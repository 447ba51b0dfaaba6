//! The document: YAML or JSON text in, an ordered tree out, and `#/...` references followed
//! through it (RFC 6901 pointers inside URI fragments) to the objects they name.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A JSON value whose objects keep the document's key order (the workspace's `serde_json`
/// sorts keys, and tools must come out in document order).
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Value {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Value>),
    Object(Object),
}

/// An object's entries in document order, keys unique (a repeated key keeps its first place
/// and its last value, as JSON parsers commonly do).
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Object(Vec<(String, Value)>);

impl Value {
    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    pub(super) fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub(super) fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

impl Object {
    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(super) fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub(super) fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    pub(super) fn object(&self, key: &str) -> Option<&Object> {
        self.get(key).and_then(Value::as_object)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// Makes keys unique: cheap when they already are, which is the rule.
    fn dedupe(&mut self) {
        let entries = &self.0;
        let repeated = if entries.len() <= 16 {
            (1..entries.len()).any(|j| entries[..j].iter().any(|(k, _)| *k == entries[j].0))
        } else {
            let mut order: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
            order.sort_unstable();
            order.windows(2).any(|w| w[0] == w[1])
        };
        if !repeated {
            return;
        }
        let mut unique: Vec<(String, Value)> = Vec::with_capacity(entries.len());
        let mut at: HashMap<String, usize> = HashMap::new();
        for (key, value) in std::mem::take(&mut self.0) {
            match at.get(&key) {
                Some(&i) => unique[i].1 = value,
                None => {
                    at.insert(key.clone(), unique.len());
                    unique.push((key, value));
                }
            }
        }
        self.0 = unique;
    }
}

/// Parses YAML or JSON text (JSON when it starts with `{`, for speed and for JSON's own
/// error positions). The error names the line and column.
pub(super) fn parse(text: &str) -> Result<Value, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("the document is not valid JSON: {e}"))
    } else {
        serde_yaml::from_str(text).map_err(|e| format!("the document is not valid YAML: {e}"))
    }
}

/// Why a reference leads nowhere.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum RefError {
    /// It names another file or URL.
    External,
    /// Nothing in the document is at its pointer.
    Dangling,
}

/// The object a `$ref` names, following chains of references.
pub(super) struct Resolved<'d> {
    /// The object.
    pub object: &'d Object,
    /// Its pointer (without `#`).
    pub pointer: String,
}

/// The value at `reference` (`#/components/schemas/Item`): percent-decoded, then an RFC 6901
/// pointer from the document's root.
pub(super) fn lookup<'d>(root: &'d Value, reference: &str) -> Result<&'d Value, RefError> {
    let fragment = reference.strip_prefix('#').ok_or(RefError::External)?;
    let fragment = percent_decode(fragment);
    if fragment.is_empty() {
        return Ok(root);
    }
    let rest = fragment.strip_prefix('/').ok_or(RefError::Dangling)?;
    let mut at = root;
    for token in rest.split('/') {
        let token = unescape(token);
        at = match at {
            Value::Object(o) => o.get(&token),
            Value::Array(a) => token.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }
        .ok_or(RefError::Dangling)?;
    }
    Ok(at)
}

/// `value` itself when it is an object without `$ref`, else the object its `$ref` chain
/// leads to. `at` is `value`'s pointer; the error's pointer is where the bad `$ref` is.
pub(super) fn resolve<'d>(root: &'d Value, value: &'d Value, at: &str) -> Result<Resolved<'d>, (String, String)> {
    let mut pointer = at.to_string();
    let mut value = value;
    for _ in 0..32 {
        let object = value.as_object().ok_or_else(|| (pointer.clone(), "this is not a mapping".to_string()))?;
        let Some(reference) = object.str("$ref") else {
            return Ok(Resolved { object, pointer });
        };
        value = lookup(root, reference).map_err(|e| (pointer.clone(), ref_message(reference, &e)))?;
        pointer = reference[1..].to_string();
    }
    Err((pointer, "`$ref` chain is longer than 32 references (a loop?)".to_string()))
}

/// What to say about a `$ref` that leads nowhere.
pub(super) fn ref_message(reference: &str, error: &RefError) -> String {
    match error {
        RefError::External => format!(
            "`$ref` `{reference}` points outside the document, which is not supported: bundle the document \
             into one file (for example with `redocly bundle`)"
        ),
        RefError::Dangling => {
            format!("`$ref` `{reference}` names nothing in the document: fix the reference or add what it names")
        }
    }
}

/// Escapes one pointer token (`~` as `~0`, `/` as `~1`).
pub(super) fn escape(token: &str) -> String {
    if token.contains(['~', '/']) { token.replace('~', "~0").replace('/', "~1") } else { token.to_string() }
}

fn unescape(token: &str) -> String {
    if token.contains('~') { token.replace("~1", "/").replace("~0", "~") } else { token.to_string() }
}

fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
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
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
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

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some((Key(key), value)) = map.next_entry()? {
            entries.push((key, value));
        }
        let mut object = Object(entries);
        object.dedupe();
        Ok(Value::Object(object))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(de::Error::custom("YAML tags (`!name`) are not supported"))
    }
}

/// A mapping key: YAML allows scalars (`200:`), which become their text.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean key")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Key, E> {
                Ok(Key(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<Key, E> {
                Ok(Key("null".into()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Number(n) => n.serialize(serializer),
            Value::String(s) => serializer.serialize_str(s),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Object(object) => {
                let mut map = serializer.serialize_map(Some(object.len()))?;
                for (key, value) in object.iter() {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_reads_yaml_scalar_keys() {
        let doc = parse("b: 1\na: 2\n200:\n  x: y\n").unwrap();
        let keys: Vec<&str> = doc.as_object().unwrap().iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["b", "a", "200"]);
        assert_eq!(serde_json::to_string(&doc).unwrap(), r#"{"b":1,"a":2,"200":{"x":"y"}}"#);
    }

    #[test]
    fn a_repeated_key_keeps_its_first_place_and_last_value() {
        let doc = parse(r#"{"a": 1, "b": 2, "a": 3}"#).unwrap();
        assert_eq!(serde_json::to_string(&doc).unwrap(), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn pointers_unescape_and_percent_decode() {
        let doc = parse(r#"{"paths": {"/a/{id}": {"get": 1}}, "x~y": [true, false]}"#).unwrap();
        assert_eq!(lookup(&doc, "#/paths/~1a~1{id}/get"), Ok(&Value::Number(1.into())));
        assert_eq!(lookup(&doc, "#/paths/~1a~1%7Bid%7D/get"), Ok(&Value::Number(1.into())));
        assert_eq!(lookup(&doc, "#/x~0y/1"), Ok(&Value::Bool(false)));
        assert_eq!(lookup(&doc, "#/x~0y/2"), Err(RefError::Dangling));
        assert_eq!(lookup(&doc, "other.yaml#/x"), Err(RefError::External));
        assert_eq!(escape("/a/{id}~"), "~1a~1{id}~0");
    }

    #[test]
    fn json_errors_name_line_and_column() {
        let error = parse("{\n  \"a\": 1,\n  \"b\" 2\n}").unwrap_err();
        assert!(error.contains("line 3 column"), "{error}");
    }
}
