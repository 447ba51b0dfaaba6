//! Streamable HTTP toward an upstream: one POST per message, answered with JSON or with an
//! SSE stream that carries the response; the upstream's session id rides in a header.

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Full;
use serde_json::value::RawValue;

use super::client::{self, HttpClient, Response};
use super::sse::EventReader;
use super::{Reply, UpstreamError, excerpt, negotiated_version, notification_body, reply_to, request_body};
use crate::jsonrpc::Message;

pub(super) const SESSION_ID: &str = "mcp-session-id";
const PROTOCOL_VERSION: &str = "mcp-protocol-version";
pub(super) const JSON: HeaderValue = HeaderValue::from_static("application/json");
const JSON_OR_STREAM: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");

pub(super) struct Client {
    pub uri: Uri,
    pub headers: HeaderMap,
}

/// An upstream session: its id (none for stateless servers) and negotiated revision.
pub(super) struct Session {
    id: Option<HeaderValue>,
    version: HeaderValue,
}

impl Client {
    pub async fn open(&self, id: u64, params: &RawValue) -> Result<Session, UpstreamError> {
        let (reply, headers) = self.request(None, id, "initialize", Some(params)).await?;
        let version = negotiated_version(reply)?;
        let session = Session {
            id: headers.get(SESSION_ID).cloned(),
            version: HeaderValue::try_from(version)
                .map_err(|_| UpstreamError::Protocol("protocol version is not a header value".into()))?,
        };
        let response = self.send(Method::POST, Some(&session), notification_body("notifications/initialized")).await?;
        if !response.status().is_success() {
            return Err(status_error(response).await);
        }
        Ok(session)
    }

    /// Sends one request; returns the reply and the response headers.
    pub async fn request(
        &self,
        session: Option<&Session>,
        id: u64,
        method: &str,
        params: Option<&RawValue>,
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
        let reply = if is_stream { read_stream(response, id).await? } else { read_json(response, id).await? };
        Ok((reply, headers))
    }

    /// Asks the upstream to end the session (DELETE), as the spec recommends.
    pub async fn close(&self, session: &Session) {
        if session.id.is_some() {
            let _ = self.send(Method::DELETE, Some(session), String::new()).await;
        }
    }

    async fn send(&self, method: Method, session: Option<&Session>, body: String) -> Result<Response, UpstreamError> {
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = method;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.reserve(self.headers.len() + 4);
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        headers.insert(CONTENT_TYPE, JSON);
        headers.insert(ACCEPT, JSON_OR_STREAM);
        if let Some(session) = session {
            headers.insert(PROTOCOL_VERSION, session.version.clone());
            if let Some(id) = &session.id {
                headers.insert(SESSION_ID, id.clone());
            }
        }
        HttpClient::current().send(request).await
    }
}

async fn read_json(response: Response, id: u64) -> Result<Reply, UpstreamError> {
    let body = client::body(response).await?;
    let message: Message = serde_json::from_slice(&body)
        .map_err(|e| UpstreamError::Protocol(format!("invalid JSON-RPC response ({e}): {}", excerpt(&body))))?;
    reply_to(message, id).ok_or_else(|| UpstreamError::Protocol(format!("response does not answer request {id}")))
}

async fn read_stream(response: Response, id: u64) -> Result<Reply, UpstreamError> {
    let mut events = EventReader::new(client::chunks(response));
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| UpstreamError::Unreachable(client::describe(&e)))?;
        // Notifications and server requests on this stream are not relayed yet; skip them.
        if let Ok(message) = serde_json::from_str::<Message>(&event.data)
            && let Some(reply) = reply_to(message, id)
        {
            return Ok(reply);
        }
    }
    Err(UpstreamError::Protocol(format!("stream ended without answering request {id}")))
}

pub(super) async fn status_error(response: Response) -> UpstreamError {
    let status = response.status().as_u16();
    let body = client::body(response).await.unwrap_or_default();
    UpstreamError::Status { status, excerpt: excerpt(&body) }
}
