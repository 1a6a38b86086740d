//! A bare pingora pass-through proxy: the baseline row of the load harness
//! (`benches/load/run`, see `docs/benchmarks.md`).
//!
//! It uses the same pingora version, server settings (`threads`, grace periods) and upstream
//! peer options (address resolved once at start, connect/read/write/idle timeouts) as
//! Vestibule's `proxy::service`, and does nothing else: no routing, no session, no header
//! changes. The difference between this and Vestibule is the cost of Vestibule's own work.
//!
//! ```sh
//! bare_pingora LISTEN_ADDR UPSTREAM_ADDR [THREADS]
//! bare_pingora 127.0.0.1:7000 127.0.0.1:9000 1
//! ```

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// Forwards every request unchanged to one upstream.
struct PassThrough {
    peer: HttpPeer,
}

#[async_trait]
impl ProxyHttp for PassThrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer.clone()))
    }
}

/// The peer exactly as Vestibule builds it for a plain-HTTP tenant upstream with the default
/// timeouts (`connect_timeout: 5s`, `read_timeout: 60s`).
fn peer(addr: SocketAddr) -> HttpPeer {
    let connect_timeout = Duration::from_secs(5);
    let read_timeout = Duration::from_secs(60);
    let mut peer = HttpPeer::new(addr, false, String::new());
    peer.options.connection_timeout = Some(connect_timeout);
    peer.options.total_connection_timeout = Some(connect_timeout * 2);
    peer.options.read_timeout = Some(read_timeout);
    peer.options.write_timeout = Some(read_timeout);
    peer.options.idle_timeout = Some(Duration::from_secs(60));
    peer.options.verify_cert = true;
    peer.options.verify_hostname = true;
    peer
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 || args.len() > 4 {
        eprintln!("usage: bare_pingora LISTEN_ADDR UPSTREAM_ADDR [THREADS]");
        return ExitCode::from(2);
    }
    let listen = &args[1];
    let Some(upstream) = args[2].to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        eprintln!("bare_pingora: cannot resolve upstream {}", args[2]);
        return ExitCode::from(2);
    };
    let threads = match args.get(3).map(|t| t.parse::<usize>()) {
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("bare_pingora: THREADS must be a positive integer");
            return ExitCode::from(2);
        }
    };

    // Same server configuration as vestibule::proxy::service::run.
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(10),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        PassThrough {
            peer: peer(upstream),
        },
        "bare-pingora",
    );
    proxy.add_tcp(listen);
    server.add_service(proxy);
    eprintln!("bare_pingora: {listen} -> {upstream}, {threads} thread(s)");
    server.run_forever();
}
