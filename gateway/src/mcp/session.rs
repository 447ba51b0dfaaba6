//! Client sessions: created by `initialize`, named by the `Mcp-Session-Id` header (a sealed
//! token, `seal`), ended by DELETE or by their maximum age. What defines a session (route,
//! principal, revision, capabilities, upstream sessions) is in its token, so any replica
//! with the key ring serves it. What a replica keeps in memory is an entry it can lose: one
//! upstream slot per mount used, the event streams, the requests in flight. Entries are made
//! by requests and dropped when no longer needed (see [`Sessions`]); the next request
//! brings the session back from its token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use manifold_api::ObjectKey;
use tokio::sync::oneshot;

use super::listeners::Listeners;
use super::rewrite;
use super::seal::{Claims, KeyRing};
use super::stream::{STANDALONE, Streams};
use crate::metrics::conventions::{Conventions, SessionEnd, SessionLabels, Version};
use crate::policy::cache::Store;
use crate::protocol::SUPPORTED_VERSIONS;
use crate::snapshot::{Mount, Route};
use crate::upstream::{Held, Hello, Slot, UpstreamClient};

/// Upstream slots by mount key, with the client each was opened with.
type Slots = HashMap<String, (Arc<UpstreamClient>, Arc<Slot>)>;

/// One client session.
pub struct Session {
    /// Its token (shared with the session table's key).
    pub id: Arc<str>,
    /// The route it was opened on, as (namespace, name).
    pub route: ObjectKey,
    /// Who opened it ([`Principal::binding`](crate::access::Principal::binding)): only they
    /// may use it.
    pub principal: String,
    /// When its token was issued, in seconds since the epoch.
    issued: u64,
    /// Opens its token again when a slot is first made for a mount: the upstream sessions
    /// the token holds are read from it then, not kept beside it. None for the gateway's own
    /// sessions, which have no token.
    ring: Option<Arc<KeyRing>>,
    pub hello: Hello,
    pub streams: Streams,
    /// Requests in flight, by the client's id, so that the client's `notifications/cancelled`
    /// stops the gateway's work and reaches the right upstream request.
    in_flight: Mutex<HashMap<u64, Flight>>,
    /// Set on a route's bridge session: the stateless listeners its upstreams' own messages
    /// go to.
    bridged_to: Option<Arc<Listeners>>,
    /// The gateway's own requests to the client (what a stateless upstream's
    /// `InputRequiredResult` asks), waiting for the client's answer, by id.
    asks: Mutex<HashMap<String, oneshot::Sender<Answered>>>,
    last_seen: AtomicU64,
    slots: Mutex<Slots>,
    /// Emptied for a mount when its upstream announces a change.
    cache: Arc<Store>,
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
        if let Some((_, held)) = self.held().into_iter().find(|(key, _)| *key == *mount.key) {
            client.resume(&slot, &held);
        }
        if let Some((stale_client, stale_slot)) =
            slots.insert(mount.key.to_string(), (Arc::clone(client), Arc::clone(&slot)))
        {
            tokio::spawn(async move { stale_client.close(&stale_slot).await });
        }
        slot
    }

    /// The slot for the mount `key` names on `route`, if the client uses that mount: a slot
    /// is open here, or the token holds an upstream session for it.
    pub fn used_slot(self: &Arc<Self>, route: &Route, key: &str) -> Option<(Arc<UpstreamClient>, Arc<Slot>)> {
        let mount = route.mounts.iter().find(|m| *m.key == *key)?;
        let used =
            self.slots.lock().expect("slots lock").contains_key(key) || self.held().iter().any(|(k, _)| k == key);
        used.then(|| (Arc::clone(&mount.client), self.slot(mount)))
    }

    /// The slot of every mount of `route` the client uses (see [`Session::used_slot`]).
    pub fn used_slots(self: &Arc<Self>, route: &Route) -> Vec<(Arc<UpstreamClient>, Arc<Slot>)> {
        route.mounts.iter().filter_map(|mount| self.used_slot(route, &mount.key)).collect()
    }

    /// Unsolicited messages of a mount's upstream go to the standalone stream; a bridge
    /// session's go to the route's stateless listeners.
    fn inbox(self: &Arc<Self>, mount: &Mount) -> crate::upstream::Inbox {
        let session: Weak<Session> = Arc::downgrade(self);
        let (key, prefix) = (Arc::clone(&mount.key), mount.config.prefix.clone());
        Arc::new(move |message| {
            let Some(session) = session.upgrade() else { return };
            if let Some(method) = message.method.as_deref() {
                session.cache.upstream_changed(&session.route.namespace, &session.route.name, &key, method);
            }
            if let Some(listeners) = &session.bridged_to {
                listeners.relay(&session.route, &prefix, message);
            } else if let Some(message) = rewrite::to_client(&key, &prefix, message) {
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

    /// A piece of the id, enough to follow a session in logs without handing out the token
    /// (the end: a token's start is its format and key id, the same for many sessions).
    pub fn log_id(&self) -> &str {
        &self.id[self.id.len().saturating_sub(8)..]
    }

    /// Ends every upstream session this client has: those open in a slot, and those its
    /// token holds that were never resumed here (found through the route's mounts).
    pub async fn close(&self, route: Option<&Route>) {
        let open: Vec<_> = self.slots.lock().expect("slots lock").drain().collect();
        let unused: Vec<_> = self.held().into_iter().filter(|(key, _)| !open.iter().any(|(k, _)| k == key)).collect();
        let mut slots: Vec<_> = open.into_iter().map(|(_, v)| v).collect();
        for (key, held) in unused {
            if let Some(mount) = route.and_then(|r| r.mounts.iter().find(|m| *m.key == *key)) {
                let slot = Arc::new(Slot::detached());
                mount.client.resume(&slot, &held);
                slots.push((Arc::clone(&mount.client), slot));
            }
        }
        futures::future::join_all(slots.iter().map(|(client, slot)| client.close(slot))).await;
    }

    /// Ends the upstream sessions opened on this replica that the token does not carry
    /// (lazily opened mounts, upstream sessions opened again after a 404): nobody else can
    /// reach them. Those the token carries stay, for the client's next request, here or
    /// on another replica.
    pub async fn release(&self) {
        let held = self.held();
        let own: Vec<_> = self
            .slots
            .lock()
            .expect("slots lock")
            .drain()
            .filter(|(key, (_, slot))| slot.holds_other_than(held_for(&held, key)))
            .map(|(_, open)| open)
            .collect();
        futures::future::join_all(own.iter().map(|(client, slot)| client.close(slot))).await;
    }

    /// Whether a request is in flight, the client listens on its standalone stream, or the
    /// gateway awaits one of the client's answers.
    fn busy(&self) -> bool {
        !self.in_flight.lock().expect("in-flight lock").is_empty()
            || !self.asks.lock().expect("asks lock").is_empty()
            || self.streams.has_listener()
    }

    /// Whether this replica opened an upstream session for the client that its token does
    /// not carry.
    fn holds_own(&self) -> bool {
        let held = self.held();
        self.slots
            .lock()
            .expect("slots lock")
            .iter()
            .any(|(key, (_, slot))| slot.holds_other_than(held_for(&held, key)))
    }

    /// The upstream sessions the token holds, by mount key.
    fn held(&self) -> Vec<(String, Held)> {
        self.ring.as_ref().and_then(|ring| ring.open(&self.id)).map(|claims| claims.upstreams).unwrap_or_default()
    }
}

fn held_for<'a>(held: &'a [(String, Held)], key: &str) -> Option<&'a Held> {
    held.iter().find(|(k, _)| k == key).map(|(_, held)| held)
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

/// How long an entry holding nothing but what its token says stays after its last request:
/// it spares a busy client's requests from opening the token each time.
const WARM: Duration = Duration::from_secs(60);

/// The sessions this replica holds in memory. A session opened by `initialize` is not held:
/// its token says all there is. An entry is made when a request arrives, and kept while the
/// session has something only this replica knows (a request in flight, a listening stream,
/// an upstream session opened here) and for [`WARM`] after its last request.
pub struct Sessions {
    map: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    /// Per route, the session through which clients of the stateless revision (2026-07-28)
    /// reach upstreams that only speak the session-based revisions: the gateway holds it.
    bridges: Mutex<HashMap<ObjectKey, Arc<Session>>>,
    /// Stateless clients listening for changes (`subscriptions/listen`).
    pub listeners: Arc<Listeners>,
    started: Instant,
    /// Upstream sessions opened here (not in the token) are ended after this long unused.
    idle_timeout: Duration,
    /// Most entries; beyond it, sessions are served without one.
    max: usize,
    /// Seals and opens session tokens.
    ring: Arc<KeyRing>,
    /// Tokens are refused past this age.
    max_age: Duration,
    /// Tokens of sessions ended by DELETE on this replica, until they would have expired.
    ended: Mutex<HashMap<String, u64>>,
    /// The gateway's cache, which what sessions' upstreams announce empties.
    cache: Arc<Store>,
    /// Where the sessions that end are timed (`mcp.server.session.duration`).
    durations: Option<Conventions>,
}

/// Whether a request makes its session an entry of the table (see [`Sessions`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// A request, or a stream: it has state the session's next requests may need.
    Yes,
    /// A notification, a response, a DELETE: served from the entry if there is one, else
    /// from the token alone.
    No,
}

impl Sessions {
    pub fn new(idle_timeout: Duration, max: usize, ring: KeyRing, max_age: Duration) -> Self {
        Sessions {
            map: Mutex::default(),
            bridges: Mutex::default(),
            listeners: Default::default(),
            started: Instant::now(),
            idle_timeout,
            max,
            ring: Arc::new(ring),
            max_age,
            ended: Mutex::default(),
            cache: Arc::new(Store::new(0)),
            durations: None,
        }
    }

    /// The key ring session tokens are sealed with: the gateway's, shared with what else it
    /// seals (consent states, stored upstream tokens).
    pub fn ring(&self) -> &Arc<KeyRing> {
        &self.ring
    }

    /// The same table, timing the sessions that end into `conventions`' session histogram.
    pub fn with_durations(self, conventions: Conventions) -> Self {
        Sessions { durations: Some(conventions), ..self }
    }

    /// Times a session that ended: from its token's issue to now, or, for one used past its
    /// maximum age, the maximum age.
    fn ended(&self, session: &Session, end: SessionEnd) {
        let Some(conventions) = &self.durations else { return };
        let lived = match end {
            SessionEnd::Closed => unix_now().saturating_sub(session.issued),
            SessionEnd::Expired => self.max_age.as_secs(),
        };
        let labels = SessionLabels {
            namespace: &session.route.namespace,
            route: &session.route.name,
            mcp_protocol_version: Version::of(&session.hello.protocol_version),
            error_type: end,
        };
        conventions.session(&labels, lived as f64);
    }

    /// The same table, with sessions whose upstreams' change notifications empty `cache`.
    pub fn with_cache(self, cache: Arc<Store>) -> Self {
        Sessions { cache, ..self }
    }

    /// Opens a session bound to `principal` (a binding), holding the upstream sessions
    /// already opened for it. Nothing of it stays in memory: its token holds it all.
    pub fn create(
        &self,
        route: ObjectKey,
        hello: Hello,
        principal: String,
        upstreams: Vec<(String, Held)>,
    ) -> Arc<Session> {
        let claims = Claims {
            route: route.to_string(),
            principal,
            version: hello.protocol_version.clone(),
            capabilities: hello.capabilities.clone(),
            issued: unix_now(),
            upstreams,
        };
        let token = crate::traces::instant("session.seal", || self.ring.seal(&claims), |_| Vec::new());
        self.session(token.into(), route, hello, Some(&claims), None)
    }

    /// A session outside the table, to open upstream sessions with before the session's
    /// token (which carries them) exists.
    pub fn provisional(&self, route: ObjectKey, hello: Hello) -> Arc<Session> {
        self.session(random_id(), route, hello, None, None)
    }

    /// The gateway's own session for a route's stateless clients (see `bridges`). It offers
    /// upstreams no client capabilities: the stateless revision has no server-to-client
    /// requests to relay them with.
    pub fn bridge(&self, route: &ObjectKey) -> Arc<Session> {
        let mut bridges = self.bridges.lock().expect("bridges lock");
        let hello = || Hello {
            protocol_version: SUPPORTED_VERSIONS[0].into(),
            capabilities: crate::jsonrpc::raw(&serde_json::json!({})),
        };
        let bridged_to = Some(Arc::clone(&self.listeners));
        Arc::clone(
            bridges
                .entry(route.clone())
                .or_insert_with(|| self.session(random_id(), route.clone(), hello(), None, bridged_to)),
        )
    }

    /// A session named by `id`: a client's, whose token holds `claims`, or (with none) one of
    /// the gateway's own, never handed to a client and bound to nobody.
    fn session(
        &self,
        id: Arc<str>,
        route: ObjectKey,
        hello: Hello,
        claims: Option<&Claims>,
        bridged_to: Option<Arc<Listeners>>,
    ) -> Arc<Session> {
        Arc::new(Session {
            bridged_to,
            id,
            route,
            principal: claims.map(|c| c.principal.clone()).unwrap_or_default(),
            issued: claims.map_or_else(unix_now, |c| c.issued),
            ring: claims.map(|_| Arc::clone(&self.ring)),
            hello,
            streams: Streams::default(),
            in_flight: Mutex::default(),
            asks: Mutex::default(),
            last_seen: AtomicU64::new(self.now()),
            slots: Mutex::default(),
            cache: Arc::clone(&self.cache),
        })
    }

    /// The session a token names on `route` (namespace, name) for `principal` (a binding):
    /// this replica's entry, else the token opened (a session another replica began, or
    /// this one before a restart or before its entry was dropped). None for a token that
    /// does not open, is older than the maximum age, was ended here, or belongs to another
    /// route or another caller: to them, the session does not exist.
    pub fn get(&self, id: &str, route: (&str, &str), principal: &str, keep: Keep) -> Option<Arc<Session>> {
        let cached = self.map.lock().expect("sessions lock").get(id).cloned();
        let held = cached.is_some();
        let session = match cached {
            Some(session) => session,
            None => {
                if self.ended.lock().expect("ended lock").contains_key(id) {
                    return None;
                }
                let claims = crate::traces::instant("session.open", || self.ring.open(id), |_| Vec::new())?;
                if claims.route.split_once('/') != Some(route) || claims.principal != principal {
                    return None;
                }
                let hello =
                    Hello { protocol_version: claims.version.clone(), capabilities: claims.capabilities.clone() };
                let session = self.session(id.into(), ObjectKey::new(route.0, route.1), hello, Some(&claims), None);
                if keep == Keep::Yes { self.admit(session) } else { session }
            }
        };
        if (session.route.namespace.as_str(), session.route.name.as_str()) != route || session.principal != principal {
            return None;
        }
        if unix_now().saturating_sub(session.issued) > self.max_age.as_secs() {
            // Timed once per replica: by the replica that held it in use. A token shown
            // again, or first shown to this replica, past its age is refused untimed.
            self.map.lock().expect("sessions lock").remove(id);
            if held {
                self.ended(&session, SessionEnd::Expired);
            }
            return None;
        }
        session.last_seen.store(self.now(), Ordering::Relaxed);
        Some(session)
    }

    /// Keeps a session in this replica's table; when the table is full, the session is
    /// served without an entry (it loses only what an entry would have kept).
    fn admit(&self, session: Arc<Session>) -> Arc<Session> {
        let mut map = self.map.lock().expect("sessions lock");
        if map.len() >= self.max {
            return session;
        }
        Arc::clone(map.entry(session.id.clone()).or_insert(session))
    }

    /// Ends a session (its client asked): its token is refused on this replica until it would
    /// have expired.
    pub fn remove(&self, session: &Session) {
        self.ended(session, SessionEnd::Closed);
        self.map.lock().expect("sessions lock").remove(&session.id);
        let mut ended = self.ended.lock().expect("ended lock");
        let oldest = unix_now().saturating_sub(self.max_age.as_secs());
        ended.retain(|_, issued| *issued >= oldest);
        ended.insert(session.id.to_string(), session.issued);
    }

    /// Entries in the table.
    pub fn count(&self) -> usize {
        self.map.lock().expect("sessions lock").len()
    }

    /// Every entry, for announcements.
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.map.lock().expect("sessions lock").values().cloned().collect()
    }

    /// Removes and returns the entries no longer needed: those holding nothing but their
    /// token's contents after [`WARM`], the others after the idle timeout. An entry with a
    /// request in flight or a listening client stays.
    pub fn expire(&self) -> Vec<Arc<Session>> {
        let now = self.now();
        let mut expired = Vec::new();
        self.map.lock().expect("sessions lock").retain(|_, s| {
            let idle = Duration::from_secs(now.saturating_sub(s.last_seen.load(Ordering::Relaxed)));
            let keep = s.busy() || idle < WARM.min(self.idle_timeout) || (idle < self.idle_timeout && s.holds_own());
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

/// A name for one of the gateway's own sessions: random, and no token.
fn random_id() -> Arc<str> {
    uuid::Uuid::new_v4().simple().to_string().into()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello { protocol_version: "2025-11-25".into(), capabilities: crate::jsonrpc::raw(&serde_json::json!({})) }
    }

    /// Sessions whose entries last no longer than the next expiry pass.
    fn sessions() -> Sessions {
        Sessions::new(Duration::ZERO, 10, KeyRing::generate(), Duration::from_secs(3600))
    }

    #[test]
    fn a_session_has_an_entry_only_while_requests_need_one() {
        let sessions = sessions();
        let token = sessions.create(ObjectKey::new("acme", "tools"), hello(), "alice".into(), vec![]).id.clone();
        assert_eq!(sessions.count(), 0, "initialize keeps nothing");
        assert!(sessions.get(&token, ("acme", "tools"), "alice", Keep::No).is_some());
        assert_eq!(sessions.count(), 0, "a notification keeps nothing");
        let session = sessions.get(&token, ("acme", "tools"), "alice", Keep::Yes).unwrap();
        assert_eq!(sessions.count(), 1, "a request does");

        let in_flight = session.track("1");
        assert!(sessions.expire().is_empty(), "a request in flight keeps the entry");
        drop(in_flight);
        assert_eq!(sessions.expire().len(), 1);
        assert_eq!(sessions.count(), 0);
        assert!(sessions.get(&token, ("acme", "tools"), "alice", Keep::Yes).is_some(), "the token brings it back");
    }

    #[test]
    fn a_session_is_found_only_on_its_route_and_for_its_principal() {
        let sessions = sessions();
        let token = sessions.create(ObjectKey::new("acme", "tools"), hello(), "alice".into(), vec![]).id.clone();
        for keep in [Keep::No, Keep::Yes, Keep::No] {
            // The second round finds the entry the first `Keep::Yes` made: the same checks hold.
            assert!(sessions.get(&token, ("acme", "other"), "alice", keep).is_none(), "another route");
            assert!(sessions.get(&token, ("globex", "tools"), "alice", keep).is_none(), "another tenant");
            assert!(sessions.get(&token, ("acme", "tools"), "bob", keep).is_none(), "another principal");
            assert!(sessions.get(&token, ("acme", "tools"), "alice", keep).is_some());
        }
        let session = sessions.get(&token, ("acme", "tools"), "alice", Keep::No).unwrap();
        sessions.remove(&session);
        assert!(sessions.get(&token, ("acme", "tools"), "alice", Keep::Yes).is_none(), "ended here");
    }

    #[test]
    fn a_session_that_ends_is_timed_closed_or_expired() {
        let registry = prometheus::Registry::new();
        let conventions = Conventions::register(&registry);
        let sessions = sessions().with_durations(conventions.clone());
        let labels = |error_type| SessionLabels {
            namespace: "acme",
            route: "tools",
            mcp_protocol_version: Version::of("2025-11-25"),
            error_type,
        };
        let token = sessions.create(ObjectKey::new("acme", "tools"), hello(), "alice".into(), vec![]).id.clone();
        let session = sessions.get(&token, ("acme", "tools"), "alice", Keep::Yes).unwrap();
        sessions.remove(&session);
        let (counts, _, _) =
            conventions.session.snapshot(&labels(SessionEnd::Closed)).expect("a closed session is timed");
        assert_eq!(counts.last(), Some(&1));

        // A token issued two hours ago, past the table's maximum age of one.
        let claims = Claims {
            route: "acme/tools".into(),
            principal: "alice".into(),
            version: "2025-11-25".into(),
            capabilities: crate::jsonrpc::raw(&serde_json::json!({})),
            issued: unix_now() - 7200,
            upstreams: vec![],
        };
        let old = sessions.ring.seal(&claims);
        let entry = sessions.session(old.clone().into(), ObjectKey::new("acme", "tools"), hello(), Some(&claims), None);
        sessions.admit(entry);
        for _ in 0..2 {
            assert!(sessions.get(&old, ("acme", "tools"), "alice", Keep::Yes).is_none(), "refused: too old");
        }
        let (counts, sum, _) = conventions.session.snapshot(&labels(SessionEnd::Expired)).expect("an expired one too");
        assert_eq!((counts.last(), sum), (Some(&1), 3600.0), "once, as long as its maximum age");
    }
}
