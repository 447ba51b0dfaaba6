//! Documents in, components and problems out: the cases that decide what clients see.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::json;

use super::*;
use crate::config::{ApiBody, ApiCall, ApiParameter, BodyEncoding, BodyFields, ParameterLocation, ParameterStyle};

const FIELD: &str = "spec.openapi.inline";

fn run(document: &str) -> Translated {
    translate(document, FIELD, &[], &BTreeMap::new()).unwrap()
}

fn mk_map(methods: &[HttpMethod], pattern: Option<&str>, type_: ComponentType) -> RouteMap {
    RouteMap { methods: methods.to_vec(), pattern: pattern.map(Into::into), tags: vec![], type_, mcp_tags: vec![] }
}

fn parsed(listing: &str) -> serde_json::Value {
    serde_json::from_str(listing).unwrap()
}

fn input_schema(tool: &ApiTool) -> serde_json::Value {
    parsed(&tool.listing)["inputSchema"].clone()
}

fn param(argument: &str, name: &str, location: ParameterLocation, required: bool) -> ApiParameter {
    let (style, explode) = match location {
        ParameterLocation::Path | ParameterLocation::Header => (ParameterStyle::Simple, false),
        ParameterLocation::Query | ParameterLocation::Cookie => (ParameterStyle::Form, true),
    };
    ApiParameter { argument: argument.into(), name: name.into(), location, style, explode, required }
}

const ITEMS: &str = r##"
openapi: 3.1.0
info: {title: Items, version: 0.1.0}
paths:
  /items/{item_id}:
    get:
      summary: Read Item
      operationId: read_item_items__item_id__get
      parameters:
        - {name: item_id, in: path, required: true, schema: {type: integer, title: Item Id}}
        - name: q
          in: query
          required: false
          schema:
            anyOf: [{type: string}, {type: 'null'}]
            title: Q
      responses:
        '200':
          description: Successful Response
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Item'}
  /items:
    post:
      summary: Create Item
      operationId: create_item_items_post
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Item'}
      responses:
        '200': {description: Successful Response}
  /admin/reset:
    post:
      operationId: reset_admin_reset_post
      responses:
        '204': {description: Reset}
components:
  schemas:
    Item:
      type: object
      title: Item
      required: [name, price]
      properties:
        name: {type: string, title: Name}
        price: {type: number, title: Price}
        tags: {type: array, items: {type: string}, title: Tags, default: []}
"##;

#[test]
fn fastapi_items_become_a_template_and_a_tool_and_admin_is_excluded() {
    let maps = [
        mk_map(&[HttpMethod::Get], Some(r"^/items/\{item_id\}$"), ComponentType::ResourceTemplate),
        mk_map(&[], Some("/admin/.*"), ComponentType::Exclude),
    ];
    let out = translate(ITEMS, FIELD, &maps, &BTreeMap::new()).unwrap();
    assert_eq!(out.skipped, []);
    assert_eq!(out.resources, []);

    assert_eq!(out.templates.len(), 1);
    let template = &out.templates[0];
    assert_eq!(template.uri_template, "openapi://items/{item_id}{?q}");
    assert_eq!(
        template.listing,
        r#"{"uriTemplate":"openapi://items/{item_id}{?q}","name":"read_item_items__item_id__get","description":"Read Item","mimeType":"application/json"}"#
    );
    assert_eq!(
        template.call,
        ApiCall {
            method: "GET".into(),
            path: "/items/{item_id}".into(),
            parameters: vec![
                param("item_id", "item_id", ParameterLocation::Path, true),
                param("q", "q", ParameterLocation::Query, false),
            ],
            body: None,
        }
    );

    assert_eq!(out.tools.len(), 1);
    let tool = &out.tools[0];
    assert_eq!(tool.name, "create_item_items_post");
    assert_eq!(
        tool.listing,
        concat!(
            r#"{"name":"create_item_items_post","title":"Create Item","description":"Create Item","#,
            r#""inputSchema":{"type":"object","properties":{"name":{"type":"string","title":"Name"},"#,
            r#""price":{"type":"number","title":"Price"},"#,
            r#""tags":{"type":"array","items":{"type":"string"},"title":"Tags","default":[]}},"#,
            r#""required":["name","price"]},"annotations":{"readOnlyHint":false,"idempotentHint":false}}"#
        )
    );
    assert_eq!(
        tool.call,
        ApiCall {
            method: "POST".into(),
            path: "/items".into(),
            parameters: vec![],
            body: Some(ApiBody {
                media_type: "application/json".into(),
                encoding: BodyEncoding::Json,
                required: true,
                fields: BodyFields::Properties {
                    pairs: vec![
                        ("name".into(), "name".into()),
                        ("price".into(), "price".into()),
                        ("tags".into(), "tags".into()),
                    ]
                },
            }),
        }
    );
}

