//! `redis.url`, read: one server, a Sentinel set or a Cluster; redaction for logs.

/// `redis.url`, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One server: the URL as the redis crate reads it.
    Single(String),
    /// The master a set of sentinels name.
    Sentinel(SentinelUrl),
    /// A Redis Cluster.
    Cluster(ClusterUrl),
}

/// A `redis+sentinel://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    pub sentinels: Vec<(String, u16)>,
    /// The master's name, as the sentinels monitor it.
    pub master: String,
    pub db: i64,
    /// The master's (and its replicas') AUTH.
    pub username: Option<String>,
    pub password: Option<String>,
    /// The sentinels' own AUTH.
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<String>,
    /// TLS, and whether the certificates go unverified (`#insecure`).
    pub tls: Option<bool>,
}

impl std::fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// A `redis+cluster://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterUrl {
    pub nodes: Vec<(String, u16)>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: Option<bool>,
}

impl std::fmt::Debug for ClusterUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterUrl")
            .field("nodes", &self.nodes)
            .field("username", &self.username)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl ClusterUrl {
    /// Each node as a `redis://` (`rediss://`) URL the redis crate reads.
    pub(crate) fn node_urls(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let auth = match (&self.username, &self.password) {
            (None, None) => String::new(),
            (user, password) => format!(
                "{}:{}@",
                encode(user.as_deref().unwrap_or("")),
                encode(password.as_deref().unwrap_or(""))
            ),
        };
        let fragment = if self.tls == Some(true) {
            "/#insecure"
        } else {
            ""
        };
        self.nodes
            .iter()
            .map(|(host, port)| format!("{scheme}://{auth}{}:{port}{fragment}", bracket(host)))
            .collect()
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// `host:port` (`[v6]:port`), the port `default` when absent.
fn host_port(s: &str, default: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: unclosed ["))?;
        (host, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{s:?}: no host"));
    }
    let port = match port {
        None => default,
        Some(p) => p.parse().map_err(|_| format!("{s:?}: bad port"))?,
    };
    Ok((host.to_string(), port))
}

impl Target {
    /// Reads `redis.url`; the error says what is wrong (never the password).
    pub fn parse(url: &str) -> Result<Target, String> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(
                "must be a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL".into(),
            );
        };
        let (tls, kind) = match scheme {
            "redis" | "rediss" => {
                redis::Client::open(url).map_err(|e| e.to_string())?;
                return Ok(Target::Single(url.to_string()));
            }
            "redis+sentinel" => (false, "sentinel"),
            "rediss+sentinel" => (true, "sentinel"),
            "redis+cluster" => (false, "cluster"),
            "rediss+cluster" => (true, "cluster"),
            other => {
                return Err(format!(
                    "unknown scheme {other}://: redis://, rediss://, redis+sentinel://, \
                     rediss+sentinel://, redis+cluster:// or rediss+cluster://"
                ))
            }
        };
        let (rest, fragment) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (rest, None),
        };
        let insecure = match fragment {
            None => false,
            Some("insecure") if tls => true,
            Some(other) => return Err(format!("unknown fragment #{other}")),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, path),
            None => (rest, ""),
        };
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (info, None),
                };
                let user = Some(decode(user)?).filter(|u| !u.is_empty());
                let password = password.map(decode).transpose()?;
                (user, password)
            }
        };
        let default_port = if kind == "sentinel" { 26379 } else { 6379 };
        let nodes = hosts
            .split(',')
            .map(|h| host_port(h.trim(), default_port))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = tls.then_some(insecure);
        let mut sentinel_username = None;
        let mut sentinel_password = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match (kind, key) {
                ("sentinel", "sentinel_username") => sentinel_username = Some(decode(value)?),
                ("sentinel", "sentinel_password") => sentinel_password = Some(decode(value)?),
                _ => return Err(format!("unknown parameter {key:?}")),
            }
        }
        if kind == "cluster" {
            if !path.trim_matches('/').is_empty() {
                return Err("a cluster URL names no database (a Redis Cluster has only 0)".into());
            }
            return Ok(Target::Cluster(ClusterUrl {
                nodes,
                username,
                password,
                tls,
            }));
        }
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        let master = parts
            .next()
            .map(decode)
            .transpose()?
            .ok_or("names no master: redis+sentinel://host:26379,…/MASTER_NAME")?;
        let db = match parts.next() {
            None => 0,
            Some(db) => db
                .parse()
                .map_err(|_| format!("bad database number {db:?}"))?,
        };
        if parts.next().is_some() {
            return Err("too many path segments: …/MASTER_NAME[/db]".into());
        }
        Ok(Target::Sentinel(SentinelUrl {
            sentinels: nodes,
            master,
            db,
            username,
            password,
            sentinel_username,
            sentinel_password,
            tls,
        }))
    }
}

