//! Schemas: a parameter's or a body's schema in, a self-contained JSON Schema out. `$ref`s
//! are followed through the document: one that is not recursive is inlined (expanded once,
//! then shared by every place that names it); a recursive one becomes
//! `{"$ref": "#/$defs/<Name>"}`, its expansion going once under the input schema's `$defs`.
//! OpenAPI 3.0's `nullable` and boolean `exclusiveMinimum`/`exclusiveMaximum` become their
//! JSON Schema forms. Depth and size are capped, so no document makes this hang or balloon.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use super::Skip;
use super::cycles::Cycles;
use super::document::{self, Object, RefError, Value};
use super::json::{self, Entries, Json};
use super::names;

/// The largest input schema served (bytes of JSON text).
pub(super) const MAX_SIZE: usize = 1 << 20;
/// The deepest JSON nesting of an input schema: its listing stays readable by parsers with a
/// recursion limit of 128 (serde_json's).
const MAX_LEVEL: usize = 100;
/// The most `$ref`s inlined one inside another.
const MAX_REFS: usize = 64;

/// Keywords whose values are data, never schemas: copied as they are.
const DATA: &[&str] = &["enum", "const", "default", "example", "examples", "required", "type"];
/// OpenAPI's own keywords that mean nothing to a client validating arguments: left out
/// (a `discriminator` mapping names document pointers the input schema does not have).
const DROPPED: &[&str] = &["discriminator", "xml", "externalDocs"];
/// Keywords whose values map names to schemas.
const SCHEMA_MAPS: &[&str] = &["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"];

/// An expanded schema.
#[derive(Clone, Debug)]
pub(super) struct Walked<'d> {
    pub json: Json<'d>,
    /// At least the bytes of its JSON text (see [`text_len`]).
    pub size: usize,
    /// Its JSON nesting (0 for a scalar).
    height: usize,
    /// The most `$ref`s inlined one inside another in it.
    refs: usize,
    /// The recursive references it contains, whose expansions go under `$defs`.
    pub needs: BTreeSet<&'d str>,
}

impl<'d> Walked<'d> {
    /// A schema made here (not from the document).
    pub(super) fn made(json: Json<'d>, size: usize) -> Self {
        Walked { json, size, height: 1, refs: 0, needs: BTreeSet::new() }
    }
}

/// Expands schemas of one document, remembering what it expanded.
pub(super) struct Expander<'d> {
    root: &'d Value,
    v30: bool,
    cycles: Cycles<'d>,
    inlined: HashMap<&'d str, Result<Memo<'d>, Failure>>,
    defs: HashMap<&'d str, Result<Memo<'d>, Skip>>,
    def_names: HashMap<&'d str, String>,
    taken_names: HashSet<String>,
}

impl<'d> Expander<'d> {
    /// `v30`: the document is OpenAPI 3.0 (whose schemas are not quite JSON Schema).
    pub(super) fn new(root: &'d Value, v30: bool) -> Self {
        Expander {
            root,
            v30,
            cycles: Cycles::default(),
            inlined: HashMap::new(),
            defs: HashMap::new(),
            def_names: HashMap::new(),
            taken_names: HashSet::new(),
        }
    }

