//! From a `wresult` string to a verified assertion: the RSTR envelope, exactly one assertion,
//! its signature (via `xmldsig`), then issuer, audience and lifetime against the injected
//! clock. Sans I/O: trusted certificates and the time come in as arguments.

use super::error::WsFedError;
use super::prolog;
use super::saml::{self, Assertion, SamlVersion, SAML1_NS, SAML2_NS};
use super::xmldsig::{self, CertificateDer, SignatureAlgorithm};
use crate::clock::UnixSeconds;
use roxmltree::{Document, Node, ParsingOptions};

/// WS-Trust 2005/02 (what Azure AD and ADFS send to WS-Fed relying parties).
pub const WST_2005: &str = "http://schemas.xmlsoap.org/ws/2005/02/trust";
/// WS-Trust 1.3.
pub const WST_13: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200512";
const WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const SAML11_TOKEN_TYPES: [&str; 2] = [
    "urn:oasis:names:tc:SAML:1.0:assertion",
    "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1",
];
const SAML20_TOKEN_TYPES: [&str; 2] = [
    "urn:oasis:names:tc:SAML:2.0:assertion",
    "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0",
];

/// What a token must satisfy to be accepted.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    /// Our realm (`wtrealm`): the audience the token must name.
    pub realm: &'a str,
    /// Issuers accepted for this CRM tenant.
    pub allowed_issuers: &'a [String],
    /// The current time (injected).
    pub now: UnixSeconds,
    /// Allowed clock difference, seconds.
    pub skew: i64,
    /// Signature algorithms accepted.
    pub algorithms: &'a [SignatureAlgorithm],
    /// Largest `wresult` accepted, bytes.
    pub max_bytes: usize,
}

fn is_wst(node: Node, name: &str) -> bool {
    node.is_element()
        && matches!(node.tag_name().namespace(), Some(WST_2005) | Some(WST_13))
        && node.tag_name().name() == name
}

/// Verifies a WS-Federation `wresult` against pinned certificates and expectations.
pub fn verify_wresult(
    wresult: &str,
    trusted: &[CertificateDer],
    expect: &Expectations,
) -> Result<Assertion, WsFedError> {
    if wresult.len() > expect.max_bytes {
        return Err(WsFedError::TooLarge);
    }
    let declaration = prolog::check(wresult)?;
    // roxmltree refuses DTDs too; this names the problem precisely, and also catches an
    // entity declaration smuggled where a parser might not look for one.
    if wresult.contains("<!DOCTYPE")
        || wresult.contains("<!ENTITY")
        || wresult.contains("<!ELEMENT")
        || wresult.contains("<!ATTLIST")
    {
        return Err(WsFedError::Dtd);
    }
    if wresult.contains("<!--")
        || wresult.contains("<![CDATA[")
        || wresult[declaration..].contains("<?")
    {
        return Err(WsFedError::Comments);
    }
    let doc = Document::parse_with_options(wresult, parsing_options()).map_err(|e| match e {
        roxmltree::Error::DtdDetected => WsFedError::Dtd,
        _ => WsFedError::Malformed,
    })?;

    let rstr = rstr(&doc)?;
    let assertion = the_assertion(&doc, rstr)?;
    check_token_type(rstr, assertion)?;
    let in_document = saml::parse(assertion)?;

    xmldsig::check_shape(&doc, assertion, &in_document.id, expect.algorithms)?;
    let signed = xmldsig::verify(
        wresult,
        trusted,
        in_document.version.id_attribute(),
        xmldsig::key_info_certificate(&doc).as_deref(),
        expect.algorithms,
    )?;
    // Every value below comes from the canonical bytes the digest covered, never from the
    // document as this module parsed it: if any parser read the input differently, what the
    // signature vouches for is still what is read.
    let parsed = signed_assertion(&signed.canonical, in_document.version)?;
    if parsed.id != signed.id || parsed != in_document {
        return Err(WsFedError::ViewsDisagree);
    }

    check_claims(&parsed, expect)?;
    check_rstr(rstr, expect)?;
    Ok(parsed)
}

fn parsing_options<'i>() -> ParsingOptions<'i> {
    ParsingOptions {
        allow_dtd: false,
        nodes_limit: 20_000,
        ..ParsingOptions::default()
    }
}

/// Reads the assertion from its signed canonical form: the root element must be an assertion
/// of the version the document showed.
fn signed_assertion(canonical: &str, version: SamlVersion) -> Result<Assertion, WsFedError> {
    let doc = Document::parse_with_options(canonical, parsing_options())
        .map_err(|_| WsFedError::ViewsDisagree)?;
    let root = doc.root_element();
    let namespace = match version {
        SamlVersion::V1_1 => SAML1_NS,
        SamlVersion::V2_0 => SAML2_NS,
    };
    if root.tag_name().namespace() != Some(namespace) || root.tag_name().name() != "Assertion" {
        return Err(WsFedError::ViewsDisagree);
    }
    saml::parse(root)
}

