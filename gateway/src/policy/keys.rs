//! Names of rate limit buckets in Redis: `manifold:rl:<scope>:<namespace>[:<route>]:<limit>:
//! <numbers>[:<principal>]`. Each part is written as it is when it is short and plain, else as
//! `#` and a hash of it, so a key stays bounded (under 400 bytes) and no part can pass for
//! another or for a separator: tenants, routes and callers never share a bucket by accident.

use manifold_api::resources::LimitScope;
use sha2::{Digest, Sha256};

/// What every key starts with, so the buckets are easy to find (and to delete) in a shared Redis.
const PREFIX: &str = "manifold:rl";

/// Longest part written as it is.
const PLAIN_MAX: usize = 64;

/// The key of a limit's bucket, or for a limit per caller the start of each caller's key
/// ([`caller`]). The numbers (`requests-perMs-burst`) are part of it, as in local mode: routes
/// declaring a tenant limit with other numbers have buckets of their own.
pub fn limit(scope: LimitScope, namespace: &str, route: &str, limit: &str, numbers: &str) -> String {
    let (namespace, limit, numbers) = (part(namespace), part(limit), part(numbers));
    match scope {
        LimitScope::Tenant => format!("{PREFIX}:t:{namespace}:{limit}:{numbers}"),
        LimitScope::Route => format!("{PREFIX}:r:{namespace}:{}:{limit}:{numbers}", part(route)),
        LimitScope::Principal => format!("{PREFIX}:p:{namespace}:{}:{limit}:{numbers}", part(route)),
    }
}

/// One caller's bucket of a limit per caller (`prefix` from [`limit`]).
pub fn caller(prefix: &str, principal: &str) -> String {
    format!("{prefix}:{}", part(principal))
}

/// A part as it is when short and made of `[A-Za-z0-9._@-]` (names of Kubernetes objects,
/// most callers), else `#` and the first 128 bits of its SHA-256 in hex.
fn part(value: &str) -> std::borrow::Cow<'_, str> {
    let plain = !value.is_empty()
        && value.len() <= PLAIN_MAX
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    if plain {
        return value.into();
    }
    let digest = Sha256::digest(value.as_bytes());
    format!("#{}", hex::encode(&digest[..16])).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(scope: LimitScope, namespace: &str) -> String {
        limit(scope, namespace, "tools", "calls", "10-60000-10")
    }

    #[test]
    fn plain_parts_are_kept_and_scopes_have_letters_of_their_own() {
        assert_eq!(calls(LimitScope::Tenant, "acme"), "manifold:rl:t:acme:calls:10-60000-10");
        assert_eq!(calls(LimitScope::Route, "acme"), "manifold:rl:r:acme:tools:calls:10-60000-10");
        let callers = calls(LimitScope::Principal, "acme");
        assert_eq!(
            caller(&callers, "alice@example.com"),
            "manifold:rl:p:acme:tools:calls:10-60000-10:alice@example.com"
        );
        // Two tenants with the same route and limit names have keys of their own.
        for scope in [LimitScope::Tenant, LimitScope::Route, LimitScope::Principal] {
            assert_ne!(calls(scope, "acme"), calls(scope, "beta"));
        }
    }

    #[test]
    fn long_or_unusual_parts_are_hashed_so_keys_are_bounded_and_cannot_collide() {
        let callers = calls(LimitScope::Principal, "acme");
        // A caller whose name holds the separator cannot pose as another key's tail.
        let sneaky = caller(&callers, "x:y");
        assert!(sneaky.starts_with("manifold:rl:p:acme:tools:calls:10-60000-10:#"), "{sneaky}");
        assert_eq!(sneaky.split(':').count(), 8);
        assert_ne!(sneaky, caller(&callers, "x_y"));
        // A name that looks like a hash is hashed itself.
        let hashed = &sneaky[sneaky.rfind(':').expect("a separator") + 1..];
        assert_ne!(caller(&callers, hashed), sneaky);
        // Long parts and empty ones are hashed too: the key stays short.
        let long = caller(&callers, &"a".repeat(10_000));
        assert!(long.len() < 100, "{long}");
        assert_ne!(caller(&callers, ""), caller(&callers, "#"));
        let longest = caller(
            &limit(
                LimitScope::Principal,
                &"n".repeat(63),
                &"r".repeat(253),
                &"l".repeat(63),
                "1000000-86400000-1000000",
            ),
            &"p".repeat(4096),
        );
        assert!(longest.len() < 400, "{} bytes", longest.len());
    }
}
