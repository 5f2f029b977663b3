//! The audit trail: one chain, numbered without holes, that shows any edit, even when
//! several transactions (nodes) append at once and while a retention purge moves its anchor.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use super::Fresh;
use super::raw::{Int, Text, both_fresh};
use crate::store::Store;
use crate::store::audit::{GENESIS, Verdict, entry_hash};

fn append(store: &Store, action: &str, subject: &str, detail: &str, at: i64) -> i64 {
    let (action, subject, detail) = (action.to_owned(), subject.to_owned(), detail.to_owned());
    store
        .write_sync(move |db| db.append_audit("admin", &action, &subject, &detail, at))
        .unwrap()
}

fn verify(store: &Store) -> Verdict {
    store.read_sync(|db| db.verify_audit()).unwrap()
}

/// Every entry's number, oldest first.
fn seqs(store: &Store) -> Vec<i64> {
    let mut seqs: Vec<i64> = store
        .read_sync(|db| db.recent_audit(None, 100_000))
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    seqs.reverse();
    seqs
}

fn an_empty_trail_is_intact(fresh: &Fresh) {
    let store = &fresh.store;
    assert_eq!(
        verify(store),
        Verdict::Intact {
            entries: 0,
            head: GENESIS.to_owned()
        }
    );
    assert!(
        store
            .read_sync(|db| db.recent_audit(None, 10))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .read_sync(|db| db.last_audit_seq("script.publish"))
            .unwrap(),
        0
    );
}

fn entries_chain_and_read_back_newest_first(fresh: &Fresh) {
    let store = &fresh.store;
    let mut prev = GENESIS.to_owned();
    for (i, (action, subject)) in [
        ("script.save", "script:default"),
        ("script.publish", "script:default"),
        ("account.create", "account:A-1"),
        ("script.publish", "script:other"),
        ("account.lock", "account:A-1"),
    ]
    .into_iter()
    .enumerate()
    {
        let seq = i64::try_from(i).unwrap() + 1;
        let at = 1_700_000_000_000 + seq;
        assert_eq!(append(store, action, subject, &format!("d{seq}"), at), seq);
        prev = entry_hash(&prev, seq, at, "admin", action, subject, &format!("d{seq}"));
    }
    assert_eq!(
        verify(store),
        Verdict::Intact {
            entries: 5,
            head: prev.clone()
        }
    );
    let all = store.read_sync(|db| db.recent_audit(None, 100)).unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [5, 4, 3, 2, 1]
    );
    assert_eq!(all[0].hash, prev);
    assert_eq!(all[0].at, "2023-11-14T22:13:20.005Z");
    assert_eq!(
        (
            all[0].actor.as_str(),
            all[0].action.as_str(),
            all[0].detail.as_str()
        ),
        ("admin", "account.lock", "d5")
    );
    let about: Vec<i64> = store
        .read_sync(|db| db.recent_audit(Some("account:A-1"), 100))
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(about, [5, 3]);
    assert_eq!(
        store
            .read_sync(|db| db.recent_audit(None, 2))
            .unwrap()
            .len(),
        2
    );
    let last = |action: &'static str| store.read_sync(move |db| db.last_audit_seq(action));
    assert_eq!(last("script.publish").unwrap(), 4);
    assert_eq!(last("script.save").unwrap(), 1);
    assert_eq!(last("nothing").unwrap(), 0);
}

fn an_append_in_a_failed_transaction_leaves_no_hole(fresh: &Fresh) {
    let store = &fresh.store;
    append(store, "a", "s", "1", 1);
    let failed: anyhow::Result<()> = store.write_sync(|db| {
        db.append_audit("admin", "a", "s", "rolled back", 2)?;
        anyhow::bail!("refused after the append")
    });
    assert!(failed.is_err());
    assert_eq!(append(store, "a", "s", "3", 3), 2);
    assert!(matches!(verify(store), Verdict::Intact { entries: 2, .. }));
}

