//! Resource templates (RFC 6570 URIs with `{name}` path variables and an optional trailing
//! `{?a,b}`): a URI a client reads is matched here, and its variables become the arguments of
//! the template's call.

use serde_json::{Map, Value};

/// A resource template, ready to match URIs.
pub struct Template {
    regex: regex::Regex,
    /// The variables' names in capture order; the query part's as `?a,b`.
    names: Vec<String>,
}

impl Template {
    pub fn parse(template: &str) -> Result<Self, String> {
        let (regex, names) = template_matcher(template)?;
        Ok(Template { regex, names })
    }

    /// The arguments `uri` gives the template's variables, if it matches.
    pub fn arguments(&self, uri: &str) -> Option<Map<String, Value>> {
        let captures = self.regex.captures(uri)?;
        Some(template_arguments(&captures, &self.names))
    }
}

/// A regex matching the URIs of an RFC 6570 template (`{name}` path variables, an optional
/// trailing `{?a,b}`), and the names of its variables in capture order.
fn template_matcher(template: &str) -> Result<(regex::Regex, Vec<String>), String> {
    let (path, query) = match template.find("{?") {
        Some(at) => (&template[..at], Some(template[at + 2..].trim_end_matches('}'))),
        None => (template, None),
    };
    let mut pattern = String::from("^");
    let mut names = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close =
            rest[open..].find('}').map(|c| open + c).ok_or_else(|| format!("template `{template}` is not closed"))?;
        pattern.push_str(&regex::escape(&rest[..open]));
        pattern.push_str("([^/?#]+)");
        names.push(rest[open + 1..close].to_owned());
        rest = &rest[close + 1..];
    }
    pattern.push_str(&regex::escape(rest));
    if let Some(query) = query {
        pattern.push_str(r"(?:\?([^#]*))?");
        names.push(format!("?{query}"));
    }
    pattern.push('$');
    let regex = regex::Regex::new(&pattern).map_err(|e| format!("template `{template}`: {e}"))?;
    Ok((regex, names))
}

/// The arguments a URI gives a template's variables (percent-decoded); the query part gives
/// those of its `{?...}` variables.
fn template_arguments(captures: &regex::Captures<'_>, names: &[String]) -> Map<String, Value> {
    let mut arguments = Map::new();
    for (i, name) in names.iter().enumerate() {
        let Some(found) = captures.get(i + 1) else { continue };
        match name.strip_prefix('?') {
            Some(allowed) => {
                // Variable names are percent-encoded where RFC 6570 requires (`page%2Dsize`);
                // the query carries the parameter's own name (`page-size`).
                let allowed: Vec<(String, &str)> = allowed
                    .split(',')
                    .map(|v| (percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned(), v))
                    .collect();
                for (key, value) in url::form_urlencoded::parse(found.as_str().as_bytes()) {
                    if let Some((_, variable)) = allowed.iter().find(|(name, _)| *name == key) {
                        arguments.insert((*variable).to_owned(), Value::String(value.into_owned()));
                    }
                }
            }
            None => {
                let value = percent_encoding::percent_decode_str(found.as_str()).decode_utf8_lossy();
                arguments.insert(name.clone(), Value::String(value.into_owned()));
            }
        }
    }
    arguments
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn templates_match_uris_and_give_their_variables() {
        let (regex, names) = template_matcher("openapi://items/{item_id}/parts/{part}{?verbose,page%2Dsize}").unwrap();
        let captures = regex.captures("openapi://items/4%202/parts/x?verbose=true&other=1&page-size=5").unwrap();
        let arguments = template_arguments(&captures, &names);
        assert_eq!(
            Value::Object(arguments),
            json!({"item_id": "4 2", "part": "x", "verbose": "true", "page%2Dsize": "5"})
        );
        assert!(regex.captures("openapi://items/4/parts").is_none());
        assert!(regex.captures("openapi://items/4/x/parts/y").is_none(), "a variable is one segment");
    }
}
