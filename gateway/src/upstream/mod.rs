//! Clients for mounted sub-servers. A sub-server is an MCP server, reached over streamable
//! HTTP or legacy SSE, or a REST API answered in the gateway (`openapi`), which has no
//! sessions and no streams. One [`UpstreamClient`] per tenant and upstream config
//! (connections come from the calling thread's pool); one [`Slot`] per (client session,
//! mounted server) holding that client's session with an MCP server,
//! opened lazily with `initialize` and reopened once, transparently, when the upstream has
//! forgotten it (HTTP 404, or a closed SSE stream). What an upstream sends besides replies
//! (notifications, its own requests) goes to an [`Observer`] of the request it belongs to,
//! or, from the upstream's standalone stream, to the slot's [`Inbox`].

pub mod client;
pub mod identity;
mod legacy;
pub mod openapi;
pub mod sse;
mod streamable;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use bytes::Bytes;
use manifold_api::config::{Transport, Upstream};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use tokio::task::AbortHandle;

use crate::jsonrpc::Message;
use crate::metrics::conventions::ErrorType;
use crate::policy::resilience::Guard;

/// How many pages of one upstream's list the gateway follows before it stops trusting it.
const MAX_PAGES: usize = 1000;

/// The largest message the gateway reads from an upstream, as a JSON body or one SSE event.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// An upstream session as a session token carries it, so that any replica can go on in it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Held {
    /// The upstream's `Mcp-Session-Id`.
    #[serde(rename = "i")]
    pub id: String,
    /// The revision negotiated with the upstream.
    #[serde(rename = "v")]
    pub version: String,
}

/// What the gateway says about itself when it opens an upstream session on a client's behalf.
#[derive(Debug, Clone)]
pub struct Hello {
    /// Protocol revision negotiated with the client; offered to the upstream.
    pub protocol_version: String,
    /// The capabilities the client declared: a JSON object, kept as text (a session holds
    /// it for its whole life, and a parsed map costs several times its size).
    pub capabilities: Box<RawValue>,
}

/// Sees one upstream exchange as it happens: the id the request went out with (again, if it
/// is re-sent on a new session), and every message the upstream sends on the request's
/// stream that is not its reply.
pub trait Observer: Sync {
    fn sent(&self, _id: u64) {}
    fn message(&self, _message: Message) {}
}

/// An observer that keeps nothing: for the gateway's own requests.
pub struct Unobserved;

impl Observer for Unobserved {}

/// Where a slot's unsolicited upstream messages go (its standalone stream; all messages of a
/// legacy SSE upstream that are not replies).
pub type Inbox = Arc<dyn Fn(Message) + Send + Sync>;

/// An upstream's answer to a request: a raw result or a raw JSON-RPC error object.
#[derive(Debug)]
pub enum Reply {
    Result(Box<RawValue>),
    Error(Box<RawValue>),
}

/// Why a request to an upstream failed. Only calls to that upstream are affected.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made: the request provably never left the gateway.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection failed after the request may have been sent.
    #[error("connection failed: {0}")]
    Unreachable(String),
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// An HTTP error status; `retry_after` is its `Retry-After` (on a 429 or 503).
    #[error("answered HTTP {status}: {excerpt}")]
    Status { status: u16, excerpt: String, retry_after: Option<Duration> },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("the upstream session has expired")]
    SessionExpired,
    /// The upstream's circuit breaker is open: nothing was sent.
    #[error("circuit breaker open; next try in {} ms", .0.as_millis())]
    CircuitOpen(Duration),
    /// No place in the upstream's cap on requests in flight came free in time: nothing was sent.
    #[error("{0} requests are in flight already")]
    Busy(u32, Duration),
    /// No credential could be had for the caller (see `identity`): nothing was sent.
    #[error("no credential for the caller: {0}")]
    Credential(identity::Denied),
}

impl From<manifold_runtime::egress::Failure> for UpstreamError {
    /// An answer egress refused (a redirect elsewhere, a body too large) is the upstream
    /// not answering as it should.
    fn from(failure: manifold_runtime::egress::Failure) -> Self {
        match failure {
            manifold_runtime::egress::Failure::Unreachable(why) => UpstreamError::Unreachable(why),
            manifold_runtime::egress::Failure::Refused(why) => UpstreamError::Protocol(why),
        }
    }
}

