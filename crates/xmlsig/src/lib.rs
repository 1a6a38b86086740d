//! Enveloped XML signature verification that returns **the bytes the digest covered**.
//!
//! Vestibule reads identity claims from signed XML. A claim reader and a signature verifier
//! that parse the same input separately can disagree (an `encoding="UTF-7"` declaration, a
//! byte-order mark, a recovering parser), and then the signature vouches for one document
//! while the reader reads another. This crate closes that class from the verifier's side:
//!
//! * one libxml2 parse with the encoding forced to UTF-8 (`XML_PARSE_IGNORE_ENC`), no recovery,
//!   no DTD loading, no entity substitution, no network; a document with a DTD, comment,
//!   processing instruction, CDATA section or entity reference is refused;
//! * exactly one `ds:Signature`, a child of the element it signs, one same-document
//!   `Reference` to that element's id, the id unique in the document;
//! * xmlsec with the caller's pinned keys only (the token's own KeyInfo is never consulted),
//!   manifests ignored, transforms and algorithms allow-listed inside xmlsec itself;
//! * the result is xmlsec's pre-digest buffer of that reference: the canonical UTF-8 bytes
//!   whose hash the signature covers. The caller reads claims from these bytes and from
//!   nothing else, so whatever any parser thought of the original input, what is read is what
//!   was signed.
//!
//! Written by hand against the C libraries (bindings generated from the installed headers)
//! because samael, the SAML crate this replaces, parses with recovery on, honours the
//! declared encoding, and offers the pre-digest bytes only for SAML 2.0 `ID` attributes (not
//! SAML 1.1 `AssertionID`). All `unsafe` of Vestibule lives in this crate.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    missing_docs,
    clippy::all
)]
mod ffi {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

use std::ffi::{c_int, CStr};
use std::ptr::NonNull;
use std::sync::OnceLock;

const DSIG_NS: &[u8] = b"http://www.w3.org/2000/09/xmldsig#";

/// Why a document was not accepted. No variant echoes document content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// xmlsec or libxml2 could not be initialised (a broken installation).
    #[error("the XML security library could not be initialised: {0}")]
    Init(&'static str),
    /// Not well-formed XML as UTF-8 (libxml2 without recovery refused it).
    #[error("the document is not well-formed UTF-8 XML")]
    Malformed,
    /// A document type declaration (internal or external subset).
    #[error("the document has a DTD")]
    Dtd,
    /// A comment, processing instruction, CDATA section or entity reference.
    #[error(
        "the document has comments, processing instructions, CDATA sections or entity references"
    )]
    UnexpectedNode,
    /// No `ds:Signature` at all.
    #[error("the document is not signed")]
    Unsigned,
    /// More than one signature, a signature that is not a child of an element with the id,
    /// or an id that is not unique.
    #[error("the signature is not an enveloped signature of one uniquely identified element")]
    Shape,
    /// A certificate that xmlsec cannot load as a verification key.
    #[error("the certificate cannot be used as a verification key")]
    Key,
    /// xmlsec refused to process the signature: a transform, algorithm or reference that is
    /// not allowed, or a malformed `SignedInfo` or signature value.
    #[error("the signature is malformed or uses a transform, algorithm or reference that is not allowed")]
    Unprocessable,
    /// The signature does not verify with any of the keys.
    #[error("the signature is not valid for any trusted key")]
    BadSignature,
}

/// A signature algorithm (with its digest family) that may be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RSA PKCS#1 v1.5 with SHA-256 (digests SHA-256/384/512).
    RsaSha256,
    /// RSA PKCS#1 v1.5 with SHA-384.
    RsaSha384,
    /// RSA PKCS#1 v1.5 with SHA-512.
    RsaSha512,
    /// ECDSA with SHA-256.
    EcdsaSha256,
    /// ECDSA with SHA-384.
    EcdsaSha384,
    /// RSA with SHA-1 (and SHA-1 digests): broken hash, for legacy IdPs only.
    RsaSha1,
}

impl Algorithm {
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

    /// The XML-DSig `SignatureMethod` URI.
    pub fn signature_uri(self) -> &'static str {
        match self {
            Self::RsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            Self::RsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
            Self::RsaSha512 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
            Self::EcdsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
            Self::EcdsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
            Self::RsaSha1 => "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        }
    }

