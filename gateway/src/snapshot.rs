//! An immutable, ready-to-serve view of one `GatewayConfig`: routes indexed by path, tool
//! matchers compiled, upstream clients built. Requests load it lock-free; a reload swaps the
//! whole snapshot, and in-flight requests finish on the one they started with.

use std::collections::HashMap;
use std::sync::Arc;

use manifold_api::GatewayConfig;
use manifold_api::config::{MountConfig, RouteConfig, ToolMatcher, Upstream, wildcard_covers};

use crate::access::{self, Access};
use crate::policy::cache::Rules;
use crate::policy::limits::Limits;
use crate::policy::resilience::cap::Cap;
use crate::upstream::UpstreamClient;
use crate::upstream::identity::{Place, Tokens};

/// Everything served at one config generation.
pub struct Snapshot {
    pub config: Arc<GatewayConfig>,
    by_path: HashMap<String, Vec<Arc<Route>>>,
}

/// One route, ready to serve.
pub struct Route {
    pub config: RouteConfig,
    pub mounts: Vec<Mount>,
    /// Who may call, and what they may do.
    pub access: Access,
    /// The rate limits requests meet after access control.
    pub limits: Limits,
    /// Which tool results and lists are kept, met after the limits.
    pub caching: Rules,
    /// The route's cap on requests in flight, met before a request's body is read.
    pub cap: Option<Cap>,
}

/// One mounted sub-server.
pub struct Mount {
    /// Names this mount within its route (prefix and server), across reloads.
    pub key: Arc<str>,
    pub config: MountConfig,
    pub matcher: ToolMatcher,
    pub client: Arc<UpstreamClient>,
}

/// Upstream clients by tenant and upstream, reused across reloads so connection pools and
/// (through their ids) client sessions' upstream sessions survive unrelated config changes;
/// likewise fetched JWT key sets.
#[derive(Default)]
pub struct ClientPool {
    upstreams: HashMap<ClientKey, Arc<UpstreamClient>>,
    key_sets: access::keys::Pool,
    /// Where upstreams, OpenAPI sub-servers, key sets and decision services may be called.
    egress: manifold_runtime::egress::Egress,
    /// Where per-user upstream tokens are kept; none: mounts with per-user tokens are not built.
    tokens: Option<Arc<Tokens>>,
}

/// A client's tenant, McpServer name and upstream config. The name counts only for upstreams
/// that obtain credentials: those keep tokens under it.
type ClientKey = (String, String, Upstream);

impl ClientPool {
    /// A pool whose clients connect only where `egress` allows, and keep per-user tokens in
    /// `tokens`.
    pub fn new(egress: manifold_runtime::egress::Egress, tokens: Arc<Tokens>) -> Self {
        let mut key_sets = access::keys::Pool::default();
        key_sets.egress = egress;
        ClientPool { upstreams: HashMap::new(), key_sets, egress, tokens: Some(tokens) }
    }
}

impl Snapshot {
    /// Nothing to serve yet.
    pub fn empty() -> Self {
        Snapshot { config: Arc::new(GatewayConfig::default()), by_path: HashMap::new() }
    }

    /// Builds a snapshot, reusing the pool's clients where the upstream is unchanged. A route
    /// the gateway cannot build (compile should have refused it) is left out and reported;
    /// it never keeps the other routes from being served.
    pub fn build(config: GatewayConfig, pool: &mut ClientPool) -> (Self, Vec<String>) {
        let mut next = HashMap::new();
        let mut by_path: HashMap<String, Vec<Arc<Route>>> = HashMap::new();
        let mut errors = Vec::new();
        for route in &config.routes {
            match Route::build(route, pool, &mut next, &mut errors) {
                Ok(route) => by_path.entry(route.config.path.clone()).or_default().push(Arc::new(route)),
                Err(error) => {
                    errors.push(format!("McpRoute {}/{} is not served: {error}", route.namespace, route.name))
                }
            }
        }
        pool.upstreams = next;
        pool.key_sets.finish();
        (Snapshot { config: Arc::new(config), by_path }, errors)
    }

    /// Every route.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.by_path.values().flatten()
    }

    /// A route by namespace and name.
    pub fn route_named(&self, namespace: &str, name: &str) -> Option<&Arc<Route>> {
        self.by_path.values().flatten().find(|r| r.config.namespace == namespace && r.config.name == name)
    }

    /// The route serving `path` for `host` (port stripped, lowercase): an exact host name
    /// first, then a `*.` wildcard, then a route for any host.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        let candidates = self.by_path.get(path)?;
        let host = host.unwrap_or("");
        let serves =
            |matches: &dyn Fn(&str) -> bool| candidates.iter().find(|r| r.config.hostnames.iter().any(|h| matches(h)));
        serves(&|pattern| pattern == host)
            .or_else(|| serves(&|pattern| wildcard_covers(pattern, host)))
            .or_else(|| candidates.iter().find(|r| r.config.hostnames.is_empty()))
    }
}

