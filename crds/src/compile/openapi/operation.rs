//! One operation's inputs: its path item and operation objects in; its parameters (path-item
//! and operation ones merged, `$ref`s followed, OpenAPI defaults filled in, in location
//! order), its request body (the media type the gateway can send) and its response media
//! type out. Schemas stay as the document has them: `schema` expands them.

use super::Skip;
use super::document::{self, Object, Value};
use super::names;
use crate::config::{BodyEncoding, ParameterLocation, ParameterStyle};

/// One parameter.
pub(super) struct Param<'d> {
    pub name: &'d str,
    pub location: ParameterLocation,
    pub style: ParameterStyle,
    pub explode: bool,
    pub required: bool,
    pub description: Option<&'d str>,
    pub deprecated: bool,
    /// Its schema and the schema's pointer; none for a path variable the document forgot.
    pub schema: Option<(&'d Value, String)>,
}

/// The request body the gateway sends.
pub(super) struct Body<'d> {
    pub media_type: &'d str,
    pub encoding: BodyEncoding,
    pub required: bool,
    pub description: Option<&'d str>,
    pub schema: Option<(&'d Value, String)>,
}

/// The operation's parameters: the path item's, replaced by the operation's of the same name
/// and location; path, then query, header and cookie ones. Path variables not declared are
/// added as required strings; declared path parameters the path lacks are left out.
pub(super) fn parameters<'d>(
    root: &'d Value,
    path: &'d str,
    item: (&'d Object, &str),
    operation: (&'d Object, &str),
) -> Result<Vec<Param<'d>>, Skip> {
    let mut params: Vec<Param<'d>> = Vec::new();
    for (owner, at) in [item, operation] {
        let Some(list) = owner.get("parameters") else { continue };
        let list =
            list.as_array().ok_or_else(|| Skip::new(format!("{at}/parameters"), "`parameters` is not a list"))?;
        for (i, value) in list.iter().enumerate() {
            let Some(param) = parameter(root, value, &format!("{at}/parameters/{i}"))? else { continue };
            match params.iter_mut().find(|p| p.name == param.name && p.location == param.location) {
                Some(slot) => *slot = param,
                None => params.push(param),
            }
        }
    }
    let variables = names::path_variables(path);
    params.retain(|p| p.location != ParameterLocation::Path || variables.contains(&p.name));
    for name in variables {
        if !params.iter().any(|p| p.location == ParameterLocation::Path && p.name == name) {
            let undeclared = Param {
                name,
                location: ParameterLocation::Path,
                style: ParameterStyle::Simple,
                explode: false,
                required: true,
                description: None,
                deprecated: false,
                schema: None,
            };
            params.push(undeclared);
        }
    }
    params.sort_by_key(|p| location_order(p.location));
    Ok(params)
}

fn location_order(location: ParameterLocation) -> u8 {
    match location {
        ParameterLocation::Path => 0,
        ParameterLocation::Query => 1,
        ParameterLocation::Header => 2,
        ParameterLocation::Cookie => 3,
    }
}

