//! Calls: the whole row written and read back, the status callback's record, and two nodes
//! writing one call at once (a webhook's read-decide-write beside a status callback).

use std::time::Duration;

use super::support::{self, at_once, both_backends_seeded};
use super::{Fresh, both_backends};
use crate::store::Store;
use crate::store::calls::{Call, FlowState, SpeechRecord};
use crate::verify::Factors;

/// A call as the engine starts it: only what a first webhook knows.
pub fn new_call(sid: &str, now: i64) -> Call {
    Call {
        call_sid: sid.to_owned(),
        caller: "+48600100200".into(),
        called: Some("+48221234567".into()),
        stir_verstat: None,
        script: "default".into(),
        script_sha: "c0ffee".into(),
        script_version: Some(1),
        language: "pl".into(),
        step: "menu".into(),
        state: FlowState::default(),
        step_attempts: 0,
        step_silences: 0,
        account_id: None,
        caller_id_match: false,
        factors: Factors::default(),
        failed_attempts: 0,
        department: None,
        handoff: None,
        status: "in-progress".into(),
        end_reason: None,
        started_at: now,
        verified_at: None,
        handed_off_at: None,
        ended_at: None,
        duration_secs: None,
    }
}

/// A call with every field set to something other than its default.
fn full_call(sid: &str, account: &str) -> Call {
    let mut state = FlowState {
        return_to: Some("billing".into()),
        stepped_up: vec!["billing".into()],
        handoff_step: Some("to_billing".into()),
        handoff_result: Some("bridged".into()),
        last_step: Some("menu".into()),
        speech: Some(SpeechRecord {
            text: "faktura za luty".into(),
            asr_confidence: Some(0.875),
            department: Some("billing".into()),
            probability: 0.93,
            routed: true,
        }),
        ..FlowState::default()
    };
    state.note(1_000, "menu", "digits", Some("2".into()));
    state.note(1_500, "to_billing", "handoff", None);
    Call {
        call_sid: sid.to_owned(),
        caller: "+48600100200".into(),
        called: Some("+48221234567".into()),
        stir_verstat: Some("TN-Validation-Passed-A".into()),
        script: "default".into(),
        script_sha: "5e7a".into(),
        script_version: Some(7),
        language: "en".into(),
        step: "handed_off".into(),
        state,
        step_attempts: 2,
        step_silences: 1,
        account_id: Some(account.into()),
        caller_id_match: true,
        factors: Factors::from_db("account_code,caller_id,totp"),
        failed_attempts: 3,
        department: Some("billing".into()),
        handoff: Some("queue:billing".into()),
        status: "in-progress".into(),
        end_reason: Some("handed_off".into()),
        started_at: 1_000,
        verified_at: Some(1_200),
        handed_off_at: Some(1_500),
        ended_at: Some(9_000),
        duration_secs: Some(8),
    }
}

/// `Call` has no `PartialEq`; its `Debug` shows every field.
fn assert_same(got: &Call, want: &Call) {
    assert_eq!(format!("{got:#?}"), format!("{want:#?}"));
}

fn read(store: &Store, sid: &str) -> Option<Call> {
    let sid = sid.to_owned();
    store.read_sync(move |db| db.call(&sid)).unwrap()
}

fn save(store: &Store, call: &Call, now: i64) {
    let call = call.clone();
    store
        .write_sync(move |db| db.save_call(&call, now))
        .unwrap();
}

fn every_field_reads_back_as_saved(fresh: &Fresh) {
    support::account(fresh, "ACC-1");
    let store = &fresh.store;
    let call = full_call("CA-full", "ACC-1");
    save(store, &call, 10_000);
    assert_same(&read(store, "CA-full").unwrap(), &call);
    // Read in a write transaction too (there it locks the row).
    let locked = store.write_sync(|db| db.call("CA-full")).unwrap().unwrap();
    assert_same(&locked, &call);
}

fn saving_again_replaces_the_whole_row(fresh: &Fresh) {
    support::account(fresh, "ACC-1");
    let store = &fresh.store;
    save(store, &full_call("CA-1", "ACC-1"), 10_000);
    // Every optional field back to none, every count back to zero: nothing of the old row
    // may survive the upsert.
    let mut plain = new_call("CA-1", 2_000);
    plain.language = "de".into();
    plain.script_version = None;
    save(store, &plain, 11_000);
    assert_same(&read(store, "CA-1").unwrap(), &plain);
}

