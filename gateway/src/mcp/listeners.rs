//! Stateless clients listening for changes (`subscriptions/listen`): what each asked to hear
//! (`Filter`), the listeners of this replica, and how upstreams' change notifications reach
//! them, tagged with the listener's subscription id and with client-side URIs.

use manifold_api::ObjectKey;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::names::prefix_uri;
use super::stream::DirectSender;
use crate::jsonrpc::Message;
use crate::policy::cache::Store;
use crate::protocol::{Method, meta};
use crate::upstream::Observer;

/// What a `subscriptions/listen` asks to hear about.
#[derive(serde::Deserialize, serde::Serialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    tools_list_changed: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    prompts_list_changed: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    resources_list_changed: bool,
    /// Resource URIs, as the side that sent the filter writes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_subscriptions: Vec<String>,
}

impl Filter {
    /// The same filter over other resource URIs (an upstream's own, for its listen stream).
    pub fn with_subscriptions(&self, resource_subscriptions: Vec<String>) -> Filter {
        Filter { resource_subscriptions, ..self.clone() }
    }

    fn wants(&self, method: Method) -> bool {
        match method {
            Method::ToolsListChanged => self.tools_list_changed,
            Method::PromptsListChanged => self.prompts_list_changed,
            Method::ResourcesListChanged => self.resources_list_changed,
            Method::ResourceUpdated => !self.resource_subscriptions.is_empty(),
            _ => false,
        }
    }

    /// Whether this notification is one asked for: an update only of a subscribed resource
    /// (the subscriptions were authorized; other updates on a shared upstream session were
    /// not), with URIs of the same side as the filter's.
    fn admits(&self, method: Method, params: &Map<String, Value>) -> bool {
        self.wants(method)
            && (method != Method::ResourceUpdated
                || params
                    .get("uri")
                    .and_then(Value::as_str)
                    .is_some_and(|uri| self.resource_subscriptions.iter().any(|s| s == uri)))
    }
}

/// One stateless client listening for changes.
struct Listener {
    route: ObjectKey,
    id: Box<RawValue>,
    filter: Filter,
    sender: DirectSender,
}

/// The stateless clients listening for changes on this replica.
#[derive(Default)]
pub struct Listeners(std::sync::Mutex<Vec<Listener>>);

impl Listeners {
    /// Tells the listeners of a route that the gateway's config changed what it exposes.
    pub fn announce(&self, route: &ObjectKey) {
        let mut listeners = self.0.lock().expect("listeners lock");
        listeners.retain(|l| !l.sender.is_closed());
        for listener in listeners.iter().filter(|l| &l.route == route) {
            for method in Method::LIST_CHANGES {
                if listener.filter.wants(method) {
                    listener.sender.send(&tagged(method.name(), Map::new(), &listener.id));
                }
            }
        }
    }
}

impl Listeners {
    /// Adds a client that listens from now on; clients that went away are forgotten here, as
    /// new ones arrive.
    pub fn register(&self, route: ObjectKey, id: Box<RawValue>, filter: Filter, sender: DirectSender) {
        let mut registered = self.0.lock().expect("listeners lock");
        registered.retain(|l| !l.sender.is_closed());
        registered.push(Listener { route, id, filter, sender });
    }

    /// Relays what a session-only upstream announced on the route's bridge session to the
    /// route's listeners that asked for it.
    pub fn relay(&self, route: &ObjectKey, prefix: &str, message: Message) {
        let Some(name) = message.method.as_deref() else { return };
        let method = Method::parse(name);
        if message.id.is_some() {
            return;
        }
        let mut params: Map<String, Value> =
            message.params.and_then(|p| serde_json::from_str(p.get()).ok()).unwrap_or_default();
        if let Some(Value::String(uri)) = params.get_mut("uri") {
            *uri = prefix_uri(prefix, uri);
        }
        let listeners = self.0.lock().expect("listeners lock");
        for listener in listeners.iter().filter(|l| &l.route == route && l.filter.admits(method, &params)) {
            listener.sender.send(&tagged(name, params.clone(), &listener.id));
        }
    }
}

/// A notification of a listen stream, tagged with the stream's subscription id.
pub fn tagged(method: &str, mut params: Map<String, Value>, id: &RawValue) -> Vec<u8> {
    let id: Value = serde_json::from_str(id.get()).unwrap_or_default();
    let meta = params.entry("_meta").or_insert_with(|| json!({}));
    if let Value::Object(meta) = meta {
        meta.insert(meta::SUBSCRIPTION_ID.into(), id);
    }
    serde_json::to_vec(&json!({ "jsonrpc": "2.0", "method": method, "params": params })).expect("JSON serializes")
}

/// Relays an upstream's listen stream to the client's: changes it asked for, tagged with the
/// client's subscription id, resource URIs in the client's form.
pub struct ListenRelay<'a> {
    pub sender: &'a DirectSender,
    pub id: &'a RawValue,
    pub prefix: &'a str,
    pub filter: &'a Filter,
    /// Fired when the upstream acknowledges its subscription.
    pub ready: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    /// The cache the upstream's change notifications empty, for the route and the mount
    /// (its key) the stream is of.
    pub changes: (&'a Store, &'a ObjectKey, &'a str),
}

impl Observer for ListenRelay<'_> {
    fn message(&self, message: Message) {
        let Some(name) = message.method.as_deref() else { return };
        let method = Method::parse(name);
        if method == Method::SubscriptionsAcknowledged {
            if let Some(ready) = self.ready.lock().expect("ready lock").take() {
                let _ = ready.send(());
            }
            return;
        }
        if message.id.is_some() {
            return;
        }
        let (cache, route, mount) = self.changes;
        cache.upstream_changed(&route.namespace, &route.name, mount, name);
        let mut params: Map<String, Value> =
            message.params.and_then(|p| serde_json::from_str(p.get()).ok()).unwrap_or_default();
        if !self.filter.admits(method, &params) {
            return;
        }
        if let Some(Value::String(uri)) = params.get_mut("uri") {
            *uri = prefix_uri(self.prefix, uri);
        }
        self.sender.send(&tagged(name, params, self.id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_hears_updates_only_of_its_own_subscriptions() {
        let filter: Filter =
            serde_json::from_value(json!({"resourceSubscriptions": ["res://a/mine"], "toolsListChanged": true}))
                .unwrap();
        let params = |uri: &str| json!({ "uri": uri }).as_object().unwrap().clone();
        assert!(filter.admits(Method::ResourceUpdated, &params("res://a/mine")));
        assert!(!filter.admits(Method::ResourceUpdated, &params("res://a/theirs")));
        assert!(!filter.admits(Method::ResourceUpdated, &Map::new()));
        assert!(filter.admits(Method::ToolsListChanged, &Map::new()));
        assert!(!filter.admits(Method::PromptsListChanged, &Map::new()));
    }
}
