//! Reports computed from calls played through the webhooks: JSON, CSV, the terminal, and the
//! server-drawn page.

use crate::common::*;
use callgate::store::users::Role;
use serde_json::Value;

async fn report(app: &TestApp, token: &str, query: &str) -> (u16, String) {
    let r = app
        .http
        .get(format!("{}/api/reports/{query}", app.addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn table<'a>(report: &'a Value, title_start: &str) -> &'a Vec<Value> {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["title"].as_str().unwrap().starts_with(title_start))
        .unwrap_or_else(|| panic!("no table {title_start}: {report}"))["rows"]
        .as_array()
        .unwrap()
}

fn add(app: &TestApp, id: &str, phone: &str, code: &str, attrs: &[&str]) {
    let mut args = vec![
        "account",
        "add",
        "--id",
        id,
        "--name",
        "Report Person",
        "--phone",
        phone,
        "--code",
        code,
    ];
    for a in attrs {
        args.push("--attr");
        args.push(a);
    }
    let out = callgate_cli(&app.data_dir, &args);
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test]
async fn funnel_time_to_agent_repeat_callers_problems_and_security() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("error")
        .with_test_writer()
        .try_init();
    let app = TestApp::spawn_with(|s| s.limits.global_alert_per_minute = 5).await;
    let admin = app.user("admin", Role::Admin);
    let agent = app.user("agent", Role::Agent);
    // Six routers of one model call about technical problems; two app users about billing.
    for i in 0..6 {
        let phone = format!("+4860500000{i}");
        let plan = if i % 2 == 0 {
            "plan=basic"
        } else {
            "plan=premium"
        };
        add(
            &app,
            &format!("R-{i}"),
            &phone,
            &format!("81000{i}"),
            &["device=router-x2", plan],
        );
        let mut c = Caller::new(&app, &phone);
        c.dial().await;
        c.press(&format!("81000{i}#")).await;
        let d = c.press("2").await;
        assert!(d.handoff().is_some(), "{}", d.xml);
    }
    for i in 0..2 {
        let phone = format!("+4860600000{i}");
        let plan = if i % 2 == 0 {
            "plan=basic"
        } else {
            "plan=premium"
        };
        add(
            &app,
            &format!("A-{i}"),
            &phone,
            &format!("82000{i}"),
            &["device=app-ios", plan],
        );
        for _ in 0..2 {
            // Each calls twice about billing: repeat callers.
            let mut c = Caller::new(&app, &phone);
            c.dial().await;
            c.press(&format!("82000{i}#")).await;
            assert!(c.press("1").await.handoff().is_some());
        }
    }
    // A guesser: wrong codes from one number until it is locked out.
    for _ in 0..4 {
        let mut c = Caller::new(&app, "+48700123456");
        c.dial().await;
        for _ in 0..3 {
            c.press("99999999#").await;
        }
    }
    // A caller who hangs up at the code prompt.
    let mut gone = Caller::new(&app, "+48700999999");
    gone.dial().await;
    assert_eq!(gone.status("completed").await, 204);

    let (status, _) = report(&app, &agent, "funnel").await;
    assert_eq!(status, 403, "agents see no reports");
    let (status, body) = report(&app, &admin, "funnel").await;
    assert_eq!(status, 200, "{body}");
    let funnel: Value = serde_json::from_str(&body).unwrap();
    let daily = table(&funnel, "Per day");
    let sum = |col: usize| daily.iter().map(|r| r[col].as_i64().unwrap()).sum::<i64>();
    assert_eq!(sum(3), 6 + 4 + 4 + 1, "called");
    assert_eq!(sum(4), 10, "identified");
    assert_eq!(sum(8), 10, "verified (caller ID + code)");
    assert_eq!(sum(9), 10, "handed off");
    assert_eq!(sum(10), 1, "abandoned");
    let ends = table(&funnel, "Where callers fail");
    assert!(
        ends.iter()
            .any(|r| r[2] == "caller_hung_up" && r[3] == "account-code" && r[4] == 1),
        "{ends:?}"
    );
    assert!(
        ends.iter()
            .any(|r| r[2] == "verification_failed" && r[3] == "account-code"),
        "{ends:?}"
    );

    let (_, body) = report(&app, &admin, "handoff-time").await;
    let times: Value = serde_json::from_str(&body).unwrap();
    let row = &table(&times, "Seconds")[0];
    assert_eq!(row[2], 10);
    assert!(
        row[3].as_f64().unwrap() >= 0.0 && row[4].as_f64().unwrap() >= row[3].as_f64().unwrap()
    );

    let (_, body) = report(&app, &admin, "repeat-callers").await;
    let repeat: Value = serde_json::from_str(&body).unwrap();
    let rows = table(&repeat, "Accounts calling again");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r[1] == "billing" && r[2] == 2));

    let (_, body) = report(&app, &admin, "recurring-problems").await;
    let problems: Value = serde_json::from_str(&body).unwrap();
    let highlighted: Vec<usize> = problems["tables"][0]["highlight"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let rows = table(&problems, "Categories");
    let top = &rows[highlighted[0]];
    assert_eq!(
        (top[0].as_str(), top[1].as_str(), top[2].as_str()),
        (Some("technical"), Some("device"), Some("router-x2")),
        "{rows:?}"
    );
    assert!(top[6].as_f64().unwrap() > 1.5);

    let (_, body) = report(&app, &admin, "security").await;
    let security: Value = serde_json::from_str(&body).unwrap();
    let lockouts = table(&security, "Lockouts");
    let number_locks: Vec<_> = lockouts
        .iter()
        .filter(|r| r[1] == "number locked")
        .collect();
    assert_eq!(
        number_locks.len(),
        1,
        "one lock, however long the guessing goes on: {lockouts:?}"
    );
    // The trail names the number by its keyed pseudonym, never the number, even masked.
    assert_eq!(
        number_locks[0][2],
        format!("number:{}", app.keys().number_pseudonym("+48700123456"))
    );
    assert!(
        !body.contains("+48700123456"),
        "numbers are masked in reports"
    );
    let alerts = table(&security, "Minutes with failures above");
    assert!(!alerts.is_empty(), "the guessing shows as an alert minute");

    // CSV of one table, with a header line.
    let (status, csv) = report(&app, &admin, "funnel?format=csv&table=0").await;
    assert_eq!(status, 200);
    assert!(
        csv.starts_with("day,script,version,called,identified,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + daily.len());

    // The terminal.
    let out = callgate_cli(&app.data_dir, &["report", "funnel", "--since", "1d"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verification funnel"));

    // The page, drawn on the server.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = client
        .post(format!("{}/login", app.addr))
        .form(&[("token", admin.as_str()), ("next", "/admin/reports")])
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = client
        .get(format!("{}/admin/reports", app.addr))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<svg") && html.contains("Calls through the funnel"),
        "{html}"
    );
    assert!(
        html.contains("class=\"highlight\""),
        "over-represented rows are marked"
    );
}
