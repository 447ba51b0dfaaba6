//! A request to a mount through the mount's resilience: its circuit breaker, its cap on
//! requests in flight, and retries of what is safe to repeat, with jittered backoff or the
//! upstream's `Retry-After`, within the upstream's retry budget. The parts are pure
//! (`policy::resilience`); this applies them to a [`Call`]'s attempts, counts what they do and
//! times each attempt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::context::FutureExt as _;
use serde_json::value::RawValue;

use super::call::{Call, Forward};
use crate::jsonrpc::Message;
use crate::metrics::conventions::{ClientLabels, ErrorType};
use crate::metrics::{BreakerLabels, CapLabels, CapScope, RetryLabels, RetryOutcome, TransitionLabels};
use crate::policy::resilience::breaker::{Admission, State as BreakerState, Transition};
use crate::policy::resilience::retry;
use crate::protocol::Method;
use crate::snapshot::Mount;
use crate::traces;
use crate::upstream::{Observer, Reply, UpstreamError};
use manifold_runtime::metrics::LabelValue as _;

impl Call {
    /// One request to a mount, through the mount's resilience: its circuit breaker, its cap
    /// on requests in flight, and retries where the request is safe to repeat (see
    /// `may_repeat`), with jittered backoff or the upstream's `Retry-After`, within
    /// the upstream's retry budget.
    pub async fn request(
        &self,
        mount: &Mount,
        method: &str,
        params: Option<&RawValue>,
        name: Option<&str>,
    ) -> Result<(Reply, Option<u16>), UpstreamError> {
        let guard = &mount.client.guard;
        let retries = &guard.config.retries;
        let parsed = Method::parse(method);
        // One reading of the clock per attempt that succeeds: it is most of what the guard costs.
        let mut now = guard.now();
        guard.budget.request(now);
        let mut retry = 0;
        loop {
            let watched = Watched { forward: Forward::new(self, mount), sent: AtomicBool::new(false) };
            let attempt = self.guarded(mount, (parsed, method), params, name, &watched, now);
            // Each attempt is a CLIENT span of its own, current while it runs (the upstream
            // clients inject it).
            let result = match &self.gateway.tracer {
                None => attempt.await,
                Some(tracer) => {
                    let address = || mount.client.address();
                    let context = traces::client(tracer, method, name, &mount.config.server, address);
                    let result = attempt.with_context(context.clone()).await;
                    attempted(&context, method, &result);
                    result
                }
            };
            if retry > 0 {
                let outcome = if result.is_ok() { RetryOutcome::Succeeded } else { RetryOutcome::Failed };
                self.count_retry(mount, outcome);
            }
            let error = match result {
                Ok(reply) => return Ok(reply),
                Err(error) => error,
            };
            let may_have_run = watched.sent.load(Ordering::Relaxed) && !matches!(error, UpstreamError::Connect(_));
            if retry >= retries.attempts || !error.is_transient() || !self.may_repeat(mount, method, name, may_have_run)
            {
                return Err(error);
            }
            // A retry is never sent into a breaker this failure (or another request) opened:
            // the caller hears the failure itself, and the next request the open breaker.
            if guard.breaker.state() != BreakerState::Closed {
                return Err(error);
            }
            let wait = match error.retry_after() {
                Some(after) if after > Duration::from_millis(retries.max_retry_after_ms) => {
                    self.count_retry(mount, RetryOutcome::RetryAfterTooLong);
                    return Err(error);
                }
                Some(after) => after,
                None => retry::backoff(retries, retry, retry::random()),
            };
            if !guard.budget.withdraw(guard.now()) {
                self.count_retry(mount, RetryOutcome::BudgetExhausted);
                return Err(error);
            }
            tracing::debug!(mount = %mount.config.server, method, %error, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
            retry += 1;
            now = guard.now();
        }
    }

    /// Whether a request that failed may be sent again: one that provably never reached the
    /// upstream always; else lists, `resources/read` and `prompts/get`, which change nothing;
    /// and `tools/call` only of a tool whose listing declared `idempotentHint: true`, on a
    /// route that allows it. Anything else the upstream may have acted on is never re-sent.
    fn may_repeat(&self, mount: &Mount, method: &str, name: Option<&str>, may_have_run: bool) -> bool {
        if !may_have_run {
            return true;
        }
        match Method::parse(method) {
            Method::ToolsList
            | Method::PromptsList
            | Method::ResourcesList
            | Method::ResourcesTemplatesList
            | Method::ResourcesRead
            | Method::PromptsGet => true,
            Method::ToolsCall => {
                self.route.config.resilience.retry_idempotent_tools
                    && name.is_some_and(|tool| mount.client.guard.known.idempotent(tool))
            }
            _ => false,
        }
    }

    /// One attempt, if the mount's breaker and cap let it go; its outcome goes to the breaker,
    /// and its duration to the conventions' `mcp.client.operation.duration`. `method` is the
    /// method parsed and as sent.
    async fn guarded(
        &self,
        mount: &Mount,
        (parsed, method): (Method, &str),
        params: Option<&RawValue>,
        name: Option<&str>,
        observer: &Watched<'_>,
        now: u64,
    ) -> Result<(Reply, Option<u16>), UpstreamError> {
        let guard = &mount.client.guard;
        let (admission, transition) = guard.breaker.admit(now);
        self.transition(mount, transition);
        if let Admission::Refused { retry_in_ms } = admission {
            let labels = BreakerLabels { namespace: &self.route.config.namespace, mount: &mount.config.server };
            self.gateway.metrics.breaker_refusals.inc(&labels);
            return Err(UpstreamError::CircuitOpen(Duration::from_millis(retry_in_ms)));
        }
        let place = guard.cap.enter().await.map_err(|full| {
            let (namespace, route) = (&*self.route.config.namespace, &*self.route.config.name);
            self.gateway.metrics.concurrency_refusals.inc(&CapLabels { namespace, route, cap: CapScope::Upstream });
            UpstreamError::Busy(guard.cap.max_in_flight, Duration::from_secs(full.retry_after_seconds))
        })?;
        let started = Instant::now();
        let result = self.attempt(mount, method, params, name, observer).await;
        drop(place);
        self.time_attempt(mount, parsed, &result, started);
        let failed = result.as_ref().is_err_and(UpstreamError::is_failure);
        // A success counts at the time it started; a failure may open the breaker, from now.
        let transition = guard.breaker.record(if failed { guard.now() } else { now }, admission, failed);
        self.transition(mount, transition);
        result
    }

    /// Logs a breaker's change of state and counts it.
    fn transition(&self, mount: &Mount, transition: Option<Transition>) {
        let Some(Transition { from, to }) = transition else { return };
        let (namespace, server) = (&*self.route.config.namespace, &*mount.config.server);
        match to {
            BreakerState::Open => {
                let open_for_ms = mount.client.guard.config.circuit_breaker.open_for_ms;
                tracing::warn!(namespace, server, from = from.as_str(), open_for_ms, "circuit breaker opened");
            }
            _ => tracing::info!(namespace, server, from = from.as_str(), to = to.as_str(), "circuit breaker"),
        }
        let metrics = &self.gateway.metrics;
        metrics.breaker_state.set(&BreakerLabels { namespace, mount: server }, to as i64);
        metrics.breaker_transitions.inc(&TransitionLabels { namespace, mount: server, to: to.as_str() });
    }

    fn time_attempt(
        &self,
        mount: &Mount,
        method: Method,
        result: &Result<(Reply, Option<u16>), UpstreamError>,
        started: Instant,
    ) {
        let error_type = match result {
            Ok((Reply::Result(result), _)) => ErrorType::of_result(method, result),
            Ok((Reply::Error(error), _)) => ErrorType::of_error_object(error),
            Err(error) => error.error_type(),
        };
        let (namespace, route) = (&*self.route.config.namespace, &*self.route.config.name);
        let labels =
            ClientLabels { namespace, route, mount: &mount.config.server, mcp_method_name: method, error_type };
        self.gateway.metrics.conventions.client(&labels, started.elapsed().as_secs_f64());
    }

    fn count_retry(&self, mount: &Mount, outcome: RetryOutcome) {
        let (namespace, route) = (&*self.route.config.namespace, &*self.route.config.name);
        self.gateway.metrics.retries.inc(&RetryLabels { namespace, route, mount: &mount.config.server, outcome });
    }
}

/// Records how an attempt ended on its CLIENT span.
fn attempted(context: &opentelemetry::Context, method: &str, result: &Result<(Reply, Option<u16>), UpstreamError>) {
    if !opentelemetry::trace::TraceContextExt::span(context).is_recording() {
        return;
    }
    match result {
        Ok((Reply::Result(result), _)) if method == Method::ToolsCall.name() && traces::is_tool_error(result) => {
            traces::ended(context, traces::Outcome::ToolError)
        }
        Ok((Reply::Result(_), _)) => {}
        Ok((Reply::Error(error), _)) => {
            let (code, message) = traces::outcome_of_error(error);
            traces::ended(context, traces::Outcome::Error(code, &message));
        }
        Err(error) => traces::failed(context, error.error_type().label(), error.summary()),
    }
}

/// A [`Forward`] that also notes whether the request was handed to the upstream's
/// connection: one that never was cannot have run.
struct Watched<'a> {
    forward: Forward<'a>,
    sent: AtomicBool,
}

