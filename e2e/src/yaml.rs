//! Manifests for scenarios, all in tenant `acme`, one YAML document per call, so a test
//! reads as the objects it applies.

/// An McpServer reached at `url`; `remote` adds fields to `spec.remote` in flow style
/// (for example `timeout: 3s`).
pub fn server(name: &str, url: &str, remote: &str) -> String {
    let remote = if remote.is_empty() { String::new() } else { format!(", {remote}") };
    format!(
        "---\napiVersion: manifold.dev/v1alpha1\nkind: McpServer\nmetadata: {{name: {name}, namespace: acme}}\n\
         spec: {{remote: {{url: \"{url}\"{remote}}}}}\n"
    )
}

/// An McpServer whose source is `spec.openapi`, given as a block of YAML (its lines at any
/// indentation, indented here).
pub fn openapi_server(name: &str, openapi: &str) -> String {
    let block: String = unindent(openapi).lines().map(|line| format!("    {line}\n")).collect();
    format!(
        "---\napiVersion: manifold.dev/v1alpha1\nkind: McpServer\nmetadata: {{name: {name}, namespace: acme}}\n\
         spec:\n  openapi:\n{block}"
    )
}

/// `text` without the indentation its non-blank lines share.
fn unindent(text: &str) -> String {
    let indent = text.lines().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min();
    text.lines().map(|l| l.get(indent.unwrap_or(0)..).unwrap_or("").trim_end()).collect::<Vec<_>>().join("\n")
}

/// An McpRoute with `spec` in flow style (for example `mounts: [{server: alpha}]`), open to
/// anonymous callers unless `spec` sets `authentication`.
pub fn route(name: &str, spec: &str) -> String {
    let anonymous = if spec.contains("authentication:") { "" } else { "authentication: {allowAnonymous: true}, " };
    format!(
        "---\napiVersion: manifold.dev/v1alpha1\nkind: McpRoute\nmetadata: {{name: {name}, namespace: acme}}\nspec: {{{anonymous}{spec}}}\n"
    )
}

/// The same manifests in namespace `namespace` instead of `acme`.
pub fn in_namespace(manifests: &str, namespace: &str) -> String {
    manifests.replace("namespace: acme}", &format!("namespace: {namespace}}}"))
}
