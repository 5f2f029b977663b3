//! Personal data: the export of an account, forgetting it (no name or number left in any
//! table, nor in the database's files once the erased copies are purged), and the retention
//! purge. Rows the other areas write are seeded with plain SQL.

use serde_json::{Value, json};

use super::Fresh;
use super::raw::{Bool, Bytes, Int, Null, Raw, Text, both_fresh, opt};
use crate::store::audit::Verdict;
use crate::store::privacy::{DAY_MS, Purged, Retention};

const NAME: &str = "Zebulon Quux";
const PHONE: &str = "+48601234567";

fn account(raw: &mut Raw, id: &str, name: &str, phone: &str) {
    raw.exec(
        "INSERT INTO accounts (id, name, phone, code_hash, code_key_version, attributes,
                               failed_count, created_at, test, phone_changed_at)
         VALUES ($1, $2, $3, $4, 1, '{\"plan\":\"pro\"}', 2, 1000, $5, 2000)",
        &[
            Text(id),
            Text(name),
            Text(phone),
            Bytes(id.as_bytes()),
            Bool(false),
        ],
    );
}

fn call(raw: &mut Raw, sid: &str, caller: &str, account: Option<&str>, at: i64, state: &Value) {
    raw.exec(
        "INSERT INTO calls (call_sid, caller, called, script, script_version, language, step,
                            account_id, level, factors, category, end_reason, started_at,
                            ended_at, updated_at, script_version_no, state)
         VALUES ($1, $2, '+48221234567', 'default', 'hash', 'pl', 'ended', $3, 'high',
                 'account_code', 'billing', 'completed', $4, $5, $5, 3, $6)",
        &[
            Text(sid),
            Text(caller),
            opt(account),
            Int(at),
            Int(at + 60_000),
            Text(&state.to_string()),
        ],
    );
}

fn failure(raw: &mut Raw, at: i64, caller: &str, account: Option<&str>, sid: &str) {
    raw.exec(
        "INSERT INTO failures (at, caller, account_id, call_sid, kind) VALUES ($1, $2, $3, $4, 'account_code')",
        &[Int(at), Text(caller), opt(account), Text(sid)],
    );
}

fn outcome(raw: &mut Raw, sid: &str, note: &str, at: i64) {
    raw.exec(
        "INSERT INTO call_outcomes (call_sid, resolved, category, note, recurring, agent, at)
         VALUES ($1, $2, 'billing', $3, $4, 'agent1', $5)",
        &[Text(sid), Bool(true), Text(note), Bool(true), Int(at)],
    );
}

/// A journey as callgate wrote it before journeys stopped naming the caller, and what a
/// speech menu heard (the caller saying their name and number).
fn state(from: &str, name: &str) -> Value {
    json!({
        "last_step": "menu",
        "journey": [{ "at": 1, "step": "greeting", "event": "call started",
                      "detail": format!("script default v1 from {}", crate::domain::mask_number(from)) }],
        "speech": { "text": format!("faktura {name} {from}"), "asr_confidence": 0.9 },
    })
}

