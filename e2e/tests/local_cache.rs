//! Result and list caching with real upstreams that count what they receive (the `counted`
//! profile of e2e/peers/upstream.py): a hit does not reach the upstream; one caller's kept
//! results are never another's unless the route says they are public; a config change
//! empties the entries of the mount it changed and no others; an upstream's
//! `notifications/tools/list_changed` empties the merged lists and that mount's results.

use std::time::Duration;

use manifold_e2e::peers::Upstream;
use manifold_e2e::raw::{RawSession, stateless};
use manifold_e2e::{LocalStack, eventually, yaml};
use serde_json::{Value, json};

const KEYS: &str = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: keys, namespace: acme}\n\
                    stringData: {alice: alice-key-0123456789abcdef, bob: bob-key-0123456789abcdef}\n";
const ALICE: &str = "alice-key-0123456789abcdef";
const BOB: &str = "bob-key-0123456789abcdef";

/// A stateless `tools/call` as `key`'s caller; `fresh` sends `Cache-Control: no-cache`.
async fn call(url: &str, key: &str, name: &str, arguments: Value, fresh: bool) -> Value {
    let mut request = stateless(url, json!(1), "tools/call", json!({"name": name, "arguments": arguments}))
        .header("authorization", format!("Bearer {key}"));
    if fresh {
        request = request.header("cache-control", "no-cache");
    }
    let answer = RawSession::new(url).send(request).await;
    answer.body.get("result").cloned().unwrap_or_else(|| panic!("{name}: {}", answer.body))
}

