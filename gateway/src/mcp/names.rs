//! Client-visible names and URIs, and back: what a mount's prefix does to each kind of
//! component. Tools and prompts become `<prefix>_<name>` (tools also pass the mount's
//! include, exclude and rename policy); resource URIs become `<scheme>://<prefix>/<rest>`,
//! as FastMCP mounts them. Every mapping is reversible, so a name always routes back to its owner.

use std::borrow::Cow;

use crate::protocol::Kind;
use crate::snapshot::{Mount, Route};

impl Mount {
    /// What clients see for an upstream name, or None when the mount hides it.
    pub fn visible(&self, kind: Kind, upstream: &str) -> Option<String> {
        let prefix = &self.config.prefix;
        match kind {
            Kind::Tool => Some(manifold_api::config::prefixed(prefix, self.matcher.visible(upstream)?)),
            Kind::Prompt => Some(manifold_api::config::prefixed(prefix, upstream)),
            Kind::Resource | Kind::Template => Some(prefix_uri(prefix, upstream)),
        }
    }

    /// The upstream name behind what clients see, if this mount can have it (borrowed where
    /// no new text is needed: this is on every routed request's path).
    pub fn upstream<'a>(&'a self, kind: Kind, visible: &'a str) -> Option<Cow<'a, str>> {
        let prefix = &self.config.prefix;
        match kind {
            Kind::Tool => self.matcher.upstream(unprefix_name(prefix, visible)?).map(Cow::Borrowed),
            Kind::Prompt => unprefix_name(prefix, visible).map(Cow::Borrowed),
            Kind::Resource | Kind::Template => unprefix_uri(prefix, visible).map(Cow::Owned),
        }
    }
}

impl Route {
    /// The mounts that may serve a client-visible name, with the upstream name on each, in
    /// mount order: the mount whose prefix the name carries, and the unprefixed mounts.
    pub fn candidates<'a>(&'a self, kind: Kind, visible: &'a str) -> Vec<(usize, Cow<'a, str>)> {
        self.mounts.iter().enumerate().filter_map(|(i, mount)| Some((i, mount.upstream(kind, visible)?))).collect()
    }
}

fn unprefix_name<'a>(prefix: &str, visible: &'a str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(visible);
    }
    visible.strip_prefix(prefix)?.strip_prefix('_')
}

/// `scheme://rest` becomes `scheme://prefix/rest`; a URI without `//` after its scheme,
/// `scheme:rest`, becomes `scheme:prefix/rest`.
pub(crate) fn prefix_uri(prefix: &str, uri: &str) -> String {
    if prefix.is_empty() {
        return uri.to_owned();
    }
    match split_scheme(uri) {
        Some((head, rest)) => format!("{head}{prefix}/{rest}"),
        None => format!("{prefix}/{uri}"),
    }
}

fn unprefix_uri(prefix: &str, visible: &str) -> Option<String> {
    if prefix.is_empty() {
        return Some(visible.to_owned());
    }
    match split_scheme(visible) {
        Some((head, rest)) => Some(format!("{head}{}", rest.strip_prefix(prefix)?.strip_prefix('/')?)),
        None => visible.strip_prefix(prefix)?.strip_prefix('/').map(str::to_owned),
    }
}

/// Refuses a resource URI that could name something outside what its form says: dot
/// segments (also percent-encoded), backslashes, control characters. Authorization globs and
/// the mount prefix see the URI as written, so `file://docs/public/../secret` must not get
/// through to a server that would normalize it.
pub fn check_uri(uri: &str) -> Result<(), &'static str> {
    if uri.len() > MAX_TARGET_BYTES {
        return Err("a resource URI must be at most 2048 bytes");
    }
    // Only the canonical spelling, so that globs and prefixes see what the server will: a
    // lowercase scheme, and no percent-encoded letters, digits or `-._~`.
    if split_scheme(uri).is_some_and(|(scheme, _)| scheme.bytes().any(|b| b.is_ascii_uppercase())) {
        return Err("a resource URI's scheme must be lowercase");
    }
    if uri.as_bytes().windows(3).any(|w| w[0] == b'%' && encodes_unreserved(&w[1..])) {
        return Err("a resource URI must not percent-encode letters, digits or `-._~`");
    }
    if uri.chars().any(|c| c.is_control() || c == '\\') {
        return Err("a resource URI must not contain control characters or backslashes");
    }
    let lower = uri.to_ascii_lowercase();
    if lower.contains("%5c") || lower.contains("%00") {
        return Err("a resource URI must not contain encoded backslashes or NUL");
    }
    let decoded = lower.replace("%2f", "/");
    let path = decoded.split(['?', '#']).next().unwrap_or_default();
    if path.split('/').any(|segment| segment == "." || segment == "..") {
        return Err("a resource URI must not contain `.` or `..` segments");
    }
    Ok(())
}

/// Names and URIs clients send are refused past this length.
pub const MAX_TARGET_BYTES: usize = 2048;

/// Whether two hex digits encode an unreserved character (RFC 3986).
fn encodes_unreserved(hex: &[u8]) -> bool {
    std::str::from_utf8(hex)
        .ok()
        .and_then(|h| u8::from_str_radix(h, 16).ok())
        .is_some_and(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Splits `scheme://` or `scheme:` from the rest of a URI.
fn split_scheme(uri: &str) -> Option<(&str, &str)> {
    let colon = uri.find(':')?;
    let scheme = &uri[..colon];
    let valid = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid {
        return None;
    }
    let end = if uri[colon + 1..].starts_with("//") { colon + 3 } else { colon + 1 };
    Some(uri.split_at(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_gain_and_lose_the_prefix() {
        for (uri, visible) in [
            ("file:///etc/hosts", "file://docs//etc/hosts"),
            ("demo://resource/static/1", "demo://docs/resource/static/1"),
            ("urn:isbn:123", "urn:docs/isbn:123"),
            ("test://template/{id}/data", "test://docs/template/{id}/data"),
            ("no-scheme", "docs/no-scheme"),
        ] {
            assert_eq!(prefix_uri("docs", uri), visible);
            assert_eq!(unprefix_uri("docs", visible).as_deref(), Some(uri), "{visible}");
        }
        assert_eq!(unprefix_uri("docs", "file://other/x"), None);
        assert_eq!(unprefix_uri("docs", "file://docsx/x"), None);
        assert_eq!(prefix_uri("", "file:///x"), "file:///x");
    }

    #[test]
    fn uris_that_could_escape_are_refused() {
        for bad in [
            "file://docs/public/../secret",
            "file://docs/..",
            "file://docs/./x",
            "file://docs/%2e%2e/secret",
            "file://docs/%2E%2e%2fsecret",
            "FILE://docs/secret/x",
            "file://docs/secr%65t/x",
            "file://docs/a\\..\\b",
            "file://docs/a%5c..",
            "file://docs/a\u{0}",
        ] {
            assert!(check_uri(bad).is_err(), "{bad}");
        }
        for good in ["file://docs/a..b", "demo://docs/x?q=..", "file://docs//etc/hosts", "urn:docs/isbn:1"] {
            assert_eq!(check_uri(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn names_gain_and_lose_the_prefix() {
        assert_eq!(unprefix_name("a", "a_search"), Some("search"));
        assert_eq!(unprefix_name("a", "ab_search"), None);
        assert_eq!(unprefix_name("", "a_search"), Some("a_search"));
    }
}
