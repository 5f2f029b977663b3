//! Call events and queue status: numbered events read back by number and department, and a
//! console catching up while several nodes append never missing an event.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::both_backends;
use super::calls::new_call;
use crate::store::Store;
use crate::store::events::{ABANDONED, ANSWERED, CallEvent, Kind, WAITING};

fn append(store: &Store, sid: &str, kind: Kind, department: Option<&str>, at: i64) -> i64 {
    store
        .write_sync(|db| db.append_call_event(sid, kind, department, at))
        .unwrap()
}

fn since(
    store: &Store,
    after: i64,
    departments: Option<&[String]>,
    limit: u32,
) -> (Vec<CallEvent>, i64) {
    store
        .read_sync(|db| db.call_events_since(after, departments, limit))
        .unwrap()
}

fn seqs(events: &[CallEvent]) -> Vec<i64> {
    events.iter().map(|e| e.seq).collect()
}

fn before_the_first_event_there_is_nothing(store: &Store) {
    assert_eq!(store.read_sync(|db| db.last_event_seq()).unwrap(), 0);
    let (events, next) = since(store, 0, None, 10);
    assert!(events.is_empty());
    assert_eq!(next, 0);
}

fn events_are_numbered_upwards_and_read_back_in_order(store: &Store) {
    let a = append(store, "CA-1", Kind::Handoff, Some("billing"), 1_000);
    let b = append(store, "CA-1", Kind::Status, Some("billing"), 2_000);
    let c = append(store, "CA-2", Kind::Outcome, None, 3_000);
    assert!(0 < a && a < b && b < c, "{a} {b} {c}");
    assert_eq!(store.read_sync(|db| db.last_event_seq()).unwrap(), c);

    let (events, next) = since(store, 0, None, 10);
    assert_eq!(seqs(&events), [a, b, c]);
    assert_eq!(next, c);
    let read: Vec<_> = events
        .iter()
        .map(|e| (e.call_sid.as_str(), e.kind, e.department.as_deref(), e.at))
        .collect();
    assert_eq!(
        read,
        [
            ("CA-1", Kind::Handoff, Some("billing"), 1_000),
            ("CA-1", Kind::Status, Some("billing"), 2_000),
            ("CA-2", Kind::Outcome, None, 3_000),
        ]
    );
    // After a number: only what came later.
    let (later, next) = since(store, a, None, 10);
    assert_eq!((seqs(&later), next), (vec![b, c], c));
    // A page at a time: the next read starts after the page.
    let (page, next) = since(store, 0, None, 2);
    assert_eq!((seqs(&page), next), (vec![a, b], b));
    let (rest, next) = since(store, next, None, 2);
    assert_eq!((seqs(&rest), next), (vec![c], c));
    let (none, next) = since(store, c, None, 10);
    assert!(none.is_empty());
    assert_eq!(next, c);
    // No room asked for: nothing, and the reader stays where it was.
    let (none, stay) = since(store, a, None, 0);
    assert!(none.is_empty());
    assert_eq!(stay, a);
}

fn an_agent_sees_only_the_departments_served(store: &Store) {
    let e1 = append(store, "CA-1", Kind::Handoff, Some("billing"), 1);
    let _e2 = append(store, "CA-2", Kind::Handoff, Some("technical"), 2);
    let _e3 = append(store, "CA-3", Kind::Handoff, Some("technical"), 3);
    let _e4 = append(store, "CA-4", Kind::Handoff, None, 4);
    let _e5 = append(store, "CA-5", Kind::Handoff, Some("technical"), 5);
    let e6 = append(store, "CA-6", Kind::Status, Some("billing"), 6);
    let billing = ["billing".to_owned()];
    // Pages of two: [e1 e2] gives e1; [e3 e4] and then [e5 e6] are read through at once,
    // since an empty full page says nothing about what follows.
    let (first, next) = since(store, 0, Some(&billing), 2);
    assert_eq!(seqs(&first), [e1]);
    let (second, next) = since(store, next, Some(&billing), 2);
    assert_eq!((seqs(&second), next), (vec![e6], e6));
    // Nothing more: the reader still moves past what it looked at.
    let (none, next) = since(store, next, Some(&billing), 2);
    assert!(none.is_empty());
    assert_eq!(next, e6);
    // Nobody's department: only those serving every department see it.
    let (all, _) = since(store, 0, None, 10);
    assert_eq!(all.len(), 6);
    let (none_served, next) = since(store, 0, Some(&[]), 10);
    assert!(none_served.is_empty());
    assert_eq!(next, e6);
}

