//! `McpServer.spec.openapi`: a REST API described by OpenAPI 3.0 or 3.1, served as MCP
//! tools, resources and resource templates. Which operation becomes what is decided by
//! ordered route maps and per-operation overrides, at compile time.

use std::collections::BTreeMap;

use kube::{KubeSchema, core::Duration};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::server::HeaderSource;

/// An OpenAPI document and how to call the API it describes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("[has(self.inline), has(self.configMapRef), has(self.url)].filter(s, s).size() == 1").message("exactly one of inline, configMapRef or url must be set"))]
#[x_kube(validation = Rule::new("!has(self.refreshInterval) || has(self.url)").message("refreshInterval applies only to a spec fetched from url"))]
#[serde(rename_all = "camelCase")]
pub struct OpenApiSource {
    /// The document itself, YAML or JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1_048_576))]
    pub inline: Option<String>,

    /// A ConfigMap key in the server's namespace holding the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,

    /// Where to fetch the document (http or https). Fetched with a timeout and a size limit,
    /// and again every `refreshInterval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/?#\\\\s]+([/?#]\\\\S*)?$')").message("url must be an absolute http:// or https:// URL"))]
    pub url: Option<String>,

    /// How often a document fetched from `url` is fetched again (Go duration). Default `5m`,
    /// at least `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('10s')").message("refreshInterval must be at least 10s"))]
    pub refresh_interval: Option<Duration>,

    /// Where the API is called, overriding the document's `servers[0].url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/?#\\\\s]+([/?#]\\\\S*)?$')").message("baseUrl must be an absolute http:// or https:// URL"))]
    pub base_url: Option<String>,

    /// What each operation becomes. The first map that matches an operation decides; an
    /// operation no map matches becomes a Tool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub route_maps: Vec<RouteMap>,

    /// Per-operation changes, keyed by `operationId`: the name, description and tags the
    /// operation's component gets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 4096))]
    pub operations: BTreeMap<String, OperationOverride>,

    /// How the gateway authenticates to the API: static credentials or a token per call,
    /// from Secrets in the server's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<super::UpstreamAuth>,

    /// Extra headers sent on every call, literal or from a Secret key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub headers: Vec<HeaderSource>,

    /// How long one call to the API may take (Go duration). Default `30s`, at most `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s') && duration(self) <= duration('1h')").message("timeout must be greater than 0s and at most 1h"))]
    pub timeout: Option<Duration>,
}

/// A key of a ConfigMap in the referring object's namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// Name of the ConfigMap.
    pub name: String,
    /// Key within its data.
    pub key: String,
}

/// Maps matching operations to one kind of MCP component.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteMap {
    /// HTTP methods matched; empty for any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<HttpMethod>,

    /// A regular expression searched for in the path template (for example
    /// `^/items/\{item_id\}$` or `/admin/.*`); none for any path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub pattern: Option<String>,

    /// Operation tags that must all be present; empty for any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,

    /// What matching operations become.
    #[serde(rename = "type")]
    pub type_: ComponentType,

    /// Tags added to the components made (in their `_meta`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp_tags: Vec<String>,
}

/// An HTTP method of an OpenAPI operation.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Put,
    Post,
    Delete,
    Options,
    Head,
    Patch,
    Trace,
}

impl HttpMethod {
    /// Every method, in the order OpenAPI lists them in a path item.
    pub const ALL: [HttpMethod; 8] = [
        HttpMethod::Get,
        HttpMethod::Put,
        HttpMethod::Post,
        HttpMethod::Delete,
        HttpMethod::Options,
        HttpMethod::Head,
        HttpMethod::Patch,
        HttpMethod::Trace,
    ];

    /// The key of the method in an OpenAPI path item (`get`, `post`...).
    pub fn key(self) -> &'static str {
        match self {
            HttpMethod::Get => "get",
            HttpMethod::Put => "put",
            HttpMethod::Post => "post",
            HttpMethod::Delete => "delete",
            HttpMethod::Options => "options",
            HttpMethod::Head => "head",
            HttpMethod::Patch => "patch",
            HttpMethod::Trace => "trace",
        }
    }
}

/// The kind of MCP component an operation becomes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ComponentType {
    /// A tool: any method, arguments from parameters and body.
    Tool,
    /// A resource with a fixed URI: a GET without required parameters.
    Resource,
    /// A resource template: a GET whose path parameters fill an RFC 6570 URI template.
    ResourceTemplate,
    /// Not served.
    Exclude,
}

/// Changes to the component one operation becomes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OperationOverride {
    /// The component's name (for a tool, before the mount's prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_.-]{1,128}$')").message("name must be 1-128 letters, digits, '_', '-' or '.'"))]
    pub name: Option<String>,
    /// The component's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub description: Option<String>,
    /// Tags added to the component (in its `_meta`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub tags: Vec<String>,
}
