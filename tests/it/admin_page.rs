//! The admin page end to end in headless Chromium: an admin logs in, breaks the default script
//! in the editor and sees the error at its line, fixes it with a new greeting, saves, publishes,
//! hears the new greeting in the page's call simulator, and real calls get it too. Then the
//! Accounts and Agents tabs.

use std::time::{Duration, Instant};

use crate::common::browser::{Browser, WAIT};
use crate::common::*;
use callgate::store::users::Role;
use callgate::twilio::emulator::CallLeg;
use callgate::twilio::{signature, twiml};
use fantoccini::Locator;

const NEW_GREETING: &str = "Witamy w nowej linii callgate.";
const OLD_GREETING: &str = "Dzień dobry, tu pomoc techniczna.";

/// Polls a JS expression until it is truthy; panics with `what` and the page otherwise.
async fn wait_until(browser: &Browser, what: &str, expression: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let value = browser.eval(&format!("return ({expression});")).await;
        let truthy = match &value {
            serde_json::Value::Null => false,
            serde_json::Value::Bool(b) => *b,
            serde_json::Value::String(s) => !s.is_empty(),
            serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        if truthy {
            return value;
        }
        assert!(
            started.elapsed() < WAIT,
            "timed out waiting for {what} ({expression}); page: {}",
            browser.page().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The visible text of the element with this id.
async fn text(browser: &Browser, id: &str) -> String {
    browser.text_of(id).await
}

/// With `CALLGATE_SCREENSHOTS=<dir>`, saves what the page looks like at this point (for
/// reviewing the layout; nothing is asserted on it).
async fn snapshot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("CALLGATE_SCREENSHOTS")
        && let Ok(png) = browser.client.screenshot().await
    {
        let _ = std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png);
    }
}

async fn log_in(app: &TestApp, browser: &Browser, token: &str) {
    browser.goto(&format!("{}/admin", app.addr)).await;
    browser.wait_for_path("/login").await;
    browser.type_into("token", token).await;
    browser.click("login").await;
    browser.wait_for_path("/admin").await;
}

/// A real call's first answer, signed as Twilio signs it (the public URL of this server is its
/// own address).
async fn dial(app: &TestApp) -> String {
    let leg = CallLeg {
        call_sid: new_call_sid(),
        from: "+48601234567".into(),
        to: DIALED.into(),
        stir_verstat: None,
    };
    let params = leg.params("ringing", &[]);
    let url = format!("{}/twilio/voice", app.addr);
    let sig = signature::compute(AUTH_TOKEN, &url, &params);
    let r = app
        .http
        .post(&url)
        .header("X-Twilio-Signature", sig)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let xml = r.text().await.unwrap();
    let doc = twiml::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    Doc {
        xml,
        twiml: doc,
        url,
    }
    .said()
}

#[tokio::test]
async fn an_admin_breaks_fixes_publishes_and_simulates_a_script_in_the_browser() {
    let app = TestApp::spawn_without_proxy().await;
    let token = app.user("Ada Admin", Role::Admin);
    assert!(dial(&app).await.starts_with(OLD_GREETING));
    let browser = Browser::start().await;
    log_in(&app, &browser, &token).await;

    // The list shows the shipped scripts; choose `default`.
    browser.click("script-item-default").await;
    let source = wait_until(
        &browser,
        "the default script in the editor",
        "window.callgateEditor && window.callgateEditor.getValue().includes('name = \"default\"') && window.callgateEditor.getValue()",
    )
    .await
    .as_str()
    .unwrap()
    .to_owned();
    // Highlighted, with the flow drawn (start marked).
    wait_until(
        &browser,
        "highlighting",
        "document.querySelectorAll('#editor-highlight .tok-table').length > 5",
    )
    .await;
    wait_until(
        &browser,
        "the flow graph",
        "document.querySelector('#node-greeting.start') && document.querySelectorAll('#graph-svg .graph-edge').length > 5",
    )
    .await;

    browser
        .eval("document.getElementById('graph').scrollIntoView(); return true;")
        .await;
    snapshot(&browser, "0-flow").await;

    // Break it: the greeting's `next` names a step that does not exist.
    let broken = source.replacen("next = \"account-code\"", "next = \"acount-code\"", 1);
    assert_ne!(broken, source);
    let bad_line = broken
        .lines()
        .position(|l| l.contains("\"acount-code\""))
        .unwrap()
        + 1;
    browser
        .client
        .execute(
            "window.callgateEditor.setValue(arguments[0]);",
            vec![serde_json::Value::String(broken)],
        )
        .await
        .unwrap();
    // The checker's error shows in the list, at its line, and in the gutter at that line.
    let problem = wait_until(
        &browser,
        "the error in the problem list",
        &format!(
            "[...document.querySelectorAll('#problems li.error')].map(li => li.dataset.line + ' ' + li.textContent).find(t => t.startsWith('{bad_line} ') && t.includes('acount-code'))"
        ),
    )
    .await;
    assert!(
        problem.as_str().unwrap().contains("undefined step"),
        "{problem}"
    );
    wait_until(
        &browser,
        "the gutter marker",
        &format!("document.querySelector('#editor-gutter .has-error[data-line=\"{bad_line}\"]')"),
    )
    .await;
    wait_until(
        &browser,
        "the underlined line",
        &format!(
            "document.querySelector('#editor-highlight .line-error[data-line=\"{bad_line}\"]')"
        ),
    )
    .await;
    assert!(text(&browser, "check-status").await.contains("error"));
    snapshot(&browser, "1-broken").await;
    // Clicking the problem puts the caret on its line.
    browser
        .client
        .find(Locator::Css("#problems li.error"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let caret_line = browser
        .eval("const t = document.getElementById('editor-text'); return t.value.slice(0, t.selectionStart).split('\\n').length;")
        .await;
    assert_eq!(caret_line.as_u64(), Some(bad_line as u64));
    // The highlighted copy scrolled with the text (no style may be inline under the CSP; the
    // script moves it through the CSSOM).
    let aligned = browser
        .eval(
            "const t = document.getElementById('editor-text');
             const m = new DOMMatrix(getComputedStyle(document.getElementById('editor-highlight')).transform);
             return t.scrollTop > 0 && Math.abs(m.m42 + t.scrollTop) < 1;",
        )
        .await;
    assert_eq!(
        aligned, true,
        "the highlighting does not follow the scrolled text"
    );

    // Fix it, with a new greeting.
    let fixed = source.replacen(OLD_GREETING, NEW_GREETING, 1);
    browser
        .client
        .execute(
            "window.callgateEditor.setValue(arguments[0]);",
            vec![serde_json::Value::String(fixed)],
        )
        .await
        .unwrap();
    wait_until(
        &browser,
        "the error to go",
        "!document.querySelector('#editor-gutter .has-error') && !document.querySelector('#problems li.error') && !document.getElementById('check-status').textContent.includes('checking')",
    )
    .await;

    // Save the draft: version 2, not live yet.
    browser.click("save-draft").await;
    wait_until(
        &browser,
        "the saved draft",
        "document.getElementById('script-meta').textContent.includes('latest draft: version 2')",
    )
    .await;
    assert!(dial(&app).await.starts_with(OLD_GREETING));

    // Publish it from the versions list, through the in-page confirmation.
    browser.click("subtab-versions").await;
    browser.click("publish-v2").await;
    wait_until(
        &browser,
        "the confirmation",
        "!document.getElementById('confirm').classList.contains('hidden')",
    )
    .await;
    assert!(
        text(&browser, "confirm-message")
            .await
            .contains("version 2")
    );
    browser.click("confirm-yes").await;
    wait_until(
        &browser,
        "version 2 live",
        "document.querySelector('#version-2 .badge.live')",
    )
    .await;
    // Version 1 can now be rolled back to.
    browser.wait_for_id("rollback-v1").await;
    snapshot(&browser, "2-versions").await;

    // The simulator runs the editor's text: the caller hears the new greeting.
    browser.click("subtab-simulator").await;
    browser.click("sim-start").await;
    wait_until(
        &browser,
        "the new greeting in the transcript",
        &format!(
            "document.getElementById('sim-transcript').textContent.includes('{NEW_GREETING}')"
        ),
    )
    .await;
    assert_eq!(text(&browser, "sim-level").await.to_lowercase(), "none");
    // Silence at the code question: asked again, the call goes on.
    browser.click("sim-silence").await;
    wait_until(
        &browser,
        "the re-prompt",
        "document.getElementById('sim-transcript').textContent.includes('(silence)') && document.querySelectorAll('#sim-transcript li.say').length >= 3",
    )
    .await;

    snapshot(&browser, "3-simulator").await;

    // The audit trail shows the save with its diff, and the publish.
    browser.click("subtab-audit").await;
    wait_until(
        &browser,
        "the audit entries",
        &format!(
            "[...document.querySelectorAll('#audit-list .diff .add')].some(l => l.textContent.includes('{NEW_GREETING}')) && document.getElementById('audit-list').textContent.includes('script.publish')"
        ),
    )
    .await;

    snapshot(&browser, "4-audit").await;

    // Real calls get the published version.
    let said = dial(&app).await;
    assert!(said.starts_with(NEW_GREETING), "{said}");
    browser.quit().await;
}

#[tokio::test]
async fn an_admin_manages_accounts_and_agents_in_the_browser() {
    let app = TestApp::spawn_without_proxy().await;
    let token = app.user("Ada Admin", Role::Admin);
    let browser = Browser::start().await;
    log_in(&app, &browser, &token).await;

    browser.click("tab-accounts").await;
    browser.type_into("acct-id", "ACC-9001").await;
    browser.type_into("acct-name", "Test Caller").await;
    browser.type_into("acct-phone", "+48601234599").await;
    browser.type_into("acct-code", "86420975").await;
    browser.click("acct-totp").await;
    browser.click("acct-test").await;
    browser.click("acct-add").await;
    wait_until(
        &browser,
        "the authenticator URI",
        "document.getElementById('acct-otpauth').textContent.startsWith('otpauth://')",
    )
    .await;
    wait_until(
        &browser,
        "the new account row",
        "document.getElementById('account-ACC-9001') && document.getElementById('account-ACC-9001').textContent.includes('+48******599')",
    )
    .await;
    assert!(!browser.page().await.contains("86420975"));
    snapshot(&browser, "5-accounts").await;

    browser.click("delete-account-ACC-9001").await;
    browser.click("confirm-yes").await;
    wait_until(
        &browser,
        "the account gone",
        "!document.getElementById('account-ACC-9001')",
    )
    .await;

    browser.click("tab-users").await;
    browser.type_into("user-name-input", "Olga Agent").await;
    browser.type_into("user-departments", "billing").await;
    browser.click("user-add").await;
    let shown = wait_until(
        &browser,
        "the new agent's token",
        "document.getElementById('user-token').textContent",
    )
    .await;
    snapshot(&browser, "6-agents").await;
    let agent_token = shown.as_str().unwrap().to_owned();
    assert!(agent_token.starts_with("cg_"));
    wait_until(
        &browser,
        "the agent row",
        "document.querySelector('#users-body tr[data-user=\"Olga Agent\"]')",
    )
    .await;
    let r = app
        .http
        .get(format!("{}/api/me", app.addr))
        .bearer_auth(&agent_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    browser.quit().await;
}
