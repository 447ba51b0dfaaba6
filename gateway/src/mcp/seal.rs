//! Sealing under the gateway's key ring (AES-256-GCM with associated data: `seal_bytes`,
//! `open_bytes`), and session tokens sealed with it. The `Mcp-Session-Id` a client holds is the session itself, sealed with
//! AES-256-GCM (aws-lc-rs) under the gateway's key ring, so that any replica holding the
//! ring can open it and go on serving the session. A token names its route and the principal
//! it is bound to (a hash), the negotiated revision, the client's capabilities and when it
//! was issued. A token that does not open (tampered with, or sealed under a key no longer
//! in the ring) is no session at all.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Kept here for callers that seal tokens themselves (the session bench).
pub use crate::access::binding;
use crate::upstream::Held;

/// Longer tokens are not opened (64 mounts with their upstream sessions fit well within).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Longer sealed values are not opened (stored upstream tokens are a few KiB).
const MAX_SEALED_BYTES: usize = 64 * 1024;

/// Format of the sealed payload; a token of another format does not open.
const FORMAT: u8 = 1;

/// What a session token carries.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Claims {
    /// The route, as `namespace/name`.
    #[serde(rename = "r")]
    pub route: String,
    /// SHA-256 of the principal's identity, truncated, hex.
    #[serde(rename = "p")]
    pub principal: String,
    /// The negotiated protocol revision.
    #[serde(rename = "v")]
    pub version: String,
    /// The client's declared capabilities (a JSON object).
    #[serde(rename = "c")]
    pub capabilities: Box<serde_json::value::RawValue>,
    /// Issued at, seconds since the epoch.
    #[serde(rename = "t")]
    pub issued: u64,
    /// The upstream sessions opened for it, by mount key: any replica goes on in them.
    #[serde(rename = "m", default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<(String, Held)>,
}

/// Keys that open tokens; the first also seals.
pub struct KeyRing {
    keys: Vec<(u8, LessSafeKey)>,
}

impl KeyRing {
    /// One base64-encoded 32-byte key per line, the current one first; blank lines and
    /// lines starting with `#` are skipped.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = STANDARD.decode(line).map_err(|_| format!("{}:{}: not base64", path.display(), i + 1))?;
            let key: [u8; 32] =
                bytes.try_into().map_err(|_| format!("{}:{}: a key must be 32 bytes", path.display(), i + 1))?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(format!("{} holds no key", path.display()));
        }
        Ok(Self::new(&keys))
    }

    /// A ring of one fresh random key: sessions last as long as this process.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).expect("the system has randomness");
        Self::new(&[key])
    }

    pub fn new(keys: &[[u8; 32]]) -> Self {
        let keys = keys
            .iter()
            .map(|key| {
                // A key is named by a byte of its hash: opening tries the keys of that name.
                let id = Sha256::digest(key)[0];
                (id, LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES key")))
            })
            .collect();
        KeyRing { keys }
    }

    /// Seals claims under the current key (as [`KeyRing::seal_bytes`] with no associated data).
    pub fn seal(&self, claims: &Claims) -> String {
        self.seal_bytes(&serde_json::to_vec(claims).expect("claims serialize"), b"")
    }

    /// The claims of a token sealed under any key of the ring; None for anything else.
    pub fn open(&self, token: &str) -> Option<Claims> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        serde_json::from_slice(&self.open_bytes(token, b"")?).ok()
    }

    /// Seals `plain` under the current key, bound to `aad` (associated data: not in the
    /// output, and needed to open it): `format, key id, nonce, ciphertext+tag`, base64url.
    /// What is sealed for one purpose or place (a store key, say) opens nowhere else.
    pub fn seal_bytes(&self, plain: &[u8], aad: &[u8]) -> String {
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("the system has randomness");
        let header = [FORMAT, *id];
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(associated(header, aad)),
            &mut sealed,
        )
        .expect("sealing cannot fail with a valid key");
        let mut token = Vec::with_capacity(2 + NONCE_LEN + sealed.len());
        token.extend_from_slice(&header);
        token.extend_from_slice(&nonce);
        token.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// What `sealed` holds, if a key of the ring sealed it with this very `aad`.
    pub fn open_bytes(&self, sealed: &str, aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() > MAX_SEALED_BYTES {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < 2 + NONCE_LEN || bytes[0] != FORMAT {
            return None;
        }
        let (header, rest) = bytes.split_at(2);
        let header: [u8; 2] = header.try_into().ok()?;
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let associated = associated(header, aad);
        self.keys.iter().filter(|(id, _)| *id == header[1]).find_map(|(_, key)| {
            let mut sealed = sealed.to_vec();
            let plain =
                key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(&associated[..]), &mut sealed).ok()?;
            Some(plain.to_vec())
        })
    }
}

