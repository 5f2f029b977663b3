//! The reports' rows: what each backend counts from the same calls, failures and audit
//! entries, in the same order. The calls are seeded with plain SQL (the calls area's own
//! methods write them in steps, as a call goes); the audit entries through the store.

use std::collections::BTreeMap;

use serde_json::json;

use super::Fresh;
use super::raw::{Bool, Int, Null, Text, both_fresh, opt};
use crate::store::Store;
use crate::store::reports::{
    BusyMinute, FailureCount, FunnelDay, FunnelEnd, SecurityEvent, SignalCounts, SuspiciousCaller,
};

const DAY: i64 = 86_400_000;
/// 2023-11-15T00:00:00Z.
const T0: i64 = 1_700_006_400_000;

#[derive(Clone)]
struct Call {
    sid: String,
    caller: String,
    stir: Option<String>,
    script: String,
    version: Option<i64>,
    step: String,
    account: Option<String>,
    level: String,
    category: Option<String>,
    end_reason: Option<String>,
    started_at: i64,
    handed_off_at: Option<i64>,
    state: String,
    /// The category an agent confirmed, if one did.
    outcome: Option<String>,
}

impl Call {
    fn new(sid: &str, caller: &str, script: &str, started_at: i64) -> Self {
        Self {
            sid: sid.into(),
            caller: caller.into(),
            stir: None,
            script: script.into(),
            version: Some(1),
            step: "ended".into(),
            account: None,
            level: "none".into(),
            category: None,
            end_reason: Some("completed".into()),
            started_at,
            handed_off_at: None,
            state: "{}".into(),
            outcome: None,
        }
    }
}

#[derive(Clone)]
struct Failure {
    at: i64,
    caller: String,
    account: Option<String>,
    call_sid: String,
    kind: String,
}

fn failure(at: i64, caller: &str, account: Option<&str>, call_sid: &str, kind: &str) -> Failure {
    Failure {
        at,
        caller: caller.into(),
        account: account.map(Into::into),
        call_sid: call_sid.into(),
        kind: kind.into(),
    }
}

#[derive(Clone, Default)]
struct Data {
    /// (id, attributes as JSON)
    accounts: Vec<(String, String)>,
    calls: Vec<Call>,
    failures: Vec<Failure>,
    /// (at, action, subject)
    audit: Vec<(i64, String, String)>,
}

fn seed(fresh: &Fresh, data: &Data) {
    let mut raw = fresh.raw();
    // Text columns sorted by a locale on PostgreSQL: the reports must still sort as SQLite.
    raw.collate_by_locale(&[
        "calls.script",
        "calls.step",
        "calls.end_reason",
        "calls.category",
        "calls.caller",
        "failures.kind",
        "failures.caller",
    ]);
    for (id, attributes) in &data.accounts {
        raw.exec(
            "INSERT INTO accounts (id, name, phone, attributes, created_at) VALUES ($1, 'N', '+48500000000', $2, 0)",
            &[Text(id), Text(attributes)],
        );
    }
    for c in &data.calls {
        raw.exec(
            "INSERT INTO calls (call_sid, caller, stir_verstat, script, script_version, language, step,
                                account_id, level, category, end_reason, started_at, handed_off_at,
                                updated_at, script_version_no, state)
             VALUES ($1, $2, $3, $4, 'hash', 'en', $5, $6, $7, $8, $9, $10, $11, $10, $12, $13)",
            &[
                Text(&c.sid),
                Text(&c.caller),
                opt(c.stir.as_deref()),
                Text(&c.script),
                Text(&c.step),
                opt(c.account.as_deref()),
                Text(&c.level),
                opt(c.category.as_deref()),
                opt(c.end_reason.as_deref()),
                Int(c.started_at),
                c.handed_off_at.map_or(Null, Int),
                c.version.map_or(Null, Int),
                Text(&c.state),
            ],
        );
        if let Some(category) = &c.outcome {
            raw.exec(
                "INSERT INTO call_outcomes (call_sid, resolved, category, note, recurring, agent, at)
                 VALUES ($1, $2, $3, '', $4, 'agent', $5)",
                &[
                    Text(&c.sid),
                    Bool(true),
                    Text(category),
                    Bool(false),
                    Int(c.started_at),
                ],
            );
        }
    }
    for f in &data.failures {
        raw.exec(
            "INSERT INTO failures (at, caller, account_id, call_sid, kind) VALUES ($1, $2, $3, $4, $5)",
            &[
                Int(f.at),
                Text(&f.caller),
                opt(f.account.as_deref()),
                Text(&f.call_sid),
                Text(&f.kind),
            ],
        );
    }
    for (at, action, subject) in &data.audit {
        let (at, action, subject) = (*at, action.clone(), subject.clone());
        fresh
            .store
            .write_sync(move |db| db.append_audit("callgate", &action, &subject, "why", at))
            .unwrap();
    }
}

