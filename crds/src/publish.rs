//! How a compiled [`GatewayConfig`] travels from the operator to the gateways: as Secrets in
//! the gateway's namespace, `<release>-gateway-config` and, past [`MAX_SHARD_BYTES`] of
//! gzipped JSON, `<release>-gateway-config-1`, `-2`... Routes are grouped by tenant
//! namespace, so a change to one tenant rewrites only its shard. Every shard names the
//! generation and hash of the whole config and how many shards make it up; a gateway swaps
//! only once it holds all of them at one generation, and checks the hash of the whole.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, FORMAT, GatewayConfig, RouteConfig};

/// The most gzipped bytes one shard holds (Secrets are limited to 1 MiB in all).
pub const MAX_SHARD_BYTES: usize = 1000 * 1024;
/// The data key holding a shard's gzipped JSON.
pub const DATA_KEY: &str = "config.json.gz";
/// Label on every shard: the release it belongs to (what gateways select on).
pub const RELEASE_LABEL: &str = "manifold.dev/gateway-config";
/// Annotations every shard carries.
pub const GENERATION_ANNOTATION: &str = "manifold.dev/generation";
pub const HASH_ANNOTATION: &str = "manifold.dev/hash";
/// `<index>/<count>`.
pub const SHARD_ANNOTATION: &str = "manifold.dev/shard";
/// The hash of this shard's own bytes: the operator rewrites a shard only when it changes.
pub const SHARD_HASH_ANNOTATION: &str = "manifold.dev/shard-hash";

/// A shard as written: some namespaces' routes.
#[derive(Serialize)]
struct ShardOut<'a> {
    format: u32,
    routes: &'a [&'a RouteConfig],
}

/// A shard as read.
#[derive(Deserialize)]
struct ShardIn {
    format: u32,
    routes: Vec<RouteConfig>,
}

/// A tenant whose routes alone do not fit in one Secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the routes of namespace {namespace} compress to {bytes} bytes, more than one Secret holds ({limit})")]
pub struct TooLarge {
    /// The tenant.
    pub namespace: String,
    /// Its routes, gzipped.
    pub bytes: usize,
    /// What a shard holds.
    pub limit: usize,
}

/// The Secrets that carry `config` for `release` in `namespace`, in shard order.
pub fn secrets(config: &GatewayConfig, release: &str, namespace: &str) -> Result<Vec<Secret>, TooLarge> {
    shard(config, release, namespace, MAX_SHARD_BYTES)
}

fn shard(config: &GatewayConfig, release: &str, namespace: &str, limit: usize) -> Result<Vec<Secret>, TooLarge> {
    let mut by_namespace: BTreeMap<&str, Vec<&RouteConfig>> = BTreeMap::new();
    for route in &config.routes {
        by_namespace.entry(&route.namespace).or_default().push(route);
    }
    // Whole namespaces, packed in namespace order by their size compressed alone (a shard
    // compresses to less than the sum of its parts): stable, so an edit in one tenant leaves
    // the other shards' bytes as they were.
    let mut groups: Vec<Vec<&RouteConfig>> = vec![Vec::new()];
    let mut filled = 0;
    for (tenant, routes) in &by_namespace {
        let size = gzip(routes).len();
        if size > limit {
            return Err(TooLarge { namespace: (*tenant).to_owned(), bytes: size, limit });
        }
        if filled + size > limit && filled > 0 {
            groups.push(Vec::new());
            filled = 0;
        }
        filled += size;
        groups.last_mut().expect("there is a group").extend(routes.iter().copied());
    }
    let count = groups.len();
    Ok(groups
        .iter()
        .map(|routes| gzip(routes))
        .enumerate()
        .map(|(index, data)| {
            let annotations = BTreeMap::from([
                (GENERATION_ANNOTATION.to_owned(), config.generation.to_string()),
                (HASH_ANNOTATION.to_owned(), config.hash.clone()),
                (SHARD_ANNOTATION.to_owned(), format!("{index}/{count}")),
                (SHARD_HASH_ANNOTATION.to_owned(), hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data))),
            ]);
            Secret {
                metadata: ObjectMeta {
                    name: Some(shard_name(release, index)),
                    namespace: Some(namespace.to_owned()),
                    labels: Some(BTreeMap::from([(RELEASE_LABEL.to_owned(), release.to_owned())])),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                },
                type_: Some("Opaque".into()),
                data: Some(BTreeMap::from([(DATA_KEY.to_owned(), ByteString(data))])),
                ..Secret::default()
            }
        })
        .collect())
}