#[test]
fn without_route_maps_every_operation_is_a_tool_in_document_order() {
    let out = run(ITEMS);
    let names: Vec<&str> = out.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["read_item_items__item_id__get", "create_item_items_post", "reset_admin_reset_post"]);
    let read = parsed(&out.tools[0].listing);
    assert_eq!(read["annotations"], json!({"readOnlyHint": true, "idempotentHint": true}));
    assert_eq!(read["inputSchema"]["required"], json!(["item_id"]));
}

#[test]
fn taken_argument_names_get_location_suffixes() {
    let doc = r##"
openapi: 3.0.3
paths:
  /things/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
      - {name: limit, in: query, schema: {type: integer}}
    put:
      operationId: put_thing
      parameters:
        - {name: limit, in: query, schema: {type: string}}
        - {name: id, in: query, schema: {type: integer}}
        - {name: id, in: header, schema: {type: string}}
        - {name: X-Trace, in: header, description: Trace id, schema: {type: string}}
        - {name: Authorization, in: header, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [id, name]
              properties:
                id: {type: string}
                name: {type: string, nullable: true}
                limit: {type: integer, minimum: 0, exclusiveMinimum: true}
  /bulk:
    post:
      operationId: bulk
      parameters:
        - {name: body, in: query, schema: {type: string}}
      requestBody:
        content:
          application/json:
            schema: {type: array, items: {type: integer}}
"##;
    let out = run(doc);
    assert_eq!(out.skipped, []);
    let put = &out.tools[0];
    assert_eq!(
        input_schema(put),
        json!({
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "limit": {"type": "string"},
                "id__query": {"type": "integer"},
                "id__header": {"type": "string"},
                "X-Trace": {"type": "string", "description": "Trace id"},
                "id__body": {"type": "string"},
                "name": {"type": ["string", "null"]},
                "limit__body": {"type": "integer", "exclusiveMinimum": 0},
            },
            "required": ["id", "id__body", "name"],
        })
    );
    let call = &put.call;
    assert_eq!(
        call.parameters,
        [
            param("id", "id", ParameterLocation::Path, true),
            param("limit", "limit", ParameterLocation::Query, false),
            param("id__query", "id", ParameterLocation::Query, false),
            param("id__header", "id", ParameterLocation::Header, false),
            param("X-Trace", "X-Trace", ParameterLocation::Header, false),
        ]
    );
    assert_eq!(
        call.body.as_ref().unwrap().fields,
        BodyFields::Properties {
            pairs: vec![
                ("id__body".into(), "id".into()),
                ("name".into(), "name".into()),
                ("limit__body".into(), "limit".into()),
            ]
        }
    );
    assert_eq!(parsed(&put.listing)["annotations"], json!({"readOnlyHint": false, "idempotentHint": true}));

    let bulk = &out.tools[1];
    assert_eq!(bulk.call.body.as_ref().unwrap().fields, BodyFields::Whole { argument: "body__body".into() });
    assert_eq!(
        input_schema(bulk)["properties"],
        json!({"body": {"type": "string"}, "body__body": {"type": "array", "items": {"type": "integer"}}})
    );
    assert_eq!(input_schema(bulk).get("required"), None);
}