fn export_lists_everything_held_about_an_account(fresh: &Fresh) {
    let mut raw = fresh.raw();
    account(&mut raw, "A-1", NAME, PHONE);
    account(&mut raw, "A-2", "Other", "+48700999888");
    for question in ["pin", "Dob"] {
        raw.exec(
            "INSERT INTO account_knowledge (account_id, question, answer_hash, key_version) VALUES ('A-1', $1, $2, 1)",
            &[Text(question), Bytes(b"hash")],
        );
    }
    for (created, used) in [(5_000, Some(6_000)), (3_000, None)] {
        raw.exec(
            "INSERT INTO call_codes (account_id, code_hash, key_version, created_at, expires_at, used_at, used_by_call)
             VALUES ('A-1', $1, 1, $2, $3, $4, $5)",
            &[
                Bytes(&i64::to_be_bytes(created)),
                Int(created),
                Int(created + 600_000),
                used.map_or(Null, Int),
                opt(used.map(|_| "CA1")),
            ],
        );
    }
    let journey_state =
        json!({ "journey": [{ "step": "greeting" }], "speech": { "text": "hello" } });
    call(&mut raw, "CA2", PHONE, Some("A-1"), 20_000, &json!({}));
    call(&mut raw, "CA1", PHONE, Some("A-1"), 10_000, &journey_state);
    call(
        &mut raw,
        "CA3",
        "+48700999888",
        Some("A-2"),
        15_000,
        &json!({}),
    );
    outcome(&mut raw, "CA1", "wants a refund", 70_000);
    failure(&mut raw, 9_000, PHONE, Some("A-1"), "CA1");
    failure(&mut raw, 8_000, "+48700111222", Some("A-1"), "CA1");
    failure(&mut raw, 9_500, "+48700999888", Some("A-2"), "CA3");
    drop(raw);
    for subject in ["account:A-1", "account:A-2", "account:A-1"] {
        fresh
            .store
            .write_sync(move |db| db.append_audit("ada", "account.update", subject, "", 30_000))
            .unwrap();
    }

    let export = fresh
        .store
        .read_sync(|db| db.export_account("A-1"))
        .unwrap();
    let call_json = |sid: &str, at: &str, ended: &str, journey: Value, speech: Value, outcome| {
        json!({
            "call_sid": sid, "started_at": at, "caller": PHONE, "called": "+48221234567",
            "script": "default", "script_version": 3, "level": "high", "factors": "account_code",
            "department": "billing", "end_reason": "completed", "handed_off_at": null,
            "ended_at": ended, "journey": journey, "speech": speech, "outcome": outcome,
        })
    };
    let expected = json!({
        "account": {
            "id": "A-1", "name": NAME, "phone": PHONE, "attributes": { "plan": "pro" },
            "has_account_code": true, "has_authenticator": false, "test_account": false,
            "created_at": "1970-01-01T00:00:01.000Z", "locked_until": null,
            "phone_changed_at": "1970-01-01T00:00:02.000Z", "failed_entries_in_a_row": 2,
            "knowledge_questions": ["Dob", "pin"],
        },
        "calls": [
            call_json("CA1", "1970-01-01T00:00:10.000Z", "1970-01-01T00:01:10.000Z",
                      json!([{ "step": "greeting" }]), json!({ "text": "hello" }),
                      json!({ "resolved": true, "category": "billing", "note": "wants a refund",
                              "recurring_problem": true, "agent": "agent1",
                              "at": "1970-01-01T00:01:10.000Z" })),
            call_json("CA2", "1970-01-01T00:00:20.000Z", "1970-01-01T00:01:20.000Z",
                      Value::Null, Value::Null, Value::Null),
        ],
        "failed_entries": [
            { "at": "1970-01-01T00:00:08.000Z", "kind": "account_code", "caller": "+48700111222" },
            { "at": "1970-01-01T00:00:09.000Z", "kind": "account_code", "caller": PHONE },
        ],
        "one_time_call_codes": [
            { "issued_at": "1970-01-01T00:00:03.000Z", "expires_at": "1970-01-01T00:10:03.000Z",
              "used_at": null, "used_by_call": null },
            { "issued_at": "1970-01-01T00:00:05.000Z", "expires_at": "1970-01-01T00:10:05.000Z",
              "used_at": "1970-01-01T00:00:06.000Z", "used_by_call": "CA1" },
        ],
        "audit": [
            { "seq": 1, "at": "1970-01-01T00:00:30.000Z", "actor": "ada", "action": "account.update", "detail": "" },
            { "seq": 3, "at": "1970-01-01T00:00:30.000Z", "actor": "ada", "action": "account.update", "detail": "" },
        ],
    });
    assert_eq!(export, expected);

    let missing = fresh
        .store
        .read_sync(|db| db.export_account("A-9"))
        .unwrap_err();
    assert_eq!(missing.to_string(), "no account with id A-9");
}

/// Every way the account's number and the numbers of its calls can be written, and its name.
const GONE: [&str; 8] = [
    "601234567",
    "+48******567",
    "700111222",
    "+48******222",
    "Zebulon",
    "Quux",
    "refund for Zebulon",
    "body with 601 234 567",
];

