//! Globs over the names a client sees (tools, prompts, resource URIs, principals), as
//! authorization rules, rate limits and caching rules declare them: globset's syntax and
//! meaning, with the shapes nearly every config uses (`name`, `prefix*`, `*suffix`, `*`,
//! `a*b*c`) matched here directly. globset treats every name as a path and builds a candidate
//! (basename, extension) per match: about 750 instructions of a `tools/call`, against a few
//! dozen for a direct match.

use globset::{Glob, GlobSet, GlobSetBuilder};

/// A set of globs; a name matches when any of them does.
#[derive(Debug)]
pub struct Globs {
    /// Globs whose only special character is `*`, split at it.
    starred: Vec<Vec<Box<str>>>,
    /// The others (`?`, classes, alternatives, escapes, `**`), matched by globset.
    others: Option<GlobSet>,
}

impl Globs {
    /// Every glob is checked by globset, so a mistake reads the same whichever way it will
    /// be matched: "invalid glob `x`: why".
    pub fn new(globs: &[String]) -> Result<Globs, String> {
        let mut starred = Vec::new();
        let mut others = GlobSetBuilder::new();
        let mut any_other = false;
        for glob in globs {
            let parsed = Glob::new(glob).map_err(|e| format!("invalid glob `{glob}`: {e}"))?;
            if glob.contains(['?', '[', ']', '{', '}', '\\']) || glob.contains("**") {
                others.add(parsed);
                any_other = true;
            } else {
                starred.push(glob.split('*').map(Box::from).collect());
            }
        }
        let others = match any_other {
            true => Some(others.build().map_err(|e| e.to_string())?),
            false => None,
        };
        Ok(Globs { starred, others })
    }

    /// None for no globs at all: callers read that as "not restricted".
    pub fn some(globs: &[String]) -> Result<Option<Globs>, String> {
        if globs.is_empty() {
            return Ok(None);
        }
        Globs::new(globs).map(Some)
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.starred.iter().any(|parts| starred_match(parts, name))
            || self.others.as_ref().is_some_and(|set| set.is_match(name))
    }
}

/// `parts`: a glob split at its `*`s (one part: no `*`). The first part must begin the name,
/// the last end it, and the ones between follow in order; taking each at its first place
/// leaves the most room for the rest, so the first fit found is a fit if any is.
fn starred_match(parts: &[Box<str>], name: &str) -> bool {
    let [first, middle @ .., last] = parts else {
        return parts.first().is_some_and(|exact| **exact == *name);
    };
    if name.len() < first.len() + last.len() || !name.starts_with(&**first) || !name.ends_with(&**last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in middle {
        match rest.find(&**part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct matcher agrees with globset on every pattern and name below, the tricky
    /// ones included (overlapping parts, empty parts, separators, dots, Unicode).
    #[test]
    fn starred_globs_match_exactly_what_globset_matches() {
        let patterns = [
            "", "*", "**x", "a", "a*", "*a", "a*b", "*a*", "a*a", "aa*aa", "a*b*c", "*.*", "github_*", "*_search",
            "x/*", "*/y", "é*", "*ü", "a**b", "ab*ba*ab",
        ];
        let names = [
            "",
            "a",
            "aa",
            "aaa",
            "aaaa",
            "ab",
            "ba",
            "abc",
            "a-b-c",
            "acb",
            "github_search",
            "github_",
            "x/y",
            "x/y/z",
            "web_search",
            "search",
            ".hidden",
            "a.b",
            "éa",
            "aü",
            "abba",
            "abbaab",
            "ababab",
            "aXbXc",
        ];
        for pattern in patterns {
            let ours = Globs::new(&[pattern.to_owned()]).expect("valid glob");
            let theirs = Glob::new(pattern).expect("valid glob").compile_matcher();
            for name in names {
                assert_eq!(ours.is_match(name), theirs.is_match(name), "`{pattern}` against `{name}`");
            }
        }
    }

    #[test]
    fn other_syntax_goes_to_globset_and_mistakes_are_named() {
        let globs = Globs::new(&["tool_?".to_owned(), "[ab]x".to_owned(), "{one,two}".to_owned()]).expect("valid");
        assert!(globs.starred.is_empty());
        for (name, matched) in [("tool_1", true), ("tool_12", false), ("bx", true), ("cx", false), ("two", true)] {
            assert_eq!(globs.is_match(name), matched, "{name}");
        }
        let error = Globs::new(&["ok*".to_owned(), "[unclosed".to_owned()]).expect_err("an invalid glob");
        assert!(error.starts_with("invalid glob `[unclosed`: "), "{error}");
        assert!(Globs::some(&[]).expect("no globs").is_none());
    }
}