#[test]
fn recursive_schemas_go_to_defs_once() {
    let doc = r##"
openapi: 3.1.0
paths:
  /trees:
    post:
      operationId: plant
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              properties:
                root: {$ref: '#/components/schemas/Node'}
                pair: {$ref: '#/components/schemas/A'}
                label: {$ref: '#/components/schemas/Label'}
                other: {$ref: '#/components/schemas/Label'}
components:
  schemas:
    Label: {type: string, maxLength: 10}
    Node:
      type: object
      properties:
        label: {$ref: '#/components/schemas/Label'}
        children: {type: array, items: {$ref: '#/components/schemas/Node'}}
    A:
      type: object
      properties:
        b: {$ref: '#/components/schemas/B'}
    B:
      type: object
      properties:
        a: {$ref: '#/components/schemas/A'}
"##;
    let out = run(doc);
    assert_eq!(out.skipped, []);
    let label = json!({"type": "string", "maxLength": 10});
    assert_eq!(
        input_schema(&out.tools[0]),
        json!({
            "type": "object",
            "properties": {
                "root": {"$ref": "#/$defs/Node"},
                "pair": {"$ref": "#/$defs/A"},
                "label": label,
                "other": label,
            },
            "$defs": {
                "A": {"type": "object", "properties": {"b": {"$ref": "#/$defs/B"}}},
                "B": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}},
                "Node": {
                    "type": "object",
                    "properties": {
                        "label": label,
                        "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    },
                },
            },
        })
    );
}

#[test]
fn a_body_that_is_itself_recursive_is_one_argument() {
    let doc = r##"
openapi: 3.0.0
paths:
  /nodes:
    put:
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Node'}
components:
  schemas:
    Node:
      type: object
      properties:
        next: {$ref: '#/components/schemas/Node'}
"##;
    let out = run(doc);
    assert_eq!(out.tools[0].name, "put_nodes");
    assert_eq!(out.tools[0].call.body.as_ref().unwrap().fields, BodyFields::Whole { argument: "body".into() });
    let schema = input_schema(&out.tools[0]);
    assert_eq!(schema["properties"]["body"], json!({"$ref": "#/$defs/Node"}));
    assert_eq!(schema["$defs"]["Node"]["properties"]["next"], json!({"$ref": "#/$defs/Node"}));
}

#[test]
fn dangling_and_external_refs_skip_their_operation_only() {
    let doc = r##"
openapi: 3.0.3
paths:
  /a:
    get:
      operationId: a
      parameters:
        - $ref: '#/components/parameters/Missing'
  /b:
    post:
      operationId: b
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Thing'}
  /c:
    get:
      operationId: c
      parameters:
        - {$ref: '#/components/parameters/Limit'}
  /d:
    get:
      operationId: d
      parameters:
        - {name: x, in: query, schema: {$ref: 'common.yaml#/X'}}
components:
  parameters:
    Limit: {name: limit, in: query, schema: {type: integer}}
  schemas:
    Thing:
      type: object
      properties:
        gone: {$ref: '#/components/schemas/Gone'}
"##;
    let out = run(doc);
    let names: Vec<&str> = out.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["c"]);
    let fields: Vec<&str> = out.skipped.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.openapi.inline#/paths/~1a/get/parameters/0",
            "spec.openapi.inline#/components/schemas/Thing/properties/gone",
            "spec.openapi.inline#/paths/~1d/get/parameters/0/schema",
        ]
    );
    assert!(
        out.skipped[0]
            .message
            .starts_with("GET /a is not served: `$ref` `#/components/parameters/Missing` names nothing")
    );
    assert!(out.skipped[1].message.starts_with("POST /b is not served: `$ref` `#/components/schemas/Gone`"));
    assert!(out.skipped[2].message.contains("points outside the document"), "{}", out.skipped[2].message);
}