/// The name of shard `index` of `release`.
pub fn shard_name(release: &str, index: usize) -> String {
    if index == 0 { format!("{release}-gateway-config") } else { format!("{release}-gateway-config-{index}") }
}

/// Why a set of Secrets is not (yet) a config to serve.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// No shard at all.
    #[error("no gateway config Secret exists yet")]
    Missing,
    /// Shards of different generations, or some missing: the operator is still writing.
    #[error("the config's shards are incomplete or of different generations ({0}); waiting for the rest")]
    Incomplete(String),
    /// A shard that cannot be read.
    #[error("Secret `{name}`: {why}")]
    Corrupt {
        /// The Secret.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// The assembled config does not match its hash, or is of another format.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The config a complete set of shards carries, checked against its hash.
pub fn assemble<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Result<GatewayConfig, AssembleError> {
    let mut shards: Vec<(usize, usize, u64, String, &'a Secret)> = Vec::new();
    for secret in secrets {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let corrupt = |why: &str| AssembleError::Corrupt { name: name.clone(), why: why.to_owned() };
        let annotation = |key: &str| secret.metadata.annotations.as_ref().and_then(|a| a.get(key));
        let (index, count) = annotation(SHARD_ANNOTATION)
            .and_then(|s| s.split_once('/'))
            .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
            .filter(|(i, n)| i < n)
            .ok_or_else(|| corrupt("annotation manifold.dev/shard is missing or not `<index>/<count>`"))?;
        let generation = annotation(GENERATION_ANNOTATION)
            .and_then(|g| g.parse::<u64>().ok())
            .ok_or_else(|| corrupt("annotation manifold.dev/generation is missing or not a number"))?;
        let hash =
            annotation(HASH_ANNOTATION).cloned().ok_or_else(|| corrupt("annotation manifold.dev/hash is missing"))?;
        shards.push((index, count, generation, hash, secret));
    }
    let first = shards.first().ok_or(AssembleError::Missing)?;
    let (count, generation, hash) = (first.1, first.2, first.3.clone());
    shards.sort_by_key(|s| s.0);
    shards.dedup_by_key(|s| s.0);
    let complete = shards.len() == count
        && shards.iter().enumerate().all(|(i, s)| s.0 == i && s.1 == count && s.2 == generation && s.3 == hash);
    if !complete {
        let seen: Vec<String> = shards.iter().map(|s| format!("{}/{} at generation {}", s.0, s.1, s.2)).collect();
        return Err(AssembleError::Incomplete(seen.join(", ")));
    }
    let mut routes = Vec::new();
    for (_, _, _, _, secret) in shards {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let corrupt = |why: String| AssembleError::Corrupt { name: name.clone(), why };
        let data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(DATA_KEY))
            .ok_or_else(|| corrupt(format!("no `{DATA_KEY}` key")))?;
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&data.0[..])
            .take(MAX_CONFIG_BYTES)
            .read_to_end(&mut json)
            .map_err(|e| corrupt(format!("not gzip: {e}")))?;
        let content: ShardIn =
            serde_json::from_slice(&json).map_err(|e| corrupt(format!("not a config shard: {e}")))?;
        if content.format != FORMAT {
            return Err(ConfigError::Format(content.format).into());
        }
        routes.extend(content.routes);
    }
    routes.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let config = GatewayConfig { format: FORMAT, generation, hash, routes };
    config.verify()?;
    Ok(config)
}

/// The most JSON one shard may inflate to (a guard against a decompression bomb).
const MAX_CONFIG_BYTES: u64 = 512 * 1024 * 1024;

