//! Federation metadata → the certificates allowed to sign tokens. Sans I/O: the caller fetches
//! the document. Each certificate is checked with x509-parser (validity period, RSA keys of at
//! least 2048 bits); the document's own signature is checked when a metadata signing
//! certificate is configured.

use super::error::WsFedError;
use super::prolog;
use super::xmldsig::{self, CertificateDer, SignatureAlgorithm, DSIG_NS};
use crate::clock::UnixSeconds;
use roxmltree::{Document, Node, ParsingOptions};

const MD_NS: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const FED_NS: &str = "http://docs.oasis-open.org/wsfed/federation/200706";

/// A certificate trusted to sign tokens, with its validity window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedCert {
    /// DER bytes.
    pub der: CertificateDer,
    /// Start of validity.
    pub not_before: UnixSeconds,
    /// End of validity.
    pub not_after: UnixSeconds,
    /// Subject, for logs.
    pub subject: String,
}

impl TrustedCert {
    /// Whether the certificate is inside its validity period at `now`.
    pub fn valid_at(&self, now: UnixSeconds) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// Why a certificate or a metadata document was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// Not parseable, DTD, or not federation metadata.
    #[error("federation metadata is not usable: {0}")]
    Document(String),
    /// The document's signature did not verify with the configured certificate.
    #[error("federation metadata signature is not valid: {0}")]
    Signature(String),
    /// The document lists no usable signing certificate.
    #[error("federation metadata lists no usable signing certificate ({0})")]
    NoCertificate(String),
    /// A certificate failed the checks.
    #[error("certificate {0}")]
    Certificate(String),
}

/// Checks one DER certificate (see `certificates::inspect`) and loads its key.
pub fn check_certificate(der: &[u8]) -> Result<TrustedCert, MetadataError> {
    let info = crate::certificates::inspect(der).map_err(MetadataError::Certificate)?;
    let der = CertificateDer::from_der(der.to_vec())
        .map_err(|e| MetadataError::Certificate(format!("{}: {e}", info.subject)))?;
    Ok(TrustedCert {
        der,
        not_before: info.not_before,
        not_after: info.not_after,
        subject: info.subject,
    })
}

/// Reads PEM certificates (pinned files).
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<TrustedCert>, MetadataError> {
    crate::certificates::from_pem(pem)
        .map_err(MetadataError::Certificate)?
        .iter()
        .map(|der| check_certificate(der))
        .collect()
}

/// What Vestibule takes from federation metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Signing certificates that passed the checks and are valid at parse time.
    pub signing: Vec<TrustedCert>,
    /// entityID.
    pub entity_id: String,
}

/// Parses federation metadata. With `signer`, the document must carry one enveloped
/// signature over its root, valid for that certificate.
pub fn parse(
    xml: &str,
    signer: Option<&CertificateDer>,
    now: UnixSeconds,
) -> Result<Metadata, MetadataError> {
    // Azure AD (Entra) serves federation metadata as UTF-8 with a byte-order mark. One UTF-8
    // BOM says nothing but "UTF-8", which is how every parser here reads the text anyway:
    // it is removed before any of them sees the document, and the declaration after it must
    // still name UTF-8 or nothing (a BOM followed by `encoding="UTF-7"` is refused).
    let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    prolog::check(xml).map_err(|e| MetadataError::Document(e.to_string()))?;
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(MetadataError::Document("contains a DTD".into()));
    }
    let doc = Document::parse_with_options(xml, parsing_options())
        .map_err(|e| MetadataError::Document(e.to_string()))?;
    let root = entity_descriptor(&doc)?;
    let Some(signer) = signer else {
        return read(root, now);
    };
    let id = root
        .attribute("ID")
        .ok_or_else(|| MetadataError::Signature("document has no ID".into()))?;
    xmldsig::check_shape(&doc, root, id, &SignatureAlgorithm::defaults())
        .map_err(|e: WsFedError| MetadataError::Signature(e.to_string()))?;
    let signed = xmldsig::verify(
        xml,
        std::slice::from_ref(signer),
        "ID",
        None,
        &SignatureAlgorithm::defaults(),
    )
    .map_err(|e| MetadataError::Signature(e.to_string()))?;
    // Certificates are read from the canonical bytes the signature covered, not from the
    // document as parsed above: what is trusted is what was signed.
    let signed_doc = Document::parse_with_options(&signed.canonical, parsing_options())
        .map_err(|e| MetadataError::Signature(format!("signed content unreadable: {e}")))?;
    let signed_root = entity_descriptor(&signed_doc)?;
    if signed_root.attribute("ID") != Some(id) {
        return Err(MetadataError::Signature(
            "the signature does not cover the document".into(),
        ));
    }
    read(signed_root, now)
}

