//! The permissions the operator needs ([`NEEDED`], the one table: docs/operator.md and the
//! RBAC manifests are checked against it), and a task that asks the API server which of them
//! it has.
//!
//! [`NEEDED`] expands into one [`Permission`] per verb, resource and namespace ([`needed`]).
//! [`Checker`] asks a `SelfSubjectAccessReview` for each (a few at once) at start-up, every
//! [`CHECK_EVERY`], and soon after the API server answers any call 403 while nothing was known
//! missing ([`noticing_forbidden`] tells it). A permission that goes missing is logged once, at
//! `error`, in kubectl terms; one that comes back, at `info`. A review that fails says
//! nothing: the last answer stands. `/readyz` and `manifold_operator_missing_permissions`
//! show what is missing.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use kube::api::{Api, PostParams};
use kube::client::ClientBuilder;
use kube::{Client, Config};
use prometheus::IntGauge;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often the permissions are checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);
/// How soon after the last check a 403 brings the next one.
pub const RECHECK_AFTER_FORBIDDEN: Duration = Duration::from_secs(10);
/// How many reviews are asked at once.
const REVIEWS_AT_ONCE: usize = 8;
/// How long one review may take.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a rule must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Each watched namespace, or all namespaces when no `--watch-namespace` is given (a
    /// ClusterRole, bound in each or cluster-wide).
    Watched,
    /// The gateways' namespace, where the config is published (a Role).
    Gateway,
}

/// One RBAC rule the operator needs: `verbs` on `resources` of `group`, in `scope`.
#[derive(Debug)]
pub struct Rule {
    pub scope: Scope,
    /// The API group ("" for the core group).
    pub group: &'static str,
    /// Resources, a subresource after a `/` (`mcproutes/status`).
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// What the operator does with it.
    pub why: &'static str,
}

/// Every permission the operator needs, and nothing more.
pub const NEEDED: &[Rule] = &[
    Rule {
        scope: Scope::Watched,
        group: "manifold.dev",
        resources: &["mcpservers", "mcproutes"],
        verbs: &["get", "list", "watch"],
        why: "what it compiles",
    },
    Rule {
        scope: Scope::Watched,
        group: "manifold.dev",
        resources: &["mcpservers/status", "mcproutes/status"],
        verbs: &["patch"],
        why: "statuses (server-side apply)",
    },
    Rule {
        scope: Scope::Watched,
        group: "",
        resources: &["secrets", "configmaps"],
        verbs: &["get", "list", "watch"],
        why: "what the objects reference",
    },
    Rule {
        scope: Scope::Watched,
        group: "events.k8s.io",
        resources: &["events"],
        verbs: &["create", "patch"],
        why: "Events on the objects",
    },
    Rule {
        scope: Scope::Gateway,
        group: "",
        resources: &["secrets"],
        verbs: &["list", "watch", "create", "patch", "delete"],
        why: "the config shards",
    },
    Rule {
        scope: Scope::Gateway,
        group: "coordination.k8s.io",
        resources: &["leases"],
        verbs: &["get", "create", "update"],
        why: "leader election",
    },
    Rule {
        scope: Scope::Gateway,
        group: "discovery.k8s.io",
        resources: &["endpointslices"],
        verbs: &["list"],
        why: "the gateway replicas, for `Programmed`",
    },
];

/// One permission: a verb on a resource of a group, in a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    pub verb: &'static str,
    pub group: &'static str,
    /// With its subresource after a `/`.
    pub resource: &'static str,
    /// "" for all namespaces.
    pub namespace: String,
}

impl fmt::Display for Permission {
    /// In kubectl terms: `patch mcproutes.manifold.dev/status in namespace acme`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (resource, subresource) = split(self.resource);
        write!(f, "{} {resource}", self.verb)?;
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        if let Some(subresource) = subresource {
            write!(f, "/{subresource}")?;
        }
        match self.namespace.as_str() {
            "" => write!(f, " in all namespaces"),
            namespace => write!(f, " in namespace {namespace}"),
        }
    }
}

