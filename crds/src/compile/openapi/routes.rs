//! Route maps: `spec.openapi.routeMaps` in (patterns compiled once), and for each operation
//! the first map that matches it out — method, pattern searched anywhere in the path
//! template, and every tag of the map among the operation's.

use regex::{Regex, RegexBuilder};

use crate::outcome::Problem;
use crate::resources::{HttpMethod, RouteMap};

/// Route maps ready to match.
pub(super) struct Routes<'a>(Vec<(&'a RouteMap, Option<Regex>)>);

impl<'a> Routes<'a> {
    /// Compiles the maps' patterns; one problem per invalid pattern.
    pub(super) fn new(maps: &'a [RouteMap]) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut routes = Vec::with_capacity(maps.len());
        for (i, map) in maps.iter().enumerate() {
            let pattern = match map.pattern.as_deref().map(|p| RegexBuilder::new(p).size_limit(1 << 20).build()) {
                None => None,
                Some(Ok(regex)) => Some(regex),
                Some(Err(e)) => {
                    let field = format!("spec.openapi.routeMaps[{i}].pattern");
                    let text = e.to_string();
                    let reason = text.lines().last().unwrap_or_default().trim().trim_start_matches("error: ");
                    problems.push(Problem::new(field, format!("not a valid regular expression: {reason}")));
                    None
                }
            };
            routes.push((map, pattern));
        }
        if problems.is_empty() { Ok(Routes(routes)) } else { Err(problems) }
    }

    /// The first map matching an operation.
    pub(super) fn matching(&self, method: HttpMethod, path: &str, tags: &[&str]) -> Option<&'a RouteMap> {
        self.0
            .iter()
            .find(|(map, pattern)| {
                (map.methods.is_empty() || map.methods.contains(&method))
                    && pattern.as_ref().is_none_or(|p| p.is_match(path))
                    && map.tags.iter().all(|t| tags.contains(&t.as_str()))
            })
            .map(|(map, _)| *map)
    }
}
