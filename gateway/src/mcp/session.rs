//! Client sessions: created by `initialize`, named by the `Mcp-Session-Id` header, ended by
//! DELETE or by idling out. Each holds the client's negotiated revision and one upstream
//! slot per mounted client. In memory for now, all behind this module.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::upstream::{Hello, Slot, UpstreamClient};

/// Upstream slots by mounted server, with the client each was opened with.
type Slots = HashMap<String, (Arc<UpstreamClient>, Arc<Slot>)>;

/// One client session.
pub struct Session {
    pub id: String,
    /// The route it was opened on, as (namespace, name).
    pub route: (String, String),
    pub hello: Hello,
    last_seen: AtomicU64,
    slots: Mutex<Slots>,
}

impl Session {
    /// The slot for a mounted server. When a reload changed the server's upstream (its URL,
    /// its credentials), the old upstream session is closed and a fresh slot replaces it.
    pub fn slot(&self, server: &str, client: &Arc<UpstreamClient>) -> Arc<Slot> {
        let mut slots = self.slots.lock().expect("slots lock");
        if let Some((owner, slot)) = slots.get(server) {
            if Arc::ptr_eq(owner, client) {
                return Arc::clone(slot);
            }
            if owner.serial > client.serial {
                // A request still on an older snapshot: it gets a slot of its own for this
                // call, and the newer upstream session stays.
                return Arc::new(Slot::default());
            }
        }
        let slot = Arc::new(Slot::default());
        if let Some((stale_client, stale_slot)) =
            slots.insert(server.to_owned(), (Arc::clone(client), Arc::clone(&slot)))
        {
            tokio::spawn(async move { stale_client.close(&stale_slot).await });
        }
        slot
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

/// All sessions of this replica.
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    started: Instant,
    idle_timeout: Duration,
    max: usize,
}

impl Sessions {
    pub fn new(idle_timeout: Duration, max: usize) -> Self {
        Sessions { map: Mutex::default(), started: Instant::now(), idle_timeout, max }
    }

    /// Opens a session, or None when this replica holds its maximum.
    pub fn create(&self, route: (String, String), hello: Hello) -> Option<Arc<Session>> {
        let session = Arc::new(Session {
            id: uuid::Uuid::new_v4().simple().to_string(),
            route,
            hello,
            last_seen: AtomicU64::new(self.now()),
            slots: Mutex::default(),
        });
        let mut map = self.map.lock().expect("sessions lock");
        if map.len() >= self.max {
            return None;
        }
        map.insert(session.id.clone(), Arc::clone(&session));
        Some(session)
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

    /// Removes and returns sessions idle for longer than the timeout.
    pub fn expire(&self) -> Vec<Arc<Session>> {
        let cutoff = self.now().saturating_sub(self.idle_timeout.as_secs());
        let mut expired = Vec::new();
        self.map.lock().expect("sessions lock").retain(|_, s| {
            let keep = s.last_seen.load(Ordering::Relaxed) >= cutoff;
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