fn queue_statuses_are_kept_on_the_call(store: &Store) {
    let status = |sid: &'static str| store.read_sync(move |db| db.queue_status(sid)).unwrap();
    assert_eq!(status("CA-none"), None);
    // No call, no row: setting a status changes nothing.
    store
        .write_sync(|db| db.set_queue_status("CA-none", WAITING, 1))
        .unwrap();
    assert_eq!(status("CA-none"), None);

    let mut call = new_call("CA-1", 1_000);
    call.department = Some("billing".into());
    call.handed_off_at = Some(1_500);
    store.write_sync(|db| db.save_call(&call, 1_500)).unwrap();
    assert_eq!(status("CA-1"), None);
    store
        .write_sync(|db| db.set_queue_status("CA-1", WAITING, 1_500))
        .unwrap();
    assert_eq!(status("CA-1").as_deref(), Some(WAITING));
    // Read in a write transaction (where it locks the call) as well.
    let locked = store.write_sync(|db| db.queue_status("CA-1")).unwrap();
    assert_eq!(locked.as_deref(), Some(WAITING));
    store
        .write_sync(|db| db.set_queue_status("CA-1", ANSWERED, 1_600))
        .unwrap();
    assert_eq!(status("CA-1").as_deref(), Some(ANSWERED));
}

fn waiting_and_recent_calls_are_listed_in_hand_off_order(store: &Store) {
    let calls = [
        ("CA-w2", Some("billing"), Some(2_000), Some(WAITING)),
        ("CA-w1", None, Some(1_000), Some(WAITING)),
        ("CA-w3", Some("technical"), Some(3_000), Some(WAITING)),
        ("CA-a1", Some("billing"), Some(1_500), Some(ANSWERED)),
        ("CA-a2", Some("technical"), Some(2_500), Some(ABANDONED)),
        ("CA-old", Some("billing"), Some(500), Some(ANSWERED)),
        // Handed off, no queue status (not tracked): in neither list.
        ("CA-x", Some("billing"), Some(2_600), None),
        // Never handed off.
        ("CA-ivr", None, None, None),
    ];
    for (sid, department, handed_off_at, queue) in calls {
        let mut call = new_call(sid, 100);
        call.department = department.map(str::to_owned);
        call.handed_off_at = handed_off_at;
        store
            .write_sync(|db| {
                db.save_call(&call, 100)?;
                match queue {
                    Some(q) => db.set_queue_status(sid, q, 100),
                    None => Ok(()),
                }
            })
            .unwrap();
    }
    let owned = |v: &[(&str, Option<&str>)]| -> Vec<(String, Option<String>)> {
        v.iter()
            .map(|(s, d)| ((*s).to_owned(), d.map(str::to_owned)))
            .collect()
    };
    let waiting = store.read_sync(|db| db.waiting_calls(10)).unwrap();
    assert_eq!(
        waiting,
        owned(&[
            ("CA-w1", None),
            ("CA-w2", Some("billing")),
            ("CA-w3", Some("technical"))
        ])
    );
    let first_two = store.read_sync(|db| db.waiting_calls(2)).unwrap();
    assert_eq!(first_two, waiting[..2]);

    let recent = store.read_sync(|db| db.recent_handoffs(1_000, 10)).unwrap();
    assert_eq!(
        recent,
        owned(&[("CA-a2", Some("technical")), ("CA-a1", Some("billing"))])
    );
    // `since` is inclusive.
    let from = store.read_sync(|db| db.recent_handoffs(2_500, 10)).unwrap();
    assert_eq!(from, owned(&[("CA-a2", Some("technical"))]));
    let newest = store.read_sync(|db| db.recent_handoffs(0, 1)).unwrap();
    assert_eq!(newest, owned(&[("CA-a2", Some("technical"))]));
}

/// Several nodes append events, each committing a moment after its append (in whatever order
/// the moments fall), while a console follows by number as the live stream does: it must end
/// up with every event, each once. A number handed out before another but committed after it
/// would be skipped for good.
fn a_console_catching_up_never_misses_an_event(store: &Store) {
    const WRITERS: usize = 4;
    const EACH: usize = 25;
    let done = AtomicBool::new(false);
    let seen = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut seen = Vec::new();
            let mut next = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let (events, n) = since(store, next, None, 7);
                seen.extend(seqs(&events));
                next = n;
                if finished && events.is_empty() {
                    return seen;
                }
            }
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                s.spawn(move || {
                    for i in 0..EACH {
                        store
                            .write_sync(|db| {
                                let seq = db.append_call_event(
                                    &format!("CA-{w}-{i}"),
                                    Kind::Handoff,
                                    Some("billing"),
                                    1_000,
                                )?;
                                // The rest of the webhook's transaction.
                                std::thread::sleep(Duration::from_micros(
                                    ((w * 7 + i * 3) % 5) as u64 * 400,
                                ));
                                Ok(seq)
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        reader.join().unwrap()
    });
    let all = seqs(&since(store, 0, None, 1_000).0);
    assert_eq!(all.len(), WRITERS * EACH);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "read out of order or twice"
    );
    let seen_set: BTreeSet<_> = seen.iter().copied().collect();
    let missed: Vec<_> = all.iter().filter(|s| !seen_set.contains(s)).collect();
    assert!(missed.is_empty(), "the console missed events {missed:?}");
}

both_backends!(
    before_the_first_event_there_is_nothing,
    events_are_numbered_upwards_and_read_back_in_order,
    an_agent_sees_only_the_departments_served,
    queue_statuses_are_kept_on_the_call,
    waiting_and_recent_calls_are_listed_in_hand_off_order,
    a_console_catching_up_never_misses_an_event,
);