/// [`NEEDED`], one permission per verb, resource and namespace, in the table's order (each
/// once): `watched` are the watched namespaces (empty: all), `gateway` the gateways' one.
pub fn needed(watched: &[String], gateway: &str) -> Vec<Permission> {
    let (all, gateway) = ([String::new()], [gateway.to_owned()]);
    let mut permissions = Vec::new();
    for rule in NEEDED {
        let namespaces = match rule.scope {
            Scope::Watched if watched.is_empty() => &all[..],
            Scope::Watched => watched,
            Scope::Gateway => &gateway[..],
        };
        for namespace in namespaces {
            for resource in rule.resources {
                for verb in rule.verbs {
                    let permission = Permission { verb, group: rule.group, resource, namespace: namespace.clone() };
                    if !permissions.contains(&permission) {
                        permissions.push(permission);
                    }
                }
            }
        }
    }
    permissions
}

/// A resource and its subresource (`mcproutes/status`).
fn split(resource: &str) -> (&str, Option<&str>) {
    resource.split_once('/').map_or((resource, None), |(resource, sub)| (resource, Some(sub)))
}

/// A client for `config` that tells `forbidden` of every call the API server answers 403.
pub fn noticing_forbidden(config: Config, forbidden: &Arc<Notify>) -> kube::Result<Client> {
    let layer = tower::util::MapResponseLayer::new(on_forbidden(Arc::clone(forbidden)));
    Ok(ClientBuilder::try_from(config)?.with_layer(&layer).build())
}

/// Passes responses on, telling `forbidden` of each 403.
fn on_forbidden<B>(forbidden: Arc<Notify>) -> impl Fn(http::Response<B>) -> http::Response<B> + Clone {
    move |response| {
        if response.status() == http::StatusCode::FORBIDDEN {
            forbidden.notify_one();
        }
        response
    }
}

/// Whether the API server lets this client do `permission` (an error: it did not say).
async fn allowed(client: &Client, permission: &Permission) -> Result<bool, String> {
    let (resource, subresource) = split(permission.resource);
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(permission.verb.into()),
                group: Some(permission.group.into()),
                resource: Some(resource.into()),
                subresource: subresource.map(Into::into),
                namespace: Some(permission.namespace.clone()).filter(|n| !n.is_empty()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = crate::in_time(REVIEW_TIMEOUT, api.create(&PostParams::default(), &review)).await;
    match answer {
        Ok(answer) => answer.status.map(|s| s.allowed).ok_or_else(|| "the review came back without a status".into()),
        Err(error) => Err(error.to_string()),
    }
}

/// Who the API server takes this client for (`system:serviceaccount:<namespace>:<name>`),
/// if it says (a `SelfSubjectReview`, Kubernetes 1.28 and later).
async fn user(client: &Client) -> Option<String> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let (params, review) = (PostParams::default(), SelfSubjectReview::default());
    crate::in_time(REVIEW_TIMEOUT, api.create(&params, &review)).await.ok()?.status?.user_info?.username
}

/// The last answer for each needed permission (None: not known yet).
#[derive(Debug)]
struct Answers {
    permissions: Vec<Permission>,
    allowed: Vec<Option<bool>>,
}

/// What a round of reviews changed.
#[derive(Debug, Default, PartialEq)]
struct Changes {
    went_missing: Vec<Permission>,
    restored: Vec<Permission>,
    /// How many reviews failed (their permissions keep their last answers), and the first error.
    failed: Option<(usize, String)>,
}

impl Answers {
    fn new(permissions: Vec<Permission>) -> Self {
        let allowed = vec![None; permissions.len()];
        Answers { permissions, allowed }
    }

