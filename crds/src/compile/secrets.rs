//! Secret lookups for compile: a key of a Secret in the referring object's namespace,
//! decoded to text, with an error that says exactly what is missing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::{name_of, namespace_of};
use crate::key::ObjectKey;
use crate::resources::SecretKeyRef;

/// Secrets by (namespace, name).
pub(super) struct Index<'a>(BTreeMap<ObjectKey, &'a Secret>);

impl<'a> Index<'a> {
    pub(super) fn new(secrets: &'a [Secret]) -> Self {
        Index(secrets.iter().map(|s| (ObjectKey::new(namespace_of(&s.metadata), name_of(&s.metadata)), s)).collect())
    }

    /// Every key of Secret `name` in `namespace`, decoded to text.
    pub(super) fn entries(&self, namespace: &str, name: &str) -> Result<BTreeMap<String, String>, String> {
        let secret = self
            .0
            .get(&ObjectKey::new(namespace, name))
            .ok_or_else(|| format!("Secret `{name}` does not exist in namespace {namespace}"))?;
        let mut entries = BTreeMap::new();
        for (key, bytes) in secret.data.iter().flatten() {
            let text = String::from_utf8(bytes.0.clone())
                .map_err(|_| format!("key `{key}` of Secret `{name}` is not UTF-8 text"))?;
            entries.insert(key.clone(), text);
        }
        entries.extend(secret.string_data.iter().flatten().map(|(k, v)| (k.clone(), v.clone())));
        Ok(entries)
    }

    /// The text of `reference` in `namespace`.
    pub(super) fn get(&self, namespace: &str, reference: &SecretKeyRef) -> Result<String, String> {
        let secret = self
            .0
            .get(&ObjectKey::new(namespace, &reference.name))
            .ok_or_else(|| format!("Secret `{}` does not exist in namespace {namespace}", reference.name))?;
        let string = secret.string_data.as_ref().and_then(|d| d.get(&reference.key)).cloned();
        let bytes = secret.data.as_ref().and_then(|d| d.get(&reference.key)).map(|b| b.0.clone());
        match (string, bytes) {
            (Some(text), _) => Ok(text),
            (None, Some(bytes)) => String::from_utf8(bytes)
                .map_err(|_| format!("key `{}` of Secret `{}` is not UTF-8 text", reference.key, reference.name)),
            (None, None) => Err(format!("Secret `{}` has no key `{}`", reference.name, reference.key)),
        }
    }
}
