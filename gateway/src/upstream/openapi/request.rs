//! A tool's or resource's arguments into the HTTP request its compiled call describes: path
//! template filled (RFC 6570 through OpenAPI `style`), query pairs, header and cookie
//! parameters, and the body, JSON or form-encoded. Pure: no connection is made here, so
//! every placement rule is tested on the request it builds.

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body_util::Full;
use manifold_api::config::{ApiCall, ApiParameter, BodyEncoding, BodyFields, ParameterLocation, ParameterStyle};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};

/// Headers a header parameter may not set: the connection's and the body's own.
const OWNED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "cookie",
    "authorization",
    "accept",
];

/// Characters percent-encoded in a path segment or a header-borne value: all but RFC 3986's
/// unreserved ones.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// What every request to one API carries: where it goes, and the configured headers and
/// query pairs (its credentials, typically).
pub struct Target {
    pub base: url::Url,
    pub headers: HeaderMap,
    pub query: Vec<(String, String)>,
}

impl Target {
    /// The HTTP request for a call with `arguments`, or why the arguments do not make one.
    pub fn request(&self, call: &ApiCall, arguments: &Map<String, Value>) -> Result<Request<Full<Bytes>>, String> {
        for parameter in call.parameters.iter().filter(|p| p.required) {
            if arguments.get(&parameter.argument).is_none_or(Value::is_null) {
                return Err(format!("missing required argument `{}`", parameter.argument));
            }
        }
        let mut path = String::with_capacity(call.path.len() + 16);
        let mut rest = call.path.as_str();
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').map(|c| open + c).ok_or("the path template is not closed")?;
            path.push_str(&rest[..open]);
            let name = &rest[open + 1..close];
            let parameter = call.parameters.iter().find(|p| p.location == ParameterLocation::Path && p.name == name);
            let value = parameter.and_then(|p| arguments.get(&p.argument).filter(|v| !v.is_null()));
            match (parameter, value) {
                (Some(parameter), Some(value)) => match path_value(parameter, value) {
                    filled if filled.is_empty() => {
                        return Err(format!("argument `{}` must not be empty", parameter.argument));
                    }
                    filled => path.push_str(&filled),
                },
                _ => return Err(format!("missing required argument `{name}`")),
            }
            rest = &rest[close + 1..];
        }
        path.push_str(rest);
        // An argument fills a segment, never moves out of it: a `.` or `..` segment would reach
        // a path the operation does not name (one a route map may exclude).
        if path.split('/').any(|segment| segment == "." || segment == "..") {
            let filled = call.parameters.iter().filter(|p| p.location == ParameterLocation::Path);
            let names: Vec<&str> = filled.map(|p| p.argument.as_str()).collect();
            return Err(format!("path arguments ({}) must not be `.` or `..`", names.join(", ")));
        }

        let mut url = self.base.clone();
        url.set_path(&format!("{}{}", self.base.path().trim_end_matches('/'), path));
        let mut query = Vec::new();
        let mut headers = self.headers.clone();
        let mut cookies = Vec::new();
        for parameter in &call.parameters {
            let Some(value) = arguments.get(&parameter.argument).filter(|v| !v.is_null()) else { continue };
            match parameter.location {
                ParameterLocation::Path => {}
                ParameterLocation::Query => query_pairs(parameter, value, &mut query),
                ParameterLocation::Header => {
                    let name = HeaderName::try_from(parameter.name.as_str())
                        .map_err(|_| format!("`{}` is not a valid header name", parameter.name))?;
                    // Headers the connection or the server's credentials own stay theirs.
                    if OWNED_HEADERS.contains(&name.as_str()) || self.headers.contains_key(&name) {
                        continue;
                    }
                    let value = HeaderValue::try_from(joined(value, ",", parameter.explode, "="))
                        .map_err(|_| format!("argument `{}` cannot be sent in a header", parameter.argument))?;
                    headers.insert(name, value);
                }
                ParameterLocation::Cookie => {
                    cookies.push(format!("{}={}", parameter.name, encoded(&joined(value, ",", false, ","))));
                }
            }
        }
        query.extend(self.query.iter().cloned());
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(&query);
        }
        if !cookies.is_empty() {
            // After any cookie the server's configured headers send.
            let configured = headers.get(COOKIE).and_then(|c| c.to_str().ok()).map(str::to_owned);
            let all = configured.into_iter().chain(cookies).collect::<Vec<_>>().join("; ");
            let value = HeaderValue::try_from(all).map_err(|_| "a cookie value is not valid")?;
            headers.insert(COOKIE, value);
        }
        headers.entry(ACCEPT).or_insert(HeaderValue::from_static("application/json, */*;q=0.8"));

        let body = match &call.body {
            None => Bytes::new(),
            Some(body) => {
                let value = match &body.fields {
                    BodyFields::Whole { argument } => arguments.get(argument).filter(|v| !v.is_null()).cloned(),
                    BodyFields::Properties { pairs: fields } => {
                        let object: Map<String, Value> = fields
                            .iter()
                            .filter_map(|(argument, property)| {
                                arguments.get(argument).filter(|v| !v.is_null()).map(|v| (property.clone(), v.clone()))
                            })
                            .collect();
                        (!object.is_empty() || body.required).then_some(Value::Object(object))
                    }
                };
                match value {
                    None if body.required => return Err("missing the request body's arguments".into()),
                    None => Bytes::new(),
                    Some(value) => {
                        let content_type = HeaderValue::try_from(body.media_type.as_str())
                            .unwrap_or(HeaderValue::from_static("application/json"));
                        headers.insert(CONTENT_TYPE, content_type);
                        match body.encoding {
                            BodyEncoding::Json => {
                                Bytes::from(serde_json::to_vec(&value).expect("JSON values serialize"))
                            }
                            BodyEncoding::Form => Bytes::from(form(&value)),
                        }
                    }
                }
            }
        };
        let method = Method::from_bytes(call.method.as_bytes()).map_err(|_| format!("bad method `{}`", call.method))?;
        let mut request =
            Request::builder().method(method).uri(url.as_str()).body(Full::new(body)).map_err(|e| e.to_string())?;
        *request.headers_mut() = headers;
        Ok(request)
    }
}

