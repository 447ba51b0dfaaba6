//! What the MCP listener sends back: one JSON body or an event stream, built here, and the
//! HTTP status of every answer and of the stateless revision's errors, by era and code,
//! decided here in this one place. (Refusals before a request reaches a method, such as no
//! route, no session or no credential, get theirs where they are refused: in `endpoint`.)

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use http_body_util::{Either, Full};
use serde_json::value::RawValue;

use super::call::{Answer, Era};
use super::stream::SseBody;
use crate::jsonrpc::{self, RpcError};
use crate::protocol::code::{
    HEADER_MISMATCH, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, MISSING_CAPABILITY, PARSE_ERROR,
    UNSUPPORTED_VERSION,
};

/// A response of the MCP listener: one JSON body, or an event stream.
pub type Response = http::Response<Either<Full<Bytes>, SseBody>>;

/// The JSON-RPC response for an answer.
pub fn final_message(id: &RawValue, answer: Answer) -> Bytes {
    match answer {
        Answer::Result(result) | Answer::MountFailed(result) => jsonrpc::result(id, &result),
        Answer::UpstreamError(error, _) => jsonrpc::raw_error(id, &error),
        Answer::Error(error) => jsonrpc::error(Some(id), &error),
    }
}

/// An answer as one JSON response.
pub fn respond(id: &RawValue, answer: Answer, era: &Era) -> Response {
    json(answer_status(&answer, era), final_message(id, answer))
}

/// The HTTP status of an answer: always 200 in a session; the stateless revision gives
/// errors HTTP statuses, the gateway's own by code, an upstream's as the upstream gave it.
fn answer_status(answer: &Answer, era: &Era) -> StatusCode {
    match answer {
        _ if !era.is_stateless() => StatusCode::OK,
        Answer::Error(error) => stateless_status(error.code),
        Answer::UpstreamError(_, Some(status)) => StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
        _ => StatusCode::OK,
    }
}

/// The HTTP status of the gateway's own errors in the stateless revision.
pub fn stateless_status(code: i64) -> StatusCode {
    match code {
        METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        PARSE_ERROR | INVALID_REQUEST | INVALID_PARAMS | HEADER_MISMATCH | MISSING_CAPABILITY | UNSUPPORTED_VERSION => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::OK,
    }
}

pub fn event_stream(body: SseBody) -> Response {
    let mut response = http::Response::new(Either::Right(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub fn json(status: StatusCode, body: Bytes) -> Response {
    let mut response = http::Response::new(Either::Left(Full::new(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub fn empty(status: StatusCode) -> Response {
    let mut response = http::Response::new(Either::Left(Full::default()));
    *response.status_mut() = status;
    response
}

pub fn rpc_failure(status: StatusCode, id: Option<&RawValue>, error: RpcError) -> Response {
    if crate::traces::on() {
        crate::traces::ended(
            &opentelemetry::Context::current(),
            crate::traces::Outcome::Error(error.code, &error.message),
        );
    }
    json(status, jsonrpc::error(id, &error))
}

pub fn plain(status: StatusCode, message: String) -> Response {
    let mut response = http::Response::new(Either::Left(Full::new(Bytes::from(message))));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::raw;
    use crate::protocol::code::{FORBIDDEN, INTERNAL_ERROR};

    fn statuses(era: &Era) -> Vec<StatusCode> {
        let answers = [
            Answer::Result(raw(&serde_json::json!({}))),
            Answer::MountFailed(raw(&serde_json::json!({"isError": true}))),
            Answer::UpstreamError(raw(&serde_json::json!({"code": -1})), Some(503)),
            Answer::UpstreamError(raw(&serde_json::json!({"code": -1})), None),
            Answer::Error(RpcError::new(METHOD_NOT_FOUND, "")),
            Answer::Error(RpcError::new(INVALID_PARAMS, "")),
            Answer::Error(RpcError::new(HEADER_MISMATCH, "")),
            Answer::Error(RpcError::new(FORBIDDEN, "")),
            Answer::Error(RpcError::new(INTERNAL_ERROR, "")),
        ];
        answers.iter().map(|answer| answer_status(answer, era)).collect()
    }

    #[test]
    fn sessions_answer_200_and_the_stateless_revision_maps_errors_to_statuses() {
        assert!(statuses(&Era::Session).iter().all(|s| *s == StatusCode::OK));
        use StatusCode as S;
        assert_eq!(
            statuses(&Era::stateless_for_tests()),
            [S::OK, S::OK, S::SERVICE_UNAVAILABLE, S::OK, S::NOT_FOUND, S::BAD_REQUEST, S::BAD_REQUEST, S::OK, S::OK]
        );
    }
}
