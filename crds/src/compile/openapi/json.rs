//! Output JSON: trees made of borrowed document parts, shared expansions and new values,
//! serialized once into the listing text clients see.

use std::borrow::Cow;
use std::rc::Rc;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::value::RawValue;

use super::document::Value;

/// One JSON value of a listing.
#[derive(Clone, Debug)]
pub(super) enum Json<'d> {
    Null,
    Bool(bool),
    Str(Cow<'d, str>),
    /// A part of the document, as it is.
    Doc(&'d Value),
    Array(Vec<Json<'d>>),
    Object(Vec<(Cow<'d, str>, Json<'d>)>),
    /// An expansion several places share.
    Shared(Rc<Json<'d>>),
    /// JSON text already written.
    Raw(Box<RawValue>),
}

/// An object's entries.
pub(super) type Entries<'d> = Vec<(Cow<'d, str>, Json<'d>)>;

impl<'d> Json<'d> {
    pub(super) fn str(text: impl Into<Cow<'d, str>>) -> Self {
        Json::Str(text.into())
    }

    /// A copy of the entries when this is an object (children stay shared where they are).
    pub(super) fn entries(&self) -> Option<Entries<'d>> {
        match self {
            Json::Object(entries) => Some(entries.clone()),
            Json::Doc(Value::Object(object)) => {
                Some(object.iter().map(|(k, v)| (Cow::Borrowed(k), Json::Doc(v))).collect())
            }
            Json::Shared(inner) => inner.entries(),
            _ => None,
        }
    }

    /// The string items of an array (others ignored).
    pub(super) fn strings(&self) -> Vec<String> {
        match self {
            Json::Array(items) => items.iter().filter_map(Json::as_str).map(str::to_string).collect(),
            Json::Doc(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Json::Shared(inner) => inner.strings(),
            _ => Vec::new(),
        }
    }

    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            Json::Doc(Value::String(s)) => Some(s),
            Json::Shared(inner) => inner.as_str(),
            _ => None,
        }
    }

    /// Compact JSON text.
    pub(super) fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a Json tree always serializes: its keys are strings")
    }
}

/// The value of `key` among `entries`.
pub(super) fn get<'a, 'd>(entries: &'a Entries<'d>, key: &str) -> Option<&'a Json<'d>> {
    entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Sets `key` (in place when present, else at the end).
pub(super) fn set<'d>(entries: &mut Entries<'d>, key: &'d str, value: Json<'d>) {
    match entries.iter_mut().find(|(k, _)| k == key) {
        Some((_, slot)) => *slot = value,
        None => entries.push((Cow::Borrowed(key), value)),
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Str(s) => serializer.serialize_str(s),
            Json::Doc(value) => value.serialize(serializer),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
            Json::Shared(inner) => inner.serialize(serializer),
            Json::Raw(raw) => raw.serialize(serializer),
        }
    }
}
