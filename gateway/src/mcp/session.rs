//! Client sessions: created by `initialize`, named by the `Mcp-Session-Id` header, ended by
//! DELETE or by idling out. Each holds the client's negotiated revision, one upstream slot
//! per mount, its event streams, and the requests it has in flight upstream. In memory for
//! now, all behind this module.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::relay;
use super::stream::{STANDALONE, Streams};
use crate::snapshot::Mount;
use crate::upstream::{Hello, Slot, UpstreamClient};

/// Upstream slots by mount key, with the client each was opened with.
type Slots = HashMap<String, (Arc<UpstreamClient>, Arc<Slot>)>;

/// One client session.
pub struct Session {
    pub id: String,
    /// The route it was opened on, as (namespace, name).
    pub route: (String, String),
    /// Who opened it ([`Principal::identity`](crate::access::Principal::identity)): only
    /// they may use it.
    pub principal: String,
    pub hello: Hello,
    pub streams: Streams,
    /// Requests in flight, by the client's id, so that the client's `notifications/cancelled`
    /// stops the gateway's work and reaches the right upstream request.
    in_flight: Mutex<HashMap<u64, Flight>>,
    /// Set on a route's bridge session: the stateless listeners its upstreams' own messages
    /// go to.
    bridged_to: Option<Arc<super::stateless::Listeners>>,
    /// The gateway's own requests to the client (what a stateless upstream's
    /// `InputRequiredResult` asks), waiting for the client's answer, by id.
    asks: Mutex<HashMap<String, oneshot::Sender<Answered>>>,
    last_seen: AtomicU64,
    slots: Mutex<Slots>,
}

/// A request of the gateway's own to the client, waiting for its answer.
pub struct Ask<'a> {
    session: &'a Session,
    pub id: String,
    answer: Option<oneshot::Receiver<Answered>>,
}

impl Ask<'_> {
    /// The client's answer; None if it can no longer come.
    pub async fn answer(&mut self) -> Option<Answered> {
        self.answer.take()?.await.ok()
    }
}

impl Drop for Ask<'_> {
    fn drop(&mut self) {
        self.session.asks.lock().expect("asks lock").remove(&self.id);
    }
}

/// A client's answer: its result or its error.
pub type Answered = (Option<Box<serde_json::value::RawValue>>, Option<Box<serde_json::value::RawValue>>);

impl Session {
    /// The slot for a mount. When a reload changed the mount's upstream (its URL, its
    /// credentials), the old upstream session is closed and a fresh slot replaces it.
    pub fn slot(self: &Arc<Self>, mount: &Mount) -> Arc<Slot> {
        let client = &mount.client;
        let mut slots = self.slots.lock().expect("slots lock");
        if let Some((owner, slot)) = slots.get(&*mount.key) {
            if Arc::ptr_eq(owner, client) {
                return Arc::clone(slot);
            }
            if owner.serial > client.serial {
                // A request still on an older snapshot: it gets a slot of its own for this
                // call, and the newer upstream session stays.
                return Arc::new(Slot::detached());
            }
        }
        let slot = Arc::new(Slot::new(self.inbox(mount)));
        if let Some((stale_client, stale_slot)) =
            slots.insert(mount.key.to_string(), (Arc::clone(client), Arc::clone(&slot)))
        {
            tokio::spawn(async move { stale_client.close(&stale_slot).await });
        }
        slot
    }

    /// The open slot for a mount key, if the client has used that mount.
    pub fn existing_slot(&self, key: &str) -> Option<(Arc<UpstreamClient>, Arc<Slot>)> {
        self.slots.lock().expect("slots lock").get(key).cloned()
    }

    /// Every open slot.
    pub fn all_slots(&self) -> Vec<(Arc<UpstreamClient>, Arc<Slot>)> {
        self.slots.lock().expect("slots lock").values().cloned().collect()
    }

    /// Unsolicited messages of a mount's upstream go to the standalone stream; a bridge
    /// session's go to the route's stateless listeners.
    fn inbox(self: &Arc<Self>, mount: &Mount) -> crate::upstream::Inbox {
        let session: Weak<Session> = Arc::downgrade(self);
        let (key, prefix) = (Arc::clone(&mount.key), mount.config.prefix.clone());
        Arc::new(move |message| {
            let Some(session) = session.upgrade() else { return };
            if let Some(listeners) = &session.bridged_to {
                listeners.relay(&session.route, &prefix, message);
            } else if let Some(message) = relay::to_client(&key, &prefix, message) {
                session.streams.send(STANDALONE, &message);
            }
        })
    }

