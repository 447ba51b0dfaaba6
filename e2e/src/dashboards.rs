//! The chart's Grafana dashboards and alerting rules (`charts/manifold/files/`) read as what
//! they ask Prometheus: each panel's queries with the template variables filled in as Grafana
//! would, each variable's `label_values(…)`, and each alert's expression and the series
//! selectors inside it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::repo_root;

/// One query of one panel.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub dashboard: String,
    pub panel: String,
    /// As written in the dashboard, variables and all.
    pub expr: String,
}

/// A `label_values(<matcher>, <label>)` template variable.
#[derive(Debug, Clone)]
pub struct LabelVariable {
    pub dashboard: String,
    pub name: String,
    pub matcher: String,
    pub label: String,
}

/// One alerting rule of `files/alerts.yaml`.
#[derive(Debug, Clone)]
pub struct AlertRule {
    pub name: String,
    pub expr: String,
}

/// The dashboards' files.
pub fn files() -> Vec<PathBuf> {
    let dir = repo_root().join("charts/manifold/files/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// A dashboard's JSON.
pub fn read(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_error(path);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

trait ReadError<T> {
    fn unwrap_or_error(self, path: &std::path::Path) -> T;
}

impl<T> ReadError<T> for std::io::Result<T> {
    fn unwrap_or_error(self, path: &std::path::Path) -> T {
        self.unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }
}

/// Every query of every panel, rows' nested panels included.
pub fn panel_queries(dashboard: &Value) -> Vec<PanelQuery> {
    let title = dashboard["title"].as_str().unwrap_or_default().to_owned();
    let mut queries = Vec::new();
    let mut stack: Vec<&Value> = dashboard["panels"].as_array().into_iter().flatten().collect();
    while let Some(panel) = stack.pop() {
        stack.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                queries.push(PanelQuery {
                    dashboard: title.clone(),
                    panel: panel["title"].as_str().unwrap_or_default().to_owned(),
                    expr: expr.to_owned(),
                });
            }
        }
    }
    queries.reverse();
    queries
}

/// The dashboard's `label_values` variables.
pub fn label_variables(dashboard: &Value) -> Vec<LabelVariable> {
    let title = dashboard["title"].as_str().unwrap_or_default();
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let name = v["name"].as_str().unwrap_or_default().to_owned();
            let query = v["query"]["query"].as_str().or_else(|| v["query"].as_str()).unwrap_or_default();
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .unwrap_or_else(|| panic!("{title}: variable `{name}` is not label_values(…): {query}"));
            let (matcher, label) =
                inner.rsplit_once(',').unwrap_or_else(|| panic!("{title}: variable `{name}`: {query}"));
            LabelVariable {
                dashboard: title.to_owned(),
                name,
                matcher: matcher.trim().to_owned(),
                label: label.trim().to_owned(),
            }
        })
        .collect()
}

/// `expr` with Grafana's variables replaced: `$name` and `${name}` from `values` (a
/// variable's value is used as a regex, as `=~"$name"` expects), `$__rate_interval` by
/// `rate_interval`. Panics on a variable it was not given.
pub fn substitute(expr: &str, values: &BTreeMap<&str, String>, rate_interval: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, skip) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').unwrap_or_else(|| panic!("unclosed ${{ in {expr}"));
                (&braced[..end], end + 2)
            }
            None => {
                let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        match name {
            "__rate_interval" => out.push_str(rate_interval),
            _ => out.push_str(values.get(name).unwrap_or_else(|| panic!("no value for ${name} in {expr}"))),
        }
        rest = &after[skip..];
    }
    out.push_str(rest);
    out
}

