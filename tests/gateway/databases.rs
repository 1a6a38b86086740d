//! Real CRM databases for the directory tests, started by the test itself from Debian's
//! packages (`postgresql`, `mariadb-server`; scripts/install-deps --test installs them) in a
//! temporary folder on a free 127.0.0.1 port, and stopped when dropped. No pre-installed or
//! running service is assumed or touched.

use crate::harness::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `program` as `user` when we are root (initdb and mariadbd refuse root), else as
/// ourselves. `setpriv` execs the program (no process in between), so the child we hold is
/// the server itself and killing it stops the server.
fn as_user(user: &str, program: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={user}"),
            &format!("--regid={user}"),
            "--clear-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn give_to(user: &str, dir: &Path) {
    let _ = Command::new("chown")
        .args(["-R", &format!("{user}:{user}")])
        .arg(dir)
        .status();
}

fn run(mut c: Command, what: &str) {
    let out = c
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (scripts/install-deps --test installs it)"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PostgreSQL server of our own.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    running: bool,
    /// More `-c name=value` server settings (TLS).
    settings: String,
}

impl Postgres {
    pub fn start() -> Self {
        Self::start_with(|_| String::new())
    }

    /// Started with TLS: a certificate for 127.0.0.1 signed by a CA made for it; the CA
    /// certificate's path (the client's trust anchor) with the server.
    pub fn start_tls() -> (Self, PathBuf) {
        let mut cert_path = PathBuf::new();
        let pg = Self::start_with(|dir| {
            let openssl = |args: &[&str]| {
                let status = Command::new("openssl")
                    .args(args)
                    .current_dir(dir)
                    .stderr(Stdio::null())
                    .stdout(Stdio::null())
                    .status()
                    .expect("openssl");
                assert!(status.success(), "openssl {args:?}");
            };
            // A CA of our own, and the server's certificate for 127.0.0.1 signed by it.
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=test-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ]);
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ]);
            std::fs::write(
                dir.join("server.ext"),
                "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
            )
            .unwrap();
            openssl(&[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ]);
            give_to("postgres", dir);
            let _ = Command::new("chmod")
                .arg("600")
                .arg(dir.join("server.key"))
                .status();
            cert_path = dir.join("ca.crt");
            format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                dir.join("server.crt").display(),
                dir.join("server.key").display()
            )
        });
        (pg, cert_path)
    }

    fn start_with(settings: impl FnOnce(&Path) -> String) -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed (scripts/install-deps --test)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("a PostgreSQL version with initdb");
        let dir = tempfile::tempdir().unwrap();
        give_to("postgres", dir.path());
        let mut initdb = as_user("postgres", &bin.join("initdb"));
        initdb.arg("-D").arg(dir.path().join("data")).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(initdb, "initdb");
        let settings = settings(dir.path());
        let mut pg = Self {
            dir,
            bin,
            port: free_port(),
            running: false,
            settings,
        };
        pg.resume();
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts (again) on the same port and data.
    pub fn resume(&mut self) {
        let mut ctl = as_user("postgres", &self.bin.join("pg_ctl"));
        ctl.arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off{}",
                self.port,
                self.dir.path().display(),
                self.settings
            ))
            .args(["-w", "-l"])
            .arg(self.dir.path().join("log"))
            .arg("start");
        run(ctl, "pg_ctl start");
        self.running = true;
    }

    /// Stops the server (the "database down" case); `resume` brings it back.
    pub fn pause(&mut self) {
        let mut ctl = as_user("postgres", &self.bin.join("pg_ctl"));
        ctl.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"]);
        run(ctl, "pg_ctl stop");
        self.running = false;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let mut ctl = as_user("postgres", &self.bin.join("pg_ctl"));
            ctl.arg("-D")
                .arg(self.dir.path().join("data"))
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = ctl.status();
        }
    }
}

/// A MariaDB server of our own (`root` without a password over TCP).
pub struct MariaDb {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
}

impl MariaDb {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        give_to("mysql", dir.path());
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--user=mysql")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        run(install, "mariadb-install-db");
        let mut db = Self {
            dir,
            child: None,
            port: free_port(),
        };
        db.resume();
        db
    }

    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/mysql", self.port)
    }

    pub fn resume(&mut self) {
        let d = self.dir.path();
        let child = as_user("mysql", Path::new("/usr/sbin/mariadbd"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd is installed (scripts/install-deps --test)");
        self.child = Some(child);
        wait_for_port(self.port, "mariadbd");
    }

    pub fn pause(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            // Its listening socket closes as the process ends.
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.pause();
    }
}
