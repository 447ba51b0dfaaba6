//! Messages that are not a client's request and its reply: what upstreams send on their own
//! (notifications, and requests such as `sampling/createMessage`, `elicitation/create` or
//! `roots/list`) rewritten for the client, and the client's answers and notifications routed
//! back. An upstream request's id becomes `"<mount key>~<upstream id>"` on the way out, so
//! the client's answer finds its upstream with no state kept here.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::names::prefix_uri;
use super::session::Session;
use crate::jsonrpc::{Message, raw};
use crate::snapshot::Route;

/// What the client sees of a message from the upstream of mount `key`; None for messages
/// not meant for it (stray responses).
pub fn to_client(key: &str, prefix: &str, message: Message) -> Option<Bytes> {
    let method = message.method?;
    let method_json = serde_json::to_string(&method).expect("strings serialize");
    if let Some(id) = message.id {
        let id = raw(&client_id(key, &id));
        // A progress token the upstream gives its request comes back on the client's progress
        // notifications: it gets the same form as ids, to find its way back.
        let params = message.params.map(|p| match p.get().contains("\"progressToken\"") {
            true => rewrite_meta_token(&p, |token| Value::String(client_id(key, &raw(token)))),
            false => p,
        });
        let params = params.map(|p| format!(r#","params":{}"#, p.get())).unwrap_or_default();
        return Some(Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":{},"method":{method_json}{params}}}"#, id.get())));
    }
    let params = match (method.as_str(), message.params) {
        ("notifications/resources/updated", Some(params)) => Some(rewrite(&params, "uri", |uri| match uri {
            Value::String(uri) => Value::String(prefix_uri(prefix, uri)),
            other => other.clone(),
        })),
        ("notifications/cancelled", Some(params)) => {
            Some(rewrite(&params, "requestId", |id| Value::String(client_id(key, &raw(id)))))
        }
        (_, params) => params,
    };
    Some(crate::jsonrpc::notification(&method, params.as_deref()))
}

/// The mount key and upstream id behind an id the gateway gave an upstream's request.
pub fn from_client_id(id: &RawValue) -> Option<(String, Box<RawValue>)> {
    let text: String = serde_json::from_str(id.get()).ok()?;
    // A mount key is `<prefix>~<server>`, and neither part contains `~`.
    let first = text.find('~')?;
    let second = first + 1 + text[first + 1..].find('~')?;
    Some((text[..second].to_owned(), serde_json::from_str(&text[second + 1..]).ok()?))
}

/// The client's answer to an upstream request, with the upstream's own id.
pub fn answer(upstream_id: &RawValue, result: Option<&RawValue>, error: Option<&RawValue>) -> Bytes {
    match (result, error) {
        (Some(result), _) => crate::jsonrpc::result(upstream_id, result),
        (None, Some(error)) => crate::jsonrpc::raw_error(upstream_id, error),
        (None, None) => unreachable!("a response has a result or an error"),
    }
}

/// The client's progress on an upstream's request: the mount key, and the notification with
/// the upstream's own progress token.
pub fn progress_to_upstream(params: &RawValue) -> Option<(String, Bytes)> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Progress {
        progress_token: Box<RawValue>,
    }
    let Progress { progress_token } = serde_json::from_str(params.get()).ok()?;
    let (key, token) = from_client_id(&progress_token)?;
    let params = rewrite(params, "progressToken", |_| serde_json::from_str(token.get()).unwrap_or_default());
    Some((key, crate::jsonrpc::notification("notifications/progress", Some(&params))))
}

/// The client's `notifications/cancelled` for its request, sent as the upstream's id.
pub fn cancelled(upstream_id: u64, params: &RawValue) -> Bytes {
    let params = rewrite(params, "requestId", |_| Value::from(upstream_id));
    crate::jsonrpc::notification("notifications/cancelled", Some(&params))
}

fn client_id(key: &str, upstream_id: &RawValue) -> String {
    format!("{key}~{}", upstream_id.get())
}

/// `params` with `_meta.progressToken` replaced.
fn rewrite_meta_token(params: &RawValue, change: impl Fn(&Value) -> Value) -> Box<RawValue> {
    let Ok(mut object) = serde_json::from_str::<Map<String, Value>>(params.get()) else {
        return params.to_owned();
    };
    if let Some(token) = object.get_mut("_meta").and_then(|m| m.get_mut("progressToken")) {
        *token = change(token);
    }
    raw(&object)
}

/// `params` with one field replaced; params that are not an object pass unchanged.
fn rewrite(params: &RawValue, field: &str, change: impl Fn(&Value) -> Value) -> Box<RawValue> {
    let Ok(mut object) = serde_json::from_str::<Map<String, Value>>(params.get()) else {
        return params.to_owned();
    };
    if let Some(value) = object.get_mut(field) {
        *value = change(value);
    }
    raw(&object)
}

/// A notification from the client: cancellation goes to the upstream running the request,
/// progress on an upstream's request to that upstream, a change of roots to every upstream
/// the client uses; the rest concerns only the gateway.
pub fn notified(route: &Route, session: &Arc<Session>, method: &str, params: Option<&RawValue>) {
    let posts: Vec<_> = match (method, params) {
        ("notifications/cancelled", Some(params)) => {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Cancelled {
                request_id: Box<RawValue>,
            }
            let Ok(Cancelled { request_id }) = serde_json::from_str(params.get()) else { return };
            let Some((key, upstream_id)) = session.cancel(request_id.get()) else { return };
            let Some((client, slot)) = session.used_slot(route, &key) else { return };
            vec![(client, slot, cancelled(upstream_id, params))]
        }
        ("notifications/progress", Some(params)) => {
            let Some((key, body)) = progress_to_upstream(params) else { return };
            let Some((client, slot)) = session.used_slot(route, &key) else { return };
            vec![(client, slot, body)]
        }
        ("notifications/roots/list_changed", _) => {
            let body = crate::jsonrpc::notification(method, None);
            session.used_slots(route).into_iter().map(|(client, slot)| (client, slot, body.clone())).collect()
        }
        _ => return,
    };
    let route = route.id();
    tokio::spawn(async move {
        for (client, slot, body) in posts {
            if let Err(error) = client.post(&slot, body).await {
                tracing::debug!(%route, %error, "a client notification did not reach its upstream");
            }
        }
    });
}

/// The client's answer to an upstream's request (sampling, elicitation, roots), sent to that
/// upstream under its own id.
pub fn answered(
    route: &Route,
    session: &Arc<Session>,
    id: &RawValue,
    result: Option<&RawValue>,
    error: Option<&RawValue>,
) {
    if let Ok(own) = serde_json::from_str::<String>(id.get())
        && session.answer(&own, (result.map(ToOwned::to_owned), error.map(ToOwned::to_owned)))
    {
        return;
    }
    let Some((key, upstream_id)) = from_client_id(id) else {
        tracing::debug!(route = %route.id(), id = %id.get(), "a response to no request of ours was dropped");
        return;
    };
    let Some((client, slot)) = session.used_slot(route, &key) else { return };
    let body = answer(&upstream_id, result, error);
    let route = route.id();
    tokio::spawn(async move {
        if let Err(error) = client.post(&slot, body).await {
            tracing::warn!(%route, %error, "a client's answer did not reach its upstream");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> Message {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn upstream_requests_get_ids_that_route_back() {
        let out = to_client("docs~everything", "docs", message(r#"{"jsonrpc":"2.0","id":7,"method":"roots/list"}"#));
        let out: Value = serde_json::from_slice(&out.unwrap()).unwrap();
        assert_eq!(out["id"], "docs~everything~7");
        let (key, upstream) = from_client_id(&raw(&out["id"])).unwrap();
        assert_eq!((key.as_str(), upstream.get()), ("docs~everything", "7"));

        let string_id = to_client("~x", "", message(r#"{"jsonrpc":"2.0","id":"a~b","method":"ping"}"#)).unwrap();
        let string_id: Value = serde_json::from_slice(&string_id).unwrap();
        let (key, upstream) = from_client_id(&raw(&string_id["id"])).unwrap();
        assert_eq!((key.as_str(), upstream.get()), ("~x", r#""a~b""#), "string ids survive, even with ~ inside");
    }

    #[test]
    fn progress_on_an_upstream_request_finds_its_way_back() {
        let request = r#"{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{"_meta":{"progressToken":9},"maxTokens":5}}"#;
        let out: Value = serde_json::from_slice(&to_client("~fs", "", message(request)).unwrap()).unwrap();
        assert_eq!(out["params"]["_meta"]["progressToken"], "~fs~9");
        let progress = raw(&serde_json::json!({"progressToken": "~fs~9", "progress": 1}));
        let (key, body) = progress_to_upstream(&progress).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((key.as_str(), &body["params"]["progressToken"]), ("~fs", &serde_json::json!(9)));
    }

    #[test]
    fn resource_updates_carry_the_client_side_uri() {
        let note = r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///a"}}"#;
        let out: Value = serde_json::from_slice(&to_client("docs~fs", "docs", message(note)).unwrap()).unwrap();
        assert_eq!(out["params"]["uri"], "file://docs//a");
    }

    #[test]
    fn stray_responses_are_dropped() {
        assert!(to_client("k", "", message(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#)).is_none());
    }
}
