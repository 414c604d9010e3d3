//! The server the public protocol test suites run against.
//!
//! Courier's protocol layer is generic: an Engine.IO session carries any [`EngineHandler`],
//! and [`SocketLayer`] carries any [`SocketHandler`]. The chat is one such handler; this
//! example wires two others, the ones the reference test suites expect:
//!
//! - `/engine.io/`: a raw Engine.IO echo ([`Echo`]). Every text message comes back as text,
//!   every binary message as binary. This is the server of the Engine.IO v4 suite
//!   (<https://github.com/socketio/socket.io>, `docs/engine.io-protocol/v4-test-suite/`).
//! - `/socket.io/`: Socket.IO ([`SocketLayer`] over [`ConformanceApp`]). This is the server
//!   of the Socket.IO v5 suite (the same repository,
//!   `docs/socket.io-protocol/v5-test-suite/`):
//!   - namespaces `/` and `/custom` are accepted; any other gets a CONNECT_ERROR
//!     `{"message":"Invalid namespace"}`;
//!   - once connected to a namespace, the socket emits `auth` with the CONNECT's auth
//!     payload (`{}` when there was none);
//!   - event `message` is echoed as `message-back` with the same arguments (and the same
//!     binary attachments, as a BINARY_EVENT, when it had any);
//!   - event `message-with-ack` is acknowledged with its own arguments (a BINARY_ACK with
//!     the same attachments when it had any);
//!   - other events are ignored.
//! - `/healthz`: 200 `ok`, handy to wait for the server in scripts.
//!
//! The settings are those of the suites' reference servers: `pingInterval` 300 ms,
//! `pingTimeout` 200 ms, `maxPayload` 1000000, transports polling and WebSocket, and a
//! Socket.IO `connectTimeout` of 1000 ms. Requests without an `Origin` header (Node's
//! `fetch` and `ws`) are allowed; no browser origin is configured (see below).
//!
//! # Running
//!
//! ```text
//! cargo run --example conformance                # listens on 0.0.0.0:3000
//! cargo run --example conformance -- --port 4000 # or --port=4000; --port 0 picks a free port
//! RUST_LOG=debug cargo run --example conformance # more logging (default filter: info)
//! ```
//!
//! The bound address is logged as `listening on http://HOST:PORT`. The server runs until
//! SIGINT or SIGTERM.
//!
//! Then, in a checkout of each suite (both hard-code `http://localhost:3000`, so keep the
//! default port):
//!
//! ```text
//! git clone https://github.com/socketio/engine.io-protocol
//! cd engine.io-protocol/test-suite && npm ci && npm test
//!
//! git clone https://github.com/socketio/socket.io-protocol
//! cd socket.io-protocol/test-suite && npm ci && npm test
//! ```
//!
//! Both suites can also run in a browser (open `test-suite/index.html`); a browser sends an
//! `Origin` header, so that way needs the page's origin added to `cors_origins` below.

use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::{App, HttpServer};
use log::{error, info};

#[allow(dead_code)]
#[path = "../tests/common/conformance.rs"]
mod conformance;

const DEFAULT_PORT: u16 = 3000;
const HOST: &str = "0.0.0.0";
const SHUTDOWN_TIMEOUT: u64 = 1;
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_millis(100);

const USAGE: &str = "usage: conformance [--port N]\n\n\
    Serves the Engine.IO echo at /engine.io/ and the Socket.IO test server at /socket.io/\n\
    on 0.0.0.0:N (default 3000; 0 picks a free port).\n";

#[derive(Debug, PartialEq, Eq)]
enum Command {
    /// Serve on this port.
    Serve(u16),
    /// Print the usage.
    Help,
}

/// Parses the arguments after the program name: `[--port N | --port=N] [-h | --help]`.
fn parse_args<I, S>(args: I) -> Result<Command, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut port = DEFAULT_PORT;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg.as_ref();
        let value = match arg {
            "-h" | "--help" => return Ok(Command::Help),
            "--port" => match args.next() {
                Some(value) => value.as_ref().to_owned(),
                None => return Err("--port needs a value".into()),
            },
            _ => match arg.strip_prefix("--port=") {
                Some(value) => value.to_owned(),
                None => return Err(format!("unexpected argument {arg:?}")),
            },
        };
        port = value
            .parse()
            .map_err(|_| format!("invalid port {value:?} (expected 0-65535)"))?;
    }
    Ok(Command::Serve(port))
}

/// Binds `HOST:port` and serves both endpoints until SIGINT/SIGTERM.
async fn serve(port: u16) -> std::io::Result<()> {
    let listener = TcpListener::bind((HOST, port))?;
    let addr = listener.local_addr()?;

    let endpoints = conformance::Endpoints::new(&conformance::endpoint_options());
    let server = HttpServer::new(move || {
        let endpoints = endpoints.clone();
        App::new().configure(move |cfg| conformance::configure(cfg, &endpoints))
    })
    .shutdown_timeout(SHUTDOWN_TIMEOUT)
    .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
    // A client that closes its side is gone: its pending long-poll GET must be dropped
    // (actix-web otherwise keeps a half-closed connection's request waiting).
    .h1_allow_half_closed(false)
    .listen(listener)?
    .run();
    info!("listening on http://{addr}");
    server.await
}

fn main() -> ExitCode {
    let port = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Serve(port)) => port,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("conformance: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    match actix_web::rt::System::new().block_on(serve(port)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_defaults_to_3000() {
        let none: [&str; 0] = [];
        assert_eq!(parse_args(none), Ok(Command::Serve(3000)));
    }

    #[test]
    fn port_as_separate_or_joined_value() {
        assert_eq!(parse_args(["--port", "4000"]), Ok(Command::Serve(4000)));
        assert_eq!(parse_args(["--port=0"]), Ok(Command::Serve(0)));
        assert_eq!(
            parse_args(["--port", "1", "--port=2"]),
            Ok(Command::Serve(2))
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse_args(["--port"]).is_err());
        assert!(parse_args(["--port", "65536"]).is_err());
        assert!(parse_args(["--port=abc"]).is_err());
        assert!(parse_args(["--port="]).is_err());
        assert!(parse_args(["serve"]).is_err());
        assert_eq!(parse_args(["--help"]), Ok(Command::Help));
    }
}