/// One parameter object; none for the headers OpenAPI says to ignore.
fn parameter<'d>(root: &'d Value, value: &'d Value, at: &str) -> Result<Option<Param<'d>>, Skip> {
    let resolved = document::resolve(root, value, at).map_err(|(pointer, message)| Skip::new(pointer, message))?;
    let (param, at) = (resolved.object, resolved.pointer);
    let name = param.str("name").ok_or_else(|| Skip::new(&at, "the parameter has no `name`"))?;
    let location = match param.str("in") {
        Some("path") => ParameterLocation::Path,
        Some("query") => ParameterLocation::Query,
        Some("header") => ParameterLocation::Header,
        Some("cookie") => ParameterLocation::Cookie,
        other => {
            let message = format!(
                "parameter `{name}` is `in: {}`: only path, query, header and cookie parameters exist in OpenAPI 3",
                other.unwrap_or("(missing)")
            );
            return Err(Skip::new(format!("{at}/in"), message));
        }
    };
    // OpenAPI ignores these three; the rest belong to the connection, which the gateway
    // owns (a caller choosing `Host` would pick another virtual host with the API's
    // credentials).
    const IGNORED: &[&str] = &[
        "accept",
        "content-type",
        "authorization",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "te",
        "upgrade",
        "cookie",
    ];
    if location == ParameterLocation::Header && IGNORED.contains(&&*name.to_ascii_lowercase()) {
        return Ok(None);
    }
    let style = match param.str("style") {
        None => match location {
            ParameterLocation::Path | ParameterLocation::Header => ParameterStyle::Simple,
            ParameterLocation::Query | ParameterLocation::Cookie => ParameterStyle::Form,
        },
        Some("simple") => ParameterStyle::Simple,
        Some("label") => ParameterStyle::Label,
        Some("matrix") => ParameterStyle::Matrix,
        Some("form") => ParameterStyle::Form,
        Some("spaceDelimited") => ParameterStyle::SpaceDelimited,
        Some("pipeDelimited") => ParameterStyle::PipeDelimited,
        Some("deepObject") => ParameterStyle::DeepObject,
        Some(other) => {
            return Err(Skip::new(format!("{at}/style"), format!("parameter `{name}` has unknown style `{other}`")));
        }
    };
    let schema = match (param.get("schema"), param.object("content")) {
        (Some(schema), _) => Some((schema, format!("{at}/schema"))),
        (None, Some(content)) => content.iter().next().and_then(|(media, m)| {
            let schema = m.as_object()?.get("schema")?;
            Some((schema, format!("{at}/content/{}/schema", document::escape(media))))
        }),
        (None, None) => None,
    };
    Ok(Some(Param {
        name,
        location,
        style,
        explode: param.bool("explode").unwrap_or(style == ParameterStyle::Form),
        required: location == ParameterLocation::Path || param.bool("required").unwrap_or(false),
        description: param.str("description").filter(|d| !d.trim().is_empty()),
        deprecated: param.bool("deprecated").unwrap_or(false),
        schema,
    }))
}

/// The request body, in the first media type the gateway can send: JSON (`application/json`,
/// then any other `*/json` or `*+json`), then `application/x-www-form-urlencoded`.
pub(super) fn body<'d>(root: &'d Value, operation: &'d Object, at: &str) -> Result<Option<Body<'d>>, Skip> {
    let Some(value) = operation.get("requestBody") else { return Ok(None) };
    let resolved = document::resolve(root, value, &format!("{at}/requestBody"))
        .map_err(|(pointer, message)| Skip::new(pointer, message))?;
    let (body, at) = (resolved.object, resolved.pointer);
    let Some(content) = body.object("content").filter(|c| c.len() > 0) else { return Ok(None) };
    let essence = |media: &str| media.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let is_json = |media: &str| {
        let essence = essence(media);
        essence.split_once('/').is_some_and(|(_, sub)| sub == "json" || sub.ends_with("+json"))
    };
    let chosen = [
        content.iter().find(|(m, _)| essence(m) == "application/json"),
        content.iter().find(|(m, _)| is_json(m)),
        content.iter().find(|(m, _)| essence(m) == "application/x-www-form-urlencoded"),
    ]
    .into_iter()
    .flatten()
    .next();
    let Some((media_type, media)) = chosen else {
        let offered: Vec<String> = content.iter().map(|(m, _)| format!("`{m}`")).collect();
        let message = format!(
            "its request body is {}, which the gateway cannot send: only JSON and \
             `application/x-www-form-urlencoded` bodies are supported (exclude the operation with a route map \
             of type Exclude to silence this)",
            offered.join(", ")
        );
        return Err(Skip::new(format!("{at}/content"), message));
    };
    let schema = media
        .as_object()
        .and_then(|m| m.get("schema"))
        .map(|s| (s, format!("{at}/content/{}/schema", document::escape(media_type))));
    Ok(Some(Body {
        media_type,
        encoding: if is_json(media_type) { BodyEncoding::Json } else { BodyEncoding::Form },
        required: body.bool("required").unwrap_or(false),
        description: body.str("description").filter(|d| !d.trim().is_empty()),
        schema,
    }))
}

/// The media type a resource read returns: the first one of the first 2xx response (else of
/// `default`), `application/json` when the document does not say.
pub(super) fn response_media_type<'d>(root: &'d Value, operation: &'d Object) -> &'d str {
    let Some(responses) = operation.object("responses") else { return "application/json" };
    let success = responses.iter().find(|(code, _)| code.starts_with('2')).or_else(|| {
        let default = responses.get("default")?;
        Some(("default", default))
    });
    success
        .and_then(|(_, response)| document::resolve(root, response, "").ok())
        .and_then(|r| r.object.object("content"))
        .and_then(|content| content.iter().next())
        .map_or("application/json", |(media, _)| media)
}
