//! `oauth2ClientCredentials`: the gateway's own token for a mount (`grant_type=
//! client_credentials`), one per replica and mount config, shared by every caller. It is
//! cached until shortly before it expires and fetched by one request at a time ([`Flight`]);
//! a token the upstream refused is dropped so the next call fetches another.

use std::sync::Arc;
use std::time::Duration;

use manifold_api::config::ClientCredentialsConfig;
use manifold_runtime::egress::Egress;

use super::Denied;
use super::flight::{self, Fetched, Flight};
use super::token_endpoint::TokenEndpoint;

pub struct ClientCredentials {
    endpoint: TokenEndpoint,
    /// The grant's parameters beside `grant_type`: scope, audience, resource.
    parameters: Vec<(&'static str, String)>,
    token: Flight,
}

impl ClientCredentials {
    pub fn new(config: &ClientCredentialsConfig, egress: Egress, timeout: Duration) -> Result<Self, String> {
        let endpoint = TokenEndpoint::new(&config.client, egress, timeout)?;
        let mut parameters = vec![];
        if !config.scopes.is_empty() {
            parameters.push(("scope", config.scopes.join(" ")));
        }
        if let Some(audience) = &config.audience {
            parameters.push(("audience", audience.clone()));
        }
        if let Some(resource) = &config.resource {
            parameters.push(("resource", resource.clone()));
        }
        Ok(ClientCredentials { endpoint, parameters, token: Flight::default() })
    }

    /// The current token, fetched if there is none fresh at `now` (Unix ms).
    pub async fn token(&self, now: u64) -> Result<Arc<str>, Denied> {
        self.token.get(now, || self.fetch(now)).await
    }

    async fn fetch(&self, now: u64) -> Result<Fetched, Denied> {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(self.parameters.iter().map(|(name, value)| (*name, value.as_str())));
        let granted = self.endpoint.grant(&form).await.map_err(|error| Denied::Provider(error.to_string()))?;
        let lifetime = granted.lifetime().as_millis() as u64;
        Ok(Fetched { token: granted.access_token.into(), refresh_at: flight::refresh_at(now, lifetime) })
    }

