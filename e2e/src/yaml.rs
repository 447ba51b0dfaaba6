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

/// An McpRoute with `spec` in flow style (for example `mounts: [{server: alpha}]`), open to
/// anonymous callers unless `spec` sets `authentication`.
pub fn route(name: &str, spec: &str) -> String {
    let anonymous = if spec.contains("authentication:") { "" } else { "authentication: {allowAnonymous: true}, " };
    format!(
        "---\napiVersion: manifold.dev/v1alpha1\nkind: McpRoute\nmetadata: {{name: {name}, namespace: acme}}\nspec: {{{anonymous}{spec}}}\n"
    )
}