/// Several transactions append at once (threads, each with its own connection, as nodes
/// would): one chain, numbers 1..=n with no hole and no repeat.
fn concurrent_appends_make_one_unbroken_chain(fresh: &Fresh) {
    const THREADS: usize = 8;
    const EACH: usize = 25;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = fresh.store.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                (0..EACH)
                    .map(|i| {
                        // Two entries per transaction: the second chains to the first.
                        store
                            .write_sync(|db| {
                                let a =
                                    db.append_audit("node", "x", "s", &format!("{t}/{i}a"), 7)?;
                                let b =
                                    db.append_audit("node", "x", "s", &format!("{t}/{i}b"), 7)?;
                                Ok((a, b))
                            })
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut numbers = BTreeSet::new();
    for h in handles {
        for (a, b) in h.join().unwrap() {
            assert_eq!(b, a + 1, "a transaction's entries are consecutive");
            assert!(numbers.insert(a) && numbers.insert(b), "{a} or {b} twice");
        }
    }
    let n = i64::try_from(THREADS * EACH * 2).unwrap();
    assert_eq!(numbers, (1..=n).collect::<BTreeSet<_>>());
    assert_eq!(seqs(&fresh.store), (1..=n).collect::<Vec<_>>());
    assert!(
        matches!(verify(&fresh.store), Verdict::Intact { entries, .. } if entries == n),
        "{:?}",
        verify(&fresh.store)
    );
}

fn a_purge_keeps_the_chain_verifiable_from_its_anchor(fresh: &Fresh) {
    let store = &fresh.store;
    for at in [10, 20, 30, 40, 50] {
        append(store, "script.save", "script:x", "v", at);
    }
    let head_before = store.read_sync(|db| db.recent_audit(None, 10)).unwrap();
    let dropped = store
        .write_sync(|db| db.purge_audit_before(35, 1_000))
        .unwrap();
    assert_eq!(dropped, 3);
    assert_eq!(seqs(store), [4, 5, 6]);
    let purge = &store.read_sync(|db| db.recent_audit(None, 1)).unwrap()[0];
    assert_eq!(
        (purge.action.as_str(), purge.subject.as_str()),
        ("audit.purge", "audit")
    );
    let third = &head_before[2];
    assert_eq!(third.seq, 3);
    assert_eq!(
        purge.detail,
        format!(
            "3 entries up to #3 dropped by the retention purge; the chain continues from #3 ({})",
            third.hash
        )
    );
    assert!(matches!(verify(store), Verdict::Intact { entries: 3, .. }));
    // Nothing old left: nothing dropped, nothing recorded.
    assert_eq!(
        store
            .write_sync(|db| db.purge_audit_before(35, 1_001))
            .unwrap(),
        0
    );
    assert_eq!(seqs(store), [4, 5, 6]);
    // The anchor moves on at the next purge, and appends continue the chain.
    assert_eq!(append(store, "a", "s", "d", 2_000), 7);
    assert_eq!(
        store
            .write_sync(|db| db.purge_audit_before(1_500, 3_000))
            .unwrap(),
        3
    );
    assert_eq!(seqs(store), [7, 8]);
    assert!(matches!(verify(store), Verdict::Intact { entries: 2, .. }));
}

/// A purge that drops every entry (nothing was audited for longer than the retention): its
/// own record, and every entry after, continue the chain from the anchor.
fn a_purge_of_every_entry_continues_the_chain(fresh: &Fresh) {
    let store = &fresh.store;
    append(store, "a", "s", "d", 10);
    let second = append(store, "a", "s", "d", 20);
    assert_eq!(
        store
            .write_sync(|db| db.purge_audit_before(100, 1_000))
            .unwrap(),
        2
    );
    assert_eq!(seqs(store), [3]);
    assert_eq!(append(store, "a", "s", "d", 1_001), 4);
    assert_eq!(
        store
            .write_sync(|db| db.purge_audit_before(5_000, 5_000))
            .unwrap(),
        2
    );
    assert_eq!(seqs(store), [5]);
    assert!(second < 5);
    assert!(
        matches!(verify(store), Verdict::Intact { entries: 1, .. }),
        "{:?}",
        verify(store)
    );
}

/// Appends on several threads while another purges again and again: the anchor never moves
/// under an append, so the chain always verifies.
fn purges_during_concurrent_appends_keep_one_chain(fresh: &Fresh) {
    const THREADS: usize = 4;
    const EACH: i64 = 30;
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let appenders: Vec<_> = (0..THREADS)
        .map(|_| {
            let store = fresh.store.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for at in 0..EACH {
                    store
                        .write_sync(move |db| db.append_audit("node", "x", "s", "d", at))
                        .unwrap();
                }
            })
        })
        .collect();
    let store = fresh.store.clone();
    let purger = std::thread::spawn(move || {
        barrier.wait();
        (0..EACH)
            .map(|cutoff| {
                store
                    .write_sync(move |db| db.purge_audit_before(cutoff, 1_000 + cutoff))
                    .unwrap()
            })
            .sum::<i64>()
    });
    for a in appenders {
        a.join().unwrap();
    }
    let dropped = purger.join().unwrap();
    let left = seqs(&fresh.store);
    let total = left.last().copied().unwrap();
    // Every entry is either still there, in order from the anchor, or was dropped.
    assert_eq!(left, (left[0]..=total).collect::<Vec<_>>());
    assert_eq!(i64::try_from(left.len()).unwrap() + dropped, total);
    assert!(
        matches!(verify(&fresh.store), Verdict::Intact { .. }),
        "{:?}",
        verify(&fresh.store)
    );
}