fn seed_person(raw: &mut Raw) {
    account(raw, "A-1", NAME, PHONE);
    account(raw, "A-2", "Other Person", "+48700999888");
    raw.exec(
        "INSERT INTO account_knowledge (account_id, question, answer_hash, key_version) VALUES ('A-1', 'pin', $1, 1)",
        &[Bytes(b"answer")],
    );
    raw.exec(
        "INSERT INTO call_codes (account_id, code_hash, key_version, created_at, expires_at) VALUES ('A-1', $1, 1, 1, 2)",
        &[Bytes(b"code")],
    );
    // The account's call from its number, one from another number, one unidentified from
    // its number, and someone else's.
    for (sid, caller, account, name, note, body) in [
        (
            "CA1",
            PHONE,
            Some("A-1"),
            NAME,
            "refund for Zebulon",
            "body with 601 234 567",
        ),
        (
            "CA2",
            "+48700111222",
            Some("A-1"),
            NAME,
            "refund for Zebulon",
            "body with 601 234 567",
        ),
        (
            "CA3",
            PHONE,
            None,
            NAME,
            "refund for Zebulon",
            "body with 601 234 567",
        ),
        (
            "CA4",
            "+48700999888",
            Some("A-2"),
            "Other",
            "other note",
            "other body",
        ),
    ] {
        call(raw, sid, caller, account, 1_000, &state(caller, name));
        failure(raw, 1_000, caller, account, sid);
        outcome(raw, sid, note, 2_000);
        raw.exec(
            "INSERT INTO crm_outbox (call_sid, body, next_at, created_at) VALUES ($1, $2, 0, 0)",
            &[Text(sid), Text(body)],
        );
        raw.exec(
            "INSERT INTO call_events (call_sid, kind, department, at) VALUES ($1, 'handoff', 'billing', 1)",
            &[Text(sid)],
        );
    }
    for number in [PHONE, "+48700999888"] {
        raw.exec(
            "INSERT INTO number_locks (caller, locked_until) VALUES ($1, 99)",
            &[Text(number)],
        );
    }
}

fn forget_leaves_no_name_or_number_in_any_table(fresh: &Fresh) {
    let mut raw = fresh.raw();
    seed_person(&mut raw);
    let before = raw.dump();
    assert!(before.iter().any(|l| l.contains("Zebulon")));
    let done = fresh
        .store
        .write_sync(|db| db.forget_account("A-1", "ada", 5_000))
        .unwrap();
    assert_eq!(done.calls_kept_anonymously, 2);
    assert!(
        done.pseudonym.starts_with("forgotten-"),
        "{}",
        done.pseudonym
    );

    let after = raw.dump();
    for line in &after {
        for gone in GONE {
            assert!(!line.contains(gone), "{gone} left in {line}");
        }
        assert!(!line.contains("A-1"), "the account's id left in {line}");
    }
    // Someone else's call, failure and lock keep their number; only the forgotten calls'
    // notes and CRM deliveries went.
    let other = |table: &str| {
        after
            .iter()
            .filter(|l| l.starts_with(&format!("{table}: ")) && l.contains("700999888"))
            .count()
    };
    assert_eq!(
        (
            other("calls"),
            other("failures"),
            other("number_locks"),
            other("accounts")
        ),
        (1, 1, 1, 1)
    );
    let count = |raw: &mut Raw, sql: &str| raw.texts(sql)[0].clone();
    assert_eq!(
        count(
            &mut raw,
            "SELECT COUNT(*) FROM call_outcomes WHERE note <> ''"
        ),
        "1"
    );
    assert_eq!(count(&mut raw, "SELECT COUNT(*) FROM crm_outbox"), "1");
    assert_eq!(count(&mut raw, "SELECT COUNT(*) FROM call_events"), "4");
    assert_eq!(count(&mut raw, "SELECT COUNT(*) FROM call_codes"), "0");
    assert_eq!(
        count(&mut raw, "SELECT COUNT(*) FROM account_knowledge"),
        "0"
    );
    // The counts stay true: the calls and failures, linked to the pseudonym, which keeps the
    // account's attributes.
    let pseudonym = &done.pseudonym;
    assert_eq!(
        raw.texts(&format!(
            "SELECT name || '|' || phone || '|' || attributes FROM accounts WHERE id = '{pseudonym}'"
        )),
        ["forgotten||{\"plan\":\"pro\"}"]
    );
    assert_eq!(
        raw.texts(&format!(
            "SELECT call_sid FROM calls WHERE account_id = '{pseudonym}' ORDER BY call_sid"
        )),
        ["CA1", "CA2"]
    );
    assert_eq!(
        count(
            &mut raw,
            &format!("SELECT COUNT(*) FROM failures WHERE account_id = '{pseudonym}'")
        ),
        "2"
    );
    // Journeys keep their shape, the numbers in them erased; what was said is gone.
    let state: Value =
        serde_json::from_str(&raw.texts("SELECT state FROM calls WHERE call_sid = 'CA2'")[0])
            .unwrap();
    assert_eq!(
        state["journey"][0]["detail"],
        "script default v1 from erased"
    );
    assert_eq!(state["speech"], json!({ "asr_confidence": 0.9 }));
    assert_eq!(state["last_step"], "menu");

    let trail = fresh
        .store
        .read_sync(|db| db.recent_audit(None, 10))
        .unwrap();
    assert_eq!(
        (
            trail[0].action.as_str(),
            trail[0].subject.as_str(),
            trail[0].detail.as_str()
        ),
        (
            "account.forget",
            "account:forgotten",
            "personal data erased; 2 call(s) kept anonymously"
        )
    );
    assert!(matches!(
        fresh.store.read_sync(|db| db.verify_audit()).unwrap(),
        Verdict::Intact { .. }
    ));
    let again = fresh
        .store
        .write_sync(|db| db.forget_account("A-1", "ada", 6_000))
        .unwrap_err();
    assert_eq!(again.to_string(), "no account with id A-1");
}