    /// Expands `schema`, found at pointer `at`, to be placed `level` objects deep in an input
    /// schema.
    pub(super) fn expand(&mut self, schema: &'d Value, at: &str, level: usize) -> Result<Walked<'d>, Skip> {
        self.walk(schema, Loc::Root(at), level, 0, false).map_err(|f| f.skip)
    }

    /// The `$defs` entries for `needs` and, transitively, for what those need: sorted by name.
    pub(super) fn defs(&mut self, needs: &BTreeSet<&'d str>) -> Result<Vec<(String, Walked<'d>)>, Skip> {
        let mut todo: Vec<&'d str> = needs.iter().copied().collect();
        let mut seen: HashSet<&'d str> = todo.iter().copied().collect();
        let mut out = BTreeMap::new();
        while let Some(reference) = todo.pop() {
            let memo = match self.defs.get(reference) {
                Some(memo) => memo.clone(),
                None => {
                    let memo = match document::lookup(self.root, reference) {
                        Ok(target) => self.walk(target, Loc::Root(&reference[1..]), 2, 1, false).map(Memo::from),
                        Err(e) => Err(Failure::lasting(&reference[1..], document::ref_message(reference, &e))),
                    };
                    let memo = memo.map_err(|f| f.skip);
                    self.defs.insert(reference, memo.clone());
                    memo
                }
            }?;
            for need in &memo.needs {
                if seen.insert(need) {
                    todo.push(need);
                }
            }
            out.insert(self.def_name(reference), memo.share(0));
        }
        Ok(out.into_iter().collect())
    }

    fn walk(
        &mut self,
        node: &'d Value,
        loc: Loc<'_>,
        level: usize,
        refs: usize,
        map: bool,
    ) -> Result<Walked<'d>, Failure> {
        let object = match node {
            Value::Object(object) => object,
            Value::Array(_) if level > MAX_LEVEL => return Err(too_deep(&loc)),
            Value::Array(items) => {
                let mut acc = Acc::default();
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let child = self.walk(item, Loc::Index(i, &loc), level + 1, refs, false)?;
                    out.push(acc.add(1, child, &loc)?);
                }
                return Ok(acc.finish(Json::Array(out)));
            }
            _ => return verbatim(node, &loc, level),
        };
        if level > MAX_LEVEL {
            return Err(too_deep(&loc));
        }
        if !map && let Some(Value::String(reference)) = object.get("$ref") {
            return self.reference(reference, object, loc, level, refs);
        }
        let mut acc = Acc::default();
        let mut entries = Vec::with_capacity(object.len());
        for (key, value) in object.iter().filter(|(k, _)| map || !DROPPED.contains(k)) {
            let child = if !map && is_data(key) {
                verbatim(value, &Loc::Key(key, &loc), level + 1)?
            } else {
                self.walk(value, Loc::Key(key, &loc), level + 1, refs, !map && SCHEMA_MAPS.contains(&key))?
            };
            entries.push((Cow::Borrowed(key), acc.add(text_len(key) + 2, child, &loc)?));
        }
        if self.v30 && !map {
            acc.size += normalize_v30(&mut entries);
        }
        Ok(acc.finish(Json::Object(entries)))
    }

    /// A `{"$ref": ...}` schema; in 3.1 the keywords beside `$ref` apply too.
    fn reference(
        &mut self,
        reference: &'d str,
        object: &'d Object,
        loc: Loc<'_>,
        level: usize,
        refs: usize,
    ) -> Result<Walked<'d>, Failure> {
        if !reference.starts_with('#') {
            return Err(Failure::lasting(&loc.pointer(), document::ref_message(reference, &RefError::External)));
        }
        let base = if self.is_cyclic(reference) {
            self.def_ref(reference)
        } else {
            self.inline(reference, &loc, level, refs)?
        };
        if self.v30 || object.len() == 1 {
            return Ok(base);
        }
        let mut acc = Acc { size: base.size, height: base.height + 1, refs: base.refs, needs: base.needs.clone() };
        let mut entries = match base.json.entries() {
            Some(entries) => entries,
            None => vec![(Cow::Borrowed("allOf"), Json::Array(vec![base.json]))],
        };
        for (key, value) in object.iter().filter(|(k, _)| *k != "$ref" && !DROPPED.contains(k)) {
            let child = if is_data(key) {
                verbatim(value, &Loc::Key(key, &loc), level + 1)?
            } else {
                self.walk(value, Loc::Key(key, &loc), level + 1, refs, SCHEMA_MAPS.contains(&key))?
            };
            let child = acc.add(text_len(key) + 2, child, &loc)?;
            json::set(&mut entries, key, child);
        }
        Ok(acc.finish(Json::Object(entries)))
    }

    fn inline(&mut self, reference: &'d str, loc: &Loc<'_>, level: usize, refs: usize) -> Result<Walked<'d>, Failure> {
        let memo = match self.inlined.get(reference) {
            Some(memo) => memo.clone(),
            None => {
                let target = document::lookup(self.root, reference)
                    .map_err(|e| Failure::lasting(&loc.pointer(), document::ref_message(reference, &e)))?;
                if refs >= MAX_REFS {
                    return Err(too_deep(loc));
                }
                match self.walk(target, Loc::Root(&reference[1..]), level, refs + 1, false) {
                    Ok(walked) => {
                        let memo = Memo::from(walked);
                        self.inlined.insert(reference, Ok(memo.clone()));
                        Ok(memo)
                    }
                    Err(failure) if failure.lasting => {
                        self.inlined.insert(reference, Err(failure.clone()));
                        Err(failure)
                    }
                    Err(failure) => Err(failure),
                }
            }
        }?;
        if level + memo.height > MAX_LEVEL || refs + 1 + memo.refs > MAX_REFS {
            return Err(too_deep(loc));
        }
        Ok(memo.share(1))
    }

    fn def_ref(&mut self, reference: &'d str) -> Walked<'d> {
        let target = format!("#/$defs/{}", self.def_name(reference));
        let size = text_len(&target) + 10;
        let json = Json::Object(vec![(Cow::Borrowed("$ref"), Json::str(target))]);
        Walked { json, size, height: 1, refs: 0, needs: BTreeSet::from([reference]) }
    }

    /// The `$defs` key of a recursive reference: its last token, made unique in the document.
    fn def_name(&mut self, reference: &'d str) -> String {
        if let Some(name) = self.def_names.get(reference) {
            return name.clone();
        }
        let base = names::def_name(reference);
        let mut name = base.clone();
        let mut n = 2;
        while !self.taken_names.insert(name.clone()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.def_names.insert(reference, name.clone());
        name
    }

    fn is_cyclic(&mut self, reference: &'d str) -> bool {
        let (root, v30) = (self.root, self.v30);
        self.cycles.is_cyclic(reference, &mut |r| {
            let mut out = Vec::new();
            if let Ok(target) = document::lookup(root, r) {
                refs_in(target, false, v30, &mut out);
            }
            out
        })
    }
}

/// The references `walk` would follow from `node`, in the same places.
fn refs_in<'d>(node: &'d Value, map: bool, v30: bool, out: &mut Vec<&'d str>) {
    match node {
        Value::Object(object) if map => object.iter().for_each(|(_, v)| refs_in(v, false, v30, out)),
        Value::Object(object) => {
            if let Some(reference) = object.str("$ref") {
                if reference.starts_with('#') {
                    out.push(reference);
                }
                if v30 {
                    return;
                }
            }
            for (key, value) in object.iter().filter(|(k, _)| !is_data(k)) {
                refs_in(value, SCHEMA_MAPS.contains(&key), v30, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, false, v30, out)),
        _ => {}
    }
}

fn is_data(key: &str) -> bool {
    DATA.contains(&key) || DROPPED.contains(&key) || key.starts_with("x-") || key == "$ref"
}

/// OpenAPI 3.0 keywords JSON Schema spells differently; returns the bytes it may have added.
fn normalize_v30<'d>(entries: &mut Entries<'d>) -> usize {
    if let Some(&Json::Doc(nullable)) = json::get(entries, "nullable") {
        let ty = match json::get(entries, "type") {
            Some(&Json::Doc(Value::String(ty))) => Some(ty),
            _ => None,
        };
        match (nullable, ty) {
            (Value::Bool(true), Some(ty)) => {
                json::set(entries, "type", Json::Array(vec![Json::str(ty.as_str()), Json::str("null")]));
                if let Some(&Json::Doc(Value::Array(items))) = json::get(entries, "enum")
                    && !items.contains(&Value::Null)
                {
                    let items = items.iter().map(Json::Doc).chain([Json::Null]).collect();
                    json::set(entries, "enum", Json::Array(items));
                }
                entries.retain(|(k, _)| k != "nullable");
            }
            (Value::Bool(true), None) => {}
            _ => entries.retain(|(k, _)| k != "nullable"),
        }
    }
    for (flag, bound) in [("exclusiveMaximum", "maximum"), ("exclusiveMinimum", "minimum")] {
        if let Some(&Json::Doc(Value::Bool(exclusive))) = json::get(entries, flag) {
            match json::get(entries, bound).cloned() {
                Some(limit) if *exclusive => {
                    json::set(entries, flag, limit);
                    entries.retain(|(k, _)| k != bound);
                }
                _ => entries.retain(|(k, _)| k != flag),
            }
        }
    }
    16
}

