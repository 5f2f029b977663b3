//! The load generator against two nodes on one PostgreSQL database, its webhooks spread over
//! both as a round-robin balancer sends them: every path plays without an error (correctness
//! only: no timing is asserted; BENCHMARKS.md has the figures).

use callgate::loadtest::{self, Plan};

use crate::common::pg::{add_user, database, on_postgres, two_nodes};
use crate::common::process::ServerProcess;
use crate::common::*;

/// How many webhooks a node answered, from its `/metrics`.
async fn webhooks_answered(node: &ServerProcess, admin: &str) -> u64 {
    let body = metrics(node, admin).await;
    body.lines()
        .filter(|l| l.contains("webhook_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn the_generator_plays_every_path_across_two_nodes_without_errors() {
    let db = database().await;
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(dir.path(), url, &[]).await;
    on_postgres(dir.path(), url, &["seed", "--accounts", "40"]);
    let admin = add_user(dir.path(), url, "ops", "admin");

    let plan = Plan {
        calls: 48,
        duration: None,
        concurrency: 6,
        rate: None,
        mix: loadtest::parse_mix("caller_id=1,totp=1,wrong=1,silence=1").unwrap(),
        accounts: 40,
    };
    let mut target = loadtest::target(PUBLIC_URL, AUTH_TOKEN, &plan, false).unwrap();
    target.nodes = std::sync::Arc::new(vec![a.addr.clone(), b.addr.clone()]);
    let report = loadtest::play(&target, &plan, None).await;
    assert_eq!(
        report.errors,
        Default::default(),
        "{}",
        report.render("two nodes")
    );
    assert_eq!(report.calls, 48);
    assert_eq!(report.webhooks, 12 * (5 + 6 + 5 + 4));
    // The balancer spread them over both nodes (the timing histogram counts every webhook but
    // the status callbacks, one a call).
    let (on_a, on_b) = (
        webhooks_answered(&a, &admin).await,
        webhooks_answered(&b, &admin).await,
    );
    assert_eq!(
        on_a + on_b,
        report.webhooks - report.calls,
        "{on_a} + {on_b}"
    );
    assert!(on_a.min(on_b) * 3 > on_a + on_b, "{on_a} / {on_b}");
    // Every caller-ID and TOTP call reached the hand-off, whichever node took which webhook.
    let handed_off = tokio::task::spawn_blocking({
        let url = url.to_owned();
        move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            c.query_one("SELECT COUNT(*) FROM calls WHERE category = 'billing'", &[])
                .unwrap()
                .get::<_, i64>(0)
        }
    })
    .await
    .unwrap();
    assert_eq!(handed_off, 24);
    let verified = on_postgres(dir.path(), url, &["audit", "verify"]);
    assert!(verified.contains("intact"), "{verified}");
    a.kill_9();
    b.kill_9();
}
