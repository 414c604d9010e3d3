//! Identifiers: session ids from the operating system's CSPRNG, and Prisma-style cuids
//! for database rows.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Fills `buf` from the operating system's cryptographically secure generator.
pub(crate) fn secure_bytes(buf: &mut [u8]) {
    // Failure means the OS has no entropy source at all; nothing sensible can run then.
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// A 20-character URL-safe id with 120 bits of entropy (Engine.IO and Socket.IO sids).
///
/// A polling sid is a bearer credential for its session, so it must not be guessable.
pub(crate) fn session_id() -> String {
    let mut buf = [0u8; 15];
    secure_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Length of an id made by [`cuid`].
pub(crate) const CUID_LEN: usize = 25;

/// Number of distinct values of the counter block (4 base36 digits).
const COUNTER_SPAN: u32 = 36 * 36 * 36 * 36;

/// The process-wide counter of [`cuid`], wrapping at 36^4.
static CUID_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A collision-resistant id in the shape of Prisma's `cuid()` (cuid v1).
///
/// 25 lowercase base36 characters: `c`, the time in milliseconds (8), a process-wide
/// counter (4), a fingerprint of the process id and hostname (4) and 8 characters from
/// the OS CSPRNG. Ids are distinct across processes and hosts, but their order does not
/// follow creation time reliably and they are not secrets.
pub fn cuid() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    // 36^8 ms last until 2059; past that the block keeps its low 8 digits (where cuid v1
    // would grow a digit), so the length stays fixed.
    let millis = (millis % 36u128.pow(8)) as u64;

    let count = CUID_COUNTER
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
            Some((c + 1) % COUNTER_SPAN)
        })
        .unwrap_or(0);

    let mut random = [0u8; 8];
    secure_bytes(&mut random);
    // 2^64 is about 6.5 million times 36^8, so the modulo bias is negligible.
    let random = u64::from_le_bytes(random) % 36u64.pow(8);

    let mut id = String::with_capacity(CUID_LEN);
    id.push('c');
    push_base36(&mut id, millis, 8);
    push_base36(&mut id, u64::from(count), 4);
    id.push_str(fingerprint());
    push_base36(&mut id, random, 8);
    id
}

/// Appends the last `width` base36 digits of `n`, zero-padded, to `out`.
fn push_base36(out: &mut String, mut n: u64, width: usize) {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut buf = [b'0'; 16];
    let width = width.min(buf.len());
    for slot in buf[..width].iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    out.extend(buf[..width].iter().map(|&b| char::from(b)));
}

/// The 4-character host fingerprint of this process, computed once.
///
/// As cuid v1 does it: two base36 digits of the process id, then two of the hostname's
/// length plus 36 plus the sum of its UTF-16 code units.
fn fingerprint() -> &'static str {
    static FINGERPRINT: OnceLock<String> = OnceLock::new();
    FINGERPRINT.get_or_init(|| fingerprint_of(std::process::id(), &hostname()))
}

fn fingerprint_of(pid: u32, hostname: &str) -> String {
    let len = hostname.encode_utf16().count() as u64;
    let sum = hostname
        .encode_utf16()
        .fold(len + 36, |acc, u| acc.wrapping_add(u64::from(u)));
    let mut out = String::with_capacity(4);
    push_base36(&mut out, u64::from(pid), 2);
    push_base36(&mut out, sum, 2);
    out
}

/// The host name, best effort: the kernel's, then `HOSTNAME`/`COMPUTERNAME`, else empty.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Which of `n` shards `key` belongs to (the same on every call and every thread): how
/// users, conversations, pids and rate-limit buckets are spread over shards.
pub(crate) fn shard_of<K: std::hash::Hash + ?Sized>(key: &K, n: usize) -> usize {
    use std::hash::Hasher;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % n.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn session_ids_are_url_safe_and_distinct() {
        let ids: HashSet<String> = (0..1000).map(|_| session_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids {
            assert_eq!(id.len(), 20);
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }

    #[test]
    fn cuids_have_the_prisma_shape() {
        for _ in 0..1000 {
            let id = cuid();
            assert_eq!(id.len(), CUID_LEN, "{id}");
            assert!(id.starts_with('c'), "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()),
                "{id}"
            );
        }
    }

    #[test]
    fn cuids_are_distinct() {
        let n = 100_000;
        let ids: HashSet<String> = (0..n).map(|_| cuid()).collect();
        assert_eq!(ids.len(), n);
    }

    #[test]
    fn cuid_blocks_carry_time_and_fingerprint() {
        let id = cuid();
        let millis = u64::from_str_radix(&id[1..9], 36).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(now.abs_diff(millis) < 60_000, "{id}");
        assert_eq!(&id[13..17], fingerprint());
    }

    #[test]
    fn base36_pads_and_keeps_low_digits() {
        let mut s = String::new();
        push_base36(&mut s, 35, 4);
        assert_eq!(s, "000z");
        s.clear();
        push_base36(&mut s, 36u64.pow(4) + 37, 4);
        assert_eq!(s, "0011");
        s.clear();
        push_base36(&mut s, 0, 2);
        assert_eq!(s, "00");
    }

    #[test]
    fn fingerprint_matches_cuid_v1() {
        // cuid v1: pad(pid.toString(36), 2) + pad((len + 36 + sum of char codes).toString(36), 2)
        // pid 1234 = "ya"; "host": 4 + 36 + 104 + 111 + 115 + 116 = 486 = "di".
        assert_eq!(fingerprint_of(1234, "host"), "yadi");
        // Empty hostname: 36 = "10"; pid 1 = "01".
        assert_eq!(fingerprint_of(1, ""), "0110");
        assert_eq!(fingerprint().len(), 4);
    }
}
