//! Local stack, real peers: merged lists page through every mount, and a reload that changes
//! what a route exposes is announced to its connected clients.

use std::collections::HashSet;
use std::time::Duration;

use manifold_e2e::peers::Upstream;
use manifold_e2e::raw::{RawSession, stateless};
use manifold_e2e::{LocalStack, eventually, yaml};
use serde_json::{Value, json};

/// Every page of `tools/list`: the tool names in order, and how many pages it took.
async fn all_tools(session: &RawSession) -> (Vec<String>, usize) {
    let (mut names, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let params = cursor.as_ref().map_or(json!({}), |c| json!({ "cursor": c }));
        let answer = session.request("tools/list", params).await;
        let result = &answer.body["result"];
        let tools = result["tools"].as_array().unwrap_or_else(|| panic!("page {pages}: {}", answer.body));
        names.extend(tools.iter().map(|t| t["name"].as_str().unwrap().to_owned()));
        pages += 1;
        match result["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (names, pages),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_mounts_of_250_tools_list_exactly_750_across_pages() {
    let (a, b, c) = tokio::join!(Upstream::start("bulk"), Upstream::start("bulk"), Upstream::start("bulk"));
    let manifests = yaml::server("bulk-a", &a.mcp_url(), "")
        + &yaml::server("bulk-b", &b.mcp_url(), "")
        + &yaml::server("bulk-c", &c.mcp_url(), "")
        + &yaml::route(
            "bulk",
            "mounts: [{server: bulk-a, prefix: a}, {server: bulk-b, prefix: b}, {server: bulk-c, prefix: c}]",
        );
    // Pages of 100 over upstream pages of 40: gateway pages end in the middle of upstream pages.
    let stack = LocalStack::start_with(&manifests, |s| s.list_page_size = 100).await;
    let session = RawSession::initialize(&stack.url("/acme/bulk/mcp")).await;

    let (names, pages) = all_tools(&session).await;
    assert_eq!(names.len(), 750, "every tool of every mount, none cut off");
    assert_eq!(names.iter().collect::<HashSet<_>>().len(), 750, "no duplicates");
    assert_eq!(pages, 8, "750 tools in pages of 100");
    let expected: Vec<String> =
        ["a", "b", "c"].iter().flat_map(|p| (0..250).map(move |i| format!("{p}_t{i:03}"))).collect();
    assert_eq!(names, expected, "mount order, then each upstream's own order");
    assert_eq!(all_tools(&session).await.0, names, "the same order every time");

    let other_list = session.request("prompts/list", json!({})).await;
    assert_eq!(other_list.body["result"]["prompts"], json!([]), "{}", other_list.body);
}

/// alpha and beta, and route `tools` mounting `mounts`.
fn manifests(alpha: &Upstream, beta: &Upstream, mounts: &str) -> String {
    yaml::server("alpha", &alpha.mcp_url(), "")
        + &yaml::server("beta", &beta.mcp_url(), "")
        + &yaml::route("tools", &format!("mounts: {mounts}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_removes_a_mount_tells_connected_clients() {
    let (alpha, beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let manifests = |mounts: &str| manifests(&alpha, &beta, mounts);
    let stack = LocalStack::start(&manifests("[{server: alpha}, {server: beta}]")).await;
    let session = RawSession::initialize(&stack.url("/acme/tools/mcp")).await;
    assert!(session.tool_names().await.iter().any(|n| n.starts_with("beta_")));
    let mut events = session.listen().await;

    let generation = stack.generation();
    stack.rewrite(&manifests("[{server: alpha}]"));
    eventually("the reload", Duration::from_secs(10), || async { (stack.generation() > generation).then_some(()) })
        .await;
    // Within a second of the reload taking effect.
    let mut seen = Vec::new();
    while let Some(message) = events.next(Duration::from_secs(1)).await {
        let method = message["method"].as_str().unwrap_or_default().to_owned();
        seen.push(method.clone());
        if method == "notifications/tools/list_changed" {
            break;
        }
    }
    assert!(seen.contains(&"notifications/tools/list_changed".to_owned()), "got {seen:?}");
    for also in ["notifications/prompts/list_changed", "notifications/resources/list_changed"] {
        let message = events.next(Duration::from_secs(1)).await;
        assert_eq!(message.as_ref().map(|m| m["method"].as_str()), Some(Some(also)), "{message:?}");
    }
    let names = session.tool_names().await;
    assert!(!names.is_empty() && names.iter().all(|n| n.starts_with("alpha_")), "{names:?}");

    // A reload that leaves the route as it was is not announced.
    let generation = stack.generation();
    stack.rewrite(&(manifests("[{server: alpha}]") + &yaml::route("unrelated", "mounts: [{server: beta}]")));
    eventually("the second reload", Duration::from_secs(10), || async {
        (stack.generation() > generation).then_some(())
    })
    .await;
    let quiet: Option<Value> = events.next(Duration::from_millis(500)).await;
    assert!(quiet.is_none(), "nothing changed for this route, nothing announced: {quiet:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_is_announced_to_stateless_listeners_they_asked_for() {
    let (alpha, beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let manifests = |mounts: &str| manifests(&alpha, &beta, mounts);
    let stack = LocalStack::start(&manifests("[{server: alpha}, {server: beta}]")).await;
    let listen = json!({"notifications": {"toolsListChanged": true}});
    let response = stateless(&stack.url("/acme/tools/mcp"), json!("listen-1"), "subscriptions/listen", listen);
    let response = response.send().await.unwrap();
    let mut events = manifold_e2e::raw::Events::of(response);
    let ack = events.next(Duration::from_secs(5)).await.expect("an acknowledgement first");
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(ack["params"]["notifications"], json!({"toolsListChanged": true}), "what will be sent");
    assert_eq!(ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "listen-1");

    let generation = stack.generation();
    stack.rewrite(&manifests("[{server: alpha}]"));
    eventually("the reload", Duration::from_secs(10), || async { (stack.generation() > generation).then_some(()) })
        .await;
    let changed = events.next(Duration::from_secs(1)).await.expect("announced within a second of the reload");
    assert_eq!(changed["method"], "notifications/tools/list_changed");
    assert_eq!(changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "listen-1");
    let more = events.next(Duration::from_millis(500)).await;
    assert!(more.is_none(), "prompts and resources were not asked for: {more:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_only_upstreams_own_changes_reach_stateless_listeners() {
    let fixture = Upstream::conformance_fixture(&["--only-sessions"]).await;
    let manifests = yaml::server("fixture", &fixture.mcp_url(), "")
        + &yaml::route("tools", "mounts: [{server: fixture, prefix: fx}]");
    let stack = LocalStack::start(&manifests).await;
    let url = stack.url("/acme/tools/mcp");
    let stateless = |method: &str, params: Value| stateless(&url, json!("l-1"), method, params);
    let listening = stateless("subscriptions/listen", json!({"notifications": {"toolsListChanged": true}}));
    let mut events = manifold_e2e::raw::Events::of(listening.send().await.unwrap());
    let ack = events.next(Duration::from_secs(5)).await.expect("acknowledged");
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");

    // The fixture announces a change on its session's own stream, which the gateway's bridge
    // session holds open once a stateless client listens (the first triggers may come before).
    let mut changed = None;
    for _ in 0..20 {
        let trigger = stateless("tools/call", json!({"name": "fx_test_trigger_tool_change", "arguments": {}}));
        assert!(trigger.send().await.unwrap().status().is_success());
        changed = events.next(Duration::from_millis(500)).await;
        if changed.is_some() {
            break;
        }
    }
    let changed = changed.expect("the upstream's change reaches the listener");
    assert_eq!(changed["method"], "notifications/tools/list_changed");
    assert_eq!(changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "l-1");
}
