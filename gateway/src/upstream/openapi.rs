//! OpenAPI sub-servers, answered in the gateway itself: lists come straight from the compiled
//! config, and a `tools/call` or `resources/read` becomes one HTTP request to the API (each
//! argument placed where the compiled call says), whose response becomes an MCP result. The
//! API is reached through a client that refuses link-local and cloud-metadata addresses
//! unless allowed, follows redirects only within the API's own origin, and reads at most
//! [`MAX_RESPONSE_BYTES`].

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};

pub use manifold_api::egress::Egress;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, COOKIE, LOCATION};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::rt::TokioExecutor;
use manifold_api::config::{
    ApiCall, ApiParameter, BodyEncoding, BodyFields, OpenApiUpstream, ParameterLocation, ParameterStyle,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::{Reply, UpstreamError};
use crate::jsonrpc::raw;

/// The most of a response body read; a larger response is an error.
pub const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;
/// How much of an error response's body a client is shown.
const EXCERPT_BYTES: usize = 2048;
/// Redirects followed within the API's origin.
const MAX_REDIRECTS: usize = 5;
/// Headers a header parameter may not set: the connection's and the body's own.
const OWNED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "cookie",
    "authorization",
    "accept",
];

/// Characters percent-encoded in a path segment or a header-borne value: all but RFC 3986's
/// unreserved ones.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A compiled REST API, ready to answer MCP requests.
pub struct Api {
    base: url::Url,
    headers: HeaderMap,
    query: Vec<(String, String)>,
    tools: HashMap<String, ApiCall>,
    resources: HashMap<String, ApiCall>,
    templates: Vec<(regex::Regex, Vec<String>, ApiCall)>,
    /// `tools/list`, `resources/list` and `resources/templates/list` results, as served.
    lists: [Box<RawValue>; 3],
    http: GuardedHttp,
}