/// Everything every report method answers for `[from, to)`; categorised calls sorted, as
/// they come in no order.
#[derive(Debug, PartialEq)]
struct Answers {
    days: Vec<FunnelDay>,
    ends: Vec<FunnelEnd>,
    kinds: Vec<FailureCount>,
    handoffs: Vec<(String, i64, i64)>,
    departments: Vec<(String, String, i64)>,
    categorised: Vec<(String, BTreeMap<String, String>)>,
    security: Vec<SecurityEvent>,
    suspicious: Vec<SuspiciousCaller>,
    signals: SignalCounts,
    minutes: Vec<BusyMinute>,
}

fn answers(store: &Store, from: i64, to: i64, threshold: u32) -> Answers {
    store
        .read_sync(|db| {
            let mut categorised = db.categorised_calls(from, to)?;
            categorised.sort();
            Ok(Answers {
                days: db.funnel_days(from, to)?,
                ends: db.funnel_ends(from, to)?,
                kinds: db.failures_by_kind(from, to)?,
                handoffs: db.handoff_times(from, to)?,
                departments: db.account_department_calls(from, to)?,
                categorised,
                security: db.security_events(from, to)?,
                suspicious: db.suspicious_callers(from, to)?,
                signals: db.signal_counts(from, to)?,
                minutes: db.busy_minutes(from, to, threshold)?,
            })
        })
        .unwrap()
}

