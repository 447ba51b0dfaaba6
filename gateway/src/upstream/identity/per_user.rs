//! `oauth2AuthorizationCode`: each caller's own upstream token, from the store when it is
//! fresh, else refreshed (one refresh per caller and mount at a time on a replica), else a
//! consent link whose sealed [`State`] starts an authorization-code flow with PKCE at the
//! gateway's `/.manifold/oauth2/start`; the callback ([`redeem`]) stores what it yields.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use manifold_api::config::AuthorizationCodeConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::store::{Entry, Key, MAX_ENTRY_LIFE, Seal, StoreError, Tokens, now, principal_hash};
use super::token_endpoint::{GrantError, Granted, TokenEndpoint};
use super::{Denied, Place};
use crate::principal::{Principal, Source};

/// Where consent links lead (on the origin of the mount's `redirectUrl`).
pub const START_PATH: &str = "/.manifold/oauth2/start";
/// Where the provider sends the browser back; `redirectUrl`'s path.
pub const CALLBACK_PATH: &str = "/.manifold/oauth2/callback";
/// How long a consent link (and the flow it starts) stays good.
pub const STATE_LIFE: Duration = Duration::from_secs(600);
/// A stored token this close to its expiry is refreshed first.
const MARGIN: u64 = 30;
/// A token endpoint answer without `expires_in` is good this long (seconds).
const DEFAULT_LIFE: u64 = 300;
/// What sealed states are bound to: nothing else the ring seals opens as one.
const STATE_AAD: &[u8] = b"manifold:consent-state";

/// One consent flow, sealed into the consent link and the provider's `state`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct State {
    #[serde(rename = "ns")]
    pub namespace: String,
    /// `namespace/name` of the route the call came through.
    #[serde(rename = "rt")]
    pub route: String,
    /// The McpServer's name.
    #[serde(rename = "sv")]
    pub server: String,
    /// Hex SHA-256 of the principal's identity: whose entry the callback stores.
    #[serde(rename = "ph")]
    pub principal: String,
    /// The principal's token issuer (none for API keys).
    #[serde(rename = "is", default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(rename = "sb")]
    pub subject: String,
    /// Random, hex: the browser cookie's value and the single-use marker.
    #[serde(rename = "nc")]
    pub nonce: String,
    /// The PKCE code verifier (S256).
    #[serde(rename = "vf")]
    pub verifier: String,
    #[serde(rename = "el")]
    pub elicitation_id: String,
    /// The callback as registered at the provider (`redirect_uri`).
    #[serde(rename = "ru")]
    pub redirect_url: String,
    /// Seconds since the epoch.
    #[serde(rename = "ex")]
    pub expires: u64,
}

/// Why a sealed state is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadState {
    /// Not sealed by this gateway's ring, altered, or not a state at all.
    Forged,
    Expired,
}

impl State {
    pub fn seal(&self, ring: &dyn Seal) -> String {
        ring.seal_bytes(&serde_json::to_vec(self).expect("states serialize"), STATE_AAD)
    }

    pub fn open(sealed: &str, ring: &dyn Seal) -> Result<State, BadState> {
        let plain = ring.open_bytes(sealed, STATE_AAD).ok_or(BadState::Forged)?;
        let state: State = serde_json::from_slice(&plain).map_err(|_| BadState::Forged)?;
        if state.expires <= now() {
            return Err(BadState::Expired);
        }
        Ok(state)
    }

    /// The PKCE `code_challenge`: base64url(SHA-256(verifier)).
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }

    /// Where the callback stores this flow's tokens.
    pub fn key(&self) -> Key {
        Key::from_hash(&self.namespace, &self.server, &self.principal)
    }
}

/// A mount's per-user tokens.
pub struct PerUser {
    config: AuthorizationCodeConfig,
    namespace: String,
    route: String,
    server: String,
    tokens: Arc<Tokens>,
    /// The provider's token endpoint, for refreshes.
    endpoint: TokenEndpoint,
    /// `scheme://host[:port]` of `redirect_url`: where consent links lead.
    origin: String,
    /// One refresh per key at a time on this replica; the others wait and read its result.
    refreshing: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    /// SHA-256 of access tokens the upstream refused (401), by key: refreshed before reuse.
    rejected: Mutex<HashMap<Key, [u8; 32]>>,
}

