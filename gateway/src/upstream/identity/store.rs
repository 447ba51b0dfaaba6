//! Per-user upstream tokens at rest: an [`Entry`] per tenant namespace, McpServer and
//! principal, sealed with the gateway's key ring under its own store key as associated data
//! (an entry copied under another key does not open), and single-use consent markers. They
//! live in Redis (shared by every replica), a file (local mode: a restart keeps consents) or
//! this process's memory (tests).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::policy::cluster::RedisUrl;

/// Entries are kept at most this long (a refresh token's life when the provider says none).
pub const MAX_ENTRY_LIFE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest one store operation may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
const TOKENS_PREFIX: &str = "manifold:tokens:";
const CONSENT_PREFIX: &str = "manifold:consent:";

/// What seals entries and consent states: the gateway's key ring (`mcp::seal::KeyRing`),
/// AES-256-GCM with associated data.
pub trait Seal: Send + Sync {
    fn seal_bytes(&self, plain: &[u8], aad: &[u8]) -> String;
    /// None unless `sealed` was sealed by a key of the ring with this very `aad`.
    fn open_bytes(&self, sealed: &str, aad: &[u8]) -> Option<Vec<u8>>;
}

/// One principal's tokens for one McpServer.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct Entry {
    #[serde(rename = "a")]
    pub access_token: String,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token expires, seconds since the epoch.
    #[serde(rename = "e")]
    pub expires_at: u64,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("refreshable", &self.refresh_token.is_some())
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Where an entry lives: `manifold:tokens:<namespace>/<server>/<hex SHA-256 of the identity>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key(String);

impl Key {
    pub fn new(namespace: &str, server: &str, identity: &str) -> Self {
        Self::from_hash(namespace, server, &principal_hash(identity))
    }

    /// The key for a principal known by its [`principal_hash`].
    pub fn from_hash(namespace: &str, server: &str, principal: &str) -> Self {
        Key(format!("{TOKENS_PREFIX}{namespace}/{server}/{principal}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Hex SHA-256 of a principal's identity (`jwt <issuer> <sub>`, `api-key <name>`).
pub fn principal_hash(identity: &str) -> String {
    hex::encode(Sha256::digest(identity.as_bytes()))
}

/// Where `--token-store` keeps entries.
#[derive(Clone, Debug)]
pub enum Setting {
    Redis(RedisUrl),
    File(PathBuf),
}

impl FromStr for Setting {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.contains("://") {
            return text.parse().map(Setting::Redis);
        }
        if text.is_empty() {
            return Err("expected redis://[user:password@]host:port[/db] or a file path".into());
        }
        Ok(Setting::File(text.into()))
    }
}

/// The store failed (the entry may or may not be there): what and where, without secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the token store ({place}) failed: {why}")]
pub struct StoreError {
    place: String,
    why: String,
}

/// Per-user tokens and consent markers, sealed with the gateway's ring.
pub struct Tokens {
    backend: Backend,
    ring: Arc<dyn Seal>,
}

enum Backend {
    Memory(Mutex<BTreeMap<String, Stored>>),
    File { path: PathBuf, map: Mutex<BTreeMap<String, Stored>> },
    Redis { connection: ConnectionManager, url: RedisUrl },
}

/// A value and when it goes, seconds since the epoch.
#[derive(Serialize, Deserialize, Clone)]
struct Stored {
    #[serde(rename = "v")]
    value: String,
    #[serde(rename = "x")]
    expires: u64,
}

impl Tokens {
    /// Kept by this process only: consents are lost with it.
    pub fn memory(ring: Arc<dyn Seal>) -> Self {
        Tokens { backend: Backend::Memory(Mutex::default()), ring }
    }

    /// Kept in `path` (one JSON map, mode 0600, rewritten whole on each change), read now.
    pub fn file(path: &Path, ring: Arc<dyn Seal>) -> Result<Self, String> {
        let map = match std::fs::read(path) {
            Ok(bytes) => {
                restrict(path).map_err(|e| format!("--token-store {}: cannot make it private: {e}", path.display()))?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| format!("--token-store {}: not a token store ({e})", path.display()))?
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(format!("--token-store {}: cannot read it: {error}", path.display())),
        };
        Ok(Tokens { backend: Backend::File { path: path.to_path_buf(), map: Mutex::new(map) }, ring })
    }

    /// Kept in Redis, connected lazily: the gateway starts whether or not it answers yet.
    /// Needs a Tokio runtime, which runs the connection.
    pub fn redis(url: &RedisUrl, ring: Arc<dyn Seal>) -> Result<Self, String> {
        let client = url.client().map_err(|e| format!("--token-store {url}: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|e| format!("--token-store {url}: {e}"))?;
        Ok(Tokens { backend: Backend::Redis { connection, url: url.clone() }, ring })
    }

    /// The ring entries (and consent states) are sealed with.
    pub fn ring(&self) -> &dyn Seal {
        &*self.ring
    }

    /// Where entries live, for logs.
    pub fn place(&self) -> String {
        match &self.backend {
            Backend::Memory(_) => "memory".into(),
            Backend::File { path, .. } => path.display().to_string(),
            Backend::Redis { url, .. } => url.to_string(),
        }
    }

    /// The entry under `key`; none when there is none, it expired, or it does not open
    /// (sealed under a key the ring no longer holds, or copied from another key).
    pub async fn get(&self, key: &Key) -> Result<Option<Entry>, StoreError> {
        let Some(sealed) = self.read(key.as_str()).await? else { return Ok(None) };
        let entry = self
            .ring
            .open_bytes(&sealed, key.as_str().as_bytes())
            .and_then(|plain| serde_json::from_slice::<Entry>(&plain).ok());
        if entry.is_none() {
            tracing::debug!(key = key.as_str(), "a stored token entry does not open with the ring: ignored");
        }
        Ok(entry)
    }

    /// Stores `entry` under `key` for `life` (at most [`MAX_ENTRY_LIFE`]).
    pub async fn put(&self, key: &Key, entry: &Entry, life: Duration) -> Result<(), StoreError> {
        let plain = serde_json::to_vec(entry).expect("entries serialize");
        let sealed = self.ring.seal_bytes(&plain, key.as_str().as_bytes());
        self.write(key.as_str(), sealed, life.min(MAX_ENTRY_LIFE).max(Duration::from_secs(1))).await
    }

    pub async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Memory(map) => {
                map.lock().expect("token map lock").remove(key.as_str());
                Ok(())
            }
            Backend::File { path, map } => {
                let mut map = map.lock().expect("token file lock");
                map.remove(key.as_str());
                self.save(path, &mut map)
            }
            Backend::Redis { connection, .. } => {
                let mut connection = connection.clone();
                self.ask(connection.del::<_, i64>(key.as_str())).await.map(drop)
            }
        }
    }

    /// Marks `marker` used for `life`: true the first time, false once it is marked.
    pub async fn use_once(&self, marker: &str, life: Duration) -> Result<bool, StoreError> {
        let key = format!("{CONSENT_PREFIX}{marker}");
        let stored = Stored { value: String::new(), expires: now() + life.as_secs().max(1) };
        match &self.backend {
            Backend::Memory(map) => Ok(mark(&mut map.lock().expect("token map lock"), &key, stored)),
            Backend::File { path, map } => {
                let mut map = map.lock().expect("token file lock");
                if !mark(&mut map, &key, stored) {
                    return Ok(false);
                }
                self.save(path, &mut map).map(|()| true)
            }
            Backend::Redis { connection, .. } => {
                let mut connection = connection.clone();
                let options = redis::SetOptions::default()
                    .conditional_set(redis::ExistenceCheck::NX)
                    .with_expiration(redis::SetExpiry::EX(life.as_secs().max(1)));
                let set: Option<String> = self.ask(connection.set_options(&key, "1", options)).await?;
                Ok(set.is_some())
            }
        }
    }

    async fn read(&self, key: &str) -> Result<Option<String>, StoreError> {
        match &self.backend {
            Backend::Memory(map) | Backend::File { map, .. } => {
                let map = map.lock().expect("token map lock");
                Ok(map.get(key).filter(|stored| stored.expires > now()).map(|stored| stored.value.clone()))
            }
            Backend::Redis { connection, .. } => {
                let mut connection = connection.clone();
                self.ask(connection.get(key)).await
            }
        }
    }

    async fn write(&self, key: &str, value: String, life: Duration) -> Result<(), StoreError> {
        let stored = Stored { value, expires: now() + life.as_secs() };
        match &self.backend {
            Backend::Memory(map) => {
                map.lock().expect("token map lock").insert(key.to_owned(), stored);
                Ok(())
            }
            Backend::File { path, map } => {
                let mut map = map.lock().expect("token file lock");
                map.insert(key.to_owned(), stored);
                self.save(path, &mut map)
            }
            Backend::Redis { connection, .. } => {
                let mut connection = connection.clone();
                self.ask(connection.set_ex(key, stored.value, life.as_secs())).await
            }
        }
    }

    /// Writes the map (without what expired) to a temporary file, then renames it over
    /// `path`: a crash leaves the old file or the new one, never half of one.
    fn save(&self, path: &Path, map: &mut BTreeMap<String, Stored>) -> Result<(), StoreError> {
        let now = now();
        map.retain(|_, stored| stored.expires > now);
        let text = serde_json::to_vec(&*map).expect("the token map serializes");
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let written = (|| {
            use std::io::Write;
            // Created afresh, so it gets mode 0600 whatever an earlier one had.
            let _ = std::fs::remove_file(&temporary);
            let mut file = private_file(&temporary)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&temporary, path)
        })();
        written.map_err(|e| StoreError { place: path.display().to_string(), why: e.to_string() })
    }

    async fn ask<T>(&self, command: impl Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
        let place = || self.place();
        match tokio::time::timeout(REDIS_TIMEOUT, command).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(StoreError { place: place(), why: error.to_string() }),
            Err(_) => {
                Err(StoreError { place: place(), why: format!("no answer within {} s", REDIS_TIMEOUT.as_secs()) })
            }
        }
    }
}

/// Marks `key` in `map` unless it is marked and unexpired: whether it was marked now.
fn mark(map: &mut BTreeMap<String, Stored>, key: &str, stored: Stored) -> bool {
    if map.get(key).is_some_and(|held| held.expires > now()) {
        return false;
    }
    map.insert(key.to_owned(), stored);
    true
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
}

/// Makes an existing store file readable by its owner only.
#[cfg(unix)]
fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::seal::KeyRing;

    fn ring() -> Arc<dyn Seal> {
        Arc::new(KeyRing::new(&[[9u8; 32]]))
    }

    fn entry(access: &str) -> Entry {
        Entry {
            access_token: access.into(),
            refresh_token: Some(format!("{access}-refresh")),
            // Fixed, so two entries made a second apart are equal.
            expires_at: 4_000_000_000,
            scope: Some("repo".into()),
        }
    }

    /// Every backend: entries by key, sealed to their key, and markers used once.
    async fn behaves(tokens: &Tokens) {
        let alice = Key::new("acme", "github", "jwt https://idp alice");
        let bob = Key::new("acme", "github", "jwt https://idp bob");
        assert_eq!(tokens.get(&alice).await.unwrap(), None);
        tokens.put(&alice, &entry("alice-token"), Duration::from_secs(60)).await.unwrap();
        assert_eq!(tokens.get(&alice).await.unwrap(), Some(entry("alice-token")));
        assert_eq!(tokens.get(&bob).await.unwrap(), None);
        for other in
            [Key::new("other", "github", "jwt https://idp alice"), Key::new("acme", "gitlab", "jwt https://idp alice")]
        {
            assert_eq!(tokens.get(&other).await.unwrap(), None, "{other:?}");
        }
        // Alice's sealed value copied under Bob's key does not open there.
        let sealed = tokens.read(alice.as_str()).await.unwrap().expect("alice's entry is stored");
        tokens.write(bob.as_str(), sealed, Duration::from_secs(60)).await.unwrap();
        assert_eq!(tokens.get(&bob).await.unwrap(), None, "an entry copied under another principal's key");
        tokens.delete(&alice).await.unwrap();
        assert_eq!(tokens.get(&alice).await.unwrap(), None);
        assert!(tokens.use_once("nonce-1", Duration::from_secs(60)).await.unwrap());
        assert!(!tokens.use_once("nonce-1", Duration::from_secs(60)).await.unwrap(), "a marker is used once");
        assert!(tokens.use_once("nonce-2", Duration::from_secs(60)).await.unwrap());
    }

    #[tokio::test]
    async fn memory_keeps_entries_per_key() {
        behaves(&Tokens::memory(ring())).await;
    }

    #[tokio::test]
    async fn the_file_survives_reopening_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        behaves(&Tokens::file(&path, ring()).unwrap()).await;
        let carol = Key::new("acme", "github", "api-key carol");
        Tokens::file(&path, ring()).unwrap().put(&carol, &entry("carol-token"), Duration::from_secs(60)).await.unwrap();
        let reopened = Tokens::file(&path, ring()).unwrap();
        assert_eq!(reopened.get(&carol).await.unwrap(), Some(entry("carol-token")), "a restart keeps consents");
        assert!(!reopened.use_once("nonce-1", Duration::from_secs(60)).await.unwrap(), "used markers too");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("carol-token"), "sealed at rest: {text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let rotated = Tokens::file(&path, Arc::new(KeyRing::new(&[[8u8; 32]]))).unwrap();
        assert_eq!(rotated.get(&carol).await.unwrap(), None, "a ring without the sealing key opens nothing");
        std::fs::write(&path, "not json").unwrap();
        let error = Tokens::file(&path, ring()).err().expect("a broken file is refused");
        assert!(error.starts_with(&format!("--token-store {}: not a token store", path.display())), "{error}");
    }

    #[tokio::test]
    async fn redis_keeps_entries_across_replicas() {
        let Some(server) = RedisServer::start() else {
            eprintln!(
                "SKIPPED redis_keeps_entries_across_replicas: no redis-server on PATH (scripts/install-redis.sh)"
            );
            return;
        };
        let url: RedisUrl = format!("redis://127.0.0.1:{}/0", server.port).parse().unwrap();
        let tokens = Tokens::redis(&url, ring()).unwrap();
        behaves(&tokens).await;
        let carol = Key::new("acme", "github", "api-key carol");
        tokens.put(&carol, &entry("carol-token"), Duration::from_secs(60)).await.unwrap();
        let replica = Tokens::redis(&url, ring()).unwrap();
        assert_eq!(replica.get(&carol).await.unwrap(), Some(entry("carol-token")), "another replica reads it");
        let ttl = server.cli(&["TTL", carol.as_str()]);
        let ttl: u64 = ttl.trim().parse().unwrap_or_else(|_| panic!("TTL answered {ttl}"));
        assert!((1..=60).contains(&ttl), "entries expire: TTL {ttl}");
        let raw = server.cli(&["GET", carol.as_str()]);
        assert!(!raw.contains("carol-token") && !raw.is_empty(), "sealed at rest");
        assert_eq!(server.cli(&["EXISTS", "manifold:consent:nonce-1"]).trim(), "1");
        drop(server);
        let error = replica.get(&carol).await.unwrap_err().to_string();
        assert!(error.starts_with(&format!("the token store ({url}) failed: ")), "{error}");
    }

    /// A `redis-server` on a free port, keeping nothing on disk, killed when dropped.
    struct RedisServer {
        child: std::process::Child,
        port: u16,
    }

    impl RedisServer {
        fn start() -> Option<Self> {
            let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
            let child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .ok()?;
            let server = RedisServer { child, port };
            // Waits for it to answer; a server that never does fails the test here.
            for _ in 0..200 {
                if server.try_cli(&["PING"]).is_some_and(|answer| answer.trim() == "PONG") {
                    return Some(server);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("redis-server on port {port} did not answer PING");
        }

        fn try_cli(&self, args: &[&str]) -> Option<String> {
            let output = std::process::Command::new("redis-cli")
                .args(["-p", &self.port.to_string()])
                .args(args)
                .output()
                .ok()?;
            output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
        }

        fn cli(&self, args: &[&str]) -> String {
            self.try_cli(args).unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
