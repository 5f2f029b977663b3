//! kill -9 of the real `callgate serve` process between and during webhooks: every answered
//! webhook's state survives, the call goes on after a restart, the database stays intact.
//! (Answering a webhook before its group commit was written is caught by the second test: a
//! deliberate 5 ms gap between answer and commit fails it at once.)

use crate::common::process::ServerProcess;
use crate::common::*;
use callgate::store::users::Role;

const MENU: &str = "W sprawie rozliczeń naciśnij 1.";
const ASK_TOTP: &str = "aplikacji uwierzytelniającej";

#[tokio::test]
async fn a_call_survives_kill_9_after_each_of_its_webhooks() {
    let app = TestApp::spawn().await;
    let secret = app
        .add_account("ACC-K", "+48601234567", Some("246810"), true)
        .unwrap();
    let agent = app.user("agent", Role::Agent);
    let mut app = app;
    app.stop().await;
    let dir = app.data_dir.clone();

    let server = ServerProcess::start(&dir);
    server.wait_ready().await;
    let mut caller = Caller::new(&server, "+48700000900");
    caller.dial().await;
    assert!(caller.press("246810#").await.said().contains(ASK_TOTP));
    server.kill_9();

    let server = ServerProcess::start(&dir);
    server.wait_ready().await;
    caller.app = server.endpoint();
    let menu = caller.press(&totp_now(&secret)).await;
    assert!(menu.said().contains(MENU), "{}", menu.said());
    server.kill_9();

    let server = ServerProcess::start(&dir);
    server.wait_ready().await;
    caller.app = server.endpoint();
    assert!(caller.press("2").await.handoff().is_some());
    let r = server
        .http
        .get(format!("{}/api/calls/{}", server.addr, caller.call_sid))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    let pop: serde_json::Value = r.json().await.unwrap();
    assert_eq!(pop["level"], "high");
    assert_eq!(pop["category"], "technical");
    server.kill_9();

    let conn = rusqlite::Connection::open(dir.join("callgate.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// What one call of the load saw answered before the server died.
#[derive(Debug, Default)]
struct Seen {
    call_sid: String,
    /// The account code was answered with the menu.
    verified: bool,
    /// The menu choice was answered with the hand-off.
    handed_off: bool,
}

/// One signed webhook that may fail (the server is being killed): the answer's body on a 200.
async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    params: &[(String, String)],
) -> Option<String> {
    let sig =
        callgate::twilio::signature::compute(AUTH_TOKEN, &format!("{PUBLIC_URL}{path}"), params);
    let r = http
        .post(format!("{base}{path}"))
        .header("X-Twilio-Signature", sig)
        .form(params)
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    r.text().await.ok()
}

/// Calls from one account's phone until the server dies, recording what was answered.
async fn calls_until_killed(base: String, phone: String, code: String) -> Vec<Seen> {
    let http = reqwest::Client::new();
    let mut seen = Vec::new();
    loop {
        let leg = callgate::twilio::emulator::CallLeg::new(&phone, DIALED);
        let mut record = Seen {
            call_sid: leg.call_sid.clone(),
            ..Seen::default()
        };
        if post(&http, &base, "/twilio/voice", &leg.params("ringing", &[]))
            .await
            .is_none()
        {
            return seen;
        }
        let menu = post(
            &http,
            &base,
            "/twilio/ivr/account-code",
            &leg.params("in-progress", &[("Digits", &code)]),
        )
        .await;
        let Some(menu) = menu else {
            seen.push(record);
            return seen;
        };
        record.verified = menu.contains(MENU);
        let handoff = post(
            &http,
            &base,
            "/twilio/ivr/menu",
            &leg.params("in-progress", &[("Digits", "1")]),
        )
        .await;
        record.handed_off = handoff.as_deref().is_some_and(|d| d.contains("<Enqueue"));
        let done = handoff.is_none();
        seen.push(record);
        if done {
            return seen;
        }
    }
}

/// Wrong codes from a few numbers until the server dies: every tenth failure of a number locks
/// it, which appends to the audit trail, so kills land in the middle of audit writes too.
async fn guesses_until_killed(base: String, round: u32) {
    let http = reqwest::Client::new();
    loop {
        let phone = format!("+48790{round:02}0000");
        let leg = callgate::twilio::emulator::CallLeg::new(&phone, DIALED);
        if post(&http, &base, "/twilio/voice", &leg.params("ringing", &[]))
            .await
            .is_none()
        {
            return;
        }
        for _ in 0..3 {
            let wrong = leg.params("in-progress", &[("Digits", "99999999")]);
            if post(&http, &base, "/twilio/ivr/account-code", &wrong)
                .await
                .is_none()
            {
                return;
            }
        }
    }
}

#[tokio::test]
async fn answered_webhooks_survive_kill_9_at_random_moments_under_load() {
    let app = TestApp::spawn().await;
    let callers: Vec<(String, String)> = (0..16)
        .map(|i| {
            let (phone, code) = (format!("+4860100{i:04}"), format!("7{i:05}"));
            app.add_account(&format!("ACC-L{i}"), &phone, Some(&code), false);
            (phone, code)
        })
        .collect();
    let mut app = app;
    app.stop().await;
    let dir = app.data_dir.clone();

    let mut checked = (0, 0);
    let mut audit_entries = 0;
    for round in 0..20 {
        let server = ServerProcess::start(&dir);
        server.wait_ready().await;
        let guesser = tokio::spawn(guesses_until_killed(server.addr.clone(), round));
        let tasks: Vec<_> = callers
            .iter()
            .map(|(phone, code)| {
                tokio::spawn(calls_until_killed(
                    server.addr.clone(),
                    phone.clone(),
                    code.clone(),
                ))
            })
            .collect();
        let pause = rand::random::<u64>() % 400 + 50;
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        server.kill_9();
        let mut seen = Vec::new();
        for t in tasks {
            seen.extend(t.await.unwrap());
        }
        guesser.await.unwrap();

        let conn = rusqlite::Connection::open(dir.join("callgate.db")).unwrap();
        // The audit trail has no holes and no half-written entry, whenever the kill came.
        match callgate::store::AuditDb::verify_audit(&conn).unwrap() {
            callgate::store::audit::Verdict::Intact { entries, .. } => audit_entries = entries,
            broken => panic!("audit trail after kill -9 in round {round}: {broken:?}"),
        }
        for s in &seen {
            let row: Option<(String, String, Option<String>)> = conn
                .query_row(
                    "SELECT step, factors, category FROM calls WHERE call_sid = ?1",
                    [&s.call_sid],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .ok();
            if s.verified {
                let (step, factors, _) = row
                    .clone()
                    .unwrap_or_else(|| panic!("answered call {} lost", s.call_sid));
                assert!(
                    step == "menu" || step == "handed_off",
                    "{}: step {step}",
                    s.call_sid
                );
                assert!(
                    factors.contains("account_code"),
                    "{}: factors {factors}",
                    s.call_sid
                );
                checked.0 += 1;
            }
            if s.handed_off {
                let (step, _, category) = row.unwrap();
                assert_eq!(
                    (step.as_str(), category.as_deref()),
                    ("handed_off", Some("billing")),
                    "{}",
                    s.call_sid
                );
                checked.1 += 1;
            }
        }
    }
    let conn = rusqlite::Connection::open(dir.join("callgate.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    eprintln!(
        "answered and verified: {}, handed off: {}, audit entries: {audit_entries}",
        checked.0, checked.1
    );
    assert!(audit_entries > 0, "lockouts were audited during the kills");
    assert!(
        checked.0 > 20 && checked.1 > 20,
        "the kills hit calls in flight: {checked:?}"
    );
}

#[tokio::test]
async fn sigterm_lets_the_webhook_in_flight_finish() {
    let app = TestApp::spawn().await;
    let mut app = app;
    app.stop().await;
    let dir = app.data_dir.clone();
    let server = ServerProcess::start(&dir);
    server.wait_ready().await;
    // Another process holds the write lock, so the webhook stays in flight.
    let blocker = rusqlite::Connection::open(dir.join("callgate.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let leg = callgate::twilio::emulator::CallLeg::new("+48700000800", DIALED);
    let sid = leg.call_sid.clone();
    let base = server.addr.clone();
    let in_flight = tokio::spawn(async move {
        post(
            &reqwest::Client::new(),
            &base,
            "/twilio/voice",
            &leg.params("ringing", &[]),
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.terminate();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    blocker.execute_batch("COMMIT").unwrap();
    let answer = in_flight
        .await
        .unwrap()
        .expect("the webhook in flight was answered");
    assert!(answer.contains("<Gather"), "{answer}");
    let status = server.wait_exit(std::time::Duration::from_secs(10));
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    let conn = rusqlite::Connection::open(dir.join("callgate.db")).unwrap();
    let step: String = conn
        .query_row("SELECT step FROM calls WHERE call_sid = ?1", [&sid], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(step, "account-code");
}

/// The database stays locked by another process longer than the writer waits: the caller hears
/// the polite apology (never a 5xx, which Twilio reads out as an application error), nothing of
/// the webhook is written, and the line works again as soon as the lock is gone.
#[tokio::test]
async fn a_locked_database_gets_the_caller_an_apology_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let blocker = rusqlite::Connection::open(app.data_dir.join("callgate.db")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let mut caller = Caller::new(&app, "+48700000900");
    let started = std::time::Instant::now();
    let sorry = caller.dial().await;
    assert!(
        sorry.said().contains("problem techniczny") && sorry.hangs_up(),
        "{}",
        sorry.xml
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "answered before Twilio gives up"
    );
    blocker.execute_batch("ROLLBACK").unwrap();
    let conn = rusqlite::Connection::open(app.data_dir.join("callgate.db")).unwrap();
    let rows: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM calls WHERE call_sid = ?1",
            [&caller.call_sid],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 0, "nothing half-written");
    let mut next = Caller::new(&app, "+48700000901");
    assert!(next.dial().await.gather().is_some(), "the line works again");
}

/// The database cannot grow (a full disk, here the `--max-database-mb` cap, which fails writes
/// the same way): the caller hears the apology, the failed webhook leaves nothing half-written,
/// what was committed before is intact, and once there is room again calls go through.
#[tokio::test]
async fn a_full_database_gets_the_caller_an_apology_and_loses_nothing() {
    let app = TestApp::spawn_with(|s| s.max_database_mb = Some(1)).await;
    let db = app.data_dir.join("callgate.db");
    let filler = rusqlite::Connection::open(&db).unwrap();
    let used: i64 = filler
        .query_row(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let room = 1024 * 1024 - used - 24 * 1024;
    filler
        .execute(
            "INSERT INTO settings (key, value, updated_at) VALUES ('filler', ?1, 0)",
            [String::from_utf8(vec![b'x'; usize::try_from(room).unwrap()]).unwrap()],
        )
        .unwrap();

    let mut answered = Vec::new();
    let mut full = None;
    for i in 0..200 {
        let mut caller = Caller::new(&app, &format!("+4870100{i:04}"));
        let doc = caller.dial().await;
        if doc.gather().is_some() {
            answered.push(caller.call_sid.clone());
        } else {
            assert!(
                doc.said().contains("problem techniczny") && doc.hangs_up(),
                "{}",
                doc.xml
            );
            full = Some(caller.call_sid.clone());
            break;
        }
    }
    let full = full.expect("the cap was reached");
    assert!(!answered.is_empty());
    let count = |sid: &str| -> i64 {
        filler
            .query_row(
                "SELECT COUNT(*) FROM calls WHERE call_sid = ?1",
                [sid],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(count(&full), 0, "nothing half-written");
    assert!(
        answered.iter().all(|sid| count(sid) == 1),
        "committed calls intact"
    );
    let check: String = filler
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");

    filler
        .execute("DELETE FROM settings WHERE key = 'filler'", [])
        .unwrap();
    let mut after = Caller::new(&app, "+48701009999");
    assert!(
        after.dial().await.gather().is_some(),
        "room again: the line works"
    );
}