fn parsing_options<'i>() -> ParsingOptions<'i> {
    ParsingOptions {
        allow_dtd: false,
        nodes_limit: 200_000,
        ..ParsingOptions::default()
    }
}

fn entity_descriptor<'a, 'i>(doc: &'a Document<'i>) -> Result<Node<'a, 'i>, MetadataError> {
    let root = doc.root_element();
    if root.tag_name().namespace() != Some(MD_NS) || root.tag_name().name() != "EntityDescriptor" {
        return Err(MetadataError::Document(
            "root is not md:EntityDescriptor".into(),
        ));
    }
    Ok(root)
}

/// The entity id and signing certificates of an `EntityDescriptor`.
fn read(root: Node, now: UnixSeconds) -> Result<Metadata, MetadataError> {
    let entity_id = root.attribute("entityID").unwrap_or("").to_owned();
    // WS-Federation signing keys live in the STS RoleDescriptor; fall back to the SAML IdP
    // descriptor for IdPs that publish only that.
    let is_sts = |n: &roxmltree::Node| {
        n.tag_name().name() == "RoleDescriptor"
            && n.attributes()
                .any(|a| a.name() == "type" && a.value().ends_with(":SecurityTokenServiceType"))
            && n.lookup_namespace_uri(Some("fed"))
                .is_none_or(|ns| ns == FED_NS)
    };
    let descriptors: Vec<roxmltree::Node> = {
        let sts: Vec<_> = root
            .children()
            .filter(|n| n.is_element() && is_sts(n))
            .collect();
        if sts.is_empty() {
            root.children()
                .filter(|n| n.is_element() && n.tag_name().name() == "IDPSSODescriptor")
                .collect()
        } else {
            sts
        }
    };
    let mut signing = Vec::new();
    let mut problems = Vec::new();
    for descriptor in descriptors {
        for kd in descriptor
            .children()
            .filter(|n| {
                n.is_element()
                    && n.tag_name().namespace() == Some(MD_NS)
                    && n.tag_name().name() == "KeyDescriptor"
            })
            .filter(|n| n.attribute("use").is_none_or(|u| u == "signing"))
        {
            for c in kd.descendants().filter(|n| {
                n.is_element()
                    && n.tag_name().namespace() == Some(DSIG_NS)
                    && n.tag_name().name() == "X509Certificate"
            }) {
                use base64::Engine;
                let text: String = c
                    .text()
                    .unwrap_or("")
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                let Ok(der) = base64::engine::general_purpose::STANDARD.decode(text) else {
                    problems.push("a certificate is not base64".to_owned());
                    continue;
                };
                match check_certificate(&der) {
                    Ok(cert) if !cert.valid_at(now) => {
                        problems.push(format!("{} is outside its validity period", cert.subject))
                    }
                    Ok(cert) => {
                        if !signing.contains(&cert) {
                            signing.push(cert);
                        }
                    }
                    Err(e) => problems.push(e.to_string()),
                }
            }
        }
    }
    if signing.is_empty() {
        return Err(MetadataError::NoCertificate(if problems.is_empty() {
            "none listed".into()
        } else {
            problems.join("; ")
        }));
    }
    Ok(Metadata { signing, entity_id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::wsfed::saml::parse_instant;

    const AAD_METADATA: &str =
        include_str!("../../../tests/fixtures/microsoft/aad-common-federationmetadata.xml");
    const AAD_CERT: &str = include_str!("../../../tests/fixtures/microsoft/aad-signing-2017.crt");
    const ADFS_METADATA: &str =
        include_str!("../../../tests/fixtures/microsoft/adfs-v4-metadata.xml");
    const ADFS_METADATA_SIGNER: &str =
        include_str!("../../../tests/fixtures/microsoft/adfs-v4-metadata.sig.crt");

    fn pem_der(pem: &str) -> CertificateDer {
        certificates_from_pem(pem.as_bytes()).unwrap().remove(0).der
    }

    #[test]
    fn azure_ad_metadata_yields_the_token_signing_certificate() {
        let now = parse_instant("2017-04-23T16:20:00Z").unwrap();
        let md = parse(AAD_METADATA, Some(&pem_der(AAD_CERT)), now).unwrap();
        assert!(
            md.signing.iter().any(|c| c.der == pem_der(AAD_CERT)),
            "{:?}",
            md.signing
        );
        assert!(md.entity_id.starts_with("https://sts.windows.net/"));
        // Tampered metadata no longer verifies.
        let tampered =
            AAD_METADATA.replacen("entityID=\"https://sts.", "entityID=\"https://stz.", 1);
        assert_ne!(tampered, AAD_METADATA);
        assert!(matches!(
            parse(&tampered, Some(&pem_der(AAD_CERT)), now),
            Err(MetadataError::Signature(_))
        ));
        // Today every certificate in it has expired.
        let today = parse_instant("2026-11-29T00:00:00Z").unwrap();
        assert!(matches!(
            parse(AAD_METADATA, None, today),
            Err(MetadataError::NoCertificate(_))
        ));
    }

    #[test]
    fn adfs_metadata_signature_is_checked_when_configured() {
        let signer = certificates_from_pem(ADFS_METADATA_SIGNER.as_bytes())
            .unwrap()
            .remove(0);
        let mid = (signer.not_before + signer.not_after) / 2;
        let md = parse(ADFS_METADATA, Some(&signer.der), mid);
        assert!(md.is_ok(), "{md:?}");
        let wrong = pem_der(AAD_CERT);
        assert!(matches!(
            parse(ADFS_METADATA, Some(&wrong), mid),
            Err(MetadataError::Signature(_))
        ));
    }

    /// The encoding class applies to metadata too: its certificates decide which tokens verify.
    #[test]
    fn metadata_that_is_not_plain_utf8_is_refused_before_any_parser() {
        let signer = pem_der(AAD_CERT);
        let now = parse_instant("2017-04-23T16:20:00Z").unwrap();
        let body = AAD_METADATA.trim_start_matches('\u{feff}');
        let body = match body.strip_prefix("<?xml") {
            Some(rest) => &rest[rest.find("?>").unwrap() + 2..],
            None => body,
        };
        assert!(
            parse(body, Some(&signer), now).is_ok(),
            "the body alone verifies"
        );
        // As Azure AD serves it: a UTF-8 byte-order mark and a UTF-8 declaration.
        let served = format!("\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>{body}");
        assert!(
            parse(&served, Some(&signer), now).is_ok(),
            "a UTF-8 BOM is fine"
        );
        for prolog in [
            "\u{feff}\u{feff}",
            "<?xml version=\"1.0\" encoding=\"UTF-7\"?>",
            "<?xml version=\"1.0\" encoding=\"UTF-7\" standalone=\"utf-8\"?>",
            "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-7\"?>",
            "<?xml version=\"1.0\" encoding=\"UTF-16\"?>",
            " <?xml version=\"1.0\"?>",
        ] {
            let doc = format!("{prolog}{body}");
            for signer in [Some(&signer), None] {
                match parse(&doc, signer, now) {
                    Err(MetadataError::Document(why)) => assert!(why.contains("UTF-8"), "{why}"),
                    other => panic!("{prolog:?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn dtds_and_foreign_documents_are_refused() {
        assert!(matches!(
            parse("<!DOCTYPE x [<!ENTITY a \"b\">]><x/>", None, 0),
            Err(MetadataError::Document(_))
        ));
        assert!(matches!(
            parse("<x/>", None, 0),
            Err(MetadataError::Document(_))
        ));
    }
}
