//! Components: an operation's inputs and presentation in; what clients see out — a tool (one
//! input schema merging parameters and body), a resource (a fixed URI) or a resource template
//! (RFC 6570) — each with its listing text and how a call becomes one HTTP request.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};

use serde_json::value::RawValue;

use super::Skip;
use super::json::{self, Entries, Json};
use super::names;
use super::operation::{Body, Param};
use super::schema::{Expander, MAX_SIZE, Walked, text_len};
use crate::config::{ApiBody, ApiCall, ApiParameter, ApiResource, ApiTemplate, ApiTool, BodyFields, ParameterLocation};
use crate::resources::HttpMethod;

/// How a component presents itself.
pub(super) struct Presentation<'d> {
    pub name: String,
    /// The operation's summary.
    pub title: Option<&'d str>,
    /// Empty for none.
    pub description: String,
    pub tags: Vec<String>,
    pub deprecated: bool,
}

/// What an operation takes.
pub(super) struct Inputs<'d> {
    pub method: HttpMethod,
    pub path: &'d str,
    /// The operation's pointer.
    pub at: String,
    pub params: Vec<Param<'d>>,
    pub body: Option<Body<'d>>,
}

/// A tool: parameters then body properties as arguments (a taken name gets `__<location>`).
pub(super) fn tool<'d>(
    expander: &mut Expander<'d>,
    look: &Presentation<'d>,
    inputs: Inputs<'d>,
) -> Result<ApiTool, Skip> {
    let mut taken = HashSet::new();
    let mut properties: Entries<'d> = Vec::new();
    let mut required = Vec::new();
    let mut needs = BTreeSet::new();
    let mut size = 0;
    let mut parameters = Vec::with_capacity(inputs.params.len());
    for p in &inputs.params {
        let argument = names::argument(p.name, names::suffix(p.location), &mut taken);
        let schema = match &p.schema {
            Some((schema, at)) => expander.expand(schema, at, 2)?,
            None => Walked::made(Json::Object(vec![(Cow::Borrowed("type"), Json::str("string"))]), 17),
        };
        size += 2 * text_len(&argument) + schema.size + p.description.map_or(0, text_len) + 48;
        needs.extend(schema.needs);
        properties.push((Cow::Owned(argument.clone()), annotate(schema.json, p.description, p.deprecated)));
        if p.required {
            required.push(Json::str(argument.clone()));
        }
        parameters.push(ApiParameter {
            argument,
            name: p.name.to_string(),
            location: p.location,
            style: p.style,
            explode: p.explode,
            required: p.required,
        });
    }
    let body = match &inputs.body {
        None => None,
        Some(body) => {
            let schema = match &body.schema {
                Some((schema, at)) => expander.expand(schema, at, 2)?,
                None => Walked::made(Json::Object(Vec::new()), 2),
            };
            size += 2 * text_len("body__body") + schema.size + body.description.map_or(0, text_len) + 48;
            needs.extend(schema.needs);
            let fields = match object_properties(&schema.json) {
                Some((props, inner_required)) => {
                    let mut pairs = Vec::with_capacity(props.len());
                    for (property, property_schema) in props {
                        let argument = names::argument(&property, "body", &mut taken);
                        size += 2 * text_len(&argument) + 2;
                        if body.required && inner_required.iter().any(|r| *r == *property) {
                            required.push(Json::str(argument.clone()));
                        }
                        properties.push((Cow::Owned(argument.clone()), property_schema));
                        pairs.push((argument, property.into_owned()));
                    }
                    BodyFields::Properties { pairs }
                }
                None => {
                    let argument = names::argument("body", "body", &mut taken);
                    if body.required {
                        required.push(Json::str(argument.clone()));
                    }
                    properties.push((Cow::Owned(argument.clone()), annotate(schema.json, body.description, false)));
                    BodyFields::Whole { argument }
                }
            };
            Some(ApiBody {
                media_type: body.media_type.to_string(),
                encoding: body.encoding,
                required: body.required,
                fields,
            })
        }
    };

    let mut input: Entries<'d> =
        vec![(Cow::Borrowed("type"), Json::str("object")), (Cow::Borrowed("properties"), Json::Object(properties))];
    if !required.is_empty() {
        input.push((Cow::Borrowed("required"), Json::Array(required)));
    }
    if !needs.is_empty() {
        let defs = expander.defs(&needs)?;
        size += defs.iter().map(|(name, d)| text_len(name) + d.size + 2).sum::<usize>() + 12;
        let defs = defs.into_iter().map(|(name, d)| (Cow::Owned(name), d.json)).collect();
        input.push((Cow::Borrowed("$defs"), Json::Object(defs)));
    }
    let too_large = |size: usize| {
        let message = format!(
            "its input schema is {} KiB of JSON, more than the {} KiB a tool may have: exclude the operation \
             with a route map or simplify its schemas",
            size >> 10,
            MAX_SIZE >> 10
        );
        Skip::new(&inputs.at, message)
    };
    if size > MAX_SIZE {
        return Err(too_large(size));
    }
    let input_schema = Json::Object(input).to_text();
    if input_schema.len() > MAX_SIZE {
        return Err(too_large(input_schema.len()));
    }
    let input_schema = RawValue::from_string(input_schema).expect("serde_json wrote valid JSON");

    let mut listing = vec![(Cow::Borrowed("name"), Json::str(look.name.as_str()))];
    if let Some(title) = look.title {
        listing.push((Cow::Borrowed("title"), Json::str(title)));
    }
    if !look.description.is_empty() {
        listing.push((Cow::Borrowed("description"), Json::str(look.description.as_str())));
    }
    listing.push((Cow::Borrowed("inputSchema"), Json::Raw(input_schema)));
    listing.push((Cow::Borrowed("annotations"), annotations(inputs.method)));
    push_meta(&mut listing, look);
    Ok(ApiTool {
        listing: Json::Object(listing).to_text(),
        name: look.name.clone(),
        call: call(&inputs, parameters, body),
    })
}

