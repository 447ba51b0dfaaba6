//! One request's exchange with the route: its answer as JSON, or as an event stream once an
//! upstream sends something before its reply; its cancellation; its metrics.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::endpoint::{Response, event_stream, json};
use super::methods::{self, Answer, Call};
use super::session::Session;
use super::stream::{DirectSender, SseBody};
use crate::Gateway;
use crate::jsonrpc;
use crate::snapshot::Route;

/// Answers a request: as JSON when the upstream only replies, as an event stream as soon as
/// it sends something first (progress, logging, a request of its own). In a session, a
/// streamed exchange runs on even if the client disconnects, so that it can resume with
/// `Last-Event-ID`; a stateless exchange ends with its client's connection, which is how the
/// stateless revision cancels.
pub async fn request(
    call: Call,
    method: String,
    params: Option<Box<RawValue>>,
    mut relayed: mpsc::UnboundedReceiver<Bytes>,
) -> Response {
    let session = Arc::clone(&call.session);
    let stateless = call.stateless.is_some();
    // A session's client may cancel the request (`notifications/cancelled`); then no answer
    // is sent, as the spec asks.
    let tracked = (!stateless).then(|| session.track(call.id.get()));
    // Counted for as long as the exchange runs: also when it streams on after this handler has
    // returned, and not after it was dropped with its client's connection.
    let in_flight = InFlight::new(&call.gateway.metrics.in_flight);
    let mut work = Box::pin(async move {
        let _in_flight = in_flight;
        let dispatched = methods::dispatch(&call, &method, params.as_deref());
        let answer = match tracked {
            Some(mut tracked) => tokio::select! {
                answer = dispatched => Some(answer),
                Ok(()) = &mut tracked.cancelled => None,
            },
            None => Some(dispatched.await),
        };
        let answer = answer.map(|answer| {
            let answer = if stateless { super::stateless::stamp(&method, answer) } else { answer };
            count(&call.gateway, &call.route, &method, &answer);
            answer
        });
        (call.id, answer)
    });
    let mut early = Vec::new();
    tokio::select! {
        biased;
        Some(first) = relayed.recv() => early.push(first),
        (id, answer) = &mut work => {
            early.extend(std::iter::from_fn(|| relayed.try_recv().ok()));
            match answer {
                Some(answer) if early.is_empty() => return respond(&id, answer, stateless),
                answer => {
                    let (outlet, body) = Outlet::open(&session, stateless);
                    for message in early {
                        outlet.send(&message);
                    }
                    outlet.conclude(&mut relayed, &id, answer);
                    return event_stream(body);
                }
            }
        }
    };
    let (outlet, mut body) = Outlet::open(&session, stateless);
    for message in early {
        outlet.send(&message);
    }
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                Some(message) = relayed.recv() => outlet.send(&message),
                (id, answer) = &mut work => return outlet.conclude(&mut relayed, &id, answer),
            }
        }
    });
    if stateless {
        body.cancel_on_drop(task.abort_handle());
    }
    event_stream(body)
}

/// Where a streamed answer goes: a stream of the client's session, or straight to a
/// stateless client.
enum Outlet {
    Session(Arc<Session>, u64),
    Direct(DirectSender),
}

impl Outlet {
    fn open(session: &Arc<Session>, stateless: bool) -> (Outlet, SseBody) {
        if stateless {
            let (sender, body) = SseBody::direct();
            (Outlet::Direct(sender), body)
        } else {
            let (stream, body) = session.streams.open();
            (Outlet::Session(Arc::clone(session), stream), body)
        }
    }

    fn send(&self, message: &[u8]) {
        match self {
            Outlet::Session(session, stream) => session.streams.send(*stream, message),
            Outlet::Direct(sender) => sender.send(message),
        }
    }

    /// Sends what is still relayed and the answer (none for a cancelled request), and ends
    /// the stream.
    fn conclude(self, relayed: &mut mpsc::UnboundedReceiver<Bytes>, id: &RawValue, answer: Option<Answer>) {
        while let Ok(message) = relayed.try_recv() {
            self.send(&message);
        }
        if let Some(answer) = answer {
            self.send(&final_message(id, answer));
        }
        if let Outlet::Session(session, stream) = self {
            session.streams.finish(stream);
        }
    }
}

pub fn count(gateway: &Gateway, route: &Route, method: &str, answer: &Answer) {
    let labels = [&*route.config.namespace, &route.config.name, crate::metrics::method_label(method), answer.outcome()];
    gateway.metrics.requests.with_label_values(&labels).inc();
}

/// The JSON-RPC response for an answer.
fn final_message(id: &RawValue, answer: Answer) -> Bytes {
    match answer {
        Answer::Result(result) | Answer::MountFailed(result) => jsonrpc::result(id, &result),
        Answer::UpstreamError(error, _) => jsonrpc::raw_error(id, &error),
        Answer::Error(error) => jsonrpc::error(Some(id), &error),
    }
}

pub fn respond(id: &RawValue, answer: Answer, stateless: bool) -> Response {
    let status = match &answer {
        _ if !stateless => StatusCode::OK,
        // The stateless revision gives errors HTTP statuses: the gateway's own by code, an
        // upstream's as the upstream gave it.
        Answer::Error(error) => super::stateless::status(error.code),
        Answer::UpstreamError(_, Some(status)) => StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
        _ => StatusCode::OK,
    };
    json(status, final_message(id, answer))
}

/// Counts a request in flight until dropped: also when the client goes away mid-call and the
/// request's future is dropped.
struct InFlight(prometheus::IntGauge);

impl InFlight {
    fn new(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
