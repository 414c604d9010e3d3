//! Why a session ends ([`SessionClose`]), and the close code its client is given.

use std::time::Duration;

use crate::engineio::transport::{CLOSE_NORMAL, CLOSE_POLICY, CLOSE_PROTOCOL, CLOSE_TOO_BIG};

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionClose {
    /// The client closed the transport or sent a close packet.
    TransportClose,
    /// The transport failed.
    TransportError(String),
    /// A message above `max_payload`.
    TooLarge,
    /// No pong within `ping_timeout`.
    PingTimeout,
    /// The client broke the protocol (an undecodable or unexpected packet).
    ProtocolError(String),
    /// The client stopped reading and its outgoing queue filled up.
    SlowClient,
    /// The handler (the upper layer) closed the session.
    ServerClose(&'static str),
}

impl SessionClose {
    /// Whether a polling client may still come for its last packets (the server closed).
    pub(super) fn client_may_poll_again(&self) -> bool {
        matches!(
            self,
            SessionClose::ServerClose(_) | SessionClose::ProtocolError(_) | SessionClose::TooLarge
        )
    }

    pub(super) fn close_code(&self) -> u16 {
        match self {
            SessionClose::TooLarge => CLOSE_TOO_BIG,
            SessionClose::ProtocolError(_) => CLOSE_PROTOCOL,
            SessionClose::SlowClient => CLOSE_POLICY,
            _ => CLOSE_NORMAL,
        }
    }
}

/// How long a closing WebSocket may take to send what is queued before it is dropped.
pub(super) const KILL_GRACE: Duration = Duration::from_secs(5);
