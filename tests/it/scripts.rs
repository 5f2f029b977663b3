//! IVR scripts as admins change them: the admin API (check, save, versions, publish, rollback,
//! audit), the simulator, the second example script (language choice, knowledge question,
//! step-up), and the `callgate script` / `callgate audit` commands. Real server, real SQLite.

use crate::common::*;
use callgate::store::users::Role;
use serde_json::{Value, json};

const JAN_PHONE: &str = "+48601234567";
const JAN_CODE: &str = "246810";
const BILINGUAL: &str = "+48225550100";

fn shipped() -> String {
    std::fs::read_to_string(repo_path("ivr-scripts/default.toml")).unwrap()
}

#[tokio::test]
async fn admins_edit_publish_and_roll_back_while_calls_are_in_progress() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-2001", JAN_PHONE, Some(JAN_CODE), false);
    let api = Api {
        app: &app,
        token: app.user("admin", Role::Admin),
    };

    let (status, list) = api.get("/api/scripts").await;
    assert_eq!(status, 200, "{list}");
    let default = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "default")
        .unwrap();
    assert_eq!(default["published_version"], 1);

    // A broken draft: 422 with every problem at its line, and nothing saved.
    let broken = shipped()
        .replacen("next = \"account-code\"", "next = \"acount-code\"", 1)
        .replacen("\"en-US\" = \"That code is not valid.\"\n", "", 1);
    let (status, body) = api.put_source("default", &broken).await;
    assert_eq!(status, 422, "{body}");
    let problems = body["problems"].as_array().unwrap();
    let typo_line = broken
        .lines()
        .position(|l| l.contains("acount-code"))
        .unwrap()
        + 1;
    assert!(
        problems.iter().any(|p| p["line"] == typo_line
            && p["severity"] == "error"
            && p["message"]
                .as_str()
                .unwrap()
                .contains("undefined step \"acount-code\"")),
        "{body}"
    );
    assert!(
        problems.iter().any(|p| p["message"]
            .as_str()
            .unwrap()
            .contains("no en-US translation")),
        "{body}"
    );
    let (_, versions) = api.get("/api/scripts/default/versions").await;
    assert_eq!(versions.as_array().unwrap().len(), 1, "nothing saved");

    // A call starts on version 1 ...
    let mut early = Caller::new(&app, JAN_PHONE);
    assert!(
        early
            .dial()
            .await
            .said()
            .starts_with("Dzień dobry, tu pomoc techniczna.")
    );

    // ... an admin saves a new greeting and menu wording as version 2 and publishes it.
    let edited = shipped()
        .replace(
            "Dzień dobry, tu pomoc techniczna.",
            "Witamy w nowym serwisie.",
        )
        .replace(
            "W sprawie rozliczeń naciśnij 1.",
            "Nowe menu. Rozliczenia: naciśnij 1.",
        );
    let (status, saved) = api.put_source("default", &edited).await;
    assert_eq!(status, 201, "{saved}");
    assert_eq!(saved["version"], 2);
    assert_eq!(saved["published"], false);
    // A draft changes nothing for callers.
    let mut before_publish = Caller::new(&app, JAN_PHONE);
    assert!(
        before_publish
            .dial()
            .await
            .said()
            .starts_with("Dzień dobry")
    );

    let (status, published) = api
        .post("/api/scripts/default/publish", json!({ "version": 2 }))
        .await;
    assert_eq!(status, 200, "{published}");
    assert_eq!(published["previous_version"], 1);

    // New calls take it at once, with no restart ...
    let mut late = Caller::new(&app, JAN_PHONE);
    assert!(
        late.dial()
            .await
            .said()
            .starts_with("Witamy w nowym serwisie.")
    );
    let menu = late.press(&format!("{JAN_CODE}#")).await;
    assert!(menu.said().contains("Nowe menu."), "{}", menu.said());
    // ... and the call in progress finishes on the version it started with.
    let menu = early.press(&format!("{JAN_CODE}#")).await;
    assert!(
        menu.said().contains("W sprawie rozliczeń naciśnij 1.")
            && !menu.said().contains("Nowe menu"),
        "{}",
        menu.said()
    );

    // Rollback to version 1; a "rollback" to a version that is not earlier is refused.
    let (status, body) = api
        .post("/api/scripts/default/rollback", json!({ "version": 3 }))
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = api
        .post("/api/scripts/default/rollback", json!({ "version": 1 }))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut after = Caller::new(&app, JAN_PHONE);
    assert!(after.dial().await.said().starts_with("Dzień dobry"));

    // Every change is in the audit trail: who, what (a diff), and the publishes.
    let (status, trail) = api.get("/api/audit?subject=script:default").await;
    assert_eq!(status, 200);
    let trail = trail.as_array().unwrap();
    let save = trail
        .iter()
        .find(|e| e["action"] == "script.save" && e["actor"] == "admin")
        .unwrap();
    let diff = save["detail"].as_str().unwrap();
    assert!(
        diff.contains("-\"pl-PL\" = \"Dzień dobry, tu pomoc techniczna.\""),
        "{diff}"
    );
    assert!(
        diff.contains("+\"pl-PL\" = \"Witamy w nowym serwisie.\""),
        "{diff}"
    );
    assert!(trail.iter().any(|e| {
        e["action"] == "script.publish"
            && e["detail"]
                .as_str()
                .unwrap()
                .contains("rolled back from version 2 to version 1")
    }));
    let out = callgate_cli(&app.data_dir, &["audit", "verify"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit trail intact"));
}

#[tokio::test]
async fn agents_and_strangers_cannot_touch_scripts() {
    let app = TestApp::spawn().await;
    let agent = app.user("agent", Role::Agent);
    for (method, path) in [
        (reqwest::Method::GET, "/api/scripts"),
        (reqwest::Method::GET, "/api/scripts/default"),
        (reqwest::Method::PUT, "/api/scripts/default"),
        (reqwest::Method::GET, "/api/scripts/default/versions"),
        (reqwest::Method::POST, "/api/scripts/default/publish"),
        (reqwest::Method::POST, "/api/scripts/default/rollback"),
        (reqwest::Method::POST, "/api/scripts/check"),
        (reqwest::Method::GET, "/api/audit"),
        (reqwest::Method::POST, "/api/simulator"),
    ] {
        let url = format!("{}{path}", app.addr);
        let r = app
            .http
            .request(method.clone(), &url)
            .bearer_auth(&agent)
            .json(&json!({ "version": 1, "source": "x" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "agent {method} {path}");
        let r = app.http.request(method.clone(), &url).send().await.unwrap();
        assert_eq!(r.status(), 401, "nobody {method} {path}");
    }
}

#[tokio::test]
async fn publishing_a_number_another_script_answers_is_refused() {
    let app = TestApp::spawn().await;
    let api = Api {
        app: &app,
        token: app.user("admin", Role::Admin),
    };
    let clash = shipped().replace(
        "name = \"default\"",
        "name = \"clash\"\nnumbers = [\"+48225550100\"]",
    );
    let (status, saved) = api.put_source("clash", &clash).await;
    assert_eq!(status, 201, "{saved}");
    let (status, body) = api
        .post("/api/scripts/clash/publish", json!({ "version": 1 }))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("+48225550100"),
        "{body}"
    );
    // A name that does not match the URL is a problem too.
    let (status, body) = api.put_source("other", &shipped()).await;
    assert_eq!(status, 422, "{body}");
}

/// Drift fixed by issue 12: `callgate script publish` published a script binding a number
/// another script answers (the API refused it), and the next start aborted. Both now run the
/// same whole-set check and refuse with the same message, publishing nothing.
#[tokio::test]
async fn cli_publish_refuses_a_number_bound_twice_as_the_api_does() {
    let app = TestApp::spawn().await;
    let api = Api {
        app: &app,
        token: app.user("admin", Role::Admin),
    };
    let third = shipped().replace(
        "name = \"default\"",
        &format!("name = \"third\"\nnumbers = [\"{BILINGUAL}\"]"),
    );
    let (status, saved) = api.put_source("third", &third).await;
    assert_eq!(status, 201, "{saved}");

    let (status, refused) = api
        .post("/api/scripts/third/publish", json!({ "version": 1 }))
        .await;
    assert_eq!(status, 409, "{refused}");
    let message = refused["error"].as_str().unwrap().to_owned();
    assert_eq!(
        message,
        format!("number {BILINGUAL} is bound to both bilingual and third")
    );

    let out = callgate_cli(&app.data_dir, &["script", "publish", "third", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr.contains(&message), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("published"),
        "{out:?}"
    );

    // Nothing was published: no version of `third` is live, no publish was recorded, and the
    // published set still loads as the next start will load it.
    let store = app.store();
    assert_eq!(
        store.read_sync(|db| db.published_version("third")).unwrap(),
        None
    );
    let publishes: i64 = app
        .sql()
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'script.publish' AND subject = 'script:third'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(publishes, 0);
    assert!(
        store
            .read_sync(callgate::ivr::script::published_set)
            .is_ok()
    );

    // A version that does hold together is published by the CLI as before.
    let fixed = third.replace(
        &format!("numbers = [\"{BILINGUAL}\"]"),
        "numbers = [\"+48225550199\"]",
    );
    let (status, saved) = api.put_source("third", &fixed).await;
    assert_eq!(status, 201, "{saved}");
    let out = callgate_cli(&app.data_dir, &["script", "publish", "third", "2"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        store.read_sync(|db| db.published_version("third")).unwrap(),
        Some(2)
    );
}

#[tokio::test]
async fn the_simulator_runs_a_draft_against_test_accounts_only() {
    let app = TestApp::spawn().await;
    let api = Api {
        app: &app,
        token: app.user("admin", Role::Admin),
    };
    // A test account (as `callgate account add --test` makes) and a real one.
    let out = callgate_cli(
        &app.data_dir,
        &[
            "account",
            "add",
            "--id",
            "TEST-1",
            "--name",
            "Test Caller",
            "--phone",
            JAN_PHONE,
            "--code",
            "555666",
            "--test",
            "--knowledge",
            "dob=01021990",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    app.add_account("REAL-1", "+48603000000", Some("777888"), false);

    let draft = shipped().replace("Dzień dobry, tu pomoc techniczna.", "Wersja robocza.");
    let (status, turn) = api
        .post(
            "/api/simulator",
            json!({ "source": draft, "caller": JAN_PHONE, "called": DIALED }),
        )
        .await;
    assert_eq!(status, 200, "{turn}");
    assert_eq!(turn["hears"][0]["text"], "Wersja robocza.");
    assert_eq!(turn["waiting"]["step"], "account-code");
    let session = turn["session"].as_str().unwrap().to_owned();

    let (_, turn) = api
        .post(
            &format!("/api/simulator/{session}"),
            json!({ "digits": "555666#" }),
        )
        .await;
    assert_eq!(turn["level"], "medium", "{turn}");
    assert_eq!(turn["account"], "TEST-1");
    assert_eq!(turn["waiting"]["step"], "menu");
    let (_, turn) = api
        .post(
            &format!("/api/simulator/{session}"),
            json!({ "digits": "2" }),
        )
        .await;
    assert_eq!(turn["department"], "technical", "{turn}");
    assert_eq!(turn["handoff"]["via"], "enqueue");
    assert_eq!(turn["handoff"]["target"], "technical");
    assert_eq!(turn["screen_pop"]["level"], "medium");
    assert_eq!(turn["screen_pop"]["account"]["name"], "Test Caller");
    let (_, turn) = api
        .post(
            &format!("/api/simulator/{session}"),
            json!({ "handoff_result": "completed" }),
        )
        .await;
    assert_eq!(turn["ended"], true, "{turn}");
    assert_eq!(turn["end_reason"], "handoff_completed");

    // A real customer's code does not work in the simulator ...
    let (_, turn) = api
        .post(
            "/api/simulator",
            json!({ "script": "default", "caller": "+48603000000" }),
        )
        .await;
    let session = turn["session"].as_str().unwrap().to_owned();
    let (_, turn) = api
        .post(
            &format!("/api/simulator/{session}"),
            json!({ "digits": "777888#" }),
        )
        .await;
    assert_eq!(turn["level"], "none", "{turn}");
    assert_eq!(turn["waiting"]["step"], "account-code");
    // ... and simulated calls leave no trace among the real calls.
    let conn = rusqlite::Connection::open(app.data_dir.join("callgate.db")).unwrap();
    let calls: i64 = conn
        .query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0))
        .unwrap();
    assert_eq!(calls, 0);
    let failures: i64 = conn
        .query_row("SELECT COUNT(*) FROM failures", [], |r| r.get(0))
        .unwrap();
    assert_eq!(failures, 0);

    // A draft that does not pass the checker is not simulated.
    let (status, body) = api
        .post(
            "/api/simulator",
            json!({ "source": "name = 1", "caller": JAN_PHONE }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn bilingual_line_chooses_language_asks_knowledge_and_steps_up_to_totp() {
    let app = TestApp::spawn().await;
    let secret = app
        .add_account("ACC-3001", JAN_PHONE, Some(JAN_CODE), true)
        .unwrap();
    let keys = app.keys();
    app.store()
        .write_sync(|db| db.set_knowledge_answer(&keys, "ACC-3001", "dob", "14031985"))
        .unwrap();
    let admin = app.user("admin", Role::Admin);

    // From another phone: the code alone is level low.
    let mut caller = Caller::new(&app, "+48609999999");
    caller.to = BILINGUAL.into();
    let welcome = caller.dial().await;
    let texts = welcome.texts();
    assert!(texts[0].contains("infolinia międzynarodowa"), "{texts:?}");
    assert!(
        texts.iter().any(|t| t.contains("po polsku"))
            && texts.iter().any(|t| t.contains("For English")),
        "the choice is offered in both languages: {texts:?}"
    );
    let ask_code = caller.press("2").await;
    assert!(
        ask_code.said().contains("Enter your customer code"),
        "{}",
        ask_code.said()
    );
    let dob = caller.press(&format!("{JAN_CODE}#")).await;
    assert!(dob.said().contains("date of birth"), "{}", dob.said());
    assert_eq!(dob.gather().unwrap().num_digits, Some(8));
    let wrong = caller.press("01011990").await;
    assert!(
        wrong.said().contains("That date does not match."),
        "{}",
        wrong.said()
    );
    let menu = caller.press("14031985").await;
    assert!(menu.said().contains("billing: press 1."), "{}", menu.said());

    // Security needs high: the caller is asked for TOTP, then handed off.
    let step_up = caller.press("2").await;
    assert!(
        step_up.said().contains("six-digit code"),
        "{}",
        step_up.said()
    );
    let handoff = caller.press(&totp_now(&secret)).await;
    assert!(handoff.handoff().is_some(), "{}", handoff.xml);
    assert!(handoff.xml.contains("security-desk"), "{}", handoff.xml);
    let (status, pop) = app.screen_pop(&caller.call_sid, &admin).await;
    assert_eq!(status, 200);
    assert_eq!(pop["level"], "high", "{pop}");
    assert_eq!(pop["category"], "security");
    assert_eq!(pop["language"], "en-US");
    let factors: Vec<&str> = pop["factors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(factors, vec!["account_code", "totp", "knowledge"]);

    // From the registered phone the caller ID vouches: no knowledge question, billing at
    // medium needs no step-up.
    let mut caller = Caller::new(&app, JAN_PHONE);
    caller.to = BILINGUAL.into();
    caller.dial().await;
    caller.press("1").await;
    let menu = caller.press(&format!("{JAN_CODE}#")).await;
    assert!(
        menu.said().contains("rozliczenia: naciśnij 1."),
        "{}",
        menu.said()
    );
    let handoff = caller.press("1").await;
    assert!(handoff.handoff().is_some(), "{}", handoff.xml);
}

#[tokio::test]
async fn an_account_without_authenticator_is_refused_a_department_that_needs_more() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-3002", JAN_PHONE, Some(JAN_CODE), false);
    let mut caller = Caller::new(&app, "+48609999998");
    caller.to = BILINGUAL.into();
    caller.dial().await;
    caller.press("1").await;
    caller.press(&format!("{JAN_CODE}#")).await; // no knowledge answer on file: on to the menu
    let refused = caller.press("1").await;
    assert!(
        refused.said().contains("bez silniejszego potwierdzenia")
            && refused.said().contains("rozliczenia: naciśnij 1."),
        "told why, and back at the menu: {}",
        refused.said()
    );
    assert!(refused.handoff().is_none());
    // The general department needs only a code.
    let handoff = caller.press("3").await;
    assert!(handoff.handoff().is_some(), "{}", handoff.xml);
}

#[test]
fn script_check_lists_every_problem_like_a_compiler() {
    let dir = tempfile::tempdir().unwrap();
    let ok = callgate_cli(
        dir.path(),
        &[
            "script",
            "check",
            "--scripts-dir",
            repo_path("ivr-scripts").to_str().unwrap(),
        ],
    );
    assert!(ok.status.success(), "{ok:?}");
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("ok: 2 script(s)"),
        "{ok:?}"
    );

    let broken = shipped()
        .replacen(
            "on_failure = \"menu-failed\"",
            "on_failure = \"nowhere\"",
            1,
        )
        .replacen(
            "\"2\" = \"technical\"",
            "\"2\" = \"technical\", \"9\" = \"other\"",
            1,
        );
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, &broken).unwrap();
    let out = callgate_cli(dir.path(), &["script", "check", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = broken
        .lines()
        .position(|l| l.contains("\"nowhere\""))
        .unwrap()
        + 1;
    assert!(
        stdout.contains(&format!(
            "broken.toml:{line}:14: error: on_failure refers to undefined step \"nowhere\""
        )),
        "{stdout}"
    );
    assert!(stdout.contains("option 9 is never announced"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("3 error(s)"),
        "{out:?}"
    );
}

#[tokio::test]
async fn export_writes_published_versions_and_cli_publish_reaches_the_running_server() {
    let app = TestApp::spawn().await;
    let api = Api {
        app: &app,
        token: app.user("admin", Role::Admin),
    };
    let edited = shipped().replace("Dzień dobry, tu pomoc techniczna.", "Z wiersza poleceń.");
    let (status, _) = api.put_source("default", &edited).await;
    assert_eq!(status, 201);
    let out = callgate_cli(&app.data_dir, &["script", "publish", "default", "2"]);
    assert!(out.status.success(), "{out:?}");
    // The server polls for publishes made by other processes.
    let mut heard = String::new();
    for _ in 0..40 {
        let mut caller = Caller::new(&app, JAN_PHONE);
        heard = caller.dial().await.said();
        if heard.starts_with("Z wiersza poleceń.") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(heard.starts_with("Z wiersza poleceń."), "{heard}");

    let export = tempfile::tempdir().unwrap();
    let out = callgate_cli(
        &app.data_dir,
        &["script", "export", "--dir", export.path().to_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(export.path().join("default.toml")).unwrap(),
        edited
    );
    assert!(export.path().join("bilingual.toml").exists());
}

/// The three everyday changes of ivr-scripts/README.md, made as written there, pass the checker
/// and do what the README says.
#[tokio::test]
async fn the_readme_changes_work_as_documented() {
    let text = shipped()
        .replace(
            "\"pl-PL\" = \"Dzień dobry, tu pomoc techniczna.\"",
            "\"pl-PL\" = \"Dzień dobry, tu dział obsługi klienta firmy Przykład.\"",
        )
        .replace(
            "\"en-US\" = \"Hello, you have reached the service desk.\"",
            "\"en-US\" = \"Hello, this is Example's customer service.\"",
        )
        .replace(
            "options = { \"1\" = \"billing\", \"2\" = \"technical\", \"3\" = \"other\" }",
            "options = { \"1\" = \"billing\", \"2\" = \"technical\", \"3\" = \"other\", \"4\" = \"returns\" }",
        )
        .replace(
            "Inne sprawy: naciśnij 3.\"",
            "Inne sprawy: naciśnij 3. Zwroty: naciśnij 4.\"",
        )
        .replace(
            "For anything else, press 3.\"",
            "For anything else, press 3. For returns, press 4.\"",
        )
        + r#"
[departments.returns]
requires = "high"

[steps.returns]
kind = "department"
department = "returns"
next = "agent"
step_up = "step-up-totp"
on_insufficient = "not-verified"

[steps.step-up-totp]
kind = "verify"
factor = "totp"
prompt = "ask_totp"
retry_prompt = "wrong_totp"
on_success = "menu"
on_unavailable = "not-verified"
on_failure = "failed"

[steps.not-verified]
kind = "say"
prompt = "not_verified"
next = "menu"

[prompts.not_verified]
"pl-PL" = "Ta sprawa wymaga kodu z aplikacji uwierzytelniającej."
"en-US" = "This needs the code from your authenticator app."
"#;
    let checked = callgate::ivr::script::check(&text, Default::default());
    assert!(checked.problems.is_empty(), "{:#?}", checked.problems);

    let scripts = tempfile::tempdir().unwrap();
    std::fs::write(scripts.path().join("default.toml"), &text).unwrap();
    let dir = scripts.path().to_owned();
    let app = TestApp::spawn_with(move |s| s.scripts_dir = dir).await;
    let secret = app
        .add_account("ACC-4001", JAN_PHONE, Some(JAN_CODE), true)
        .unwrap();
    let mut caller = Caller::new(&app, JAN_PHONE);
    assert!(
        caller
            .dial()
            .await
            .said()
            .starts_with("Dzień dobry, tu dział obsługi klienta")
    );
    let menu = caller.press(&format!("{JAN_CODE}#")).await;
    assert!(
        menu.said().contains("Zwroty: naciśnij 4."),
        "{}",
        menu.said()
    );
    // Verified at medium by caller ID; returns needs high: TOTP first.
    let step_up = caller.press("4").await;
    assert!(
        step_up.said().contains("aplikacji uwierzytelniającej"),
        "{}",
        step_up.said()
    );
    let handoff = caller.press(&totp_now(&secret)).await;
    assert!(
        handoff.xml.contains(">returns</Enqueue>"),
        "{}",
        handoff.xml
    );
}

/// Says `words` at the current `<Gather>` the way Twilio reports speech.
async fn say(caller: &mut Caller, words: &str, confidence: &str) -> Doc {
    let last = caller.last.clone().unwrap();
    let action = last.gather().unwrap().action.clone();
    let mut params = caller.params("in-progress");
    params.push(("SpeechResult".into(), words.into()));
    params.push(("Confidence".into(), confidence.into()));
    caller.fetch(&action, params).await
}

#[tokio::test]
async fn speech_menus_route_polish_and_english_words_and_fall_back_to_keys() {
    let app = TestApp::spawn().await;
    let admin = app.user("admin", Role::Admin);
    // Calls from the registered phone reach the menu at medium (billing needs no step-up).
    let cases = [
        (
            "pl",
            "Dzwonię w sprawie faktury za październik",
            Some("billing"),
        ),
        ("pl", "chcialbym zaplacic rachunek", Some("billing")), // diacritics lost by the recogniser
        ("pl", "mam pytanie o fakturę", Some("billing")),
        (
            "pl",
            "ktoś ukradł mi kartę, chcę zablokować kartę",
            Some("security"),
        ),
        ("pl", "podejrzana transakcja na koncie", Some("security")),
        ("en", "I'd like to ask about my invoice", Some("billing")),
        ("en", "my card was stolen", Some("security")),
        ("en", "I have a complaint", Some("general")),
        ("pl", "yyy halo słychać mnie", None), // nothing a department says: asked again
    ];
    for (i, (lang, words, want)) in cases.into_iter().enumerate() {
        let id = format!("ACC-50{i:02}");
        let phone = format!("+486040000{i:02}");
        let secret = app
            .add_account(&id, &phone, Some(&format!("{}", 700100 + i)), true)
            .unwrap();
        let mut caller = Caller::new(&app, &phone);
        caller.to = BILINGUAL.into();
        caller.dial().await;
        caller.press(if lang == "pl" { "1" } else { "2" }).await;
        let menu = caller.press(&format!("{}#", 700100 + i)).await;
        let gather = menu.gather().unwrap();
        assert!(menu.xml.contains("input=\"dtmf speech\""), "{}", menu.xml);
        assert!(menu.xml.contains(if lang == "pl" {
            "language=\"pl-PL\""
        } else {
            "language=\"en-US\""
        }));
        assert!(
            menu.xml.contains("hints=\""),
            "recognition hints from the phrases"
        );
        assert_eq!(gather.num_digits, Some(1));
        let after = say(&mut caller, words, "0.82").await;
        match want {
            Some("security") => {
                // high needs TOTP: the step-up, then the hand-off to the security desk.
                assert!(after.gather().is_some(), "{words}: {}", after.xml);
                let handoff = caller.press(&totp_now(&secret)).await;
                assert!(
                    handoff.xml.contains("security-desk"),
                    "{words}: {}",
                    handoff.xml
                );
            }
            Some(dept) => {
                assert!(after.handoff().is_some(), "{words}: {}", after.xml);
                let (_, pop) = app.screen_pop(&caller.call_sid, &admin).await;
                assert_eq!(pop["category"], dept, "{words}");
            }
            None => {
                assert!(
                    after.said().contains("Nie zrozumieliśmy"),
                    "{words}: {}",
                    after.said()
                );
                // The keys still work.
                let handoff = caller.press("3").await;
                assert!(handoff.handoff().is_some(), "{}", handoff.xml);
            }
        }
    }
    // What the classifier made of it is kept with the call, for training; never in the logs.
    let conn = rusqlite::Connection::open(app.data_dir.join("callgate.db")).unwrap();
    let routed: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM calls WHERE json_extract(state, '$.speech.routed') = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(routed, 8);
}

#[tokio::test]
async fn every_call_keeps_its_journey_without_secrets() {
    let app = TestApp::spawn().await;
    let secret = app
        .add_account("ACC-6001", "+48607000001", Some(JAN_CODE), true)
        .unwrap();
    let admin = app.user("admin", Role::Admin);
    let mut caller = Caller::new(&app, "+48609000001");
    caller.dial().await;
    caller.press("111111#").await; // wrong code
    caller.stay_silent().await;
    caller.press(&format!("{JAN_CODE}#")).await;
    let totp = totp_now(&secret);
    caller.press(&totp).await;
    caller.press("2").await;
    let action = format!("{PUBLIC_URL}/twilio/ivr/handoff-result");
    let mut params = caller.params("in-progress");
    params.push(("QueueResult".into(), "bridged".into()));
    caller.fetch(&action, params).await;
    caller.status("completed").await;

    let r = app
        .http
        .get(format!(
            "{}/api/calls/{}/journey",
            app.addr, caller.call_sid
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let journey: Value = serde_json::from_str(&body).unwrap();
    let events: Vec<(String, String, String)> = journey["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["step"].as_str().unwrap().to_owned(),
                e["event"].as_str().unwrap().to_owned(),
                e["detail"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let has = |step: &str, event: &str, detail: &str| {
        events
            .iter()
            .any(|(s, e, d)| s == step && e == event && d.contains(detail))
    };
    assert!(
        has("greeting", "call started", "script default v1"),
        "{events:#?}"
    );
    assert!(has("account-code", "failed", "code"), "{events:#?}");
    assert!(has("account-code", "silence", ""), "{events:#?}");
    assert!(has("account-code", "passed", "code"), "{events:#?}");
    assert!(has("totp", "passed", "totp"), "{events:#?}");
    assert!(has("menu", "keys", "2"), "{events:#?}");
    assert!(has("technical", "department", "technical"), "{events:#?}");
    assert!(
        has("agent", "handed off", "enqueue to technical"),
        "{events:#?}"
    );
    assert!(
        has("handed_off", "hand-off ended", "bridged"),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|(_, e, d)| e == "status" && d == "completed"),
        "{events:#?}"
    );
    assert!(journey["events"][0]["spent_ms"].is_i64());
    assert!(journey["queue_wait_ms"].is_i64(), "{journey}");
    // No code, TOTP or full number in it.
    for secret in [JAN_CODE, "111111", totp.as_str(), "+48609000001"] {
        assert!(!body.contains(secret), "{secret} in the journey: {body}");
    }
}
