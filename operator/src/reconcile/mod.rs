//! One reconcile: the world as the watches see it (McpServers, McpRoutes, the Secrets and
//! ConfigMaps they reference, fetched documents) in; the published config and every
//! object's status out, through the API server. Compile is the same pure function `render`
//! runs. Nothing is written that would not change anything: the config only when its hash
//! moves, a status only when it differs (timestamps aside).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, ListParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use manifold_api::compile::{Inputs, Unreadable, compile};
use manifold_api::config::Upstream;
use manifold_api::outcome::condition::{ACCEPTED, PARTIALLY_INVALID, PROGRAMMED};
use manifold_api::outcome::{Kind, ObjectRef, Outcome, Verdict};
use manifold_api::publish::{GENERATION_ANNOTATION, HASH_ANNOTATION, RELEASE_LABEL, TooLarge, secrets};
use manifold_api::resources::{McpRoute, McpRouteStatus, McpServer, McpServerStatus};
use manifold_api::{Compiled, GatewayConfig};

use crate::leader::Leadership;
use crate::probe::{self, Probes};
use crate::programmed::{self, Replica};
use crate::publish::{PublishError, Published, fingerprint, publish, while_leading};
use crate::status::{patch_route, patch_server, route_status, server_status};

/// What the watches hold.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub servers: Vec<McpServer>,
    pub routes: Vec<McpRoute>,
    /// Only Secrets an McpServer or McpRoute references.
    pub secrets: Vec<Secret>,
    /// Only ConfigMaps an McpServer references.
    pub config_maps: Vec<ConfigMap>,
    /// OpenAPI documents fetched from `spec.openapi.url`, by URL.
    pub documents: BTreeMap<String, Result<String, String>>,
    /// McpServers and McpRoutes whose fields do not parse: reported in their own status,
    /// never served anew, and no one else's concern.
    pub unreadable: Vec<Unreadable>,
    /// Their uids and statuses, as far as those can be read.
    pub unreadable_seen: BTreeMap<ObjectRef, (Option<String>, Option<serde_json::Value>)>,
}

impl World {
    fn inputs(&self, discovered: BTreeMap<(String, String), Vec<String>>) -> Inputs {
        Inputs {
            servers: self.servers.clone(),
            routes: self.routes.clone(),
            secrets: self.secrets.clone(),
            config_maps: self.config_maps.clone(),
            documents: self.documents.clone(),
            discovered,
            unreadable: self.unreadable.clone(),
        }
    }

    /// Every usable McpServer's compiled upstream (credentials read): what to probe.
    pub fn servers_to_probe(&self) -> BTreeMap<(String, String), Upstream> {
        compile(&self.inputs(BTreeMap::new()), None).servers
    }
}

/// (tools, resources, prompts) of every usable server whose offer is known: OpenAPI ones
/// from their compiled components, remote ones from their last successful probe.
fn offers(
    servers: &BTreeMap<(String, String), Upstream>,
    probes: &Probes,
) -> BTreeMap<(String, String), (u32, u32, u32)> {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    servers
        .iter()
        .filter_map(|(key, upstream)| match upstream {
            Upstream::OpenApi(api) => {
                Some((key.clone(), (count(api.tools.len()), count(api.resources.len() + api.templates.len()), 0)))
            }
            Upstream::Remote(_) => match probes.get(key) {
                Some(Ok(o)) => Some((key.clone(), (count(o.tools.len()), o.resources, o.prompts))),
                _ => None,
            },
        })
        .collect()
}

/// A reference to an object known only by kind, namespace and name (one that does not parse).
fn reference(object: &ObjectRef) -> ObjectReference {
    ObjectReference {
        api_version: Some(manifold_api::resources::API_VERSION.into()),
        kind: Some(object.kind.to_string()),
        namespace: Some(object.namespace.clone()),
        name: Some(object.name.clone()),
        ..ObjectReference::default()
    }
}

fn verdict(status: bool, reason: &str, message: &str) -> Verdict {
    Verdict { type_: "Ready".into(), status, reason: reason.into(), message: message.into() }
}

/// The Secrets and ConfigMaps McpServers and McpRoutes reference, as (namespace, name).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct References {
    pub secrets: BTreeSet<(String, String)>,
    pub config_maps: BTreeSet<(String, String)>,
}