/// A small day of calls, each chosen for a rule of the reports.
fn small() -> Data {
    let n = |i: u32| format!("+4860000000{i}");
    let mut calls = Vec::new();
    // At the period's first millisecond: counted.
    let mut c = Call::new("CA1", &n(1), "default", T0);
    c.account = Some("A-1".into());
    c.level = "high".into();
    c.category = Some("billing".into());
    c.handed_off_at = Some(T0 + 30_000);
    c.stir = Some("TN-Validation-Passed-A".into());
    c.outcome = Some("support".into());
    calls.push(c);
    // The day's last millisecond; a lower-case STIR failure (SQLite's LIKE ignores ASCII case).
    let mut c = Call::new("CA2", &n(2), "default", T0 + DAY - 1);
    c.end_reason = Some("caller_hung_up".into());
    c.step = "menu".into();
    c.state = json!({ "last_step": "pin" }).to_string();
    c.stir = Some("tn-validation-failed-b".into());
    calls.push(c);
    let mut c = Call::new("CA3", &n(1), "default", T0 + DAY);
    c.version = Some(2);
    c.account = Some("A-1".into());
    c.level = "medium".into();
    c.category = Some("billing".into());
    c.handed_off_at = Some(T0 + DAY + 60_000);
    c.end_reason = Some("handoff_leave".into());
    c.stir = Some("TN-Validation-Failed-A".into());
    calls.push(c);
    // No version number, not ended; a last step recorded as null falls back to the step.
    let mut c = Call::new("CA4", &n(1), "Zeta", T0 + DAY + 5);
    c.version = None;
    c.account = Some("A-2".into());
    c.level = "low".into();
    c.end_reason = None;
    c.step = "greeting".into();
    c.state = json!({ "last_step": null }).to_string();
    calls.push(c);
    // A NUL in the state (serde_json writes \u0000), which PostgreSQL's jsonb refuses.
    let mut c = Call::new("CA5", &n(5), "alpha", T0 + DAY + 10);
    c.end_reason = Some("caller_hung_up".into());
    c.state = json!({ "last_step": "menu", "said": "a\u{0}b" }).to_string();
    calls.push(c);
    let mut c = Call::new("CA9", &n(4), "alpha", T0 + DAY + 20);
    c.end_reason = Some("caller_hung_up".into());
    c.state = json!({ "last_step": "menu" }).to_string();
    calls.push(c);
    // No script: not in the funnel, but handed off and filed under a department.
    let mut c = Call::new("CA8", &n(6), "", T0 + 10);
    c.version = None;
    c.account = Some("A-2".into());
    c.category = Some("tech".into());
    c.handed_off_at = Some(T0 + 10 + 5_000);
    calls.push(c);
    // Outside the period: at its end, and just before it.
    calls.push(Call::new("CA6", &n(1), "default", T0 + 2 * DAY));
    calls.push(Call::new("CA7", &n(1), "default", T0 - 1));

    let mut failures = vec![
        failure(T0 + 1_000, &n(2), None, "CA2", "account_code"),
        failure(T0 + 1_500, &n(2), None, "CA2", "account_code"),
        failure(T0 + 2_000, &n(2), None, "CA2", "totp"),
        failure(T0 + 61_000, &n(3), None, "CAx", "totp_replay"),
        failure(T0 - 5, &n(2), None, "CA2", "account_code"),
        failure(T0 + DAY + 100, &n(1), Some("A-1"), "CA3", "totp"),
    ];
    for i in 0..3 {
        failures.push(failure(
            T0 + 120_000 + i,
            &n(7),
            None,
            "CA70",
            "account_code",
        ));
        failures.push(failure(T0 + 180_000 + i, &n(8), None, "CA80", "answer"));
    }
    let audit = [
        (T0 - 1, "security.account_locked", "account:A-1"),
        (T0 + 5, "security.account_locked", "account:A-1"),
        (T0 + 6, "SECURITY.number_locked", "number:x"),
        (T0 + 7, "securityXnumber_locked", "number:y"),
        (T0 + 8, "script.save", "script:default"),
        (T0 + 2 * DAY, "security.number_locked", "number:z"),
    ]
    .into_iter()
    .map(|(at, a, s)| (at, a.to_owned(), s.to_owned()))
    .collect();
    Data {
        accounts: vec![
            ("A-1".into(), r#"{"plan":"pro"}"#.into()),
            ("A-2".into(), r#"{"plan":"basic"}"#.into()),
        ],
        calls,
        failures,
        audit,
    }
}

fn day(day: &str, script: &str, version: i64, counts: [i64; 8]) -> FunnelDay {
    let [
        called,
        identified,
        level_low,
        level_medium,
        level_high,
        verified,
        handed_off,
        abandoned,
    ] = counts;
    FunnelDay {
        day: day.into(),
        script: script.into(),
        version,
        called,
        identified,
        level_low,
        level_medium,
        level_high,
        verified,
        handed_off,
        abandoned,
    }
}

fn reports_count_what_happened(fresh: &Fresh) {
    seed(fresh, &small());
    let a = answers(&fresh.store, T0, T0 + 2 * DAY, 3);
    let s = |x: &str| x.to_owned();
    assert_eq!(
        a.days,
        [
            day("2023-11-15", "default", 1, [2, 1, 0, 0, 1, 1, 1, 1]),
            day("2023-11-16", "Zeta", 0, [1, 1, 1, 0, 0, 0, 0, 0]),
            day("2023-11-16", "alpha", 1, [2, 0, 0, 0, 0, 0, 0, 2]),
            day("2023-11-16", "default", 2, [1, 1, 0, 1, 0, 1, 1, 1]),
        ]
    );
    let end = |script: &str, version, reason: &str, step: &str, calls| FunnelEnd {
        script: s(script),
        version,
        end_reason: s(reason),
        last_step: s(step),
        calls,
    };
    assert_eq!(
        a.ends,
        [
            end("alpha", 1, "caller_hung_up", "menu", 2),
            end("Zeta", 0, "in progress", "greeting", 1),
            end("default", 1, "caller_hung_up", "pin", 1),
        ]
    );
    let kind = |kind: &str, failures, calls| FailureCount {
        kind: s(kind),
        failures,
        calls,
    };
    assert_eq!(
        a.kinds,
        [
            kind("account_code", 5, 2),
            kind("answer", 3, 1),
            kind("totp", 2, 2),
            kind("totp_replay", 1, 1),
        ]
    );
    assert_eq!(
        a.handoffs,
        [
            (s(""), 0, 5_000),
            (s("default"), 1, 30_000),
            (s("default"), 2, 60_000)
        ]
    );
    assert_eq!(
        a.departments,
        [
            (s("A-1"), s("billing"), T0),
            (s("A-1"), s("billing"), T0 + DAY),
            (s("A-2"), s("tech"), T0 + 10),
        ]
    );
    let plan = |p: &str| BTreeMap::from([(s("plan"), s(p))]);
    assert_eq!(
        a.categorised,
        [
            (s("billing"), plan("pro")),
            (s("support"), plan("pro")),
            (s("tech"), plan("basic")),
        ]
    );
    assert_eq!(
        a.security
            .iter()
            .map(|e| (
                e.at,
                e.action.as_str(),
                e.subject.as_str(),
                e.detail.as_str()
            ))
            .collect::<Vec<_>>(),
        [
            (T0 + 5, "security.account_locked", "account:A-1", "why"),
            (T0 + 6, "SECURITY.number_locked", "number:x", "why"),
        ]
    );
    let caller = |i: u32, calls, accounts, failures| SuspiciousCaller {
        caller: format!("+4860000000{i}"),
        calls,
        accounts,
        failures,
    };
    assert_eq!(
        a.suspicious,
        [
            caller(2, 1, 0, 3),
            caller(7, 0, 0, 3),
            caller(8, 0, 0, 3),
            caller(1, 3, 2, 1),
        ]
    );
    assert_eq!(
        a.signals,
        SignalCounts {
            stir_failed_calls: 2,
            totp_replays: 1,
            failed_entries: 11,
        }
    );
    let minute = |start, failures| BusyMinute {
        start,
        failures,
        numbers: 1,
    };
    assert_eq!(
        a.minutes,
        [
            minute(T0, 3),
            minute(T0 + 120_000, 3),
            minute(T0 + 180_000, 3)
        ]
    );
    // An empty period, and one that holds nothing yet.
    let none = answers(&fresh.store, T0, T0, 1);
    assert!(none.days.is_empty() && none.suspicious.is_empty() && none.minutes.is_empty());
    assert_eq!(none.signals, SignalCounts::default());
}

both_fresh!(reports_count_what_happened);

/// A deterministic pseudo-random stream (no seed file, no dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(self.0 >> 33).unwrap() % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.next(from.len())]
    }

    fn maybe(&mut self, from: &[&str]) -> Option<String> {
        let i = self.next(from.len() + 1);
        from.get(i).map(|s| (*s).to_owned())
    }

    fn time(&mut self, start: i64, span: i64) -> i64 {
        start + i64::try_from(self.next(usize::try_from(span).unwrap())).unwrap()
    }
}