    /// The upstream refused `sent`: drop it unless a newer one replaced it already. A retry
    /// always gets another token.
    pub fn rejected(&self, sent: &str) -> bool {
        self.token.forget(sent);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::HeaderValue;
    use manifold_api::config::OutboundAuth;
    use serde_json::json;

    use super::*;
    use crate::upstream::identity::Identity;
    use crate::upstream::identity::testing::{self, TokenServer, granted};

    fn config(url: &str) -> ClientCredentialsConfig {
        ClientCredentialsConfig {
            client: testing::client(url),
            scopes: vec!["read".into(), "write".into()],
            audience: Some("https://api.test".into()),
            resource: Some("https://api.test/v1".into()),
        }
    }

    fn identity(url: &str) -> Identity {
        crate::upstream::identity::testing::identity(&OutboundAuth::ClientCredentials(config(url)))
    }

    fn anyone() -> crate::principal::Principal {
        testing::caller("alice", None, testing::no_claims())
    }

    fn bearer(token: &str) -> HeaderValue {
        HeaderValue::try_from(format!("Bearer {token}")).expect("a header value")
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_token_request() {
        let server = TokenServer::start().await;
        let identity = identity(&server.url);
        let principal = anyone();
        let calls = (0..50).map(|_| identity.credential(&principal));
        let credentials = futures::future::join_all(calls).await;
        for credential in credentials {
            assert_eq!(credential.expect("a credential"), bearer("token-1"));
        }
        let [received] = &server.received()[..] else { panic!("one token request, not {}", server.count()) };
        let form = |name: &str| received.form.get(name).map(String::as_str);
        assert_eq!(form("grant_type"), Some("client_credentials"));
        assert_eq!(form("scope"), Some("read write"));
        assert_eq!(form("audience"), Some("https://api.test"));
        assert_eq!(form("resource"), Some("https://api.test/v1"));
        assert_eq!(form("client_secret"), Some("s3cret-value"));
    }

    /// The gateway's worker threads each run their own runtime: they too wait for one fetch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_on_other_worker_threads_share_one_token_request() {
        let server =
            TokenServer::answering(Duration::from_millis(200), |_, n| (200, granted(&format!("token-{n}"), 3600)))
                .await;
        let identity = Arc::new(identity(&server.url));
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (identity, barrier) = (identity.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let runtime =
                        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
                    barrier.wait();
                    let principal = anyone();
                    runtime.block_on(futures::future::join_all((0..10).map(|_| identity.credential(&principal))))
                })
            })
            .collect();
        let credentials = tokio::task::spawn_blocking(move || {
            workers.into_iter().flat_map(|worker| worker.join().expect("a worker")).collect::<Vec<_>>()
        })
        .await
        .expect("the workers");
        assert_eq!(credentials.len(), 40);
        for credential in credentials {
            assert_eq!(credential.expect("a credential"), bearer("token-1"));
        }
        assert_eq!(server.count(), 1);
    }

    #[tokio::test]
    async fn a_token_is_refreshed_a_tenth_of_its_lifetime_before_it_expires() {
        let server = TokenServer::answering(Duration::ZERO, |_, n| (200, granted(&format!("token-{n}"), 100))).await;
        let client =
            ClientCredentials::new(&config(&server.url), Egress::default(), Duration::from_secs(10)).expect("valid");
        let start = flight::now_ms();
        assert_eq!(&*client.token(start).await.expect("a token"), "token-1");
        assert_eq!(&*client.token(start + 89_999).await.expect("a token"), "token-1");
        assert_eq!(server.count(), 1);
        assert_eq!(&*client.token(start + 90_000).await.expect("a token"), "token-2");
        assert_eq!(server.count(), 2);
    }

    #[test]
    fn the_refresh_margin_is_a_tenth_of_the_lifetime_up_to_30_seconds() {
        assert_eq!(flight::refresh_at(1_000, 1_000), 1_900);
        assert_eq!(flight::refresh_at(1_000, 100_000), 91_000);
        assert_eq!(flight::refresh_at(1_000, 3_600_000), 3_571_000);
        assert_eq!(flight::refresh_at(1_000, 0), 1_000);
    }

    #[tokio::test]
    async fn a_token_that_expires_is_replaced() {
        let server = TokenServer::answering(Duration::ZERO, |_, n| (200, granted(&format!("token-{n}"), 1))).await;
        let identity = identity(&server.url);
        let principal = anyone();
        assert_eq!(identity.credential(&principal).await.expect("a credential"), bearer("token-1"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let credential = identity.credential(&principal).await.expect("a credential");
            if credential != bearer("token-1") {
                assert_eq!(credential, bearer("token-2"));
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the token was never refreshed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(server.count(), 2);
    }

    #[tokio::test]
    async fn a_rejected_token_is_fetched_anew_but_a_newer_one_is_kept() {
        let server = TokenServer::start().await;
        let identity = identity(&server.url);
        let principal = anyone();
        let first = identity.credential(&principal).await.expect("a credential");
        assert!(identity.rejected(&principal, &first));
        let second = identity.credential(&principal).await.expect("a credential");
        assert_eq!(second, bearer("token-2"));
        // A late 401 for the first token must not throw the second away.
        assert!(identity.rejected(&principal, &first));
        assert_eq!(identity.credential(&principal).await.expect("a credential"), bearer("token-2"));
        assert_eq!(server.count(), 2);
    }

    #[tokio::test]
    async fn callers_waiting_for_a_failed_fetch_share_its_failure() {
        let server = TokenServer::answering(Duration::ZERO, |_, _| {
            (401, json!({ "error": "invalid_client", "error_description": "unknown client gateway" }))
        })
        .await;
        let identity = identity(&server.url);
        let principal = anyone();
        let denials = futures::future::join_all((0..10).map(|_| identity.credential(&principal))).await;
        let expected = format!("the token endpoint {} refused: invalid_client: unknown client gateway", server.url);
        for denial in denials {
            assert_eq!(denial, Err(Denied::Provider(expected.clone())));
        }
        assert_eq!(server.count(), 1);
        // The next caller asks again.
        assert_eq!(identity.credential(&principal).await, Err(Denied::Provider(expected)));
        assert_eq!(server.count(), 2);
    }

    #[tokio::test]
    async fn a_provider_that_is_down_denies_with_its_url_and_no_secret() {
        let url = testing::closed_url().await;
        let denied = identity(&url).credential(&anyone()).await;
        let Err(Denied::Provider(message)) = denied else { panic!("not a provider denial: {denied:?}") };
        let prefix = format!("the token endpoint {url} cannot be reached: ");
        assert!(message.starts_with(&prefix), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }
}