/// Every `secretRef`, `secretKeyRef` and `configMapRef` in the objects' specs (a reference
/// names an object of the referrer's own namespace). Found by walking the specs, so a field
/// added to the API is covered without a change here.
pub fn references(servers: &[McpServer], routes: &[McpRoute]) -> References {
    fn walk(value: &serde_json::Value, namespace: &str, found: &mut References) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    let name = inner.get("name").and_then(serde_json::Value::as_str);
                    match (key.as_str(), name) {
                        ("secretRef" | "secretKeyRef", Some(name)) => {
                            found.secrets.insert((namespace.to_owned(), name.to_owned()));
                        }
                        ("configMapRef", Some(name)) => {
                            found.config_maps.insert((namespace.to_owned(), name.to_owned()));
                        }
                        _ => walk(inner, namespace, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, namespace, found)),
            _ => {}
        }
    }
    let mut found = References::default();
    let specs = servers
        .iter()
        .map(|s| (s.namespace(), serde_json::to_value(&s.spec)))
        .chain(routes.iter().map(|r| (r.namespace(), serde_json::to_value(&r.spec))));
    for (namespace, spec) in specs {
        if let Ok(spec) = spec {
            walk(&spec, namespace.as_deref().unwrap_or("default"), &mut found);
        }
    }
    found
}

/// Reconciles worlds into the cluster, remembering what it last published.
pub struct Reconciler {
    client: Client,
    /// The Helm release: names the config Secrets.
    release: String,
    /// The gateway's namespace, where the config is published.
    namespace: String,
    /// Where clients reach the gateways (a route's `status.url` is this and its path).
    pub gateway_url: String,
    /// Asked before every write: only the leader writes.
    pub leadership: Leadership,
    /// The config the gateways serve (compile keeps invalid routes at their last valid version).
    served: Option<GatewayConfig>,
    /// Whether what was already published has been read (see `load_published`).
    loaded: bool,
    /// The highest generation known to be published or served (and the hash of the config
    /// published at it, when known): generations only go up, even after a publish was cut
    /// short or the Secrets were deleted.
    floor: u64,
    floor_hash: Option<String>,
    /// Each shard there as far as this replica knows (name, [`fingerprint`]): what the
    /// watch of the config Secrets is compared with.
    shards: BTreeMap<String, String>,
    /// Whether the published Secrets must be checked against the config even though its
    /// hash did not move (one was changed or deleted behind this replica's back).
    verify: bool,
    /// The status last written to each object: until the watch shows
    /// it, the object's own copy is older, and writing the same again would be a write for
    /// nothing.
    written: BTreeMap<ObjectRef, Written>,
    /// Records Kubernetes Events on condition transitions.
    events: Recorder,
    /// What each usable server offers as (tools, resources, prompts), and its tool names.
    offered: BTreeMap<(String, String), (u32, u32, u32)>,
    /// Tool names per server, for the tools a route's clients see.
    tool_names: BTreeMap<(String, String), Vec<String>>,
    /// Per served route, the generation that last changed it (`Programmed` waits for every
    /// replica to serve that one or later), when that was, and whether it is Programmed yet.
    changed_in: BTreeMap<(String, String), Change>,
}

/// A status this replica wrote, not shown by the watch yet.
#[derive(Clone, Debug)]
struct Written {
    /// The object's uid: a new object of the same name owes nothing to the old one's status.
    uid: Option<String>,
    /// The `resourceVersion` the watch showed when it was written: once the watch shows
    /// another, it is past this write (or someone wrote after it), and is what the object shows.
    seen_at: Option<String>,
    status: serde_json::Value,
}

/// When a route last changed, and whether the gateways have caught up.
#[derive(Clone, Debug)]
struct Change {
    generation: u64,
    at: std::time::Instant,
    programmed: bool,
}

/// What one reconcile did.
#[derive(Debug, Default)]
pub struct Report {
    /// Config generation after it.
    pub generation: u64,
    /// None when the config's hash did not move (nothing was even read).
    pub published: Option<Published>,
    /// Status writes.
    pub statuses: usize,
    /// Status writes the API server refused (each logged): reconcile again soon.
    pub failed: usize,
    /// How long compile took.
    pub compile: std::time::Duration,
    /// Served routes not Programmed yet: reconcile again soon to see the replicas catch up.
    pub pending: usize,
    /// For each route that became Programmed now, how long after its change.
    pub programmed_after: Vec<std::time::Duration>,
}

