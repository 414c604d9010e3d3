//! The Socket.IO Admin UI's `/admin` namespace: off by default; the login (bcrypt password,
//! then a session id), its refusals (exactly "invalid credentials"), session expiry, the
//! login rate per client address; read-only by default; what the admin socket is told is
//! redacted; credentialed CORS for the UI's origins, whose sessions may CONNECT to `/admin`
//! only.

mod common;

use std::time::Duration;

use common::{eventually, spawn_app, Polling, TestApp, WsClient};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";
const ADMIN_ORIGIN: &str = "http://admin.example";

/// A bcrypt hash of [`PASSWORD`], cheap (cost 4) for tests.
fn hash() -> String {
    bcrypt::hash(PASSWORD, 4).expect("hashing works")
}

/// An app with the admin UI on, plus `overrides`.
async fn admin_app(overrides: &[(&str, &str)]) -> TestApp {
    let hash = hash();
    let mut all = vec![
        ("COURIER__ADMIN__ENABLED", "true"),
        ("COURIER__ADMIN__PASSWORD_HASH", hash.as_str()),
        ("COURIER__ADMIN__ORIGINS", ADMIN_ORIGIN),
    ];
    all.extend_from_slice(overrides);
    spawn_app(&all).await
}

/// Opens a WebSocket (with `headers`) and sends a CONNECT to `/admin` with `auth`; returns
/// the client and the first answer.
async fn admin_connect(app: &TestApp, auth: Value, headers: &[(&str, &str)]) -> (WsClient, String) {
    let mut client = WsClient::try_connect(&app.ws_url(), headers)
        .await
        .expect("the WebSocket opens");
    let open = client.recv_text().await;
    assert!(open.starts_with('0'), "{open}");
    client.send_text(&format!("40/admin,{auth}")).await;
    let reply = client.recv_message().await;
    (client, reply)
}

/// Logs in with the password; returns the client and the session id.
async fn login(app: &TestApp) -> (WsClient, String) {
    let (mut client, reply) =
        admin_connect(app, json!({"username": "admin", "password": PASSWORD}), &[]).await;
    assert!(reply.starts_with(r#"40/admin,{"sid":""#), "{reply}");
    let (name, args) = admin_event(&mut client).await;
    assert_eq!(name, "session");
    let session = args[0].as_str().expect("a session id").to_string();
    (client, session)
}

/// The next admin event: its name and arguments.
async fn admin_event(client: &mut WsClient) -> (String, Vec<Value>) {
    let text = client.recv_message().await;
    let rest = text
        .strip_prefix("42/admin,")
        .unwrap_or_else(|| panic!("expected an admin event, got {text}"));
    let mut arr: Vec<Value> = serde_json::from_str(rest).expect("an event array");
    let name = arr.remove(0);
    (name.as_str().expect("a name").to_string(), arr)
}

/// Admin events until `name` (within a few seconds); returns its arguments and every frame
/// seen on the way.
async fn until_event(client: &mut WsClient, name: &str, seen: &mut Vec<String>) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no {name} in\n{}",
            seen.join("\n")
        );
        let text = client.recv_message().await;
        seen.push(text.clone());
        if let Some(rest) = text.strip_prefix("42/admin,") {
            let mut arr: Vec<Value> = serde_json::from_str(rest).expect("an event array");
            if arr[0] == name {
                arr.remove(0);
                return arr;
            }
        }
    }
}

const INVALID: &str = r#"44/admin,{"message":"invalid credentials"}"#;