impl Api {
    pub fn new(config: &OpenApiUpstream, egress: Egress) -> Result<Self, String> {
        let base =
            url::Url::parse(&config.base_url).map_err(|e| format!("invalid baseUrl `{}`: {e}", config.base_url))?;
        if let Some(why) = literal_ip(&base).and_then(|ip| egress.refuses(ip)) {
            return Err(format!("baseUrl `{}` is {why}", config.base_url));
        }
        let headers = super::header_map(&config.headers)?;
        let listing = |items: Vec<&str>| -> Result<Vec<Value>, String> {
            items.into_iter().map(|l| serde_json::from_str(l).map_err(|e| format!("a compiled listing: {e}"))).collect()
        };
        let lists = [
            raw(&json!({ "tools": listing(config.tools.iter().map(|t| t.listing.as_str()).collect())? })),
            raw(&json!({ "resources": listing(config.resources.iter().map(|r| r.listing.as_str()).collect())? })),
            raw(
                &json!({ "resourceTemplates": listing(config.templates.iter().map(|t| t.listing.as_str()).collect())? }),
            ),
        ];
        let templates = config
            .templates
            .iter()
            .map(|t| template_matcher(&t.uri_template).map(|(regex, names)| (regex, names, t.call.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Api {
            base,
            headers,
            query: config.query.iter().map(|q| (q.name.clone(), q.value.clone())).collect(),
            tools: config.tools.iter().map(|t| (t.name.clone(), t.call.clone())).collect(),
            resources: config.resources.iter().map(|r| (r.uri.clone(), r.call.clone())).collect(),
            templates,
            lists,
            http: guarded_client(egress),
        })
    }

    /// Answers one MCP request as an MCP server of this API would.
    pub async fn answer(&self, method: &str, params: Option<&RawValue>) -> Result<Reply, UpstreamError> {
        let params: Map<String, Value> = params.and_then(|p| serde_json::from_str(p.get()).ok()).unwrap_or_default();
        Ok(match method {
            "tools/list" => Reply::Result(self.lists[0].clone()),
            "resources/list" => Reply::Result(self.lists[1].clone()),
            "resources/templates/list" => Reply::Result(self.lists[2].clone()),
            "prompts/list" => Reply::Result(raw(&json!({ "prompts": [] }))),
            "ping" | "logging/setLevel" => Reply::Result(raw(&json!({}))),
            "completion/complete" => Reply::Result(raw(&json!({ "completion": { "values": [] } }))),
            "tools/call" => self.call_tool(&params).await?,
            "resources/read" => self.read(&params).await?,
            _ => error(-32601, format!("method `{method}` is not served by an OpenAPI sub-server")),
        })
    }

    async fn call_tool(&self, params: &Map<String, Value>) -> Result<Reply, UpstreamError> {
        let Some(name) = params.get("name").and_then(Value::as_str) else {
            return Ok(error(-32602, "tools/call needs params.name".into()));
        };
        let Some(call) = self.tools.get(name) else {
            return Ok(error(-32602, format!("unknown tool `{name}`")));
        };
        let arguments = match params.get("arguments") {
            Some(Value::Object(arguments)) => arguments.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Ok(tool_error("arguments must be an object".into())),
        };
        let request = match self.request(call, &arguments) {
            Ok(request) => request,
            Err(why) => return Ok(tool_error(why)),
        };
        let (status, content_type, body) = match self.send(request).await {
            Ok(answer) => answer,
            // The API answered, but not in a way the gateway accepts: the caller is told why.
            Err(UpstreamError::Protocol(why)) => return Ok(tool_error(format!("the API's answer was refused: {why}"))),
            Err(error) => return Err(error),
        };
        if !status.is_success() {
            return Ok(tool_error(failure(status, &body)));
        }
        let text = || String::from_utf8_lossy(&body).into_owned();
        let result = match media(&content_type) {
            Media::Json => match serde_json::from_slice::<Value>(&body) {
                // structuredContent must be an object: anything else is wrapped.
                Ok(Value::Object(object)) => {
                    json!({ "content": [{ "type": "text", "text": text() }], "structuredContent": object })
                }
                Ok(other) => {
                    json!({ "content": [{ "type": "text", "text": text() }], "structuredContent": { "result": other } })
                }
                Err(_) => json!({ "content": [{ "type": "text", "text": text() }] }),
            },
            Media::Text => json!({ "content": [{ "type": "text", "text": text() }] }),
            Media::Binary => json!({ "content": [{ "type": "resource", "resource": {
                "uri": format!("{}{}", self.base, call.path.trim_start_matches('/')),
                "mimeType": content_type,
                "blob": base64::engine::general_purpose::STANDARD.encode(&body),
            }}]}),
        };
        Ok(Reply::Result(raw(&result)))
    }

    async fn read(&self, params: &Map<String, Value>) -> Result<Reply, UpstreamError> {
        let Some(uri) = params.get("uri").and_then(Value::as_str) else {
            return Ok(error(-32602, "resources/read needs params.uri".into()));
        };
        let (call, arguments) = match self.resources.get(uri) {
            Some(call) => (call, Map::new()),
            None => match self.templates.iter().find_map(|(regex, names, call)| {
                let captures = regex.captures(uri)?;
                Some((call, template_arguments(&captures, names)))
            }) {
                Some(found) => found,
                None => return Ok(error(-32002, format!("resource `{uri}` not found"))),
            },
        };
        let request = match self.request(call, &arguments) {
            Ok(request) => request,
            Err(why) => return Ok(error(-32602, format!("resource `{uri}`: {why}"))),
        };
        let (status, content_type, body) = match self.send(request).await {
            Ok(answer) => answer,
            Err(UpstreamError::Protocol(why)) => {
                return Ok(error(-32603, format!("resource `{uri}`: the API's answer was refused: {why}")));
            }
            Err(error) => return Err(error),
        };
        if status == StatusCode::NOT_FOUND {
            return Ok(error(-32002, format!("resource `{uri}` not found: {}", failure(status, &body))));
        }
        if !status.is_success() {
            return Ok(error(-32603, format!("resource `{uri}`: {}", failure(status, &body))));
        }
        let mime = if content_type.is_empty() { "application/octet-stream".to_owned() } else { content_type.clone() };
        let content = match media(&content_type) {
            Media::Json | Media::Text => {
                json!({ "uri": uri, "mimeType": mime, "text": String::from_utf8_lossy(&body) })
            }
            Media::Binary => json!({
                "uri": uri, "mimeType": mime, "blob": base64::engine::general_purpose::STANDARD.encode(&body)
            }),
        };
        Ok(Reply::Result(raw(&json!({ "contents": [content] }))))
    }

    /// The HTTP request for a call with `arguments`, or why the arguments do not make one.
    fn request(&self, call: &ApiCall, arguments: &Map<String, Value>) -> Result<Request<Full<Bytes>>, String> {
        for parameter in call.parameters.iter().filter(|p| p.required) {
            if arguments.get(&parameter.argument).is_none_or(Value::is_null) {
                return Err(format!("missing required argument `{}`", parameter.argument));
            }
        }
        let mut path = String::with_capacity(call.path.len() + 16);
        let mut rest = call.path.as_str();
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').map(|c| open + c).ok_or("the path template is not closed")?;
            path.push_str(&rest[..open]);
            let name = &rest[open + 1..close];
            let parameter = call.parameters.iter().find(|p| p.location == ParameterLocation::Path && p.name == name);
            let value = parameter.and_then(|p| arguments.get(&p.argument).filter(|v| !v.is_null()));
            match (parameter, value) {
                (Some(parameter), Some(value)) => match path_value(parameter, value) {
                    filled if filled.is_empty() => {
                        return Err(format!("argument `{}` must not be empty", parameter.argument));
                    }
                    filled => path.push_str(&filled),
                },
                _ => return Err(format!("missing required argument `{name}`")),
            }
            rest = &rest[close + 1..];
        }
        path.push_str(rest);
        // An argument fills a segment, never moves out of it: a `.` or `..` segment would reach
        // a path the operation does not name (one a route map may exclude).
        if path.split('/').any(|segment| segment == "." || segment == "..") {
            let filled = call.parameters.iter().filter(|p| p.location == ParameterLocation::Path);
            let names: Vec<&str> = filled.map(|p| p.argument.as_str()).collect();
            return Err(format!("path arguments ({}) must not be `.` or `..`", names.join(", ")));
        }

        let mut url = self.base.clone();
        url.set_path(&format!("{}{}", self.base.path().trim_end_matches('/'), path));
        let mut query = Vec::new();
        let mut headers = self.headers.clone();
        let mut cookies = Vec::new();
        for parameter in &call.parameters {
            let Some(value) = arguments.get(&parameter.argument).filter(|v| !v.is_null()) else { continue };
            match parameter.location {
                ParameterLocation::Path => {}
                ParameterLocation::Query => query_pairs(parameter, value, &mut query),
                ParameterLocation::Header => {
                    let name = HeaderName::try_from(parameter.name.as_str())
                        .map_err(|_| format!("`{}` is not a valid header name", parameter.name))?;
                    // Headers the connection or the server's credentials own stay theirs.
                    if OWNED_HEADERS.contains(&name.as_str()) || self.headers.contains_key(&name) {
                        continue;
                    }
                    let value = HeaderValue::try_from(joined(value, ",", parameter.explode, "="))
                        .map_err(|_| format!("argument `{}` cannot be sent in a header", parameter.argument))?;
                    headers.insert(name, value);
                }
                ParameterLocation::Cookie => {
                    cookies.push(format!("{}={}", parameter.name, encoded(&joined(value, ",", false, ","))));
                }
            }
        }
        query.extend(self.query.iter().cloned());
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(&query);
        }
        if !cookies.is_empty() {
            // After any cookie the server's configured headers send.
            let configured = headers.get(COOKIE).and_then(|c| c.to_str().ok()).map(str::to_owned);
            let all = configured.into_iter().chain(cookies).collect::<Vec<_>>().join("; ");
            let value = HeaderValue::try_from(all).map_err(|_| "a cookie value is not valid")?;
            headers.insert(COOKIE, value);
        }
        headers.entry(ACCEPT).or_insert(HeaderValue::from_static("application/json, */*;q=0.8"));

        let body = match &call.body {
            None => Bytes::new(),
            Some(body) => {
                let value = match &body.fields {
                    BodyFields::Whole { argument } => arguments.get(argument).filter(|v| !v.is_null()).cloned(),
                    BodyFields::Properties { pairs: fields } => {
                        let object: Map<String, Value> = fields
                            .iter()
                            .filter_map(|(argument, property)| {
                                arguments.get(argument).filter(|v| !v.is_null()).map(|v| (property.clone(), v.clone()))
                            })
                            .collect();
                        (!object.is_empty() || body.required).then_some(Value::Object(object))
                    }
                };
                match value {
                    None if body.required => return Err("missing the request body's arguments".into()),
                    None => Bytes::new(),
                    Some(value) => {
                        let content_type = HeaderValue::try_from(body.media_type.as_str())
                            .unwrap_or(HeaderValue::from_static("application/json"));
                        headers.insert(CONTENT_TYPE, content_type);
                        match body.encoding {
                            BodyEncoding::Json => {
                                Bytes::from(serde_json::to_vec(&value).expect("JSON values serialize"))
                            }
                            BodyEncoding::Form => Bytes::from(form(&value)),
                        }
                    }
                }
            }
        };
        let method = Method::from_bytes(call.method.as_bytes()).map_err(|_| format!("bad method `{}`", call.method))?;
        let mut request =
            Request::builder().method(method).uri(url.as_str()).body(Full::new(body)).map_err(|e| e.to_string())?;
        *request.headers_mut() = headers;
        Ok(request)
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, String, Bytes), UpstreamError> {
        exchange(&self.http, &self.base, request, MAX_RESPONSE_BYTES).await
    }
}