#[test]
fn a_duplicate_name_skips_the_later_operation_and_names_both() {
    let doc = r##"
openapi: 3.0.3
paths:
  /a:
    get: {operationId: list}
  /b:
    get: {operationId: list}
  /c:
    get: {operationId: other}
"##;
    let out = run(doc);
    let names: Vec<&str> = out.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["list", "other"]);
    assert_eq!(out.skipped.len(), 1);
    assert_eq!(out.skipped[0].field, "spec.openapi.inline#/paths/~1b/get");
    let message = &out.skipped[0].message;
    assert!(message.contains("`list`") && message.contains("#/paths/~1a/get") && message.contains("#/paths/~1b/get"));
}

#[test]
fn whole_document_errors() {
    let swagger = translate("swagger: '2.0'\npaths: {}\n", FIELD, &[], &BTreeMap::new()).unwrap_err();
    assert_eq!(
        swagger,
        [Problem::new(
            FIELD,
            "Swagger 2.0 is not supported: convert it to OpenAPI 3 (for example with swagger2openapi)"
        )]
    );

    let yaml =
        translate("openapi: 3.1.0\ninfo:\n  title: x\n   version: 1\n", FIELD, &[], &BTreeMap::new()).unwrap_err();
    assert_eq!(yaml.len(), 1);
    assert_eq!(yaml[0].field, FIELD);
    assert!(yaml[0].message.contains("line 4"), "{}", yaml[0].message);

    let other = translate(r#"{"openapi": "2.5.0"}"#, FIELD, &[], &BTreeMap::new()).unwrap_err();
    assert!(other[0].message.contains("OpenAPI 2.5.0 is not supported"), "{}", other[0].message);
    for (text, expected) in
        [("", "not a mapping"), ("[1]", "not a mapping"), ("a: 1\n---\nb: 2\n", "more than one document")]
    {
        let problems = translate(text, FIELD, &[], &BTreeMap::new()).unwrap_err();
        assert!(problems[0].message.contains(expected), "{text:?}: {}", problems[0].message);
    }
    let none = translate("info: {title: x}\n", FIELD, &[], &BTreeMap::new()).unwrap_err();
    assert!(none[0].message.contains("no `openapi` field"), "{}", none[0].message);
}

#[test]
fn an_invalid_pattern_is_an_error_of_its_route_map() {
    let maps = [mk_map(&[], Some("^/ok$"), ComponentType::Tool), mk_map(&[], Some("/items/("), ComponentType::Exclude)];
    let problems = translate(ITEMS, FIELD, &maps, &BTreeMap::new()).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field, "spec.openapi.routeMaps[1].pattern");
    assert!(problems[0].message.starts_with("not a valid regular expression"), "{}", problems[0].message);
}

#[test]
fn route_maps_match_method_pattern_and_tags_first_wins() {
    let doc = r##"
openapi: 3.0.3
paths:
  /users:
    get: {operationId: list_users, tags: [users, admin]}
    post: {operationId: create_user, tags: [users]}
  /orders:
    get: {operationId: list_orders, tags: [orders]}
"##;
    let mut tagged = mk_map(&[], None, ComponentType::Exclude);
    tagged.tags = vec!["admin".into()];
    let maps = [tagged, mk_map(&[HttpMethod::Get], Some("ord"), ComponentType::Resource)];
    let out = translate(doc, FIELD, &maps, &BTreeMap::new()).unwrap();
    let names: Vec<&str> = out.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["create_user"]);
    assert_eq!(out.resources.len(), 1);
    assert_eq!(out.resources[0].uri, "openapi://orders");
    assert_eq!(
        out.resources[0].listing,
        r#"{"uri":"openapi://orders","name":"list_orders","mimeType":"application/json"}"#
    );
}

