//! Streamable HTTP toward an upstream: one POST per message, answered with JSON or with an
//! SSE stream that carries the response; the upstream's session id rides in a header.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Full;
use serde_json::value::RawValue;

use super::client::{self, HttpClient, Response};
use super::sse::EventReader;
use super::{
    Inbox, Observer, Reply, Unobserved, UpstreamError, backoff, excerpt, negotiated_version, notification_body,
    reply_to, request_body,
};
use crate::jsonrpc::Message;
use manifold_runtime::egress::Egress;

pub(super) use crate::protocol::header::SESSION_ID;
use crate::protocol::header::{LAST_EVENT_ID, PROTOCOL_VERSION};
use crate::protocol::{Method as Mcp, STATELESS, meta};
pub(super) const JSON: HeaderValue = HeaderValue::from_static("application/json");
/// How often a request's broken event stream is resumed before the request fails.
const MAX_RESUMES: usize = 5;
const JSON_OR_STREAM: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");

#[derive(Clone)]
pub(super) struct Client {
    pub uri: Uri,
    pub headers: HeaderMap,
    /// Where connections may go (its addresses are checked as they resolve).
    pub egress: Egress,
}

/// An upstream session: its id (none for stateless servers) and negotiated revision.
#[derive(Clone)]
pub(super) struct Session {
    id: Option<HeaderValue>,
    version: HeaderValue,
}

impl Session {
    /// Whether the upstream keeps a session (and so may have a standalone stream).
    pub fn is_stateful(&self) -> bool {
        self.id.is_some()
    }

    /// What another replica needs to go on in this session; none for a stateless server.
    pub fn held(&self) -> Option<super::Held> {
        Some(super::Held {
            id: self.id.as_ref()?.to_str().ok()?.to_owned(),
            version: self.version.to_str().ok()?.to_owned(),
        })
    }

    /// A session opened elsewhere, resumed without `initialize`.
    pub fn resumed(held: &super::Held) -> Option<Session> {
        Some(Session {
            id: Some(HeaderValue::try_from(&held.id).ok()?),
            version: HeaderValue::try_from(&held.version).ok()?,
        })
    }
}

impl Client {
    pub async fn open(&self, id: u64, params: &RawValue) -> Result<Session, UpstreamError> {
        let (reply, headers) = self.request(None, id, Mcp::Initialize.name(), Some(params), &Unobserved).await?;
        let version = negotiated_version(reply)?;
        let session = Session {
            id: headers.get(SESSION_ID).cloned(),
            version: HeaderValue::try_from(version)
                .map_err(|_| UpstreamError::Protocol("protocol version is not a header value".into()))?,
        };
        self.post(&session, notification_body(Mcp::Initialized.name())).await?;
        Ok(session)
    }

