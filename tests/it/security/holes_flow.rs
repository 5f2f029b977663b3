//! Holes found by the hostile review (issue 11): each test is named after its hole and failed on
//! the main it was written against.

#[allow(unused_imports)]
use super::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::process::ServerProcess;
use callgate::domain::{AccountCode, AccountId, AccountName, PhoneNumber, Region};
use callgate::store::accounts::NewAccount;
use callgate::store::now_ms;
use serde_json::Value;

/// Registers a test account (`callgate account add --test`, as the demo accounts are).
fn add_test_account(app: &TestApp, id: &str, phone: &str, code: &str) {
    let attrs = BTreeMap::new();
    let (id, name) = (
        AccountId::parse(id).unwrap(),
        AccountName::parse("Test Caller").unwrap(),
    );
    let phone = PhoneNumber::parse(phone, Region::default()).unwrap();
    let code = AccountCode::parse(code).unwrap();
    let new = NewAccount {
        id: &id,
        name: &name,
        phone: &phone,
        code: Some(&code),
        totp_secret: None,
        attributes: &attrs,
        knowledge: &[],
        test: true,
    };
    let keys = app.keys();
    app.store()
        .write_sync(|db| Ok(db.add_account(&keys, &new, now_ms())?))
        .unwrap();
}

fn failures_recorded(app: &TestApp) -> i64 {
    let conn = rusqlite::Connection::open(app.data_dir.join("callgate.db")).unwrap();
    conn.query_row("SELECT COUNT(*) FROM failures", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn hole10_test_accounts_answer_only_in_the_simulator_and_on_a_demo_server() {
    let (phone, code) = ("+48601234500", "909090");

    // A normal server: the test account's code is an unknown code, word for word, and counts.
    let app = TestApp::spawn().await;
    add_test_account(&app, "TEST-1", phone, code);
    let mut unknown = Caller::new(&app, phone);
    unknown.dial().await;
    let unknown_doc = unknown.press("919191#").await;
    let after_unknown = failures_recorded(&app);
    let mut caller = Caller::new(&app, phone);
    caller.dial().await;
    let doc = caller.press(&format!("{code}#")).await;
    assert_eq!(doc.said(), unknown_doc.said());
    assert!(doc.said().starts_with(WRONG_CODE), "{}", doc.said());
    assert_eq!(
        doc.gather().unwrap().action,
        unknown_doc.gather().unwrap().action
    );
    assert_eq!(
        failures_recorded(&app),
        after_unknown + 1,
        "counted as a failure"
    );
    let admin = app.user("admin", Role::Admin);
    let (_, pop) = app.screen_pop(&caller.call_sid, &admin).await;
    assert_eq!(pop["level"], "none", "{pop}");
    assert!(pop["account"].is_null(), "{pop}");
    assert_eq!(pop["risk"]["failed_attempts"], 1, "{pop}");

    // A server started with --demo: test accounts answer.
    let demo = TestApp::spawn_with(|s| s.test_accounts_answer = true).await;
    add_test_account(&demo, "TEST-1", phone, code);
    let mut caller = Caller::new(&demo, phone);
    caller.dial().await;
    let menu = caller.press(&format!("{code}#")).await;
    assert!(menu.said().contains(MENU), "{}", menu.said());
    let admin = demo.user("admin", Role::Admin);
    let (_, pop) = demo.screen_pop(&caller.call_sid, &admin).await;
    assert_eq!(pop["level"], "medium", "{pop}");
    assert_eq!(pop["account"]["id"], "TEST-1", "{pop}");
}

/// Runs `callgate serve --demo` on `data` and waits up to 20 s for it to exit by itself.
fn demo_serve_expecting_exit(data: &Path) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--scripts"])
        .arg(repo_path("ivr-scripts"))
        .arg("--sounds")
        .arg(repo_path("sounds"))
        .arg("--data-dir")
        .arg(data)
        .env("CALLGATE_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
        .env_remove("CALLGATE_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "serve --demo was still running after 20 s\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn count(data: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(data.join("callgate.db")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn hole10_serve_demo_seeds_once_and_refuses_real_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // First start: the demo accounts and the tokens are printed.
    let first = ServerProcess::start_with(&data, &["--demo"]);
    first.wait_ready().await;
    assert!(first.printed("account DEMO-1001").is_some());
    assert!(first.printed("admin token:").is_some());
    assert!(first.printed("agent token:").is_some());
    drop(first);
    let users = count(&data, "SELECT COUNT(*) FROM users");
    assert_eq!(users, 2, "one admin and one agent");

    // A restart: the data is there already; no new token, and it says how to get one.
    let second = ServerProcess::start_with(&data, &["--demo"]);
    second.wait_ready().await;
    let printed = second.stdout.lock().unwrap().join("\n");
    assert!(printed.contains("demo data already present"), "{printed}");
    assert!(printed.contains("callgate user add"), "{printed}");
    assert!(second.printed("admin token:").is_none(), "{printed}");
    assert!(second.printed("agent token:").is_none(), "{printed}");
    drop(second);
    assert_eq!(count(&data, "SELECT COUNT(*) FROM users"), users);

    // A data directory with a real customer: --demo refuses it, and writes nothing.
    let real = dir.path().join("real");
    let out = callgate_cli(
        &real,
        &[
            "account",
            "add",
            "--id",
            "REAL-1",
            "--name",
            "Real Customer",
            "--phone",
            "+48603000000",
            "--code",
            "777888",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let out = demo_serve_expecting_exit(&real);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--demo") && stderr.contains("real"),
        "a clear refusal: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("token"), "{stdout}");
    assert_eq!(
        count(
            &real,
            "SELECT COUNT(*) FROM accounts WHERE id LIKE 'DEMO-%'"
        ),
        0
    );
    assert_eq!(count(&real, "SELECT COUNT(*) FROM users"), 0);
}

/// The shipped default script with one more menu option, "4": enter a code again. Reaching a
/// code step after identification is what lets a caller name a second account in one call.
fn script_with_code_again() -> String {
    let shipped = std::fs::read_to_string(repo_path("ivr-scripts/default.toml")).unwrap();
    let text = shipped
        .replace(
            "options = { \"1\" = \"billing\", \"2\" = \"technical\", \"3\" = \"other\" }",
            "options = { \"1\" = \"billing\", \"2\" = \"technical\", \"3\" = \"other\", \"4\" = \"account-code\" }",
        )
        .replace(
            "Inne sprawy: naciśnij 3.\"",
            "Inne sprawy: naciśnij 3. Inny kod klienta: naciśnij 4.\"",
        )
        .replace(
            "For anything else, press 3.\"",
            "For anything else, press 3. For another customer code, press 4.\"",
        );
    assert_ne!(text, shipped, "the default script changed: adapt the test");
    let checked = callgate::ivr::script::check(&text, Default::default());
    assert!(
        checked.script.is_some(),
        "the checker refuses the test script: {:#?}",
        checked.problems
    );
    text
}

async fn journey_of(app: &TestApp, admin: &str, call_sid: &str) -> (String, Value) {
    let r = app
        .http
        .get(format!("{}/api/calls/{call_sid}/journey", app.addr))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let value = serde_json::from_str(&body).unwrap();
    (body, value)
}

#[tokio::test]
async fn hole1_factors_stay_with_the_account_they_were_proven_for() {
    let scripts = tempfile::tempdir().unwrap();
    std::fs::write(
        scripts.path().join("default.toml"),
        script_with_code_again(),
    )
    .unwrap();
    let dir = scripts.path().to_owned();
    let app = TestApp::spawn_with(move |s| s.scripts_dir = dir).await;
    let admin = app.user("admin", Role::Admin);
    let (a_phone, a_code) = ("+48601111111", "314159");
    let (b_phone, b_code) = ("+48602222222", "271828");
    let a_secret = app
        .add_account("ACC-A", a_phone, Some(a_code), true)
        .unwrap();
    // B has no authenticator at all.
    app.add_account("ACC-B", b_phone, Some(b_code), false);

    // 1. From A's registered phone: A's code (caller ID + code: medium), then B's code.
    let mut caller = Caller::new(&app, a_phone);
    caller.dial().await;
    let menu = caller.press(&format!("{a_code}#")).await;
    assert!(menu.said().contains(MENU), "{}", menu.said());
    let (_, pop) = app.screen_pop(&caller.call_sid, &admin).await;
    assert_eq!(pop["level"], "medium", "{pop}");
    assert_eq!(pop["account"]["id"], "ACC-A", "{pop}");
    let ask = caller.press("4").await;
    assert!(
        ask.said().contains("Wpisz swój kod klienta"),
        "{}",
        ask.said()
    );
    let menu = caller.press(&format!("{b_code}#")).await;
    // B has no authenticator: the TOTP step is unavailable and the call goes on to the menu.
    assert!(menu.said().contains(MENU), "{}", menu.said());
    let (_, pop) = app.screen_pop(&caller.call_sid, &admin).await;
    assert_eq!(pop["account"]["id"], "ACC-B", "{pop}");
    assert_eq!(
        pop["level"], "low",
        "A's caller ID must not vouch for B: {pop}"
    );
    assert_eq!(pop["factors"], serde_json::json!(["account_code"]), "{pop}");
    assert_eq!(pop["risk"]["caller_id_match"], false, "{pop}");
    assert_eq!(pop["verified"], false, "{pop}");
    assert!(pop["verified_at"].is_null(), "{pop}");
    // And so it is handed off: unverified, as B.
    assert!(caller.press("3").await.handoff().is_some());
    let (_, pop) = app.screen_pop(&caller.call_sid, &admin).await;
    assert_eq!(pop["level"], "low", "{pop}");
    assert_eq!(pop["factors"], serde_json::json!(["account_code"]), "{pop}");
    // The journey records the switch, without a digit of either code or a phone number.
    let (body, events) = journey_of(&app, &admin, &caller.call_sid).await;
    let switched = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "account switched")
        .count();
    assert_eq!(switched, 1, "{body}");
    for secret in [a_code, b_code, a_phone, b_phone, "Name of ACC-A"] {
        assert!(!body.contains(secret), "{secret} in the journey: {body}");
    }

    // 2. From another number: A's code and A's TOTP (high), then B's code.
    let mut caller = Caller::new(&app, "+48609999999");
    caller.dial().await;
    let ask_totp = caller.press(&format!("{a_code}#")).await;
    assert!(ask_totp.said().contains(ASK_TOTP), "{}", ask_totp.said());
    let menu = caller.press(&totp_now(&a_secret)).await;
    assert!(menu.said().contains(MENU), "{}", menu.said());
    let (_, pop) = app.screen_pop(&caller.call_sid, &admin).await;
    assert_eq!(pop["level"], "high", "{pop}");
    caller.press("4").await;
    let menu = caller.press(&format!("{b_code}#")).await;
    assert!(menu.said().contains(MENU), "{}", menu.said());
    let (_, pop) = app.screen_pop(&caller.call_sid, &admin).await;
    assert_eq!(pop["account"]["id"], "ACC-B", "{pop}");
    assert_eq!(
        pop["level"], "low",
        "A's authenticator must not vouch for B: {pop}"
    );
    assert_eq!(pop["factors"], serde_json::json!(["account_code"]), "{pop}");
    assert_eq!(pop["verified"], false, "{pop}");
    assert!(pop["verified_at"].is_null(), "{pop}");

    // 3. The same account's code again is no switch: what was proven for it stays.
    let mut caller = Caller::new(&app, a_phone);
    caller.dial().await;
    caller.press(&format!("{a_code}#")).await;
    caller.press("4").await;
    caller.press(&format!("{a_code}#")).await;
    let (_, pop) = app.screen_pop(&caller.call_sid, &admin).await;
    assert_eq!(pop["level"], "medium", "{pop}");
    assert_eq!(
        pop["factors"],
        serde_json::json!(["caller_id", "account_code"]),
        "{pop}"
    );
    let (body, _) = journey_of(&app, &admin, &caller.call_sid).await;
    assert!(!body.contains("account switched"), "{body}");
}

const BILINGUAL_LINE: &str = "+48225550100";

async fn say(caller: &mut Caller, words: &str, confidence: Option<&str>) -> Doc {
    let last = caller.last.clone().unwrap();
    let action = last.gather().unwrap().action.clone();
    let mut params = caller.params("in-progress");
    params.push(("SpeechResult".into(), words.into()));
    if let Some(c) = confidence {
        params.push(("Confidence".into(), c.into()));
    }
    caller.fetch(&action, params).await
}

/// A bilingual call from the registered phone up to the speech menu (medium: billing needs no
/// step-up).
async fn at_speech_menu(app: &TestApp, phone: &str, code: &str) -> Caller {
    let mut caller = Caller::new(app, phone);
    caller.to = BILINGUAL_LINE.into();
    caller.dial().await;
    caller.press("1").await;
    let menu = caller.press(&format!("{code}#")).await;
    assert!(menu.xml.contains("input=\"dtmf speech\""), "{}", menu.xml);
    caller
}

#[tokio::test]
async fn hole11_speech_the_gateway_doubts_is_asked_again() {
    let app = TestApp::spawn().await;
    let admin = app.user("admin", Role::Admin);
    let (phone, code) = ("+48604111111", "505050");
    app.add_account("ACC-S1", phone, Some(code), false);

    let mut caller = at_speech_menu(&app, phone, code).await;
    let doubted = say(&mut caller, "fakturę proszę", Some("0.31")).await;
    assert!(
        doubted.handoff().is_none(),
        "routed on a doubted transcript: {}",
        doubted.xml
    );
    assert!(
        doubted.said().contains("Nie zrozumieliśmy"),
        "{}",
        doubted.said()
    );
    assert!(doubted.gather().is_some(), "{}", doubted.xml);
    let (_, pop) = app.screen_pop(&caller.call_sid, &admin).await;
    assert!(pop["category"].is_null(), "{pop}");
    let (body, _) = journey_of(&app, &admin, &caller.call_sid).await;
    assert!(body.contains("gateway confidence 0.31"), "{body}");

    // Said again, heard clearly: routed.
    let routed = say(&mut caller, "fakturę proszę", Some("0.9")).await;
    assert!(routed.handoff().is_some(), "{}", routed.xml);
    let (_, pop) = app.screen_pop(&caller.call_sid, &admin).await;
    assert_eq!(pop["category"], "billing", "{pop}");

    // A gateway that sends no Confidence at all: routed on the classifier alone, as before.
    let mut caller = at_speech_menu(&app, phone, code).await;
    let routed = say(&mut caller, "fakturę proszę", None).await;
    assert!(routed.handoff().is_some(), "{}", routed.xml);

    // The floor: 0.5 in a script that sets none; out of 0-1 it is an error.
    let shipped = std::fs::read_to_string(repo_path("ivr-scripts/bilingual.toml")).unwrap();
    let line = shipped
        .lines()
        .find(|l| l.starts_with("min_gateway_confidence"))
        .expect("the bilingual script shows the setting")
        .to_owned();
    let unset = callgate::ivr::script::check(&shipped.replace(&line, ""), Default::default());
    let script = unset.script.expect("checks without the setting");
    match script.step("menu") {
        Some(callgate::ivr::script::Step::Menu {
            speech: Some(menu), ..
        }) => assert_eq!(menu.min_gateway_confidence, 0.5),
        other => panic!("{other:?}"),
    }
    let silly = callgate::ivr::script::check(
        &shipped.replace(&line, "min_gateway_confidence = 1.5"),
        Default::default(),
    );
    assert!(silly.script.is_none());
    assert!(
        silly.problems.iter().any(|p| p
            .message
            .contains("min_gateway_confidence must be between 0 and 1")),
        "{:#?}",
        silly.problems
    );
}