impl PerUser {
    pub fn new(
        config: &AuthorizationCodeConfig,
        egress: manifold_runtime::egress::Egress,
        place: &Place,
    ) -> Result<Self, String> {
        let redirect = url::Url::parse(&config.redirect_url)
            .map_err(|e| format!("redirectUrl `{}` is not an absolute URL: {e}", config.redirect_url))?;
        if redirect.path() != CALLBACK_PATH || !matches!(redirect.scheme(), "http" | "https") {
            return Err(format!(
                "redirectUrl `{}` must be an http(s) URL with path {CALLBACK_PATH}",
                config.redirect_url
            ));
        }
        url::Url::parse(&config.authorization_url)
            .map_err(|e| format!("authorizationUrl `{}` is not an absolute URL: {e}", config.authorization_url))?;
        Ok(PerUser {
            config: config.clone(),
            namespace: place.namespace.to_owned(),
            route: place.route.to_owned(),
            server: place.server.to_owned(),
            tokens: Arc::clone(place.tokens),
            endpoint: TokenEndpoint::new(&config.client, egress, super::TOKEN_TIMEOUT)?,
            origin: redirect.origin().ascii_serialization(),
            refreshing: Mutex::default(),
            rejected: Mutex::default(),
        })
    }

    /// `principal`'s token: stored and fresh, else refreshed, else a consent link.
    pub async fn token(&self, principal: &Principal) -> Result<String, Denied> {
        if principal.source == Source::Anonymous {
            return Err(Denied::Caller(format!(
                "{} acts for each caller with the caller's own consent, and an anonymous caller has none",
                self.server
            )));
        }
        let key = Key::new(&self.namespace, &self.server, &principal.identity);
        if let Some(entry) = self.tokens.get(&key).await.map_err(|e| self.store_down(e))?
            && self.usable(&key, &entry)
        {
            return Ok(entry.access_token);
        }
        let flight = {
            let mut refreshing = self.refreshing.lock().expect("refresh table lock");
            Arc::clone(refreshing.entry(key.clone()).or_default())
        };
        let result = {
            let _alone = flight.lock().await;
            self.refresh_or_consent(&key, principal).await
        };
        let mut refreshing = self.refreshing.lock().expect("refresh table lock");
        // The table's and ours: nobody else waits on it.
        if Arc::strong_count(&flight) == 2 {
            refreshing.remove(&key);
        }
        result
    }

    /// The upstream answered 401 to `sent`: that token is refreshed before it is sent again
    /// (and if the refresh fails, the entry goes and the caller is asked to consent again).
    pub fn rejected(&self, principal: &Principal, token: &str) -> bool {
        let key = Key::new(&self.namespace, &self.server, &principal.identity);
        self.rejected.lock().expect("rejected table lock").insert(key, Sha256::digest(token.as_bytes()).into());
        true
    }

    fn usable(&self, key: &Key, entry: &Entry) -> bool {
        let refused = self.rejected.lock().expect("rejected table lock").get(key).copied();
        entry.expires_at > now() + MARGIN
            && refused.is_none_or(|refused| refused != <[u8; 32]>::from(Sha256::digest(entry.access_token.as_bytes())))
    }

    /// With the key's flight held: what another call stored meanwhile, a refresh, or consent.
    async fn refresh_or_consent(&self, key: &Key, principal: &Principal) -> Result<String, Denied> {
        let entry = self.tokens.get(key).await.map_err(|e| self.store_down(e))?;
        let Some(entry) = entry else { return Err(self.consent(principal)) };
        if self.usable(key, &entry) {
            return Ok(entry.access_token);
        }
        let Some(refresh) = entry.refresh_token.clone() else {
            self.forget(key).await;
            return Err(self.consent(principal));
        };
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
        match self.endpoint.grant(&form).await {
            Ok(granted) => {
                let (fresh, life) = entry_of(granted, Some(refresh), entry.scope.clone());
                self.tokens.put(key, &fresh, life).await.map_err(|e| self.store_down(e))?;
                self.rejected.lock().expect("rejected table lock").remove(key);
                tracing::debug!(server = %self.server, namespace = %self.namespace, "refreshed a caller's upstream token");
                Ok(fresh.access_token)
            }
            Err(error) => {
                // Another replica may have refreshed (and rotated) it first: use its result.
                if error.is_invalid_grant()
                    && let Ok(Some(now_stored)) = self.tokens.get(key).await
                    && now_stored.refresh_token.as_deref() != Some(refresh.as_str())
                    && self.usable(key, &now_stored)
                {
                    return Ok(now_stored.access_token);
                }
                let refused = self.rejected.lock().expect("rejected table lock").contains_key(key);
                tracing::info!(
                    server = %self.server, namespace = %self.namespace, token_url = %self.config.client.token_url,
                    reason = %error.reason(), "refreshing a caller's upstream token failed"
                );
                if error.is_invalid_grant() || refused {
                    self.forget(key).await;
                    return Err(self.consent(principal));
                }
                Err(Denied::Provider(format!(
                    "{}: refreshing the caller's token at {} failed: {}",
                    self.server,
                    self.config.client.token_url,
                    error.reason()
                )))
            }
        }
    }

