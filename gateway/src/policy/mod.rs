//! Traffic policy, between authorization and dispatch: a request the route's access control
//! let through meets its rate limits ([`limits`]), then its cache ([`cache`]), before it
//! reaches a mount.

pub mod cache;
pub mod limits;
