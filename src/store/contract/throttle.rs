//! The guessing limits' memory: account and number locks, the failure log, the failures in a
//! row, the per-minute count, and that failures counted at once on several connections are
//! each counted (N at once count N).

use super::accounts::{Keys, Spec, add, race};
use super::both_backends;
use crate::store::Store;
use crate::store::throttle::FailureKind;

fn an_account_lock_holds_until_its_end_and_lifts(store: &Store) {
    let k = Keys::new();
    add(store, &k.keys, Spec::default());
    let counts = store
        .write_sync(|db| {
            Ok([
                db.bump_account_failures("A-1")?,
                db.bump_account_failures("A-1")?,
                db.bump_account_failures("A-1")?,
                db.bump_account_failures("Z-9")?,
            ])
        })
        .unwrap();
    assert_eq!(counts, [Some(1), Some(2), Some(3), None]);
    store
        .write_sync(|db| db.lock_account("A-1", 10_000, 4_000))
        .unwrap();
    let (locked, at_end, missing, account, history) = store
        .read_sync(|db| {
            Ok((
                db.account_locked("A-1", 9_999)?,
                db.account_locked("A-1", 10_000)?,
                db.account_locked("Z-9", 0)?,
                db.account("A-1")?,
                db.account_history("A-1")?,
            ))
        })
        .unwrap();
    assert!(locked && !at_end && !missing);
    let account = account.unwrap();
    assert_eq!(account.failed_count, 0, "a lock starts the count afresh");
    assert_eq!(account.locked_until, Some(10_000));
    assert_eq!(history.last_locked_at, Some(4_000));
    let (after_lock, unlocked, no_such, locked_now) = store
        .write_sync(|db| {
            Ok((
                db.bump_account_failures("A-1")?,
                db.unlock_account("A-1")?,
                db.unlock_account("Z-9")?,
                db.account_locked("A-1", 5_000)?,
            ))
        })
        .unwrap();
    assert_eq!(after_lock, Some(1));
    assert!(unlocked && !no_such && !locked_now);
    let account = store.read_sync(|db| db.account("A-1")).unwrap().unwrap();
    assert_eq!((account.failed_count, account.locked_until), (0, None));
    assert_eq!(
        store
            .read_sync(|db| db.account_history("A-1"))
            .unwrap()
            .last_locked_at,
        Some(4_000),
        "unlocking keeps the risk flag"
    );
}

fn a_completed_verification_forgives_the_failures(store: &Store) {
    let k = Keys::new();
    add(store, &k.keys, Spec::default());
    let (before, after) = store
        .write_sync(|db| {
            db.bump_account_failures("A-1")?;
            let before = db.bump_account_failures("A-1")?;
            db.reset_account_failures("A-1")?;
            db.reset_account_failures("Z-9")?;
            Ok((before, db.bump_account_failures("A-1")?))
        })
        .unwrap();
    assert_eq!((before, after), (Some(2), Some(1)));
}

fn a_number_lock_only_grows(store: &Store) {
    let caller = "+48601234567";
    let started = store
        .write_sync(|db| db.lock_number(caller, 10_000, 1_000))
        .unwrap();
    assert!(started, "the first lock starts");
    let started = store
        .write_sync(|db| db.lock_number(caller, 5_000, 2_000))
        .unwrap();
    assert!(!started, "locked at 2_000 already");
    let checks = store
        .read_sync(|db| {
            Ok([
                db.number_locked(caller, 9_999)?,
                db.number_locked(caller, 10_000)?,
                db.number_locked("+48602345678", 0)?,
            ])
        })
        .unwrap();
    assert_eq!(
        checks,
        [true, false, false],
        "a shorter lock does not shorten"
    );
    let started = store
        .write_sync(|db| db.lock_number(caller, 20_000, 10_000))
        .unwrap();
    assert!(started, "the lock had ended at 10_000: a new one starts");
    assert!(
        store
            .read_sync(|db| db.number_locked(caller, 19_999))
            .unwrap()
    );
}

fn the_failure_log_counts_by_number_and_account(store: &Store) {
    let k = Keys::new();
    add(store, &k.keys, Spec::default());
    let (a, b) = ("+48601234567", "withheld");
    store
        .write_sync(|db| {
            db.log_failure(a, Some("A-1"), "CA1", FailureKind::AccountCode, 1_000)?;
            db.log_failure(a, Some("A-1"), "CA1", FailureKind::Totp, 2_000)?;
            db.log_failure(a, None, "CA2", FailureKind::Knowledge, 3_000)?;
            db.log_failure(b, Some("A-1"), "CA3", FailureKind::TotpReplay, 3_000)?;
            // A failure about an account that does not exist is still logged.
            db.log_failure(b, Some("Z-9"), "CA4", FailureKind::AccountCode, 3_000)?;
            Ok(())
        })
        .unwrap();
    let counts = store
        .read_sync(|db| {
            Ok((
                db.failures_from_number_since(a, 999)?,
                db.failures_from_number_since(a, 1_000)?,
                db.failures_from_number_since(a, 3_000)?,
                db.failures_from_number_since(b, 0)?,
                db.recent_account_failures("A-1", 2_000)?,
                db.recent_account_failures("A-1", 2_001)?,
                db.recent_account_failures("Z-9", 0)?,
                db.recent_account_failures("B-2", 0)?,
            ))
        })
        .unwrap();
    assert_eq!(
        counts,
        (3, 2, 0, 2, 2, 1, 1, 0),
        "since a number: after the instant; since an account: from it"
    );
}

