//! The session actor on its own, with `#[actix::test]`: no HTTP, no sockets — the test
//! plays the transport through the session's channels.

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use common::{test_settings, token};
use courier::app::start_chat;
use courier::chat::ChatSocket;
use courier::engineio::transport::{self, Outbound, TransportLink, WsEvent};
use courier::engineio::{EngineConfig, EngineSession};
use courier::socketio::SocketLayer;
use tokio::time::timeout;

/// A session actor over a chat on an in-memory database; the chat runs as long as the
/// returned value lives.
async fn start(
    ping_interval: u64,
    ping_timeout: u64,
    connect_timeout: u64,
) -> (TransportLink, courier::chat::Chat) {
    let (session_link, transport_link) = transport::link(16);
    let settings = test_settings(&[]);
    let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
    let chat = start_chat(db, &settings, Arc::new(courier::chat::ChatMetrics::off())).await;
    EngineSession::new(
        "test-sid".into(),
        EngineConfig {
            ping_interval: Duration::from_millis(ping_interval),
            ping_timeout: Duration::from_millis(ping_timeout),
            max_payload: 1000,
        },
        session_link,
        SocketLayer::new(
            ChatSocket::new(chat.context.clone()),
            Duration::from_millis(connect_timeout),
        ),
    )
    .start();
    (transport_link, chat)
}

async fn next(link: &mut TransportLink) -> Option<Outbound> {
    timeout(Duration::from_secs(3), link.outbound.recv())
        .await
        .expect("the session answers in time")
}

async fn next_text(link: &mut TransportLink) -> String {
    match next(link).await {
        Some(Outbound::Text(t)) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

async fn send(link: &TransportLink, text: &str) {
    assert!(
        link.report(WsEvent::Text(text.to_string().into())).await,
        "the session is alive"
    );
}

#[actix::test]
async fn sends_the_handshake_first() {
    let (mut link, _chat) = start(25_000, 20_000, 45_000).await;
    assert_eq!(
        next_text(&mut link).await,
        r#"0{"sid":"test-sid","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000}"#
    );
}

#[actix::test]
async fn accepts_a_valid_token() {
    let (mut link, _chat) = start(25_000, 20_000, 45_000).await;
    next_text(&mut link).await;
    send(&link, &format!(r#"40{{"token":"{}"}}"#, token("alice"))).await;
    let reply = next_text(&mut link).await;
    assert!(reply.starts_with(r#"40{"sid":""#), "{reply}");
}

#[actix::test]
async fn refuses_a_bad_token_and_stays_open() {
    let (mut link, _chat) = start(25_000, 20_000, 45_000).await;
    next_text(&mut link).await;
    send(&link, r#"40{"token":"garbage"}"#).await;
    assert_eq!(
        next_text(&mut link).await,
        r#"44{"message":"Authentication error: Invalid token"}"#
    );
    send(&link, "40").await;
    assert_eq!(
        next_text(&mut link).await,
        r#"44{"message":"Authentication error: No token"}"#
    );
    send(&link, &format!(r#"40{{"token":"{}"}}"#, token("alice"))).await;
    assert!(next_text(&mut link).await.starts_with(r#"40{"sid":"#));
}

#[actix::test]
async fn closes_when_no_pong_arrives() {
    let (mut link, _chat) = start(50, 80, 45_000).await;
    next_text(&mut link).await;
    send(&link, &format!(r#"40{{"token":"{}"}}"#, token("alice"))).await;
    next_text(&mut link).await;
    assert_eq!(next_text(&mut link).await, "2");
    // No pong: the session closes (normal close code) and drops its end.
    assert_eq!(next(&mut link).await, Some(Outbound::Close(1000)));
    assert_eq!(next(&mut link).await, None);
}

#[actix::test]
async fn pongs_keep_it_alive() {
    let (mut link, _chat) = start(50, 200, 45_000).await;
    next_text(&mut link).await;
    send(&link, &format!(r#"40{{"token":"{}"}}"#, token("alice"))).await;
    next_text(&mut link).await;
    for _ in 0..4 {
        assert_eq!(next_text(&mut link).await, "2");
        send(&link, "3").await;
    }
}

#[actix::test]
async fn closes_without_connect_in_time() {
    let (mut link, _chat) = start(25_000, 20_000, 100).await;
    next_text(&mut link).await;
    assert_eq!(next(&mut link).await, Some(Outbound::Close(1000)));
}

#[actix::test]
async fn protocol_errors_close_with_1002() {
    let (mut link, _chat) = start(25_000, 20_000, 45_000).await;
    next_text(&mut link).await;
    send(&link, "42{}").await;
    assert_eq!(next(&mut link).await, Some(Outbound::Close(1002)));
}

#[actix::test]
async fn a_client_that_stops_reading_is_disconnected() {
    // Outbound capacity 16: the handshake plus many refusals overflow it.
    let (mut link, _chat) = start(25_000, 20_000, 45_000).await;
    for _ in 0..40 {
        if !link.report(WsEvent::Text("40".into())).await {
            break;
        }
    }
    let mut last = None;
    while let Some(item) = next(&mut link).await {
        last = Some(item);
    }
    // The queue filled before a close could be queued; the session dropped its end.
    assert!(matches!(last, Some(Outbound::Text(_))), "{last:?}");
}
