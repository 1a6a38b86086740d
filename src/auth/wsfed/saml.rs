//! SAML 1.1 and 2.0 assertions → the facts Vestibule checks and the claims it keeps. Reads
//! only inside the assertion element whose signature `xmldsig` checked, and reads every value
//! whole: text split by a comment or CDATA section is joined, never cut at the first piece.

use super::error::WsFedError;
use crate::clock::UnixSeconds;
use roxmltree::Node;

/// SAML 1.x assertion namespace.
pub const SAML1_NS: &str = "urn:oasis:names:tc:SAML:1.0:assertion";
/// SAML 2.0 assertion namespace.
pub const SAML2_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";

/// Which SAML an assertion is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamlVersion {
    /// SAML 1.1 (ADFS, the npm `wsfed` IdP).
    V1_1,
    /// SAML 2.0 (Azure AD).
    V2_0,
}

impl SamlVersion {
    /// The attribute that carries the assertion's id.
    pub fn id_attribute(self) -> &'static str {
        match self {
            Self::V1_1 => "AssertionID",
            Self::V2_0 => "ID",
        }
    }
}

/// What an assertion says, as read from signed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// SAML version.
    pub version: SamlVersion,
    /// Assertion id (replay key).
    pub id: String,
    /// Issuer.
    pub issuer: String,
    /// NameID / NameIdentifier.
    pub subject: String,
    /// Conditions/@NotBefore.
    pub not_before: Option<UnixSeconds>,
    /// Conditions/@NotOnOrAfter.
    pub not_on_or_after: UnixSeconds,
    /// Audiences of each audience restriction (every restriction must admit us).
    pub audience_restrictions: Vec<Vec<String>>,
    /// Attributes by claim type (namespace/name for SAML 1.1), values in order.
    pub attributes: Vec<(String, Vec<String>)>,
}

impl Assertion {
    /// The first value of a claim type.
    pub fn claim(&self, claim_type: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(t, _)| t == claim_type)
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
    }

    /// Every value of a claim type.
    pub fn claims(&self, claim_type: &str) -> Vec<&str> {
        self.attributes
            .iter()
            .filter(|(t, _)| t == claim_type)
            .flat_map(|(_, v)| v.iter().map(String::as_str))
            .collect()
    }
}

/// The whole text of an element; refuses child elements.
pub fn full_text(node: Node) -> Result<String, WsFedError> {
    let mut out = String::new();
    for child in node.children() {
        if child.is_element() {
            return Err(WsFedError::StructuredValue);
        }
        if child.is_text() {
            out.push_str(child.text().unwrap_or(""));
        }
    }
    Ok(out.trim().to_owned())
}

/// An `xs:dateTime` in UTC.
pub fn parse_instant(text: &str) -> Option<UnixSeconds> {
    if !text.ends_with('Z') {
        return None;
    }
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

fn children<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'a str,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |c| {
        c.is_element() && c.tag_name().namespace() == Some(ns) && c.tag_name().name() == name
    })
}

fn child<'a, 'i>(node: Node<'a, 'i>, ns: &'a str, name: &'a str) -> Option<Node<'a, 'i>> {
    children(node, ns, name).next()
}

fn time_attr(
    node: Node,
    name: &str,
    what: &'static str,
) -> Result<Option<UnixSeconds>, WsFedError> {
    node.attribute(name)
        .map(|v| parse_instant(v).ok_or(WsFedError::Incomplete(what)))
        .transpose()
}

/// Reads an assertion element (either version).
pub fn parse(assertion: Node) -> Result<Assertion, WsFedError> {
    match assertion.tag_name().namespace() {
        Some(SAML2_NS) => parse_v2(assertion),
        Some(SAML1_NS) => parse_v1(assertion),
        _ => Err(WsFedError::WrongTokenType),
    }
}