/// An HTTP client whose connections honour an [`Egress`].
pub type GuardedHttp = Client<hyper_rustls::HttpsConnector<HttpConnector<Guarded>>, Full<Bytes>>;

/// Sends `request`, following redirects within `origin`'s origin (GET and HEAD only);
/// returns the status, the content type (lowercase, without parameters) and the body, read
/// up to `limit` bytes.
async fn exchange(
    http: &GuardedHttp,
    origin: &url::Url,
    mut request: Request<Full<Bytes>>,
    limit: usize,
) -> Result<(StatusCode, String, Bytes), UpstreamError> {
    let mut current = url::Url::parse(&request.uri().to_string()).unwrap_or_else(|_| origin.clone());
    for _ in 0..=MAX_REDIRECTS {
        let again = (request.method() == Method::GET || request.method() == Method::HEAD)
            .then(|| (request.method().clone(), request.headers().clone()));
        let response =
            http.request(request).await.map_err(|e| UpstreamError::Unreachable(super::client::describe(&e)))?;
        let status = response.status();
        if status.is_redirection()
            && let (Some((method, headers)), Some(location)) =
                (again, response.headers().get(LOCATION).and_then(|l| l.to_str().ok()))
        {
            let target = current.join(location).map_err(|e| UpstreamError::Protocol(format!("bad redirect: {e}")))?;
            if target.origin() != origin.origin() {
                return Err(UpstreamError::Protocol(format!(
                    "redirected to another origin ({}), which is not followed",
                    target.origin().ascii_serialization()
                )));
            }
            request = Request::builder()
                .method(method)
                .uri(target.as_str())
                .body(Full::new(Bytes::new()))
                .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
            *request.headers_mut() = headers;
            current = target;
            continue;
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .unwrap_or_default();
        let limited = http_body_util::Limited::new(response.into_body(), limit);
        let body = match limited.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                return Err(UpstreamError::Protocol(format!("the response exceeded {limit} bytes")));
            }
            Err(error) => return Err(UpstreamError::Unreachable(format!("reading the response: {error}"))),
        };
        return Ok((status, content_type, body));
    }
    Err(UpstreamError::Protocol(format!("more than {MAX_REDIRECTS} redirects")))
}

