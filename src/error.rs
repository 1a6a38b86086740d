//! What can go wrong for a request, and what the user is told. Every variant maps to one
//! status and one public message here; internals only ever reach the log.

/// A request-level failure, as the user will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// A sign-in response was refused; the message says why without echoing the token.
    SignInRejected {
        /// HTTP status (400 for malformed requests, 403 for refused tokens).
        status: u16,
        /// Stable reason code.
        reason: &'static str,
        /// What the user is told.
        message: String,
    },
    /// Sign-in cannot start or finish because a dependency is down (provider, store).
    SignInUnavailable,
    /// The Host header names no configured tenant.
    UnknownHost,
    /// The Host header (or authority) is not `host[:port]`, or is given twice.
    BadHost,
    /// A reserved path that does not exist.
    NotFound,
    /// An API request without a valid session.
    SignInRequired,
    /// The client may not use this endpoint (e.g. metrics from outside the allow-list).
    Forbidden,
    /// The request is malformed (e.g. an oversized form).
    BadRequest,
    /// Sign-in was started over plain HTTP on a host browsers do not treat as secure: its
    /// cookies would not survive the identity provider's cross-site POST back.
    HttpsRequired,
    /// A state-changing request that does not come from this site.
    CrossSiteRequest,
    /// The client took longer than allowed to send its request body.
    BodyTimeout,
    /// Every sign-in worker is busy: try again shortly.
    SignInBusy,
    /// This client address started or completed too many sign-ins in the last minute.
    RateLimited {
        /// Seconds until the next attempt is allowed.
        retry_after: u32,
    },
    /// The request method is not accepted at this endpoint.
    MethodNotAllowed,
    /// The session store cannot be reached.
    StoreUnavailable,
    /// The tenant's user directory cannot confirm a session past its grace period.
    DirectoryUnavailable,
    /// A document request whose user must grant document access (again) first.
    DocumentConsentRequired {
        /// Where the grant starts (a path on this site).
        consent_url: String,
    },
    /// Per-user Office 365 document access for an account of another provider (a Google
    /// sign-in on a tenant whose documents are in Office 365): it could never be granted.
    DocumentsNeedMicrosoftAccount,
    /// The upstream refused or dropped the connection.
    UpstreamUnavailable,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// Anything else; details are in the log under the request id.
    Internal,
}

impl GatewayError {
    /// Where the user can put this right, when there is such a place on this site.
    pub fn action_url(&self) -> Option<&str> {
        match self {
            Self::DocumentConsentRequired { consent_url } => Some(consent_url),
            _ => None,
        }
    }

    /// Seconds a client should wait before trying again (`Retry-After`), where that helps.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Self::SignInBusy => Some(5),
            Self::SignInUnavailable => Some(30),
            Self::DirectoryUnavailable => Some(30),
            Self::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// HTTP status sent to the client.
    pub fn status(&self) -> u16 {
        match self {
            Self::SignInRejected { status, .. } => *status,
            Self::SignInUnavailable => 503,
            Self::UnknownHost => 421,
            Self::BadHost => 400,
            Self::NotFound => 404,
            Self::SignInRequired => 401,
            Self::Forbidden => 403,
            Self::BadRequest => 400,
            Self::BodyTimeout => 408,
            Self::HttpsRequired => 400,
            Self::CrossSiteRequest => 403,
            Self::SignInBusy => 503,
            Self::RateLimited { .. } => 429,
            Self::MethodNotAllowed => 405,
            Self::StoreUnavailable => 503,
            Self::DirectoryUnavailable => 503,
            Self::DocumentConsentRequired { .. } => 401,
            Self::DocumentsNeedMicrosoftAccount => 403,
            Self::UpstreamUnavailable => 502,
            Self::UpstreamTimeout => 504,
            Self::Internal => 500,
        }
    }