impl Observer for Watched<'_> {
    fn sent(&self, id: u64) {
        self.sent.store(true, Ordering::Relaxed);
        self.forward.sent(id);
    }

    fn message(&self, message: Message) {
        self.forward.message(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::call::Era;
    use crate::mcp::call::testing::{call, route};

    #[tokio::test]
    async fn every_attempt_at_a_mount_is_timed_with_its_failure_class() {
        let (call, _relayed) = call(route(&["a"], None), Era::Session).await;
        let mount = &call.route.mounts[0];
        let result = call.request(mount, "tools/list", None, None).await;
        assert!(matches!(result, Err(UpstreamError::Connect(_))), "nobody listens on the test mount");
        let metrics = &call.gateway.metrics;
        let retried =
            RetryLabels { namespace: "acme", route: "tools", mount: "server-a", outcome: RetryOutcome::Failed };
        let attempts = 1 + metrics.retries.with(&retried).get();
        let labels = ClientLabels {
            namespace: "acme",
            route: "tools",
            mount: "server-a",
            mcp_method_name: Method::ToolsList,
            error_type: ErrorType::Connect,
        };
        let (counts, _, _) = metrics.conventions.client.snapshot(&labels).expect("the attempts were timed");
        assert_eq!(counts.last().copied(), Some(attempts), "one observation per attempt");
    }
}
