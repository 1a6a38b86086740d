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
use vestibule_xmlsig::{Signed, VerifyingKey};

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

/// The signature algorithms Vestibule can be told to accept (with their URIs and the digests
/// each admits): defined with the verifier in `vestibule_xmlsig`.
pub use vestibule_xmlsig::Algorithm as SignatureAlgorithm;

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
    vestibule_xmlsig::verify_enveloped(xml, id_attribute, &keys, allowed).map_err(|e| {
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
