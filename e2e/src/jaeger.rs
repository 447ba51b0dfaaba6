//! A real trace backend: Jaeger v2 (built from the Go module proxy by
//! `scripts/install-jaeger.sh`, cached) as a child process on free loopback ports. Spans flow
//! in over OTLP (gRPC or HTTP), are kept in memory, and come back by trace id through the
//! query API (`GET /api/traces/{id}`) as [`Trace`]s: spans with their parent, kind, service
//! and tags, which a test checks link by link.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::process::free_port;

/// The Jaeger binary, built on first use.
pub fn binary() -> &'static Path {
    static JAEGER: OnceLock<PathBuf> = OnceLock::new();
    JAEGER.get_or_init(|| crate::built_by("install-jaeger.sh"))
}

/// One Jaeger process; killed when dropped.
pub struct Jaeger {
    child: Child,
    otlp_grpc: SocketAddr,
    otlp_http: SocketAddr,
    query: SocketAddr,
    http: reqwest::Client,
    /// Its config and its log (`jaeger.log`).
    dir: tempfile::TempDir,
}

impl Jaeger {
    /// Starts Jaeger with OTLP receivers, in-memory storage and the query API on free ports,
    /// and waits until its health check says it is ready.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (otlp_grpc, otlp_http, query, query_grpc, health) =
            (free_port(), free_port(), free_port(), free_port(), free_port());
        let config = dir.path().join("jaeger.yaml");
        std::fs::write(&config, config_yaml(otlp_grpc, otlp_http, query, query_grpc, health))
            .expect("write Jaeger's config");
        let log = std::fs::File::create(dir.path().join("jaeger.log")).expect("create Jaeger's log");
        let child = Command::new(binary())
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary().display()));
        let mut jaeger = Jaeger { child, otlp_grpc, otlp_http, query, http: reqwest::Client::new(), dir };
        jaeger.wait_until_healthy(health).await;
        jaeger
    }

    /// OTLP over gRPC, as `--otel-endpoint` takes it.
    pub fn otlp_grpc_url(&self) -> String {
        format!("http://{}", self.otlp_grpc)
    }

    /// OTLP over HTTP, the base URL (exporters add `/v1/traces`).
    pub fn otlp_http_url(&self) -> String {
        format!("http://{}", self.otlp_http)
    }

    /// The trace as stored now, or None when Jaeger has no span of it.
    pub async fn trace(&self, trace_id: &str) -> Option<Trace> {
        let url = format!("http://{}/api/traces/{trace_id}", self.query);
        let response = self.http.get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert!(response.status().is_success(), "GET {url}: {}", response.status());
        let body: Value = response.json().await.unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"));
        body["data"].as_array().and_then(|traces| traces.first()).map(Trace::from_jaeger)
    }

    /// The trace once `done` holds for it (spans arrive as each service exports them, each in
    /// its own time); panics after 30 s naming `what`, with what had arrived.
    pub async fn wait_for(&self, trace_id: &str, what: &str, done: impl Fn(&Trace) -> bool) -> Trace {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let trace = self.trace(trace_id).await;
            match trace {
                Some(trace) if done(&trace) => return trace,
                _ if tokio::time::Instant::now() >= deadline => panic!(
                    "trace {trace_id} did not come to hold {what} within 30 s; it holds:\n{}",
                    trace.map(|t| t.tree()).unwrap_or_else(|| "nothing".into())
                ),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Every trace holding a span of `service`, as stored now (the last hour, 1,000 at most).
    pub async fn traces_of(&self, service: &str) -> Vec<Trace> {
        let url = url::Url::parse_with_params(
            &format!("http://{}/api/traces", self.query),
            [("service", service), ("limit", "1000")],
        )
        .expect("a URL of a socket address and a path");
        let response = self.http.get(url.clone()).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert!(response.status().is_success(), "GET {url}: {}", response.status());
        let body: Value = response.json().await.unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"));
        body["data"].as_array().map(|traces| traces.iter().map(Trace::from_jaeger).collect()).unwrap_or_default()
    }

    async fn wait_until_healthy(&mut self, health: SocketAddr) {
        let url = format!("http://{health}/status");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the Jaeger process") {
                panic!("Jaeger exited ({status}) before it was ready; its log:\n{}", self.log());
            }
            if self.http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "Jaeger not healthy within 60 s; its log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("jaeger.log")).unwrap_or_default()
    }
}

/// Jaeger v2's config (an OpenTelemetry Collector's, see Jaeger's `cmd/jaeger/config.yaml`):
/// OTLP in, straight to in-memory storage (no batching: spans are readable as soon as they
/// arrive), the query API, a health check; no metrics listener and no tracing of itself.
fn config_yaml(
    otlp_grpc: SocketAddr,
    otlp_http: SocketAddr,
    query: SocketAddr,
    query_grpc: SocketAddr,
    health: SocketAddr,
) -> String {
    format!(
        "service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: {health}
  jaeger_query:
    storage:
      traces: memory
    enable_tracing: false
    http:
      endpoint: {query}
    grpc:
      endpoint: {query_grpc}
  jaeger_storage:
    backends:
      memory:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {otlp_grpc}
      http:
        endpoint: {otlp_http}
exporters:
  jaeger_storage_exporter:
    trace_storage: memory
"
    )
}

/// A trace as Jaeger's query API returns it.
#[derive(Clone, Debug)]
pub struct Trace {
    pub id: String,
    pub spans: Vec<Span>,
}

