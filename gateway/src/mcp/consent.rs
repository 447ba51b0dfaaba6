//! The consent pages of per-user upstream tokens, on any host: `/.manifold/oauth2/start`
//! opens a consent link's sealed state, binds it to the browser with a cookie and redirects
//! to the mount's configured authorization endpoint (PKCE, S256); `/.manifold/oauth2/callback`
//! checks the state, the cookie and that the state is used once, redeems the code and stores
//! the caller's tokens. Nothing but `state` (and the provider's `code` or `error`) is read
//! from a request, so the pages redirect nowhere a request names. Every refusal is a
//! [`Refusal`] constant: its status and text are what callers (and the security tests) see.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{Either, Full};
use manifold_api::config::{AuthorizationCodeConfig, OutboundAuth};
use subtle::ConstantTimeEq;

use super::response::{Response, plain};
use crate::Gateway;
use crate::snapshot::Snapshot;
use crate::upstream::identity::per_user::{self, BadState, STATE_LIFE, State, Unredeemed};

/// Every consent page is below this path.
pub const PREFIX: &str = "/.manifold/oauth2/";
/// The cookie binding a flow to the browser that started it; its value is the state's nonce.
const COOKIE_PREFIX: &str = "manifold-consent-";

/// A refusal's status and exact text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub text: &'static str,
}

/// No state, or one this gateway's ring did not seal (or that was altered).
pub const FORGED: Refusal = Refusal {
    status: StatusCode::BAD_REQUEST,
    text: "this consent link is not valid: it was not made by this gateway",
};
pub const EXPIRED: Refusal = Refusal {
    status: StatusCode::BAD_REQUEST,
    text: "this consent link has expired: call the tool again for a new one",
};
/// The callback's browser does not hold the cookie the start page set for this state.
pub const OTHER_BROWSER: Refusal =
    Refusal { status: StatusCode::BAD_REQUEST, text: "this consent was started in another browser" };
pub const REPLAYED: Refusal = Refusal { status: StatusCode::BAD_REQUEST, text: "this consent link was already used" };
/// The route or its mount of the McpServer is no longer served.
pub const GONE: Refusal =
    Refusal { status: StatusCode::NOT_FOUND, text: "the server this consent was for is no longer served here" };
/// The provider redirected back with `error=…`; the text is followed by that error code.
pub const DENIED: Refusal = Refusal { status: StatusCode::BAD_REQUEST, text: "the provider did not grant access: " };
pub const NO_CODE: Refusal =
    Refusal { status: StatusCode::BAD_REQUEST, text: "the provider's answer holds no authorization code" };
/// The token endpoint refused the code (another flow's code fails PKCE); followed by the
/// provider's `error` and `error_description`.
pub const CODE_REFUSED: Refusal =
    Refusal { status: StatusCode::BAD_REQUEST, text: "the provider refused the authorization code: " };
pub const OTHER_USER: Refusal =
    Refusal { status: StatusCode::BAD_REQUEST, text: "signed in at the provider as someone other than the caller" };
pub const PROVIDER_DOWN: Refusal =
    Refusal { status: StatusCode::BAD_GATEWAY, text: "the provider's token endpoint gave no usable answer; try again" };
pub const STORE_DOWN: Refusal =
    Refusal { status: StatusCode::SERVICE_UNAVAILABLE, text: "the token store is unavailable; try again" };
pub const NO_PAGE: Refusal = Refusal { status: StatusCode::NOT_FOUND, text: "no consent page is served here" };
pub const USE_GET: Refusal = Refusal { status: StatusCode::METHOD_NOT_ALLOWED, text: "use GET" };

