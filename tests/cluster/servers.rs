//! Private Redis servers for the cluster tests, on free loopback ports, killed when dropped:
//! a `redis-server` (plain, or TLS with a password), a master with its replica and three
//! sentinels, a Redis Cluster of three masters.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::free_port;
use crate::common::wait::until;

/// A private `redis-server`; killed when dropped.
pub struct Redis {
    child: Child,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Redis {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Redis {
        Self::start_with(port, &[])
    }

    /// A `redis-server` on `port` with `extra` arguments.
    pub fn start_with(port: u16, extra: &[&str]) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        Self::listening(child, port)
    }

    /// A `redis-server` speaking TLS only, with a password (a self-signed certificate made
    /// with `openssl` in `dir`).
    pub fn start_tls(dir: &std::path::Path, password: &str) -> Redis {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(made.success(), "a certificate");
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .arg("--tls-ca-cert-file")
            .arg(&cert)
            .args(["--tls-auth-clients", "no", "--requirepass", password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        Self::listening(child, port)
    }

    /// The server `child` once it accepts connections on `port`.
    fn listening(child: std::process::Child, port: u16) -> Redis {
        let listens = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        until("redis-server listens", Duration::from_secs(10), listens);
        Redis { child, port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `redis-cli` on this server.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A master, its replica and three sentinels watching it (quorum 2, down after 1 s), all
/// private, on free loopback ports; killed when dropped.
pub struct Sentinels {
    pub master: Redis,
    pub replica: Redis,
    pub sentinels: Vec<(Child, u16)>,
    dir: std::path::PathBuf,
}

/// The master's name the sentinels monitor.
pub const MASTER: &str = "mymaster";

/// `redis-sentinel` (Debian's redis-sentinel package), when installed; else one line saying
/// the test is skipped (a panic where the services are required).
pub fn sentinel_or_skip(test: &str) -> bool {
    let found = Command::new("redis-sentinel")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("COURIER_TEST_REQUIRE_SERVICES").is_none(),
            "redis-sentinel is not installed (apt-get install redis-sentinel)"
        );
        eprintln!(
            "{test}: skipped: redis-sentinel is not installed (apt-get install redis-sentinel)"
        );
    }
    found
}

impl Sentinels {
    pub fn start() -> Sentinels {
        let master = Redis::start();
        let dir = std::env::temp_dir().join(format!(
            "courier-sentinel-{}-{}",
            std::process::id(),
            master.port
        ));
        std::fs::create_dir_all(&dir).expect("a directory");
        // The replica writes what it syncs to its directory.
        let dir_arg = dir.display().to_string();
        let replica = Redis::start_with(
            free_port(),
            &[
                "--replicaof",
                "127.0.0.1",
                &master.port.to_string(),
                "--dir",
                &dir_arg,
            ],
        );
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let conf = dir.join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {} 2\n\
                     sentinel down-after-milliseconds {MASTER} 1000\n\
                     sentinel failover-timeout {MASTER} 4000\n\
                     sentinel parallel-syncs {MASTER} 1\n",
                    dir.display(),
                    master.port
                ),
            )
            .expect("sentinel.conf");
            let child = Command::new("redis-sentinel")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-sentinel runs");
            sentinels.push((child, port));
        }
        let ha = Sentinels {
            master,
            replica,
            sentinels,
            dir,
        };
        // Ready for a failover: the replica in sync, every sentinel knowing it and the two
        // other sentinels.
        until(
            "the sentinels know each other",
            Duration::from_secs(30),
            || {
                let synced = ha
                    .replica
                    .cli(&["INFO", "replication"])
                    .contains("master_link_status:up");
                synced
                    && ha.sentinels.iter().all(|(_, port)| {
                        let cli = |args: &[&str]| {
                            Command::new("redis-cli")
                                .args(["-p", &port.to_string()])
                                .args(args)
                                .output()
                                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                                .unwrap_or_default()
                        };
                        let replicas = cli(&["SENTINEL", "replicas", MASTER]);
                        let others = cli(&["SENTINEL", "sentinels", MASTER]);
                        replicas.contains(&ha.replica.port.to_string())
                            && others.matches("runid").count() == 2
                    })
            },
        );
        ha
    }

    /// Courier's `redis.url` for them.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(_, port)| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// The port of the master the first sentinel names.
    pub fn master_port(port: u16) -> Option<u16> {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(["SENTINEL", "get-master-addr-by-name", MASTER])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for (child, _) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters (no replicas), private, on free loopback ports (and their
/// bus ports, 10000 above); killed when dropped.
pub struct RedisCluster {
    nodes: Vec<Redis>,
    dir: std::path::PathBuf,
}

/// A free port whose cluster bus port (10000 above it) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let dir = std::env::temp_dir().join(format!(
            "courier-redis-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("a directory");
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let port = free_cluster_port();
            let conf = dir.join(format!("nodes-{port}.conf"));
            let dir_arg = dir.display().to_string();
            let conf_arg = conf.display().to_string();
            nodes.push(Redis::start_with(
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf_arg,
                    "--cluster-node-timeout",
                    "2000",
                    "--dir",
                    &dir_arg,
                ],
            ));
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(created.success(), "redis-cli --cluster create");
        let cluster = RedisCluster { nodes, dir };
        until("the cluster is ok", Duration::from_secs(30), || {
            cluster
                .nodes
                .iter()
                .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        });
        cluster
    }

    /// Courier's `redis.url` for it.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// `redis-cli -c` (following redirections) on the cluster.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-c", "-p", &self.nodes[0].port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// How many subscribers `channel` (a sharded channel) has, on every node together.
    pub fn shard_subscribers(&self, channel: &str) -> usize {
        self.nodes
            .iter()
            .map(|n| {
                n.cli(&["PUBSUB", "SHARDNUMSUB", channel])
                    .lines()
                    .nth(1)
                    .and_then(|l| l.trim().parse::<usize>().ok())
                    .unwrap_or(0)
            })
            .sum()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
