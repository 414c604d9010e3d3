//! Several `courier` processes on one private Redis and one PostgreSQL database, as one
//! service (`redis.url`): chat across nodes ([`chat`]), presence and calls across nodes, a
//! node killed with `kill -9` or stopped gracefully ([`presence`]), Redis restarted and a
//! Sentinel failover ([`outages`]), TLS and a Redis Cluster ([`redis_setups`]).
//!
//! Each test starts its own `redis-server` (or sentinels, or cluster) on free loopback ports
//! ([`servers`]; never the machine's shared one) and kills it at the end; the nodes are
//! `courier` processes ([`nodes`]).

#[path = "../common/mod.rs"]
mod common;

mod chat;
mod nodes;
mod outages;
mod presence;
mod redis_setups;
mod servers;
