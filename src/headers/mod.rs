//! Headers as data: which client headers are removed, which identity headers are set. Pure:
//! the proxy applies the result in one place.

pub mod client;
pub mod plan;
pub mod sanitize;
pub mod upstream;

pub use plan::{HeaderNames, SessionHeaders};
pub use sanitize::OwnedHeaders;
pub use upstream::{Caller, UpstreamHeaders};
