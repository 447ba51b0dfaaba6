//! Traffic policy. Between authorization and dispatch, a request the route's access control
//! let through meets its rate limits ([`limits`]); on its way to a mount it meets that
//! upstream's breaker, cap and retries ([`resilience`]).

pub mod limits;
pub mod resilience;
