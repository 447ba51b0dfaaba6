//! Compiles McpRoutes: checks each against the servers of its own namespace, gives each
//! (host, path) to the oldest route claiming it, and keeps serving the last valid version
//! of a route that has become invalid, so a bad edit never takes a working endpoint down.
//! A mounted server that is itself unusable costs the route only that mount (served in its
//! last valid version when there is one): the other mounts go on. So does a server whose
//! credential is made from the caller's JWT, on a route that takes no JWT.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use regex::Regex;

use super::{Inputs, ServerState, name_of, namespace_of, secrets};
use crate::compat::{self, Provider};
use crate::config::{
    CachingConfig, CompatibilityConfig, GatewayConfig, MountConfig, OutboundAuth, RateLimitConfig, ResultCacheConfig,
    RouteConfig, ToolPolicy, prefixed, wildcard_covers,
};
use crate::key::ObjectKey;
use crate::outcome::{Kind, ObjectRef, Outcome, Problem, Serving, Verdict, condition, reason, verdict};
use crate::resources::{
    CacheScope, Caching, IncompatibleToolNames, McpRoute, McpRouteSpec, PREFIX_PATTERN, RateLimit, TOOL_NAME_PATTERN,
};

const MAX_MOUNTS: usize = 64;
const MAX_PATH: usize = 256;

static PREFIX: LazyLock<Regex> = LazyLock::new(|| Regex::new(PREFIX_PATTERN).expect("valid regex"));
static TOOL_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(TOOL_NAME_PATTERN).expect("valid regex"));
static DNS_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").expect("valid regex")
});
/// A DNS name, or `*.` and a name of at least two labels (`*.com` would claim a whole TLD).
static HOSTNAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(crate::resources::HOSTNAME_PATTERN).expect("valid regex"));

/// A browser origin: scheme and host (and port), nothing after.
static ORIGIN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^https?://[^/?# ]+$").expect("valid regex"));

/// What checking one route found.
struct Checked {
    config: Option<RouteConfig>,
    path: Option<String>,
    invalid: Vec<Problem>,
    collisions: Vec<Problem>,
    refs: Vec<Problem>,
    refs_reason: &'static str,
    /// Mounts whose server is unusable: left out (or kept at their last valid version)
    /// while the rest of the route is served.
    degraded: Vec<Problem>,
    /// False when the spec could not be read, so its references are unknown.
    refs_checked: bool,
    /// What the compatibility profile does to the route's tools, for its status.
    compatible: Vec<Verdict>,
}

struct Candidate {
    object: ObjectRef,
    generation: Option<i64>,
    created: Option<Time>,
    checked: Checked,
}

