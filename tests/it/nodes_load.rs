//! The load generator against two nodes on one PostgreSQL database, its webhooks spread over
//! both as a round-robin balancer sends them: every path plays without an error (correctness
//! only: no timing is asserted; BENCHMARKS.md has the figures).

use std::path::Path;

use callgate::loadtest::{self, Plan};
use callgate::store::postgres::scratch_db::ScratchDatabase;

use crate::common::process::ServerProcess;
use crate::common::*;

fn cli(dir: &Path, url: &str, args: &[&str]) -> String {
    let mut all = vec!["--database-url", url];
    all.extend_from_slice(args);
    let out = callgate_cli(dir, &all);
    assert!(
        out.status.success(),
        "callgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How many webhooks a node answered, from its `/metrics`.
async fn webhooks_answered(node: &ServerProcess, admin: &str) -> u64 {
    let body = node
        .http
        .get(format!("{}/metrics", node.addr))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .filter(|l| l.contains("webhook_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn the_generator_plays_every_path_across_two_nodes_without_errors() {
    let db = tokio::task::spawn_blocking(ScratchDatabase::create)
        .await
        .unwrap()
        .unwrap();
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let args = ["--public-url", PUBLIC_URL, "--database-url", url];
    let a = ServerProcess::start_with(dir.path(), &args);
    a.wait_ready().await;
    let b = ServerProcess::start_with(dir.path(), &args);
    b.wait_ready().await;
    cli(dir.path(), url, &["seed", "--accounts", "40"]);
    let admin = cli(dir.path(), url, &["user", "add", "ops", "--role", "admin"])
        .lines()
        .last()
        .unwrap()
        .to_owned();

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
    let verified = cli(dir.path(), url, &["audit", "verify"]);
    assert!(verified.contains("intact"), "{verified}");
    a.kill_9();
    b.kill_9();
}
