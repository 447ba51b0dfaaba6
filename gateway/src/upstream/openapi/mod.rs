//! OpenAPI sub-servers, answered in the gateway itself: lists come straight from the compiled
//! config, and a `tools/call` or `resources/read` becomes one HTTP request to the API (built
//! by `request`, each argument placed where the compiled call says; a templated resource's
//! URI matched by `template`), whose response becomes an MCP result. The API is reached
//! through the egress-guarded client, which reads at most [`MAX_RESPONSE_BYTES`].

mod request;
mod template;

use std::collections::HashMap;

use base64::Engine;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use manifold_api::config::{ApiCall, OpenApiUpstream};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::{Reply, UpstreamError};
use crate::jsonrpc::raw;
use crate::protocol::Method;
use crate::protocol::code::{INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, RESOURCE_NOT_FOUND};
use manifold_runtime::egress::{self, Egress, GuardedHttp, failure, guarded_client, literal_ip};
use request::Target;
use template::Template;

/// The most of a response body read; a larger response is an error.
pub const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;

/// A compiled REST API, ready to answer MCP requests.
pub struct Api {
    target: Target,
    tools: HashMap<String, ApiCall>,
    resources: HashMap<String, ApiCall>,
    templates: Vec<(Template, ApiCall)>,
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
            .map(|t| Template::parse(&t.uri_template).map(|template| (template, t.call.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Api {
            target: Target {
                base,
                headers,
                query: config.query.iter().map(|q| (q.name.clone(), q.value.clone())).collect(),
            },
            tools: config.tools.iter().map(|t| (t.name.clone(), t.call.clone())).collect(),
            resources: config.resources.iter().map(|r| (r.uri.clone(), r.call.clone())).collect(),
            templates,
            lists,
            http: guarded_client(egress),
        })
    }

    /// The API's base URL.
    pub fn base(&self) -> &url::Url {
        &self.target.base
    }

    /// Answers one MCP request as an MCP server of this API would.
    pub async fn answer(&self, method: &str, params: Option<&RawValue>) -> Result<Reply, UpstreamError> {
        let params: Map<String, Value> = params.and_then(|p| serde_json::from_str(p.get()).ok()).unwrap_or_default();
        Ok(match Method::parse(method) {
            Method::ToolsList => Reply::Result(self.lists[0].clone()),
            Method::ResourcesList => Reply::Result(self.lists[1].clone()),
            Method::ResourcesTemplatesList => Reply::Result(self.lists[2].clone()),
            Method::PromptsList => Reply::Result(raw(&json!({ "prompts": [] }))),
            Method::Ping | Method::LoggingSetLevel => Reply::Result(raw(&json!({}))),
            Method::CompletionComplete => Reply::Result(raw(&json!({ "completion": { "values": [] } }))),
            Method::ToolsCall => self.call_tool(&params).await?,
            Method::ResourcesRead => self.read(&params).await?,
            _ => error(METHOD_NOT_FOUND, format!("method `{method}` is not served by an OpenAPI sub-server")),
        })
    }

    async fn call_tool(&self, params: &Map<String, Value>) -> Result<Reply, UpstreamError> {
        let Some(name) = params.get("name").and_then(Value::as_str) else {
            return Ok(error(INVALID_PARAMS, "tools/call needs params.name".into()));
        };
        let Some(call) = self.tools.get(name) else {
            return Ok(error(INVALID_PARAMS, format!("unknown tool `{name}`")));
        };
        let arguments = match params.get("arguments") {
            Some(Value::Object(arguments)) => arguments.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Ok(tool_error("arguments must be an object".into())),
        };
        let request = match self.target.request(call, &arguments) {
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
                "uri": format!("{}{}", self.target.base, call.path.trim_start_matches('/')),
                "mimeType": content_type,
                "blob": base64::engine::general_purpose::STANDARD.encode(&body),
            }}]}),
        };
        Ok(Reply::Result(raw(&result)))
    }

    async fn read(&self, params: &Map<String, Value>) -> Result<Reply, UpstreamError> {
        let Some(uri) = params.get("uri").and_then(Value::as_str) else {
            return Ok(error(INVALID_PARAMS, "resources/read needs params.uri".into()));
        };
        let (call, arguments) = match self.resources.get(uri) {
            Some(call) => (call, Map::new()),
            None => match self.templates.iter().find_map(|(template, call)| Some((call, template.arguments(uri)?))) {
                Some(found) => found,
                None => return Ok(error(RESOURCE_NOT_FOUND, format!("resource `{uri}` not found"))),
            },
        };
        let request = match self.target.request(call, &arguments) {
            Ok(request) => request,
            Err(why) => return Ok(error(INVALID_PARAMS, format!("resource `{uri}`: {why}"))),
        };
        let (status, content_type, body) = match self.send(request).await {
            Ok(answer) => answer,
            Err(UpstreamError::Protocol(why)) => {
                return Ok(error(INTERNAL_ERROR, format!("resource `{uri}`: the API's answer was refused: {why}")));
            }
            Err(error) => return Err(error),
        };
        if status == StatusCode::NOT_FOUND {
            return Ok(error(RESOURCE_NOT_FOUND, format!("resource `{uri}` not found: {}", failure(status, &body))));
        }
        if !status.is_success() {
            return Ok(error(INTERNAL_ERROR, format!("resource `{uri}`: {}", failure(status, &body))));
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

    async fn send(&self, mut request: Request<Full<Bytes>>) -> Result<(StatusCode, String, Bytes), UpstreamError> {
        crate::traces::inject_headers(request.headers_mut());
        let carries_credential = super::identity::inject(request.headers_mut());
        let answer = egress::exchange(&self.http, &self.target.base, request, MAX_RESPONSE_BYTES).await?;
        // A credential the mount obtained and the API refused is the caller's to hear about
        // as such (the call may be repeated once with a fresh one), not the tool's failure.
        if carries_credential && answer.0 == StatusCode::UNAUTHORIZED {
            return Err(UpstreamError::Status { status: 401, excerpt: super::excerpt(&answer.2), retry_after: None });
        }
        Ok(answer)
    }
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
