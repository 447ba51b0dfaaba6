//! Compiles one McpServer into the [`Upstream`] routes mount, checking its spec
//! (`Accepted`), reading the Secrets, ConfigMaps and documents it references
//! (`ResolvedRefs`), and for an OpenAPI source translating its document (operations that
//! cannot be served are left out and named in `PartiallyInvalid`).

use std::time::Duration;

mod auth;

use super::{ServerState, Unreadable, name_of, namespace_of, secrets};
use crate::config::{Header, OpenApiUpstream, OutboundAuth, RemoteUpstream, Upstream};
use crate::outcome::{Kind, ObjectRef, Outcome, Problem, Serving, Verdict, condition, reason, verdict};
use crate::resources::{ApiKeyLocation, HeaderSource, McpServer, OpenApiSource, RemoteSource};

/// Default per-request timeout toward an upstream.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
use crate::documents::MIN_REFRESH;

/// Headers the gateway owns on every upstream request; a server may not override them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "accept",
    "connection",
    "transfer-encoding",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

pub(super) fn compile(server: &McpServer, inputs: &super::Inputs, secrets: &secrets::Index) -> (ServerState, Outcome) {
    let namespace = namespace_of(&server.metadata);
    let object = ObjectRef { kind: Kind::McpServer, namespace: namespace.clone(), name: name_of(&server.metadata) };
    let mut found = Found::default();

    let upstream = match (&server.spec.remote, &server.spec.openapi) {
        (Some(remote), None) => remote_upstream(remote, &namespace, secrets, &mut found),
        (None, Some(openapi)) => openapi_upstream(openapi, &namespace, inputs, secrets, &mut found),
        _ => {
            found.invalid.push(Problem::new("spec", "exactly one source must be set: remote or openapi"));
            None
        }
    };

    let resilience = super::resilience::server(server.spec.resilience.as_ref(), "spec.resilience", &mut found.invalid);
    let upstream = upstream.map(|mut upstream| {
        match &mut upstream {
            Upstream::Remote(remote) => remote.resilience = resilience,
            Upstream::OpenApi(api) => api.resilience = resilience,
        }
        upstream
    });
    let Found { invalid, refs, skipped } = found;
    let state = match upstream {
        Some(upstream) if invalid.is_empty() && refs.is_empty() => Ok(upstream),
        _ => Err(invalid.iter().chain(&refs).map(Problem::to_string).collect::<Vec<_>>().join("; ")),
    };
    let mut conditions = vec![
        verdict(condition::ACCEPTED, reason::ACCEPTED, Some((reason::INVALID, &invalid)), "spec is valid"),
        verdict(
            condition::RESOLVED_REFS,
            reason::RESOLVED_REFS,
            Some((reason::REF_NOT_FOUND, &refs)),
            "all references resolved",
        ),
    ];
    if state.is_ok() && !skipped.is_empty() {
        conditions.push(Verdict {
            type_: condition::PARTIALLY_INVALID.into(),
            status: true,
            reason: reason::OPERATIONS_SKIPPED.into(),
            message: skipped.iter().map(Problem::to_string).collect::<Vec<_>>().join("; "),
        });
    }
    let outcome = Outcome {
        generation: server.metadata.generation,
        conditions,
        path: None,
        serving: if state.is_ok() { Serving::Current } else { Serving::Nothing },
        object: object.clone(),
    };
    (state.map_err(|why| format!("{object} is not usable: {why}")), outcome)
}

/// What is wrong with a server, by the condition it affects.
#[derive(Default)]
struct Found {
    /// The spec is invalid (`Accepted=False`).
    invalid: Vec<Problem>,
    /// A Secret, ConfigMap or document cannot be read (`ResolvedRefs=False`).
    refs: Vec<Problem>,
    /// Parts left out, the rest served (`PartiallyInvalid=True`).
    skipped: Vec<Problem>,
}

/// The outcome of a server whose spec did not parse.
pub(super) fn unreadable(bad: &Unreadable) -> Outcome {
    Outcome {
        object: bad.object.clone(),
        generation: bad.generation,
        conditions: vec![verdict(
            condition::ACCEPTED,
            reason::ACCEPTED,
            Some((reason::INVALID, std::slice::from_ref(&bad.problem))),
            "",
        )],
        path: None,
        serving: Serving::Nothing,
    }
}

fn remote_upstream(
    remote: &RemoteSource,
    namespace: &str,
    secrets: &secrets::Index,
    found: &mut Found,
) -> Option<Upstream> {
    check_url(&remote.url).unwrap_or_else(|why| found.invalid.push(Problem::new("spec.remote.url", why)));
    let timeout_ms = timeout(remote.timeout, "spec.remote.timeout", &mut found.invalid);
    let mut headers = headers(&remote.headers, "spec.remote.headers", namespace, secrets, found);
    let auth = remote.auth.as_ref().and_then(|auth| {
        let credential = auth::compile(auth, "spec.remote.auth", namespace, secrets, found)?;
        apply(credential, "spec.remote", &mut headers, None, found)
    });
    Some(Upstream::Remote(RemoteUpstream {
        url: remote.url.clone(),
        transport: remote.transport,
        headers,
        auth,
        timeout_ms,
        resilience: Default::default(),
    }))
}

