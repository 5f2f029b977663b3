//! Whole calls played the way Twilio plays them, against a real server with a real SQLite file.

use crate::common::*;
use callgate::store::users::Role;
use callgate::twilio::twiml::{DialTarget, Verb};

const ASK_CODE: &str = "Wpisz swój kod klienta";
const WRONG_CODE: &str = "Nie udało się potwierdzić tego kodu.";
const ASK_TOTP: &str = "aplikacji uwierzytelniającej";
const WRONG_TOTP: &str = "Ten kod jest nieprawidłowy.";
const MENU: &str = "W sprawie rozliczeń naciśnij 1.";
const GOODBYE_FAILED: &str = "Nie udało się potwierdzić tożsamości";
const NO_INPUT: &str = "Nie usłyszeliśmy odpowiedzi.";
const GOODBYE_NO_INPUT: &str = "Nie otrzymaliśmy odpowiedzi. Do widzenia.";

const JAN_PHONE: &str = "+48601234567";
const JAN_CODE: &str = "246810";

fn factors(pop: &serde_json::Value) -> Vec<String> {
    pop["factors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn caller_id_and_account_code_verify_at_medium_and_hand_off_with_a_screen_pop() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-1001", JAN_PHONE, Some(JAN_CODE), true);
    let agent = app.user("agent", Role::Agent);

    let mut caller = Caller::new(&app, JAN_PHONE);
    let greeting = caller.dial().await;
    assert!(
        greeting.said().starts_with("Dzień dobry"),
        "{}",
        greeting.said()
    );
    let gather = greeting.gather().unwrap();
    assert_eq!(gather.finish_on_key.as_deref(), Some("#"));
    assert!(
        gather.action.starts_with(PUBLIC_URL),
        "absolute URLs on the public base: {}",
        gather.action
    );

    let menu = caller.press(&format!("{JAN_CODE}#")).await;
    assert!(
        menu.said().contains(MENU),
        "caller ID + code verify without TOTP: {}",
        menu.said()
    );
    assert_eq!(menu.gather().unwrap().num_digits, Some(1));

    let handoff = caller.press("1").await;
    match handoff.handoff() {
        Some(Verb::Enqueue(e)) => {
            assert_eq!(e.queue, "billing");
            assert!(
                e.workflow_sid.is_none() && e.task.is_none(),
                "no <Task> without a workflow"
            );
        }
        other => panic!("expected <Enqueue>, got {other:?}"),
    }

    let (status, pop) = app.screen_pop(&caller.call_sid, &agent).await;
    assert_eq!(status, 200);
    assert_eq!(pop["call_sid"], caller.call_sid.as_str());
    assert_eq!(
        pop["caller"], "+48******567",
        "agents see the number masked"
    );
    assert_eq!(pop["verified"], true);
    assert_eq!(pop["level"], "medium");
    assert_eq!(factors(&pop), ["caller_id", "account_code"]);
    assert_eq!(pop["account"]["id"], "ACC-1001");
    assert_eq!(pop["account"]["name"], "Name of ACC-1001");
    assert_eq!(pop["account"]["attributes"]["plan"], "premium");
    assert_eq!(pop["category"], "billing");
    assert_eq!(pop["risk"]["caller_id_match"], true);
    assert_eq!(pop["risk"]["stir_verstat"], serde_json::Value::Null);
    assert_eq!(pop["risk"]["failed_attempts"], 0);
    for field in ["started_at", "verified_at", "handed_off_at"] {
        assert!(pop[field].is_string(), "{field} set: {pop}");
    }

    assert_eq!(caller.status("completed").await, 204);
    let (_, pop) = app.screen_pop(&caller.call_sid, &agent).await;
    assert_eq!(pop["status"], "completed");
    assert!(pop["ended_at"].is_string());
}

