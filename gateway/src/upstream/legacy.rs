//! The legacy HTTP+SSE transport (protocol 2024-11-05): a long-lived GET stream announces a
//! POST endpoint; requests are POSTed there and their answers arrive on the stream, matched
//! to waiting requests by id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Full;
use serde_json::value::RawValue;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use super::client::{self, HttpClient, Response};
use super::sse::EventReader;
use super::streamable::{JSON, status_error};
use super::{Inbox, Reply, UpstreamError, negotiated_version, notification_body, reply_to, request_body};
use crate::jsonrpc::Message;
use crate::protocol::Method as Mcp;
use manifold_runtime::egress::Egress;

pub(super) struct Client {
    pub url: url::Url,
    pub headers: HeaderMap,
    /// Where connections may go (its addresses are checked as they resolve).
    pub egress: Egress,
}

/// An open SSE stream and the requests waiting for answers on it.
pub(super) struct Session {
    endpoint: Uri,
    waiting: Arc<Waiting>,
    reader: AbortHandle,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Requests awaiting their answer; `None` once the stream has closed.
struct Waiting(Mutex<Option<HashMap<u64, oneshot::Sender<Message>>>>);

impl Waiting {
    fn register(&self, id: u64) -> Option<oneshot::Receiver<Message>> {
        let (tx, rx) = oneshot::channel();
        self.0.lock().expect("waiting lock").as_mut()?.insert(id, tx);
        Some(rx)
    }

    fn forget(&self, id: u64) {
        if let Some(map) = self.0.lock().expect("waiting lock").as_mut() {
            map.remove(&id);
        }
    }

    fn answer(&self, id: u64, message: Message) {
        let sender = self.0.lock().expect("waiting lock").as_mut().and_then(|map| map.remove(&id));
        if let Some(sender) = sender {
            let _ = sender.send(message);
        }
    }

    /// The stream is gone: every waiting request fails, and new ones are refused.
    fn close(&self) {
        self.0.lock().expect("waiting lock").take();
    }
}

impl Client {
    /// Opens the stream and the session; messages on the stream that answer no request of
    /// the gateway's go to `inbox`.
    pub async fn open(&self, id: u64, params: &RawValue, inbox: Inbox) -> Result<Session, UpstreamError> {
        let stream_uri = Uri::try_from(self.url.as_str()).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        let response = self.send(Method::GET, stream_uri, Bytes::new()).await?;
        if !response.status().is_success() {
            return Err(status_error(response).await);
        }
        let mut events = EventReader::new(client::chunks(response));
        let endpoint = loop {
            match events.next().await {
                Some(Ok(event)) if event.event == "endpoint" => break event.data,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(UpstreamError::Unreachable(manifold_runtime::errors::chain(&e))),
                None => return Err(UpstreamError::Protocol("SSE stream ended before announcing its endpoint".into())),
            }
        };
        let endpoint = self.endpoint(&endpoint)?;

        let waiting = Arc::new(Waiting(Mutex::new(Some(HashMap::new()))));
        let reader = tokio::spawn({
            let waiting = waiting.clone();
            async move {
                while let Some(Ok(event)) = events.next().await {
                    if !(event.event.is_empty() || event.event == "message") {
                        continue;
                    }
                    let Ok(message) = serde_json::from_str::<Message>(&event.data) else { continue };
                    match message.id.as_ref().and_then(|id| id.get().parse::<u64>().ok()) {
                        Some(id) if message.method.is_none() => waiting.answer(id, message),
                        _ => inbox(message),
                    }
                }
                waiting.close();
            }
        })
        .abort_handle();

        let session = Session { endpoint, waiting, reader };
        let version = negotiated_version(self.request(&session, id, Mcp::Initialize.name(), Some(params)).await?)?;
        tracing::debug!(url = %self.url, %version, "legacy SSE upstream session opened");
        self.post(&session, notification_body(Mcp::Initialized.name())).await?;
        Ok(session)
    }

    pub async fn request(
        &self,
        session: &Session,
        id: u64,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<Reply, UpstreamError> {
        let answer = session.waiting.register(id).ok_or(UpstreamError::SessionExpired)?;
        let _forget = Forget(&session.waiting, id);
        self.post(session, request_body(id, method, params)).await?;
        // The upstream accepted the request: if the stream now closes, the request may have
        // run, so it is not retried on a new session (a tool call must not run twice).
        let message = answer
            .await
            .map_err(|_| UpstreamError::Unreachable("the SSE stream closed before the answer arrived".into()))?;
        reply_to(message, id).ok_or_else(|| UpstreamError::Protocol(format!("answer to request {id} has no result")))
    }

    /// Sends one message to the session's endpoint; its answer, if any, comes on the stream.
    pub async fn post(&self, session: &Session, body: impl Into<Bytes>) -> Result<(), UpstreamError> {
        let response = self.send(Method::POST, session.endpoint.clone(), body.into()).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Err(UpstreamError::SessionExpired),
            status if status.is_success() => Ok(()),
            _ => Err(status_error(response).await),
        }
    }

    /// GET opens the event stream; POST carries one JSON-RPC message.
    async fn send(&self, method: Method, uri: Uri, body: Bytes) -> Result<Response, UpstreamError> {
        let mut request = Request::new(Full::new(body));
        let (name, value) = match method {
            Method::GET => (ACCEPT, HeaderValue::from_static("text/event-stream")),
            _ => (CONTENT_TYPE, JSON),
        };
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        for (header, header_value) in &self.headers {
            headers.append(header, header_value.clone());
        }
        headers.insert(name, value);
        crate::traces::inject_headers(headers);
        super::identity::inject(headers);
        HttpClient::current(self.egress).send(request).await
    }

    /// The announced endpoint, which must stay on the stream's origin: an upstream cannot
    /// make the gateway send requests (and credentials) elsewhere.
    fn endpoint(&self, announced: &str) -> Result<Uri, UpstreamError> {
        let endpoint = self
            .url
            .join(announced.trim())
            .map_err(|e| UpstreamError::Protocol(format!("invalid endpoint `{announced}`: {e}")))?;
        if endpoint.origin() != self.url.origin() {
            return Err(UpstreamError::Protocol(format!("endpoint `{announced}` is on another origin")));
        }
        Uri::try_from(endpoint.as_str())
            .map_err(|e| UpstreamError::Protocol(format!("invalid endpoint `{announced}`: {e}")))
    }
}

/// Removes a waiting request when its caller stops waiting (answered, failed or timed out).
struct Forget<'a>(&'a Waiting, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.forget(self.1);
    }
}
