//! One-time call codes: issued, found while live, used once (one winner among calls presenting
//! the same code at once), dead when used or expired, re-keyed after a rotation.

use super::accounts::{Keys, Spec, add, race};
use super::both_backends;
use crate::store::Store;

fn a_call_code_is_found_while_live_and_used_once(store: &Store) {
    let k = Keys::new();
    add(store, &k.keys, Spec::default());
    let code = store
        .write_sync(|db| db.issue_call_code(&k.keys, "A-1", 60_000, 1_000))
        .unwrap();
    assert_eq!(code.len(), crate::verify::call_code::DIGITS);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    let (found, wrong) = store
        .read_sync(|db| {
            let wrong = if code.as_str() == "00000000" {
                "00000001"
            } else {
                "00000000"
            };
            Ok((
                db.find_live_call_code(&k.keys, &code, 1_000)?,
                db.find_live_call_code(&k.keys, wrong, 1_000)?,
            ))
        })
        .unwrap();
    let (id, account) = found.unwrap();
    assert_eq!(account, "A-1");
    assert!(wrong.is_none());
    let (first, second, after) = store
        .write_sync(|db| {
            Ok((
                db.consume_call_code(id, "CA1", 2_000)?,
                db.consume_call_code(id, "CA2", 2_000)?,
                db.find_live_call_code(&k.keys, &code, 2_000)?,
            ))
        })
        .unwrap();
    assert!(first && !second);
    assert!(after.is_none(), "a used code is dead");
    assert!(
        !store
            .write_sync(|db| db.consume_call_code(id + 1_000, "CA3", 2_000))
            .unwrap(),
        "no such code"
    );
}

fn a_call_code_dies_at_its_expiry(store: &Store) {
    let k = Keys::new();
    add(store, &k.keys, Spec::default());
    let code = store
        .write_sync(|db| db.issue_call_code(&k.keys, "A-1", 60_000, 1_000))
        .unwrap();
    let (just_before, at_expiry) = store
        .read_sync(|db| {
            Ok((
                db.find_live_call_code(&k.keys, &code, 60_999)?,
                db.find_live_call_code(&k.keys, &code, 61_000)?,
            ))
        })
        .unwrap();
    let (id, _) = just_before.unwrap();
    assert!(at_expiry.is_none(), "expires_at is the first dead instant");
    let (late, in_time) = store
        .write_sync(|db| {
            Ok((
                db.consume_call_code(id, "CA1", 61_000)?,
                db.consume_call_code(id, "CA1", 60_999)?,
            ))
        })
        .unwrap();
    assert!(!late && in_time);
}

fn issuing_purges_expired_codes(store: &Store) {
    let k = Keys::new();
    add(
        store,
        &k.keys,
        Spec {
            test: true,
            ..Spec::default()
        },
    );
    store
        .write_sync(|db| {
            db.issue_call_code(&k.keys, "A-1", 10, 1_000)?;
            db.issue_call_code(&k.keys, "A-1", 10, 1_000)?;
            Ok(())
        })
        .unwrap();
    let before = store.read_sync(|db| db.test_account_rows()).unwrap();
    assert_eq!(before.call_codes.len(), 2);
    let fresh = store
        .write_sync(|db| db.issue_call_code(&k.keys, "A-1", 60_000, 1_010))
        .unwrap();
    let after = store.read_sync(|db| db.test_account_rows()).unwrap();
    assert_eq!(after.call_codes.len(), 1, "the two expired ones are gone");
    assert_eq!(after.call_codes[0].expires_at, 61_010);
    assert!(
        store
            .read_sync(|db| db.find_live_call_code(&k.keys, &fresh, 1_010))
            .unwrap()
            .is_some()
    );
}

fn a_code_for_no_account_is_refused_and_the_transaction_goes_on(store: &Store) {
    let k = Keys::new();
    add(store, &k.keys, Spec::default());
    let (refused, issued) = store
        .write_sync(|db| {
            let refused = db
                .issue_call_code(&k.keys, "Z-9", 60_000, 1_000)
                .map(|_| ());
            // PostgreSQL aborts a transaction on a failed statement: the refusal must not.
            let issued = db.issue_call_code(&k.keys, "A-1", 60_000, 1_000)?;
            Ok((refused, issued))
        })
        .unwrap();
    let refused = refused.unwrap_err().to_string();
    assert!(refused.contains("no account with id Z-9"), "{refused}");
    assert!(
        store
            .read_sync(|db| db.find_live_call_code(&k.keys, &issued, 1_000))
            .unwrap()
            .is_some()
    );
}

fn a_call_code_is_rekeyed_after_a_rotation(store: &Store) {
    let k = Keys::new();
    add(store, &k.keys, Spec::default());
    let code = store
        .write_sync(|db| db.issue_call_code(&k.keys, "A-1", 60_000, 1_000))
        .unwrap();
    let rotated = k.rotate();
    let (v1, v2) = (k.keys.current_version(), rotated.current_version());
    let found = store
        .write_sync(|db| db.find_live_call_code(&rotated, &code, 2_000))
        .unwrap();
    assert_eq!(found.map(|(_, a)| a).as_deref(), Some("A-1"));
    let usage = store.read_sync(|db| db.key_usage(2_000)).unwrap();
    assert_eq!(usage.get(&v1).map_or(0, |u| u.live_call_codes), 0);
    assert_eq!(usage[&v2].live_call_codes, 1);
    let (new_key, old_key) = store
        .read_sync(|db| {
            Ok((
                db.find_live_call_code(&rotated, &code, 2_000)?,
                db.find_live_call_code(&k.keys, &code, 2_000)?,
            ))
        })
        .unwrap();
    assert!(new_key.is_some() && old_key.is_none());
}

fn one_call_code_presented_at_once_is_used_once(store: &Store) {
    let k = Keys::new();
    add(store, &k.keys, Spec::default());
    for round in 0..50 {
        let code = store
            .write_sync(|db| db.issue_call_code(&k.keys, "A-1", 60_000, 1_000))
            .unwrap();
        let results = race(store, 2, |db, i, meet| {
            // What the engine does: find the code, then claim it.
            let Some((id, _)) = db.find_live_call_code(&k.keys, &code, 2_000)? else {
                return Ok(false);
            };
            meet.wait();
            db.consume_call_code(id, &format!("CA{round}x{i}"), 2_000)
        });
        let won: Vec<bool> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: {won:?}"
        );
        assert!(
            store
                .read_sync(|db| db.find_live_call_code(&k.keys, &code, 2_000))
                .unwrap()
                .is_none()
        );
    }
}

both_backends!(
    a_call_code_is_found_while_live_and_used_once,
    a_call_code_dies_at_its_expiry,
    issuing_purges_expired_codes,
    a_code_for_no_account_is_refused_and_the_transaction_goes_on,
    a_call_code_is_rekeyed_after_a_rotation,
    one_call_code_presented_at_once_is_used_once,
);
