//! Unit tests for what the golden files cannot show compactly: which PEM keys each algorithm
//! takes, and that no Secret value ever reaches an outcome.

use super::*;
use crate::compile::{Compiled, compile};
use crate::manifests::{self, Source};

const RSA: &str = include_str!("../../../tests/keys/rsa.pem");
const EC: &str = include_str!("../../../tests/keys/ec.pem");
const EC_SEC1: &str = include_str!("../../../tests/keys/ec-sec1.pem");
const EC_P384: &str = include_str!("../../../tests/keys/ec-p384.pem");

/// One McpServer `s` in namespace `acme` with `auth` (YAML flow), beside Secret `keys`.
fn compiled(auth: &str, keys: &[(&str, &str)]) -> Compiled {
    let data: serde_json::Map<String, serde_json::Value> =
        keys.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect();
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": "acme"}, "stringData": data,
    });
    let text = format!(
        "{secret}\n---\napiVersion: manifold.dev/v1alpha1\nkind: McpServer\nmetadata: {{name: s, namespace: acme}}\n\
         spec: {{remote: {{url: 'http://s:8080/mcp', auth: {auth}}}}}\n"
    );
    let read = manifests::read(&[Source { origin: "test".into(), text }]).expect("the manifests read");
    compile(&read.inputs, None)
}

/// The problems compile found, `field: message`, or the compiled auth's mode.
fn verdict(compiled: &Compiled) -> Result<&'static str, String> {
    match compiled.servers.values().next() {
        Some(upstream) => Ok(upstream.auth().map_or("static", OutboundAuth::mode)),
        None => Err(compiled.outcomes[0]
            .conditions
            .iter()
            .filter(|c| !c.status)
            .map(|c| c.message.clone())
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

fn signed(algorithm: &str) -> String {
    format!("{{signedJwt: {{algorithm: {algorithm}, keyRef: {{name: keys, key: k}}, issuer: gw, audience: up}}}}")
}

fn private_key_jwt(algorithm: &str) -> String {
    format!(
        "{{oauth2ClientCredentials: {{tokenUrl: 'https://idp/token', clientId: gw, clientAuthentication: \
         privateKeyJwt, privateKeyRef: {{name: keys, key: k}}, signingAlgorithm: {algorithm}}}}}"
    )
}

#[test]
fn each_algorithm_takes_the_keys_it_can_sign_with() {
    assert_eq!(verdict(&compiled(&signed("RS256"), &[("k", RSA)])), Ok("signedJwt"));
    assert_eq!(verdict(&compiled(&signed("ES256"), &[("k", EC)])), Ok("signedJwt"));
    assert_eq!(verdict(&compiled(&private_key_jwt("RS256"), &[("k", RSA)])), Ok("oauth2ClientCredentials"));
    assert_eq!(verdict(&compiled(&private_key_jwt("ES256"), &[("k", EC)])), Ok("oauth2ClientCredentials"));
    let hmac = "0123456789abcdef0123456789abcdef";
    assert_eq!(verdict(&compiled(&signed("HS256"), &[("k", hmac)])), Ok("signedJwt"));

    let refused = |auth: &str, key: &str| verdict(&compiled(auth, &[("k", key)])).unwrap_err();
    assert_eq!(
        refused(&signed("ES256"), RSA),
        "spec.remote.auth.signedJwt.keyRef: key `k` of Secret `keys` is not an EC P-256 private key, PEM (PKCS#8), \
         for ES256"
    );
    assert_eq!(
        refused(&signed("RS256"), EC),
        "spec.remote.auth.signedJwt.keyRef: key `k` of Secret `keys` is not an RSA private key, PEM (PKCS#1 or \
         PKCS#8), for RS256"
    );
    assert_eq!(
        refused(&signed("ES256"), EC_P384),
        "spec.remote.auth.signedJwt.keyRef: key `k` of Secret `keys` is not an EC P-256 private key, PEM (PKCS#8), \
         for ES256"
    );
    assert!(refused(&private_key_jwt("ES256"), EC_SEC1).starts_with(
        "spec.remote.auth.oauth2ClientCredentials.privateKeyRef: key `k` of Secret `keys` is not an EC P-256"
    ));
    assert_eq!(
        refused(&signed("HS256"), &hmac[1..]),
        "spec.remote.auth.signedJwt.keyRef: key `k` of Secret `keys` is not a secret of at least 32 bytes for HS256"
    );
}

#[test]
fn no_secret_value_reaches_an_outcome() {
    let values = [
        ("pem", "-----BEGIN PRIVATE KEY-----\nTHIS-IS-NOT-BASE64!\n-----END PRIVATE KEY-----\n"),
        ("short", "short-hmac-secret"),
        ("control", "token-with\u{1}control"),
        ("empty", "\n"),
    ];
    let cases = [
        signed("RS256").replace("key: k", "key: pem"),
        signed("ES256").replace("key: k", "key: pem"),
        signed("HS256").replace("key: k", "key: short"),
        private_key_jwt("RS256").replace("key: k", "key: pem"),
        "{bearer: {secretKeyRef: {name: keys, key: control}}}".to_owned(),
        "{apiKey: {in: header, name: X-Key, secretKeyRef: {name: keys, key: control}}}".to_owned(),
        "{tokenExchange: {tokenUrl: 'https://idp/token', clientId: gw, clientSecretRef: {name: keys, key: empty}}}"
            .to_owned(),
    ];
    for auth in cases {
        let compiled = compiled(&auth, &values);
        let said = serde_json::to_string(&compiled.outcomes).expect("outcomes serialize");
        assert!(verdict(&compiled).is_err(), "{auth}: refused");
        // Each value's telling part: not a PEM's armour, not the empty one's line break.
        let telling = values
            .iter()
            .filter_map(|(_, v)| v.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("-----")));
        for part in telling {
            assert!(!said.contains(part), "{auth}: an outcome shows a Secret value: {said}");
        }
    }
}

#[test]
fn an_empty_secret_is_named() {
    let auth = "{oauth2ClientCredentials: {tokenUrl: 'https://idp/token', clientId: gw, \
                clientSecretRef: {name: keys, key: k}}}";
    assert_eq!(
        verdict(&compiled(auth, &[("k", "\r\n")])),
        Err("spec.remote.auth.oauth2ClientCredentials.clientSecretRef: key `k` of Secret `keys` is empty".into())
    );
}
