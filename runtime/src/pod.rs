//! Where a process runs in Kubernetes: its namespace, from a flag (or `POD_NAMESPACE`, through
//! clap's `env`), else from the file mounted with the pod's service account token.

use std::path::Path;

/// Where a pod's namespace is mounted with its service account token.
pub const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The namespace could not be found.
#[derive(Debug, thiserror::Error)]
#[error("{path} could not be read: {error}")]
pub struct NoNamespace {
    pub path: String,
    #[source]
    pub error: std::io::Error,
}

/// The namespace `flag` names, else the one in `service_account` (normally
/// [`SERVICE_ACCOUNT_NAMESPACE`]). Blank values count as absent.
pub fn namespace(flag: Option<&str>, service_account: &Path) -> Result<String, NoNamespace> {
    if let Some(namespace) = flag.map(str::trim).filter(|n| !n.is_empty()) {
        return Ok(namespace.to_owned());
    }
    let missing = |error| NoNamespace { path: service_account.display().to_string(), error };
    let text = std::fs::read_to_string(service_account).map_err(missing)?;
    match text.trim() {
        "" => Err(missing(std::io::Error::other("the file is empty"))),
        namespace => Ok(namespace.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_comes_from_the_flag_then_the_service_account() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("namespace");
        assert_eq!(namespace(Some("gateways"), &file).unwrap(), "gateways");
        let error = namespace(None, &file).unwrap_err();
        assert_eq!(error.path, file.display().to_string());
        std::fs::write(&file, "  \n").unwrap();
        assert_eq!(
            namespace(None, &file).unwrap_err().to_string(),
            format!("{} could not be read: the file is empty", file.display())
        );
        std::fs::write(&file, "manifold-system\n").unwrap();
        assert_eq!(namespace(None, &file).unwrap(), "manifold-system");
        assert_eq!(namespace(Some(" "), &file).unwrap(), "manifold-system");
    }
}