    /// An id for a request of the gateway's own to the client, and the client's answer to come.
    /// The request is forgotten when the returned [`Ask`] is dropped, answered or not.
    pub fn ask(&self) -> Ask<'_> {
        static ASKED: AtomicU64 = AtomicU64::new(0);
        let id = format!("manifold-ask-{}", ASKED.fetch_add(1, Ordering::Relaxed));
        let (tx, answer) = oneshot::channel();
        self.asks.lock().expect("asks lock").insert(id.clone(), tx);
        Ask { session: self, id, answer: Some(answer) }
    }

    /// Delivers the client's answer to one of the gateway's own requests; false when `id` is
    /// not one of them.
    pub fn answer(&self, id: &str, answered: Answered) -> bool {
        match self.asks.lock().expect("asks lock").remove(id) {
            Some(waiting) => {
                let _ = waiting.send(answered);
                true
            }
            None => false,
        }
    }

    /// Tracks a client request for as long as the returned [`Tracked`] lives (also when the
    /// request is dropped because its client went away).
    pub fn track(self: &Arc<Self>, client_id: &str) -> Tracked {
        let (cancel, cancelled) = oneshot::channel();
        let key = flight_key(client_id);
        self.in_flight.lock().expect("in-flight lock").insert(key, Flight { cancel, upstream: None });
        Tracked { session: Arc::clone(self), key, cancelled }
    }

    /// Records where a tracked request went upstream (the latest, if it went to several).
    pub fn started(&self, client_id: &str, key: &Arc<str>, upstream_id: u64) {
        if let Some(flight) = self.in_flight.lock().expect("in-flight lock").get_mut(&flight_key(client_id)) {
            flight.upstream = Some((Arc::clone(key), upstream_id));
        }
    }

    /// Cancels a request the client has in flight; returns the mount key and upstream id it
    /// went to, if any.
    pub fn cancel(&self, client_id: &str) -> Option<(Arc<str>, u64)> {
        let flight = self.in_flight.lock().expect("in-flight lock").remove(&flight_key(client_id))?;
        let _ = flight.cancel.send(());
        flight.upstream
    }

    /// A prefix of the id, enough to follow a session in logs without handing out the token.
    pub fn log_id(&self) -> &str {
        &self.id[..8]
    }

    /// Ends every upstream session this client opened.
    pub async fn close(&self) {
        let slots: Vec<_> = self.slots.lock().expect("slots lock").drain().map(|(_, v)| v).collect();
        futures::future::join_all(slots.iter().map(|(client, slot)| client.close(slot))).await;
    }
}

/// A tracked client request.
pub struct Tracked {
    session: Arc<Session>,
    key: u64,
    /// Resolves if the client cancels the request.
    pub cancelled: oneshot::Receiver<()>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.session.in_flight.lock().expect("in-flight lock").remove(&self.key);
    }
}

/// A client request in flight: how to stop it, and where it went upstream.
struct Flight {
    cancel: oneshot::Sender<()>,
    upstream: Option<(Arc<str>, u64)>,
}

/// A client's request id (raw JSON) as a key: a hash, so that tracking a request costs no
/// allocation. Ids are unique among a session's requests in flight.
fn flight_key(client_id: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(client_id)
}

/// All sessions of this replica.
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    /// Per route, the session through which clients of the stateless revision (2026-07-28)
    /// reach upstreams that only speak the session-based revisions: the gateway holds it.
    bridges: Mutex<HashMap<(String, String), Arc<Session>>>,
    /// Stateless clients listening for changes (`subscriptions/listen`).
    pub listeners: Arc<super::stateless::Listeners>,
    started: Instant,
    idle_timeout: Duration,
    max: usize,
}

impl Sessions {
    pub fn new(idle_timeout: Duration, max: usize) -> Self {
        Sessions {
            map: Mutex::default(),
            bridges: Mutex::default(),
            listeners: Default::default(),
            started: Instant::now(),
            idle_timeout,
            max,
        }
    }

    /// Opens a session, or None when this replica holds its maximum.
    pub fn create(&self, route: (String, String), hello: Hello, principal: String) -> Option<Arc<Session>> {
        let session = self.session(route, hello, principal, None);
        let mut map = self.map.lock().expect("sessions lock");
        if map.len() >= self.max {
            return None;
        }
        map.insert(session.id.clone(), Arc::clone(&session));
        Some(session)
    }

    /// The gateway's own session for a route's stateless clients (see `bridges`). It offers
    /// upstreams no client capabilities: the stateless revision has no server-to-client
    /// requests to relay them with.
    pub fn bridge(&self, route: &(String, String)) -> Arc<Session> {
        let mut bridges = self.bridges.lock().expect("bridges lock");
        let hello =
            || Hello { protocol_version: super::SUPPORTED_VERSIONS[0].into(), capabilities: serde_json::json!({}) };
        let bridged_to = Some(Arc::clone(&self.listeners));
        Arc::clone(
            bridges
                .entry(route.clone())
                .or_insert_with(|| self.session(route.clone(), hello(), String::new(), bridged_to)),
        )
    }

    fn session(
        &self,
        route: (String, String),
        hello: Hello,
        principal: String,
        bridged_to: Option<Arc<super::stateless::Listeners>>,
    ) -> Arc<Session> {
        Arc::new(Session {
            bridged_to,
            id: uuid::Uuid::new_v4().simple().to_string(),
            route,
            principal,
            hello,
            streams: Streams::default(),
            in_flight: Mutex::default(),
            asks: Mutex::default(),
            last_seen: AtomicU64::new(self.now()),
            slots: Mutex::default(),
        })
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let session = self.map.lock().expect("sessions lock").get(id).cloned()?;
        session.last_seen.store(self.now(), Ordering::Relaxed);
        Some(session)
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        self.map.lock().expect("sessions lock").remove(id)
    }

    pub fn count(&self) -> usize {
        self.map.lock().expect("sessions lock").len()
    }

    /// Every session, for announcements.
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.map.lock().expect("sessions lock").values().cloned().collect()
    }

    /// Removes and returns sessions idle for longer than the timeout. A client listening on
    /// its standalone stream is not idle.
    pub fn expire(&self) -> Vec<Arc<Session>> {
        let cutoff = self.now().saturating_sub(self.idle_timeout.as_secs());
        let mut expired = Vec::new();
        self.map.lock().expect("sessions lock").retain(|_, s| {
            let keep = s.last_seen.load(Ordering::Relaxed) >= cutoff || s.streams.has_listener();
            if !keep {
                expired.push(Arc::clone(s));
            }
            keep
        });
        expired
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}