/// Where in the database's own files `needle` is: for SQLite the file and its write-ahead
/// log; for PostgreSQL every page of every table, index and TOAST table callgate made (read
/// with pageinspect, through the server: the bytes VACUUM would leave behind).
fn copies_of(fresh: &Fresh, raw: &mut Raw, needle: &str) -> Vec<String> {
    match fresh.dir() {
        Some(dir) => std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|f| {
                let path = f.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                bytes
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes())
                    .then(|| path.display().to_string())
            })
            .collect(),
        None => {
            raw.exec("CREATE EXTENSION IF NOT EXISTS pageinspect", &[]);
            assert!(
                needle.chars().all(|c| c.is_ascii_alphanumeric()),
                "{needle}"
            );
            raw.texts(&format!(
                "SELECT c.relname::TEXT FROM pg_class c
                 WHERE c.relkind IN ('r', 'i', 't') AND c.relpersistence = 'p'
                   AND (c.relnamespace = 'public'::REGNAMESPACE
                        OR c.oid IN (SELECT reltoastrelid FROM pg_class
                                     WHERE relnamespace = 'public'::REGNAMESPACE))
                   AND EXISTS (
                       SELECT 1 FROM generate_series(0, (pg_relation_size(c.oid) / 8192)::INT - 1) AS b
                       WHERE position('{needle}'::BYTEA IN get_raw_page(c.oid::REGCLASS::TEXT, b)) > 0)
                 ORDER BY 1"
            ))
        }
    }
}

fn no_copy_of_a_forgotten_name_stays_in_the_files(fresh: &Fresh) {
    let mut raw = fresh.raw();
    seed_person(&mut raw);
    fresh
        .store
        .write_sync(|db| db.forget_account("A-1", "ada", 5_000))
        .unwrap();
    // Erased from every table, but still in the files: SQLite's write-ahead log, and
    // PostgreSQL's dead row versions.
    assert!(!copies_of(fresh, &mut raw, "Zebulon").is_empty());
    fresh.store.purge_erased_copies().unwrap();
    for needle in ["Zebulon", "601234567", "700111222"] {
        assert_eq!(
            copies_of(fresh, &mut raw, needle),
            Vec::<String>::new(),
            "{needle}"
        );
    }
    // Someone else's data is still there.
    assert!(!copies_of(fresh, &mut raw, "700999888").is_empty());
}

