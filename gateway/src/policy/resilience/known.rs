//! What the gateway last knew of an upstream's lists: the pages it last served (so a mount
//! whose breaker is open stays listed), and which of its tools declare `idempotentHint` (so a
//! route may retry them), and, where a route with a compatibility profile lists them, its
//! tools' input schemas (so that route resolves short names and trims arguments). Learned
//! from the lists that pass through; read only when a list meets an open breaker, a tool call
//! has failed, or on a route with a profile, so the hot path never takes these locks.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Pages kept per upstream (lists of every kind, first pages and later ones).
const MAX_PAGES: usize = 256;

/// Tool schemas kept per upstream: an upstream offering more is known only in part.
const MAX_TOOLS: usize = 10_000;

/// A list page's method and cursor (none for the first page).
type PageKey = (&'static str, Option<String>);

#[derive(Default)]
pub struct Known {
    pages: Mutex<HashMap<PageKey, Box<RawValue>>>,
    idempotent: Mutex<HashSet<String>>,
    /// Input schemas by upstream tool name; none until a route with a profile listed tools.
    schemas: Mutex<Option<HashMap<String, Arc<Value>>>>,
}

impl Known {
    /// Keeps the page `method` answered for `cursor`.
    pub fn remember(&self, method: &'static str, cursor: Option<&str>, page: &RawValue) {
        let mut pages = self.pages.lock().expect("known pages lock");
        let key = (method, cursor.map(str::to_owned));
        if pages.len() < MAX_PAGES || pages.contains_key(&key) {
            pages.insert(key, page.to_owned());
        }
    }

    /// The page `method` last answered for `cursor`, if any.
    pub fn recall(&self, method: &'static str, cursor: Option<&str>) -> Option<Box<RawValue>> {
        let pages = self.pages.lock().expect("known pages lock");
        pages.get(&(method, cursor.map(str::to_owned))).cloned()
    }

    /// Learns from a page of `tools/list` which tools declare `idempotentHint: true` (a tool
    /// listed without it is forgotten).
    pub fn learn_tools(&self, tools: &[Map<String, Value>]) {
        let mut idempotent = self.idempotent.lock().expect("idempotent tools lock");
        for tool in tools {
            let Some(name) = tool.get("name").and_then(Value::as_str) else { continue };
            let declared = tool.get("annotations").and_then(|a| a.get("idempotentHint")) == Some(&Value::Bool(true));
            if declared {
                if !idempotent.contains(name) {
                    idempotent.insert(name.to_owned());
                }
            } else {
                idempotent.remove(name);
            }
        }
    }

    /// Learns a page of `tools/list`'s names and input schemas (for routes with a
    /// compatibility profile only: nobody else reads them).
    pub fn learn_schemas(&self, tools: &[Map<String, Value>]) {
        let mut schemas = self.schemas.lock().expect("tool schemas lock");
        let schemas = schemas.get_or_insert_with(HashMap::new);
        for tool in tools {
            let Some(name) = tool.get("name").and_then(Value::as_str) else { continue };
            if schemas.len() < MAX_TOOLS || schemas.contains_key(name) {
                let schema = tool.get("inputSchema").cloned().unwrap_or(Value::Null);
                schemas.insert(name.to_owned(), Arc::new(schema));
            }
        }
    }

    /// The upstream tool names learned so far; none before a route with a profile listed them.
    pub fn tool_names(&self) -> Option<Vec<String>> {
        let schemas = self.schemas.lock().expect("tool schemas lock");
        schemas.as_ref().map(|schemas| schemas.keys().cloned().collect())
    }

    /// The input schema the upstream's tool `name` was last listed with.
    pub fn input_schema(&self, name: &str) -> Option<Arc<Value>> {
        let schemas = self.schemas.lock().expect("tool schemas lock");
        schemas.as_ref()?.get(name).cloned()
    }

    /// Whether the upstream's tool `name` declared `idempotentHint: true` when last listed.
    pub fn idempotent(&self, name: &str) -> bool {
        self.idempotent.lock().expect("idempotent tools lock").contains(name)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tools(list: Value) -> Vec<Map<String, Value>> {
        serde_json::from_value(list).expect("tool objects")
    }

    #[test]
    fn idempotent_tools_are_those_whose_last_listing_says_so() {
        let known = Known::default();
        known.learn_tools(&tools(json!([
            { "name": "get", "annotations": { "idempotentHint": true } },
            { "name": "post", "annotations": { "idempotentHint": false } },
            { "name": "plain" },
            { "name": "stringly", "annotations": { "idempotentHint": "true" } },
        ])));
        assert!(known.idempotent("get"));
        assert!(!known.idempotent("post") && !known.idempotent("plain") && !known.idempotent("stringly"));
        known.learn_tools(&tools(json!([{ "name": "get" }])));
        assert!(!known.idempotent("get"), "the hint was withdrawn");
    }

    #[test]
    fn schemas_are_known_only_once_learned_and_follow_the_last_listing() {
        let known = Known::default();
        assert_eq!(known.tool_names(), None, "nothing listed yet");
        known.learn_schemas(&tools(json!([{ "name": "a", "inputSchema": { "type": "object" } }, { "name": "b" }])));
        let mut names = known.tool_names().expect("learned");
        names.sort();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(known.input_schema("a").as_deref(), Some(&json!({ "type": "object" })));
        assert_eq!(known.input_schema("b").as_deref(), Some(&Value::Null));
        known.learn_schemas(&tools(json!([{ "name": "a", "inputSchema": { "type": "object", "properties": {} } }])));
        assert_eq!(known.input_schema("a").as_deref(), Some(&json!({ "type": "object", "properties": {} })));
        assert_eq!(known.input_schema("c"), None);
    }

    #[test]
    fn pages_are_recalled_by_method_and_cursor() {
        let known = Known::default();
        let page = crate::jsonrpc::raw(&json!({ "tools": [] }));
        known.remember("tools/list", None, &page);
        assert_eq!(known.recall("tools/list", None).map(|p| p.get().to_owned()), Some(page.get().to_owned()));
        assert!(known.recall("tools/list", Some("2")).is_none());
        assert!(known.recall("prompts/list", None).is_none());
    }
}