impl UpstreamError {
    /// What a client is told: the kind of failure, without upstream response bodies, TLS
    /// details or addresses (those go to the log).
    pub fn summary(&self) -> String {
        match self {
            UpstreamError::Connect(_) => "cannot connect".into(),
            UpstreamError::Unreachable(_) => "lost the connection".into(),
            UpstreamError::Timeout(ms) => format!("no answer within {ms} ms"),
            UpstreamError::Status { status, .. } => format!("answered HTTP {status}"),
            UpstreamError::Protocol(_) => "did not answer as an MCP server".into(),
            UpstreamError::SessionExpired => "lost its session".into(),
            UpstreamError::CircuitOpen(_) => {
                "is not called for now: its circuit breaker is open after repeated failures".into()
            }
            UpstreamError::Busy(cap, _) => format!("is busy: {cap} requests to it are in flight already"),
            UpstreamError::Credential(denied) => denied.to_string(),
        }
    }

    /// The failure's class, as the conventions' `error.type`: `timeout`, `connect`,
    /// `http_<status>`, else `_OTHER` (a lost connection, an answer that is not MCP, an
    /// expired upstream session; an open breaker or a full cap send nothing, so they are not
    /// attempts and not timed).
    pub fn error_type(&self) -> ErrorType {
        match self {
            UpstreamError::Timeout(_) => ErrorType::Timeout,
            UpstreamError::Connect(_) => ErrorType::Connect,
            UpstreamError::Status { status, .. } if (100..600).contains(status) => ErrorType::Http(*status),
            UpstreamError::Status { .. }
            | UpstreamError::Unreachable(_)
            | UpstreamError::Protocol(_)
            | UpstreamError::SessionExpired
            | UpstreamError::CircuitOpen(_)
            | UpstreamError::Busy(..)
            | UpstreamError::Credential(_) => ErrorType::Other,
        }
    }

    /// How long the caller should wait before trying again, where the failure says.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstreamError::Status { retry_after, .. } => *retry_after,
            UpstreamError::CircuitOpen(wait) | UpstreamError::Busy(_, wait) => Some(*wait),
            _ => None,
        }
    }

    /// Whether the upstream failed (not merely refused or answered oddly): what a circuit
    /// breaker counts. A connection that cannot be made or breaks, a timeout, and a 5xx
    /// count; a 429 (the upstream is alive and pacing us), an expired session, an answer that
    /// is not MCP, and anything the gateway refused itself do not.
    pub fn is_failure(&self) -> bool {
        match self {
            UpstreamError::Connect(_) | UpstreamError::Unreachable(_) | UpstreamError::Timeout(_) => true,
            UpstreamError::Status { status, .. } => *status >= 500,
            UpstreamError::Protocol(_)
            | UpstreamError::SessionExpired
            | UpstreamError::CircuitOpen(_)
            | UpstreamError::Busy(..)
            | UpstreamError::Credential(_) => false,
        }
    }

    /// Whether trying again may help: the failures above, and a 429.
    pub fn is_transient(&self) -> bool {
        self.is_failure() || matches!(self, UpstreamError::Status { status: 429, .. })
    }
}

/// One client session's session with one MCP server, with the client that opened it.
enum Session {
    Streamable(Arc<streamable::Client>, streamable::Session),
    Sse(Arc<legacy::Client>, legacy::Session),
}

struct Connection {
    session: Session,
    /// The standalone stream's reader, once one is open; stopped with the connection.
    listener: Mutex<Option<AbortHandle>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.get_mut().expect("listener lock").take() {
            listener.abort();
        }
    }
}

/// Where a client session keeps its connection to one mount.
pub struct Slot {
    cell: Mutex<Arc<OnceCell<Arc<Connection>>>>,
    inbox: Inbox,
    /// Whether the client listens for unsolicited messages: every connection opened in this
    /// slot then opens the upstream's standalone stream too.
    listening: AtomicBool,
}

impl Slot {
    pub fn new(inbox: Inbox) -> Self {
        Slot { cell: Mutex::default(), inbox, listening: AtomicBool::new(false) }
    }

    /// A slot whose unsolicited messages are dropped.
    pub fn detached() -> Self {
        Slot::new(Arc::new(|_| {}))
    }

    fn cell(&self) -> Arc<OnceCell<Arc<Connection>>> {
        self.cell.lock().expect("slot lock").clone()
    }

