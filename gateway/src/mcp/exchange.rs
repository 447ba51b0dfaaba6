//! One request's exchange with the route: its answer as JSON, or as an event stream once an
//! upstream sends something before its reply; its cancellation; its metrics.

use std::sync::Arc;

use bytes::Bytes;
use opentelemetry::context::FutureExt as _;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::call::{Answer, Call, Era};
use super::methods;
use super::response::{Response, event_stream, final_message, respond};
use super::rewrite;
use super::session::Session;
use super::stream::{DirectSender, SseBody};
use crate::Gateway;
use crate::metrics::RequestLabels;
use crate::protocol::Method;
use crate::snapshot::Route;

/// Answers a request: as JSON when the upstream only replies, as an event stream as soon as
/// it sends something first (progress, logging, a request of its own). In a session, a
/// streamed exchange runs on even if the client disconnects, so that it can resume with
/// `Last-Event-ID`; a stateless exchange ends with its client's connection, which is how the
/// stateless revision cancels.
pub async fn request(
    call: Call,
    method: Method,
    name: String,
    params: Option<Box<RawValue>>,
    mut relayed: mpsc::UnboundedReceiver<Bytes>,
) -> Response {
    let session = Arc::clone(&call.session);
    let era = call.era.clone();
    let traced = call.gateway.tracer.is_some();
    // A session's client may cancel the request (`notifications/cancelled`); then no answer
    // is sent, as the spec asks.
    let tracked = (!era.is_stateless()).then(|| session.track(call.id.get()));
    // Counted for as long as the exchange runs: also when it streams on after this handler has
    // returned, and not after it was dropped with its client's connection.
    let in_flight = InFlight::new(&call.gateway.metrics.in_flight);
    let mut work = Box::pin(async move {
        let _in_flight = in_flight;
        let dispatched = methods::dispatch(&call, method, &name, params.as_deref());
        let answer = match tracked {
            Some(mut tracked) => tokio::select! {
                answer = dispatched => Some(answer),
                Ok(()) = &mut tracked.cancelled => None,
            },
            None => Some(dispatched.await),
        };
        let answer = answer.map(|answer| {
            let answer = if call.era.is_stateless() { stamp(method, answer) } else { answer };
            count(&call.gateway, &call.route, method, &answer);
            answer
        });
        (call.id, answer, call.cached.get().copied())
    });
    let mut early = Vec::new();
    tokio::select! {
        biased;
        Some(first) = relayed.recv() => early.push(first),
        (id, answer, cached) = &mut work => {
            early.extend(std::iter::from_fn(|| relayed.try_recv().ok()));
            match answer {
                Some(answer) if early.is_empty() => {
                    let mut response = respond(&id, answer, &era);
                    if let Some(cached) = cached {
                        let value = http::HeaderValue::from_static(cached.as_str());
                        response.headers_mut().insert(crate::protocol::header::CACHE, value);
                    }
                    return response;
                }
                answer => {
                    let (outlet, body) = Outlet::open(&session, &era);
                    for message in early {
                        outlet.send(&message);
                    }
                    outlet.conclude(&mut relayed, &id, answer);
                    return event_stream(body);
                }
            }
        }
    };
    let (outlet, mut body) = Outlet::open(&session, &era);
    for message in early {
        outlet.send(&message);
    }
    let streamed = async move {
        loop {
            tokio::select! {
                biased;
                Some(message) = relayed.recv() => outlet.send(&message),
                (id, answer, _) = &mut work => return outlet.conclude(&mut relayed, &id, answer),
            }
        }
    };
    // The task goes on in the request's span (which ends with it).
    let task = match traced {
        true => tokio::spawn(streamed.with_current_context()),
        false => tokio::spawn(streamed),
    };
    if era.is_stateless() {
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
    fn open(session: &Arc<Session>, era: &Era) -> (Outlet, SseBody) {
        if era.is_stateless() {
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

pub fn count(gateway: &Gateway, route: &Route, method: Method, answer: &Answer) {
    if gateway.tracer.is_some() {
        answer.trace(&opentelemetry::Context::current(), method);
    }
    let (namespace, route) = (&*route.config.namespace, &*route.config.name);
    gateway.metrics.requests.inc(&RequestLabels { namespace, route, method, outcome: answer.outcome() });
}

/// A stateless answer's results say what they are (see [`rewrite::stamp`]).
fn stamp(method: Method, answer: Answer) -> Answer {
    match answer {
        Answer::Result(result) => Answer::Result(rewrite::stamp(method, result)),
        Answer::MountFailed(result) => Answer::MountFailed(rewrite::stamp(method, result)),
        other => other,
    }
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

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use http_body_util::BodyExt;
    use serde_json::{Value, json};

    use super::*;
    use crate::mcp::call::testing::{call, route};
    use crate::metrics::Outcome;

    /// The status and JSON body of `request` for `method`, in `era`, with no upstream reached.
    async fn exchange(era: Era, method: &str) -> (StatusCode, Value, Arc<Gateway>) {
        let (call, relayed) = call(route(&[], None), era).await;
        let gateway = Arc::clone(&call.gateway);
        let response = request(call, Method::parse(method), method.into(), None, relayed).await;
        let status = response.status();
        let Ok(body) = response.into_body().collect().await else { panic!("a JSON body reads") };
        let body = body.to_bytes();
        (status, serde_json::from_slice(&body).unwrap(), gateway)
    }

    fn counted(method: Method, outcome: Outcome) -> RequestLabels<'static> {
        RequestLabels { namespace: "acme", route: "tools", method, outcome }
    }

    #[tokio::test]
    async fn a_session_request_is_answered_as_json_and_counted() {
        let (status, body, gateway) = exchange(Era::Session, "ping").await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "jsonrpc": "2.0", "id": 7, "result": {} })));
        let counted = gateway.metrics.requests.with(&counted(Method::Ping, Outcome::Ok)).get();
        assert_eq!((counted, gateway.metrics.in_flight.get()), (1, 0), "counted once, and no longer in flight");

        let (status, body, _) = exchange(Era::Session, "nothing/here").await;
        assert_eq!((status, &body["error"]["code"]), (StatusCode::OK, &json!(-32601)), "errors are 200 in a session");
    }

    #[tokio::test]
    async fn a_stateless_request_gets_its_result_type_and_its_status() {
        let (status, body, _) = exchange(Era::stateless_for_tests(), "ping").await;
        assert_eq!((status, &body["result"]), (StatusCode::OK, &json!({ "resultType": "complete" })));
        let (status, body, gateway) = exchange(Era::stateless_for_tests(), "nothing/here").await;
        assert_eq!((status, &body["error"]["code"]), (StatusCode::NOT_FOUND, &json!(-32601)));
        let counted = gateway.metrics.requests.with(&counted(Method::Other, Outcome::Error)).get();
        assert_eq!(counted, 1, "an unknown method is counted under `other`");
    }
}
