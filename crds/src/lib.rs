//! Manifold's API and what it means: the `McpServer` and `McpRoute` custom resources, the
//! `GatewayConfig` model gateways execute, and `compile`, the pure function from resolved
//! resources to config plus one outcome per object. No kube client, no HTTP, no IO.
#![forbid(unsafe_code)]

pub mod compat;
pub mod compile;
pub mod config;
pub mod crd;
pub mod documents;
pub mod egress;
pub mod key;
pub mod manifests;
pub mod outcome;
pub mod publish;
pub mod resources;
pub mod strict;

pub use compile::{Compiled, Inputs, compile};
pub use config::GatewayConfig;
pub use key::ObjectKey;
