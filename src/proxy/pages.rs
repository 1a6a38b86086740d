//! The pages and JSON bodies users see. Every error goes through `error_body`, so the wording,
//! the request id and the no-internals rule live in one place.

use super::RequestCtx;
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

/// The style of every page: system fonts, readable on a phone and a desktop, contrast above
/// WCAG AA, a visible keyboard focus; no external asset (the pages must work when everything
/// behind the gateway is down, and leak no request to a third party).
const STYLE: &str = "\
*{box-sizing:border-box}\
body{font:1rem/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}\
header,main,footer{max-width:36rem;margin:0 auto;padding:0 1.25rem}\
header{padding-top:8vh;color:#424a53;font-weight:600}\
main{background:#fff;border:1px solid #d0d7de;border-radius:.5rem;padding:1.25rem 1.5rem}\
h1{font-size:1.4rem;margin:.2rem 0 .8rem}\
a{color:#0550ae}\
a:focus,button:focus{outline:3px solid #0969da;outline-offset:2px}\
button{font:inherit;padding:.5rem 1.1rem;border:1px solid #1f6feb;border-radius:.4rem;background:#0969da;color:#fff;cursor:pointer}\
ul.choices{list-style:none;padding:0}\
ul.choices li{margin:.5rem 0}\
ul.choices a{display:block;padding:.75rem 1rem;border:1px solid #d0d7de;border-radius:.4rem;text-decoration:none;font-weight:600}\
footer{color:#57606a;font-size:.85rem;padding-top:.75rem}\
code{font-size:.85rem}\
@media (max-width:30rem){header{padding-top:1rem}main{border-radius:0;border-left:0;border-right:0}}";

/// A complete HTML page for the request's tenant; `body_html` must already be escaped.
/// The tenant's name heads it (the user sees which CRM this is), the request id ends it
/// (what support asks for); nothing else about the gateway or the request is shown.
pub fn page(title: &str, body_html: &str, ctx: &RequestCtx) -> Bytes {
    let heading = escape(
        ctx.route
            .as_ref()
            .map_or("Sign-in gateway", |r| r.tenant.name.as_str()),
    );
    Bytes::from(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title} · {heading}</title>\
         <style>{STYLE}</style></head>\
         <body><header><p>{heading}</p></header>\
         <main><h1>{title}</h1>{body_html}</main>\
         <footer><p>Request id: <code>{rid}</code></p></footer></body></html>\n",
        title = escape(title),
        rid = escape(&ctx.request_id),
    ))
}

/// The body for an error, as HTML or JSON.
pub fn error_body(error: &GatewayError, ctx: &RequestCtx, json: bool) -> (&'static str, Bytes) {
    let request_id = ctx.request_id.as_str();
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
        let tenant = ctx.route.as_ref().map(|r| r.tenant.name.as_str());
        let mut links = Vec::new();
        if *error == GatewayError::SignInRequired {
            links.push(("/_vestibule/login".to_owned(), "Sign in".to_owned()));
        } else if let Some(url) = error.action_url() {
            links.push((url.to_owned(), "Grant access".to_owned()));
        }
        if matches!(error, GatewayError::SignInRejected { status: 403, .. }) {
            links.push((
                "/_vestibule/login".to_owned(),
                "Sign in with another account".to_owned(),
            ));
        }
        // The way back: the CRM's home page, when the request named a tenant at all.
        if let Some(name) = tenant {
            links.push(("/".to_owned(), format!("Back to {name}")));
        }
        let links: String = links
            .iter()
            .map(|(href, text)| format!("<p><a href=\"{}\">{}</a></p>", escape(href), escape(text)))
            .collect();
        (
            HTML,
            page(
                error.title(),
                &format!("<p>{}</p>{links}", escape(error.message())),
                ctx,
            ),
        )
    }
}