    /// Stable machine-readable code (JSON `error`, metrics `reason`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::SignInRejected { reason, .. } => reason,
            Self::SignInUnavailable => "sign_in_unavailable",
            Self::UnknownHost => "unknown_host",
            Self::BadHost => "bad_host",
            Self::NotFound => "not_found",
            Self::SignInRequired => "sign_in_required",
            Self::Forbidden => "forbidden",
            Self::BadRequest => "bad_request",
            Self::BodyTimeout => "body_timeout",
            Self::HttpsRequired => "https_required",
            Self::CrossSiteRequest => "cross_site",
            Self::SignInBusy => "sign_in_busy",
            Self::RateLimited { .. } => "rate_limited",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::StoreUnavailable => "store_unavailable",
            Self::DirectoryUnavailable => "directory_unavailable",
            Self::DocumentConsentRequired { .. } => "consent_required",
            Self::DocumentsNeedMicrosoftAccount => "documents_need_microsoft_account",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::Internal => "internal_error",
        }
    }

    /// Short title for the page.
    pub fn title(&self) -> &'static str {
        match self {
            Self::SignInRejected { .. } => "Sign-in refused",
            Self::SignInUnavailable => "Sign-in unavailable",
            Self::UnknownHost => "Unknown site",
            Self::BadHost => "Bad request",
            Self::NotFound => "Not found",
            Self::SignInRequired => "Sign-in required",
            Self::Forbidden => "Forbidden",
            Self::BadRequest => "Bad request",
            Self::BodyTimeout => "Request timeout",
            Self::HttpsRequired => "HTTPS required",
            Self::CrossSiteRequest => "Forbidden",
            Self::SignInBusy => "Sign-in busy",
            Self::RateLimited { .. } => "Too many sign-ins",
            Self::MethodNotAllowed => "Method not allowed",
            Self::StoreUnavailable => "Temporarily unavailable",
            Self::DirectoryUnavailable => "Temporarily unavailable",
            Self::DocumentConsentRequired { .. } => "Document access needed",
            Self::DocumentsNeedMicrosoftAccount => "Office 365 sign-in needed",
            Self::UpstreamUnavailable => "Application unavailable",
            Self::UpstreamTimeout => "Application timed out",
            Self::Internal => "Something went wrong",
        }
    }

    /// One sentence telling the user what happened and what to do.
    pub fn message(&self) -> &str {
        match self {
            Self::SignInRejected { message, .. } => message,
            Self::SignInUnavailable => "Sign-in is temporarily unavailable. Please try again in a moment.",
            Self::UnknownHost => "This gateway does not serve the site you asked for. Check the address.",
            Self::BadHost => "The Host header is not a valid host name with an optional port (1-65535).",
            Self::NotFound => "There is nothing at this address.",
            Self::SignInRequired => "Sign in to continue.",
            Self::Forbidden => "You are not allowed to see this page.",
            Self::BadRequest => "The request could not be understood.",
            Self::BodyTimeout => "The request took too long to arrive. Please try again.",
            Self::HttpsRequired => "Signing in needs HTTPS: open this site with https://. Administrators: serve TLS on the listener, or, behind a TLS-terminating proxy, list that proxy under proxy.trusted_proxies so that its X-Forwarded-Proto: https is believed.",
            Self::CrossSiteRequest => "This action must be started from this site. Use its Sign out button.",
            Self::SignInBusy => "Too many sign-ins are being checked right now. Please try again in a few seconds.",
            Self::RateLimited { .. } => "Too many sign-in attempts from your network. Please wait a moment and try again.",
            Self::MethodNotAllowed => "This address does not accept that kind of request.",
            Self::StoreUnavailable => "Sign-in is temporarily unavailable. Please try again in a moment.",
            Self::DirectoryUnavailable => "This site cannot confirm your access right now. Please try again in a moment.",
            Self::DocumentConsentRequired { .. } => "This needs access to your documents, which has to be granted (again) first.",
            Self::DocumentsNeedMicrosoftAccount => "This site keeps its documents in Office 365, and the account you signed in with is not an Office 365 account. Sign out and sign in with Office 365 to work with documents.",
            Self::UpstreamUnavailable => "The application behind this gateway is not reachable right now. Please try again shortly.",
            Self::UpstreamTimeout => "The application behind this gateway did not answer in time. Please try again shortly.",
            Self::Internal => "The gateway could not complete your request.",
        }
    }
}
