//! The MCP front end: `endpoint` speaks streamable HTTP to clients, `methods` answers each
//! JSON-RPC method by fanning out to or routing into the route's mounts, `session` keeps
//! client sessions.

pub mod endpoint;
mod methods;
pub mod session;

/// Protocol revisions served to clients, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
