//! Unit tests for what golden files cannot show: collisions found through discovered tool
//! names, the tool matcher's round trip between upstream and client-visible names, and the
//! last valid mount kept when a server's credential comes to need a JWT its route does not take.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::compat::Provider;
use crate::config::{ToolPolicy, prefixed};
use crate::outcome::{Serving, condition, reason};
use crate::resources::{
    Authentication, IncompatibleToolNames, McpRouteSpec, McpServerSpec, Mount, RemoteSource, ToolFilter,
};

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
            compatibility: vec![],
            incompatible_tool_names: None,
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

/// acme's `crm` server with `auth` (YAML flow), and route `r` mounting it and `math`,
/// authenticating with `authentication`.
fn caller_token_world(auth: &str, authentication: &str) -> Inputs {
    let text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: keys, namespace: acme}}\n\
         stringData: {{bot: a-long-enough-test-api-key}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: crm, namespace: acme}}\nstringData: {{token: t}}\n---\n\
         apiVersion: manifold.dev/v1alpha1\nkind: McpServer\nmetadata: {{name: crm, namespace: acme}}\n\
         spec: {{remote: {{url: 'http://crm:8080/mcp', auth: {auth}}}}}\n---\n\
         apiVersion: manifold.dev/v1alpha1\nkind: McpServer\nmetadata: {{name: math, namespace: acme}}\n\
         spec: {{remote: {{url: 'http://math:8080/mcp'}}}}\n---\n\
         apiVersion: manifold.dev/v1alpha1\nkind: McpRoute\nmetadata: {{name: r, namespace: acme}}\n\
         spec: {{authentication: {authentication}, mounts: [{{server: crm}}, {{server: math}}]}}\n"
    );
    let read = crate::manifests::read(&[crate::manifests::Source { origin: "test".into(), text }]).unwrap();
    read.inputs
}

const STATIC: &str = "{bearer: {secretKeyRef: {name: crm, key: token}}}";
const FORWARD: &str = "{forwardCallerToken: {audience: crm}}";
const API_KEYS: &str = "{apiKeys: {secretRef: {name: keys}}}";
const JWTS: &str = "{jwt: [{issuer: 'https://idp', audiences: [gw], jwks: {uri: 'https://idp/jwks'}}]}";

fn mounted(config: &GatewayConfig) -> Vec<(&str, Option<&'static str>)> {
    config.routes[0].mounts.iter().map(|m| (m.server.as_str(), m.upstream.auth().map(|a| a.mode()))).collect()
}

#[test]
fn a_mount_that_needs_the_callers_jwt_is_left_out_of_a_route_that_takes_none() {
    let with_jwts = compile(&caller_token_world(FORWARD, JWTS), None);
    assert!(route_outcome(&with_jwts, "r").is_ok(), "{:?}", with_jwts.outcomes);
    assert_eq!(mounted(&with_jwts.config), [("crm", Some("forwardCallerToken")), ("math", None)]);

    // The route worked with the server's static token; the server moves to forwarding the
    // caller's token, which this route's API-key callers do not have: the last valid mount
    // stays, and the status says why.
    let before = compile(&caller_token_world(STATIC, API_KEYS), None);
    assert_eq!(mounted(&before.config), [("crm", None), ("math", None)]);
    let after = compile(&caller_token_world(FORWARD, API_KEYS), Some(&before.config));
    let outcome = route_outcome(&after, "r");
    assert_eq!(outcome.serving, Serving::Current, "the route's other mounts go on");
    let resolved = &outcome.conditions[1];
    assert_eq!(
        (resolved.type_.as_str(), resolved.status, resolved.reason.as_str()),
        ("ResolvedRefs", false, "RefNotReady")
    );
    assert_eq!(
        resolved.message,
        "spec.mounts[0].server: McpServer `crm` authenticates with forwardCallerToken, which needs the caller's JWT, \
         and this route accepts none (spec.authentication lists no jwt providers) (its last valid version is still \
         served; the route's other mounts go on)"
    );
    assert_eq!(mounted(&after.config), [("crm", None), ("math", None)]);

    // A route that drops its JWT providers keeps no mount it cannot serve.
    let dropped = compile(&caller_token_world(FORWARD, API_KEYS), Some(&with_jwts.config));
    assert_eq!(mounted(&dropped.config), [("math", None)]);
    assert!(
        route_outcome(&dropped, "r").conditions[1].message.ends_with("(the route's other mounts go on without it)")
    );
}

fn compat_route(report: bool, mounts: Vec<Mount>) -> McpRoute {
    let mut route = mk_route("r", mounts);
    route.spec.compatibility = vec![Provider::OpenAi, Provider::Anthropic, Provider::Gemini];
    route.spec.incompatible_tool_names = report.then_some(IncompatibleToolNames::Report);
    route
}

fn condition<'a>(outcome: &'a Outcome, type_: &str) -> Option<&'a crate::outcome::Verdict> {
    outcome.conditions.iter().find(|c| c.type_ == type_)
}

