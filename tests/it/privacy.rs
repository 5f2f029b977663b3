//! Personal data: an account's export, forgetting it (counts stay true), and the retention purge.

use crate::common::*;
use callgate::store::users::Role;
use serde_json::Value;

const PHONE: &str = "+48611222333";
const CODE: &str = "864201";

#[tokio::test]
async fn export_forget_and_purge() {
    let app = TestApp::spawn().await;
    let admin = app.user("admin", Role::Admin);
    let out = callgate_cli(
        &app.data_dir,
        &[
            "account",
            "add",
            "--id",
            "PRIV-1",
            "--name",
            "Zofia Prywatna",
            "--phone",
            PHONE,
            "--code",
            CODE,
            "--knowledge",
            "dob=02031970",
            "--attr",
            "plan=gold",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let mut sids = Vec::new();
    for dept in ["1", "2"] {
        let mut c = Caller::new(&app, PHONE);
        c.dial().await;
        c.press(&format!("{CODE}#")).await;
        assert!(c.press(dept).await.handoff().is_some());
        sids.push(c.call_sid.clone());
    }
    let r = app
        .http
        .post(format!("{}/api/calls/{}/outcome", app.addr, sids[0]))
        .bearer_auth(&admin)
        .json(&serde_json::json!({
            "resolved": true, "category": "billing",
            "note": "Pani Zofia pyta o fakturę 7/2026", "recurring": false
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    // Export: everything about the account, nothing secret.
    let out = callgate_cli(&app.data_dir, &["account", "export", "PRIV-1"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let export: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(export["account"]["name"], "Zofia Prywatna");
    assert_eq!(export["account"]["knowledge_questions"][0], "dob");
    assert_eq!(export["calls"].as_array().unwrap().len(), 2);
    assert_eq!(
        export["calls"][0]["outcome"]["note"],
        "Pani Zofia pyta o fakturę 7/2026"
    );
    assert!(
        export["calls"][0]["journey"]
            .as_array()
            .is_some_and(|j| !j.is_empty())
    );
    assert!(
        !text.contains(CODE) && !text.contains("02031970"),
        "no secret in the export"
    );

    let funnel = |app: &TestApp| {
        let out = callgate_cli(&app.data_dir, &["report", "funnel", "--format", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["tables"][0]["rows"].clone()
    };
    let before = funnel(&app);

    // Forget: personal data erased, counts unchanged, the trail still verifies.
    let refused = callgate_cli(&app.data_dir, &["account", "forget", "PRIV-1"]);
    assert!(!refused.status.success(), "needs --yes");
    let out = callgate_cli(&app.data_dir, &["account", "forget", "PRIV-1", "--yes"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 call(s) kept"));
    assert_eq!(funnel(&app), before, "reports stay true");
    let out = callgate_cli(&app.data_dir, &["audit", "verify"]);
    assert!(out.status.success(), "{out:?}");
    let gone = callgate_cli(&app.data_dir, &["account", "export", "PRIV-1"]);
    assert!(!gone.status.success());
    // The recurring-problem counts keep the account's configuration under its pseudonym.
    let out = callgate_cli(
        &app.data_dir,
        &["report", "recurring-problems", "--format", "json"],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("gold"));

    // Old journeys and notes go with the retention purge; the calls stay.
    let conn = rusqlite::Connection::open(app.data_dir.join("callgate.db")).unwrap();
    conn.execute(
        "UPDATE calls SET started_at = started_at - 100 * 86400000",
        [],
    )
    .unwrap();
    conn.execute(
        "UPDATE call_outcomes SET note = 'old note', at = at - 400 * 86400000",
        [],
    )
    .unwrap();
    drop(conn);
    let out = callgate_cli(&app.data_dir, &["purge", "--dry-run"]);
    assert!(out.status.success(), "{out:?}");
    let dry: Value =
        serde_json::from_slice(&out.stdout[out.stdout.iter().position(|b| *b == b'{').unwrap()..])
            .unwrap();
    assert_eq!(dry["journeys"], 2, "{dry}");
    assert_eq!(dry["notes"], 1, "{dry}");
    let out = callgate_cli(&app.data_dir, &["purge"]);
    assert!(out.status.success(), "{out:?}");
    let conn = rusqlite::Connection::open(app.data_dir.join("callgate.db")).unwrap();
    let (calls, journeys, notes): (i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), SUM(json_type(state, '$.journey') IS NOT NULL),
                    (SELECT COUNT(*) FROM call_outcomes WHERE note != '') FROM calls",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((calls, journeys, notes), (2, 0, 0));
    drop(conn);

    let mut app = app;
    app.stop().await;
    let db = app.database_bytes();
    for personal in ["Zofia Prywatna", PHONE, "Pani Zofia", "PRIV-1\""] {
        assert!(
            !contains(&db, personal.as_bytes()),
            "{personal} is still in the database"
        );
    }
}
