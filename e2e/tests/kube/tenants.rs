//! Scenarios 2–4: two operator replicas and two gateway replicas under their own
//! ServiceAccounts serve a tenant's route to a real MCP client; bad input (a missing server,
//! two routes on one path, a name collision compile refuses) stays in its own status, and a
//! Secret rotation reaches the upstream, with no other tenant affected.

use manifold_e2e::cluster::condition;
use manifold_e2e::kube_stack::{KubeStack, SETTLE};
use manifold_e2e::peers::{Sdk, Upstream, run_client, text, tool_names};
use manifold_e2e::raw::RawSession;
use manifold_e2e::yaml;
use serde_json::{Value, json};

/// A tenant's objects: a Secret `creds` with `tenant: <namespace>`, McpServers alpha (sending
/// that Secret as `X-Tenant`) and beta, and McpRoute `tools` mounting both under their names.
fn tenant(namespace: &str, alpha: &Upstream, beta: &Upstream) -> String {
    let objects = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: creds, namespace: acme}}\nstringData: {{tenant: {namespace}}}\n"
    ) + &yaml::server(
        "alpha",
        &alpha.mcp_url(),
        "headers: [{name: X-Tenant, valueFrom: {secretKeyRef: {name: creds, key: tenant}}}]",
    ) + &yaml::server("beta", &beta.mcp_url(), "")
        + &yaml::route("tools", "mounts: [{server: alpha}, {server: beta}]");
    yaml::in_namespace(&objects, namespace)
}

/// The tool `alpha_header` through `url`: the X-Tenant header alpha received.
async fn tenant_header(url: &str) -> String {
    let ops = json!([{"op": "call", "name": "alpha_header", "arguments": {"name": "X-Tenant"}}]);
    text(&run_client(url, Sdk::Mcp, ops).await[0]).to_owned()
}

fn status<'a>(object: &'a Value, field: &str) -> &'a Value {
    &object["status"][field]
}

