//! Holes found by the hostile review (issue 11): each test is named after its hole and failed on
//! the main it was written against.

#[allow(unused_imports)]
use super::*;

use serde_json::{Value, json};

use callgate::twilio::twiml::{Dial, DialTarget, Response, Verb};

const SHIPPED: &str = include_str!("../../../ivr-scripts/default.toml");

/// The problems the admin API's checker reports for `source`.
async fn check(app: &TestApp, source: &str) -> Vec<Value> {
    let admin = Api {
        app,
        token: app.user(&format!("reviewer-{}", new_call_sid()), Role::Admin),
    };
    let (status, body) = admin
        .post("/api/scripts/check", json!({ "source": source }))
        .await;
    assert_eq!(status, 200, "{body}");
    body["problems"].as_array().cloned().unwrap_or_default()
}

fn line_of(text: &str, needle: &str) -> u64 {
    let at = text.find(needle).unwrap();
    text[..at].matches('\n').count() as u64 + 1
}

/// `[prompts."../../probe"]` made the checker open `sounds/pl-PL/../../probe.wav`, outside the
/// sounds directory, and report whether it was a WAV file: a file-system probe for admins.
#[tokio::test]
async fn hole5_prompt_names_never_reach_the_file_system() {
    let root = tempfile::tempdir().unwrap();
    let sounds = root.path().join("sounds");
    std::fs::create_dir_all(sounds.join("pl-PL")).unwrap();
    std::fs::create_dir_all(sounds.join("en-US")).unwrap();
    // What a probe would find: a file outside `sounds/` that is no WAV.
    std::fs::write(root.path().join("probe.wav"), b"not a wav").unwrap();
    let app = TestApp::spawn_with(|s| s.sounds_dir = sounds.clone()).await;

    let source =
        format!("{SHIPPED}\n[prompts.\"../../probe\"]\n\"pl-PL\" = \"x\"\n\"en-US\" = \"x\"\n");
    let problems = check(&app, &source).await;
    let line = line_of(&source, "[prompts.\"../../probe\"]");
    assert!(
        problems.iter().any(|p| p["severity"] == "error"
            && p["line"] == line
            && p["message"]
                .as_str()
                .unwrap()
                .contains("prompt name \"../../probe\" must be lowercase letters")),
        "no error at line {line}: {problems:?}"
    );
    assert!(
        !problems
            .iter()
            .any(|p| p["message"].as_str().unwrap().contains("probe.wav")),
        "the checker looked outside sounds/: {problems:?}"
    );

    // A language that is not a tag is no way out either.
    let source = SHIPPED.replace(
        "languages = [\"pl-PL\", \"en-US\"]",
        "languages = [\"pl-PL\", \"en-US\", \"../..\"]",
    );
    let problems = check(&app, &source).await;
    assert!(
        !problems
            .iter()
            .any(|p| p["message"].as_str().unwrap().contains("../../")),
        "{problems:?}"
    );
}

/// Calls from the account's registered phone whose STIR/SHAKEN status is spelled as another
/// gateway or trunk spells it.
async fn level_with_stir(app: &TestApp, stir: &str, admin: &str) -> Value {
    let mut c = Caller::new(app, PHONE);
    c.stir = Some(stir.to_owned());
    c.dial().await;
    c.press(&format!("{CODE}#")).await;
    let (status, pop) = app.screen_pop(&c.call_sid, admin).await;
    assert_eq!(status, 200);
    pop
}

