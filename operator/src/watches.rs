//! What the controller watches, and what it reads when it reconciles.
//!
//! - McpServers and McpRoutes: cached (one reflector per watched namespace), untyped so that
//!   one whose fields do not parse is reported rather than fatal; a change to an object's
//!   spec or status is a [`Changed::Object`], one to its labels or annotations is nothing.
//! - Secrets and ConfigMaps in the same namespaces: metadata only, nothing kept; each change
//!   names the object, and only referenced ones are read, by name, when reconciling.
//! - The config Secrets the operator publishes: each change carries the shard's fingerprint,
//!   so one deleted or edited behind the operator's back is written again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt, stream};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use manifold_api::ObjectKey;
use manifold_api::compile::Unreadable;
use manifold_api::outcome::{Kind, ObjectRef};
use manifold_api::publish::RELEASE_LABEL;

use crate::publish::fingerprint;

/// How many Secrets and ConfigMaps are read at once.
const READS_AT_ONCE: usize = 16;

/// What changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// An McpServer or McpRoute was created, deleted, or had its spec changed.
    Object,
    Secret(ObjectKey),
    ConfigMap(ObjectKey),
    /// Secrets or ConfigMaps were listed anew: any deleted during the gap showed no event.
    SecretsListed,
    ConfigMapsListed,
    /// One of the config Secrets: its name, and its fingerprint (None once deleted).
    Shard(String, Option<String>),
    /// The config Secrets were listed anew: any deleted during the gap showed no event.
    ShardsListed,
}

pub type Changes = std::pin::Pin<Box<dyn Stream<Item = Changed> + Send>>;

/// The objects of one kind in the watched namespaces: one reflector per namespace (a
/// reflector's store is replaced by what its own watch lists, so namespaces cannot share one).
#[derive(Clone)]
pub struct Cache(Vec<Watched>);

/// One namespace's reflector: what it watches ("McpServers in acme", for `/readyz`), its
/// store, and whether its first list is done.
///
/// `listed` is set by the watch stream itself (at `InitDone`), not read from the store:
/// kube's `Store::wait_until_ready` keeps one waker, so a readiness probe polling it would
/// steal the wake-up of the task that waits for the first list, and the operator would
/// never become ready (seen against a real API server).
#[derive(Clone)]
struct Watched {
    what: String,
    store: Store<DynamicObject>,
    listed: tokio::sync::watch::Receiver<bool>,
}

impl Cache {
    fn state(&self) -> impl Iterator<Item = Arc<DynamicObject>> + '_ {
        self.0.iter().flat_map(|watched| watched.store.state())
    }

    /// Waits until every namespace's cache has listed; fails if a watch is gone.
    pub async fn wait_until_ready(&self) -> Result<(), tokio::sync::watch::error::RecvError> {
        for watched in &self.0 {
            watched.listed.clone().wait_for(|listed| *listed).await?;
        }
        Ok(())
    }

    /// What has not listed yet ("McpRoutes in acme"): a namespace whose list never comes
    /// (its RoleBinding missing, say) holds every reconcile back, and `/readyz` says which.
    pub fn unlisted(&self) -> Vec<String> {
        self.0.iter().filter(|watched| !*watched.listed.borrow()).map(|watched| watched.what.clone()).collect()
    }

    /// The uid and status of each object named, as far as those can be read (for objects
    /// whose fields do not parse).
    pub fn seen(&self, objects: &[&ObjectRef]) -> BTreeMap<ObjectRef, (Option<String>, Option<serde_json::Value>)> {
        let wanted: BTreeMap<(&str, &str), &ObjectRef> =
            objects.iter().map(|o| ((o.namespace.as_str(), o.name.as_str()), *o)).collect();
        let mut seen = BTreeMap::new();
        for object in self.state() {
            let (namespace, name) = (object.namespace().unwrap_or_default(), object.name_any());
            if let Some(wanted) = wanted.get(&(namespace.as_str(), name.as_str())) {
                seen.insert((*wanted).clone(), (object.uid(), object.data.get("status").cloned()));
            }
        }
        seen
    }

    /// The objects held, as `K`, and those whose fields do not parse.
    pub fn typed<K: serde::de::DeserializeOwned>(&self, kind: Kind) -> (Vec<K>, Vec<Unreadable>) {
        let (mut objects, mut unreadable) = (Vec::new(), Vec::new());
        for object in self.state() {
            let value = serde_yaml::to_value(&*object).expect("objects serialize");
            match manifold_api::manifests::typed::<K>(value) {
                Ok(typed) => objects.push(typed),
                Err(problem) => unreadable.push(Unreadable {
                    object: ObjectRef {
                        kind,
                        namespace: object.namespace().unwrap_or_default(),
                        name: object.name_any(),
                    },
                    generation: object.metadata.generation,
                    problem,
                }),
            }
        }
        (objects, unreadable)
    }
}