pub async fn served_and_programmed() {
    let (alpha, beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let stack = KubeStack::start("serve", &["acme", "globex"], 2, 2).await;
    let (acme, globex) = (stack.tenant(0).to_owned(), stack.tenant(1).to_owned());
    stack.admin.apply(&tenant(&acme, &alpha, &beta));
    stack.admin.apply(&tenant(&globex, &alpha, &beta));

    for namespace in [&acme, &globex] {
        let server = stack.admin.until_condition("mcpserver", namespace, "alpha", "Ready", "True", SETTLE);
        assert_eq!(status(&server, "tools"), 7, "alpha's tools, counted by the probe: {server}");
        let route = stack.until_programmed(namespace, "tools");
        for kind in ["Accepted", "ResolvedRefs"] {
            let condition = condition(&route, kind).expect("the condition is set");
            assert_eq!(condition["status"], "True", "{kind}: {condition}");
            assert_eq!(condition["observedGeneration"], route["metadata"]["generation"], "{kind}: {condition}");
        }
        let path = format!("/{namespace}/tools/mcp");
        assert_eq!(status(&route, "path"), path.as_str());
        assert_eq!(status(&route, "url"), format!("http://serve-gateway.serve-system.svc:8080{path}").as_str());
        assert_eq!(status(&route, "tools"), 7 + 3, "alpha's 7 tools and beta's 3: {route}");
    }

    // The config travels as a labelled Secret in the gateways' namespace.
    let config = stack.admin.get("secret", "serve-system", "serve-gateway-config").expect("the config Secret");
    assert_eq!(config["metadata"]["labels"]["manifold.dev/gateway-config"], "serve");
    assert!(config["data"]["config.json.gz"].is_string(), "{config}");

    // Both replicas serve both tenants, each with its own credentials.
    for gateway in 0..2 {
        for namespace in [&acme, &globex] {
            let url = stack.route_url(gateway, &format!("/{namespace}/tools/mcp"));
            let listed = run_client(&url, Sdk::Mcp, json!([{"op": "list_tools"}])).await;
            let names = tool_names(&listed[0]);
            assert!(names.contains(&"alpha_echo".to_owned()) && names.contains(&"beta_echo".to_owned()), "{names:?}");
            assert_eq!(tenant_header(&url).await, namespace.as_str(), "gateway {gateway}, tenant {namespace}");
        }
    }

    // What `kubectl get` shows: the printer columns of docs/operator.md. (A column over a
    // list, such as the mounts' servers, would show only the first: the server prints one.)
    let table = |resource: &str| -> Vec<Vec<String>> {
        let text = stack.admin.run(&["get", resource, "-n", &acme], None);
        text.lines().map(|l| l.split_whitespace().map(str::to_owned).collect()).collect()
    };
    let routes = table("mcproutes");
    assert_eq!(routes[0], ["NAME", "PATH", "ACCEPTED", "PROGRAMMED", "TOOLS", "AGE"], "{routes:?}");
    assert_eq!(routes[1][..5], ["tools", &format!("/{acme}/tools/mcp"), "True", "True", "10"], "{routes:?}");
    let servers = table("mcpservers");
    assert_eq!(servers[0], ["NAME", "URL", "ACCEPTED", "READY", "TOOLS", "AGE"], "{servers:?}");
    assert_eq!(servers[1][..5], ["alpha", &alpha.mcp_url(), "True", "True", "7"], "{servers:?}");
}

pub async fn bad_input() {
    let (alpha, beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let stack = KubeStack::start("bad", &["acme", "globex"], 1, 1).await;
    let (acme, globex) = (stack.tenant(0).to_owned(), stack.tenant(1).to_owned());
    stack.admin.apply(&tenant(&acme, &alpha, &beta));
    stack.admin.apply(&tenant(&globex, &alpha, &beta));
    stack.until_programmed(&acme, "tools");
    stack.until_programmed(&globex, "tools");
    let globex_url = stack.route_url(0, &format!("/{globex}/tools/mcp"));
    let acme_url = stack.route_url(0, &format!("/{acme}/tools/mcp"));

    // A route mounting a server that does not exist: its own status says which.
    stack.admin.apply(&yaml::in_namespace(&yaml::route("ghostly", "mounts: [{server: ghost}]"), &acme));
    let route = stack.admin.until_condition("mcproute", &acme, "ghostly", "ResolvedRefs", "False", SETTLE);
    let refs = condition(&route, "ResolvedRefs").expect("ResolvedRefs");
    assert_eq!(refs["reason"], "RefNotFound", "{refs}");
    assert!(refs["message"].as_str().is_some_and(|m| m.contains("`ghost`")), "{refs}");
    stack.admin.until("a Warning Event about `ghostly`", SETTLE, || {
        let events = stack.events(&acme, "ghostly");
        if events.iter().any(|e| e.starts_with("Warning") && e.contains("ghost")) {
            Ok(())
        } else {
            Err(format!("{events:?}"))
        }
    });

    // Two routes on one path: the older keeps it, the newer is refused, naming the path.
    stack.admin.apply(&yaml::in_namespace(
        &yaml::route("usurper", &format!("path: /{acme}/tools/mcp, mounts: [{{server: beta}}]")),
        &acme,
    ));
    let route = stack.admin.until_condition("mcproute", &acme, "usurper", "Accepted", "False", SETTLE);
    let accepted = condition(&route, "Accepted").expect("Accepted");
    assert_eq!(accepted["reason"], "PathConflict", "{accepted}");
    assert!(route["status"].get("url").is_none(), "a refused route shows no URL: {route}");
    stack.admin.until("an Event about `usurper`", SETTLE, || {
        let events = stack.events(&acme, "usurper");
        if events.iter().any(|e| e.contains("PathConflict")) { Ok(()) } else { Err(format!("{events:?}")) }
    });

    // Valid for the API server, refused by compile: unprefixed mounts that both offer `echo`.
    stack.admin.apply(&yaml::in_namespace(
        &yaml::route("clash", "mounts: [{server: alpha, prefix: \"\"}, {server: beta, prefix: \"\"}]"),
        &acme,
    ));
    let route = stack.admin.until_condition("mcproute", &acme, "clash", "Accepted", "False", SETTLE);
    let accepted = condition(&route, "Accepted").expect("Accepted");
    assert_eq!(accepted["reason"], "NameCollision", "{accepted}");
    assert!(accepted["message"].as_str().is_some_and(|m| m.contains("`echo`")), "{accepted}");

    // Clients find neither refused route: the gateways serve nothing at their paths.
    for refused in ["ghostly", "clash"] {
        let route = stack.admin.until_condition("mcproute", &acme, refused, "Programmed", "False", SETTLE);
        assert_eq!(condition(&route, "Programmed").expect("Programmed")["reason"], "NotServed", "{route}");
        let url = stack.route_url(0, &format!("/{acme}/{refused}/mcp"));
        let answer = RawSession::new(&url)
            .request(
                "initialize",
                json!({"protocolVersion": "2025-11-25",
            "capabilities": {}, "clientInfo": {"name": "e2e", "version": "0"}}),
            )
            .await;
        assert_eq!(answer.status, 404, "{refused}: {}", answer.body);
    }

    // Through all of it, the first route still serves alpha and beta; globex never noticed.
    let listed = run_client(&acme_url, Sdk::Mcp, json!([{"op": "list_tools"}])).await;
    assert!(tool_names(&listed[0]).contains(&"alpha_echo".to_owned()), "{listed:?}");
    assert_eq!(tenant_header(&globex_url).await, globex.as_str());
    stack.until_programmed(&globex, "tools");

    // A Secret rotation reaches the upstream, through the same route, with no edit to it.
    stack.admin.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: creds, namespace: {acme}}}\nstringData: {{tenant: rotated}}\n"
    ));
    manifold_e2e::eventually("the rotated Secret to reach alpha", SETTLE, || {
        let url = acme_url.clone();
        async move { (tenant_header(&url).await == "rotated").then_some(()) }
    })
    .await;
    assert_eq!(tenant_header(&globex_url).await, globex.as_str(), "globex keeps its own credentials");
}
