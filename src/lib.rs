//! Vestibule: an authentication gateway in front of a CRM.
//!
//! Requests flow listener → `proxy::Gateway` (route by Host, load the session, strip client
//! copies of owned headers, inject identity) → upstream. See `ARCHITECTURE.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod certificates;
pub mod client_credential;
pub mod clock;
pub mod config;
pub mod cookie_header;
pub mod crypto;
pub mod directory;
pub mod error;
pub mod headers;
pub mod http_client;
pub mod identity;
pub mod metrics;
pub mod operations;
pub mod providers;
pub mod proxy;
pub mod rate_limit;
pub mod rotate;
pub mod session;
pub mod sign_in_pool;
pub mod signin;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod upstream_jwt;