/// A timeout in milliseconds, the default filled in.
fn timeout(timeout: Option<kube::core::Duration>, field: &str, invalid: &mut Vec<Problem>) -> u64 {
    let resolved = timeout.map(Duration::from).unwrap_or(DEFAULT_TIMEOUT);
    let negative = timeout.is_some_and(|t| t.is_negative());
    if negative || resolved.is_zero() || resolved > MAX_TIMEOUT {
        invalid.push(Problem::new(field, "timeout must be greater than 0s and at most 1h"));
    }
    u64::try_from(resolved.as_millis()).unwrap_or(u64::MAX)
}

/// Static headers, Secret values read; `field` is where they are listed.
fn headers(
    sources: &[HeaderSource],
    field: &str,
    namespace: &str,
    secrets: &secrets::Index,
    found: &mut Found,
) -> Vec<Header> {
    let mut headers = Vec::with_capacity(sources.len());
    for (i, header) in sources.iter().enumerate() {
        let field = format!("{field}[{i}]");
        let name_ok = !header.name.is_empty()
            && header.name.len() <= 128
            && header.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !name_ok {
            found
                .invalid
                .push(Problem::new(format!("{field}.name"), "header name must be 1-128 letters, digits or '-'"));
        } else if RESERVED_HEADERS.contains(&header.name.to_ascii_lowercase().as_str()) {
            found.invalid.push(Problem::new(
                format!("{field}.name"),
                format!("header `{}` is set by the gateway and cannot be overridden", header.name),
            ));
        }
        let value = match (&header.value, &header.value_from) {
            (Some(value), None) => Some(value.clone()),
            (None, Some(from)) => match secrets.get(namespace, &from.secret_key_ref) {
                Ok(value) => Some(value.trim_end_matches(['\r', '\n']).to_owned()),
                Err(why) => {
                    found.refs.push(Problem::new(format!("{field}.valueFrom.secretKeyRef"), why));
                    None
                }
            },
            _ => {
                found.invalid.push(Problem::new(field.clone(), "exactly one of value or valueFrom must be set"));
                None
            }
        };
        if let Some(value) = value {
            // What HTTP allows in a field value: visible ASCII, spaces, tabs, and non-ASCII
            // bytes; no other control characters.
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                found
                    .invalid
                    .push(Problem::new(field, "header value must not contain control characters or line breaks"));
            } else {
                headers.push(Header { name: header.name.clone(), value });
            }
        }
    }
    headers
}

/// Puts a compiled `auth` where the gateway reads it: a static credential among the headers
/// (or, where the source has one, the query), any other as the upstream's `auth`. `source` is
/// `spec.remote` or `spec.openapi`; `query` is None for a remote server, whose URL must not
/// carry a credential.
fn apply(
    credential: auth::Credential,
    source: &str,
    headers: &mut Vec<Header>,
    query: Option<&mut Vec<Header>>,
    found: &mut Found,
) -> Option<OutboundAuth> {
    let (name, value) = match credential {
        auth::Credential::PerCall(auth) => ("Authorization".to_owned(), Err(auth)),
        auth::Credential::Static { location: ApiKeyLocation::Header, name, value } => (name, Ok(value)),
        auth::Credential::Static { location: ApiKeyLocation::Query, name, value } => {
            match query {
                Some(query) => query.push(Header { name, value }),
                None => found.invalid.push(Problem::new(
                    format!("{source}.auth.apiKey.in"),
                    "a remote server takes an API key in a header only (in: header): in the URL's query it would show \
                     wherever the URL does",
                )),
            }
            return None;
        }
    };
    if headers.iter().any(|h| h.name.eq_ignore_ascii_case(&name)) {
        found.invalid.push(Problem::new(
            format!("{source}.headers"),
            format!("header `{name}` is set by {source}.auth; remove it from headers"),
        ));
        return None;
    }
    match value {
        Err(auth) => Some(auth),
        Ok(value) if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) => {
            let why = "the credential holds control characters or line breaks";
            found.invalid.push(Problem::new(format!("{source}.auth"), why));
            None
        }
        Ok(value) => {
            headers.push(Header { name, value });
            None
        }
    }
}

