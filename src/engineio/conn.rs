//! The TCP connection under a request ([`Conn`]), as `HttpServer::on_connect` saw it, and
//! cutting it off ([`Conn::cut_off`]): how a transport whose client stopped reading has its
//! connection closed within `engineio.close_timeout`, whatever its buffers hold.
//!
//! actix-web's HTTP/1 dispatcher keeps a connection for as long as a response is being
//! written to it, with no time limit: a WebSocket whose client stopped reading (its socket
//! full) would keep it for ever, whatever the session above decided, and so would a
//! long-polling answer its client does not take. The dispatcher owns the socket. Courier
//! keeps only its descriptor's number and the connection's two addresses (no second
//! descriptor per connection); to cut the connection off it first checks that the number
//! still names that connection (a number is reused once its connection is closed), then
//! discards what the socket holds and shuts it down, in one synchronous step on the worker
//! thread that owns the connection (so that its dispatcher cannot close it in between). The
//! dispatcher's next write fails and it drops the connection, which resets it.

use std::any::Any;
use std::net::SocketAddr;
use std::thread::ThreadId;
use std::time::Duration;

use actix_web::dev::Extensions;
use actix_web::HttpRequest;
use log::warn;
use socket2::SockRef;

use super::metrics::EngineMetrics;
use super::transport::TransportKind;

/// A TCP connection of the server: its descriptor's number, its addresses, and the worker
/// thread that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
    local: SocketAddr,
    peer: SocketAddr,
    thread: ThreadId,
}

impl Conn {
    /// For `HttpServer::on_connect`: records a new TCP connection in its extensions (where
    /// [`Conn::of`] finds it).
    pub fn on_connect(conn: &dyn Any, extensions: &mut Extensions) {
        #[cfg(unix)]
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            use std::os::fd::AsRawFd;
            if let (Ok(local), Ok(peer)) = (tcp.local_addr(), tcp.peer_addr()) {
                extensions.insert(Conn {
                    fd: tcp.as_raw_fd(),
                    local,
                    peer,
                    thread: std::thread::current().id(),
                });
            }
        }
        #[cfg(not(unix))]
        let _ = (conn, extensions);
    }

    /// The TCP connection `req` came on, if [`Conn::on_connect`] recorded it.
    pub fn of(req: &HttpRequest) -> Option<Conn> {
        req.conn_data::<Conn>().copied()
    }

    /// Runs `f` on the socket if the descriptor still names this connection; never on
    /// another thread than the connection's worker (where its dispatcher could close the
    /// descriptor meanwhile).
    #[cfg(unix)]
    fn with_socket<R>(&self, f: impl FnOnce(&SockRef<'_>) -> R) -> Option<R> {
        if std::thread::current().id() != self.thread {
            return None;
        }
        // SAFETY: the descriptor is borrowed only for this synchronous call, on the thread
        // whose dispatcher owns the connection, so it is not closed meanwhile. If the
        // connection was closed before, the number is unused (the calls fail), or names
        // another socket or file, which the address check leaves alone.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        let socket = SockRef::from(&fd);
        let address = |a: std::io::Result<socket2::SockAddr>| a.ok().and_then(|a| a.as_socket());
        let same = address(socket.local_addr()) == Some(self.local)
            && address(socket.peer_addr()) == Some(self.peer);
        same.then(|| f(&socket))
    }

    #[cfg(not(unix))]
    fn with_socket<R>(&self, _f: impl FnOnce(&SockRef<'_>) -> R) -> Option<R> {
        None
    }

    /// Whether the connection is still open with bytes written that its client has not
    /// acknowledged (where that is not known: whether it is still open).
    pub fn undelivered(&self) -> bool {
        self.with_socket(unacknowledged).unwrap_or(false)
    }

    /// Cuts the connection off if it is still open: what its socket holds is discarded
    /// (`SO_LINGER` 0) and it is shut down both ways, so its dispatcher's next write fails
    /// and it drops the connection, with a reset. Whether it was still open. Does nothing
    /// but on the connection's worker thread.
    pub fn cut_off(&self) -> bool {
        self.with_socket(|socket| {
            let _ = socket.set_linger(Some(Duration::ZERO));
            socket.shutdown(std::net::Shutdown::Both).is_ok()
        })
        .unwrap_or(false)
    }

    /// After `wait`, cuts the connection off (see [`Conn::cut_off`]) if it is still open
    /// and, with `undelivered_only`, still has bytes its client did not take; counted in
    /// `metrics` for `transport`. Spawn it on the connection's worker.
    pub(crate) async fn cut_off_after(
        self,
        wait: Duration,
        transport: TransportKind,
        metrics: Option<std::sync::Arc<EngineMetrics>>,
        undelivered_only: bool,
    ) {
        tokio::time::sleep(wait).await;
        // One synchronous step: the check and the cut see the same connection.
        if (!undelivered_only || self.undelivered()) && self.cut_off() {
            warn!(
                "a {} connection from {} was still open {} ms after its transport ended (its \
                 client does not read): cut off",
                transport.as_str(),
                self.peer,
                wait.as_millis()
            );
            if let Some(m) = metrics {
                m.forced_closes_on(transport).inc();
            }
        }
    }
}

/// Whether `socket` has bytes in its send queue that its peer has not acknowledged
/// (`SIOCOUTQ`).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn unacknowledged(socket: &SockRef<'_>) -> bool {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    // SIOCOUTQ has TIOCOUTQ's value. SAFETY: the descriptor is a socket, `queued` an int.
    let done = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    done == 0 && queued > 0
}

/// Not known here: counted as undelivered.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn unacknowledged(_socket: &SockRef<'_>) -> bool {
    true
}
