//! `ObjectKey`: the (namespace, name) of a namespaced object, as the maps of servers, routes,
//! sessions and referenced Secrets are keyed. A type rather than a `(String, String)`, so the
//! two halves cannot be swapped and a key says what it is.

use std::fmt;

/// The namespace and name of a namespaced object.
///
/// Ordered by namespace, then name (the field order), exactly as the tuple it replaces: the
/// maps keyed by it are iterated into the published config, whose bytes and hash must not move.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Its namespace (the tenant).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `name` in `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::ObjectKey;

    #[test]
    fn orders_as_the_tuple_it_replaces() {
        let pairs = [("b", "a"), ("a", "b"), ("a", "a"), ("a-b", "a"), ("a", "a-b"), ("", "z"), ("z", "")];
        let mut tuples: Vec<(String, String)> = pairs.iter().map(|(n, m)| ((*n).to_owned(), (*m).to_owned())).collect();
        let mut keys: Vec<ObjectKey> = pairs.iter().map(|(n, m)| ObjectKey::new(*n, *m)).collect();
        tuples.sort();
        keys.sort();
        let keys: Vec<(String, String)> = keys.into_iter().map(|k| (k.namespace, k.name)).collect();
        assert_eq!(keys, tuples);
    }

    #[test]
    fn displays_as_namespace_slash_name() {
        assert_eq!(ObjectKey::new("acme", "weather").to_string(), "acme/weather");
    }
}