    /// Drops a key's entry (revoked, or refused and not refreshable).
    async fn forget(&self, key: &Key) {
        self.rejected.lock().expect("rejected table lock").remove(key);
        if let Err(error) = self.tokens.delete(key).await {
            tracing::warn!(server = %self.server, %error, "could not delete a caller's stale upstream token");
        }
    }

    /// A consent link for `principal`, good for [`STATE_LIFE`].
    fn consent(&self, principal: &Principal) -> Denied {
        let issuer = match &principal.source {
            Source::Jwt(issuer) => Some(issuer.clone()),
            _ => None,
        };
        let subject = principal.claims.get("sub").and_then(|s| s.as_str()).unwrap_or(&principal.name).to_owned();
        let elicitation_id = uuid::Uuid::new_v4().to_string();
        let state = State {
            namespace: self.namespace.clone(),
            route: format!("{}/{}", self.namespace, self.route),
            server: self.server.clone(),
            principal: principal_hash(&principal.identity),
            issuer,
            subject,
            nonce: hex::encode(random::<16>()),
            verifier: URL_SAFE_NO_PAD.encode(random::<32>()),
            elicitation_id: elicitation_id.clone(),
            redirect_url: self.config.redirect_url.clone(),
            expires: now() + STATE_LIFE.as_secs(),
        };
        let url = format!("{}{START_PATH}?state={}", self.origin, state.seal(self.tokens.ring()));
        Denied::Consent { url, elicitation_id }
    }

    fn store_down(&self, error: StoreError) -> Denied {
        tracing::warn!(server = %self.server, namespace = %self.namespace, %error, "per-user token store failed");
        Denied::Provider(format!("{}: the caller's upstream token cannot be read now: {error}", self.server))
    }
}

/// Why a callback's code stored nothing.
#[derive(Debug)]
pub enum Unredeemed {
    /// The token endpoint refused the code (a code from another flow fails PKCE here).
    Refused(GrantError),
    /// No usable answer from the token endpoint.
    Failed(GrantError),
    /// The provider signed in someone other than the caller the state names.
    OtherUser,
    Store(StoreError),
}

/// The callback's code, exchanged with the state's PKCE verifier, checked to be the
/// state's principal when the provider is the caller's issuer, and stored.
pub async fn redeem(
    config: &AuthorizationCodeConfig,
    state: &State,
    code: &str,
    tokens: &Tokens,
    egress: manifold_runtime::egress::Egress,
) -> Result<(), Unredeemed> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", state.redirect_url.as_str()),
        ("code_verifier", state.verifier.as_str()),
    ];
    let endpoint = TokenEndpoint::new(&config.client, egress, super::TOKEN_TIMEOUT)
        .map_err(|why| Unredeemed::Failed(GrantError::Invalid(why)))?;
    let granted = endpoint.grant(&form).await.map_err(|error| match error {
        GrantError::Refused { .. } => Unredeemed::Refused(error),
        GrantError::Unreachable(_) | GrantError::Invalid(_) => Unredeemed::Failed(error),
    })?;
    if let Some(issuer) = &state.issuer {
        let signed_in = [granted.id_token.as_deref(), Some(granted.access_token.as_str())]
            .into_iter()
            .flatten()
            .filter_map(issuer_and_subject)
            .find(|(iss, _)| iss == issuer);
        if let Some((_, subject)) = signed_in
            && subject != state.subject
        {
            return Err(Unredeemed::OtherUser);
        }
    }
    let (entry, life) = entry_of(granted, None, None);
    tokens.put(&state.key(), &entry, life).await.map_err(Unredeemed::Store)
}