/// The namespaces to watch, each once (empty: all).
pub fn scope(namespaces: &[String]) -> Vec<String> {
    namespaces.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect()
}

/// An Api for each watched namespace (`one`), or for all of them (`all`) when none are listed.
fn scoped<A>(namespaces: &[String], all: impl Fn() -> A, one: impl Fn(&str) -> A) -> Vec<A> {
    if namespaces.is_empty() { vec![all()] } else { namespaces.iter().map(|n| one(n)).collect() }
}

/// A cache of `K` objects in the watched namespaces, and its changes.
pub fn objects<K>(client: &Client, namespaces: &[String]) -> (Cache, Changes)
where
    K: Resource<DynamicType = ()>,
{
    let resource = ApiResource::erase::<K>(&());
    let apis = scoped(
        namespaces,
        || (format!("{}s in all namespaces", resource.kind), Api::<DynamicObject>::all_with(client.clone(), &resource)),
        |n| (format!("{}s in {n}", resource.kind), Api::namespaced_with(client.clone(), n, &resource)),
    );
    let (mut stores, mut changes) = (Vec::new(), Vec::new());
    for (watched, api) in apis {
        let writer = reflector::store::Writer::new(resource.clone());
        let (listed_tx, listed) = tokio::sync::watch::channel(false);
        stores.push(Watched { what: watched.clone(), store: writer.as_reader(), listed });
        let mut generations = HashMap::new();
        let events = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff()
            .filter_map(move |event| {
                let changed = match event {
                    Ok(event) => {
                        if matches!(event, watcher::Event::InitDone) {
                            // The reflector has applied the list to the store by now.
                            listed_tx.send_replace(true);
                        }
                        spec_changed(&mut generations, &event).then_some(Changed::Object)
                    }
                    Err(error) => {
                        tracing::warn!(%watched, %error, "a watch failed; retrying");
                        None
                    }
                };
                std::future::ready(changed)
            });
        changes.push(events.boxed());
    }
    (Cache(stores), stream::select_all(changes).boxed())
}

/// What of an object a reconcile looks at: its `generation` (its spec) and its status.
type Seen = (Option<i64>, Option<serde_json::Value>);

fn seen(object: &DynamicObject) -> Seen {
    (object.metadata.generation, object.data.get("status").cloned())
}

/// Whether `event` changes what a reconcile looks at: an object created, deleted, with a
/// new `generation` (its spec changed) or another status (someone may have written a wrong
/// one; the operator's own writes come back once and change nothing more), or a list done.
/// Labels, annotations and the like are not looked at. `seen` holds each object's, by uid.
fn spec_changed(seen_before: &mut HashMap<String, Seen>, event: &watcher::Event<DynamicObject>) -> bool {
    match event {
        watcher::Event::Apply(object) => {
            let now = seen(object);
            seen_before.insert(object.uid().unwrap_or_default(), now.clone()) != Some(now)
        }
        watcher::Event::InitApply(object) => {
            seen_before.insert(object.uid().unwrap_or_default(), seen(object));
            false
        }
        watcher::Event::Delete(object) => {
            seen_before.remove(&object.uid().unwrap_or_default());
            true
        }
        watcher::Event::Init => {
            seen_before.clear();
            false
        }
        watcher::Event::InitDone => true,
    }
}

