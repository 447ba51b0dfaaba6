//! JWT verification keys of one provider: a fixed set (inline or from a Secret), or a JWKS
//! URL the gateway fetches, refreshes as `Cache-Control` allows, and fetches again when a
//! token names a key it does not know (at most once per cool-down). A failed fetch keeps
//! the keys known so far. Key sets are shared across reloads, per tenant and URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL};
use http_body_util::{BodyExt, Full, Limited};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::upstream::client::HttpClient;

const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Refresh bounds: `Cache-Control: max-age` is honoured within them; default without one.
const MIN_REFRESH: Duration = Duration::from_secs(30);
const MAX_REFRESH: Duration = Duration::from_secs(3600);
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
/// After a failed fetch, the next attempt waits at least this long.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// One usable key.
pub struct Key {
    pub kid: Option<String>,
    /// The key's own `alg`, when its JWK names one: then only that algorithm may use it.
    pub alg: Option<Algorithm>,
    pub decoding: DecodingKey,
}

impl Key {
    fn fits(&self, kid: Option<&str>, alg: Algorithm) -> bool {
        // A key without an id (an HMAC secret, say) may have signed a token naming any.
        (kid.is_none() || self.kid.is_none() || self.kid.as_deref() == kid)
            && self.decoding.family() == alg.family()
            && self.alg.is_none_or(|own| own == alg)
    }
}

/// A provider's keys.
pub struct KeySet {
    uri: Option<String>,
    /// Where `uri` may be fetched from.
    egress: manifold_runtime::egress::Egress,
    keys: ArcSwap<Vec<Arc<Key>>>,
    fetch: tokio::sync::Mutex<()>,
    times: Mutex<Times>,
}

#[derive(Default)]
struct Times {
    /// When the last fetch was attempted, successful or not.
    attempted: Option<Instant>,
    /// When the keys should be fetched again.
    refresh_at: Option<Instant>,
}

/// Key sets by (namespace, JWKS URL), carried from one snapshot to the next.
#[derive(Default)]
pub struct Pool {
    current: HashMap<(String, String), Arc<KeySet>>,
    next: HashMap<(String, String), Arc<KeySet>>,
    /// Where key sets may be fetched from.
    pub egress: manifold_runtime::egress::Egress,
}

impl Pool {
    /// The key set of `uri` for tenant `namespace`: the one already known, or a new one.
    pub fn fetched(&mut self, namespace: &str, uri: &str) -> Arc<KeySet> {
        let key = (namespace.to_owned(), uri.to_owned());
        let set = self.current.get(&key).or_else(|| self.next.get(&key)).cloned().unwrap_or_else(|| {
            Arc::new(KeySet {
                uri: Some(uri.to_owned()),
                egress: self.egress,
                keys: ArcSwap::from_pointee(Vec::new()),
                fetch: tokio::sync::Mutex::new(()),
                times: Mutex::default(),
            })
        });
        self.next.insert(key, Arc::clone(&set));
        set
    }

    /// Ends a snapshot build: sets no route uses any more are dropped.
    pub fn finish(&mut self) {
        self.current = std::mem::take(&mut self.next);
    }
}

impl KeySet {
    /// A fixed set from a JWKS document, or an HMAC secret.
    pub fn fixed(keys: Vec<Key>) -> Arc<Self> {
        Arc::new(KeySet {
            uri: None,
            egress: manifold_runtime::egress::Egress::default(),
            keys: ArcSwap::from_pointee(keys.into_iter().map(Arc::new).collect()),
            fetch: tokio::sync::Mutex::new(()),
            times: Mutex::default(),
        })
    }

    /// The keys that may have signed a token with this `kid` and `alg`. An unknown `kid`
    /// makes a URL-backed set fetch again, unless it did within `cooldown`.
    pub async fn candidates(self: &Arc<Self>, kid: Option<&str>, alg: Algorithm, cooldown: Duration) -> Vec<Arc<Key>> {
        let Some(uri) = self.uri.clone() else { return self.matching(kid, alg) };
        let (never, due) = {
            let times = self.times.lock().expect("times lock");
            (times.attempted.is_none(), times.refresh_at.is_some_and(|at| Instant::now() >= at))
        };
        if never {
            self.fetch_once(&uri, Why::First).await;
        } else if due {
            let set = Arc::clone(self);
            tokio::spawn(async move { set.fetch_once(&uri, Why::Refresh).await });
        }
        let found = self.matching(kid, alg);
        if !found.is_empty() || kid.is_none() {
            return found;
        }
        // A key added since the last fetch (rotation): fetch now, unless that was just done.
        let uri = self.uri.as_deref().expect("checked above");
        self.fetch_once(uri, Why::UnknownKid { asked: Instant::now(), cooldown }).await;
        self.matching(kid, alg)
    }

    fn matching(&self, kid: Option<&str>, alg: Algorithm) -> Vec<Arc<Key>> {
        self.keys.load().iter().filter(|k| k.fits(kid, alg)).cloned().collect()
    }