/// A request for `PREFIX` + `page`.
pub async fn handle(
    gateway: &Gateway,
    snapshot: &Snapshot,
    page: &str,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let start = match page {
        "start" => true,
        "callback" => false,
        _ => return refuse(NO_PAGE, ""),
    };
    if method != Method::GET {
        let mut response = refuse(USE_GET, "");
        response.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    let parameters: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect();
    let parameter = |name: &str| parameters.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let sealed = parameter("state").unwrap_or("");
    let state = match State::open(sealed, gateway.tokens.ring()) {
        Ok(state) => state,
        Err(BadState::Forged) => return refused(FORGED, "", None),
        Err(BadState::Expired) => return refused(EXPIRED, "", None),
    };
    if start {
        let Some(config) = mount(snapshot, &state) else { return refused(GONE, "", Some(&state)) };
        return redirect(config, &state, sealed);
    }
    if !holds_cookie(headers, &state.nonce) {
        return refused(OTHER_BROWSER, "", Some(&state));
    }
    match gateway.tokens.use_once(&state.nonce, STATE_LIFE).await {
        Ok(true) => {}
        Ok(false) => return refused(REPLAYED, "", Some(&state)),
        Err(error) => {
            tracing::warn!(%error, server = %state.server, "consent callback: the token store failed");
            return refused(STORE_DOWN, "", Some(&state));
        }
    }
    let Some(config) = mount(snapshot, &state) else { return refused(GONE, "", Some(&state)) };
    if let Some(error) = parameter("error") {
        return refused(DENIED, &printable(error), Some(&state));
    }
    let Some(code) = parameter("code").filter(|code| !code.is_empty()) else {
        return refused(NO_CODE, "", Some(&state));
    };
    match per_user::redeem(config, &state, code, &gateway.tokens, gateway.egress).await {
        Ok(()) => {
            tracing::info!(namespace = %state.namespace, server = %state.server, "a caller consented: its upstream tokens are stored");
            granted(&state)
        }
        Err(Unredeemed::Refused(error)) => refused(CODE_REFUSED, &printable(&error.reason()), Some(&state)),
        Err(Unredeemed::Failed(error)) => {
            tracing::warn!(server = %state.server, token_url = %config.client.token_url, reason = %error.reason(), "consent callback: the code could not be redeemed");
            refused(PROVIDER_DOWN, "", Some(&state))
        }
        Err(Unredeemed::OtherUser) => refused(OTHER_USER, "", Some(&state)),
        Err(Unredeemed::Store(error)) => {
            tracing::warn!(%error, server = %state.server, "consent callback: the token store failed");
            refused(STORE_DOWN, "", Some(&state))
        }
    }
}

/// The state's mount in the current snapshot, if it still has per-user tokens: on the route
/// the link was made for, else on another route of the tenant mounting the same McpServer
/// (a mount's client, and its tokens, serve every route of its tenant that mounts it).
fn mount<'a>(snapshot: &'a Snapshot, state: &State) -> Option<&'a AuthorizationCodeConfig> {
    let (namespace, name) = state.route.split_once('/')?;
    let per_user = |route: &'a crate::snapshot::Route| {
        route.mounts.iter().filter(|m| m.config.server == state.server).find_map(|m| match m.config.upstream.auth() {
            Some(OutboundAuth::AuthorizationCode(config)) => Some(config),
            _ => None,
        })
    };
    snapshot.route_named(namespace, name).and_then(|route| per_user(route)).or_else(|| {
        snapshot.routes().filter(|route| route.config.namespace == namespace).find_map(|route| per_user(route))
    })
}

/// 302 to the configured authorization endpoint, with the cookie that binds the flow here.
fn redirect(config: &AuthorizationCodeConfig, state: &State, sealed: &str) -> Response {
    let Ok(mut target) = url::Url::parse(&config.authorization_url) else {
        // Checked when the mount's identity was built: only a config changed since gets here.
        return refused(GONE, "", Some(state));
    };
    {
        let mut query = target.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &config.client.client_id)
            .append_pair("redirect_uri", &state.redirect_url);
        if !config.scopes.is_empty() {
            query.append_pair("scope", &config.scopes.join(" "));
        }
        query
            .append_pair("state", sealed)
            .append_pair("code_challenge", &state.challenge())
            .append_pair("code_challenge_method", "S256");
        if let Some(audience) = &config.audience {
            query.append_pair("audience", audience);
        }
        if let Some(resource) = &config.resource {
            query.append_pair("resource", resource);
        }
    }
    let secure = if state.redirect_url.starts_with("https:") { "; Secure" } else { "" };
    let cookie = format!(
        "{}={}; Path={PREFIX}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        cookie_name(&state.nonce),
        state.nonce,
        STATE_LIFE.as_secs()
    );
    let mut response = page(StatusCode::FOUND, "text/plain; charset=utf-8", String::new());
    let headers = response.headers_mut();
    match (HeaderValue::try_from(target.as_str()), HeaderValue::try_from(cookie)) {
        (Ok(location), Ok(cookie)) => {
            headers.insert(LOCATION, location);
            headers.insert(SET_COOKIE, cookie);
        }
        _ => return refused(GONE, "", Some(state)),
    }
    response
}

/// Whether the request carries the cookie the start page set for this nonce.
fn holds_cookie(headers: &HeaderMap, nonce: &str) -> bool {
    let name = cookie_name(nonce);
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(n, v)| n == name && bool::from(v.as_bytes().ct_eq(nonce.as_bytes())))
}

