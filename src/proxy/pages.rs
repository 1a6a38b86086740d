//! The pages and JSON bodies users see. Every error goes through `error_body`, so the wording,
//! the request id and the no-internals rule live in one place.

use crate::error::GatewayError;
use bytes::Bytes;

/// Content types we answer with.
pub const HTML: &str = "text/html; charset=utf-8";
/// JSON content type.
pub const JSON: &str = "application/json";

/// Escapes text for HTML element and attribute content.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A complete HTML page; `body_html` must already be escaped.
pub fn page(title: &str, body_html: &str, request_id: &str) -> Bytes {
    Bytes::from(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>body{{font:16px system-ui,sans-serif;max-width:36rem;margin:10vh auto;padding:0 1rem;color:#222}}\
         h1{{font-size:1.4rem}}small{{color:#777}}</style></head>\
         <body><h1>{title}</h1>{body_html}<p><small>Request id: {rid}</small></p></body></html>\n",
        title = escape(title),
        rid = escape(request_id),
    ))
}

/// The body for an error, as HTML or JSON.
pub fn error_body(error: &GatewayError, request_id: &str, json: bool) -> (&'static str, Bytes) {
    if json {
        let mut body = serde_json::json!({
            "error": error.code(),
            "message": error.message(),
            "request_id": request_id,
        });
        if let Some(url) = error.action_url() {
            body["consent_url"] = url.into();
        }
        (JSON, Bytes::from(body.to_string()))
    } else {
        let extra = if *error == GatewayError::SignInRequired {
            "<p><a href=\"/_vestibule/login\">Sign in</a></p>".to_owned()
        } else if let Some(url) = error.action_url() {
            format!("<p><a href=\"{}\">Grant access</a></p>", escape(url))
        } else {
            String::new()
        };
        (
            HTML,
            page(
                error.title(),
                &format!("<p>{}</p>{extra}", escape(error.message())),
                request_id,
            ),
        )
    }
}
