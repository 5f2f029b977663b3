//! What the server logs, read from the real process at the most verbose level: never keypad
//! digits, codes, TOTP values, secrets or tokens; phone numbers only masked.

use std::time::Duration;

use crate::common::process::ServerProcess;
use crate::common::*;
use callgate::store::users::Role;

#[tokio::test]
async fn logs_hold_no_secret_and_no_full_phone_number() {
    let app = TestApp::spawn().await;
    let account_code = "97531864";
    let secret = app
        .add_account("ACC-LOG", "+48601234567", Some(account_code), true)
        .unwrap();
    let call_code = app.call_code("ACC-LOG", 600_000, callgate::store::now_ms());
    let token = app.user("agent", Role::Agent);
    let mut app = app;
    app.stop().await;

    let server =
        ServerProcess::start_logging(&app.data_dir, &["--public-url", PUBLIC_URL], "trace");
    server.wait_ready().await;
    let totp = totp_now(&secret);
    let mut caller = Caller::new(&server, "+48601234567");
    caller.stir = Some("TN-Validation-Failed-B".into());
    caller.dial().await;
    caller.press(&format!("{account_code}#")).await;
    caller.press(&wrong_totp(&secret)).await;
    caller.press(&totp).await;
    caller.press("1").await;
    let mut other = Caller::new(&server, "+48700000700");
    other.dial().await;
    other.press(&format!("{call_code}#")).await;
    let pop = server
        .http
        .get(format!("{}/api/calls/{}", server.addr, caller.call_sid))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(pop.status(), 200);
    // A forged request is logged too, without its content.
    let r = server
        .http
        .post(format!("{}/twilio/voice", server.addr))
        .header("X-Twilio-Signature", "forged")
        .form(&[("CallSid", "CA1"), ("Digits", "55443322")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The process's stderr is read on another thread: wait (polling) for the refusal's line,
    // the last one this test causes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server
        .stderr
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("refused webhook"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the refusal was not logged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let logs = server.stderr.lock().unwrap().join("\n");
    assert!(
        logs.contains("caller verified"),
        "the flow is logged at all: {logs}"
    );
    // Every line of a webhook carries its CallSid, also those written on the writer thread.
    let verified = logs
        .lines()
        .find(|l| l.contains("caller verified"))
        .unwrap();
    assert!(
        verified.contains(&format!("call_sid={}", caller.call_sid)),
        "{verified}"
    );
    assert!(
        logs.contains("+48******567"),
        "masked numbers appear: {logs}"
    );
    assert!(logs.contains("refused webhook"), "{logs}");
    for (what, needle) in [
        ("account code", account_code),
        ("call code", call_code.as_str()),
        ("TOTP code", totp.as_str()),
        ("API token", token.as_str()),
        ("auth token", AUTH_TOKEN),
        ("full caller number", "601234567"),
        ("full caller number", "700000700"),
        ("forged digits", "55443322"),
    ] {
        assert!(
            !logs.contains(needle),
            "{what} {needle:?} found in the log:\n{logs}"
        );
    }
}
