//! Probing remote McpServers.
//!
//! Each server is asked `initialize` and then its lists, with its own credentials (the
//! compiled upstream, Secret values read), through rmcp's client. What answers and how much
//! it offers becomes the McpServer's `Ready` condition and counts, and its tool names let
//! compile catch collisions between mounts. A server whose credential the gateway makes per
//! call (`auth`) is not probed (see [`remotes`]). Probes run in a task of their own ([`Prober`]),
//! never inside a reconcile. A server is asked again when its config changes:
//! - after a success, every [`RECHECK`];
//! - after a failure, with a backoff from 5 s doubling to [`RECHECK`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use opentelemetry::context::FutureExt;
use opentelemetry::{Context, KeyValue};
use tokio::sync::watch;

use manifold_api::ObjectKey;
use manifold_api::config::{RemoteUpstream, Transport, Upstream};
use manifold_api::egress::Egress;
use manifold_api::outcome::Verdict;
use manifold_api::outcome::condition::READY;
use manifold_api::outcome::reason::Probed as Reason;
use rmcp::ServiceExt;

use crate::spans;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{StreamableHttpClientTransportConfig, StreamableHttpError};

/// How long one probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many servers are probed at once.
const PROBES_AT_ONCE: usize = 16;
/// How often a healthy server is asked again.
pub const RECHECK: Duration = Duration::from_secs(300);

/// What a server offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offered {
    pub tools: Vec<String>,
    pub resources: u32,
    pub prompts: u32,
}

/// Why a probe failed, as the `Ready` condition's reason ([`Failure::probed`]) says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Unreachable(String),
    Unauthorized(String),
    ProtocolError(String),
}

impl Failure {
    /// The `Ready` reason it gives: a new kind of failure must say which.
    pub fn probed(&self) -> Reason {
        match self {
            Failure::Unreachable(_) => Reason::Unreachable,
            Failure::Unauthorized(_) => Reason::Unauthorized,
            Failure::ProtocolError(_) => Reason::ProtocolError,
        }
    }

    /// What went wrong, for the condition's message.
    pub fn why(&self) -> &str {
        match self {
            Failure::Unreachable(why) | Failure::Unauthorized(why) | Failure::ProtocolError(why) => why,
        }
    }
}

/// Asks one remote MCP server what it offers, within the egress rules: link-local and
/// cloud-metadata addresses are not connected to (unless allowed), and redirects are not
/// followed (one to such an address would get around the rule).
pub async fn probe(remote: &RemoteUpstream, egress: Egress) -> Result<Offered, Failure> {
    if remote.transport == Transport::Sse {
        return Err(Failure::ProtocolError("legacy SSE servers are not probed".into()));
    }
    let url = url::Url::parse(&remote.url).map_err(|e| Failure::ProtocolError(format!("invalid URL: {e}")))?;
    if let Some(why) = manifold_runtime::egress::literal_ip(&url).and_then(|ip| egress.refuses(ip)) {
        return Err(Failure::Unreachable(format!("`{}` is {why}", remote.url)));
    }
    let mut headers = reqwest::header::HeaderMap::new();
    for header in &remote.headers {
        let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::try_from(header.name.as_str()),
            reqwest::header::HeaderValue::try_from(header.value.as_str()),
        ) else {
            return Err(Failure::ProtocolError(format!("header `{}` cannot be sent", header.name)));
        };
        headers.insert(name, value);
    }
    let http = reqwest::Client::builder()
        .dns_resolver(std::sync::Arc::new(Guarded(egress)))
        // A proxy would resolve names itself, past the guard.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .timeout(PROBE_TIMEOUT)
        .build()
        .map_err(|e| Failure::ProtocolError(e.to_string()))?;
    let config = StreamableHttpClientTransportConfig::with_uri(remote.url.as_str());
    let transport = StreamableHttpClientTransport::with_client(http, config);
    let asked = async {
        let client = ().serve(transport).await.map_err(|e| classify(&e))?;
        let capabilities = client.peer_info().map(|info| info.capabilities.clone()).unwrap_or_default();
        let listed = async {
            let tools = match capabilities.tools {
                Some(_) => client.list_all_tools().await?.into_iter().map(|t| t.name.to_string()).collect(),
                None => Vec::new(),
            };
            let resources = match capabilities.resources {
                Some(_) => client.list_all_resources().await?.len(),
                None => 0,
            };
            let prompts = match capabilities.prompts {
                Some(_) => client.list_all_prompts().await?.len(),
                None => 0,
            };
            Ok::<_, rmcp::ServiceError>((tools, resources, prompts))
        }
        .await;
        let _ = client.cancel().await;
        let (tools, resources, prompts) = listed.map_err(|e| Failure::ProtocolError(format!("listing failed: {e}")))?;
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(Offered { tools, resources: count(resources), prompts: count(prompts) })
    };
    tokio::time::timeout(PROBE_TIMEOUT, asked)
        .await
        .unwrap_or_else(|_| Err(Failure::Unreachable(format!("no answer within {} s", PROBE_TIMEOUT.as_secs()))))
}

