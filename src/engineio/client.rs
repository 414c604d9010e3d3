//! Who is at the other end of a session: the client's address (through trusted proxies)
//! and its `User-Agent`, taken from the request that opened the session.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use actix_web::http::header;
use actix_web::HttpRequest;

/// What the handshake request tells about the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address: the peer's, or the one a trusted proxy reports in
    /// `X-Forwarded-For`.
    pub address: Option<IpAddr>,
    /// The `User-Agent` header, if any (at most [`MAX_USER_AGENT`] bytes kept).
    pub user_agent: Option<String>,
    /// The session was opened from one of the endpoint's restricted origins
    /// ([`crate::engineio::endpoint::EndpointOptions::restricted_origins`]): the layer above decides what such a
    /// session may do.
    pub restricted: bool,
}

/// Longest `User-Agent` kept, in bytes.
pub(crate) const MAX_USER_AGENT: usize = 512;

/// An address or a network (`10.0.0.0/8`, `::1`) of proxies whose `X-Forwarded-For` is
/// believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, normalize(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or network"))?;
        let addr = normalize(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The client of `req`: the peer address, or, when the peer is a trusted proxy, the last
/// address in `X-Forwarded-For` that is not itself a trusted proxy (the right-most entries
/// are the ones the trusted proxies added).
pub(crate) fn client_info(req: &HttpRequest, trusted_proxies: &[IpNet]) -> ClientInfo {
    let peer = req.peer_addr().map(|a| normalize(a.ip()));
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| truncate(ua, MAX_USER_AGENT).to_string());
    ClientInfo {
        address: peer.map(|peer| resolve(peer, &forwarded, trusted_proxies)),
        user_agent,
        restricted: false,
    }
}

/// The client address of a request from `peer` carrying `X-Forwarded-For: forwarded`.
pub fn resolve(peer: IpAddr, forwarded: &str, trusted_proxies: &[IpNet]) -> IpAddr {
    let trusted = |ip: IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    let mut client = peer;
    if !trusted(peer) {
        return client;
    }
    for entry in forwarded.rsplit(',') {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = normalize(ip);
                if !trusted(client) {
                    break;
                }
            }
            // Garbage in the header: stop at the last address believed.
            Err(_) => break,
        }
    }
    client
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn networks_parse_and_match() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped");
        let one: IpNet = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!("0.0.0.0/0"
            .parse::<IpNet>()
            .unwrap()
            .contains(ip("8.8.8.8")));
        for bad in ["", "10.0.0.0/33", "x", "::/129", "1.2.3.4/"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
        assert_eq!(net.to_string(), "10.0.0.0/8");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = nets(&["10.0.0.0/8"]);
        // An untrusted peer: its own address, whatever it claims.
        assert_eq!(
            resolve(ip("203.0.113.9"), "1.2.3.4", &trusted),
            ip("203.0.113.9")
        );
        // A trusted proxy: the right-most address it was not itself.
        assert_eq!(resolve(ip("10.0.0.2"), "1.2.3.4", &trusted), ip("1.2.3.4"));
        assert_eq!(
            resolve(ip("10.0.0.2"), "6.6.6.6, 1.2.3.4, 10.0.0.7", &trusted),
            ip("1.2.3.4"),
            "a client cannot push a forged address past the proxies"
        );
        assert_eq!(resolve(ip("10.0.0.2"), "", &trusted), ip("10.0.0.2"));
        assert_eq!(resolve(ip("10.0.0.2"), "junk", &trusted), ip("10.0.0.2"));
        assert_eq!(resolve(ip("10.0.0.2"), "1.2.3.4", &[]), ip("10.0.0.2"));
    }

    #[test]
    fn long_user_agents_are_cut_on_a_character_boundary() {
        let ua = "é".repeat(400);
        let cut = truncate(&ua, MAX_USER_AGENT);
        assert!(cut.len() <= MAX_USER_AGENT);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