    /// Fetches, unless what asked for it was already done while this caller waited.
    async fn fetch_once(&self, uri: &str, why: Why) {
        let _fetching = self.fetch.lock().await;
        {
            let times = self.times.lock().expect("times lock");
            let done = match why {
                Why::First => times.attempted.is_some(),
                Why::Refresh => times.refresh_at.is_some_and(|at| Instant::now() < at),
                Why::UnknownKid { asked, cooldown } => {
                    times.attempted.is_some_and(|at| at >= asked || at.elapsed() < cooldown)
                }
            };
            if done {
                return;
            }
        }
        let started = std::time::SystemTime::now();
        let result = fetch(uri, self.egress).await;
        crate::traces::jwks_fetched(started, std::time::SystemTime::now());
        let mut times = self.times.lock().expect("times lock");
        times.attempted = Some(Instant::now());
        match result {
            Ok((keys, refresh)) => {
                tracing::debug!(%uri, keys = keys.len(), "fetched JWKS");
                self.keys.store(Arc::new(keys.into_iter().map(Arc::new).collect()));
                times.refresh_at = Some(Instant::now() + refresh);
            }
            Err(error) => {
                tracing::warn!(%uri, %error, "fetching JWKS failed; keeping the keys known so far");
                times.refresh_at = Some(Instant::now() + RETRY_AFTER_FAILURE);
            }
        }
    }
}

/// Why a fetch is wanted.
#[derive(Clone, Copy)]
enum Why {
    First,
    Refresh,
    UnknownKid { asked: Instant, cooldown: Duration },
}

async fn fetch(uri: &str, egress: manifold_runtime::egress::Egress) -> Result<(Vec<Key>, Duration), String> {
    let request = http::Request::get(uri)
        .header(ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("invalid JWKS URL: {e}"))?;
    let exchange = async {
        let response = HttpClient::current(egress).send(request).await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let refresh = refresh_after(response.headers().get(CACHE_CONTROL).and_then(|v| v.to_str().ok()));
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the key set: {e}"))?
            .to_bytes();
        Ok((body, refresh))
    };
    let (body, refresh) = tokio::time::timeout(FETCH_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {FETCH_TIMEOUT:?}"))??;
    let keys = parse_jwks(&body, false)?;
    if keys.is_empty() {
        return Err("the key set holds no usable public key".into());
    }
    Ok((keys, refresh))
}

/// How long fetched keys are used before the next fetch.
fn refresh_after(cache_control: Option<&str>) -> Duration {
    let max_age = cache_control.into_iter().flat_map(|v| v.split(',')).find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        name.eq_ignore_ascii_case("max-age").then(|| value.trim().parse::<u64>().ok()).flatten()
    });
    max_age.map_or(DEFAULT_REFRESH, |secs| Duration::from_secs(secs).clamp(MIN_REFRESH, MAX_REFRESH))
}

/// The usable keys of a JWKS document, each parsed on its own so one odd key does not
/// hide the others. Symmetric keys count only when the set came from a Secret.
pub fn parse_jwks(text: &[u8], symmetric: bool) -> Result<Vec<Key>, String> {
    let set: Value = serde_json::from_slice(text).map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
    let entries = set.get("keys").and_then(Value::as_array).ok_or("a JSON Web Key Set needs a `keys` array")?;
    let mut keys = Vec::new();
    for entry in entries {
        let is_oct = entry.get("kty").and_then(Value::as_str) == Some("oct");
        let for_signing = entry.get("use").and_then(Value::as_str).is_none_or(|u| u == "sig");
        if (is_oct && !symmetric) || !for_signing {
            continue;
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else { continue };
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else { continue };
        // A key for something other than signing (`RSA-OAEP`, say) verifies nothing.
        let alg = match jwk.common.key_algorithm.map(Algorithm::try_from) {
            Some(Ok(alg)) => Some(alg),
            Some(Err(_)) => continue,
            None => None,
        };
        keys.push(Key { kid: jwk.common.key_id.clone(), alg, decoding });
    }
    Ok(keys)
}

/// An HMAC secret as a key.
pub fn secret_key(secret: &str) -> Key {
    Key { kid: None, alg: None, decoding: DecodingKey::from_secret(secret.as_bytes()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_follows_max_age_within_bounds() {
        assert_eq!(refresh_after(None), DEFAULT_REFRESH);
        assert_eq!(refresh_after(Some("public, max-age=600")), Duration::from_secs(600));
        assert_eq!(refresh_after(Some("max-age=1")), MIN_REFRESH);
        assert_eq!(refresh_after(Some("max-age=999999")), MAX_REFRESH);
        assert_eq!(refresh_after(Some("no-cache")), DEFAULT_REFRESH);
    }

    #[test]
    fn symmetric_keys_need_a_secret_source() {
        let set = br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", "kid": "h"},
            {"kty": "RSA", "n": "not base64!", "e": "AQAB"}, {"kty": "weird"}]}"#;
        assert_eq!(parse_jwks(set, false).unwrap().len(), 0, "oct skipped, broken keys skipped");
        assert_eq!(parse_jwks(set, true).unwrap().len(), 1);
        assert!(parse_jwks(b"{}", false).is_err());
    }
}
