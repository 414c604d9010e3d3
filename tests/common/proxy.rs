//! A TCP proxy between Courier and PostgreSQL, for database outages in tests without
//! touching the machine's shared server: it can drop every connection it carries and refuse
//! new ones for a while.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy; stopped when dropped.
pub struct DbProxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    refuse: Arc<AtomicBool>,
    /// Bumped to drop every connection carried.
    cut: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    /// Stops accepting when dropped.
    listening: Listening,
}

/// A loopback TCP listener served on a thread and runtime of its own: every connection
/// accepted is handed to a task of its own. Stops accepting when dropped.
pub struct Listening {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    stop: Option<std::sync::mpsc::Sender<()>>,
}

impl Listening {
    /// Listens on a free port; `each` makes the task for every connection accepted.
    pub fn start<F, Fut>(mut each: F) -> Listening
    where
        F: FnMut(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("the proxy binds a free port");
        std_listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let port = std_listener.local_addr().expect("an address").port();
        let (stop, stop_rx) = std::sync::mpsc::channel::<()>();
        super::on_own_runtime(async move {
            let Ok(listener) = TcpListener::from_std(std_listener) else {
                return;
            };
            while stop_rx.try_recv().is_err() {
                let accept =
                    tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
                if let Ok(Ok((client, _))) = accept {
                    tokio::spawn(each(client));
                }
            }
        });
        Listening {
            port,
            stop: Some(stop),
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl DbProxy {
    /// A proxy to `upstream` on a thread and runtime of its own.
    pub fn start(upstream: SocketAddr) -> DbProxy {
        let refuse = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let (cut, cut_rx) = watch::channel(0u64);
        let (refusing, counting) = (refuse.clone(), accepted.clone());
        let listening = Listening::start(move |mut client| {
            counting.fetch_add(1, Ordering::SeqCst);
            let refused = refusing.load(Ordering::SeqCst);
            let mut cut = cut_rx.clone();
            cut.mark_unchanged();
            async move {
                if refused {
                    let _ = client.shutdown().await;
                    return;
                }
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = cut.changed() => {}
                }
            }
        });
        DbProxy {
            port: listening.port,
            refuse,
            cut,
            accepted,
            listening,
        }
    }

    /// Drops every connection carried now (as a database restart does).
    pub fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// Refuses new connections (closes them at once) while `on`.
    pub fn refuse(&self, on: bool) {
        self.refuse.store(on, Ordering::SeqCst);
    }

    /// How many connections it accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// `url` (a PostgreSQL URL on 127.0.0.1:5432 or localhost:5432) through this proxy.
    pub fn url(&self, url: &str) -> String {
        url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", self.port))
            .replace("localhost:5432", &format!("127.0.0.1:{}", self.port))
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.cut();
    }
}