/// One cookie per flow, so two consents started in one browser do not undo each other.
fn cookie_name(nonce: &str) -> String {
    format!("{COOKIE_PREFIX}{}", &nonce[..nonce.len().min(12)])
}

/// The page a consenting user sees last: no token in it, and the flow's cookie cleared.
fn granted(state: &State) -> Response {
    let server = escape(&state.server);
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Manifold</title></head><body>\
         <p>Manifold: {server} may now act for you; return to your client.</p></body></html>"
    );
    let mut response = page(StatusCode::OK, "text/html; charset=utf-8", body);
    let clear = format!("{}=; Path={PREFIX}; Max-Age=0; HttpOnly; SameSite=Lax", cookie_name(&state.nonce));
    if let Ok(clear) = HeaderValue::try_from(clear) {
        response.headers_mut().insert(SET_COOKIE, clear);
    }
    response
}

/// A refusal, logged without secrets (never the state, code or cookie).
fn refused(refusal: Refusal, detail: &str, state: Option<&State>) -> Response {
    match state {
        Some(state) => tracing::info!(
            namespace = %state.namespace, server = %state.server, status = refusal.status.as_u16(),
            reason = refusal.text, detail, "consent refused"
        ),
        None => tracing::info!(status = refusal.status.as_u16(), reason = refusal.text, "consent refused"),
    }
    refuse(refusal, detail)
}

fn refuse(refusal: Refusal, detail: &str) -> Response {
    let mut response = plain(refusal.status, format!("{}{detail}", refusal.text));
    no_store(response.headers_mut());
    response
}

