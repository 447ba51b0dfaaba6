//! Pure message rewriting between clients and mounts, with no state and no IO: what an
//! upstream sends on its own, rewritten for the client (an upstream request's id becomes
//! `"<mount key>~<upstream id>"`, so the client's answer finds its upstream with no state
//! kept); the client's answers, progress and cancellations with the upstream's own ids;
//! results with client-side URIs; params moved between the session era and the stateless
//! revision; and the stateless revision's `resultType` stamp.

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::names::prefix_uri;
use crate::jsonrpc::{self, Message, raw};
use crate::protocol::{Method, STATELESS, meta};

/// What the client sees of a message from the upstream of mount `key`; None for messages
/// not meant for it (stray responses).
pub fn to_client(key: &str, prefix: &str, message: Message) -> Option<Bytes> {
    let method = message.method?;
    let method_json = serde_json::to_string(&method).expect("strings serialize");
    if let Some(id) = message.id {
        let id = raw(&client_id(key, &id));
        // A progress token the upstream gives its request comes back on the client's progress
        // notifications: it gets the same form as ids, to find its way back.
        let params = message.params.map(|p| match p.get().contains(r#""progressToken""#) {
            true => rewrite_meta_token(&p, |token| Value::String(client_id(key, &raw(token)))),
            false => p,
        });
        let params = params.map(|p| format!(r#","params":{}"#, p.get())).unwrap_or_default();
        return Some(Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":{},"method":{method_json}{params}}}"#, id.get())));
    }
    let params = match (Method::parse(&method), message.params) {
        (Method::ResourceUpdated, Some(params)) => Some(rewrite(&params, "uri", |uri| match uri {
            Value::String(uri) => Value::String(prefix_uri(prefix, uri)),
            other => other.clone(),
        })),
        (Method::Cancelled, Some(params)) => {
            Some(rewrite(&params, "requestId", |id| Value::String(client_id(key, &raw(id)))))
        }
        (_, params) => params,
    };
    Some(jsonrpc::notification(&method, params.as_deref()))
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
        (Some(result), _) => jsonrpc::result(upstream_id, result),
        (None, Some(error)) => jsonrpc::raw_error(upstream_id, error),
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
    let params = rewrite(params, meta::PROGRESS_TOKEN, |_| serde_json::from_str(token.get()).unwrap_or_default());
    Some((key, jsonrpc::notification(Method::Progress.name(), Some(&params))))
}

/// The client's `notifications/cancelled` for its request, sent as the upstream's id.
pub fn cancelled(upstream_id: u64, params: &RawValue) -> Bytes {
    let params = rewrite(params, "requestId", |_| Value::from(upstream_id));
    jsonrpc::notification(Method::Cancelled.name(), Some(&params))
}

fn client_id(key: &str, upstream_id: &RawValue) -> String {
    format!("{key}~{}", upstream_id.get())
}

/// `params` with `_meta.progressToken` replaced.
fn rewrite_meta_token(params: &RawValue, change: impl Fn(&Value) -> Value) -> Box<RawValue> {
    let Ok(mut object) = serde_json::from_str::<Map<String, Value>>(params.get()) else {
        return params.to_owned();
    };
    if let Some(token) = object.get_mut("_meta").and_then(|m| m.get_mut(meta::PROGRESS_TOKEN)) {
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

/// A result that names resources (the contents `resources/read` returns, resource links and
/// embedded resources in tool results and prompt messages) names them as the client knows them,
/// so that each can be read through the route. Results that cannot hold a URI are passed
/// untouched, without being parsed.
pub fn client_side_uris(prefix: &str, method: Method, result: Box<RawValue>) -> Box<RawValue> {
    if prefix.is_empty() || !result.get().contains("\"uri\"") {
        return result;
    }
    let Ok(mut value) = serde_json::from_str::<Value>(result.get()) else { return result };
    let rewrite = |uri: &mut Value| {
        if let Value::String(text) = uri {
            *text = prefix_uri(prefix, text);
        }
    };
    let blocks: Vec<&mut Value> = match method {
        Method::ResourcesRead => {
            value.get_mut("contents").and_then(Value::as_array_mut).into_iter().flatten().collect()
        }
        Method::ToolsCall => value.get_mut("content").and_then(Value::as_array_mut).into_iter().flatten().collect(),
        Method::PromptsGet => value
            .get_mut("messages")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get_mut("content"))
            .collect(),
        _ => return result,
    };
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("resource") => block.get_mut("resource").and_then(|r| r.get_mut("uri")).map(rewrite),
            _ => block.get_mut("uri").map(rewrite),
        };
    }
    raw(&value)
}

/// A session client's params as a request of the stateless revision: `_meta` says what the
/// client declared when it initialized (`capabilities`).
pub fn stateless_params(params: Option<&RawValue>, capabilities: &RawValue) -> Box<RawValue> {
    let mut params: Map<String, Value> = params.and_then(|p| serde_json::from_str(p.get()).ok()).unwrap_or_default();
    let meta = params.entry("_meta").or_insert_with(|| json!({}));
    if let Value::Object(meta) = meta {
        meta.insert(meta::PROTOCOL_VERSION.into(), json!(STATELESS));
        let capabilities: Value = serde_json::from_str(capabilities.get()).unwrap_or_else(|_| json!({}));
        meta.insert(meta::CLIENT_CAPABILITIES.into(), capabilities);
        meta.insert(
            meta::CLIENT_INFO.into(),
            json!({ "name": "manifold-gateway", "version": env!("CARGO_PKG_VERSION") }),
        );
    }
    raw(&params)
}

/// A stateless request's params for an upstream session: without the stateless revision's
/// `_meta` fields, which a session-era server must not mistake for its own.
pub fn session_params(params: &RawValue) -> Box<RawValue> {
    let Ok(mut params) = serde_json::from_str::<Map<String, Value>>(params.get()) else { return params.to_owned() };
    if let Some(Value::Object(meta)) = params.get_mut("_meta") {
        meta.retain(|key, _| !key.starts_with(meta::NAMESPACE));
        if meta.is_empty() {
            params.remove("_meta");
        }
    }
    raw(&params)
}

/// Every result of the stateless revision says what it is (`resultType`), and a read says how
/// long it may be cached. Results of upstreams of this revision already do and pass
/// untouched; the others gain the fields without being parsed.
pub fn stamp(method: Method, result: Box<RawValue>) -> Box<RawValue> {
    let text = result.get();
    let mut fields = String::new();
    if !text.contains("\"resultType\"") {
        fields.push_str(r#""resultType":"complete","#);
    }
    if method == Method::ResourcesRead && !text.contains("\"ttlMs\"") {
        fields.push_str(r#""ttlMs":0,"cacheScope":"private","#);
    }
    let Some(rest) = text.trim_start().strip_prefix('{') else { return result };
    if fields.is_empty() {
        return result;
    }
    if rest.trim_start().starts_with('}') {
        fields.pop();
    }
    RawValue::from_string(format!("{{{fields}{rest}")).unwrap_or(result)
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
    fn results_gain_a_result_type_once() {
        let stamped = |method, text: &str| stamp(method, RawValue::from_string(text.into()).unwrap()).get().to_owned();
        assert_eq!(stamped(Method::ToolsCall, r#"{"content":[]}"#), r#"{"resultType":"complete","content":[]}"#);
        assert_eq!(stamped(Method::ToolsCall, "{}"), r#"{"resultType":"complete"}"#);
        let input = r#"{"resultType":"input_required"}"#;
        assert_eq!(stamped(Method::ToolsCall, input), input);
        let read = stamped(Method::ResourcesRead, r#"{"contents":[]}"#);
        assert_eq!(read, r#"{"resultType":"complete","ttlMs":0,"cacheScope":"private","contents":[]}"#);
    }

    #[test]
    fn stray_responses_are_dropped() {
        assert!(to_client("k", "", message(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#)).is_none());
    }
}
