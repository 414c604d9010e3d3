//! Courier's own load generator: many Socket.IO clients over the WebSocket transport, chatting
//! in pairs, and one JSON line of figures at the end.
//!
//! ```text
//! cargo run --release --example loadgen -- --url http://127.0.0.1:4000 --secret benchsecret \
//!     --conversations 50 --window 4 --duration-secs 20 --warmup-secs 5
//! ```
//!
//! # Workload
//!
//! Conversation `k` (0-based) is users `u{2k}` and `u{2k+1}` with connection id `c{k}`, which
//! must exist and be `ACTIVE` (`shared/bench/fixtures.sh N` creates conversations 0..N-1).
//! Each user opens `--sockets-per-user` sockets; socket `i` (users in order, a user's sockets
//! in a row) connects to the `i mod n`-th of the `n` `--url`s, so with two URLs and one socket
//! per user the two users of every conversation sit on different nodes.
//!
//! A socket speaks Engine.IO v4 / Socket.IO v5 by hand: it waits for the open packet `0{...}`,
//! sends `40{"token":"<jwt>"}` (HS256 `{userId, iat, exp}` signed with `--secret`), waits for
//! `40{...}` (a `44{...}` CONNECT_ERROR is a connect failure), answers every ping `2` with
//! `3`, and emits `42["join_chat","c{k}"]`. Once every socket has connected (or failed), the
//! sending sockets (all, or with `--one-way` only those of `u{2k}`) emit
//!
//! ```text
//! 42["send_message",{"connectionId":"c{k}","content":"lg:<run>:<socket>:<seq>:<t_us>:<pad>","tempId":"lg:<run>:<socket>:<seq>:<t_us>"}]
//! ```
//!
//! where `t_us` is the send time (window mode) or the scheduled send time (rate mode), in
//! microseconds since this process started. The marker makes every message unique and carries
//! its own timestamp, so nothing is looked up per message:
//!
//! * `message_sent {tempId, savedMessage}` on the sending socket is the **ack**;
//! * `receive_message <savedMessage>` on a socket of the peer user is a **delivery** (a copy
//!   on one of the sender's own other sockets is counted apart, as `own_copies`);
//! * `error {message}` is a server error; it also frees a window slot (it names no tempId).
//!
//! Modes: `--window W` is a closed loop (each sending socket keeps at most W sends not yet
//! acked); `--rate R` an open loop (R msgs/s over all sending sockets, evenly spread, and the
//! latencies count from the *scheduled* time, so a stalling server shows in the percentiles).
//!
//! # Options
//!
//! See [`HELP`] (`--help`): `--url` (repeatable), `--path`, `--secret`, `--conversations`,
//! `--sockets-per-user`, `--window` | `--rate`, `--messages`, `--duration-secs`,
//! `--warmup-secs`, `--drain-secs`, `--content-bytes`, `--connect-rate`,
//! `--connect-timeout-secs`, `--one-way`, `--threads`, `--token-ttl-secs`.
//!
//! # Output
//!
//! One JSON line on stdout (progress goes to stderr); the fields are listed in [`HELP`].
//! Exit code 0 when the run took place, 1 when it could not start (no socket connected, no
//! runtime), 2 for bad options.
//!
//! The figures are defined as `shared/tools/sioload` defines them, so the two agree on the
//! same workload: `throughput` is the number of measured acks (messages sent after the
//! warm-up) divided by the time from the end of the warm-up to the last measured ack.
//!
//! The file is laid out as: options, time, protocol, the client (one task per socket and one
//! writer task beside it), the run (connect, start, drain, stop) and the report. Its unit
//! tests (framing, markers, options) run with `cargo test --example loadgen`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use courier::auth::Authenticator;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/// The `--help` text: every option and every output field.
const HELP: &str = "\
loadgen: Courier's Socket.IO load generator (WebSocket transport)

USAGE:
    cargo run --release --example loadgen -- [OPTIONS]

Conversation k is users u{2k} and u{2k+1}, connection id c{k} (ACTIVE; see
shared/bench/fixtures.sh). Sockets emit join_chat, then send_message; message_sent is the
ack, receive_message on the peer's sockets the delivery.

OPTIONS:
    --url URL                 server, http://HOST:PORT or ws://HOST:PORT; repeatable: socket i
                              goes to the (i mod n)-th URL, so a conversation's users may sit on
                              different nodes [default: http://127.0.0.1:4000]
    --path PATH               Engine.IO path [default: /socket.io/]
    --secret SECRET           HS256 secret the tokens are signed with [default: benchsecret]
    --conversations N         conversations of two users [default: 2]
    --sockets-per-user S      sockets per user; a message counts as delivered when it reached
                              all S sockets of the peer [default: 1]
    --window W                closed loop: at most W sends per socket not yet acked (an error
                              event also frees a slot) [default: 1]
    --rate R                  open loop: R msgs/s in total over the sending sockets; latency
                              counts from the scheduled send time (excludes --window)
    --messages M              at most M sends per socket [default: 10, or no cap with
                              --duration-secs]
    --duration-secs D         stop sending D s after the start
    --warmup-secs W           messages sent in the first W s are counted but not measured
                              [default: 0]
    --drain-secs D            after the last send, wait at most D s for acks and deliveries; a
                              socket whose window stayed full for D s stops sending
                              [default: 10]
    --content-bytes B         pad each message's content to B bytes (the marker alone is about
                              30) [default: 0]
    --connect-rate C          sockets opened per second [default: 500]
    --connect-timeout-secs T  a socket not connected after T s is a connect failure
                              [default: 20]
    --one-way                 only u{2k} sends, u{2k+1} only receives
    --threads N               tokio worker threads; 1 runs a current-thread runtime
                              [default: 1]
    --token-ttl-secs T        lifetime of the minted tokens [default: 3600]
    -h, --help                this text

OUTPUT (one JSON line on stdout; progress on stderr; latencies in ms):
    sent, acked, unacked          sends, distinct acks (message_sent with our tempId)
    delivered, deliveries         messages that reached every peer socket; socket-level receipts
    lost, lost_partial            sent but not delivered to every peer socket by the end of the
                                  drain (includes messages refused with error); of which some
                                  peer sockets got it
    duplicates                    duplicate_acks + duplicate_deliveries
    out_of_order                  out_of_order_acks (an ack below a seq already acked on that
                                  socket) + out_of_order_deliveries (a delivery below a seq
                                  already delivered from the same sending socket)
    errors, error_samples         server error events, the first 5 messages, error_kinds
    connected, connect_failures   with connect_error_samples and connect_error_kinds
    disconnected_early            sockets lost before the end (disconnect_kinds)
    stalled_senders               sockets that stopped sending with a full window (no ack for
                                  --drain-secs)
    own_copies, other_events      receive_message copies on the sender's own other sockets;
                                  other events (presence...)
    foreign_or_unparsable         events that are not ours or do not parse
    throughput                    measured acks / (last measured ack - end of warm-up), msgs/s
    measured                      the measured sends, acks and deliveries, windows and rates
    ack_latency_ms, delivery_latency_ms, connect_latency_ms
                                  {count, p50, p90, p99, p999, max, mean}
    per_url                       sockets, connected, sent, acked, deliveries, errors,
                                  disconnected per URL; conversations_across_urls
    connect_secs, send_phase_secs, drain_secs_used, elapsed_secs

