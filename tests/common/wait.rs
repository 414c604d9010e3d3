//! Waiting for a condition rather than for a fixed time: a test that orders events by
//! sleeping fails on a loaded machine, one that polls for what it waits for only takes
//! longer there.

use std::time::{Duration, Instant};

/// The longest a condition is waited for by [`eventually`] and [`until`].
pub const EVENTUALLY: Duration = Duration::from_secs(10);

/// How often a condition is asked again.
const POLL: Duration = Duration::from_millis(50);

/// Waits until `condition` holds, asking it again every 50 ms; panics naming `what` after
/// [`EVENTUALLY`]. The closure may hold the test's state mutably across its awaits.
pub async fn eventually<F>(what: &str, condition: F)
where
    F: AsyncFnMut() -> bool,
{
    eventually_within(what, EVENTUALLY, condition).await
}

/// [`eventually`] with a longer (or shorter) deadline.
pub async fn eventually_within<F>(what: &str, wait: Duration, mut condition: F)
where
    F: AsyncFnMut() -> bool,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {wait:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The blocking form, for helpers that are not async (a server started as a process):
/// waits until `condition` holds, asking every 50 ms; panics naming `what` after `wait`.
pub fn until(what: &str, wait: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {wait:?}");
        std::thread::sleep(POLL);
    }
}