impl Reconciler {
    pub fn new(client: Client, release: &str, namespace: &str) -> Self {
        let reporter = Reporter { controller: crate::publish::FIELD_MANAGER.into(), instance: None };
        let events = Recorder::new(client.clone(), reporter);
        Reconciler {
            client,
            release: release.into(),
            namespace: namespace.into(),
            gateway_url: format!("http://{release}-gateway.{namespace}.svc:8080"),
            leadership: Leadership::always(),
            served: None,
            loaded: false,
            floor: 0,
            floor_hash: None,
            shards: BTreeMap::new(),
            verify: false,
            written: BTreeMap::new(),
            events,
            changed_in: BTreeMap::new(),
            offered: BTreeMap::new(),
            tool_names: BTreeMap::new(),
        }
    }

    /// Compiles `world`, publishes the config if it changed, and writes the statuses that
    /// changed. `replicas` are the ready gateway replicas and what they serve (for
    /// `Programmed`), `probes` what remote servers offer (for `Ready`, the counts, and name
    /// collisions); `now` stamps conditions that flip.
    pub async fn reconcile(
        &mut self,
        world: &World,
        replicas: &[Replica],
        probes: &Probes,
        now: &Time,
    ) -> Result<Report, PublishError> {
        if !self.loaded {
            self.load_published().await?;
        }
        // A gateway may serve a generation whose Secrets are gone: never publish below it.
        if let Some(served) = replicas.iter().filter_map(|r| r.serving.as_ref()).map(|s| s.generation).max()
            && served > self.floor
        {
            (self.floor, self.floor_hash) = (served, None);
        }
        let started = std::time::Instant::now();
        let Compiled { config, mut outcomes, servers } =
            compile(&world.inputs(probe::discovered(probes)), self.served.as_ref());
        let compile_time = started.elapsed();
        let (config, shards, too_large) = self.fit(config);
        for outcome in outcomes.iter_mut().filter(|o| o.object.kind == Kind::McpRoute) {
            if let Some(error) = too_large.get(&outcome.object.namespace) {
                let (namespace, name) = (&outcome.object.namespace, &outcome.object.name);
                let kept = config.routes.iter().any(|r| r.namespace == *namespace && r.name == *name);
                refuse_too_large(outcome, error, kept);
            }
        }
        self.judge_servers(&mut outcomes, &servers, probes);
        let mut changed_in = self.changes(&config);
        let (pending, programmed_after) = judge_programmed(&config, &mut changed_in, &mut outcomes, replicas);

        let changed = self.served.as_ref().map(|c| (&c.hash, c.generation)) != Some((&config.hash, config.generation));
        let published = if changed || self.verify {
            // Raised first: should this publish be cut short, the next one goes on above it.
            (self.floor, self.floor_hash) = (config.generation, Some(config.hash.clone()));
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
            let published = publish(&api, &self.release, &shards, &self.leadership, &mut self.shards).await?;
            self.verify = false;
            Some(published)
        } else {
            None
        };
        // Only now is this what the gateways are given.
        let generation = config.generation;
        self.served = Some(config);
        self.changed_in = changed_in;
        let (statuses, failed) = self.write_statuses(world, &outcomes, now).await?;
        // Objects gone: nothing to remember for them.
        let present: BTreeSet<&ObjectRef> = outcomes.iter().map(|o| &o.object).collect();
        self.written.retain(|object, _| present.contains(object));

        Ok(Report { generation, published, statuses, failed, compile: compile_time, pending, programmed_after })
    }