/// Many calls, failures and audit entries over a week, with every kind of value the reports
/// look at (and the ties they must break the same way).
fn many() -> Data {
    let mut r = Lcg(7);
    let callers: Vec<String> = (0..12).map(|i| format!("+4870000{i:04}")).collect();
    let callers: Vec<&str> = callers.iter().map(String::as_str).collect();
    let accounts: Vec<String> = (1..=6).map(|i| format!("A-{i}")).collect();
    let account_ids: Vec<&str> = accounts.iter().map(String::as_str).collect();
    let mut data = Data {
        accounts: accounts
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let plan = ["pro", "basic", "Pro"][i % 3];
                (
                    id.clone(),
                    json!({ "plan": plan, "region": (["north", "south"][i % 2]) }).to_string(),
                )
            })
            .collect(),
        ..Data::default()
    };
    // Millisecond-exact boundaries are tried by starting some calls on them.
    let starts = [T0, T0 + DAY, T0 + DAY - 1, T0 + 3 * DAY, -1_500];
    for i in 0..400 {
        let started_at = if i % 25 == 0 {
            starts[(i / 25) % starts.len()]
        } else {
            r.time(T0 - DAY, 6 * DAY)
        };
        let script = r.pick(&["default", "Zeta", "alpha", "", "Ärger", "default"]);
        let mut c = Call::new(&format!("CA{i:04}"), r.pick(&callers), script, started_at);
        c.version = [None, Some(1), Some(2), Some(3)][r.next(4)];
        c.account = r.maybe(&account_ids);
        c.level = r.pick(&["none", "low", "medium", "high"]).into();
        c.category = r.maybe(&["billing", "tech", "Support", "sales"]);
        c.end_reason = r.maybe(&[
            "completed",
            "caller_hung_up",
            "handoff_hangup",
            "handoff_leave",
            "abandoned",
            "error",
        ]);
        c.step = r.pick(&["greeting", "menu", "pin", "Pin"]).into();
        c.state = match r.next(5) {
            0 => "{}".into(),
            1 => json!({ "last_step": null }).to_string(),
            2 => json!({ "last_step": r.pick(&["menu", "pin", "Menu"]), "said": "x\u{0}y" })
                .to_string(),
            _ => json!({ "last_step": r.pick(&["menu", "pin", "Menu", "ask"]) }).to_string(),
        };
        c.stir = r.maybe(&[
            "TN-Validation-Passed-A",
            "TN-Validation-Failed-B",
            "tn-validation-failed-c",
            "No-TN-Validation",
        ]);
        if r.next(3) == 0 {
            c.handed_off_at = Some(started_at + i64::try_from(r.next(300_000)).unwrap());
        }
        if c.account.is_some() && r.next(3) == 0 {
            c.outcome = Some(r.pick(&["billing", "tech", "Support"]).into());
        }
        data.calls.push(c);
    }
    for i in 0..300 {
        // Bunched into a few minutes, so some are busy.
        let at = if i % 3 == 0 {
            r.time(T0 + 3_600_000, 180_000)
        } else {
            r.time(T0 - DAY, 6 * DAY)
        };
        let sid = format!("CA{:04}", r.next(400));
        data.failures.push(failure(
            at,
            r.pick(&callers),
            r.maybe(&account_ids).as_deref(),
            &sid,
            r.pick(&["account_code", "totp", "totp_replay", "answer", "Totp"]),
        ));
    }
    for _ in 0..60 {
        let action = r.pick(&[
            "security.account_locked",
            "security.number_locked",
            "Security.number_locked",
            "script.save",
            "securityxlocked",
        ]);
        data.audit
            .push((r.time(T0 - DAY, 6 * DAY), action.into(), "subject".into()));
    }
    data
}