pub(super) fn compile_all(
    inputs: &Inputs,
    servers: &BTreeMap<ObjectKey, ServerState>,
    discovered: &BTreeMap<ObjectKey, Vec<String>>,
    previous: Option<&GatewayConfig>,
) -> (Vec<RouteConfig>, Vec<Outcome>) {
    let secrets = secrets::Index::new(&inputs.secrets);
    let mut candidates: Vec<Candidate> = inputs
        .routes
        .iter()
        .map(|route| Candidate {
            object: ObjectRef {
                kind: Kind::McpRoute,
                namespace: namespace_of(&route.metadata),
                name: name_of(&route.metadata),
            },
            generation: route.metadata.generation,
            created: route.metadata.creation_timestamp.clone(),
            checked: check(route, servers, discovered, &secrets, previous),
        })
        .collect();
    candidates.extend(inputs.unreadable.iter().filter(|u| u.object.kind == Kind::McpRoute).map(|bad| Candidate {
        object: bad.object.clone(),
        generation: bad.generation,
        created: None,
        checked: Checked {
            config: None,
            path: None,
            invalid: vec![bad.problem.clone()],
            collisions: vec![],
            refs: vec![],
            refs_reason: reason::REF_NOT_FOUND,
            degraded: vec![],
            refs_checked: false,
            compatible: vec![],
        },
    }));
    // Who wins a contested (host, path), in order: a route at its own default path (nobody
    // else can take `/<namespace>/<name>/mcp`); the route already serving it (ownership is
    // stable across reloads); the oldest; then by namespace and name (local mode has no
    // timestamps).
    let served_before: HashMap<(&str, &str), &RouteConfig> = previous
        .map(|p| p.routes.iter().map(|r| ((r.namespace.as_str(), r.name.as_str()), r)).collect())
        .unwrap_or_default();
    // What each candidate would serve: this version, else its last valid one.
    let mut candidates: Vec<(Candidate, Option<RouteConfig>, Serving)> = candidates
        .into_iter()
        .map(|c| {
            let before = served_before.get(&(c.object.namespace.as_str(), c.object.name.as_str())).copied().cloned();
            match (c.checked.config.clone(), before) {
                (Some(config), _) => (c, Some(config), Serving::Current),
                (None, Some(before)) => (c, Some(before), Serving::LastValid),
                (None, None) => (c, None, Serving::Nothing),
            }
        })
        .collect();
    // Who wins a contested (host, path), in order: a route at its own default path (nobody
    // else can have `/<namespace>/<name>/mcp`: custom paths of that shape are refused); the
    // route already serving that path for at least these hosts (ownership is stable across
    // reloads); the oldest, a route without a timestamp counting as newest; then by
    // namespace and name (local mode has no timestamps).
    let precedence = |(c, served, _): &(Candidate, Option<RouteConfig>, Serving)| {
        let path = served.as_ref().map(|r| r.path.as_str());
        let default = path == Some(default_path(&c.object.namespace, &c.object.name).as_str());
        let before = served_before.get(&(c.object.namespace.as_str(), c.object.name.as_str()));
        let serving = match (served, before) {
            (Some(now), Some(before)) => {
                let hosts_before = host_patterns(before);
                now.path == before.path && host_patterns(now).iter().all(|h| hosts_before.contains(h))
            }
            _ => false,
        };
        (!default, !serving, c.created.is_none(), c.created.clone(), c.object.clone())
    };
    candidates.sort_by_cached_key(precedence);

    let mut claims: Vec<(String, String, ObjectRef)> = Vec::new();
    let mut routes = Vec::new();
    let mut outcomes = Vec::new();
    for (candidate, mut served, mut serving) in candidates {
        let Candidate { object, generation, checked, .. } = candidate;
        let mut conflicts = Vec::new();
        if let Some(route) = &served
            && let Some(problem) = conflict(&claims, route, &object)
        {
            conflicts.push(problem);
            // A new version that conflicts falls back to the last valid one, if that one fits.
            let fallback = (serving == Serving::Current)
                .then(|| served_before.get(&(object.namespace.as_str(), object.name.as_str())).copied())
                .flatten()
                .filter(|before| conflict(&claims, before, &object).is_none());
            (served, serving) = match fallback {
                Some(before) => (Some(before.clone()), Serving::LastValid),
                None => (None, Serving::Nothing),
            };
        }
        if let Some(route) = &served {
            claims.extend(host_patterns(route).into_iter().map(|host| (host, route.path.clone(), object.clone())));
        }

        let accepted_failure = [
            (reason::INVALID, &checked.invalid),
            (reason::NAME_COLLISION, &checked.collisions),
            (reason::PATH_CONFLICT, &conflicts),
        ]
        .into_iter()
        .find(|(_, problems)| !problems.is_empty())
        .map(|(reason, problems)| (reason, problems.as_slice()));
        let mut conditions = vec![verdict(
            condition::ACCEPTED,
            reason::ACCEPTED,
            accepted_failure,
            "route is valid and its path is free",
        )];
        if checked.refs_checked {
            let unresolved: Vec<Problem> = checked.refs.iter().chain(&checked.degraded).cloned().collect();
            let reason = if checked.refs.is_empty() { reason::REF_NOT_READY } else { checked.refs_reason };
            conditions.push(verdict(
                condition::RESOLVED_REFS,
                reason::RESOLVED_REFS,
                Some((reason, &unresolved)),
                "all mounted McpServers are usable",
            ));
        }
        if serving == Serving::Current {
            conditions.extend(checked.compatible.iter().cloned());
        }
        if serving == Serving::LastValid {
            for c in conditions.iter_mut().filter(|c| !c.status) {
                c.message.push_str(" (the last valid version of this route is still served)");
            }
        }
        outcomes.push(Outcome { object, generation, conditions, path: checked.path, serving });
        routes.extend(served);
    }
    routes.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    (routes, outcomes)
}