    /// Takes a round's answers, one per permission, in order.
    fn take(&mut self, round: Vec<Result<bool, String>>) -> Changes {
        let mut changes = Changes::default();
        for ((permission, known), answer) in self.permissions.iter().zip(&mut self.allowed).zip(round) {
            match answer {
                Ok(allowed) => {
                    match (*known, allowed) {
                        (None | Some(true), false) => changes.went_missing.push(permission.clone()),
                        (Some(false), true) => changes.restored.push(permission.clone()),
                        _ => {}
                    }
                    *known = Some(allowed);
                }
                Err(error) => changes.failed.get_or_insert((0, error)).0 += 1,
            }
        }
        changes
    }

    /// What was last answered as not allowed.
    fn missing(&self) -> Vec<Permission> {
        let answers = self.permissions.iter().zip(&self.allowed);
        answers.filter(|(_, allowed)| **allowed == Some(false)).map(|(permission, _)| permission.clone()).collect()
    }
}

/// The permissions missing: None until the first round of reviews is done.
pub type Missing = watch::Receiver<Option<Vec<Permission>>>;

/// The task that checks the permissions; it stops when this is dropped.
pub struct Checker {
    missing: Missing,
    task: JoinHandle<()>,
}

impl Checker {
    /// Checks `permissions` with `client` until dropped, soon after `forbidden` is told of a
    /// 403 (`client`'s own calls should not tell it); `gauge` counts what is missing.
    pub fn spawn(client: Client, permissions: Vec<Permission>, forbidden: Arc<Notify>, gauge: IntGauge) -> Self {
        let (sender, missing) = watch::channel(None);
        let task = tokio::spawn(check(client, Answers::new(permissions), forbidden, sender, gauge));
        Checker { missing, task }
    }

