//! The command line: check-config over the shipped files and over broken ones, keygen.

use std::path::Path;
use std::process::Command;

fn vestibule(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn every_shipped_config_is_valid() {
    let mut files: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("config"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .map(|p| format!("config/{}", p.file_name().unwrap().to_string_lossy()))
            .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    let mut args = vec!["check-config"];
    args.extend(files.iter().map(String::as_str));
    // example.yaml reads its secrets from the environment, as production configs should.
    let (code, out, err) = vestibule(
        &args,
        &[
            (
                "VESTIBULE_KEY_K1",
                "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
            ),
            ("VESTIBULE_GOOGLE_SECRET", "example-secret"),
            ("CRM_DATABASE_URL", "postgres://vestibule@127.0.0.1/crm"),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    for f in &files {
        assert!(out.contains(&format!("{f}: ok")), "{out}");
    }
}

fn check(yaml: &str) -> (i32, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (code, out, err) = vestibule(&["check-config", path.to_str().unwrap()], &[]);
    assert!(!out.contains(": ok"));
    let prefix = format!("{}:", path.display());
    let lines = err
        .lines()
        .map(|l| {
            l.strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("line without file: {l}"))
                .to_owned()
        })
        .collect();
    (code, lines)
}

#[test]
fn broken_yaml_is_reported_with_its_line() {
    let (code, lines) = check("listeners: []\n\ttenants: []\n");
    assert_eq!(code, 2);
    assert_eq!(
        lines,
        vec!["2:1: found character that cannot start any token"]
    );
}

#[test]
fn unknown_keys_are_errors_with_path_and_line() {
    let (code, lines) = check("tenants:\n  - name: a\n    hots: [x]\n");
    assert_eq!(code, 2);
    assert_eq!(lines, vec!["3:5: tenants[0]: unknown field `hots`, expected one of `name`, `hosts`, `upstream`, `public`, `api`, `sign_in`, `directory`, `documents`"]);
}

#[test]
fn every_invalid_value_is_listed_with_path_and_line() {
    let yaml = "\
listeners:
  - address: 127.0.0.1:99999
keys:
  active: k2
  ring:
    k1: { value: c2hvcnQ= }
    k3: { env: VESTIBULE_TEST_SURELY_UNSET }
session: { idle: 48h, absolute: 24h }
assertion: { key: { file: /nonexistent/key.pem }, audience: crm, lifetime: soon }
tenants:
  - name: a
    hosts: [crm.example, \"https://x\"]
    upstream: { address: nohost }
    public: [static/]
  - name: a
    hosts: [crm.example]
    upstream: { address: 127.0.0.1:9000 }
";
    let (code, lines) = check(yaml);
    assert_eq!(code, 2);
    let expected = [
        "2:14: listeners[0].address: `127.0.0.1:99999` is not an ip:port address",
        "4:11: keys.active: `k2` is not a key in keys.ring",
        "6:5: keys.ring.k1: is not a base64-encoded 256-bit key",
        "7:5: keys.ring.k3: environment variable VESTIBULE_TEST_SURELY_UNSET is not set",
        "8:18: session.idle: must not be longer than session.absolute",
        "9:14: assertion.key: cannot read",
        "9:76: assertion.lifetime: `soon` is not a duration",
        "12:26: tenants[0].hosts[1]: `https://x` is not a host name",
        "13:26: tenants[0].upstream.address: `nohost` is not host:port",
        "14:14: tenants[0].public[0]: `static/` is not a path prefix",
        "15:11: tenants[1].name: tenant `a` is defined twice",
        "16:13: tenants[1].hosts[0]: `crm.example` is already routed to tenants[0]",
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (line, want) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(want),
            "{line}\n  should start with\n{want}"
        );
    }
}

#[test]
fn missing_sections_are_named() {
    let (code, lines) = check("listeners: []\n");
    assert_eq!(code, 2);
    let text = lines.join("\n");
    for want in [
        "listeners: give at least one listener",
        "keys: is required",
        "assertion: is required",
        "tenants: give at least one tenant",
    ] {
        assert!(text.contains(want), "{want} missing from\n{text}");
    }
}

#[test]
fn keygen_prints_a_usable_key() {
    let (code, out, _) = vestibule(&["keygen", "--id", "k7"], &[]);
    assert_eq!(code, 0);
    let key = out.lines().find_map(|l| l.strip_prefix("key: ")).unwrap();
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key).unwrap();
    assert_eq!(bytes.len(), 32);
    assert!(out.contains("id: k7"));
    let (_, again, _) = vestibule(&["keygen", "--id", "k7"], &[]);
    assert_ne!(out, again, "fresh randomness each time");
}

#[test]
fn provider_mistakes_are_listed_with_path_and_line() {
    let yaml = format!(
        "\
listeners: [{{ address: 0.0.0.0:8080 }}]
keys: {{ active: k1, ring: {{ k1: {{ value: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE= }} }} }}
assertion: {{ key: {{ file: {root}/certs/dev/assertion.pem }}, audience: crm }}
providers:
  - name: azure
    kind: wsfed
    passive_endpoint: http://login.example/wsfed
    realm: spn:x
    signature_algorithms: [rsa-sha1, rsa-md5]
  - name: google
    kind: saml-magic
tenants:
  - name: a
    hosts: [crm.example]
    upstream: {{ address: 127.0.0.1:9000 }}
    sign_in:
      - provider: azure
      - provider: nobody
        azure_tenant_ids: [not-a-guid]
    directory: {{ kind: none }}
",
        root = env!("CARGO_MANIFEST_DIR")
    );
    let (code, lines) = check(&yaml);
    assert_eq!(code, 2);
    let expected = [
        "5:5: providers[0]: give metadata_url, certificates, or both",
        "7:23: providers[0].passive_endpoint: `http://login.example/wsfed` must be an https:// URL",
        "9:5: providers[0].signature_algorithms: rsa-sha1 needs dangerous_allow_sha1: true",
        "9:38: providers[0].signature_algorithms[1]: `rsa-md5` is not one of",
        "11:11: providers[1].kind: `saml-magic` is not a provider kind",
        "17:9: tenants[0].sign_in[0].allowed_issuers: give the issuers (or azure_tenant_ids)",
        "18:19: tenants[0].sign_in[1].provider: `nobody` is not a provider in providers",
        "19:28: tenants[0].sign_in[1].azure_tenant_ids[0]: `not-a-guid` is not a tenant id",
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (line, want) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(want),
            "{line}\n  should start with\n{want}"
        );
    }
}

#[test]
fn oidc_provider_mistakes_are_listed() {
    let yaml = format!(
        "\
listeners: [{{ address: 127.0.0.1:8080 }}]
keys: {{ active: k1, ring: {{ k1: {{ value: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE= }} }} }}
assertion: {{ key: {{ file: {root}/certs/dev/assertion.pem }}, audience: crm }}
providers:
  - name: google
    kind: oidc
    issuer: https://accounts.google.com
    client_id: abc
    client_secret: {{ env: VESTIBULE_TEST_SURELY_UNSET_SECRET }}
    realm: spn:x
    authorization_params: {{ state: fixed }}
    id_token_algorithms: [RS256, HS256, none]
tenants:
  - name: a
    hosts: [crm.example]
    upstream: {{ address: 127.0.0.1:9000 }}
    sign_in: [{{ provider: google, hosted_domains: [contoso.example] }}]
    directory: {{ kind: none }}
",
        root = env!("CARGO_MANIFEST_DIR")
    );
    let (code, lines) = check(&yaml);
    assert_eq!(code, 2);
    let text = lines.join("\n");
    for want in [
        "9:5: providers[0].client_secret: environment variable VESTIBULE_TEST_SURELY_UNSET_SECRET is not set",
        "10:12: providers[0].realm: is a WS-Federation setting",
        "11:36: providers[0].authorization_params.state: is set by Vestibule itself",
        "12:34: providers[0].id_token_algorithms[1]: `HS256` is not an allowed ID token algorithm",
        "12:41: providers[0].id_token_algorithms[2]: `none` is not an allowed ID token algorithm",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert_eq!(lines.len(), 5, "{text}");
}

/// A plain-HTTP listener reachable beyond loopback, with no trusted proxy in front, cannot
/// serve a browser sign-in (its cookies need HTTPS): check-config says so, and still passes.
#[test]
fn a_plain_http_listener_beyond_loopback_gets_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/vestibule.yaml"),
    )
    .unwrap();
    let exposed = shipped.replacen("- address: 127.0.0.1:8080", "- address: 0.0.0.0:8080", 1);
    assert_ne!(exposed, shipped);
    let path = dir.path().join("exposed.yaml");
    std::fs::write(&path, &exposed).unwrap();
    let file = path.to_str().unwrap();
    let (code, out, err) = vestibule(&["check-config", file], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(": ok"), "{out}");
    assert!(
        err.contains(&format!(
            "{file}: warning: listeners[0] (0.0.0.0:8080): plain HTTP beyond loopback"
        )),
        "{err}"
    );
    assert!(err.contains("proxy.trusted_proxies"), "{err}");
    // With a trusted proxy named, or on loopback only, there is nothing to warn about.
    let proxied = format!("{exposed}\nproxy:\n  trusted_proxies: [10.0.0.0/8]\n");
    if !exposed.contains("\nproxy:") {
        std::fs::write(&path, &proxied).unwrap();
        let (code, _, err) = vestibule(&["check-config", file], &[]);
        assert_eq!(code, 0);
        assert!(!err.contains("warning"), "{err}");
    }
    let (_, _, err) = vestibule(&["check-config", "config/vestibule.yaml"], &[]);
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn a_freely_chosen_match_field_needs_a_single_ws_federation_issuer() {
    let yaml = |field: &str| {
        format!(
            "\
listeners: [{{ address: 127.0.0.1:8080 }}]
keys: {{ active: k1, ring: {{ k1: {{ value: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE= }} }} }}
assertion: {{ key: {{ file: {root}/certs/dev/assertion.pem }}, audience: crm }}
providers:
  - name: azure
    kind: wsfed
    passive_endpoint: https://login.microsoftonline.com/common/wsfed
    certificates: [{root}/certs/dev/gateway.crt]
    realm: spn:x
tenants:
  - name: a
    hosts: [crm.example]
    upstream: {{ address: 127.0.0.1:9000 }}
    sign_in:
      - provider: azure
        azure_tenant_ids: [0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9, 1b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9]
    directory: {{ kind: sql, url: {{ value: \"sqlite:///tmp/crm.db\" }}, query: \"SELECT 1 AS id WHERE $1 = $1\", match: {field} }}
",
            root = env!("CARGO_MANIFEST_DIR")
        )
    };
    for field in ["email", "subject", "name_id", "employeeid"] {
        let (code, lines) = check(&yaml(field));
        assert_eq!(code, 2, "{field}: {lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("tenants[0].directory.match")
                    && l.contains("accepts 2 WS-Federation issuers")),
            "{field}: {lines:?}"
        );
    }
    for field in ["upn", "object_id"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml(field)).unwrap();
        let (code, out, err) = vestibule(&["check-config", path.to_str().unwrap()], &[]);
        assert_eq!(code, 0, "{field}: {out}{err}");
    }
}

#[test]
fn document_token_mistakes_are_listed() {
    let yaml = format!(
        "\
listeners: [{{ address: 127.0.0.1:8080 }}]
keys: {{ active: k1, ring: {{ k1: {{ value: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE= }} }} }}
assertion: {{ key: {{ file: {root}/certs/dev/assertion.pem }}, audience: crm }}
document_providers:
  - name: ms
    kind: microsoft
    authority: https://login.microsoftonline.com/organizations/v2.0
    client_id: abc
    client_secret: {{ env: VESTIBULE_TEST_SURELY_UNSET_SECRET }}
  - name: g
    kind: dropbox
  - name: gdrive
    kind: google
    authority: https://accounts.google.com
    client_id: abc
    client_secret: {{ value: s }}
  - name: both
    kind: microsoft
    authority: https://login.microsoftonline.com/organizations/v2.0
    client_id: abc
    client_secret: {{ value: s }}
    client_certificate: {{ certificate: {root}/certs/dev/gateway.crt, key: {{ file: {root}/certs/dev/gateway.key }} }}
  - name: mismatched
    kind: microsoft
    authority: https://login.microsoftonline.com/organizations/v2.0
    client_id: abc
    client_certificate: {{ certificate: {root}/certs/dev/gateway.crt, key: {{ file: {root}/certs/dev/assertion.pem }} }}
  - name: neither
    kind: microsoft
    authority: https://login.microsoftonline.com/organizations/v2.0
    client_id: abc
tenants:
  - name: a
    hosts: [a.example]
    upstream: {{ address: 127.0.0.1:9000 }}
    documents:
      provider: ms
      paths: [/]
      resources: [{{ name: status, scopes: [x] }}, {{ name: Graph, scopes: [] }}]
      system_user: docs@a.example
  - name: b
    hosts: [b.example]
    upstream: {{ address: 127.0.0.1:9000 }}
    documents: {{ provider: nobody, paths: [/documents/] }}
  - name: c
    hosts: [c.example]
    upstream: {{ address: 127.0.0.1:9000 }}
    documents:
      provider: gdrive
      paths: [/drive/]
      system_user: docs
      admins: [\"ops team\"]
      resources: [{{ name: graph, scopes: [x] }}]
",
        root = env!("CARGO_MANIFEST_DIR")
    );
    let (code, lines) = check(&yaml);
    assert_eq!(code, 2);
    let text = lines.join("\n");
    for want in [
        "document_providers[0].client_secret: environment variable VESTIBULE_TEST_SURELY_UNSET_SECRET is not set",
        "document_providers[1].kind: `dropbox` is not a document provider kind",
        "document_providers[1].authority: is required",
        "tenants[0].documents.paths[0]: `/` must be a path prefix",
        "tenants[0].documents.resources[0].name: `status` would collide",
        "tenants[0].documents.resources[1].name: a resource name is 1-32 lower-case",
        "tenants[0].documents.resources[1].scopes: give the scopes",
        "tenants[0].documents.system_user: is a Google setting",
        "tenants[1].documents.provider: `nobody` is not a provider in document_providers",
        "document_providers[3].client_certificate: give client_secret or client_certificate, not both",
        "document_providers[4].client_certificate: the private key does not belong to the certificate",
        "document_providers[5].client_secret: is required (or client_certificate",
        "tenants[2].documents.system_user: `docs` is not an e-mail address",
        "tenants[2].documents.admins[0]: `ops team` is not an e-mail address",
        "tenants[2].documents.resources: is a Microsoft setting",
    ] {
        assert!(text.contains(want), "missing: {want}\n{text}");
    }
}

/// A minimal configuration whose one tenant reads its users from `users`.
fn users_file_config(users: &Path) -> String {
    format!(
        "listeners: [{{ address: 127.0.0.1:8080 }}]\n\
         keys: {{ active: k1, ring: {{ k1: {{ value: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE= }} }} }}\n\
         assertion: {{ key: {{ file: certs/dev/assertion.pem }}, issuer: vestibule, audience: crm }}\n\
         tenants:\n  - name: contoso\n    hosts: [crm.contoso.example]\n    upstream: {{ address: 127.0.0.1:9000 }}\n\
         \x20   directory: {{ kind: file, path: {}, match: upn }}\n",
        users.display()
    )
}

/// `--no-secrets` checks a deployment file on a machine without its secrets: absent
/// `{env}`/`{file}` secrets are listed as not checked, everything else is still checked, and
/// a secret that is present is checked in full.
#[test]
fn check_config_without_secrets_checks_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deploy.yaml");
    let deploy = "\
listeners:
  - address: 127.0.0.1:8080
keys:
  active: k1
  ring:
    k1: { env: VESTIBULE_TEST_ABSENT_KEY }
store:
  postgres:
    url: { file: /nonexistent/vestibule/database-url }
assertion:
  key: { file: /nonexistent/vestibule/assertion.pem }
  issuer: vestibule
  audience: crm
tenants:
  - name: contoso
    hosts: [crm.contoso.example]
    upstream: { address: 127.0.0.1:9000 }
    directory: { kind: none }
";
    std::fs::write(&path, deploy).unwrap();
    let file = path.to_str().unwrap();

    let (code, out, err) = vestibule(&["check-config", file], &[]);
    assert_eq!(
        code, 2,
        "without the flag the secrets are required: {out}{err}"
    );
    assert!(
        err.contains("keys.ring.k1: environment variable VESTIBULE_TEST_ABSENT_KEY is not set"),
        "{err}"
    );

    let (code, out, err) = vestibule(&["check-config", "--no-secrets", file], &[]);
    assert_eq!(code, 0, "{out}{err}");
    for secret in ["keys.ring.k1", "store.postgres.url", "assertion.key"] {
        assert!(
            out.contains(&format!("{secret}: not checked")),
            "{secret}: {out}"
        );
    }
    assert!(out.contains("ok except 3 secret(s) not checked"), "{out}");

    // Everything that is not an absent secret is still checked.
    let broken = deploy
        .replace("127.0.0.1:9000", "no port here")
        .replace("{ env: VESTIBULE_TEST_ABSENT_KEY }", "{ env: A, file: b }");
    std::fs::write(&path, broken).unwrap();
    let (code, out, err) = vestibule(&["check-config", "--no-secrets", file], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("keys.ring.k1: give only one of env, file or value"),
        "{err}"
    );
    assert!(err.contains("tenants[0].upstream.address"), "{err}");
    assert!(!out.contains(": ok"), "{out}");

    // A secret that is present is checked as usual.
    std::fs::write(&path, deploy).unwrap();
    let (code, out, err) = vestibule(
        &["check-config", "--no-secrets", file],
        &[("VESTIBULE_TEST_ABSENT_KEY", "not a key")],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("keys.ring.k1: is not a base64-encoded 256-bit key"),
        "{err}"
    );
}

/// Every ```yaml block in the README and docs/ is a complete configuration that
/// `check-config --no-secrets` accepts (run from the repository root, as the docs' relative
/// paths assume), so the documentation cannot drift from the configuration model.
#[test]
fn every_yaml_block_in_the_docs_passes_check_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    pages.extend(
        std::fs::read_dir(root.join("docs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "md")),
    );
    pages.sort();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        let mut block: Option<(usize, String)> = None;
        for (n, line) in text.lines().enumerate() {
            match &mut block {
                None if line.trim_start().starts_with("```yaml") => {
                    block = Some((n + 1, String::new()))
                }
                Some((start, body)) if line.trim_start().starts_with("```") => {
                    let name = format!("{}:{start}", page.strip_prefix(root).unwrap().display());
                    let mut file = dir.path().join(format!("block-{checked}.yaml"));
                    std::fs::write(&file, body.as_bytes()).unwrap();
                    if body.starts_with("users:") {
                        // A `kind: file` user directory: checked as a tenant's directory.
                        let users = file.clone();
                        file = dir.path().join(format!("block-{checked}-config.yaml"));
                        std::fs::write(&file, users_file_config(&users)).unwrap();
                    }
                    let (code, out, err) = vestibule(
                        &["check-config", "--no-secrets", file.to_str().unwrap()],
                        &[],
                    );
                    if code != 0 {
                        failures.push(format!("{name}:\n{out}{err}"));
                    }
                    checked += 1;
                    block = None;
                }
                Some((_, body)) => {
                    body.push_str(line);
                    body.push('\n');
                }
                None => {}
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} blocks fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 0, "no yaml blocks found");
}

/// Every key the configuration model accepts, as `tenants[].upstream.address` paths, read from
/// the model itself: every section refuses unknown fields, and serde's refusal lists the
/// fields it expects, so probing each section with an unknown field walks the whole model.
/// Secrets (`{env, file, value}`) and free-form maps are leaves.
fn every_configuration_key() -> Vec<String> {
    #[derive(Clone)]
    enum Seg {
        Map(String),
        List(String),
    }
    fn wrap(prefix: &[Seg], inner: &str) -> String {
        prefix
            .iter()
            .rev()
            .fold(inner.to_owned(), |acc, seg| match seg {
                Seg::Map(name) => format!("{{{name}: {acc}}}"),
                Seg::List(name) => format!("{{{name}: [{acc}]}}"),
            })
    }
    fn fields(prefix: &[Seg]) -> Option<Vec<String>> {
        let yaml = wrap(prefix, "{__probe: 1}");
        let error = serde_norway::from_str::<vestibule::config::raw::RawConfig>(&yaml)
            .err()?
            .to_string();
        let listed = error.split("unknown field `__probe`, expected ").nth(1)?;
        let listed = listed.split(" at line ").next().unwrap();
        let names: Vec<String> = listed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(String::from)
            .collect();
        let secret = ["env", "file", "value"];
        (!names.is_empty() && names != secret).then_some(names)
    }
    fn walk(prefix: Vec<Seg>, path: String, out: &mut Vec<String>) {
        for name in fields(&prefix).unwrap_or_default() {
            let as_map = [prefix.clone(), vec![Seg::Map(name.clone())]].concat();
            let as_list = [prefix.clone(), vec![Seg::List(name.clone())]].concat();
            let dotted = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            if fields(&as_map).is_some() {
                out.push(dotted.clone());
                walk(as_map, dotted, out);
            } else if fields(&as_list).is_some() {
                out.push(format!("{dotted}[]"));
                walk(as_list, format!("{dotted}[]"), out);
            } else {
                out.push(dotted);
            }
        }
    }
    let mut out = Vec::new();
    walk(Vec::new(), String::new(), &mut out);
    out
}

/// docs/configuration.md's "Every key" table lists exactly the keys of the model, each with
/// a default and an example: a key added to the model without documentation, or documented
/// after it was removed, fails here.
#[test]
fn the_configuration_reference_lists_every_key_of_the_model() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
    )
    .unwrap();
    let section = doc
        .split("\n## Every key")
        .nth(1)
        .expect("docs/configuration.md has a section `## Every key`");
    let section = section.split("\n## ").next().unwrap();
    let mut documented = std::collections::BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        let key = cells[0].trim_matches('`').to_owned();
        assert!(
            cells.len() >= 4 && cells[1..4].iter().all(|c| !c.is_empty()),
            "`{key}`: give a default, an example and what it does: {row}"
        );
        assert!(documented.insert(key.clone()), "`{key}` is listed twice");
    }
    let model: std::collections::BTreeSet<String> = every_configuration_key().into_iter().collect();
    assert!(model.len() > 100, "{model:?}");
    let missing: Vec<_> = model.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&model).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "not documented: {missing:?}\nnot in the model: {stale:?}"
    );
}
