//! A real identity provider: Keycloak 26 (fetched from Maven Central and built once by
//! `scripts/install-keycloak.sh`, cached) as a child process on free loopback ports, with the
//! realm `manifold` set up through its admin REST API. Tokens flow out of its token endpoint
//! (password, client credentials, token exchange, authorization code, refresh), its own event
//! store records every grant, and [`Browser`] walks its login pages the way a user would.
//!
//! The realm (see [`Keycloak::realm`] for each client's tokens):
//! - users `alice` and `bob`, each with an email and a `department` attribute mapped into
//!   every token as the `department` claim;
//! - `manifold-app` (public, password grant): the *inbound* tokens, `aud` = `manifold-gateway`;
//! - `manifold-gateway` (confidential, client credentials, standard token exchange): tokens
//!   with `aud` = `upstream-api`;
//! - `manifold-signed` (`private_key_jwt`, RS256 and ES256 keys) and `manifold-secret-jwt`
//!   (`client_secret_jwt`, HS256): client credentials, `aud` = `upstream-api`;
//! - `manifold-consent` (confidential, authorization code with PKCE S256, refresh tokens, no
//!   consent screen): `aud` = `upstream-api`;
//! - `upstream-api`: no flows, only an audience.

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest;

use crate::process::free_port;
use crate::repo_root;

/// The realm every client and user lives in.
pub const REALM: &str = "manifold";
/// The public client that gets the inbound (caller) tokens by password grant.
pub const APP: &str = "manifold-app";
/// The gateway's own confidential client: client credentials and standard token exchange.
pub const GATEWAY: &str = "manifold-gateway";
/// `GATEWAY`'s client secret.
pub const GATEWAY_SECRET: &str = "gateway-secret-for-tests";
/// A client authenticating with `private_key_jwt` (keys: [`signed_jwt_key`]).
pub const SIGNED: &str = "manifold-signed";
/// A client authenticating with `client_secret_jwt` (HS256 over `SECRET_JWT_SECRET`).
pub const SECRET_JWT: &str = "manifold-secret-jwt";
/// `SECRET_JWT`'s client secret, the HS256 key of its assertions.
pub const SECRET_JWT_SECRET: &str = "secret-jwt-secret-for-tests-at-least-32-bytes";
/// The confidential client of per-user consent (authorization code with PKCE S256).
pub const CONSENT: &str = "manifold-consent";
/// `CONSENT`'s client secret.
pub const CONSENT_SECRET: &str = "consent-secret-for-tests";
/// The audience of the tokens meant for upstreams.
pub const UPSTREAM_AUDIENCE: &str = "upstream-api";
/// The callback path the consent client's redirect URIs end with.
pub const CALLBACK_PATH: &str = "/.manifold/oauth2/callback";
/// Every user's password is `<username>-password`.
pub const USERS: [&str; 2] = ["alice", "bob"];

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// The Keycloak distribution, fetched and built on first use.
pub fn home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| crate::built_by("install-keycloak.sh"))
}

/// The Java Keycloak runs on (21+).
fn java_home() -> PathBuf {
    std::env::var_os("KEYCLOAK_JAVA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/jvm/temurin-25-jdk-amd64"))
}

/// A user's password.
pub fn password(user: &str) -> String {
    format!("{user}-password")
}

/// A user's `department` attribute (and claim).
pub fn department(user: &str) -> String {
    format!("{user}-department")
}

/// A user's email.
pub fn email(user: &str) -> String {
    format!("{user}@example.test")
}

/// The fixture private key (PEM) and its key id with which `SIGNED` signs its client
/// assertions, for `alg` `"RS256"` or `"ES256"`; Keycloak holds the public halves.
pub fn signed_jwt_key(alg: &str) -> (String, String) {
    let (file, kid) = match alg {
        "RS256" => ("rsa-a.pem", "manifold-signed-rs256"),
        "ES256" => ("ec.pem", "manifold-signed-es256"),
        other => panic!("no signed-JWT fixture key for {other} (RS256 or ES256)"),
    };
    let pem = std::fs::read_to_string(repo_root().join("e2e/fixtures/keys").join(file))
        .unwrap_or_else(|e| panic!("read fixture key {file}: {e}"));
    (pem, kid.to_owned())
}