EXIT CODE: 0 when the run took place, 1 when it could not start (no socket connected),
2 for bad options.
";

/// The highest sequence number a socket may use: bounds the memory a bad marker can claim.
const MAX_SEQ: u64 = 1 << 26;

/// Closed loop or open loop.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Load {
    /// At most this many sends per socket not yet acked.
    Window(usize),
    /// Messages per second over all sending sockets.
    Rate(f64),
}

#[derive(Clone, Debug)]
struct Config {
    urls: Vec<String>,
    path: String,
    secret: String,
    conversations: usize,
    sockets_per_user: usize,
    load: Load,
    /// Sends per socket at most (already bounded by [`MAX_SEQ`]).
    messages: u64,
    duration_secs: Option<f64>,
    warmup_secs: f64,
    drain_secs: f64,
    content_bytes: usize,
    connect_rate: f64,
    connect_timeout_secs: f64,
    one_way: bool,
    threads: usize,
    token_ttl_secs: u64,
}

impl Config {
    fn sockets(&self) -> usize {
        self.conversations * 2 * self.sockets_per_user
    }
}

/// Parses the command line; `Ok(None)` when help was asked for.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Config>, String> {
    let mut urls = Vec::new();
    let mut path = "/socket.io/".to_string();
    let mut secret = "benchsecret".to_string();
    let mut conversations = 2usize;
    let mut sockets_per_user = 1usize;
    let mut window: Option<usize> = None;
    let mut rate: Option<f64> = None;
    let mut messages: Option<u64> = None;
    let mut duration_secs: Option<f64> = None;
    let mut warmup_secs = 0.0f64;
    let mut drain_secs = 10.0f64;
    let mut content_bytes = 0usize;
    let mut connect_rate = 500.0f64;
    let mut connect_timeout_secs = 20.0f64;
    let mut one_way = false;
    let mut threads = 1usize;
    let mut token_ttl_secs = 3600u64;

    fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
        v.parse()
            .map_err(|_| format!("{name}: not a valid number: {v:?}"))
    }

    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        if arg == "--one-way" {
            one_way = true;
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if !name.starts_with("--") {
            return Err(format!("unexpected argument {arg:?}"));
        }
        let v = match inline.or_else(|| it.next()) {
            Some(v) => v,
            None => return Err(format!("{name} needs a value")),
        };
        match name.as_str() {
            "--url" => urls.push(v),
            "--path" => path = v,
            "--secret" => secret = v,
            "--conversations" => conversations = num(&name, &v)?,
            "--sockets-per-user" => sockets_per_user = num(&name, &v)?,
            "--window" => window = Some(num(&name, &v)?),
            "--rate" => rate = Some(num(&name, &v)?),
            "--messages" => messages = Some(num(&name, &v)?),
            "--duration-secs" => duration_secs = Some(num(&name, &v)?),
            "--warmup-secs" => warmup_secs = num(&name, &v)?,
            "--drain-secs" => drain_secs = num(&name, &v)?,
            "--content-bytes" => content_bytes = num(&name, &v)?,
            "--connect-rate" => connect_rate = num(&name, &v)?,
            "--connect-timeout-secs" => connect_timeout_secs = num(&name, &v)?,
            "--threads" => threads = num(&name, &v)?,
            "--token-ttl-secs" => token_ttl_secs = num(&name, &v)?,
            _ => return Err(format!("unknown option {name}")),
        }
    }

    if urls.is_empty() {
        urls.push("http://127.0.0.1:4000".to_string());
    }
    for url in &urls {
        websocket_url(url, &path)?;
    }
    let finite_pos = |x: f64| x.is_finite() && x > 0.0;
    let finite_nonneg = |x: f64| x.is_finite() && x >= 0.0;
    let load = match (window, rate) {
        (Some(_), Some(_)) => return Err("--window and --rate exclude each other".into()),
        (Some(0), None) => return Err("--window must be at least 1".into()),
        (Some(w), None) => Load::Window(w),
        (None, Some(r)) if !finite_pos(r) => return Err("--rate must be above 0".into()),
        (None, Some(r)) => Load::Rate(r),
        (None, None) => Load::Window(1),
    };
    if conversations == 0 {
        return Err("--conversations must be at least 1".into());
    }
    if sockets_per_user == 0 || sockets_per_user > 255 {
        return Err("--sockets-per-user must be 1..255".into());
    }
    if messages == Some(0) {
        return Err("--messages must be at least 1".into());
    }
    if duration_secs.is_some_and(|d| !finite_pos(d)) {
        return Err("--duration-secs must be above 0".into());
    }
    if !finite_nonneg(warmup_secs) || !finite_nonneg(drain_secs) {
        return Err("--warmup-secs and --drain-secs must be 0 or more".into());
    }
    if !finite_pos(connect_rate) || !finite_pos(connect_timeout_secs) {
        return Err("--connect-rate and --connect-timeout-secs must be above 0".into());
    }
    if threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    if content_bytes > 1_000_000 {
        return Err("--content-bytes must be at most 1000000".into());
    }
    // Without a duration the cap is what ends the run, so it defaults to a small one.
    let messages = match (messages, duration_secs) {
        (Some(m), _) => m.min(MAX_SEQ),
        (None, Some(_)) => MAX_SEQ,
        (None, None) => 10,
    };
    Ok(Some(Config {
        urls,
        path,
        secret,
        conversations,
        sockets_per_user,
        load,
        messages,
        duration_secs,
        warmup_secs,
        drain_secs,
        content_bytes,
        connect_rate,
        connect_timeout_secs,
        one_way,
        threads,
        token_ttl_secs,
    }))
}

/// `ws://HOST:PORT/PATH/?EIO=4&transport=websocket` for `http://HOST:PORT` or `ws://HOST:PORT`.
/// A path in the URL is ignored (socket.io-client reads it as a namespace); `--path` sets it.
fn websocket_url(url: &str, path: &str) -> Result<String, String> {
    let url = url.trim();
    let rest = if let Some(r) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
    {
        r
    } else if url.starts_with("https://") || url.starts_with("wss://") {
        return Err(format!("{url}: TLS is not supported"));
    } else if url.contains("://") {
        return Err(format!("{url}: unsupported scheme"));
    } else {
        url
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let path = path.trim_matches('/');
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        format!("/{path}/")
    };
    Ok(format!("ws://{host}{path}?EIO=4&transport=websocket"))
}

