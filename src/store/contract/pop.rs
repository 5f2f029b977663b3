//! Screen-pop URL bindings: the first session to open a URL keeps it, also when two open it
//! first at the same moment; expired bindings are swept.

use super::both_backends;
use super::support::at_once;
use crate::store::Store;
use crate::store::pop::PopBinding;

fn bind(store: &Store, token: &[u8], binding: &[u8], now: i64, expires_at: i64) -> PopBinding {
    store
        .write_sync(|db| db.bind_pop_url(token, binding, "CA-1", now, expires_at))
        .unwrap()
}

fn the_first_session_keeps_the_url(store: &Store) {
    assert_eq!(
        bind(store, b"token-1", b"session-a", 1_000, 9_000),
        PopBinding::Bound
    );
    assert_eq!(
        bind(store, b"token-1", b"session-a", 2_000, 9_000),
        PopBinding::Bound
    );
    assert_eq!(
        bind(store, b"token-1", b"session-b", 2_000, 9_000),
        PopBinding::Other
    );
    // A binding differing in its last byte only is another session's.
    assert_eq!(
        bind(store, b"token-1", b"session-A", 2_000, 9_000),
        PopBinding::Other
    );
    // Another URL is free for anyone.
    assert_eq!(
        bind(store, b"token-2", b"session-b", 2_000, 9_000),
        PopBinding::Bound
    );
    assert_eq!(
        bind(store, b"token-2", b"session-a", 2_000, 9_000),
        PopBinding::Other
    );
}

fn expired_bindings_are_swept_by_the_next_first_open(store: &Store) {
    assert_eq!(bind(store, b"old", b"session-a", 0, 100), PopBinding::Bound);
    // Until a sweep, the binding of an expired URL still answers (the URL's own expiry is
    // checked before the store is asked).
    assert_eq!(
        bind(store, b"old", b"session-b", 500, 100),
        PopBinding::Other
    );
    // A first open at the expiry itself sweeps nothing: only what expired before now.
    assert_eq!(
        bind(store, b"new-1", b"session-c", 100, 900),
        PopBinding::Bound
    );
    assert_eq!(
        bind(store, b"old", b"session-b", 100, 100),
        PopBinding::Other
    );
    // A first open after it sweeps the old binding: the URL would bind afresh.
    assert_eq!(
        bind(store, b"new-2", b"session-c", 101, 900),
        PopBinding::Bound
    );
    assert_eq!(
        bind(store, b"old", b"session-b", 101, 100),
        PopBinding::Bound
    );
    // The live ones stay.
    assert_eq!(
        bind(store, b"new-1", b"session-d", 101, 900),
        PopBinding::Other
    );
}

/// Two sessions open a URL for the first time at the same moment (on two nodes), 50 times:
/// exactly one is bound, the other told it is another session's; neither fails.
fn two_first_opens_at_once_bind_one_session(store: &Store) {
    for round in 0..50 {
        let token = format!("token-{round}").into_bytes();
        let (a, b) = at_once(
            || store.write_sync(|db| db.bind_pop_url(&token, b"session-a", "CA-1", 1_000, 9_000)),
            || store.write_sync(|db| db.bind_pop_url(&token, b"session-b", "CA-1", 1_000, 9_000)),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let mut outcomes = [a, b];
        outcomes.sort_by_key(|o| *o == PopBinding::Other);
        assert_eq!(
            outcomes,
            [PopBinding::Bound, PopBinding::Other],
            "round {round}"
        );
        // And the winner keeps it afterwards.
        let winner: &[u8] = if a == PopBinding::Bound {
            b"session-a"
        } else {
            b"session-b"
        };
        assert_eq!(bind(store, &token, winner, 2_000, 9_000), PopBinding::Bound);
    }
}

both_backends!(
    the_first_session_keeps_the_url,
    expired_bindings_are_swept_by_the_next_first_open,
    two_first_opens_at_once_bind_one_session,
);
