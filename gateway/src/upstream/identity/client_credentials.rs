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
        let granted =
            self.endpoint.grant(&form).await.map_err(|error| {
                Denied::Provider(format!("cannot get this mount's client-credentials token: {error}"))
            })?;
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
