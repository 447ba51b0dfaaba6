//! A mock API server for the operator's tests: it expects an exact sequence of requests
//! (method, then path and query) and answers each with the JSON given; anything else, or
//! any request beyond the sequence, fails the test.

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use tokio::task::JoinHandle;
use tower_test::mock;

/// One expected request and its answer.
pub type Exchange = (Method, String, serde_json::Value);

/// A client whose requests go to a mock that expects `exchanges` (each answered 200);
/// joining the handle returns the request bodies (JSON, or null) in order.
pub fn api_server(exchanges: Vec<Exchange>) -> (Client, JoinHandle<Vec<serde_json::Value>>) {
    api_server_with_status(exchanges.into_iter().map(|(m, u, a)| (m, u, 200, a)).collect())
}

/// Same, each answer with its HTTP status.
pub fn api_server_with_status(
    exchanges: Vec<(Method, String, u16, serde_json::Value)>,
) -> (Client, JoinHandle<Vec<serde_json::Value>>) {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let mut bodies = Vec::new();
        for (method, uri, status, answer) in exchanges {
            let next = tokio::time::timeout(std::time::Duration::from_secs(5), handle.next_request()).await;
            let (request, send) = next
                .unwrap_or_else(|_| panic!("no request came; expected {method} {uri}"))
                .expect("the request expected next");
            assert_eq!((request.method(), request.uri().to_string()), (&method, uri));
            let bytes = request.into_body().collect_bytes().await.unwrap();
            bodies.push(serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null));
            let response = Response::builder().status(status).body(Body::from(serde_json::to_vec(&answer).unwrap()));
            send.send_response(response.unwrap());
        }
        let extra = tokio::time::timeout(std::time::Duration::from_millis(50), handle.next_request()).await;
        if let Ok(Some((request, _))) = extra {
            panic!("an unexpected request: {} {}", request.method(), request.uri());
        }
        bodies
    });
    (Client::new(service, "default"), server)
}