// ---------------------------------------------------------------------------------------------
// Time: microseconds since the process started
// ---------------------------------------------------------------------------------------------

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn now_us() -> u64 {
    origin().elapsed().as_micros() as u64
}

fn instant_at(us: u64) -> tokio::time::Instant {
    tokio::time::Instant::from_std(origin() + Duration::from_micros(us))
}

fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------------
// Protocol: Engine.IO v4 / Socket.IO v5 text packets, event payloads, markers
// ---------------------------------------------------------------------------------------------

/// An incoming text frame, as far as this client cares.
#[derive(Debug, PartialEq)]
enum Packet<'a> {
    /// Engine.IO open `0{...}`.
    Open,
    /// Engine.IO close `1`.
    Close,
    /// Engine.IO ping `2`: answer `3`.
    Ping,
    /// Socket.IO CONNECT `40{...}`.
    Connected,
    /// Socket.IO CONNECT_ERROR `44{...}` (the payload).
    ConnectError(&'a str),
    /// Socket.IO DISCONNECT `41`.
    Disconnect,
    /// Socket.IO EVENT `42[...]` (the JSON array).
    Event(&'a str),
    /// Anything else (pong, noop, acks, binary events...).
    Other,
}

fn classify(frame: &str) -> Packet<'_> {
    let b = frame.as_bytes();
    match b.first() {
        Some(b'0') => Packet::Open,
        Some(b'1') => Packet::Close,
        Some(b'2') if b.len() == 1 => Packet::Ping,
        Some(b'4') => {
            let kind = b.get(1).copied();
            let Some(mut rest) = frame.get(2..) else {
                return Packet::Other;
            };
            // Optional namespace `/nsp,` then an optional ack id.
            if rest.starts_with('/') {
                rest = rest.find(',').map_or("", |i| &rest[i + 1..]);
            }
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            match kind {
                Some(b'0') => Packet::Connected,
                Some(b'1') => Packet::Disconnect,
                Some(b'2') => Packet::Event(rest),
                Some(b'4') => Packet::ConnectError(rest),
                _ => Packet::Other,
            }
        }
        _ => Packet::Other,
    }
}

/// A string borrowed from the frame when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct AckBody<'a> {
    #[serde(borrow, rename = "tempId", default)]
    temp_id: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct SavedMessage<'a> {
    #[serde(borrow, default)]
    content: Option<Text<'a>>,
}

/// The events this client tells apart, parsed in one pass from `["name", payload, ...]`.
enum Event<'a> {
    /// `message_sent`: the payload's `tempId`.
    Ack(Option<Text<'a>>),
    /// `receive_message`: the saved message's `content`.
    Receive(Option<Text<'a>>),
    /// `error`: the payload as it came (`{message}` from Courier).
    Error(Value),
    Other,
}

impl<'de> Deserialize<'de> for Event<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Event<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an event array [name, ...]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Event<'de>, A::Error> {
                let Some(Text(name)) = seq.next_element::<Text<'de>>()? else {
                    return Err(de::Error::invalid_length(0, &self));
                };
                let event = match &*name {
                    "message_sent" => {
                        Event::Ack(seq.next_element::<AckBody>()?.and_then(|b| b.temp_id))
                    }
                    "receive_message" => {
                        Event::Receive(seq.next_element::<SavedMessage>()?.and_then(|m| m.content))
                    }
                    "error" => Event::Error(seq.next_element::<Value>()?.unwrap_or(Value::Null)),
                    _ => Event::Other,
                };
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(event)
            }
        }
        d.deserialize_seq(V)
    }
}

/// What a `tempId` or a content carries: `lg:<run>:<socket>:<seq>:<t_us>[:<pad>]`.
#[derive(Debug, PartialEq)]
struct Marker {
    run: u32,
    socket: usize,
    seq: u64,
    t_us: u64,
}

fn parse_marker(s: &str) -> Option<Marker> {
    let mut it = s.split(':');
    if it.next()? != "lg" {
        return None;
    }
    Some(Marker {
        run: it.next()?.parse().ok()?,
        socket: it.next()?.parse().ok()?,
        seq: it.next()?.parse().ok()?,
        t_us: it.next()?.parse().ok()?,
    })
}

/// The `send_message` frame for one message; `pad` is sliced to reach `content_bytes`.
fn send_frame(m: &Marker, conv: usize, content_bytes: usize, pad: &str) -> String {
    let marker = format!("lg:{}:{}:{}:{}", m.run, m.socket, m.seq, m.t_us);
    let fill = content_bytes
        .saturating_sub(marker.len() + 1)
        .min(pad.len());
    format!(
        "42[\"send_message\",{{\"connectionId\":\"c{conv}\",\"content\":\"{marker}:{}\",\"tempId\":\"{marker}\"}}]",
        &pad[..fill]
    )
}

/// The error message of a CONNECT_ERROR or `error` payload (`{message}`), else the payload.
fn error_text(v: &Value) -> String {
    match v.get("message").and_then(Value::as_str) {
        Some(m) => m.to_string(),
        None => v.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state, counters and tallies
// ---------------------------------------------------------------------------------------------

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Latency histogram in microseconds (1 us .. 1 h, 3 significant digits).
fn new_histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| format!("histogram: {e}"))
}

/// `{count, p50, p90, p99, p999, max, mean}` in milliseconds.
fn histogram_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0, "p50": null, "p90": null, "p99": null, "p999": null, "max": null, "mean": null});
    }
    let ms = |us: u64| round3(us as f64 / 1000.0);
    json!({
        "count": h.len(),
        "p50": ms(h.value_at_quantile(0.5)),
        "p90": ms(h.value_at_quantile(0.9)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
        "mean": round3(h.mean() / 1000.0),
    })
}

struct Latencies {
    ack: Histogram<u64>,
    delivery: Histogram<u64>,
    connect: Histogram<u64>,
}

/// The first few texts and a count per distinct text (at most 50 kinds).
#[derive(Default)]
struct Tally(Mutex<(Vec<String>, BTreeMap<String, u64>)>);

impl Tally {
    fn add(&self, text: String) {
        let mut g = lock(&self.0);
        let kind = if g.1.len() < 50 || g.1.contains_key(&text) {
            text.clone()
        } else {
            "(other kinds)".to_string()
        };
        *g.1.entry(kind).or_insert(0) += 1;
        if g.0.len() < 5 {
            g.0.push(text);
        }
    }
    fn samples(&self) -> Value {
        json!(lock(&self.0).0)
    }
    fn kinds(&self) -> Value {
        json!(lock(&self.0).1)
    }
}

/// Live totals, for the progress lines and the end of the drain.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    deliveries: AtomicU64,
    errors: AtomicU64,
    /// Sockets done with connecting, successfully or not.
    ready: AtomicUsize,
    connected: AtomicUsize,
    alive: AtomicUsize,
    /// Sockets that will send nothing more.
    done_sending: AtomicUsize,
}