#[tokio::test]
async fn unknown_number_needs_totp_and_code_plus_totp_is_high() {
    let app = TestApp::spawn().await;
    let secret = app
        .add_account("ACC-2", "+48602345678", Some("135790"), true)
        .unwrap();
    let admin = app.user("admin", Role::Admin);

    let mut caller = Caller::new(&app, "+48700100200");
    caller.dial().await;
    let ask = caller.press("135790#").await;
    assert!(ask.said().contains(ASK_TOTP), "{}", ask.said());
    assert_eq!(ask.gather().unwrap().num_digits, Some(6));

    let menu = caller.press(&totp_now(&secret)).await;
    assert!(menu.said().contains(MENU), "{}", menu.said());
    caller.press("2").await;

    let (_, pop) = app.screen_pop(&caller.call_sid, &admin).await;
    assert_eq!(pop["level"], "high");
    assert_eq!(pop["verified"], true);
    assert_eq!(factors(&pop), ["account_code", "totp"]);
    assert_eq!(pop["risk"]["caller_id_match"], false);
    assert_eq!(pop["category"], "technical");
}

#[tokio::test]
async fn a_totp_code_is_accepted_once() {
    let app = TestApp::spawn().await;
    let secret = app
        .add_account("ACC-3", "+48603000000", Some("112233"), true)
        .unwrap();
    let code = totp_now(&secret);

    let mut first = Caller::new(&app, "+48700000001");
    first.dial().await;
    first.press("112233#").await;
    assert!(first.press(&code).await.said().contains(MENU));

    let mut second = Caller::new(&app, "+48700000002");
    second.dial().await;
    second.press("112233#").await;
    let replay = second.press(&code).await;
    assert!(
        replay.said().contains(WRONG_TOTP),
        "a replayed TOTP is refused: {}",
        replay.said()
    );
    assert!(replay.said().contains(ASK_TOTP));
}

#[tokio::test]
async fn a_call_code_verifies_alone_once_and_not_after_expiry() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-4", "+48604000000", Some("445566"), true);
    let agent = app.user("agent", Role::Agent);
    let code = app.call_code("ACC-4", 30 * 60_000, callgate::store::now_ms());
    assert_eq!(code.len(), 8);

    // From a number that is not the account's: the call code alone is medium, no TOTP asked.
    let mut caller = Caller::new(&app, "+48700000003");
    caller.dial().await;
    let menu = caller.press(&format!("{code}#")).await;
    assert!(menu.said().contains(MENU), "{}", menu.said());
    let (_, pop) = app.screen_pop(&caller.call_sid, &agent).await;
    assert_eq!(pop["level"], "medium");
    assert_eq!(factors(&pop), ["call_code"]);
    assert_eq!(pop["account"]["id"], "ACC-4");

    let mut again = Caller::new(&app, "+48700000003");
    again.dial().await;
    assert!(
        again
            .press(&format!("{code}#"))
            .await
            .said()
            .contains(WRONG_CODE),
        "single use"
    );

    let stale = app.call_code("ACC-4", 60_000, callgate::store::now_ms() - 120_000);
    let mut late = Caller::new(&app, "+48700000004");
    late.dial().await;
    assert!(
        late.press(&format!("{stale}#"))
            .await
            .said()
            .contains(WRONG_CODE),
        "expired"
    );
}

#[tokio::test]
async fn wrong_and_unknown_codes_sound_the_same_and_three_attempts_end_the_call() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-5", JAN_PHONE, Some(JAN_CODE), false);

    let mut caller = Caller::new(&app, JAN_PHONE);
    caller.dial().await;
    let wrong = caller.press("246811#").await;
    let unknown = caller.press("99999999#").await;
    assert_eq!(wrong.texts(), unknown.texts(), "no enumeration of codes");
    assert!(wrong.said().contains(WRONG_CODE) && wrong.said().contains(ASK_CODE));
    let end = caller.press("12#").await;
    assert!(end.said().contains(GOODBYE_FAILED), "{}", end.said());
    assert!(end.hangs_up());
    assert!(end.gather().is_none());
}

#[tokio::test]
async fn a_registered_caller_id_hears_the_same_greeting_as_anyone() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-6", JAN_PHONE, Some(JAN_CODE), false);
    let known = Caller::new(&app, JAN_PHONE).dial().await;
    let stranger = Caller::new(&app, "+48799999999").dial().await;
    let withheld = Caller::new(&app, "anonymous").dial().await;
    assert_eq!(known.xml, stranger.xml);
    assert_eq!(known.xml, withheld.xml);
    assert!(!known.xml.contains("ACC-6") && !known.xml.contains("Name of"));
}