/// The trail refuses edits through plain SQL, and whoever gets around that is caught.
fn edits_behind_the_store_are_refused_or_caught(fresh: &Fresh) {
    let store = &fresh.store;
    for at in 1..=4 {
        append(store, "a", "s", "d", at);
    }
    let mut raw = fresh.raw();
    let refusals = [
        raw.try_exec(
            "UPDATE audit_log SET detail = 'x' WHERE seq = $1",
            &[Int(2)],
        ),
        raw.try_exec("DELETE FROM audit_log WHERE seq = $1", &[Int(2)]),
        raw.try_exec("DELETE FROM audit_log", &[]),
    ];
    for refused in refusals {
        let refused = refused.unwrap_err();
        assert!(refused.contains("append-only"), "{refused}");
    }
    if raw.is_pg() {
        let refused = raw.try_exec("TRUNCATE audit_log", &[]).unwrap_err();
        assert!(refused.contains("append-only"), "{refused}");
        raw.exec("DROP TRIGGER audit_log_no_update ON audit_log", &[]);
    } else {
        raw.exec("DROP TRIGGER audit_log_no_update", &[]);
    }
    raw.exec(
        "UPDATE audit_log SET detail = 'forged' WHERE seq = $1",
        &[Int(3)],
    );
    assert_eq!(
        verify(store),
        Verdict::Broken {
            seq: 3,
            why: "its content does not match its hash (edited)".into()
        }
    );
}

/// PostgreSQL lets a delete through for the entries the anchor covers (how its purge drops
/// them without lifting the trigger), and only those; SQLite refuses every delete (its purge
/// lifts the trigger inside its transaction), as the test above shows.
fn a_delete_goes_through_only_below_the_anchor(fresh: &Fresh) {
    let store = &fresh.store;
    for at in 1..=3 {
        append(store, "a", "s", "d", at);
    }
    let mut raw = fresh.raw();
    if !raw.is_pg() {
        return;
    }
    let first = store.read_sync(|db| db.recent_audit(None, 10)).unwrap()[2].clone();
    raw.exec(
        "INSERT INTO audit_anchor (id, seq, hash, at) VALUES (1, 1, $1, 0)",
        &[Text(&first.hash)],
    );
    let refused = raw
        .try_exec("DELETE FROM audit_log WHERE seq >= $1", &[Int(1)])
        .unwrap_err();
    assert!(refused.contains("append-only"), "{refused}");
    assert_eq!(
        raw.exec("DELETE FROM audit_log WHERE seq <= $1", &[Int(1)]),
        1
    );
    assert!(matches!(verify(store), Verdict::Intact { entries: 2, .. }));
    // An anchor that names no real entry shows.
    raw.exec("UPDATE audit_anchor SET hash = 'forged'", &[]);
    assert_eq!(
        verify(store),
        Verdict::Broken {
            seq: 2,
            why: "does not chain to the entry before it".into()
        }
    );
}

both_fresh!(
    an_empty_trail_is_intact,
    entries_chain_and_read_back_newest_first,
    an_append_in_a_failed_transaction_leaves_no_hole,
    concurrent_appends_make_one_unbroken_chain,
    a_purge_keeps_the_chain_verifiable_from_its_anchor,
    a_purge_of_every_entry_continues_the_chain,
    purges_during_concurrent_appends_keep_one_chain,
    edits_behind_the_store_are_refused_or_caught,
    a_delete_goes_through_only_below_the_anchor,
);
