//! kill -9 of the real `callgate serve` process between and during webhooks: every answered
//! webhook's state survives, the call goes on after a restart, the database stays intact.

mod common;

use callgate::store::users::Role;
use common::process::ServerProcess;
use common::*;

const MENU: &str = "W sprawie rozliczeń naciśnij 1.";
const ASK_TOTP: &str = "aplikacji uwierzytelniającej";

#[tokio::test]
async fn a_call_survives_kill_9_after_each_of_its_webhooks() {
    let app = TestApp::spawn().await;
    let secret = app
        .add_account("ACC-K", "+48601234567", Some("246810"), true)
        .unwrap();
    let agent = app.user("agent", Role::Agent);
    let mut app = app;
    app.stop().await;
    let dir = app.data_dir.clone();

    let server = ServerProcess::start(&dir);
    server.wait_ready().await;
    let mut caller = Caller::new(&server, "+48700000900");
    caller.dial().await;
    assert!(caller.press("246810#").await.said().contains(ASK_TOTP));
    server.kill_9();

    let server = ServerProcess::start(&dir);
    server.wait_ready().await;
    caller.app = server.endpoint();
    let menu = caller.press(&totp_now(&secret)).await;
    assert!(menu.said().contains(MENU), "{}", menu.said());
    server.kill_9();

    let server = ServerProcess::start(&dir);
    server.wait_ready().await;
    caller.app = server.endpoint();
    assert!(caller.press("2").await.handoff().is_some());
    let r = server
        .http
        .get(format!("{}/api/calls/{}", server.addr, caller.call_sid))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    let pop: serde_json::Value = r.json().await.unwrap();
    assert_eq!(pop["level"], "high");
    assert_eq!(pop["category"], "technical");
    server.kill_9();

    let conn = rusqlite::Connection::open(dir.join("callgate.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}
