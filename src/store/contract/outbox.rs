//! The CRM outbox: deliveries fall due, are claimed for a while (one claimer per delivery, also
//! when two nodes claim at the same moment), retried, given up, handed back and purged.

use super::both_backends;
use super::support::at_once;
use crate::store::Store;
use crate::store::outbox::Delivery;

const LEASE: i64 = 200_000;

fn enqueue(store: &Store, sid: &str, now: i64) -> i64 {
    store
        .write_sync(|db| db.enqueue_crm(sid, &format!("{{\"call\":\"{sid}\"}}"), now))
        .unwrap()
}

fn claim(store: &Store, now: i64, limit: u32) -> Vec<Delivery> {
    store
        .write_sync(|db| db.claim_crm_deliveries(now, limit, now + LEASE))
        .unwrap()
}

fn ids(d: &[Delivery]) -> Vec<i64> {
    d.iter().map(|d| d.id).collect()
}

fn next_due(store: &Store) -> Option<i64> {
    store.read_sync(|db| db.next_crm_due()).unwrap()
}

fn an_empty_outbox_has_nothing_due(store: &Store) {
    assert!(claim(store, 1_000, 10).is_empty());
    assert_eq!(next_due(store), None);
}

fn a_delivery_is_due_from_when_it_is_queued(store: &Store) {
    let id = enqueue(store, "CA-1", 1_000);
    assert_eq!(next_due(store), Some(1_000));
    assert!(claim(store, 999, 10).is_empty(), "due before it was queued");
    let got = claim(store, 1_000, 10);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].call_sid, "CA-1");
    assert_eq!(got[0].body, "{\"call\":\"CA-1\"}");
    assert_eq!(got[0].attempts, 0);
}

fn a_claimed_delivery_is_due_again_only_when_its_lease_ends(store: &Store) {
    let id = enqueue(store, "CA-1", 1_000);
    assert_eq!(ids(&claim(store, 1_000, 10)), [id]);
    // Claimed: nobody else gets it while the lease lasts; the outbox knows when it ends.
    assert!(claim(store, 1_000, 10).is_empty());
    assert!(claim(store, 1_000 + LEASE - 1, 10).is_empty());
    assert_eq!(next_due(store), Some(1_000 + LEASE));
    // The claimer died without a word: at the lease's end it is due again, as it was.
    let again = claim(store, 1_000 + LEASE, 10);
    assert_eq!(ids(&again), [id]);
    assert_eq!(again[0].attempts, 0);
}

fn the_oldest_due_come_first_up_to_the_limit(store: &Store) {
    let c = enqueue(store, "CA-c", 3_000);
    let a = enqueue(store, "CA-a", 1_000);
    let b1 = enqueue(store, "CA-b1", 2_000);
    let b2 = enqueue(store, "CA-b2", 2_000);
    let later = enqueue(store, "CA-later", 9_000);
    assert_eq!(ids(&claim(store, 5_000, 3)), [a, b1, b2]);
    assert_eq!(ids(&claim(store, 5_000, 3)), [c]);
    assert!(claim(store, 5_000, 3).is_empty());
    assert_eq!(ids(&claim(store, 9_000, 3)), [later]);
}

fn a_failed_attempt_is_retried_then_given_up(store: &Store) {
    let id = enqueue(store, "CA-1", 1_000);
    claim(store, 1_000, 10);
    store
        .write_sync(|db| db.crm_failed(id, 1, "HTTP 503", Some(5_000), 1_100))
        .unwrap();
    assert_eq!(next_due(store), Some(5_000));
    assert!(claim(store, 4_999, 10).is_empty());
    let retry = claim(store, 5_000, 10);
    assert_eq!(ids(&retry), [id]);
    assert_eq!(retry[0].attempts, 1);
    // The last attempt fails: given up, never due again.
    store
        .write_sync(|db| db.crm_failed(id, 2, "timeout", None, 5_100))
        .unwrap();
    assert_eq!(next_due(store), None);
    assert!(claim(store, i64::MAX / 2, 10).is_empty());
}

