//! The chat's settings (`[chat]`, `[presence]`, `[recovery]`) and their checks.

use serde::Deserialize;

use crate::rate::RateSettings;
use crate::setting::{invalid, positive, Checked};

/// `[chat]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSettings {
    pub max_content_chars: usize,
    pub send_window: usize,
    pub room_idle_timeout: u64,
    pub shards: usize,
    pub max_sockets_per_user: usize,
    pub max_notice_ids: usize,
    pub rate_limit: RateSettings,
    pub call_rate: RateSettings,
    /// Replaced by `send_window`: read only to warn about it.
    #[serde(default)]
    pub max_pending_sends: Option<u64>,
}

/// Who is told of a user's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceScope {
    /// The users who share an ACTIVE connection with them.
    Peers,
    /// Every socket (the Node server's behaviour).
    All,
}

/// `[presence]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceSettings {
    pub offline_grace: u64,
    pub legacy_events: bool,
    pub scope: PresenceScope,
    pub peers_ttl: u64,
    pub stale_after: u64,
    pub heartbeat_flush: u64,
}

/// `[recovery]`: connection state recovery, replayed from the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySettings {
    /// CONNECT answers `{sid, pid}` and conversation events carry offsets.
    pub enabled: bool,
    /// Milliseconds after a disconnect during which a valid `pid` stands in for an expired
    /// (but genuine) token.
    pub max_disconnection: u64,
    /// Most missed events replayed; past it the client is not recovered.
    pub max_replay: usize,
    /// Most conversations one socket's offset tracks; past it the socket's offset no longer
    /// recovers (the client refetches).
    pub max_conversations: usize,
    /// Disconnected sessions' pid records kept at most.
    pub max_records: usize,
}

/// Whether the chat's settings can be used.
pub(crate) fn validate(
    chat: &ChatSettings,
    presence: &PresenceSettings,
    recovery: &RecoverySettings,
) -> Checked {
    positive(&[
        ("chat.max_content_chars", chat.max_content_chars as u64),
        ("chat.max_notice_ids", chat.max_notice_ids as u64),
        ("chat.send_window", chat.send_window as u64),
        ("chat.room_idle_timeout", chat.room_idle_timeout),
        (
            "chat.max_sockets_per_user",
            chat.max_sockets_per_user as u64,
        ),
        ("presence.peers_ttl", presence.peers_ttl),
        ("presence.stale_after", presence.stale_after),
        ("presence.heartbeat_flush", presence.heartbeat_flush),
        ("recovery.max_replay", recovery.max_replay as u64),
        ("recovery.max_records", recovery.max_records as u64),
        (
            "recovery.max_conversations",
            recovery.max_conversations as u64,
        ),
    ])?;
    chat.rate_limit.check("chat.rate_limit")?;
    chat.call_rate.check("chat.call_rate")?;
    if presence.heartbeat_flush >= presence.stale_after {
        return Err(invalid(
            "presence.heartbeat_flush",
            "must be shorter than presence.stale_after, or online users would look stale",
        ));
    }
    Ok(())
}
