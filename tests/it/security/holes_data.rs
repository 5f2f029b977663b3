//! Holes found by the hostile review (issue 11): each test is named after its hole and failed on
//! the main it was written against.

#[allow(unused_imports)]
use super::*;

use std::path::Path;

use callgate::store::now_ms;
use serde_json::{Value, json};

/// The forms a Polish mobile number can take in stored text or an answer: E.164, without the
/// plus, national, and the masked form the logs use.
fn number_forms(e164: &str) -> Vec<String> {
    let digits = e164.trim_start_matches('+').to_owned();
    let national = digits.trim_start_matches("48").to_owned();
    vec![
        e164.to_owned(),
        digits,
        national,
        callgate::domain::mask_number(e164),
    ]
}

async fn get_text(app: &TestApp, token: &str, path: &str) -> (u16, String) {
    let r = app
        .http
        .get(format!("{}{path}", app.addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// No full form of `PHONE` in `body`, which `what` names in the failure message.
fn no_full_number(what: &str, body: &str) {
    for full in [PHONE, PHONE.trim_start_matches('+')] {
        assert!(!body.contains(full), "{what} carries {full}: {body}");
    }
}

#[tokio::test]
async fn hole2_agents_read_every_call_with_the_caller_number_masked_admins_in_full() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-H2", PHONE, Some(CODE), false);
    let agent = app.user("Bea Agent", Role::Agent);
    let admin = app.user("Ada Admin", Role::Admin);
    let masked = "+48******567";

    let mut stream = agent::EventStream::open(&app, &agent, None).await;
    let mut caller = Caller::new(&app, PHONE);
    caller.dial().await;
    caller.press(&format!("{CODE}#")).await;
    assert!(caller.press("1").await.handoff().is_some());
    let sid = caller.call_sid.clone();

    // The screen-pop by the API: the read the review found leaking.
    let (status, body) = get_text(&app, &agent, &format!("/api/calls/{sid}")).await;
    assert_eq!(status, 200, "{body}");
    no_full_number("GET /api/calls/{sid} (agent)", &body);
    let pop: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(pop["caller"], masked, "{pop}");

    // The queue, the live stream, the outcome's answer and the signed pop URL.
    let (status, body) = get_text(&app, &agent, "/api/agent/queue").await;
    assert_eq!(status, 200, "{body}");
    no_full_number("GET /api/agent/queue (agent)", &body);
    assert!(body.contains(masked), "{body}");
    let event = stream
        .next(Duration::from_secs(10))
        .await
        .expect("the hand-off event");
    no_full_number("the agent event stream", &event.data.to_string());
    assert_eq!(event.data["call"]["caller"], masked);
    let r = app
        .http
        .post(format!("{}/api/calls/{sid}/outcome", app.addr))
        .bearer_auth(&agent)
        .json(&json!({ "resolved": true, "category": "billing" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    no_full_number("POST /api/calls/{sid}/outcome (agent)", &body);
    assert!(body.contains(masked), "{body}");
    let token = callgate::agent::pop::token(&app.keys(), &sid, now_ms() + 60_000);
    let r = app
        .http
        .get(format!("{}/pop/{token}", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    no_full_number("/pop/{token}", &body);
    assert!(body.contains(masked), "{body}");

    // Agents cannot read the journey at all.
    let (status, body) = get_text(&app, &agent, &format!("/api/calls/{sid}/journey")).await;
    assert_eq!(status, 403, "{body}");
    no_full_number("the journey refused to an agent", &body);

    // Admins read the number in full, by the same rule.
    let (status, body) = get_text(&app, &admin, &format!("/api/calls/{sid}")).await;
    assert_eq!(status, 200, "{body}");
    let pop: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(pop["caller"], PHONE, "{pop}");
    let (_, body) = get_text(&app, &admin, "/api/agent/queue").await;
    assert!(body.contains(PHONE), "{body}");
    // A journey traces how the call went, for admins: the number masked even for them.
    let (status, body) = get_text(&app, &admin, &format!("/api/calls/{sid}/journey")).await;
    assert_eq!(status, 200, "{body}");
    no_full_number("the journey (admin)", &body);
    let journey: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(journey["caller"], masked, "{journey}");
}

/// Every file under `dir`, recursively, with its path.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            out.push((path, bytes));
        }
    }
    out
}

#[tokio::test]
async fn hole4_forget_leaves_no_name_or_number_in_any_file_of_the_data_directory() {
    const NAME: &str = "Zofia Zapominalska";
    const ACCOUNT_CODE: &str = "86420135";
    // The CRM webhook points nowhere: its deliveries stay in the outbox, with the pop in them.
    let mut app = TestApp::spawn_with(|s| {
        s.crm_webhook = Some(callgate::config::CrmWebhook::new(
            "http://127.0.0.1:9/hook",
            "hook-secret",
        ));
    })
    .await;
    let api = Api {
        app: &app,
        token: app.user("Ada Admin", Role::Admin),
    };
    let (status, body) = api
        .post(
            "/api/accounts",
            json!({
                "id": "FORGET-1",
                "name": NAME,
                "phone": "601 234 567",
                "code": ACCOUNT_CODE,
                "knowledge": { "dob": "02031970" },
                "attributes": { "plan": "gold" },
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // A verified call handed to an agent, with a note naming the caller.
    let mut c = Caller::new(&app, PHONE);
    c.dial().await;
    c.press(&format!("{ACCOUNT_CODE}#")).await;
    assert!(c.press("1").await.handoff().is_some());
    let (status, body) = api
        .post(
            &format!("/api/calls/{}/outcome", c.call_sid),
            json!({ "resolved": true, "category": "billing", "note": "Pani Zofia dzwoni" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(c.status("completed").await, 204);
    // Wrong codes from the same number until the account and then the number are locked: the
    // lockouts go to the audit trail.
    for _ in 0..4 {
        let mut c = Caller::new(&app, PHONE);
        c.dial().await;
        for _ in 0..3 {
            if c.last.as_ref().and_then(Doc::gather).is_none() {
                break;
            }
            c.press("99999999#").await;
        }
        c.status("completed").await;
    }
    {
        let locks: i64 = app
            .sql()
            .query_row(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'security.number_locked'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(locks, 1, "the number was locked");
    }

    let out = callgate_cli(&app.data_dir, &["account", "forget", "FORGET-1", "--yes"]);
    assert!(out.status.success(), "{out:?}");
    let out = callgate_cli(&app.data_dir, &["audit", "verify"]);
    assert!(out.status.success(), "{out:?}");
    app.stop().await;

    let mut needles = number_forms(PHONE);
    needles.push(NAME.to_owned());
    needles.push("Zofia".to_owned());
    let files = files_under(&app.data_dir);
    assert!(
        files.iter().any(|(p, _)| p.ends_with("callgate.db")),
        "{:?}",
        files.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    let mut found = Vec::new();
    for (path, bytes) in &files {
        for needle in &needles {
            if contains(bytes, needle.as_bytes()) {
                found.push(format!("{needle} in {}", path.display()));
            }
        }
    }
    assert!(found.is_empty(), "left after forget: {found:?}");
}

#[tokio::test]
async fn hole12_a_refused_account_code_is_recorded_in_the_audit_trail_without_the_code() {
    const TAKEN: &str = "97531086";
    let app = TestApp::spawn().await;
    let api = Api {
        app: &app,
        token: app.user("Ada Admin", Role::Admin),
    };
    let (status, body) = api
        .post(
            "/api/accounts",
            json!({ "id": "H12-1", "name": "Ewa Nowak", "phone": "+48601000001", "code": TAKEN }),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // Another admin tries the same code: refused, and the attempt shows in the trail.
    let (status, body) = api
        .post(
            "/api/accounts",
            json!({ "id": "H12-2", "name": "Jan Sonda", "phone": "+48601000002", "code": TAKEN }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, trail) = api.get("/api/audit").await;
    assert_eq!(status, 200, "{trail}");
    let refusals: Vec<&Value> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "account.code_refused")
        .collect();
    assert_eq!(refusals.len(), 1, "{trail}");
    assert_eq!(refusals[0]["actor"], "Ada Admin");
    let row = refusals[0].to_string();
    for personal in [TAKEN, "Jan Sonda", "601000002", "+48******002"] {
        assert!(!row.contains(personal), "{personal} in {row}");
    }
    // Nothing else was added for the refused account.
    assert_eq!(
        trail
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "account.add")
            .count(),
        1,
        "{trail}"
    );

    // The CLI records its refusals the same way.
    let out = callgate_cli(
        &app.data_dir,
        &[
            "account",
            "add",
            "--id",
            "H12-3",
            "--name",
            "Piotr Sonda",
            "--phone",
            "+48601000003",
            "--code",
            TAKEN,
        ],
    );
    assert!(!out.status.success(), "{out:?}");
    let (_, trail) = api.get("/api/audit").await;
    let refusals: Vec<&Value> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "account.code_refused")
        .collect();
    assert_eq!(refusals.len(), 2, "{trail}");
    assert!(
        refusals[0]["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("cli")),
        "{trail}"
    );
    let text = trail.to_string();
    for personal in [TAKEN, "Piotr Sonda", "Jan Sonda", "Ewa Nowak"] {
        assert!(!text.contains(personal), "{personal} in the trail: {text}");
    }
}