#[test]
fn a_profile_lists_each_shortened_name_and_is_carried_into_the_config() {
    let long = format!("{}_tool", "x".repeat(70));
    let inputs = Inputs {
        servers: vec![mk_server("a")],
        routes: vec![compat_route(false, vec![mk_mount("a", None)])],
        discovered: discovered(&[("a", &["search", "repo.list", &long])]),
        ..Default::default()
    };
    let compiled = compile(&inputs, None);
    let outcome = route_outcome(&compiled, "r");
    let compatible = condition(outcome, condition::COMPATIBLE).expect("a Compatible condition");
    assert_eq!((compatible.status, compatible.reason.as_str()), (true, reason::NAMES_SHORTENED));
    let dotted = crate::compat::short_name("a_repo.list");
    assert!(
        compatible.message.starts_with("2 tool name(s) break a rule of openai, anthropic, gemini"),
        "{compatible:?}"
    );
    assert!(compatible.message.contains(&format!("`a_repo.list` → `{dotted}`")), "{compatible:?}");
    assert!(!compatible.message.contains("`a_search`"), "valid names are not listed: {compatible:?}");
    assert!(outcome.is_ok(), "{outcome:?}");
    let profile = compiled.config.routes[0].compatibility.as_ref().expect("the profile is in the config");
    assert_eq!(profile.providers, [Provider::OpenAi, Provider::Anthropic, Provider::Gemini]);
    assert!(!profile.report);
}

#[test]
fn a_profile_naming_openai_says_when_chat_completions_cannot_take_every_tool() {
    let names: Vec<String> = (0..129).map(|i| format!("t{i}")).collect();
    let compatible = |count: usize, providers: Vec<Provider>| {
        let tools: Vec<&str> = names[..count].iter().map(String::as_str).collect();
        let mut route = compat_route(false, vec![mk_mount("a", None)]);
        route.spec.compatibility = providers;
        let inputs = Inputs {
            servers: vec![mk_server("a")],
            routes: vec![route],
            discovered: discovered(&[("a", &tools)]),
            ..Default::default()
        };
        let compiled = compile(&inputs, None);
        condition(route_outcome(&compiled, "r"), condition::COMPATIBLE).expect("a Compatible condition").message.clone()
    };
    assert_eq!(
        compatible(129, vec![Provider::OpenAi]),
        "every client-visible tool name meets the rules of openai. OpenAI's Chat Completions takes at most 128 \
         tools in one request and this route serves 129: its agents need the Responses API, or a part of the tools \
         (authorization or a mount's `tools` filter)"
    );
    assert_eq!(compatible(128, vec![Provider::OpenAi]), "every client-visible tool name meets the rules of openai");
    assert_eq!(
        compatible(129, vec![Provider::Anthropic, Provider::Gemini]),
        "every client-visible tool name meets the rules of anthropic, gemini"
    );
}

#[test]
fn under_report_the_status_names_each_tool_left_out_and_why() {
    let inputs = Inputs {
        servers: vec![mk_server("a")],
        routes: vec![compat_route(true, vec![mk_mount("a", None)])],
        discovered: discovered(&[("a", &["search", "repo.list"])]),
        ..Default::default()
    };
    let compiled = compile(&inputs, None);
    let outcome = route_outcome(&compiled, "r");
    let partial = condition(outcome, condition::PARTIALLY_INVALID).expect("PartiallyInvalid");
    assert_eq!((partial.status, partial.reason.as_str()), (true, reason::TOOLS_LEFT_OUT));
    assert!(partial.message.contains("1 tool(s) left out"), "{partial:?}");
    assert!(
        partial.message.contains("tool name `a_repo.list`") && partial.message.contains("openai requires"),
        "{partial:?}"
    );
    assert!(!outcome.is_ok(), "a left-out tool is never silent");
    assert_eq!(outcome.serving, Serving::Current, "the route's other tools go on");
    assert!(compiled.config.routes[0].compatibility.as_ref().is_some_and(|p| p.report));
}

#[test]
fn a_short_form_that_is_another_tools_name_is_a_collision() {
    let short = crate::compat::short_name("a_repo.list");
    let unprefixed = short.strip_prefix("a_").expect("the short form keeps the prefix").to_owned();
    let inputs = Inputs {
        servers: vec![mk_server("a")],
        routes: vec![compat_route(false, vec![mk_mount("a", None)])],
        discovered: discovered(&[("a", &["repo.list", &unprefixed])]),
        ..Default::default()
    };
    let compiled = compile(&inputs, None);
    let outcome = route_outcome(&compiled, "r");
    assert_eq!(outcome.conditions[0].reason, reason::NAME_COLLISION, "{outcome:?}");
    let expected = format!("tool `{short}` is served as `{short}`, which is also how tool `a_repo.list`");
    assert!(outcome.conditions[0].message.contains(&expected), "{outcome:?}");
    assert!(compiled.config.routes.is_empty());
}

#[test]
fn a_profile_without_known_tools_says_the_gateways_apply_it_and_a_mode_without_one_is_invalid() {
    let inputs = Inputs {
        servers: vec![mk_server("a")],
        routes: vec![compat_route(false, vec![mk_mount("a", None)])],
        ..Default::default()
    };
    let compiled = compile(&inputs, None);
    let compatible = condition(route_outcome(&compiled, "r"), condition::COMPATIBLE).expect("Compatible").clone();
    assert_eq!(compatible.reason, reason::COMPATIBLE);
    assert!(compatible.message.contains("not known yet"), "{compatible:?}");

    let mut route = mk_route("r", vec![mk_mount("a", None)]);
    route.spec.incompatible_tool_names = Some(IncompatibleToolNames::Report);
    let inputs = Inputs { servers: vec![mk_server("a")], routes: vec![route], ..Default::default() };
    let outcome = route_outcome(&compile(&inputs, None), "r").clone();
    assert_eq!(outcome.conditions[0].reason, reason::INVALID);
    assert!(
        outcome.conditions[0]
            .message
            .contains("spec.incompatibleToolNames: incompatibleToolNames is only meaningful with compatibility"),
        "{outcome:?}"
    );
    assert!(condition(&outcome, condition::COMPATIBLE).is_none());
}