fn parse_v2(a: Node) -> Result<Assertion, WsFedError> {
    if a.attribute("Version") != Some("2.0") {
        return Err(WsFedError::Incomplete("Version"));
    }
    let id = a
        .attribute("ID")
        .ok_or(WsFedError::Incomplete("ID"))?
        .to_owned();
    let issuer = full_text(child(a, SAML2_NS, "Issuer").ok_or(WsFedError::Incomplete("Issuer"))?)?;
    let subject = child(a, SAML2_NS, "Subject")
        .and_then(|s| child(s, SAML2_NS, "NameID"))
        .ok_or(WsFedError::Incomplete("NameID"))
        .and_then(full_text)?;
    let conditions =
        child(a, SAML2_NS, "Conditions").ok_or(WsFedError::Incomplete("Conditions"))?;
    let not_before = time_attr(conditions, "NotBefore", "NotBefore")?;
    let not_on_or_after = time_attr(conditions, "NotOnOrAfter", "NotOnOrAfter")?
        .ok_or(WsFedError::Incomplete("NotOnOrAfter"))?;
    let audience_restrictions = children(conditions, SAML2_NS, "AudienceRestriction")
        .map(|r| children(r, SAML2_NS, "Audience").map(full_text).collect())
        .collect::<Result<Vec<Vec<String>>, _>>()?;
    let mut attributes = Vec::new();
    for statement in children(a, SAML2_NS, "AttributeStatement") {
        for attr in children(statement, SAML2_NS, "Attribute") {
            let name = attr
                .attribute("Name")
                .ok_or(WsFedError::Incomplete("Attribute/@Name"))?;
            let values = children(attr, SAML2_NS, "AttributeValue")
                .map(full_text)
                .collect::<Result<Vec<_>, _>>()?;
            attributes.push((name.to_owned(), values));
        }
    }
    Ok(Assertion {
        version: SamlVersion::V2_0,
        id,
        issuer,
        subject,
        not_before,
        not_on_or_after,
        audience_restrictions,
        attributes,
    })
}

fn parse_v1(a: Node) -> Result<Assertion, WsFedError> {
    if a.attribute("MajorVersion") != Some("1") || a.attribute("MinorVersion") != Some("1") {
        return Err(WsFedError::Incomplete("MajorVersion/MinorVersion"));
    }
    let id = a
        .attribute("AssertionID")
        .ok_or(WsFedError::Incomplete("AssertionID"))?
        .to_owned();
    let issuer = a
        .attribute("Issuer")
        .ok_or(WsFedError::Incomplete("Issuer"))?
        .trim()
        .to_owned();
    let conditions =
        child(a, SAML1_NS, "Conditions").ok_or(WsFedError::Incomplete("Conditions"))?;
    let not_before = time_attr(conditions, "NotBefore", "NotBefore")?;
    let not_on_or_after = time_attr(conditions, "NotOnOrAfter", "NotOnOrAfter")?
        .ok_or(WsFedError::Incomplete("NotOnOrAfter"))?;
    let audience_restrictions = children(conditions, SAML1_NS, "AudienceRestrictionCondition")
        .map(|r| children(r, SAML1_NS, "Audience").map(full_text).collect())
        .collect::<Result<Vec<Vec<String>>, _>>()?;
    // Every statement names its subject; they must all name the same one.
    let mut subject: Option<String> = None;
    let mut attributes = Vec::new();
    for statement in a
        .children()
        .filter(|c| c.is_element() && c.tag_name().namespace() == Some(SAML1_NS))
    {
        if let Some(name_id) =
            child(statement, SAML1_NS, "Subject").and_then(|s| child(s, SAML1_NS, "NameIdentifier"))
        {
            let this = full_text(name_id)?;
            match &subject {
                Some(s) if *s != this => return Err(WsFedError::Incomplete("one NameIdentifier")),
                _ => subject = Some(this),
            }
        }
        if statement.tag_name().name() == "AttributeStatement" {
            for attr in children(statement, SAML1_NS, "Attribute") {
                let (Some(ns), Some(name)) = (
                    attr.attribute("AttributeNamespace"),
                    attr.attribute("AttributeName"),
                ) else {
                    return Err(WsFedError::Incomplete("Attribute name"));
                };
                let values = children(attr, SAML1_NS, "AttributeValue")
                    .map(full_text)
                    .collect::<Result<Vec<_>, _>>()?;
                attributes.push((format!("{}/{}", ns.trim_end_matches('/'), name), values));
            }
        }
    }
    Ok(Assertion {
        version: SamlVersion::V1_1,
        id,
        issuer,
        subject: subject.ok_or(WsFedError::Incomplete("NameIdentifier"))?,
        not_before,
        not_on_or_after,
        audience_restrictions,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_must_be_utc() {
        assert_eq!(parse_instant("2017-04-23T16:16:17.348Z"), Some(1492964177));
        assert_eq!(parse_instant("2017-04-23T16:16:17Z"), Some(1492964177));
        assert_eq!(parse_instant("2017-04-23T16:16:17+02:00"), None);
        assert_eq!(parse_instant("yesterday"), None);
    }

    #[test]
    fn text_is_read_whole_across_comments_and_cdata() {
        let doc = roxmltree::Document::parse(
            "<n>alice@contoso.com<!---->.evil.example<![CDATA[.more]]></n>",
        )
        .unwrap();
        assert_eq!(
            full_text(doc.root_element()).unwrap(),
            "alice@contoso.com.evil.example.more"
        );
        let nested = roxmltree::Document::parse("<n>a<b>c</b></n>").unwrap();
        assert_eq!(
            full_text(nested.root_element()),
            Err(WsFedError::StructuredValue)
        );
    }
}
