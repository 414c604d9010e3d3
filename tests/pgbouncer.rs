//! Courier through PgBouncer in transaction mode (`database.url` with `pgbouncer=true`), as
//! Debian ships it (1.18: no prepared statements carried between transactions), started here
//! on a free loopback port in front of the tests' PostgreSQL, with only the settings a
//! PgBouncer needs anyway (no `ignore_startup_parameters`). Between PgBouncer and PostgreSQL a
//! proxy reads every message PgBouncer sends: no `Parse` names a statement.
//!
//! `scripts/test` installs `pgbouncer` and runs the PostgreSQL tests of `tests/chat.rs`,
//! `tests/actors/`, `tests/presence.rs` (and a few more) through one too
//! (`scripts/pgbouncer-tests`). Here, without a `pgbouncer` binary the tests say so on one line
//! and pass, unless `COURIER_TEST_REQUIRE_SERVICES` is set (as `scripts/test` sets it).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::db::{postgres_base_url, Kind, TestDb};
use common::proxy::Listening;
use common::{send_message, spawn_app_on, WsClient};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The `pgbouncer` binary (Debian installs it in /usr/sbin), if installed.
fn pgbouncer_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("pgbouncer"))
        .find(|p| p.is_file())
}

/// The binary, or `None` after one line saying the test is skipped (a panic when the
/// services are required).
fn pgbouncer_or_skip(test: &str) -> Option<PathBuf> {
    let found = pgbouncer_binary();
    if found.is_none() {
        assert!(
            std::env::var_os("COURIER_TEST_REQUIRE_SERVICES").is_none(),
            "pgbouncer is not installed (apt-get install pgbouncer)"
        );
        eprintln!("{test}: skipped: pgbouncer is not installed (apt-get install pgbouncer)");
    }
    found
}

/// The host and port of a `postgres://` URL.
fn server_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "5432"));
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{port}")
        .parse()
        .expect("TEST_DATABASE_URL names a host:port")
}

/// A private PgBouncer in transaction mode; killed when dropped.
struct PgBouncer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl PgBouncer {
    /// PgBouncer on a free port, every database (`*`) on the server at `upstream`, at most
    /// `pool` server connections per database and user.
    fn start(binary: &Path, upstream: SocketAddr, pool: u32) -> PgBouncer {
        let dir = std::env::temp_dir().join(format!(
            "courier-pgbouncer-{}-{}",
            std::process::id(),
            common::free_port()
        ));
        std::fs::create_dir_all(&dir).expect("a directory");
        let port = common::free_port();
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host={} port={}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
                 listen_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {}\n\
                 pool_mode = transaction\ndefault_pool_size = {pool}\nmax_client_conn = 500\n\
                 server_tls_sslmode = disable\n",
                upstream.ip(),
                upstream.port(),
                dir.join("users.txt").display()
            ),
        )
        .expect("pgbouncer.ini");
        std::fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n").expect("users.txt");
        let log = std::fs::File::create(dir.join("pgbouncer.log")).expect("a log file");
        let mut command = Command::new(binary);
        // PgBouncer refuses to run as root.
        if running_as_root() {
            command.args(["-u", "nobody"]);
        }
        let child = command
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("pgbouncer starts");
        let mut bouncer = PgBouncer { child, port, dir };
        common::wait::until("pgbouncer listens", Duration::from_secs(10), || {
            if let Ok(Some(status)) = bouncer.child.try_wait() {
                panic!("pgbouncer exited ({status}):\n{}", bouncer.log());
            }
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        bouncer
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// The URL of database `db` through it, as Courier is given it.
    fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?pgbouncer=true",
            self.port
        )
    }
}

/// Whether this process runs as root (the owner of /proc/self is uid 0).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the frontend sent through a [`ParseWatch`].
#[derive(Default)]
struct Seen {
    /// `Parse` messages.
    parses: AtomicU64,
    /// The statement names of those that had one.
    named: Mutex<Vec<String>>,
    /// Connections whose stream could not be read (TLS, or not the protocol).
    unreadable: AtomicU64,
}