struct Shared {
    cfg: Config,
    ws_urls: Vec<String>,
    auth: Authenticator,
    run_id: u32,
    /// `content_bytes` bytes of padding, sliced per message.
    pad: String,
    senders: usize,
    counters: Counters,
    latencies: Mutex<Latencies>,
    server_errors: Tally,
    connect_errors: Tally,
    disconnects: Tally,
}

/// The run's phase, broadcast to every socket.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Connecting,
    /// Send from this time (us) on.
    Go(u64),
    Stop,
}

/// A growable set of sequence numbers.
#[derive(Default, Debug)]
struct SeqSet(Vec<u64>);

impl SeqSet {
    /// Adds `seq`; false when it was there already.
    fn insert(&mut self, seq: u64) -> bool {
        let (w, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if w >= self.0.len() {
            self.0.resize(w + 1, 0);
        }
        let new = self.0[w] & bit == 0;
        self.0[w] |= bit;
        new
    }
    fn contains(&self, seq: u64) -> bool {
        self.0
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1u64 << (seq % 64)) != 0)
    }
}

// ---------------------------------------------------------------------------------------------
// Client: one task per socket
// ---------------------------------------------------------------------------------------------

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Who a socket is.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Socket index, 0..sockets.
    socket: usize,
    user: usize,
    conv: usize,
    /// Index into the URLs.
    url: usize,
    sender: bool,
    /// Position among the sending sockets (spreads the open-loop schedule).
    rank: usize,
}

fn plans(cfg: &Config) -> Vec<Plan> {
    let s = cfg.sockets_per_user;
    let mut rank = 0;
    (0..cfg.sockets())
        .map(|socket| {
            let user = socket / s;
            let sender = !cfg.one_way || user.is_multiple_of(2);
            let p = Plan {
                socket,
                user,
                conv: user / 2,
                url: socket % cfg.urls.len(),
                sender,
                rank,
            };
            rank += sender as usize;
            p
        })
        .collect()
}

/// What one socket saw, handed back at the end.
#[derive(Default, Debug)]
struct SocketReport {
    connected: bool,
    sent: u64,
    acked: u64,
    duplicate_acks: u64,
    out_of_order_acks: u64,
    deliveries: u64,
    duplicate_deliveries: u64,
    out_of_order_deliveries: u64,
    own_copies: u64,
    foreign: u64,
    errors: u64,
    other_events: u64,
    disconnected_early: bool,
    stalled: bool,
    measured_sent: u64,
    measured_acked: u64,
    measured_deliveries: u64,
    last_measured_send_us: u64,
    last_measured_ack_us: u64,
    last_measured_delivery_us: u64,
    /// Per socket of the peer user (by its index within the user): the seqs received.
    received: Vec<SeqSet>,
}

/// Opens the WebSocket and completes the Engine.IO open and the Socket.IO CONNECT.
async fn handshake(url: &str, token: &str) -> Result<Ws, String> {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .map_err(|e| format!("websocket: {e}"))?;
    let mut opened = false;
    loop {
        let frame = match ws.next().await {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None => return Err("closed during handshake".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("websocket: {e}")),
        };
        match classify(frame.as_str()) {
            Packet::Open if !opened => {
                opened = true;
                let connect = format!("40{}", json!({ "token": token }));
                ws.send(Message::text(connect))
                    .await
                    .map_err(|e| format!("websocket: {e}"))?;
            }
            Packet::Ping => ws
                .send(Message::text("3"))
                .await
                .map_err(|e| format!("websocket: {e}"))?,
            Packet::Connected if opened => return Ok(ws),
            Packet::ConnectError(p) => {
                let v = serde_json::from_str(p).unwrap_or_else(|_| Value::String(p.to_string()));
                return Err(format!("connect_error: {}", error_text(&v)));
            }
            Packet::Close | Packet::Disconnect => return Err("closed during handshake".into()),
            _ if !opened => return Err("no Engine.IO open packet".into()),
            _ => {}
        }
    }
}

/// Writes what the socket task queues, batching what is already waiting into one flush.
async fn write_loop(
    mut sink: SplitSink<Ws, Message>,
    mut rx: mpsc::UnboundedReceiver<Message>,
) -> Result<(), String> {
    while let Some(first) = rx.recv().await {
        sink.feed(first).await.map_err(|e| e.to_string())?;
        while let Ok(more) = rx.try_recv() {
            sink.feed(more).await.map_err(|e| e.to_string())?;
        }
        sink.flush().await.map_err(|e| e.to_string())?;
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), sink.close()).await;
    Ok(())
}

/// The state of one connected socket.
struct Client<'a> {
    sh: &'a Shared,
    plan: Plan,
    out: mpsc::UnboundedSender<Message>,
    rep: SocketReport,
    next_seq: u64,
    outstanding: usize,
    last_progress_us: u64,
    /// Messages whose send time is at or after this are measured (none before the start).
    measured_from_us: u64,
    acked: SeqSet,
    ack_high: u64,
    recv_high: Vec<u64>,
}

/// What the sending step asks for next.
enum Sending {
    /// Keep going; wake at this time (0: at once) if nothing arrives before.
    More(Option<u64>),
    Done,
    Dead(String),
}