#[test]
fn resources_refuse_what_a_read_cannot_send() {
    let doc = r##"
openapi: 3.0.3
paths:
  /items/{id}:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
  /search:
    get:
      parameters: [{name: q, in: query, required: true, schema: {type: string}}]
  /me:
    get:
      parameters: [{name: X-User, in: header, required: true, schema: {type: string}}]
      responses:
        '200':
          content:
            text/plain: {schema: {type: string}}
  /report:
    get:
      responses:
        default:
          $ref: '#/components/responses/Csv'
    post: {}
components:
  responses:
    Csv:
      description: A report
      content:
        text/csv: {}
"##;
    let maps = [mk_map(&[], None, ComponentType::Resource)];
    let out = translate(doc, FIELD, &maps, &BTreeMap::new()).unwrap();
    assert_eq!(out.resources.len(), 1);
    assert_eq!(out.resources[0].uri, "openapi://report");
    assert_eq!(parsed(&out.resources[0].listing)["mimeType"], "text/csv");
    let skipped: Vec<(&str, &str)> = out.skipped.iter().map(|p| (p.field.as_str(), p.message.as_str())).collect();
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    assert_eq!(skipped[0].0, "spec.openapi.inline#/paths/~1items~1{id}/get");
    assert!(skipped[0].1.contains("map it to ResourceTemplate"), "{}", skipped[0].1);
    assert!(skipped[1].1.contains("query parameter `q`"), "{}", skipped[1].1);
    assert!(skipped[2].1.contains("header parameter `X-User`") && skipped[2].1.contains("Tool"), "{}", skipped[2].1);
    assert_eq!(skipped[3].0, "spec.openapi.inline#/paths/~1report/post");
    assert!(skipped[3].1.starts_with("POST /report is not served: only GET operations"), "{}", skipped[3].1);
}

#[test]
fn templates_take_path_and_query_variables() {
    let doc = r##"
openapi: 3.1.0
paths:
  /repos/{owner}/{repo-name}/issues:
    get:
      operationId: issues
      parameters:
        - {name: owner, in: path, required: true, schema: {type: string}}
        - {name: state, in: query, schema: {type: string}}
        - {name: X-Optional, in: header, schema: {type: string}}
  /clash/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - {name: id, in: query, schema: {type: string}}
"##;
    let maps = [mk_map(&[], None, ComponentType::ResourceTemplate)];
    let out = translate(doc, FIELD, &maps, &BTreeMap::new()).unwrap();
    assert_eq!(out.templates.len(), 1);
    let template = &out.templates[0];
    assert_eq!(template.uri_template, "openapi://repos/{owner}/{repo%2Dname}/issues{?state}");
    let arguments: Vec<(&str, &str)> =
        template.call.parameters.iter().map(|p| (p.argument.as_str(), p.name.as_str())).collect();
    assert_eq!(arguments, [("owner", "owner"), ("repo%2Dname", "repo-name"), ("state", "state")]);
    assert_eq!(out.skipped.len(), 1);
    assert!(out.skipped[0].message.contains("template variable `id`"), "{}", out.skipped[0].message);
}

#[test]
fn openapi_31_type_arrays_pass_through() {
    let doc = r##"
openapi: 3.1.0
paths:
  /notes:
    get:
      operationId: notes
      parameters:
        - name: since
          in: query
          description: Only notes after this time.
          schema: {type: [string, "null"], format: date-time, description: ignored}
"##;
    let out = run(doc);
    assert_eq!(
        input_schema(&out.tools[0])["properties"]["since"],
        json!({"type": ["string", "null"], "format": "date-time", "description": "Only notes after this time."})
    );
}

#[test]
fn form_bodies_are_sent_as_forms_and_json_is_preferred() {
    let doc = r##"
openapi: 3.0.3
paths:
  /token:
    post:
      operationId: token
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              required: [grant_type]
              properties:
                grant_type: {type: string}
                scope: {type: string}
  /both:
    post:
      operationId: both
      requestBody:
        content:
          application/x-www-form-urlencoded: {schema: {type: object, properties: {a: {type: string}}}}
          application/vnd.api+json: {schema: {type: object, properties: {b: {type: string}}}}
  /upload:
    post:
      operationId: upload
      requestBody:
        content:
          multipart/form-data: {schema: {type: object}}
"##;
    let out = run(doc);
    assert_eq!(
        out.tools[0].call.body,
        Some(ApiBody {
            media_type: "application/x-www-form-urlencoded".into(),
            encoding: BodyEncoding::Form,
            required: true,
            fields: BodyFields::Properties {
                pairs: vec![("grant_type".into(), "grant_type".into()), ("scope".into(), "scope".into())]
            },
        })
    );
    assert_eq!(input_schema(&out.tools[0])["required"], json!(["grant_type"]));
    let both = out.tools[1].call.body.as_ref().unwrap();
    assert_eq!((both.media_type.as_str(), both.encoding), ("application/vnd.api+json", BodyEncoding::Json));
    assert_eq!(out.tools.len(), 2);
    assert_eq!(out.skipped[0].field, "spec.openapi.inline#/paths/~1upload/post/requestBody/content");
    assert!(out.skipped[0].message.contains("`multipart/form-data`"), "{}", out.skipped[0].message);
}