#[tokio::test]
async fn without_caller_id_match_or_totp_the_call_is_handed_off_unverified() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-7", JAN_PHONE, Some(JAN_CODE), false);
    let agent = app.user("agent", Role::Agent);

    for from in ["+48711111111", "anonymous", "restricted", ""] {
        let mut caller = Caller::new(&app, from);
        caller.dial().await;
        let menu = caller.press(&format!("{JAN_CODE}#")).await;
        assert!(menu.said().contains(MENU), "from {from:?}: {}", menu.said());
        assert!(caller.press("3").await.handoff().is_some());
        let (_, pop) = app.screen_pop(&caller.call_sid, &agent).await;
        assert_eq!(pop["verified"], false, "from {from:?}");
        assert_eq!(pop["level"], "low");
        assert_eq!(factors(&pop), ["account_code"]);
        assert_eq!(pop["risk"]["caller_id_match"], false);
        assert_eq!(pop["account"]["id"], "ACC-7");
    }
}

#[tokio::test]
async fn failed_stir_shaken_makes_the_caller_id_worthless() {
    let app = TestApp::spawn().await;
    let secret = app
        .add_account("ACC-8", JAN_PHONE, Some(JAN_CODE), true)
        .unwrap();
    let agent = app.user("agent", Role::Agent);

    let mut caller = Caller::new(&app, JAN_PHONE);
    caller.stir = Some("TN-Validation-Failed-A".into());
    caller.dial().await;
    let ask = caller.press(&format!("{JAN_CODE}#")).await;
    assert!(
        ask.said().contains(ASK_TOTP),
        "step up on failed STIR: {}",
        ask.said()
    );
    caller.press(&totp_now(&secret)).await;
    caller.press("1").await;
    let (_, pop) = app.screen_pop(&caller.call_sid, &agent).await;
    assert_eq!(factors(&pop), ["account_code", "totp"]);
    assert_eq!(pop["risk"]["caller_id_match"], true);
    assert_eq!(pop["risk"]["stir_failed"], true);
    assert_eq!(pop["risk"]["stir_verstat"], "TN-Validation-Failed-A");

    // A passed verdict keeps the caller ID as a factor.
    let mut passed = Caller::new(&app, JAN_PHONE);
    passed.stir = Some("TN-Validation-Passed-A".into());
    passed.dial().await;
    assert!(
        passed
            .press(&format!("{JAN_CODE}#"))
            .await
            .said()
            .contains(MENU)
    );
}

#[tokio::test]
async fn a_silent_caller_is_prompted_again_then_told_goodbye() {
    let app = TestApp::spawn().await;
    let mut caller = Caller::new(&app, JAN_PHONE);
    caller.dial().await;
    let again = caller.stay_silent().await;
    assert!(
        again.said().contains(NO_INPUT) && again.said().contains(ASK_CODE),
        "{}",
        again.said()
    );
    let bye = caller.stay_silent().await;
    assert!(bye.said().contains(GOODBYE_NO_INPUT), "{}", bye.said());
    assert!(bye.hangs_up());
    // Silence is not a failed verification.
    let failures: i64 = app
        .sql()
        .query_row("SELECT COUNT(*) FROM failures", [], |r| r.get(0))
        .unwrap();
    assert_eq!(failures, 0);
}

#[tokio::test]
async fn an_invalid_menu_choice_is_asked_again() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-9", JAN_PHONE, Some(JAN_CODE), false);
    let mut caller = Caller::new(&app, JAN_PHONE);
    caller.dial().await;
    caller.press(&format!("{JAN_CODE}#")).await;
    let again = caller.press("9").await;
    assert!(again.said().contains("Nie ma takiej opcji.") && again.said().contains(MENU));
    assert!(caller.press("*").await.said().contains(MENU));
    let bye = caller.press("0").await;
    assert!(bye.hangs_up() && bye.said().contains(GOODBYE_FAILED));
}