/// A TCP proxy to PostgreSQL that reads the frontend protocol going through it (the startup
/// packet, then typed messages) and notes every `Parse` ('P': statement name, query, …).
struct ParseWatch {
    port: u16,
    seen: Arc<Seen>,
    /// Stops accepting when dropped.
    _listening: Listening,
}

impl ParseWatch {
    /// The statement names seen so far.
    fn named(&self) -> Vec<String> {
        self.seen
            .named
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default()
    }

    fn start(upstream: SocketAddr) -> ParseWatch {
        let seen = Arc::new(Seen::default());
        let noted = seen.clone();
        let listening = Listening::start(move |client| {
            let seen = noted.clone();
            async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                let back = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                    let _ = to_client.shutdown().await;
                });
                let mut reader = FrontendReader::default();
                let mut chunk = vec![0u8; 16 * 1024];
                loop {
                    let n = match from_client.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if to_server.write_all(&chunk[..n]).await.is_err() {
                        break;
                    }
                    reader.feed(&chunk[..n], &seen);
                }
                let _ = to_server.shutdown().await;
                let _ = back.await;
            }
        });
        ParseWatch {
            port: listening.port,
            seen,
            _listening: listening,
        }
    }
}

/// Reads one connection's frontend stream as it goes by.
#[derive(Default)]
struct FrontendReader {
    buffer: Vec<u8>,
    /// Past the startup packet: typed messages.
    typed: bool,
    /// Stopped reading (TLS, or garbage).
    lost: bool,
}

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

impl FrontendReader {
    fn feed(&mut self, bytes: &[u8], seen: &Seen) {
        if self.lost {
            return;
        }
        self.buffer.extend_from_slice(bytes);
        loop {
            let (header, length_at) = if self.typed { (5, 1) } else { (8, 0) };
            if self.buffer.len() < header {
                return;
            }
            let length = u32::from_be_bytes(
                self.buffer[length_at..length_at + 4]
                    .try_into()
                    .unwrap_or_default(),
            ) as usize;
            if length < 4 {
                self.lose(seen);
                return;
            }
            let total = length_at + length;
            if self.buffer.len() < total {
                return;
            }
            let message: Vec<u8> = self.buffer.drain(..total).collect();
            if !self.typed {
                let code = u32::from_be_bytes(message[4..8].try_into().unwrap_or_default());
                if code == SSL_REQUEST || code == GSSENC_REQUEST {
                    // The server's one-byte answer decides; the tests' servers say no.
                    continue;
                }
                self.typed = true;
                continue;
            }
            if message[0] == b'P' {
                seen.parses.fetch_add(1, Ordering::SeqCst);
                let body = &message[5..];
                let name_end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
                if name_end > 0 {
                    let name = String::from_utf8_lossy(&body[..name_end]).into_owned();
                    seen.named
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(name);
                }
            }
        }
    }

    fn lose(&mut self, seen: &Seen) {
        self.lost = true;
        self.buffer.clear();
        seen.unreadable.fetch_add(1, Ordering::SeqCst);
    }
}

/// The next event named `name` (others skipped, pings answered): its arguments.
async fn next_event(client: &mut WsClient, name: &str) -> Vec<Value> {
    client.next_event(name, Duration::from_secs(15)).await
}

/// Opens a socket for `user` on `app`, asking to recover `pid` from `offset` when given; the
/// CONNECT answer.
async fn connect(
    app: &common::TestApp,
    user: &str,
    recover: Option<(&str, &str)>,
) -> (WsClient, Value) {
    let (mut client, _) = app.connect_ws().await;
    let mut auth = json!({"token": app.token(user)});
    if let Some((pid, offset)) = recover {
        auth["pid"] = json!(pid);
        auth["offset"] = json!(offset);
    }
    client.send_text(&format!("40{auth}")).await;
    let reply = client.recv_text().await;
    let answer: Value = serde_json::from_str(reply.strip_prefix("40").unwrap_or_else(|| {
        panic!("connect failed: {reply}");
    }))
    .expect("a CONNECT answer");
    client.skip_presence = false;
    (client, answer)
}