fn gzip(routes: &[&RouteConfig]) -> Vec<u8> {
    let json = serde_json::to_vec(&ShardOut { format: FORMAT, routes }).expect("routes serialize");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&json).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthnConfig, MountConfig, RemoteUpstream, ToolPolicy, Transport, Upstream};

    fn route(namespace: &str, name: &str) -> RouteConfig {
        RouteConfig {
            namespace: namespace.into(),
            name: name.into(),
            path: format!("/{namespace}/{name}/mcp"),
            hostnames: vec![],
            allowed_origins: vec![],
            mounts: vec![MountConfig {
                server: "weather".into(),
                prefix: "weather".into(),
                tools: ToolPolicy::default(),
                upstream: Upstream::Remote(RemoteUpstream {
                    url: format!("http://weather.{namespace}.svc:8080/mcp"),
                    transport: Transport::StreamableHttp,
                    headers: vec![],
                    auth: None,
                    timeout_ms: 30_000,
                    resilience: Default::default(),
                }),
            }],
            authentication: AuthnConfig { allow_anonymous: true, ..AuthnConfig::default() },
            authorization: None,
            audit_arguments: false,
            rate_limits: vec![],
            caching: Default::default(),
            resilience: Default::default(),
            compatibility: None,
        }
    }

    fn config(tenants: usize) -> GatewayConfig {
        let routes = (0..tenants).flat_map(|t| [route(&format!("t{t:04}"), "a"), route(&format!("t{t:04}"), "b")]);
        GatewayConfig::new(routes.collect(), None)
    }

    #[test]
    fn a_config_travels_in_one_secret_and_back() {
        let config = config(3);
        let secrets = secrets(&config, "manifold", "manifold-system").unwrap();
        assert_eq!(secrets.len(), 1);
        let secret = &secrets[0];
        assert_eq!(secret.metadata.name.as_deref(), Some("manifold-gateway-config"));
        let annotations = secret.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations[SHARD_ANNOTATION], "0/1");
        assert_eq!(annotations[GENERATION_ANNOTATION], "1");
        assert_eq!(annotations[HASH_ANNOTATION], config.hash);
        assert_eq!(assemble(&secrets).unwrap(), config);
    }

    #[test]
    fn large_configs_shard_by_namespace_and_reassemble() {
        let config = config(200);
        let shards = shard(&config, "manifold", "ns", 2048).unwrap();
        assert!(shards.len() > 3, "{} shards", shards.len());
        for (i, secret) in shards.iter().enumerate() {
            assert_eq!(secret.metadata.name.as_deref().unwrap(), shard_name("manifold", i));
            assert!(secret.data.as_ref().unwrap()[DATA_KEY].0.len() <= 2048);
        }
        // In any order.
        let reversed: Vec<&Secret> = shards.iter().rev().collect();
        assert_eq!(assemble(reversed).unwrap(), config);
        // An edit in the last tenant rewrites only the last shard.
        let mut edited = config.clone();
        edited.routes.last_mut().unwrap().path = "/elsewhere".into();
        let edited = GatewayConfig::new(edited.routes, Some(&config));
        let again = shard(&edited, "manifold", "ns", 2048).unwrap();
        let bytes = |s: &Secret| s.data.as_ref().unwrap()[DATA_KEY].0.clone();
        let changed = shards.iter().zip(&again).filter(|(a, b)| bytes(a) != bytes(b)).count();
        assert_eq!(changed, 1);
        let one_tenant = shard(&config, "manifold", "ns", 100).unwrap_err();
        assert_eq!((one_tenant.namespace.as_str(), one_tenant.limit), ("t0000", 100));
        assert!(one_tenant.to_string().starts_with("the routes of namespace t0000 compress to "), "{one_tenant}");
    }

    #[test]
    fn partial_mixed_and_corrupt_shards_are_not_served() {
        let config = config(200);
        let shards = shard(&config, "manifold", "ns", 2048).unwrap();
        assert!(matches!(assemble(&shards[1..]), Err(AssembleError::Incomplete(_))), "a shard missing");
        assert!(matches!(assemble([]), Err(AssembleError::Missing)));
        let newer = GatewayConfig::new(config.routes[1..].to_vec(), Some(&config));
        let mut mixed = shard(&newer, "manifold", "ns", 2048).unwrap();
        mixed[0] = shards[0].clone();
        assert!(matches!(assemble(&mixed), Err(AssembleError::Incomplete(_))), "two generations");

        let mut garbled = shards.clone();
        garbled[1].data.as_mut().unwrap().insert(DATA_KEY.into(), ByteString(b"not gzip".to_vec()));
        let error = assemble(&garbled).unwrap_err().to_string();
        assert!(error.starts_with("Secret `manifold-gateway-config-1`: not gzip"), "{error}");

        let mut forged = shards.clone();
        for secret in &mut forged {
            secret.metadata.annotations.as_mut().unwrap().insert(HASH_ANNOTATION.into(), "0".repeat(64));
        }
        assert!(matches!(assemble(&forged), Err(AssembleError::Config(ConfigError::Hash { .. }))), "hash checked");
    }
}
