//! Names: operation ids, methods, paths and parameter names in; the names clients see out —
//! component names (MCP's `[A-Za-z0-9_.-]{1,128}`), argument names made unique with a
//! `__<location>` suffix, resource URIs and RFC 6570 URI templates, `$defs` keys.

use std::collections::HashSet;

use crate::config::ParameterLocation;
use crate::resources::HttpMethod;

/// The longest component name MCP clients accept.
const MAX_NAME: usize = 128;

/// A component's name: the override, else the operation id, else `<method>_<path>` — each
/// made of allowed characters.
pub(super) fn component(name: Option<&str>, operation_id: Option<&str>, method: HttpMethod, path: &str) -> String {
    [name, operation_id]
        .into_iter()
        .flatten()
        .map(sanitize)
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| sanitize(&format!("{}_{path}", method.key())))
}

/// `text` when it is a valid name already; else runs of other characters become one `_`,
/// `_` runs collapse and `_` is trimmed from the ends; at most 128 characters.
pub(super) fn sanitize(text: &str) -> String {
    if (1..=MAX_NAME).contains(&text.len()) && text.bytes().all(allowed) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len().min(MAX_NAME));
    for c in text.chars() {
        let c = if c.is_ascii() && allowed(c as u8) { c } else { '_' };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    let mut out = out.trim_matches('_').to_string();
    out.truncate(MAX_NAME);
    out.trim_end_matches('_').to_string()
}

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// The suffix an argument gets when its name is taken.
pub(super) fn suffix(location: ParameterLocation) -> &'static str {
    match location {
        ParameterLocation::Path => "path",
        ParameterLocation::Query => "query",
        ParameterLocation::Header => "header",
        ParameterLocation::Cookie => "cookie",
    }
}

/// `name` if no argument has it yet, else `name__<suffix>` (then `name__<suffix>_2`...).
pub(super) fn argument(name: &str, suffix: &str, taken: &mut HashSet<String>) -> String {
    let mut candidate = name.to_string();
    let mut n = 1;
    while taken.contains(&candidate) {
        candidate = if n == 1 { format!("{name}__{suffix}") } else { format!("{name}__{suffix}_{n}") };
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// A resource's URI: `openapi://<path without its leading />`.
pub(super) fn resource_uri(path: &str) -> String {
    format!("openapi://{}", path.strip_prefix('/').unwrap_or(path))
}

/// The `{name}` variables of a path template, in order.
pub(super) fn path_variables(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { break };
        out.push(&rest[open + 1..open + close]);
        rest = &rest[open + close + 1..];
    }
    out
}

/// An RFC 6570 variable name for a parameter: letters, digits and `_` as they are, every
/// other byte percent-encoded (`item-id` → `item%2Did`).
pub(super) fn template_variable(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A template's URI: the resource URI of `path` with each `{name}` as its template variable,
/// then `{?a,b}` for the query variables.
pub(super) fn uri_template(path: &str, query: &[String]) -> String {
    let mut out = String::with_capacity(path.len() + 16);
    let mut rest = resource_uri(path);
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { break };
        out.push_str(&rest[..open]);
        out.push('{');
        out.push_str(&template_variable(&rest[open + 1..open + close]));
        out.push('}');
        rest = rest[open + close + 1..].to_string();
    }
    out.push_str(&rest);
    if !query.is_empty() {
        out.push_str(&format!("{{?{}}}", query.join(",")));
    }
    out
}

/// The `$defs` key of a recursive reference: its last pointer token, in name characters.
pub(super) fn def_name(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or_default();
    let name = sanitize(&last.replace("~1", "/").replace("~0", "~"));
    if name.is_empty() { "schema".to_string() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_override_then_the_operation_id_then_method_and_path() {
        let path = "/items/{item_id}";
        assert_eq!(component(Some("fetch"), Some("read_item"), HttpMethod::Get, path), "fetch");
        assert_eq!(component(None, Some("read_item"), HttpMethod::Get, path), "read_item");
        assert_eq!(component(None, None, HttpMethod::Get, path), "get_items_item_id");
        assert_eq!(component(None, Some("!!!"), HttpMethod::Delete, "/"), "delete");
        assert_eq!(component(None, Some("repos/get-content"), HttpMethod::Get, path), "repos_get-content");
    }

    #[test]
    fn sanitizing_keeps_valid_names_and_collapses_the_rest() {
        assert_eq!(sanitize("a__b"), "a__b");
        assert_eq!(sanitize("  Get  Items (v2) "), "Get_Items_v2");
        assert_eq!(sanitize("événement"), "v_nement");
        let long = sanitize(&format!("{}!", "a".repeat(200)));
        assert_eq!(long.len(), 128);
    }

    #[test]
    fn taken_arguments_get_a_location_suffix() {
        let mut taken = HashSet::new();
        assert_eq!(argument("id", "path", &mut taken), "id");
        assert_eq!(argument("id", "query", &mut taken), "id__query");
        taken.insert("id__body".into());
        assert_eq!(argument("id", "body", &mut taken), "id__body_2");
    }

    #[test]
    fn uris_and_templates() {
        assert_eq!(resource_uri("/items"), "openapi://items");
        assert_eq!(path_variables("/a/{x}/b/{y-z}"), ["x", "y-z"]);
        assert_eq!(
            uri_template("/items/{item_id}", &["q".into(), "limit".into()]),
            "openapi://items/{item_id}{?q,limit}"
        );
        assert_eq!(uri_template("/a/{item-id}.json", &[]), "openapi://a/{item%2Did}.json");
        assert_eq!(def_name("#/components/schemas/Tree~1Node"), "Tree_Node");
    }
}
