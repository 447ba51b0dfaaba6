//! Asking a caller for consent: when a mount needs the caller's own upstream token and has
//! none, the client is given the gateway's consent link as a URL-mode elicitation, in the
//! shape its revision has: a `-32042` error listing it (2025-11-25), or an
//! `InputRequiredResult` asking it (2026-07-28), whose answer in the retry is the gateway's
//! own and never reaches the upstream.

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::jsonrpc::{RpcError, raw};
use crate::protocol::code::URL_ELICITATION_REQUIRED;

/// The key of the gateway's consent among a stateless request's `inputRequests`.
pub const CONSENT_INPUT: &str = "dev.manifold/consent";

/// The answer to a request a mount cannot serve until the caller consents at `url`: an
/// error for a client of a session revision, a result asking for input for a stateless one.
pub fn consent_required(
    stateless: bool,
    server: &str,
    url: &str,
    elicitation_id: &str,
) -> Result<Box<RawValue>, RpcError> {
    let message = format!(
        "Mounted server `{server}` acts for you with your own account: open {url} to sign in and allow it, then try again."
    );
    let elicitation = json!({ "mode": "url", "elicitationId": elicitation_id, "url": url, "message": message });
    if !stateless {
        let data = Some(json!({ "elicitations": [elicitation] }));
        return Err(RpcError { code: URL_ELICITATION_REQUIRED, message, data });
    }
    Ok(raw(&json!({
        "resultType": "input_required",
        "inputRequests": { CONSENT_INPUT: { "method": "elicitation/create", "params": elicitation } },
    })))
}

/// `params` without the client's answer to the gateway's consent request, if they hold
/// one: the upstream never asked it.
pub fn without_consent_response(params: &RawValue) -> Option<Box<RawValue>> {
    if !params.get().contains(CONSENT_INPUT) {
        return None;
    }
    let mut params: Map<String, Value> = serde_json::from_str(params.get()).ok()?;
    let Some(Value::Object(responses)) = params.get_mut("inputResponses") else { return None };
    responses.remove(CONSENT_INPUT)?;
    if responses.is_empty() {
        params.remove("inputResponses");
    }
    Some(raw(&params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_client_gets_the_link_as_a_url_elicitation_error() {
        let error =
            consent_required(false, "github", "https://gw/.manifold/oauth2/start?state=s", "e1").expect_err("an error");
        assert_eq!(error.code, -32042);
        let data = error.data.expect("data lists the elicitations");
        assert_eq!(data["elicitations"][0]["mode"], "url");
        assert_eq!(data["elicitations"][0]["url"], "https://gw/.manifold/oauth2/start?state=s");
        assert_eq!(data["elicitations"][0]["elicitationId"], "e1");
        assert!(error.message.contains("`github`") && error.message.contains("state=s"), "{}", error.message);
    }

    #[test]
    fn a_stateless_client_is_asked_for_input() {
        let result = consent_required(true, "github", "https://x/", "e2").expect("a result");
        let result: Value = serde_json::from_str(result.get()).unwrap();
        assert_eq!(result["resultType"], "input_required");
        let asked = &result["inputRequests"][CONSENT_INPUT];
        assert_eq!(
            (asked["method"].as_str(), asked["params"]["mode"].as_str()),
            (Some("elicitation/create"), Some("url"))
        );
    }

    #[test]
    fn the_answer_to_the_consent_request_is_not_forwarded() {
        let retry = raw(&json!({ "name": "t", "inputResponses": { CONSENT_INPUT: { "action": "accept" } } }));
        let stripped = without_consent_response(&retry).expect("stripped");
        assert_eq!(serde_json::from_str::<Value>(stripped.get()).unwrap(), json!({ "name": "t" }));
        let mixed = raw(&json!({ "inputResponses": { CONSENT_INPUT: {}, "upstream": { "action": "accept" } } }));
        let kept = without_consent_response(&mixed).expect("stripped");
        assert_eq!(
            serde_json::from_str::<Value>(kept.get()).unwrap(),
            json!({ "inputResponses": { "upstream": { "action": "accept" } } })
        );
        assert!(without_consent_response(&raw(&json!({ "name": "t" }))).is_none(), "nothing to strip");
    }
}
