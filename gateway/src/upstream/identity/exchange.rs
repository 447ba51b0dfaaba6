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
use crate::access::Principal;

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
        Ok(Exchange { endpoint, parameters, cache: Mutex::default() })
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
            _ => Denied::Provider(format!("cannot exchange the caller's token for this mount: {error}")),
        })?;
        let mut lifetime = granted.lifetime().as_millis() as u64;
        // The exchanged token stands for the caller's: it is not used once that has expired.
        if let Some(exp) = principal.claim("exp").and_then(serde_json::Value::as_u64) {
            lifetime = lifetime.min((exp * 1000).saturating_sub(now));
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
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, entry| !entry.spent(now));
            if cache.len() >= MAX_CACHED {
                let mut due: Vec<u64> = cache.values().map(|entry| entry.refresh_at()).collect();
                let keep = MAX_CACHED * 9 / 10;
                let (_, cutoff, _) = due.select_nth_unstable(cache.len() - keep);
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
