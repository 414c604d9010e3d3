//! The demo page and its session route: served only with the built-in development secret.
//! (tests/browser/ drives the page itself in Chromium.)

mod common;

use common::backends::on_backends;
use common::db::{Kind, TestDb};
use common::{eventually, spawn_app_on, token_signed, TestApp};
use courier::auth::Authenticator;
use courier::config::DEVELOPMENT_SECRET;
use courier::db::seed::{seed_demo, Demo};
use serde_json::Value;

/// The app on `db` with the built-in development secret.
async fn spawn_dev_app(db: &TestDb) -> TestApp {
    spawn_app_on(&db.url, &[("SOCKET_SECRET", DEVELOPMENT_SECRET)]).await
}

async fn get(app: &TestApp, path: &str) -> (u16, Option<String>, String) {
    let mut resp = awc::Client::new()
        .get(app.http(path))
        .send()
        .await
        .expect("GET");
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.body().limit(1 << 20).await.expect("body");
    (
        resp.status().as_u16(),
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The status of an Engine.IO handshake sent with `Origin: origin`.
async fn handshake_status(app: &TestApp, origin: &str) -> u16 {
    awc::Client::new()
        .get(app.http("/socket.io/?EIO=4&transport=polling"))
        .insert_header(("Origin", origin))
        .send()
        .await
        .expect("GET")
        .status()
        .as_u16()
}

#[actix_web::test]
async fn the_page_is_served_with_the_development_secret() {
    let db = TestDb::new(Kind::Sqlite).await;
    let app = spawn_dev_app(&db).await;
    let (status, content_type, body) = get(&app, "/demo").await;
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("text/html; charset=utf-8"));
    assert!(body.contains("<title>Courier demo</title>"));
    assert!(body.contains("/demo/session"));
    // Self-contained: nothing loaded from elsewhere.
    assert!(!body.contains("<script src"), "no external script");
    assert!(!body.contains("<link "), "no external stylesheet");
}

#[actix_web::test]
async fn no_demo_with_a_real_secret() {
    let db = TestDb::new(Kind::Sqlite).await;
    // A real secret, even without COURIER_ENV=production.
    let app = spawn_app_on(&db.url, &[]).await;
    seed_demo(&db.conn).await.expect("seed");
    for path in ["/demo", "/demo/session"] {
        assert_eq!(get(&app, path).await.0, 404, "{path}");
    }
    // And the same-origin allowance that comes with the demo is not there either.
    let own = format!("http://127.0.0.1:{}", app.port);
    assert_eq!(handshake_status(&app, &own).await, 403);
}

#[actix_web::test]
async fn the_page_may_connect_from_its_own_origin_only() {
    let db = TestDb::new(Kind::Sqlite).await;
    let app = spawn_dev_app(&db).await;
    let own = format!("http://127.0.0.1:{}", app.port);
    assert_eq!(handshake_status(&app, &own).await, 200);
    for other in [
        "http://evil.example",
        &format!("http://evil.example:{}", app.port),
        &format!("http://localhost:{}", app.port), // not the Host this request was sent to
        "null",
    ] {
        assert_eq!(handshake_status(&app, other).await, 403, "{other}");
    }
    // The configured origins still work.
    assert_eq!(handshake_status(&app, "http://localhost:3000").await, 200);
}

/// `path` requested with `Host: host` (and, for the Engine.IO endpoint, `Origin` on that
/// host): its status and body.
async fn get_as(app: &TestApp, host: &str, path: &str) -> (u16, String) {
    let mut resp = awc::Client::new()
        .get(app.http(path))
        .insert_header(("Host", host))
        .insert_header(("Origin", format!("http://{host}")))
        .send()
        .await
        .expect("GET");
    let body = resp.body().limit(1 << 20).await.expect("body");
    (
        resp.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Issue 17.8: with the development secret, a page on another host name that resolves to
/// 127.0.0.1 (DNS rebinding) reaches nothing: every route answers only loopback names.
#[actix_web::test]
async fn the_development_secret_serves_loopback_host_names_only() {
    let db = TestDb::new(Kind::Sqlite).await;
    let app = spawn_dev_app(&db).await;
    seed_demo(&db.conn).await.expect("seed");
    let port = app.port;
    let routes = [
        "/demo",
        "/demo/session",
        "/healthz",
        "/socket.io/?EIO=4&transport=polling",
    ];
    for host in [
        format!("rebind.example:{port}"),
        "rebind.example".to_string(),
        format!("localhost.rebind.example:{port}"),
        format!("127.0.0.2:{port}"),
    ] {
        for path in routes {
            let (status, body) = get_as(&app, &host, path).await;
            assert_eq!(status, 421, "Host {host}, {path}: {body}");
            assert!(body.contains("localhost, 127.0.0.1 or [::1]"), "{body}");
        }
        // The WebSocket transport too.
        let refused = awc::Client::new()
            .ws(app.ws_url())
            .set_header("Host", host.as_str())
            .origin(format!("http://{host}").as_str())
            .connect()
            .await;
        assert!(refused.is_err(), "a WebSocket for Host {host}");
    }
    for host in [
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "localhost".to_string(),
    ] {
        for path in routes {
            let (status, body) = get_as(&app, &host, path).await;
            assert_eq!(status, 200, "Host {host}, {path}: {body}");
        }
    }
    // A real secret serves any host name (the listener is the deployer's business).
    let real = spawn_app_on(&db.url, &[]).await;
    let host = format!("chat.example:{}", real.port);
    let status = awc::Client::new()
        .get(real.http("/healthz"))
        .insert_header(("Host", host.as_str()))
        .send()
        .await
        .expect("GET")
        .status();
    assert_eq!(status.as_u16(), 200);
}

fn session_of(body: &str) -> Value {
    serde_json::from_str(body).expect("JSON body")
}

/// The session route on `kind`: 404 before seeding, then the latest ACTIVE pair.
async fn session_route(kind: Kind) {
    let db = TestDb::new(kind).await;
    let app = spawn_dev_app(&db).await;

    let (status, content_type, body) = get(&app, "/demo/session").await;
    assert_eq!(status, 404);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let message = session_of(&body)["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        message.contains("cargo run --release -- seed-demo"),
        "{message}"
    );

    // Other users and connections are not the demo.
    let (carol, dave) = (db.user("Carol").await, db.user("Dave").await);
    db.connection(&carol, &dave, "ACTIVE").await;
    assert_eq!(get(&app, "/demo/session").await.0, 404);

    let first = seed_demo(&db.conn).await.expect("seed");
    actix_web::rt::time::sleep(std::time::Duration::from_millis(5)).await;
    let latest = seed_demo(&db.conn).await.expect("seed again");
    assert_session(&app, &latest).await;

    // An ended connection is no demo: the one before it is.
    db.set_status(&latest.connection, "ENDED").await;
    assert_session(&app, &first).await;
}

/// `isOnline` of Alice and Bob in `/demo/session`.
async fn online(app: &TestApp) -> (bool, bool) {
    let (status, _, body) = get(app, "/demo/session").await;
    assert_eq!(status, 200, "{body}");
    let session = session_of(&body);
    let flag = |i: usize| {
        session["users"][i]["isOnline"]
            .as_bool()
            .unwrap_or_else(|| panic!("no isOnline in {body}"))
    };
    (flag(0), flag(1))
}

/// Polls `/demo/session` until the presence is `want` (the registry hears of a socket just
/// after its CONNECT is answered).
async fn wait_online(app: &TestApp, want: (bool, bool)) {
    let what = format!("the presence {want:?}");
    eventually(&what, async || online(app).await == want).await;
}

/// The page reads the other user's presence from `/demo/session` once its own socket is
/// connected: what the presence events said, from the chat's registry (online while a
/// socket is, and through `presence.offline_grace` after the last one).
#[actix_web::test]
async fn the_session_tells_who_is_online() {
    let db = TestDb::new(Kind::Sqlite).await;
    let app = spawn_app_on(
        &db.url,
        &[
            ("SOCKET_SECRET", DEVELOPMENT_SECRET),
            ("COURIER__PRESENCE__OFFLINE_GRACE", "100"),
        ],
    )
    .await;
    let demo = seed_demo(&db.conn).await.expect("seed");
    assert_eq!(online(&app).await, (false, false));
    let token = token_signed(DEVELOPMENT_SECRET, &demo.alice);
    let (mut alice, _) = app.connect_ws().await;
    alice
        .send_text(&format!(r#"40{{"token":"{token}"}}"#))
        .await;
    let reply = alice.recv_text().await;
    assert!(reply.starts_with("40{"), "{reply}");
    wait_online(&app, (true, false)).await;
    alice.send_text("41").await;
    drop(alice);
    wait_online(&app, (false, false)).await;
}

async fn assert_session(app: &TestApp, demo: &Demo) {
    let (status, content_type, body) = get(app, "/demo/session").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let session = session_of(&body);
    assert_eq!(session["connectionId"], demo.connection.as_str());
    assert_eq!(session["tokenTtlSeconds"], 3600);
    let auth = Authenticator::new(DEVELOPMENT_SECRET, 0);
    for (i, (id, name)) in [(&demo.alice, "Alice"), (&demo.bob, "Bob")]
        .into_iter()
        .enumerate()
    {
        let user = &session["users"][i];
        assert_eq!(user["id"], id.as_str());
        assert_eq!(user["name"], name);
        let token = user["token"].as_str().expect("a token");
        assert_eq!(auth.verify(token).as_ref(), Ok(id));
    }
}

on_backends!([sqlite, postgres, prisma_layout] session_route);