    /// The `DigestMethod` URIs a reference may use with this signature algorithm.
    pub fn digest_uris(self) -> &'static [&'static str] {
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

/// A verification key loaded once from a DER certificate and shared between threads.
pub struct VerifyingKey {
    key: NonNull<ffi::xmlSecKey>,
}

// SAFETY: the key is never mutated after loading; verifications only read it (each OpenSSL
// transform takes its own reference to the EVP_PKEY).
unsafe impl Send for VerifyingKey {}
// SAFETY: as above.
unsafe impl Sync for VerifyingKey {}

impl VerifyingKey {
    /// Loads the public key of a DER-encoded X.509 certificate. The certificate itself is not
    /// validated here (the caller pins it and checks its validity period).
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, Error> {
        init()?;
        let len = std::ffi::c_uint::try_from(der.len()).map_err(|_| Error::Key)?;
        // SAFETY: `der` is valid for `len` bytes; no password or callbacks are needed for a
        // certificate; the returned key is owned by us (destroyed in Drop).
        let key = unsafe {
            ffi::xmlSecOpenSSLAppKeyLoadMemory(
                der.as_ptr(),
                len,
                ffi::xmlSecKeyDataFormat_xmlSecKeyDataFormatCertDer,
                std::ptr::null(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        NonNull::new(key).map(|key| Self { key }).ok_or(Error::Key)
    }
}

impl Drop for VerifyingKey {
    fn drop(&mut self) {
        // SAFETY: we own the key and nobody else holds it (duplicates are separate objects).
        unsafe { ffi::xmlSecKeyDestroy(self.key.as_ptr()) }
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyingKey")
    }
}

/// What a successful verification yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The id of the signed element (the Reference URI without `#`).
    pub id: String,
    /// The canonical bytes of the signed element (enveloped signature removed) exactly as
    /// digested: the only bytes a caller may read signed values from.
    pub canonical: String,
}

/// Initialises libxml2 and xmlsec once per process and silences their stderr reports.
fn init() -> Result<(), Error> {
    static INIT: OnceLock<Result<(), Error>> = OnceLock::new();
    INIT.get_or_init(|| {
        // SAFETY: called once, before any other use of the libraries in this process.
        unsafe {
            ffi::xmlInitParser();
            if ffi::xmlSecInit() < 0 {
                return Err(Error::Init("xmlSecInit"));
            }
            if ffi::xmlSecCheckVersionExt(
                ffi::XMLSEC_VERSION_MAJOR as c_int,
                ffi::XMLSEC_VERSION_MINOR as c_int,
                ffi::XMLSEC_VERSION_SUBMINOR as c_int,
                ffi::xmlSecCheckVersionMode_xmlSecCheckVersionABICompatible,
            ) != 1
            {
                return Err(Error::Init("the loaded xmlsec is not ABI-compatible"));
            }
            if ffi::xmlSecOpenSSLAppInit(std::ptr::null()) < 0 {
                return Err(Error::Init("xmlSecOpenSSLAppInit"));
            }
            if ffi::xmlSecOpenSSLInit() < 0 {
                return Err(Error::Init("xmlSecOpenSSLInit"));
            }
            // Every failed verification would otherwise print lines to stderr: an attacker's
            // way to fill logs. Failures are reported through our typed errors instead.
            ffi::xmlSecErrorsDefaultCallbackEnableOutput(0);
        }
        Ok(())
    })
    .clone()
}

/// Sends this thread's libxml2 generic error reports to /dev/null. libxml2 keeps that
/// setting per thread, and its canonicaliser reports some malformed input on stderr even
/// when the parser was told not to: a forged token must not be able to write to our logs.
fn silence_libxml2_on_this_thread() {
    static DEV_NULL: OnceLock<usize> = OnceLock::new();
    let sink = *DEV_NULL.get_or_init(|| {
        // SAFETY: constant NUL-terminated arguments; the FILE stays open for the process.
        unsafe { ffi::fopen(c"/dev/null".as_ptr(), c"w".as_ptr()) as usize }
    });
    if sink == 0 {
        return;
    }
    // SAFETY: a NULL handler selects libxml2's default one, which writes to the context
    // (here a FILE* that lives as long as the process).
    unsafe { ffi::xmlSetGenericErrorFunc(sink as *mut std::ffi::c_void, None) }
}

/// A parsed libxml2 document, freed on drop.
struct Doc(NonNull<ffi::xmlDoc>);

impl Drop for Doc {
    fn drop(&mut self) {
        // SAFETY: we own the document; every node pointer derived from it is dead by now.
        unsafe { ffi::xmlFreeDoc(self.0.as_ptr()) }
    }
}

/// An xmlsec signature context, destroyed on drop. Its `signKey` is lent (a shared
/// `VerifyingKey`): it is taken back before the context is destroyed, which would otherwise
/// destroy the key with it.
struct DSigCtx(NonNull<ffi::xmlSecDSigCtx>);

impl Drop for DSigCtx {
    fn drop(&mut self) {
        // SAFETY: we own the context; the key is not the context's to destroy.
        unsafe {
            (*self.0.as_ptr()).signKey = std::ptr::null_mut();
            ffi::xmlSecDSigCtxDestroy(self.0.as_ptr())
        }
    }
}

/// libxml2 options: UTF-8 whatever the declaration says, no recovery (RECOVER is off), no
/// DTD loading or entity substitution (DTDLOAD/NOENT off), no network, no stderr reports.
const PARSE_OPTIONS: c_int = (ffi::xmlParserOption_XML_PARSE_IGNORE_ENC
    | ffi::xmlParserOption_XML_PARSE_NONET
    | ffi::xmlParserOption_XML_PARSE_NOERROR
    | ffi::xmlParserOption_XML_PARSE_NOWARNING) as c_int;

fn parse(xml: &str) -> Result<Doc, Error> {
    let len = c_int::try_from(xml.len()).map_err(|_| Error::Malformed)?;
    // SAFETY: the buffer is valid for `len` bytes for the duration of the call; libxml2
    // copies what it keeps. The encoding name is a NUL-terminated constant.
    let doc = unsafe {
        ffi::xmlReadMemory(
            xml.as_ptr().cast(),
            len,
            std::ptr::null(),
            c"UTF-8".as_ptr(),
            PARSE_OPTIONS,
        )
    };
    let doc = Doc(NonNull::new(doc).ok_or(Error::Malformed)?);
    // SAFETY: `doc` is a valid document.
    let d = unsafe { doc.0.as_ref() };
    if !d.intSubset.is_null() || !d.extSubset.is_null() {
        return Err(Error::Dtd);
    }
    Ok(doc)
}

/// The bytes of a libxml2 string (NUL-terminated), or empty for NULL.
///
/// # Safety
/// `s` is NULL or points to a NUL-terminated string that outlives the result.
unsafe fn bytes<'a>(s: *const ffi::xmlChar) -> &'a [u8] {
    if s.is_null() {
        b""
    } else {
        // SAFETY: per the contract.
        unsafe { CStr::from_ptr(s.cast()) }.to_bytes()
    }
}

/// The value of an attribute node: its single text child (no entities are substituted, so
/// a value is never split), or empty.
///
/// # Safety
/// `attr` points to a live attribute of a live document.
unsafe fn attribute_value(attr: &ffi::xmlAttr) -> Option<&[u8]> {
    let child = attr.children;
    if child.is_null() {
        return Some(b"");
    }
    // SAFETY: children of a live attribute are live nodes.
    let child = unsafe { &*child };
    if child.type_ != ffi::xmlElementType_XML_TEXT_NODE || !child.next.is_null() {
        return None;
    }
    // SAFETY: a text node's content is a NUL-terminated string owned by the document.
    Some(unsafe { bytes(child.content) })
}

/// What a walk over the whole document found.
struct Walk {
    signatures: Vec<*mut ffi::xmlNode>,
}

/// Visits every node of the document: refuses node kinds a token never has, registers each
/// unqualified `id_attribute` as an XML ID (refusing duplicates), and collects signatures.
///
/// # Safety
/// `doc` is a live document that nothing else mutates during the walk.
unsafe fn walk(doc: &Doc, id_attribute: &[u8]) -> Result<Walk, Error> {
    let mut found = Walk {
        signatures: Vec::new(),
    };
    // SAFETY: a live document.
    let mut stack = vec![unsafe { doc.0.as_ref() }.children];
    while let Some(mut node) = stack.pop() {
        while !node.is_null() {
            // SAFETY: every pointer reached from a live document's root is a live node.
            let n = unsafe { &*node };
            match n.type_ {
                ffi::xmlElementType_XML_ELEMENT_NODE => {
                    // SAFETY: an element's name and namespace belong to the document.
                    let name = unsafe { bytes(n.name) };
                    let ns = if n.ns.is_null() {
                        &b""[..]
                    } else {
                        // SAFETY: as above.
                        unsafe { bytes((*n.ns).href) }
                    };
                    if name == b"Signature" && ns == DSIG_NS {
                        found.signatures.push(node);
                    }
                    let mut attr = n.properties;
                    while !attr.is_null() {
                        // SAFETY: attributes of a live element are live.
                        let a = unsafe { &*attr };
                        // SAFETY: as above.
                        if a.ns.is_null() && unsafe { bytes(a.name) } == id_attribute {
                            // SAFETY: a live attribute.
                            let value = unsafe { attribute_value(a) }.ok_or(Error::Shape)?;
                            let value = std::ffi::CString::new(value).map_err(|_| Error::Shape)?;
                            // SAFETY: doc and attr are live; libxml2 copies the value. It
                            // returns NULL when the id is already registered (a duplicate,
                            // including an `xml:id` with the same value).
                            let added = unsafe {
                                ffi::xmlAddID(
                                    std::ptr::null_mut(),
                                    doc.0.as_ptr(),
                                    value.as_ptr().cast(),
                                    attr,
                                )
                            };
                            if added.is_null() {
                                return Err(Error::Shape);
                            }
                        }
                        attr = a.next;
                    }
                    if !n.children.is_null() {
                        stack.push(n.children);
                    }
                }
                ffi::xmlElementType_XML_TEXT_NODE => {}
                _ => return Err(Error::UnexpectedNode),
            }
            node = n.next;
        }
    }
    Ok(found)
}

/// The unqualified `id_attribute` value of an element, if it has one.
///
/// # Safety
/// `node` points to a live element.
unsafe fn id_of(node: *mut ffi::xmlNode, id_attribute: &[u8]) -> Option<String> {
    // SAFETY: per the contract.
    let mut attr = unsafe { (*node).properties };
    while !attr.is_null() {
        // SAFETY: attributes of a live element are live.
        let a = unsafe { &*attr };
        // SAFETY: as above.
        if a.ns.is_null() && unsafe { bytes(a.name) } == id_attribute {
            // SAFETY: a live attribute.
            let value = unsafe { attribute_value(a) }?;
            return String::from_utf8(value.to_vec()).ok();
        }
        attr = a.next;
    }
    None
}

/// Enables exactly the transforms a SAML token signature needs, inside xmlsec: anything else
/// in `SignedInfo` or a `Reference` makes xmlsec refuse to process the signature.
///
/// # Safety
/// `ctx` is a live, fresh signature context.
unsafe fn restrict(ctx: *mut ffi::xmlSecDSigCtx, algorithms: &[Algorithm]) -> Result<(), Error> {
    // SAFETY: the klass getters return static descriptors; ctx is live.
    unsafe {
        let c14n = [
            ffi::xmlSecTransformExclC14NGetKlass(),
            ffi::xmlSecTransformInclC14NGetKlass(),
        ];
        let mut reference = vec![ffi::xmlSecTransformEnvelopedGetKlass()];
        reference.extend(c14n);
        let mut signature = c14n.to_vec();
        for alg in algorithms {
            let (method, digests): (_, &[ffi::xmlSecTransformId]) = match alg {
                Algorithm::RsaSha1 => (
                    ffi::xmlSecOpenSSLTransformRsaSha1GetKlass(),
                    &[ffi::xmlSecOpenSSLTransformSha1GetKlass()],
                ),
                Algorithm::RsaSha256 => (ffi::xmlSecOpenSSLTransformRsaSha256GetKlass(), &[]),
                Algorithm::RsaSha384 => (ffi::xmlSecOpenSSLTransformRsaSha384GetKlass(), &[]),
                Algorithm::RsaSha512 => (ffi::xmlSecOpenSSLTransformRsaSha512GetKlass(), &[]),
                Algorithm::EcdsaSha256 => (ffi::xmlSecOpenSSLTransformEcdsaSha256GetKlass(), &[]),
                Algorithm::EcdsaSha384 => (ffi::xmlSecOpenSSLTransformEcdsaSha384GetKlass(), &[]),
            };
            signature.push(method);
            reference.extend_from_slice(digests);
        }
        // Any SHA-2 signature admits any SHA-2 digest (Azure AD signs rsa-sha256 over sha256).
        if algorithms.iter().any(|a| *a != Algorithm::RsaSha1) {
            reference.extend([
                ffi::xmlSecOpenSSLTransformSha256GetKlass(),
                ffi::xmlSecOpenSSLTransformSha384GetKlass(),
                ffi::xmlSecOpenSSLTransformSha512GetKlass(),
            ]);
        }
        for id in signature {
            if ffi::xmlSecDSigCtxEnableSignatureTransform(ctx, id) < 0 {
                return Err(Error::Init("enabling a signature transform"));
            }
        }
        for id in reference {
            if ffi::xmlSecDSigCtxEnableReferenceTransform(ctx, id) < 0 {
                return Err(Error::Init("enabling a reference transform"));
            }
        }
    }
    Ok(())
}

/// The outcome of one attempt with one key.
enum Attempt {
    Valid(Signed),
    Invalid,
}

/// Verifies `sig` with one key.
///
/// # Safety
/// `sig` is the live signature node of a live document whose ids are registered.
unsafe fn attempt(
    sig: *mut ffi::xmlNode,
    id: &str,
    key: &VerifyingKey,
    algorithms: &[Algorithm],
) -> Result<Attempt, Error> {
    // SAFETY: no keys manager: the only key is the one we set, so KeyInfo is never used to
    // find or build a key.
    let ctx = unsafe { ffi::xmlSecDSigCtxCreate(std::ptr::null_mut()) };
    let ctx = DSigCtx(NonNull::new(ctx).ok_or(Error::Init("xmlSecDSigCtxCreate"))?);
    let c = ctx.0.as_ptr();
    // SAFETY: ctx is live and fresh; the key is lent, not given (see `DSigCtx`): xmlsec only
    // reads it (the OpenSSL transform takes its own reference to the EVP_PKEY), so threads
    // can share it; the signature node is live.
    unsafe {
        (*c).flags |= ffi::XMLSEC_DSIG_FLAGS_IGNORE_MANIFESTS
            | ffi::XMLSEC_DSIG_FLAGS_STORE_SIGNEDINFO_REFERENCES;
        (*c).enabledReferenceUris = ffi::xmlSecTransformUriTypeSameDocument;
        restrict(c, algorithms)?;
        (*c).signKey = key.key.as_ptr();
        if ffi::xmlSecDSigCtxVerify(c, sig) < 0 {
            return Err(Error::Unprocessable);
        }
        if (*c).status != ffi::xmlSecDSigStatus_xmlSecDSigStatusSucceeded {
            return Ok(Attempt::Invalid);
        }
        let references = std::ptr::addr_of_mut!((*c).signedInfoReferences);
        if ffi::xmlSecPtrListGetSize(references) != 1 {
            return Err(Error::Shape);
        }
        let reference =
            ffi::xmlSecPtrListGetItem(references, 0) as *mut ffi::xmlSecDSigReferenceCtx;
        if reference.is_null()
            || (*reference).status != ffi::xmlSecDSigStatus_xmlSecDSigStatusSucceeded
        {
            return Ok(Attempt::Invalid);
        }
        let uri = bytes((*reference).uri);
        if uri.strip_prefix(b"#") != Some(id.as_bytes()) {
            return Err(Error::Shape);
        }
        let buffer = ffi::xmlSecDSigReferenceCtxGetPreDigestBuffer(reference);
        if buffer.is_null() {
            return Err(Error::Shape);
        }
        let data = ffi::xmlSecBufferGetData(buffer);
        let size = ffi::xmlSecBufferGetSize(buffer) as usize;
        if data.is_null() || size == 0 {
            return Err(Error::Shape);
        }
        let canonical = std::slice::from_raw_parts(data, size).to_vec();
        let canonical = String::from_utf8(canonical).map_err(|_| Error::Malformed)?;
        Ok(Attempt::Valid(Signed {
            id: id.to_owned(),
            canonical,
        }))
    }
}

/// Verifies the one enveloped signature of `xml`, whose signed element carries its id in the
/// unqualified attribute `id_attribute` (`ID` for SAML 2.0 and metadata, `AssertionID` for
/// SAML 1.1), against `keys` in order, accepting only `algorithms`. Returns the canonical
/// bytes of the signed element.
pub fn verify_enveloped(
    xml: &str,
    id_attribute: &str,
    keys: &[&VerifyingKey],
    algorithms: &[Algorithm],
) -> Result<Signed, Error> {
    init()?;
    silence_libxml2_on_this_thread();
    let doc = parse(xml)?;
    // SAFETY: doc is live and only this function uses it.
    let walked = unsafe { walk(&doc, id_attribute.as_bytes()) }?;
    let sig = match walked.signatures.as_slice() {
        [] => return Err(Error::Unsigned),
        [one] => *one,
        _ => return Err(Error::Shape),
    };
    // SAFETY: the signature node is live; its parent is an element or the document.
    let parent = unsafe { (*sig).parent };
    // SAFETY: parent is a live node of the document.
    if parent.is_null() || unsafe { (*parent).type_ } != ffi::xmlElementType_XML_ELEMENT_NODE {
        return Err(Error::Shape);
    }
    // SAFETY: a live element.
    let id = unsafe { id_of(parent, id_attribute.as_bytes()) }.ok_or(Error::Shape)?;
    for key in keys {
        // SAFETY: sig is live and the ids were registered by `walk`.
        if let Attempt::Valid(signed) = unsafe { attempt(sig, &id, key, algorithms) }? {
            return Ok(signed);
        }
    }
    Err(Error::BadSignature)
}
