//! The MCP vocabulary the gateway speaks, in one place: protocol revisions, method names
//! (parsed once into [`Method`]), header names, `_meta` keys, JSON-RPC and MCP error codes, and
//! the kinds of component a route merges. Nothing here does anything: every other module
//! reads its words from here instead of spelling them out.

/// Protocol revisions served to clients in sessions, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The stateless revision: no `initialize`, no session, metadata in every request.
pub const STATELESS: &str = "2026-07-28";

/// HTTP header names (lowercase, as `http` spells them).
pub mod header {
    /// The session a request belongs to.
    pub const SESSION_ID: &str = "mcp-session-id";
    /// The revision a request speaks.
    pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
    /// Where a resumed event stream picks up.
    pub const LAST_EVENT_ID: &str = "last-event-id";
    /// The stateless revision's mirror of the request's method.
    pub const METHOD: &str = "mcp-method";
    /// The stateless revision's mirror of the tool or prompt name, or resource URI.
    pub const NAME: &str = "mcp-name";
    /// Headers a stateless client sends for the servers, forwarded unchanged.
    pub const PARAM_PREFIX: &str = "mcp-param-";
    /// Manifold's: how a plain JSON answer met the route's cache (`hit`, `miss`, `bypass`).
    pub const CACHE: &str = "manifold-cache";
}

/// Keys of `params._meta`.
pub mod meta {
    /// The namespace of the stateless revision's own keys.
    pub const NAMESPACE: &str = "io.modelcontextprotocol/";
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
    pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
    pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
    /// Where a request's progress notifications are sent back to.
    pub const PROGRESS_TOKEN: &str = "progressToken";
    /// Manifold's: the seconds to wait before retrying a call a rate limit refused.
    pub const RETRY_AFTER_SECONDS: &str = "dev.manifold/retryAfterSeconds";
    /// Manifold's: on a result, how it met the cache (`hit`, `miss`, `bypass`); on a
    /// request, `no-cache` asks for a fresh answer.
    pub const CACHE: &str = "dev.manifold/cache";
}

/// JSON-RPC and MCP error codes.
pub mod code {
    /// Invalid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a valid JSON-RPC message.
    pub const INVALID_REQUEST: i64 = -32600;
    /// Unknown method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Bad params, including an unknown tool name.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The gateway failed.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// No valid credential (with HTTP 401).
    pub const UNAUTHORIZED: i64 = -32001;
    /// A resource that does not exist.
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// The caller may not do this (HTTP 403 for a missing scope; a denied call, list or read).
    pub const FORBIDDEN: i64 = -32003;
    /// Stateless revision: a header disagrees with the body, or is missing.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// Stateless revision: the server needs a client capability the request did not declare.
    pub const MISSING_CAPABILITY: i64 = -32021;
    /// Stateless revision: the requested revision is not served.
    pub const UNSUPPORTED_VERSION: i64 = -32022;
    /// The request needs the user to complete a URL-mode elicitation first (2025-11-25:
    /// `data.elicitations` lists them).
    pub const URL_ELICITATION_REQUIRED: i64 = -32042;
    /// Manifold's: a rate limit of the route refused the request (`data.retryAfterSeconds`
    /// says when to try again). In the implementation-defined server range; 29 as in 429.
    pub const RATE_LIMITED: i64 = -32029;
}

/// A JSON-RPC method the gateway knows, parsed once from its name; anything else is
/// [`Method::Other`] (and keeps its name where it was read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Initialize,
    Ping,
    ServerDiscover,
    SubscriptionsListen,
    ToolsList,
    ToolsCall,
    PromptsList,
    PromptsGet,
    ResourcesList,
    ResourcesTemplatesList,
    ResourcesRead,
    ResourcesSubscribe,
    ResourcesUnsubscribe,
    CompletionComplete,
    LoggingSetLevel,
    Initialized,
    Cancelled,
    Progress,
    LogMessage,
    RootsListChanged,
    ToolsListChanged,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    SubscriptionsAcknowledged,
    Other,
}

impl Method {
    /// Whether the request is about one component (a tool, a prompt, a resource), which its
    /// params name.
    pub fn is_about_one(self) -> bool {
        matches!(
            self,
            Method::ToolsCall
                | Method::PromptsGet
                | Method::ResourcesRead
                | Method::ResourcesSubscribe
                | Method::ResourcesUnsubscribe
        )
    }

