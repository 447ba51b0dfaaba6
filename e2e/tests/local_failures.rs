//! Local stack, real peers: an upstream that is down, too slow, or killed mid-session fails
//! only the calls that go to it, with an error result naming the mount; other mounts keep
//! working in the same session.

use manifold_e2e::peers::{Sdk, Upstream, run_client, text, tool_names};
use manifold_e2e::raw::RawSession;
use manifold_e2e::{LocalStack, yaml};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_down_or_slow_mount_fails_alone() {
    let (alpha, beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let manifests = yaml::server("alpha", &alpha.mcp_url(), "timeout: 3s")
        + &yaml::server("beta", &beta.mcp_url(), "")
        // Port 1: nothing listens there, so connections are refused.
        + &yaml::server("ghost", "http://127.0.0.1:1/mcp", "")
        + &yaml::route("tools", "mounts: [{server: alpha}, {server: beta}, {server: ghost}]")
        + &yaml::route("dead", "mounts: [{server: ghost}]");
    let stack = LocalStack::start(&manifests).await;
    let url = stack.url("/acme/tools/mcp");
    let r = run_client(
        &url,
        Sdk::Mcp,
        json!([
            {"op": "list_tools"},
            {"op": "call", "name": "ghost_anything", "arguments": {}},
            {"op": "call", "name": "alpha_slow", "arguments": {"seconds": 10}},
            {"op": "call", "name": "beta_echo", "arguments": {"text": "still here"}},
            {"op": "call", "name": "alpha_echo", "arguments": {"text": "after timeout"}},
        ]),
    )
    .await;
    let names = tool_names(&r[0]);
    assert!(names.iter().all(|n| n.starts_with("alpha_") || n.starts_with("beta_")), "{names:?}");
    assert_eq!(names.len(), 10, "alpha's 7 and beta's 3: {names:?}");
    assert_eq!(r[1]["isError"], true);
    assert_eq!(text(&r[1]), "tool `ghost_anything` is unavailable: mounted server `ghost` cannot connect", "{}", r[1]);
    assert_eq!(r[2]["isError"], true);
    assert_eq!(
        text(&r[2]),
        "tool `alpha_slow` is unavailable: mounted server `alpha` no answer within 3000 ms",
        "{}",
        r[2]
    );
    assert_eq!(text(&r[3]), "beta:still here");
    assert_eq!(text(&r[4]), "alpha:after timeout");

    // With every mount down, tools/list says so instead of listing nothing. By now ghost's
    // failures (a list and a call, each retried twice: a refused connection never left) have
    // opened its breaker, shared by both routes.
    let dead = RawSession::initialize(&stack.url("/acme/dead/mcp")).await.request("tools/list", json!({})).await;
    assert_eq!(dead.body["error"]["code"], -32603, "{}", dead.body);
    assert_eq!(
        dead.body["error"]["message"],
        "no mounted server answered tools/list: `ghost` (is not called for now: its circuit breaker is open after repeated failures)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_killed_mid_session_fails_only_its_calls() {
    let (alpha, mut beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let manifests = yaml::server("alpha", &alpha.mcp_url(), "")
        + &yaml::server("beta", &beta.mcp_url(), "")
        + &yaml::route("tools", "mounts: [{server: alpha}, {server: beta}]");
    let stack = LocalStack::start(&manifests).await;
    let session = RawSession::initialize(&stack.url("/acme/tools/mcp")).await;
    let call = |name: &'static str| {
        let session = &session;
        async move { session.request("tools/call", json!({"name": name, "arguments": {"text": "x"}})).await.body }
    };
    assert_eq!(call("beta_echo").await["result"]["content"][0]["text"], "beta:x");
    beta.kill().await;
    let failed = call("beta_echo").await;
    assert_eq!(failed["result"]["isError"], true, "{failed}");
    assert!(failed["result"]["content"][0]["text"].as_str().unwrap().contains("`beta`"), "{failed}");
    assert_eq!(call("alpha_echo").await["result"]["content"][0]["text"], "alpha:x");
    assert_eq!(session.tool_names().await.iter().filter(|n| n.starts_with("alpha_")).count(), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_lost_its_sessions_is_reopened_transparently() {
    let mut alpha = Upstream::start("alpha").await;
    let manifests = yaml::server("alpha", &alpha.mcp_url(), "") + &yaml::route("tools", "mounts: [{server: alpha}]");
    let stack = LocalStack::start(&manifests).await;
    let session = RawSession::initialize(&stack.url("/acme/tools/mcp")).await;
    let call = || session.request("tools/call", json!({"name": "alpha_echo", "arguments": {"text": "x"}}));
    let upstream_session = || async {
        let answer = session
            .request("tools/call", json!({"name": "alpha_header", "arguments": {"name": "mcp-session-id"}}))
            .await;
        answer.body["result"]["content"][0]["text"].as_str().unwrap().to_owned()
    };
    assert_eq!(call().await.body["result"]["content"][0]["text"], "alpha:x");
    let before = upstream_session().await;
    // The new process answers the old upstream session id with 404.
    alpha.restart().await;
    let after = call().await;
    assert_eq!(
        after.body["result"]["content"][0]["text"], "alpha:x",
        "the client never sees the restart: {}",
        after.body
    );
    // The replica remembers the new upstream session: the next calls go on in it.
    let reopened = upstream_session().await;
    assert_ne!(reopened, before);
    assert_eq!(upstream_session().await, reopened);
}

/// alpha, with time for its slow tool, on route `tools`.
async fn slow_alpha() -> (Upstream, LocalStack) {
    let alpha = Upstream::start("alpha").await;
    let manifests =
        yaml::server("alpha", &alpha.mcp_url(), "timeout: 60s") + &yaml::route("tools", "mounts: [{server: alpha}]");
    let stack = LocalStack::start(&manifests).await;
    (alpha, stack)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_request_ends_without_an_answer() {
    let (_alpha, stack) = slow_alpha().await;
    let session = RawSession::initialize(&stack.url("/acme/tools/mcp")).await;
    let slow = RawSession::resume(&session.url, session.session.clone());
    let call = tokio::spawn(async move {
        let body = json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call",
                          "params": {"name": "alpha_slow", "arguments": {"seconds": 30}}});
        slow.post(&body.to_string()).await
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let cancelled = session
        .post(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":41,"reason":"changed my mind"}}"#)
        .await;
    assert_eq!(cancelled.status, reqwest::StatusCode::ACCEPTED);
    // Well before the tool's 30 s: the gateway stopped waiting, and sent no answer.
    let answer = tokio::time::timeout(std::time::Duration::from_secs(10), call).await.expect("ended").unwrap();
    assert!(!answer.body.to_string().contains("done"), "no answer for a cancelled request: {}", answer.body);
    assert_eq!(session.request("ping", json!({})).await.status, reqwest::StatusCode::OK, "the session goes on");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stateless_client_cancels_by_closing_its_connection() {
    let (_alpha, stack) = slow_alpha().await;
    let in_flight = || async {
        let text = reqwest::get(stack.admin_url("/metrics")).await.unwrap().text().await.unwrap();
        text.lines()
            .find(|l| l.starts_with("manifold_requests_in_flight"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    let params = json!({"name": "alpha_slow", "arguments": {"seconds": 30}});
    let request = manifold_e2e::raw::stateless(&stack.url("/acme/tools/mcp"), json!(1), "tools/call", params)
        .timeout(std::time::Duration::from_millis(1500))
        .send();
    let request = tokio::spawn(request);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(in_flight().await, Some(1.0), "the call is under way");
    assert!(request.await.unwrap().is_err(), "the client gives up before the tool ends");
    // The gateway drops its work with the connection instead of holding it for 30 s.
    manifold_e2e::eventually("the request to end", std::time::Duration::from_secs(5), || async {
        (in_flight().await == Some(0.0)).then_some(())
    })
    .await;
}
