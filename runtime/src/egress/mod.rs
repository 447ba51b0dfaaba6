//! Where requests Manifold makes for tenants may go, and how far they are followed: a pooled
//! hyper client whose resolver drops the addresses an [`Egress`] refuses (so a name cannot
//! lead to the cloud's metadata service either), redirects followed only within the first
//! request's origin, and bodies read up to a limit. The gateway's upstream clients, OpenAPI
//! adapter, key sets and decision services, and both binaries' document fetches connect
//! through it; it knows nothing of MCP.

mod document;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::rt::TokioExecutor;
pub use manifold_api::egress::Egress;

use crate::errors::chain;

pub use document::{DocumentFetch, fetch};

/// Redirects followed within the first request's origin.
const MAX_REDIRECTS: usize = 5;
/// How much of an error response's body a message quotes.
const EXCERPT_BYTES: usize = 2048;

/// An HTTP client whose connections honour an [`Egress`].
pub type GuardedHttp = Client<hyper_rustls::HttpsConnector<HttpConnector<Guarded>>, Full<Bytes>>;

/// Why an exchange gave no answer the caller can use.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No connection, or it broke while the response was read.
    #[error("cannot connect: {0}")]
    Unreachable(String),
    /// The server answered, but not in a way that is followed: a redirect elsewhere, too
    /// many of them, or a body over the limit.
    #[error("protocol error: {0}")]
    Refused(String),
}

/// A client that connects only where `egress` allows.
pub fn guarded_client(egress: Egress) -> GuardedHttp {
    let mut tcp = HttpConnector::new_with_resolver(Guarded { inner: GaiResolver::new(), egress });
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    tcp.set_connect_timeout(Some(Duration::from_secs(10)));
    tcp.set_keepalive(Some(Duration::from_secs(60)));
    let https = tls().https_or_http().enable_http1().enable_http2().wrap_connector(tcp);
    Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(90)).build(https)
}

/// TLS toward upstreams: rustls, with the system's roots, else Mozilla's.
fn tls() -> hyper_rustls::HttpsConnectorBuilder<hyper_rustls::builderstates::WantsSchemes> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    match hyper_rustls::HttpsConnectorBuilder::new().with_provider_and_native_roots(provider.clone()) {
        Ok(builder) => builder,
        Err(error) => {
            tracing::warn!(%error, "no usable system root certificates; trusting Mozilla's roots for https upstreams");
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_webpki_roots(provider)
                .expect("the bundled provider supports the default TLS versions")
        }
    }
}

/// The address a URL names literally, if it does: the resolver only sees names.
pub fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// The system resolver, without the addresses egress refuses: a name that resolves only to
/// those cannot be connected to.
#[derive(Clone)]
pub struct Guarded {
    inner: GaiResolver,
    egress: Egress,
}

impl tower_service::Service<Name> for Guarded {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let (resolving, egress) = (self.inner.call(name.clone()), self.egress);
        Box::pin(async move {
            let all: Vec<SocketAddr> = resolving.await?.collect();
            let allowed: Vec<SocketAddr> = all.iter().copied().filter(|a| egress.refuses(a.ip()).is_none()).collect();
            if allowed.is_empty() && !all.is_empty() {
                let why = egress.refuses(all[0].ip()).unwrap_or_default();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("`{name}` resolves to {why}"),
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}

/// Sends `request`, following redirects within `origin`'s origin (GET and HEAD only);
/// returns the status, the content type (lowercase, without parameters) and the body, read
/// up to `limit` bytes.
pub async fn exchange(
    http: &GuardedHttp,
    origin: &url::Url,
    mut request: Request<Full<Bytes>>,
    limit: usize,
) -> Result<(StatusCode, String, Bytes), Failure> {
    let mut current = url::Url::parse(&request.uri().to_string()).unwrap_or_else(|_| origin.clone());
    for _ in 0..=MAX_REDIRECTS {
        let again = (request.method() == Method::GET || request.method() == Method::HEAD)
            .then(|| (request.method().clone(), request.headers().clone()));
        let response = http.request(request).await.map_err(|e| Failure::Unreachable(chain(&e)))?;
        let status = response.status();
        if status.is_redirection()
            && let (Some((method, headers)), Some(location)) =
                (again, response.headers().get(LOCATION).and_then(|l| l.to_str().ok()))
        {
            let target = current.join(location).map_err(|e| Failure::Refused(format!("bad redirect: {e}")))?;
            if target.origin() != origin.origin() {
                return Err(Failure::Refused(format!(
                    "redirected to another origin ({}), which is not followed",
                    target.origin().ascii_serialization()
                )));
            }
            request = Request::builder()
                .method(method)
                .uri(target.as_str())
                .body(Full::new(Bytes::new()))
                .map_err(|e| Failure::Refused(e.to_string()))?;
            *request.headers_mut() = headers;
            current = target;
            continue;
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .unwrap_or_default();
        let limited = http_body_util::Limited::new(response.into_body(), limit);
        let body = match limited.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                return Err(Failure::Refused(format!("the response exceeded {limit} bytes")));
            }
            Err(error) => return Err(Failure::Unreachable(format!("reading the response: {error}"))),
        };
        return Ok((status, content_type, body));
    }
    Err(Failure::Refused(format!("more than {MAX_REDIRECTS} redirects")))
}

/// `HTTP 422 Unprocessable Entity: <the start of the body>`.
pub fn failure(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(EXCERPT_BYTES)]);
    let more = if body.len() > EXCERPT_BYTES { "…" } else { "" };
    let reason = status.canonical_reason().unwrap_or("");
    format!("HTTP {} {reason}: {}{more}", status.as_u16(), text.trim())
}