/// Fetches an OpenAPI document from `url` (GET, within `timeout`, at most `limit` bytes,
/// honouring `egress`, which `http` was built with).
pub async fn fetch(
    http: &GuardedHttp,
    egress: Egress,
    url: &str,
    timeout: Duration,
    limit: usize,
) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    if let Some(why) = literal_ip(&parsed).and_then(|ip| egress.refuses(ip)) {
        return Err(format!("`{url}` is {why}"));
    }
    let request = Request::get(parsed.as_str())
        .header(ACCEPT, "application/json, application/yaml, */*;q=0.5")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let (status, _, body) = tokio::time::timeout(timeout, exchange(http, &parsed, request, limit))
        .await
        .map_err(|_| format!("no answer within {} s", timeout.as_secs()))?
        .map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(failure(status, &body));
    }
    String::from_utf8(body.to_vec()).map_err(|_| "the document is not UTF-8 text".into())
}

enum Media {
    Json,
    Text,
    Binary,
}

fn media(content_type: &str) -> Media {
    let json = content_type == "application/json" || content_type.ends_with("+json");
    let text = content_type.starts_with("text/")
        || content_type.ends_with("+xml")
        || matches!(content_type, "application/xml" | "application/javascript" | "application/yaml" | "");
    if json {
        Media::Json
    } else if text {
        Media::Text
    } else {
        Media::Binary
    }
}