#[actix_web::test]
async fn through_pgbouncer_no_statement_is_named_and_the_chat_works() {
    let Some(binary) = pgbouncer_or_skip("through_pgbouncer_no_statement_is_named") else {
        return;
    };
    let upstream = server_of(&postgres_base_url());
    let watch = ParseWatch::start(upstream);
    let watched: SocketAddr = format!("127.0.0.1:{}", watch.port)
        .parse()
        .expect("an address");
    // Two server connections for every client: they are shared between transactions.
    let bouncer = PgBouncer::start(&binary, watched, 2);

    // The test's own database, made and seeded through PgBouncer too; Courier migrates it.
    let db = TestDb::new_on(Kind::Postgres, &bouncer.url("test")).await;
    let app = spawn_app_on(
        &db.url,
        &[
            ("COURIER__DATABASE__WRITERS", "2"),
            ("COURIER__PRESENCE__OFFLINE_GRACE", "0"),
        ],
    )
    .await;
    let alice = db.user("alice").await;
    let bob = db.user("bob").await;
    let carol = db.user("carol").await;
    let ab = db.connection(&alice, &bob, "ACTIVE").await;
    let ac = db.connection(&alice, &carol, "ACTIVE").await;

    let (mut bob_1, answer) = connect(&app, &bob, None).await;
    let pid = answer["pid"]
        .as_str()
        .expect("recovery is on: a pid")
        .to_string();
    let (mut carol_1, _) = connect(&app, &carol, None).await;
    // Alice comes online: her peers are told (presence rows written).
    let (mut alice_1, _) = connect(&app, &alice, None).await;
    for peer in [&mut bob_1, &mut carol_1] {
        let online = next_event(peer, "user_online_status").await;
        assert_eq!(online[0]["userId"], json!(alice));
    }

    // Many at once to two conversations: group commit, its rows as unnest arrays.
    const N: usize = 40;
    for i in 0..N {
        alice_1
            .send_text(&send_message(&ab, &format!("b{i}")))
            .await;
        alice_1
            .send_text(&send_message(&ac, &format!("c{i}")))
            .await;
    }
    for _ in 0..2 * N {
        next_event(&mut alice_1, "message_sent").await;
    }
    let mut last_offset = String::new();
    let mut last_id = Value::Null;
    for i in 0..N {
        let m = next_event(&mut bob_1, "receive_message").await;
        assert_eq!(m[0]["content"], json!(format!("b{i}")), "in the order sent");
        last_offset = m.last().and_then(Value::as_str).unwrap_or_default().into();
        last_id = m[0]["id"].clone();
        let m = next_event(&mut carol_1, "receive_message").await;
        assert_eq!(m[0]["content"], json!(format!("c{i}")));
    }
    assert!(!last_offset.is_empty(), "conversation events carry offsets");
    // A read receipt back.
    bob_1
        .send_text(&format!(
            "42{}",
            json!(["mark_message_read", {"messageId": last_id, "connectionId": ab}])
        ))
        .await;
    let read = next_event(&mut alice_1, "message_read").await;
    assert_eq!(read[0]["messageId"], last_id);

    // Bob goes; what he misses is replayed from the database when he comes back.
    drop(bob_1);
    for i in 0..3 {
        alice_1
            .send_text(&send_message(&ab, &format!("missed {i}")))
            .await;
        next_event(&mut alice_1, "message_sent").await;
    }
    let (mut bob_2, answer) = connect(&app, &bob, Some((&pid, &last_offset))).await;
    assert_eq!(answer["pid"], json!(pid), "recovered: {answer}");
    for i in 0..3 {
        let m = next_event(&mut bob_2, "receive_message").await;
        assert_eq!(m[0]["content"], json!(format!("missed {i}")));
    }
    let saved = db.messages(&ab).await;
    assert_eq!(saved.len(), N + 3, "every message saved once");
    assert!(saved
        .iter()
        .any(|m| m.id == last_id.as_str().unwrap_or_default() && m.is_read));
    drop(app);

    let parses = watch.seen.parses.load(Ordering::SeqCst);
    let named = watch.named();
    assert_eq!(watch.seen.unreadable.load(Ordering::SeqCst), 0);
    assert!(parses > 100, "the proxy saw the statements ({parses})");
    assert!(
        named.is_empty(),
        "{} of {parses} statements were named: {:?}",
        named.len(),
        &named[..named.len().min(5)]
    );
    eprintln!("through PgBouncer: {parses} Parse messages, none with a statement name");
    drop(db);
    drop(bouncer);

    // The proxy tells a named statement when there is one: without `pgbouncer=true`, sqlx
    // names its statements (directly to PostgreSQL through the proxy, no PgBouncer).
    let direct = format!(
        "postgres://postgres@127.0.0.1:{}/test?sslmode=disable",
        watch.port
    );
    let plain = Database::connect(direct.as_str()).await.expect("connects");
    plain
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT $1::int4 AS n",
            [1.into()],
        ))
        .await
        .expect("a query");
    let named = watch.named();
    assert!(
        named.iter().any(|n| n.starts_with("sqlx_s_")),
        "a named statement is seen: {named:?}"
    );
}

