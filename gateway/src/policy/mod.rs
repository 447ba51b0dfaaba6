//! Traffic policy, between authorization and dispatch: a request the route's access control
//! let through meets its rate limits ([`limits`]) before it reaches a mount.

pub mod limits;
