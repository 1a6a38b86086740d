//! The CRM user directory against real databases the test starts itself (PostgreSQL,
//! MariaDB, SQLite) and a file: only an existing, active, unambiguous CRM user gets a session;
//! every refusal is a 403 page naming the account and the tenant, with no session stored and
//! nothing sent upstream. WS-Federation (the npm `wsfed` peer) and OpenID Connect (npm
//! `oidc-provider`) sign-ins both go through it.

use crate::databases::{MariaDb, Postgres};
use crate::harness::*;
use crate::oidc_flow;
use crate::peers::*;
use crate::spec;
use crate::wsfed_flow::*;
use base64::Engine;
use sqlx::AssertSqlSafe;
use std::time::Duration;

/// A CRM database with a SuperOffice-like `associate` table.
enum Crm {
    Postgres(Postgres),
    MariaDb(MariaDb),
    Sqlite(tempfile::TempDir),
}

const PG_QUERY: &str = "SELECT associate_id AS id, name AS display_name, email, roles, active FROM associate WHERE lower(email) = lower($1) AND deleted = 0";
const MYSQL_QUERY: &str = "SELECT associate_id AS id, name AS display_name, email, roles, active FROM associate WHERE lower(email) = lower(?) AND deleted = 0";

impl Crm {
    async fn postgres() -> Self {
        let crm = Self::Postgres(tokio::task::spawn_blocking(Postgres::start).await.unwrap());
        crm.exec("CREATE TABLE associate (associate_id INTEGER PRIMARY KEY, name TEXT, email TEXT, deleted INTEGER NOT NULL DEFAULT 0, active BOOLEAN, roles TEXT[])").await;
        crm.seed().await;
        crm
    }

    async fn mariadb() -> Self {
        let db = tokio::task::spawn_blocking(MariaDb::start).await.unwrap();
        let admin = sqlx::MySqlPool::connect(&db.url()).await.unwrap();
        sqlx::raw_sql("CREATE DATABASE crm")
            .execute(&admin)
            .await
            .unwrap();
        let crm = Self::MariaDb(db);
        crm.exec("CREATE TABLE associate (associate_id INT PRIMARY KEY, name VARCHAR(200), email VARCHAR(200), deleted INT NOT NULL DEFAULT 0, active BOOLEAN, roles VARCHAR(200))").await;
        crm.seed().await;
        crm
    }

    async fn sqlite() -> Self {
        let crm = Self::Sqlite(tempfile::tempdir().unwrap());
        crm.exec("CREATE TABLE associate (associate_id INTEGER PRIMARY KEY, name TEXT, email TEXT, deleted INTEGER NOT NULL DEFAULT 0, active BOOLEAN, roles TEXT)").await;
        crm.seed().await;
        crm
    }

    fn url(&self) -> String {
        match self {
            Self::Postgres(pg) => pg.url(),
            Self::MariaDb(db) => format!("mysql://root@127.0.0.1:{}/crm", db.port),
            Self::Sqlite(dir) => format!("sqlite://{}", dir.path().join("crm.db").display()),
        }
    }