/// A resource: a GET without path parameters or required inputs, read at a fixed URI.
pub(super) fn resource(look: &Presentation<'_>, inputs: Inputs<'_>, mime_type: &str) -> Result<ApiResource, Skip> {
    readable(&inputs, "a Resource")?;
    if let Some(p) = inputs.params.iter().find(|p| p.location == ParameterLocation::Path) {
        let message = format!(
            "it has path parameter `{}`, so it has no fixed URI: map it to ResourceTemplate instead of Resource",
            p.name
        );
        return Err(Skip::new(&inputs.at, message));
    }
    if let Some(p) = inputs.params.iter().find(|p| p.location == ParameterLocation::Query && p.required) {
        let message = format!(
            "it requires query parameter `{}`, which a read of a fixed URI cannot give: map it to ResourceTemplate \
             instead of Resource",
            p.name
        );
        return Err(Skip::new(&inputs.at, message));
    }
    let uri = names::resource_uri(inputs.path);
    let listing = readable_listing("uri", &uri, look, mime_type);
    Ok(ApiResource { listing, uri, call: call(&inputs, Vec::new(), None) })
}

/// A resource template: path parameters as `{name}`, query parameters as a trailing `{?a,b}`;
/// the variables are the arguments.
pub(super) fn template(look: &Presentation<'_>, inputs: Inputs<'_>, mime_type: &str) -> Result<ApiTemplate, Skip> {
    readable(&inputs, "a ResourceTemplate")?;
    let mut variables: Vec<(String, &str)> = Vec::new();
    let mut query = Vec::new();
    let mut parameters = Vec::new();
    for p in inputs.params.iter().filter(|p| matches!(p.location, ParameterLocation::Path | ParameterLocation::Query)) {
        let variable = names::template_variable(p.name);
        if let Some((_, other)) = variables.iter().find(|(v, _)| *v == variable) {
            let message = format!(
                "parameters `{other}` and `{}` would both be the URI template variable `{variable}`: map it to Tool \
                 instead",
                p.name
            );
            return Err(Skip::new(&inputs.at, message));
        }
        variables.push((variable.clone(), p.name));
        if p.location == ParameterLocation::Query {
            query.push(variable.clone());
        }
        parameters.push(ApiParameter {
            argument: variable,
            name: p.name.to_string(),
            location: p.location,
            style: p.style,
            explode: p.explode,
            required: p.required,
        });
    }
    let uri_template = names::uri_template(inputs.path, &query);
    let listing = readable_listing("uriTemplate", &uri_template, look, mime_type);
    Ok(ApiTemplate { listing, uri_template, call: call(&inputs, parameters, None) })
}