fn default_path(namespace: &str, name: &str) -> String {
    format!("/{namespace}/{name}/mcp")
}

/// The namespace whose default route paths `path` looks like (`/<namespace>/<name>/mcp`).
fn default_shaped(path: &str) -> Option<&str> {
    let mut segments = path.strip_prefix('/')?.split('/');
    let (namespace, name, mcp) = (segments.next()?, segments.next()?, segments.next()?);
    (segments.next().is_none() && mcp == "mcp" && DNS_SUBDOMAIN.is_match(namespace) && DNS_SUBDOMAIN.is_match(name))
        .then_some(namespace)
}

/// The host patterns a route serves; `*` stands for "any host".
fn host_patterns(route: &RouteConfig) -> Vec<String> {
    if route.hostnames.is_empty() { vec!["*".into()] } else { route.hostnames.clone() }
}

/// Whether some request Host could match both patterns. Across namespaces an overlap is a
/// conflict (a host name overlaps "any host"): otherwise a tenant could take another's path
/// for one host name. Within a namespace, a host-specific route beside the tenant's own
/// any-host route is an override the tenant chose.
fn hosts_overlap(a: &str, b: &str) -> bool {
    a == "*" || b == "*" || a == b || wildcard_covers(a, b) || wildcard_covers(b, a)
}

/// Why `route` cannot have its (host, path), if a route claimed earlier holds it.
fn conflict(claims: &[(String, String, ObjectRef)], route: &RouteConfig, object: &ObjectRef) -> Option<Problem> {
    let hosts = host_patterns(route);
    let (host, _, owner) = claims.iter().find(|(host, path, owner)| {
        *path == route.path
            && hosts
                .iter()
                .any(|mine| mine == host || (owner.namespace != object.namespace && hosts_overlap(mine, host)))
    })?;
    Some(Problem::new("spec.path", conflict_message(route, host, object, owner)))
}

/// Names the route holding the path only when it is of the same tenant: tenants never learn
/// each other's names.
fn conflict_message(route: &RouteConfig, host: &str, object: &ObjectRef, owner: &ObjectRef) -> String {
    let at =
        if host == "*" { format!("path `{}`", route.path) } else { format!("path `{}` (host `{host}`)", route.path) };
    if owner.namespace == object.namespace {
        format!("{at} is already served by McpRoute {}/{}", owner.namespace, owner.name)
    } else {
        format!("{at} is already served by a route of another namespace")
    }
}