#[tokio::test]
async fn hole6_stir_shaken_spelled_differently_still_counts() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-S", PHONE, Some(CODE), false);
    let admin = app.user("admin", Role::Admin);

    // The reference: Twilio's spelling of a pass gives the caller ID its credit.
    let pop = level_with_stir(&app, "TN-Validation-Passed-A", &admin).await;
    assert_eq!(pop["level"], "medium", "{pop}");

    for failed in [
        "TN-Validation-Failed-A",
        "tn-validation-failed-a",
        "TN_Validation_Failed_A",
        "tn validation failed c diverted",
    ] {
        let pop = level_with_stir(&app, failed, &admin).await;
        assert_eq!(pop["level"], "low", "{failed}: {pop}");
        assert!(
            !pop["factors"]
                .as_array()
                .unwrap()
                .contains(&json!("caller_id")),
            "{failed}: {pop}"
        );
        assert_eq!(pop["risk"]["stir_failed"], true, "{failed}: {pop}");
    }

    // A value nobody understands: no credit, and the agent is told.
    for odd in ["TN-Validation-Maybe", "x\ny", "Passed"] {
        let pop = level_with_stir(&app, odd, &admin).await;
        assert_eq!(pop["level"], "low", "{odd:?}: {pop}");
        assert_eq!(pop["risk"]["stir_unrecognized"], true, "{odd:?}: {pop}");
        assert_eq!(
            pop["risk"]["stir_verstat"], "unrecognized",
            "{odd:?}: {pop}"
        );
    }
    // No value at all stays "unknown", as before: Polish calls carry none.
    let mut c = Caller::new(&app, PHONE);
    c.dial().await;
    c.press(&format!("{CODE}#")).await;
    let (_, pop) = app.screen_pop(&c.call_sid, &admin).await;
    assert_eq!(pop["level"], "medium", "{pop}");
    assert_eq!(pop["risk"]["stir_unrecognized"], false, "{pop}");
}

/// A CR/LF in `sip_uri` came out verbatim inside `<Sip>`: a new header line in the INVITE.
#[tokio::test]
async fn hole9_sip_uri_is_parsed_and_never_rendered_raw() {
    let app = TestApp::spawn().await;
    let with_sip = |uri: &str| {
        SHIPPED.replace(
            "[departments.other]",
            &format!("[departments.other]\nsip_uri = {}", toml_string(uri)),
        )
    };
    for bad in [
        "sip:agents@pbx.example.com\r\nX-Evil: 1",
        "sip:agents@pbx.example.com x",
        "sip:pbx.example.com",
        "sip:agents@pbx.example.com:70000",
        "sip:agents@pbx.example.com;tr<ansport=tls",
    ] {
        let source = with_sip(bad);
        let problems = check(&app, &source).await;
        let line = line_of(&source, "sip_uri = ");
        assert!(
            problems.iter().any(|p| p["severity"] == "error"
                && p["line"] == line
                && p["message"].as_str().unwrap().starts_with("sip_uri ")),
            "{bad:?} not refused at line {line}: {problems:?}"
        );
    }
    for good in [
        "sip:agents@pbx.example.com",
        "sips:agents@10.0.0.5:5061;transport=tls",
    ] {
        let problems = check(&app, &with_sip(good)).await;
        assert!(
            !problems
                .iter()
                .any(|p| p["message"].as_str().unwrap().contains("sip_uri")),
            "{good}: {problems:?}"
        );
    }

    // The renderer refuses one too, whatever built the document.
    let doc = Response::new().push(Verb::Dial(Dial {
        action: None,
        target: DialTarget::Sip {
            uri: "sip:agents@pbx.example.com\r\nX-Evil: 1".into(),
        },
    }));
    assert!(doc.render().is_err());
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A menu that offers the code question again once the caller is identified: the checker
/// warns there, at the step's line (the engine drops the first account's factors).
#[tokio::test]
async fn hole1_checker_warns_where_a_code_can_follow_identification() {
    let app = TestApp::spawn().await;
    let source = reentry_script();
    let problems = check(&app, &source).await;
    let line = line_of(&source, "[steps.account-code]");
    assert!(
        problems.iter().any(|p| p["severity"] == "warning"
            && p["line"] == line
            && p["message"]
                .as_str()
                .unwrap()
                .contains("can be reached after a code step identified the account")),
        "{problems:?}"
    );
    // The shipped script asks for a code once: no such warning.
    assert!(!check(&app, SHIPPED).await.iter().any(|p| {
        p["message"]
            .as_str()
            .unwrap()
            .contains("after a code step identified")
    }),);
}

/// The shipped script with a menu key (9) that goes back to the code question.
fn reentry_script() -> String {
    SHIPPED
        .replace(
            "options = { \"1\" = \"billing\",",
            "options = { \"9\" = \"account-code\", \"1\" = \"billing\",",
        )
        .replace(
            "Inne sprawy: naciśnij 3.\"",
            "Inne sprawy: naciśnij 3. Inny kod: naciśnij 9.\"",
        )
        .replace(
            "For anything else, press 3.\"",
            "For anything else, press 3. For another code, press 9.\"",
        )
}