/// A REST API's components and how to call it.
fn openapi_upstream(
    source: &OpenApiSource,
    namespace: &str,
    inputs: &super::Inputs,
    secrets: &secrets::Index,
    found: &mut Found,
) -> Option<Upstream> {
    let (text, field) = document(source, namespace, inputs, found)?;
    let translated = match super::openapi::translate(&text, field, &source.route_maps, &source.operations) {
        Ok(translated) => translated,
        Err(problems) => {
            found.invalid.extend(problems);
            return None;
        }
    };
    found.skipped.extend(translated.skipped);

    // Without `servers`, OpenAPI's default server is `/`: the origin the document came from.
    let servers_url = translated.servers_url.clone().or_else(|| source.url.as_ref().map(|_| "/".to_owned()));
    let base_url = match (&source.base_url, &servers_url) {
        (Some(base), _) => Some(("spec.openapi.baseUrl", base.clone())),
        (None, Some(servers)) => match (url::Url::parse(servers), &source.url) {
            (Ok(_), _) => Some((field, servers.clone())),
            // A relative server URL is relative to where the document was fetched from.
            (Err(url::ParseError::RelativeUrlWithoutBase), Some(from)) => {
                match url::Url::parse(from).and_then(|from| from.join(servers)) {
                    Ok(joined) => Some((field, joined.to_string())),
                    Err(why) => {
                        found.invalid.push(Problem::new(
                            "spec.openapi.baseUrl",
                            format!("the document's servers[0].url `{servers}` does not resolve against `{from}` ({why}): set baseUrl"),
                        ));
                        None
                    }
                }
            }
            _ => {
                found.invalid.push(Problem::new(
                    "spec.openapi.baseUrl",
                    format!("the document's servers[0].url `{servers}` is not an absolute URL: set baseUrl"),
                ));
                None
            }
        },
        (None, None) => {
            found.invalid.push(Problem::new("spec.openapi.baseUrl", "the document names no server: set baseUrl"));
            None
        }
    };
    let base_url = base_url.and_then(|(field, base)| match check_url(&base) {
        Ok(()) => Some(base.trim_end_matches('/').to_owned()),
        Err(why) => {
            found.invalid.push(Problem::new(field, why));
            None
        }
    })?;

    let timeout_ms = timeout(source.timeout, "spec.openapi.timeout", &mut found.invalid);
    if let Some(every) = source.refresh_interval {
        if source.url.is_none() {
            let why = "refreshInterval applies only to a spec fetched from url";
            found.invalid.push(Problem::new("spec.openapi.refreshInterval", why));
        } else if every.is_negative() || Duration::from(every) < MIN_REFRESH {
            found.invalid.push(Problem::new("spec.openapi.refreshInterval", "refreshInterval must be at least 10s"));
        }
    }
    let mut headers = headers(&source.headers, "spec.openapi.headers", namespace, secrets, found);
    let mut query = Vec::new();
    let auth = source.auth.as_ref().and_then(|auth| {
        let credential = auth::compile(auth, "spec.openapi.auth", namespace, secrets, found)?;
        apply(credential, "spec.openapi", &mut headers, Some(&mut query), found)
    });

    Some(Upstream::OpenApi(OpenApiUpstream {
        base_url,
        timeout_ms,
        headers,
        query,
        auth,
        tools: translated.tools,
        resources: translated.resources,
        templates: translated.templates,
        resilience: Default::default(),
    }))
}

/// The OpenAPI document's text and the field it came from.
fn document(
    source: &OpenApiSource,
    namespace: &str,
    inputs: &super::Inputs,
    found: &mut Found,
) -> Option<(String, &'static str)> {
    match (&source.inline, &source.config_map_ref, &source.url) {
        (Some(text), None, None) => Some((text.clone(), "spec.openapi.inline")),
        (None, Some(reference), None) => {
            let field = "spec.openapi.configMapRef";
            let config_map = inputs.config_maps.iter().find(|c| {
                super::namespace_of(&c.metadata) == namespace && super::name_of(&c.metadata) == reference.name
            });
            let text = match config_map {
                None => Err(format!("ConfigMap `{}` does not exist in namespace {namespace}", reference.name)),
                Some(config_map) => config_map
                    .data
                    .as_ref()
                    .and_then(|d| d.get(&reference.key))
                    .cloned()
                    .ok_or_else(|| format!("ConfigMap `{}` has no key `{}`", reference.name, reference.key)),
            };
            text.map_err(|why| found.refs.push(Problem::new(field, why))).ok().map(|text| (text, field))
        }
        (None, None, Some(url)) => {
            let field = "spec.openapi.url";
            if let Err(why) = check_url(url) {
                found.invalid.push(Problem::new(field, why));
                return None;
            }
            match inputs.documents.get(url) {
                Some(Ok(text)) => Some((text.clone(), field)),
                Some(Err(why)) => {
                    found.refs.push(Problem::new(field, format!("cannot fetch `{url}`: {why}")));
                    None
                }
                None => {
                    found.refs.push(Problem::new(field, format!("`{url}` has not been fetched yet")));
                    None
                }
            }
        }
        _ => {
            found.invalid.push(Problem::new("spec.openapi", "exactly one of inline, configMapRef or url must be set"));
            None
        }
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a valid URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("`{url}` must use http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("`{url}` carries credentials; put them in headers from a Secret instead"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