    fn current(&self) -> Option<Arc<Connection>> {
        self.cell().get().cloned()
    }

    /// Forgets `stale`, unless another request already replaced it.
    fn reset(&self, stale: &Arc<Connection>) {
        let mut cell = self.cell.lock().expect("slot lock");
        if cell.get().is_some_and(|current| Arc::ptr_eq(current, stale)) {
            *cell = Arc::new(OnceCell::new());
        }
    }

    /// Whether the slot holds an upstream session other than `held` (one opened on this
    /// replica, which a token does not carry). A legacy SSE session always is.
    pub fn holds_other_than(&self, held: Option<&Held>) -> bool {
        match self.current().as_deref().map(|connection| &connection.session) {
            None => false,
            Some(Session::Sse(..)) => true,
            Some(Session::Streamable(_, session)) => session.held().is_some_and(|own| Some(&own) != held),
        }
    }

    fn take(&self) -> Option<Arc<Connection>> {
        std::mem::take(&mut *self.cell.lock().expect("slot lock")).get().cloned()
    }
}

/// What a mounted sub-server is.
enum Server {
    /// An MCP server: sessions, opened per slot, over one of its wires.
    Mcp(Wire),
    /// A REST API, answered in the gateway: no sessions, no streams, and every request
    /// answered on its own (as the stateless revision has it).
    OpenApi(Box<openapi::Api>),
}

/// How an MCP server is reached.
enum Wire {
    Streamable(Arc<streamable::Client>),
    Sse(Arc<legacy::Client>),
}

/// A client for one mounted sub-server.
pub struct UpstreamClient {
    /// Increases with every client built: a later config's client has a higher serial.
    pub serial: u64,
    server: Server,
    timeout: Duration,
    next_id: AtomicU64,
    /// Whether the upstream serves the stateless revision, once it has said so either way.
    stateless: OnceCell<bool>,
    /// Set once the upstream, serving the stateless revision, refused a session.
    refuses_sessions: AtomicBool,
    /// Its circuit breaker, retry budget and cap on requests in flight, shared by every
    /// route of the tenant that mounts it.
    pub guard: Guard,
    /// How a call gets its credential, when the mount obtains one per call.
    pub identity: Option<identity::Identity>,
    /// Whether what the upstream answers depends on who calls (see `OutboundAuth`).
    pub speaks_for_caller: bool,
}

impl UpstreamClient {
    /// A client for `config` (connections to remote MCP servers come from the calling
    /// thread's pool); `egress` says which addresses may not be called. A config with `auth`
    /// needs `place`: where the mount is served and the gateway's per-user token store.
    pub fn new(
        config: &Upstream,
        egress: manifold_runtime::egress::Egress,
        place: Option<&identity::Place>,
    ) -> Result<Self, String> {
        let (server, timeout_ms) = match config {
            Upstream::Remote(remote) => (Server::Mcp(Self::remote(remote, egress)?), remote.timeout_ms),
            Upstream::OpenApi(api) => (Server::OpenApi(Box::new(openapi::Api::new(api, egress)?)), api.timeout_ms),
        };
        let identity = match (config.auth(), place) {
            (None, _) => None,
            (Some(auth), Some(place)) => Some(identity::Identity::new(auth, egress, place)?),
            (Some(auth), None) => return Err(format!("auth mode {} needs a gateway to run in", auth.mode())),
        };
        static SERIALS: AtomicU64 = AtomicU64::new(0);
        let serial = SERIALS.fetch_add(1, Ordering::Relaxed);
        Ok(UpstreamClient {
            serial,
            server,
            timeout: Duration::from_millis(timeout_ms),
            next_id: AtomicU64::new(1),
            stateless: OnceCell::new(),
            refuses_sessions: AtomicBool::new(false),
            guard: Guard::new(config.resilience()),
            identity,
            speaks_for_caller: config.auth().is_some_and(|auth| auth.speaks_for_caller()),
        })
    }