    /// Asks `server/discover` whether the upstream serves the stateless revision.
    pub async fn discover(&self, id: u64) -> Result<bool, UpstreamError> {
        let params = serde_json::json!({ "_meta": {
            meta::PROTOCOL_VERSION: STATELESS,
            meta::CLIENT_CAPABILITIES: {},
            meta::CLIENT_INFO: { "name": "manifold-gateway", "version": env!("CARGO_PKG_VERSION") },
        }});
        let params = crate::jsonrpc::raw(&params);
        match self
            .stateless(id, Mcp::ServerDiscover.name(), Some(&params), None, &HeaderMap::new(), &Unobserved)
            .await?
        {
            (Reply::Result(result), _) => {
                #[derive(serde::Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Discovered {
                    #[serde(default)]
                    supported_versions: Vec<String>,
                }
                let discovered: Discovered =
                    serde_json::from_str(result.get()).unwrap_or(Discovered { supported_versions: vec![] });
                Ok(discovered.supported_versions.iter().any(|v| v == STATELESS))
            }
            (Reply::Error(_), _) => Ok(false),
        }
    }

    /// One request of the stateless revision, its headers mirrored from the body. A JSON-RPC
    /// error comes back as a reply whatever the HTTP status (servers differ on it).
    pub async fn stateless(
        &self,
        id: u64,
        method: &str,
        params: Option<&RawValue>,
        name: Option<&str>,
        forwarded: &HeaderMap,
        observer: &dyn Observer,
    ) -> Result<(Reply, u16), UpstreamError> {
        let mut request = self.request_to(Method::POST, None, Bytes::from(request_body(id, method, params)));
        let headers = request.headers_mut();
        headers.insert(PROTOCOL_VERSION, HeaderValue::from_static(STATELESS));
        headers.insert(
            "mcp-method",
            HeaderValue::try_from(method)
                .map_err(|_| UpstreamError::Protocol("method is not a header value".into()))?,
        );
        if let Some(name) = name {
            headers.insert("mcp-name", header_value(name));
        }
        for (header, value) in forwarded {
            headers.append(header, value.clone());
        }
        let response = HttpClient::current(self.egress).send(request).await?;
        let status = response.status().as_u16();
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        if content_type.starts_with("text/event-stream") {
            return Ok((self.read_stream(response, None, id, observer).await?, status));
        }
        if !content_type.starts_with("application/json") {
            return Err(status_error(response).await);
        }
        let body = client::body(response).await?;
        let message: Message = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Protocol(format!("invalid JSON-RPC response ({e}): {}", excerpt(&body))))?;
        // An error before the request was read may carry a null id; it still answers this request.
        let reply = match (message.result, message.error) {
            (Some(result), _) => Reply::Result(result),
            (None, Some(error)) => Reply::Error(error),
            (None, None) => return Err(UpstreamError::Protocol(format!("response does not answer request {id}"))),
        };
        Ok((reply, status))
    }

    /// Sends a message that gets no reply: a notification or an answer to the upstream.
    pub async fn post(&self, session: &Session, body: impl Into<Bytes>) -> Result<(), UpstreamError> {
        let response = self.send(Method::POST, Some(session), body).await?;
        match response.status() {
            StatusCode::NOT_FOUND if session.is_stateful() => Err(UpstreamError::SessionExpired),
            status if status.is_success() => Ok(()),
            _ => Err(status_error(response).await),
        }
    }

    /// Keeps the session's standalone stream (GET) open and delivers its messages to `inbox`,
    /// reopening it with `Last-Event-ID` when it breaks. Ends when the upstream offers no
    /// stream (405) or has forgotten the session (404).
    pub fn listen(&self, session: &Session, inbox: Inbox) -> impl Future<Output = ()> + Send + 'static {
        let (client, session) = (self.clone(), session.clone());
        async move {
            let mut last_event: Option<HeaderValue> = None;
            let mut failures = 0u32;
            loop {
                let mut request = client.request_to(Method::GET, Some(&session), Bytes::new());
                request.headers_mut().insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
                request.headers_mut().remove(CONTENT_TYPE);
                if let Some(id) = &last_event {
                    request.headers_mut().insert(LAST_EVENT_ID, id.clone());
                }
                match HttpClient::current(client.egress).send(request).await {
                    Ok(response) if response.status().is_success() => {
                        failures = 0;
                        let mut events = EventReader::new(client::chunks(response));
                        while let Some(Ok(event)) = events.next().await {
                            if let Some(id) = event.id.as_deref().and_then(|id| HeaderValue::try_from(id).ok()) {
                                last_event = Some(id);
                            }
                            if let Ok(message) = serde_json::from_str::<Message>(&event.data) {
                                inbox(message);
                            }
                        }
                    }
                    Ok(response)
                        if matches!(response.status(), StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_FOUND) =>
                    {
                        tracing::debug!(status = %response.status(), "upstream offers no standalone stream");
                        return;
                    }
                    Ok(response) => {
                        tracing::debug!(status = %response.status(), "upstream refused its standalone stream");
                        failures += 1;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "upstream standalone stream failed");
                        failures += 1;
                    }
                }
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }

    /// Sends one request; returns the reply and the response headers.
    pub async fn request(
        &self,
        session: Option<&Session>,
        id: u64,
        method: &str,
        params: Option<&RawValue>,
        observer: &dyn Observer,
    ) -> Result<(Reply, HeaderMap), UpstreamError> {
        let response = self.send(Method::POST, session, request_body(id, method, params)).await?;
        if response.status() == StatusCode::NOT_FOUND && session.is_some_and(|s| s.id.is_some()) {
            return Err(UpstreamError::SessionExpired);
        }
        if !response.status().is_success() {
            return Err(status_error(response).await);
        }
        let is_stream = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        let headers = response.headers().clone();
        let reply = if is_stream {
            self.read_stream(response, session, id, observer).await?
        } else {
            read_json(response, id).await?
        };
        Ok((reply, headers))
    }

    /// Asks the upstream to end the session (DELETE), as the spec recommends.
    pub async fn close(&self, session: &Session) {
        if session.id.is_some() {
            let _ = self.send(Method::DELETE, Some(session), String::new()).await;
        }
    }

    async fn send(
        &self,
        method: Method,
        session: Option<&Session>,
        body: impl Into<Bytes>,
    ) -> Result<Response, UpstreamError> {
        HttpClient::current(self.egress).send(self.request_to(method, session, body.into())).await
    }

    fn request_to(&self, method: Method, session: Option<&Session>, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.reserve(self.headers.len() + 4);
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        headers.insert(CONTENT_TYPE, JSON);
        headers.insert(ACCEPT, JSON_OR_STREAM);
        crate::traces::inject_headers(headers);
        super::identity::inject(headers);
        if let Some(session) = session {
            headers.insert(PROTOCOL_VERSION, session.version.clone());
            if let Some(id) = &session.id {
                headers.insert(SESSION_ID, id.clone());
            }
        }
        request
    }

    /// Reads a request's event stream up to its reply. A stream of a session that breaks
    /// before the reply is resumed with `Last-Event-ID`, as the spec has servers close streams
    /// (after a `retry:` hint) and replay on a GET.
    async fn read_stream(
        &self,
        mut response: Response,
        session: Option<&Session>,
        id: u64,
        observer: &dyn Observer,
    ) -> Result<Reply, UpstreamError> {
        let mut last_event: Option<HeaderValue> = None;
        let mut retry = Duration::from_millis(100);
        for _ in 0..=MAX_RESUMES {
            let mut events = EventReader::new(client::chunks(response));
            while let Some(event) = events.next().await {
                let event = event.map_err(|e| UpstreamError::Unreachable(manifold_runtime::errors::chain(&e)))?;
                if let Some(event_id) = event.id.as_deref().and_then(|e| HeaderValue::try_from(e).ok()) {
                    last_event = Some(event_id);
                }
                if let Some(ms) = event.retry {
                    retry = Duration::from_millis(ms.min(10_000));
                }
                let Ok(message) = serde_json::from_str::<Message>(&event.data) else { continue };
                if message.answers(id) {
                    if let Some(reply) = reply_to(message, id) {
                        return Ok(reply);
                    }
                } else {
                    observer.message(message);
                }
            }
            let (Some(session), Some(event_id)) = (session.filter(|s| s.is_stateful()), last_event.clone()) else {
                break;
            };
            tokio::time::sleep(retry).await;
            let mut request = self.request_to(Method::GET, Some(session), Bytes::new());
            request.headers_mut().insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
            request.headers_mut().remove(CONTENT_TYPE);
            request.headers_mut().insert(LAST_EVENT_ID, event_id);
            response = HttpClient::current(self.egress).send(request).await?;
            if !response.status().is_success() {
                return Err(status_error(response).await);
            }
        }
        Err(UpstreamError::Protocol(format!("stream ended without answering request {id}")))
    }
}

