//! `tokenExchange` (RFC 8693): the caller's inbound JWT goes to the token endpoint as the
//! subject token and comes back as a token for this upstream. Exchanged tokens are cached per
//! caller and subject token (its SHA-256) in this mount's [`Exchange`], until shortly before
//! they expire and never past the subject token's own `exp`; each entry fetches one at a time.
//!
//! A refusal about the caller's token (`invalid_grant`: expired, revoked, not for this
//! client; `invalid_token`; `access_denied`: this subject may not have it) is
//! [`Denied::Caller`]; any other (`invalid_client`, `unauthorized_client`, `invalid_target`
//! and `invalid_scope` for the mount's configured target, `invalid_request`, server errors,
//! no answer) is the mount's problem, [`Denied::Provider`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use manifold_api::config::TokenExchangeConfig;
use manifold_runtime::egress::Egress;
use sha2::{Digest, Sha256};

use super::Denied;
use super::flight::{self, Fetched, Flight};
use super::token_endpoint::{GrantError, TokenEndpoint};
use crate::principal::Principal;

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Callers with an exchanged token cached, at most; expired ones go first.
const MAX_CACHED: usize = 10_000;
/// OAuth errors that are about the subject token or its subject, not the gateway.
const CALLER_ERRORS: [&str; 3] = ["invalid_grant", "invalid_token", "access_denied"];

pub struct Exchange {
    endpoint: TokenEndpoint,
    /// The grant's parameters beside `grant_type` and the subject token.
    parameters: Vec<(&'static str, String)>,
    /// SHA-256 of (caller identity, subject token) -> its exchanged token.
    cache: Mutex<HashMap<[u8; 32], Arc<Flight>>>,
    /// Entries kept, at most ([`MAX_CACHED`]; tests make it small).
    capacity: usize,
}

impl Exchange {
    pub fn new(config: &TokenExchangeConfig, egress: Egress, timeout: Duration) -> Result<Self, String> {
        let endpoint = TokenEndpoint::new(&config.client, egress, timeout)?;
        let requested =
            if config.requested_token_type.is_empty() { ACCESS_TOKEN_TYPE } else { &config.requested_token_type };
        let mut parameters = vec![("requested_token_type", requested.to_owned())];
        if let Some(audience) = &config.audience {
            parameters.push(("audience", audience.clone()));
        }
        if let Some(resource) = &config.resource {
            parameters.push(("resource", resource.clone()));
        }
        if !config.scopes.is_empty() {
            parameters.push(("scope", config.scopes.join(" ")));
        }
        Ok(Exchange { endpoint, parameters, cache: Mutex::default(), capacity: MAX_CACHED })
    }

    /// `principal`'s exchanged token, exchanged if none is fresh at `now` (Unix ms).
    pub async fn token(&self, principal: &Principal, now: u64) -> Result<Arc<str>, Denied> {
        let Some(subject) = &principal.token else {
            return Err(Denied::Caller("this mount exchanges the caller's JWT, and the caller presented none".into()));
        };
        let subject = subject.expose();
        let entry = self.entry(key(principal, subject), now);
        entry.get(now, || self.exchange(principal, subject, now)).await
    }

    async fn exchange(&self, principal: &Principal, subject: &str, now: u64) -> Result<Fetched, Denied> {
        let mut form =
            vec![("grant_type", TOKEN_EXCHANGE), ("subject_token", subject), ("subject_token_type", ACCESS_TOKEN_TYPE)];
        form.extend(self.parameters.iter().map(|(name, value)| (*name, value.as_str())));
        let granted = self.endpoint.grant(&form).await.map_err(|error| match &error {
            GrantError::Refused { error: code, .. } if CALLER_ERRORS.contains(&code.as_str()) => {
                Denied::Caller(format!("the identity provider would not exchange the caller's token: {error}"))
            }
            _ => Denied::Provider(format!("cannot exchange the caller's token: {error}")),
        })?;
        let mut lifetime = granted.lifetime().as_millis() as u64;
        // The exchanged token stands for the caller's: it is not used once that has expired.
        if let Some(exp) = principal.claim("exp").and_then(serde_json::Value::as_u64) {
            lifetime = lifetime.min(exp.saturating_mul(1000).saturating_sub(now));
        }
        Ok(Fetched { token: granted.access_token.into(), refresh_at: flight::refresh_at(now, lifetime) })
    }

    /// The upstream refused `sent` for `principal`: drop it unless a newer one replaced it.
    pub fn rejected(&self, principal: &Principal, sent: &str) -> bool {
        let Some(subject) = &principal.token else { return false };
        let entry =
            self.cache.lock().expect("exchange cache lock poisoned").get(&key(principal, subject.expose())).cloned();
        if let Some(entry) = entry {
            entry.forget(sent);
        }
        true
    }

