//! Browser sessions: opened, found by the cookie's id, expired at the boundary, ended, swept
//! (also by two nodes sweeping at once).

use super::both_backends;
use super::support::at_once;
use crate::store::Store;
use crate::store::sessions::{ENCODED_LEN, Lookup, NewSession, SESSION_TTL_MS};
use crate::store::users::Role;

fn user(store: &Store, name: &'static str) -> i64 {
    store
        .write_sync(|db| {
            let token = db.add_user(name, Role::Agent, &["billing".to_owned()], 0)?;
            Ok(db.user_by_token(&token)?.expect("the user").id)
        })
        .unwrap()
}

fn open(store: &Store, user_id: i64, now: i64) -> NewSession {
    store
        .write_sync(|db| db.create_session(user_id, now))
        .unwrap()
}

fn lookup(store: &Store, id: &str, now: i64) -> Lookup {
    store.read_sync(|db| db.lookup_session(id, now)).unwrap()
}

fn a_session_is_found_by_its_id_until_it_expires(store: &Store) {
    let ada = user(store, "ada");
    let s = open(store, ada, 1_000);
    assert_eq!(s.id.len(), ENCODED_LEN);
    assert_eq!(s.csrf_token.len(), ENCODED_LEN);
    assert_ne!(*s.id, s.csrf_token);
    match lookup(store, &s.id, 1_000 + SESSION_TTL_MS - 1) {
        Lookup::Valid(v) => {
            assert_eq!(v.user.id, ada);
            assert_eq!(v.user.name, "ada");
            assert_eq!(v.user.role, Role::Agent);
            assert_eq!(v.user.departments, ["billing"]);
            assert_eq!(v.csrf_token, s.csrf_token);
            assert_eq!(v.expires_at, 1_000 + SESSION_TTL_MS);
        }
        other => panic!("a live session was {other:?}"),
    }
    // Its last millisecond is past.
    assert!(matches!(
        lookup(store, &s.id, 1_000 + SESSION_TTL_MS),
        Lookup::Expired
    ));
    assert!(matches!(
        lookup(store, "no-such-id", 1_000),
        Lookup::Unknown
    ));
    // A second session of the same user is another session.
    let t = open(store, ada, 1_000);
    assert_ne!(*t.id, *s.id);
    assert_ne!(t.csrf_token, s.csrf_token);
}

fn ending_a_session_sweeps_the_expired_ones(store: &Store) {
    let ada = user(store, "ada");
    let old = open(store, ada, 0);
    let edge = open(store, ada, 1_000);
    let live = open(store, ada, 5_000);
    let ended = open(store, ada, 5_000);
    let now = 1_000 + SESSION_TTL_MS;
    store
        .write_sync(|db| db.delete_session(&ended.id, now))
        .unwrap();
    assert!(matches!(lookup(store, &ended.id, now), Lookup::Unknown));
    // Expired ones, to the millisecond, were swept; the live one stays.
    assert!(matches!(lookup(store, &old.id, now), Lookup::Unknown));
    assert!(matches!(lookup(store, &edge.id, now), Lookup::Unknown));
    assert!(matches!(lookup(store, &live.id, now), Lookup::Valid(_)));
    // Ending an unknown session is no error.
    store
        .write_sync(|db| db.delete_session("gone", now))
        .unwrap();
}

fn expired_sessions_are_counted_as_swept(store: &Store) {
    let ada = user(store, "ada");
    open(store, ada, 0);
    open(store, ada, 10);
    let live = open(store, ada, 11);
    let swept = store
        .write_sync(|db| db.delete_expired_sessions(10 + SESSION_TTL_MS))
        .unwrap();
    assert_eq!(swept, 2);
    let again = store
        .write_sync(|db| db.delete_expired_sessions(10 + SESSION_TTL_MS))
        .unwrap();
    assert_eq!(again, 0);
    assert!(matches!(
        lookup(store, &live.id, 10 + SESSION_TTL_MS),
        Lookup::Valid(_)
    ));
}

fn a_removed_users_sessions_end_with_them(store: &Store) {
    let ada = user(store, "ada");
    let s = open(store, ada, 1_000);
    assert!(store.write_sync(|db| db.remove_user("ada")).unwrap());
    assert!(matches!(lookup(store, &s.id, 2_000), Lookup::Unknown));
}

/// Two browsers whose sessions expired log in again on two nodes at once, 20 times: each node
/// ends its own session and sweeps the other expired ones. Both succeed and nothing expired
/// is left.
fn two_sweeps_at_once_both_succeed(store: &Store) {
    let ada = user(store, "ada");
    for round in 0..20 {
        let start = i64::from(round) * 10 * SESSION_TTL_MS;
        let a = open(store, ada, start);
        let b = open(store, ada, start);
        let others: Vec<_> = (0..5).map(|_| open(store, ada, start)).collect();
        let now = start + SESSION_TTL_MS;
        let (ra, rb) = at_once(
            || store.write_sync(|db| db.delete_session(&a.id, now)),
            || store.write_sync(|db| db.delete_session(&b.id, now)),
        );
        ra.unwrap();
        rb.unwrap();
        for s in others.iter().chain([&a, &b]) {
            assert!(
                matches!(lookup(store, &s.id, now), Lookup::Unknown),
                "round {round}"
            );
        }
    }
}

both_backends!(
    a_session_is_found_by_its_id_until_it_expires,
    ending_a_session_sweeps_the_expired_ones,
    expired_sessions_are_counted_as_swept,
    a_removed_users_sessions_end_with_them,
    two_sweeps_at_once_both_succeed,
);