impl Client<'_> {
    fn push(&self, frame: String) -> Result<(), String> {
        self.out
            .send(Message::text(frame))
            .map_err(|_| "write failed".to_string())
    }

    /// Handles one incoming WebSocket item; `Err` means the socket is gone.
    fn on_frame(
        &mut self,
        item: Option<Result<Message, tungstenite::Error>>,
    ) -> Result<(), String> {
        match item {
            Some(Ok(Message::Text(t))) => self.on_text(t.as_str()),
            Some(Ok(Message::Close(c))) => Err(match c {
                Some(c) => format!("close frame {}", u16::from(c.code)),
                None => "close frame".to_string(),
            }),
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(format!("websocket: {e}")),
            None => Err("connection closed".to_string()),
        }
    }

    fn on_text(&mut self, frame: &str) -> Result<(), String> {
        match classify(frame) {
            Packet::Ping => self.push("3".to_string()),
            Packet::Event(array) => {
                match serde_json::from_str::<Event>(array) {
                    Ok(Event::Ack(Some(Text(id)))) => self.on_ack(&id),
                    Ok(Event::Receive(Some(Text(content)))) => self.on_receive(&content),
                    Ok(Event::Error(v)) => self.on_error(&v),
                    Ok(Event::Other) => self.rep.other_events += 1,
                    Ok(Event::Ack(None) | Event::Receive(None)) | Err(_) => self.rep.foreign += 1,
                }
                Ok(())
            }
            Packet::Close => Err("engine.io close".to_string()),
            Packet::Disconnect => Err("socket.io disconnect".to_string()),
            _ => Ok(()),
        }
    }

    fn on_ack(&mut self, temp_id: &str) {
        let now = now_us();
        let m = match parse_marker(temp_id) {
            Some(m)
                if m.run == self.sh.run_id
                    && m.socket == self.plan.socket
                    && m.seq < self.next_seq =>
            {
                m
            }
            _ => {
                self.rep.foreign += 1;
                return;
            }
        };
        if !self.acked.insert(m.seq) {
            self.rep.duplicate_acks += 1;
            return;
        }
        if m.seq + 1 < self.ack_high {
            self.rep.out_of_order_acks += 1;
        }
        self.ack_high = self.ack_high.max(m.seq + 1);
        self.rep.acked += 1;
        self.sh.counters.acked.fetch_add(1, Relaxed);
        self.outstanding = self.outstanding.saturating_sub(1);
        self.last_progress_us = now;
        if m.t_us >= self.measured_from_us {
            lock(&self.sh.latencies)
                .ack
                .saturating_record(now.saturating_sub(m.t_us).max(1));
            self.rep.measured_acked += 1;
            self.rep.last_measured_ack_us = self.rep.last_measured_ack_us.max(now);
        }
    }

    fn on_receive(&mut self, content: &str) {
        let now = now_us();
        let s = self.sh.cfg.sockets_per_user;
        let m = match parse_marker(content) {
            Some(m)
                if m.run == self.sh.run_id
                    && m.socket < self.sh.cfg.sockets()
                    && m.seq < self.sh.cfg.messages =>
            {
                m
            }
            _ => {
                self.rep.foreign += 1;
                return;
            }
        };
        let from_user = m.socket / s;
        if from_user != self.plan.user ^ 1 {
            if from_user == self.plan.user && m.socket != self.plan.socket {
                self.rep.own_copies += 1;
            } else {
                self.rep.foreign += 1;
            }
            return;
        }
        let j = m.socket % s;
        if !self.rep.received[j].insert(m.seq) {
            self.rep.duplicate_deliveries += 1;
            return;
        }
        if m.seq + 1 < self.recv_high[j] {
            self.rep.out_of_order_deliveries += 1;
        }
        self.recv_high[j] = self.recv_high[j].max(m.seq + 1);
        self.rep.deliveries += 1;
        self.sh.counters.deliveries.fetch_add(1, Relaxed);
        if m.t_us >= self.measured_from_us {
            lock(&self.sh.latencies)
                .delivery
                .saturating_record(now.saturating_sub(m.t_us).max(1));
            self.rep.measured_deliveries += 1;
            self.rep.last_measured_delivery_us = self.rep.last_measured_delivery_us.max(now);
        }
    }

    fn on_error(&mut self, payload: &Value) {
        self.rep.errors += 1;
        self.sh.counters.errors.fetch_add(1, Relaxed);
        // Courier's errors name no tempId: an error stands for one refused send.
        self.outstanding = self.outstanding.saturating_sub(1);
        self.last_progress_us = now_us();
        self.sh.server_errors.add(error_text(payload));
    }

    /// Sends what is due now (at most a batch), and says when to look again.
    fn send_due(&mut self, start_us: u64, end_us: u64) -> Sending {
        const BATCH: usize = 64;
        let cfg = &self.sh.cfg;
        for _ in 0..BATCH {
            let now = now_us();
            if self.next_seq >= cfg.messages {
                return Sending::Done;
            }
            if now < start_us {
                return Sending::More(Some(start_us));
            }
            let t_us = match cfg.load {
                Load::Rate(rate) => {
                    let slot =
                        self.plan.rank as f64 + self.next_seq as f64 * self.sh.senders as f64;
                    let due = start_us + (slot * 1e6 / rate) as u64;
                    if due >= end_us {
                        return Sending::Done;
                    }
                    if due > now {
                        return Sending::More(Some(due));
                    }
                    due
                }
                Load::Window(window) => {
                    if now >= end_us {
                        return Sending::Done;
                    }
                    if self.outstanding >= window {
                        let give_up = self.last_progress_us + (cfg.drain_secs * 1e6) as u64;
                        if now >= give_up {
                            self.rep.stalled = true;
                            return Sending::Done;
                        }
                        return Sending::More(Some(give_up.min(end_us)));
                    }
                    now
                }
            };
            let m = Marker {
                run: self.sh.run_id,
                socket: self.plan.socket,
                seq: self.next_seq,
                t_us,
            };
            let frame = send_frame(&m, self.plan.conv, cfg.content_bytes, &self.sh.pad);
            if let Err(e) = self.push(frame) {
                return Sending::Dead(e);
            }
            self.next_seq += 1;
            self.outstanding += 1;
            self.rep.sent += 1;
            self.sh.counters.sent.fetch_add(1, Relaxed);
            if t_us >= self.measured_from_us {
                self.rep.measured_sent += 1;
                self.rep.last_measured_send_us = self.rep.last_measured_send_us.max(t_us);
            }
        }
        Sending::More(Some(0))
    }
}

/// Counts a socket as done sending, once.
struct DoneOnce<'a>(&'a Counters, bool);

impl DoneOnce<'_> {
    fn mark(&mut self) {
        if !self.1 {
            self.1 = true;
            self.0.done_sending.fetch_add(1, Relaxed);
        }
    }
}