/// Whether this is a Redis Cluster (sharded pub/sub).
#[cfg(test)]
impl Target {
    fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster(_))
    }
}

/// `url` as it may be logged: no password (neither the servers' nor the sentinels').
pub fn redacted(url: &str) -> String {
    let url = crate::setting::redact_url(url);
    let Some(at) = url.find("sentinel_password=") else {
        return url;
    };
    let value = at + "sentinel_password=".len();
    let end = url[value..]
        .find(['&', '#'])
        .map_or(url.len(), |i| value + i);
    format!("{}***{}", &url[..value], &url[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_are_read() {
        let t = Target::parse("redis+sentinel://h1:26379,h2,[::1]:26380/mymaster").unwrap();
        let Target::Sentinel(s) = t else {
            panic!("a sentinel URL")
        };
        assert_eq!(
            s.sentinels,
            vec![
                ("h1".to_string(), 26379),
                ("h2".to_string(), 26379),
                ("::1".to_string(), 26380)
            ]
        );
        assert_eq!((s.master.as_str(), s.db, s.tls), ("mymaster", 0, None));
        let t = Target::parse(
            "rediss+sentinel://app:p%40ss@h1:1,h2:2/mm/3?sentinel_password=s3&sentinel_username=sen#insecure",
        )
        .unwrap();
        let Target::Sentinel(s) = t else {
            panic!("a sentinel URL")
        };
        assert_eq!(s.username.as_deref(), Some("app"));
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        assert_eq!(s.sentinel_username.as_deref(), Some("sen"));
        assert_eq!(s.sentinel_password.as_deref(), Some("s3"));
        assert_eq!((s.master.as_str(), s.db, s.tls), ("mm", 3, Some(true)));
        // No password in what is logged.
        assert!(!format!("{s:?}").contains("p@ss"));
        for bad in [
            "redis+sentinel://h1:26379",
            "redis+sentinel://h1:x/m",
            "redis+sentinel://h1/m/x",
            "redis+sentinel://h1/m?nope=1",
            "redis+sentinel://h1/m#insecure",
            "sentinel://h1/m",
            "redis+sentinel:///m",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Target::parse("redis://:pw@h:6380/0"),
            Ok(Target::Single(_))
        ));
        assert_eq!(
            redacted("redis+sentinel://u:pw@h1,h2/m?sentinel_password=s3&sentinel_username=x"),
            "redis+sentinel://u:***@h1,h2/m?sentinel_password=***&sentinel_username=x"
        );
    }

    #[test]
    fn cluster_urls_are_read() {
        let t = Target::parse("redis+cluster://:pw@a:7000,b:7001").unwrap();
        assert!(t.is_cluster());
        let Target::Cluster(c) = t else {
            panic!("a cluster URL")
        };
        assert_eq!(
            c.node_urls(),
            vec![
                "redis://:pw@a:7000".to_string(),
                "redis://:pw@b:7001".into()
            ]
        );
        let Ok(Target::Cluster(c)) = Target::parse("rediss+cluster://a#insecure") else {
            panic!("a cluster URL")
        };
        assert_eq!(c.node_urls(), vec!["rediss://a:6379/#insecure".to_string()]);
        assert!(Target::parse("redis+cluster://a:7000/1").is_err());
    }
}