    fn remote(
        config: &manifold_api::config::RemoteUpstream,
        egress: manifold_runtime::egress::Egress,
    ) -> Result<Wire, String> {
        let url = url::Url::parse(&config.url).map_err(|e| format!("invalid upstream URL `{}`: {e}", config.url))?;
        // Names are checked when resolved (by the thread's client for `egress`); addresses here.
        if let Some(why) = manifold_runtime::egress::literal_ip(&url).and_then(|ip| egress.refuses(ip)) {
            return Err(format!("upstream URL `{}` is {why}", config.url));
        }
        let uri = Uri::try_from(url.as_str()).map_err(|e| format!("invalid upstream URL `{}`: {e}", config.url))?;
        let headers = header_map(&config.headers)?;
        Ok(match config.transport {
            Transport::StreamableHttp => Wire::Streamable(Arc::new(streamable::Client { uri, headers, egress })),
            Transport::Sse => Wire::Sse(Arc::new(legacy::Client { url, headers, egress })),
        })
    }

    /// Runs `work` (requests to this upstream outside a call's attempts: opening its session
    /// early, its stream, `logging/setLevel`) with `caller`'s credential, when the mount
    /// obtains one per call; when none can be had, `work` is not run.
    pub async fn as_caller<T>(
        &self,
        caller: &crate::principal::Principal,
        work: impl Future<Output = Result<T, UpstreamError>>,
    ) -> Result<T, UpstreamError> {
        match &self.identity {
            None => work.await,
            Some(identity) => {
                let credential = identity.credential(caller).await.map_err(UpstreamError::Credential)?;
                identity::carrying(credential, work).await
            }
        }
    }

    /// The host and port requests to this sub-server go to.
    pub fn address(&self) -> Option<(String, u16)> {
        let url = match &self.server {
            Server::Mcp(Wire::Streamable(client)) => {
                let uri = &client.uri;
                let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
                return Some((uri.host()?.to_owned(), port));
            }
            Server::Mcp(Wire::Sse(client)) => &client.url,
            Server::OpenApi(api) => api.base(),
        };
        Some((url.host_str()?.to_owned(), url.port_or_known_default()?))
    }

    /// Sends a request in the session held by `slot`, opening it first if needed.
    #[tracing::instrument(level = "debug", skip_all, fields(method = method))]
    pub async fn request(
        &self,
        slot: &Slot,
        hello: &Hello,
        method: &str,
        params: Option<&RawValue>,
        observer: &dyn Observer,
    ) -> Result<Reply, UpstreamError> {
        let wire = match &self.server {
            Server::Mcp(wire) => wire,
            Server::OpenApi(api) => return self.within(api.answer(method, params)).await,
        };
        let attempt = async {
            for retry in [false, true] {
                let connection = self.connection(wire, slot, hello).await?;
                match self.send(&connection, method, params, observer).await {
                    Err(UpstreamError::SessionExpired) if !retry => slot.reset(&connection),
                    other => return other,
                }
            }
            Err(UpstreamError::SessionExpired)
        };
        self.within(attempt).await
    }

    /// Opens the slot's upstream session now, if it is not open, and returns what a session
    /// token needs to go on in it elsewhere: none for upstreams whose sessions cannot be
    /// resumed (legacy SSE ones live in their connection; stateless ones have none).
    pub async fn hold(&self, slot: &Slot, hello: &Hello) -> Result<Option<Held>, UpstreamError> {
        let Server::Mcp(wire @ Wire::Streamable(_)) = &self.server else { return Ok(None) };
        let connection = self.within(self.connection(wire, slot, hello)).await?;
        Ok(match &connection.session {
            Session::Streamable(_, session) => session.held(),
            Session::Sse(..) => None,
        })
    }

    /// Puts in `slot` an upstream session opened elsewhere (another replica, or this one
    /// before the session's entry was dropped). If it has ended meanwhile, the upstream's 404
    /// opens a new one, as for any lost session.
    pub fn resume(&self, slot: &Slot, held: &Held) {
        let (Server::Mcp(Wire::Streamable(client)), Some(session)) = (&self.server, streamable::Session::resumed(held))
        else {
            return;
        };
        let session = Session::Streamable(Arc::clone(client), session);
        let connection = Arc::new(Connection { session, listener: Mutex::default() });
        let cell = OnceCell::new_with(Some(connection));
        *slot.cell.lock().expect("slot lock") = Arc::new(cell);
    }