/// A failed `initialize`, by what it says about the server.
fn classify(error: &(dyn std::error::Error + 'static)) -> Failure {
    let text = manifold_runtime::errors::chain(error);
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(http) = cause.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
            match http {
                StreamableHttpError::AuthRequired(_) | StreamableHttpError::InsufficientScope(_) => {
                    return Failure::Unauthorized(text);
                }
                StreamableHttpError::Client(e) if e.is_connect() || e.is_timeout() => {
                    return Failure::Unreachable(text);
                }
                _ => {}
            }
        }
        if let Some(e) = cause.downcast_ref::<reqwest::Error>() {
            if e.is_connect() || e.is_timeout() {
                return Failure::Unreachable(text);
            }
            if e.status().is_some_and(|s| s == 401 || s == 403) {
                return Failure::Unauthorized(text);
            }
        }
        source = cause.source();
    }
    // rmcp's worker passes some failures on as text only: read what reqwest says.
    if names_status(&text, "401") || names_status(&text, "403") {
        Failure::Unauthorized(text)
    } else if ["error sending request", "Connection refused", "dns error", "timed out"].iter().any(|t| text.contains(t))
    {
        Failure::Unreachable(text)
    } else {
        Failure::ProtocolError(text)
    }
}

/// Whether `text` names HTTP status `code` as a number of its own: not inside a longer number
/// (a port such as 40335) and not a port itself (`:403`).
fn names_status(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit() || c == ':') && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// The `Ready` condition a probe result gives.
pub fn ready(result: &Result<Offered, Failure>) -> Verdict {
    let (status, reason, message) = match result {
        Ok(offered) => (
            true,
            Reason::Ready,
            format!(
                "offers {} tool(s), {} resource(s), {} prompt(s)",
                offered.tools.len(),
                offered.resources,
                offered.prompts
            ),
        ),
        Err(failure) => (false, failure.probed(), failure.why().to_owned()),
    };
    Verdict { type_: READY.into(), status, reason: reason.reason().into(), message }
}

/// What remote servers answered, by (namespace, name): what a reconcile reads.
pub type Probes = BTreeMap<ObjectKey, Result<Offered, Failure>>;

/// Tool names of the servers that answered, for compile's collision check.
pub fn discovered(probes: &Probes) -> BTreeMap<ObjectKey, Vec<String>> {
    probes.iter().filter_map(|(key, result)| Some((key.clone(), result.as_ref().ok()?.tools.clone()))).collect()
}

/// Probes remote servers in a task of its own, so that slow or silent servers hold up no
/// reconcile: the controller says which servers there are ([`Prober::want`]) and reads what
/// answered ([`Prober::probes`]), and is told when that changes ([`Prober::changed`]). The
/// task ends when the `Prober` is dropped.
pub struct Prober {
    wanted: watch::Sender<Remotes>,
    answers: watch::Receiver<Arc<Answers>>,
    /// The context of the last [`Prober::want`] that brought new or changed servers: their
    /// probes are its children (later checks are traces of their own).
    asked_by: Arc<Mutex<Context>>,
}

/// Remote servers, by (namespace, name), as compiled (credentials read).
type Remotes = BTreeMap<ObjectKey, RemoteUpstream>;

/// What each server answered, and the config it was asked with.
type Answers = BTreeMap<ObjectKey, (RemoteUpstream, Result<Offered, Failure>)>;

/// The remote servers among `servers` the operator can ask itself. OpenAPI ones need no
/// probe; one with an `auth` credential cannot be asked without the gateway, which makes
/// that credential per call (from a token endpoint, the caller's own token or a key it signs
/// with), and often per caller: its `Ready` says so instead.
fn remotes(servers: &BTreeMap<ObjectKey, Upstream>) -> Remotes {
    servers
        .iter()
        .filter_map(|(key, upstream)| match upstream {
            Upstream::Remote(remote) if remote.auth.is_none() => Some((key.clone(), remote.clone())),
            Upstream::Remote(_) | Upstream::OpenApi(_) => None,
        })
        .collect()
}

