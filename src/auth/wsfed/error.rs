//! Why a WS-Federation sign-in was refused. Each variant has a stable reason code (metrics,
//! logs) and a message safe to show the user: none of them echoes token content.

/// A refused WS-Federation response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsFedError {
    /// The POST body or `wresult` is larger than allowed.
    #[error("the sign-in response is too large")]
    TooLarge,
    /// The POST is not a WS-Federation sign-in response.
    #[error("the sign-in response is not a WS-Federation response ({0})")]
    BadForm(&'static str),
    /// A DOCTYPE, DTD or entity declaration: never legitimate in a token.
    #[error("the token contains a DTD or entity declaration")]
    Dtd,
    /// Comments, processing instructions or CDATA sections: never in a legitimate token, and
    /// the classic way to make a signed value read differently (`alice@x<!---->.evil`).
    #[error("the token contains comments or CDATA sections")]
    Comments,
    /// Not well-formed XML, or not UTF-8.
    #[error("the token is not well-formed XML")]
    Malformed,
    /// A byte-order mark, a declared encoding other than UTF-8, a malformed or misplaced XML
    /// declaration, or bytes that are not UTF-8: parsers that decode differently would read
    /// different documents from the same bytes.
    #[error("the token is not plain UTF-8 XML: {0}")]
    Encoding(&'static str),
    /// The signed canonical assertion and the assertion in the document read differently: two
    /// parsers disagree about the input, which only a crafted token achieves.
    #[error("the signed assertion does not read the same as the token")]
    ViewsDisagree,
    /// Not a RequestSecurityTokenResponse of WS-Trust 2005/02 or 1.3.
    #[error("the token is not a WS-Trust RequestSecurityTokenResponse")]
    NotRstr,
    /// The RSTR names a token type other than SAML 1.1 or 2.0.
    #[error("the token type is not SAML 1.1 or SAML 2.0")]
    WrongTokenType,
    /// No SAML assertion.
    #[error("the response carries no SAML assertion")]
    NoAssertion,
    /// More than one assertion (or RSTR) anywhere in the document.
    #[error("the response carries more than one assertion")]
    MultipleAssertions,
    /// The assertion is not signed.
    #[error("the assertion is not signed")]
    Unsigned,
    /// More than one signature, or a signature outside the assertion.
    #[error("the signature is not where it belongs")]
    MisplacedSignature,
    /// The signature's reference does not point at the assertion, or its id is ambiguous.
    #[error("the signature does not cover the assertion")]
    ReferenceMismatch,
    /// Transforms other than enveloped-signature + canonicalisation.
    #[error("the signature uses transforms that are not allowed")]
    BadTransforms,
    /// Signature or digest algorithm not in the allow-list.
    #[error("the signature algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// The signature does not verify with any trusted certificate.
    #[error("the signature is not valid for any trusted certificate")]
    BadSignature,
    /// A required element or attribute is missing or malformed.
    #[error("the assertion is incomplete ({0})")]
    Incomplete(&'static str),
    /// A value holds child elements where text is expected.
    #[error("the assertion has a structured value where text is expected")]
    StructuredValue,
    /// The issuer is not allowed for this site.
    #[error("the token was issued by an identity provider this site does not accept")]
    WrongIssuer,
    /// The audience is not this site's realm.
    #[error("the token was issued for another application")]
    WrongAudience,
    /// Past NotOnOrAfter (plus skew).
    #[error("the token has expired")]
    Expired,
    /// Before NotBefore (minus skew).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The assertion id was seen before.
    #[error("the token was already used")]
    Replayed,
    /// `wctx` is missing, forged, expired, reused or not bound to this browser.
    #[error("the sign-in request is not valid (start again)")]
    BadState,
}

impl WsFedError {
    /// Stable reason code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::BadForm(_) => "bad_form",
            Self::Dtd => "dtd",
            Self::Comments => "comments",
            Self::Malformed => "malformed",
            Self::Encoding(_) => "encoding",
            Self::ViewsDisagree => "views_disagree",
            Self::NotRstr => "not_rstr",
            Self::WrongTokenType => "wrong_token_type",
            Self::NoAssertion => "no_assertion",
            Self::MultipleAssertions => "multiple_assertions",
            Self::Unsigned => "unsigned",
            Self::MisplacedSignature => "misplaced_signature",
            Self::ReferenceMismatch => "reference_mismatch",
            Self::BadTransforms => "bad_transforms",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::BadSignature => "bad_signature",
            Self::Incomplete(_) => "incomplete",
            Self::StructuredValue => "structured_value",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Replayed => "replayed",
            Self::BadState => "bad_state",
        }
    }
}
