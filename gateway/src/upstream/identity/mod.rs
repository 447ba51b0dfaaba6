//! Outbound identity: what the gateway sends a sub-server, per call, to say who calls. A
//! mount's [`Identity`] turns the caller ([`Principal`]) into an `Authorization` value: a
//! client-credentials token shared by every caller, the caller's JWT exchanged (RFC 8693) or
//! forwarded, a JWT the gateway signs, or the caller's own token from a consent flow. What it
//! cannot get is [`Denied`], and only that mount's calls fail.

mod client_credentials;
mod exchange;
mod flight;
mod forward;
pub mod per_user;
mod signed;
pub mod store;
#[cfg(test)]
mod testing;
pub mod token_endpoint;

use std::sync::Arc;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use manifold_api::config::OutboundAuth;

use crate::principal::Principal;
pub use store::Tokens;

/// How long a token endpoint may take to answer.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How one mount's calls get their credential.
pub struct Identity {
    provider: Provider,
}

enum Provider {
    ClientCredentials(client_credentials::ClientCredentials),
    Exchange(exchange::Exchange),
    /// Boxed: a signing key and its JWT header are large beside the others.
    Signed(Box<signed::Signed>),
    Forward(forward::Forward),
    PerUser(Box<per_user::PerUser>),
}

/// Where a mount is served, and the gateway's per-user token store: what per-user tokens
/// are kept under, and where consent links lead back to.
pub struct Place<'a> {
    /// The route's (and McpServer's) namespace: the tenant.
    pub namespace: &'a str,
    /// The route's name.
    pub route: &'a str,
    /// The McpServer's name.
    pub server: &'a str,
    pub tokens: &'a Arc<Tokens>,
}

/// Why a call to a mount cannot carry a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("needs your consent first: open {url} to allow it to act for you")]
    /// The caller has not consented yet (or its consent lapsed): it should visit `url`.
    Consent {
        /// The gateway's consent link for this caller and mount.
        url: String,
        /// Names this request for consent (URL-mode elicitation's `elicitationId`).
        elicitation_id: String,
    },
    /// The caller's own credential cannot serve this mount (no JWT, another audience): why.
    #[error("{0}")]
    Caller(String),
    /// The identity provider failed or refused the gateway: why, without secrets.
    #[error("could not get a credential for it: {0}")]
    Provider(String),
}

impl Identity {
    /// The identity `config` describes for the mount at `place`; `egress` says where token
    /// endpoints may be.
    pub fn new(config: &OutboundAuth, egress: manifold_runtime::egress::Egress, place: &Place) -> Result<Self, String> {
        let provider = match config {
            OutboundAuth::ClientCredentials(config) => {
                Provider::ClientCredentials(client_credentials::ClientCredentials::new(config, egress, TOKEN_TIMEOUT)?)
            }
            OutboundAuth::TokenExchange(config) => {
                Provider::Exchange(exchange::Exchange::new(config, egress, TOKEN_TIMEOUT)?)
            }
            OutboundAuth::SignedJwt(config) => Provider::Signed(Box::new(signed::Signed::new(config)?)),
            OutboundAuth::ForwardCallerToken(forward) => Provider::Forward(forward::Forward::new(forward)),
            OutboundAuth::AuthorizationCode(code) => {
                Provider::PerUser(Box::new(per_user::PerUser::new(code, egress, place)?))
            }
        };
        Ok(Identity { provider })
    }

    /// The `Authorization` value for `principal`'s call, marked sensitive.
    pub async fn credential(&self, principal: &Principal) -> Result<HeaderValue, Denied> {
        let token = match &self.provider {
            Provider::ClientCredentials(client) => client.token(flight::now_ms()).await?,
            Provider::Exchange(exchange) => exchange.token(principal, flight::now_ms()).await?,
            Provider::Signed(signed) => signed.token(principal, jsonwebtoken::get_current_timestamp())?,
            Provider::Forward(forward) => forward.token(principal)?.into(),
            Provider::PerUser(per_user) => per_user.token(principal).await?.into(),
        };
        bearer(&token)
    }

    /// The upstream refused `sent` (HTTP 401): it is not sent again. Returns whether a
    /// retry may get another credential (a fresh token), so the call is worth repeating.
    pub fn rejected(&self, principal: &Principal, sent: &HeaderValue) -> bool {
        let Some(sent) = sent.to_str().ok().and_then(|value| value.strip_prefix("Bearer ")) else {
            return false;
        };
        match &self.provider {
            Provider::ClientCredentials(client) => client.rejected(sent),
            Provider::Exchange(exchange) => exchange.rejected(principal, sent),
            Provider::Signed(signed) => signed.rejected(sent),
            Provider::Forward(_) => false,
            Provider::PerUser(per_user) => per_user.rejected(principal, sent),
        }
    }
}

/// `Bearer <token>`, sensitive, so it never reaches a log.
fn bearer(token: &str) -> Result<HeaderValue, Denied> {
    let mut value = HeaderValue::try_from(format!("Bearer {token}"))
        .map_err(|_| Denied::Provider("the token obtained is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

tokio::task_local! {
    /// The credential of the call being sent: every request to the upstream made while it is
    /// set (opening its session, the request, a reopened stream) carries it.
    static CREDENTIAL: HeaderValue;
}

/// Runs `work` with `credential` on every upstream request it makes.
pub async fn carrying<F: Future>(credential: HeaderValue, work: F) -> F::Output {
    CREDENTIAL.scope(credential, work).await
}

/// The credential in scope, to hand to a task that outlives the call (a standalone stream).
pub fn current() -> Option<HeaderValue> {
    CREDENTIAL.try_with(HeaderValue::clone).ok()
}

/// Puts the credential in scope, if any, in an upstream request's headers, and says whether
/// it did. It replaces a configured `Authorization` header: the mount's `auth` is what speaks
/// for the caller.
pub fn inject(headers: &mut HeaderMap) -> bool {
    CREDENTIAL.try_with(|credential| headers.insert(AUTHORIZATION, credential.clone())).is_ok()
}