impl Prober {
    pub fn spawn(egress: Egress) -> Self {
        let (wanted, wanted_rx) = watch::channel(BTreeMap::new());
        let (answers_tx, answers) = watch::channel(Arc::new(Answers::new()));
        let asked_by = Arc::new(Mutex::new(Context::new()));
        tokio::spawn(probing(egress, wanted_rx, answers_tx, Arc::clone(&asked_by)));
        Prober { wanted, answers, asked_by }
    }

    /// The usable servers now; the others are forgotten. Returns those new or changed since
    /// the last call: their answers are worth waiting for ([`Prober::settled`]).
    pub fn want(&self, servers: &BTreeMap<ObjectKey, Upstream>) -> Remotes {
        let remote = remotes(servers);
        let mut fresh = Remotes::new();
        self.wanted.send_if_modified(|wanted| {
            fresh = remote
                .iter()
                .filter(|(key, r)| wanted.get(*key) != Some(*r))
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect();
            let modified = *wanted != remote;
            *wanted = remote;
            modified
        });
        if !fresh.is_empty() {
            *self.asked_by.lock().expect("asked_by lock") = Context::current();
        }
        fresh
    }

    /// What the servers answered to the config they have in `servers`: an answer to an
    /// older config says nothing of this one.
    pub fn probes(&mut self, servers: &BTreeMap<ObjectKey, Upstream>) -> Probes {
        let answers = Arc::clone(&self.answers.borrow_and_update());
        remotes(servers)
            .into_iter()
            .filter_map(|(key, remote)| {
                let (asked, result) = answers.get(&key)?;
                (*asked == remote).then(|| (key, result.clone()))
            })
            .collect()
    }

    /// Resolves when [`Prober::probes`] has something new.
    pub async fn changed(&mut self) {
        if self.answers.changed().await.is_err() {
            std::future::pending().await
        }
    }

    /// Waits, at most `bound`, until each of `servers` has answered for its config.
    pub async fn settled(&mut self, servers: &Remotes, bound: Duration) {
        let answered = self.answers.wait_for(|answers| {
            servers.iter().all(|(key, remote)| answers.get(key).is_some_and(|(asked, _)| asked == remote))
        });
        let _ = tokio::time::timeout(bound, answered).await;
    }
}

/// How soon after a result the reconciles are told, at the most often: a round of thousands
/// of probes makes a handful of reconciles, not thousands.
const TELL_EVERY: Duration = Duration::from_millis(500);

/// The probing task: asks due servers, [`PROBES_AT_ONCE`] at a time, and publishes results.
async fn probing(
    egress: Egress,
    mut wanted: watch::Receiver<Remotes>,
    answers: watch::Sender<Arc<Answers>>,
    asked_by: Arc<Mutex<Context>>,
) {
    let mut schedule = Schedule::default();
    let mut running = futures::stream::FuturesUnordered::new();
    let (mut untold, mut told_at) = (false, Instant::now());
    loop {
        let now = Instant::now();
        while running.len() < PROBES_AT_ONCE {
            let Some((key, upstream)) = schedule.start_next(now) else { break };
            let parent = match schedule.probed.get(&key).is_none_or(|p| p.asked != upstream) {
                true => asked_by.lock().expect("asked_by lock").clone(),
                false => Context::new(),
            };
            let probing = spans::child(&parent, "probe", spans::object("McpServer", &key.namespace, &key.name));
            running.push(async move {
                let result = probe(&upstream, egress).with_context(probing.clone()).await;
                let reason = match &result {
                    Ok(_) => Reason::Ready,
                    Err(failure) => failure.probed(),
                };
                spans::note(&probing, KeyValue::new("manifold.probe.result", reason.reason()));
                if result.is_err() {
                    spans::failed(&probing, reason.reason());
                }
                (key, upstream, result)
            });
        }
        if untold && (running.is_empty() || now >= told_at + TELL_EVERY) {
            answers.send_replace(Arc::new(schedule.answers()));
            (untold, told_at) = (false, now);
        }
        let tell_at = untold.then_some(told_at + TELL_EVERY);
        // With every slot taken, only an answer frees one: a due server waits for it.
        let due = if running.len() < PROBES_AT_ONCE { schedule.next_due(now) } else { None };
        let wake = [due, tell_at].into_iter().flatten().min();
        tokio::select! {
            Some((key, upstream, result)) = running.next(), if !running.is_empty() => {
                untold |= schedule.finished(key, upstream, result, Instant::now());
            }
            changed = wanted.changed() => {
                if changed.is_err() {
                    return;
                }
                let servers = wanted.borrow_and_update().clone();
                untold |= schedule.want(servers);
            }
            () = crate::debounce::sleep_until(wake.map(Into::into)) => {}
        }
    }
}