#[tokio::test]
async fn the_call_continues_across_a_server_restart() {
    let app = TestApp::spawn().await;
    let secret = app
        .add_account("ACC-10", "+48610000000", Some("778899"), true)
        .unwrap();
    let agent = app.user("agent", Role::Agent);
    let sid;
    {
        let mut caller = Caller::new(&app, "+48700000010");
        caller.dial().await;
        assert!(caller.press("778899#").await.said().contains(ASK_TOTP));
        sid = caller.call_sid.clone();
    }
    let app = app.restart().await;
    let mut caller = Caller::new(&app, "+48700000010");
    caller.call_sid = sid.clone();
    caller.last = None;
    // Twilio posts the TOTP to the action of the document it got before the restart.
    let mut params = caller.params("in-progress");
    params.push(("Digits".into(), totp_now(&secret)));
    let menu = caller.fetch("/twilio/ivr/totp", params).await;
    assert!(menu.said().contains(MENU), "{}", menu.said());
    caller.press("1").await;
    let (_, pop) = app.screen_pop(&sid, &agent).await;
    assert_eq!(pop["level"], "high");
    assert_eq!(pop["category"], "billing");
}

#[tokio::test]
async fn a_webhook_for_another_step_repeats_the_current_question() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-11", JAN_PHONE, Some(JAN_CODE), false);
    let mut caller = Caller::new(&app, JAN_PHONE);
    caller.dial().await;
    // A stale menu post while the call waits for its code: the code is asked again.
    let mut params = caller.params("in-progress");
    params.push(("Digits".into(), "1".into()));
    let doc = caller.fetch("/twilio/ivr/menu", params).await;
    assert!(doc.said().contains(ASK_CODE), "{}", doc.said());
    assert!(doc.handoff().is_none());
    // Twilio retrying the first webhook does not restart the greeting's state.
    caller.press(&format!("{JAN_CODE}#")).await;
    let retried = caller.dial().await;
    assert!(retried.said().contains(MENU), "{}", retried.said());
}

#[tokio::test]
async fn the_status_callback_records_calls_that_never_got_past_the_code() {
    let app = TestApp::spawn().await;
    let agent = app.user("agent", Role::Agent);
    let mut caller = Caller::new(&app, "+48700000011");
    caller.dial().await;
    assert_eq!(caller.status("completed").await, 204);
    let (status, pop) = app.screen_pop(&caller.call_sid, &agent).await;
    assert_eq!(status, 200);
    assert_eq!(pop["verified"], false);
    assert_eq!(pop["level"], "none");
    assert_eq!(pop["account"], serde_json::Value::Null);
    assert_eq!(pop["status"], "completed");
    assert_eq!(pop["end_reason"], "caller_hung_up");

    // A status callback for a call callgate never saw still leaves a record.
    let mut ghost = Caller::new(&app, "+48700000012");
    assert_eq!(ghost.status("no-answer").await, 204);
    assert_eq!(app.screen_pop(&ghost.call_sid, &agent).await.0, 200);
}

#[tokio::test]
async fn the_hand_off_ends_with_a_goodbye_or_an_apology() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-12", JAN_PHONE, Some(JAN_CODE), false);
    let mut caller = Caller::new(&app, JAN_PHONE);
    caller.dial().await;
    caller.press(&format!("{JAN_CODE}#")).await;
    let handoff = caller.press("1").await;
    let Some(Verb::Enqueue(e)) = handoff.handoff() else {
        panic!("{}", handoff.xml)
    };
    let action = e.action.clone().expect("enqueue action");
    let mut params = caller.params("in-progress");
    params.push(("QueueResult".into(), "queue-full".into()));
    let sorry = caller.fetch(&action, params).await;
    assert!(
        sorry.said().contains("nikt z konsultantów"),
        "{}",
        sorry.said()
    );
    assert!(sorry.hangs_up());
}