    /// `config` as shards, with its generation above every one published before. A tenant
    /// whose routes alone are too large for a Secret keeps what the gateways serve for it
    /// now (else nothing), and is returned: its routes say so, and everyone else's are
    /// published.
    fn fit(&self, mut config: GatewayConfig) -> (GatewayConfig, Vec<Secret>, BTreeMap<String, TooLarge>) {
        let mut too_large: BTreeMap<String, TooLarge> = BTreeMap::new();
        loop {
            // Below the floor, or at it with other content (a publish cut short, then the
            // world changed back): a generation of its own.
            let served = self.served.as_ref().is_some_and(|c| c.hash == config.hash);
            let other_at_floor = match &self.floor_hash {
                Some(hash) => *hash != config.hash,
                None => !served,
            };
            if config.generation < self.floor || (config.generation == self.floor && other_at_floor) {
                config.generation = self.floor + 1;
            }
            let error = match secrets(&config, &self.release, &self.namespace) {
                Ok(shards) => return (config, shards, too_large),
                Err(error) => error,
            };
            let tenant = error.namespace.clone();
            // Once only: should even what is served not fit any more, the tenant gets nothing.
            let kept: Vec<_> = match too_large.contains_key(&tenant) {
                false => {
                    self.served.iter().flat_map(|c| &c.routes).filter(|r| r.namespace == tenant).cloned().collect()
                }
                true => Vec::new(),
            };
            let mut routes: Vec<_> = config.routes.into_iter().filter(|r| r.namespace != tenant).chain(kept).collect();
            routes.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            config = GatewayConfig::new(routes, self.served.as_ref());
            too_large.insert(tenant, error);
        }
    }

    /// Adds each McpServer's `Ready` condition, and notes what the servers offer.
    fn judge_servers(
        &mut self,
        outcomes: &mut [Outcome],
        servers: &BTreeMap<(String, String), Upstream>,
        probes: &Probes,
    ) {
        let offered = offers(servers, probes);
        self.tool_names = servers
            .iter()
            .filter_map(|(key, upstream)| match upstream {
                Upstream::OpenApi(api) => Some((key.clone(), api.tools.iter().map(|t| t.name.clone()).collect())),
                Upstream::Remote(_) => Some((key.clone(), probes.get(key)?.as_ref().ok()?.tools.clone())),
            })
            .collect();
        for outcome in outcomes.iter_mut().filter(|o| o.object.kind == Kind::McpServer) {
            let key = (outcome.object.namespace.clone(), outcome.object.name.clone());
            outcome.conditions.push(match (servers.get(&key), offered.get(&key)) {
                (Some(Upstream::Remote(_)), _) => match probes.get(&key) {
                    Some(result) => probe::ready(result),
                    None => verdict(false, PROBING, "not asked yet"),
                },
                (Some(Upstream::OpenApi(_)), Some(counts)) => verdict(
                    true,
                    "Ready",
                    &format!("compiled from its OpenAPI document: {} tool(s), {} resource(s)", counts.0, counts.1),
                ),
                _ => verdict(false, "InvalidSpec", "the server is not usable: see Accepted and ResolvedRefs"),
            });
        }
        self.offered = offered;
    }

