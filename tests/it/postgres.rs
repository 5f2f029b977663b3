//! callgate on PostgreSQL: moving a desk there from SQLite, and several nodes answering one
//! line, with the webhooks of one call alternating between them as a round-robin balancer
//! sends them. Each test makes a database of its own on the test server
//! (`CALLGATE_TEST_POSTGRES_URL`; `cargo xtask test` makes sure of one).

use crate::common::pg::{add_account, database, node, on_postgres};
use crate::common::*;
use callgate::store::users::Role;

#[tokio::test]
async fn migrate_to_postgres_copies_proves_and_the_desk_answers_from_the_copy() {
    // A desk on SQLite: accounts, an agent, an audit trail, a call that reached an agent.
    let app = TestApp::spawn().await;
    app.add_account("ACC-M", "+48601234567", Some("24681012"), false);
    let agent = app.user("agent", Role::Agent);
    let mut caller = Caller::new(&app, "+48601234567");
    caller.dial().await;
    assert!(caller.press("24681012#").await.said().contains(MENU));
    assert!(caller.press("1").await.handoff().is_some());
    let first_call = caller.call_sid.clone();
    let mut app = app;
    app.stop().await;
    let dir = app.data_dir.clone();

    let db = database().await;
    let out = callgate_cli(&dir, &["migrate-to-postgres", "--database-url", db.url()]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("copied and proven"), "{printed}");
    assert!(
        printed.contains("audit chain on PostgreSQL: intact"),
        "{printed}"
    );
    let calls_line = printed.lines().find(|l| l.starts_with("calls ")).unwrap();
    assert_eq!(
        calls_line.split_whitespace().collect::<Vec<_>>(),
        ["calls", "1", "1"]
    );
    assert!(!printed.contains("MISMATCH"), "{printed}");
    // The key file's keys went along into the database's ring, wrapped under a new KEK.
    assert!(
        printed.contains("keys: v1 stored in the key ring in the database"),
        "{printed}"
    );
    assert!(dir.join("callgate.kek").exists());

    // A second copy into the same database is refused: it is not empty any more.
    let again = callgate_cli(&dir, &["migrate-to-postgres", "--database-url", db.url()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // The desk runs on the copy: the same account code, the same agent token.
    let server = node(&dir, db.url());
    server.wait_ready().await;
    let mut caller = Caller::new(&server, "+48601234567");
    caller.dial().await;
    assert!(caller.press("24681012#").await.said().contains(MENU));
    for sid in [&first_call, &caller.call_sid] {
        let r = server
            .http
            .get(format!("{}/api/calls/{sid}", server.addr))
            .bearer_auth(&agent)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{sid}");
    }
    let verified = on_postgres(&dir, db.url(), &["audit", "verify"]);
    assert!(verified.contains("intact"), "{verified}");
    server.kill_9();
}

#[tokio::test]
async fn backup_on_postgres_says_what_to_do_instead() {
    let db = database().await;
    let dir = tempfile::tempdir().unwrap();
    let out = callgate_cli(
        dir.path(),
        &[
            "--database-url",
            db.url(),
            "backup",
            &dir.path().join("b.db").display().to_string(),
        ],
    );
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("pg_dump") && said.contains("point-in-time"),
        "{said}"
    );
}

#[tokio::test]
async fn a_call_continues_on_whichever_node_receives_its_next_webhook() {
    let db = database().await;
    let dir = tempfile::tempdir().unwrap();
    // Two nodes starting together on an empty database: one migrates, the other waits.
    let (a, b) = {
        let (d1, u1) = (dir.path().to_owned(), db.url().to_owned());
        let (d2, u2) = (dir.path().to_owned(), db.url().to_owned());
        let a = std::thread::spawn(move || node(&d1, &u1));
        let b = std::thread::spawn(move || node(&d2, &u2));
        (a.join().unwrap(), b.join().unwrap())
    };
    a.wait_ready().await;
    b.wait_ready().await;
    add_account(dir.path(), db.url(), "ACC-N", "+48601234567", "13579246");
    let agent = on_postgres(
        dir.path(),
        db.url(),
        &["user", "add", "agent", "--role", "agent"],
    )
    .lines()
    .last()
    .unwrap()
    .to_owned();

    for round in 0..4 {
        let (first, second) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let mut caller = Caller::new(first, "+48601234567");
        caller.dial().await;
        caller.app = second.endpoint();
        let menu = caller.press("13579246#").await;
        assert!(menu.said().contains(MENU), "round {round}: {}", menu.said());
        caller.app = first.endpoint();
        assert!(caller.press("1").await.handoff().is_some(), "round {round}");
        let r = second
            .http
            .get(format!("{}/api/calls/{}", second.addr, caller.call_sid))
            .bearer_auth(&agent)
            .send()
            .await
            .unwrap();
        let pop: serde_json::Value = r.json().await.unwrap();
        assert_eq!(pop["level"], "medium", "round {round}: {pop}");
        assert_eq!(pop["category"], "billing", "round {round}: {pop}");
    }
    a.kill_9();
    b.kill_9();
}

#[tokio::test]
async fn the_same_call_code_on_two_nodes_at_once_has_exactly_one_winner() {
    let db = database().await;
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), db.url());
    let b = node(dir.path(), db.url());
    a.wait_ready().await;
    b.wait_ready().await;
    add_account(dir.path(), db.url(), "ACC-W", "+48601234567", "11223344");
    for attempt in 0..15 {
        let code = on_postgres(dir.path(), db.url(), &["account", "call-code", "ACC-W"])
            .lines()
            .last()
            .unwrap()
            .to_owned();
        // Two callers (not the registered phone), one on each node, typing it at once.
        let mut one = Caller::new(&a, &format!("+4870000{attempt:04}"));
        let mut two = Caller::new(&b, &format!("+4871000{attempt:04}"));
        one.dial().await;
        two.dial().await;
        let keys = format!("{code}#");
        let (r1, r2) = tokio::join!(one.press(&keys), two.press(&keys));
        let winners = [r1.said(), r2.said()]
            .iter()
            .filter(|s| s.contains(MENU))
            .count();
        assert_eq!(
            winners,
            1,
            "attempt {attempt}: {} / {}",
            r1.said(),
            r2.said()
        );
    }
    a.kill_9();
    b.kill_9();
}