fn check(
    route: &McpRoute,
    servers: &BTreeMap<ObjectKey, ServerState>,
    discovered: &BTreeMap<ObjectKey, Vec<String>>,
    secrets: &secrets::Index,
    previous: Option<&GatewayConfig>,
) -> Checked {
    let namespace = namespace_of(&route.metadata);
    let name = name_of(&route.metadata);
    let served_before = previous.and_then(|p| p.routes.iter().find(|r| r.namespace == namespace && r.name == name));
    let mut degraded = Vec::new();
    let spec = &route.spec;
    let mut invalid = Vec::new();
    let mut refs = Vec::new();
    let mut refs_reason = reason::REF_NOT_READY;

    let path = spec.path.clone().unwrap_or_else(|| default_path(&namespace, &name));
    if let Err(why) = check_path(&path) {
        invalid.push(Problem::new("spec.path", why));
    } else if let Some(other) = default_shaped(&path).filter(|ns| *ns != namespace) {
        invalid.push(Problem::new(
            "spec.path",
            format!("paths of the form /{other}/<name>/mcp are the default paths of namespace {other}'s routes"),
        ));
    }
    for (i, host) in spec.hostnames.iter().enumerate() {
        if !HOSTNAME.is_match(host) || host.len() > 253 {
            invalid.push(Problem::new(
                format!("spec.hostnames[{i}]"),
                format!("`{host}` is not a lowercase DNS name (or `*.` and a name of at least two labels)"),
            ));
        }
    }
    for (i, origin) in spec.allowed_origins.iter().enumerate() {
        if !(origin == "*" || ORIGIN.is_match(origin)) || origin.len() > 253 {
            invalid.push(Problem::new(
                format!("spec.allowedOrigins[{i}]"),
                format!("`{origin}` is not `*` or a scheme and host such as https://app.example.com"),
            ));
        }
    }
    if spec.mounts.is_empty() {
        invalid.push(Problem::new("spec.mounts", "mounts must list at least one McpServer"));
    } else if spec.mounts.len() > MAX_MOUNTS {
        invalid.push(Problem::new("spec.mounts", format!("at most {MAX_MOUNTS} mounts are allowed")));
    }

    // A mount whose credential is made from the caller's JWT needs a route that takes JWTs.
    let takes_jwts = spec.authentication.as_ref().is_some_and(|a| !a.jwt.is_empty());
    let mut prefixes: HashMap<&str, usize> = HashMap::new();
    let mut mounts = Vec::with_capacity(spec.mounts.len());
    for (i, mount) in spec.mounts.iter().enumerate() {
        let field = format!("spec.mounts[{i}]");
        if !DNS_SUBDOMAIN.is_match(&mount.server) || mount.server.len() > 253 {
            invalid.push(Problem::new(
                format!("{field}.server"),
                format!("`{}` is not a valid McpServer name", mount.server),
            ));
            continue;
        }
        let prefix = mount.prefix.as_deref().unwrap_or(&mount.server);
        if !prefix.is_empty() {
            if !PREFIX.is_match(prefix) || prefix.len() > 63 {
                let why = if mount.prefix.is_some() {
                    format!("prefix `{prefix}` must be a lowercase RFC 1123 label (letters, digits, '-'; at most 63)")
                } else {
                    format!("the server name `{prefix}` is not a valid prefix; set {field}.prefix explicitly")
                };
                invalid.push(Problem::new(format!("{field}.prefix"), why));
            } else if let Some(first) = prefixes.insert(prefix, i) {
                invalid.push(Problem::new(
                    format!("{field}.prefix"),
                    format!("prefix `{prefix}` is already used by spec.mounts[{first}]"),
                ));
            }
        }
        let policy = ToolPolicy {
            include: mount.tools.as_ref().map(|t| t.include.clone()).unwrap_or_default(),
            exclude: mount.tools.as_ref().map(|t| t.exclude.clone()).unwrap_or_default(),
            rename: mount.rename.clone(),
        };
        check_policy(&policy, &field, &mut invalid);
        let unusable = match servers.get(&ObjectKey::new(&namespace, &mount.server)) {
            None => {
                refs_reason = reason::REF_NOT_FOUND;
                refs.push(Problem::new(
                    format!("{field}.server"),
                    format!("McpServer `{}` does not exist in namespace {namespace}", mount.server),
                ));
                continue;
            }
            Some(Err(why)) => why.clone(),
            Some(Ok(upstream)) => match upstream.auth().filter(|auth| auth.needs_caller_jwt() && !takes_jwts) {
                // The server may be fine for routes that take JWTs: like an unusable server,
                // this costs the route only this mount.
                Some(auth) => format!(
                    "McpServer `{}` authenticates with {}, which needs the caller's JWT, and this route \
                     accepts none (spec.authentication lists no jwt providers)",
                    mount.server,
                    auth.mode()
                ),
                None => {
                    mounts.push(MountConfig {
                        server: mount.server.clone(),
                        prefix: prefix.to_owned(),
                        tools: policy,
                        upstream: upstream.clone(),
                    });
                    continue;
                }
            },
        };
        // Another object's problem, or a pairing that cannot work: this mount is out, or at
        // its last valid version (one this route can serve).
        let last = served_before
            .and_then(|r| r.mounts.iter().find(|m| m.server == mount.server && m.prefix == prefix))
            .filter(|last| takes_jwts || !last.upstream.auth().is_some_and(OutboundAuth::needs_caller_jwt));
        let kept = match last {
            Some(_) => " (its last valid version is still served; the route's other mounts go on)",
            None => " (the route's other mounts go on without it)",
        };
        degraded.push(Problem::new(format!("{field}.server"), format!("{unusable}{kept}")));
        if let Some(last) = last {
            mounts.push(MountConfig { tools: policy, ..last.clone() });
        }
    }

    let rate_limits = rate_limits(&spec.rate_limits, &mut invalid);
    let caching = spec.caching.as_ref().map(|c| caching(c, &mut invalid)).unwrap_or_default();
    let resilience = super::resilience::route(spec.resilience.as_ref(), &mut invalid);
    let refs_before = refs.len();
    let access = super::access::compile(spec, &namespace, secrets, &mut invalid, &mut refs);
    if refs.len() > refs_before {
        refs_reason = reason::REF_NOT_FOUND;
    }
    let compatibility = compatibility(spec, &mut invalid);
    let (mut collisions, mut compatible) = (Vec::new(), Vec::new());
    if invalid.is_empty() && refs.is_empty() {
        collisions = self::collisions(&namespace, &mounts, discovered);
        if let Some(profile) = &compatibility {
            let found = profile_names(&namespace, &mounts, discovered, profile);
            compatible = found.verdicts(profile);
            collisions.extend(found.collisions);
        }
    }
    let config = (invalid.is_empty() && refs.is_empty() && collisions.is_empty()).then(|| RouteConfig {
        namespace,
        name,
        path: path.clone(),
        hostnames: spec.hostnames.clone(),
        allowed_origins: spec.allowed_origins.clone(),
        mounts,
        authentication: access.authentication,
        authorization: access.authorization,
        audit_arguments: access.audit_arguments,
        rate_limits,
        caching,
        resilience,
        compatibility,
    });
    Checked {
        config,
        path: Some(path),
        invalid,
        collisions,
        refs,
        refs_reason,
        degraded,
        refs_checked: true,
        compatible,
    }
}

fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("path `{path}` must start with '/'"));
    }
    if path.len() > MAX_PATH {
        return Err(format!("path must be at most {MAX_PATH} characters"));
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#') {
        return Err(format!("path `{path}` must not contain whitespace, '?' or '#'"));
    }
    if path.split('/').any(|segment| segment == "." || segment == "..") {
        return Err(format!("path `{path}` must not contain '.' or '..' segments"));
    }
    if path.starts_with("/.well-known/") {
        return Err("paths under /.well-known/ are reserved for protocol metadata".into());
    }
    Ok(())
}

/// The route's rate limits with defaults filled in; what is wrong goes to `invalid`.
fn rate_limits(limits: &[RateLimit], invalid: &mut Vec<Problem>) -> Vec<RateLimitConfig> {
    const MAX_PER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
    let mut names = HashSet::new();
    let mut compiled = Vec::with_capacity(limits.len());
    for (i, limit) in limits.iter().enumerate() {
        let at = format!("spec.rateLimits[{i}]");
        if !names.insert(limit.name.as_str()) {
            invalid
                .push(Problem::new(format!("{at}.name"), format!("`{}` names two limits of this route", limit.name)));
        }
        let per = limit.per.map_or(std::time::Duration::from_secs(1), std::time::Duration::from);
        if per.is_zero() || per > MAX_PER || limit.per.is_some_and(|d| d.is_negative()) {
            invalid.push(Problem::new(format!("{at}.per"), "per must be greater than 0s and at most 24h"));
        }
        let count = |field: &str, value: i32, invalid: &mut Vec<Problem>| match u32::try_from(value) {
            Ok(n @ 1..=1_000_000) => n,
            _ => {
                invalid.push(Problem::new(format!("{at}.{field}"), format!("{field} must be between 1 and 1000000")));
                1
            }
        };
        let requests = count("requests", limit.requests, invalid);
        let burst = limit.burst.map_or(requests, |burst| count("burst", burst, invalid));
        for (field, globs) in [("tools", &limit.tools), ("prompts", &limit.prompts), ("resources", &limit.resources)] {
            for glob in globs {
                if let Err(e) = globset::Glob::new(glob) {
                    invalid.push(Problem::new(format!("{at}.{field}"), format!("invalid glob `{glob}`: {e}")));
                }
            }
        }
        compiled.push(RateLimitConfig {
            name: limit.name.clone(),
            scope: limit.scope,
            requests,
            per_ms: per.as_millis() as u64,
            burst,
            tools: limit.tools.clone(),
            prompts: limit.prompts.clone(),
            resources: limit.resources.clone(),
        });
    }
    compiled
}

