//! Which field of a verified identity is looked up in the CRM, and how it is normalised so the
//! gateway and the CRM's data compare the same text.

use crate::identity::Identity;
use std::collections::BTreeMap;
use unicode_normalization::UnicodeNormalization;

/// The identity field a directory matches on (`directory.match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchField {
    /// The sign-in name: the UPN for Azure AD and ADFS, the e-mail address for Google.
    /// Case-insensitive. It can change (a renamed user): prefer `object_id` where the CRM
    /// stores it.
    Upn,
    /// The e-mail address the provider asserted. Case-insensitive.
    Email,
    /// The provider's subject (`sub`; the SAML NameID). Compared exactly: OpenID subjects are
    /// case-sensitive.
    Subject,
    /// The SAML NameID (the same value as `subject` for WS-Federation sign-ins).
    NameId,
    /// Azure AD's immutable object id (`oid`), a GUID. Compared in lower case.
    ObjectId,
    /// Any other claim the provider signed, by name (a SAML claim type URI, an ID token or
    /// userinfo claim). Compared exactly.
    Claim(String),
}

impl MatchField {
    /// The field a `match:` value names; any other word is a claim name.
    pub fn parse(text: &str) -> Self {
        match text {
            "upn" => Self::Upn,
            "email" => Self::Email,
            "subject" => Self::Subject,
            "name_id" => Self::NameId,
            "object_id" => Self::ObjectId,
            other => Self::Claim(other.to_owned()),
        }
    }

    /// The name used in logs and metrics.
    pub fn name(&self) -> &str {
        match self {
            Self::Upn => "upn",
            Self::Email => "email",
            Self::Subject => "subject",
            Self::NameId => "name_id",
            Self::ObjectId => "object_id",
            Self::Claim(c) => c,
        }
    }

    fn case_insensitive(&self) -> bool {
        matches!(self, Self::Upn | Self::Email | Self::ObjectId)
    }

    /// The normalised value of this field in a verified sign-in, if it has one. `claims` are
    /// the signed claims of the token (string values), for `Claim` and `object_id`.
    pub fn value_of(
        &self,
        identity: &Identity,
        claims: &BTreeMap<String, String>,
    ) -> Option<String> {
        let raw = match self {
            Self::Upn => Some(identity.user.as_str()),
            Self::Email => identity.email.as_deref(),
            Self::Subject | Self::NameId => Some(identity.subject.as_str()),
            Self::ObjectId => identity
                .claims
                .get("oid")
                .and_then(|v| v.as_str())
                .or_else(|| claims.get("oid").map(String::as_str)),
            Self::Claim(name) => claims.get(name).map(String::as_str),
        }?;
        self.normalise(raw)
    }

    /// The comparison form of a value: surrounding whitespace removed, Unicode NFC (so a
    /// name typed with combining accents equals its precomposed form), lower case for the
    /// case-insensitive fields. `None` for an empty value: nothing matches nothing.
    pub fn normalise(&self, raw: &str) -> Option<String> {
        let nfc: String = raw.trim().nfc().collect();
        let value = if self.case_insensitive() {
            nfc.to_lowercase()
        } else {
            nfc
        };
        (!value.is_empty()).then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            provider: "aad".into(),
            issuer: "https://sts.windows.net/t/".into(),
            subject: "AbC-Subject".into(),
            user: " Alice@Contoso.COM ".into(),
            email: Some("ALICE@contoso.com".into()),
            name: None,
            idp_tenant: None,
            claims: [("oid".to_owned(), serde_json::json!("8E4A-11"))].into(),
            crm: None,
        }
    }

    #[test]
    fn names_and_addresses_compare_without_case_or_surrounding_space() {
        let none = BTreeMap::new();
        assert_eq!(
            MatchField::Upn.value_of(&identity(), &none).as_deref(),
            Some("alice@contoso.com")
        );
        assert_eq!(
            MatchField::Email.value_of(&identity(), &none).as_deref(),
            Some("alice@contoso.com")
        );
        assert_eq!(
            MatchField::ObjectId.value_of(&identity(), &none).as_deref(),
            Some("8e4a-11")
        );
    }

    #[test]
    fn subjects_and_claims_keep_their_case() {
        let claims = [("employeeid".to_owned(), "E-17x".to_owned())].into();
        assert_eq!(
            MatchField::Subject
                .value_of(&identity(), &claims)
                .as_deref(),
            Some("AbC-Subject")
        );
        assert_eq!(
            MatchField::parse("employeeid")
                .value_of(&identity(), &claims)
                .as_deref(),
            Some("E-17x")
        );
        assert_eq!(
            MatchField::parse("missing").value_of(&identity(), &claims),
            None
        );
    }

    #[test]
    fn combining_accents_equal_precomposed_letters() {
        let decomposed = "Jose\u{301}@contoso.com";
        let precomposed = "Jos\u{e9}@contoso.com";
        assert_eq!(
            MatchField::Email.normalise(decomposed),
            MatchField::Email.normalise(precomposed)
        );
        assert_eq!(
            MatchField::Subject.normalise(decomposed),
            MatchField::Subject.normalise(precomposed)
        );
    }

    #[test]
    fn an_empty_value_matches_nothing() {
        assert_eq!(MatchField::Email.normalise("  \t"), None);
    }
}