    /// The cache entry for `key`, made if new; when the cache is full, spent entries go
    /// first, then those due soonest, down to nine tenths.
    fn entry(&self, key: [u8; 32], now: u64) -> Arc<Flight> {
        let mut cache = self.cache.lock().expect("exchange cache lock poisoned");
        if let Some(entry) = cache.get(&key) {
            return entry.clone();
        }
        if cache.len() >= self.capacity {
            cache.retain(|_, entry| !entry.spent(now));
            if cache.len() >= self.capacity {
                let mut due: Vec<u64> = cache.values().map(|entry| entry.refresh_at()).collect();
                let keep = self.capacity * 9 / 10;
                // The (len - keep)th soonest: it and all due before it go.
                let (_, cutoff, _) = due.select_nth_unstable(cache.len() - keep - 1);
                let cutoff = *cutoff;
                cache.retain(|_, entry| entry.refresh_at() > cutoff);
            }
        }
        cache.entry(key).or_default().clone()
    }
}

/// Who calls with which token: the cache key (a hash, so the map holds no token).
fn key(principal: &Principal, subject: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(principal.identity.as_bytes());
    hash.update([0]);
    hash.update(subject.as_bytes());
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::upstream::identity::testing::{self, TokenServer, granted};

    fn exchange(url: &str) -> Exchange {
        let config = TokenExchangeConfig {
            client: testing::client(url),
            audience: Some("orders".into()),
            resource: Some("https://orders.test".into()),
            scopes: vec!["orders:read".into()],
            requested_token_type: String::new(),
        };
        Exchange::new(&config, Egress::default(), Duration::from_secs(10)).expect("a valid config")
    }

    /// The exchanged token names whose token was exchanged.
    async fn server() -> TokenServer {
        TokenServer::answering(Duration::ZERO, |received, n| {
            (200, granted(&format!("{}-{n}", received.form["subject_token"]), 3600))
        })
        .await
    }

    #[tokio::test]
    async fn the_callers_jwt_is_exchanged_once_per_caller() {
        let server = server().await;
        let exchange = exchange(&server.url);
        let alice = testing::caller("alice", Some("jwt-alice"), testing::no_claims());
        let bob = testing::caller("bob", Some("jwt-bob"), testing::no_claims());
        let now = flight::now_ms();
        assert_eq!(&*exchange.token(&alice, now).await.expect("alice's token"), "jwt-alice-1");
        assert_eq!(&*exchange.token(&alice, now).await.expect("alice's token"), "jwt-alice-1");
        assert_eq!(&*exchange.token(&bob, now).await.expect("bob's token"), "jwt-bob-2");
        assert_eq!(&*exchange.token(&alice, now).await.expect("alice's token"), "jwt-alice-1");
        let received = server.received();
        assert_eq!(received.len(), 2);
        let form = &received[0].form;
        let expected = [
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", "jwt-alice"),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
            ("audience", "orders"),
            ("resource", "https://orders.test"),
            ("scope", "orders:read"),
            ("client_id", "gateway"),
            ("client_secret", "s3cret-value"),
        ];
        assert_eq!(form, &expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    }

    #[tokio::test]
    async fn a_new_jwt_of_the_same_caller_is_exchanged_again() {
        let server = server().await;
        let exchange = exchange(&server.url);
        let now = flight::now_ms();
        let before = testing::caller("alice", Some("jwt-a1"), testing::no_claims());
        let after = testing::caller("alice", Some("jwt-a2"), testing::no_claims());
        assert_eq!(&*exchange.token(&before, now).await.expect("a token"), "jwt-a1-1");
        assert_eq!(&*exchange.token(&after, now).await.expect("a token"), "jwt-a2-2");
    }

    #[tokio::test]
    async fn an_exchanged_token_is_not_kept_past_the_callers_own() {
        let server = server().await;
        let exchange = exchange(&server.url);
        let now = flight::now_ms();
        // The caller's token expires in 10 s; the exchanged one would last an hour.
        let alice = testing::caller("alice", Some("jwt-alice"), json!({ "exp": now / 1000 + 10 }));
        let lifetime = (now / 1000 + 10) * 1000 - now;
        let refresh = flight::refresh_at(now, lifetime);
        assert_eq!(&*exchange.token(&alice, now).await.expect("a token"), "jwt-alice-1");
        assert_eq!(&*exchange.token(&alice, refresh - 1).await.expect("a token"), "jwt-alice-1");
        assert_eq!(&*exchange.token(&alice, refresh).await.expect("a token"), "jwt-alice-2");
    }

    #[tokio::test]
    async fn a_caller_without_a_jwt_is_told_so() {
        let server = server().await;
        let anonymous = testing::caller("alice", None, testing::no_claims());
        let denied = exchange(&server.url).token(&anonymous, flight::now_ms()).await;
        let expected = "this mount exchanges the caller's JWT, and the caller presented none";
        assert_eq!(denied, Err(Denied::Caller(expected.into())));
        assert_eq!(server.count(), 0);
    }

    #[tokio::test]
    async fn refusals_of_the_callers_token_are_the_callers_and_others_the_providers() {
        let server =
            TokenServer::answering(Duration::ZERO, |received, _| match received.form["subject_token"].as_str() {
                "expired" => (400, json!({ "error": "invalid_grant", "error_description": "token expired" })),
                _ => (400, json!({ "error": "invalid_target", "error_description": "unknown audience orders" })),
            })
            .await;
        let exchange = exchange(&server.url);
        let now = flight::now_ms();
        let expired = testing::caller("alice", Some("expired"), testing::no_claims());
        let expected = format!(
            "the identity provider would not exchange the caller's token: the token endpoint {} refused: invalid_grant: token expired",
            server.url
        );
        assert_eq!(exchange.token(&expired, now).await, Err(Denied::Caller(expected)));
        let other = testing::caller("bob", Some("fine"), testing::no_claims());
        let expected = format!(
            "cannot exchange the caller's token: the token endpoint {} refused: invalid_target: unknown audience orders",
            server.url
        );
        assert_eq!(exchange.token(&other, now).await, Err(Denied::Provider(expected)));
    }

    #[tokio::test]
    async fn a_rejected_exchanged_token_is_exchanged_anew_for_that_caller_only() {
        let server = server().await;
        let exchange = exchange(&server.url);
        let now = flight::now_ms();
        let alice = testing::caller("alice", Some("jwt-alice"), testing::no_claims());
        let bob = testing::caller("bob", Some("jwt-bob"), testing::no_claims());
        exchange.token(&alice, now).await.expect("alice's token");
        exchange.token(&bob, now).await.expect("bob's token");
        // Bob's rejection of alice's token (a token he cannot hold) forgets nothing of hers.
        assert!(exchange.rejected(&bob, "jwt-alice-1"));
        assert_eq!(&*exchange.token(&alice, now).await.expect("alice's token"), "jwt-alice-1");
        assert!(exchange.rejected(&alice, "jwt-alice-1"));
        assert_eq!(&*exchange.token(&alice, now).await.expect("alice's token"), "jwt-alice-3");
        assert_eq!(&*exchange.token(&bob, now).await.expect("bob's token"), "jwt-bob-2");
        assert_eq!(server.count(), 3);
    }

    #[tokio::test]
    async fn a_full_cache_drops_spent_entries_first_then_those_due_soonest() {
        // `short` gets a 10 s token, everyone else an hour's.
        let server = TokenServer::answering(Duration::ZERO, |received, n| {
            let subject = &received.form["subject_token"];
            (200, granted(&format!("{subject}-{n}"), if subject == "short" { 10 } else { 3600 }))
        })
        .await;
        let mut exchange = exchange(&server.url);
        exchange.capacity = 2;
        let caller = |name: &str| testing::caller(name, Some(name), testing::no_claims());
        let now = flight::now_ms();
        exchange.token(&caller("short"), now).await.expect("a token");
        exchange.token(&caller("alice"), now).await.expect("a token");
        // At 9 s, short's token is due: it makes room for bob, and alice's stays.
        exchange.token(&caller("bob"), now + 9_000).await.expect("a token");
        assert_eq!(&*exchange.token(&caller("alice"), now + 9_000).await.expect("a token"), "alice-2");
        assert_eq!(server.count(), 3);
        // Nothing is due: the entry due soonest (alice's) makes room for carol; bob's stays.
        exchange.token(&caller("carol"), now + 10_000).await.expect("a token");
        assert_eq!(&*exchange.token(&caller("bob"), now + 10_000).await.expect("a token"), "bob-3");
        assert_eq!(&*exchange.token(&caller("alice"), now + 10_000).await.expect("a token"), "alice-5");
    }

    #[tokio::test]
    async fn concurrent_calls_of_one_caller_exchange_once() {
        let server = server().await;
        let exchange = exchange(&server.url);
        let now = flight::now_ms();
        let alice = testing::caller("alice", Some("jwt-alice"), testing::no_claims());
        let tokens = futures::future::join_all((0..20).map(|_| exchange.token(&alice, now))).await;
        for token in tokens {
            assert_eq!(&*token.expect("a token"), "jwt-alice-1");
        }
        assert_eq!(server.count(), 1);
    }
}