fn a_delivered_one_is_done_and_purged_later(store: &Store) {
    let delivered = enqueue(store, "CA-1", 1_000);
    let given_up = enqueue(store, "CA-2", 1_000);
    let pending = enqueue(store, "CA-3", 1_000);
    let newer = enqueue(store, "CA-4", 2_000);
    claim(store, 2_000, 10);
    store
        .write_sync(|db| {
            db.crm_delivered(delivered, 1, 1_200)?;
            db.crm_failed(given_up, 12, "HTTP 500", None, 1_300)?;
            db.crm_delivered(newer, 1, 2_100)?;
            db.crm_failed(pending, 1, "HTTP 500", Some(3_000), 1_400)
        })
        .unwrap();
    assert_eq!(next_due(store), Some(3_000));
    assert_eq!(ids(&claim(store, 10_000, 10)), [pending]);
    // Rows older than `before` that are finished go; `before` itself is kept; pending stays.
    let purged = store
        .write_sync(|db| db.purge_crm_deliveries(2_000))
        .unwrap();
    assert_eq!(purged, 2);
    let again = store
        .write_sync(|db| db.purge_crm_deliveries(2_001))
        .unwrap();
    assert_eq!(again, 1);
    // The pending one survived every purge.
    assert_eq!(
        ids(&claim(store, 10_000 + LEASE, 10)),
        [pending],
        "a pending delivery was purged"
    );
}

fn a_delivery_handed_back_is_due_at_once(store: &Store) {
    let a = enqueue(store, "CA-a", 1_000);
    let b = enqueue(store, "CA-b", 1_000);
    let lease_until = 1_000 + LEASE;
    assert_eq!(ids(&claim(store, 1_000, 10)), [a, b]);
    // `a` was sent and recorded before the stop; `b` was not.
    store
        .write_sync(|db| db.crm_delivered(a, 1, 1_100))
        .unwrap();
    let released = store
        .write_sync(|db| db.release_crm_deliveries(&[a, b], lease_until, 1_200))
        .unwrap();
    assert_eq!(released, 1);
    assert_eq!(next_due(store), Some(1_200));
    let again = claim(store, 1_200, 10);
    assert_eq!(ids(&again), [b]);
    // Claimed again by someone else: an old claimer's hand-back leaves it alone.
    let stale = store
        .write_sync(|db| db.release_crm_deliveries(&[b], lease_until, 1_300))
        .unwrap();
    assert_eq!(stale, 0);
    assert!(claim(store, 1_300, 10).is_empty());
    let none = store
        .write_sync(|db| db.release_crm_deliveries(&[], lease_until, 1_300))
        .unwrap();
    assert_eq!(none, 0);
}

/// Two nodes claim the same due delivery at the same moment, 50 times: one gets it.
fn two_claims_at_once_get_a_delivery_once(store: &Store) {
    for round in 0..50 {
        let now = 1_000_000 * (round + 1);
        let id = enqueue(store, &format!("CA-{round}"), now);
        let (a, b) = at_once(
            || store.write_sync(|db| db.claim_crm_deliveries(now, 20, now + LEASE)),
            || store.write_sync(|db| db.claim_crm_deliveries(now, 20, now + LEASE)),
        );
        let (a, b) = (ids(&a.unwrap()), ids(&b.unwrap()));
        let mut both = [a.clone(), b.clone()].concat();
        both.sort_unstable();
        assert_eq!(both, [id], "round {round}: {a:?} and {b:?}");
        store.write_sync(|db| db.crm_delivered(id, 1, now)).unwrap();
    }
}

/// Two nodes claim from a full outbox at once: they share it out, each delivery to one of
/// them, none left behind.
fn two_claims_at_once_share_the_due_deliveries(store: &Store) {
    for round in 0..20 {
        let now = 1_000_000 * (round + 1);
        let queued: Vec<i64> = (0..10)
            .map(|i| enqueue(store, &format!("CA-{round}-{i}"), now))
            .collect();
        let (a, b) = at_once(
            || store.write_sync(|db| db.claim_crm_deliveries(now, 10, now + LEASE)),
            || store.write_sync(|db| db.claim_crm_deliveries(now, 10, now + LEASE)),
        );
        let (a, b) = (ids(&a.unwrap()), ids(&b.unwrap()));
        let mut both = [a.clone(), b.clone()].concat();
        both.sort_unstable();
        assert_eq!(both, queued, "round {round}: {a:?} and {b:?}");
        store
            .write_sync(|db| {
                queued
                    .iter()
                    .try_for_each(|id| db.crm_delivered(*id, 1, now))
            })
            .unwrap();
    }
}

both_backends!(
    an_empty_outbox_has_nothing_due,
    a_delivery_is_due_from_when_it_is_queued,
    a_claimed_delivery_is_due_again_only_when_its_lease_ends,
    the_oldest_due_come_first_up_to_the_limit,
    a_failed_attempt_is_retried_then_given_up,
    a_delivered_one_is_done_and_purged_later,
    a_delivery_handed_back_is_due_at_once,
    two_claims_at_once_get_a_delivery_once,
    two_claims_at_once_share_the_due_deliveries,
);