#[actix_web::test]
async fn through_pgbouncer_the_schema_must_be_the_sessions_own() {
    let Some(binary) = pgbouncer_or_skip("through_pgbouncer_the_schema_must_be_the_sessions_own")
    else {
        return;
    };
    let bouncer = PgBouncer::start(&binary, server_of(&postgres_base_url()), 2);
    let db = TestDb::new_on(Kind::Postgres, &bouncer.url("test")).await;
    // A database whose sessions start in schema "app" (its own search path, set before any
    // session opens: PgBouncer keeps its server connections).
    let name = format!(
        "{}_app",
        &db.url[db.url.rfind('/').unwrap_or(0) + 1..db.url.find('?').unwrap_or(db.url.len())]
    );
    let _gone = DropDatabase(bouncer.url("test"), name.clone());
    for sql in [
        format!(r#"CREATE DATABASE "{name}""#),
        format!(r#"ALTER DATABASE "{name}" SET search_path = "app""#),
    ] {
        db.conn.execute_unprepared(&sql).await.expect(&sql);
    }
    let url = bouncer.url(&name);
    let (options, _) = courier::db::options(&url);
    let own = Database::connect(options).await.expect("connects");
    own.execute_unprepared(r#"CREATE SCHEMA "app""#)
        .await
        .expect("a schema");
    let settings = |url: String| courier::config::DatabaseSettings {
        url,
        ..common::test_settings(&[]).database
    };
    // `SET search_path` would stay on a shared server connection: Courier does not send it,
    // and refuses to start while the sessions are in another schema.
    let refused = courier::db::connect(&settings(format!("{url}&schema=other")))
        .await
        .expect_err("the sessions' schema is app, not other");
    assert!(
        refused.to_string().contains("ALTER ROLE"),
        "the error says what to do: {refused}"
    );
    let courier_db = courier::db::connect(&settings(format!("{url}&schema=app")))
        .await
        .expect("the sessions' schema is app");
    courier::db::migrate(&courier_db, courier::config::MigrateSetting::Auto)
        .await
        .expect("migrates");
    let row = own
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT string_agg(schemaname, ',') AS s FROM pg_tables WHERE tablename = 'messages'",
        ))
        .await
        .expect("a query")
        .expect("a row");
    let schemas: Option<String> = row.try_get("", "s").expect("a column");
    assert_eq!(schemas.as_deref(), Some("app"), "migrated into app only");
}

/// Drops a database (and its sessions) when dropped.
struct DropDatabase(String, String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let statement = format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.1);
        common::db::execute_on(self.0.clone(), vec![statement]);
    }
}