/// Which server to ask next, and what each answered: no IO, no clock of its own.
#[derive(Default)]
struct Schedule {
    wanted: Remotes,
    probed: BTreeMap<ObjectKey, Probed>,
    /// Being asked now.
    asking: BTreeSet<ObjectKey>,
}

struct Probed {
    asked: RemoteUpstream,
    at: Instant,
    failures: u32,
    result: Result<Offered, Failure>,
}

impl Probed {
    fn next(&self) -> Instant {
        let wait = match self.result {
            Ok(_) => RECHECK,
            Err(_) => {
                (Duration::from_secs(5) * 2u32.saturating_pow(self.failures.saturating_sub(1).min(6))).min(RECHECK)
            }
        };
        self.at + wait
    }
}

impl Schedule {
    /// The servers there are now; the others' results are forgotten. Returns whether a
    /// result was.
    fn want(&mut self, wanted: Remotes) -> bool {
        let before = self.probed.len();
        self.probed.retain(|key, _| wanted.contains_key(key));
        self.wanted = wanted;
        self.probed.len() != before
    }

    /// When a server not being asked is asked for, at `now` (None: never, for now).
    fn due(&self, key: &ObjectKey, upstream: &RemoteUpstream, now: Instant) -> Option<Instant> {
        if self.asking.contains(key) {
            return None;
        }
        match self.probed.get(key) {
            Some(probed) if probed.asked == *upstream => Some(probed.next()),
            // New, or its config changed: at once.
            _ => Some(now),
        }
    }

    /// Starts asking the next server due at `now`: of those due, one of the namespace with
    /// the fewest servers being asked, so that a tenant with many silent servers holds up
    /// another's new one by one probe at most.
    fn start_next(&mut self, now: Instant) -> Option<(ObjectKey, RemoteUpstream)> {
        let mut busy: BTreeMap<&str, usize> = BTreeMap::new();
        for key in &self.asking {
            *busy.entry(key.namespace.as_str()).or_default() += 1;
        }
        let (key, upstream) = self
            .wanted
            .iter()
            .filter_map(|(key, upstream)| Some((key, upstream, self.due(key, upstream, now)?)))
            .filter(|(_, _, due)| *due <= now)
            .min_by_key(|(key, _, due)| (busy.get(key.namespace.as_str()).copied().unwrap_or(0), *due))
            .map(|(key, upstream, _)| (key.clone(), upstream.clone()))?;
        self.asking.insert(key.clone());
        Some((key, upstream))
    }

    /// The soonest a server not being asked is due, as of `now`.
    fn next_due(&self, now: Instant) -> Option<Instant> {
        self.wanted.iter().filter_map(|(key, upstream)| self.due(key, upstream, now)).min()
    }

    /// `key`, asked with `upstream`, answered `result` at `now`. Returns whether what the
    /// reconciles read changed. An answer for a config no longer wanted is dropped (the
    /// current one is asked next).
    fn finished(
        &mut self,
        key: ObjectKey,
        upstream: RemoteUpstream,
        result: Result<Offered, Failure>,
        now: Instant,
    ) -> bool {
        self.asking.remove(&key);
        if self.wanted.get(&key) != Some(&upstream) {
            return false;
        }
        let previous = self.probed.get(&key);
        let changed = previous.map(|p| &p.result) != Some(&result);
        let failures = match (&result, previous) {
            (Ok(_), _) => 0,
            (Err(_), Some(p)) if p.asked == upstream => p.failures + 1,
            (Err(_), _) => 1,
        };
        self.probed.insert(key, Probed { asked: upstream, at: now, failures, result });
        changed
    }

    fn answers(&self) -> Answers {
        self.probed.iter().map(|(key, p)| (key.clone(), (p.asked.clone(), p.result.clone()))).collect()
    }
}

