//! What the chat counts, for `/metrics`: events received, messages saved, refused and
//! failed, read receipts, the persistence's batches, the write queue, the time from a
//! message's acceptance to its `message_sent`, rate-limited requests, users online and rooms
//! alive.
//!
//! Every label takes values from a fixed list (event names the chat knows, plus `other`:
//! clients choose event names, so labels stay bounded), and every series is resolved once,
//! when the metrics are made: the hot path only adds to an atomic. [`ChatMetrics::off`]
//! counts nothing (`metrics.enabled = false`).

use std::fmt;
use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The event names counted by name; any other name is counted as `other`.
pub(crate) const KNOWN_EVENTS: [&str; 12] = super::protocol::client::NAMES;

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its arguments were wrong (shape, lengths, media).
    Invalid,
    /// The sender is not a member of the connection.
    NotMember,
    /// The connection is not ACTIVE.
    NotActive,
    /// The sender went over `chat.rate_limit`.
    RateLimited,
}

impl Refusal {
    const ALL: [Refusal; 4] = [
        Refusal::Invalid,
        Refusal::NotMember,
        Refusal::NotActive,
        Refusal::RateLimited,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Invalid => "invalid",
            Refusal::NotMember => "not_member",
            Refusal::NotActive => "not_active",
            Refusal::RateLimited => "rate_limited",
        }
    }
}

/// Which limit a rate-limited request went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limited {
    /// `chat.rate_limit` (messages per user).
    Message,
    /// `chat.call_rate` (call signalling per socket).
    Call,
}

/// The chat's series (or nothing, when metrics are off).
pub struct ChatMetrics {
    series: Option<Series>,
}

struct Series {
    events: Vec<IntCounter>,
    saved: IntCounter,
    duplicates: IntCounter,
    refused: Vec<IntCounter>,
    failed: IntCounter,
    read_receipts: IntCounter,
    batch_size: Histogram,
    commit_seconds: Histogram,
    write_queue: IntGauge,
    ack_seconds: Histogram,
    rate_limited: [IntCounter; 2],
    users_online: IntGauge,
    rooms_alive: IntGauge,
    recovery_records: IntGauge,
}

impl fmt::Debug for ChatMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatMetrics")
            .field("enabled", &self.series.is_some())
            .finish()
    }
}

/// Latency buckets, in seconds: 0.5 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Batch size buckets, in writes.
const BATCH_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

impl ChatMetrics {
    /// Metrics that count nothing.
    pub fn off() -> Self {
        ChatMetrics { series: None }
    }