/// The route's caching rules in milliseconds; what is wrong goes to `invalid`.
fn caching(caching: &Caching, invalid: &mut Vec<Problem>) -> CachingConfig {
    let mut results = Vec::with_capacity(caching.results.len());
    for (i, rule) in caching.results.iter().enumerate() {
        let at = format!("spec.caching.results[{i}]");
        if rule.tools.is_empty() {
            invalid.push(Problem::new(format!("{at}.tools"), "list at least one tool glob"));
        }
        for glob in &rule.tools {
            if let Err(e) = globset::Glob::new(glob) {
                invalid.push(Problem::new(format!("{at}.tools"), format!("invalid glob `{glob}`: {e}")));
            }
        }
        results.push(ResultCacheConfig {
            tools: rule.tools.clone(),
            ttl_ms: ttl_ms(&format!("{at}.ttl"), &rule.ttl, "ttl", 24, invalid),
            public: rule.scope == Some(CacheScope::Public),
        });
    }
    let lists_ttl_ms =
        caching.lists.as_ref().map(|lists| ttl_ms("spec.caching.lists.ttl", &lists.ttl, "lists ttl", 1, invalid));
    CachingConfig { results, lists_ttl_ms }
}

/// A cache TTL in whole milliseconds, at least one and at most `max_hours`.
fn ttl_ms(at: &str, ttl: &kube::core::Duration, what: &str, max_hours: u64, invalid: &mut Vec<Problem>) -> u64 {
    let millis = std::time::Duration::from(*ttl).as_millis();
    if ttl.is_negative() || millis == 0 || millis > u128::from(max_hours) * 3_600_000 {
        invalid.push(Problem::new(at, format!("{what} must be greater than 0s and at most {max_hours}h")));
        return 1;
    }
    millis as u64
}

fn check_policy(policy: &ToolPolicy, field: &str, invalid: &mut Vec<Problem>) {
    if let Err(e) = policy.matcher() {
        invalid.push(Problem::new(format!("{field}.tools"), format!("invalid glob: {e}")));
    }
    let mut targets: HashMap<&str, &str> = HashMap::new();
    for (from, to) in &policy.rename {
        for name in [from, to] {
            if !TOOL_NAME.is_match(name) {
                invalid.push(Problem::new(
                    format!("{field}.rename"),
                    format!("`{name}` is not a tool name (1-128 letters, digits, '_', '-' or '.')"),
                ));
            }
        }
        if let Some(other) = targets.insert(to, from) {
            invalid.push(Problem::new(
                format!("{field}.rename"),
                format!("`{other}` and `{from}` are both renamed to `{to}`"),
            ));
        }
    }
}

