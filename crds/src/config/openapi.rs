//! The resolved form of an OpenAPI sub-server: the components clients see (their listings
//! ready to serve) and, for each, how a call becomes one HTTP request. A gateway executes
//! this as plain data; it never reads the OpenAPI document.

use serde::{Deserialize, Serialize};

use super::Header;

/// A REST API served as MCP components.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct OpenApiUpstream {
    /// Where paths are appended: `baseUrl`, else the document's `servers[0].url`; no trailing `/`.
    pub base_url: String,
    /// Per-call timeout in milliseconds.
    pub timeout_ms: u64,
    /// Headers sent on every call (credentials and extra headers), Secret values read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    /// Query parameters added to every call (an API key sent in the query).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<Header>,
    /// A credential obtained per call (OAuth2, token exchange, a signed JWT...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<super::OutboundAuth>,
    /// Tools, in document order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ApiTool>,
    /// Resources with fixed URIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ApiResource>,
    /// Resource templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<ApiTemplate>,
    /// Retries, circuit breaker and concurrency cap.
    #[serde(default, skip_serializing_if = "super::ResilienceConfig::is_default")]
    pub resilience: super::ResilienceConfig,
}

/// An operation served as a tool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ApiTool {
    /// The MCP `Tool` object as `tools/list` shows it (name, description, inputSchema,
    /// annotations, `_meta` with tags), JSON text.
    pub listing: String,
    /// The tool's name (as in `listing`).
    pub name: String,
    /// How a call becomes a request.
    pub call: ApiCall,
}

/// A GET operation served as a resource with a fixed URI.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ApiResource {
    /// The MCP `Resource` object as `resources/list` shows it, JSON text.
    pub listing: String,
    /// Its URI (as in `listing`), `openapi://<path without its leading />`.
    pub uri: String,
    /// How a read becomes a request.
    pub call: ApiCall,
}

/// A GET operation served as a resource template.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ApiTemplate {
    /// The MCP `ResourceTemplate` object as `resources/templates/list` shows it, JSON text.
    pub listing: String,
    /// Its RFC 6570 URI template (as in `listing`): path parameters as `{name}`, query
    /// parameters as a trailing `{?a,b}`.
    pub uri_template: String,
    /// How a read becomes a request: the template's variables are its arguments.
    pub call: ApiCall,
}

/// One HTTP request, from a component's arguments.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ApiCall {
    /// `GET`, `POST`...
    pub method: String,
    /// The path template, for example `/items/{item_id}`, appended to the base URL.
    pub path: String,
    /// The operation's parameters, each with the argument that carries it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<ApiParameter>,
    /// The request body, if the operation takes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<ApiBody>,
}

/// One parameter of an operation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ApiParameter {
    /// The argument's name in the component's input (the parameter's name, or with a
    /// `__<location>` suffix when another input already has that name).
    pub argument: String,
    /// The parameter's name in the request.
    pub name: String,
    /// Where it goes.
    #[serde(rename = "in")]
    pub location: ParameterLocation,
    /// How its value is written (OpenAPI `style`, its default for the location filled in).
    pub style: ParameterStyle,
    /// OpenAPI `explode`, its default for the style filled in.
    pub explode: bool,
    /// Whether a call must give it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

/// Where a parameter goes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum ParameterLocation {
    Path,
    Query,
    Header,
    Cookie,
}

/// OpenAPI parameter styles.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum ParameterStyle {
    Simple,
    Label,
    Matrix,
    Form,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
}

/// An operation's request body.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ApiBody {
    /// `Content-Type` sent.
    pub media_type: String,
    /// How the body is written.
    pub encoding: BodyEncoding,
    /// Whether a call must give it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// Which arguments make it up.
    pub fields: BodyFields,
}

/// How a body is written.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum BodyEncoding {
    /// JSON.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

/// The arguments a body is made of. (Struct variants, tagged by `kind`: the config is read
/// back through the internally tagged [`Upstream`](super::Upstream), which YAML's tagged
/// newtype variants cannot pass through.)
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum BodyFields {
    /// An object body whose properties are arguments.
    Properties {
        /// (argument, property) pairs.
        pairs: Vec<(String, String)>,
    },
    /// Any other body (an array, a scalar, an object without declared properties): one
    /// argument holds it whole.
    Whole {
        /// The argument.
        argument: String,
    },
}