    pub fn missing(&self) -> Missing {
        self.missing.clone()
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Rounds of reviews, for ever: each says what changed and publishes what is missing.
async fn check(
    client: Client,
    mut answers: Answers,
    forbidden: Arc<Notify>,
    missing: watch::Sender<Option<Vec<Permission>>>,
    gauge: IntGauge,
) {
    let mut grantee = None;
    loop {
        let started = Instant::now();
        // Owned: futures borrowing the closure's argument would not type-check as `Send`
        // for `tokio::spawn` (a rustc limitation with higher-ranked lifetimes).
        let reviews = stream::iter(answers.permissions.clone()).map(|permission| {
            let client = client.clone();
            async move { allowed(&client, &permission).await }
        });
        let round = reviews.buffered(REVIEWS_AT_ONCE).collect().await;
        let changes = answers.take(round);
        if let Some((failed, error)) = &changes.failed {
            tracing::warn!(failed, %error, "cannot ask the API server which permissions the operator has (SelfSubjectAccessReview); keeping the last answers");
        }
        if !changes.went_missing.is_empty() && grantee.is_none() {
            grantee = user(&client).await;
        }
        let grantee_or_default = grantee.as_deref().unwrap_or("the operator's service account");
        for permission in &changes.went_missing {
            tracing::error!(
                "missing permission: {permission} (grant it to {grantee_or_default}; see docs/operator.md)"
            );
        }
        for permission in &changes.restored {
            tracing::info!("permission restored: {permission}");
        }
        let now_missing = answers.missing();
        gauge.set(i64::try_from(now_missing.len()).unwrap_or(i64::MAX));
        // A 403 is news only while nothing is known missing (else it is what is missing).
        let news = now_missing.is_empty();
        missing.send_replace(Some(now_missing));
        let forbidden = async {
            match news {
                true => forbidden.notified().await,
                false => std::future::pending().await,
            }
            tokio::time::sleep_until(started + RECHECK_AFTER_FORBIDDEN).await;
        };
        tokio::select! {
            () = tokio::time::sleep_until(started + CHECK_EVERY) => {}
            () = forbidden => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use futures::FutureExt;
    use http::Method;
    use serde_json::json;
    use tower::Layer;

    use super::*;
    use crate::testing::api_server;

    fn permission(verb: &'static str, group: &'static str, resource: &'static str, namespace: &str) -> Permission {
        Permission { verb, group, resource, namespace: namespace.into() }
    }

    /// (API group, resource, verb) of every rule of `scope` in [`NEEDED`].
    fn table(scope: Scope) -> BTreeSet<(String, String, String)> {
        let rules = NEEDED.iter().filter(|rule| rule.scope == scope);
        let triples = rules.flat_map(|rule| {
            rule.resources.iter().flat_map(|resource| {
                rule.verbs.iter().map(|verb| (rule.group.to_owned(), (*resource).to_owned(), (*verb).to_owned()))
            })
        });
        triples.collect()
    }

    /// A file of the chart, `charts/manifold/<path>`.
    fn chart_file(path: &str) -> String {
        let path = format!("{}/../charts/manifold/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    /// The rules of `charts/manifold/files/rbac/<file>`, the RBAC's one source (the chart's
    /// templates include them; the kube scenarios apply what the chart renders), as a role.
    fn chart_role(file: &str) -> serde_yaml::Value {
        let rules: serde_yaml::Value = serde_yaml::from_str(&chart_file(&format!("files/rbac/{file}"))).unwrap();
        assert!(rules.is_sequence(), "files/rbac/{file} is a list of rules");
        let mut role = serde_yaml::Mapping::new();
        role.insert("rules".into(), rules);
        role.into()
    }

    /// The documents of a template, each as (its `kind`, its text), without rendering it.
    fn template_documents(file: &str) -> Vec<(String, String)> {
        let text = chart_file(&format!("templates/{file}"));
        let kind = |document: &str| {
            let line = document.lines().find_map(|line| line.strip_prefix("kind: "));
            line.map(|kind| kind.trim().to_owned()).unwrap_or_default()
        };
        text.split("\n---\n").map(|document| (kind(document), document.to_owned())).collect()
    }

    /// (API group, resource, verb) of every rule of a Role or ClusterRole.
    fn granted(role: &serde_yaml::Value) -> BTreeSet<(String, String, String)> {
        let strings = |value: &serde_yaml::Value| -> Vec<String> {
            value.as_sequence().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
        };
        let mut granted = BTreeSet::new();
        for rule in role["rules"].as_sequence().unwrap() {
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        granted.insert((group.clone(), resource.clone(), verb));
                    }
                }
            }
        }
        granted
    }

    #[test]
    fn the_rbac_manifests_grant_exactly_the_table() {
        let (watched, gateway) = (chart_role("operator-tenant.yaml"), chart_role("operator-system.yaml"));
        assert_eq!(granted(&watched), table(Scope::Watched), "files/rbac/operator-tenant.yaml: each watched namespace");
        assert_eq!(
            granted(&gateway),
            table(Scope::Gateway),
            "files/rbac/operator-system.yaml: the gateways' namespace"
        );
        // The chart's roles hold those rules and nothing else, and are bound where the table
        // says: the Role in the release (the gateways') namespace, the ClusterRole in each
        // watched namespace (or cluster-wide). Read from the template's text: rendering it
        // needs helm, which the chart's own checks run.
        let documents = template_documents("operator-rbac.yaml");
        let of_kind = |kind: &str| -> Vec<&str> {
            documents.iter().filter(|(k, _)| k == kind).map(|(_, text)| text.as_str()).collect()
        };
        for (kind, file) in [("ClusterRole", "operator-tenant.yaml"), ("Role", "operator-system.yaml")] {
            let roles = of_kind(kind);
            assert_eq!(roles.len(), 1, "operator-rbac.yaml: one {kind}");
            let rules = roles[0].split_once("\nrules:\n").map(|(_, rules)| rules).unwrap_or_default();
            let include = format!(
                "  {{{{- include \"manifold.rbacRules\" (dict \"root\" . \"file\" \"{file}\") | nindent 2 }}}}"
            );
            let mut lines = rules.lines().filter(|line| !line.starts_with("{{"));
            assert_eq!(
                (lines.next(), lines.next()),
                (Some(include.as_str()), None),
                "operator-rbac.yaml: the {kind}'s rules are files/rbac/{file}, and only those"
            );
        }
        let bound_to = |binding: &str| binding.split_once("roleRef:").map(|(_, r)| r.to_owned()).unwrap_or_default();
        let role_bindings = of_kind("RoleBinding");
        let (to_role, to_cluster_role): (Vec<&str>, Vec<&str>) =
            role_bindings.iter().partition(|binding| bound_to(binding).contains("  kind: Role\n"));
        let in_namespace =
            |binding: &str, namespace: &str| binding.contains(&format!("  namespace: {namespace}\n  labels:"));
        assert!(
            to_role.len() == 1 && in_namespace(to_role[0], "{{ .Release.Namespace }}"),
            "operator-rbac.yaml: the Role is bound in the release namespace: {to_role:?}"
        );
        assert!(
            to_cluster_role.len() == 1
                && bound_to(to_cluster_role[0]).contains("  kind: ClusterRole\n")
                && in_namespace(to_cluster_role[0], "{{ . }}"),
            "operator-rbac.yaml: the ClusterRole is bound in each of watchNamespaces: {to_cluster_role:?}"
        );
        let cluster_bindings = of_kind("ClusterRoleBinding");
        assert!(
            cluster_bindings.len() == 1 && bound_to(cluster_bindings[0]).contains("  kind: ClusterRole\n"),
            "operator-rbac.yaml: the ClusterRole is bound cluster-wide when watchNamespaces is empty"
        );
    }

    /// The RBAC section of docs/operator.md, as the table says it.
    fn docs_table() -> String {
        let mut text = "| where | API group | resources | verbs | for |\n|---|---|---|---|---|\n".to_owned();
        for rule in NEEDED {
            let scope = match rule.scope {
                Scope::Watched => "each watched namespace",
                Scope::Gateway => "the gateways' namespace",
            };
            let group = match rule.group {
                "" => "core".to_owned(),
                group => format!("`{group}`"),
            };
            let resources: Vec<String> = rule.resources.iter().map(|r| format!("`{r}`")).collect();
            let (resources, verbs) = (resources.join(", "), rule.verbs.join(", "));
            text += &format!("| {scope} | {group} | {resources} | {verbs} | {} |\n", rule.why);
        }
        text
    }

    #[test]
    fn the_docs_list_exactly_the_table() {
        let path = format!("{}/../docs/operator.md", env!("CARGO_MANIFEST_DIR"));
        let docs = std::fs::read_to_string(&path).unwrap();
        let table = docs_table();
        let at = docs
            .find(&table)
            .unwrap_or_else(|| panic!("{path} should list the permissions of `NEEDED` as:\n\n{table}"));
        let (before, after) = (&docs[..at], &docs[at + table.len()..]);
        assert!(!before.ends_with("|\n") && !after.starts_with('|'), "{path}: no other row in that table");
    }

    #[test]
    fn the_table_expands_into_one_permission_per_verb_resource_and_namespace() {
        let all = needed(&[], "manifold-system");
        assert_eq!(all.len(), 25);
        assert_eq!(all[0], permission("get", "manifold.dev", "mcpservers", ""));
        assert_eq!(all.last(), Some(&permission("list", "discovery.k8s.io", "endpointslices", "manifold-system")));
        let watched = needed(&["acme".into(), "globex".into()], "manifold-system");
        assert_eq!(watched.len(), 16 * 2 + 9);
        let namespaces: BTreeSet<&str> = watched.iter().map(|p| p.namespace.as_str()).collect();
        assert_eq!(namespaces, BTreeSet::from(["acme", "globex", "manifold-system"]));
        // The gateways' namespace watched too: each permission once.
        let overlapping = needed(&["manifold-system".into()], "manifold-system");
        assert_eq!(overlapping.len(), 16 + 9 - 2, "list and watch secrets are in both rules");
    }

    #[test]
    fn a_permission_reads_as_kubectl_says_it() {
        let said = [
            permission("patch", "manifold.dev", "mcproutes/status", "acme"),
            permission("create", "events.k8s.io", "events", ""),
            permission("get", "", "secrets", "acme"),
            permission("update", "coordination.k8s.io", "leases", "manifold-system"),
        ]
        .map(|p| p.to_string());
        assert_eq!(
            said,
            [
                "patch mcproutes.manifold.dev/status in namespace acme",
                "create events.events.k8s.io in all namespaces",
                "get secrets in namespace acme",
                "update leases.coordination.k8s.io in namespace manifold-system",
            ]
        );
    }

    #[test]
    fn a_permission_goes_missing_once_comes_back_once_and_a_failed_review_changes_nothing() {
        let (status, events) = (permission("patch", "manifold.dev", "mcproutes/status", "acme"), {
            permission("create", "events.k8s.io", "events", "acme")
        });
        let mut answers = Answers::new(vec![status.clone(), events.clone()]);
        let failed = || Err::<bool, _>("connection refused".to_owned());
        let changes = answers.take(vec![Ok(false), Ok(true)]);
        assert_eq!(changes, Changes { went_missing: vec![status.clone()], ..Changes::default() });
        assert_eq!(answers.missing(), std::slice::from_ref(&status));
        let changes = answers.take(vec![Ok(false), Ok(true)]);
        assert_eq!(changes, Changes::default(), "still missing: said once");
        let changes = answers.take(vec![failed(), failed()]);
        assert_eq!(changes, Changes { failed: Some((2, "connection refused".into())), ..Changes::default() });
        assert_eq!(answers.missing(), std::slice::from_ref(&status), "the last answers stand");
        let changes = answers.take(vec![Ok(true), Ok(false)]);
        assert_eq!(changes, Changes { went_missing: vec![events.clone()], restored: vec![status], failed: None });
        assert_eq!(answers.missing(), [events]);

        let mut unknown = Answers::new(vec![permission("list", "", "secrets", "")]);
        unknown.take(vec![failed()]);
        assert_eq!(unknown.missing(), [], "never answered: not missing");
    }

    #[tokio::test]
    async fn a_review_asks_for_the_verb_group_resource_subresource_and_namespace() {
        const REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews?";
        let answer = |allowed: bool| {
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {},
                "status": {"allowed": allowed}})
        };
        let (client, server) = api_server(vec![
            (Method::POST, REVIEWS.into(), answer(false)),
            (Method::POST, REVIEWS.into(), answer(true)),
        ]);
        let status = allowed(&client, &permission("patch", "manifold.dev", "mcproutes/status", "acme")).await;
        let events = allowed(&client, &permission("create", "events.k8s.io", "events", "")).await;
        assert_eq!((status, events), (Ok(false), Ok(true)));
        let bodies = server.await.unwrap();
        assert_eq!(
            bodies[0]["spec"]["resourceAttributes"],
            json!({"verb": "patch", "group": "manifold.dev", "resource": "mcproutes", "subresource": "status", "namespace": "acme"})
        );
        assert_eq!(
            bodies[1]["spec"]["resourceAttributes"],
            json!({"verb": "create", "group": "events.k8s.io", "resource": "events"}),
            "all namespaces: none named"
        );
    }

    #[tokio::test]
    async fn a_403_is_noticed_and_other_answers_are_not() {
        let (service, mut handle) = tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<_>>();
        let forbidden = Arc::new(Notify::new());
        let noticing = tower::util::MapResponseLayer::new(on_forbidden(Arc::clone(&forbidden))).layer(service);
        let client = Client::new(noticing, "default");
        tokio::spawn(async move {
            for code in [404, 403] {
                let (_, send) = handle.next_request().await.unwrap();
                let status =
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "message": "no"});
                let body = kube::client::Body::from(serde_json::to_vec(&status).unwrap());
                send.send_response(http::Response::builder().status(code).body(body).unwrap());
            }
        });
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "acme");
        assert!(secrets.get("weather").await.is_err());
        assert!(forbidden.notified().now_or_never().is_none(), "a 404 is not a missing permission");
        assert!(secrets.get("weather").await.is_err());
        assert!(forbidden.notified().now_or_never().is_some(), "a 403 is noticed");
    }
}