/// The entry a token endpoint's answer makes, and how long to keep it: the refresh token's
/// life when the provider says it, else [`MAX_ENTRY_LIFE`]; without one, the access token's.
fn entry_of(granted: Granted, refresh: Option<String>, scope: Option<String>) -> (Entry, Duration) {
    let life = granted.expires_in.unwrap_or(DEFAULT_LIFE);
    let refresh_token = granted.refresh_token.or(refresh);
    let keep = match (&refresh_token, granted.refresh_expires_in) {
        (None, _) => Duration::from_secs(life),
        (Some(_), Some(secs)) if secs > 0 => Duration::from_secs(secs),
        (Some(_), _) => MAX_ENTRY_LIFE,
    };
    let entry = Entry {
        access_token: granted.access_token,
        refresh_token,
        expires_at: now() + life,
        scope: granted.scope.or(scope),
    };
    (entry, keep)
}

/// `iss` and `sub` of a JWT's payload (not verified: it came straight from the token
/// endpoint over the connection the gateway opened); none for anything else.
fn issuer_and_subject(token: &str) -> Option<(String, String)> {
    let payload = token.split('.').nth(1)?;
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    Some((claims.get("iss")?.as_str()?.to_owned(), claims.get("sub")?.as_str()?.to_owned()))
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system has randomness");
    bytes
}