/// Client-visible names exposed by two mounts, where the servers' tools are known.
fn collisions(namespace: &str, mounts: &[MountConfig], discovered: &BTreeMap<ObjectKey, Vec<String>>) -> Vec<Problem> {
    let mut owners: HashMap<String, usize> = HashMap::new();
    let mut problems = Vec::new();
    for (i, mount) in mounts.iter().enumerate() {
        let (Some(tools), Ok(matcher)) =
            (discovered.get(&ObjectKey::new(namespace, &mount.server)), mount.tools.matcher())
        else {
            continue;
        };
        for tool in tools {
            let Some(visible) = matcher.visible(tool) else {
                continue;
            };
            let visible = prefixed(&mount.prefix, visible);
            match owners.get(&visible) {
                Some(&first) if first != i => problems.push(Problem::new(
                    format!("spec.mounts[{i}]"),
                    format!(
                        "tool `{visible}` is also exposed by spec.mounts[{first}] (McpServer `{}`); \
                         give one mount a prefix, or rename or exclude the tool",
                        mounts[first].server
                    ),
                )),
                _ => {
                    owners.insert(visible, i);
                }
            }
        }
    }
    problems
}

/// The route's compatibility profile, if it names providers.
fn compatibility(spec: &McpRouteSpec, invalid: &mut Vec<Problem>) -> Option<CompatibilityConfig> {
    let mut providers: Vec<Provider> = Vec::with_capacity(spec.compatibility.len());
    for provider in &spec.compatibility {
        if providers.contains(provider) {
            invalid.push(Problem::new("spec.compatibility", format!("`{provider}` is named twice")));
        } else {
            providers.push(*provider);
        }
    }
    let mode = spec.incompatible_tool_names;
    if providers.is_empty() {
        if mode.is_some() {
            invalid.push(Problem::new(
                "spec.incompatibleToolNames",
                "incompatibleToolNames is only meaningful with compatibility: list the providers (openai, anthropic, \
                 gemini) or remove it",
            ));
        }
        return None;
    }
    Some(CompatibilityConfig { providers, report: mode == Some(IncompatibleToolNames::Report) })
}

/// Entries a `Compatible` message lists before it only counts the rest.
const LISTED: usize = 20;

/// What a compatibility profile does to the tools the mounted servers are known to offer.
#[derive(Default)]
struct ProfileNames {
    /// Whether any mount's tools are known.
    known: bool,
    /// (client-visible name, its short form), in mount and listing order.
    shortened: Vec<(String, String)>,
    /// (client-visible name, why a provider refuses it): left out under `Report`.
    left_out: Vec<(String, String)>,
    /// Short forms that are another tool's client-visible name.
    collisions: Vec<Problem>,
    /// How many tools the route serves to its clients, once every mount's tools are known.
    served: usize,
}

/// The most tools OpenAI's Chat Completions takes in one request (`array_above_max_length`);
/// its Responses API states no bound. No gateway can lift it: the status says so.
const OPENAI_CHAT_MAX_TOOLS: usize = 128;

