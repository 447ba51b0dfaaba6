//! Attacks on authentication, authorization and tenant isolation, each answered with an
//! exact refusal: HTTP status, `WWW-Authenticate`, JSON-RPC error code and message. Two
//! tenants (acme, globex) with their own issuers and API keys; real FastMCP upstreams; a
//! JWKS served over HTTP by the test.

use jsonwebtoken::{Algorithm, Header};
use manifold_e2e::LocalStack;
use manifold_e2e::peers::Upstream;
use manifold_e2e::raw::stateless;
use manifold_e2e::stub::{Reply, Stub};
use manifold_e2e::tokens::{self, Signer, b64, claims, now};
use serde_json::{Value, json};

const ACME_ISSUER: &str = "https://idp.acme.test";
const GLOBEX_ISSUER: &str = "https://idp.globex.test";
const HS_ISSUER: &str = "https://hs.acme.test";
const HS_SECRET: &[u8] = b"acme-shared-secret-of-at-least-32-bytes!";
const ALICE_KEY: &str = "acme-alice-0123456789abcdef";
const OPS_KEY: &str = "acme-ops-bot-0123456789abcdef";
const GLOBEX_KEY: &str = "globex-key-0123456789abcdef";

fn manifests(alpha: &Upstream, beta: &Upstream, jwks: &Stub) -> String {
    let aud = |ns: &str, route: &str| format!("https://mcp.test/{ns}/{route}/mcp");
    format!(
        r#"
apiVersion: manifold.dev/v1alpha1
kind: McpServer
metadata: {{name: alpha, namespace: acme}}
spec: {{remote: {{url: "{alpha}"}}}}
---
apiVersion: manifold.dev/v1alpha1
kind: McpServer
metadata: {{name: beta, namespace: acme}}
spec: {{remote: {{url: "{beta}"}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: keys, namespace: acme}}
stringData:
  alice: "{{key: {ALICE_KEY}, groups: [dev]}}"
  ops-bot: "{{key: {OPS_KEY}, groups: [ops]}}"
  hs: "{hs}"
---
apiVersion: manifold.dev/v1alpha1
kind: McpRoute
metadata: {{name: tools, namespace: acme}}
spec:
  mounts: [{{server: alpha}}, {{server: beta}}]
  authentication:
    jwt:
      - {{issuer: "{ACME_ISSUER}", audiences: ["{acme_aud}"], jwks: {{uri: "{acme_jwks}"}}, algorithms: [RS256, ES256]}}
      - {{issuer: "{HS_ISSUER}", audiences: ["{acme_aud}"], jwks: {{secretRef: {{name: keys, key: hs}}}}, algorithms: [HS256]}}
    apiKeys: {{secretRef: {{name: keys}}, header: X-API-Key}}
  authorization:
    rules:
      - {{effect: Deny, groups: [contractors], tools: ["alpha_add"]}}
      - {{effect: Allow, groups: [dev, contractors], tools: ["alpha_*"], resources: ["res://alpha/*"]}}
      - {{effect: Allow, groups: [ops], tools: ["beta_*"]}}
---
apiVersion: manifold.dev/v1alpha1
kind: McpRoute
metadata: {{name: admin, namespace: acme}}
spec:
  mounts: [{{server: alpha}}]
  authentication:
    jwt: [{{issuer: "{ACME_ISSUER}", audiences: ["{admin_aud}"], jwks: {{uri: "{acme_jwks}"}}}}]
    apiKeys: {{secretRef: {{name: keys}}}}
    requiredScopes: ["mcp:admin"]
---
apiVersion: manifold.dev/v1alpha1
kind: McpServer
metadata: {{name: alpha, namespace: globex}}
spec: {{remote: {{url: "{alpha}"}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: keys, namespace: globex}}
stringData: {{svc: "{GLOBEX_KEY}"}}
---
apiVersion: manifold.dev/v1alpha1
kind: McpRoute
metadata: {{name: assist, namespace: globex}}
spec:
  mounts: [{{server: alpha}}]
  authentication:
    jwt: [{{issuer: "{GLOBEX_ISSUER}", audiences: ["{globex_aud}"], jwks: {{uri: "{globex_jwks}"}}}}]
    apiKeys: {{secretRef: {{name: keys}}}}
"#,
        alpha = alpha.mcp_url(),
        beta = beta.mcp_url(),
        hs = String::from_utf8_lossy(HS_SECRET),
        acme_aud = aud("acme", "tools"),
        admin_aud = aud("acme", "admin"),
        globex_aud = aud("globex", "assist"),
        acme_jwks = jwks.url("/acme/jwks"),
        globex_jwks = jwks.url("/globex/jwks"),
    )
}

/// What a request must get.
enum Expect {
    /// 401, no error parameter.
    Missing,
    /// 401 `invalid_token` with this description.
    Invalid(&'static str),
    /// 403 `insufficient_scope`.
    Scope(&'static str),
    /// 200 with this JSON-RPC error (the stateless revision answers an invalid-params error
    /// with 400: see `Status`).
    Rpc(i64, String),
    /// Any other status with this JSON-RPC error, and no challenge.
    Status(u16, i64, String),
    /// A successful result.
    Ok,
}

struct Case {
    name: &'static str,
    request: reqwest::RequestBuilder,
    route: &'static str,
    expect: Expect,
}

struct Env {
    base: String,
}

impl Env {
    fn url(&self, route: &str) -> String {
        format!("{}{route}", self.base)
    }

    fn metadata(&self, route: &str) -> String {
        format!("{}/.well-known/oauth-protected-resource{route}", self.base)
    }

    /// A stateless `tools/call` of `tool` on `route`.
    fn call(&self, route: &str, tool: &str) -> reqwest::RequestBuilder {
        stateless(&self.url(route), json!(1), "tools/call", json!({"name": tool, "arguments": {"text": "x"}}))
    }

    fn read(&self, route: &str, uri: &str) -> reqwest::RequestBuilder {
        stateless(&self.url(route), json!(1), "resources/read", json!({"uri": uri}))
    }
}

const TOOLS: &str = "/acme/tools/mcp";
const ADMIN: &str = "/acme/admin/mcp";
const GLOBEX: &str = "/globex/assist/mcp";

async fn check(env: &Env, case: Case) -> Option<String> {
    let response = match case.request.send().await {
        Ok(response) => response,
        Err(error) => return Some(format!("{}: request failed: {error}", case.name)),
    };
    let status = response.status().as_u16();
    let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap_or_default();
    let metadata = env.metadata(case.route);
    let (want_status, want_challenge, want_error) = match case.expect {
        Expect::Missing => (
            401,
            Some(format!(r#"Bearer resource_metadata="{metadata}""#)),
            Some((-32001, "authentication required: send Authorization: Bearer <token>".to_owned())),
        ),
        Expect::Invalid(why) => (
            401,
            Some(format!(r#"Bearer error="invalid_token", error_description="{why}", resource_metadata="{metadata}""#)),
            Some((-32001, format!("invalid credential: {why}"))),
        ),
        Expect::Scope(scope) => (
            403,
            Some(format!(r#"Bearer error="insufficient_scope", scope="{scope}", resource_metadata="{metadata}""#)),
            Some((-32003, format!("insufficient scope: this route requires {scope}"))),
        ),
        Expect::Rpc(code, message) => (200, None, Some((code, message))),
        Expect::Status(status, code, message) => (status, None, Some((code, message))),
        Expect::Ok => (200, None, None),
    };
    let error =
        body.get("error").map(|e| (e["code"].as_i64().unwrap_or(0), e["message"].as_str().unwrap_or("").to_owned()));
    let mut wrong = Vec::new();
    if status != want_status {
        wrong.push(format!("status {status}, wanted {want_status}"));
    }
    if challenge != want_challenge {
        wrong.push(format!("WWW-Authenticate {challenge:?}, wanted {want_challenge:?}"));
    }
    if error != want_error {
        wrong.push(format!("error {error:?}, wanted {want_error:?} (body {body})"));
    }
    if want_error.is_none() && body.get("result").is_none() {
        wrong.push(format!("no result: {body}"));
    }
    (!wrong.is_empty()).then(|| format!("{}: {}", case.name, wrong.join("; ")))
}

fn bearer(request: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    request.header("authorization", format!("Bearer {token}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_attack_gets_its_exact_refusal() {
    let acme_a = Signer::rsa("rsa-a", "acme-1");
    let acme_ec = Signer::ec("acme-ec");
    let globex_b = Signer::rsa("rsa-b", "globex-1");
    let attacker = Signer::rsa("attacker", "acme-1");
    let stranger = Signer::rsa("attacker", "who-knows");
    let hs = Signer::hmac(HS_SECRET, "hs");
    let (acme_jwks, globex_jwks) = (tokens::jwks(&[&acme_a, &acme_ec]), tokens::jwks(&[&globex_b]));
    let jwks = Stub::start(move |request| match request.path.as_str() {
        "/acme/jwks" => Reply::json(acme_jwks.clone()),
        "/globex/jwks" => Reply::json(globex_jwks.clone()),
        _ => Reply::status(404),
    })
    .await;
    let (alpha, beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let stack = LocalStack::start(&manifests(&alpha, &beta, &jwks)).await;
    let env = Env { base: stack.url("") };

    let aud = "https://mcp.test/acme/tools/mcp";
    let ok = claims(ACME_ISSUER, aud, "alice");
    let with = |changes: Value| {
        let mut c = ok.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let dev = acme_a.token(&with(json!({"groups": ["dev"]})));
    let valid = acme_a.token(&ok);
    let (head, rest) = valid.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let alg_none = |alg: &str| {
        format!("{}.{}.", b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()), b64(ok.to_string().as_bytes()))
    };
    let hs_with_public_key = {
        let public = acme_a.public_pem.clone().unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("acme-1".into());
        Signer::hmac(public.as_bytes(), "acme-1").token_with(header, &ok)
    };
    let tampered_payload = {
        let forged = b64(with(json!({"sub": "root"})).to_string().as_bytes());
        format!("{head}.{forged}.{signature}")
    };
    let other_signature = {
        let other = acme_a.token(&with(json!({"sub": "bob"})));
        format!("{head}.{payload}.{}", other.rsplit_once('.').unwrap().1)
    };
    let one_off = |key: &str| {
        let mut chars: Vec<char> = key.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'f' { 'e' } else { 'f' };
        chars.into_iter().collect::<String>()
    };
    let huge = acme_a.token(&with(json!({"pad": "x".repeat(9000)})));
    let ec_header_as_rs = {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("acme-ec".into());
        attacker.token_with(header, &ok)
    };

    // (name, request, route, expectation)
    let call = |route| env.call(route, "alpha_echo");
    let cases = vec![
        // No credential, and credentials that are no credential at all.
        Case { name: "no credential", request: call(TOOLS), route: TOOLS, expect: Expect::Missing },
        Case { name: "alg none", request: bearer(call(TOOLS), &alg_none("none")), route: TOOLS, expect: Expect::Invalid("malformed token") },
        Case { name: "alg NONE", request: bearer(call(TOOLS), &alg_none("NONE")), route: TOOLS, expect: Expect::Invalid("malformed token") },
        Case { name: "HS256 keyed with the RSA public key", request: bearer(call(TOOLS), &hs_with_public_key), route: TOOLS, expect: Expect::Invalid("token algorithm is not accepted") },
        Case { name: "garbage in JWT shape", request: bearer(call(TOOLS), "abc.def.ghi"), route: TOOLS, expect: Expect::Invalid("malformed token") },
        Case { name: "oversized token", request: bearer(call(TOOLS), &huge), route: TOOLS, expect: Expect::Invalid("token too large") },
        // Claims.
        Case { name: "expired", request: bearer(call(TOOLS), &acme_a.token(&with(json!({"exp": now() - 600})))), route: TOOLS, expect: Expect::Invalid("token expired") },
        Case { name: "not yet valid", request: bearer(call(TOOLS), &acme_a.token(&with(json!({"nbf": now() + 600})))), route: TOOLS, expect: Expect::Invalid("token not yet valid") },
        Case { name: "wrong issuer", request: bearer(call(TOOLS), &acme_a.token(&with(json!({"iss": "https://evil.test"})))), route: TOOLS, expect: Expect::Invalid("token issuer is not trusted here") },
        Case { name: "no issuer", request: bearer(call(TOOLS), &acme_a.token(&with(json!({"iss": null})))), route: TOOLS, expect: Expect::Invalid("token issuer is not trusted here") },
        Case { name: "wrong audience", request: bearer(call(TOOLS), &acme_a.token(&with(json!({"aud": "https://mcp.test/acme/admin/mcp"})))), route: TOOLS, expect: Expect::Invalid("token audience is not accepted") },
        Case { name: "no audience", request: bearer(call(TOOLS), &acme_a.token(&with(json!({"aud": null})))), route: TOOLS, expect: Expect::Invalid("token has no audience") },
        Case { name: "no expiry", request: bearer(call(TOOLS), &acme_a.token(&with(json!({"exp": null})))), route: TOOLS, expect: Expect::Invalid("token has no expiry") },
        Case { name: "no subject", request: bearer(call(TOOLS), &acme_a.token(&with(json!({"sub": null})))), route: TOOLS, expect: Expect::Invalid("token names no subject") },
        // Keys and signatures.
        Case { name: "unknown kid", request: bearer(call(TOOLS), &stranger.token(&ok)), route: TOOLS, expect: Expect::Invalid("token signing key is unknown") },
        Case { name: "attacker key under a known kid", request: bearer(call(TOOLS), &attacker.token(&ok)), route: TOOLS, expect: Expect::Invalid("invalid signature") },
        Case { name: "EC key id with an RSA algorithm", request: bearer(call(TOOLS), &ec_header_as_rs), route: TOOLS, expect: Expect::Invalid("token signing key is unknown") },
        Case { name: "tampered payload", request: bearer(call(TOOLS), &tampered_payload), route: TOOLS, expect: Expect::Invalid("invalid signature") },
        Case { name: "tampered signature", request: bearer(call(TOOLS), &other_signature), route: TOOLS, expect: Expect::Invalid("invalid signature") },
        Case { name: "HS256 signed with a wrong secret", request: bearer(call(TOOLS), &Signer::hmac(b"not-the-secret-not-the-secret-not-it!", "hs").token(&with(json!({"iss": HS_ISSUER})))), route: TOOLS, expect: Expect::Invalid("invalid signature") },
        // Bearer syntax.
        Case { name: "Bearer without a space", request: call(TOOLS).header("authorization", format!("Bearer{valid}")), route: TOOLS, expect: Expect::Invalid("malformed Authorization header: expected `Bearer <token>`") },
        Case { name: "Bearer with two spaces", request: call(TOOLS).header("authorization", format!("Bearer  {valid}")), route: TOOLS, expect: Expect::Invalid("malformed Authorization header: expected `Bearer <token>`") },
        Case { name: "Bearer and nothing", request: call(TOOLS).header("authorization", "Bearer"), route: TOOLS, expect: Expect::Invalid("malformed Authorization header: expected `Bearer <token>`") },
        Case { name: "Basic credentials", request: call(TOOLS).header("authorization", "Basic YWxpY2U6c2VjcmV0"), route: TOOLS, expect: Expect::Invalid("malformed Authorization header: expected `Bearer <token>`") },
        Case { name: "two Authorization headers", request: bearer(bearer(call(TOOLS), &valid), &valid), route: TOOLS, expect: Expect::Invalid("more than one Authorization header") },
        // API keys.
        Case { name: "API key one character off", request: bearer(call(TOOLS), &one_off(ALICE_KEY)), route: TOOLS, expect: Expect::Invalid("invalid API key") },
        Case { name: "API key in another case", request: bearer(call(TOOLS), &ALICE_KEY.to_uppercase()), route: TOOLS, expect: Expect::Invalid("invalid API key") },
        Case { name: "API key truncated", request: bearer(call(TOOLS), &ALICE_KEY[..ALICE_KEY.len() - 1]), route: TOOLS, expect: Expect::Invalid("invalid API key") },
        Case { name: "API key extended", request: bearer(call(TOOLS), &format!("{ALICE_KEY}0")), route: TOOLS, expect: Expect::Invalid("invalid API key") },
        Case { name: "API key header one character off", request: call(TOOLS).header("x-api-key", one_off(ALICE_KEY)), route: TOOLS, expect: Expect::Invalid("invalid API key") },
        Case { name: "empty API key header", request: call(TOOLS).header("x-api-key", ""), route: TOOLS, expect: Expect::Invalid("invalid API key") },
        Case { name: "two API key headers", request: call(TOOLS).header("x-api-key", ALICE_KEY).header("x-api-key", OPS_KEY), route: TOOLS, expect: Expect::Invalid("more than one API key header") },
        // Tenants.
        Case { name: "globex token on acme's route", request: bearer(call(TOOLS), &globex_b.token(&claims(GLOBEX_ISSUER, aud, "mallory"))), route: TOOLS, expect: Expect::Invalid("token issuer is not trusted here") },
        Case { name: "acme token on globex's route", request: bearer(call(GLOBEX), &dev), route: GLOBEX, expect: Expect::Invalid("token issuer is not trusted here") },
        Case { name: "acme token aimed at globex's audience", request: bearer(call(GLOBEX), &acme_a.token(&claims(ACME_ISSUER, "https://mcp.test/globex/assist/mcp", "alice"))), route: GLOBEX, expect: Expect::Invalid("token issuer is not trusted here") },
        Case { name: "globex API key on acme's route", request: bearer(call(TOOLS), GLOBEX_KEY), route: TOOLS, expect: Expect::Invalid("invalid API key") },
        Case { name: "acme API key on globex's route", request: bearer(call(GLOBEX), ALICE_KEY), route: GLOBEX, expect: Expect::Invalid("invalid API key") },
        // Scopes.
        Case { name: "token without the required scope", request: bearer(call(ADMIN), &acme_a.token(&claims(ACME_ISSUER, "https://mcp.test/acme/admin/mcp", "alice"))), route: ADMIN, expect: Expect::Scope("mcp:admin") },
        Case { name: "API key where a scope is required", request: bearer(call(ADMIN), ALICE_KEY), route: ADMIN, expect: Expect::Scope("mcp:admin") },
        Case { name: "token with the scope", request: bearer(call(ADMIN), &acme_a.token(&json!({"iss": ACME_ISSUER, "aud": "https://mcp.test/acme/admin/mcp", "sub": "root", "exp": now() + 60, "scope": "openid mcp:admin"}))), route: ADMIN, expect: Expect::Ok },
        // Authorization.
        Case { name: "a denied tool called directly", request: bearer(env.call(TOOLS, "beta_echo"), &dev), route: TOOLS, expect: Expect::Rpc(-32003, "tool `beta_echo`: call is not allowed for this caller".into()) },
        Case { name: "a guessed prefixed name", request: bearer(env.call(TOOLS, "beta_secret_admin"), &dev), route: TOOLS, expect: Expect::Rpc(-32003, "tool `beta_secret_admin`: call is not allowed for this caller".into()) },
        Case { name: "a name in another case", request: bearer(env.call(TOOLS, "ALPHA_echo"), &dev), route: TOOLS, expect: Expect::Rpc(-32003, "tool `ALPHA_echo`: call is not allowed for this caller".into()) },
        Case { name: "a tool a deny rule covers", request: bearer(env.call(TOOLS, "alpha_add"), &acme_a.token(&with(json!({"groups": ["contractors"]})))), route: TOOLS, expect: Expect::Rpc(-32003, "tool `alpha_add`: call is not allowed for this caller".into()) },
        Case { name: "a caller no rule covers", request: bearer(call(TOOLS), &valid), route: TOOLS, expect: Expect::Rpc(-32003, "tool `alpha_echo`: call is not allowed for this caller".into()) },
        Case { name: "an API key's groups decide", request: call(TOOLS).header("x-api-key", OPS_KEY), route: TOOLS, expect: Expect::Rpc(-32003, "tool `alpha_echo`: call is not allowed for this caller".into()) },
        Case { name: "a resource URI escaping its mount", request: bearer(env.read(TOOLS, "res://alpha/public/../../beta/secret"), &dev), route: TOOLS, expect: Expect::Status(400, -32602, "a resource URI must not contain `.` or `..` segments: `res://alpha/public/../../beta/secret`".into()) },
        Case { name: "an encoded escape", request: bearer(env.read(TOOLS, "res://alpha/%2e%2e/beta"), &dev), route: TOOLS, expect: Expect::Status(400, -32602, "a resource URI must not percent-encode letters, digits or `-._~`: `res://alpha/%2e%2e/beta`".into()) },
        Case { name: "a URI scheme in capitals", request: bearer(env.read(TOOLS, "RES://alpha/secret"), &dev), route: TOOLS, expect: Expect::Status(400, -32602, "a resource URI's scheme must be lowercase: `RES://alpha/secret`".into()) },
        Case { name: "a percent-encoded letter", request: bearer(env.read(TOOLS, "res://alpha/secr%65t"), &dev), route: TOOLS, expect: Expect::Status(400, -32602, "a resource URI must not percent-encode letters, digits or `-._~`: `res://alpha/secr%65t`".into()) },
        Case {
            name: "completing an escaping template",
            request: bearer(
                stateless(
                    &env.url(TOOLS),
                    json!(1),
                    "completion/complete",
                    json!({"ref": {"type": "ref/resource", "uri": "res://alpha/public/../secret/{x}"}, "argument": {"name": "x", "value": ""}}),
                ),
                &dev,
            ),
            route: TOOLS,
            expect: Expect::Status(400, -32602, "a resource URI must not contain `.` or `..` segments: `res://alpha/public/../secret/{x}`".into()),
        },
        Case {
            name: "listening to an escaping URI",
            request: bearer(
                stateless(
                    &env.url(TOOLS),
                    json!(1),
                    "subscriptions/listen",
                    json!({"notifications": {"resourceSubscriptions": ["res://alpha/../beta/data"]}}),
                ),
                &dev,
            ),
            route: TOOLS,
            expect: Expect::Status(400, -32602, "a resource URI must not contain `.` or `..` segments: `res://alpha/../beta/data`".into()),
        },
        Case { name: "a resource of another mount", request: bearer(env.read(TOOLS, "res://beta/data"), &dev), route: TOOLS, expect: Expect::Rpc(-32003, "resource `res://beta/data`: read is not allowed for this caller".into()) },
        Case {
            name: "listening to a resource the caller may not read",
            request: bearer(
                stateless(
                    &env.url(TOOLS),
                    json!(1),
                    "subscriptions/listen",
                    json!({"notifications": {"resourceSubscriptions": ["res://beta/data"]}}),
                ),
                &dev,
            ),
            route: TOOLS,
            expect: Expect::Rpc(-32003, "resource `res://beta/data`: read is not allowed for this caller".into()),
        },
        // Origin.
        Case { name: "a spoofed Origin", request: bearer(call(TOOLS), &dev).header("origin", "http://evil.example"), route: TOOLS, expect: Expect::Status(403, -32600, "Origin `http://evil.example` is not allowed on this route".into()) },
        Case { name: "Origin null", request: bearer(call(TOOLS), &dev).header("origin", "null"), route: TOOLS, expect: Expect::Status(403, -32600, "Origin `null` is not allowed on this route".into()) },
        // What is allowed is allowed.
        Case { name: "RS256 token of a dev", request: bearer(call(TOOLS), &dev), route: TOOLS, expect: Expect::Ok },
        Case { name: "ES256 token of a dev", request: bearer(call(TOOLS), &acme_ec.token(&with(json!({"groups": ["dev"]})))), route: TOOLS, expect: Expect::Ok },
        Case { name: "HS256 token of a dev", request: bearer(call(TOOLS), &hs.token(&with(json!({"iss": HS_ISSUER, "groups": ["dev"]})))), route: TOOLS, expect: Expect::Ok },
        Case { name: "API key as a bearer", request: bearer(call(TOOLS), ALICE_KEY), route: TOOLS, expect: Expect::Ok },
        Case { name: "API key in its header", request: env.call(TOOLS, "beta_echo").header("x-api-key", OPS_KEY), route: TOOLS, expect: Expect::Ok },
    ];
    let refusals = cases.iter().filter(|c| !matches!(c.expect, Expect::Ok)).count();
    assert!(refusals >= 40, "at least 40 attack cases, got {refusals}");
    let mut failures = Vec::new();
    for case in cases {
        failures.extend(check(&env, case).await);
    }
    assert!(failures.is_empty(), "{} case(s) answered wrongly:\n{}", failures.len(), failures.join("\n"));

    // A session belongs to whoever opened it: another caller holding its id is told it
    // does not exist.
    let http = reqwest::Client::new();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let opened = http
        .post(env.url(TOOLS))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {ALICE_KEY}"))
        .body(initialize.to_string())
        .send()
        .await
        .unwrap();
    let session = opened.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
    let as_caller = |key: &str| {
        http.post(env.url(TOOLS))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .header("authorization", format!("Bearer {key}"))
            .body(list.clone())
    };
    let hijack = as_caller(OPS_KEY).send().await.unwrap();
    assert_eq!(hijack.status(), 404, "another principal cannot use the session");
    let body: Value = hijack.json().await.unwrap();
    assert_eq!(body["error"]["message"], "session not found; initialize a new session");
    let owner = as_caller(ALICE_KEY).send().await.unwrap();
    assert_eq!(owner.status(), 200, "its owner can");

    // Refusals are counted per tenant and reason; nothing in them names the caller.
    let metrics = reqwest::get(stack.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    for line in [
        r#"manifold_access_refusals_total{namespace="acme",reason="denied",route="tools"}"#,
        r#"manifold_access_refusals_total{namespace="acme",reason="invalid_token",route="tools"}"#,
        r#"manifold_access_refusals_total{namespace="globex",reason="invalid_token",route="assist"}"#,
        r#"manifold_access_refusals_total{namespace="acme",reason="insufficient_scope",route="admin"}"#,
    ] {
        assert!(metrics.contains(line), "metrics lack {line}");
    }
    assert!(!metrics.contains("alice") && !metrics.contains("mallory"), "no principal in metrics");
}
