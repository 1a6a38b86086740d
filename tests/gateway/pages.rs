//! The gateway's own pages in a real browser: the sign-in chooser, each error page a user can
//! meet (400, 403 not a CRM user, 421, 502, 503, 504) and the sign-out pages, reached the way
//! a user reaches them, pass axe-core with no violation, load nothing from elsewhere, name the
//! tenant, offer a way back and show no internals. Screenshots (phone and desktop width) go to
//! `target/browser-artifacts/pages/`.

use crate::harness::*;
use crate::peers::*;
use crate::spec;
use crate::wsfed_flow::ISSUER;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

async fn visit(pages: Value, hosts: &[&str]) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("tests/browser/node_modules/axe-core").exists(),
        "run `npm ci --prefix tests/browser` first (scripts/test does)"
    );
    let input = json!({
        "pages": pages,
        "hosts": hosts,
        "artifacts": root.join("target/browser-artifacts/pages"),
    });
    browser_script("pages.mjs", &input, Duration::from_secs(90)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_names_the_tenant_and_offers_a_way_back() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(certs.path(), "idp");
    // The provider signs in carol, who is not in contoso's directory.
    let peer = WsFedPeer::start(
        &cert,
        &key,
        &[
            ("TOKEN", "saml20"),
            ("ISSUER", ISSUER),
            ("USER_UPN", "carol@contoso.example"),
        ],
    );
    let up = Upstream::start().await;
    let silent = silent_upstream().await;
    let users = certs.path().join("users.yaml");
    std::fs::write(
        &users,
        "users:\n  - { id: u-1, login: alice@contoso.example, display_name: Alice }\n",
    )
    .unwrap();

    let mut setup = Setup::new(up.addr);
    setup.providers.push(spec::Provider::WsFed(spec::WsFed {
        name: "corp".into(),
        display_name: Some("Contoso Azure AD".into()),
        passive_endpoint: format!("{}/wsfed", peer.base()),
        metadata_url: Some(peer.metadata_url()),
        realm: crate::wsfed_flow::REALM.into(),
        ..Default::default()
    }));
    let down = format!("http://127.0.0.1:{}", free_port());
    setup.providers.push(spec::Provider::WsFed(spec::WsFed {
        name: "partner".into(),
        display_name: Some("Partner ADFS".into()),
        passive_endpoint: format!("{down}/adfs/ls/"),
        metadata_url: Some(format!(
            "{down}/FederationMetadata/2007-06/FederationMetadata.xml"
        )),
        realm: crate::wsfed_flow::REALM.into(),
        ..Default::default()
    }));
    let contoso = setup.contoso();
    contoso
        .sign_in
        .push(spec::SignIn::provider("corp").issuer(ISSUER));
    contoso.sign_in.push(
        spec::SignIn::provider("partner").issuer("http://partner.example/adfs/services/trust"),
    );
    contoso.directory = Some(spec::Directory::File {
        path: users.display().to_string(),
        match_field: "upn".into(),
        timing: Default::default(),
    });
    let closed = format!("127.0.0.1:{}", free_port());
    setup
        .tenants
        .push(spec::Tenant::new("northwind", &["crm.northwind.localhost"], closed).public(&["/"]));
    let mut slow = spec::Tenant::new("litware", &["crm.litware.localhost"], silent).public(&["/"]);
    slow.upstream.read_timeout = Some("1s".into());
    setup.tenants.push(slow);
    let gw = setup.start().await;
    let at = |host: &str, path: &str| format!("http://{host}:{}{path}", gw.addr.port());

    let contoso_host = "crm.contoso.localhost";
    let pages = json!([
        { "name": "chooser", "url": at(contoso_host, "/_vestibule/login?rd=%2Fdeals") },
        { "name": "not-a-crm-user-403", "url": at(contoso_host, "/_vestibule/login?provider=corp&rd=%2Fdeals") },
        { "name": "provider-down-503", "url": at(contoso_host, "/_vestibule/login?provider=partner&rd=%2Fdeals") },
        { "name": "bad-sign-in-response-400", "url": at(contoso_host, "/_vestibule/wsfed"),
          "form": { "wa": "wsignin1.0", "wresult": "<not a token", "wctx": "x" } },
        { "name": "unknown-site-421", "url": at("crm.unknown.localhost", "/") },
        { "name": "upstream-down-502", "url": at("crm.northwind.localhost", "/") },
        { "name": "upstream-timeout-504", "url": at("crm.litware.localhost", "/") },
        { "name": "sign-out", "url": at(contoso_host, "/_vestibule/logout") },
        { "name": "signed-out", "url": at(contoso_host, "/_vestibule/signed-out") },
    ]);
    let report = visit(pages, &[]).await;

    let expected: [(&str, u16, &str, Option<&str>); 9] = [
        ("chooser", 200, "Sign in to contoso", Some("Partner ADFS")),
        (
            "not-a-crm-user-403",
            403,
            "is not a user of contoso",
            Some("Back to contoso"),
        ),
        (
            "provider-down-503",
            503,
            "temporarily unavailable",
            Some("Back to contoso"),
        ),
        (
            "bad-sign-in-response-400",
            400,
            "Sign-in refused",
            Some("Back to contoso"),
        ),
        ("unknown-site-421", 421, "Check the address", None),
        (
            "upstream-down-502",
            502,
            "not reachable",
            Some("Back to northwind"),
        ),
        (
            "upstream-timeout-504",
            504,
            "did not answer in time",
            Some("Back to litware"),
        ),
        ("sign-out", 200, "Sign out of this site?", None),
        (
            "signed-out",
            200,
            "You are signed out",
            Some("Sign in again"),
        ),
    ];
    let visited = report["pages"].as_array().unwrap();
    assert_eq!(visited.len(), expected.len(), "{report:#}");
    for (page, (name, status, says, way_back)) in visited.iter().zip(expected) {
        let text = page["text"].as_str().unwrap();
        assert_eq!(page["name"], name);
        assert_eq!(page["status"], status, "{name}: {page:#}");
        assert!(text.contains(says), "{name}: {text}");
        if let Some(link) = way_back {
            assert!(text.contains(link), "{name}: no `{link}`: {text}");
        }
        assert!(text.contains("Request id"), "{name}: {text}");
        if name != "unknown-site-421" {
            let tenant = ["contoso", "northwind", "litware"]
                .into_iter()
                .find(|t| text.contains(t));
            assert!(tenant.is_some(), "{name}: the tenant is not named: {text}");
        }
        assert_eq!(page["violations"], json!([]), "{name}: axe-core: {page:#}");
        assert_eq!(page["external"], json!([]), "{name} loaded from elsewhere");
        for internal in ["127.0.0.1", "pingora", "panicked", "Error {", "os error"] {
            assert!(
                !text.contains(internal),
                "{name} shows `{internal}`: {text}"
            );
        }
    }
    assert_eq!(up.hits(), 0, "no page reached the CRM");
}