fn profile_names(
    namespace: &str,
    mounts: &[MountConfig],
    discovered: &BTreeMap<ObjectKey, Vec<String>>,
    profile: &CompatibilityConfig,
) -> ProfileNames {
    let mut found = ProfileNames::default();
    // Every name clients would see, by the mount that shows it first.
    let mut shown: HashMap<String, (usize, String)> = HashMap::new();
    let mut served = Vec::new();
    for (i, mount) in mounts.iter().enumerate() {
        let (Some(tools), Ok(matcher)) =
            (discovered.get(&ObjectKey::new(namespace, &mount.server)), mount.tools.matcher())
        else {
            continue;
        };
        found.known = true;
        for tool in tools {
            let Some(visible) = matcher.visible(tool) else { continue };
            let visible = prefixed(&mount.prefix, visible);
            match compat::name_problem(&visible, &profile.providers) {
                None => served.push((i, visible.clone(), visible)),
                Some(why) if profile.report => found.left_out.push((visible, why)),
                Some(_) => {
                    let short = compat::short_name(&visible);
                    found.shortened.push((visible.clone(), short.clone()));
                    served.push((i, short, visible));
                }
            }
        }
    }
    found.served = served.len();
    for (i, name, visible) in served {
        match shown.get(&name) {
            // Two unshortened names alike are `collisions`' to report (and the same tool
            // listed twice is none); a short form that meets another tool's name is ours.
            Some((first_mount, first)) if *first != visible => found.collisions.push(Problem::new(
                format!("spec.mounts[{i}]"),
                format!(
                    "tool `{visible}` is served as `{name}`, which is also how tool `{first}` \
                     (spec.mounts[{first_mount}]) is served; rename or exclude one of them"
                ),
            )),
            Some(_) => {}
            None => {
                shown.insert(name, (i, visible));
            }
        }
    }
    found
}

impl ProfileNames {
    /// The route's `Compatible` condition, and `PartiallyInvalid` when tools are left out.
    fn verdicts(&self, profile: &CompatibilityConfig) -> Vec<Verdict> {
        let providers = profile.providers.iter().copied().map(Provider::as_str).collect::<Vec<_>>().join(", ");
        let too_many = profile.providers.contains(&Provider::OpenAi) && self.served > OPENAI_CHAT_MAX_TOOLS;
        let compatible = |reason: &str, message: String| Verdict {
            type_: condition::COMPATIBLE.into(),
            status: true,
            reason: reason.into(),
            message: match too_many {
                true => format!(
                    "{message}. OpenAI's Chat Completions takes at most {OPENAI_CHAT_MAX_TOOLS} tools in one request \
                     and this route serves {}: its agents need the Responses API, or a part of the tools \
                     (authorization or a mount's `tools` filter)",
                    self.served
                ),
                false => message,
            },
        };
        if !self.left_out.is_empty() {
            let message = format!(
                "{} tool(s) left out for this route's clients: {}",
                self.left_out.len(),
                bounded(self.left_out.iter().map(|(_, why)| why.clone()))
            );
            return vec![
                compatible(reason::TOOLS_LEFT_OUT, message.clone()),
                Verdict {
                    type_: condition::PARTIALLY_INVALID.into(),
                    status: true,
                    reason: reason::TOOLS_LEFT_OUT.into(),
                    message,
                },
            ];
        }
        if !self.shortened.is_empty() {
            let pairs = self.shortened.iter().map(|(visible, short)| format!("`{visible}` → `{short}`"));
            let message = format!(
                "{} tool name(s) break a rule of {providers} and are served shortened: {}",
                self.shortened.len(),
                bounded(pairs)
            );
            return vec![compatible(reason::NAMES_SHORTENED, message)];
        }
        let message = match self.known {
            true => format!("every client-visible tool name meets the rules of {providers}"),
            false => format!(
                "the mounted servers' tools are not known yet: the gateways apply the rules of {providers} as they list"
            ),
        };
        vec![compatible(reason::COMPATIBLE, message)]
    }
}

/// Up to `LISTED` entries joined, and how many more there are.
fn bounded(entries: impl ExactSizeIterator<Item = String>) -> String {
    let total = entries.len();
    let mut text = entries.take(LISTED).collect::<Vec<_>>().join("; ");
    if total > LISTED {
        text.push_str(&format!("; and {} more", total - LISTED));
    }
    text
}