    /// `work`, or a timeout error once the upstream's timeout has passed.
    pub async fn within<T>(&self, work: impl Future<Output = Result<T, UpstreamError>>) -> Result<T, UpstreamError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or(Err(UpstreamError::Timeout(self.timeout.as_millis() as u64)))
    }

    /// Every item of a list, following its pagination to the end.
    pub async fn list_all(
        &self,
        slot: &Slot,
        hello: &Hello,
        method: &str,
        items: &str,
    ) -> Result<Vec<Map<String, Value>>, UpstreamError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = cursor.as_ref().map(|c| crate::jsonrpc::raw(&serde_json::json!({ "cursor": c })));
            let mut page: Map<String, Value> =
                match self.request(slot, hello, method, params.as_deref(), &Unobserved).await? {
                    Reply::Result(result) => serde_json::from_str(result.get())
                        .map_err(|e| UpstreamError::Protocol(format!("invalid {method} result: {e}")))?,
                    Reply::Error(error) => {
                        return Err(UpstreamError::Protocol(format!("{method} failed: {}", error.get())));
                    }
                };
            if let Some(Value::Array(list)) = page.remove(items) {
                all.extend(
                    list.into_iter().filter_map(|item| if let Value::Object(o) = item { Some(o) } else { None }),
                );
            }
            match page.remove("nextCursor") {
                Some(Value::String(next)) if !next.is_empty() && cursor.as_ref() != Some(&next) => cursor = Some(next),
                _ => return Ok(all),
            }
        }
        Err(UpstreamError::Protocol(format!("{method} did not end within {MAX_PAGES} pages")))
    }

    /// Whether the upstream serves the stateless revision (2026-07-28), asked once with
    /// `server/discover`. An upstream that cannot be reached is asked again next time.
    pub async fn speaks_stateless(&self) -> bool {
        let client = match &self.server {
            Server::OpenApi(_) => return true,
            Server::Mcp(Wire::Streamable(client)) => client,
            Server::Mcp(Wire::Sse(_)) => return false,
        };
        let probe = self.stateless.get_or_try_init(|| async {
            match tokio::time::timeout(self.timeout, client.discover(self.id())).await {
                Ok(Ok(supported)) => Ok(supported),
                Ok(Err(UpstreamError::Connect(error) | UpstreamError::Unreachable(error))) => Err(error),
                Ok(Err(_)) => Ok(false),
                Err(_) => Err("server/discover timed out".to_owned()),
            }
        });
        match probe.await {
            Ok(supported) => *supported,
            Err(error) => {
                tracing::debug!(%error, "could not ask an upstream which revisions it serves");
                false
            }
        }
    }

    /// Whether the upstream serves only the stateless revision (it refused a session).
    pub fn refuses_sessions(&self) -> bool {
        self.refuses_sessions.load(Ordering::Relaxed)
    }

    /// Sends a request of the stateless revision: `params` carry the client's `_meta`, `name`
    /// is the upstream's name for `Mcp-Name`, and `forwarded` holds the client's `Mcp-Param-*`
    /// headers. Returns the reply with the upstream's HTTP status.
    pub async fn stateless_request(
        &self,
        method: &str,
        params: Option<&RawValue>,
        name: Option<&str>,
        forwarded: &HeaderMap,
        observer: &dyn Observer,
    ) -> Result<(Reply, u16), UpstreamError> {
        let client = match &self.server {
            Server::OpenApi(api) => return self.within(api.answer(method, params)).await.map(|reply| (reply, 200)),
            Server::Mcp(Wire::Streamable(client)) => client,
            Server::Mcp(Wire::Sse(_)) => {
                return Err(UpstreamError::Protocol("a legacy SSE upstream has no stateless requests".into()));
            }
        };
        let id = self.id();
        observer.sent(id);
        self.within(client.stateless(id, method, params, name, forwarded, observer)).await
    }

    /// Holds a long-lived stateless request open (`subscriptions/listen`): every message the
    /// upstream sends on it goes to `observer` until the upstream ends it. It has no deadline
    /// (connecting has the HTTP client's own).
    pub async fn stateless_stream(
        &self,
        method: &str,
        params: &RawValue,
        observer: &dyn Observer,
    ) -> Result<(), UpstreamError> {
        let Server::Mcp(Wire::Streamable(client)) = &self.server else {
            return Err(UpstreamError::Protocol("a legacy SSE upstream has no stateless requests".into()));
        };
        client.stateless(self.id(), method, Some(params), None, &HeaderMap::new(), observer).await.map(|_| ())
    }

    /// Sends one message that gets no reply (a notification, or the client's answer to the
    /// upstream's request) in the session held by `slot`. Never opens a session: a message
    /// about an exchange the upstream no longer knows has nowhere to go.
    pub async fn post(&self, slot: &Slot, body: Bytes) -> Result<(), UpstreamError> {
        if matches!(self.server, Server::OpenApi(_)) {
            return Ok(()); // notifications concern nothing an API does
        }
        let connection = slot.current().ok_or(UpstreamError::SessionExpired)?;
        let post = async {
            match &connection.session {
                Session::Streamable(client, session) => client.post(session, body).await,
                Session::Sse(client, session) => client.post(session, body).await,
            }
        };
        self.within(post).await
    }

    /// Opens the session held by `slot` if needed, and from now on keeps the upstream's
    /// standalone stream open with it, delivering to the slot's inbox.
    pub async fn listen(&self, slot: &Slot, hello: &Hello) -> Result<(), UpstreamError> {
        let Server::Mcp(wire) = &self.server else {
            return Ok(()); // an API sends nothing of its own
        };
        slot.listening.store(true, Ordering::Relaxed);
        let connection = self.within(self.connection(wire, slot, hello)).await?;
        self.start_listening(slot, &connection);
        Ok(())
    }

    fn start_listening(&self, slot: &Slot, connection: &Connection) {
        // A legacy SSE session's one stream already delivers everything to the inbox.
        let Session::Streamable(client, session) = &connection.session else { return };
        let mut listener = connection.listener.lock().expect("listener lock");
        if listener.is_none() && session.is_stateful() {
            let task = client.listen(session, Arc::clone(&slot.inbox));
            // The stream outlives the call that opened it: it keeps that call's credential.
            let task = match identity::current() {
                Some(credential) => tokio::spawn(identity::carrying(credential, task)),
                None => tokio::spawn(task),
            };
            *listener = Some(task.abort_handle());
        }
    }

    /// The open connection in `slot`, opened now if there is none.
    async fn connection(&self, wire: &Wire, slot: &Slot, hello: &Hello) -> Result<Arc<Connection>, UpstreamError> {
        let cell = slot.cell();
        let connection = cell.get_or_try_init(|| self.open(wire, hello, slot)).await?;
        Ok(Arc::clone(connection))
    }

    /// Ends the session held by `slot`, if any (best effort: the client is gone either way).
    pub async fn close(&self, slot: &Slot) {
        let Some(connection) = slot.take() else { return };
        if let Session::Streamable(client, session) = &connection.session {
            let _ = tokio::time::timeout(self.timeout, client.close(session)).await;
        }
        // A legacy SSE session ends when its stream is dropped with the connection.
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(version = %hello.protocol_version))]
    async fn open(&self, wire: &Wire, hello: &Hello, slot: &Slot) -> Result<Arc<Connection>, UpstreamError> {
        let params = initialize_params(hello);
        let session = match wire {
            Wire::Streamable(client) => match client.open(self.id(), &params).await {
                Ok(session) => Session::Streamable(Arc::clone(client), session),
                Err(error) => {
                    // A server of the stateless revision only refuses `initialize`: its
                    // clients' requests go to it statelessly from now on.
                    if !matches!(
                        error,
                        UpstreamError::Connect(_) | UpstreamError::Unreachable(_) | UpstreamError::Timeout(_)
                    ) && self.speaks_stateless().await
                    {
                        self.refuses_sessions.store(true, Ordering::Relaxed);
                    }
                    return Err(error);
                }
            },
            Wire::Sse(client) => {
                Session::Sse(Arc::clone(client), client.open(self.id(), &params, Arc::clone(&slot.inbox)).await?)
            }
        };
        let connection = Arc::new(Connection { session, listener: Mutex::default() });
        if slot.listening.load(Ordering::Relaxed) {
            self.start_listening(slot, &connection);
        }
        Ok(connection)
    }

    async fn send(
        &self,
        connection: &Connection,
        method: &str,
        params: Option<&RawValue>,
        observer: &dyn Observer,
    ) -> Result<Reply, UpstreamError> {
        let id = self.id();
        observer.sent(id);
        match &connection.session {
            Session::Streamable(client, session) => {
                client.request(Some(session), id, method, params, observer).await.map(|(reply, _)| reply)
            }
            Session::Sse(client, session) => client.request(session, id, method, params).await,
        }
    }
}