fn error(code: i64, message: String) -> Reply {
    Reply::Error(raw(&json!({ "code": code, "message": message })))
}

fn tool_error(message: String) -> Reply {
    Reply::Result(raw(&json!({ "content": [{ "type": "text", "text": message }], "isError": true })))
}

/// `HTTP 422 Unprocessable Entity: <the start of the body>`.
fn failure(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(EXCERPT_BYTES)]);
    let more = if body.len() > EXCERPT_BYTES { "…" } else { "" };
    let reason = status.canonical_reason().unwrap_or("");
    format!("HTTP {} {reason}: {}{more}", status.as_u16(), text.trim())
}

fn encoded(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// A scalar as text; None for null.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// An array or object as `a<sep>b`, or `k<kv>v<sep>...` (`k<sep>v` when not exploded);
/// a scalar as itself.
fn joined(value: &Value, separator: &str, explode: bool, key_value: &str) -> String {
    match value {
        Value::Array(items) => items.iter().filter_map(scalar).collect::<Vec<_>>().join(separator),
        Value::Object(object) => object
            .iter()
            .filter_map(|(k, v)| {
                scalar(v).map(|v| if explode { format!("{k}{key_value}{v}") } else { format!("{k}{separator}{v}") })
            })
            .collect::<Vec<_>>()
            .join(separator),
        other => scalar(other).unwrap_or_default(),
    }
}

/// A path parameter's value as the template's `{name}` becomes (RFC 6570 through OpenAPI
/// `style`), every piece percent-encoded.
fn path_value(parameter: &ApiParameter, value: &Value) -> String {
    let pieces = |value: &Value| -> Vec<(Option<String>, String)> {
        match value {
            Value::Array(items) => items.iter().filter_map(scalar).map(|v| (None, encoded(&v))).collect(),
            Value::Object(object) => {
                object.iter().filter_map(|(k, v)| scalar(v).map(|v| (Some(encoded(k)), encoded(&v)))).collect()
            }
            other => scalar(other).map(|v| vec![(None, encoded(&v))]).unwrap_or_default(),
        }
    };
    let name = encoded(&parameter.name);
    let items = pieces(value);
    let flat = |separator: &str| {
        items
            .iter()
            .map(|(k, v)| match k {
                Some(k) if parameter.explode => format!("{k}={v}"),
                Some(k) => format!("{k}{separator}{v}"),
                None => v.clone(),
            })
            .collect::<Vec<_>>()
    };
    match parameter.style {
        ParameterStyle::Label => {
            let separator = if parameter.explode { "." } else { "," };
            format!(".{}", flat(",").join(separator))
        }
        ParameterStyle::Matrix => {
            if parameter.explode && matches!(value, Value::Array(_)) {
                items.iter().map(|(_, v)| format!(";{name}={v}")).collect()
            } else if parameter.explode && matches!(value, Value::Object(_)) {
                flat(",").iter().map(|kv| format!(";{kv}")).collect()
            } else {
                format!(";{name}={}", flat(",").join(","))
            }
        }
        _ => flat(",").join(","),
    }
}

/// A query parameter's pairs, by OpenAPI `style` and `explode`.
fn query_pairs(parameter: &ApiParameter, value: &Value, pairs: &mut Vec<(String, String)>) {
    let name = &parameter.name;
    match (parameter.style, value) {
        (ParameterStyle::DeepObject, Value::Object(object)) => {
            pairs.extend(object.iter().filter_map(|(k, v)| scalar(v).map(|v| (format!("{name}[{k}]"), v))));
        }
        (_, Value::Array(items)) if parameter.explode => {
            pairs.extend(items.iter().filter_map(scalar).map(|v| (name.clone(), v)));
        }
        (_, Value::Object(object)) if parameter.explode => {
            pairs.extend(object.iter().filter_map(|(k, v)| scalar(v).map(|v| (k.clone(), v))));
        }
        (ParameterStyle::SpaceDelimited, Value::Array(_)) => pairs.push((name.clone(), joined(value, " ", false, ","))),
        (ParameterStyle::PipeDelimited, Value::Array(_)) => pairs.push((name.clone(), joined(value, "|", false, ","))),
        _ => {
            if let Some(text) = match value {
                Value::Array(_) | Value::Object(_) => Some(joined(value, ",", false, ",")),
                other => scalar(other),
            } {
                pairs.push((name.clone(), text));
            }
        }
    }
}

/// A form-encoded body from an object's fields (arrays repeat their field; nested objects
/// are sent as JSON text).
fn form(value: &Value) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    if let Value::Object(object) = value {
        for (key, field) in object {
            match field {
                Value::Array(items) => {
                    for item in items.iter().filter_map(scalar) {
                        serializer.append_pair(key, &item);
                    }
                }
                other => {
                    if let Some(text) = scalar(other) {
                        serializer.append_pair(key, &text);
                    }
                }
            }
        }
    }
    serializer.finish()
}