/// A token endpoint for tests: it records each request's form, checks PKCE for the codes it
/// was told of, and answers what it is told to.
#[cfg(test)]
pub mod testing {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Arc, Mutex};

    use axum::extract::State as Shared;
    use axum::http::StatusCode;
    use manifold_api::config::{AuthorizationCodeConfig, ClientAuthentication, TokenClient};
    use serde_json::{Value, json};

    use super::*;
    use crate::access::authn::Source;

    pub const ISSUER: &str = "https://idp.example/realms/acme";

    #[derive(Default)]
    struct Inner {
        forms: Vec<BTreeMap<String, String>>,
        answer: Option<(u16, Value)>,
        /// code -> the PKCE challenge of the flow it was issued to.
        codes: HashMap<String, String>,
    }

    #[derive(Clone)]
    pub struct TokenEndpoint {
        pub url: String,
        inner: Arc<Mutex<Inner>>,
    }

    impl TokenEndpoint {
        pub async fn start() -> Self {
            let inner = Arc::new(Mutex::new(Inner::default()));
            let app = axum::Router::new().route("/token", axum::routing::post(answer)).with_state(Arc::clone(&inner));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the token endpoint");
            let url = format!("http://{}/token", listener.local_addr().expect("bound"));
            tokio::spawn(async move { axum::serve(listener, app).await.expect("the token endpoint serves") });
            TokenEndpoint { url, inner }
        }

        /// What every request gets from now on.
        pub fn answer(&self, status: u16, body: Value) {
            self.inner.lock().unwrap().answer = Some((status, body));
        }

        /// `code` was issued to the flow whose PKCE challenge is `challenge`.
        pub fn issue(&self, code: &str, challenge: &str) {
            self.inner.lock().unwrap().codes.insert(code.into(), challenge.into());
        }

        pub fn forms(&self) -> Vec<BTreeMap<String, String>> {
            self.inner.lock().unwrap().forms.clone()
        }
    }

    /// The form's `(authorization)` entry holds the request's `Authorization` header, if any.
    async fn answer(
        Shared(inner): Shared<Arc<Mutex<Inner>>>,
        headers: axum::http::HeaderMap,
        body: String,
    ) -> (StatusCode, axum::Json<Value>) {
        let mut form: BTreeMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
        if let Some(authorization) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
            form.insert("(authorization)".into(), authorization.into());
        }
        let mut inner = inner.lock().unwrap();
        inner.forms.push(form.clone());
        if form.get("grant_type").map(String::as_str) == Some("authorization_code") {
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            let issued = form.get("code").and_then(|code| inner.codes.get(code));
            if issued != Some(&challenge) {
                let refusal = json!({"error": "invalid_grant", "error_description": "PKCE verification failed"});
                return (StatusCode::BAD_REQUEST, axum::Json(refusal));
            }
        }
        let (status, body) = inner.answer.clone().unwrap_or((500, json!({"error": "server_error"})));
        (StatusCode::from_u16(status).unwrap(), axum::Json(body))
    }

    pub fn config(token_url: &str) -> AuthorizationCodeConfig {
        AuthorizationCodeConfig {
            client: TokenClient {
                token_url: token_url.into(),
                client_id: "gateway-client".into(),
                authentication: ClientAuthentication::ClientSecretPost { secret: "client-secret-value".into() },
            },
            authorization_url: "https://idp.example/authorize?tenant=acme".into(),
            redirect_url: "https://gw.example/.manifold/oauth2/callback".into(),
            scopes: vec!["repo".into(), "read:user".into()],
            audience: Some("github-api".into()),
            resource: None,
        }
    }

    /// A caller with a JWT of [`ISSUER`] for `subject`.
    pub fn caller(subject: &str) -> Principal {
        let claims = json!({"sub": subject, "iss": ISSUER}).as_object().cloned().unwrap();
        Principal::new(subject.into(), vec![], vec![], claims, Source::Jwt(ISSUER.into()))
    }

    /// An unsigned JWT holding `claims` (the gateway does not verify what the token endpoint
    /// hands it).
    pub fn jwt(claims: Value) -> String {
        let part = |value: Value| URL_SAFE_NO_PAD.encode(value.to_string());
        format!("{}.{}.c2ln", part(json!({"alg": "RS256"})), part(claims))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::testing::{ISSUER, TokenEndpoint, caller, config};
    use super::*;
    use crate::mcp::seal::KeyRing;

    fn tokens() -> Arc<Tokens> {
        Arc::new(Tokens::memory(Arc::new(KeyRing::new(&[[5u8; 32]]))))
    }

    fn per_user(token_url: &str, tokens: &Arc<Tokens>, namespace: &str, server: &str) -> PerUser {
        let place = Place { namespace, route: "tools", server, tokens };
        PerUser::new(&config(token_url), Default::default(), &place).expect("a valid config")
    }

    fn entry(access: &str, refresh: Option<&str>, expires_in: u64) -> Entry {
        Entry {
            access_token: access.into(),
            refresh_token: refresh.map(str::to_owned),
            expires_at: now() + expires_in,
            scope: None,
        }
    }

    fn alice_key() -> Key {
        Key::new("acme", "github", &caller("alice").identity)
    }

    #[tokio::test]
    async fn a_caller_without_a_token_gets_a_consent_link_with_its_sealed_state() {
        let tokens = tokens();
        let github = per_user("http://127.0.0.1:1/token", &tokens, "acme", "github");
        let Err(Denied::Consent { url, elicitation_id }) = github.token(&caller("alice")).await else {
            panic!("consent expected")
        };
        let sealed = url.strip_prefix("https://gw.example/.manifold/oauth2/start?state=").expect("a start link");
        let state = State::open(sealed, tokens.ring()).expect("the state opens");
        assert_eq!(
            (state.namespace.as_str(), state.route.as_str(), state.server.as_str()),
            ("acme", "acme/tools", "github")
        );
        assert_eq!(state.principal, principal_hash(&caller("alice").identity));
        assert_eq!((state.issuer.as_deref(), state.subject.as_str()), (Some(ISSUER), "alice"));
        assert_eq!(state.elicitation_id, elicitation_id);
        assert_eq!(state.redirect_url, "https://gw.example/.manifold/oauth2/callback");
        assert_eq!(state.challenge(), URL_SAFE_NO_PAD.encode(Sha256::digest(state.verifier.as_bytes())));
        assert!(state.verifier.len() >= 43, "RFC 7636: at least 43 characters");
        assert!(state.expires <= now() + STATE_LIFE.as_secs());
        let Err(Denied::Consent { url: again, .. }) = github.token(&caller("alice")).await else { panic!() };
        assert_ne!(url, again, "each link has its own nonce and verifier");
        assert_eq!(State::open(&sealed[..sealed.len() - 1], tokens.ring()), Err(BadState::Forged));
        let anonymous = Principal::new("anonymous".into(), vec![], vec![], Default::default(), Source::Anonymous);
        let refused = github.token(&anonymous).await.unwrap_err();
        assert!(matches!(refused, Denied::Caller(ref why) if why.contains("anonymous")), "{refused:?}");
    }

    #[tokio::test]
    async fn a_stored_token_serves_only_its_principal_namespace_and_server() {
        let tokens = tokens();
        let endpoint = TokenEndpoint::start().await;
        tokens.put(&alice_key(), &entry("alice-token", None, 300), Duration::from_secs(300)).await.unwrap();
        let github = per_user(&endpoint.url, &tokens, "acme", "github");
        assert_eq!(github.token(&caller("alice")).await.unwrap(), "alice-token");
        assert!(matches!(github.token(&caller("bob")).await, Err(Denied::Consent { .. })), "bob is not alice");
        let elsewhere =
            [per_user(&endpoint.url, &tokens, "globex", "github"), per_user(&endpoint.url, &tokens, "acme", "gitlab")];
        for mount in elsewhere {
            assert!(matches!(mount.token(&caller("alice")).await, Err(Denied::Consent { .. })), "{}", mount.server);
        }
        assert!(endpoint.forms().is_empty(), "nothing was refreshed");
    }

    #[tokio::test]
    async fn an_expiring_token_is_refreshed_once_for_concurrent_calls() {
        let tokens = tokens();
        let endpoint = TokenEndpoint::start().await;
        endpoint.answer(
            200,
            json!({"access_token": "fresh", "refresh_token": "r2", "expires_in": 300, "token_type": "Bearer"}),
        );
        tokens.put(&alice_key(), &entry("old", Some("r1"), MARGIN - 1), Duration::from_secs(300)).await.unwrap();
        let github = per_user(&endpoint.url, &tokens, "acme", "github");
        let alice = caller("alice");
        let answers = futures::future::join_all((0..5).map(|_| github.token(&alice))).await;
        assert!(answers.iter().all(|a| a.as_deref() == Ok("fresh")), "{answers:?}");
        let forms = endpoint.forms();
        assert_eq!(forms.len(), 1, "one refresh for five calls");
        let form = &forms[0];
        assert_eq!(
            (form["grant_type"].as_str(), form["refresh_token"].as_str(), form["client_id"].as_str()),
            ("refresh_token", "r1", "gateway-client")
        );
        assert_eq!(form["client_secret"], "client-secret-value");
        let stored = tokens.get(&alice_key()).await.unwrap().expect("stored");
        assert_eq!((stored.access_token.as_str(), stored.refresh_token.as_deref()), ("fresh", Some("r2")));
        assert!(github.refreshing.lock().unwrap().is_empty(), "the flight is gone once landed");
    }

    #[tokio::test]
    async fn a_revoked_refresh_token_asks_for_consent_again() {
        let tokens = tokens();
        let endpoint = TokenEndpoint::start().await;
        endpoint.answer(400, json!({"error": "invalid_grant", "error_description": "Token is not active"}));
        tokens.put(&alice_key(), &entry("old", Some("revoked"), 0), Duration::from_secs(300)).await.unwrap();
        let github = per_user(&endpoint.url, &tokens, "acme", "github");
        assert!(matches!(github.token(&caller("alice")).await, Err(Denied::Consent { .. })));
        assert_eq!(tokens.get(&alice_key()).await.unwrap(), None, "the revoked entry is gone");
        assert_eq!(endpoint.forms().len(), 1);
    }

    #[tokio::test]
    async fn a_token_the_upstream_refuses_is_refreshed_and_if_that_fails_forgotten() {
        let tokens = tokens();
        let endpoint = TokenEndpoint::start().await;
        tokens.put(&alice_key(), &entry("stale", Some("r1"), 300), Duration::from_secs(300)).await.unwrap();
        let github = per_user(&endpoint.url, &tokens, "acme", "github");
        let alice = caller("alice");
        assert_eq!(github.token(&alice).await.unwrap(), "stale");
        assert!(github.rejected(&alice, "stale"));
        endpoint.answer(200, json!({"access_token": "fresh", "expires_in": 300}));
        assert_eq!(github.token(&alice).await.unwrap(), "fresh", "refreshed although not expired");
        let kept = tokens.get(&alice_key()).await.unwrap().expect("stored");
        assert_eq!(kept.refresh_token.as_deref(), Some("r1"), "the refresh token is kept when none comes back");
        assert!(github.rejected(&alice, "fresh"));
        endpoint.answer(503, json!({"error": "temporarily_unavailable"}));
        assert!(matches!(github.token(&alice).await, Err(Denied::Consent { .. })));
        assert_eq!(tokens.get(&alice_key()).await.unwrap(), None);
        assert_eq!(endpoint.forms().len(), 2);
    }

    #[tokio::test]
    async fn a_provider_failing_a_refresh_fails_the_call_with_a_clear_message_and_no_secret() {
        let tokens = tokens();
        let endpoint = TokenEndpoint::start().await;
        endpoint.answer(503, json!({"error": "temporarily_unavailable", "error_description": "maintenance"}));
        tokens.put(&alice_key(), &entry("old", Some("secret-refresh"), 0), Duration::from_secs(300)).await.unwrap();
        let github = per_user(&endpoint.url, &tokens, "acme", "github");
        let Err(Denied::Provider(why)) = github.token(&caller("alice")).await else { panic!("a provider failure") };
        assert_eq!(
            why,
            format!(
                "github: refreshing the caller's token at {} failed: temporarily_unavailable: maintenance",
                endpoint.url
            )
        );
        assert!(tokens.get(&alice_key()).await.unwrap().is_some(), "kept for when the provider is back");
    }
}
