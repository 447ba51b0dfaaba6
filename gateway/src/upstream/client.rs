//! The HTTP client toward upstreams: hyper's pooled client over TCP or TLS (rustls, with the
//! system's roots, else Mozilla's), and nothing a general-purpose client adds on top: no
//! redirects, no decompression, no cookies. This is the gateway's hot path.

use std::cell::RefCell;

use super::UpstreamError;
use manifold_runtime::egress::{Egress, GuardedHttp, guarded_client};

use bytes::Bytes;
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::Request;
use hyper::body::Incoming;

/// An upstream response.
pub type Response = hyper::Response<Incoming>;

/// A pooled HTTP/1.1 and HTTP/2 client, cheap to clone, that connects only where its egress
/// rule allows (a tenant's upstream URL must not reach the cloud's metadata service).
///
/// Each thread has its own per rule ([`HttpClient::current`]): a pooled connection's task
/// then runs on the thread that uses it, and a request never waits for another thread to
/// wake up.
#[derive(Clone)]
pub struct HttpClient(GuardedHttp);

thread_local! {
    /// This thread's clients, one per egress rule asked for (a process has one or two).
    static CURRENT: RefCell<Vec<(Egress, HttpClient)>> = const { RefCell::new(Vec::new()) };
}

impl HttpClient {
    /// This thread's client for `egress`.
    pub fn current(egress: Egress) -> Self {
        CURRENT.with_borrow_mut(|clients| {
            if let Some((_, client)) = clients.iter().find(|(rule, _)| *rule == egress) {
                return client.clone();
            }
            let client = HttpClient::new(egress);
            clients.push((egress, client.clone()));
            client
        })
    }

    pub fn new(egress: Egress) -> Self {
        HttpClient(guarded_client(egress))
    }

    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response, UpstreamError> {
        self.0.request(request).await.map_err(|e| {
            let why = manifold_runtime::errors::chain(&e);
            // A connection that could not be made carried nothing: the request never left.
            if e.is_connect() { UpstreamError::Connect(why) } else { UpstreamError::Unreachable(why) }
        })
    }
}

/// The whole body of a reply, bounded.
pub async fn body(response: Response) -> Result<Bytes, UpstreamError> {
    let limited = http_body_util::Limited::new(response.into_body(), super::MAX_MESSAGE_BYTES);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(UpstreamError::Unreachable(format!("reading the reply: {error}"))),
    }
}

/// The body of a reply as a stream of chunks (SSE).
pub fn chunks(response: Response) -> BodyDataStream<Incoming> {
    BodyDataStream::new(response.into_body())
}
