//! The one place XML signatures are checked. First the shape: exactly one `ds:Signature`, a
//! child of the assertion, one `Reference` to the assertion's own (unique) id, only the
//! enveloped-signature and canonicalisation transforms, allowed algorithms. Together these
//! guarantee the digest covers the whole assertion, so every value read from it is signed.
//! Then the cryptography, by xmlsec (through `vestibule_xmlsig`, which parses the document
//! once more, strictly and as UTF-8) with pinned certificates only: a certificate in the
//! token's KeyInfo is never used as a trust anchor. What comes back is the canonical form of
//! the signed element, exactly as digested: the only text signed values may be read from.

use super::error::WsFedError;
use roxmltree::{Document, Node};
use std::sync::Arc;
use vestibule_xmlsig::{Algorithm, Signed, VerifyingKey};

/// A trusted signing certificate (DER) with its verification key, loaded once.
#[derive(Clone)]
pub struct CertificateDer {
    der: Arc<[u8]>,
    key: Arc<VerifyingKey>,
}

impl CertificateDer {
    /// Loads a DER certificate's key; fails for a certificate xmlsec cannot use.
    pub fn from_der(der: Vec<u8>) -> Result<Self, vestibule_xmlsig::Error> {
        let key = VerifyingKey::from_certificate_der(&der)?;
        Ok(Self {
            der: der.into(),
            key: Arc::new(key),
        })
    }

    /// The certificate's DER bytes.
    pub fn der_data(&self) -> &[u8] {
        &self.der
    }
}

impl PartialEq for CertificateDer {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for CertificateDer {}

impl std::fmt::Debug for CertificateDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertificateDer({} bytes)", self.der.len())
    }
}

/// XML-DSig namespace.
pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";

const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
/// Canonicalisations without comments: what the digest covers is what we read.
const C14N: [&str; 2] = [
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
];

/// A signature algorithm Vestibule can be told to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// RSA PKCS#1 v1.5 with SHA-256.
    RsaSha256,
    /// RSA PKCS#1 v1.5 with SHA-384.
    RsaSha384,
    /// RSA PKCS#1 v1.5 with SHA-512.
    RsaSha512,
    /// ECDSA P-256 with SHA-256.
    EcdsaSha256,
    /// ECDSA with SHA-384.
    EcdsaSha384,
    /// RSA with SHA-1: broken hash; only behind the dangerous switch.
    RsaSha1,
}

impl SignatureAlgorithm {
    /// Parses a configuration name such as `rsa-sha256`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "rsa-sha256" => Self::RsaSha256,
            "rsa-sha384" => Self::RsaSha384,
            "rsa-sha512" => Self::RsaSha512,
            "ecdsa-sha256" => Self::EcdsaSha256,
            "ecdsa-sha384" => Self::EcdsaSha384,
            "rsa-sha1" => Self::RsaSha1,
            _ => return None,
        })
    }

    /// The default allow-list: SHA-256 and up.
    pub fn defaults() -> Vec<Self> {
        vec![
            Self::RsaSha256,
            Self::RsaSha384,
            Self::RsaSha512,
            Self::EcdsaSha256,
            Self::EcdsaSha384,
        ]
    }

    fn signature_uri(self) -> &'static str {
        match self {
            Self::RsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            Self::RsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
            Self::RsaSha512 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
            Self::EcdsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
            Self::EcdsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
            Self::RsaSha1 => "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        }
    }

    fn xmlsig(self) -> Algorithm {
        match self {
            Self::RsaSha256 => Algorithm::RsaSha256,
            Self::RsaSha384 => Algorithm::RsaSha384,
            Self::RsaSha512 => Algorithm::RsaSha512,
            Self::EcdsaSha256 => Algorithm::EcdsaSha256,
            Self::EcdsaSha384 => Algorithm::EcdsaSha384,
            Self::RsaSha1 => Algorithm::RsaSha1,
        }
    }

    fn digest_uris(self) -> &'static [&'static str] {
        match self {
            // A SHA-1 signature switch also admits SHA-1 digests: that is what such IdPs send.
            Self::RsaSha1 => &["http://www.w3.org/2000/09/xmldsig#sha1"],
            _ => &[
                "http://www.w3.org/2001/04/xmlenc#sha256",
                "http://www.w3.org/2001/04/xmldsig-more#sha384",
                "http://www.w3.org/2001/04/xmlenc#sha512",
            ],
        }
    }
}

fn dsig_child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| {
        c.is_element() && c.tag_name().namespace() == Some(DSIG_NS) && c.tag_name().name() == name
    })
}

fn algorithm<'a>(node: Option<Node<'a, '_>>) -> Option<&'a str> {
    node.and_then(|n| n.attribute("Algorithm"))
}