/// One socket, from connecting to the stop.
async fn socket_task(
    plan: Plan,
    sh: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) -> SocketReport {
    let cfg = &sh.cfg;
    let s = cfg.sockets_per_user;
    let mut done = DoneOnce(&sh.counters, false);
    let mut rep = SocketReport {
        received: (0..s).map(|_| SeqSet::default()).collect(),
        ..SocketReport::default()
    };

    let t0 = now_us();
    let connecting = async {
        let token = sh
            .auth
            .issue(
                &format!("u{}", plan.user),
                Duration::from_secs(cfg.token_ttl_secs),
            )
            .map_err(|e| format!("token: {e}"))?;
        handshake(&sh.ws_urls[plan.url], &token).await
    };
    let timeout = Duration::from_secs_f64(cfg.connect_timeout_secs);
    let ws = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            sh.connect_errors.add(e);
            sh.counters.ready.fetch_add(1, Relaxed);
            done.mark();
            return rep;
        }
        Err(_) => {
            sh.connect_errors.add("timeout".to_string());
            sh.counters.ready.fetch_add(1, Relaxed);
            done.mark();
            return rep;
        }
    };
    lock(&sh.latencies)
        .connect
        .saturating_record(now_us().saturating_sub(t0).max(1));
    rep.connected = true;

    let (sink, mut stream): (_, SplitStream<Ws>) = ws.split();
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_loop(sink, rx));
    let mut c = Client {
        sh: &sh,
        plan,
        out: tx,
        rep,
        next_seq: 0,
        outstanding: 0,
        last_progress_us: 0,
        measured_from_us: u64::MAX,
        acked: SeqSet::default(),
        ack_high: 0,
        recv_high: vec![0; s],
    };
    let mut dead = c
        .push(format!("42[\"join_chat\",\"c{}\"]", plan.conv))
        .err();
    sh.counters.connected.fetch_add(1, Relaxed);
    sh.counters.alive.fetch_add(1, Relaxed);
    sh.counters.ready.fetch_add(1, Relaxed);

    // Until the start: answer pings, note what arrives.
    let mut start = None;
    while dead.is_none() {
        match *phase.borrow_and_update() {
            Phase::Go(t) => {
                start = Some(t);
                break;
            }
            Phase::Stop => break,
            Phase::Connecting => {}
        }
        tokio::select! {
            item = stream.next() => dead = c.on_frame(item).err(),
            changed = phase.changed() => if changed.is_err() { break },
        }
    }

    if let (Some(start_us), None) = (start, &dead) {
        c.measured_from_us = start_us + (cfg.warmup_secs * 1e6) as u64;
        c.last_progress_us = start_us;
        let end_us = cfg
            .duration_secs
            .map_or(u64::MAX, |d| start_us + (d * 1e6) as u64);
        let mut sending = plan.sender;
        if !sending {
            done.mark();
        }
        loop {
            let mut wake = None;
            if sending {
                match c.send_due(start_us, end_us) {
                    Sending::More(w) => wake = w,
                    Sending::Done => {
                        sending = false;
                        done.mark();
                    }
                    Sending::Dead(e) => {
                        dead = Some(e);
                        break;
                    }
                }
            }
            let at_once = wake == Some(0);
            let sleep = wake.filter(|&w| w > 0).map(instant_at);
            let far = instant_at(now_us() + 3_600_000_000);
            tokio::select! {
                biased;
                changed = phase.changed() => {
                    if changed.is_err() || *phase.borrow_and_update() == Phase::Stop {
                        break;
                    }
                }
                item = stream.next() => {
                    if let Err(e) = c.on_frame(item) {
                        dead = Some(e);
                        break;
                    }
                }
                _ = tokio::task::yield_now(), if at_once => {}
                _ = tokio::time::sleep_until(sleep.unwrap_or(far)), if sleep.is_some() => {}
            }
        }
    }
    done.mark();

    let Client { rep, out, .. } = c;
    let mut rep = rep;
    drop(out);
    let written = match tokio::time::timeout(Duration::from_secs(1), writer).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err("writer task failed".to_string()),
        Err(_) => Ok(()), // the server does not read: leave it
    };
    let stopped = *phase.borrow() == Phase::Stop;
    if let Some(why) = dead {
        let why = match written {
            Err(e) if why == "write failed" => format!("write: {e}"),
            _ => why,
        };
        sh.counters.alive.fetch_sub(1, Relaxed);
        if !stopped {
            rep.disconnected_early = true;
            sh.disconnects.add(why);
        }
    }
    rep
}

// ---------------------------------------------------------------------------------------------
// The run: connect, start, send, drain, stop
// ---------------------------------------------------------------------------------------------

fn run_id() -> u32 {
    let mut b = [0u8; 4];
    match getrandom::fill(&mut b) {
        Ok(()) => u32::from_le_bytes(b) % 1_000_000_000,
        Err(_) => {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.subsec_nanos())
                % 1_000_000_000
        }
    }
}

/// Runs the workload; the report, and whether the run took place at all.
async fn run(cfg: Config) -> Result<(Value, bool), String> {
    let ws_urls = cfg
        .urls
        .iter()
        .map(|u| websocket_url(u, &cfg.path))
        .collect::<Result<Vec<_>, _>>()?;
    let plans = plans(&cfg);
    let sockets = plans.len();
    let senders = plans.iter().filter(|p| p.sender).count();
    let s = cfg.sockets_per_user;
    let sh = Arc::new(Shared {
        ws_urls,
        auth: Authenticator::new(&cfg.secret, 0),
        run_id: run_id(),
        pad: "x".repeat(cfg.content_bytes),
        senders,
        counters: Counters::default(),
        latencies: Mutex::new(Latencies {
            ack: new_histogram()?,
            delivery: new_histogram()?,
            connect: new_histogram()?,
        }),
        server_errors: Tally::default(),
        connect_errors: Tally::default(),
        disconnects: Tally::default(),
        cfg,
    });
    let cfg = &sh.cfg;
    let c = &sh.counters;
    let t_begin = now_us();
    eprintln!(
        "loadgen: {sockets} sockets ({senders} sending), {} conversations x 2 users x {s}, {}, run {}, {}",
        cfg.conversations,
        match cfg.load {
            Load::Window(w) => format!("window {w}"),
            Load::Rate(r) => format!("rate {r} msgs/s"),
        },
        sh.run_id,
        sh.ws_urls.join(" "),
    );

    // Connect, paced.
    let (phase_tx, phase_rx) = watch::channel(Phase::Connecting);
    let mut handles = Vec::with_capacity(sockets);
    let conn_start = now_us();
    for plan in &plans {
        let due = conn_start + (plan.socket as f64 * 1e6 / cfg.connect_rate) as u64;
        if due > now_us() {
            tokio::time::sleep_until(instant_at(due)).await;
        }
        handles.push(tokio::spawn(socket_task(
            *plan,
            sh.clone(),
            phase_rx.clone(),
        )));
    }
    let mut last_log = now_us();
    while c.ready.load(Relaxed) < sockets {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if now_us() - last_log >= 1_000_000 {
            last_log = now_us();
            eprintln!(
                "  connecting: {}/{} done, {} connected",
                c.ready.load(Relaxed),
                sockets,
                c.connected.load(Relaxed)
            );
        }
    }
    let connected = c.connected.load(Relaxed);
    let connect_secs = secs(now_us() - conn_start);
    eprintln!("  connected {connected}/{sockets} in {connect_secs:.2}s");
    let started = connected > 0;

    // Start (after a moment for join_chat to land), then watch until drained.
    let start_us = now_us() + 200_000;
    let mut send_done_us = start_us;
    if started {
        let _ = phase_tx.send(Phase::Go(start_us));
        let drain_us = (cfg.drain_secs * 1e6) as u64;
        let mut drain_deadline = None;
        let (mut last_sent, mut last_acked) = (0, 0);
        last_log = now_us();
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = now_us();
            let sent = c.sent.load(Relaxed);
            let acked = c.acked.load(Relaxed);
            let errors = c.errors.load(Relaxed);
            let deliveries = c.deliveries.load(Relaxed);
            if now - last_log >= 1_000_000 {
                let dt = secs(now - last_log);
                eprintln!(
                    "  t={:.1}s sent={sent} acked={acked} deliveries={deliveries} errors={errors} alive={} sent/s={:.0} acked/s={:.0}",
                    secs(now.saturating_sub(start_us)),
                    c.alive.load(Relaxed),
                    (sent - last_sent) as f64 / dt,
                    (acked - last_acked) as f64 / dt,
                );
                (last_log, last_sent, last_acked) = (now, sent, acked);
            }
            if c.done_sending.load(Relaxed) >= sockets {
                let deadline = *drain_deadline.get_or_insert_with(|| {
                    send_done_us = now;
                    now + drain_us
                });
                if acked + errors >= sent && deliveries >= acked * s as u64 {
                    break;
                }
                if c.alive.load(Relaxed) == 0 {
                    eprintln!("  no socket left alive");
                    break;
                }
                if now >= deadline {
                    eprintln!("  drain deadline reached");
                    break;
                }
            }
        }
    }
    let _ = phase_tx.send(Phase::Stop);
    let mut reports = Vec::with_capacity(sockets);
    for h in handles {
        reports.push(h.await.unwrap_or_else(|_| SocketReport {
            received: (0..s).map(|_| SeqSet::default()).collect(),
            ..SocketReport::default()
        }));
    }
    let end_us = now_us();

    let mut report = summarize(&sh, &plans, &reports, start_us);
    if let Value::Object(o) = &mut report {
        o.insert("connect_secs".into(), json!(round3(connect_secs)));
        o.insert(
            "send_phase_secs".into(),
            json!(round3(secs(send_done_us.saturating_sub(start_us)))),
        );
        o.insert(
            "drain_secs_used".into(),
            json!(round3(secs(end_us.saturating_sub(send_done_us)))),
        );
        o.insert("elapsed_secs".into(), json!(round3(secs(end_us - t_begin))));
    }
    Ok((report, started))
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct PerUrl {
    sockets: u64,
    connected: u64,
    sent: u64,
    acked: u64,
    deliveries: u64,
    errors: u64,
    disconnected: u64,
}

