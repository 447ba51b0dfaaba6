//! OpenAPI sub-servers: a real FastAPI app's generated document mounted with route maps and
//! driven through a route by the Python `mcp` client; two APIs and a remote MCP server on one
//! route; what real APIs do on the wire (query styles, headers, forms, text, binary,
//! redirects, failures, oversized responses); documents written by others (a 3.0 and a 3.1
//! example of `@readme/oas-examples`, the GitHub REST API description) compiled and served;
//! and bad documents reported by place while the route's other mounts go on.

use base64::Engine;
use manifold_e2e::peers::{Sdk, Upstream, run_client, text, tool_names};
use manifold_e2e::raw::RawSession;
use manifold_e2e::stub::{Reply, Stub};
use manifold_e2e::{LocalStack, repo_root, yaml};
use serde_json::{Value, json};

/// The items app with the guide's route maps: GET with a path parameter → ResourceTemplate,
/// POST → Tool, `/admin/` → Exclude.
fn items_server(api: &Upstream) -> String {
    yaml::openapi_server(
        "items",
        &format!(
            r#"
            url: {}
            routeMaps:
              - methods: [GET]
                pattern: '.*\{{.*\}}.*'
                type: ResourceTemplate
              - methods: [POST]
                type: Tool
              - pattern: '^/admin/'
                type: Exclude
            "#,
            api.url("/openapi.json")
        ),
    )
}