    /// Writes the statuses that changed; returns how many were written and how many the API
    /// server refused (logged; one object's refusal stops no one else's status).
    async fn write_statuses(
        &mut self,
        world: &World,
        outcomes: &[Outcome],
        now: &Time,
    ) -> Result<(usize, usize), PublishError> {
        let key = |meta: &kube::core::ObjectMeta| (meta.namespace.clone().unwrap_or_default(), meta.name.clone());
        let servers: BTreeMap<_, &McpServer> = world.servers.iter().map(|s| (key(s.meta()), s)).collect();
        let routes: BTreeMap<_, &McpRoute> = world.routes.iter().map(|r| (key(r.meta()), r)).collect();
        let (mut written, mut failed) = (0, 0);
        for outcome in outcomes {
            let object = &outcome.object;
            let (namespace, name) = (&object.namespace, &object.name);
            let at = (namespace.clone(), Some(name.clone()));
            // The uid and status the watch shows. An object whose fields do not parse is not
            // in the world, but its status can still say why.
            let (regarding, uid, seen_at, watched) = match (object.kind, servers.get(&at), routes.get(&at)) {
                (Kind::McpServer, Some(s), _) => {
                    let meta = s.meta();
                    (s.object_ref(&()), meta.uid.clone(), meta.resource_version.clone(), s.status.as_ref().map(to_json))
                }
                (Kind::McpRoute, _, Some(r)) => {
                    let meta = r.meta();
                    (r.object_ref(&()), meta.uid.clone(), meta.resource_version.clone(), r.status.as_ref().map(to_json))
                }
                _ => {
                    let (uid, status) = world.unreadable_seen.get(object).cloned().unwrap_or_default();
                    (reference(object), uid, None, status)
                }
            };
            // What this replica wrote, until the watch shows it or moves past it: what the
            // object shows then.
            let unconfirmed = self.written.get(object).filter(|w| w.uid == uid && w.seen_at == seen_at);
            let shown = match (unconfirmed, &watched) {
                (Some(written), Some(watched)) if untimed(&written.status) != untimed(watched) => {
                    written.status.clone()
                }
                (Some(written), None) => written.status.clone(),
                (_, watched) => {
                    self.written.remove(object);
                    watched.clone().unwrap_or(serde_json::Value::Null)
                }
            };
            let api_namespace = || namespace.as_str();
            let (patched, value, before, conditions) = match object.kind {
                Kind::McpServer => {
                    let current: Option<McpServerStatus> = serde_json::from_value(shown).ok();
                    let counts = self.offered.get(&(namespace.clone(), name.clone())).copied();
                    let outcome = ready_until_probed(outcome, current.as_ref());
                    let Some(status) = server_status(&outcome, current.as_ref(), counts, now) else { continue };
                    let api = Api::namespaced(self.client.clone(), api_namespace());
                    let patched = while_leading(&self.leadership, patch_server(&api, name, &status)).await;
                    let before = current.map(|s| s.conditions).unwrap_or_default();
                    (patched, to_json(&status), before, status.conditions)
                }
                Kind::McpRoute => {
                    let current: Option<McpRouteStatus> = serde_json::from_value(shown).ok();
                    let served = self.served_path(namespace, name);
                    let tools = self.visible_tools(namespace, name);
                    let Some(status) = route_status(outcome, current.as_ref(), served, tools, &self.gateway_url, now)
                    else {
                        continue;
                    };
                    let api = Api::namespaced(self.client.clone(), api_namespace());
                    let patched = while_leading(&self.leadership, patch_route(&api, name, &status)).await;
                    let before = current.map(|s| s.conditions).unwrap_or_default();
                    (patched, to_json(&status), before, status.conditions)
                }
            };
            match patched {
                Ok(()) => {
                    self.written.insert(object.clone(), Written { uid, seen_at, status: value });
                    self.record(&regarding, &before, &conditions).await;
                    written += 1;
                }
                Err(PublishError::NotLeading) => return Err(PublishError::NotLeading),
                // Deleted meanwhile: its watch event follows.
                Err(PublishError::Api(kube::Error::Api(status))) if status.code == 404 => {}
                Err(error) => {
                    tracing::warn!(%object, %error, "cannot write the status; retrying soon");
                    failed += 1;
                }
            }
        }
        Ok((written, failed))
    }

    /// The path the gateways serve a route at, if they serve it.
    fn served_path(&self, namespace: &str, name: &str) -> Option<&str> {
        let routes = &self.served.as_ref()?.routes;
        routes.iter().find(|r| r.namespace == namespace && r.name == name).map(|r| r.path.as_str())
    }

    /// How many tools a client of the route sees, when every mount's tools are known.
    fn visible_tools(&self, namespace: &str, name: &str) -> Option<u32> {
        let route = self.served.as_ref()?.routes.iter().find(|r| r.namespace == namespace && r.name == name)?;
        let mut count = 0usize;
        for mount in &route.mounts {
            let names = self.tool_names.get(&(namespace.to_owned(), mount.server.clone()))?;
            let matcher = mount.tools.matcher().ok()?;
            count += names.iter().filter(|n| matcher.visible(n).is_some()).count();
        }
        u32::try_from(count).ok()
    }

    /// Forgets what this replica published and wrote, for when it leads again after another
    /// replica did: the next reconcile starts from what is published.
    pub fn forget(&mut self) {
        self.loaded = false;
        self.served = None;
        self.shards.clear();
        self.written.clear();
        self.changed_in.clear();
    }

    /// A config Secret changed (`fingerprint` is its [`fingerprint`], None when it was
    /// deleted): whether that is not what this replica published, in which case the next
    /// reconcile checks the Secrets and writes what is missing or wrong.
    pub fn shard_changed(&mut self, name: &str, fingerprint: Option<&str>) -> bool {
        let differs = self.shards.get(name).map(String::as_str) != fingerprint;
        self.verify |= differs;
        differs
    }

