//! A short smoke run of the load generator (correctness only: no timing is asserted).

use crate::common::*;
use callgate::loadtest::{self, Plan, fixtures};

#[tokio::test]
async fn the_generator_plays_every_path_without_errors() {
    let app = TestApp::spawn_without_proxy().await;
    let added = fixtures::seed(&app.store(), &app.keys(), 40, 25, false).unwrap();
    assert_eq!(added, 40);
    let plan = Plan {
        calls: 48,
        duration: None,
        concurrency: 6,
        rate: None,
        mix: loadtest::parse_mix("caller_id=1,totp=1,wrong=1,silence=1").unwrap(),
        accounts: 40,
    };
    let target = loadtest::target(&app.addr, AUTH_TOKEN, &plan, false).unwrap();
    let report = loadtest::play(&target, &plan, Some(std::process::id())).await;
    assert_eq!(
        report.errors,
        Default::default(),
        "{}",
        report.render("smoke")
    );
    assert_eq!(report.calls, 48);
    for path in ["caller_id", "totp", "wrong", "silence"] {
        assert_eq!(report.calls_by_path[path], 12, "{path}");
    }
    // caller_id 5, totp 6, wrong 5, silence 4 webhooks per call.
    assert_eq!(report.webhooks, 12 * (5 + 6 + 5 + 4));
    assert!(report.server_memory.is_some());
    let handed_off: i64 = app
        .sql()
        .query_row(
            "SELECT COUNT(*) FROM calls WHERE category = 'billing' AND call_sid NOT LIKE 'CAhist%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        handed_off, 24,
        "every caller_id and totp call reached the hand-off"
    );
}

#[tokio::test]
async fn open_loop_and_baseline_modes_run() {
    let app = TestApp::spawn_without_proxy().await;
    fixtures::seed(&app.store(), &app.keys(), 10, 0, false).unwrap();
    let plan = Plan {
        calls: 10,
        duration: None,
        concurrency: 1,
        rate: Some(200.0),
        mix: loadtest::parse_mix("caller_id=1,wrong=1").unwrap(),
        accounts: 10,
    };
    let target = loadtest::target(&app.addr, AUTH_TOKEN, &plan, false).unwrap();
    let report = loadtest::play(&target, &plan, None).await;
    assert_eq!(report.error_count(), 0, "{}", report.render("open"));
    assert_eq!(report.calls, 10);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, loadtest::baseline::app()).await });
    let baseline = loadtest::target(&base, AUTH_TOKEN, &plan, true).unwrap();
    let report = loadtest::play(&baseline, &plan, None).await;
    assert_eq!(report.error_count(), 0, "{}", report.render("baseline"));
    assert_eq!(report.webhooks, 5 * 5 + 5 * 5);
}

#[tokio::test]
async fn seeding_refuses_a_data_directory_with_real_accounts() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-REAL", "+48601234567", Some("246810"), false);
    let err = fixtures::seed(&app.store(), &app.keys(), 10, 0, false).unwrap_err();
    assert!(err.to_string().contains("real account"), "{err}");
}
