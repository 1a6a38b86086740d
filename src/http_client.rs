//! The outbound HTTP client for identity-provider traffic (federation metadata, discovery,
//! JWKS, token and userinfo endpoints). Redirects are not followed and every body is capped:
//! a provider document is small, a redirect could lead a fetch somewhere the configuration
//! never named, and an endless body must not grow memory.

use openidconnect::{reqwest, HttpClientError, HttpRequest, HttpResponse};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Largest body read from a provider.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// The shared outbound client. openidconnect is handed this type (not a bare
/// `reqwest::Client`, whose adapter reads bodies whole) so its requests are capped too.
#[derive(Debug, Clone)]
pub struct ProviderHttp {
    client: reqwest::Client,
    max_body: usize,
}

impl ProviderHttp {
    /// The client with the standard limits.
    pub fn new() -> Self {
        Self::with_limit(MAX_BODY)
    }

    /// The client with another body limit (tests).
    pub fn with_limit(max_body: usize) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("vestibule/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client configuration is static");
        Self { client, max_body }
    }

    /// GETs a text document; errors are one readable line.
    pub async fn get_text(&self, url: &url::Url) -> Result<String, String> {
        let response = self
            .client
            .get(url.as_str())
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: status {}", response.status()));
        }
        let body = read_capped(response, self.max_body)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        String::from_utf8(body).map_err(|_| format!("GET {url}: not UTF-8"))
    }
}

/// A provider's answer to a form POST: status, `Retry-After` seconds when given, the body.
#[derive(Debug)]
pub struct FormAnswer {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` in seconds, when the provider sent one.
    pub retry_after: Option<u64>,
    /// The body (capped).
    pub body: Vec<u8>,
}

impl ProviderHttp {
    /// POSTs a form (token endpoint), authenticating the client with HTTP Basic when given.
    /// Errors are network failures, one readable line; any status is an answer.
    pub async fn post_form(
        &self,
        url: &url::Url,
        client: &crate::client_credential::ClientAuth,
        form: &[(&str, &str)],
    ) -> Result<FormAnswer, String> {
        use crate::client_credential::ClientAuth;
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        if let ClientAuth::Assertion(assertion) = client {
            fields.extend(assertion.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut request = self.client.post(url.as_str()).form(&fields);
        if let ClientAuth::Basic { id, secret } = client {
            // RFC 6749 §2.3.1: form-encode both before Basic.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request = request.basic_auth(enc(id), Some(enc(secret)));
        }
        let response = request
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = read_capped(response, self.max_body)
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        Ok(FormAnswer {
            status,
            retry_after,
            body,
        })
    }
}

impl Default for ProviderHttp {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads a response body, refusing it once it grows past `max`.
async fn read_capped(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("larger than {max} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max {
            return Err(format!("larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl<'c> openidconnect::AsyncHttpClient<'c> for ProviderHttp {
    type Error = HttpClientError<reqwest::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(Box::new)?;
            let response = self.client.execute(request).await.map_err(Box::new)?;
            let mut builder = http::Response::builder()
                .status(response.status())
                .version(response.version());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = read_capped(response, self.max_body)
                .await
                .map_err(HttpClientError::Other)?;
            builder.body(body).map_err(HttpClientError::Http)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP server on 127.0.0.1 answering with `body` (chunked: no length given).
    async fn serve(body: Vec<u8>) -> url::Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n").await;
                    for piece in body.chunks(1000) {
                        let _ = s
                            .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                            .await;
                        let _ = s.write_all(piece).await;
                        let _ = s.write_all(b"\r\n").await;
                    }
                    let _ = s.write_all(b"0\r\n\r\n").await;
                });
            }
        });
        format!("http://{addr}/doc").parse().unwrap()
    }

    #[tokio::test]
    async fn bodies_past_the_limit_are_refused_on_every_path() {
        let http = ProviderHttp::with_limit(10_000);
        let small = serve(vec![b'a'; 9_000]).await;
        assert_eq!(http.get_text(&small).await.unwrap().len(), 9_000);
        let big = serve(vec![b'a'; 10_001]).await;
        assert!(http
            .get_text(&big)
            .await
            .unwrap_err()
            .contains("larger than"));
        // The path openidconnect takes (discovery, JWKS, token, userinfo).
        let request = http::Request::builder()
            .uri(big.as_str())
            .body(Vec::new())
            .unwrap();
        let err = openidconnect::AsyncHttpClient::call(&http, request)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        let request = http::Request::builder()
            .uri(small.as_str())
            .body(Vec::new())
            .unwrap();
        let ok = openidconnect::AsyncHttpClient::call(&http, request)
            .await
            .unwrap();
        assert_eq!(ok.body().len(), 9_000);
    }
}