/// A regex matching the URIs of an RFC 6570 template (`{name}` path variables, an optional
/// trailing `{?a,b}`), and the names of its variables in capture order.
fn template_matcher(template: &str) -> Result<(regex::Regex, Vec<String>), String> {
    let (path, query) = match template.find("{?") {
        Some(at) => (&template[..at], Some(template[at + 2..].trim_end_matches('}'))),
        None => (template, None),
    };
    let mut pattern = String::from("^");
    let mut names = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close =
            rest[open..].find('}').map(|c| open + c).ok_or_else(|| format!("template `{template}` is not closed"))?;
        pattern.push_str(&regex::escape(&rest[..open]));
        pattern.push_str("([^/?#]+)");
        names.push(rest[open + 1..close].to_owned());
        rest = &rest[close + 1..];
    }
    pattern.push_str(&regex::escape(rest));
    if let Some(query) = query {
        pattern.push_str(r"(?:\?([^#]*))?");
        names.push(format!("?{query}"));
    }
    pattern.push('$');
    let regex = regex::Regex::new(&pattern).map_err(|e| format!("template `{template}`: {e}"))?;
    Ok((regex, names))
}

/// The arguments a URI gives a template's variables (percent-decoded); the query part gives
/// those of its `{?...}` variables.
fn template_arguments(captures: &regex::Captures<'_>, names: &[String]) -> Map<String, Value> {
    let mut arguments = Map::new();
    for (i, name) in names.iter().enumerate() {
        let Some(found) = captures.get(i + 1) else { continue };
        match name.strip_prefix('?') {
            Some(allowed) => {
                // Variable names are percent-encoded where RFC 6570 requires (`page%2Dsize`);
                // the query carries the parameter's own name (`page-size`).
                let allowed: Vec<(String, &str)> = allowed
                    .split(',')
                    .map(|v| (percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned(), v))
                    .collect();
                for (key, value) in url::form_urlencoded::parse(found.as_str().as_bytes()) {
                    if let Some((_, variable)) = allowed.iter().find(|(name, _)| *name == key) {
                        arguments.insert((*variable).to_owned(), Value::String(value.into_owned()));
                    }
                }
            }
            None => {
                let value = percent_encoding::percent_decode_str(found.as_str()).decode_utf8_lossy();
                arguments.insert(name.clone(), Value::String(value.into_owned()));
            }
        }
    }
    arguments
}