fn encoded(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// A scalar as text; None for null.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// An array or object as `a<sep>b`, or `k<kv>v<sep>...` (`k<sep>v` when not exploded);
/// a scalar as itself.
fn joined(value: &Value, separator: &str, explode: bool, key_value: &str) -> String {
    match value {
        Value::Array(items) => items.iter().filter_map(scalar).collect::<Vec<_>>().join(separator),
        Value::Object(object) => object
            .iter()
            .filter_map(|(k, v)| {
                scalar(v).map(|v| if explode { format!("{k}{key_value}{v}") } else { format!("{k}{separator}{v}") })
            })
            .collect::<Vec<_>>()
            .join(separator),
        other => scalar(other).unwrap_or_default(),
    }
}

/// A path parameter's value as the template's `{name}` becomes (RFC 6570 through OpenAPI
/// `style`), every piece percent-encoded.
fn path_value(parameter: &ApiParameter, value: &Value) -> String {
    let pieces = |value: &Value| -> Vec<(Option<String>, String)> {
        match value {
            Value::Array(items) => items.iter().filter_map(scalar).map(|v| (None, encoded(&v))).collect(),
            Value::Object(object) => {
                object.iter().filter_map(|(k, v)| scalar(v).map(|v| (Some(encoded(k)), encoded(&v)))).collect()
            }
            other => scalar(other).map(|v| vec![(None, encoded(&v))]).unwrap_or_default(),
        }
    };
    let name = encoded(&parameter.name);
    let items = pieces(value);
    let flat = |separator: &str| {
        items
            .iter()
            .map(|(k, v)| match k {
                Some(k) if parameter.explode => format!("{k}={v}"),
                Some(k) => format!("{k}{separator}{v}"),
                None => v.clone(),
            })
            .collect::<Vec<_>>()
    };
    match parameter.style {
        ParameterStyle::Label => {
            let separator = if parameter.explode { "." } else { "," };
            format!(".{}", flat(",").join(separator))
        }
        ParameterStyle::Matrix => {
            if parameter.explode && matches!(value, Value::Array(_)) {
                items.iter().map(|(_, v)| format!(";{name}={v}")).collect()
            } else if parameter.explode && matches!(value, Value::Object(_)) {
                flat(",").iter().map(|kv| format!(";{kv}")).collect()
            } else {
                format!(";{name}={}", flat(",").join(","))
            }
        }
        _ => flat(",").join(","),
    }
}

/// A query parameter's pairs, by OpenAPI `style` and `explode`.
fn query_pairs(parameter: &ApiParameter, value: &Value, pairs: &mut Vec<(String, String)>) {
    let name = &parameter.name;
    match (parameter.style, value) {
        (ParameterStyle::DeepObject, Value::Object(object)) => {
            pairs.extend(object.iter().filter_map(|(k, v)| scalar(v).map(|v| (format!("{name}[{k}]"), v))));
        }
        (_, Value::Array(items)) if parameter.explode => {
            pairs.extend(items.iter().filter_map(scalar).map(|v| (name.clone(), v)));
        }
        (_, Value::Object(object)) if parameter.explode => {
            pairs.extend(object.iter().filter_map(|(k, v)| scalar(v).map(|v| (k.clone(), v))));
        }
        (ParameterStyle::SpaceDelimited, Value::Array(_)) => pairs.push((name.clone(), joined(value, " ", false, ","))),
        (ParameterStyle::PipeDelimited, Value::Array(_)) => pairs.push((name.clone(), joined(value, "|", false, ","))),
        _ => {
            if let Some(text) = match value {
                Value::Array(_) | Value::Object(_) => Some(joined(value, ",", false, ",")),
                other => scalar(other),
            } {
                pairs.push((name.clone(), text));
            }
        }
    }
}

/// A form-encoded body from an object's fields (arrays repeat their field; nested objects
/// are sent as JSON text).
fn form(value: &Value) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    if let Value::Object(object) = value {
        for (key, field) in object {
            match field {
                Value::Array(items) => {
                    for item in items.iter().filter_map(scalar) {
                        serializer.append_pair(key, &item);
                    }
                }
                other => {
                    if let Some(text) = scalar(other) {
                        serializer.append_pair(key, &text);
                    }
                }
            }
        }
    }
    serializer.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parameter(name: &str, location: ParameterLocation, style: ParameterStyle, explode: bool) -> ApiParameter {
        ApiParameter { argument: name.into(), name: name.into(), location, style, explode, required: false }
    }

    #[test]
    fn path_values_follow_their_style_and_are_encoded() {
        let simple = parameter("id", ParameterLocation::Path, ParameterStyle::Simple, false);
        assert_eq!(path_value(&simple, &json!("a b/c")), "a%20b%2Fc");
        assert_eq!(path_value(&simple, &json!([1, 2])), "1,2");
        assert_eq!(path_value(&simple, &json!({"x": 1, "y": 2})), "x,1,y,2");
        let exploded = parameter("id", ParameterLocation::Path, ParameterStyle::Simple, true);
        assert_eq!(path_value(&exploded, &json!({"x": 1, "y": 2})), "x=1,y=2");
        let label = parameter("id", ParameterLocation::Path, ParameterStyle::Label, false);
        assert_eq!(path_value(&label, &json!([1, 2])), ".1,2");
        let matrix = parameter("id", ParameterLocation::Path, ParameterStyle::Matrix, true);
        assert_eq!(path_value(&matrix, &json!([1, 2])), ";id=1;id=2");
        let matrix = parameter("id", ParameterLocation::Path, ParameterStyle::Matrix, false);
        assert_eq!(path_value(&matrix, &json!(5)), ";id=5");
    }

    #[test]
    fn query_pairs_follow_style_and_explode() {
        let mut pairs = Vec::new();
        query_pairs(
            &parameter("t", ParameterLocation::Query, ParameterStyle::Form, true),
            &json!(["a", "b"]),
            &mut pairs,
        );
        query_pairs(
            &parameter("u", ParameterLocation::Query, ParameterStyle::Form, false),
            &json!(["a", "b"]),
            &mut pairs,
        );
        query_pairs(
            &parameter("p", ParameterLocation::Query, ParameterStyle::PipeDelimited, false),
            &json!([1, 2]),
            &mut pairs,
        );
        query_pairs(
            &parameter("d", ParameterLocation::Query, ParameterStyle::DeepObject, true),
            &json!({"k": "v"}),
            &mut pairs,
        );
        query_pairs(&parameter("n", ParameterLocation::Query, ParameterStyle::Form, true), &json!(3), &mut pairs);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(pairs, [("t", "a"), ("t", "b"), ("u", "a,b"), ("p", "1|2"), ("d[k]", "v"), ("n", "3")]);
    }

    fn target() -> Target {
        let mut headers = HeaderMap::new();
        headers.insert("x-tenant", HeaderValue::from_static("acme"));
        Target { base: url::Url::parse("https://api.example.com/v1").unwrap(), headers, query: vec![] }
    }

    fn call(method: &str, path: &str, parameters: Vec<ApiParameter>) -> ApiCall {
        ApiCall { method: method.into(), path: path.into(), parameters, body: None }
    }

    fn arguments(value: Value) -> Map<String, Value> {
        value.as_object().expect("an object").clone()
    }

    #[test]
    fn path_arguments_cannot_leave_their_segment() {
        let path = |name: &str| ApiParameter {
            required: true,
            ..parameter(name, ParameterLocation::Path, ParameterStyle::Simple, false)
        };
        let (api, call) = (target(), call("GET", "/repos/{owner}/{repo}/issues", vec![path("owner"), path("repo")]));
        let request =
            |owner: &str, repo: &str| api.request(&call, json!({"owner": owner, "repo": repo}).as_object().unwrap());
        assert_eq!(request("octo", "a/b").unwrap().uri(), "https://api.example.com/v1/repos/octo/a%2Fb/issues");
        for (owner, repo) in [("..", "admin"), (".", "x"), ("x", "..")] {
            let refused = request(owner, repo).unwrap_err();
            assert_eq!(refused, "path arguments (owner, repo) must not be `.` or `..`", "{owner} {repo}");
        }
        assert_eq!(request("", "x").unwrap_err(), "argument `owner` must not be empty");
        assert_eq!(request("...", "x").unwrap().uri(), "https://api.example.com/v1/repos/.../x/issues");
    }

    #[test]
    fn header_arguments_never_replace_owned_or_configured_headers() {
        let header = |name: &str| parameter(name, ParameterLocation::Header, ParameterStyle::Simple, false);
        let cookie = parameter("session", ParameterLocation::Cookie, ParameterStyle::Form, true);
        let (api, call) =
            (target(), call("GET", "/x", vec![header("Host"), header("X-Tenant"), header("X-Trace"), cookie]));
        let arguments = json!({"Host": "evil.example", "X-Tenant": "globex", "X-Trace": "t-1", "session": "a b"});
        let request = api.request(&call, arguments.as_object().unwrap()).unwrap();
        let headers = request.headers();
        assert_eq!(headers.get("host"), None, "the connection's own");
        assert_eq!(headers["x-tenant"], "acme", "the configured value stays");
        assert_eq!(headers["x-trace"], "t-1");
        assert_eq!(headers["cookie"], "session=a%20b");
    }

    #[test]
    fn query_pairs_come_before_the_configured_ones_and_cookies_after_the_configured_cookie() {
        let mut api = target();
        api.query = vec![("api_key".into(), "k".into())];
        api.headers.insert(COOKIE, HeaderValue::from_static("tenant=acme"));
        let parameters = vec![
            parameter("tags", ParameterLocation::Query, ParameterStyle::Form, true),
            parameter("theme", ParameterLocation::Cookie, ParameterStyle::Form, true),
            parameter("skipped", ParameterLocation::Query, ParameterStyle::Form, true),
        ];
        let call = call("GET", "/items", parameters);
        let request = api.request(&call, &arguments(json!({"tags": ["a", "b c"], "theme": "dark", "skipped": null})));
        let request = request.expect("a request");
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "https://api.example.com/v1/items?tags=a&tags=b+c&api_key=k");
        assert_eq!(request.headers()["cookie"], "tenant=acme; theme=dark");
        assert_eq!(request.headers()["accept"], "application/json, */*;q=0.8");
        assert!(bytes(request).is_empty(), "no body without a body parameter");
    }

    #[test]
    fn a_json_body_gathers_its_properties_and_a_form_body_repeats_array_fields() {
        let body = |encoding, media_type: &str| manifold_api::config::ApiBody {
            media_type: media_type.into(),
            encoding,
            required: true,
            fields: BodyFields::Properties {
                pairs: vec![("item_name".into(), "name".into()), ("tags".into(), "tags".into())],
            },
        };
        let given = arguments(json!({"item_name": "lamp", "tags": ["x", "y"]}));
        let mut json_call = call("POST", "/items", vec![]);
        json_call.body = Some(body(BodyEncoding::Json, "application/json"));
        let request = target().request(&json_call, &given).expect("a request");
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.headers()["content-type"], "application/json");
        assert_eq!(bytes(request), br#"{"name":"lamp","tags":["x","y"]}"#);

        let mut form_call = call("POST", "/items", vec![]);
        form_call.body = Some(body(BodyEncoding::Form, "application/x-www-form-urlencoded"));
        let request = target().request(&form_call, &given).expect("a request");
        assert_eq!(request.headers()["content-type"], "application/x-www-form-urlencoded");
        assert_eq!(bytes(request), b"name=lamp&tags=x&tags=y");
    }

    #[test]
    fn missing_required_arguments_make_no_request() {
        let required =
            ApiParameter { required: true, ..parameter("id", ParameterLocation::Query, ParameterStyle::Form, true) };
        let call = call("GET", "/items", vec![required]);
        let refused = target().request(&call, &arguments(json!({"id": null}))).expect_err("refused");
        assert_eq!(refused, "missing required argument `id`");
        let mut posting = call.clone();
        posting.parameters.clear();
        posting.body = Some(manifold_api::config::ApiBody {
            media_type: "application/json".into(),
            encoding: BodyEncoding::Json,
            required: true,
            fields: BodyFields::Whole { argument: "item".into() },
        });
        let refused = target().request(&posting, &Map::new()).expect_err("refused");
        assert_eq!(refused, "missing the request body's arguments");
    }

    fn bytes(request: Request<Full<Bytes>>) -> Vec<u8> {
        use http_body_util::BodyExt;
        let collected = futures::executor::block_on(request.into_body().collect()).expect("a full body");
        collected.to_bytes().to_vec()
    }
}
