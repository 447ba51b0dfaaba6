//! Streamable HTTP toward an upstream: one POST per message, answered with JSON or with an
//! SSE stream that carries the response; the upstream's session id rides in a header.

use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Response, StatusCode};
use serde_json::value::RawValue;

use super::sse::EventReader;
use super::{Reply, UpstreamError, excerpt, negotiated_version, notification_body, reply_to, request_body};
use crate::jsonrpc::Message;

pub(super) const SESSION_ID: &str = "mcp-session-id";
pub(super) const PROTOCOL_VERSION: &str = "mcp-protocol-version";

pub(super) struct Client {
    pub http: reqwest::Client,
    pub url: url::Url,
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
        let response = self.post(Some(&session), notification_body("notifications/initialized")).await?;
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
        let response = self.post(session, request_body(id, method, params)).await?;
        if response.status() == StatusCode::NOT_FOUND && session.is_some_and(|s| s.id.is_some()) {
            return Err(UpstreamError::SessionExpired);
        }
        if !response.status().is_success() {
            return Err(status_error(response).await);
        }
        let headers = response.headers().clone();
        let is_stream = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        let reply = if is_stream { read_stream(response, id).await? } else { read_json(response, id).await? };
        Ok((reply, headers))
    }

    /// Asks the upstream to end the session (DELETE), as the spec recommends.
    pub async fn close(&self, session: &Session) {
        let Some(id) = &session.id else { return };
        let _ = self.http.delete(self.url.clone()).headers(self.headers.clone()).header(SESSION_ID, id).send().await;
    }

    async fn post(&self, session: Option<&Session>, body: String) -> Result<Response, UpstreamError> {
        let mut request = self
            .http
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream");
        if let Some(session) = session {
            request = request.header(PROTOCOL_VERSION, &session.version);
            if let Some(id) = &session.id {
                request = request.header(SESSION_ID, id);
            }
        }
        request.body(body).send().await.map_err(|e| UpstreamError::Unreachable(describe(e)))
    }
}

async fn read_json(response: Response, id: u64) -> Result<Reply, UpstreamError> {
    let body = response.bytes().await.map_err(|e| UpstreamError::Unreachable(describe(e)))?;
    let message: Message = serde_json::from_slice(&body)
        .map_err(|e| UpstreamError::Protocol(format!("invalid JSON-RPC response ({e}): {}", excerpt(&body))))?;
    reply_to(message, id).ok_or_else(|| UpstreamError::Protocol(format!("response does not answer request {id}")))
}

async fn read_stream(response: Response, id: u64) -> Result<Reply, UpstreamError> {
    let mut events = EventReader::new(response.bytes_stream().boxed());
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| UpstreamError::Unreachable(describe(e)))?;
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
    let body = response.bytes().await.unwrap_or_default();
    UpstreamError::Status { status, excerpt: excerpt(&body) }
}

/// reqwest's message plus its cause (for example "connection refused").
pub(super) fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
