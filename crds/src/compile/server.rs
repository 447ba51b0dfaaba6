//! Compiles one McpServer into the [`Upstream`] routes mount, checking its spec
//! (`Accepted`) and reading the Secrets it references (`ResolvedRefs`).

use std::time::Duration;

use super::{ServerState, Unreadable, name_of, namespace_of, secrets};
use crate::config::{Header, RemoteUpstream, Upstream};
use crate::outcome::{Kind, ObjectRef, Outcome, Problem, Serving, condition, reason, verdict};
use crate::resources::{McpServer, RemoteSource};

/// Default per-request timeout toward an upstream.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

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

pub(super) fn compile(server: &McpServer, secrets: &secrets::Index) -> (ServerState, Outcome) {
    let namespace = namespace_of(&server.metadata);
    let object = ObjectRef { kind: Kind::McpServer, namespace: namespace.clone(), name: name_of(&server.metadata) };
    let mut invalid = Vec::new();
    let mut refs = Vec::new();

    let upstream = match &server.spec.remote {
        Some(remote) => remote_upstream(remote, &namespace, secrets, &mut invalid, &mut refs),
        None => {
            invalid.push(Problem::new("spec", "exactly one source must be set: remote"));
            None
        }
    };

    let state = match upstream {
        Some(upstream) if invalid.is_empty() && refs.is_empty() => Ok(upstream),
        _ => Err(invalid.iter().chain(&refs).map(Problem::to_string).collect::<Vec<_>>().join("; ")),
    };
    let outcome = Outcome {
        generation: server.metadata.generation,
        conditions: vec![
            verdict(condition::ACCEPTED, reason::ACCEPTED, Some((reason::INVALID, &invalid)), "spec is valid"),
            verdict(
                condition::RESOLVED_REFS,
                reason::RESOLVED_REFS,
                Some((reason::REF_NOT_FOUND, &refs)),
                "all references resolved",
            ),
        ],
        path: None,
        serving: if state.is_ok() { Serving::Current } else { Serving::Nothing },
        object: object.clone(),
    };
    (state.map_err(|why| format!("{object} is not usable: {why}")), outcome)
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
    invalid: &mut Vec<Problem>,
    refs: &mut Vec<Problem>,
) -> Option<Upstream> {
    check_url(&remote.url).unwrap_or_else(|why| invalid.push(Problem::new("spec.remote.url", why)));

    let timeout = remote.timeout.map(Duration::from).unwrap_or(DEFAULT_TIMEOUT);
    let negative = remote.timeout.is_some_and(|t| t.is_negative());
    if negative || timeout.is_zero() || timeout > MAX_TIMEOUT {
        invalid.push(Problem::new("spec.remote.timeout", "timeout must be greater than 0s and at most 1h"));
    }

    let mut headers = Vec::with_capacity(remote.headers.len());
    for (i, header) in remote.headers.iter().enumerate() {
        let field = format!("spec.remote.headers[{i}]");
        let name_ok = !header.name.is_empty()
            && header.name.len() <= 128
            && header.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !name_ok {
            invalid.push(Problem::new(format!("{field}.name"), "header name must be 1-128 letters, digits or '-'"));
        } else if RESERVED_HEADERS.contains(&header.name.to_ascii_lowercase().as_str()) {
            invalid.push(Problem::new(
                format!("{field}.name"),
                format!("header `{}` is set by the gateway and cannot be overridden", header.name),
            ));
        }
        let value = match (&header.value, &header.value_from) {
            (Some(value), None) => Some(value.clone()),
            (None, Some(from)) => match secrets.get(namespace, &from.secret_key_ref) {
                Ok(value) => Some(value.trim_end_matches(['\r', '\n']).to_owned()),
                Err(why) => {
                    refs.push(Problem::new(format!("{field}.valueFrom.secretKeyRef"), why));
                    None
                }
            },
            _ => {
                invalid.push(Problem::new(field.clone(), "exactly one of value or valueFrom must be set"));
                None
            }
        };
        if let Some(value) = value {
            // What HTTP allows in a field value: visible ASCII, spaces, tabs, and non-ASCII
            // bytes; no other control characters.
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                invalid.push(Problem::new(field, "header value must not contain control characters or line breaks"));
            } else {
                headers.push(Header { name: header.name.clone(), value });
            }
        }
    }

    Some(Upstream::Remote(RemoteUpstream {
        url: remote.url.clone(),
        transport: remote.transport,
        headers,
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    }))
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