#[test]
fn overrides_rename_describe_and_tag() {
    let doc = r##"
openapi: 3.0.3
paths:
  /items:
    get:
      operationId: list items!
      summary: List items
      description: All of them.
      deprecated: true
  /old:
    get:
      operationId: old
      summary: Old
      description: Gone soon.
      deprecated: true
"##;
    let mut map = mk_map(&[], None, ComponentType::Tool);
    map.mcp_tags = vec!["a".into(), "c".into()];
    let overrides = BTreeMap::from([
        (
            "list items!".to_string(),
            OperationOverride {
                name: Some("fetch_items".into()),
                description: Some("Custom".into()),
                tags: vec!["a".into(), "b".into()],
            },
        ),
        ("nope".to_string(), OperationOverride::default()),
    ]);
    let out = translate(doc, FIELD, &[map], &overrides).unwrap();
    let first = parsed(&out.tools[0].listing);
    assert_eq!(out.tools[0].name, "fetch_items");
    assert_eq!(first["name"], "fetch_items");
    assert_eq!(first["title"], "List items");
    assert_eq!(first["description"], "Custom");
    assert_eq!(first["_meta"], json!({"manifold/tags": ["a", "c", "b"], "deprecated": true}));
    let second = parsed(&out.tools[1].listing);
    assert_eq!(second["description"], "(Deprecated) Old\n\nGone soon.");
    assert_eq!(second["_meta"], json!({"manifold/tags": ["a", "c"], "deprecated": true}));
    assert_eq!(
        out.skipped,
        [Problem::new(
            "spec.openapi.operations.nope",
            "no operation has operationId `nope`: fix the key or remove the override"
        )]
    );
}

#[test]
fn servers_url_fills_in_variable_defaults() {
    let doc = r##"
openapi: 3.0.3
servers:
  - url: https://{region}.example.com/{version}
    variables:
      region: {default: eu}
      version: {default: v2, enum: [v1, v2]}
paths: {}
"##;
    assert_eq!(run(doc).servers_url.as_deref(), Some("https://eu.example.com/v2"));
    assert_eq!(run("openapi: 3.1.0\n").servers_url, None);
}

#[test]
fn exponential_and_deep_schemas_are_refused_quickly() {
    let mut doc = String::from("openapi: 3.1.0\ncomponents:\n  schemas:\n    L0: {type: string}\n");
    for i in 1..40 {
        let props: Vec<String> = (0..8).map(|p| format!("p{p}: {{$ref: '#/components/schemas/L{}'}}", i - 1)).collect();
        doc.push_str(&format!("    L{i}: {{type: object, properties: {{{}}}}}\n", props.join(", ")));
    }
    for i in 0..200 {
        doc.push_str(&format!("    D{i}: {{$ref: '#/components/schemas/D{}'}}\n", i + 1));
    }
    doc.push_str("    D200: {type: string}\n");
    doc.push_str(concat!(
        "paths:\n",
        "  /wide:\n    post:\n      operationId: wide\n      requestBody:\n        content:\n",
        "          application/json: {schema: {$ref: '#/components/schemas/L39'}}\n",
        "  /deep:\n    get:\n      operationId: deep\n      parameters:\n",
        "        - {name: d, in: query, schema: {$ref: '#/components/schemas/D0'}}\n",
        "  /fine:\n    get:\n      operationId: fine\n",
    ));
    let nested = format!("{}{}", "[".repeat(110), "]".repeat(110));
    doc.push_str(&format!(
        "  /nested:\n    get:\n      parameters:\n        - {{name: n, in: query, schema: {{default: {nested}}}}}\n"
    ));
    let started = Instant::now();
    let out = run(&doc);
    assert!(started.elapsed().as_secs() < 2, "took {:?}", started.elapsed());
    let names: Vec<&str> = out.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["fine"]);
    assert!(out.skipped[0].message.contains("more than 1024 KiB"), "{}", out.skipped[0].message);
    assert!(out.skipped[1].message.contains("deeper than"), "{}", out.skipped[1].message);
    assert_eq!(out.skipped[2].field, format!("{FIELD}#/paths/~1nested/get/parameters/0/schema/default"));
}

