//! Identifiers: session ids from the operating system's CSPRNG.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Fills `buf` from the operating system's cryptographically secure generator.
pub fn secure_bytes(buf: &mut [u8]) {
    // Failure means the OS has no entropy source at all; nothing sensible can run then.
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// A 20-character URL-safe id with 120 bits of entropy (Engine.IO and Socket.IO sids).
///
/// A polling sid is a bearer credential for its session, so it must not be guessable.
pub fn session_id() -> String {
    let mut buf = [0u8; 15];
    secure_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
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
}