/// Checks the signature's shape against `assertion`, whose id is `id`.
pub fn check_shape(
    doc: &Document,
    assertion: Node,
    id: &str,
    allowed: &[SignatureAlgorithm],
) -> Result<(), WsFedError> {
    let signatures: Vec<Node> = doc
        .descendants()
        .filter(|n| {
            n.is_element()
                && n.tag_name().namespace() == Some(DSIG_NS)
                && n.tag_name().name() == "Signature"
        })
        .collect();
    let signature = match signatures.as_slice() {
        [] => return Err(WsFedError::Unsigned),
        [one] => *one,
        _ => return Err(WsFedError::MisplacedSignature),
    };
    if signature.parent() != Some(assertion) {
        return Err(WsFedError::MisplacedSignature);
    }
    let signed_info =
        dsig_child(signature, "SignedInfo").ok_or(WsFedError::Incomplete("SignedInfo"))?;
    if !C14N.contains(&algorithm(dsig_child(signed_info, "CanonicalizationMethod")).unwrap_or("")) {
        return Err(WsFedError::BadTransforms);
    }
    let method = algorithm(dsig_child(signed_info, "SignatureMethod")).unwrap_or("");
    let Some(alg) = allowed.iter().find(|a| a.signature_uri() == method) else {
        return Err(WsFedError::AlgorithmNotAllowed);
    };
    let references: Vec<Node> = signed_info
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "Reference")
        .collect();
    let [reference] = references.as_slice() else {
        return Err(WsFedError::ReferenceMismatch);
    };
    if reference.attribute("URI") != Some(&format!("#{id}")) {
        return Err(WsFedError::ReferenceMismatch);
    }
    let transforms: Vec<&str> = dsig_child(*reference, "Transforms")
        .map(|t| {
            t.children()
                .filter(|c| c.is_element())
                .map(|c| {
                    if c.tag_name().name() == "Transform" && c.children().all(|g| !g.is_element()) {
                        c.attribute("Algorithm").unwrap_or("")
                    } else {
                        ""
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let enveloped = transforms.iter().filter(|t| **t == ENVELOPED).count();
    let c14n = transforms.iter().filter(|t| C14N.contains(t)).count();
    if enveloped != 1 || c14n > 1 || enveloped + c14n != transforms.len() {
        return Err(WsFedError::BadTransforms);
    }
    let digest = algorithm(dsig_child(*reference, "DigestMethod")).unwrap_or("");
    if !alg.digest_uris().contains(&digest) {
        return Err(WsFedError::AlgorithmNotAllowed);
    }
    // The id must name exactly one element, whatever the attribute is called: otherwise
    // xmlsec and this reader could resolve the reference to different elements.
    let holders = doc
        .descendants()
        .filter(|n| {
            n.is_element()
                && n.attributes().any(|a| {
                    matches!(a.name(), "ID" | "Id" | "id" | "AssertionID") && a.value() == id
                })
        })
        .count();
    if holders != 1 {
        return Err(WsFedError::ReferenceMismatch);
    }
    Ok(())
}

/// The DER of the first X509Certificate in the signature's KeyInfo, if any: used only to try
/// the matching trusted certificate first, never as a trust anchor.
pub fn key_info_certificate(doc: &Document) -> Option<Vec<u8>> {
    use base64::Engine;
    let cert = doc.descendants().find(|n| {
        n.is_element()
            && n.tag_name().namespace() == Some(DSIG_NS)
            && n.tag_name().name() == "X509Certificate"
    })?;
    let text: String = cert
        .text()?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// Verifies the document's single signature with the trusted certificates and returns the
/// canonical bytes of the signed element. `id_attribute` is the attribute the reference is
/// resolved by (`ID` or `AssertionID`).
pub fn verify(
    xml: &str,
    trusted: &[CertificateDer],
    id_attribute: &str,
    hint: Option<&[u8]>,
    allowed: &[SignatureAlgorithm],
) -> Result<Signed, WsFedError> {
    // The certificate the token names (when it is one of ours) first, then the others.
    let mut order: Vec<&CertificateDer> = trusted.iter().collect();
    if let Some(hint) = hint {
        order.sort_by_key(|c| c.der_data() != hint);
    }
    let keys: Vec<&VerifyingKey> = order.iter().map(|c| c.key.as_ref()).collect();
    let algorithms: Vec<Algorithm> = allowed.iter().map(|a| a.xmlsig()).collect();
    vestibule_xmlsig::verify_enveloped(xml, id_attribute, &keys, &algorithms).map_err(|e| {
        use vestibule_xmlsig::Error as X;
        match e {
            X::Malformed => WsFedError::Malformed,
            X::Dtd => WsFedError::Dtd,
            X::UnexpectedNode => WsFedError::Comments,
            X::Unsigned => WsFedError::Unsigned,
            X::Shape => WsFedError::ReferenceMismatch,
            X::Init(what) => {
                tracing::error!(what, "the XML signature library is not usable");
                WsFedError::BadSignature
            }
            // The shape check above already named disallowed algorithms precisely; what xmlsec
            // still cannot process is a broken signature.
            X::Unprocessable | X::Key | X::BadSignature => WsFedError::BadSignature,
        }
    })
}
