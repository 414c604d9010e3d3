//! The `courier` binary as a process: a command with a clean environment, and a server
//! started on free loopback ports that reports them from its log (the cluster's nodes, the
//! shutdown tests).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::SECRET;

/// `courier` with a clean environment (`PATH` only), run from the temporary directory, away
/// from the repository's `config/`.
pub fn courier_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_courier"));
    cmd.current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

/// A running `courier` process; killed when dropped.
pub struct Courier {
    pub child: Child,
    /// The public port.
    pub port: u16,
    /// The operators' port (`/metrics`, `/readyz`).
    pub metrics_port: u16,
}

impl Drop for Courier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port in a log line `... http://127.0.0.1:PORT...` after `marker`.
fn port_after(line: &str, marker: &str) -> Option<u16> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let rest = &rest[rest.find("http://")? + "http://".len()..];
    let host_port = rest.split('/').next()?;
    host_port.rsplit(':').next()?.trim().parse().ok()
}

impl Courier {
    /// Starts `courier` on loopback (public and operators' ports free ones, the tests'
    /// [`SECRET`], `RUST_LOG=info`) with `env` on top; returns once its log said where it
    /// listens and, when `ready` names a line, that line too (panics after 30 s). Its log
    /// goes to the test's standard error when `CLUSTER_TEST_LOG` is set.
    pub fn start(env: &[(&str, &str)], ready: Option<&'static str>) -> Courier {
        Self::start_command(courier_command(), env, ready)
    }

    /// [`Courier::start`] with at most `open_files` file descriptors (soft and hard limit).
    pub fn start_with_open_files(env: &[(&str, &str)], open_files: u64) -> Courier {
        use std::os::unix::process::CommandExt;
        let mut cmd = courier_command();
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: open_files as libc::rlim_t,
                    rlim_max: open_files as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Self::start_command(cmd, env, None)
    }

    fn start_command(
        mut cmd: Command,
        env: &[(&str, &str)],
        ready: Option<&'static str>,
    ) -> Courier {
        let mut child = cmd
            .env("PORT", "0")
            .env("SOCKET_SECRET", SECRET)
            .env("COURIER__SERVER__HOST", "127.0.0.1")
            .env("COURIER__METRICS__BIND", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("courier starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the log to its end (a full pipe would stop the server).
        std::thread::spawn(move || {
            let (mut port, mut metrics, mut seen) = (None, None, ready.is_none());
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("CLUSTER_TEST_LOG").is_some() {
                    eprintln!("{line}");
                }
                if port.is_none() && line.contains("listening on http://") {
                    port = port_after(&line, "listening on");
                }
                if metrics.is_none() && line.contains("metrics and readiness on http://") {
                    metrics = port_after(&line, "readiness on");
                }
                seen |= ready.is_some_and(|ready| line.contains(ready));
                if !sent && seen {
                    if let (Some(p), Some(m)) = (port, metrics) {
                        let _ = tx.send((p, m));
                        sent = true;
                    }
                }
            }
        });
        let Ok((port, metrics_port)) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("courier did not listen (and log {ready:?}) within 30 s");
        };
        Courier {
            child,
            port,
            metrics_port,
        }
    }

    /// Sends SIGTERM (a graceful shutdown).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}
