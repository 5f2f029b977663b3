//! Holes found by the hostile review (issue 11): each test is named after its hole and failed on
//! the main it was written against.

#[allow(unused_imports)]
use super::*;

use callgate::store::now_ms;
use serde_json::{Value, json};

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