fn items(list: &Value, field: &str) -> Vec<String> {
    let mut names: Vec<String> =
        list["items"].as_array().unwrap().iter().map(|i| i[field].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fastapi_app_is_served_as_its_route_maps_say() {
    let api = Upstream::rest_api("items").await;
    let stack = LocalStack::start(&(items_server(&api) + &yaml::route("shop", "mounts: [{server: items}]"))).await;
    let ops = json!([
        {"op": "list", "kind": "tools"},
        {"op": "list", "kind": "templates"},
        {"op": "list", "kind": "resources"},
        {"op": "call", "name": "items_create_item_items_post", "arguments": {"name": "Widget", "price": 2.5}},
        {"op": "read", "uri": "openapi://items/items/2"},
        {"op": "call", "name": "items_create_item_items_post", "arguments": {"name": "Cheap", "price": "free"}},
        {"op": "read", "uri": "openapi://items/items/99"},
        {"op": "call", "name": "items_create_item_items_post", "arguments": {"price": 1}},
    ]);
    let results = run_client(&stack.url("/acme/shop/mcp"), Sdk::Mcp, ops).await;

    // Exactly the POST as a tool and the GET as a template: the admin paths are excluded.
    assert_eq!(items(&results[0], "name"), ["items_create_item_items_post"], "{}", results[0]);
    assert_eq!(items(&results[1], "uriTemplate"), ["openapi://items/items/{item_id}"], "{}", results[1]);
    assert_eq!(results[2]["items"], json!([]), "no fixed resources");
    let tool = &results[0]["items"][0];
    let schema = &tool["inputSchema"];
    assert_eq!(schema["required"], json!(["name", "price"]), "the Pydantic model's required fields: {tool}");
    assert_eq!(schema["properties"]["price"]["type"], "number", "{tool}");

    // Calling: the API's JSON answer is structured content and text.
    let created = &results[3];
    assert_eq!(created["isError"], false, "{created}");
    assert_eq!(created["structuredContent"]["status"], "created", "{created}");
    assert_eq!(created["structuredContent"]["item_id"], 2, "{created}");
    // Reading through the template.
    let read = &results[4];
    let contents = &read["contents"][0];
    assert_eq!(contents["uri"], "openapi://items/items/2", "{read}");
    assert_eq!(contents["mimeType"], "application/json", "{read}");
    let item: Value = serde_json::from_str(contents["text"].as_str().unwrap()).unwrap();
    assert_eq!(item, json!({"item_id": 2, "name": "Widget", "price": 2.5, "description": null}));
    // An invalid argument: FastAPI's 422 detail comes back as a tool error.
    let invalid = &results[5];
    assert_eq!(invalid["isError"], true, "{invalid}");
    let message = text(invalid);
    assert!(message.starts_with("HTTP 422 Unprocessable Entity: "), "{message}");
    assert!(message.contains("\"price\"") && message.contains("valid number"), "the API's own detail: {message}");
    // A missing item: the API's 404 is the resource's.
    assert_eq!(results[6]["error"]["code"], -32002, "{}", results[6]);
    assert!(results[6]["error"]["message"].as_str().unwrap().contains("no item 99"), "{}", results[6]);
    // A missing required body field is the API's to judge (422), not a gateway crash.
    assert_eq!(results[7]["isError"], true, "{}", results[7]);
    assert!(text(&results[7]).contains("\"name\""), "{}", results[7]);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_apis_and_an_mcp_server_share_one_route_and_one_session() {
    let (items_api, orders_api, alpha) =
        tokio::join!(Upstream::rest_api("items"), Upstream::rest_api("orders"), Upstream::start("alpha"));
    let orders = yaml::openapi_server("orders", &format!("url: {}", orders_api.url("/openapi.json")));
    let manifests = items_server(&items_api)
        + &orders
        + &yaml::server("alpha", &alpha.mcp_url(), "")
        + &yaml::route(
            "gateway",
            "mounts: [{server: items, prefix: users}, {server: orders, prefix: products}, {server: alpha, prefix: tools}]",
        );
    let stack = LocalStack::start(&manifests).await;
    let ops = json!([
        {"op": "list_tools"},
        {"op": "call", "name": "users_create_item_items_post", "arguments": {"name": "Lamp", "price": 30}},
        {"op": "call", "name": "products_place_order", "arguments": {"item_id": 2, "quantity": 3}},
        {"op": "call", "name": "products_list_orders", "arguments": {}},
        {"op": "call", "name": "tools_echo", "arguments": {"text": "hi"}},
        {"op": "read", "uri": "openapi://users/items/2"},
    ]);
    let results = run_client(&stack.url("/acme/gateway/mcp"), Sdk::Mcp, ops).await;
    let names = tool_names(&results[0]);
    for expected in ["users_create_item_items_post", "products_place_order", "products_list_orders", "tools_echo"] {
        assert!(names.contains(&expected.to_owned()), "{expected} in {names:?}");
    }
    assert_eq!(results[1]["structuredContent"]["item_id"], 2, "{}", results[1]);
    assert_eq!(results[2]["structuredContent"], json!({"order_id": 1, "order": {"item_id": 2, "quantity": 3}}));
    // A JSON array answer is structured content under `result`.
    assert_eq!(results[3]["structuredContent"]["result"], json!([{"order_id": 1, "item_id": 2, "quantity": 3}]));
    assert_eq!(text(&results[4]), "alpha:hi");
    let lamp: Value = serde_json::from_str(results[5]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(lamp["name"], "Lamp");
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_follow_the_wire_rules_of_a_real_api() {
    let api = Upstream::rest_api("kitchen").await;
    let manifests = yaml::openapi_server(
        "kitchen",
        &format!(
            r#"
            url: {}
            headers:
              - {{name: X-Tenant, value: acme}}
            "#,
            api.url("/openapi.json")
        ),
    ) + &yaml::route("kitchen", "mounts: [{server: kitchen}]");
    let stack = LocalStack::start(&manifests).await;
    let session = RawSession::initialize(&stack.url("/acme/kitchen/mcp")).await;
    let call = |name: &'static str, arguments: Value| {
        let session = &session;
        async move {
            let answer = session.request("tools/call", json!({"name": name, "arguments": arguments})).await;
            answer.body["result"].clone()
        }
    };

    let found =
        call("kitchen_search", json!({"q": "lamp & co", "tags": ["a b", "c"], "limit": 3, "x-request-id": "req-7"}))
            .await;
    assert_eq!(
        found["structuredContent"],
        json!({"q": "lamp & co", "tags": ["a b", "c"], "limit": 3, "request_id": "req-7"}),
        "query values encoded, arrays exploded, the header parameter sent: {found}"
    );
    let file = call("kitchen_get_file", json!({"name": "b c?#.txt"})).await;
    assert_eq!(file["structuredContent"]["name"], "b c?#.txt", "a path parameter is percent-encoded: {file}");
    let login = call("kitchen_login", json!({"username": "ann", "password": "s3cret"})).await;
    assert_eq!(login["structuredContent"], json!({"user": "ann", "password_length": 6}), "a form body: {login}");
    let readme = call("kitchen_readme", json!({})).await;
    assert_eq!((text(&readme), readme.get("structuredContent")), ("Kitchen API: see /docs", None), "{readme}");
    let logo = call("kitchen_logo", json!({})).await;
    let resource = &logo["content"][0]["resource"];
    assert_eq!(
        (logo["content"][0]["type"].as_str(), resource["mimeType"].as_str()),
        (Some("resource"), Some("image/png"))
    );
    assert_eq!(resource["blob"], "iVBORwD/", "the bytes, base64: {logo}");
    let moved = call("kitchen_moved", json!({})).await;
    assert_eq!(text(&moved), "Kitchen API: see /docs", "a redirect within the API is followed");
    let elsewhere = call("kitchen_elsewhere", json!({})).await;
    assert_eq!(elsewhere["isError"], true, "{elsewhere}");
    assert!(text(&elsewhere).contains("another origin"), "{elsewhere}");
    let broken = call("kitchen_broken", json!({})).await;
    assert_eq!(broken["isError"], true);
    assert_eq!(text(&broken), r#"HTTP 503 Service Unavailable: {"detail":"the kitchen is closed"}"#);
    let huge = call("kitchen_huge", json!({})).await;
    assert_eq!(huge["isError"], true, "{}", &huge.to_string()[..200.min(huge.to_string().len())]);
    assert!(text(&huge).contains("exceeded"), "{}", text(&huge));
    let missing = call("kitchen_search", json!({"limit": 3})).await;
    assert_eq!((missing["isError"].as_bool(), text(&missing)), (Some(true), "missing required argument `q`"));
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_come_from_secrets() {
    let api = Upstream::rest_api("kitchen").await;
    let document = api.url("/openapi.json");
    let secret = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: kitchen, namespace: acme}\n\
                  stringData: {token: tok-123, key: key-456, username: ann, password: 's3cret'}\n";
    let server = |name: &str, auth: &str| {
        yaml::openapi_server(
            name,
            &format!(
                "url: {document}\nauth: {auth}\nheaders: [{{name: X-Tenant, valueFrom: {{secretKeyRef: {{name: kitchen, key: username}}}}}}]"
            ),
        )
    };
    let manifests = secret.to_owned()
        + &server("bearer", "{bearer: {secretKeyRef: {name: kitchen, key: token}}}")
        + &server("header-key", "{apiKey: {in: header, name: X-Api-Key, secretKeyRef: {name: kitchen, key: key}}}")
        + &server("query-key", "{apiKey: {in: query, name: api_key, secretKeyRef: {name: kitchen, key: key}}}")
        + &server("basic", "{basic: {secretRef: {name: kitchen}}}")
        + &yaml::route(
            "creds",
            "mounts: [{server: bearer}, {server: header-key}, {server: query-key}, {server: basic}]",
        );
    let stack = LocalStack::start(&manifests).await;
    let session = RawSession::initialize(&stack.url("/acme/creds/mcp")).await;
    let whoami = |server: &'static str| {
        let session = &session;
        async move {
            let name = format!("{server}_whoami");
            session.request("tools/call", json!({"name": name, "arguments": {}})).await.body["result"]["structuredContent"].clone()
        }
    };
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("ann:s3cret"));
    assert_eq!(
        whoami("bearer").await,
        json!({"authorization": "Bearer tok-123", "x_api_key": null, "x_tenant": "ann", "query": {}})
    );
    assert_eq!(
        whoami("header-key").await,
        json!({"authorization": null, "x_api_key": "key-456", "x_tenant": "ann", "query": {}})
    );
    assert_eq!(
        whoami("query-key").await,
        json!({"authorization": null, "x_api_key": null, "x_tenant": "ann", "query": {"api_key": "key-456"}})
    );
    assert_eq!(
        whoami("basic").await,
        json!({"authorization": basic, "x_api_key": null, "x_tenant": "ann", "query": {}})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn link_local_and_metadata_addresses_are_refused() {
    let inline = "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /latest/meta-data:\n    get: {operationId: metadata, responses: {'200': {description: ok}}}\n";
    let manifests = yaml::openapi_server(
        "metadata",
        &format!("inline: {}\nbaseUrl: http://169.254.169.254", serde_json::to_string(inline).unwrap()),
    ) + &yaml::openapi_server("spec-from-metadata", "url: http://169.254.169.254/openapi.json")
        + &yaml::route("cloud", "mounts: [{server: metadata}, {server: spec-from-metadata}]");
    let stack = LocalStack::start(&manifests).await;
    let session = RawSession::initialize(&stack.url("/acme/cloud/mcp")).await;
    let tools = session.request("tools/list", json!({})).await;
    assert_eq!(tools.body["result"]["tools"], json!([]), "neither server is mounted: {}", tools.body);
    let report = report(&stack).await;
    assert!(report.contains("mount `metadata`: baseUrl `http://169.254.169.254` is a link-local"), "{report}");
    assert!(report.contains("cannot fetch `http://169.254.169.254/openapi.json`"), "{report}");
}

/// A stub API that records what it is sent and answers `{"ok": true}`; it also serves
/// `document` at `/openapi.json`.
async fn stub_api(document: String) -> Stub {
    Stub::start(move |request| {
        if request.path == "/openapi.json" {
            let mut reply = Reply::json(json!({}));
            reply.body = document.clone();
            return reply;
        }
        Reply::json(json!({"ok": true, "path": request.path}))
    })
    .await
}

fn fixture(path: &str) -> String {
    let path = repo_root().join("e2e/peers/node/node_modules").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e}: run scripts/install-peers.sh (the README's test command does)", path.display())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn documents_written_by_others_compile_and_serve() {
    // 3.0 documents with hundreds of $refs (Star Trek) and recursive request bodies, a 3.1
    // one (the Train Travel API), and the GitHub REST API description (1,000+ operations).
    let cases = [
        ("startrek", "@readme/oas-examples/3.0/json/star-trek.json", 120),
        ("recursive", "@readme/oas-examples/3.0/json/circular-request-bodies.json", 4),
        ("train", "@readme/oas-examples/3.1/json/train-travel.json", 7),
        ("github", "@octokit/openapi/generated/api.github.com.json", 1000),
    ];
    let mut manifests = String::new();
    let mut stubs = Vec::new();
    for (name, path, _) in cases {
        let stub = stub_api(fixture(path)).await;
        manifests +=
            &yaml::openapi_server(name, &format!("url: {}\nbaseUrl: {}", stub.url("/openapi.json"), stub.url("/api")));
        stubs.push(stub);
    }
    manifests +=
        &yaml::route("others", "mounts: [{server: startrek}, {server: recursive}, {server: train}, {server: github}]");
    let stack = LocalStack::start_with(&manifests, |s| s.list_page_size = 5000).await;
    let session = RawSession::initialize(&stack.url("/acme/others/mcp")).await;
    let listed = session.request("tools/list", json!({})).await;
    let tools = listed.body["result"]["tools"].as_array().unwrap_or_else(|| panic!("{}", listed.body)).clone();
    for (name, path, at_least) in cases {
        let count = tools.iter().filter(|t| t["name"].as_str().unwrap().starts_with(&format!("{name}_"))).count();
        assert!(count >= at_least, "{path}: {count} tools, expected at least {at_least}");
    }
    // A recursive schema is expanded once, its recursion pointing into `$defs`.
    let recursive: Vec<&Value> =
        tools.iter().filter(|t| t["name"].as_str().unwrap().starts_with("recursive_")).collect();
    let schemas = serde_json::to_string(&recursive).unwrap();
    assert!(schemas.contains("\"$defs\"") && schemas.contains("#/$defs/"), "{schemas}");
    let get_repo = tools.iter().find(|t| t["name"] == "github_repos_get").expect("github_repos_get");
    assert_eq!(get_repo["inputSchema"]["required"], json!(["owner", "repo"]), "{get_repo}");

    let called = session
        .request("tools/call", json!({"name": "github_repos_get", "arguments": {"owner": "octo cat", "repo": "hello"}}))
        .await;
    assert_eq!(called.body["result"]["structuredContent"]["ok"], true, "{}", called.body);
    let sent = stubs[3].requests().into_iter().find(|r| r.path.starts_with("/api/")).expect("the call reached the API");
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("GET", "/api/repos/octo%20cat/hello"));

    let booking = tools.iter().find(|t| t["name"] == "train_create-booking").expect("train_create-booking");
    let properties = booking["inputSchema"]["properties"].as_object().unwrap();
    assert!(properties.contains_key("trip_id") && properties.contains_key("passenger_name"), "{booking}");
    let called = session
        .request(
            "tools/call",
            json!({"name": "train_create-booking", "arguments": {"trip_id": "t-1", "passenger_name": "Ann"}}),
        )
        .await;
    assert_eq!(called.body["result"]["structuredContent"]["path"], "/api/bookings", "{}", called.body);
    let sent = stubs[2].requests().into_iter().find(|r| r.path.starts_with("/api/")).expect("the booking was sent");
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/api/bookings"));
    assert_eq!(sent.json(), json!({"trip_id": "t-1", "passenger_name": "Ann"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_documents_are_reported_where_they_are_wrong_and_the_route_goes_on() {
    let alpha = Upstream::start("alpha").await;
    let broken_yaml = "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a: [unclosed\n";
    let dangling = r##"{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": "http://127.0.0.1:1"}],
        "paths": {
          "/good": {"get": {"operationId": "good", "responses": {"200": {"description": "ok"}}}},
          "/bad": {"post": {"operationId": "bad", "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Nope"}}}}, "responses": {"200": {"description": "ok"}}}},
          "/twin": {"get": {"operationId": "good", "responses": {"200": {"description": "ok"}}}}
        }}"##;
    let manifests =
        yaml::openapi_server(
            "broken",
            &format!("inline: {}\nbaseUrl: http://127.0.0.1:1", serde_json::to_string(broken_yaml).unwrap()),
        ) + &yaml::openapi_server("dangling", &format!("inline: {}", serde_json::to_string(dangling).unwrap()))
            + &yaml::server("alpha", &alpha.mcp_url(), "")
            + &yaml::route("mixed", "mounts: [{server: alpha}, {server: broken}, {server: dangling}]");
    let stack = LocalStack::start(&manifests).await;

    let session = RawSession::initialize(&stack.url("/acme/mixed/mcp")).await;
    let names: Vec<String> = session.tool_names().await;
    assert!(names.contains(&"alpha_echo".to_owned()), "the route's other mounts go on: {names:?}");
    assert!(names.contains(&"dangling_good".to_owned()), "the good operation is served: {names:?}");
    assert!(!names.iter().any(|n| n.starts_with("dangling_bad") || n.starts_with("broken_")), "{names:?}");
    let report = report(&stack).await;
    for expected in [
        "spec.openapi.inline: ",
        "line 4",
        "spec.openapi.inline#/paths/~1bad/post",
        "#/components/schemas/Nope",
        "spec.openapi.inline#/paths/~1twin/get",
        "the operation at `#/paths/~1good/get`",
        "the route's other mounts go on without it",
    ] {
        assert!(report.contains(expected), "`{expected}` is reported: {report}");
    }
}

/// What the gateway's `/status` reports about the objects it compiled, as JSON text.
async fn report(stack: &LocalStack) -> String {
    let status: Value = reqwest::get(stack.admin_url("/status")).await.unwrap().json().await.unwrap();
    status["report"].to_string().replace("\\\"", "\"")
}
