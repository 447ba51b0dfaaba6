//! JSON-RPC 2.0 as MCP uses it: classifying what a client sends, and writing responses that
//! carry the client's id. Upstream results are spliced in as raw JSON, never re-parsed.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::protocol::code::{INVALID_REQUEST, PARSE_ERROR};

/// Any JSON-RPC message, as sent over the wire.
#[derive(Deserialize, Debug)]
pub struct Message {
    #[serde(default)]
    jsonrpc: Option<String>,
    /// Raw, so that `"id": null` (which MCP forbids) is told apart from no id.
    #[serde(default, deserialize_with = "present")]
    pub id: Option<Box<RawValue>>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub params: Option<Box<RawValue>>,
    #[serde(default)]
    pub result: Option<Box<RawValue>>,
    #[serde(default)]
    pub error: Option<Box<RawValue>>,
}

impl Message {
    /// Whether this is the response to request `id` (a number of the gateway's).
    pub fn answers(&self, id: u64) -> bool {
        self.method.is_none() && self.id.as_ref().is_some_and(|raw| raw.get().parse() == Ok(id))
    }
}

/// What a client message is.
#[derive(Debug)]
pub enum Incoming {
    /// A request: answered with a response.
    Request { id: Box<RawValue>, method: String, params: Option<Box<RawValue>> },
    /// A notification: answered with 202.
    Notification { method: String, params: Option<Box<RawValue>> },
    /// A response to a request the server sent: answered with 202.
    Response { id: Box<RawValue>, result: Option<Box<RawValue>>, error: Option<Box<RawValue>> },
}

/// A JSON-RPC error to send back: code and message (the id is supplied when writing).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    /// Structured detail (`error.data`), when the spec defines some for the code.
    pub data: Option<serde_json::Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), data: None }
    }
}

/// Parses one message from a request body.
pub fn parse(body: &[u8]) -> Result<Incoming, RpcError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        return Err(RpcError::new(INVALID_REQUEST, "JSON-RPC batches are not supported; send one message per request"));
    }
    let message: Message = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => RpcError::new(INVALID_REQUEST, format!("not a JSON-RPC message: {e}")),
        _ => RpcError::new(PARSE_ERROR, format!("invalid JSON: {e}")),
    })?;
    if message.jsonrpc.as_deref() != Some("2.0") {
        return Err(RpcError::new(INVALID_REQUEST, "`jsonrpc` must be \"2.0\""));
    }
    if let Some(id) = &message.id
        && !is_valid_id(id)
    {
        return Err(RpcError::new(INVALID_REQUEST, "`id` must be a string or an integer"));
    }
    match (message.id, message.method) {
        (Some(id), Some(method)) => Ok(Incoming::Request { id, method, params: message.params }),
        (None, Some(method)) => Ok(Incoming::Notification { method, params: message.params }),
        (Some(id), None) if message.result.is_some() || message.error.is_some() => {
            Ok(Incoming::Response { id, result: message.result, error: message.error })
        }
        _ => Err(RpcError::new(
            INVALID_REQUEST,
            "a message needs `method` (request or notification) or `result`/`error` (response)",
        )),
    }
}

fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(deserializer).map(Some)
}

fn is_valid_id(id: &RawValue) -> bool {
    let text = id.get();
    text.starts_with('"') || (!text.contains(['.', 'e', 'E']) && text.parse::<i64>().is_ok())
}

/// `{"jsonrpc":"2.0","id":…,"result":…}` from raw parts.
pub fn result(id: &RawValue, result: &RawValue) -> Bytes {
    let (id, result) = (id.get(), result.get());
    let mut out = String::with_capacity(40 + id.len() + result.len());
    out.push_str(r#"{"jsonrpc":"2.0","id":"#);
    out.push_str(id);
    out.push_str(r#","result":"#);
    out.push_str(result);
    out.push('}');
    Bytes::from(out)
}

/// An error response; `id` is null when the request's id could not be read.
pub fn error(id: Option<&RawValue>, error: &RpcError) -> Bytes {
    let mut object = serde_json::json!({ "code": error.code, "message": error.message });
    if let Some(data) = &error.data {
        object["data"] = data.clone();
    }
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.map(|id| serde_json::from_str::<serde_json::Value>(id.get()).unwrap_or_default()),
        "error": object,
    });
    Bytes::from(body.to_string())
}

/// `{"jsonrpc":"2.0","id":…,"method":…,"params":…}`.
pub fn request(id: &str, method: &str, params: &RawValue) -> Bytes {
    let (id, method) = (
        serde_json::to_string(id).expect("strings serialize"),
        serde_json::to_string(method).expect("strings serialize"),
    );
    Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":{id},"method":{method},"params":{}}}"#, params.get()))
}

/// `{"jsonrpc":"2.0","method":…,"params":…}`.
pub fn notification(method: &str, params: Option<&RawValue>) -> Bytes {
    let method = serde_json::to_string(method).expect("strings serialize");
    Bytes::from(match params {
        Some(params) => format!(r#"{{"jsonrpc":"2.0","method":{method},"params":{}}}"#, params.get()),
        None => format!(r#"{{"jsonrpc":"2.0","method":{method}}}"#),
    })
}

/// An error response whose error object is passed through raw (from an upstream).
pub fn raw_error(id: &RawValue, error: &RawValue) -> Bytes {
    Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":{},"error":{}}}"#, id.get(), error.get()))
}

/// Serializes a value into a raw JSON value.
pub fn raw(value: &impl serde::Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("JSON values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_messages() {
        let request = parse(br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).unwrap();
        assert!(matches!(request, Incoming::Request { ref method, .. } if method == "ping"));
        let note = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(matches!(note, Incoming::Notification { ref method, .. } if method == "notifications/initialized"));
        let response = parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert!(matches!(response, Incoming::Response { ref id, .. } if id.get() == r#""a""#));
    }

    #[test]
    fn rejects_malformed_messages_with_spec_codes() {
        assert_eq!(parse(b"{not json").unwrap_err().code, PARSE_ERROR);
        assert_eq!(parse(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap_err().code, INVALID_REQUEST);
        assert_eq!(parse(br#"{"id":1,"method":"ping"}"#).unwrap_err().code, INVALID_REQUEST);
        assert_eq!(parse(br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#).unwrap_err().code, INVALID_REQUEST);
        assert_eq!(parse(br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#).unwrap_err().code, INVALID_REQUEST);
        assert_eq!(parse(br#"{"jsonrpc":"2.0","id":1}"#).unwrap_err().code, INVALID_REQUEST);
        assert_eq!(parse(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#).unwrap_err().code, INVALID_REQUEST);
        assert_eq!(parse(br#""just a string""#).unwrap_err().code, INVALID_REQUEST);
        assert_eq!(parse(br#"{"jsonrpc":"2.0","id":1,"method":5}"#).unwrap_err().code, INVALID_REQUEST);
    }

    #[test]
    fn writes_responses_with_the_clients_id() {
        let id = raw(&"req-1");
        let body = result(&id, &raw(&serde_json::json!({"ok": true})));
        assert_eq!(&body[..], br#"{"jsonrpc":"2.0","id":"req-1","result":{"ok":true}}"#);
        let body = error(None, &RpcError::new(PARSE_ERROR, "bad"));
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["id"], serde_json::Value::Null);
        assert_eq!(value["error"]["code"], PARSE_ERROR);
    }
}
