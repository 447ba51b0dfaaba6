//! Sessions that belong to no replica: a session opened on one gateway goes on through
//! another sharing its key ring, also after the first has stopped; tokens that are tampered
//! with, too old, for another route, of another principal, ended, or sealed under a key
//! dropped from the ring are no session (404). Real FastMCP upstream.

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

#[tokio::test(flavor = "multi_thread")]
async fn tokens_that_are_no_session_get_404() {
    let alpha = Upstream::start("alpha").await;
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = ([1u8; 32], [2u8; 32]);
    let old_ring = key_file(&dir, "old", &[old]);
    let rotated = key_file(&dir, "rotated", &[new, old]);
    let dropped = key_file(&dir, "dropped", &[new]);
    let stack = start(&manifests(&alpha), &old_ring, DAY).await;
    let url = |route: &str| stack.url(&format!("/acme/{route}/mcp"));
    let session = RawSession::initialize(&url("tools")).await;
    let token = session.session.clone().unwrap();
    let not_found = |status: u16, body: &Value, case: &str| {
        assert_eq!(status, 404, "{case}: {body}");
        assert_eq!(body["error"]["message"], "session not found; initialize a new session", "{case}");
    };

    // Tampered: one character changed anywhere.
    for at in [0, 2, token.len() / 2, token.len() - 1] {
        let mut bytes = token.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let forged = RawSession::resume(&url("tools"), Some(String::from_utf8(bytes).unwrap()));
        let (status, body) = echo(&forged, "x").await;
        not_found(status, &body, &format!("tampered at {at}"));
    }
    // Sealed for another route.
    let (status, body) = echo(&RawSession::resume(&url("other"), Some(token.clone())), "x").await;
    not_found(status, &body, "another route");
    // Another principal: a session opened with alice's key, used with bob's.
    let keyed = RawSession::new(&url("keyed"));
    let opened = keyed
        .send(
            keyed
                .http()
                .post(url("keyed"))
                .header("content-type", "application/json")
                .header("authorization", "Bearer alice-key-0123456789abcdef")
                .body(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).to_string()),
        )
        .await;
    let alice_token = opened.headers["mcp-session-id"].to_str().unwrap().to_owned();
    let as_bob = RawSession::resume(&url("keyed"), Some(alice_token.clone()));
    let call = |key: &str| {
        as_bob
            .http()
            .post(url("keyed"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {key}"))
            .body(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string())
    };
    let bob = as_bob.send(call("bob-key-0123456789abcdef")).await;
    not_found(bob.status.as_u16(), &bob.body, "another principal");
    assert_eq!(as_bob.send(call("alice-key-0123456789abcdef")).await.status, 200, "its own principal");

    // Rotation: a replica whose ring has a new current key opens old tokens; one whose ring
    // dropped the old key does not.
    let after_rotation = start(&manifests(&alpha), &rotated, DAY).await;
    let (status, _) = echo(&RawSession::resume(&after_rotation.url("/acme/tools/mcp"), Some(token.clone())), "r").await;
    assert_eq!(status, 200, "the old key still opens");
    let new_session = RawSession::initialize(&after_rotation.url("/acme/tools/mcp")).await;
    let (status, _) = echo(&RawSession::resume(&url("tools"), new_session.session.clone()), "x").await;
    assert_eq!(status, 404, "a ring without the new current key cannot open what it sealed");
    let after_drop = start(&manifests(&alpha), &dropped, DAY).await;
    let (status, body) = echo(&RawSession::resume(&after_drop.url("/acme/tools/mcp"), Some(token.clone())), "x").await;
    not_found(status, &body, "old key dropped");

    // Ended by DELETE: the token is refused on the replica that ended it.
    let ended = session.send(session.http().delete(url("tools"))).await;
    assert_eq!(ended.status, 204);
    let (status, body) = echo(&session, "x").await;
    not_found(status, &body, "ended");

    // Too old: with a maximum age of one second, a token stops working.
    let short = start(&manifests(&alpha), &old_ring, Duration::from_secs(1)).await;
    let brief = RawSession::initialize(&short.url("/acme/tools/mcp")).await;
    eventually("the token expires", Duration::from_secs(10), || {
        let brief = RawSession::resume(&brief.url, brief.session.clone());
        async move { (echo(&brief, "x").await.0 == 404).then_some(()) }
    })
    .await;
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