#[actix_web::test]
async fn admin_is_off_by_default() {
    let app = spawn_app(&[]).await;
    assert!(!app.settings.admin.enabled);
    let (_client, reply) = admin_connect(
        &app,
        json!({"username": "admin", "password": PASSWORD}),
        &[],
    )
    .await;
    assert_eq!(reply, r#"44/admin,{"message":"Invalid namespace"}"#);
}

#[actix_web::test]
async fn a_wrong_login_is_refused_with_invalid_credentials() {
    let app = admin_app(&[]).await;
    for auth in [
        json!({"username": "admin", "password": "wrong"}),
        json!({"username": "root", "password": PASSWORD}),
        json!({"username": "admin"}),
        json!({"password": 12}),
        json!({"sessionId": 7}),
        json!({}),
    ] {
        let (_client, reply) = admin_connect(&app, auth.clone(), &[]).await;
        assert_eq!(reply, INVALID, "auth {auth}");
    }
}

#[actix_web::test]
async fn a_login_gives_a_session_that_logs_in_again() {
    let app = admin_app(&[]).await;
    let (mut first, session) = login(&app).await;
    let (name, args) = admin_event(&mut first).await;
    assert_eq!(name, "config");
    let features = args[0]["supportedFeatures"].as_array().unwrap().clone();
    assert!(features.contains(&json!("AGGREGATED_EVENTS")));
    assert!(
        !features.contains(&json!("DISCONNECT")),
        "read-only by default"
    );
    let (name, args) = admin_event(&mut first).await;
    assert_eq!(name, "server_stats");
    let stats = &args[0];
    assert!(stats["uptime"].as_f64().is_some(), "{stats}");
    assert!(stats["clientsCount"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["pid"], json!(std::process::id()));
    assert!(stats["hostname"].as_str().is_some());
    assert!(stats["namespaces"]
        .as_array()
        .unwrap()
        .contains(&json!({"name": "/admin", "socketsCount": 1})));

    // A reload: the session id instead of the password.
    let (_second, reply) = admin_connect(&app, json!({"sessionId": session}), &[]).await;
    assert!(reply.starts_with(r#"40/admin,{"sid":""#), "{reply}");

    // An unknown one is refused.
    let (_third, reply) = admin_connect(&app, json!({"sessionId": "nope"}), &[]).await;
    assert_eq!(reply, INVALID);

    // Periodic stats (admin.stats_interval, 2 s by default).
    let mut seen = Vec::new();
    let stats = until_event(&mut first, "server_stats", &mut seen).await;
    assert!(stats[0]["aggregatedEvents"].as_array().is_some());
}

#[actix_web::test]
async fn an_expired_session_is_refused() {
    let app = admin_app(&[("COURIER__ADMIN__SESSION_TTL", "1")]).await;
    let (_client, session) = login(&app).await;
    actix_web::rt::time::sleep(Duration::from_millis(1100)).await;
    let (_again, reply) = admin_connect(&app, json!({"sessionId": session}), &[]).await;
    assert_eq!(reply, INVALID);
}

#[actix_web::test]
async fn logins_are_rate_limited_per_client_address() {
    let app = admin_app(&[
        ("COURIER__ADMIN__LOGIN_RATE__PER_SECOND", "0.01"),
        ("COURIER__ADMIN__LOGIN_RATE__BURST", "2"),
        ("COURIER__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let from = |ip: &'static str| [("X-Forwarded-For", ip)];
    let wrong = json!({"username": "admin", "password": "wrong"});
    for _ in 0..2 {
        let (_c, reply) = admin_connect(&app, wrong.clone(), &from("10.0.0.1")).await;
        assert_eq!(reply, INVALID);
    }
    let limited = r#"44/admin,{"message":"too many login attempts, try again later"}"#;
    let (_c, reply) = admin_connect(&app, wrong.clone(), &from("10.0.0.1")).await;
    assert_eq!(reply, limited);
    // Even the right password, from there.
    let right = json!({"username": "admin", "password": PASSWORD});
    let (_c, reply) = admin_connect(&app, right.clone(), &from("10.0.0.1")).await;
    assert_eq!(reply, limited);
    // Another address is not limited.
    let (_c, reply) = admin_connect(&app, right, &from("10.0.0.2")).await;
    assert!(reply.starts_with(r#"40/admin,{"sid":""#), "{reply}");
}

/// Logs in to a development-mode app and reads up to `all_sockets`; returns the client and
/// the sockets listed.
async fn dev_login(app: &TestApp) -> (WsClient, Vec<Value>) {
    let (mut admin, _) = login(app).await;
    let mut seen = Vec::new();
    let sockets = until_event(&mut admin, "all_sockets", &mut seen).await;
    (admin, sockets[0].as_array().unwrap().clone())
}

/// The id of `user`'s chat socket in `sockets` (`all_sockets`): the only one on `/`.
fn chat_socket_id(sockets: &[Value]) -> String {
    let chat: Vec<&Value> = sockets.iter().filter(|s| s["nsp"] == "/").collect();
    assert_eq!(chat.len(), 1, "{sockets:?}");
    chat[0]["id"].as_str().unwrap().to_string()
}

#[actix_web::test]
async fn read_only_refuses_to_disconnect() {
    let app = admin_app(&[("COURIER__ADMIN__MODE", "development")]).await;
    let mut alice = app.connect_user("alice").await;
    let (mut admin, sockets) = dev_login(&app).await;
    let id = chat_socket_id(&sockets);
    admin
        .send_text(&format!(r#"42/admin,["_disconnect","/",true,"{id}"]"#))
        .await;
    admin
        .send_text(&format!(r#"42/admin,["emit","/","{id}","hello",1]"#))
        .await;
    alice.expect_silence(Duration::from_millis(500)).await;
    // Alice is still served.
    alice.emit("join_chat", json!("nope"), Some(1)).await;
    alice.expect_event("error").await;
    let ack = alice.expect_ack(1).await;
    assert!(ack["error"].is_string(), "{ack}");
}

#[actix_web::test]
async fn without_read_only_the_admin_acts_on_sockets() {
    let app = admin_app(&[
        ("COURIER__ADMIN__MODE", "development"),
        ("COURIER__ADMIN__READONLY", "false"),
    ])
    .await;
    let mut alice = app.connect_user("alice").await;
    let (mut admin, sockets) = dev_login(&app).await;
    let id = chat_socket_id(&sockets);

    // An event to her socket.
    admin
        .send_text(&format!(
            r#"42/admin,["emit","/","{id}","notice",{{"a":1}}]"#
        ))
        .await;
    assert_eq!(alice.expect_event("notice").await, json!({"a": 1}));

    // A room of the admin's, then an emit to it.
    admin
        .send_text(&format!(r#"42/admin,["join","/","ops","{id}"]"#))
        .await;
    let mut seen = Vec::new();
    let joined = until_event(&mut admin, "room_joined", &mut seen).await;
    assert_eq!(joined[..3], [json!("/"), json!("ops"), json!(id)]);
    admin
        .send_text(r#"42/admin,["emit","/","ops","to-room"]"#)
        .await;
    alice.expect_event("to-room").await;

    // Disconnected, session closed.
    admin
        .send_text(&format!(r#"42/admin,["_disconnect","/",true,"{id}"]"#))
        .await;
    assert_eq!(alice.recv_message().await, "41");
    alice.expect_closed(Duration::from_secs(5)).await;
    let gone = until_event(&mut admin, "socket_disconnected", &mut seen).await;
    assert_eq!(
        gone[..3],
        [json!("/"), json!(id), json!("server namespace disconnect")]
    );
}

#[actix_web::test]
async fn what_the_admin_is_told_is_redacted() {
    let app = admin_app(&[
        ("COURIER__ADMIN__MODE", "development"),
        ("COURIER__ADMIN__READONLY", "false"),
    ])
    .await;
    let (mut admin, _) = dev_login(&app).await;

    let token = app.token("alice");
    let secret_cookie = "session=cookie-secret-value";
    let bearer = "Bearer authorization-secret-value";
    let mut alice = WsClient::try_connect(
        &app.ws_url(),
        &[("Cookie", secret_cookie), ("Authorization", bearer)],
    )
    .await
    .expect("opens");
    alice.recv_text().await;
    alice
        .send_text(&format!(r#"40{{"token":"{token}"}}"#))
        .await;
    assert!(alice.recv_message().await.starts_with("40{"));
    let text = "top-secret-message-text";
    alice
        .emit(
            "send_message",
            json!({"connectionId": "c1", "content": text, "tempId": "t1"}),
            Some(1),
        )
        .await;
    alice.expect_event("error").await;
    alice.expect_ack(1).await;

    let mut seen = Vec::new();
    let connected = loop {
        // The admin socket's own connection is told too.
        let connected = until_event(&mut admin, "socket_connected", &mut seen).await;
        if connected[0]["nsp"] == "/" {
            break connected;
        }
    };
    assert_eq!(
        connected[0]["handshake"]["headers"]["user-agent"],
        common::USER_AGENT
    );
    let received = until_event(&mut admin, "event_received", &mut seen).await;
    assert_eq!(received[2][0], "send_message", "{received:?}");
    assert!(received[2][1].as_str().unwrap().contains("bytes"));
    until_event(&mut admin, "event_sent", &mut seen).await;
    // Alice leaves: her socket goes from the list.
    drop(alice);
    until_event(&mut admin, "socket_disconnected", &mut seen).await;
    // A new admin socket's list.
    let (_admin2, sockets) = dev_login(&app).await;
    seen.push(Value::Array(sockets).to_string());

    let all = seen.join("\n");
    for secret in [
        token.as_str(),
        "cookie-secret-value",
        "authorization-secret-value",
        text,
        PASSWORD,
    ] {
        assert!(!all.contains(secret), "{secret:?} leaked in\n{all}");
    }
    assert!(!all.to_ascii_lowercase().contains("cookie"), "{all}");
    assert!(!all.to_ascii_lowercase().contains("authorization"), "{all}");
}

#[actix_web::test]
async fn production_mode_tells_stats_only() {
    let app = admin_app(&[]).await;
    let (mut admin, _) = login(&app).await;
    let (name, args) = admin_event(&mut admin).await;
    assert_eq!(name, "config");
    assert_eq!(args[0]["supportedFeatures"], json!(["AGGREGATED_EVENTS"]));
    assert_eq!(admin_event(&mut admin).await.0, "server_stats");
    let mut alice = app.connect_user("alice").await;
    alice.emit("join_chat", json!("c1"), None).await;
    // Nothing but periodic stats: no sockets, no events.
    let mut seen = Vec::new();
    let stats = until_event(&mut admin, "server_stats", &mut seen).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(stats[0]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&json!({"name": "/", "socketsCount": 1})));
    assert!(stats[0]["aggregatedEvents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "packetsIn"));
}

#[actix_web::test]
async fn admin_connections_are_bounded() {
    let app = admin_app(&[("COURIER__ADMIN__MAX_CONNECTIONS", "1")]).await;
    let (first, session) = login(&app).await;
    let (_second, reply) = admin_connect(&app, json!({"sessionId": session}), &[]).await;
    assert_eq!(
        reply,
        r#"44/admin,{"message":"too many admin connections"}"#
    );
    drop(first);
    // Its place is given back once it is gone.
    eventually("the admin connection's place given back", async || {
        let (_third, reply) = admin_connect(&app, json!({"sessionId": session}), &[]).await;
        reply.starts_with(r#"40/admin,{"sid":""#)
    })
    .await;
}

#[actix_web::test]
async fn an_upgrade_is_told_as_socket_updated() {
    let app = admin_app(&[("COURIER__ADMIN__MODE", "development")]).await;
    let (mut admin, _) = dev_login(&app).await;
    let polling = Polling::new(&app);
    let sid = polling.connect_user(&app, "alice").await;
    let mut seen = Vec::new();
    let connected = loop {
        let connected = until_event(&mut admin, "socket_connected", &mut seen).await;
        if connected[0]["nsp"] == "/" {
            break connected;
        }
    };
    assert_eq!(connected[0]["transport"], "polling");
    let id = connected[0]["id"].clone();
    let mut ws = WsClient::connect(&format!("{}&sid={sid}", app.ws_url())).await;
    ws.send_text("2probe").await;
    assert_eq!(ws.recv_text().await, "3probe");
    ws.send_text("5").await;
    let updated = until_event(&mut admin, "socket_updated", &mut seen).await;
    assert_eq!(
        updated[0],
        json!({"id": id, "nsp": "/", "transport": "websocket"})
    );
}

#[actix_web::test]
async fn admin_origins_get_credentialed_cors_for_admin_only() {
    let app = admin_app(&[]).await;
    let client = awc::Client::default();
    let handshake = |origin: &'static str| {
        client
            .get(app.http("/socket.io/?EIO=4&transport=polling"))
            .insert_header(("Origin", origin))
            .send()
    };
    // The UI's origin: credentialed CORS.
    let response = handshake(ADMIN_ORIGIN).await.expect("answered");
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        header("access-control-allow-origin").as_deref(),
        Some(ADMIN_ORIGIN)
    );
    assert_eq!(
        header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    // The chat's origin still; any other is refused, without CORS headers.
    let response = handshake("http://localhost:3000").await.expect("answered");
    assert_eq!(response.status(), 200);
    let response = handshake("http://evil.example").await.expect("answered");
    assert_eq!(response.status(), 403);
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    // A session from the UI's origin may not CONNECT to the chat...
    let origin = [("Origin", ADMIN_ORIGIN)];
    let mut ws = WsClient::try_connect(&app.ws_url(), &origin)
        .await
        .expect("opens");
    ws.recv_text().await;
    ws.send_text(&format!(r#"40{{"token":"{}"}}"#, app.token("alice")))
        .await;
    assert_eq!(
        ws.recv_message().await,
        r#"44{"message":"Origin not allowed for this namespace"}"#
    );
    // ...but to /admin.
    let (_admin, reply) = admin_connect(
        &app,
        json!({"username": "admin", "password": PASSWORD}),
        &origin,
    )
    .await;
    assert!(reply.starts_with(r#"40/admin,{"sid":""#), "{reply}");

    // With the admin UI off, its origins are not allowed at all.
    let off = spawn_app(&[("COURIER__ADMIN__ORIGINS", ADMIN_ORIGIN)]).await;
    let response = client
        .get(off.http("/socket.io/?EIO=4&transport=polling"))
        .insert_header(("Origin", ADMIN_ORIGIN))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 403);
    match WsClient::try_connect(&off.ws_url(), &origin).await {
        Err(status) => assert_eq!(status, 403),
        Ok(_) => panic!("a WebSocket from the admin origin opened with the admin UI off"),
    }
}

#[actix_web::test]
async fn admin_settings_are_validated() {
    use courier::config::{LoadOptions, Settings};
    let load = |pairs: &[(&str, &str)]| {
        let mut env: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert("SOCKET_SECRET".into(), "x".into());
        Settings::load(&LoadOptions {
            config_dir: Some("/nonexistent-courier-test-config".into()),
            config_file: None,
            env,
        })
    };
    let err = load(&[("COURIER__ADMIN__ENABLED", "true")]).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("admin.password_hash"));
    let err = load(&[("COURIER__ADMIN__ORIGINS", "http://localhost:3000")]).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("admin.origins"));
    let err = load(&[("COURIER__ADMIN__MODE", "verbose")]).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("admin.mode"));
    let hash = hash();
    let ok = load(&[
        ("COURIER__ADMIN__ENABLED", "true"),
        ("COURIER__ADMIN__PASSWORD_HASH", &hash),
    ])
    .unwrap();
    assert!(ok.admin.readonly);
    assert!(
        !format!("{:?}", ok.admin).contains(&hash),
        "the hash is not logged"
    );
}

/// Opens a WebSocket from `ip` (named by `X-Forwarded-For`) and reads the open packet.
async fn admin_socket_from(app: &TestApp, ip: &str) -> WsClient {
    let mut client = WsClient::try_connect(&app.ws_url(), &[("X-Forwarded-For", ip)])
        .await
        .expect("the WebSocket opens");
    assert!(client.recv_text().await.starts_with('0'));
    client
}

/// Wrong logins from several addresses at once do not make the right one from another
/// address fail: checks beyond `admin.login_concurrency` wait in the queue (they were
/// refused "too many login attempts" before).
#[actix_web::test]
async fn wrong_logins_from_many_addresses_make_the_right_one_wait_not_fail() {
    // A real cost, so that the checks overlap.
    let slow = bcrypt::hash(PASSWORD, 12).expect("hashing works");
    let app = admin_app(&[
        ("COURIER__ADMIN__PASSWORD_HASH", slow.as_str()),
        ("COURIER__ADMIN__LOGIN_CONCURRENCY", "1"),
        ("COURIER__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let mut wrong = Vec::new();
    for i in 1..=4 {
        wrong.push(admin_socket_from(&app, &format!("10.1.0.{i}")).await);
    }
    let mut right = admin_socket_from(&app, "10.1.0.5").await;
    let guess = json!({"username": "admin", "password": "guess"});
    for client in &mut wrong {
        client.send_text(&format!("40/admin,{guess}")).await;
    }
    let auth = json!({"username": "admin", "password": PASSWORD});
    right.send_text(&format!("40/admin,{auth}")).await;
    for client in &mut wrong {
        assert_eq!(client.recv_message().await, INVALID);
    }
    let reply = right.recv_message().await;
    assert!(reply.starts_with(r#"40/admin,{"sid":""#), "{reply}");
}

/// Failed logins from all addresses together have a budget (`admin.login_failures`): past
/// it, the next password check waits a backoff first, whoever asks, then goes on.
#[actix_web::test]
async fn failures_from_all_addresses_have_a_budget_with_backoff() {
    let app = admin_app(&[
        ("COURIER__ADMIN__LOGIN_FAILURES__PER_SECOND", "0.0001"),
        ("COURIER__ADMIN__LOGIN_FAILURES__BURST", "2"),
        ("COURIER__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let guess = json!({"username": "admin", "password": "guess"});
    for ip in ["10.2.0.1", "10.2.0.2"] {
        let (_c, reply) = admin_connect(&app, guess.clone(), &[("X-Forwarded-For", ip)]).await;
        assert_eq!(reply, INVALID);
    }
    // The budget is spent: a login from a third address is held back (at least a second)...
    let mut right = admin_socket_from(&app, "10.2.0.3").await;
    let auth = json!({"username": "admin", "password": PASSWORD});
    right.send_text(&format!("40/admin,{auth}")).await;
    assert!(
        matches!(
            right.recv_within(Duration::from_millis(300)).await,
            common::Received::Timeout
        ),
        "the check waits its backoff"
    );
    // ...and then checked: the right password logs in.
    let reply = right.recv_message().await;
    assert!(reply.starts_with(r#"40/admin,{"sid":""#), "{reply}");
}