fn a_missing_call_is_none(store: &Store) {
    assert!(read(store, "CA-nobody").is_none());
    assert!(
        store
            .write_sync(|db| db.call("CA-nobody"))
            .unwrap()
            .is_none()
    );
}

fn a_status_for_an_unknown_call_leaves_a_record(store: &Store) {
    store
        .write_sync(|db| db.record_call_status("CA-lost", "completed", Some(30), 5_000))
        .unwrap();
    let call = read(store, "CA-lost").unwrap();
    assert_eq!(call.caller, "withheld");
    assert_eq!(call.step, "ended");
    assert_eq!(call.status, "completed");
    assert_eq!(call.started_at, 5_000);
    assert_eq!((call.script.as_str(), call.language.as_str()), ("", ""));
    // The first record is the bare row: no duration, end or journey yet (as on SQLite).
    assert_eq!(call.duration_secs, None);
    assert_eq!(call.ended_at, None);
    assert_eq!(call.end_reason, None);
    assert_eq!(call.script_version, None);
    assert!(call.state.journey.is_empty());
    // A second callback for it updates the record.
    store
        .write_sync(|db| db.record_call_status("CA-lost", "completed", Some(31), 6_000))
        .unwrap();
    let call = read(store, "CA-lost").unwrap();
    assert_eq!(call.duration_secs, Some(31));
    assert_eq!(call.ended_at, Some(6_000));
    // It was already at `ended`: no last step, no hang-up reason.
    assert_eq!(call.end_reason, None);
    assert_eq!(call.state.last_step, None);
    assert_eq!(call.state.journey.len(), 1);
    assert_eq!(call.state.journey[0].step, "ended");
}

fn a_terminal_status_ends_the_call_where_the_caller_left(store: &Store) {
    let mut call = new_call("CA-1", 1_000);
    call.step = "ask_code".into();
    call.state.note(1_100, "menu", "digits", None);
    save(store, &call, 1_100);
    store
        .write_sync(|db| db.record_call_status("CA-1", "ringing", None, 1_150))
        .unwrap();
    let mid = read(store, "CA-1").unwrap();
    assert_eq!(
        (mid.step.as_str(), mid.status.as_str()),
        ("ask_code", "ringing")
    );
    assert_eq!(mid.ended_at, None);
    assert_eq!(mid.end_reason, None);
    assert_eq!(mid.state.last_step, None);

    store
        .write_sync(|db| db.record_call_status("CA-1", "completed", Some(42), 2_000))
        .unwrap();
    let ended = read(store, "CA-1").unwrap();
    assert_eq!(ended.step, "ended");
    assert_eq!(ended.status, "completed");
    assert_eq!(ended.duration_secs, Some(42));
    assert_eq!(ended.ended_at, Some(2_000));
    assert_eq!(ended.end_reason.as_deref(), Some("caller_hung_up"));
    assert_eq!(ended.state.last_step.as_deref(), Some("ask_code"));
    let notes: Vec<_> = ended
        .state
        .journey
        .iter()
        .map(|e| (e.at, e.step.as_str(), e.event.as_str(), e.detail.as_deref()))
        .collect();
    assert_eq!(
        notes,
        [
            (1_100, "menu", "digits", None),
            (1_150, "ask_code", "status", Some("ringing")),
            (2_000, "ask_code", "status", Some("completed")),
        ]
    );
    // The engine's own fields are untouched.
    assert_eq!(ended.caller, call.caller);
    assert_eq!(ended.script_version, call.script_version);

    // A late callback keeps the first end time and an unknown duration keeps the known one.
    store
        .write_sync(|db| db.record_call_status("CA-1", "completed", None, 3_000))
        .unwrap();
    let late = read(store, "CA-1").unwrap();
    assert_eq!(late.ended_at, Some(2_000));
    assert_eq!(late.duration_secs, Some(42));
    assert_eq!(late.state.last_step.as_deref(), Some("ask_code"));
    assert_eq!(late.state.journey.len(), 4);
    assert_eq!(late.state.journey[3].step, "ended");
}

fn a_handed_off_call_stays_handed_off(store: &Store) {
    let mut call = new_call("CA-1", 1_000);
    call.step = "handed_off".into();
    call.handed_off_at = Some(1_500);
    save(store, &call, 1_500);
    store
        .write_sync(|db| db.record_call_status("CA-1", "completed", Some(300), 301_000))
        .unwrap();
    let ended = read(store, "CA-1").unwrap();
    assert_eq!(ended.step, "handed_off");
    assert_eq!(ended.status, "completed");
    assert_eq!(ended.ended_at, Some(301_000));
    assert_eq!(ended.end_reason, None);
    assert_eq!(ended.state.last_step, None);
    assert_eq!(ended.state.journey.len(), 1);
}

