//! Sessions that belong to no replica: a session opened on one gateway goes on through
//! another sharing its key ring, also after the first has stopped; tokens that are tampered
//! with, too old, for another route, of another principal, ended, or sealed under a key
//! dropped from the ring are no session (404), each a case of its own; a deleted session's
//! upstream sessions are ended; an idle session leaves nothing in a gateway's memory. Real
//! FastMCP upstream.

use std::time::Duration;

use base64::Engine;
use manifold_e2e::peers::{Upstream, text, tool_names};
use manifold_e2e::process::GatewayProcess;
use manifold_e2e::raw::RawSession;
use manifold_e2e::{LocalStack, eventually, yaml};
use serde_json::{Value, json};

fn key_file(dir: &tempfile::TempDir, name: &str, keys: &[[u8; 32]]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    let lines: Vec<String> = keys.iter().map(|k| base64::engine::general_purpose::STANDARD.encode(k)).collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

fn manifests(alpha: &Upstream) -> String {
    let keys = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: keys, namespace: acme}\n\
                stringData: {alice: alice-key-0123456789abcdef, bob: bob-key-0123456789abcdef}\n";
    yaml::server("alpha", &alpha.mcp_url(), "")
        + &yaml::route("tools", "mounts: [{server: alpha}]")
        + &yaml::route("other", "mounts: [{server: alpha}]")
        + keys
        + &yaml::route("keyed", "mounts: [{server: alpha}], authentication: {apiKeys: {secretRef: {name: keys}}}")
}

async fn start(manifests: &str, keys: &std::path::Path, max_age: Duration) -> LocalStack {
    let keys = keys.to_path_buf();
    LocalStack::start_with(manifests, move |s| {
        s.session_keys = Some(keys);
        s.session_max_age = max_age;
    })
    .await
}

async fn echo(session: &RawSession, text_: &str) -> (u16, Value) {
    let answer = session.request("tools/call", json!({"name": "alpha_echo", "arguments": {"text": text_}})).await;
    (answer.status.as_u16(), answer.body)
}

/// The `Mcp-Session-Id` alpha received for this client's requests.
async fn upstream_session(session: &RawSession) -> String {
    let answer =
        session.request("tools/call", json!({"name": "alpha_header", "arguments": {"name": "mcp-session-id"}})).await;
    text(&answer.body["result"]).to_owned()
}

const DAY: Duration = Duration::from_secs(24 * 3600);

#[tokio::test(flavor = "multi_thread")]
async fn a_session_goes_on_through_another_replica() {
    let alpha = Upstream::start("alpha").await;
    let dir = tempfile::tempdir().unwrap();
    let keys = key_file(&dir, "keys", &[[1; 32]]);
    let a = start(&manifests(&alpha), &keys, DAY).await;
    let b = start(&manifests(&alpha), &keys, DAY).await;

    let on_a = RawSession::initialize(&a.url("/acme/tools/mcp")).await;
    let (status, body) = echo(&on_a, "a").await;
    assert_eq!((status, text(&body["result"])), (200, "alpha:a"));

    // The same token, sent to B: B has never seen it, and serves it, in the same upstream
    // session (the token carries it).
    let on_b = RawSession::resume(&b.url("/acme/tools/mcp"), on_a.session.clone());
    let (status, body) = echo(&on_b, "b").await;
    assert_eq!((status, text(&body["result"])), (200, "alpha:b"));
    let (via_a, via_b) = (upstream_session(&on_a).await, upstream_session(&on_b).await);
    assert!(via_a.len() >= 16, "alpha keeps sessions: `{via_a}`");
    assert_eq!(via_a, via_b, "B goes on in the upstream session opened through A");
    let mut stream = on_b.listen().await;

    // A goes away; the session goes on through B, stream included.
    a.gateway.shutdown().await;
    let (status, body) = echo(&on_b, "after").await;
    assert_eq!((status, text(&body["result"])), (200, "alpha:after"));
    let tools = on_b.tool_names().await;
    assert!(tools.contains(&"alpha_echo".to_owned()), "{tools:?}");
    b.rewrite(
        &(manifests(&alpha) + &yaml::server("beta", &alpha.mcp_url(), ""))
            .replace("mounts: [{server: alpha}]}", "mounts: [{server: alpha}, {server: beta}]}"),
    );
    let changed = stream.next(Duration::from_secs(10)).await.expect("a list change on B's stream");
    assert!(changed["method"].as_str().unwrap().ends_with("list_changed"), "{changed}");
}