    /// Every known method, for the table below and its test.
    const ALL: [Method; 25] = [
        Method::Initialize,
        Method::Ping,
        Method::ServerDiscover,
        Method::SubscriptionsListen,
        Method::ToolsList,
        Method::ToolsCall,
        Method::PromptsList,
        Method::PromptsGet,
        Method::ResourcesList,
        Method::ResourcesTemplatesList,
        Method::ResourcesRead,
        Method::ResourcesSubscribe,
        Method::ResourcesUnsubscribe,
        Method::CompletionComplete,
        Method::LoggingSetLevel,
        Method::Initialized,
        Method::Cancelled,
        Method::Progress,
        Method::LogMessage,
        Method::RootsListChanged,
        Method::ToolsListChanged,
        Method::PromptsListChanged,
        Method::ResourcesListChanged,
        Method::ResourceUpdated,
        Method::SubscriptionsAcknowledged,
    ];

    pub fn parse(name: &str) -> Method {
        Method::ALL.into_iter().find(|m| m.name() == name).unwrap_or(Method::Other)
    }

    /// The method's name on the wire; empty for [`Method::Other`].
    pub const fn name(self) -> &'static str {
        match self {
            Method::Initialize => "initialize",
            Method::Ping => "ping",
            Method::ServerDiscover => "server/discover",
            Method::SubscriptionsListen => "subscriptions/listen",
            Method::ToolsList => "tools/list",
            Method::ToolsCall => "tools/call",
            Method::PromptsList => "prompts/list",
            Method::PromptsGet => "prompts/get",
            Method::ResourcesList => "resources/list",
            Method::ResourcesTemplatesList => "resources/templates/list",
            Method::ResourcesRead => "resources/read",
            Method::ResourcesSubscribe => "resources/subscribe",
            Method::ResourcesUnsubscribe => "resources/unsubscribe",
            Method::CompletionComplete => "completion/complete",
            Method::LoggingSetLevel => "logging/setLevel",
            Method::Initialized => "notifications/initialized",
            Method::Cancelled => "notifications/cancelled",
            Method::Progress => "notifications/progress",
            Method::LogMessage => "notifications/message",
            Method::RootsListChanged => "notifications/roots/list_changed",
            Method::ToolsListChanged => "notifications/tools/list_changed",
            Method::PromptsListChanged => "notifications/prompts/list_changed",
            Method::ResourcesListChanged => "notifications/resources/list_changed",
            Method::ResourceUpdated => "notifications/resources/updated",
            Method::SubscriptionsAcknowledged => "notifications/subscriptions/acknowledged",
            Method::Other => "",
        }
    }

    /// The notifications that tell a client its lists changed.
    pub const LIST_CHANGES: [Method; 3] =
        [Method::ToolsListChanged, Method::PromptsListChanged, Method::ResourcesListChanged];
}

/// A kind of component a route merges from its mounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tool,
    Prompt,
    Resource,
    Template,
}

impl Kind {
    pub fn list(self) -> Method {
        match self {
            Kind::Tool => Method::ToolsList,
            Kind::Prompt => Method::PromptsList,
            Kind::Resource => Method::ResourcesList,
            Kind::Template => Method::ResourcesTemplatesList,
        }
    }

    pub fn list_method(self) -> &'static str {
        self.list().name()
    }

    /// What one item is called in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Tool => "tool",
            Kind::Prompt => "prompt",
            Kind::Resource => "resource",
            Kind::Template => "resource template",
        }
    }

    /// The field of a list result holding the items.
    pub fn items(self) -> &'static str {
        match self {
            Kind::Tool => "tools",
            Kind::Prompt => "prompts",
            Kind::Resource => "resources",
            Kind::Template => "resourceTemplates",
        }
    }

    /// The field of an item that names it.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Tool | Kind::Prompt => "name",
            Kind::Resource => "uri",
            Kind::Template => "uriTemplate",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_back_from_their_names() {
        for method in Method::ALL {
            assert_eq!(Method::parse(method.name()), method, "{method:?}");
        }
        assert_eq!(Method::parse("tools/unknown"), Method::Other);
        assert_eq!(Method::parse(""), Method::Other, "no name parses to a known method by accident");
    }
}
