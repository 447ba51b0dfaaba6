//! The plumbing both binaries need and neither owns: the shutdown signal ([`signal`]), log
//! set-up ([`logs`]), the manifest walk ([`files`]), the pod's namespace ([`pod`]), error chains ([`errors`]), waits that
//! grow ([`backoff`]), the admin endpoints' skeleton ([`admin`]), metrics with typed label
//! sets ([`metrics`]) where requests made for tenants may go ([`egress`]: the
//! guarded HTTP client and the one document fetch) and traces over OTLP ([`telemetry`]).

pub mod admin;
pub mod backoff;
pub mod egress;
pub mod errors;
pub mod files;
pub mod logs;
pub mod metrics;
pub mod pod;
pub mod signal;
pub mod telemetry;
