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
use crate::probe::{self, Prober};
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
    pub fn servers_to_probe(&self) -> BTreeMap<(String, String), manifold_api::config::Upstream> {
        compile(&self.inputs(BTreeMap::new()), None).servers
    }
}

/// (tools, resources, prompts) of every usable server whose offer is known: OpenAPI ones
/// from their compiled components, remote ones from their last successful probe.
fn offers(
    servers: &BTreeMap<(String, String), Upstream>,
    probes: &Prober,
) -> BTreeMap<(String, String), (u32, u32, u32)> {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    servers
        .iter()
        .filter_map(|(key, upstream)| match upstream {
            Upstream::OpenApi(api) => {
                Some((key.clone(), (count(api.tools.len()), count(api.resources.len() + api.templates.len()), 0)))
            }
            Upstream::Remote(_) => match probes.result(key) {
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
    /// The status last written to each object (and the object's uid): until the watch shows
    /// it, the object's own copy is older, and writing the same again would be a write for
    /// nothing.
    written: BTreeMap<ObjectRef, (Option<String>, serde_json::Value)>,
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
        probes: &Prober,
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
            compile(&world.inputs(probes.discovered()), self.served.as_ref());
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
        let (pending, programmed_after) = judge_programmed(&mut changed_in, &mut outcomes, replicas);

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
        probes: &Prober,
    ) {
        let offered = offers(servers, probes);
        self.tool_names = servers
            .iter()
            .filter_map(|(key, upstream)| match upstream {
                Upstream::OpenApi(api) => Some((key.clone(), api.tools.iter().map(|t| t.name.clone()).collect())),
                Upstream::Remote(_) => probes.discovered().remove(key).map(|names| (key.clone(), names)),
            })
            .collect();
        for outcome in outcomes.iter_mut().filter(|o| o.object.kind == Kind::McpServer) {
            let key = (outcome.object.namespace.clone(), outcome.object.name.clone());
            outcome.conditions.push(match (servers.get(&key), offered.get(&key)) {
                (Some(Upstream::Remote(_)), _) => match probes.result(&key) {
                    Some(result) => probe::ready(result),
                    None => verdict(false, "Probing", "not asked yet"),
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
            let (regarding, uid, watched) = match (object.kind, servers.get(&at), routes.get(&at)) {
                (Kind::McpServer, Some(s), _) => {
                    (s.object_ref(&()), s.meta().uid.clone(), s.status.as_ref().map(to_json))
                }
                (Kind::McpRoute, _, Some(r)) => {
                    (r.object_ref(&()), r.meta().uid.clone(), r.status.as_ref().map(to_json))
                }
                _ => {
                    let (uid, status) = world.unreadable_seen.get(object).cloned().unwrap_or_default();
                    (reference(object), uid, status)
                }
            };
            // What this replica wrote, until the watch shows it: what the object shows then.
            let unconfirmed = self.written.get(object).filter(|(written_uid, _)| *written_uid == uid).map(|w| &w.1);
            let shown = match (unconfirmed, &watched) {
                (Some(written), Some(watched)) if untimed(written) == untimed(watched) => {
                    self.written.remove(object);
                    watched.clone()
                }
                (Some(written), _) => written.clone(),
                (None, watched) => watched.clone().unwrap_or(serde_json::Value::Null),
            };
            let api_namespace = || namespace.as_str();
            let (patched, value, before, conditions) = match object.kind {
                Kind::McpServer => {
                    let current: Option<McpServerStatus> = serde_json::from_value(shown).ok();
                    let counts = self.offered.get(&(namespace.clone(), name.clone())).copied();
                    let Some(status) = server_status(outcome, current.as_ref(), counts, now) else { continue };
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
                    self.written.insert(object.clone(), (uid, value));
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
                    "Pending" | "NoReplicas" | "NotServed" | "Probing" | "InvalidSpec"
                );
            if before.is_some_and(|b| b.status == condition.status) || (before.is_none() && expected) {
                continue;
            }
            let mut note = format!("{}={}: {}", condition.type_, condition.status, condition.message);
            note.truncate(note.floor_char_boundary(1024));
            let event = Event {
                type_: if good { EventType::Normal } else { EventType::Warning },
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
    changed_in: &mut BTreeMap<(String, String), Change>,
    outcomes: &mut [Outcome],
    replicas: &[Replica],
) -> (usize, Vec<std::time::Duration>) {
    let (mut pending, mut programmed_after) = (0, Vec::new());
    for outcome in outcomes.iter_mut().filter(|o| o.object.kind == Kind::McpRoute) {
        let key = (outcome.object.namespace.clone(), outcome.object.name.clone());
        outcome.conditions.push(match changed_in.get_mut(&key) {
            Some(change) => {
                let verdict = programmed::verdict(&key, change.generation, replicas);
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

/// A route of a tenant too large to publish: not Accepted, whatever compile said.
fn refuse_too_large(outcome: &mut Outcome, error: &TooLarge, kept: bool) {
    let kept = if kept { " (the version the gateways served before stays)" } else { "" };
    let refused = Verdict {
        type_: ACCEPTED.into(),
        status: false,
        reason: "TooLarge".into(),
        message: format!("{error}: split this namespace's routes, or make them smaller{kept}"),
    };
    match outcome.conditions.iter_mut().find(|c| c.type_ == ACCEPTED) {
        Some(accepted) => *accepted = refused,
        None => outcome.conditions.insert(0, refused),
    }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::{Value, json};

    use super::*;
    use crate::testing::{api_server, api_server_with_status};

    fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    fn server(name: &str, remote: Value) -> McpServer {
        object(json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer",
            "metadata": {"name": name, "namespace": "acme", "generation": 1}, "spec": {"remote": remote}}))
    }

    fn route(name: &str, created: &str, spec: Value) -> McpRoute {
        object(json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpRoute",
            "metadata": {"name": name, "namespace": "acme", "generation": 1, "creationTimestamp": created}, "spec": spec}))
    }

    fn now() -> Time {
        Time(Timestamp::from_second(1_800_000_000).unwrap())
    }

    const LIST: &str =
        "/api/v1/namespaces/manifold-system/secrets?&labelSelector=manifold.dev%2Fgateway-config%3Dmanifold";
    const APPLY: &str =
        "/api/v1/namespaces/manifold-system/secrets/manifold-gateway-config?&force=true&fieldManager=manifold-operator";

    fn list() -> (Method, String, Value) {
        (Method::GET, LIST.into(), json!({"apiVersion": "v1", "kind": "SecretList", "metadata": {}, "items": []}))
    }

    fn apply() -> (Method, String, Value) {
        (Method::PATCH, APPLY.into(), json!({}))
    }

    fn status_of(kind: &str, name: &str, answer: Value) -> (Method, String, Value) {
        let uri = format!(
            "/apis/manifold.dev/v1alpha1/namespaces/acme/{kind}/{name}/status?&force=true&fieldManager=manifold-operator"
        );
        (Method::PATCH, uri, answer)
    }

    /// The condition `type_` of a status patch body.
    fn condition<'a>(body: &'a Value, type_: &str) -> &'a Value {
        body["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == type_).unwrap()
    }

    /// Reconciles `world` once against a mock expecting `exchanges`; returns the report and
    /// the request bodies.
    async fn reconcile(
        reconciler: &mut Option<Reconciler>,
        world: &World,
        exchanges: Vec<(Method, String, Value)>,
    ) -> (Report, Vec<Value>) {
        reconcile_with(reconciler, world, &[], exchanges).await
    }

    /// Same, with these gateway replicas.
    async fn reconcile_with(
        reconciler: &mut Option<Reconciler>,
        world: &World,
        replicas: &[Replica],
        mut exchanges: Vec<(Method, String, Value)>,
    ) -> (Report, Vec<Value>) {
        let first = reconciler.is_none();
        if first {
            // A first reconcile starts by reading what is published (nothing, here).
            exchanges.insert(0, list());
        }
        let (client, server) = api_server(exchanges);
        let mut fresh = Reconciler::new(client, "manifold", "manifold-system");
        if let Some(previous) = reconciler.take() {
            (fresh.served, fresh.written, fresh.changed_in) = (previous.served, previous.written, previous.changed_in);
            (fresh.offered, fresh.tool_names, fresh.loaded) = (previous.offered, previous.tool_names, previous.loaded);
            (fresh.floor, fresh.floor_hash) = (previous.floor, previous.floor_hash);
            (fresh.shards, fresh.verify) = (previous.shards, previous.verify);
        }
        let report = fresh.reconcile(world, replicas, &Prober::default(), &now()).await.unwrap();
        *reconciler = Some(fresh);
        let mut bodies = server.await.unwrap();
        if first {
            bodies.remove(0);
        }
        (report, bodies)
    }

    fn weather() -> McpServer {
        server("weather", json!({"url": "http://weather.acme.svc:8080/mcp"}))
    }

    fn store() -> McpRoute {
        route(
            "store",
            "2026-01-01T00:00:00Z",
            json!({"authentication": {"allowAnonymous": true}, "mounts": [{"server": "weather"}]}),
        )
    }

    #[tokio::test]
    async fn a_new_route_is_published_once_with_its_statuses_and_then_nothing_is_written() {
        let mut world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
        let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
        let mut reconciler = None;
        let (report, bodies) = reconcile(
            &mut reconciler,
            &world,
            vec![
                list(),
                apply(),
                status_of("mcpservers", "weather", answers[0].clone()),
                status_of("mcproutes", "store", answers[1].clone()),
            ],
        )
        .await;
        assert_eq!((report.generation, report.published.unwrap().applied, report.statuses), (1, 1, 2));
        let config = &bodies[1]["metadata"]["annotations"];
        assert_eq!(config["manifold.dev/generation"], "1");
        let route = &bodies[3];
        assert_eq!(route["status"]["path"], "/acme/store/mcp");
        assert_eq!(route["status"]["url"], "http://manifold-gateway.manifold-system.svc:8080/acme/store/mcp");
        assert_eq!(route["status"]["observedGeneration"], 1);
        for type_ in ["Accepted", "ResolvedRefs"] {
            assert_eq!(
                (condition(route, type_)["status"].as_str(), condition(route, type_)["observedGeneration"].as_i64()),
                (Some("True"), Some(1))
            );
        }

        // The same world again, before the watches show the new statuses, and after: no call.
        let (report, _) = reconcile(&mut reconciler, &world, vec![]).await;
        assert_eq!((&report.published, report.statuses), (&None, 0));
        world.servers[0].status = Some(object(bodies[2]["status"].clone()));
        world.routes[0].status = Some(object(bodies[3]["status"].clone()));
        let (report, _) = reconcile(&mut reconciler, &world, vec![]).await;
        assert_eq!((report.generation, &report.published, report.statuses), (1, &None, 0));
    }

    #[test]
    fn references_are_found_wherever_the_specs_hold_them() {
        let keyed = server(
            "weather",
            json!({"url": "http://weather:8080/mcp", "headers": [{"name": "X-Key", "valueFrom": {"secretKeyRef": {"name": "weather-key", "key": "k"}}}]}),
        );
        let api: McpServer = object(json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer",
            "metadata": {"name": "pets", "namespace": "globex"},
            "spec": {"openapi": {"configMapRef": {"name": "pets-doc", "key": "openapi.yaml"},
                                  "auth": {"basic": {"secretRef": {"name": "pets-login"}}}}}}));
        let guarded = route(
            "store",
            "2026-01-01T00:00:00Z",
            json!({"authentication": {"apiKeys": {"secretRef": {"name": "keys"}}, "jwt": [{"issuer": "https://idp", "audiences": ["mcp"], "jwks": {"secretRef": {"name": "jwks", "key": "set"}}}]},
                   "authorization": {"external": {"url": "http://pdp", "api": "permit", "secretRef": {"name": "permit", "key": "token"}}},
                   "mounts": [{"server": "weather"}]}),
        );
        let found = references(&[keyed, api], &[guarded]);
        let pairs = |names: &[(&str, &str)]| names.iter().map(|(n, m)| ((*n).to_owned(), (*m).to_owned())).collect();
        assert_eq!(
            found.secrets,
            pairs(&[
                ("acme", "jwks"),
                ("acme", "keys"),
                ("acme", "permit"),
                ("acme", "weather-key"),
                ("globex", "pets-login")
            ])
        );
        assert_eq!(found.config_maps, pairs(&[("globex", "pets-doc")]));
    }

    #[tokio::test]
    async fn a_route_is_programmed_once_the_replicas_serve_its_generation() {
        use crate::programmed::Serving;
        let world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
        let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
        let replica = |generation| Replica {
            admin: "10.0.0.1:9090".into(),
            serving: Some(Serving { generation, routes: [("acme".to_owned(), "store".to_owned())].into() }),
        };
        let mut reconciler = None;
        let (report, bodies) = reconcile_with(
            &mut reconciler,
            &world,
            &[replica(0)],
            vec![
                list(),
                apply(),
                status_of("mcpservers", "weather", answers[0].clone()),
                status_of("mcproutes", "store", answers[1].clone()),
            ],
        )
        .await;
        let pending = condition(&bodies[3], "Programmed");
        assert_eq!((pending["status"].as_str(), pending["reason"].as_str()), (Some("False"), Some("Pending")));
        assert_eq!(pending["message"], "0 of 1 gateway replicas serve generation 1");
        assert_eq!((report.pending, report.programmed_after.len()), (1, 0));

        // The replica catches up: the route's status changes, and the transition is an Event.
        let event = (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({}));
        let (report, bodies) = reconcile_with(
            &mut reconciler,
            &world,
            &[replica(1)],
            vec![status_of("mcproutes", "store", answers[1].clone()), event],
        )
        .await;
        let programmed = condition(&bodies[0], "Programmed");
        assert_eq!((programmed["status"].as_str(), programmed["reason"].as_str()), (Some("True"), Some("Programmed")));
        assert_eq!((bodies[1]["type"].as_str(), bodies[1]["reason"].as_str()), (Some("Normal"), Some("Programmed")));
        assert_eq!((report.pending, report.programmed_after.len()), (0, 1));
    }

    #[tokio::test]
    async fn probed_servers_report_ready_and_counts_and_routes_their_visible_tools() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(manifold_samples::serve(manifold_samples::Sample::Math, listener));
        let math = server("math", json!({"url": format!("http://{address}/mcp")}));
        let down = server("down", json!({"url": "http://127.0.0.1:1/mcp"}));
        let calc = route(
            "calc",
            "2026-01-01T00:00:00Z",
            json!({"authentication": {"allowAnonymous": true}, "mounts": [{"server": "math", "tools": {"exclude": ["about"]}}]}),
        );
        let world = World { servers: vec![down.clone(), math.clone()], routes: vec![calc.clone()], ..World::default() };
        let mut prober = Prober::default();
        prober.refresh(&world.servers_to_probe(), std::time::Instant::now()).await;

        let event = (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({}));
        let (client, server) = api_server(vec![
            list(),
            list(),
            apply(),
            status_of("mcpservers", "down", serde_json::to_value(&down).unwrap()),
            event,
            status_of("mcpservers", "math", serde_json::to_value(&math).unwrap()),
            status_of("mcproutes", "calc", serde_json::to_value(&calc).unwrap()),
        ]);
        let mut reconciler = Reconciler::new(client, "manifold", "manifold-system");
        reconciler.reconcile(&world, &[], &prober, &now()).await.unwrap();
        let mut bodies = server.await.unwrap();
        bodies.remove(0); // reading what is published
        let unreachable = condition(&bodies[2], "Ready");
        assert_eq!(
            (unreachable["status"].as_str(), unreachable["reason"].as_str()),
            (Some("False"), Some("Unreachable"))
        );
        assert_eq!((bodies[3]["type"].as_str(), bodies[3]["reason"].as_str()), (Some("Warning"), Some("Unreachable")));
        let ready = condition(&bodies[4], "Ready");
        assert_eq!(ready["message"], "offers 3 tool(s), 0 resource(s), 0 prompt(s)");
        assert_eq!(
            (bodies[4]["status"]["tools"].as_u64(), bodies[4]["status"]["prompts"].as_u64()),
            (Some(3), Some(0))
        );
        assert_eq!(bodies[5]["status"]["tools"], 2, "what a client sees: `about` is excluded");
    }

    #[tokio::test]
    async fn an_unreadable_server_is_told_in_its_status_and_the_rest_goes_on() {
        let unreadable = Unreadable {
            object: ObjectRef { kind: Kind::McpServer, namespace: "acme".into(), name: "typo".into() },
            generation: Some(2),
            problem: manifold_api::manifests::typed::<McpServer>(serde_yaml::to_value(json!({"apiVersion": "manifold.dev/v1alpha1",
                "kind": "McpServer", "metadata": {"name": "typo"}, "spec": {"remote": {"url": "http://x", "transport": "websocket"}}})).unwrap())
            .unwrap_err(),
        };
        let world =
            World { servers: vec![weather()], routes: vec![store()], unreadable: vec![unreadable], ..World::default() };
        let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
        let event = (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({}));
        let mut reconciler = None;
        let (report, bodies) = reconcile(
            &mut reconciler,
            &world,
            vec![
                list(),
                apply(),
                status_of("mcpservers", "typo", json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer", "metadata": {"name": "typo"}, "spec": {}})),
                event,
                status_of("mcpservers", "weather", answers[0].clone()),
                status_of("mcproutes", "store", answers[1].clone()),
            ],
        )
        .await;
        assert_eq!(report.generation, 1, "the route is served");
        let accepted = condition(&bodies[2], "Accepted");
        assert_eq!((accepted["status"].as_str(), accepted["reason"].as_str()), (Some("False"), Some("Invalid")));
        assert!(
            accepted["message"].as_str().unwrap().starts_with("spec.remote.transport: unknown variant `websocket`"),
            "{accepted}"
        );
        assert_eq!(bodies[2]["status"]["observedGeneration"], 2);
    }

    #[tokio::test]
    async fn a_restarted_operator_goes_on_from_what_is_published() {
        // Generation 5 is published, with the route valid; since then the route was broken.
        let valid = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
        let compiled = compile(&valid.inputs(BTreeMap::new()), None);
        let mut published = compiled.config.clone();
        published.generation = 5;
        let shards = manifold_api::publish::secrets(&published, "manifold", "manifold-system").unwrap();
        let listed = json!({"apiVersion": "v1", "kind": "SecretList", "metadata": {}, "items": shards});
        let mut broken = store();
        broken.spec.path = Some("no-slash".into());
        let world = World { servers: vec![weather()], routes: vec![broken.clone()], ..World::default() };

        let (client, server) = api_server(vec![
            (Method::GET, LIST.into(), listed),
            status_of("mcpservers", "weather", serde_json::to_value(weather()).unwrap()),
            status_of("mcproutes", "store", serde_json::to_value(&broken).unwrap()),
            (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({})),
        ]);
        let mut reconciler = Reconciler::new(client, "manifold", "manifold-system");
        let report = reconciler.reconcile(&world, &[], &Prober::default(), &now()).await.unwrap();
        let bodies = server.await.unwrap();
        assert_eq!((report.generation, &report.published), (5, &None), "nothing to publish: the route stays as it was");
        let accepted = condition(&bodies[2], "Accepted");
        assert_eq!(accepted["status"], "False");
        assert!(
            accepted["message"].as_str().unwrap().ends_with("(the last valid version of this route is still served)")
        );
    }

    #[tokio::test]
    async fn a_route_mounting_a_missing_server_says_which() {
        let world = World { routes: vec![store()], ..World::default() };
        let answer = serde_json::to_value(store()).unwrap();
        let mut reconciler = None;
        let event = (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({}));
        let (_, bodies) =
            reconcile(&mut reconciler, &world, vec![list(), apply(), status_of("mcproutes", "store", answer), event])
                .await;
        let recorded = &bodies[3];
        assert_eq!((recorded["type"].as_str(), recorded["reason"].as_str()), (Some("Warning"), Some("RefNotFound")));
        assert_eq!(recorded["regarding"]["name"], "store");
        assert_eq!(recorded["reportingController"], "manifold-operator");
        assert_eq!(
            recorded["note"],
            "ResolvedRefs=False: spec.mounts[0].server: McpServer `weather` does not exist in namespace acme"
        );
        let resolved = condition(&bodies[2], "ResolvedRefs");
        assert_eq!((resolved["status"].as_str(), resolved["reason"].as_str()), (Some("False"), Some("RefNotFound")));
        assert_eq!(resolved["message"], "spec.mounts[0].server: McpServer `weather` does not exist in namespace acme");
    }

    #[tokio::test]
    async fn a_rotated_secret_is_republished() {
        let keyed = server(
            "weather",
            json!({"url": "http://weather.acme.svc:8080/mcp", "headers": [{"name": "X-Api-Key", "valueFrom": {"secretKeyRef": {"name": "weather", "key": "key"}}}]}),
        );
        let secret = |key: &str| -> Secret {
            object(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "weather", "namespace": "acme"}, "stringData": {"key": key}}),
            )
        };
        let mut world = World {
            servers: vec![keyed.clone()],
            routes: vec![store()],
            secrets: vec![secret("one")],
            ..World::default()
        };
        let answers = [serde_json::to_value(&keyed).unwrap(), serde_json::to_value(store()).unwrap()];
        let mut reconciler = None;
        let (_, first) = reconcile(
            &mut reconciler,
            &world,
            vec![
                list(),
                apply(),
                status_of("mcpservers", "weather", answers[0].clone()),
                status_of("mcproutes", "store", answers[1].clone()),
            ],
        )
        .await;
        world.secrets = vec![secret("two")];
        let (report, again) = reconcile(&mut reconciler, &world, vec![list(), apply()]).await;
        assert_eq!((report.generation, report.statuses), (2, 0), "a new generation, no status change");
        assert_ne!(first[1]["data"], again[1]["data"], "the new key is in the published bytes");
        assert_eq!(again[1]["metadata"]["annotations"]["manifold.dev/generation"], "2");
    }

    #[tokio::test]
    async fn of_two_routes_claiming_one_path_the_older_wins() {
        let spec = json!({"path": "/shared/mcp", "authentication": {"allowAnonymous": true}, "mounts": [{"server": "weather"}]});
        let (older, newer) =
            (route("first", "2026-01-01T00:00:00Z", spec.clone()), route("second", "2026-02-01T00:00:00Z", spec));
        let world = World { servers: vec![weather()], routes: vec![newer.clone(), older.clone()], ..World::default() };
        let mut reconciler = None;
        let (_, bodies) = reconcile(
            &mut reconciler,
            &world,
            vec![
                list(),
                apply(),
                status_of("mcpservers", "weather", serde_json::to_value(weather()).unwrap()),
                status_of("mcproutes", "first", serde_json::to_value(&older).unwrap()),
                status_of("mcproutes", "second", serde_json::to_value(&newer).unwrap()),
                (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({})),
            ],
        )
        .await;
        assert_eq!(
            (bodies[5]["reason"].as_str(), bodies[5]["regarding"]["name"].as_str()),
            (Some("PathConflict"), Some("second"))
        );
        assert_eq!(condition(&bodies[3], "Accepted")["status"], "True");
        let refused = condition(&bodies[4], "Accepted");
        assert_eq!((refused["status"].as_str(), refused["reason"].as_str()), (Some("False"), Some("PathConflict")));
        assert!(refused["message"].as_str().unwrap().contains("acme/first"), "{refused}");
        assert_eq!(bodies[3]["status"]["url"], "http://manifold-gateway.manifold-system.svc:8080/shared/mcp");
        let (path, url) = (bodies[4]["status"].get("path"), bodies[4]["status"].get("url"));
        assert_eq!((path, url), (None, None), "the path is the older route's: the newer is reached nowhere");
    }

    /// An McpServer of `namespace` sending a header whose value is `value`, read from a Secret.
    fn keyed_world(namespace: &str, value: String) -> (McpServer, McpRoute, Secret) {
        let server = object(json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer",
            "metadata": {"name": "weather", "namespace": namespace, "generation": 1},
            "spec": {"remote": {"url": "http://weather:8080/mcp", "headers": [{"name": "X-Key", "valueFrom": {"secretKeyRef": {"name": "key", "key": "k"}}}]}}}));
        let route = object(json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpRoute",
            "metadata": {"name": "store", "namespace": namespace, "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"authentication": {"allowAnonymous": true}, "mounts": [{"server": "weather"}]}}));
        let secret = object(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "key", "namespace": namespace}, "stringData": {"k": value}}));
        (server, route, secret)
    }

    #[tokio::test]
    async fn a_tenant_too_large_for_a_secret_is_refused_and_the_others_are_published() {
        // 2.5 MB that compresses to about 1.5 MB: globex's route alone cannot fit in a Secret.
        let mut seed = 7u64;
        let noise: String = (0..2_500_000)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                char::from(b'a' + u8::try_from((seed >> 33) % 26).unwrap())
            })
            .collect();
        let (acme_server, acme_route, acme_key) = keyed_world("acme", "small".into());
        let (globex_server, globex_route, globex_key) = keyed_world("globex", noise);
        let world = World {
            servers: vec![acme_server.clone(), globex_server.clone()],
            routes: vec![acme_route.clone(), globex_route.clone()],
            secrets: vec![acme_key, globex_key],
            ..World::default()
        };
        let status_in = |namespace: &str, kind: &str, name: &str, answer: Value| {
            let uri = format!(
                "/apis/manifold.dev/v1alpha1/namespaces/{namespace}/{kind}/{name}/status?&force=true&fieldManager=manifold-operator"
            );
            (Method::PATCH, uri, answer)
        };
        let event = |namespace: &str| {
            (Method::POST, format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events?"), json!({}))
        };
        let mut reconciler = None;
        let (report, bodies) = reconcile(
            &mut reconciler,
            &world,
            vec![
                list(),
                apply(),
                status_in("acme", "mcpservers", "weather", serde_json::to_value(&acme_server).unwrap()),
                status_in("globex", "mcpservers", "weather", serde_json::to_value(&globex_server).unwrap()),
                status_in("acme", "mcproutes", "store", serde_json::to_value(&acme_route).unwrap()),
                status_in("globex", "mcproutes", "store", serde_json::to_value(&globex_route).unwrap()),
                event("globex"),
            ],
        )
        .await;
        assert_eq!(report.generation, 1);
        let published: Secret = serde_json::from_value(bodies[1].clone()).unwrap();
        let config = manifold_api::publish::assemble([&published]).unwrap();
        assert_eq!(config.routes.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/acme/store/mcp"]);
        assert_eq!(condition(&bodies[4], "Accepted")["status"], "True");
        let refused = condition(&bodies[5], "Accepted");
        assert_eq!((refused["status"].as_str(), refused["reason"].as_str()), (Some("False"), Some("TooLarge")));
        assert!(
            refused["message"].as_str().unwrap().starts_with("the routes of namespace globex compress to "),
            "{refused}"
        );
        assert_eq!(bodies[5]["status"].get("url"), None, "not served");
        assert_eq!(
            (bodies[6]["reason"].as_str(), bodies[6]["regarding"]["namespace"].as_str()),
            (Some("TooLarge"), Some("globex"))
        );
    }

    #[tokio::test]
    async fn a_refused_status_write_is_tried_again_and_a_recreated_object_gets_its_status() {
        let world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
        let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
        let uri = |kind: &str, name: &str| {
            format!(
                "/apis/manifold.dev/v1alpha1/namespaces/acme/{kind}/{name}/status?&force=true&fieldManager=manifold-operator"
            )
        };
        let unavailable = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "ServiceUnavailable", "code": 503, "message": "etcd is slow"});
        let (client, server) = api_server_with_status(vec![
            (Method::GET, LIST.into(), 200, list().2),
            (Method::GET, LIST.into(), 200, list().2),
            (Method::PATCH, APPLY.into(), 200, json!({})),
            (Method::PATCH, uri("mcpservers", "weather"), 503, unavailable),
            (Method::PATCH, uri("mcproutes", "store"), 200, answers[1].clone()),
        ]);
        let mut fresh = Reconciler::new(client, "manifold", "manifold-system");
        let report = fresh.reconcile(&world, &[], &Prober::default(), &now()).await.unwrap();
        server.await.unwrap();
        assert_eq!((report.statuses, report.failed), (1, 1), "one refusal stops no other status");
        let mut reconciler = Some(fresh);
        let (report, _) =
            reconcile(&mut reconciler, &world, vec![status_of("mcpservers", "weather", answers[0].clone())]).await;
        assert_eq!((report.statuses, report.failed), (1, 0), "the refused one is written next time");
        let (report, _) = reconcile(&mut reconciler, &world, vec![]).await;
        assert_eq!(report.statuses, 0);

        // The route is deleted and created again under the same name, at the same generation.
        let mut again = world.clone();
        again.routes[0].metadata.uid = Some("another".into());
        let (report, _) =
            reconcile(&mut reconciler, &again, vec![status_of("mcproutes", "store", answers[1].clone())]).await;
        assert_eq!(report.statuses, 1, "a new object: its status is new");
    }

    #[tokio::test]
    async fn generations_go_on_above_a_publish_cut_short() {
        // Shard 0 of 2 at generation 7 survived; shard 1 never came.
        let valid = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
        let mut cut = compile(&valid.inputs(BTreeMap::new()), None).config;
        cut.generation = 7;
        let mut shard = manifold_api::publish::secrets(&cut, "manifold", "manifold-system").unwrap().remove(0);
        shard.metadata.annotations.as_mut().unwrap().insert("manifold.dev/shard".into(), "0/2".into());
        let listed = json!({"apiVersion": "v1", "kind": "SecretList", "metadata": {}, "items": [shard]});
        let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
        let (client, server) = api_server(vec![
            (Method::GET, LIST.into(), listed.clone()),
            (Method::GET, LIST.into(), listed),
            apply(),
            status_of("mcpservers", "weather", answers[0].clone()),
            status_of("mcproutes", "store", answers[1].clone()),
        ]);
        let mut reconciler = Reconciler::new(client, "manifold", "manifold-system");
        let report = reconciler.reconcile(&valid, &[], &Prober::default(), &now()).await.unwrap();
        let bodies = server.await.unwrap();
        assert_eq!(report.generation, 8, "never back to 1: gateways would take it for old news");
        assert_eq!(bodies[2]["metadata"]["annotations"]["manifold.dev/generation"], "8");
        assert_eq!(bodies[2]["metadata"]["annotations"]["manifold.dev/shard"], "0/1");
    }

    #[tokio::test]
    async fn a_failed_publish_is_retried_at_its_generation_and_a_change_back_gets_a_new_one() {
        let world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
        let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
        let broken = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500, "message": "etcd"});
        let (client, server) = api_server_with_status(vec![
            (Method::GET, LIST.into(), 200, list().2),
            (Method::GET, LIST.into(), 200, list().2),
            (Method::PATCH, APPLY.into(), 500, broken.clone()),
        ]);
        let mut fresh = Reconciler::new(client, "manifold", "manifold-system");
        let failed = fresh.reconcile(&world, &[], &Prober::default(), &now()).await;
        assert!(matches!(failed, Err(PublishError::Api(_))), "{failed:?}");
        let first = server.await.unwrap();
        let mut reconciler = Some(fresh);
        let (report, again) = reconcile(
            &mut reconciler,
            &world,
            vec![
                list(),
                apply(),
                status_of("mcpservers", "weather", answers[0].clone()),
                status_of("mcproutes", "store", answers[1].clone()),
            ],
        )
        .await;
        assert_eq!(report.generation, 1, "the same config, tried again, keeps its generation");
        assert_eq!(again[1], first[2]);

        // A change whose publish is cut short, then the world goes back: generation 2 may be
        // half out, so going back is generation 3, not 1 again.
        let mut changed = world.clone();
        changed.routes[0].spec.path = Some("/elsewhere/mcp".into());
        let (client, server) = api_server_with_status(vec![
            (Method::GET, LIST.into(), 200, list().2),
            (Method::PATCH, APPLY.into(), 500, broken),
        ]);
        let mut cut = reconciler.take().unwrap();
        cut.client = client.clone();
        cut.events = Recorder::new(client, Reporter { controller: "manifold-operator".into(), instance: None });
        assert!(cut.reconcile(&changed, &[], &Prober::default(), &now()).await.is_err());
        server.await.unwrap();
        reconciler = Some(cut);
        let (report, back) = reconcile(&mut reconciler, &world, vec![list(), apply()]).await;
        assert_eq!(
            (report.generation, back[1]["metadata"]["annotations"]["manifold.dev/generation"].as_str()),
            (3, Some("3"))
        );
    }

    #[tokio::test]
    async fn generations_go_on_above_what_the_gateways_serve() {
        // The Secrets are gone, but a gateway still serves generation 57.
        use crate::programmed::Serving;
        let world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
        let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
        let replica = Replica {
            admin: "10.0.0.1:9090".into(),
            serving: Some(Serving { generation: 57, routes: BTreeSet::new() }),
        };
        let mut reconciler = None;
        let (report, bodies) = reconcile_with(
            &mut reconciler,
            &world,
            &[replica],
            vec![
                list(),
                apply(),
                status_of("mcpservers", "weather", answers[0].clone()),
                status_of("mcproutes", "store", answers[1].clone()),
            ],
        )
        .await;
        assert_eq!(report.generation, 58);
        assert_eq!(bodies[1]["metadata"]["annotations"]["manifold.dev/generation"], "58");
    }

    #[tokio::test]
    async fn a_status_changed_by_someone_else_is_set_right() {
        let mut world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
        let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
        let mut reconciler = None;
        let (_, bodies) = reconcile(
            &mut reconciler,
            &world,
            vec![
                list(),
                apply(),
                status_of("mcpservers", "weather", answers[0].clone()),
                status_of("mcproutes", "store", answers[1].clone()),
            ],
        )
        .await;
        world.routes[0].status = Some(object(bodies[3]["status"].clone()));
        let (report, _) = reconcile(&mut reconciler, &world, vec![]).await;
        assert_eq!(report.statuses, 0, "shown as written");
        world.routes[0].status.as_mut().unwrap().url = Some("http://wrong".into());
        let (report, fixed) =
            reconcile(&mut reconciler, &world, vec![status_of("mcproutes", "store", answers[1].clone())]).await;
        assert_eq!(report.statuses, 1);
        assert_eq!(fixed[0]["status"], bodies[3]["status"]);
    }

    #[tokio::test]
    async fn a_change_undone_before_the_watch_shows_it_is_undone_on_the_server_too() {
        let mut world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
        let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
        let mut reconciler = None;
        let (_, valid) = reconcile(
            &mut reconciler,
            &world,
            vec![
                list(),
                apply(),
                status_of("mcpservers", "weather", answers[0].clone()),
                status_of("mcproutes", "store", answers[1].clone()),
            ],
        )
        .await;
        // The watch shows the valid status. The route breaks (written), and is mended
        // before the watch shows the broken status: the server holds it, so write again.
        world.routes[0].status = Some(object(valid[3]["status"].clone()));
        let mut broken = world.clone();
        broken.routes[0].spec.path = Some("no-slash".into());
        let event = (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({}));
        let (report, _) =
            reconcile(&mut reconciler, &broken, vec![status_of("mcproutes", "store", answers[1].clone()), event]).await;
        assert_eq!(report.statuses, 1);
        let event = (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({}));
        let (report, mended) =
            reconcile(&mut reconciler, &world, vec![status_of("mcproutes", "store", answers[1].clone()), event]).await;
        assert_eq!(report.statuses, 1, "the object's own copy is older than what was written");
        assert_eq!(condition(&mended[0], "Accepted")["status"], "True");
    }

    #[tokio::test]
    async fn an_unreadable_object_created_again_gets_its_status_again() {
        let typo = ObjectRef { kind: Kind::McpServer, namespace: "acme".into(), name: "typo".into() };
        let problem = manifold_api::manifests::typed::<McpServer>(serde_yaml::to_value(json!({"apiVersion": "manifold.dev/v1alpha1",
            "kind": "McpServer", "metadata": {"name": "typo"}, "spec": {"remote": {"url": "http://x", "transport": "websocket"}}})).unwrap())
        .unwrap_err();
        let world = |uid: &str| World {
            unreadable: vec![Unreadable { object: typo.clone(), generation: Some(1), problem: problem.clone() }],
            unreadable_seen: BTreeMap::from([(typo.clone(), (Some(uid.to_owned()), None))]),
            ..World::default()
        };
        let answer = json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer", "metadata": {"name": "typo"}, "spec": {}});
        let event = || (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({}));
        let mut reconciler = None;
        let (report, _) = reconcile(
            &mut reconciler,
            &world("first"),
            vec![list(), apply(), status_of("mcpservers", "typo", answer.clone()), event()],
        )
        .await;
        assert_eq!(report.statuses, 1);
        let (report, _) = reconcile(&mut reconciler, &world("first"), vec![]).await;
        assert_eq!(report.statuses, 0);
        let (report, _) =
            reconcile(&mut reconciler, &world("second"), vec![status_of("mcpservers", "typo", answer), event()]).await;
        assert_eq!(report.statuses, 1, "deleted and created again: a new object");
    }

    #[tokio::test]
    async fn a_replica_whose_lease_lapsed_writes_nothing() {
        let world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
        let (client, server) = api_server(vec![list(), list()]);
        let mut reconciler = Reconciler::new(client, "manifold", "manifold-system");
        reconciler.leadership = Leadership::lapsed();
        let result = reconciler.reconcile(&world, &[], &Prober::default(), &now()).await;
        assert!(matches!(result, Err(PublishError::NotLeading)), "{result:?}");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_config_secret_changed_behind_the_operators_back_is_written_again() {
        let world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
        let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
        let mut reconciler = None;
        let (_, first) = reconcile(
            &mut reconciler,
            &world,
            vec![
                list(),
                apply(),
                status_of("mcpservers", "weather", answers[0].clone()),
                status_of("mcproutes", "store", answers[1].clone()),
            ],
        )
        .await;
        let ours = fingerprint(&serde_json::from_value(first[1]["metadata"]["annotations"].clone()).unwrap()).unwrap();
        let operator = reconciler.as_mut().unwrap();
        assert!(!operator.shard_changed("manifold-gateway-config", Some(&ours)), "the watch showing our own write");
        assert!(!operator.shard_changed("manifold-gateway-config-1", None), "a shard we deleted");
        assert!(operator.shard_changed("manifold-gateway-config", None), "deleted by someone");
        let (report, again) = reconcile(&mut reconciler, &world, vec![list(), apply()]).await;
        assert_eq!((report.generation, report.published.unwrap().applied), (1, 1));
        assert_eq!(again[1], first[1], "the same bytes at the same generation");
        let (report, _) = reconcile(&mut reconciler, &world, vec![]).await;
        assert_eq!(report.published, None, "checked once");
    }
}

