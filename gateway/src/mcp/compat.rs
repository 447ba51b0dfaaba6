//! A route's compatibility profile at work: its merged `tools/list` items in (each tool's
//! client-visible name, schema and description), what its clients see out (a name every named
//! provider accepts, or nothing under `Report`; a schema normalised for those providers, the
//! description noting what was lost); and back, a `tools/call` name in (possibly a short
//! form), the client-visible name out, and the call's arguments trimmed to what the upstream
//! declares where Gemini's normalisation dropped `additionalProperties: false`.
//!
//! A short form is resolved by lookup, never by parsing: among the tools each mount is known
//! to offer (learned from the lists that pass through; a mount this replica has not listed
//! yet is listed first), the one whose client-visible name shortens to it. Everything after
//! that sees the client-visible name, not the short one: authorization globs, rate limits,
//! result caching and the audit log's target. An operator writes policy against the names
//! the route's tools have (`github_*`), the same whether or not a profile is turned on, and
//! one policy then covers a tool under either spelling; a short form, a hash, could not be
//! matched by a glob anyway. Traces record each name as its sender wrote it (the conventions'
//! rule): the server span the short form the client sent, the upstream span the upstream's
//! own name.
//!
//! Routes without a profile never reach this module: their lists and calls pay one `Option`
//! check.

use std::collections::BTreeMap;

use manifold_api::compat::{self, Provider};
use manifold_api::config::CompatibilityConfig;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::call::Call;
use crate::jsonrpc::raw;
use crate::protocol::Kind;
use crate::snapshot::{Mount, Route};

/// Tools a route with a profile lists in one page, whatever the gateway's page size (some
/// SDKs read only the first page); past this, the list is paged as every route's is.
pub const ONE_PAGE_TOOLS: usize = 1000;

/// The name a route's clients see for a tool listed as `visible`, with `item`'s name, input
/// schema and description rewritten for the profile; `None` when the profile leaves it out.
pub fn client_tool(profile: &CompatibilityConfig, visible: &str, item: &mut Map<String, Value>) -> Option<String> {
    let name = match compat::name_problem(visible, &profile.providers) {
        None => visible.to_owned(),
        Some(why) if profile.report => {
            tracing::debug!(tool = %visible, %why, "left out for this route's clients (incompatibleToolNames: Report)");
            return None;
        }
        Some(_) => compat::short_name(visible),
    };
    item.insert("name".into(), Value::String(name.clone()));
    if let Some(normalized) = item.get("inputSchema").and_then(|schema| compat::normalize(schema, &profile.providers)) {
        if !normalized.lost.is_empty() {
            let description = item.get("description").and_then(Value::as_str).unwrap_or_default();
            let noted = compat::describe_losses(description, &normalized.lost);
            item.insert("description".into(), Value::String(noted));
        }
        item.insert("inputSchema".into(), normalized.schema);
    }
    Some(name)
}

/// The client-visible name behind the tool name a client sent; `None` when the route does
/// not show that name to its clients (a name a named provider refuses).
pub async fn resolve(call: &Call, profile: &CompatibilityConfig, sent: String) -> Option<String> {
    if compat::name_problem(&sent, &profile.providers).is_some() {
        return None;
    }
    if profile.report || !looks_short(&sent) {
        return Some(sent);
    }
    let route = &call.route;
    if let Some(visible) = shortened_to(route, profile, &sent) {
        return Some(visible);
    }
    let unlisted: Vec<&Mount> =
        route.mounts.iter().filter(|mount| mount.client.guard.known.tool_names().is_none()).collect();
    if unlisted.is_empty() {
        // Not a short form of a known tool: it may be a tool's own name of that shape.
        return Some(sent);
    }
    futures::future::join_all(unlisted.into_iter().map(|mount| learn_tools(call, mount))).await;
    Some(shortened_to(route, profile, &sent).unwrap_or(sent))
}

/// Makes the call's `arguments` fit the upstream's own schema again where the Gemini
/// normalisation loosened it (`compat::fit_arguments`): undeclared properties removed where it
/// said `additionalProperties: false`, non-string enum values restored from the strings Gemini
/// sent. Nothing else about the arguments changes, and nothing at all unless Gemini is named.
pub async fn fit_arguments(
    call: &Call,
    profile: &CompatibilityConfig,
    mount: &Mount,
    upstream: &str,
    fields: &mut BTreeMap<String, Box<RawValue>>,
) {
    if !profile.providers.contains(&Provider::Gemini) {
        return;
    }
    let Some(arguments) = fields.get("arguments") else { return };
    let known = &mount.client.guard.known;
    if known.tool_names().is_none() {
        learn_tools(call, mount).await;
    }
    let Some(schema) = known.input_schema(upstream) else { return };
    let Ok(mut arguments) = serde_json::from_str::<Value>(arguments.get()) else { return };
    let changed = compat::fit_arguments(&schema, &mut arguments);
    if !changed.is_empty() {
        tracing::debug!(route = %call.route.id(), tool = %upstream, ?changed, "arguments fitted to the upstream's schema before the call");
        fields.insert("arguments".into(), raw(&arguments));
    }
}

/// Whether `name` has a short form's shape: `_` and 8 lowercase hex digits at its end.
fn looks_short(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 9
        && bytes[bytes.len() - 9] == b'_'
        && bytes[bytes.len() - 8..].iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The client-visible name, among the tools the route's mounts are known to offer, whose
/// short form is `short`.
fn shortened_to(route: &Route, profile: &CompatibilityConfig, short: &str) -> Option<String> {
    route.mounts.iter().find_map(|mount| {
        mount.client.guard.known.tool_names()?.iter().find_map(|upstream| {
            let visible = mount.visible(Kind::Tool, upstream)?;
            let shortened = compat::name_problem(&visible, &profile.providers).is_some();
            (shortened && compat::short_name(&visible) == short).then_some(visible)
        })
    })
}

/// Lists a mount's tools (every page) as the caller, so its names and schemas are known.
async fn learn_tools(call: &Call, mount: &Mount) {
    let slot = call.session.slot(mount);
    let hello = &call.session.hello;
    let listing =
        mount.client.within(mount.client.list_all(&slot, hello, Kind::Tool.list_method(), Kind::Tool.items()));
    match mount.client.as_caller(&call.principal, listing).await {
        Ok(tools) => mount.client.guard.known.learn_schemas(&tools),
        Err(error) => {
            tracing::warn!(route = %call.route.id(), mount = %mount.config.server, %error, "listing tools to resolve a short name failed")
        }
    }
}

#[cfg(test)]
mod tests;
