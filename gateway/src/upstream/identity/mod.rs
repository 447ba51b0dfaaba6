//! Outbound identity: what the gateway sends a sub-server, per call, to say who calls. A
//! mount's [`Identity`] turns the caller ([`Principal`]) into an `Authorization` value: a
//! client-credentials token shared by every caller, the caller's JWT exchanged (RFC 8693) or
//! forwarded, a JWT the gateway signs, or the caller's own token from a consent flow. What it
//! cannot get is [`Denied`], and only that mount's calls fail.

mod forward;
mod grant;
pub mod per_user;
pub mod store;

use std::sync::Arc;

use http::HeaderValue;
use manifold_api::config::OutboundAuth;

use crate::access::Principal;
pub use store::Tokens;

/// How one mount's calls get their credential.
pub struct Identity {
    provider: Provider,
}

enum Provider {
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The caller has not consented yet (or its consent lapsed): it should visit `url`.
    Consent {
        /// The gateway's consent link for this caller and mount.
        url: String,
        /// Names this request for consent (URL-mode elicitation's `elicitationId`).
        elicitation_id: String,
    },
    /// The caller's own credential cannot serve this mount (no JWT, another audience): why.
    Caller(String),
    /// The identity provider failed or refused the gateway: why, without secrets.
    Provider(String),
}

impl Identity {
    /// The identity `config` describes for the mount at `place`; `egress` says where token
    /// endpoints may be.
    pub fn new(config: &OutboundAuth, egress: manifold_runtime::egress::Egress, place: &Place) -> Result<Self, String> {
        let provider = match config {
            OutboundAuth::ForwardCallerToken(forward) => Provider::Forward(forward::Forward::new(forward)),
            OutboundAuth::AuthorizationCode(code) => {
                Provider::PerUser(Box::new(per_user::PerUser::new(code, egress, place)?))
            }
            other => return Err(format!("auth mode {} is not available in this gateway", other.mode())),
        };
        Ok(Identity { provider })
    }

    /// The `Authorization` value for `principal`'s call, marked sensitive.
    pub async fn credential(&self, principal: &Principal) -> Result<HeaderValue, Denied> {
        let token = match &self.provider {
            Provider::Forward(forward) => forward.token(principal)?,
            Provider::PerUser(per_user) => per_user.token(principal).await?,
        };
        bearer(&token)
    }

    /// The upstream refused `sent` (HTTP 401): it is not sent again. Returns whether a
    /// retry may get another credential (a fresh token), so the call is worth repeating.
    pub fn rejected(&self, principal: &Principal, sent: &HeaderValue) -> bool {
        match &self.provider {
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
