//! Unit tests for what golden files cannot show: collisions found through discovered tool
//! names, and the tool matcher's round trip between upstream and client-visible names.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::config::{ToolPolicy, prefixed};
use crate::outcome::{Serving, reason};
use crate::resources::{Authentication, McpRouteSpec, McpServerSpec, Mount, RemoteSource, ToolFilter};

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: Some("acme".into()), ..Default::default() }
}

fn mk_server(name: &str) -> McpServer {
    let remote = RemoteSource {
        url: format!("http://{name}:8080/mcp"),
        transport: Default::default(),
        headers: vec![],
        auth: None,
        timeout: None,
    };
    McpServer {
        metadata: meta(name),
        spec: McpServerSpec { remote: Some(remote), openapi: None, resilience: None },
        status: None,
    }
}

fn mk_mount(server: &str, prefix: Option<&str>) -> Mount {
    Mount { server: server.into(), prefix: prefix.map(Into::into), tools: None, rename: BTreeMap::new() }
}

fn mk_route(name: &str, mounts: Vec<Mount>) -> McpRoute {
    McpRoute {
        metadata: meta(name),
        spec: McpRouteSpec {
            path: None,
            hostnames: vec![],
            allowed_origins: vec![],
            mounts,
            authentication: Some(Authentication { allow_anonymous: true, ..Default::default() }),
            authorization: None,
            audit: None,
            rate_limits: vec![],
            caching: None,
            resilience: None,
        },
        status: None,
    }
}

fn discovered(entries: &[(&str, &[&str])]) -> BTreeMap<ObjectKey, Vec<String>> {
    entries
        .iter()
        .map(|(server, tools)| (ObjectKey::new("acme", *server), tools.iter().map(|t| (*t).into()).collect()))
        .collect()
}

fn route_outcome<'a>(compiled: &'a Compiled, name: &str) -> &'a Outcome {
    compiled.outcomes.iter().find(|o| o.object.kind == Kind::McpRoute && o.object.name == name).unwrap()
}

#[test]
fn unprefixed_mounts_with_a_shared_tool_name_collide() {
    let inputs = Inputs {
        servers: vec![mk_server("a"), mk_server("b")],
        routes: vec![mk_route("r", vec![mk_mount("a", Some("")), mk_mount("b", Some(""))])],
        discovered: discovered(&[("a", &["search", "only_a"]), ("b", &["search"])]),
        ..Default::default()
    };
    let compiled = compile(&inputs, None);
    let outcome = route_outcome(&compiled, "r");
    assert_eq!(outcome.conditions[0].reason, reason::NAME_COLLISION);
    assert!(outcome.conditions[0].message.contains("tool `search` is also exposed by spec.mounts[0]"), "{outcome:?}");
    assert_eq!(outcome.serving, Serving::Nothing);
    assert!(compiled.config.routes.is_empty());
}

#[test]
fn a_prefixed_name_can_collide_with_an_unprefixed_one() {
    let inputs = Inputs {
        servers: vec![mk_server("a"), mk_server("b")],
        routes: vec![mk_route("r", vec![mk_mount("a", Some("x")), mk_mount("b", Some(""))])],
        discovered: discovered(&[("a", &["y"]), ("b", &["x_y"])]),
        ..Default::default()
    };
    let outcome = route_outcome(&compile(&inputs, None), "r").clone();
    assert_eq!(outcome.conditions[0].reason, reason::NAME_COLLISION, "{outcome:?}");
}

#[test]
fn filters_and_renames_resolve_a_collision() {
    let mut excluding = mk_mount("b", Some(""));
    excluding.tools = Some(ToolFilter { include: vec![], exclude: vec!["search".into()] });
    let mut renaming = mk_mount("a", Some(""));
    renaming.rename = BTreeMap::from([("search".to_owned(), "search_a".to_owned())]);
    for mounts in [vec![mk_mount("a", Some("")), excluding], vec![renaming, mk_mount("b", Some(""))]] {
        let inputs = Inputs {
            servers: vec![mk_server("a"), mk_server("b")],
            routes: vec![mk_route("r", mounts)],
            discovered: discovered(&[("a", &["search"]), ("b", &["search"])]),
            ..Default::default()
        };
        let compiled = compile(&inputs, None);
        assert!(route_outcome(&compiled, "r").is_ok(), "{:?}", compiled.outcomes);
        assert_eq!(compiled.config.routes.len(), 1);
    }
}

#[test]
fn without_discovered_tools_unprefixed_mounts_are_accepted() {
    let inputs = Inputs {
        servers: vec![mk_server("a"), mk_server("b")],
        routes: vec![mk_route("r", vec![mk_mount("a", Some("")), mk_mount("b", Some(""))])],
        ..Default::default()
    };
    let compiled = compile(&inputs, None);
    assert!(route_outcome(&compiled, "r").is_ok());
    assert_eq!(compiled.config.routes[0].mounts.iter().map(|m| m.prefix.as_str()).collect::<Vec<_>>(), ["", ""]);
}

#[test]
fn matcher_maps_names_both_ways() {
    let policy = ToolPolicy {
        include: vec!["get_*".into(), "search".into()],
        exclude: vec!["get_secret".into()],
        rename: BTreeMap::from([("search".to_owned(), "find".to_owned())]),
    };
    let matcher = policy.matcher().unwrap();
    assert_eq!(matcher.visible("get_weather"), Some("get_weather"));
    assert_eq!(matcher.visible("get_secret"), None);
    assert_eq!(matcher.visible("delete_all"), None);
    assert_eq!(matcher.visible("search"), Some("find"));
    assert_eq!(matcher.upstream("find"), Some("search"));
    assert_eq!(matcher.upstream("search"), None, "a renamed tool is not reachable under its old name");
    assert_eq!(matcher.upstream("get_secret"), None);
    assert_eq!(matcher.upstream("get_weather"), Some("get_weather"));
    assert_eq!(prefixed("w", "find"), "w_find");
    assert_eq!(prefixed("", "find"), "find");
}

#[test]
fn generation_moves_only_when_content_changes() {
    let inputs = Inputs {
        servers: vec![mk_server("a")],
        routes: vec![mk_route("r", vec![mk_mount("a", None)])],
        ..Default::default()
    };
    let first = compile(&inputs, None).config;
    let again = compile(&inputs, Some(&first)).config;
    assert_eq!((first.generation, again.generation), (1, 1));
    assert_eq!(first.hash, again.hash);
    let changed = Inputs { routes: vec![mk_route("r", vec![mk_mount("a", Some("other"))])], ..inputs };
    let next = compile(&changed, Some(&again)).config;
    assert_eq!(next.generation, 2);
    assert_ne!(next.hash, first.hash);
}

#[test]
fn a_config_round_trips_and_detects_tampering() {
    let inputs = Inputs {
        servers: vec![mk_server("a")],
        routes: vec![mk_route("r", vec![mk_mount("a", None)])],
        ..Default::default()
    };
    let config = compile(&inputs, None).config;
    let text = serde_yaml::to_string(&config).unwrap();
    assert_eq!(GatewayConfig::from_text(&text).unwrap(), config);
    let tampered = text.replace("http://a:8080/mcp", "http://evil:8080/mcp");
    assert!(GatewayConfig::from_text(&tampered).unwrap_err().to_string().contains("hash mismatch"));
    let future = text.replace("format: 1", "format: 9");
    assert!(GatewayConfig::from_text(&future).unwrap_err().to_string().contains("format 9 is not supported"));
}
