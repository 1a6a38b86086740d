//! Signing certificates as bytes: PEM files read into DER, and the checks every certificate
//! Vestibule trusts must pass (parseable X.509 without trailing bytes, RSA of at least 2048 bits
//! or an EC key). A leaf module: configuration validation and federation metadata both use it.

use x509_parser::prelude::*;

/// What the checks read from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Subject, for logs.
    pub subject: String,
    /// Start of validity (Unix seconds).
    pub not_before: i64,
    /// End of validity (Unix seconds).
    pub not_after: i64,
}

/// Checks one DER certificate; the error says why in words an operator can act on.
pub fn inspect(der: &[u8]) -> Result<CertificateInfo, String> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| format!("is not X.509: {e}"))?;
    if !rest.is_empty() {
        return Err("has trailing bytes".into());
    }
    let subject = cert.subject().to_string();
    match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) if rsa.key_size() >= 2048 => {}
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            return Err(format!(
                "{subject}: RSA key of {} bits (2048 required)",
                rsa.key_size()
            ))
        }
        Ok(x509_parser::public_key::PublicKey::EC(_)) => {}
        _ => return Err(format!("{subject}: unsupported key type")),
    }
    Ok(CertificateInfo {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        subject,
    })
}

/// The DER of every certificate in a PEM file, each checked by `inspect`; a file without
/// one is an error.
pub fn from_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| format!("is not PEM: {e}"))?;
        inspect(&block.contents)?;
        out.push(block.contents);
    }
    if out.is_empty() {
        return Err("file holds no PEM certificate".into());
    }
    Ok(out)
}