/// A part of the document copied as it is, `level` deep.
fn verbatim<'d>(value: &'d Value, loc: &Loc<'_>, level: usize) -> Result<Walked<'d>, Failure> {
    let (size, height) = measure(value);
    if level + height > MAX_LEVEL {
        return Err(too_deep(loc));
    }
    Ok(Walked { json: Json::Doc(value), size, height, refs: 0, needs: BTreeSet::new() })
}

/// At least the bytes of `value`'s JSON text, and its nesting.
fn measure(value: &Value) -> (usize, usize) {
    match value {
        Value::Null | Value::Bool(_) => (5, 0),
        Value::Number(n) => (n.to_string().len(), 0),
        Value::String(s) => (text_len(s), 0),
        Value::Array(items) => items.iter().map(measure).fold((2, 1), |(s, h), (cs, ch)| (s + cs + 1, h.max(ch + 1))),
        Value::Object(object) => object
            .iter()
            .map(|(k, v)| (text_len(k) + 2, measure(v)))
            .fold((2, 1), |(s, h), (k, (cs, ch))| (s + k + cs, h.max(ch + 1))),
    }
}

/// The bytes of `text` as a JSON string, escapes and quotes included.
pub(super) fn text_len(text: &str) -> usize {
    2 + text
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..0x20 => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// Sums what goes into one object or array.
#[derive(Default)]
struct Acc<'d> {
    size: usize,
    height: usize,
    refs: usize,
    needs: BTreeSet<&'d str>,
}