fn page(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = http::Response::new(Either::Left(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    no_store(response.headers_mut());
    response
}

/// Consent pages are never cached, and the callback's URL (with its code) is never sent on
/// as a referrer.
fn no_store(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}

/// A provider's error, kept to printable ASCII and a bounded length.
fn printable(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(300).collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use manifold_api::GatewayConfig;
    use manifold_api::config::Upstream;
    use serde_json::json;

    use super::*;
    use crate::mcp::seal::KeyRing;
    use crate::upstream::identity::per_user::testing::{ISSUER, TokenEndpoint, caller, config, jwt};
    use crate::upstream::identity::store::Key;
    use crate::upstream::identity::{Denied, Identity, Place};
    use crate::{ConfigSource, Running, Settings};

    /// A gateway serving route acme/tools, whose mount of McpServer `server-github` has
    /// per-user tokens from `endpoint`.
    async fn gateway(endpoint: &TokenEndpoint) -> (Running, tempfile::TempDir) {
        let mut route = crate::mcp::call::testing::route(&["github"], None);
        let Upstream::Remote(remote) = &mut route.mounts[0].upstream else { unreachable!("a remote mount") };
        remote.auth = Some(OutboundAuth::AuthorizationCode(config(&endpoint.url)));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, serde_json::to_string(&GatewayConfig::new(vec![route], None)).unwrap()).unwrap();
        let settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            workers: 1,
            audit_log: Some("/dev/null".into()),
            ..Settings::default()
        };
        (crate::start(settings, ConfigSource::File(file)).await.expect("the gateway starts"), dir)
    }

    /// The mount's identity, as the call path builds it.
    fn identity(running: &Running, endpoint: &TokenEndpoint) -> Identity {
        let tokens = &running.gateway.tokens;
        let place = Place { namespace: "acme", route: "tools", server: "server-github", tokens };
        Identity::new(&OutboundAuth::AuthorizationCode(config(&endpoint.url)), Default::default(), &place).unwrap()
    }

    /// A consent link's sealed state for `subject`.
    async fn consent(identity: &Identity, subject: &str) -> String {
        match identity.credential(&caller(subject)).await {
            Err(Denied::Consent { url, .. }) => {
                url.strip_prefix("https://gw.example/.manifold/oauth2/start?state=").expect("a start link").to_owned()
            }
            other => panic!("consent expected, got {other:?}"),
        }
    }

    struct Answer {
        status: StatusCode,
        headers: HeaderMap,
        body: String,
    }

    async fn get(running: &Running, path_and_query: &str, cookie: Option<&str>) -> Answer {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = http::Request::get(running.url(path_and_query));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = client.request(request.body(Full::default()).unwrap()).await.expect("the gateway answers");
        let (parts, body) = response.into_parts();
        let body = String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap();
        Answer { status: parts.status, headers: parts.headers, body }
    }

    /// Starts the flow of `state`: the cookie the browser now holds.
    async fn start(running: &Running, state: &str) -> String {
        let answer = get(running, &format!("/.manifold/oauth2/start?state={state}"), None).await;
        assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
        let cookie = answer.headers[SET_COOKIE].to_str().unwrap();
        cookie.split(';').next().unwrap().to_owned()
    }

    fn assert_refused(answer: &Answer, refusal: Refusal, detail: &str) {
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (refusal.status, format!("{}{detail}", refusal.text).as_str())
        );
    }

    fn opened(running: &Running, state: &str) -> State {
        State::open(state, running.gateway.tokens.ring()).expect("the state opens")
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn start_redirects_to_the_configured_authorization_url_and_nowhere_a_request_names() {
        let endpoint = TokenEndpoint::start().await;
        let (running, _dir) = gateway(&endpoint).await;
        let state = consent(&identity(&running, &endpoint), "alice").await;
        let extra =
            "&redirect_uri=https%3A%2F%2Fevil.example%2F&authorization_url=https%3A%2F%2Fevil.example&client_id=evil";
        let answer = get(&running, &format!("/.manifold/oauth2/start?state={state}{extra}"), None).await;
        assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
        let location = url::Url::parse(answer.headers[LOCATION].to_str().unwrap()).unwrap();
        assert_eq!(&location[..url::Position::AfterPath], "https://idp.example/authorize");
        let query: Vec<(String, String)> = location.query_pairs().into_owned().collect();
        let challenge = opened(&running, &state).challenge();
        let expected = [
            ("tenant", "acme"),
            ("response_type", "code"),
            ("client_id", "gateway-client"),
            ("redirect_uri", "https://gw.example/.manifold/oauth2/callback"),
            ("scope", "repo read:user"),
            ("state", state.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("audience", "github-api"),
        ];
        let expected: Vec<(String, String)> = expected.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        assert_eq!(query, expected);
        let cookie = answer.headers[SET_COOKIE].to_str().unwrap();
        let nonce = opened(&running, &state).nonce;
        assert!(cookie.starts_with(&format!("{}={nonce};", cookie_name(&nonce))), "{cookie}");
        for attribute in ["; Path=/.manifold/oauth2/", "; HttpOnly", "; SameSite=Lax", "; Secure", "; Max-Age=600"] {
            assert!(cookie.contains(attribute), "{attribute} in {cookie}");
        }
        assert_eq!(answer.headers[CACHE_CONTROL], "no-store");
        running.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn forged_expired_replayed_and_other_browsers_states_are_refused() {
        let endpoint = TokenEndpoint::start().await;
        let (running, _dir) = gateway(&endpoint).await;
        let identity = identity(&running, &endpoint);
        let state = consent(&identity, "alice").await;
        let ring = running.gateway.tokens.ring();

        let other_ring = KeyRing::new(&[[1u8; 32]])
            .seal_bytes(&ring.open_bytes(&state, b"manifold:consent-state").unwrap(), b"manifold:consent-state");
        let mut expired = opened(&running, &state);
        expired.expires = crate::upstream::identity::store::now() - 1;
        let expired = expired.seal(ring);
        for page in ["start", "callback"] {
            for forged in ["", "not-a-state", other_ring.as_str(), &state[..state.len() - 2]] {
                let answer = get(&running, &format!("/.manifold/oauth2/{page}?state={forged}&code=c"), None).await;
                assert_refused(&answer, FORGED, "");
            }
            assert_refused(
                &get(&running, &format!("/.manifold/oauth2/{page}?state={expired}&code=c"), None).await,
                EXPIRED,
                "",
            );
        }
        let mut gone = opened(&running, &state);
        // No route of the tenant mounts that McpServer any more.
        gone.server = "retired".into();
        let gone = gone.seal(ring);
        assert_refused(&get(&running, &format!("/.manifold/oauth2/start?state={gone}"), None).await, GONE, "");

        let cookie = start(&running, &state).await;
        let callback = format!("/.manifold/oauth2/callback?code=code-alice&state={state}");
        assert_refused(&get(&running, &callback, None).await, OTHER_BROWSER, "");
        let another = start(&running, &consent(&identity, "alice").await).await;
        assert_refused(&get(&running, &callback, Some(&another)).await, OTHER_BROWSER, "");
        let (name, _) = cookie.split_once('=').unwrap();
        assert_refused(
            &get(&running, &callback, Some(&format!("{name}=0123456789abcdef0123456789abcdef"))).await,
            OTHER_BROWSER,
            "",
        );

        endpoint.issue("code-alice", &opened(&running, &state).challenge());
        let access = jwt(json!({"iss": ISSUER, "sub": "alice"}));
        endpoint.answer(200, json!({"access_token": access, "refresh_token": "r1", "expires_in": 300}));
        let answer = get(&running, &callback, Some(&format!("{another}; {cookie}"))).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert!(
            answer.body.contains("Manifold: server-github may now act for you; return to your client"),
            "{}",
            answer.body
        );
        assert!(!answer.body.contains(&access) && !answer.body.contains("r1"));
        assert!(answer.headers[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"), "the cookie is cleared");
        let form = endpoint.forms().pop().unwrap();
        assert_eq!(
            (form["grant_type"].as_str(), form["code"].as_str(), form["redirect_uri"].as_str()),
            ("authorization_code", "code-alice", "https://gw.example/.manifold/oauth2/callback")
        );
        assert_eq!(form["code_verifier"], opened(&running, &state).verifier);
        assert_eq!(identity.credential(&caller("alice")).await.unwrap(), format!("Bearer {access}").as_str());
        assert!(
            matches!(identity.credential(&caller("bob")).await, Err(Denied::Consent { .. })),
            "bob is asked his own"
        );

        assert_refused(&get(&running, &callback, Some(&cookie)).await, REPLAYED, "");
        assert_eq!(endpoint.forms().len(), 1, "a replay reaches no token endpoint");
        running.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_code_from_another_flow_fails_pkce_and_stores_nothing() {
        let endpoint = TokenEndpoint::start().await;
        let (running, _dir) = gateway(&endpoint).await;
        let identity = identity(&running, &endpoint);
        let (mallory, alice) = (consent(&identity, "mallory").await, consent(&identity, "alice").await);
        // Mallory's code, injected into Alice's flow (her state, her browser's cookie).
        endpoint.issue("code-mallory", &opened(&running, &mallory).challenge());
        endpoint.answer(200, json!({"access_token": "mallory-token", "expires_in": 300}));
        let cookie = start(&running, &alice).await;
        let answer =
            get(&running, &format!("/.manifold/oauth2/callback?code=code-mallory&state={alice}"), Some(&cookie)).await;
        assert_refused(&answer, CODE_REFUSED, "invalid_grant: PKCE verification failed");
        let key = Key::new("acme", "server-github", &caller("alice").identity);
        assert_eq!(running.gateway.tokens.get(&key).await.unwrap(), None);
        running.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_sign_in_as_someone_else_or_a_refusal_at_the_provider_stores_nothing() {
        let endpoint = TokenEndpoint::start().await;
        let (running, _dir) = gateway(&endpoint).await;
        let identity = identity(&running, &endpoint);
        let key = Key::new("acme", "server-github", &caller("alice").identity);

        let state = consent(&identity, "alice").await;
        endpoint.issue("code-1", &opened(&running, &state).challenge());
        let id_token = jwt(json!({"iss": ISSUER, "sub": "mallory"}));
        endpoint.answer(200, json!({"access_token": "opaque", "id_token": id_token, "expires_in": 300}));
        let cookie = start(&running, &state).await;
        let answer =
            get(&running, &format!("/.manifold/oauth2/callback?code=code-1&state={state}"), Some(&cookie)).await;
        assert_refused(&answer, OTHER_USER, "");
        assert_eq!(running.gateway.tokens.get(&key).await.unwrap(), None);

        let state = consent(&identity, "alice").await;
        let cookie = start(&running, &state).await;
        let denied = format!("/.manifold/oauth2/callback?error=access_denied&error_description=no&state={state}");
        assert_refused(&get(&running, &denied, Some(&cookie)).await, DENIED, "access_denied");

        // Another issuer's tokens say nothing about the caller: stored.
        let state = consent(&identity, "alice").await;
        endpoint.issue("code-2", &opened(&running, &state).challenge());
        let id_token = jwt(json!({"iss": "https://other.example", "sub": "someone"}));
        endpoint.answer(200, json!({"access_token": "opaque", "id_token": id_token, "expires_in": 300}));
        let cookie = start(&running, &state).await;
        let answer =
            get(&running, &format!("/.manifold/oauth2/callback?code=code-2&state={state}"), Some(&cookie)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(running.gateway.tokens.get(&key).await.unwrap().unwrap().access_token, "opaque");

        assert_refused(&get(&running, "/.manifold/oauth2/elsewhere", None).await, NO_PAGE, "");
        running.shutdown().await;
    }
}