    /// The series, registered in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let events_vec = IntCounterVec::new(
            Opts::new(
                "courier_events_received_total",
                "Socket.IO events received from clients, by event name (names the chat does \
                 not know are counted as \"other\")",
            ),
            &["event"],
        )?;
        let refused_vec = IntCounterVec::new(
            Opts::new(
                "courier_messages_refused_total",
                "send_message requests refused, by reason",
            ),
            &["reason"],
        )?;
        let limited_vec = IntCounterVec::new(
            Opts::new(
                "courier_rate_limited_total",
                "Requests refused for going over a rate limit, by limit \
                 (message: chat.rate_limit, call: chat.call_rate)",
            ),
            &["limit"],
        )?;
        let series = Series {
            events: KNOWN_EVENTS
                .iter()
                .chain(&["other"])
                .map(|name| events_vec.with_label_values(&[name]))
                .collect(),
            saved: IntCounter::new(
                "courier_messages_saved_total",
                "Messages inserted into the database",
            )?,
            duplicates: IntCounter::new(
                "courier_messages_duplicate_total",
                "send_message retries of a message saved before (answered with that row, \
                 not saved again)",
            )?,
            refused: Refusal::ALL
                .iter()
                .map(|r| refused_vec.with_label_values(&[r.as_str()]))
                .collect(),
            failed: IntCounter::new(
                "courier_messages_failed_total",
                "Messages that could not be saved (database error after retries)",
            )?,
            read_receipts: IntCounter::new(
                "courier_read_receipts_total",
                "Messages marked read (message_read sent to the sender)",
            )?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new(
                    "courier_persistence_batch_size",
                    "Writes committed together in one transaction",
                )
                .buckets(BATCH_BUCKETS.to_vec()),
            )?,
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "courier_persistence_commit_seconds",
                    "Time to commit one batch (retries included)",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            write_queue: IntGauge::new(
                "courier_write_queue_depth",
                "Writes queued or being committed (of database.write_queue)",
            )?,
            ack_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "courier_message_ack_seconds",
                    "Time from a send_message's acceptance to its message_sent",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            rate_limited: [
                limited_vec.with_label_values(&["message"]),
                limited_vec.with_label_values(&["call"]),
            ],
            users_online: IntGauge::new(
                "courier_users_online",
                "Users with at least one socket connected to this node",
            )?,
            rooms_alive: IntGauge::new(
                "courier_rooms_alive",
                "Conversation rooms (ChatRoom actors) running on this node",
            )?,
            recovery_records: IntGauge::new(
                "courier_recovery_records",
                "Recovery pids whose session disconnected, kept for recovery.max_disconnection",
            )?,
        };
        registry.register(Box::new(events_vec))?;
        registry.register(Box::new(refused_vec))?;
        registry.register(Box::new(limited_vec))?;
        for metric in [
            &series.saved,
            &series.duplicates,
            &series.failed,
            &series.read_receipts,
        ] {
            registry.register(Box::new(metric.clone()))?;
        }
        for metric in [
            &series.batch_size,
            &series.commit_seconds,
            &series.ack_seconds,
        ] {
            registry.register(Box::new(metric.clone()))?;
        }
        for metric in [
            &series.write_queue,
            &series.users_online,
            &series.rooms_alive,
            &series.recovery_records,
        ] {
            registry.register(Box::new(metric.clone()))?;
        }
        Ok(ChatMetrics {
            series: Some(series),
        })
    }

    /// An event named `name` arrived.
    pub fn event(&self, name: &str) {
        if let Some(s) = &self.series {
            let i = KNOWN_EVENTS
                .iter()
                .position(|known| *known == name)
                .unwrap_or(KNOWN_EVENTS.len());
            s.events[i].inc();
        }
    }

    /// A message was inserted.
    pub fn saved(&self) {
        if let Some(s) = &self.series {
            s.saved.inc();
        }
    }

    /// A retry of a saved message was answered with its row.
    pub fn duplicate(&self) {
        if let Some(s) = &self.series {
            s.duplicates.inc();
        }
    }

    /// A message was refused.
    pub fn refused(&self, why: Refusal) {
        if let Some(s) = &self.series {
            s.refused[why as usize].inc();
        }
    }

    /// A message could not be saved.
    pub fn failed(&self) {
        if let Some(s) = &self.series {
            s.failed.inc();
        }
    }

    /// A message was marked read.
    pub(crate) fn read_receipt(&self) {
        if let Some(s) = &self.series {
            s.read_receipts.inc();
        }
    }

    /// A batch of `writes` was committed in `took`.
    pub fn batch(&self, writes: usize, took: Duration) {
        if let Some(s) = &self.series {
            s.batch_size.observe(writes as f64);
            s.commit_seconds.observe(took.as_secs_f64());
        }
    }

    /// Writes queued or being committed now (set when scraped).
    pub(crate) fn set_write_queue(&self, depth: usize) {
        if let Some(s) = &self.series {
            s.write_queue.set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
    }

    /// A `message_sent` went out `took` after its message was accepted.
    pub fn acked(&self, took: Duration) {
        if let Some(s) = &self.series {
            s.ack_seconds.observe(took.as_secs_f64());
        }
    }

    /// A request went over a rate limit.
    pub(crate) fn rate_limited(&self, limit: Limited) {
        if let Some(s) = &self.series {
            s.rate_limited[limit as usize].inc();
        }
    }

    /// A user's first socket on this node connected (`true`) or the last one left.
    pub fn user_online(&self, online: bool) {
        if let Some(s) = &self.series {
            if online {
                s.users_online.inc();
            } else {
                s.users_online.dec();
            }
        }
    }

    /// Disconnected recovery records kept: `delta` more.
    pub(crate) fn recovery_records(&self, delta: i64) {
        if let Some(s) = &self.series {
            s.recovery_records.add(delta);
        }
    }

    /// A room started (`true`) or stopped.
    pub(crate) fn room_alive(&self, alive: bool) {
        if let Some(s) = &self.series {
            if alive {
                s.rooms_alive.inc();
            } else {
                s.rooms_alive.dec();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, TextEncoder};

    fn text(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap_or_default();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn event_names_stay_bounded() {
        let registry = Registry::new();
        let m = ChatMetrics::new(&registry).unwrap_or_else(|e| panic!("{e}"));
        m.event("send_message");
        m.event("send_message");
        m.event("call:end");
        m.event("whatever-the-client-likes");
        m.event("another one");
        let text = text(&registry);
        assert!(text.contains(r#"courier_events_received_total{event="send_message"} 2"#));
        assert!(text.contains(r#"courier_events_received_total{event="call:end"} 1"#));
        assert!(text.contains(r#"courier_events_received_total{event="other"} 2"#));
        assert!(!text.contains("whatever"));
    }

    #[test]
    fn reasons_limits_and_histograms() {
        let registry = Registry::new();
        let m = ChatMetrics::new(&registry).unwrap_or_else(|e| panic!("{e}"));
        m.refused(Refusal::NotActive);
        m.refused(Refusal::RateLimited);
        m.rate_limited(Limited::Call);
        m.batch(3, Duration::from_millis(2));
        m.user_online(true);
        m.user_online(true);
        m.user_online(false);
        let text = text(&registry);
        assert!(text.contains(r#"courier_messages_refused_total{reason="not_active"} 1"#));
        assert!(text.contains(r#"courier_messages_refused_total{reason="rate_limited"} 1"#));
        assert!(text.contains(r#"courier_messages_refused_total{reason="invalid"} 0"#));
        assert!(text.contains(r#"courier_rate_limited_total{limit="call"} 1"#));
        assert!(text.contains(r#"courier_rate_limited_total{limit="message"} 0"#));
        assert!(text.contains(r#"courier_persistence_batch_size_bucket{le="2"} 0"#));
        assert!(text.contains(r#"courier_persistence_batch_size_bucket{le="4"} 1"#));
        assert!(text.contains("courier_persistence_commit_seconds_count 1"));
        assert!(text.contains("courier_users_online 1"));
    }

    #[test]
    fn off_counts_nothing() {
        let m = ChatMetrics::off();
        m.event("send_message");
        m.batch(1, Duration::ZERO);
        m.user_online(false);
        assert_eq!(format!("{m:?}"), "ChatMetrics { enabled: false }");
    }
}