/// One Keycloak process; stopped when dropped, or when the test process dies (a watchdog shell
/// stops it when its stdin closes).
pub struct Keycloak {
    child: Child,
    /// The watchdog's stdin: closing it stops Keycloak.
    stdin: Option<ChildStdin>,
    base: String,
    /// Its H2 database, transaction log, temp files and log (`keycloak.log`).
    dir: tempfile::TempDir,
    /// How long it took to become ready and get its realm.
    pub started_in: Duration,
}

impl Keycloak {
    /// The Keycloak of this test process, started on first use (Keycloak takes tens of seconds
    /// to start: share it). Tests only add to it (events, sessions), so each test counts events
    /// and sessions as differences, or for users and clients it made itself.
    pub async fn shared() -> &'static Keycloak {
        static SHARED: tokio::sync::OnceCell<Keycloak> = tokio::sync::OnceCell::const_new();
        SHARED.get_or_init(Keycloak::start).await
    }

    /// Starts Keycloak on free ports with its own data folder, waits until it is ready (five
    /// minutes at most; panics with its log's tail otherwise), and sets up the realm.
    pub async fn start() -> Keycloak {
        let started = Instant::now();
        let home = home();
        let dir = tempfile::Builder::new().prefix("manifold-keycloak-").tempdir().expect("temp dir");
        let (http, management) = (free_port(), free_port());
        let base = format!("http://{http}");
        let log = std::fs::File::create(dir.path().join("keycloak.log")).expect("create Keycloak's log");
        let data = dir.path();
        let db_url = format!("jdbc:h2:file:{}/keycloak;NON_KEYWORDS=VALUE", data.display());
        // kc.sh runs java as its child and forwards only TERM and INT to it: this shell starts
        // it in the background, stops it with TERM once its own stdin closes, which happens
        // when the test process ends however it ends (statics are never dropped), and then
        // removes the data folder (a shared instance's TempDir is never dropped either).
        let mut child = Command::new("sh")
            .args([
                "-c",
                r#""$@" </dev/null & pid=$!; read _ignored; kill -TERM "$pid"; wait "$pid"; rm -rf "$KEYCLOAK_DATA""#,
                "keycloak",
            ])
            .arg(home.join("bin/kc.sh"))
            .args(["start", "--optimized", "--http-enabled=true", "--http-host=127.0.0.1"])
            .arg(format!("--http-port={}", http.port()))
            .arg(format!("--http-management-port={}", management.port()))
            .arg(format!("--hostname={base}"))
            .arg(format!("--db-url={db_url}"))
            .arg("--log-level=warn")
            .env("KEYCLOAK_DATA", data)
            .env("JAVA_HOME", java_home())
            .env("KC_BOOTSTRAP_ADMIN_USERNAME", ADMIN)
            .env("KC_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD)
            // Its transaction log and temp files would otherwise go into the shared distribution.
            .env(
                "JAVA_OPTS_APPEND",
                format!(
                    "-Dquarkus.transaction-manager.object-store.directory={0}/transactions -Djava.io.tmpdir={0}",
                    data.display()
                ),
            )
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("clone the log's handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}/bin/kc.sh: {e}", home.display()));
        let stdin = child.stdin.take().expect("piped stdin");
        let mut keycloak = Keycloak { child, stdin: Some(stdin), base, dir, started_in: Duration::ZERO };
        keycloak.wait_until_ready(management).await;
        keycloak.create_realm().await;
        keycloak.started_in = started.elapsed();
        eprintln!(
            "Keycloak at {}, ready with realm `{REALM}` in {:.1} s",
            keycloak.base,
            keycloak.started_in.as_secs_f64()
        );
        keycloak
    }

    async fn wait_until_ready(&mut self, management: SocketAddr) {
        let url = format!("http://{management}/health/ready");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll Keycloak") {
                panic!("Keycloak exited ({status}) before it was ready; its log ends:\n{}", self.log_tail());
            }
            if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "Keycloak not ready within 300 s; its log ends:\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The last 40 lines of Keycloak's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("keycloak.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `http://127.0.0.1:<port>`: where Keycloak serves (its hostname: every token's `iss`
    /// starts with it).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The realm's issuer, `<base>/realms/manifold` (every token's `iss`).
    pub fn issuer(&self) -> String {
        format!("{}/realms/{REALM}", self.base)
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/protocol/openid-connect/token", self.issuer())
    }

    /// The authorization endpoint.
    pub fn authorization_url(&self) -> String {
        format!("{}/protocol/openid-connect/auth", self.issuer())
    }

    /// The realm's signing keys (JWKS).
    pub fn jwks_url(&self) -> String {
        format!("{}/protocol/openid-connect/certs", self.issuer())
    }

    /// POSTs `form` to the token endpoint (no client authentication beyond what `form` holds):
    /// the status and the JSON answer (RFC 6749 §5.1 or §5.2).
    pub async fn token_request(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let url = self.token_url();
        let response =
            reqwest::Client::new().post(&url).form(form).send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
        (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("POST {url}: {status}, not JSON ({e}): {body}")))
    }

    /// An inbound access token for `user` (password grant through `APP`): `aud` =
    /// `manifold-gateway`, `azp` = `manifold-app`, `sub` = the user's id, and the user's
    /// `email`, `preferred_username` and `department` claims.
    pub async fn password_token(&self, user: &str) -> String {
        let password = password(user);
        let (status, body) = self
            .token_request(&[
                ("grant_type", "password"),
                ("client_id", APP),
                ("username", user),
                ("password", &password),
                ("scope", "openid"),
            ])
            .await;
        assert_eq!(status, StatusCode::OK, "password grant for {user}: {body}");
        body["access_token"].as_str().expect("an access_token").to_owned()
    }

    /// A client-credentials access token of `GATEWAY` (`aud` includes `upstream-api`, `azp` =
    /// `manifold-gateway`, `sub` = its service account's id).
    pub async fn client_credentials_token(&self) -> String {
        let (status, body) = self
            .token_request(&[
                ("grant_type", "client_credentials"),
                ("client_id", GATEWAY),
                ("client_secret", GATEWAY_SECRET),
            ])
            .await;
        assert_eq!(status, StatusCode::OK, "client credentials of {GATEWAY}: {body}");
        body["access_token"].as_str().expect("an access_token").to_owned()
    }

    /// The id (`sub`) of a user.
    pub async fn user_id(&self, user: &str) -> String {
        let found = self.admin_get(&format!("/users?username={user}&exact=true")).await;
        found[0]["id"].as_str().unwrap_or_else(|| panic!("no user `{user}` in realm {REALM}: {found}")).to_owned()
    }

    /// How many events of `event_type` (`CLIENT_LOGIN`, `TOKEN_EXCHANGE`, `CODE_TO_TOKEN`,
    /// `REFRESH_TOKEN`, `LOGIN`, their `_ERROR` forms, …) Keycloak recorded for `client_id`:
    /// one per token request of that grant (and one per failed one, as `<TYPE>_ERROR`).
    pub async fn events(&self, client_id: &str, event_type: &str) -> usize {
        let events = self.admin_get(&format!("/events?client={client_id}&type={event_type}&max=100000")).await;
        events.as_array().unwrap_or_else(|| panic!("events are not a list: {events}")).len()
    }

    /// Logs out every session of `user`: its refresh tokens stop working (`invalid_grant`);
    /// its access tokens stay valid until they expire, as JWTs do.
    pub async fn revoke(&self, user: &str) {
        let id = self.user_id(user).await;
        self.admin(reqwest::Method::POST, &format!("/users/{id}/logout"), None).await;
    }

    /// Sets the lifetime of the access tokens `client_id` is issued (Keycloak's per-client
    /// "access token lifespan"), from the next token on.
    pub async fn set_token_lifespan(&self, client_id: &str, secs: u64) {
        self.set_client_attribute(client_id, "access.token.lifespan", &secs.to_string()).await;
    }

    /// Adds `uri` to the redirect URIs `client_id` accepts.
    pub async fn allow_redirect(&self, client_id: &str, uri: &str) {
        let (id, mut client) = self.client(client_id).await;
        client["redirectUris"].as_array_mut().expect("redirectUris is a list").push(json!(uri));
        self.admin(reqwest::Method::PUT, &format!("/clients/{id}"), Some(client)).await;
    }

    /// Sets one attribute of a client (`access.token.lifespan`,
    /// `standard.token.exchange.enabled`, `pkce.code.challenge.method`, …).
    pub async fn set_client_attribute(&self, client_id: &str, name: &str, value: &str) {
        let (id, mut client) = self.client(client_id).await;
        client["attributes"][name] = json!(value);
        self.admin(reqwest::Method::PUT, &format!("/clients/{id}"), Some(client)).await;
    }

    /// Registers a client that authenticates with `private_key_jwt` by the public keys of
    /// `jwks` (`{"keys": [...]}`, each with a `kid`), with client credentials on and tokens
    /// whose `aud` includes `upstream-api`.
    pub async fn add_signed_jwt_client(&self, client_id: &str, jwks: &Value) {
        self.admin(reqwest::Method::POST, "/clients", Some(signed_jwt_client(client_id, jwks))).await;
    }

    /// A client's internal id and representation.
    async fn client(&self, client_id: &str) -> (String, Value) {
        let found = self.admin_get(&format!("/clients?clientId={client_id}")).await;
        let client = found[0].clone();
        let id = client["id"].as_str().unwrap_or_else(|| panic!("no client `{client_id}` in realm {REALM}")).to_owned();
        (id, client)
    }

    async fn admin_get(&self, path: &str) -> Value {
        let body = self.admin(reqwest::Method::GET, path, None).await;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET admin {path}: not JSON ({e}): {body}"))
    }

    /// One admin REST call on the realm (a fresh admin token and HTTP client each time: a
    /// shared Keycloak outlives the runtime of the test that started it).
    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> String {
        let url = format!("{}/admin/realms/{REALM}{path}", self.base);
        self.admin_at(method, &url, body).await
    }

    async fn admin_at(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> String {
        let http = reqwest::Client::new();
        let token_url = format!("{}/realms/master/protocol/openid-connect/token", self.base);
        let token: Value = http
            .post(&token_url)
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", ADMIN),
                ("password", ADMIN_PASSWORD),
            ])
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("admin token from {token_url}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("admin token from {token_url}: {e}"));
        let mut request = http
            .request(method.clone(), url)
            .bearer_auth(token["access_token"].as_str().expect("an admin access_token"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {url}: {status} {text}");
        text
    }

    /// The realm: created empty, its user profile told to keep unmanaged attributes (so
    /// `department` is stored and mapped), then the clients and users.
    async fn create_realm(&self) {
        let realms = format!("{}/admin/realms", self.base);
        self.admin_at(reqwest::Method::POST, &realms, Some(realm_json())).await;
        let mut profile: Value = serde_json::from_str(&self.admin(reqwest::Method::GET, "/users/profile", None).await)
            .expect("the user profile is JSON");
        profile["unmanagedAttributePolicy"] = json!("ENABLED");
        self.admin(reqwest::Method::PUT, "/users/profile", Some(profile)).await;
        for client in clients() {
            self.admin(reqwest::Method::POST, "/clients", Some(client)).await;
        }
        for user in USERS {
            self.admin(reqwest::Method::POST, "/users", Some(user_json(user))).await;
        }
    }
}

impl Drop for Keycloak {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// The realm itself: events of every grant stored for an hour, access tokens for five minutes.
fn realm_json() -> Value {
    json!({
        "realm": REALM,
        "enabled": true,
        "sslRequired": "none",
        "accessTokenLifespan": 300,
        "eventsEnabled": true,
        "eventsExpiration": 3600,
        // Keycloak stores only some types by default (not REFRESH_TOKEN): name every grant's.
        "enabledEventTypes": [
            "LOGIN", "LOGIN_ERROR", "LOGOUT", "LOGOUT_ERROR",
            "CODE_TO_TOKEN", "CODE_TO_TOKEN_ERROR", "CLIENT_LOGIN", "CLIENT_LOGIN_ERROR",
            "REFRESH_TOKEN", "REFRESH_TOKEN_ERROR", "TOKEN_EXCHANGE", "TOKEN_EXCHANGE_ERROR",
            "INTROSPECT_TOKEN", "INTROSPECT_TOKEN_ERROR", "REVOKE_GRANT", "REVOKE_GRANT_ERROR",
        ],
        "adminEventsEnabled": false,
    })
}

fn user_json(user: &str) -> Value {
    json!({
        "username": user,
        "enabled": true,
        "email": email(user),
        "emailVerified": true,
        "firstName": user,
        "lastName": "Test",
        "attributes": { "department": [department(user)] },
        "credentials": [{ "type": "password", "value": password(user), "temporary": false }],
    })
}

/// A mapper putting `audience` into the access token's `aud`.
fn audience_mapper(audience: &str) -> Value {
    json!({
        "name": format!("audience {audience}"),
        "protocol": "openid-connect",
        "protocolMapper": "oidc-audience-mapper",
        "config": {
            "included.client.audience": audience,
            "access.token.claim": "true",
            "id.token.claim": "false",
            "introspection.token.claim": "true",
        },
    })
}

/// The mapper of the user attribute `department` to the claim `department`.
fn department_mapper() -> Value {
    json!({
        "name": "department",
        "protocol": "openid-connect",
        "protocolMapper": "oidc-usermodel-attribute-mapper",
        "config": {
            "user.attribute": "department",
            "claim.name": "department",
            "jsonType.label": "String",
            "access.token.claim": "true",
            "id.token.claim": "true",
            "userinfo.token.claim": "true",
            "introspection.token.claim": "true",
        },
    })
}

fn clients() -> Vec<Value> {
    let upstream_mappers = json!([audience_mapper(UPSTREAM_AUDIENCE), department_mapper()]);
    let signed_jwks = {
        let (rsa, rsa_kid) = signed_jwt_key("RS256");
        let (ec, ec_kid) = signed_jwt_key("ES256");
        let jwk = |key: jsonwebtoken::EncodingKey, alg, kid: String| {
            let mut jwk = serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(&key, alg).expect("a JWK"))
                .expect("a JWK is JSON");
            jwk["kid"] = json!(kid);
            jwk["use"] = json!("sig");
            jwk
        };
        json!({ "keys": [
            jwk(jsonwebtoken::EncodingKey::from_rsa_pem(rsa.as_bytes()).expect("an RSA key"), jsonwebtoken::Algorithm::RS256, rsa_kid),
            jwk(jsonwebtoken::EncodingKey::from_ec_pem(ec.as_bytes()).expect("an EC key"), jsonwebtoken::Algorithm::ES256, ec_kid),
        ]})
    };
    vec![
        json!({
            "clientId": UPSTREAM_AUDIENCE,
            "publicClient": false,
            "standardFlowEnabled": false,
            "directAccessGrantsEnabled": false,
            "serviceAccountsEnabled": false,
        }),
        json!({
            "clientId": APP,
            "publicClient": true,
            "standardFlowEnabled": false,
            "directAccessGrantsEnabled": true,
            "protocolMappers": [audience_mapper(GATEWAY), department_mapper()],
        }),
        json!({
            "clientId": GATEWAY,
            "publicClient": false,
            "clientAuthenticatorType": "client-secret",
            "secret": GATEWAY_SECRET,
            "standardFlowEnabled": false,
            "directAccessGrantsEnabled": false,
            "serviceAccountsEnabled": true,
            "attributes": { "standard.token.exchange.enabled": "true" },
            "protocolMappers": upstream_mappers,
        }),
        signed_jwt_client(SIGNED, &signed_jwks),
        json!({
            "clientId": SECRET_JWT,
            "publicClient": false,
            "clientAuthenticatorType": "client-secret-jwt",
            "secret": SECRET_JWT_SECRET,
            "standardFlowEnabled": false,
            "serviceAccountsEnabled": true,
            "attributes": { "token.endpoint.auth.signing.alg": "HS256" },
            "protocolMappers": upstream_mappers,
        }),
        json!({
            "clientId": CONSENT,
            "publicClient": false,
            "clientAuthenticatorType": "client-secret",
            "secret": CONSENT_SECRET,
            "standardFlowEnabled": true,
            "directAccessGrantsEnabled": false,
            "consentRequired": false,
            "redirectUris": [format!("http://127.0.0.1{CALLBACK_PATH}")],
            "attributes": { "pkce.code.challenge.method": "S256" },
            "protocolMappers": upstream_mappers,
        }),
    ]
}

fn signed_jwt_client(client_id: &str, jwks: &Value) -> Value {
    json!({
        "clientId": client_id,
        "publicClient": false,
        "clientAuthenticatorType": "client-jwt",
        "standardFlowEnabled": false,
        "serviceAccountsEnabled": true,
        "attributes": { "use.jwks.string": "true", "jwks.string": jwks.to_string(), "use.jwks.url": "false" },
        "protocolMappers": [audience_mapper(UPSTREAM_AUDIENCE), department_mapper()],
    })
}

/// A PKCE pair: a fresh verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let random: Vec<u8> = (0..4)
        .flat_map(|i: u64| {
            let mut hasher = std::hash::RandomState::new().build_hasher();
            hasher.write_u64(i);
            hasher.finish().to_le_bytes()
        })
        .collect();
    let verifier = crate::tokens::b64(&random);
    let challenge = crate::tokens::b64(&sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// A user's browser: cookies kept, redirects followed by hand so each step can be seen,
/// replayed or tampered with.
pub struct Browser {
    http: reqwest::Client,
    keycloak: String,
}

impl Browser {
    /// A browser with an empty cookie jar, knowing which origin is `keycloak`'s.
    pub fn new(keycloak: &Keycloak) -> Browser {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        Browser { http, keycloak: keycloak.base.clone() }
    }

    fn at_keycloak(&self, url: &str) -> bool {
        url == self.keycloak || url.starts_with(&format!("{}/", self.keycloak))
    }

    /// Walks from `url` (a consent link, or Keycloak's authorization URL) through Keycloak's
    /// login as `user` with `password`, following each redirect by hand, and stops at the first
    /// URL outside Keycloak after Keycloak (the callback with `code` and `state`), which it
    /// returns without fetching. When Keycloak answers with a page that is neither a redirect
    /// nor its login form (an error page, or the login form again after a wrong password, with
    /// its error), that answer is the `Err`. A session cookie from an earlier login skips the
    /// form.
    pub async fn authorize(&self, url: &str, user: &str, password: &str) -> Result<String, (StatusCode, String)> {
        let mut current = url.to_owned();
        let mut seen_keycloak = self.at_keycloak(&current);
        let mut posted = false;
        for _ in 0..20 {
            if seen_keycloak && !self.at_keycloak(&current) {
                return Ok(current);
            }
            let response = self.http.get(&current).send().await.unwrap_or_else(|e| panic!("GET {current}: {e}"));
            let (status, next) = (response.status(), location(&current, &response));
            if let Some(next) = next {
                seen_keycloak |= self.at_keycloak(&next);
                current = next;
                continue;
            }
            let body = response.text().await.unwrap_or_default();
            let action = match login_form_action(&body) {
                Some(action) if self.at_keycloak(&current) && !posted => action,
                _ => return Err((status, body)),
            };
            posted = true;
            let response = self
                .http
                .post(&action)
                .form(&[("username", user), ("password", password), ("credentialId", "")])
                .send()
                .await
                .unwrap_or_else(|e| panic!("POST the login form to {action}: {e}"));
            match location(&action, &response) {
                Some(next) => current = next,
                None => {
                    let status = response.status();
                    return Err((status, response.text().await.unwrap_or_default()));
                }
            }
        }
        panic!("more than 20 redirects from {url}")
    }

    /// GETs `url` with this browser's cookies, not following a redirect: the status and body.
    pub async fn get(&self, url: &str) -> (StatusCode, String) {
        let response = self.http.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status();
        (status, response.text().await.unwrap_or_default())
    }

    /// [`Browser::authorize`], then the callback fetched: the status and body of the first
    /// answer outside Keycloak (or Keycloak's page that stopped the walk).
    pub async fn consent(&self, url: &str, user: &str, password: &str) -> (StatusCode, String) {
        match self.authorize(url, user, password).await {
            Ok(callback) => self.get(&callback).await,
            Err(stopped) => stopped,
        }
    }
}

/// The absolute target of a redirect answer, None for any other answer.
fn location(from: &str, response: &reqwest::Response) -> Option<String> {
    if !response.status().is_redirection() {
        return None;
    }
    let target = response.headers().get(reqwest::header::LOCATION)?.to_str().ok()?;
    let base = url::Url::parse(from).ok()?;
    Some(base.join(target).ok()?.to_string())
}

/// The `action` of Keycloak's login form (`<form id="kc-form-login" ... action="...">`),
/// HTML-unescaped.
fn login_form_action(html: &str) -> Option<String> {
    let form = &html[html.find("id=\"kc-form-login\"").or_else(|| html.find("id='kc-form-login'"))?..];
    let start = html.len() - form.len();
    // The attribute may come before the id within the same tag: search the whole tag.
    let tag_start = html[..start].rfind('<')?;
    let tag_end = start + form.find('>')?;
    let tag = &html[tag_start..tag_end];
    let value = &tag[tag.find("action=\"")? + "action=\"".len()..];
    let value = &value[..value.find('"')?];
    Some(value.replace("&amp;", "&"))
}