/// The (namespace, name) of every `K` that changes in the watched namespaces, as `changed`
/// says it. Metadata only, and nothing kept.
pub fn names<K>(client: &Client, namespaces: &[String], changed: fn(ObjectKey) -> Changed, listed: Changed) -> Changes
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let apis =
        scoped(namespaces, || Api::<PartialObjectMeta<K>>::all(client.clone()), |n| Api::namespaced(client.clone(), n));
    let watches = apis.into_iter().map(|api| {
        let listed = listed.clone();
        watcher(api, watcher::Config::default())
            .default_backoff()
            .filter_map(move |event| {
                let listed = listed.clone();
                async move {
                    let event = event
                        .inspect_err(
                            |error| tracing::warn!(kind = K::kind(&()).as_ref(), %error, "a watch failed; retrying"),
                        )
                        .ok()?;
                    match event {
                        watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o) => {
                            Some(changed(ObjectKey::new(o.namespace().unwrap_or_default(), o.name_any())))
                        }
                        watcher::Event::InitDone => Some(listed),
                        watcher::Event::Init => None,
                    }
                }
            })
            .boxed()
    });
    stream::select_all(watches).boxed()
}

/// Changes to the config Secrets of `release` in `namespace`.
pub fn shards(client: &Client, namespace: &str, release: &str) -> Changes {
    let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().labels(&format!("{RELEASE_LABEL}={release}"));
    watcher(api, config)
        .default_backoff()
        .filter_map(|event| async move {
            let event = event
                .inspect_err(|error| tracing::warn!(%error, "the watch of the config Secrets failed; retrying"))
                .ok()?;
            match event {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                    Some(Changed::Shard(o.name_any(), fingerprint(o.annotations())))
                }
                watcher::Event::Delete(o) => Some(Changed::Shard(o.name_any(), None)),
                watcher::Event::InitDone => Some(Changed::ShardsListed),
                watcher::Event::Init => None,
            }
        })
        .boxed()
}

/// Secrets or ConfigMaps that objects reference, read by name when first wanted and kept
/// until the watch says they changed (or nothing references them any more).
pub struct Referenced<K> {
    known: BTreeMap<ObjectKey, Option<K>>,
}

impl<K> Default for Referenced<K> {
    fn default() -> Self {
        Referenced { known: BTreeMap::new() }
    }
}

impl<K> Referenced<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    /// The object changed (or was created, or deleted): read it again when next wanted.
    pub fn changed(&mut self, key: &ObjectKey) {
        self.known.remove(key);
    }

    /// Forgets everything (this replica starts leading: what it kept may be old).
    pub fn clear(&mut self) {
        self.known.clear();
    }

    /// The objects named in `wanted` that exist, reading those not known yet
    /// ([`READS_AT_ONCE`] at a time). Only "not found" means missing: any other failure
    /// fails the whole, since a reference taken for missing would cost routes their
    /// credentials.
    pub async fn read(&mut self, client: &Client, wanted: &BTreeSet<ObjectKey>) -> kube::Result<Vec<K>> {
        self.known.retain(|key, _| wanted.contains(key));
        // Owned futures: a stream of borrowing closures is not `Send` for the controller's task.
        // A name no object can have is not asked for: that object does not exist, and the
        // request could not even be made (an empty name), or would ask for another path.
        for key in wanted.iter().filter(|key| !is_object_name(&key.name)) {
            self.known.insert(key.clone(), None);
        }
        let reads: Vec<_> = wanted
            .iter()
            .filter(|key| !self.known.contains_key(*key))
            .map(|key| {
                let (api, key) = (Api::<K>::namespaced(client.clone(), &key.namespace), key.clone());
                async move { api.get_opt(&key.name).await.map(|found| (key, found)) }
            })
            .collect();
        let found: Vec<_> = stream::iter(reads).buffered(READS_AT_ONCE).try_collect().await?;
        self.known.extend(found);
        Ok(self.known.values().flatten().cloned().collect())
    }
}