    /// The config Secrets were listed anew (deletions during a gap show no event): the next
    /// reconcile checks them.
    pub fn check_published(&mut self) {
        self.verify = true;
    }

    /// Reads what is published already (by another replica, or by this operator before a
    /// restart), so that generations go on from it and routes that are invalid now keep
    /// their last valid versions instead of vanishing from the gateways.
    async fn load_published(&mut self) -> Result<(), PublishError> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let selector = format!("{RELEASE_LABEL}={}", self.release);
        let listed = secrets.list(&ListParams::default().labels(&selector)).await?;
        let annotation = |secret: &Secret, key: &str| secret.metadata.annotations.as_ref()?.get(key).cloned();
        // Even shards of a publish cut short count: generations go on above them.
        let highest = listed
            .items
            .iter()
            .filter_map(|s| {
                Some((annotation(s, GENERATION_ANNOTATION)?.parse::<u64>().ok()?, annotation(s, HASH_ANNOTATION)))
            })
            .max();
        if let Some((generation, hash)) = highest
            && generation >= self.floor
        {
            (self.floor, self.floor_hash) = (generation, hash);
        }
        self.shards = listed
            .items
            .iter()
            .filter_map(|s| Some((s.metadata.name.clone()?, fingerprint(s.metadata.annotations.as_ref()?)?)))
            .collect();
        match manifold_api::publish::assemble(&listed.items) {
            Ok(config) => {
                let now = std::time::Instant::now();
                for route in &config.routes {
                    let change = Change { generation: config.generation, at: now, programmed: false };
                    self.changed_in.insert((route.namespace.clone(), route.name.clone()), change);
                }
                tracing::info!(generation = config.generation, "going on from the published config");
                self.served = Some(config);
            }
            Err(manifold_api::publish::AssembleError::Missing) => {}
            Err(error) => tracing::warn!(%error, "the published config cannot be read; publishing it anew"),
        }
        self.loaded = true;
        Ok(())
    }

    /// The generation in which each route of `config` last changed.
    fn changes(&self, config: &GatewayConfig) -> BTreeMap<(String, String), Change> {
        let before: BTreeMap<(&str, &str), &manifold_api::config::RouteConfig> =
            self.served.iter().flat_map(|c| &c.routes).map(|r| ((r.namespace.as_str(), r.name.as_str()), r)).collect();
        let mut changed_in = BTreeMap::new();
        for route in &config.routes {
            let key = (route.namespace.clone(), route.name.clone());
            let same = before.get(&(route.namespace.as_str(), route.name.as_str())) == Some(&route);
            let change = match self.changed_in.get(&key) {
                Some(change) if same => change.clone(),
                _ => Change { generation: config.generation, at: std::time::Instant::now(), programmed: false },
            };
            changed_in.insert(key, change);
        }
        changed_in
    }

    /// An Event for each condition that flipped, or that appears saying something is wrong (a
    /// new object that is fine makes no noise). What was shown before is what this replica
    /// last wrote, else what the object shows. Best effort: a lost Event loses nothing.
    async fn record(&self, object: &ObjectReference, shown: &[Condition], now: &[Condition]) {
        for condition in now {
            let before = shown.iter().find(|c| c.type_ == condition.type_);
            let good = (condition.status == "True") != (condition.type_ == PARTIALLY_INVALID);
            // A route not Programmed yet, a server not probed yet: no news; nor is what
            // follows from another condition's failure (that one has its Event).
            let expected = good
                || matches!(
                    condition.reason.as_str(),
                    "Pending" | "NoReplicas" | "NotServed" | PROBING | "InvalidSpec"
                );
            if before.is_some_and(|b| b.status == condition.status) || (before.is_none() && expected) {
                continue;
            }
            let mut note = format!("{}={}: {}", condition.type_, condition.status, condition.message);
            note.truncate(note.floor_char_boundary(1024));
            // Waiting for replicas or for a probe is progress, not a problem.
            let progress = matches!(condition.reason.as_str(), "Pending" | PROBING);
            let event = Event {
                type_: if good || progress { EventType::Normal } else { EventType::Warning },
                reason: condition.reason.clone(),
                note: Some(note),
                action: "Reconcile".into(),
                secondary: None,
            };
            // Only the leader speaks; and not past its time.
            let published = while_leading(&self.leadership, self.events.publish(&event, object)).await;
            if let Err(error) = published {
                tracing::debug!(%error, "an Event could not be recorded");
            }
        }
    }
}

