//! `forwardCallerToken`: the caller's own JWT, sent on unchanged, but only to the upstream
//! it was issued for (its `aud` holds the mount's audience); anything else is refused, so a
//! token for one service is never replayed to another.

use manifold_api::config::ForwardConfig;

use super::Denied;
use crate::principal::Principal;

pub struct Forward {
    audience: String,
}

impl Forward {
    pub fn new(config: &ForwardConfig) -> Self {
        Forward { audience: config.audience.clone() }
    }

    pub fn token(&self, principal: &Principal) -> Result<String, Denied> {
        let Some(token) = &principal.token else {
            return Err(Denied::Caller("this mount forwards the caller's JWT, and the caller presented none".into()));
        };
        if !principal.audiences().contains(&self.audience.as_str()) {
            return Err(Denied::Caller(format!(
                "the caller's token is not for this mount: its audience does not include `{}`",
                self.audience
            )));
        }
        Ok(token.expose().to_owned())
    }
}
