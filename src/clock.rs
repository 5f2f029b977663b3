//! Where the server's "now" comes from. Everything that reads the time while answering a
//! request or in a background loop asks the application's clock (`AppState::clock`), so a
//! test can move time instead of sleeping through it: a lock that expires, a code that goes
//! stale, a session that ends.
//!
//! Timers (tokio's sleeps and intervals) are not the clock: they wait in real time. A manual
//! clock changes what the server believes the time is, not when its loops wake up.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The source of "now", in milliseconds since the Unix epoch. Cheap to clone; clones of a
/// manual clock share its time.
#[derive(Debug, Clone, Default)]
pub struct Clock(Source);

#[derive(Debug, Clone, Default)]
enum Source {
    /// The system's clock.
    #[default]
    System,
    /// A time that stands still until it is moved (tests).
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// The system's clock: what a server runs on.
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// A clock standing at `now_ms` until `advance` or `set` moves it.
    pub fn manual(now_ms: i64) -> Self {
        Self(Source::Manual(Arc::new(AtomicI64::new(now_ms))))
    }

    /// A manual clock standing at the system's time of the moment.
    pub fn manual_from_now() -> Self {
        Self::manual(system_now_ms())
    }

    /// Now, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Source::System => system_now_ms(),
            Source::Manual(at) => at.load(Ordering::SeqCst),
        }
    }

    /// Whether this clock only moves when told to.
    pub fn is_manual(&self) -> bool {
        matches!(self.0, Source::Manual(_))
    }

    /// Moves a manual clock forward by `by`. The system's clock cannot be moved: asking is a
    /// mistake in a test, and panics there.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        match &self.0 {
            Source::Manual(at) => {
                at.fetch_add(by, Ordering::SeqCst);
            }
            Source::System => panic!("the system clock cannot be advanced; use Clock::manual"),
        }
    }

    /// Sets a manual clock to `now_ms` (see `advance`).
    pub fn set(&self, now_ms: i64) {
        match &self.0 {
            Source::Manual(at) => at.store(now_ms, Ordering::SeqCst),
            Source::System => panic!("the system clock cannot be set; use Clock::manual"),
        }
    }
}

fn system_now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_its_clones_with_it() {
        let clock = Clock::manual(1_000);
        let seen_by_the_server = clock.clone();
        assert_eq!(seen_by_the_server.now_ms(), 1_000);
        clock.advance(Duration::from_millis(2_100));
        assert_eq!(seen_by_the_server.now_ms(), 3_100);
        clock.set(5);
        assert_eq!(seen_by_the_server.now_ms(), 5);
        assert!(clock.is_manual());
    }

    #[test]
    fn the_system_clock_is_the_system_time() {
        let before = chrono::Utc::now().timestamp_millis();
        let now = Clock::system().now_ms();
        let after = chrono::Utc::now().timestamp_millis();
        assert!((before..=after).contains(&now));
        assert!(!Clock::default().is_manual());
    }

    #[test]
    #[should_panic(expected = "cannot be advanced")]
    fn the_system_clock_cannot_be_advanced() {
        Clock::system().advance(Duration::from_secs(1));
    }
}