/// One span of a [`Trace`].
#[derive(Clone, Debug)]
pub struct Span {
    pub id: String,
    /// The span it is a child of (its `CHILD_OF` reference), None for a root.
    pub parent: Option<String>,
    /// The spans it links to (its other references), as (trace id, span id).
    pub links: Vec<(String, String)>,
    pub name: String,
    /// `service.name` of the process that made it.
    pub service: String,
    /// `server`, `client`, `internal`, … (the `span.kind` tag; "" when unset).
    pub kind: String,
    /// Its attributes (Jaeger's tags), by key.
    pub tags: BTreeMap<String, Value>,
}

impl Span {
    /// A tag's value as text (strings as they are, numbers and booleans printed).
    pub fn tag(&self, key: &str) -> Option<String> {
        self.tags.get(key).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
    }
}

impl Trace {
    fn from_jaeger(trace: &Value) -> Trace {
        let services: BTreeMap<&str, &str> = trace["processes"]
            .as_object()
            .map(|processes| {
                processes.iter().map(|(id, p)| (id.as_str(), p["serviceName"].as_str().unwrap_or(""))).collect()
            })
            .unwrap_or_default();
        let spans = trace["spans"]
            .as_array()
            .map(|spans| {
                spans
                    .iter()
                    .map(|span| {
                        let tags: BTreeMap<String, Value> = span["tags"]
                            .as_array()
                            .map(|tags| {
                                tags.iter()
                                    .filter_map(|t| Some((t["key"].as_str()?.to_owned(), t["value"].clone())))
                                    .collect()
                            })
                            .unwrap_or_default();
                        let references = span["references"].as_array().map(Vec::as_slice).unwrap_or_default();
                        let id = |r: &Value, key: &str| r[key].as_str().unwrap_or_default().to_owned();
                        let parent = references.iter().find(|r| r["refType"] == "CHILD_OF").map(|r| id(r, "spanID"));
                        let links = references
                            .iter()
                            .filter(|r| r["refType"] != "CHILD_OF")
                            .map(|r| (id(r, "traceID"), id(r, "spanID")))
                            .collect();
                        Span {
                            id: span["spanID"].as_str().unwrap_or_default().to_owned(),
                            parent,
                            links,
                            name: span["operationName"].as_str().unwrap_or_default().to_owned(),
                            service: services
                                .get(span["processID"].as_str().unwrap_or(""))
                                .copied()
                                .unwrap_or("")
                                .into(),
                            kind: tags.get("span.kind").and_then(Value::as_str).unwrap_or("").to_owned(),
                            tags,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Trace { id: trace["traceID"].as_str().unwrap_or_default().to_owned(), spans }
    }

    /// The one span of `service` named `name`; panics with the whole tree otherwise.
    pub fn span(&self, service: &str, name: &str) -> &Span {
        let found: Vec<&Span> = self.spans.iter().filter(|s| s.service == service && s.name == name).collect();
        match found[..] {
            [span] => span,
            _ => panic!("{} spans of `{service}` named `{name}` in trace {}:\n{}", found.len(), self.id, self.tree()),
        }
    }

    /// The span with this id.
    pub fn by_id(&self, id: &str) -> Option<&Span> {
        self.spans.iter().find(|s| s.id == id)
    }

    /// The spans of `service`.
    pub fn of_service<'a>(&'a self, service: &'a str) -> impl Iterator<Item = &'a Span> + 'a {
        self.spans.iter().filter(move |s| s.service == service)
    }

    /// Whether `ancestor` is `span`'s parent, its parent's parent, and so on.
    pub fn descends_from(&self, span: &Span, ancestor: &Span) -> bool {
        let mut parent = span.parent.as_deref();
        // A trace's depth is at most its span count; a loop of references ends there.
        for _ in 0..self.spans.len() {
            match parent {
                Some(id) if id == ancestor.id => return true,
                Some(id) => parent = self.by_id(id).and_then(|s| s.parent.as_deref()),
                None => return false,
            }
        }
        false
    }

    /// The spans as an indented tree, one line each (`service  name [kind] id`, tags below),
    /// for failure messages; spans whose parent is not in the trace are listed as roots, with
    /// the parent's id.
    pub fn tree(&self) -> String {
        let mut out = String::new();
        let known = |id: &Option<String>| id.as_deref().is_some_and(|id| self.by_id(id).is_some());
        for root in self.spans.iter().filter(|s| !known(&s.parent)) {
            self.write_subtree(&mut out, root, 0);
        }
        out
    }

    fn write_subtree(&self, out: &mut String, span: &Span, depth: usize) {
        let indent = "  ".repeat(depth);
        let orphan = match (&span.parent, depth) {
            (Some(parent), 0) => format!(" (parent {parent}, not in the trace)"),
            _ => String::new(),
        };
        let links: String = span.links.iter().map(|(trace, id)| format!(" (links {trace}/{id})")).collect();
        let _ = writeln!(out, "{indent}{}  {} [{}] {}{orphan}{links}", span.service, span.name, span.kind, span.id);
        let tags: Vec<String> = span
            .tags
            .iter()
            .filter(|(k, _)| !k.starts_with("otel.scope") && *k != "span.kind")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !tags.is_empty() {
            let _ = writeln!(out, "{indent}    {}", tags.join(" "));
        }
        for child in self.spans.iter().filter(|s| s.parent.as_deref() == Some(span.id.as_str())) {
            self.write_subtree(out, child, depth + 1);
        }
    }
}
