//! Agents' outcomes: stored, corrected, read back, listed with an account's earlier calls.

use super::calls::new_call;
use super::support::{self, at_once, both_backends_seeded};
use super::{Fresh, both_backends};
use crate::store::Store;
use crate::store::outcomes::Outcome;

fn outcome(resolved: bool, category: &str, agent: &str, at: i64) -> Outcome {
    Outcome {
        resolved,
        category: category.into(),
        note: format!("{agent} wrote: ąę \"quoted\""),
        recurring: !resolved,
        agent: agent.into(),
        at,
    }
}

fn save_call(store: &Store, sid: &str, started_at: i64, account: Option<&str>) {
    let mut call = new_call(sid, started_at);
    call.account_id = account.map(str::to_owned);
    call.department = Some("billing".into());
    store
        .write_sync(|db| db.save_call(&call, started_at))
        .unwrap();
}

fn read(store: &Store, sid: &'static str) -> Option<Outcome> {
    store.read_sync(move |db| db.outcome(sid)).unwrap()
}

fn an_outcome_reads_back_and_a_correction_replaces_it(store: &Store) {
    save_call(store, "CA-1", 1_000, None);
    assert_eq!(read(store, "CA-1"), None);
    let first = outcome(false, "billing", "ada", 2_000);
    store
        .write_sync(|db| db.record_outcome("CA-1", &first))
        .unwrap();
    assert_eq!(read(store, "CA-1"), Some(first));
    let corrected = Outcome {
        note: String::new(),
        ..outcome(true, "technical", "bob", 3_000)
    };
    store
        .write_sync(|db| db.record_outcome("CA-1", &corrected))
        .unwrap();
    assert_eq!(read(store, "CA-1"), Some(corrected));
}

fn an_outcome_needs_its_call(store: &Store) {
    assert_eq!(read(store, "CA-none"), None);
    let refused =
        store.write_sync(|db| db.record_outcome("CA-none", &outcome(true, "x", "ada", 1)));
    assert!(
        refused.is_err(),
        "an outcome for a call never seen was stored"
    );
    assert_eq!(read(store, "CA-none"), None);
}

/// Two agents record the same call's outcome at once on two nodes, 20 times: both succeed
/// and one of the two stays, whole.
fn two_outcomes_at_once_leave_one_whole(store: &Store) {
    for round in 0..20 {
        let sid = format!("CA-{round}");
        save_call(store, &sid, 1_000, None);
        let (a, b) = (
            outcome(true, "billing", "ada", 2_000),
            outcome(false, "technical", "bob", 2_001),
        );
        let (ra, rb) = at_once(
            || store.write_sync(|db| db.record_outcome(&sid, &a)),
            || store.write_sync(|db| db.record_outcome(&sid, &b)),
        );
        ra.unwrap();
        rb.unwrap();
        let stored = store.read_sync(|db| db.outcome(&sid)).unwrap();
        assert!(
            stored == Some(a.clone()) || stored == Some(b.clone()),
            "round {round}: {stored:?}"
        );
    }
}

fn an_accounts_earlier_calls_come_newest_first_with_outcomes(fresh: &Fresh) {
    support::account(fresh, "ACC-1");
    support::account(fresh, "ACC-2");
    let store = &fresh.store;
    save_call(store, "CA-old", 1_000, Some("ACC-1"));
    save_call(store, "CA-mid", 2_000, Some("ACC-1"));
    save_call(store, "CA-new", 3_000, Some("ACC-1"));
    save_call(store, "CA-now", 4_000, Some("ACC-1"));
    save_call(store, "CA-other", 3_500, Some("ACC-2"));
    save_call(store, "CA-anon", 3_600, None);
    let mid = outcome(true, "billing", "ada", 2_500);
    store
        .write_sync(|db| {
            db.record_outcome("CA-mid", &mid)?;
            db.set_queue_status("CA-mid", "answered", 2_500)
        })
        .unwrap();
    let past = store
        .read_sync(|db| db.recent_calls_of("ACC-1", "CA-now", 10))
        .unwrap();
    let listed: Vec<_> = past
        .iter()
        .map(|p| (p.call_sid.as_str(), p.started_at))
        .collect();
    assert_eq!(
        listed,
        [("CA-new", 3_000), ("CA-mid", 2_000), ("CA-old", 1_000)]
    );
    assert_eq!(past[0].outcome, None);
    assert_eq!(past[0].queue_status, None);
    assert_eq!(past[1].outcome, Some(mid));
    assert_eq!(past[1].queue_status.as_deref(), Some("answered"));
    assert_eq!(past[1].department.as_deref(), Some("billing"));
    let two = store
        .read_sync(|db| db.recent_calls_of("ACC-1", "CA-now", 2))
        .unwrap();
    assert_eq!(two.len(), 2);
    let nobody = store
        .read_sync(|db| db.recent_calls_of("ACC-none", "", 10))
        .unwrap();
    assert!(nobody.is_empty());
}

both_backends!(
    an_outcome_reads_back_and_a_correction_replaces_it,
    an_outcome_needs_its_call,
    two_outcomes_at_once_leave_one_whole,
);

both_backends_seeded!(an_accounts_earlier_calls_come_newest_first_with_outcomes);