/// Stored upstream tokens and consent states are sealed with the ring.
impl crate::upstream::identity::store::Seal for KeyRing {
    fn seal_bytes(&self, plain: &[u8], aad: &[u8]) -> String {
        KeyRing::seal_bytes(self, plain, aad)
    }

    fn open_bytes(&self, sealed: &str, aad: &[u8]) -> Option<Vec<u8>> {
        KeyRing::open_bytes(self, sealed, aad)
    }
}

/// The header, then the caller's associated data: with none, exactly what session tokens
/// have always been sealed with, so tokens sealed before still open.
fn associated(header: [u8; 2], aad: &[u8]) -> Vec<u8> {
    let mut associated = Vec::with_capacity(2 + aad.len());
    associated.extend_from_slice(&header);
    associated.extend_from_slice(aad);
    associated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            route: "acme/tools".into(),
            principal: binding("api-key alice"),
            version: "2025-11-25".into(),
            capabilities: serde_json::value::RawValue::from_string(r#"{"sampling":{}}"#.into()).unwrap(),
            issued: 1_790_000_000,
            upstreams: vec![(
                "alpha~alpha".into(),
                Held { id: "0123456789abcdef0123456789abcdef".into(), version: "2025-11-25".into() },
            )],
        }
    }

    #[test]
    fn tokens_open_with_any_key_of_the_ring_and_nothing_else() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let token = KeyRing::new(&[old]).seal(&claims());
        let opened = KeyRing::new(&[old]).open(&token).expect("opens");
        assert_eq!((opened.route.as_str(), opened.principal.as_str()), ("acme/tools", claims().principal.as_str()));
        assert_eq!(
            (opened.version.as_str(), opened.capabilities.get(), opened.issued),
            ("2025-11-25", r#"{"sampling":{}}"#, 1_790_000_000)
        );
        assert!(KeyRing::new(&[new, old]).open(&token).is_some(), "rotation: the old key still opens");
        assert!(KeyRing::new(&[new]).open(&token).is_none(), "the old key dropped");
        assert_eq!(opened.upstreams, claims().upstreams);
        assert!(token.len() < 300, "compact: {} bytes", token.len());
    }

    #[test]
    fn sealed_bytes_open_only_with_their_associated_data() {
        let ring = KeyRing::new(&[[3u8; 32]]);
        let sealed = ring.seal_bytes(b"refresh me", b"manifold:tokens:acme/github/aa");
        assert_eq!(ring.open_bytes(&sealed, b"manifold:tokens:acme/github/aa").as_deref(), Some(&b"refresh me"[..]));
        assert!(ring.open_bytes(&sealed, b"manifold:tokens:acme/github/bb").is_none(), "another key's data");
        assert!(ring.open_bytes(&sealed, b"").is_none(), "no associated data");
        assert!(ring.open(&sealed).is_none(), "not a session token");
        assert!(KeyRing::new(&[[4u8; 32]]).open_bytes(&sealed, b"manifold:tokens:acme/github/aa").is_none());
        let session = ring.seal(&claims());
        assert!(ring.open_bytes(&session, b"manifold:tokens:acme/github/aa").is_none(), "a session token is no entry");
    }

    #[test]
    fn a_tampered_token_does_not_open() {
        let ring = KeyRing::new(&[[7u8; 32]]);
        let token = ring.seal(&claims());
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for at in [0, 1, 5, bytes.len() / 2, bytes.len() - 1] {
            bytes[at] ^= 1;
            assert!(ring.open(&URL_SAFE_NO_PAD.encode(&bytes)).is_none(), "byte {at} flipped");
            bytes[at] ^= 1;
        }
        assert!(ring.open(&token[..token.len() - 2]).is_none());
        assert!(ring.open("not a token").is_none());
        assert!(ring.open("").is_none());
    }

    #[test]
    fn key_files_hold_base64_keys_one_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(
            &path,
            format!("# current first\n{}\n\n{}\n", STANDARD.encode([2u8; 32]), STANDARD.encode([1u8; 32])),
        )
        .unwrap();
        let token = KeyRing::new(&[[1u8; 32]]).seal(&claims());
        assert!(KeyRing::from_file(&path).unwrap().open(&token).is_some());
        std::fs::write(&path, "c2hvcnQ=\n").unwrap();
        assert!(KeyRing::from_file(&path).err().unwrap().contains(":1: a key must be 32 bytes"));
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(KeyRing::from_file(&path).err().unwrap().contains("holds no key"));
    }
}