fn retention_purge_removes_what_is_due_and_audits_it(fresh: &Fresh) {
    let now = 1_000 * DAY_MS;
    let day = |d: i64| now - d * DAY_MS;
    let mut raw = fresh.raw();
    account(&mut raw, "A-1", NAME, PHONE);
    let nul =
        json!({ "journey": [1], "speech": { "text": "a\u{0}b", "routed": true }, "x": "\u{0}" });
    let calls = [
        // (sid, started days ago, state)
        ("OLD1", 100, state(PHONE, NAME)),
        ("OLD2", 45, json!({ "speech": { "text": "only words" } })),
        ("OLD3", 45, nul),
        ("OLD4", 45, json!({ "journey": null })),
        ("OLD5", 45, json!({ "speech": { "asr_confidence": 1 } })),
        ("NEW1", 10, state(PHONE, NAME)),
    ];
    for (sid, days, state) in &calls {
        call(&mut raw, sid, PHONE, Some("A-1"), day(*days), state);
        outcome(&mut raw, sid, "note", day(*days));
        failure(&mut raw, day(*days), PHONE, Some("A-1"), sid);
        raw.exec(
            "INSERT INTO call_events (call_sid, kind, at) VALUES ($1, 'status', $2)",
            &[Text(sid), Int(day(*days))],
        );
    }
    for (sid, days, delivered, failed) in [
        ("OLD1", 100, Some(1), None),
        ("OLD2", 45, None, Some(1)),
        ("OLD3", 45, None, None),
        ("NEW1", 3, Some(1), None),
    ] {
        raw.exec(
            "INSERT INTO crm_outbox (call_sid, body, next_at, delivered_at, failed_at, created_at)
             VALUES ($1, 'body', 0, $2, $3, $4)",
            &[
                Text(sid),
                delivered.map_or(Null, Int),
                failed.map_or(Null, Int),
                Int(day(days)),
            ],
        );
    }
    drop(raw);
    for days in [200, 150, 20] {
        fresh
            .store
            .write_sync(move |db| db.append_audit("ada", "script.save", "script:x", "", day(days)))
            .unwrap();
    }
    let retention = Retention {
        journeys_days: 30,
        notes_days: 40,
        call_details_days: 90,
        events_days: 7,
        audit_days: 180,
    };
    let purged = fresh
        .store
        .write_sync(move |db| crate::store::privacy::purge_retention(db, &retention, now))
        .unwrap()
        .expect("nobody else purges");
    let expected = Purged {
        journeys: 4,
        notes: 5,
        call_details: 1,
        failures: 1,
        events: 6,
        crm_bodies: 2,
        audit_entries: 1,
    };
    assert_eq!(purged, expected);

    let mut raw = fresh.raw();
    let states: Vec<Value> = raw
        .texts("SELECT state FROM calls ORDER BY call_sid")
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    // NEW1, then OLD1..OLD5.
    assert_eq!(states[0], state(PHONE, NAME));
    assert_eq!(
        states[1],
        json!({ "last_step": "menu", "speech": { "asr_confidence": 0.9 } })
    );
    assert_eq!(states[2], json!({ "speech": {} }));
    assert_eq!(
        states[3],
        json!({ "speech": { "routed": true }, "x": "\u{0}" })
    );
    assert_eq!(states[4], json!({}));
    assert_eq!(states[5], json!({ "speech": { "asr_confidence": 1 } }));
    assert_eq!(
        raw.texts("SELECT call_sid || ' ' || caller || ' ' || COALESCE(account_id, '-') FROM calls ORDER BY call_sid"),
        [
            format!("NEW1 {PHONE} A-1"),
            "OLD1 erased -".to_owned(),
            format!("OLD2 {PHONE} A-1"),
            format!("OLD3 {PHONE} A-1"),
            format!("OLD4 {PHONE} A-1"),
            format!("OLD5 {PHONE} A-1"),
        ]
    );
    assert_eq!(
        raw.texts("SELECT call_sid FROM call_outcomes WHERE note <> '' ORDER BY call_sid"),
        ["NEW1"]
    );
    assert_eq!(raw.texts("SELECT COUNT(*) FROM failures"), ["5"]);
    assert_eq!(raw.texts("SELECT COUNT(*) FROM call_events"), ["0"]);
    assert_eq!(
        raw.texts("SELECT call_sid FROM crm_outbox ORDER BY call_sid"),
        ["NEW1", "OLD3"]
    );
    let trail = fresh
        .store
        .read_sync(|db| db.recent_audit(None, 10))
        .unwrap();
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "retention.purge",
            "audit.purge",
            "script.save",
            "script.save"
        ]
    );
    assert_eq!(trail[0].detail, serde_json::to_string(&expected).unwrap());
    assert!(matches!(
        fresh.store.read_sync(|db| db.verify_audit()).unwrap(),
        Verdict::Intact { entries: 4, .. }
    ));

    // Nothing more is due: nothing changes, nothing is recorded.
    let head = trail[0].seq;
    let again = fresh
        .store
        .write_sync(move |db| crate::store::privacy::purge_retention(db, &retention, now))
        .unwrap()
        .expect("nobody else purges");
    assert_eq!(again, Purged::default());
    assert_eq!(
        fresh
            .store
            .read_sync(|db| db.recent_audit(None, 1))
            .unwrap()[0]
            .seq,
        head
    );
    // Kept for ever: nothing goes.
    let forever = Retention {
        journeys_days: 0,
        notes_days: 0,
        call_details_days: 0,
        events_days: 0,
        audit_days: 0,
    };
    let none = fresh
        .store
        .write_sync(move |db| crate::store::privacy::purge_retention(db, &forever, now * 10))
        .unwrap()
        .expect("nobody else purges");
    assert_eq!(none, Purged::default());
}

