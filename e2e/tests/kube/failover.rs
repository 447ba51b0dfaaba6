//! Scenarios 5 and 6: the leading operator is killed and the other replica goes on without
//! rewriting what is already right; with no operator at all the gateways keep serving, and a
//! config Secret deleted meanwhile is restored when an operator comes back.

use std::time::Duration;

use manifold_e2e::cluster::condition;
use manifold_e2e::kube_stack::{KubeStack, SETTLE};
use manifold_e2e::peers::{Sdk, Upstream, run_client, text};
use manifold_e2e::pods::{GATEWAY_ADMIN_PORT, OPERATOR_ADMIN_PORT};
use manifold_e2e::yaml;
use serde_json::{Value, json};

fn tenant(namespace: &str, alpha: &Upstream) -> String {
    yaml::in_namespace(
        &(yaml::server("alpha", &alpha.mcp_url(), "") + &yaml::route("tools", "mounts: [{server: alpha}]")),
        namespace,
    )
}

async fn echo(url: &str) -> String {
    let ops = json!([{"op": "call", "name": "alpha_echo", "arguments": {"text": "still here"}}]);
    text(&run_client(url, Sdk::Mcp, ops).await[0]).to_owned()
}

/// The operator's writes recorded in the API server's audit log: status patches of our
/// resources and writes of Secrets (the published config).
fn operator_writes(stack: &KubeStack) -> Vec<Value> {
    let user = format!("system:serviceaccount:{}:{}-operator", stack.deployment.namespace, stack.deployment.release);
    stack
        .api
        .audit()
        .into_iter()
        .filter(|e| e["user"]["username"] == user.as_str() && e["stage"] == "ResponseComplete")
        .filter(|e| {
            let resource = &e["objectRef"]["resource"];
            let status =
                e["objectRef"]["subresource"] == "status" && (resource == "mcproutes" || resource == "mcpservers");
            let secret = resource == "secrets" && e["verb"] != "watch" && e["verb"] != "list";
            status || secret
        })
        .collect()
}

/// Waits until the operator's writes have stopped for `quiet`, and returns how many there were.
fn settled_writes(stack: &KubeStack, quiet: Duration) -> usize {
    let mut last = (operator_writes(stack).len(), std::time::Instant::now());
    stack.admin.until("the operator's writes to settle", SETTLE, || {
        let count = operator_writes(stack).len();
        if count != last.0 {
            last = (count, std::time::Instant::now());
        }
        if last.1.elapsed() >= quiet {
            Ok(count)
        } else {
            Err(format!("{count} writes, the last {:?} ago", last.1.elapsed()))
        }
    })
}

/// `manifold_operator_reconciles_total{outcome="ok"}` of an operator replica.
async fn reconciles(stack: &KubeStack, operator: usize) -> u64 {
    let Some((200, metrics)) = stack.operators[operator].get(OPERATOR_ADMIN_PORT, "/metrics").await else { return 0 };
    metrics
        .lines()
        .find(|l| l.starts_with("manifold_operator_reconciles_total{outcome=\"ok\"}"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0)
}

pub async fn leader_killed() {
    let alpha = Upstream::start("alpha").await;
    let mut stack = KubeStack::start("lead", &["acme"], 2, 1).await;
    let acme = stack.tenant(0).to_owned();
    stack.admin.apply(&tenant(&acme, &alpha));
    stack.until_programmed(&acme, "tools");
    let before = settled_writes(&stack, Duration::from_secs(4));
    assert!(before >= 3, "the audit log shows the first leader's publish and status writes ({before})");

    let leader = stack.leader().expect("a replica holds the Lease");
    let (dead, heir) = if leader == "operator-0" { (0, 1) } else { (1, 0) };
    assert_eq!(stack.operators[dead].name, leader);
    stack.operators[dead].kill().await;
    let heir_name = stack.operators[heir].name.clone();
    // The Lease is not released by a killed replica: the heir waits out its 15 s.
    stack.admin.until("the other replica to take the Lease", SETTLE, || match stack.leader() {
        Some(holder) if holder == heir_name => Ok(()),
        holder => Err(format!("{holder:?}")),
    });
    manifold_e2e::eventually("the new leader to reconcile", SETTLE, || async {
        (reconciles(&stack, heir).await > 0).then_some(())
    })
    .await;
    let after = settled_writes(&stack, Duration::from_secs(4));
    let new: Vec<_> = operator_writes(&stack).into_iter().skip(before).collect();
    assert_eq!(after, before, "the new leader rewrote an unchanged world: {new:#?}");
    assert_eq!(echo(&stack.route_url(0, &format!("/{acme}/tools/mcp"))).await, "alpha:still here");

    // The new leader acts on the next change.
    stack.admin.apply(&yaml::in_namespace(&yaml::route("more", "mounts: [{server: alpha, prefix: a2}]"), &acme));
    stack.until_programmed(&acme, "more");
}

pub async fn operator_down() {
    let alpha = Upstream::start("alpha").await;
    let mut stack = KubeStack::start("down", &["acme"], 1, 2).await;
    let acme = stack.tenant(0).to_owned();
    stack.admin.apply(&tenant(&acme, &alpha));
    let route = stack.until_programmed(&acme, "tools");
    let programmed_since =
        manifold_e2e::cluster::condition(&route, "Programmed").expect("Programmed")["lastTransitionTime"].clone();
    let path = format!("/{acme}/tools/mcp");
    let urls = [stack.route_url(0, &path), stack.route_url(1, &path)];

    stack.operators[0].terminate().await;
    for url in &urls {
        assert_eq!(echo(url).await, "alpha:still here", "{url} with the operator down");
    }
    let shard = "down-gateway-config";
    stack.admin.run(&["delete", "secret", "-n", "down-system", shard], None);
    for url in &urls {
        assert_eq!(echo(url).await, "alpha:still here", "{url} with its config Secret deleted");
    }

    stack.start_operator("operator-back").await;
    stack.admin.until("the config Secret to be restored", SETTLE, || {
        stack.admin.get("secret", "down-system", shard).map(|_| ()).ok_or_else(|| "absent".to_owned())
    });
    for url in &urls {
        assert_eq!(echo(url).await, "alpha:still here", "{url} after the operator came back");
    }
    // The new operator could not read the deleted Secret, so it republished the same config
    // at a new generation: the gateways served it all along, and Programmed never flipped.
    let route = stack.until_programmed(&acme, "tools");
    let programmed = condition(&route, "Programmed").expect("Programmed");
    assert_eq!(programmed["lastTransitionTime"], programmed_since, "Programmed never flipped: {programmed}");
    for gateway in &stack.gateways {
        let (_, status) = gateway.get(GATEWAY_ADMIN_PORT, "/status").await.expect("/status answers");
        assert!(status.contains(&path), "{} serves {path}: {status}", gateway.name);
    }
}