async fn read_json(response: Response, id: u64) -> Result<Reply, UpstreamError> {
    let body = client::body(response).await?;
    let message: Message = serde_json::from_slice(&body)
        .map_err(|e| UpstreamError::Protocol(format!("invalid JSON-RPC response ({e}): {}", excerpt(&body))))?;
    reply_to(message, id).ok_or_else(|| UpstreamError::Protocol(format!("response does not answer request {id}")))
}

/// A header value as the stateless revision encodes it: plain visible ASCII as it is,
/// anything else as `=?base64?<base64 of the UTF-8>?=`.
fn header_value(text: &str) -> HeaderValue {
    use base64::Engine;
    let plain = !text.is_empty()
        && text.bytes().all(|b| (0x20..0x7f).contains(&b))
        && text.trim() == text
        && !(text.starts_with("=?base64?") && text.ends_with("?="));
    let encoded;
    let text = if plain {
        text
    } else {
        encoded = format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode(text));
        &encoded
    };
    HeaderValue::try_from(text).expect("visible ASCII is a header value")
}

pub(super) async fn status_error(response: Response) -> UpstreamError {
    let status = response.status().as_u16();
    // A server shedding load says when to come back.
    let retry_after = match status {
        429 | 503 => response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::policy::resilience::retry::parse_retry_after(v, std::time::SystemTime::now())),
        _ => None,
    };
    let body = client::body(response).await.unwrap_or_default();
    UpstreamError::Status { status, excerpt: excerpt(&body), retry_after }
}