fn flag(result: &Value) -> &str {
    result["_meta"]["dev.manifold/cache"].as_str().unwrap_or("none")
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

/// What the upstream received, by method, through a call no rule caches.
async fn tally(url: &str, key: &str, tool: &str) -> Value {
    let result = call(url, key, tool, json!({}), false).await;
    serde_json::from_str(text(&result)).unwrap_or_else(|_| panic!("a tally: {result}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hit_does_not_reach_the_upstream_and_callers_share_only_public_results() {
    let counted = Upstream::start("counted").await;
    let route = yaml::route(
        "tools",
        "mounts: [{server: counted}], authentication: {apiKeys: {secretRef: {name: keys}}}, caching: {results: [\
         {tools: [counted_add], ttl: 1h, scope: Public}, {tools: [counted_echo, counted_fail], ttl: 1h}]}",
    );
    let stack = LocalStack::start(&(yaml::server("counted", &counted.mcp_url(), "") + KEYS + &route)).await;
    let url = stack.url("/acme/tools/mcp");

    let first = call(&url, ALICE, "counted_echo", json!({"text": "x"}), false).await;
    assert_eq!((text(&first), flag(&first)), ("alpha:x", "miss"), "{first}");
    let again = call(&url, ALICE, "counted_echo", json!({"text": "x"}), false).await;
    assert_eq!((text(&again), flag(&again)), ("alpha:x", "hit"), "{again}");
    let other = call(&url, ALICE, "counted_echo", json!({"text": "y"}), false).await;
    assert_eq!(flag(&other), "miss", "other arguments, another entry");
    // Bob's results are his own: alice's kept echo is not served to him.
    let bob = call(&url, BOB, "counted_echo", json!({"text": "x"}), false).await;
    assert_eq!(flag(&bob), "miss", "{bob}");
    // `add` is declared public: bob is served what alice fetched, arguments in another order.
    let added = call(&url, ALICE, "counted_add", json!({"a": 1, "b": 2}), false).await;
    assert_eq!((text(&added), flag(&added)), ("3", "miss"), "{added}");
    let shared = call(&url, BOB, "counted_add", json!({"b": 2, "a": 1}), false).await;
    assert_eq!((text(&shared), flag(&shared)), ("3", "hit"), "{shared}");
    // A caller asking for a fresh answer gets one, and it is kept again.
    let fresh = call(&url, ALICE, "counted_echo", json!({"text": "x"}), true).await;
    assert_eq!(flag(&fresh), "bypass", "{fresh}");
    // Failures are never kept.
    for _ in 0..2 {
        let failed = call(&url, ALICE, "counted_fail", json!({}), false).await;
        assert_eq!((failed["isError"].as_bool(), flag(&failed)), (Some(true), "miss"), "{failed}");
    }

    // A plain JSON answer says it in its header too.
    let request = stateless(&url, json!(1), "tools/call", json!({"name": "counted_echo", "arguments": {"text": "x"}}));
    let answer = RawSession::new(&url).send(request.header("authorization", format!("Bearer {ALICE}"))).await;
    assert_eq!(answer.headers.get("manifold-cache").and_then(|v| v.to_str().ok()), Some("hit"), "{}", answer.body);

    // The upstream saw: alice's two echoes, bob's echo, one add, the fresh echo, two
    // failures, and this tally: 8 calls.
    let seen = tally(&url, ALICE, "counted_tally").await;
    assert_eq!(seen["tools/call"], 8, "{seen}");
    let metrics = reqwest::get(stack.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    for line in [
        r#"manifold_cache_hits_total{kind="tools",namespace="acme",route="tools"} 3"#,
        r#"manifold_cache_misses_total{kind="tools",namespace="acme",route="tools"} 6"#,
        r#"manifold_cache_bypasses_total{kind="tools",namespace="acme",route="tools"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

fn manifests(one: &Upstream, two: &Upstream, two_tools: &str) -> String {
    yaml::server("one", &one.mcp_url(), "")
        + &yaml::server("two", &two.mcp_url(), "")
        + &yaml::route(
            "tools",
            &format!(
                "mounts: [{{server: one}}, {{server: two{two_tools}}}], \
                 caching: {{results: [{{tools: ['*_echo'], ttl: 1h}}], lists: {{ttl: 1h}}}}"
            ),
        )
}

/// One `tools/call` in a session; the result, or the text of an event stream.
async fn session_call(session: &RawSession, name: &str, arguments: Value) -> Value {
    let answer = session.request("tools/call", json!({"name": name, "arguments": arguments})).await;
    answer.body.get("result").cloned().unwrap_or(answer.body)
}

async fn session_list(session: &RawSession) -> Value {
    let answer = session.request("tools/list", json!({})).await;
    answer.body.get("result").cloned().unwrap_or_else(|| panic!("tools/list: {}", answer.body))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_change_empties_its_mount_only_and_an_upstream_change_empties_lists() {
    let (one, two) = tokio::join!(Upstream::start("counted"), Upstream::start("counted"));
    let stack = LocalStack::start(&manifests(&one, &two, "")).await;
    let session = RawSession::initialize(&stack.url("/acme/tools/mcp")).await;

    let listed = session_list(&session).await;
    assert_eq!(flag(&listed), "miss", "{listed}");
    assert!(listed["tools"].as_array().is_some_and(|t| t.len() == 18), "{listed}");
    assert_eq!(flag(&session_list(&session).await), "hit");
    for name in ["one_echo", "two_echo"] {
        assert_eq!(flag(&session_call(&session, name, json!({"text": "x"})).await), "miss");
        assert_eq!(flag(&session_call(&session, name, json!({"text": "x"})).await), "hit");
    }
    // Hits reach no upstream: between two tallies, upstream one sees the second tally only.
    let before = tallied(session_call(&session, "one_tally", json!({})).await);
    assert_eq!(flag(&session_list(&session).await), "hit");
    assert_eq!(flag(&session_call(&session, "one_echo", json!({"text": "x"})).await), "hit");
    let after = tallied(session_call(&session, "one_tally", json!({})).await);
    assert_eq!(after["tools/list"], before["tools/list"], "{before} {after}");
    assert_eq!(after["tools/call"].as_u64(), before["tools/call"].as_u64().map(|n| n + 1), "{before} {after}");

    // Mount `two` changes (it hides a tool): its results and the lists go, mount one's stay.
    stack.rewrite(&manifests(&one, &two, ", tools: {exclude: [whoami]}"));
    eventually("the new config", Duration::from_secs(10), || async { (stack.generation() == 2).then_some(()) }).await;
    assert_eq!(flag(&session_call(&session, "one_echo", json!({"text": "x"})).await), "hit");
    assert_eq!(flag(&session_call(&session, "two_echo", json!({"text": "x"})).await), "miss");
    let listed = session_list(&session).await;
    assert_eq!(flag(&listed), "miss", "the route's lists changed");
    assert!(listed["tools"].as_array().is_some_and(|t| t.len() == 17), "{listed}");
    assert_eq!(flag(&session_list(&session).await), "hit");

    // Upstream `one` announces that its tools changed: the lists and one's results go.
    session_call(&session, "one_touch_tools", json!({})).await;
    assert_eq!(flag(&session_list(&session).await), "miss");
    assert_eq!(flag(&session_call(&session, "one_echo", json!({"text": "x"})).await), "miss");
    assert_eq!(flag(&session_call(&session, "two_echo", json!({"text": "x"})).await), "hit", "two said nothing");

    // A client asks for a fresh answer in `_meta`, whatever its transport; it is kept again.
    let fresh = json!({"dev.manifold/cache": "no-cache"});
    let call = json!({"name": "two_echo", "arguments": {"text": "x"}, "_meta": fresh});
    assert_eq!(flag(&session.request("tools/call", call).await.body["result"]), "bypass");
    assert_eq!(flag(&session.request("tools/list", json!({"_meta": fresh})).await.body["result"]), "bypass");
    assert_eq!(flag(&session_list(&session).await), "hit");
}

/// A tally result's text, parsed.
fn tallied(result: Value) -> Value {
    serde_json::from_str(text(&result)).unwrap_or_else(|_| panic!("a tally: {result}"))
}
