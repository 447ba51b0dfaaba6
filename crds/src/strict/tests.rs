use std::collections::BTreeMap;

use super::*;

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("test YAML parses")
}

fn mk_route(spec: &str) -> Value {
    yaml(&format!(
        "apiVersion: manifold.dev/v1alpha1\nkind: McpRoute\nmetadata: {{name: r, namespace: acme}}\nspec: {spec}\n"
    ))
}

fn mk_server(spec: &str) -> Value {
    yaml(&format!(
        "apiVersion: manifold.dev/v1alpha1\nkind: McpServer\nmetadata: {{name: s, namespace: acme}}\nspec: {spec}\n"
    ))
}

fn paths(kind: Kind, object: &Value) -> Vec<String> {
    unknown_fields(kind, object).into_iter().map(|f| f.path).collect()
}

const GOOD_ROUTE: &str = "{authentication: {allowAnonymous: true}, mounts: [{server: math}]}";

#[test]
fn a_correct_object_has_no_unknown_field() {
    let route = mk_route(
        "{authentication: {allowAnonymous: true, jwt: [{issuer: i, audiences: [a], jwks: {uri: 'https://i/k'}}]},
          authorization: {rules: [{effect: Allow, claims: {team: a}, tools: ['*']}]},
          mounts: [{server: math, prefix: m, rename: {add: plus}, tools: {include: ['*']}}], path: /x}",
    );
    assert_eq!(paths(Kind::McpRoute, &route), Vec::<String>::new());
    let mut with_status = route.clone();
    with_status["status"] = yaml("{path: /x, tools: 3, conditions: []}");
    assert_eq!(paths(Kind::McpRoute, &with_status), Vec::<String>::new());
    assert!(problem(&[]).is_none());
}

#[test]
fn a_misspelt_spec_field_is_named() {
    let route =
        mk_route("{authentication: {allowAnonymous: true}, mounts: [{server: math}], authorizaton: {rules: []}}");
    assert_eq!(
        unknown_fields(Kind::McpRoute, &route),
        [UnknownField { path: "spec.authorizaton".into(), suggestion: Some("authorization".into()) }]
    );
    let problem = problem(&unknown_fields(Kind::McpRoute, &route)).expect("a problem");
    assert_eq!(problem.field, "spec.authorizaton");
    assert_eq!(problem.message, r#"unknown field "spec.authorizaton" (did you mean "authorization"?)"#);
}

#[test]
fn a_field_of_a_list_item_is_named_with_its_index() {
    let route = mk_route(
        "{authentication: {allowAnonymous: true}, mounts: [{server: a}, {server: b, prefx: m, tools: {inclde: [x]}}]}",
    );
    assert_eq!(paths(Kind::McpRoute, &route), ["spec.mounts[1].prefx", "spec.mounts[1].tools.inclde"]);
}

#[test]
fn map_keys_are_free_and_map_values_are_checked() {
    let server = mk_server(
        "{openapi: {url: 'http://api/openapi.json', operations: {listPets: {name: pets, nme: x}, getPet: {tags: [a]}}}}",
    );
    assert_eq!(
        unknown_fields(Kind::McpServer, &server),
        [UnknownField { path: "spec.openapi.operations.listPets.nme".into(), suggestion: Some("name".into()) }]
    );
    // `rename` and `claims` map to strings: any key, no field below.
    let route = mk_route(
        "{authentication: {allowAnonymous: true}, mounts: [{server: a, rename: {anything: at-all}}],
          authorization: {rules: [{effect: Allow, claims: {any.claim: v}}]}}",
    );
    assert_eq!(paths(Kind::McpRoute, &route), Vec::<String>::new());
}

#[test]
fn metadata_is_checked_against_object_meta() {
    let mut route = mk_route(GOOD_ROUTE);
    route["metadata"] = yaml(
        "{name: r, namespace: acme, lables: {a: b}, labels: {a: b}, annotations: {x: y}, generation: 2,
          ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: c, uid: u, controler: true}],
          managedFields: [{manager: kubectl, operation: Apply, fieldsV1: {'f:spec': {'f:mounts': {}}}}],
          finalizers: [f], resourceVersion: '1', uid: u, creationTimestamp: '2024-01-01T00:00:00Z'}",
    );
    let found = unknown_fields(Kind::McpRoute, &route);
    assert_eq!(
        found,
        [
            UnknownField { path: "metadata.lables".into(), suggestion: Some("labels".into()) },
            UnknownField {
                path: "metadata.ownerReferences[0].controler".into(),
                suggestion: Some("controller".into())
            },
        ]
    );
}

