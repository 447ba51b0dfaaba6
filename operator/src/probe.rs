//! Probing remote McpServers.
//!
//! Each server is asked `initialize` and then its lists, with its own credentials (the
//! compiled upstream, Secret values read), through rmcp's client. What answers and how much
//! it offers becomes the McpServer's `Ready` condition and counts, and its tool names let
//! compile catch collisions between mounts. A server is asked again when its config changes:
//! - after a success, every [`RECHECK`];
//! - after a failure, with a backoff from 5 s doubling to [`RECHECK`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;

use manifold_api::config::{RemoteUpstream, Transport, Upstream};
use manifold_api::egress::Egress;
use manifold_api::outcome::Verdict;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{StreamableHttpClientTransportConfig, StreamableHttpError};

use crate::documents::{Guarded, refused_literal};

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

/// Why a probe failed, as the `Ready` condition's reason says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Unreachable(String),
    Unauthorized(String),
    ProtocolError(String),
}

/// Asks one remote MCP server what it offers, within the egress rules: link-local and
/// cloud-metadata addresses are not connected to (unless allowed), and redirects are not
/// followed (one to such an address would get around the rule).
pub async fn probe(remote: &RemoteUpstream, egress: Egress) -> Result<Offered, Failure> {
    if remote.transport == Transport::Sse {
        return Err(Failure::ProtocolError("legacy SSE servers are not probed".into()));
    }
    let url = url::Url::parse(&remote.url).map_err(|e| Failure::ProtocolError(format!("invalid URL: {e}")))?;
    if let Some(why) = refused_literal(egress, &url) {
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
    let text = describe(error);
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
    if text.contains("401") || text.contains("403") {
        Failure::Unauthorized(text)
    } else if ["error sending request", "Connection refused", "dns error", "timed out"].iter().any(|t| text.contains(t))
    {
        Failure::Unreachable(text)
    } else {
        Failure::ProtocolError(text)
    }
}

fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

/// The `Ready` condition a probe result gives.
pub fn ready(result: &Result<Offered, Failure>) -> Verdict {
    let (status, reason, message) = match result {
        Ok(offered) => (
            true,
            "Ready",
            format!(
                "offers {} tool(s), {} resource(s), {} prompt(s)",
                offered.tools.len(),
                offered.resources,
                offered.prompts
            ),
        ),
        Err(Failure::Unreachable(why)) => (false, "Unreachable", why.clone()),
        Err(Failure::Unauthorized(why)) => (false, "Unauthorized", why.clone()),
        Err(Failure::ProtocolError(why)) => (false, "ProtocolError", why.clone()),
    };
    Verdict { type_: "Ready".into(), status, reason: reason.into(), message }
}

/// Probe results, by (namespace, name), asked again on a schedule.
#[derive(Default)]
pub struct Prober {
    egress: Egress,
    results: BTreeMap<(String, String), Probed>,
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

impl Prober {
    pub fn new(egress: Egress) -> Self {
        Prober { egress, results: BTreeMap::new() }
    }

    /// Whether some server is due to be asked again at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.results.values().any(|p| p.next() <= now)
    }

    /// Probes the remote servers among `servers` that are new, changed or due; forgets
    /// the others. Returns whether any result changed.
    pub async fn refresh(&mut self, servers: &BTreeMap<(String, String), Upstream>, now: Instant) -> bool {
        let remote: BTreeMap<&(String, String), &RemoteUpstream> = servers
            .iter()
            .filter_map(|(key, upstream)| match upstream {
                Upstream::Remote(remote) => Some((key, remote)),
                Upstream::OpenApi(_) => None,
            })
            .collect();
        let before = self.results.len();
        self.results.retain(|key, _| remote.contains_key(key));
        let mut changed = self.results.len() != before;
        let stale: Vec<(&(String, String), &RemoteUpstream)> = remote
            .iter()
            .filter(|(key, upstream)| self.results.get(**key).is_none_or(|p| p.asked != ***upstream || p.next() <= now))
            .map(|(key, upstream)| (*key, *upstream))
            .collect();
        let egress = self.egress;
        // Owned futures: a stream of borrowing closures is not `Send` for the controller's task.
        let probes: Vec<_> = stale
            .iter()
            .map(|(_, upstream)| {
                let upstream = (*upstream).clone();
                async move { probe(&upstream, egress).await }
            })
            .collect();
        let asked: Vec<_> = futures::stream::iter(probes).buffered(PROBES_AT_ONCE).collect().await;
        for ((key, upstream), result) in stale.into_iter().zip(asked) {
            let previous = self.results.get(key);
            changed |= previous.map(|p| &p.result) != Some(&result);
            let failures = match (&result, previous) {
                (Ok(_), _) => 0,
                (Err(_), Some(p)) if p.asked == *upstream => p.failures + 1,
                (Err(_), _) => 1,
            };
            self.results.insert(key.clone(), Probed { asked: upstream.clone(), at: now, failures, result });
        }
        changed
    }

    /// The result for a server, if it was probed.
    pub fn result(&self, key: &(String, String)) -> Option<&Result<Offered, Failure>> {
        self.results.get(key).map(|p| &p.result)
    }

    /// Tool names of the servers that answered, for compile's collision check.
    pub fn discovered(&self) -> BTreeMap<(String, String), Vec<String>> {
        self.results
            .iter()
            .filter_map(|(key, p)| p.result.as_ref().ok().map(|offered| (key.clone(), offered.tools.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(url: String) -> RemoteUpstream {
        RemoteUpstream { url, transport: Transport::StreamableHttp, headers: vec![], timeout_ms: 5000 }
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
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
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

    #[tokio::test]
    async fn servers_are_asked_again_when_changed_or_due() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let key = ("acme".to_owned(), "weather".to_owned());
        let servers = BTreeMap::from([(key.clone(), Upstream::Remote(remote(format!("http://{closed}/mcp"))))]);
        let mut prober = Prober::default();
        let start = Instant::now();
        assert!(prober.refresh(&servers, start).await, "a first result");
        assert!(!prober.due(start + Duration::from_secs(4)), "a failure waits 5 s");
        assert!(prober.due(start + Duration::from_secs(5)));
        assert!(!prober.refresh(&servers, start + Duration::from_secs(5)).await, "the same failure");
        assert!(!prober.due(start + Duration::from_secs(14)), "then 10 s");
        assert!(prober.refresh(&BTreeMap::new(), start).await, "a server gone is forgotten");
        assert!(prober.result(&key).is_none());
    }
}