#[tokio::test]
async fn dial_client_and_sip_hand_offs_carry_the_screen_pop() {
    let scripts = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(repo_path("ivr-scripts/default.toml")).unwrap();
    // Every department of the line gets its Voice SDK identity or SIP address.
    let with_target = |via: &str, field: &str| {
        let mut text = base.replace("via = \"enqueue\"", &format!("via = \"{via}\""));
        for dept in ["billing", "technical", "other"] {
            text = text.replace(
                &format!("[departments.{dept}]"),
                &format!("[departments.{dept}]\n{field}"),
            );
        }
        text
    };
    let client = with_target("client", "client_identity = \"desk\"");
    std::fs::write(scripts.path().join("default.toml"), &client).unwrap();
    let sip = with_target("sip", "sip_uri = \"sip:agents@pbx.example.com\"").replace(
        "name = \"default\"",
        "name = \"sip-line\"\nnumbers = [\"+48229999999\"]",
    );
    std::fs::write(scripts.path().join("sip.toml"), &sip).unwrap();
    let dir = scripts.path().to_owned();
    let app = TestApp::spawn_with(move |s| s.scripts_dir = dir).await;
    app.add_account("ACC-13", JAN_PHONE, Some(JAN_CODE), false);

    let mut caller = Caller::new(&app, JAN_PHONE);
    caller.dial().await;
    caller.press(&format!("{JAN_CODE}#")).await;
    let doc = caller.press("2").await;
    let Some(Verb::Dial(dial)) = doc.handoff() else {
        panic!("{}", doc.xml)
    };
    let DialTarget::Client {
        identity,
        parameters,
    } = &dial.target
    else {
        panic!("{dial:?}")
    };
    assert_eq!(identity, "desk");
    let get = |k: &str| {
        parameters
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("level"), Some("medium"));
    assert_eq!(get("verified"), Some("true"));
    assert_eq!(get("account_id"), Some("ACC-13"));
    assert_eq!(get("category"), Some("technical"));
    assert_eq!(get("callgate_call_sid"), Some(caller.call_sid.as_str()));

    let mut sip_caller = Caller::new(&app, JAN_PHONE);
    sip_caller.to = "+48229999999".into();
    sip_caller.dial().await;
    sip_caller.press(&format!("{JAN_CODE}#")).await;
    let doc = sip_caller.press("1").await;
    let Some(Verb::Dial(dial)) = doc.handoff() else {
        panic!("{}", doc.xml)
    };
    let DialTarget::Sip { uri } = &dial.target else {
        panic!("{dial:?}")
    };
    assert!(
        uri.starts_with("sip:agents@pbx.example.com?X-Callgate-Call="),
        "{uri}"
    );
    assert!(
        uri.contains("X-Callgate-Level=medium") && uri.contains("X-Callgate-Account=ACC-13"),
        "{uri}"
    );
    let headers = uri.split_once('?').unwrap().1;
    assert!(headers.len() < 1024);
    assert!(
        headers
            .split('&')
            .all(|h| h.starts_with("X-") && !h.starts_with("X-Twilio"))
    );
}

#[tokio::test]
async fn a_taskrouter_workflow_gets_a_task_with_the_screen_pop() {
    const WW: &str = "WW0123456789abcdef0123456789abcdef";
    let app = TestApp::spawn_with(|s| s.taskrouter_workflow_sid = Some(WW.into())).await;
    app.add_account("ACC-14", JAN_PHONE, Some(JAN_CODE), false);
    // An account whose attributes alone would not fit into Flex's 1024 characters.
    {
        let long: String = "x".repeat(300);
        let attrs =
            serde_json::json!({"plan": long, "device": long, "app_version": long, "notes": long});
        app.sql()
            .execute(
                "UPDATE accounts SET attributes = ?1 WHERE id = 'ACC-14'",
                [attrs.to_string()],
            )
            .unwrap();
    }
    let mut caller = Caller::new(&app, JAN_PHONE);
    caller.dial().await;
    caller.press(&format!("{JAN_CODE}#")).await;
    let doc = caller.press("1").await;
    let Some(Verb::Enqueue(e)) = doc.handoff() else {
        panic!("{}", doc.xml)
    };
    assert_eq!(e.workflow_sid.as_deref(), Some(WW));
    let task = e.task.as_deref().expect("<Task> with a workflow");
    assert!(task.chars().count() <= 1024, "{} characters", task.len());
    let task: serde_json::Value = serde_json::from_str(task).unwrap();
    assert_eq!(task["level"], "medium");
    assert_eq!(task["verified"], true);
    assert_eq!(task["account_id"], "ACC-14");
    assert_eq!(task["call_sid"], caller.call_sid.as_str());
    assert_eq!(task["category"], "billing");
    assert_eq!(
        task["factors"],
        serde_json::json!(["caller_id", "account_code"])
    );
}