fn the_last_minute_weighs_the_minute_before(store: &Store) {
    let minute = 1_000 * 60_000_i64;
    let counts = store
        .write_sync(|db| {
            let mut counts = Vec::new();
            for _ in 0..4 {
                counts.push(db.count_failure_last_minute(minute + 59_000)?);
            }
            // 15 s into the next minute: 3/4 of the previous minute is still in the window.
            counts.push(db.count_failure_last_minute(minute + 75_000)?);
            counts.push(db.count_failure_last_minute(minute + 90_000)?);
            // Two minutes on: the old buckets are dropped, and nothing is left to weigh.
            counts.push(db.count_failure_last_minute(minute + 180_000)?);
            // Back in time (a node with a slow clock): its own bucket, nothing before it.
            counts.push(db.count_failure_last_minute(minute + 59_000)?);
            Ok(counts)
        })
        .unwrap();
    assert_eq!(counts, [1, 2, 3, 4, 1 + 3, 2 + 2, 1, 1]);
}

fn failures_at_once_are_each_counted(store: &Store) {
    const N: usize = 8;
    let k = Keys::new();
    add(store, &k.keys, Spec::default());
    let minute = 2_000 * 60_000_i64;
    for round in 0..5_i64 {
        let now = minute + round * 120_000;
        let results = race(store, N, |db, i, meet| {
            // What a failed verification does: check the locks, then count.
            db.account_locked("A-1", now)?;
            db.number_locked("+48601234567", now)?;
            meet.wait();
            db.log_failure(
                "+48601234567",
                Some("A-1"),
                &format!("CA{i}"),
                FailureKind::AccountCode,
                now,
            )?;
            let in_a_row = db.bump_account_failures("A-1")?;
            let last_minute = db.count_failure_last_minute(now)?;
            let until = now + 1_000 * i64::try_from(i).unwrap_or(0);
            db.lock_number("+48601234567", until, now)?;
            Ok((in_a_row, last_minute))
        });
        let results: Vec<(Option<u32>, i64)> = results.into_iter().map(Result::unwrap).collect();
        let base = u32::try_from(round).unwrap() * u32::try_from(N).unwrap();
        let mut in_a_row: Vec<u32> = results.iter().map(|r| r.0.unwrap()).collect();
        in_a_row.sort_unstable();
        let expected: Vec<u32> = (1..=u32::try_from(N).unwrap()).map(|n| base + n).collect();
        assert_eq!(
            in_a_row, expected,
            "round {round}: each bump saw its own count"
        );
        let mut last_minute: Vec<i64> = results.iter().map(|r| r.1).collect();
        last_minute.sort_unstable();
        let expected: Vec<i64> = (1..=i64::try_from(N).unwrap()).collect();
        assert_eq!(last_minute, expected, "round {round}: the minute's counter");
        let (logged, failed_count, locked_to_the_end, unlocked_after) = store
            .read_sync(|db| {
                Ok((
                    db.failures_from_number_since("+48601234567", now - 1)?,
                    db.account("A-1")?.map(|a| a.failed_count),
                    db.number_locked("+48601234567", now + 1_000 * (N as i64 - 1) - 1)?,
                    db.number_locked("+48601234567", now + 1_000 * (N as i64 - 1))?,
                ))
            })
            .unwrap();
        assert_eq!(logged, u32::try_from(N).unwrap());
        assert_eq!(failed_count, Some(i64::from(base) + N as i64));
        assert!(
            locked_to_the_end && !unlocked_after,
            "the longest lock stays"
        );
    }
}

/// Several connections (nodes) lock one number at once, and again while it is locked: one of
/// the first is told it started the lock, none of the second.
fn a_number_lock_is_started_once_among_many_at_once(store: &Store) {
    const N: usize = 6;
    for (round, now) in [(0, 1_000), (1, 2_000)] {
        let results = race(store, N, |db, _, _| {
            db.lock_number("+48601234567", 100_000, now)
        });
        let started = results
            .into_iter()
            .map(Result::unwrap)
            .filter(|s| *s)
            .count();
        assert_eq!(started, 1 - round, "round {round}");
    }
}

/// The guessing alert's turn: one of several at once gets it, nobody within the quiet period
/// after, the first after it.
fn the_alert_is_claimed_once_per_period(store: &Store) {
    const N: usize = 6;
    for (now, expected) in [(1_000, 1), (30_000, 0), (61_000, 1), (61_500, 0)] {
        let results = race(store, N, |db, _, _| db.claim_alert(now, 60_000));
        let claimed = results
            .into_iter()
            .map(Result::unwrap)
            .filter(|c| *c)
            .count();
        assert_eq!(claimed, expected, "at {now}");
    }
}

both_backends!(
    a_number_lock_is_started_once_among_many_at_once,
    the_alert_is_claimed_once_per_period,
    an_account_lock_holds_until_its_end_and_lifts,
    a_completed_verification_forgives_the_failures,
    a_number_lock_only_grows,
    the_failure_log_counts_by_number_and_account,
    the_last_minute_weighs_the_minute_before,
    failures_at_once_are_each_counted,
);
