//! The terminal softphone plays a whole call against a real server.

use crate::common::*;
use callgate::softphone::{CallArgs, Softphone};
use callgate::store::users::Role;

fn args(app: &TestApp, from: &str, agent: Option<String>) -> CallArgs {
    CallArgs {
        from: from.into(),
        to: DIALED.into(),
        url: app.addr.clone(),
        token: Some(AUTH_TOKEN.into()),
        agent_token: agent,
        stir: None,
        keys: None,
    }
}

#[tokio::test]
async fn the_softphone_plays_a_verified_call_to_the_screen_pop() {
    // The softphone signs for the URL it calls, so the public URL is the listen address.
    let app = TestApp::spawn_without_proxy().await;
    app.add_account("ACC-S", "+48601234567", Some("246810"), false);
    let agent = app.user("agent", Role::Agent);

    let phone = Softphone::new(args(&app, "+48601234567", Some(agent))).unwrap();
    let mut keys = vec!["246810#".to_owned(), "2".to_owned()].into_iter();
    let mut out = Vec::new();
    phone.call(&mut keys, &mut out).await.unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("said: Dzień dobry"), "{out}");
    assert!(
        out.contains("pressed: ******#"),
        "keys are not echoed: {out}"
    );
    assert!(!out.contains("246810"), "{out}");
    assert!(
        out.contains("handed off: enqueued to queue technical"),
        "{out}"
    );
    assert!(out.contains("\"level\": \"medium\""), "{out}");
    assert!(out.contains("callgate hung up"), "{out}");

    // Silence twice: prompted again, then told goodbye.
    let phone = Softphone::new(args(&app, "+48700000000", None)).unwrap();
    let mut keys = vec![String::new(), String::new()].into_iter();
    let mut out = Vec::new();
    phone.call(&mut keys, &mut out).await.unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out.matches("(silence)").count(), 2, "{out}");
    assert!(out.contains("Nie otrzymaliśmy odpowiedzi"), "{out}");
    assert!(out.contains("the call ended without a hand-off"), "{out}");
}
