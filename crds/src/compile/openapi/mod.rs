//! `spec.openapi` documents: OpenAPI 3.0/3.1 text, route maps and overrides in; the tools,
//! resources and resource templates a gateway serves out, with the operations left out and
//! why. The document is parsed in order (`document`), each operation in `paths` order is
//! matched against the route maps (`routes`), its inputs gathered (`operation`) and its
//! schemas expanded (`schema`), then it becomes a component (`component`) under a unique name
//! (`names`). One bad operation is skipped with a problem; the rest is served.

mod component;
mod cycles;
mod document;
mod json;
mod names;
mod operation;
mod routes;
mod schema;

use std::collections::{BTreeMap, HashMap, HashSet};

use component::{Inputs, Presentation};
use document::Value;
use routes::Routes;
use schema::Expander;

use crate::config::{ApiResource, ApiTemplate, ApiTool};
use crate::outcome::Problem;
use crate::resources::{ComponentType, HttpMethod, OperationOverride, RouteMap};

/// The most listing text one document may produce (the GitHub REST API makes about 2 MiB).
const MAX_TOTAL: usize = 16 << 20;

/// What compile made of one OpenAPI document.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Translated {
    /// The document's `servers[0].url`, if any, its variables replaced by their `default`
    /// (it may be relative).
    pub servers_url: Option<String>,
    /// Tools, in document order.
    pub tools: Vec<ApiTool>,
    /// Resources, in document order.
    pub resources: Vec<ApiResource>,
    /// Resource templates, in document order.
    pub templates: Vec<ApiTemplate>,
    /// Operations skipped (and overrides naming no operation): the rest is served.
    pub skipped: Vec<Problem>,
}

/// Translates an OpenAPI 3.0/3.1 document (YAML or JSON text). `field` names where the text
/// came from, for problems (`spec.openapi.inline`...). Err when the document as a whole is
/// unusable or a route map is invalid.
pub(crate) fn translate(
    document: &str,
    field: &str,
    route_maps: &[RouteMap],
    overrides: &BTreeMap<String, OperationOverride>,
) -> Result<Translated, Vec<Problem>> {
    let routes = Routes::new(route_maps);
    let root = document::parse(document).map_err(|m| Problem::new(field, m)).and_then(|root| {
        let v30 = version(&root, field)?;
        Ok((root, v30))
    });
    let (routes, (root, v30)) = match (routes, root) {
        (Ok(routes), Ok(root)) => (routes, root),
        (routes, root) => return Err(routes.err().unwrap_or_default().into_iter().chain(root.err()).collect()),
    };
    let top = root.as_object().expect("version checked the root is an object");
    let paths = match top.get("paths") {
        None => None,
        Some(Value::Object(paths)) => Some(paths),
        Some(_) => return Err(vec![Problem::new(format!("{field}#/paths"), "`paths` is not a mapping")]),
    };

    let mut translation = Translation {
        root: &root,
        field,
        routes,
        overrides,
        expander: Expander::new(&root, v30),
        out: Translated {
            servers_url: servers_url(&root),
            tools: Vec::new(),
            resources: Vec::new(),
            templates: Vec::new(),
            skipped: Vec::new(),
        },
        claimed: HashMap::new(),
        ids: HashSet::new(),
        total: 0,
    };
    for (path, item) in paths.into_iter().flat_map(|p| p.iter()) {
        translation.path_item(path, item);
    }
    for id in overrides.keys().filter(|id| !translation.ids.contains(id.as_str())) {
        let message = format!("no operation has operationId `{id}`: fix the key or remove the override");
        translation.out.skipped.push(Problem::new(format!("spec.openapi.operations.{id}"), message));
    }
    Ok(translation.out)
}

/// Why part of the document is left out, and where (a JSON pointer).
#[derive(Clone, Debug, PartialEq)]
struct Skip {
    pointer: String,
    message: String,
}

impl Skip {
    fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Skip { pointer: pointer.into(), message: message.into() }
    }
}

