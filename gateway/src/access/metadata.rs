//! OAuth 2.0 Protected Resource Metadata (RFC 9728) for a route, and the challenge of its
//! 401s and 403s (RFC 6750 with `resource_metadata`), which is how MCP clients find out
//! where to get a token.

use http::HeaderMap;
use http::header::HOST;
use serde_json::json;

use manifold_api::config::RouteConfig;

use super::Refusal;
use super::authn::Authenticator;

/// Where RFC 9728 puts metadata: this prefix, then the resource's path.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The route's URL as the client addressed it, or its configured resource identifier.
pub fn resource(route: &RouteConfig, authn: &Authenticator, headers: &HeaderMap) -> String {
    if let Some(resource) = &authn.metadata.resource {
        return resource.clone();
    }
    format!("{}{}", origin(headers), route.path)
}

/// The metadata document's URL.
pub fn document_url(route: &RouteConfig, authn: &Authenticator, headers: &HeaderMap) -> String {
    match authn.metadata.resource.as_deref().and_then(|r| url::Url::parse(r).ok()) {
        Some(url) => format!("{}{WELL_KNOWN}{}", url.origin().ascii_serialization(), url.path().trim_end_matches('/')),
        None => format!("{}{WELL_KNOWN}{}", origin(headers), route.path),
    }
}

/// `http(s)://host` as the client addressed the gateway; `X-Forwarded-Proto: https` from a
/// TLS-terminating proxy makes it https.
fn origin(headers: &HeaderMap) -> String {
    // Only host characters: the value is echoed inside a quoted header parameter.
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
        .unwrap_or("localhost");
    let https = headers.get("x-forwarded-proto").is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// The metadata document.
pub fn document(route: &RouteConfig, authn: &Authenticator, headers: &HeaderMap) -> serde_json::Value {
    let metadata = &authn.metadata;
    let mut document = json!({
        "resource": resource(route, authn, headers),
        "bearer_methods_supported": ["header"],
        "resource_name": format!("{}/{} MCP endpoint", route.namespace, route.name),
    });
    if !metadata.authorization_servers.is_empty() {
        document["authorization_servers"] = json!(metadata.authorization_servers);
    }
    if !metadata.scopes_supported.is_empty() {
        document["scopes_supported"] = json!(metadata.scopes_supported);
    }
    document
}

/// The `WWW-Authenticate` value of a refusal.
pub fn challenge(route: &RouteConfig, authn: &Authenticator, headers: &HeaderMap, refusal: &Refusal) -> String {
    let metadata = document_url(route, authn, headers);
    let scopes = authn.required_scopes().join(" ");
    let scope = if scopes.is_empty() { String::new() } else { format!(r#", scope="{scopes}""#) };
    match refusal {
        Refusal::Missing => format!(r#"Bearer resource_metadata="{metadata}"{scope}"#),
        Refusal::Invalid(why) => {
            format!(r#"Bearer error="invalid_token", error_description="{why}", resource_metadata="{metadata}""#)
        }
        Refusal::InsufficientScope(scopes) => format!(
            r#"Bearer error="insufficient_scope", scope="{}", resource_metadata="{metadata}""#,
            scopes.join(" ")
        ),
    }
}