/// The system resolver without the addresses egress refuses: rmcp's transport is built on
/// reqwest, so the probe guards reqwest's resolver with the rule the shared hyper client uses.
struct Guarded(Egress);

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.0;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all.iter().copied().filter(|a| egress.refuses(a.ip()).is_none()).collect();
            if allowed.is_empty() && !all.is_empty() {
                let why = egress.refuses(all[0].ip()).unwrap_or_default();
                return Err(format!("`{host}` resolves to {why}").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(url: String) -> RemoteUpstream {
        RemoteUpstream {
            url,
            transport: Transport::StreamableHttp,
            headers: vec![],
            auth: None,
            timeout_ms: 5000,
            resilience: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_real_rmcp_server_is_probed_for_what_it_offers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(manifold_samples::serve(manifold_samples::Sample::Math, listener));
        let offered =
            probe(&remote(format!("http://{address}{}", manifold_samples::MCP_PATH)), Egress::default()).await.unwrap();
        let mut tools = offered.tools.clone();
        tools.sort();
        assert_eq!(tools, ["about", "add", "multiply"]);
        assert_eq!(ready(&Ok(offered)).message, "offers 3 tool(s), 0 resource(s), 0 prompt(s)");
    }

    #[tokio::test]
    async fn failures_say_why() {
        // The port stays held on 127.0.0.1, so no other test's server can take it (a port let
        // go was once taken by the 401 server below); nothing listens on 127.0.0.2.
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = format!("127.0.0.2:{}", held.local_addr().unwrap().port());
        let unreachable = probe(&remote(format!("http://{closed}/mcp")), Egress::default()).await.unwrap_err();
        assert!(matches!(unreachable, Failure::Unreachable(_)), "{unreachable:?}");
        let metadata = probe(&remote("http://169.254.169.254/mcp".into()), Egress::default()).await.unwrap_err();
        assert_eq!(
            metadata,
            Failure::Unreachable(
                "`http://169.254.169.254/mcp` is a link-local or cloud-metadata address (allow with --allow-link-local-upstreams)"
                    .into()
            )
        );

        let app = axum::Router::new()
            .route("/locked", axum::routing::post(|| async { (axum::http::StatusCode::UNAUTHORIZED, "no") }))
            .route("/teapot", axum::routing::post(|| async { (axum::http::StatusCode::OK, "<html>not MCP</html>") }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let locked = probe(&remote(format!("http://{address}/locked")), Egress::default()).await.unwrap_err();
        assert!(matches!(locked, Failure::Unauthorized(_)), "{locked:?}");
        let teapot = probe(&remote(format!("http://{address}/teapot")), Egress::default()).await.unwrap_err();
        assert!(matches!(teapot, Failure::ProtocolError(_)), "{teapot:?}");
        assert_eq!((ready(&Err(teapot)).reason.as_str()), "ProtocolError");
    }

    #[test]
    fn a_status_is_read_from_text_only_as_a_number_of_its_own() {
        assert!(names_status("HTTP status client error (401 Unauthorized) for url", "401"));
        assert!(names_status("Unexpected server response: 403", "403"));
        // A port was once taken for a status (`failures_say_why` failed now and then).
        assert!(!names_status("error sending request for url (http://127.0.0.1:40335/teapot)", "403"));
        assert!(!names_status("http://127.0.0.1:403/mcp: not MCP", "403"));
        assert!(!names_status("14010 bytes", "401"));
    }

    fn key(namespace: &str, name: &str) -> ObjectKey {
        ObjectKey::new(namespace, name)
    }

    #[test]
    fn servers_are_asked_again_when_changed_or_due() {
        let weather = key("acme", "weather");
        let mut schedule = Schedule::default();
        let start = Instant::now();
        schedule.want(BTreeMap::from([(weather.clone(), remote("http://weather/mcp".into()))]));
        let (asked, upstream) = schedule.start_next(start).expect("a new server is asked at once");
        assert_eq!(asked, weather);
        assert!(schedule.start_next(start).is_none(), "not twice at once");
        let refused = || Err(Failure::Unreachable("refused".into()));
        assert!(schedule.finished(weather.clone(), upstream.clone(), refused(), start), "a first result");
        assert_eq!(schedule.next_due(start), Some(start + Duration::from_secs(5)), "a failure waits 5 s");
        let later = start + Duration::from_secs(5);
        assert!(schedule.start_next(later - Duration::from_millis(1)).is_none());
        schedule.start_next(later).expect("due");
        assert!(!schedule.finished(weather.clone(), upstream.clone(), refused(), later), "the same failure");
        assert_eq!(schedule.next_due(later), Some(later + Duration::from_secs(10)), "then 10 s");

        let moved = remote("http://weather-2/mcp".into());
        schedule.want(BTreeMap::from([(weather.clone(), moved.clone())]));
        assert_eq!(schedule.start_next(later), Some((weather.clone(), moved.clone())), "a changed config at once");
        schedule.want(BTreeMap::from([(weather.clone(), remote("http://weather-3/mcp".into()))]));
        assert!(!schedule.finished(weather.clone(), moved, refused(), later), "an answer for an old config");
        assert!(schedule.want(BTreeMap::new()), "a server gone is forgotten");
        assert!(schedule.answers().is_empty());
    }

    #[test]
    fn a_tenant_with_many_servers_holds_up_anothers_by_one_probe_at_most() {
        let now = Instant::now();
        let mut wanted: BTreeMap<ObjectKey, RemoteUpstream> =
            (0..40).map(|i| (key("acme", &format!("s{i:02}")), remote(format!("http://acme-{i}/mcp")))).collect();
        wanted.insert(key("globex", "weather"), remote("http://globex/mcp".into()));
        let mut schedule = Schedule::default();
        schedule.want(wanted);
        let first: Vec<String> = (0..3).map(|_| schedule.start_next(now).unwrap().0.namespace).collect();
        assert_eq!(first, ["acme", "globex", "acme"], "globex's server goes second, not 41st");
    }

    #[tokio::test]
    async fn the_probing_task_tells_what_servers_answered() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(manifold_samples::serve(manifold_samples::Sample::Math, listener));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let servers = BTreeMap::from([
            (key("acme", "math"), Upstream::Remote(remote(format!("http://{address}{}", manifold_samples::MCP_PATH)))),
            (key("acme", "down"), Upstream::Remote(remote(format!("http://{closed}/mcp")))),
        ]);
        let mut prober = Prober::spawn(Egress::default());
        let fresh = prober.want(&servers);
        assert_eq!(fresh.len(), 2, "both are new");
        prober.settled(&fresh, Duration::from_secs(20)).await;
        let probes = prober.probes(&servers);
        assert_eq!(probes[&key("acme", "math")].as_ref().map(|o| o.tools.len()), Ok(3));
        assert!(matches!(probes[&key("acme", "down")], Err(Failure::Unreachable(_))), "{probes:?}");
        assert_eq!(discovered(&probes).keys().collect::<Vec<_>>(), [&key("acme", "math")]);
        assert!(prober.want(&servers).is_empty(), "nothing new");

        // math moves to the closed port: its answer for the old address says nothing now.
        let mut moved = servers.clone();
        moved.insert(key("acme", "math"), servers[&key("acme", "down")].clone());
        assert_eq!(prober.want(&moved).keys().collect::<Vec<_>>(), [&key("acme", "math")]);
        assert!(!prober.probes(&moved).contains_key(&key("acme", "math")), "not asked at its new address yet");

        prober.want(&BTreeMap::new());
        tokio::time::timeout(Duration::from_secs(5), prober.changed()).await.expect("told that both are forgotten");
        assert!(prober.probes(&servers).is_empty());
    }

    #[tokio::test]
    async fn a_probe_a_reconcile_waits_for_is_a_span_of_its_trace_naming_the_server() {
        use opentelemetry::trace::TraceContextExt;

        use crate::spans::testing::{exporter, of_trace};

        exporter();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let servers = BTreeMap::from([(key("acme", "down"), Upstream::Remote(remote(format!("http://{closed}/mcp"))))]);
        let mut prober = Prober::spawn(Egress::default());
        let pass = crate::spans::reconcile();
        let (trace, root) = (pass.span().span_context().trace_id(), pass.span().span_context().span_id());
        let fresh = {
            let _in_pass = pass.clone().attach();
            prober.want(&servers)
        };
        prober.settled(&fresh, Duration::from_secs(20)).await;
        drop(pass);

        let spans = of_trace(trace);
        let probe = spans.iter().find(|s| s.name == "probe").expect("the probe is in the reconcile's trace");
        assert_eq!(probe.parent_span_id, root);
        let attributes: Vec<String> = probe.attributes.iter().map(|kv| format!("{}={}", kv.key, kv.value)).collect();
        assert_eq!(
            attributes,
            [
                "k8s.namespace.name=acme",
                "manifold.kind=McpServer",
                "manifold.name=down",
                "manifold.probe.result=Unreachable"
            ]
        );
        assert_eq!(probe.status, opentelemetry::trace::Status::error("Unreachable"));
    }
}