/// Whether the document is OpenAPI 3.0 (true) or 3.1 (false).
fn version(root: &Value, field: &str) -> Result<bool, Problem> {
    let refuse = |message: String| Err(Problem::new(field, message));
    let Some(top) = root.as_object() else {
        return refuse("the document is not an OpenAPI document: its top level is not a mapping".into());
    };
    if top.get("swagger").is_some() {
        return refuse(
            "Swagger 2.0 is not supported: convert it to OpenAPI 3 (for example with swagger2openapi)".into(),
        );
    }
    let version = match top.get("openapi") {
        Some(Value::String(v)) => v.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return refuse("`openapi` is not a version string such as \"3.1.0\"".into()),
        None => return refuse("the document has no `openapi` field: it is not an OpenAPI 3 document".into()),
    };
    let is = |minor: &str| version == minor || version.starts_with(&format!("{minor}."));
    match () {
        _ if is("3.0") => Ok(true),
        _ if is("3.1") => Ok(false),
        _ => refuse(format!("OpenAPI {version} is not supported: use an OpenAPI 3.0.x or 3.1.x document")),
    }
}

/// `servers[0].url`, `{variables}` replaced by their defaults.
fn servers_url(root: &Value) -> Option<String> {
    let server = root.as_object()?.get("servers")?.as_array()?.first()?.as_object()?;
    let mut url = server.str("url")?.to_string();
    for (name, variable) in server.object("variables").into_iter().flat_map(|v| v.iter()) {
        if let Some(default) = variable.as_object().and_then(|v| v.get("default")) {
            let default = match default {
                Value::String(s) => s.clone(),
                other => serde_json::to_string(other).unwrap_or_default(),
            };
            url = url.replace(&format!("{{{name}}}"), &default);
        }
    }
    Some(url)
}

/// One document being translated.
struct Translation<'d, 'a> {
    root: &'d Value,
    field: &'a str,
    routes: Routes<'a>,
    overrides: &'a BTreeMap<String, OperationOverride>,
    expander: Expander<'d>,
    out: Translated,
    /// Tool names, resource URIs and URI templates, with the pointer of the operation that
    /// has each.
    claimed: HashMap<(ComponentType, String), String>,
    /// Every operationId in the document.
    ids: HashSet<&'d str>,
    /// The bytes of listing text made so far: past [`MAX_TOTAL`], no more components.
    total: usize,
}

