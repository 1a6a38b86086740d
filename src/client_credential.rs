//! How the gateway proves itself to a token endpoint: a client secret (HTTP Basic, RFC 6749
//! §2.3.1), or a certificate — RFC 7523 `private_key_jwt`, what Azure AD calls a certificate
//! credential: a JWT valid for a few minutes, for this one endpoint, signed with the
//! certificate's private key and naming the certificate by its thumbprints (`x5t`, SHA-1, as
//! Azure AD has always read it; `x5t#S256` beside it).
//!
//! The key is checked against the certificate when the configuration loads: a key that
//! does not belong to the certificate would only fail later, at a user's first grant.

use crate::clock::UnixSeconds;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// RFC 7523 §2.2: the `client_assertion_type` of a JWT client assertion.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid, seconds (Azure AD accepts at most 10 minutes).
const ASSERTION_TTL_SECS: i64 = 300;

/// A client's credential at a token endpoint.
#[derive(Clone)]
pub enum ClientCredential {
    /// A shared secret.
    Secret(String),
    /// A certificate whose private key signs client assertions.
    Certificate(Arc<CertificateCredential>),
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(<redacted>)"),
            Self::Certificate(c) => write!(f, "Certificate(x5t={})", c.x5t),
        }
    }
}

/// A certificate credential: the signing key and the certificate's thumbprints.
pub struct CertificateCredential {
    key: EncodingKey,
    algorithm: Algorithm,
    /// Base64url SHA-1 thumbprint of the certificate (DER).
    x5t: String,
    /// Base64url SHA-256 thumbprint.
    x5t_s256: String,
}