#[test]
fn the_object_meta_schema_names_every_field_k8s_openapi_serializes() {
    // Every field set, none defaulted: a field added to ObjectMeta fails to compile here.
    let time = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default());
    let meta = ObjectMeta {
        annotations: Some(BTreeMap::new()),
        creation_timestamp: Some(time.clone()),
        deletion_grace_period_seconds: Some(1),
        deletion_timestamp: Some(time),
        finalizers: Some(vec![]),
        generate_name: Some("g".into()),
        generation: Some(1),
        labels: Some(BTreeMap::new()),
        managed_fields: Some(vec![]),
        name: Some("n".into()),
        namespace: Some("ns".into()),
        owner_references: Some(vec![]),
        resource_version: Some("1".into()),
        self_link: Some("/x".into()),
        uid: Some("u".into()),
    };
    let serialized = serde_json::to_value(&meta).expect("ObjectMeta serializes");
    let mut names: Vec<&str> = serialized.as_object().expect("an object").keys().map(String::as_str).collect();
    names.sort();
    let known: Vec<&str> = SCHEMAS.metadata.properties.iter().flat_map(|p| p.keys().map(String::as_str)).collect();
    assert_eq!(known, names);
    assert_eq!(names.len(), 15, "{names:?}");
}

#[test]
fn preserve_unknown_fields_keeps_unknown_keys_and_still_checks_known_ones() {
    // No schema of ours has the extension (see `the_crd_schemas_have_no_free_form_part`):
    // a schema made for the test, `free` keeping what it does not know.
    let schema: JSONSchemaProps = serde_json::from_value(serde_json::json!({
        "type": "object",
        "properties": {
            "free": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}
            },
            "strict": {"type": "object", "properties": {"a": {"type": "string"}}}
        }
    }))
    .expect("schema");
    let value = yaml("{free: {anything: {deep: 1}, known: {a: x, b: y}}, strict: {a: x, b: y}}");
    let mut found = Vec::new();
    walk(&value, Some(&schema), "spec", &mut found);
    let found: Vec<_> = found.into_iter().map(|f| f.path).collect();
    assert_eq!(found, ["spec.free.known.b", "spec.strict.b"]);
}

#[test]
fn the_crd_schemas_have_no_free_form_part() {
    // What the check relies on, recorded: if a schema gains preserve-unknown-fields or
    // anyOf/oneOf/allOf, read `walk` again (and extend the tests above).
    for (kind, schema) in [("McpServer", &SCHEMAS.server), ("McpRoute", &SCHEMAS.route)] {
        let json = serde_json::to_string(schema).expect("schema serializes");
        assert!(json.contains("\"spec\""), "{kind}: no schema");
        for word in
            ["x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource", "anyOf", "oneOf", "allOf"]
        {
            assert!(!json.contains(word), "{kind} schema has {word}");
        }
    }
}

#[test]
fn top_level_fields_other_than_type_meta_spec_and_status_are_unknown() {
    let mut route = mk_route(GOOD_ROUTE);
    route["sepc"] = yaml("{}");
    route["data"] = yaml("x");
    assert_eq!(
        unknown_fields(Kind::McpRoute, &route),
        [
            UnknownField { path: "data".into(), suggestion: None },
            UnknownField { path: "sepc".into(), suggestion: Some("spec".into()) },
        ]
    );
}

#[test]
fn several_unknown_fields_are_listed_in_the_servers_order() {
    let mut server = mk_server("{remote: {url: 'http://s/mcp', urll: x, headers: [{name: a, vaule: b}]}, zz: 1}");
    server["metadata"]["lables"] = yaml("{a: b}");
    let found = unknown_fields(Kind::McpServer, &server);
    let problem = problem(&found).expect("a problem");
    assert_eq!(problem.field, "metadata.lables");
    assert_eq!(
        problem.message,
        r#"unknown fields "metadata.lables" (did you mean "labels"?), "spec.remote.headers[0].vaule" (did you mean "value"?), "spec.remote.urll" (did you mean "url"?), "spec.zz""#
    );
}

#[test]
fn indices_sort_as_text_as_the_server_sorts_them() {
    let mounts: Vec<String> = (0..11).map(|i| format!("{{server: s{i}, prefx: p{i}}}")).collect();
    let route = mk_route(&format!("{{authentication: {{allowAnonymous: true}}, mounts: [{}]}}", mounts.join(", ")));
    let found = paths(Kind::McpRoute, &route);
    assert_eq!(found.len(), 11);
    assert_eq!(&found[..3], ["spec.mounts[0].prefx", "spec.mounts[10].prefx", "spec.mounts[1].prefx"]);
}

#[test]
fn a_value_of_the_wrong_shape_is_left_to_parsing() {
    // A scalar where an object belongs has no fields to be unknown; an object where a string
    // belongs has, as on the server.
    let route = mk_route("{authentication: {allowAnonymous: true}, mounts: typo, path: {a: 1}}");
    assert_eq!(paths(Kind::McpRoute, &route), ["spec.path.a"]);
}

#[test]
fn suggestions_are_close_names_only() {
    let known = ["authentication", "authorization", "mounts", "path"];
    assert_eq!(closest("authorizaton", known.into_iter()).as_deref(), Some("authorization"));
    assert_eq!(closest("mount", known.into_iter()).as_deref(), Some("mounts"));
    assert_eq!(closest("Path", known.into_iter()).as_deref(), Some("path"));
    assert_eq!(closest("pth", known.into_iter()).as_deref(), Some("path"));
    assert_eq!(closest("tools", known.into_iter()), None);
    assert_eq!(closest("a", known.into_iter()), None);
    assert_eq!(distance("lables", "labels"), 1);
}