/// Every alerting rule of `charts/manifold/files/alerts.yaml`.
pub fn alert_rules() -> Vec<AlertRule> {
    let path = repo_root().join("charts/manifold/files/alerts.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_error(&path);
    let file: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rules = Vec::new();
    for group in file["groups"].as_sequence().into_iter().flatten() {
        for rule in group["rules"].as_sequence().into_iter().flatten() {
            if let (Some(name), Some(expr)) = (rule["alert"].as_str(), rule["expr"].as_str()) {
                rules.push(AlertRule { name: name.to_owned(), expr: expr.trim().to_owned() });
            }
        }
    }
    rules
}

/// Aggregation operators: names followed by `by (…)` rather than `(` at times, never a series.
const AGGREGATIONS: &[&str] =
    &["sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile"];
/// Keywords followed by a list of label names.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
/// Other words of PromQL that are not series.
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "inf", "nan"];

/// The series selectors of a PromQL expression (`name{matchers}` or `name`), in order, each
/// once; ranges, functions, aggregations, label lists and numbers left out.
pub fn selectors(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut found: Vec<String> = Vec::new();
    let mut i = 0;
    let next_non_space = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    // The index past the bracket closing the one at `open`, quotes respected.
    let past_closing = |open: usize, close: char| {
        let mut j = open + 1;
        let mut quote: Option<char> = None;
        while j < chars.len() {
            match (quote, chars[j]) {
                (Some(_), '\\') => j += 1,
                (Some(q), c) if c == q => quote = None,
                (None, '"' | '\'' | '`') => quote = Some(chars[j]),
                (None, c) if c == close => return j + 1,
                _ => {}
            }
            j += 1;
        }
        panic!("unbalanced `{}` in {expr}", chars[open]);
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '[' {
            i = past_closing(i, ']');
        } else if c == '"' || c == '\'' || c == '`' {
            // A string argument (label_replace's, count_values'): skip it whole.
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            i = j + 1;
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c == '{' {
            let end = past_closing(i, '}');
            push_once(&mut found, chars[i..end].iter().collect());
            i = end;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let after = next_non_space(i);
            if LABEL_LISTS.contains(&word.as_str()) {
                if chars.get(after) == Some(&'(') {
                    i = past_closing(after, ')');
                }
            } else if AGGREGATIONS.contains(&word.as_str())
                || KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
                || chars.get(after) == Some(&'(')
            {
                // A function, an aggregation or a keyword.
            } else if chars.get(i) == Some(&'{') {
                let end = past_closing(i, '}');
                push_once(&mut found, chars[start..end].iter().collect());
                i = end;
            } else {
                push_once(&mut found, word);
            }
        } else {
            i += 1;
        }
    }
    found
}

fn push_once(found: &mut Vec<String>, selector: String) {
    if !found.contains(&selector) {
        found.push(selector);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_leave_out_functions_aggregations_label_lists_ranges_and_numbers() {
        let expr = r#"(sum by (namespace, route) (rate(a_total{error_type!~"|x}y",route=~"$r"}[5m]))
            / ignoring (error_type) group_left sum(rate(a_total[5m]))) > 0.05
            and on (job) max_over_time(up[1h]) and histogram_quantile(0.99, sum by (le) (rate(b_bucket{le!="1"}[1m] offset 5m))) > 1e3
            or topk(10, c) unless {__name__="d"} == bool 2"#;
        assert_eq!(
            selectors(expr),
            [
                r#"a_total{error_type!~"|x}y",route=~"$r"}"#,
                "a_total",
                "up",
                r#"b_bucket{le!="1"}"#,
                "c",
                r#"{__name__="d"}"#
            ]
        );
    }

    #[test]
    fn variables_are_filled_in_and_an_unknown_one_is_named() {
        let values = BTreeMap::from([("namespace", "acme".to_owned()), ("route", "tools".to_owned())]);
        assert_eq!(
            substitute(r#"rate(x{namespace=~"$namespace", route=~"${route}"}[$__rate_interval])"#, &values, "1m"),
            r#"rate(x{namespace=~"acme", route=~"tools"}[1m])"#
        );
        let unknown = std::panic::catch_unwind(|| substitute("x{job=~\"$job\"}", &values, "1m"));
        let message = unknown.expect_err("an unknown variable panics");
        assert!(message.downcast_ref::<String>().is_some_and(|m| m.contains("no value for $job")), "{message:?}");
    }
}