/// Checks a resource read can make the request: a GET whose required inputs are all in the URI.
fn readable(inputs: &Inputs<'_>, kind: &str) -> Result<(), Skip> {
    if inputs.method != HttpMethod::Get {
        let message = format!(
            "only GET operations can be {kind}, and this is {}: map it to Tool or Exclude",
            inputs.method.key().to_ascii_uppercase()
        );
        return Err(Skip::new(&inputs.at, message));
    }
    let sent_apart = |p: &&Param<'_>| matches!(p.location, ParameterLocation::Header | ParameterLocation::Cookie);
    if let Some(p) = inputs.params.iter().filter(sent_apart).find(|p| p.required) {
        let message = format!(
            "it requires {} parameter `{}`, which a resource read cannot send: map it to Tool instead",
            names::suffix(p.location),
            p.name
        );
        return Err(Skip::new(&inputs.at, message));
    }
    if inputs.body.as_ref().is_some_and(|b| b.required) {
        return Err(Skip::new(
            &inputs.at,
            "it requires a request body, which a resource read cannot send: map it to Tool",
        ));
    }
    Ok(())
}

fn readable_listing(key: &'static str, uri: &str, look: &Presentation<'_>, mime_type: &str) -> String {
    let mut listing =
        vec![(Cow::Borrowed(key), Json::str(uri)), (Cow::Borrowed("name"), Json::str(look.name.as_str()))];
    if !look.description.is_empty() {
        listing.push((Cow::Borrowed("description"), Json::str(look.description.as_str())));
    }
    listing.push((Cow::Borrowed("mimeType"), Json::str(mime_type)));
    push_meta(&mut listing, look);
    Json::Object(listing).to_text()
}

fn call(inputs: &Inputs<'_>, parameters: Vec<ApiParameter>, body: Option<ApiBody>) -> ApiCall {
    ApiCall { method: inputs.method.key().to_ascii_uppercase(), path: inputs.path.to_string(), parameters, body }
}

/// `_meta`: the component's tags and whether the operation is deprecated; none when neither.
fn push_meta<'a>(listing: &mut Entries<'a>, look: &'a Presentation<'_>) {
    let mut meta = Vec::new();
    if !look.tags.is_empty() {
        let tags = look.tags.iter().map(|t| Json::str(t.as_str())).collect();
        meta.push((Cow::Borrowed("manifold/tags"), Json::Array(tags)));
    }
    if look.deprecated {
        meta.push((Cow::Borrowed("deprecated"), Json::Bool(true)));
    }
    if !meta.is_empty() {
        listing.push((Cow::Borrowed("_meta"), Json::Object(meta)));
    }
}

/// What the method promises, as MCP tool annotations.
fn annotations<'d>(method: HttpMethod) -> Json<'d> {
    use HttpMethod::*;
    let mut hints = vec![(Cow::Borrowed("readOnlyHint"), Json::Bool(matches!(method, Get | Head | Options)))];
    if method == Delete {
        hints.push((Cow::Borrowed("destructiveHint"), Json::Bool(true)));
    }
    hints.push((Cow::Borrowed("idempotentHint"), Json::Bool(matches!(method, Get | Head | Options | Put | Delete))));
    Json::Object(hints)
}

/// `schema` with a description and `deprecated` added (an object schema gets the keywords;
/// another one is wrapped in `allOf`).
fn annotate<'d>(schema: Json<'d>, description: Option<&'d str>, deprecated: bool) -> Json<'d> {
    if description.is_none() && !deprecated {
        return schema;
    }
    let mut entries = match schema.entries() {
        Some(entries) => entries,
        None => vec![(Cow::Borrowed("allOf"), Json::Array(vec![schema]))],
    };
    if let Some(description) = description {
        json::set(&mut entries, "description", Json::str(description));
    }
    if deprecated {
        json::set(&mut entries, "deprecated", Json::Bool(true));
    }
    Json::Object(entries)
}

/// The properties of an object schema and its `required` list; none when the schema is not
/// a plain object with properties (it composes others, or declares none).
fn object_properties<'d>(schema: &Json<'d>) -> Option<(Entries<'d>, Vec<String>)> {
    let entries = schema.entries()?;
    let composed = ["allOf", "anyOf", "oneOf", "not", "if", "$ref"];
    if entries.iter().any(|(k, _)| composed.contains(&k.as_ref())) {
        return None;
    }
    let object_typed = match json::get(&entries, "type") {
        None => true,
        Some(ty) => ty.as_str() == Some("object") || ty.strings().iter().any(|t| t == "object"),
    };
    let properties = json::get(&entries, "properties")?.entries().filter(|p| !p.is_empty())?;
    let required = json::get(&entries, "required").map(Json::strings).unwrap_or_default();
    object_typed.then_some((properties, required))
}
