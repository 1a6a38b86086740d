//! The outbound HTTP client for identity-provider documents (federation metadata, discovery,
//! JWKS). Redirects are not followed and bodies are capped: a provider document is small, and a
//! redirect could lead a fetch somewhere the configuration never named.

use openidconnect::reqwest;
use std::time::Duration;

/// Largest document fetched.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// Builds the shared client.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("vestibule/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("HTTP client configuration is static")
}

/// GETs a text document; errors are one readable line.
pub async fn get_text(client: &reqwest::Client, url: &url::Url) -> Result<String, String> {
    let mut response = client
        .get(url.as_str())
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: status {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("GET {url}: larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| format!("GET {url}: not UTF-8"))
}