/// Whether `name` is one a Secret or ConfigMap can have: a DNS subdomain (RFC 1123).
fn is_object_name(name: &str) -> bool {
    let alphanumeric = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = name.as_bytes();
    (1..=253).contains(&bytes.len())
        && bytes.iter().all(|&c| alphanumeric(c) || c == b'-' || c == b'.')
        && name.split('.').all(|label| {
            let label = label.as_bytes();
            label.first().is_some_and(|&c| alphanumeric(c)) && label.last().is_some_and(|&c| alphanumeric(c))
        })
}

#[cfg(test)]
mod tests {
    use http::Method;
    use manifold_api::resources::McpServer;
    use serde_json::json;

    use super::*;
    use crate::testing::api_server_with_status;

    fn cache_of(kind: ApiResource, objects: &[serde_json::Value]) -> Cache {
        let mut writer = reflector::store::Writer::new(kind);
        for object in objects {
            writer.apply_watcher_event(&watcher::Event::Apply(serde_json::from_value(object.clone()).unwrap()));
        }
        let (_, listed) = tokio::sync::watch::channel(true);
        Cache(vec![Watched { what: "McpServers in acme".into(), store: writer.as_reader(), listed }])
    }

    /// A cache of two namespaces, and the switches that say each has listed.
    fn two_namespaces() -> (Cache, [tokio::sync::watch::Sender<bool>; 2]) {
        let resource = ApiResource::erase::<McpServer>(&());
        let watched = |what: &str| {
            let (tx, listed) = tokio::sync::watch::channel(false);
            let store = reflector::store::Writer::new(resource.clone()).as_reader();
            (Watched { what: what.into(), store, listed }, tx)
        };
        let ((acme, acme_tx), (globex, globex_tx)) = (watched("McpServers in acme"), watched("McpServers in globex"));
        (Cache(vec![acme, globex]), [acme_tx, globex_tx])
    }

