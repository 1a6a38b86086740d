//! WS-Federation 1.2 sign-in (Azure AD, ADFS): sans-IO protocol core.
//!
//! `token` verifies a `wresult` (envelope, one assertion, signature via `xmldsig`, issuer,
//! audience, lifetime); `claims` maps it to an `Identity`; `metadata` turns federation
//! metadata into trusted signing certificates; `protocol` builds the redirect URLs.

pub mod claims;
pub mod error;
pub mod metadata;
pub mod prolog;
pub mod protocol;
pub mod saml;
pub mod token;
pub mod trust;
pub mod xmldsig;

pub use error::WsFedError;
pub use token::{verify_wresult, Expectations};
pub use xmldsig::{CertificateDer, SignatureAlgorithm};

#[cfg(test)]
mod tests;
