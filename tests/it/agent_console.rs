//! The agent console in headless Chromium: an agent logs in, a call is played through the
//! signed webhooks, the screen-pop appears within a second with the right level, factors and
//! risk flags; the agent records an outcome (checked in the database); an agent of another
//! department sees nothing.

use std::time::{Duration, Instant};

use crate::common::agent::{JAN_CODE, JAN_PHONE};
use crate::common::browser::Browser;
use crate::common::{AUTH_TOKEN, Caller, TestApp};
use callgate::store::users::Role;
use callgate::twilio::{signature, twiml};

/// Posts a webhook signed for the server's own URL (this server has no proxy in front, so
/// the browser's cookies are not `Secure`) and returns the `<Gather>` action of the answer.
async fn webhook(app: &TestApp, url: &str, params: &[(String, String)]) -> Option<String> {
    let sig = signature::compute(AUTH_TOKEN, url, params);
    let r = app
        .http
        .post(url)
        .header("X-Twilio-Signature", sig)
        .form(params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{url}");
    let doc = twiml::parse(&r.text().await.unwrap()).unwrap();
    doc.verbs.iter().find_map(|v| match v {
        twiml::Verb::Gather(g) => Some(g.action.clone()),
        _ => None,
    })
}

/// Plays a call from `from`: each of `keys` typed at the next `<Gather>`.
async fn play(app: &TestApp, from: &str, keys: &[&str]) -> String {
    let caller = Caller::new(app, from);
    let mut action = webhook(
        app,
        &format!("{}/twilio/voice", app.addr),
        &caller.params("ringing"),
    )
    .await;
    for k in keys {
        let url = action.expect("a <Gather> to answer");
        let mut params = caller.params("in-progress");
        params.push(("Digits".into(), (*k).into()));
        params.push(("FinishedOnKey".into(), "#".into()));
        action = webhook(app, &url, &params).await;
    }
    caller.call_sid
}

async fn text(browser: &Browser, id: &str) -> String {
    browser
        .eval(&format!(
            "const e = document.getElementById('{id}'); return e ? e.textContent : ''"
        ))
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Polls until `check` holds, failing after `within`; returns how long it took.
async fn until(browser: &Browser, within: Duration, what: &str, check: &str) -> Duration {
    let started = Instant::now();
    loop {
        if browser.eval(check).await == serde_json::Value::Bool(true) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{what} not within {within:?}; page: {}",
            browser.page().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn log_in(browser: &Browser, app: &TestApp, token: &str) {
    browser.goto(&format!("{}/agent", app.addr)).await;
    browser.wait_for_path("/login").await;
    browser.type_into("token", token).await;
    browser.click("login").await;
    browser.wait_for_path("/agent").await;
    until(
        browser,
        Duration::from_secs(10),
        "the live stream",
        "return document.getElementById('live-status').textContent === 'Live'",
    )
    .await;
}

#[tokio::test]
async fn browser_the_screen_pop_appears_live_and_the_agent_records_the_outcome() {
    let app = TestApp::spawn_without_proxy().await;
    app.add_account("ACC-20", JAN_PHONE, Some(JAN_CODE), false);
    let billing = app.user_in("Bea Billing", Role::Agent, "billing");
    let tech = app.user_in("Tom Tech", Role::Agent, "technical");
    let browser = Browser::start().await;
    log_in(&browser, &app, &billing).await;
    assert!(text(&browser, "pop-empty").await.contains("appear here"));

    // From another number, one wrong code first: level low, two risk flags.
    let sid = play(&app, "+48609999999", &["999999", JAN_CODE, "1"]).await;
    let took = until(
        &browser,
        Duration::from_secs(1),
        "the screen-pop",
        "return document.getElementById('pop-name').textContent === 'Name of ACC-20'",
    )
    .await;
    eprintln!("screen-pop shown {took:?} after the hand-off webhook returned");
    assert_eq!(text(&browser, "pop-level").await, "low");
    let level_class = browser
        .eval("return document.getElementById('pop-level-box').className")
        .await;
    assert_eq!(level_class, "level-box level-low");
    assert_eq!(text(&browser, "pop-department").await, "billing");
    assert_eq!(
        text(&browser, "pop-caller").await,
        "+48******999 · account ACC-20"
    );
    let items = |id: &str| {
        format!(
            "return Array.from(document.querySelectorAll('#{id} li')).map(li => li.textContent)"
        )
    };
    assert_eq!(
        browser.eval(&items("pop-factors")).await,
        serde_json::json!(["Account code"])
    );
    assert_eq!(
        browser.eval(&items("pop-risks")).await,
        serde_json::json!([
            "Caller ID did not match the account's registered number",
            "1 failed attempt in this call"
        ])
    );
    assert_eq!(
        browser
            .eval(&items("queue-list"))
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The outcome.
    browser.click("outcome-resolved-no").await;
    browser.click("outcome-recurring").await;
    browser
        .type_into("outcome-note", "Invoice sent twice")
        .await;
    browser.click("outcome-submit").await;
    until(
        &browser,
        Duration::from_secs(5),
        "the saved outcome",
        "return document.getElementById('outcome-message').textContent.startsWith('Saved by Bea Billing at ')",
    )
    .await;
    let row: (bool, String, String, bool, String) = app.sql()
        .query_row(
            "SELECT resolved, category, note, recurring, agent FROM call_outcomes WHERE call_sid = ?1",
            [&sid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        row,
        (
            false,
            "billing".into(),
            "Invoice sent twice".into(),
            true,
            "Bea Billing".into()
        )
    );
    assert_eq!(text(&browser, "pop-status").await, "Answered");

    // An agent of another department: nothing of billing, before or live.
    browser.click("logout").await;
    browser.wait_for_path("/login").await;
    log_in(&browser, &app, &tech).await;
    play(&app, JAN_PHONE, &[JAN_CODE, "1"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        browser
            .eval("return document.querySelectorAll('.call-item').length")
            .await,
        0
    );
    assert!(
        browser
            .eval("return document.getElementById('pop').hidden")
            .await
            .as_bool()
            .unwrap()
    );
    // ...but its own department's calls, live.
    play(&app, JAN_PHONE, &[JAN_CODE, "2"]).await;
    until(
        &browser,
        Duration::from_secs(1),
        "the technical call",
        "return document.getElementById('pop-department').textContent === 'technical'",
    )
    .await;
    assert_eq!(text(&browser, "pop-level").await, "medium");
    browser.quit().await;
}
