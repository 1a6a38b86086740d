//! Which field of a verified identity is looked up in the CRM, and how it is normalised so the
//! gateway and the CRM's data compare the same text.

use crate::identity::MatchValues;
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

    /// The normalised value of this field in a verified sign-in, if it carries one.
    pub fn value_of(&self, values: &MatchValues) -> Option<String> {
        let raw = match self {
            Self::Upn => values.upn.as_deref(),
            Self::Email => values.email.as_deref(),
            Self::Subject => Some(values.subject.as_str()),
            Self::NameId => values.name_id.as_deref(),
            Self::ObjectId => values.object_id.as_deref(),
            Self::Claim(name) => values.claims.get(name).map(String::as_str),
        }?;
        self.normalise(raw)
    }

    /// The comparison form of a value. Names and addresses (`upn`, `email`) and object ids
    /// lose surrounding whitespace, are put in Unicode NFC (a name typed with combining accents
    /// equals its precomposed form) and lower case. Subjects and claims are compared exactly,
    /// byte for byte: the provider treats `K` and the Kelvin sign, or ` x` and `x`, as different
    /// subjects, and so must we. `None` for an empty value: nothing matches nothing.
    pub fn normalise(&self, raw: &str) -> Option<String> {
        let value = if self.case_insensitive() {
            raw.trim().nfc().collect::<String>().to_lowercase()
        } else {
            raw.to_owned()
        };
        (!value.is_empty()).then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> MatchValues {
        MatchValues {
            upn: Some(" Alice@Contoso.COM ".into()),
            email: Some("ALICE@contoso.com".into()),
            subject: "AbC-Subject".into(),
            name_id: Some("AbC-Subject".into()),
            object_id: Some("8E4A-11".into()),
            claims: [("employeeid".to_owned(), "E-17x".to_owned())].into(),
        }
    }

    #[test]
    fn names_and_addresses_compare_without_case_or_surrounding_space() {
        assert_eq!(
            MatchField::Upn.value_of(&values()).as_deref(),
            Some("alice@contoso.com")
        );
        assert_eq!(
            MatchField::Email.value_of(&values()).as_deref(),
            Some("alice@contoso.com")
        );
        assert_eq!(
            MatchField::ObjectId.value_of(&values()).as_deref(),
            Some("8e4a-11")
        );
    }

    #[test]
    fn subjects_and_claims_are_compared_exactly() {
        assert_eq!(
            MatchField::Subject.value_of(&values()).as_deref(),
            Some("AbC-Subject")
        );
        assert_eq!(
            MatchField::parse("employeeid")
                .value_of(&values())
                .as_deref(),
            Some("E-17x")
        );
        assert_eq!(MatchField::parse("missing").value_of(&values()), None);
        // The Kelvin sign and K, or a leading space, are different subjects.
        assert_ne!(
            MatchField::Subject.normalise("\u{212A}"),
            MatchField::Subject.normalise("K")
        );
        assert_ne!(
            MatchField::Subject.normalise(" x"),
            MatchField::Subject.normalise("x")
        );
    }

    #[test]
    fn combining_accents_equal_precomposed_letters_in_addresses() {
        let decomposed = "Jose\u{301}@contoso.com";
        let precomposed = "Jos\u{e9}@contoso.com";
        assert_eq!(
            MatchField::Email.normalise(decomposed),
            MatchField::Email.normalise(precomposed)
        );
    }

    #[test]
    fn an_absent_or_empty_value_matches_nothing() {
        assert_eq!(MatchField::Email.normalise("  \t"), None);
        let none = MatchValues {
            subject: "s".into(),
            ..MatchValues::default()
        };
        for field in [
            MatchField::Upn,
            MatchField::Email,
            MatchField::NameId,
            MatchField::ObjectId,
        ] {
            assert_eq!(field.value_of(&none), None, "{field:?}");
        }
    }
}