#[tokio::test]
async fn numbers_can_be_answered_in_english() {
    let scripts = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(repo_path("ivr-scripts/default.toml")).unwrap();
    let english = base.replace(
        "# [number_languages]\n# \"+48221234567\" = \"en-US\"",
        "[number_languages]\n\"+12025550123\" = \"en-US\"",
    );
    assert_ne!(
        english, base,
        "the shipped script documents number_languages"
    );
    std::fs::write(scripts.path().join("default.toml"), english).unwrap();
    let dir = scripts.path().to_owned();
    let app = TestApp::spawn_with(move |s| s.scripts_dir = dir).await;
    let mut caller = Caller::new(&app, "+48700000013");
    caller.to = "+12025550123".into();
    let doc = caller.dial().await;
    assert!(doc.said().starts_with("Hello"), "{}", doc.said());
    let Some(Verb::Say(say)) = doc.twiml.verbs.first() else {
        panic!()
    };
    assert_eq!(say.language.as_deref(), Some("en-US"));
    assert_eq!(say.voice.as_deref(), Some("Polly.Joanna"));
    // Polish keeps its explicit Polly voice (gateways fall back to English without one).
    let pl = Caller::new(&app, "+48700000013").dial().await;
    let Some(Verb::Say(say)) = pl.twiml.verbs.first() else {
        panic!()
    };
    assert_eq!(
        (say.language.as_deref(), say.voice.as_deref()),
        (Some("pl-PL"), Some("Polly.Ewa"))
    );
}

#[tokio::test]
async fn recorded_prompts_are_played_from_the_sounds_url() {
    let sounds = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(sounds.path().join("pl-PL")).unwrap();
    std::fs::write(
        sounds.path().join("pl-PL/greeting.wav"),
        b"RIFF....WAVEfmt ",
    )
    .unwrap();
    let dir = sounds.path().to_owned();
    let app = TestApp::spawn_with(move |s| s.sounds_dir = dir).await;
    let doc = Caller::new(&app, "+48700000014").dial().await;
    let Some(Verb::Play(play)) = doc.twiml.verbs.first() else {
        panic!("{}", doc.xml)
    };
    assert_eq!(play.url, format!("{PUBLIC_URL}/sounds/pl-PL/greeting.wav"));
    let served = app.http.get(app.local(&play.url)).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap().as_ref(), b"RIFF....WAVEfmt ");
    // Prompts without a recording are still spoken.
    assert!(doc.said().contains(ASK_CODE));
}

#[tokio::test]
async fn commands_work_on_the_data_directory_of_a_running_server() {
    let app = TestApp::spawn().await;
    let run = |args: &[&str]| {
        let out = callgate_cli(&app.data_dir, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&[
        "account",
        "add",
        "--id",
        "ACC-CLI",
        "--name",
        "Ewa Zielińska",
        "--phone",
        "602 111 222",
        "--code",
        "80808080",
    ]);
    let code = run(&["account", "call-code", "ACC-CLI"])
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let token = run(&["user", "add", "ewa-agent", "--role", "agent"])
        .lines()
        .last()
        .unwrap()
        .to_owned();

    // The running server sees the account, the call code and the token at once.
    let mut caller = Caller::new(&app, "+48602111222");
    caller.dial().await;
    assert!(caller.press("80808080#").await.said().contains(MENU));
    caller.press("3").await;
    let mut second = Caller::new(&app, "+48700000020");
    second.dial().await;
    assert!(
        second
            .press(&format!("{code}#"))
            .await
            .said()
            .contains(MENU)
    );
    let (status, pop) = app.screen_pop(&caller.call_sid, &token).await;
    assert_eq!(status, 200);
    assert_eq!(pop["account"]["name"], "Ewa Zielińska");
    assert_eq!(pop["caller"], "+48******222", "masked for an agent");
}