/// More old calls than the PostgreSQL purge rewrites in one statement.
fn the_journey_purge_reaches_every_due_call(fresh: &Fresh) {
    let mut raw = fresh.raw();
    let n = 1_203;
    for i in 0..n {
        call(
            &mut raw,
            &format!("CA{i:05}"),
            PHONE,
            None,
            i,
            &state(PHONE, NAME),
        );
    }
    call(
        &mut raw,
        "LATE",
        PHONE,
        None,
        10 * DAY_MS,
        &state(PHONE, NAME),
    );
    let retention = Retention {
        journeys_days: 1,
        notes_days: 0,
        call_details_days: 0,
        events_days: 0,
        audit_days: 0,
    };
    let purged = fresh
        .store
        .write_sync(move |db| crate::store::privacy::purge_retention(db, &retention, 5 * DAY_MS))
        .unwrap()
        .expect("nobody else purges");
    assert_eq!(purged.journeys, n);
    let with_journey = raw.texts("SELECT call_sid FROM calls WHERE state LIKE '%journey%'");
    assert_eq!(with_journey, ["LATE"]);
}

both_fresh!(
    export_lists_everything_held_about_an_account,
    forget_leaves_no_name_or_number_in_any_table,
    no_copy_of_a_forgotten_name_stays_in_the_files,
    retention_purge_removes_what_is_due_and_audits_it,
    the_journey_purge_reaches_every_due_call,
);

/// Two nodes' daily purges at once (two pools on one PostgreSQL database): the first to claim
/// the purge runs it and audits it; the other, asking while the first's transaction is still
/// open, is told to skip; so the trail holds one `retention.purge`, not two.
#[test]
fn two_purges_at_once_on_postgres_one_runs_and_the_other_skips() {
    use std::sync::{Arc, mpsc};

    let fresh = super::postgres();
    let mut raw = fresh.raw();
    for i in 0..5 {
        let sid = format!("CA{i}");
        call(&mut raw, &sid, PHONE, None, i, &state(PHONE, NAME));
        raw.exec(
            "INSERT INTO call_events (call_sid, kind, at) VALUES ($1, 'status', $2)",
            &[Text(&sid), Int(i)],
        );
    }
    drop(raw);
    let other_node = crate::store::Store::new(Arc::new(
        crate::store::postgres::PgBackend::connect(fresh.url()).unwrap(),
    ));
    let retention = Retention {
        journeys_days: 0,
        notes_days: 0,
        call_details_days: 0,
        events_days: 1,
        audit_days: 0,
    };
    let now = 10 * DAY_MS;
    let (claimed, held) = mpsc::channel();
    let (finish, may_finish) = mpsc::channel::<()>();
    let (store, retention_ref) = (&fresh.store, &retention);
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(move || {
            store.write_sync(|db| {
                let purged = crate::store::privacy::purge_retention(db, retention_ref, now);
                // Still inside the transaction, so still holding the purge.
                claimed.send(()).unwrap();
                may_finish.recv().unwrap();
                purged
            })
        });
        held.recv().unwrap();
        let (answered, answer) = mpsc::channel();
        let other = &other_node;
        s.spawn(move || {
            let second = other
                .write_sync(|db| crate::store::privacy::purge_retention(db, retention_ref, now));
            answered.send(second).unwrap();
        });
        // Without the claim the second would wait on the first's row locks: let the first
        // finish after a while, so that shows as a second purge rather than a hang.
        let second = answer.recv_timeout(std::time::Duration::from_secs(10));
        finish.send(()).unwrap();
        let second = second.or_else(|_| answer.recv()).unwrap().unwrap();
        (first.join().unwrap().unwrap(), second)
    });
    assert_eq!(first.map(|p| p.events), Some(5));
    assert_eq!(
        second, None,
        "the second node must skip while the first purges"
    );

    // Once the first has committed the purge is free again: the next one runs (nothing is due).
    let later = other_node
        .write_sync(|db| crate::store::privacy::purge_retention(db, &retention, now))
        .unwrap();
    assert_eq!(later, Some(Purged::default()));
    let trail = fresh
        .store
        .read_sync(|db| db.recent_audit(None, 10))
        .unwrap();
    let purges = trail
        .iter()
        .filter(|e| e.action == "retention.purge")
        .count();
    assert_eq!(purges, 1, "{trail:?}");
}
