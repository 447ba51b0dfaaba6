//! Publishing: a compiled config's shards in, the gateway-config Secrets out, written with
//! server-side apply. Only shards whose bytes changed are applied (each carries the hash of its own
//! bytes), and shards past the new count are deleted, so an unchanged world costs no write
//! and an edit in one tenant rewrites one shard.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use manifold_api::publish::{
    GENERATION_ANNOTATION, RELEASE_LABEL, SHARD_ANNOTATION, SHARD_HASH_ANNOTATION, shard_name,
};

use crate::leader::Leadership;

/// The field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "manifold-operator";

/// What a publish did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Shards applied (new or changed).
    pub applied: usize,
    /// Shards left as they were.
    pub unchanged: usize,
    /// Shards deleted (the config needs fewer than before).
    pub deleted: usize,
    /// Gzipped bytes of all shards.
    pub bytes: usize,
}

/// Why a reconcile stopped before it was done.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// This replica lost the Lease: another one writes now.
    #[error("this replica no longer leads")]
    NotLeading,
    /// The API server refused or could not be reached.
    #[error("talking to the API server: {0}")]
    Api(#[from] kube::Error),
}

/// Runs `write` while this replica leads: refused once it no longer does, and abandoned
/// when its term ends (another replica may write from then on). A slow write goes on while
/// the term is renewed: only the end of the term stops it.
pub async fn while_leading<T>(
    leadership: &Leadership,
    write: impl Future<Output = kube::Result<T>>,
) -> Result<T, PublishError> {
    tokio::pin!(write);
    loop {
        let left = leadership.remaining().ok_or(PublishError::NotLeading)?;
        if let Ok(written) = tokio::time::timeout(left, &mut write).await {
            return Ok(written?);
        }
    }
}

/// What tells one published shard from another: its bytes, its place in the set, and its
/// generation (None when an annotation is missing).
pub fn fingerprint(annotations: &BTreeMap<String, String>) -> Option<String> {
    let [bytes, place, generation] =
        [SHARD_HASH_ANNOTATION, SHARD_ANNOTATION, GENERATION_ANNOTATION].map(|key| annotations.get(key));
    Some(format!("{}@{} of generation {}", bytes?, place?, generation?))
}

/// Publishes the shards `wanted` (in order) for `release` through `api` (namespaced to the
/// gateway's namespace), while `leadership` holds. `shards` is kept up to date with the
/// fingerprint of each shard there, even when a write fails part way.
pub async fn publish(
    api: &Api<Secret>,
    release: &str,
    wanted: &[Secret],
    leadership: &Leadership,
    shards: &mut BTreeMap<String, String>,
) -> Result<Published, PublishError> {
    let selector = format!("{RELEASE_LABEL}={release}");
    let existing = api.list_metadata(&ListParams::default().labels(&selector)).await?;
    *shards = existing
        .items
        .iter()
        .filter_map(|s| Some((s.metadata.name.clone()?, fingerprint(s.metadata.annotations.as_ref()?)?)))
        .collect();
    let mut published = Published::default();
    for secret in wanted {
        let name = secret.metadata.name.clone().expect("shards are named");
        published.bytes += secret.data.as_ref().map_or(0, |d| d.values().map(|v| v.0.len()).sum());
        let wanted = fingerprint(secret.metadata.annotations.as_ref().expect("shards are annotated"));
        // Same bytes, same place in the set, same generation: nothing to write.
        if shards.get(&name) == wanted.as_ref() {
            published.unchanged += 1;
            continue;
        }
        // k8s-openapi writes `apiVersion` and `kind`, as an apply patch needs.
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let patch = Patch::Apply(secret);
        while_leading(leadership, api.patch(&name, &params, &patch)).await?;
        shards.extend(wanted.map(|fingerprint| (name, fingerprint)));
        published.applied += 1;
    }
    // Shards of a larger config before: gone, last first (a gateway never sees a gap).
    let mut stale: Vec<String> = existing
        .items
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .filter(|name| !(0..wanted.len()).any(|i| shard_name(release, i) == *name))
        .collect();
    stale.sort();
    for name in stale.iter().rev() {
        while_leading(leadership, api.delete(name, &DeleteParams::default())).await?;
        shards.remove(name);
        published.deleted += 1;
    }
    Ok(published)
}