fn summarize(sh: &Shared, plans: &[Plan], reports: &[SocketReport], start_us: u64) -> Value {
    let cfg = &sh.cfg;
    let s = cfg.sockets_per_user;
    let sum = |f: fn(&SocketReport) -> u64| reports.iter().map(f).sum::<u64>();

    // A message is delivered when every socket of the peer user received it.
    let (mut delivered, mut lost, mut lost_partial) = (0u64, 0u64, 0u64);
    for (plan, rep) in plans.iter().zip(reports) {
        let peer = plan.user ^ 1;
        let peers = &reports[peer * s..(peer + 1) * s];
        let j = plan.socket % s;
        for seq in 0..rep.sent {
            let got = peers.iter().filter(|p| p.received[j].contains(seq)).count();
            if got == s {
                delivered += 1;
            } else {
                lost += 1;
                lost_partial += (got > 0) as u64;
            }
        }
    }

    let mut per_url: Vec<PerUrl> = cfg.urls.iter().map(|_| PerUrl::default()).collect();
    for (plan, rep) in plans.iter().zip(reports) {
        let u = &mut per_url[plan.url];
        u.sockets += 1;
        u.connected += rep.connected as u64;
        u.sent += rep.sent;
        u.acked += rep.acked;
        u.deliveries += rep.deliveries;
        u.errors += rep.errors;
        u.disconnected += rep.disconnected_early as u64;
    }
    let across = (0..cfg.conversations)
        .filter(|k| {
            let urls: BTreeSet<usize> = plans[k * 2 * s..(k + 1) * 2 * s]
                .iter()
                .map(|p| p.url)
                .collect();
            urls.len() > 1
        })
        .count();

    let sent = sum(|r| r.sent);
    let acked = sum(|r| r.acked);
    let duplicate_acks = sum(|r| r.duplicate_acks);
    let duplicate_deliveries = sum(|r| r.duplicate_deliveries);
    let out_of_order_acks = sum(|r| r.out_of_order_acks);
    let out_of_order_deliveries = sum(|r| r.out_of_order_deliveries);
    let connected = reports.iter().filter(|r| r.connected).count();

    let measured_from = start_us + (cfg.warmup_secs * 1e6) as u64;
    let window = |last: u64| secs(last.saturating_sub(measured_from));
    let per_sec = |n: u64, w: f64| if w > 0.0 { round3(n as f64 / w) } else { 0.0 };
    let m_sent = sum(|r| r.measured_sent);
    let m_acked = sum(|r| r.measured_acked);
    let m_deliveries = sum(|r| r.measured_deliveries);
    let ack_window = window(
        reports
            .iter()
            .map(|r| r.last_measured_ack_us)
            .max()
            .unwrap_or(0),
    );
    let send_window = window(
        reports
            .iter()
            .map(|r| r.last_measured_send_us)
            .max()
            .unwrap_or(0),
    );
    let delivery_window = window(
        reports
            .iter()
            .map(|r| r.last_measured_delivery_us)
            .max()
            .unwrap_or(0),
    );
    let throughput = per_sec(m_acked, ack_window);

    let config = json!({
        "conversations": cfg.conversations,
        "sockets_per_user": s,
        "sockets": plans.len(),
        "senders": sh.senders,
        "messages_per_socket": cfg.messages,
        "window": match cfg.load { Load::Window(w) => json!(w), Load::Rate(_) => Value::Null },
        "rate": match cfg.load { Load::Rate(r) => json!(r), Load::Window(_) => Value::Null },
        "duration_secs": cfg.duration_secs,
        "warmup_secs": cfg.warmup_secs,
        "drain_secs": cfg.drain_secs,
        "content_bytes": cfg.content_bytes,
        "one_way": cfg.one_way,
        "threads": cfg.threads,
    });
    let per_url: Vec<Value> = cfg
        .urls
        .iter()
        .zip(&per_url)
        .map(|(url, u)| {
            json!({
                "url": url,
                "sockets": u.sockets,
                "connected": u.connected,
                "sent": u.sent,
                "acked": u.acked,
                "deliveries": u.deliveries,
                "errors": u.errors,
                "disconnected": u.disconnected,
            })
        })
        .collect();
    let measured = json!({
        "from_secs": cfg.warmup_secs,
        "sent": m_sent,
        "acked": m_acked,
        "deliveries": m_deliveries,
        "ack_window_secs": round3(ack_window),
        "send_rate": per_sec(m_sent, send_window),
        "acked_per_sec": throughput,
        "deliveries_per_sec": per_sec(m_deliveries, delivery_window),
    });
    let mut report = json!({
        "tool": "courier-loadgen",
        "urls": cfg.urls,
        "run_id": sh.run_id,
        "config": config,
        "connected": connected,
        "connect_failures": plans.len() - connected,
        "connect_error_samples": sh.connect_errors.samples(),
        "connect_error_kinds": sh.connect_errors.kinds(),
        "sent": sent,
        "acked": acked,
        "unacked": sent.saturating_sub(acked),
        "delivered": delivered,
        "deliveries": sum(|r| r.deliveries),
        "lost": lost,
        "lost_partial": lost_partial,
        "duplicates": duplicate_acks + duplicate_deliveries,
        "duplicate_acks": duplicate_acks,
        "duplicate_deliveries": duplicate_deliveries,
        "out_of_order": out_of_order_acks + out_of_order_deliveries,
        "out_of_order_acks": out_of_order_acks,
        "out_of_order_deliveries": out_of_order_deliveries,
    });
    let lat = lock(&sh.latencies);
    let rest = json!({
        "errors": sum(|r| r.errors),
        "error_samples": sh.server_errors.samples(),
        "error_kinds": sh.server_errors.kinds(),
        "disconnected_early": reports.iter().filter(|r| r.disconnected_early).count(),
        "disconnect_kinds": sh.disconnects.kinds(),
        "stalled_senders": reports.iter().filter(|r| r.stalled).count(),
        "own_copies": sum(|r| r.own_copies),
        "other_events": sum(|r| r.other_events),
        "foreign_or_unparsable": sum(|r| r.foreign),
        "throughput": throughput,
        "measured": measured,
        "ack_latency_ms": histogram_json(&lat.ack),
        "delivery_latency_ms": histogram_json(&lat.delivery),
        "connect_latency_ms": histogram_json(&lat.connect),
        "per_url": per_url,
        "conversations_across_urls": across,
    });
    if let (Value::Object(a), Value::Object(b)) = (&mut report, rest) {
        a.extend(b);
    }
    report
}