    fn query(&self) -> &'static str {
        match self {
            Self::MariaDb(_) => MYSQL_QUERY,
            _ => PG_QUERY,
        }
    }

    fn roles(&self, roles: &[&str]) -> String {
        match self {
            Self::Postgres(_) => format!(
                "ARRAY[{}]::text[]",
                roles
                    .iter()
                    .map(|r| format!("'{r}'"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            _ => format!("'{}'", roles.join(",")),
        }
    }

    /// Runs statements as the CRM's administrator (test set-up, not the gateway).
    async fn exec(&self, sql: &str) {
        let sql = AssertSqlSafe(sql.to_owned());
        match self {
            Self::Postgres(pg) => {
                let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
                sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            }
            Self::MariaDb(_) => {
                let pool = sqlx::MySqlPool::connect(&self.url()).await.unwrap();
                sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            }
            Self::Sqlite(_) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(self.url().trim_start_matches("sqlite://"))
                    .create_if_missing(true);
                let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
                sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            }
        }
    }

    async fn count(&self, table: &str) -> i64 {
        let sql = AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        match self {
            Self::Postgres(pg) => {
                let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
            }
            Self::MariaDb(_) => {
                let pool = sqlx::MySqlPool::connect(&self.url()).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
            }
            Self::Sqlite(_) => {
                let pool = sqlx::SqlitePool::connect(&self.url()).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
            }
        }
    }

    async fn seed(&self) {
        let rows = [
            (
                101,
                "Alice Andersen",
                "alice@contoso.example",
                0,
                "TRUE",
                &["sales", "admin"][..],
            ),
            (
                102,
                "Bob Berg",
                "bob@contoso.example",
                0,
                "FALSE",
                &["sales"][..],
            ),
            (103, "Twin One", "twin@contoso.example", 0, "TRUE", &[][..]),
            (104, "Twin Two", "TWIN@contoso.example", 0, "TRUE", &[][..]),
            (
                105,
                "Dan Deleted",
                "dan@contoso.example",
                1,
                "TRUE",
                &[][..],
            ),
            (
                106,
                "Erin Example",
                "erin@contoso.example",
                0,
                "TRUE",
                &["support"][..],
            ),
            (
                107,
                "Frank Nullactive",
                "frank@contoso.example",
                0,
                "NULL",
                &[][..],
            ),
        ];
        for (id, name, email, deleted, active, roles) in rows {
            self.exec(&format!(
                "INSERT INTO associate (associate_id, name, email, deleted, active, roles) VALUES ({id}, '{name}', '{email}', {deleted}, {active}, {})",
                self.roles(roles)
            ))
            .await;
        }
    }

    /// This database as the contoso tenant's directory, matching on the UPN.
    fn directory(&self, timing: spec::DirectoryTiming) -> spec::Directory {
        spec::Directory::Sql {
            url: spec::Secret::value(self.url()),
            query: self.query().into(),
            match_field: "upn".into(),
            timing,
        }
    }
}

/// The identity-provider peer, the upstream and the gateway, with `directory` for contoso.
struct Lab {
    up: Upstream,
    peer: WsFedPeer,
    setup: Setup,
    gw: Gateway,
    _certs: tempfile::TempDir,
}

impl Lab {
    async fn start(directory: spec::Directory) -> Self {
        let up = Upstream::start().await;
        let certs = tempfile::tempdir().unwrap();
        let (cert, key) = make_cert(certs.path(), "idp");
        let peer = WsFedPeer::start(&cert, &key, &[("TOKEN", "saml20"), ("ISSUER", ISSUER)]);
        let mut setup = wsfed_setup(up.addr, &peer);
        setup.contoso().directory = Some(directory);
        let gw = setup.start().await;
        Self {
            up,
            peer,
            setup,
            gw,
            _certs: certs,
        }
    }

    /// One person signing in at the provider (its account picker: `login_hint`) and posting
    /// the token back to the gateway.
    async fn sign_in(&self, upn: &str) -> Reply {
        sign_in_as(&self.gw, &self.peer, upn).await
    }

    async fn metric(&self, line_start: &str) -> f64 {
        let body = get(self.gw.addr, "x", "/_vestibule/metrics", &[])
            .await
            .body;
        body.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0.0, |v| v.parse().unwrap())
    }

    async fn queries(&self) -> f64 {
        self.metric("vestibule_directory_queries_total{tenant=\"contoso\"}")
            .await
    }

    async fn page(&self, cookie: &str) -> Reply {
        get(
            self.gw.addr,
            "crm.contoso.localhost",
            "/deals",
            &["Accept: text/html", &format!("Cookie: {cookie}")],
        )
        .await
    }

    /// A refused sign-in: 403, the page names the account, the tenant and why; no session
    /// cookie, no session row, nothing upstream.
    async fn assert_refused(&self, upn: &str, why: &str) {
        let sessions = self.setup.session_count().await;
        let hits = self.up.hits();
        let r = self.sign_in(upn).await;
        assert_eq!(r.status, 403, "{upn}: {}", r.body);
        // The page shows the account HTML-escaped (an account name is text, never markup).
        assert!(
            r.body.contains(&vestibule::proxy::pages::escape(upn)),
            "{upn}: the page names the account: {}",
            r.body
        );
        assert!(
            r.body.contains("contoso"),
            "{upn}: the page names the tenant: {}",
            r.body
        );
        assert!(r.body.contains(why), "{upn}: `{why}` in {}", r.body);
        assert!(session_cookie(&r).is_none(), "{upn}: no session cookie");
        assert_eq!(
            self.setup.session_count().await,
            sessions,
            "{upn}: no session row"
        );
        assert_eq!(self.up.hits(), hits, "{upn}: nothing reached the upstream");
    }
}

