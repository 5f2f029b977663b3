//! A simulated guessing attack: 10,000 random account-code guesses from rotating caller IDs
//! against 100,000 accounts, run through the real call flow on a real database. The limits must
//! stop it: every number is locked after its allowance, no account is *verified* by guessing,
//! accounts are *identified* no more often than the code space allows, and the attack shows as
//! an alert in the metrics and in the security report.
//!
//! The odds, stated: account codes here are 9 digits and 100,000 of the 10^9 are in use, so one
//! random guess names some account with p = 10^-4 (about 1 in 10,000 guesses, or one call in
//! ~3,300). Naming an account gives level `low` only. `medium` needs, besides the code, the
//! account's registered phone as caller ID with STIR/SHAKEN not failed, or a one-time call code
//! (8 digits, valid 30 minutes, once), or TOTP; an attacker who can spoof the one right number
//! for the account a random guess happened to hit is outside what keypad limits can stop.

use crate::common::*;
use callgate::domain::{CallSid, CallerId, Keypad, Region, StirVerstat};
use callgate::ivr::engine::{CallInput, Event};
use callgate::store::users::Role;
use callgate::twilio::{render, voice};
use rand::{Rng, SeedableRng};

const ACCOUNTS: u64 = 100_000;
const GUESSES: u32 = 10_000;
const NUMBERS: u32 = 500; // 20 guesses per number: the second half meets the lock
const ATTEMPTS_PER_CALL: u32 = 3;

fn params(sid: &str, from: &str, digits: Option<&str>) -> CallInput {
    CallInput {
        call_sid: CallSid::parse(sid).unwrap(),
        caller: CallerId::from_twilio(Some(from), Region::default()),
        called: Some(DIALED.into()),
        stir: StirVerstat::parse(None),
        digits: Keypad::from_digits(digits),
        speech: None,
    }
}

#[tokio::test]
async fn ten_thousand_guesses_from_rotating_numbers_verify_nobody_and_raise_the_alert() {
    let app = TestApp::spawn().await;
    let admin = app.user("admin", Role::Admin);
    callgate::loadtest::fixtures::seed(&app.store(), &app.keys(), ACCOUNTS, 0, true).unwrap();
    let ctx = &app.state.ivr;
    let mut conn = rusqlite::Connection::open(app.data_dir.join("callgate.db")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6e55_1e55);

    // The attack runs over two minutes of (simulated) time: ~80 failures a minute per number
    // pool, above the alert threshold of 100 a minute across the system.
    let start = callgate::store::now_ms() - 2 * 60_000;
    let mut guessed = 0u32;
    let mut call_no = 0u64;
    let mut hits_after_lock = 0;
    while guessed < GUESSES {
        call_no += 1;
        let number = format!("+4878{:07}", call_no % u64::from(NUMBERS));
        let sid = format!("CA{call_no:032x}");
        let now = start + i64::from(guessed) * 12;
        let tx = conn.transaction().unwrap();
        voice::answer(
            &*tx,
            ctx,
            &params(&sid, &number, None),
            Event::Incoming,
            now,
        )
        .unwrap();
        tx.commit().unwrap();
        for _ in 0..ATTEMPTS_PER_CALL {
            let guess = format!("{:09}", rng.gen_range(0..1_000_000_000u64));
            let was_locked = callgate::store::ThrottleDb::number_locked(
                &conn,
                CallerId::from_twilio(Some(&number), Region::default()).throttle_key(),
                now,
            )
            .unwrap();
            let tx = conn.transaction().unwrap();
            let doc = voice::answer(
                &*tx,
                ctx,
                &params(&sid, &number, Some(&guess)),
                Event::Input("account-code".into()),
                now,
            )
            .unwrap()
            .twiml;
            tx.commit().unwrap();
            guessed += 1;
            // Identified: the flow moves on from the code step (to TOTP or the menu).
            let xml = render::to_xml(&doc);
            let identified = xml.contains("/twilio/ivr/totp") || xml.contains("/twilio/ivr/menu");
            if identified && was_locked {
                hits_after_lock += 1;
            }
            if doc
                .verbs
                .iter()
                .any(|v| matches!(v, callgate::twilio::twiml::Verb::Hangup))
            {
                break;
            }
        }
    }

    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    let identified = count("SELECT COUNT(*) FROM calls WHERE account_id IS NOT NULL");
    let verified = count("SELECT COUNT(*) FROM calls WHERE level IN ('medium', 'high')");
    let locked_numbers = count("SELECT COUNT(*) FROM number_locks");
    println!(
        "{GUESSES} guesses in {call_no} calls from {NUMBERS} numbers: {identified} account(s) identified, \
         {verified} verified, {locked_numbers} numbers locked"
    );
    assert_eq!(verified, 0, "no account is verified by guessing");
    // Expected 10,000 x 10^-4 = 1 before the locks; far fewer after them. Poisson(1): P(>5) < 0.1%,
    // and the seed is fixed, so this is deterministic.
    assert!(identified <= 5, "{identified} accounts identified");
    assert_eq!(
        hits_after_lock, 0,
        "a locked number identifies nothing, even with a right code"
    );
    assert_eq!(
        locked_numbers,
        i64::from(NUMBERS),
        "every number met the per-number limit"
    );
    assert!(
        ctx.alerts.raised.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the global alert was raised"
    );

    // The security report shows the attack.
    let r = app
        .http
        .get(format!("{}/api/reports/security", app.addr))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let report: serde_json::Value = r.json().await.unwrap();
    let table = |start: &str| {
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["title"].as_str().unwrap().starts_with(start))
            .unwrap()["rows"]
            .as_array()
            .unwrap()
            .clone()
    };
    assert!(
        !table("Minutes with failures above").is_empty(),
        "alert minutes listed"
    );
    assert_eq!(
        table("Lockouts")
            .iter()
            .filter(|r| r[1] == "number locked")
            .count(),
        NUMBERS as usize
    );
    assert!(table("Calling numbers with repeated failures").len() >= 200);
    // The metrics count the alert too.
    let metrics = metrics(&app, &admin).await;
    assert!(
        !metrics.contains("callgate_guessing_alerts_total 0"),
        "{metrics}"
    );
}