// ---------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------

fn main() -> ExitCode {
    let cfg = match parse_args(std::env::args().skip(1)) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("loadgen: {e} (see --help)");
            return ExitCode::from(2);
        }
    };
    origin();
    let runtime = if cfg.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cfg));
    runtime.shutdown_timeout(Duration::from_millis(100));
    match outcome {
        Ok((report, started)) => {
            println!("{report}");
            if started {
                ExitCode::SUCCESS
            } else {
                eprintln!("loadgen: no socket connected");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Option<Config>, String> {
        parse_args(s.split_whitespace().map(String::from))
    }

    #[test]
    fn classifies_packets() {
        assert_eq!(classify("0{\"sid\":\"x\"}"), Packet::Open);
        assert_eq!(classify("2"), Packet::Ping);
        assert_eq!(classify("3"), Packet::Other);
        assert_eq!(classify("40{\"sid\":\"a\"}"), Packet::Connected);
        assert_eq!(
            classify("44{\"message\":\"no\"}"),
            Packet::ConnectError("{\"message\":\"no\"}")
        );
        assert_eq!(classify("42[\"a\",1]"), Packet::Event("[\"a\",1]"));
        assert_eq!(classify("42/x,7[\"a\"]"), Packet::Event("[\"a\"]"));
        assert_eq!(classify("41"), Packet::Disconnect);
        assert_eq!(classify("4é"), Packet::Other);
        assert_eq!(classify(""), Packet::Other);
    }

    #[test]
    fn parses_events() {
        let ack = r#"["message_sent",{"tempId":"lg:1:2:3:4","savedMessage":{"content":"x"}}]"#;
        assert!(
            matches!(serde_json::from_str::<Event>(ack), Ok(Event::Ack(Some(Text(t)))) if t == "lg:1:2:3:4")
        );
        let recv = r#"["receive_message",{"id":"m","content":"lg:1:2:3:4:xx\"","isRead":false}]"#;
        assert!(
            matches!(serde_json::from_str::<Event>(recv), Ok(Event::Receive(Some(Text(t)))) if t == "lg:1:2:3:4:xx\"")
        );
        let err = r#"["error",{"message":"Connection is not active."}]"#;
        assert!(
            matches!(serde_json::from_str::<Event>(err), Ok(Event::Error(v)) if error_text(&v) == "Connection is not active.")
        );
        assert!(matches!(
            serde_json::from_str::<Event>(r#"["user_online",{"a":[1]},2]"#),
            Ok(Event::Other)
        ));
        assert!(serde_json::from_str::<Event>(r#"["message_sent","x"]"#).is_err());
        assert!(serde_json::from_str::<Event>("[]").is_err());
    }

    #[test]
    fn markers_round_trip() {
        let m = Marker {
            run: 7,
            socket: 12,
            seq: 345,
            t_us: 6789,
        };
        let frame = send_frame(&m, 6, 64, &"x".repeat(64));
        let array = match classify(&frame) {
            Packet::Event(a) => a,
            other => panic!("{other:?}"),
        };
        let v: Value = serde_json::from_str(array).unwrap();
        assert_eq!(v[0], "send_message");
        assert_eq!(v[1]["connectionId"], "c6");
        assert_eq!(v[1]["content"].as_str().unwrap().len(), 64);
        assert_eq!(
            parse_marker(v[1]["content"].as_str().unwrap()),
            Some(Marker {
                run: 7,
                socket: 12,
                seq: 345,
                t_us: 6789
            })
        );
        assert_eq!(parse_marker(v[1]["tempId"].as_str().unwrap()), Some(m));
        assert_eq!(parse_marker("sl|1|2|3|4"), None);
        assert_eq!(parse_marker("lg:1:2:x:4"), None);
    }

    #[test]
    fn seq_sets() {
        let mut s = SeqSet::default();
        assert!(s.insert(130));
        assert!(!s.insert(130));
        assert!(s.contains(130) && !s.contains(129) && !s.contains(100_000));
    }

    #[test]
    fn options() {
        let c = args("--url http://a:1 --url=ws://b:2/x --window 4 --duration-secs 20")
            .unwrap()
            .unwrap();
        assert_eq!(c.urls.len(), 2);
        assert_eq!(c.load, Load::Window(4));
        assert_eq!(c.messages, MAX_SEQ);
        assert_eq!(args("").unwrap().unwrap().messages, 10);
        assert!(args("--help").unwrap().is_none());
        assert!(args("--window 2 --rate 5").is_err());
        assert!(args("--window").is_err());
        assert!(args("--bogus 1").is_err());
        assert!(args("--url https://h:1").is_err());
        assert_eq!(
            websocket_url("http://h:4/ns", "socket.io").unwrap(),
            "ws://h:4/socket.io/?EIO=4&transport=websocket"
        );
        assert!(websocket_url("https://h", "/socket.io/").is_err());
    }

    #[test]
    fn sockets_spread_over_urls() {
        let mut c = args("--conversations 3 --url http://a:1 --url http://b:2 --one-way")
            .unwrap()
            .unwrap();
        let p = plans(&c);
        assert_eq!(
            p.iter().map(|p| p.url).collect::<Vec<_>>(),
            [0, 1, 0, 1, 0, 1]
        );
        assert_eq!(
            p.iter()
                .filter(|p| p.sender)
                .map(|p| p.rank)
                .collect::<Vec<_>>(),
            [0, 1, 2]
        );
        c.sockets_per_user = 2;
        let p = plans(&c);
        assert_eq!((p[5].user, p[5].conv, p[5].sender), (2, 1, true));
    }
}