#[cfg(test)]
mod tests {
    use http::Method;
    use manifold_api::GatewayConfig;
    use manifold_api::config::{AuthnConfig, RouteConfig};
    use manifold_api::publish::secrets;
    use serde_json::json;

    use super::*;

    fn config(tenants: &[&str]) -> GatewayConfig {
        let routes = tenants
            .iter()
            .map(|t| RouteConfig {
                namespace: (*t).into(),
                name: "r".into(),
                path: format!("/{t}/r/mcp"),
                hostnames: vec![],
                allowed_origins: vec![],
                mounts: vec![],
                authentication: AuthnConfig { allow_anonymous: true, ..AuthnConfig::default() },
                authorization: None,
                audit_arguments: false,
                rate_limits: vec![],
                caching: Default::default(),
                resilience: Default::default(),
                compatibility: None,
            })
            .collect();
        GatewayConfig::new(routes, None)
    }

    /// Runs `publish` against a mock API server that expects exactly `exchanges`.
    async fn run(
        config: &GatewayConfig,
        exchanges: Vec<(Method, &str, serde_json::Value)>,
    ) -> (Published, Vec<serde_json::Value>) {
        let exchanges = exchanges.into_iter().map(|(m, u, a)| (m, u.to_owned(), a)).collect();
        let (client, server) = crate::testing::api_server(exchanges);
        let api: Api<Secret> = Api::namespaced(client, "manifold-system");
        let shards = secrets(config, "manifold", "manifold-system").unwrap();
        let published = publish(&api, "manifold", &shards, &Leadership::always(), &mut BTreeMap::new()).await.unwrap();
        (published, server.await.unwrap())
    }

    const LIST: &str =
        "/api/v1/namespaces/manifold-system/secrets?&labelSelector=manifold.dev%2Fgateway-config%3Dmanifold";
    const APPLY: &str =
        "/api/v1/namespaces/manifold-system/secrets/manifold-gateway-config?&force=true&fieldManager=manifold-operator";

    fn list(items: Vec<serde_json::Value>) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "SecretList", "metadata": {"resourceVersion": "1"}, "items": items})
    }

    fn as_listed(secret: &Secret) -> serde_json::Value {
        json!({"metadata": {"name": secret.metadata.name, "annotations": secret.metadata.annotations}})
    }

    #[tokio::test]
    async fn a_new_config_is_applied_once() {
        let config = config(&["acme"]);
        let (published, bodies) =
            run(&config, vec![(Method::GET, LIST, list(vec![])), (Method::PATCH, APPLY, json!({}))]).await;
        assert_eq!(published.applied, 1);
        let applied = &bodies[1];
        assert_eq!((applied["apiVersion"].as_str(), applied["kind"].as_str()), (Some("v1"), Some("Secret")));
        assert_eq!(applied["metadata"]["labels"]["manifold.dev/gateway-config"], "manifold");
        assert_eq!(applied["metadata"]["annotations"]["manifold.dev/generation"], "1");
        assert_eq!(applied["metadata"]["annotations"]["manifold.dev/hash"], config.hash);
    }

    #[tokio::test]
    async fn an_unchanged_config_is_not_written() {
        let config = config(&["acme"]);
        let current = secrets(&config, "manifold", "manifold-system").unwrap();
        let listed = list(current.iter().map(as_listed).collect());
        let (published, _) = run(&config, vec![(Method::GET, LIST, listed)]).await;
        assert_eq!(published, Published { applied: 0, unchanged: 1, deleted: 0, bytes: published.bytes });
    }

    #[tokio::test]
    async fn a_changed_config_is_applied_and_extra_shards_deleted() {
        let before = config(&["acme"]);
        let mut listed: Vec<serde_json::Value> =
            secrets(&before, "manifold", "manifold-system").unwrap().iter().map(as_listed).collect();
        // A shard left from a larger config.
        listed.push(json!({"metadata": {"name": "manifold-gateway-config-1", "annotations": {}}}));
        let after = config(&["acme", "globex"]);
        let delete = "/api/v1/namespaces/manifold-system/secrets/manifold-gateway-config-1?";
        let (published, _) = run(
            &after,
            vec![
                (Method::GET, LIST, list(listed)),
                (Method::PATCH, APPLY, json!({})),
                (Method::DELETE, delete, json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
            ],
        )
        .await;
        assert_eq!((published.applied, published.deleted), (1, 1));
    }
}