/// Configured headers as sent: values marked sensitive, so they never reach a log.
fn header_map(headers: &[manifold_api::config::Header]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for header in headers {
        let name = HeaderName::try_from(header.name.as_str()).map_err(|e| format!("header `{}`: {e}", header.name))?;
        let mut value =
            HeaderValue::try_from(header.value.as_str()).map_err(|e| format!("header `{}`: {e}", header.name))?;
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
}

/// The gateway introduces itself to upstreams with the capabilities its client declared
/// (sampling, elicitation, roots): their requests are relayed to that client.
fn initialize_params(hello: &Hello) -> Box<RawValue> {
    crate::jsonrpc::raw(&serde_json::json!({
        "protocolVersion": hello.protocol_version,
        "capabilities": hello.capabilities,
        "clientInfo": { "name": "manifold-gateway", "version": env!("CARGO_PKG_VERSION") },
    }))
}

/// The protocol revision an upstream chose in its `initialize` result.
fn negotiated_version(reply: Reply) -> Result<String, UpstreamError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct InitializeResult {
        protocol_version: String,
    }
    match reply {
        Reply::Result(raw) => serde_json::from_str::<InitializeResult>(raw.get())
            .map(|r| r.protocol_version)
            .map_err(|e| UpstreamError::Protocol(format!("bad initialize result: {e}"))),
        Reply::Error(error) => Err(UpstreamError::Protocol(format!("initialize failed: {}", error.get()))),
    }
}