/// Adds each McpRoute's `Programmed` condition; returns how many served routes are not
/// Programmed yet, and how long those that just became Programmed took.
fn judge_programmed(
    config: &GatewayConfig,
    changed_in: &mut BTreeMap<(String, String), Change>,
    outcomes: &mut [Outcome],
    replicas: &[Replica],
) -> (usize, Vec<std::time::Duration>) {
    let mounts: BTreeMap<(&str, &str), usize> =
        config.routes.iter().map(|r| ((r.namespace.as_str(), r.name.as_str()), r.mounts.len())).collect();
    let (mut pending, mut programmed_after) = (0, Vec::new());
    for outcome in outcomes.iter_mut().filter(|o| o.object.kind == Kind::McpRoute) {
        let key = (outcome.object.namespace.clone(), outcome.object.name.clone());
        let mounts = mounts.get(&(key.0.as_str(), key.1.as_str())).copied().unwrap_or(0);
        outcome.conditions.push(match changed_in.get_mut(&key) {
            Some(change) => {
                let verdict = programmed::verdict(&key, change.generation, &config.hash, mounts, replicas);
                if verdict.status && !change.programmed {
                    programmed_after.push(change.at.elapsed());
                }
                change.programmed = verdict.status;
                pending += usize::from(!verdict.status);
                verdict
            }
            None => Verdict {
                type_: PROGRAMMED.into(),
                status: false,
                reason: "NotServed".into(),
                message: "the route is not part of the gateways' config".into(),
            },
        });
    }
    (pending, programmed_after)
}

/// The reason of a remote server's `Ready` before its first probe.
const PROBING: &str = "Probing";

/// A remote server not asked yet (this replica just began leading, or the server is new)
/// keeps the `Ready` its status gives for the same generation: a new leader must not flip
/// every server to "not asked yet" and back.
fn ready_until_probed<'a>(outcome: &'a Outcome, current: Option<&McpServerStatus>) -> std::borrow::Cow<'a, Outcome> {
    let unknown = |v: &Verdict| v.type_ == "Ready" && v.reason == PROBING;
    // Only what a probe said: another reason spoke of a config that may have changed since.
    let probed = |reason: &str| matches!(reason, "Ready" | "Unreachable" | "Unauthorized" | "ProtocolError");
    let shown = current
        .into_iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.type_ == "Ready" && c.observed_generation == outcome.generation && probed(&c.reason));
    match (outcome.conditions.iter().position(unknown), shown) {
        (Some(at), Some(shown)) => {
            let mut kept = outcome.clone();
            kept.conditions[at] = Verdict {
                type_: shown.type_.clone(),
                status: shown.status == "True",
                reason: shown.reason.clone(),
                message: shown.message.clone(),
            };
            std::borrow::Cow::Owned(kept)
        }
        _ => std::borrow::Cow::Borrowed(outcome),
    }
}

fn to_json(status: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(status).expect("statuses serialize")
}

/// A status without its conditions' `lastTransitionTime`s.
fn untimed(status: &serde_json::Value) -> serde_json::Value {
    let mut status = status.clone();
    for condition in status["conditions"].as_array_mut().into_iter().flatten() {
        condition.as_object_mut().map(|c| c.remove("lastTransitionTime"));
    }
    status
}

/// A route of a tenant too large to publish: not Accepted.
fn refuse_too_large(outcome: &mut Outcome, error: &TooLarge, kept: bool) {
    let kept = if kept { " (the version the gateways served before stays)" } else { "" };
    let refused = Verdict {
        type_: ACCEPTED.into(),
        status: false,
        reason: "TooLarge".into(),
        message: format!("{error}: split this namespace's routes, or make them smaller{kept}"),
    };
    match outcome.conditions.iter_mut().find(|c| c.type_ == ACCEPTED) {
        // Refused for a reason of its own already: that one says more.
        Some(accepted) if !accepted.status => {}
        Some(accepted) => *accepted = refused,
        None => outcome.conditions.insert(0, refused),
    }
}

#[cfg(test)]
mod same_compile;
#[cfg(test)]
mod tests;