impl<'d> Acc<'d> {
    fn add(&mut self, overhead: usize, child: Walked<'d>, loc: &Loc<'_>) -> Result<Json<'d>, Failure> {
        self.size += overhead + child.size;
        self.height = self.height.max(child.height + 1);
        self.refs = self.refs.max(child.refs);
        self.needs.extend(child.needs);
        if self.size > MAX_SIZE {
            let message = format!("the schema expands to more than {} KiB of JSON: simplify it", MAX_SIZE >> 10);
            return Err(Failure::lasting(&loc.pointer(), message));
        }
        Ok(child.json)
    }

    fn finish(self, json: Json<'d>) -> Walked<'d> {
        Walked { json, size: self.size + 2, height: self.height.max(1), refs: self.refs, needs: self.needs }
    }
}

/// An expansion remembered for the next place that names the same reference.
#[derive(Clone, Debug)]
struct Memo<'d> {
    json: Rc<Json<'d>>,
    size: usize,
    height: usize,
    refs: usize,
    needs: BTreeSet<&'d str>,
}

impl<'d> Memo<'d> {
    fn from(walked: Walked<'d>) -> Self {
        let Walked { json, size, height, refs, needs } = walked;
        Memo { json: Rc::new(json), size, height, refs, needs }
    }

    fn share(&self, extra_refs: usize) -> Walked<'d> {
        Walked {
            json: Json::Shared(self.json.clone()),
            size: self.size,
            height: self.height,
            refs: self.refs + extra_refs,
            needs: self.needs.clone(),
        }
    }
}

/// Why a schema cannot be expanded; `lasting` when the reason lies in the schema itself (so
/// every place that names it fails alike), not in where it is placed.
#[derive(Clone, Debug)]
struct Failure {
    skip: Skip,
    lasting: bool,
}

impl Failure {
    fn lasting(pointer: &str, message: String) -> Self {
        Failure { skip: Skip { pointer: pointer.to_string(), message }, lasting: true }
    }
}

fn too_deep(loc: &Loc<'_>) -> Failure {
    let message =
        format!("schemas nest deeper than {MAX_LEVEL} levels or {MAX_REFS} inlined `$ref`s here: simplify the schema");
    Failure { skip: Skip { pointer: loc.pointer(), message }, lasting: false }
}

/// Where a walk is, to name it in problems: built only when one arises.
#[derive(Clone, Copy)]
enum Loc<'a> {
    Root(&'a str),
    Key(&'a str, &'a Loc<'a>),
    Index(usize, &'a Loc<'a>),
}

impl Loc<'_> {
    fn pointer(&self) -> String {
        match self {
            Loc::Root(pointer) => pointer.to_string(),
            Loc::Key(key, parent) => format!("{}/{}", parent.pointer(), document::escape(key)),
            Loc::Index(i, parent) => format!("{}/{i}", parent.pointer()),
        }
    }
}