#[cfg(test)]
mod same_compile {
    use http::Method;
    use k8s_openapi::jiff::Timestamp;
    use manifold_api::manifests::{Source, read};

    use super::*;
    use crate::render::{Format, RenderArgs, render};
    use crate::testing::api_server;

    /// `render` of a manifests directory and the controller, given the same objects, publish
    /// the same config: they share one compile.
    #[tokio::test]
    async fn render_and_the_controller_publish_the_same_config() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/multi-tenant");
        let rendered = render(&RenderArgs { paths: vec![dir.clone()], output: Format::Json }).unwrap();
        assert!(rendered.failures.is_empty(), "{:?}", rendered.failures);
        let rendered: GatewayConfig = serde_json::from_str(&rendered.output).unwrap();

        let mut sources = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            sources.push(Source { origin: path.display().to_string(), text: std::fs::read_to_string(&path).unwrap() });
        }
        let inputs = read(&sources).unwrap().inputs;
        let world = World {
            servers: inputs.servers,
            routes: inputs.routes,
            secrets: inputs.secrets,
            config_maps: inputs.config_maps,
            ..World::default()
        };
        // The statuses' answers are not looked at: any object will do.
        let shards =
            "/api/v1/namespaces/manifold-system/secrets?&labelSelector=manifold.dev%2Fgateway-config%3Dmanifold";
        let mut exchanges = vec![
            // What is published already (nothing), then the shards to compare with.
            (Method::GET, shards.to_owned(), serde_json::json!({"items": [], "metadata": {}})),
            (Method::GET, shards.to_owned(), serde_json::json!({"items": [], "metadata": {}})),
            (Method::PATCH, "/api/v1/namespaces/manifold-system/secrets/manifold-gateway-config?&force=true&fieldManager=manifold-operator".to_owned(), serde_json::json!({})),
        ];
        let objects = world
            .servers
            .iter()
            .map(|s| ("mcpservers", s.namespace().unwrap(), s.name_any(), serde_json::to_value(s).unwrap()));
        let objects: Vec<_> = objects
            .chain(
                world
                    .routes
                    .iter()
                    .map(|r| ("mcproutes", r.namespace().unwrap(), r.name_any(), serde_json::to_value(r).unwrap())),
            )
            .collect();
        let mut sorted = objects.clone();
        // Outcomes come ordered by kind, then namespace and name.
        sorted.sort_by(|a, b| (a.0 != "mcpservers", &a.1, &a.2).cmp(&(b.0 != "mcpservers", &b.1, &b.2)));
        for (kind, namespace, name, answer) in sorted {
            let uri = format!(
                "/apis/manifold.dev/v1alpha1/namespaces/{namespace}/{kind}/{name}/status?&force=true&fieldManager=manifold-operator"
            );
            exchanges.push((Method::PATCH, uri, answer));
        }
        let (client, server) = api_server(exchanges);
        let mut reconciler = Reconciler::new(client, "manifold", "manifold-system");
        reconciler
            .reconcile(
                &world,
                &[],
                &crate::probe::Prober::default(),
                &Time(Timestamp::from_second(1_800_000_000).unwrap()),
            )
            .await
            .unwrap();
        let bodies = server.await.unwrap();
        let published: Secret = serde_json::from_value(bodies[2].clone()).unwrap();
        let controller = manifold_api::publish::assemble([&published]).unwrap();
        assert_eq!(controller, rendered);
    }
}
