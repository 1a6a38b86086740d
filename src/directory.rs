//! Who may use a tenant's CRM. Sign-in flows call `Directory::admit` between verifying an
//! identity and creating the session: the seam where matching against the CRM's existing
//! users (and acquiring document tokens) plugs in.

use crate::identity::Identity;
use async_trait::async_trait;

/// Why a verified identity was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The identity matches no user of this CRM.
    #[error("no CRM user matches this sign-in")]
    UnknownUser,
    /// The directory could not be consulted.
    #[error("the user directory is unavailable")]
    Unavailable,
}

/// Admits (and may enrich) verified identities for a tenant.
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// The identity to put in the session, or why it may not have one.
    async fn admit(&self, tenant: &str, identity: Identity) -> Result<Identity, DirectoryError>;
}

/// Admits every identity the provider verified and the tenant's issuer rules accepted. This is
/// the behaviour until a CRM user directory is configured.
#[derive(Debug, Default, Clone, Copy)]
pub struct VerifiedIdentities;

#[async_trait]
impl Directory for VerifiedIdentities {
    async fn admit(&self, _tenant: &str, identity: Identity) -> Result<Identity, DirectoryError> {
        Ok(identity)
    }
}