/// What a token request carries to authenticate the client.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret.
    Basic {
        /// Client id.
        id: String,
        /// Client secret.
        secret: String,
    },
    /// Form fields `client_id`, `client_assertion_type`, `client_assertion`.
    Assertion(Vec<(&'static str, String)>),
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { id, .. } => write!(f, "Basic({id}, <redacted>)"),
            Self::Assertion(_) => f.write_str("Assertion(<redacted>)"),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct AssertionClaims {
    aud: String,
    iss: String,
    sub: String,
    jti: String,
    iat: i64,
    nbf: i64,
    exp: i64,
}

impl CertificateCredential {
    /// From a PEM certificate and its PEM private key (RSA → RS256, EC P-256 → ES256).
    pub fn from_pem(certificate: &[u8], key: &[u8]) -> Result<Self, String> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(certificate)
            .map_err(|e| format!("not a PEM certificate: {e}"))?;
        let cert = pem
            .parse_x509()
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let der = &pem.contents;
        let public = &cert.public_key().subject_public_key.data;
        let (algorithm, encoding, decoding) = if let Ok(k) = EncodingKey::from_rsa_pem(key) {
            (Algorithm::RS256, k, DecodingKey::from_rsa_der(public))
        } else if let Ok(k) = EncodingKey::from_ec_pem(key) {
            (Algorithm::ES256, k, DecodingKey::from_ec_der(public))
        } else {
            return Err("the key is not a PEM RSA or EC (P-256) private key".into());
        };
        let b64 = |bytes: &[u8]| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        };
        let credential = Self {
            key: encoding,
            algorithm,
            x5t: b64(&<sha1::Sha1 as sha1::Digest>::digest(der)),
            x5t_s256: b64(&<sha2::Sha256 as sha2::Digest>::digest(der)),
        };
        // The key must be the certificate's (and one jsonwebtoken can sign with): sign once
        // and verify with the certificate.
        let probe = credential
            .try_assertion("probe", "https://probe.invalid/token", 1_000)
            .map_err(|e| format!("the key cannot sign ({e}): RSA or EC P-256 only"))?;
        let mut validation = Validation::new(algorithm);
        validation.validate_exp = false;
        validation.set_audience(&["https://probe.invalid/token"]);
        jsonwebtoken::decode::<AssertionClaims>(&probe, &decoding, &validation)
            .map_err(|_| "the private key does not belong to the certificate".to_owned())?;
        Ok(credential)
    }

    /// The certificate's SHA-1 thumbprint (base64url), as Azure AD shows it (in hex).
    pub fn x5t(&self) -> &str {
        &self.x5t
    }

    /// A client assertion for `client_id` at `audience` (the token endpoint).
    pub fn assertion(&self, client_id: &str, audience: &str, now: UnixSeconds) -> String {
        self.try_assertion(client_id, audience, now)
            .expect("a key checked at load signs")
    }

    fn try_assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: UnixSeconds,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(self.algorithm);
        header.typ = Some("JWT".into());
        header.x5t = Some(self.x5t.clone());
        header.x5t_s256 = Some(self.x5t_s256.clone());
        let claims = AssertionClaims {
            aud: audience.to_owned(),
            iss: client_id.to_owned(),
            sub: client_id.to_owned(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            nbf: now,
            exp: now + ASSERTION_TTL_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
    }
}

impl ClientCredential {
    /// What a request to `endpoint` carries for `client_id` at `now`.
    pub fn authenticate(
        &self,
        client_id: &str,
        endpoint: &url::Url,
        now: UnixSeconds,
    ) -> ClientAuth {
        match self {
            Self::Secret(secret) => ClientAuth::Basic {
                id: client_id.to_owned(),
                secret: secret.clone(),
            },
            Self::Certificate(c) => ClientAuth::Assertion(vec![
                ("client_id", client_id.to_owned()),
                ("client_assertion_type", ASSERTION_TYPE.to_owned()),
                (
                    "client_assertion",
                    c.assertion(client_id, endpoint.as_str(), now),
                ),
            ]),
        }
    }

    /// The secret, when the credential is one.
    pub fn secret(&self) -> Option<&str> {
        match self {
            Self::Secret(s) => Some(s),
            Self::Certificate(_) => None,
        }
    }

    /// The certificate, when the credential is one.
    pub fn certificate(&self) -> Option<&Arc<CertificateCredential>> {
        match self {
            Self::Secret(_) => None,
            Self::Certificate(c) => Some(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(kind: &str) -> (Vec<u8>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let args: Vec<&str> = match kind {
            "rsa" => vec!["-newkey", "rsa:2048"],
            "p384" => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
            _ => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        };
        let status = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=vestibule",
            ])
            .args(&args)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap())
    }

    #[test]
    fn an_assertion_is_for_one_endpoint_names_the_certificate_and_expires_soon() {
        for kind in ["rsa", "ec"] {
            let (cert, key) = pair(kind);
            let c = CertificateCredential::from_pem(&cert, &key).unwrap();
            let endpoint: url::Url = "https://login.example/t/oauth2/v2.0/token".parse().unwrap();
            let auth = ClientCredential::Certificate(Arc::new(c)).authenticate(
                "app-id",
                &endpoint,
                1_700_000_000,
            );
            let ClientAuth::Assertion(fields) = auth else {
                panic!("an assertion")
            };
            assert_eq!(fields[0], ("client_id", "app-id".to_owned()));
            assert_eq!(fields[1].1, ASSERTION_TYPE);
            let jwt = &fields[2].1;
            let header = jsonwebtoken::decode_header(jwt).unwrap();
            assert_eq!(header.x5t.as_ref().unwrap().len(), 27, "SHA-1, base64url");
            assert_eq!(header.x5t_s256.as_ref().unwrap().len(), 43);
            let (_, pem) = x509_parser::pem::parse_x509_pem(&cert).unwrap();
            let x = pem.parse_x509().unwrap();
            let public = &x.public_key().subject_public_key.data;
            let decoding = match kind {
                "rsa" => DecodingKey::from_rsa_der(public),
                _ => DecodingKey::from_ec_der(public),
            };
            let mut v = Validation::new(header.alg);
            v.validate_exp = false;
            v.set_audience(&[endpoint.as_str()]);
            let claims = jsonwebtoken::decode::<AssertionClaims>(jwt, &decoding, &v)
                .unwrap()
                .claims;
            assert_eq!(
                (claims.iss.as_str(), claims.sub.as_str()),
                ("app-id", "app-id")
            );
            assert_eq!(claims.exp - claims.iat, ASSERTION_TTL_SECS);
        }
    }

    #[test]
    fn a_key_of_another_certificate_or_garbage_is_refused() {
        let (cert, _) = pair("rsa");
        let (_, other_key) = pair("rsa");
        let err = CertificateCredential::from_pem(&cert, &other_key)
            .err()
            .unwrap();
        assert!(err.contains("does not belong to the certificate"), "{err}");
        assert!(CertificateCredential::from_pem(b"nope", &other_key).is_err());
        // A key jsonwebtoken cannot sign with for this algorithm: an error, not a panic.
        let (p384_cert, p384_key) = pair("p384");
        assert!(CertificateCredential::from_pem(&p384_cert, &p384_key).is_err());
        assert!(CertificateCredential::from_pem(&cert, b"nope").is_err());
        assert_eq!(
            format!("{:?}", ClientCredential::Secret("s3cret".into())),
            "Secret(<redacted>)"
        );
    }
}