fn sids_are_counted_by_a_literal_prefix(store: &Store) {
    for sid in ["LT_a1", "LT_a2", "LTxa3", "lt_a4", "XLT_a5"] {
        save(store, &new_call(sid, 1_000), 1_000);
    }
    let count = |p: &'static str| store.read_sync(move |db| db.count_calls_with_sid_prefix(p));
    // `_` and `%` are characters here, not LIKE's wildcards; case counts.
    assert_eq!(count("LT_").unwrap(), 2);
    assert_eq!(count("LT").unwrap(), 3);
    assert_eq!(count("LT%").unwrap(), 0);
    assert_eq!(count("").unwrap(), 5);
    assert_eq!(count("nothing").unwrap(), 0);
}

/// A webhook (read the call, decide, save the whole row) and a status callback on another node
/// at the same moment, 50 times: the callback's status and journey note survive the save, and
/// the webhook's own change survives the callback, whichever goes first.
fn a_status_callback_beside_a_webhook_loses_nothing(store: &Store) {
    for round in 0..50 {
        let sid = format!("CA-race-{round}");
        save(store, &new_call(&sid, 1_000), 1_000);
        let (webhook, callback) = at_once(
            || {
                store.write_sync(|db| {
                    let mut call = db.call(&sid)?.expect("the call");
                    // Deciding takes a moment: the callback comes in meanwhile.
                    std::thread::sleep(Duration::from_millis(3));
                    call.step_attempts += 1;
                    db.save_call(&call, 2_000)
                })
            },
            || {
                std::thread::sleep(Duration::from_millis(1));
                store.write_sync(|db| db.record_call_status(&sid, "ringing", None, 2_000))
            },
        );
        webhook.unwrap();
        callback.unwrap();
        let call = read(store, &sid).unwrap();
        assert_eq!(
            call.step_attempts, 1,
            "round {round}: the webhook's save was lost"
        );
        assert_eq!(
            call.status, "ringing",
            "round {round}: the callback was lost"
        );
        assert_eq!(call.state.journey.len(), 1, "round {round}");
    }
}

/// The very first webhook of a call (no row yet) and a status callback at the same moment, 50
/// times: the outcome is one of the two orders, never the webhook's fresh row written over the
/// callback's record as if it had not been there.
fn a_first_webhook_beside_a_status_callback_loses_nothing(store: &Store) {
    for round in 0..50 {
        let sid = format!("CA-first-{round}");
        let (webhook, callback) = at_once(
            || {
                store.write_sync(|db| {
                    let call = match db.call(&sid)? {
                        // The callback came first: carry on from its record.
                        Some(mut call) => {
                            call.step_attempts += 1;
                            call
                        }
                        None => {
                            std::thread::sleep(Duration::from_millis(3));
                            new_call(&sid, 2_000)
                        }
                    };
                    db.save_call(&call, 2_000)
                })
            },
            || {
                std::thread::sleep(Duration::from_millis(1));
                store.write_sync(|db| db.record_call_status(&sid, "ringing", None, 2_000))
            },
        );
        webhook.unwrap();
        callback.unwrap();
        let call = read(store, &sid).unwrap();
        // Either order ends with the callback's status on the row.
        assert_eq!(
            call.status, "ringing",
            "round {round}: the callback was lost"
        );
        if call.caller == "withheld" {
            // The callback first: the webhook carried on from its record.
            assert_eq!(call.step_attempts, 1, "round {round}");
        } else {
            assert_eq!(call.step, "menu", "round {round}");
            assert_eq!(call.state.journey.len(), 1, "round {round}");
        }
    }
}

both_backends!(
    a_missing_call_is_none,
    a_status_for_an_unknown_call_leaves_a_record,
    a_terminal_status_ends_the_call_where_the_caller_left,
    a_handed_off_call_stays_handed_off,
    sids_are_counted_by_a_literal_prefix,
    a_status_callback_beside_a_webhook_loses_nothing,
    a_first_webhook_beside_a_status_callback_loses_nothing,
);

both_backends_seeded!(
    every_field_reads_back_as_saved,
    saving_again_replaces_the_whole_row
);