/// The same data in SQLite and in PostgreSQL: every report method answers the same, over
/// periods that cut through the data at day and millisecond boundaries.
#[test]
fn sqlite_and_postgres_report_the_same() {
    let data = many();
    let (lite, pg) = (super::sqlite(), super::postgres());
    seed(&lite, &data);
    seed(&pg, &data);
    let periods = [
        (T0, T0 + DAY),
        (T0 - DAY, T0 + 5 * DAY),
        (T0 + 1, T0 + DAY - 1),
        (T0 + 3_600_000, T0 + 3_780_000),
        (i64::MIN, i64::MAX),
    ];
    for (from, to) in periods {
        for threshold in [1, 4] {
            let expected = answers(&lite.store, from, to, threshold);
            let got = answers(&pg.store, from, to, threshold);
            assert_eq!(got, expected, "period {from}..{to}");
        }
    }
    // The comparison is not of empty answers.
    let wide = answers(&lite.store, i64::MIN, i64::MAX, 4);
    assert!(wide.days.len() > 20, "{}", wide.days.len());
    assert!(wide.ends.len() > 20 && wide.ends[0].calls > wide.ends[20].calls);
    assert!(wide.kinds.len() == 5 && wide.handoffs.len() > 100);
    assert!(wide.departments.len() > 100 && wide.categorised.len() > 100);
    assert!(
        wide.categorised
            .iter()
            .all(|(_, attributes)| attributes.len() == 2)
    );
    assert!(wide.security.len() > 20 && wide.suspicious.len() > 5);
    // The three minutes a third of the failures were bunched into.
    assert!(wide.minutes.len() >= 3 && wide.signals.stir_failed_calls > 100);
    assert!(wide.days.iter().any(|d| d.day == "1969-12-31"));
}
