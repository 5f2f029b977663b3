//! The webhook boundary and the guessing limits: forged or malformed requests, lockouts across
//! calls, races on single-use secrets, and what the database must never hold.

// The hostile review's holes (issue 11), one file per area.
mod holes_checker;
mod holes_data;
mod holes_flow;
mod holes_http;

use std::time::Duration;

use crate::common::*;
use callgate::clock::Clock;
use callgate::store::users::Role;
use callgate::twilio::signature;

const WRONG_CODE: &str = "Nie udało się potwierdzić tego kodu.";
const WRONG_TOTP: &str = "Ten kod jest nieprawidłowy.";
const MENU: &str = "W sprawie rozliczeń naciśnij 1.";
const ASK_TOTP: &str = "aplikacji uwierzytelniającej";
const PHONE: &str = "+48601234567";
const CODE: &str = "246810";

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn call_params(sid: &str) -> Vec<(String, String)> {
    form(&[
        ("CallSid", sid),
        ("From", PHONE),
        ("To", DIALED),
        ("CallStatus", "ringing"),
    ])
}

#[tokio::test]
async fn unsigned_or_wrongly_signed_webhooks_get_403_and_no_twiml() {
    let app = TestApp::spawn().await;
    let params = call_params(&new_call_sid());
    let url = format!("{}/twilio/voice", app.addr);

    let missing = app.http.post(&url).form(&params).send().await.unwrap();
    assert_eq!(missing.status(), 403);
    assert!(!missing.text().await.unwrap().contains("<Response"));

    let other_token = signature::compute(
        "not-the-token",
        &format!("{PUBLIC_URL}/twilio/voice"),
        &params,
    );
    let forged = app
        .http
        .post(&url)
        .header("X-Twilio-Signature", other_token)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // Signed for the address the server sees rather than the public URL Twilio calls.
    let wrong_url = signature::compute(AUTH_TOKEN, &url, &params);
    let r = app
        .http
        .post(&url)
        .header("X-Twilio-Signature", wrong_url)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A parameter changed after signing.
    let sig = signature::compute(AUTH_TOKEN, &format!("{PUBLIC_URL}/twilio/voice"), &params);
    let mut tampered = params.clone();
    tampered[1].1 = "+48999999999".into();
    let r = app
        .http
        .post(&url)
        .header("X-Twilio-Signature", sig)
        .form(&tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    for path in [
        "/twilio/status",
        "/twilio/ivr/account-code",
        "/twilio/ivr/menu",
    ] {
        let r = app
            .http
            .post(format!("{}{path}", app.addr))
            .form(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
}

#[tokio::test]
async fn default_port_variants_and_rotated_tokens_are_accepted() {
    let app = TestApp::spawn_with(|s| {
        s.twilio_tokens =
            callgate::config::TwilioTokens::parse(&format!("new-token-abc, {AUTH_TOKEN}"))
    })
    .await;
    let params = call_params(&new_call_sid());
    let url = format!("{}/twilio/voice", app.addr);
    // Twilio sometimes signs with the default port written out.
    let with_port = signature::compute(
        AUTH_TOKEN,
        "https://callgate.example:443/twilio/voice",
        &params,
    );
    let r = app
        .http
        .post(&url)
        .header("X-Twilio-Signature", with_port)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The new token of a rotation.
    let rotated = signature::compute(
        "new-token-abc",
        &format!("{PUBLIC_URL}/twilio/voice"),
        &params,
    );
    let r = app
        .http
        .post(&url)
        .header("X-Twilio-Signature", rotated)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Query strings are part of what is signed.
    let path = "/twilio/voice?b=2&a=1";
    let sig = signature::compute(AUTH_TOKEN, &format!("{PUBLIC_URL}{path}"), &params);
    let r = app
        .http
        .post(format!("{}{path}", app.addr))
        .header("X-Twilio-Signature", sig)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn malformed_webhooks_get_a_clear_400_never_a_5xx() {
    let app = TestApp::spawn().await;
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        ("/twilio/voice", form(&[("From", PHONE)])),
        (
            "/twilio/voice",
            form(&[("CallSid", "CA'; DROP TABLE calls;--")]),
        ),
        ("/twilio/voice", form(&[("CallSid", "")])),
        ("/twilio/ivr/account-code", form(&[("Digits", "1234")])),
        ("/twilio/status", form(&[("CallSid", &new_call_sid())])),
        (
            "/twilio/status",
            form(&[("CallSid", &new_call_sid()), ("CallStatus", "<b>")]),
        ),
    ];
    for (path, params) in cases {
        let r = app.post_signed(path, &params).await;
        assert_eq!(r.status(), 400, "{path} {params:?}");
        let body = r.text().await.unwrap();
        assert!(body.contains("error"), "{body}");
    }

    // A body that is not a form at all, correctly "signed" over no parameters.
    let sig = signature::compute(AUTH_TOKEN, &format!("{PUBLIC_URL}/twilio/voice"), &[]);
    let r = app
        .http
        .post(format!("{}/twilio/voice", app.addr))
        .header("X-Twilio-Signature", sig)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![0xff, 0xfe, b'=', 0x00, b'%', b'z'])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    // Oversized bodies are refused before parsing.
    let big = vec![("CallSid".to_owned(), "C".repeat(200_000))];
    let r = app.post_signed("/twilio/voice", &big).await;
    assert_eq!(r.status(), 413);

    // A step name no script could have, wrong method.
    let r = app
        .post_signed("/twilio/ivr/No%20Such", &call_params(&new_call_sid()))
        .await;
    assert_eq!(r.status(), 404);
    let r = app
        .http
        .put(format!("{}/twilio/voice", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = app
        .http
        .get(format!("{}/twilio/ivr/menu", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // An unsigned GET is refused like an unsigned POST.
    let r = app
        .http
        .get(format!("{}/twilio/voice?CallSid=CA1", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn odd_but_possible_input_from_a_caller_keeps_the_call_polite() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-1", PHONE, Some(CODE), false);
    let mut caller = Caller::new(&app, PHONE);
    caller.dial().await;
    // Star, letters and absurd lengths are wrong codes, not errors.
    for keys in ["*123#", "12ab56#", &"9".repeat(60)] {
        let doc = caller.press(keys).await;
        assert!(
            doc.said().contains(WRONG_CODE) || doc.hangs_up(),
            "{keys}: {}",
            doc.said()
        );
    }
    // Unknown extra parameters and a missing From are accepted.
    let mut c = Caller::new(&app, PHONE);
    let mut params = c.params("ringing");
    params.retain(|(k, _)| k != "From");
    params.push(("SomeFutureParameter".into(), "x".into()));
    params.push(("CallToken".into(), "{\"a\":1}".into()));
    let doc = c.fetch("/twilio/voice", params).await;
    assert!(doc.gather().is_some());
}

#[tokio::test]
async fn five_failures_lock_the_account_across_calls_and_a_correct_code_then_fails_too() {
    // Time moves only when the test says: the lock's two seconds pass without a sleep.
    let app = TestApp::spawn_with_clock(Clock::manual_from_now(), |s| {
        s.limits.account_lock = Duration::from_secs(2)
    })
    .await;
    app.add_account("ACC-L", PHONE, Some(CODE), false);

    // Wrong codes from the account's own phone count against it: 3 in one call, 2 in the next.
    let mut first = Caller::new(&app, PHONE);
    first.dial().await;
    for _ in 0..3 {
        first.press("111111#").await;
    }
    let mut second = Caller::new(&app, PHONE);
    second.dial().await;
    second.press("111111#").await;
    second.press("111111#").await;

    let mut locked = Caller::new(&app, PHONE);
    locked.dial().await;
    let refused = locked.press(&format!("{CODE}#")).await;
    assert!(
        refused.said().contains(WRONG_CODE),
        "a correct code fails while locked: {}",
        refused.said()
    );

    app.clock.advance(Duration::from_millis(2100));
    let mut later = Caller::new(&app, PHONE);
    later.dial().await;
    assert!(
        later.press(&format!("{CODE}#")).await.said().contains(MENU),
        "the lock expires"
    );
}

#[tokio::test]
async fn an_operator_can_lift_an_account_lock() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-U", PHONE, Some(CODE), false);
    for _ in 0..2 {
        let mut c = Caller::new(&app, PHONE);
        c.dial().await;
        for _ in 0..3 {
            c.press("111111#").await;
        }
    }
    let mut locked = Caller::new(&app, PHONE);
    locked.dial().await;
    assert!(
        locked
            .press(&format!("{CODE}#"))
            .await
            .said()
            .contains(WRONG_CODE)
    );

    let out = callgate_cli(&app.data_dir, &["account", "unlock", "ACC-U"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut after = Caller::new(&app, PHONE);
    after.dial().await;
    assert!(after.press(&format!("{CODE}#")).await.said().contains(MENU));
}

#[tokio::test]
async fn wrong_totps_after_a_right_code_keep_counting_until_a_completed_verification() {
    let app = TestApp::spawn().await;
    let secret = app.add_account("ACC-T", PHONE, Some(CODE), true).unwrap();
    let agent = app.user("agent", Role::Agent);
    let wrong = wrong_totp(&secret);

    // 3 + 2 wrong TOTPs from other numbers, each after the right code: the account locks.
    for (from, tries) in [("+48700000101", 3), ("+48700000102", 2)] {
        let mut c = Caller::new(&app, from);
        c.dial().await;
        assert!(c.press(&format!("{CODE}#")).await.said().contains(ASK_TOTP));
        for _ in 0..tries {
            c.press(&wrong).await;
        }
    }
    let mut c = Caller::new(&app, "+48700000103");
    c.dial().await;
    let doc = c.press(&format!("{CODE}#")).await;
    assert!(
        doc.said().contains(WRONG_CODE),
        "account locked: {}",
        doc.said()
    );
    let (_, pop) = app.screen_pop(&c.call_sid, &agent).await;
    assert_eq!(
        pop["account"],
        serde_json::Value::Null,
        "a locked account is not identified"
    );

    // On another account: 4 failures, then a completed verification resets the count.
    let secret2 = app
        .add_account("ACC-T2", "+48605000000", Some("135791"), true)
        .unwrap();
    let wrong2 = wrong_totp(&secret2);
    let mut c = Caller::new(&app, "+48700000104");
    c.dial().await;
    c.press("135791#").await;
    c.press(&wrong2).await;
    c.press(&wrong2).await;
    let mut c = Caller::new(&app, "+48700000105");
    c.dial().await;
    c.press("135791#").await;
    c.press(&wrong2).await;
    c.press(&wrong2).await;
    let doc = c.press(&totp_now(&secret2)).await;
    assert!(doc.said().contains(MENU), "{}", doc.said());
    let count: i64 = app
        .sql()
        .query_row(
            "SELECT failed_count FROM accounts WHERE id = 'ACC-T2'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(count, 0);
    let (_, pop) = app.screen_pop(&c.call_sid, &agent).await;
    assert_eq!(pop["risk"]["failed_attempts"], 2);
    assert_eq!(pop["risk"]["account_failures_24h"], 4);
}

#[tokio::test]
async fn a_number_with_ten_failures_in_an_hour_is_locked_out() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-N", "+48606000000", Some(CODE), false);
    let attacker = "+48700000200";
    // 10 wrong codes over 4 calls (3 + 3 + 3 + 1).
    let mut left = 10;
    while left > 0 {
        let mut c = Caller::new(&app, attacker);
        c.dial().await;
        for _ in 0..left.min(3) {
            c.press("99999999#").await;
            left -= 1;
        }
    }
    let mut c = Caller::new(&app, attacker);
    c.dial().await;
    assert!(
        c.press(&format!("{CODE}#"))
            .await
            .said()
            .contains(WRONG_CODE),
        "the number is locked out"
    );
    // Another number is not affected, and no account was locked by an unknown number's guesses.
    let mut other = Caller::new(&app, "+48700000201");
    other.dial().await;
    assert!(other.press(&format!("{CODE}#")).await.said().contains(MENU));
}

#[tokio::test]
async fn many_failures_across_the_system_raise_an_alert_but_lock_nobody() {
    let app = TestApp::spawn_with(|s| s.limits.global_alert_per_minute = 5).await;
    app.add_account("ACC-G", "+48607000000", Some(CODE), false);
    for i in 0..6 {
        let mut c = Caller::new(&app, &format!("+4870000030{i}"));
        c.dial().await;
        c.press("99999999#").await;
    }
    let raised = app
        .state
        .ivr
        .alerts
        .raised
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(raised >= 1, "alert raised {raised} times");
    let mut c = Caller::new(&app, "+48700000399");
    c.dial().await;
    assert!(
        c.press(&format!("{CODE}#")).await.said().contains(MENU),
        "no global lock"
    );
}

#[tokio::test]
async fn the_same_totp_or_call_code_at_the_same_instant_wins_exactly_once() {
    let app = TestApp::spawn().await;
    for round in 0..10 {
        let id = format!("ACC-R{round}");
        let code = format!("5{round:05}1");
        let secret = app
            .add_account(&id, &format!("+4860800000{round}"), Some(&code), true)
            .unwrap();
        let totp = totp_now(&secret);
        let mut a = Caller::new(&app, "+48700000400");
        let mut b = Caller::new(&app, "+48700000401");
        a.dial().await;
        b.dial().await;
        a.press(&format!("{code}#")).await;
        b.press(&format!("{code}#")).await;
        let (da, db) = tokio::join!(a.press(&totp), b.press(&totp));
        let wins = [&da, &db]
            .iter()
            .filter(|d| d.said().contains(MENU))
            .count();
        assert_eq!(wins, 1, "round {round}: {} / {}", da.said(), db.said());
        assert!([&da, &db].iter().any(|d| d.said().contains(WRONG_TOTP)));

        let call_code = app.call_code(&id, 600_000, callgate::store::now_ms());
        let mut c = Caller::new(&app, "+48700000402");
        let mut d = Caller::new(&app, "+48700000403");
        c.dial().await;
        d.dial().await;
        let typed = format!("{call_code}#");
        let (dc, dd) = tokio::join!(c.press(&typed), d.press(&typed));
        let wins = [&dc, &dd]
            .iter()
            .filter(|x| x.said().contains(MENU))
            .count();
        assert_eq!(wins, 1, "round {round}: call code used twice");
    }
}

#[tokio::test]
async fn the_screen_pop_api_needs_a_valid_token() {
    let app = TestApp::spawn().await;
    let agent = app.user("agent", Role::Agent);
    let mut c = Caller::new(&app, PHONE);
    c.dial().await;
    let url = format!("{}/api/calls/{}", app.addr, c.call_sid);
    let none = app.http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let bad = app
        .http
        .get(&url)
        .bearer_auth("cg_notatoken")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let basic = app
        .http
        .get(&url)
        .basic_auth("agent", Some(&agent))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    assert_eq!(app.screen_pop(&new_call_sid(), &agent).await.0, 404);
    assert_eq!(app.screen_pop("not a sid", &agent).await.0, 404);
    assert_eq!(app.screen_pop(&c.call_sid, &agent).await.0, 200);
}

#[tokio::test]
async fn no_plaintext_code_token_or_totp_secret_reaches_the_database() {
    let app = TestApp::spawn().await;
    let account_code = "73914628";
    let secret = app
        .add_account("ACC-P", PHONE, Some(account_code), true)
        .unwrap();
    let call_code = app.call_code("ACC-P", 600_000, callgate::store::now_ms());
    let token = app.user("agent", Role::Agent);
    let totp = totp_now(&secret);
    let mut c = Caller::new(&app, "+48700000500");
    c.dial().await;
    c.press(&format!("{account_code}#")).await;
    c.press(&totp).await;
    let mut d = Caller::new(&app, "+48700000501");
    d.dial().await;
    d.press(&format!("{call_code}#")).await;

    let db = app.database_bytes();
    assert!(!db.is_empty());
    let base32 = callgate::verify::totp::provisioning_uri(&secret, "ACC-P").unwrap();
    let base32 = base32
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    for (what, needle) in [
        ("account code", account_code.as_bytes().to_vec()),
        ("call code", call_code.as_bytes().to_vec()),
        ("API token", token.as_bytes().to_vec()),
        ("TOTP secret (raw)", secret.clone()),
        ("TOTP secret (base32)", base32.as_bytes().to_vec()),
    ] {
        assert!(!contains(&db, &needle), "{what} found in the database");
    }
    // The TOTP code typed in this call is 6 digits: too short to scan for, so check the calls
    // table holds no keypad input column at all.
    let columns: Vec<String> = app
        .sql()
        .prepare("SELECT name FROM pragma_table_info('calls')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!columns.iter().any(|c| c.contains("digit")), "{columns:?}");
}

#[tokio::test]
async fn health_check_answers_once_ready() {
    let app = TestApp::spawn().await;
    let r = app
        .http
        .get(format!("{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn withholding_the_number_does_not_escape_the_per_number_limit() {
    let app = TestApp::spawn_with(|s| s.limits.number_max_failures = 4).await;
    app.add_account("ACC-W", "+48609000000", Some(CODE), false);
    // Four guesses, from "anonymous" and "restricted": both are the same withheld caller.
    for from in ["anonymous", "restricted"] {
        let mut c = Caller::new(&app, from);
        c.dial().await;
        c.press("99999999#").await;
        c.press("99999998#").await;
    }
    let mut c = Caller::new(&app, "");
    c.dial().await;
    let doc = c.press(&format!("{CODE}#")).await;
    assert!(doc.said().contains(WRONG_CODE), "{}", doc.said());
}

#[tokio::test]
async fn numbers_configured_for_get_are_signed_over_the_url_alone() {
    let app = TestApp::spawn().await;
    let sid = new_call_sid();
    let query = format!(
        "AccountSid=AC0&CallSid={sid}&CallStatus=ringing&From=%2B48601234567&To=%2B48221234567"
    );
    let path = format!("/twilio/voice?{query}");
    let sig = signature::compute(AUTH_TOKEN, &format!("{PUBLIC_URL}{path}"), &[]);
    let r = app
        .http
        .get(format!("{}{path}", app.addr))
        .header("X-Twilio-Signature", &sig)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let xml = r.text().await.unwrap();
    assert!(callgate::twilio::twiml::parse(&xml).is_ok(), "{xml}");
    // The same signature does not cover another query.
    let other = path.replace("ringing", "in-progress");
    let r = app
        .http
        .get(format!("{}{other}", app.addr))
        .header("X-Twilio-Signature", &sig)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The status callback by GET.
    let status = format!("/twilio/status?CallSid={sid}&CallStatus=completed");
    let sig = signature::compute(AUTH_TOKEN, &format!("{PUBLIC_URL}{status}"), &[]);
    let r = app
        .http
        .get(format!("{}{status}", app.addr))
        .header("X-Twilio-Signature", sig)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn beyond_the_in_flight_limit_requests_are_shed_with_503_at_once() {
    let app = TestApp::spawn_with(|s| s.max_in_flight = 1).await;
    // Another process holds the write lock: the first webhook waits for it, in flight.
    let blocker = rusqlite::Connection::open(app.data_dir.join("callgate.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let first = {
        let endpoint = app.endpoint();
        let params = call_params(&new_call_sid());
        tokio::spawn(async move {
            endpoint
                .post_signed("/twilio/voice", &params)
                .await
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let second = app
        .post_signed("/twilio/voice", &call_params(&new_call_sid()))
        .await;
    assert_eq!(second.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shed at once, not queued"
    );
    // One count across routes: a read on another route would be answered at once (the lock
    // blocks writers only), but the one place is taken. (`Router::layer` gives each route its
    // own copy of a layer, so a plain concurrency limit counted per route.)
    let health = app
        .http
        .get(format!("{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503, "the limit is one count across routes");
    blocker.execute_batch("COMMIT").unwrap();
    assert_eq!(first.await.unwrap(), 200, "the request in flight completes");
    // And the server takes new calls again.
    let again = app
        .post_signed("/twilio/voice", &call_params(&new_call_sid()))
        .await;
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn metrics_are_for_admins_and_count_what_happened() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-M", PHONE, Some(CODE), false);
    let admin = app.user("admin", Role::Admin);
    let agent = app.user("agent", Role::Agent);
    let mut good = Caller::new(&app, PHONE);
    good.dial().await;
    good.press(&format!("{CODE}#")).await;
    good.press("2").await;
    let mut bad = Caller::new(&app, "+48700000600");
    bad.dial().await;
    bad.press("99999999#").await;
    let forged = app
        .http
        .post(format!("{}/twilio/voice", app.addr))
        .form(&call_params(&new_call_sid()))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    let url = format!("{}/metrics", app.addr);
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        app.http
            .get(&url)
            .bearer_auth(&agent)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let r = app.http.get(&url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    for line in [
        "callgate_verifications_total{factor=\"code\",result=\"accepted\"} 1",
        "callgate_verifications_total{factor=\"code\",result=\"refused\"} 1",
        "callgate_verified_calls_total{level=\"medium\"} 1",
        "callgate_handoffs_total{category=\"technical\",level=\"medium\"} 1",
        "callgate_errors_total{kind=\"bad_signature\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    assert!(
        text.contains("callgate_webhook_seconds_count{endpoint=\"voice\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("callgate_webhook_seconds_count{endpoint=\"account-code\"} 2"),
        "{text}"
    );
    assert!(
        !text.contains("+48") && !text.contains("ACC-M"),
        "no personal data: {text}"
    );
}

#[tokio::test]
async fn authorization_matrix_of_every_endpoint() {
    let sounds = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(sounds.path().join("pl-PL")).unwrap();
    std::fs::write(
        sounds.path().join("pl-PL/greeting.wav"),
        b"RIFF\0\0\0\0WAVEfmt ",
    )
    .unwrap();
    let dir = sounds.path().to_owned();
    let app = TestApp::spawn_with(move |s| s.sounds_dir = dir).await;
    let admin = app.user("admin", Role::Admin);
    let agent = app.user("agent", Role::Agent);
    let mut c = Caller::new(&app, PHONE);
    c.dial().await;
    let call = format!("/api/calls/{}", c.call_sid);

    // (path, none, bad token, agent, admin)
    let matrix: [(&str, u16, u16, u16, u16); 4] = [
        ("/healthz", 200, 200, 200, 200),
        ("/sounds/pl-PL/greeting.wav", 200, 200, 200, 200),
        (&call, 401, 401, 200, 200),
        ("/metrics", 401, 401, 403, 200),
    ];
    for (path, none, bad, as_agent, as_admin) in matrix {
        let url = format!("{}{path}", app.addr);
        let get = |token: Option<&str>| {
            let mut r = app.http.get(&url);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send()
        };
        assert_eq!(
            get(None).await.unwrap().status(),
            none,
            "{path} without a token"
        );
        assert_eq!(
            get(Some("cg_forged")).await.unwrap().status(),
            bad,
            "{path} with a bad token"
        );
        assert_eq!(
            get(Some(&agent)).await.unwrap().status(),
            as_agent,
            "{path} as agent"
        );
        assert_eq!(
            get(Some(&admin)).await.unwrap().status(),
            as_admin,
            "{path} as admin"
        );
    }
    // Webhooks take no user token at all: only Twilio's signature opens them.
    for path in [
        "/twilio/voice",
        "/twilio/status",
        "/twilio/ivr/account-code",
    ] {
        let r = app
            .http
            .post(format!("{}{path}", app.addr))
            .bearer_auth(&admin)
            .form(&call_params(&new_call_sid()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            403,
            "{path} with an admin token but no signature"
        );
    }
}
