//! Why a sign-in step failed, and the one place that decides what the user is shown for it.

use crate::auth::oidc::OidcError;
use crate::auth::wsfed::WsFedError;
use crate::directory::DirectoryError;
use crate::error::GatewayError;
use crate::providers::VerifyError;

/// A failed sign-in step. Every variant is refused with nothing stored but the spent
/// one-time values (login state, assertion id) that make a retry of the same response fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// A WS-Federation response was refused.
    #[error(transparent)]
    WsFed(#[from] WsFedError),
    /// An OpenID Connect sign-in was refused or the provider is unreachable.
    #[error(transparent)]
    Oidc(#[from] OidcError),
    /// The verified identity may not use this CRM, or the directory is unreachable.
    #[error("{reason} (account {account}, tenant {tenant})")]
    NotAdmitted {
        /// The directory's answer.
        reason: DirectoryError,
        /// The account that signed in (the page names it, so the user sees which one).
        account: String,
        /// The tenant.
        tenant: String,
    },
    /// The chosen provider is not enabled for this tenant.
    #[error("no such sign-in provider for this site")]
    UnknownProvider,
    /// Every sign-in worker is busy.
    #[error("all sign-in workers are busy")]
    Busy,
    /// The store could not record a one-time value or the session.
    #[error("the session store is unavailable")]
    StoreUnavailable,
    /// The provider cannot be signed in with now (no trusted signing certificate yet).
    #[error("the identity provider is unavailable")]
    ProviderUnavailable,
}

impl From<VerifyError> for SignInError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Token(e) => Self::WsFed(e),
            VerifyError::Busy => Self::Busy,
            VerifyError::Unavailable => Self::ProviderUnavailable,
        }
    }
}

impl SignInError {
    /// Stable reason code for logs and metrics (more specific than the page's code).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::WsFed(e) => e.reason(),
            Self::Oidc(e) => e.reason(),
            Self::NotAdmitted { reason, .. } => reason.reason(),
            Self::UnknownProvider => "unknown_provider",
            Self::Busy => "sign_in_busy",
            Self::StoreUnavailable => "store_unavailable",
            Self::ProviderUnavailable => "provider_unavailable",
        }
    }
}

impl From<SignInError> for GatewayError {
    fn from(e: SignInError) -> Self {
        let refused =
            |status: u16, reason: &'static str, message: String| GatewayError::SignInRejected {
                status,
                reason,
                message,
            };
        match e {
            SignInError::WsFed(e) => {
                let status = match e {
                    WsFedError::TooLarge => 413,
                    WsFedError::BadForm(_) | WsFedError::BadState | WsFedError::Encoding(_) => 400,
                    _ => 403,
                };
                refused(status, e.reason(), format!("Sign-in refused: {e}."))
            }
            SignInError::Oidc(OidcError::Unavailable) => GatewayError::SignInUnavailable,
            SignInError::Oidc(e) => {
                let status = if e == OidcError::BadState { 400 } else { 403 };
                refused(status, e.reason(), format!("Sign-in refused: {e}."))
            }
            SignInError::NotAdmitted {
                reason: DirectoryError::Unavailable,
                ..
            } => GatewayError::SignInUnavailable,
            SignInError::NotAdmitted {
                reason,
                account,
                tenant,
            } => {
                let why = match reason {
                    DirectoryError::Inactive => {
                        format!("The CRM user for {account} is deactivated in {tenant}.")
                    }
                    DirectoryError::Ambiguous(_) => format!(
                        "{account} matches several users of {tenant}, so none can be chosen."
                    ),
                    _ => format!("{account} is not a user of {tenant}."),
                };
                refused(
                    403,
                    reason.reason(),
                    format!("You signed in as {account}. {why} Ask your administrator for access, or sign out of your identity provider and use another account."),
                )
            }
            SignInError::UnknownProvider => GatewayError::NotFound,
            SignInError::Busy => GatewayError::SignInBusy,
            SignInError::StoreUnavailable | SignInError::ProviderUnavailable => {
                GatewayError::SignInUnavailable
            }
        }
    }
}