impl<'d> Translation<'d, '_> {
    fn path_item(&mut self, path: &'d str, item: &'d Value) {
        if path.starts_with("x-") {
            return;
        }
        let at = format!("/paths/{}", document::escape(path));
        if !path.starts_with('/') {
            self.skip(Skip::new(at, format!("path `{path}` does not start with `/`: its operations are not served")));
            return;
        }
        let item = match document::resolve(self.root, item, &at) {
            Ok(item) => item,
            Err((pointer, message)) => {
                self.skip(Skip::new(pointer, format!("the operations of `{path}` are not served: {message}")));
                return;
            }
        };
        for method in HttpMethod::ALL {
            let Some(operation) = item.object.get(method.key()) else { continue };
            let at = format!("{}/{}", item.pointer, method.key());
            let result = match operation.as_object() {
                Some(operation) => {
                    if let Some(id) = operation.str("operationId") {
                        self.ids.insert(id);
                    }
                    self.operation(path, method, (item.object, &item.pointer), (operation, &at))
                }
                None => Err(Skip::new(&at, "the operation is not a mapping")),
            };
            if let Err(skip) = result {
                let method = method.key().to_ascii_uppercase();
                self.skip(Skip { message: format!("{method} {path} is not served: {}", skip.message), ..skip });
            }
        }
    }

    fn operation(
        &mut self,
        path: &'d str,
        method: HttpMethod,
        item: (&'d document::Object, &str),
        (operation, at): (&'d document::Object, &str),
    ) -> Result<(), Skip> {
        let tags: Vec<&str> = operation
            .get("tags")
            .and_then(Value::as_array)
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let map = self.routes.matching(method, path, &tags);
        let kind = map.map_or(ComponentType::Tool, |m| m.type_);
        if kind == ComponentType::Exclude || self.total > MAX_TOTAL {
            return Ok(());
        }
        let id = operation.str("operationId");
        let change = id.and_then(|id| self.overrides.get(id));
        let look = presentation(operation, method, path, map, change);
        let inputs = Inputs {
            method,
            path,
            at: at.to_string(),
            params: operation::parameters(self.root, path, item, (operation, at))?,
            body: operation::body(self.root, operation, at)?,
        };
        let media_type = || operation::response_media_type(self.root, operation);
        match kind {
            ComponentType::Tool => {
                let tool = component::tool(&mut self.expander, &look, inputs)?;
                self.claim(kind, &tool.name, &tool.listing, at)?;
                self.out.tools.push(tool);
            }
            ComponentType::Resource => {
                let resource = component::resource(&look, inputs, media_type())?;
                self.claim(kind, &resource.uri, &resource.listing, at)?;
                self.out.resources.push(resource);
            }
            ComponentType::ResourceTemplate => {
                let template = component::template(&look, inputs, media_type())?;
                self.claim(kind, &template.uri_template, &template.listing, at)?;
                self.out.templates.push(template);
            }
            ComponentType::Exclude => {}
        }
        Ok(())
    }

    /// Takes a tool name, resource URI or URI template for the operation at `at`, unless an
    /// earlier operation has it or the document has made too much listing text already.
    fn claim(&mut self, kind: ComponentType, key: &str, listing: &str, at: &str) -> Result<(), Skip> {
        if self.total + listing.len() > MAX_TOTAL {
            self.total = MAX_TOTAL + 1;
            let message = format!(
                "the operations before it already make {} MiB of listings, the most one document may: neither \
                 this operation nor any after it is served (exclude operations with route maps)",
                MAX_TOTAL >> 20
            );
            return Err(Skip::new(at, message));
        }
        let Some(first) = self.claimed.get(&(kind, key.to_string())) else {
            self.claimed.insert((kind, key.to_string()), at.to_string());
            self.total += listing.len();
            return Ok(());
        };
        let (what, fix) = match kind {
            ComponentType::Tool => {
                ("tool name", "give one of them another name with `spec.openapi.operations.<operationId>.name`")
            }
            ComponentType::Resource => ("resource URI", "exclude one of them with a route map"),
            _ => ("URI template", "exclude one of them with a route map"),
        };
        let message = format!(
            "its {what} `{key}` is already taken by the operation at `#{first}` (this one is at `#{at}`): {fix}"
        );
        Err(Skip::new(at, message))
    }

    fn skip(&mut self, skip: Skip) {
        self.out.skipped.push(Problem::new(format!("{}#{}", self.field, skip.pointer), skip.message));
    }
}

/// An operation's name, title, description and tags, the override applied.
fn presentation<'d>(
    operation: &'d document::Object,
    method: HttpMethod,
    path: &str,
    map: Option<&RouteMap>,
    change: Option<&OperationOverride>,
) -> Presentation<'d> {
    let text = |key: &str| operation.str(key).map(str::trim).filter(|t| !t.is_empty());
    let deprecated = operation.bool("deprecated").unwrap_or(false);
    let description = match change.and_then(|c| c.description.as_deref()) {
        Some(description) => description.to_string(),
        None => {
            let text = [text("summary"), text("description")].into_iter().flatten().collect::<Vec<_>>().join("\n\n");
            match (deprecated, text.is_empty()) {
                (false, _) => text,
                (true, true) => "(Deprecated)".to_string(),
                (true, false) => format!("(Deprecated) {text}"),
            }
        }
    };
    let mut tags: Vec<String> = Vec::new();
    let added = map.into_iter().flat_map(|m| &m.mcp_tags).chain(change.into_iter().flat_map(|c| &c.tags));
    for tag in added {
        if !tags.contains(tag) {
            tags.push(tag.clone());
        }
    }
    Presentation {
        name: names::component(change.and_then(|c| c.name.as_deref()), operation.str("operationId"), method, path),
        title: text("summary"),
        description,
        tags,
        deprecated,
    }
}

#[cfg(test)]
mod tests;