fn assert_not_found(status: u16, body: &Value, case: &str) {
    assert_eq!(status, 404, "{case}: {body}");
    assert_eq!(body["error"]["message"], "session not found; initialize a new session", "{case}");
}

/// A replica with one key, and a session opened on its route `tools`.
async fn one_replica(alpha: &Upstream, dir: &tempfile::TempDir, max_age: Duration) -> (LocalStack, RawSession) {
    let stack = start(&manifests(alpha), &key_file(dir, "keys", &[[1; 32]]), max_age).await;
    let session = RawSession::initialize(&stack.url("/acme/tools/mcp")).await;
    (stack, session)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_token_gets_404() {
    let alpha = Upstream::start("alpha").await;
    let dir = tempfile::tempdir().unwrap();
    let (_stack, session) = one_replica(&alpha, &dir, DAY).await;
    let token = session.session.clone().unwrap();
    assert_eq!(echo(&session, "x").await.0, 200, "the token as sealed");
    // One character changed anywhere: the format byte, the key id, the nonce, the sealed
    // claims, the tag; also while the session is in use on this replica (it has an entry).
    for at in [0, 2, 10, token.len() / 2, token.len() - 1] {
        let mut bytes = token.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let forged = RawSession::resume(&session.url, Some(String::from_utf8(bytes).unwrap()));
        let (status, body) = echo(&forged, "x").await;
        assert_not_found(status, &body, &format!("tampered at {at}"));
    }
    for (case, forged) in
        [("truncated", &token[..token.len() - 4]), ("extended", &format!("{token}AAAA")), ("empty", "")]
    {
        let (status, body) = echo(&RawSession::resume(&session.url, Some(forged.to_owned())), "x").await;
        assert_not_found(status, &body, case);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_gets_404() {
    // With a maximum age of one second, a token stops working.
    let alpha = Upstream::start("alpha").await;
    let dir = tempfile::tempdir().unwrap();
    let (_stack, session) = one_replica(&alpha, &dir, Duration::from_secs(1)).await;
    assert_eq!(echo(&session, "x").await.0, 200, "young enough");
    eventually("the token expires", Duration::from_secs(10), || {
        let session = RawSession::resume(&session.url, session.session.clone());
        async move { (echo(&session, "x").await.0 == 404).then_some(()) }
    })
    .await;
    let (status, body) = echo(&session, "x").await;
    assert_not_found(status, &body, "expired");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_sealed_for_another_route_gets_404() {
    let alpha = Upstream::start("alpha").await;
    let dir = tempfile::tempdir().unwrap();
    let (stack, session) = one_replica(&alpha, &dir, DAY).await;
    assert_eq!(echo(&session, "x").await.0, 200);
    // Route `other` mounts the same server with the same name: only the route differs.
    let elsewhere = RawSession::resume(&stack.url("/acme/other/mcp"), session.session.clone());
    let (status, body) = echo(&elsewhere, "x").await;
    assert_not_found(status, &body, "another route");
    assert_eq!(echo(&session, "x").await.0, 200, "still a session on its own route");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_of_another_principal_gets_404() {
    // A session opened with alice's API key, presented with bob's.
    let alpha = Upstream::start("alpha").await;
    let dir = tempfile::tempdir().unwrap();
    let (stack, _) = one_replica(&alpha, &dir, DAY).await;
    let url = stack.url("/acme/keyed/mcp");
    let client = RawSession::new(&url);
    let post = |key: &str, token: Option<&str>, body: Value| {
        let request = client
            .http()
            .post(&url)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {key}"))
            .body(body.to_string());
        match token {
            Some(token) => request.header("mcp-session-id", token),
            None => request,
        }
    };
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let opened = client.send(post("alice-key-0123456789abcdef", None, initialize)).await;
    let token = opened.headers["mcp-session-id"].to_str().unwrap().to_owned();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let bob = client.send(post("bob-key-0123456789abcdef", Some(&token), list.clone())).await;
    assert_not_found(bob.status.as_u16(), &bob.body, "another principal");
    let alice = client.send(post("alice-key-0123456789abcdef", Some(&token), list.clone())).await;
    assert_eq!(alice.status, 200, "its own principal");
    // Also while alice's session has an entry on this replica.
    let bob = client.send(post("bob-key-0123456789abcdef", Some(&token), list)).await;
    assert_not_found(bob.status.as_u16(), &bob.body, "another principal, session in use");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_keys_open_old_tokens_until_the_old_key_is_dropped() {
    let alpha = Upstream::start("alpha").await;
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = ([1u8; 32], [2u8; 32]);
    let (stack, session) = one_replica(&alpha, &dir, DAY).await;
    let token = session.session.clone().unwrap();
    let upstream_before = upstream_session(&session).await;

    // Step 1 and 2: a replica whose ring has a new current key opens old tokens, in the same
    // upstream session.
    let rotated = start(&manifests(&alpha), &key_file(&dir, "rotated", &[new, old]), DAY).await;
    let old_token = RawSession::resume(&rotated.url("/acme/tools/mcp"), Some(token.clone()));
    let (status, body) = echo(&old_token, "r").await;
    assert_eq!((status, text(&body["result"])), (200, "alpha:r"), "the old key still opens");
    assert_eq!(upstream_session(&old_token).await, upstream_before);
    // New tokens are sealed with the new key: the old replica's ring cannot open them.
    let fresh = RawSession::initialize(&rotated.url("/acme/tools/mcp")).await;
    assert_eq!(echo(&fresh, "n").await.0, 200);
    let (status, body) = echo(&RawSession::resume(&stack.url("/acme/tools/mcp"), fresh.session.clone()), "x").await;
    assert_not_found(status, &body, "sealed with a key this ring lacks");

    // Step 3: the old key dropped; its tokens are refused, the new ones go on.
    let dropped = start(&manifests(&alpha), &key_file(&dir, "dropped", &[new]), DAY).await;
    let (status, body) = echo(&RawSession::resume(&dropped.url("/acme/tools/mcp"), Some(token)), "x").await;
    assert_not_found(status, &body, "old key dropped");
    let (status, _) = echo(&RawSession::resume(&dropped.url("/acme/tools/mcp"), fresh.session.clone()), "x").await;
    assert_eq!(status, 200, "the new key's tokens");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_session_reaches_no_live_upstream_session() {
    let alpha = Upstream::start("alpha").await;
    let dir = tempfile::tempdir().unwrap();
    let keys = key_file(&dir, "shared", &[[4; 32]]);
    let (a, b) = (start(&manifests(&alpha), &keys, DAY).await, start(&manifests(&alpha), &keys, DAY).await);
    let session = RawSession::initialize(&a.url("/acme/tools/mcp")).await;
    let deleted_upstream = upstream_session(&session).await;
    let replay_on_b = RawSession::resume(&b.url("/acme/tools/mcp"), session.session.clone());
    assert_eq!(upstream_session(&replay_on_b).await, deleted_upstream, "B goes on in it while the session lives");

    assert_eq!(session.send(session.http().delete(&session.url)).await.status, 204);
    // The upstream session was ended at the upstream, not just forgotten.
    let direct = reqwest::Client::new()
        .post(alpha.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &deleted_upstream)
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 404, "alpha no longer knows the deleted session's upstream session");
    // The replica that ended it refuses the token.
    let (status, body) = echo(&session, "x").await;
    assert_not_found(status, &body, "ended here");
    // Another replica does not know of the DELETE: what the replayed token reaches there is
    // a new upstream session, never the deleted one.
    let (status, _) = echo(&replay_on_b, "replayed").await;
    assert_eq!(status, 200);
    let replayed_upstream = upstream_session(&replay_on_b).await;
    assert_ne!(replayed_upstream, deleted_upstream, "the deleted upstream session stays ended");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_session_leaves_nothing_in_the_gateway() {
    let alpha = Upstream::start("alpha").await;
    let dir = tempfile::tempdir().unwrap();
    let (stack, first) = one_replica(&alpha, &dir, DAY).await;
    let entries = || async {
        let metrics = reqwest::get(stack.admin_url("/metrics")).await.unwrap().text().await.unwrap();
        let line = metrics.lines().find(|l| l.starts_with("manifold_session_entries ")).expect("the gauge").to_owned();
        line.rsplit(' ').next().unwrap().parse::<u64>().unwrap()
    };
    let second = RawSession::initialize(&stack.url("/acme/tools/mcp")).await;
    assert_eq!(entries().await, 0, "initialize and notifications/initialized keep nothing: the token holds it all");
    assert_eq!(echo(&first, "x").await.0, 200);
    assert_eq!(entries().await, 1, "a request makes an entry, for the requests that follow");
    assert_eq!(echo(&second, "y").await.0, 200);
    assert_eq!(entries().await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_survives_its_gateway_process_being_killed() {
    // Two gateway processes share a key ring; the Python `mcp` client carries a session
    // opened through A over to B, which holds a GET stream for it; A is killed mid-session,
    // and the session goes on through B.
    let alpha = Upstream::start("alpha").await;
    let dir = tempfile::tempdir().unwrap();
    let keys = key_file(&dir, "keys", &[[3; 32]]);
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("route.yaml"), manifests_of(&alpha)).unwrap();
    let (mut a, b) = tokio::join!(GatewayProcess::start(&manifests, &keys), GatewayProcess::start(&manifests, &keys));

    let opened = RawSession::initialize(&a.url("/acme/tools/mcp")).await;
    let token = opened.session.clone().unwrap();
    let (status, body) = echo(&opened, "through A").await;
    assert_eq!((status, text(&body["result"])), (200, "alpha:through A"));
    let upstream_via_a = upstream_session(&opened).await;

    let on_b = RawSession::resume(&b.url("/acme/tools/mcp"), Some(token.clone()));
    let (status, body) = echo(&on_b, "through B").await;
    assert_eq!((status, text(&body["result"])), (200, "alpha:through B"));
    let mut stream = on_b.listen().await;

    a.kill().await;
    // B's stream for the session is still open: a config change reaches it.
    std::fs::write(
        manifests.join("route.yaml"),
        (manifests_of(&alpha) + &yaml::server("beta", &alpha.mcp_url(), ""))
            .replace("mounts: [{server: alpha}]", "mounts: [{server: alpha}, {server: beta}]"),
    )
    .unwrap();
    let changed = stream.next(Duration::from_secs(15)).await.expect("a list change on B's stream");
    assert!(changed["method"].as_str().unwrap().ends_with("list_changed"), "{changed}");

    let ops = json!([
        {"op": "call", "name": "alpha_echo", "arguments": {"text": "through B"}},
        {"op": "call", "name": "alpha_header", "arguments": {"name": "mcp-session-id"}},
        {"op": "list_tools"},
    ]);
    let results = manifold_e2e::peers::run_client_resuming(&b.url("/acme/tools/mcp"), &token, ops).await;
    assert_eq!(text(&results[0]), "alpha:through B", "{}", results[0]);
    assert_eq!(text(&results[1]), upstream_via_a, "the same upstream session, through B");
    let tools = tool_names(&results[2]);
    assert!(tools.contains(&"alpha_echo".to_owned()) && tools.contains(&"beta_echo".to_owned()), "{tools:?}");
    // The Python client ends the session when it closes (DELETE): B refuses it from then on.
    let (status, _) = echo(&on_b, "after the end").await;
    assert_eq!(status, 404);
}

fn manifests_of(alpha: &Upstream) -> String {
    yaml::server("alpha", &alpha.mcp_url(), "") + &yaml::route("tools", "mounts: [{server: alpha}]")
}