#[test]
fn openapi_30_keywords_become_json_schema() {
    let doc = r##"
openapi: 3.0.3
paths:
  /pets:
    post:
      operationId: add_pet
      requestBody:
        content:
          application/json:
            schema:
              type: object
              discriminator: {propertyName: kind, mapping: {cat: '#/components/schemas/Cat'}}
              properties:
                kind: {type: string, enum: [cat, dog], nullable: true}
                age: {type: integer, maximum: 30, exclusiveMaximum: true, minimum: 0, exclusiveMinimum: false}
                name: {type: string, nullable: false, x-order: 1}
"##;
    let out = run(doc);
    assert_eq!(
        input_schema(&out.tools[0])["properties"],
        json!({
            "kind": {"type": ["string", "null"], "enum": ["cat", "dog", null]},
            "age": {"type": "integer", "exclusiveMaximum": 30, "minimum": 0},
            "name": {"type": "string", "x-order": 1},
        })
    );
}

#[test]
fn a_document_stops_making_components_past_its_total() {
    let description = "d".repeat(1000);
    let mut doc =
        String::from("openapi: 3.1.0\ncomponents:\n  schemas:\n    Big:\n      type: object\n      properties:\n");
    for i in 0..900 {
        doc.push_str(&format!("        p{i}: {{type: string, description: {description}}}\n"));
    }
    doc.push_str("paths:\n");
    for i in 0..20 {
        doc.push_str(&format!(
            "  /big{i}:\n    post:\n      requestBody:\n        content:\n          application/json: {{schema: {{$ref: '#/components/schemas/Big'}}}}\n"
        ));
    }
    let out = run(&doc);
    let total: usize = out.tools.iter().map(|t| t.listing.len()).sum();
    assert!(total <= MAX_TOTAL, "{total}");
    assert_eq!(out.tools.len(), MAX_TOTAL / out.tools[0].listing.len());
    assert_eq!(out.skipped.len(), 1, "{:?}", out.skipped);
    assert_eq!(out.skipped[0].field, format!("{FIELD}#/paths/~1big{}/post", out.tools.len()));
    assert!(out.skipped[0].message.contains("16 MiB"), "{}", out.skipped[0].message);
}

/// Times the GitHub REST API description (`OPENAPI_BENCH_DOC=.../api.github.com.json cargo
/// test -p manifold-api --release -- --ignored --nocapture translates_a_large_document`).
#[test]
#[ignore = "needs a large document on disk"]
fn translates_a_large_document() {
    let path = std::env::var("OPENAPI_BENCH_DOC").expect("OPENAPI_BENCH_DOC names a document");
    let text = std::fs::read_to_string(path).unwrap();
    let started = Instant::now();
    let out = run(&text);
    let elapsed = started.elapsed();
    let bytes: usize = out.tools.iter().map(|t| t.listing.len()).sum();
    println!(
        "{} tools ({} KiB of listings), {} skipped, in {elapsed:?}",
        out.tools.len(),
        bytes >> 10,
        out.skipped.len()
    );
    for problem in out.skipped.iter().take(10) {
        println!("  {problem}");
    }
}
