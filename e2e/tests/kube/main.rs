//! Manifold against a real kube-apiserver and etcd (`e2e/apiserver`, built from Go modules):
//! the CRDs and their rules as the server judges them, and the operator and gateways as
//! processes under their own ServiceAccounts, with real MCP upstreams and clients.
//!
//! The binary first runs itself again inside a private network namespace, where the gateway
//! "pods" get addresses the API server accepts in EndpointSlices (`e2e/src/netns.rs`). One API
//! server serves every scenario of a run; each scenario has namespaces of its own.
//!
//! One scenario: `cargo test -p manifold-e2e --test kube -- <name>`.

mod crds;
mod dashboards;
mod failover;
mod install;
mod rbac;
mod tenants;

use std::future::Future;
use std::process::ExitCode;

use libtest_mimic::{Arguments, Trial};

fn main() -> ExitCode {
    if let Some(code) = manifold_e2e::netns::run_inside() {
        return code;
    }
    let mut args = Arguments::from_args();
    // Each scenario runs several processes; two at a time keep a 2-core machine responsive.
    args.test_threads.get_or_insert(2);
    let trials = vec![
        scenario("crds_are_established_and_the_server_enforces_the_cel_rules", crds::cel_rules),
        scenario("kubectl_explains_the_fields", crds::explain),
        scenario("unknown_fields_are_refused_by_the_server_and_in_local_mode", crds::unknown_fields),
        scenario("a_tenant_route_is_served_by_both_gateways_and_programmed", tenants::served_and_programmed),
        scenario("bad_input_stays_with_its_object_and_tenant", tenants::bad_input),
        scenario("a_killed_leader_hands_over_without_rewriting_statuses", failover::leader_killed),
        scenario("gateways_serve_while_the_operator_is_down", failover::operator_down),
        scenario("a_missing_rbac_rule_is_named_and_nothing_else_breaks", rbac::missing_rule),
        scenario("helm_installs_the_charts_and_their_workloads_serve_the_examples", install::helm_install),
        scenario(
            "every_dashboard_query_and_alert_selector_finds_series_in_prometheus",
            dashboards::every_panel_answers,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

/// A scenario: an async function run on a runtime of its own.
fn scenario<F: Future<Output = ()> + 'static>(name: &'static str, body: fn() -> F) -> Trial {
    Trial::test(name, move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
        runtime.block_on(body());
        Ok(())
    })
}