    #[test]
    fn an_object_whose_fields_do_not_parse_is_reported_not_fatal() {
        let servers: Vec<_> = [
            ("good", json!({"url": "http://weather:8080/mcp"})),
            ("bad", json!({"url": "http://weather:8080/mcp", "transport": "websocket"})),
        ]
        .into_iter()
        .map(|(name, remote)| {
            json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer",
                "metadata": {"name": name, "namespace": "acme", "generation": 2}, "spec": {"remote": remote}})
        })
        .collect();
        let (servers, unreadable) =
            cache_of(ApiResource::erase::<McpServer>(&()), &servers).typed::<McpServer>(Kind::McpServer);
        assert_eq!(servers.iter().map(|s| s.name_any()).collect::<Vec<_>>(), ["good"]);
        assert_eq!(unreadable.len(), 1);
        assert_eq!((unreadable[0].object.name.as_str(), unreadable[0].generation), ("bad", Some(2)));
        assert_eq!(unreadable[0].problem.field, "spec.remote.transport");
    }

    #[test]
    fn only_changes_a_reconcile_looks_at_count() {
        let route = |generation: i64, status: &str| -> DynamicObject {
            serde_json::from_value(json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpRoute",
                "metadata": {"name": "store", "namespace": "acme", "uid": "u1", "generation": generation},
                "spec": {}, "status": {"path": status}}))
            .unwrap()
        };
        let mut seen = HashMap::new();
        let mut changed = |event: watcher::Event<DynamicObject>| spec_changed(&mut seen, &event);
        assert!(!changed(watcher::Event::Init));
        assert!(!changed(watcher::Event::InitApply(route(1, "/a"))));
        assert!(changed(watcher::Event::InitDone), "the first list");
        assert!(!changed(watcher::Event::Apply(route(1, "/a"))), "a label, say");
        assert!(changed(watcher::Event::Apply(route(1, "/b"))), "a status write");
        assert!(!changed(watcher::Event::Apply(route(1, "/b"))), "nothing new");
        assert!(changed(watcher::Event::Apply(route(2, "/b"))), "a spec edit");
        assert!(changed(watcher::Event::Delete(route(2, "/b"))));
        assert!(changed(watcher::Event::Apply(route(1, "/a"))), "created again");
    }

    #[test]
    fn what_has_not_listed_yet_is_named() {
        let (cache, [acme, _globex]) = two_namespaces();
        assert_eq!(cache.unlisted(), ["McpServers in acme", "McpServers in globex"]);
        acme.send_replace(true);
        assert_eq!(cache.unlisted(), ["McpServers in globex"], "globex's list never came");
    }

    #[tokio::test]
    async fn readiness_probes_do_not_keep_the_first_list_from_being_noticed() {
        let (cache, [acme, globex]) = two_namespaces();
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move { cache.wait_until_ready().await }
        });
        tokio::task::yield_now().await;
        // /readyz asks meanwhile, as a kubelet does every few seconds.
        assert_eq!(cache.unlisted().len(), 2);
        acme.send_replace(true);
        assert_eq!(cache.unlisted().len(), 1);
        globex.send_replace(true);
        let listed = tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await;
        assert!(matches!(listed, Ok(Ok(Ok(())))), "the waiter was woken: {listed:?}");
    }

    #[test]
    fn each_namespace_is_watched_once() {
        let listed = ["b", "a", "b"].map(String::from);
        assert_eq!(scope(&listed), ["a", "b"]);
    }

    #[tokio::test]
    async fn references_are_read_once_until_they_change_and_a_failed_read_is_not_a_missing_one() {
        let key = ObjectKey::new("acme", "key");
        let wanted = BTreeSet::from([key.clone()]);
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "key", "namespace": "acme"}});
        let throttled = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "TooManyRequests", "code": 429, "message": "slow down"});
        let uri = "/api/v1/namespaces/acme/secrets/key";
        let (client, server) = api_server_with_status(vec![
            (Method::GET, uri.into(), 429, throttled),
            (Method::GET, uri.into(), 200, secret.clone()),
            (Method::GET, uri.into(), 200, secret),
        ]);
        let mut secrets = Referenced::<Secret>::default();
        let failed = secrets.read(&client, &wanted).await;
        assert!(matches!(failed, Err(kube::Error::Api(ref status)) if status.code == 429), "{failed:?}");
        assert_eq!(secrets.read(&client, &wanted).await.unwrap().len(), 1);
        assert_eq!(secrets.read(&client, &wanted).await.unwrap().len(), 1, "known: not read again");
        secrets.changed(&key);
        assert_eq!(secrets.read(&client, &wanted).await.unwrap().len(), 1, "changed: read again");
        server.await.unwrap();

        let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "no"});
        let (client, server) = api_server_with_status(vec![(Method::GET, uri.into(), 404, not_found)]);
        let mut secrets = Referenced::<Secret>::default();
        assert!(secrets.read(&client, &wanted).await.unwrap().is_empty(), "missing is missing");
        assert!(secrets.read(&client, &wanted).await.unwrap().is_empty(), "and known to be");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_name_no_object_can_have_is_missing_without_a_request() {
        let names = ["", "a/b", "..", "Key", "-key", "key.", "a b", "key?watch=true", &"k".repeat(254)];
        let wanted: BTreeSet<_> = names.iter().map(|n| ObjectKey::new("acme", *n)).collect();
        // Any request fails the test: none is expected.
        let (client, server) = api_server_with_status(vec![]);
        let mut secrets = Referenced::<Secret>::default();
        assert!(secrets.read(&client, &wanted).await.unwrap().is_empty());
        server.await.unwrap();
        assert!(["key", "db-creds.v2", "0", &"k".repeat(253)].iter().all(|n| is_object_name(n)));
    }
}