pub fn jwt_claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// Hit, miss, deactivated, ambiguous, deleted, NULL `active`, injection attempts, and the
/// cache, against one backend.
async fn outcomes(crm: Crm) {
    let lab = Lab::start(crm.directory(Default::default())).await;

    // Hit: a session, and the CRM user goes upstream as a header and in the assertion.
    let r = lab.sign_in("Alice@Contoso.example").await;
    assert_eq!(r.status, 302, "{}", r.body);
    let cookie = session_cookie(&r).expect("session cookie");
    let page = lab.page(&cookie).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let seen = lab.up.last();
    assert_eq!(seen.one("x-vestibule-crm-user"), Some("101"));
    assert_eq!(seen.one("x-vestibule-user"), Some("Alice@Contoso.example"));
    let claims = jwt_claims(seen.one("x-vestibule-assertion").unwrap());
    assert_eq!(claims["crm_user"], "101");
    assert_eq!(claims["roles"], serde_json::json!(["sales", "admin"]));
    assert_eq!(lab.queries().await, 1.0);

    // The same user again: answered from the cache, no query.
    let again = lab.sign_in("alice@contoso.example").await;
    assert_eq!(again.status, 302, "{}", again.body);
    assert_eq!(lab.queries().await, 1.0, "a cache hit sends no query");

    lab.assert_refused("bob@contoso.example", "is deactivated")
        .await;
    lab.assert_refused("frank@contoso.example", "is deactivated")
        .await;
    lab.assert_refused("carol@contoso.example", "is not a user of contoso")
        .await;
    lab.assert_refused("dan@contoso.example", "is not a user of contoso")
        .await;
    lab.assert_refused("twin@contoso.example", "matches several users")
        .await;
    let before_negative = lab.queries().await;
    lab.assert_refused("carol@contoso.example", "is not a user of contoso")
        .await;
    assert_eq!(
        lab.queries().await,
        before_negative,
        "refusals are cached too"
    );

    // The matched value is a bound parameter: text that would rewrite the query if pasted
    // into it matches nobody, and changes nothing.
    for attack in [
        "x' OR '1'='1",
        "alice@contoso.example' OR '1'='1",
        "'; DROP TABLE associate; --",
        "\\'; DELETE FROM associate; --",
        "alice@contoso.example') OR 1=1 --",
    ] {
        lab.assert_refused(attack, "is not a user of contoso").await;
    }
    assert_eq!(crm.count("associate").await, 7, "the table is intact");

    for (outcome, n) in [
        ("admitted", 2.0),
        ("inactive_user", 2.0),
        ("unknown_user", 8.0),
        ("ambiguous_user", 1.0),
    ] {
        assert_eq!(
            lab.metric(&format!(
                "vestibule_directory_lookups_total{{outcome=\"{outcome}\",tenant=\"contoso\"}}"
            ))
            .await,
            n,
            "{outcome}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_directory_admits_only_one_active_crm_user() {
    outcomes(Crm::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_directory_admits_only_one_active_crm_user() {
    outcomes(Crm::mariadb().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_directory_admits_only_one_active_crm_user() {
    outcomes(Crm::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_down_at_sign_in_gives_503_and_no_session_then_recovers() {
    let mut crm = Crm::postgres().await;
    let lab = Lab::start(crm.directory(Default::default())).await;
    assert_eq!(
        get(lab.gw.addr, "x", "/_vestibule/ready", &[]).await.status,
        200
    );
    let Crm::Postgres(pg) = &mut crm else {
        unreachable!()
    };
    tokio::task::block_in_place(|| pg.pause());

    let sessions = lab.setup.session_count().await;
    let r = lab.sign_in("erin@contoso.example").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("temporarily unavailable"), "{}", r.body);
    assert!(session_cookie(&r).is_none());
    assert_eq!(lab.setup.session_count().await, sessions);
    assert_eq!(lab.up.hits(), 0);
    let ready = get(lab.gw.addr, "x", "/_vestibule/ready", &[]).await;
    assert_eq!(ready.status, 503);
    assert!(
        ready
            .body
            .contains("user directory of tenant contoso unreachable"),
        "{}",
        ready.body
    );
    assert!(
        !ready.body.contains("127.0.0.1"),
        "no address leaks: {}",
        ready.body
    );
    assert_eq!(
        lab.metric("vestibule_directory_lookups_total{outcome=\"directory_unavailable\",tenant=\"contoso\"}")
            .await,
        1.0
    );

    // Back: the pool reconnects, no restart needed (after the short back-off).
    let Crm::Postgres(pg) = &mut crm else {
        unreachable!()
    };
    tokio::task::block_in_place(|| pg.resume());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = lab.sign_in("erin@contoso.example").await;
        if r.status == 302 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(
            std::time::Instant::now() < deadline,
            "the directory did not recover"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        get(lab.gw.addr, "x", "/_vestibule/ready", &[]).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_user_loses_access_at_the_recheck_and_an_outage_is_bridged_by_the_grace() {
    let mut crm = Crm::postgres().await;
    let lab = Lab::start(crm.directory(spec::DirectoryTiming {
        recheck: Some("2s".into()),
        stale_grace: Some("3s".into()),
    }))
    .await;
    let alice = session_cookie(&lab.sign_in("alice@contoso.example").await).unwrap();
    let erin = session_cookie(&lab.sign_in("erin@contoso.example").await).unwrap();
    assert_eq!(lab.page(&alice).await.status, 200);
    assert_eq!(lab.setup.session_count().await, 2);

    // Deactivated in the CRM: within the re-check interval the session ends.
    crm.exec("UPDATE associate SET active = FALSE WHERE associate_id = 101")
        .await;
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let hits = lab.up.hits();
    let after = lab.page(&alice).await;
    assert_eq!(after.status, 302, "sent to sign in again: {}", after.body);
    assert!(after
        .header("location")
        .unwrap()
        .starts_with("/_vestibule/login"));
    assert_eq!(lab.up.hits(), hits, "nothing reached the upstream");
    assert_eq!(
        lab.setup.session_count().await,
        1,
        "alice's session row is gone"
    );
    lab.assert_refused("alice@contoso.example", "is deactivated")
        .await;

    // Erin was confirmed at the same re-check; now the database goes down. Within the
    // grace her session keeps working, past it requests are refused (but she is not signed
    // out), and when the database is back her session works again.
    assert_eq!(lab.page(&erin).await.status, 200);
    let Crm::Postgres(pg) = &mut crm else {
        unreachable!()
    };
    tokio::task::block_in_place(|| pg.pause());
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    assert_eq!(lab.page(&erin).await.status, 200, "within the grace");
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let hits = lab.up.hits();
    let refused = lab.page(&erin).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body.contains("cannot confirm your access"),
        "{}",
        refused.body
    );
    assert_eq!(lab.up.hits(), hits);
    assert_eq!(
        lab.setup.session_count().await,
        1,
        "not signed out by an outage"
    );
    let Crm::Postgres(pg) = &mut crm else {
        unreachable!()
    };
    tokio::task::block_in_place(|| pg.resume());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while lab.page(&erin).await.status != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the session did not come back"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_directory_is_reloaded_when_edited() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.yaml");
    std::fs::write(
        &users,
        "users:\n  - { id: u-1, login: alice@contoso.example, display_name: Alice, roles: [sales] }\n",
    )
    .unwrap();
    let lab = Lab::start(spec::Directory::File {
        path: users.display().to_string(),
        match_field: "upn".into(),
        timing: spec::DirectoryTiming {
            recheck: Some("1s".into()),
            ..Default::default()
        },
    })
    .await;
    let alice = session_cookie(&lab.sign_in("alice@contoso.example").await).unwrap();
    assert_eq!(lab.page(&alice).await.status, 200);
    assert_eq!(lab.up.last().one("x-vestibule-crm-user"), Some("u-1"));
    lab.assert_refused("carol@contoso.example", "is not a user of contoso")
        .await;

    // Carol is added and Alice removed while the gateway runs.
    std::fs::write(
        &users,
        "users:\n  - { id: u-3, login: carol@contoso.example, display_name: Carol }\n",
    )
    .unwrap();
    let carol =
        session_cookie(&lab.sign_in("carol@contoso.example").await).expect("carol admitted");
    assert_eq!(lab.page(&carol).await.status, 200);
    assert_eq!(lab.up.last().one("x-vestibule-crm-user"), Some("u-3"));
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        lab.page(&alice).await.status,
        302,
        "alice's session ended at the re-check"
    );

    // A broken edit keeps the last good list.
    std::fs::write(&users, "users: [ not yaml").unwrap();
    assert_eq!(lab.sign_in("carol@contoso.example").await.status, 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_connect_sign_ins_go_through_the_directory_too() {
    let crm = Crm::sqlite().await;
    let up = Upstream::start().await;
    let op = OidcPeer::start(&[]);
    let mut setup = oidc_flow::oidc_setup(up.addr, &op.issuer);
    setup.contoso().directory = Some(spec::Directory::Sql {
        url: spec::Secret::value(crm.url()),
        query: PG_QUERY.into(),
        match_field: "email".into(),
        timing: Default::default(),
    });
    let gw = setup.start().await;

    let done = oidc_flow::sign_in_as(&gw, &op, "alice").await;
    assert_eq!(done.status, 302, "{}", done.body);
    let cookie = session_cookie(&done).unwrap();
    let page = get(
        gw.addr,
        "crm.contoso.localhost",
        "/deals",
        &[&format!("Cookie: {cookie}")],
    )
    .await;
    assert_eq!(page.status, 200);
    assert_eq!(up.last().one("x-vestibule-crm-user"), Some("101"));

    let hits = up.hits();
    let refused = oidc_flow::sign_in_as(&gw, &op, "carol").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("carol@contoso.example is not a user of contoso"),
        "{}",
        refused.body
    );
    assert!(session_cookie(&refused).is_none());
    assert_eq!(setup.session_count().await, 1);
    assert_eq!(up.hits(), hits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_with_sign_in_must_say_who_may_use_it() {
    let up = Upstream::start().await;
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(certs.path(), "idp");
    let peer = WsFedPeer::start(&cert, &key, &[]);
    let mut setup = wsfed_setup(up.addr, &peer);
    setup.contoso().directory = None;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .arg("check-config")
        .arg(setup.config_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tenants[0].directory: is required: say who may sign in"),
        "{err}"
    );
}

/// A session admitted by a value it does not keep (here Azure AD's object id, matched in
/// upper case in the file) is re-checked by the key it was admitted with, not ended for
/// lack of it; removed from the directory, it ends at the next re-check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_checks_look_up_the_key_sign_in_used() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.csv");
    // The peer's configured user carries this object id.
    std::fs::write(
        &users,
        "id,login\nu-7,6F1C3C5E-8A2B-4D7E-9F10-2B3C4D5E6F70\n",
    )
    .unwrap();
    let lab = Lab::start(spec::Directory::File {
        path: users.display().to_string(),
        match_field: "object_id".into(),
        timing: spec::DirectoryTiming {
            recheck: Some("1s".into()),
            ..Default::default()
        },
    })
    .await;
    let done = start_sign_in(&lab.gw, &lab.peer)
        .await
        .complete(&lab.gw)
        .await;
    let cookie = session_cookie(&done).expect("admitted by object id");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        lab.page(&cookie).await.status,
        200,
        "still admitted after the re-check"
    );
    assert_eq!(lab.up.last().one("x-vestibule-crm-user"), Some("u-7"));
    std::fs::write(&users, "id,login\nu-8,someone-else\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(lab.page(&cookie).await.status, 302, "ended once removed");
}

/// A `login` column is compared by the gateway too: a database collation that folds case
/// cannot match a subject the identity provider keeps apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returned_login_column_must_equal_the_matched_value() {
    let crm = Crm::sqlite().await;
    let lab = Lab::start(spec::Directory::Sql {
        url: spec::Secret::value(crm.url()),
        query: "SELECT associate_id AS ID, email AS Login, active AS Active FROM associate WHERE email = $1 COLLATE NOCASE".into(),
        match_field: "subject".into(),
        timing: Default::default(),
    })
    .await;
    // The NameID is the UPN as typed: the database finds alice's row whatever its case.
    let exact = lab.sign_in("alice@contoso.example").await;
    assert_eq!(exact.status, 302, "{}", exact.body);
    lab.assert_refused("ALICE@contoso.example", "is not a user of contoso")
        .await;
    // Column names are matched without case: `Active` is the active column.
    lab.assert_refused("bob@contoso.example", "is deactivated")
        .await;
}