/// A request body with our own id (ids are per client, so answers on a shared stream match).
fn request_body(id: u64, method: &str, params: Option<&RawValue>) -> String {
    let method = serde_json::to_string(method).expect("strings serialize");
    let mut body = String::with_capacity(params.map_or(0, |p| p.get().len()) + method.len() + 160);
    body.push_str(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":{method}"#));
    // The trace context goes in `_meta` too: a message may outlive its HTTP request.
    if !crate::traces::write_params(params, &mut body)
        && let Some(params) = params
    {
        body.push_str(r#","params":"#);
        body.push_str(params.get());
    }
    body.push('}');
    body
}

fn notification_body(method: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":{}}}"#, serde_json::to_string(method).expect("strings serialize"))
}

/// How long a broken standalone stream waits before it is reopened, growing per failure.
fn backoff(failures: u32) -> Duration {
    manifold_runtime::backoff::after(failures, Duration::from_millis(250), Duration::from_secs(32))
}

/// The reply in `message` if it answers request `id`.
fn reply_to(message: Message, id: u64) -> Option<Reply> {
    if !message.answers(id) {
        return None;
    }
    match (message.result, message.error) {
        (Some(result), _) => Some(Reply::Result(result)),
        (None, Some(error)) => Some(Reply::Error(error)),
        (None, None) => None,
    }
}

/// The start of a response body, for error messages.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use manifold_api::config::RemoteUpstream;

    use super::*;

    #[test]
    fn a_remote_upstream_at_a_metadata_address_is_refused_unless_allowed() {
        let remote = |url: &str| {
            Upstream::Remote(RemoteUpstream {
                url: url.into(),
                transport: Transport::StreamableHttp,
                headers: vec![],
                auth: None,
                timeout_ms: 1000,
                resilience: Default::default(),
            })
        };
        let refused = UpstreamClient::new(
            &remote("http://169.254.169.254/mcp"),
            manifold_runtime::egress::Egress::default(),
            None,
        );
        let error = refused.err().expect("refused");
        assert!(error.starts_with("upstream URL `http://169.254.169.254/mcp` is a link-local"), "{error}");
        let mapped = UpstreamClient::new(
            &remote("http://[::ffff:169.254.169.254]/mcp"),
            manifold_runtime::egress::Egress::default(),
            None,
        );
        assert!(mapped.is_err(), "the same address in IPv6 clothing");
        let allowed = manifold_runtime::egress::Egress { allow_link_local: true };
        assert!(UpstreamClient::new(&remote("http://169.254.169.254/mcp"), allowed, None).is_ok());
        assert!(
            UpstreamClient::new(&remote("http://10.0.0.7:8080/mcp"), manifold_runtime::egress::Egress::default(), None)
                .is_ok()
        );
    }
}
