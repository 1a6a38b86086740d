//! Headers as data: which client headers are removed, which identity headers are set. Pure:
//! the proxy applies the result in one place.

pub mod plan;
pub mod sanitize;

pub use plan::{HeaderNames, SessionHeaders};
pub use sanitize::OwnedHeaders;