/// The single RequestSecurityTokenResponse, bare or in a (one-element) collection.
fn rstr<'a, 'i>(doc: &'a Document<'i>) -> Result<Node<'a, 'i>, WsFedError> {
    let all: Vec<Node> = doc
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "RequestSecurityTokenResponse")
        .collect();
    let root = doc.root_element();
    match all.as_slice() {
        [one]
            if is_wst(*one, "RequestSecurityTokenResponse")
                && (*one == root
                    || (is_wst(root, "RequestSecurityTokenResponseCollection")
                        && one.parent() == Some(root))) =>
        {
            Ok(*one)
        }
        [] | [_] => Err(WsFedError::NotRstr),
        _ => Err(WsFedError::MultipleAssertions),
    }
}

/// Exactly one assertion in the whole document, directly in RequestedSecurityToken.
fn the_assertion<'a, 'i>(
    doc: &'a Document<'i>,
    rstr: Node<'a, 'i>,
) -> Result<Node<'a, 'i>, WsFedError> {
    let assertions: Vec<Node> = doc
        .descendants()
        .filter(|n| {
            n.is_element() && matches!(n.tag_name().name(), "Assertion" | "EncryptedAssertion")
        })
        .collect();
    let assertion = match assertions.as_slice() {
        [] => return Err(WsFedError::NoAssertion),
        [one] => *one,
        _ => return Err(WsFedError::MultipleAssertions),
    };
    let holder = assertion
        .parent()
        .filter(|p| is_wst(*p, "RequestedSecurityToken"));
    let in_place = holder.is_some_and(|h| {
        h.parent() == Some(rstr) && h.children().filter(|c| c.is_element()).count() == 1
    });
    if !in_place {
        return Err(WsFedError::NoAssertion);
    }
    if !matches!(
        assertion.tag_name().namespace(),
        Some(SAML1_NS) | Some(SAML2_NS)
    ) || assertion.tag_name().name() != "Assertion"
    {
        return Err(WsFedError::WrongTokenType);
    }
    Ok(assertion)
}

fn check_token_type(rstr: Node, assertion: Node) -> Result<(), WsFedError> {
    let declared = rstr
        .children()
        .find(|c| is_wst(*c, "TokenType"))
        .map(|t| t.text().unwrap_or("").trim());
    let is_v2 = assertion.tag_name().namespace() == Some(SAML2_NS);
    match declared {
        None => Ok(()),
        Some(t) if is_v2 && SAML20_TOKEN_TYPES.contains(&t) => Ok(()),
        Some(t) if !is_v2 && SAML11_TOKEN_TYPES.contains(&t) => Ok(()),
        Some(_) => Err(WsFedError::WrongTokenType),
    }
}

fn check_claims(a: &Assertion, expect: &Expectations) -> Result<(), WsFedError> {
    if !expect.allowed_issuers.contains(&a.issuer) {
        return Err(WsFedError::WrongIssuer);
    }
    // Azure AD names the tenant twice; both must agree with the allowed issuer.
    if let Some(tid) = a.claim(super::claims::TENANT_ID) {
        if a.issuer.starts_with("https://sts.windows.net/") && !a.issuer.contains(tid) {
            return Err(WsFedError::WrongIssuer);
        }
    }
    if a.audience_restrictions.is_empty()
        || !a
            .audience_restrictions
            .iter()
            .all(|r| r.iter().any(|aud| aud == expect.realm))
    {
        return Err(WsFedError::WrongAudience);
    }
    if let Some(nb) = a.not_before {
        if expect.now + expect.skew < nb {
            return Err(WsFedError::NotYetValid);
        }
    }
    if expect.now - expect.skew >= a.not_on_or_after {
        return Err(WsFedError::Expired);
    }
    if a.subject.is_empty() {
        return Err(WsFedError::Incomplete("NameID"));
    }
    if a.version == SamlVersion::V1_1 && a.id.is_empty() {
        return Err(WsFedError::Incomplete("AssertionID"));
    }
    Ok(())
}

/// The unsigned envelope must agree too: its lifetime and the realm it applies to.
fn check_rstr(rstr: Node, expect: &Expectations) -> Result<(), WsFedError> {
    if let Some(lifetime) = rstr.children().find(|c| is_wst(*c, "Lifetime")) {
        let instant = |name: &str| {
            lifetime
                .children()
                .find(|c| {
                    c.is_element()
                        && c.tag_name().namespace() == Some(WSU)
                        && c.tag_name().name() == name
                })
                .map(|n| {
                    saml::parse_instant(n.text().unwrap_or("").trim())
                        .ok_or(WsFedError::Incomplete("Lifetime"))
                })
                .transpose()
        };
        if let Some(created) = instant("Created")? {
            if expect.now + expect.skew < created {
                return Err(WsFedError::NotYetValid);
            }
        }
        if let Some(expires) = instant("Expires")? {
            if expect.now - expect.skew >= expires {
                return Err(WsFedError::Expired);
            }
        }
    }
    let applies_to = rstr
        .children()
        .find(|c| c.is_element() && c.tag_name().name() == "AppliesTo")
        .and_then(|a| {
            a.descendants()
                .find(|d| d.is_element() && d.tag_name().name() == "Address")
        })
        .map(|a| a.text().unwrap_or("").trim().to_owned());
    match applies_to {
        Some(address) if address != expect.realm => Err(WsFedError::WrongAudience),
        _ => Ok(()),
    }
}