impl Route {
    fn build(
        route: &RouteConfig,
        pool: &mut ClientPool,
        next: &mut HashMap<ClientKey, Arc<UpstreamClient>>,
        errors: &mut Vec<String>,
    ) -> Result<Self, String> {
        let mut mounts = Vec::with_capacity(route.mounts.len());
        for mount in &route.mounts {
            let named = if mount.upstream.auth().is_some() { mount.server.clone() } else { String::new() };
            let key = (route.namespace.clone(), named, mount.upstream.clone());
            let place = pool.tokens.as_ref().map(|tokens| Place {
                namespace: &route.namespace,
                route: &route.name,
                server: &mount.server,
                tokens,
            });
            let client = match pool.upstreams.get(&key).or_else(|| next.get(&key)) {
                Some(client) => Arc::clone(client),
                None => match UpstreamClient::new(&mount.upstream, pool.egress, place.as_ref()) {
                    Ok(client) => Arc::new(client),
                    Err(error) => {
                        // This mount only: the route's others go on.
                        errors.push(format!(
                            "route {}/{} mount `{}`: {error}",
                            route.namespace, route.name, mount.server
                        ));
                        continue;
                    }
                },
            };
            let matcher = mount.tools.matcher().map_err(|e| format!("mount `{}`: {e}", mount.server))?;
            next.insert(key, Arc::clone(&client));
            let key = Arc::from(format!("{}~{}", mount.prefix, mount.server));
            mounts.push(Mount { key, config: mount.clone(), matcher, client });
        }
        let access = Access::build(route, &mut pool.key_sets)?;
        let limits = Limits::build(route)?;
        let caching = Rules::build(route)?;
        let cap = route.resilience.concurrency.as_ref().map(Cap::new);
        Ok(Route { config: route.clone(), mounts, access, limits, caching, cap })
    }

    /// `namespace/name`, for logs.
    pub fn id(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.name)
    }
}

#[cfg(test)]
mod tests {
    use manifold_api::config::{RemoteUpstream, ToolPolicy, Transport};

    use super::*;

    fn route(name: &str, path: &str, hostnames: &[&str], prefixes: &[&str]) -> RouteConfig {
        let upstream = Upstream::Remote(RemoteUpstream {
            url: "http://127.0.0.1:1/mcp".into(),
            transport: Transport::StreamableHttp,
            headers: vec![],
            auth: None,
            timeout_ms: 1000,
            resilience: Default::default(),
        });
        RouteConfig {
            namespace: "acme".into(),
            name: name.into(),
            path: path.into(),
            hostnames: hostnames.iter().map(|h| (*h).into()).collect(),
            allowed_origins: vec![],
            mounts: prefixes
                .iter()
                .map(|p| MountConfig {
                    server: format!("server-{p}"),
                    prefix: (*p).into(),
                    tools: ToolPolicy::default(),
                    upstream: upstream.clone(),
                })
                .collect(),
            authentication: manifold_api::config::AuthnConfig { allow_anonymous: true, ..Default::default() },
            authorization: None,
            audit_arguments: false,
            rate_limits: vec![],
            caching: Default::default(),
            resilience: Default::default(),
            compatibility: None,
        }
    }

    fn snapshot(routes: Vec<RouteConfig>) -> Snapshot {
        let (snapshot, errors) = Snapshot::build(GatewayConfig::new(routes, None), &mut ClientPool::default());
        assert!(errors.is_empty(), "{errors:?}");
        snapshot
    }

    #[test]
    fn picks_exact_host_then_wildcard_then_any_host() {
        let s = snapshot(vec![
            route("any", "/mcp", &[], &["a"]),
            route("exact", "/mcp", &["api.example.com"], &["b"]),
            route("wild", "/mcp", &["*.example.com"], &["c"]),
        ]);
        let name = |host: Option<&str>| s.route(host, "/mcp").map(|r| r.config.name.clone());
        assert_eq!(name(Some("api.example.com")).as_deref(), Some("exact"));
        assert_eq!(name(Some("web.example.com")).as_deref(), Some("wild"));
        assert_eq!(name(Some("deep.web.example.com")).as_deref(), Some("any"), "a wildcard covers one label");
        assert_eq!(name(Some("other.org")).as_deref(), Some("any"));
        assert_eq!(name(None).as_deref(), Some("any"));
        assert!(s.route(Some("api.example.com"), "/other").is_none());
    }

    #[test]
    fn resolves_tool_names_by_prefix_and_mount_order() {
        use crate::protocol::Kind::Tool;
        let s = snapshot(vec![route("r", "/mcp", &[], &["a", "", "b"])]);
        let r = s.route(None, "/mcp").unwrap();
        let candidates = |name| -> Vec<(usize, String)> {
            r.candidates(Tool, name).into_iter().map(|(i, n)| (i, n.into_owned())).collect()
        };
        let owned = |list: &[(usize, &str)]| list.iter().map(|&(i, n)| (i, n.to_owned())).collect::<Vec<_>>();
        assert_eq!(candidates("a_search"), owned(&[(0, "search"), (1, "a_search")]), "mount order decides");
        assert_eq!(candidates("b_x"), owned(&[(1, "b_x"), (2, "x")]));
        assert_eq!(candidates("plain"), owned(&[(1, "plain")]));
        assert_eq!(candidates("zz_top"), owned(&[(1, "zz_top")]), "an unknown prefix can only be unprefixed");
    }
}