pub(crate) fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// The system resolver, without the addresses egress refuses: a name that resolves only to
/// those cannot be connected to.
#[derive(Clone)]
pub struct Guarded {
    inner: GaiResolver,
    egress: Egress,
}

impl tower_service::Service<Name> for Guarded {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let (resolving, egress) = (self.inner.call(name.clone()), self.egress);
        Box::pin(async move {
            let all: Vec<SocketAddr> = resolving.await?.collect();
            let allowed: Vec<SocketAddr> = all.iter().copied().filter(|a| egress.refuses(a.ip()).is_none()).collect();
            if allowed.is_empty() && !all.is_empty() {
                let why = egress.refuses(all[0].ip()).unwrap_or_default();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("`{name}` resolves to {why}"),
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}

/// A client that connects only where `egress` allows.
pub fn guarded_client(egress: Egress) -> GuardedHttp {
    let mut tcp = HttpConnector::new_with_resolver(Guarded { inner: GaiResolver::new(), egress });
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    tcp.set_connect_timeout(Some(Duration::from_secs(10)));
    tcp.set_keepalive(Some(Duration::from_secs(60)));
    let https = super::client::tls().https_or_http().enable_http1().enable_http2().wrap_connector(tcp);
    Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(90)).build(https)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameter(name: &str, location: ParameterLocation, style: ParameterStyle, explode: bool) -> ApiParameter {
        ApiParameter { argument: name.into(), name: name.into(), location, style, explode, required: false }
    }

    #[test]
    fn path_values_follow_their_style_and_are_encoded() {
        let simple = parameter("id", ParameterLocation::Path, ParameterStyle::Simple, false);
        assert_eq!(path_value(&simple, &json!("a b/c")), "a%20b%2Fc");
        assert_eq!(path_value(&simple, &json!([1, 2])), "1,2");
        assert_eq!(path_value(&simple, &json!({"x": 1, "y": 2})), "x,1,y,2");
        let exploded = parameter("id", ParameterLocation::Path, ParameterStyle::Simple, true);
        assert_eq!(path_value(&exploded, &json!({"x": 1, "y": 2})), "x=1,y=2");
        let label = parameter("id", ParameterLocation::Path, ParameterStyle::Label, false);
        assert_eq!(path_value(&label, &json!([1, 2])), ".1,2");
        let matrix = parameter("id", ParameterLocation::Path, ParameterStyle::Matrix, true);
        assert_eq!(path_value(&matrix, &json!([1, 2])), ";id=1;id=2");
        let matrix = parameter("id", ParameterLocation::Path, ParameterStyle::Matrix, false);
        assert_eq!(path_value(&matrix, &json!(5)), ";id=5");
    }

    #[test]
    fn query_pairs_follow_style_and_explode() {
        let mut pairs = Vec::new();
        query_pairs(
            &parameter("t", ParameterLocation::Query, ParameterStyle::Form, true),
            &json!(["a", "b"]),
            &mut pairs,
        );
        query_pairs(
            &parameter("u", ParameterLocation::Query, ParameterStyle::Form, false),
            &json!(["a", "b"]),
            &mut pairs,
        );
        query_pairs(
            &parameter("p", ParameterLocation::Query, ParameterStyle::PipeDelimited, false),
            &json!([1, 2]),
            &mut pairs,
        );
        query_pairs(
            &parameter("d", ParameterLocation::Query, ParameterStyle::DeepObject, true),
            &json!({"k": "v"}),
            &mut pairs,
        );
        query_pairs(&parameter("n", ParameterLocation::Query, ParameterStyle::Form, true), &json!(3), &mut pairs);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(pairs, [("t", "a"), ("t", "b"), ("u", "a,b"), ("p", "1|2"), ("d[k]", "v"), ("n", "3")]);
    }

    #[test]
    fn templates_match_uris_and_give_their_variables() {
        let (regex, names) = template_matcher("openapi://items/{item_id}/parts/{part}{?verbose,page%2Dsize}").unwrap();
        let captures = regex.captures("openapi://items/4%202/parts/x?verbose=true&other=1&page-size=5").unwrap();
        let arguments = template_arguments(&captures, &names);
        assert_eq!(
            Value::Object(arguments),
            json!({"item_id": "4 2", "part": "x", "verbose": "true", "page%2Dsize": "5"})
        );
        assert!(regex.captures("openapi://items/4/parts").is_none());
        assert!(regex.captures("openapi://items/4/x/parts/y").is_none(), "a variable is one segment");
    }

    fn api(path: &str, parameters: Vec<ApiParameter>) -> (Api, ApiCall) {
        let call = ApiCall { method: "GET".into(), path: path.into(), parameters, body: None };
        let config = OpenApiUpstream {
            base_url: "https://api.example.com/v1".into(),
            timeout_ms: 1000,
            headers: vec![manifold_api::config::Header { name: "X-Tenant".into(), value: "acme".into() }],
            query: vec![],
            tools: vec![],
            resources: vec![],
            templates: vec![],
        };
        (Api::new(&config, Egress::default()).unwrap(), call)
    }

    #[test]
    fn path_arguments_cannot_leave_their_segment() {
        let path = |name: &str| ApiParameter {
            required: true,
            ..parameter(name, ParameterLocation::Path, ParameterStyle::Simple, false)
        };
        let (api, call) = api("/repos/{owner}/{repo}/issues", vec![path("owner"), path("repo")]);
        let request =
            |owner: &str, repo: &str| api.request(&call, json!({"owner": owner, "repo": repo}).as_object().unwrap());
        assert_eq!(request("octo", "a/b").unwrap().uri(), "https://api.example.com/v1/repos/octo/a%2Fb/issues");
        for (owner, repo) in [("..", "admin"), (".", "x"), ("x", "..")] {
            let refused = request(owner, repo).unwrap_err();
            assert_eq!(refused, "path arguments (owner, repo) must not be `.` or `..`", "{owner} {repo}");
        }
        assert_eq!(request("", "x").unwrap_err(), "argument `owner` must not be empty");
        assert_eq!(request("...", "x").unwrap().uri(), "https://api.example.com/v1/repos/.../x/issues");
    }

    #[test]
    fn header_arguments_never_replace_owned_or_configured_headers() {
        let header = |name: &str| parameter(name, ParameterLocation::Header, ParameterStyle::Simple, false);
        let cookie = parameter("session", ParameterLocation::Cookie, ParameterStyle::Form, true);
        let (api, call) = api("/x", vec![header("Host"), header("X-Tenant"), header("X-Trace"), cookie]);
        let arguments = json!({"Host": "evil.example", "X-Tenant": "globex", "X-Trace": "t-1", "session": "a b"});
        let request = api.request(&call, arguments.as_object().unwrap()).unwrap();
        let headers = request.headers();
        assert_eq!(headers.get("host"), None, "the connection's own");
        assert_eq!(headers["x-tenant"], "acme", "the configured value stays");
        assert_eq!(headers["x-trace"], "t-1");
        assert_eq!(headers["cookie"], "session=a%20b");
    }
}
