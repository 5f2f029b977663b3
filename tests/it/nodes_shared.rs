//! Issue 13's promises for several nodes on one PostgreSQL database, each shown with two real
//! `callgate serve` processes and the webhooks of a call alternating between them, as a
//! round-robin balancer sends them: the guessing limits count across nodes, the agents' live
//! stream on one node shows what another handled, what an admin changes through one node
//! answers on the other within a second, each CRM delivery is sent once (and still sent when
//! the node sending it dies), and the audit trail stays one chain.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::json;

use crate::common::agent::EventStream;
use crate::common::pg::{add_account, add_user, database, on_postgres, reaches_menu, two_nodes};
use crate::common::process::ServerProcess;
use crate::common::*;

const GREETING: &str = "Dzień dobry, tu pomoc techniczna.";
/// What propagation between nodes is promised within.
const WITHIN: Duration = Duration::from_secs(1);

/// One value of a query on the test's own connection to the database (off the async thread).
async fn query_i64(url: &str, sql: &str) -> i64 {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.query_one(&sql, &[]).unwrap().get::<_, i64>(0)
    })
    .await
    .unwrap()
}

/// Audit entries of `action`.
async fn audited(url: &str, action: &str) -> i64 {
    query_i64(
        url,
        &format!("SELECT COUNT(*) FROM audit_log WHERE action = '{action}'"),
    )
    .await
}

fn alert_lines(nodes: &[&ServerProcess]) -> usize {
    nodes
        .iter()
        .map(|n| {
            n.stderr
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains("ALERT: verification failures"))
                .count()
        })
        .sum()
}

/// Types a wrong `code` at the code step, each webhook on the next of `nodes`; starts a new call
/// when the last one hung up. `turn` counts webhooks across calls.
struct Guesser<'a> {
    nodes: [&'a ServerProcess; 2],
    from: String,
    caller: Option<Caller>,
    turn: usize,
}

impl<'a> Guesser<'a> {
    fn new(nodes: [&'a ServerProcess; 2], from: &str) -> Self {
        Self {
            nodes,
            from: from.to_owned(),
            caller: None,
            turn: 0,
        }
    }

    fn next_node(&mut self) -> &'a ServerProcess {
        self.turn += 1;
        self.nodes[self.turn % 2]
    }

    /// One failed code; returns what the caller heard.
    async fn fail_once(&mut self, code: &str) -> Doc {
        let needs_call = match &self.caller {
            None => true,
            Some(c) => c.last.as_ref().is_none_or(|d| d.gather().is_none()),
        };
        if needs_call {
            let node = self.next_node();
            let mut c = Caller::new(node, &self.from);
            c.dial().await;
            self.caller = Some(c);
        }
        let node = self.next_node().endpoint();
        let caller = self.caller.as_mut().unwrap();
        caller.app = node;
        let doc = caller.press(&format!("{code}#")).await;
        assert!(!doc.said().contains(MENU), "a wrong code passed");
        doc
    }
}

/// Saves `source` as a new draft of the `default` script through `node`'s API: its version.
async fn save_draft(
    http: &reqwest::Client,
    node: &ServerProcess,
    admin: &str,
    source: &str,
) -> i64 {
    let r = http
        .put(format!("{}/api/scripts/default", node.addr))
        .bearer_auth(admin)
        .json(&json!({ "source": source }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<serde_json::Value>().await.unwrap()["version"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn failures_lock_accounts_and_numbers_across_nodes_and_the_alert_is_raised_once() {
    let db = database().await;
    let dir = tempfile::tempdir().unwrap();
    // The alert threshold low enough for this test's 15 failures to cross it on both nodes.
    let (a, b) = two_nodes(dir.path(), db.url(), &["--global-alert-per-minute", "8"]).await;
    let url = db.url();
    add_account(dir.path(), url, "ACC-L", "+48601110001", "11112222");
    add_account(dir.path(), url, "ACC-K", "+48601110002", "33334444");

    // The account's own phone typing wrong codes: 4 failures over both nodes lock nothing...
    let mut owner = Guesser::new([&a, &b], "+48601110001");
    for _ in 0..4 {
        owner.fail_once("99998888").await;
    }
    let locked = "SELECT COUNT(*) FROM accounts WHERE id = 'ACC-L' AND locked_until IS NOT NULL";
    assert_eq!(query_i64(url, locked).await, 0);
    assert_eq!(audited(url, "security.account_locked").await, 0);
    // ... the fifth, wherever it lands, does: the count is the database's, not a node's.
    owner.fail_once("99998888").await;
    assert_eq!(query_i64(url, locked).await, 1);
    assert_eq!(audited(url, "security.account_locked").await, 1);
    // Locked on both nodes: the right code is refused on either.
    assert!(!reaches_menu(&a, &b, "+48601110001", "11112222").await);
    assert!(!reaches_menu(&b, &a, "+48601110001", "11112222").await);

    // A stranger's number: 9 failures over both nodes leave it open, the tenth locks it.
    let stranger = "+48700000555";
    let mut guesser = Guesser::new([&b, &a], stranger);
    for _ in 0..9 {
        guesser.fail_once("55556666").await;
    }
    let number_locks = "SELECT COUNT(*) FROM number_locks";
    assert_eq!(query_i64(url, number_locks).await, 0);
    guesser.fail_once("55556666").await;
    assert_eq!(query_i64(url, number_locks).await, 1);
    assert_eq!(audited(url, "security.number_locked").await, 1);
    // Locked on both nodes: even ACC-K's right code gets nowhere from it.
    assert!(!reaches_menu(&a, &b, stranger, "33334444").await);
    assert!(!reaches_menu(&b, &a, stranger, "33334444").await);
    // The locks were reported once each, though failures went on on both nodes.
    assert_eq!(audited(url, "security.account_locked").await, 1);
    assert_eq!(audited(url, "security.number_locked").await, 1);
    // ACC-K itself was never the target: its owner still gets in.
    assert!(reaches_menu(&b, &a, "+48601110002", "33334444").await);

    // 15+ failures in the minute, above 8: both nodes saw the threshold crossed, and the alert
    // was raised once for the desk, not once per node. The log line is written before the
    // webhook's answer; give the pipes a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    while alert_lines(&[&a, &b]) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(alert_lines(&[&a, &b]), 1, "the alert once across the nodes");
    a.kill_9();
    b.kill_9();
}

/// Hands a call off, its webhooks alternating from `first`; the caller and the moment the
/// hand-off's answer came.
async fn handoff_via(
    first: &ServerProcess,
    second: &ServerProcess,
    from: &str,
    code: &str,
) -> (Caller, Instant) {
    let mut caller = Caller::new(first, from);
    caller.dial().await;
    caller.app = second.endpoint();
    assert!(
        caller
            .press(&format!("{code}#"))
            .await
            .said()
            .contains(MENU)
    );
    caller.app = first.endpoint();
    let doc = caller.press("1").await;
    let answered = Instant::now();
    assert!(doc.handoff().is_some(), "{}", doc.xml);
    (caller, answered)
}

#[tokio::test]
async fn an_agent_stream_on_one_node_shows_the_other_node_s_handoffs_and_catches_up_on_either() {
    let db = database().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(dir.path(), db.url(), &[]).await;
    add_account(dir.path(), db.url(), "ACC-S", "+48601220001", "24682468");
    let agent = add_user(dir.path(), db.url(), "agent", "agent");

    let mut on_b = EventStream::open(&b, &agent, None).await;
    let mut latencies = Vec::new();
    let mut last_id = String::new();
    for _ in 0..5 {
        // The hand-off's webhook goes to A: B hears of it only through the database.
        let (caller, answered) = handoff_via(&b, &a, "+48601220001", "24682468").await;
        let e = on_b
            .next(WITHIN.saturating_sub(answered.elapsed()))
            .await
            .expect("node B's stream shows node A's hand-off within a second");
        latencies.push(answered.elapsed());
        assert_eq!(e.event, "handoff");
        assert_eq!(e.data["call"]["call_sid"], caller.call_sid.as_str());
        last_id = e.id;
    }
    eprintln!("hand-off on node A to node B's stream: {latencies:?}");
    drop(on_b);

    // Missed while disconnected: one call handed off on each node.
    let (one, _) = handoff_via(&b, &a, "+48601220001", "24682468").await;
    let (two, _) = handoff_via(&a, &b, "+48601220001", "24682468").await;
    // Reconnecting to A with the id B last sent: both, in order, and nothing already seen.
    let mut on_a = EventStream::open(&a, &agent, Some(&last_id)).await;
    let mut missed = Vec::new();
    for _ in 0..2 {
        let e = on_a.next(Duration::from_secs(5)).await.expect("catch-up");
        assert_eq!(e.event, "handoff");
        assert!(e.id.parse::<i64>().unwrap() > last_id.parse::<i64>().unwrap());
        missed.push(e.data["call"]["call_sid"].as_str().unwrap().to_owned());
    }
    assert_eq!(missed, [one.call_sid.clone(), two.call_sid.clone()]);
    // And live on A from there: a hand-off on B.
    let (three, answered) = handoff_via(&a, &b, "+48601220001", "24682468").await;
    let e = on_a
        .next(WITHIN.saturating_sub(answered.elapsed()))
        .await
        .expect("node A's stream shows node B's hand-off within a second");
    eprintln!(
        "hand-off on node B to node A's stream: {:?}",
        answered.elapsed()
    );
    assert_eq!(e.data["call"]["call_sid"], three.call_sid.as_str());
    a.kill_9();
    b.kill_9();
}

/// Polls `check` until it holds, at most a second from `since`; how long it took.
async fn within_a_second<F, Fut>(since: Instant, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if check().await {
            return since.elapsed();
        }
        assert!(since.elapsed() < WITHIN, "{what}: not within a second");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn greeting_on(node: &ServerProcess) -> String {
    Caller::new(node, "+48601330001").dial().await.said()
}

async fn attributes_on(node: &ServerProcess, sid: &str, token: &str) -> serde_json::Value {
    let r = node
        .http
        .get(format!("{}/api/calls/{sid}", node.addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<serde_json::Value>().await.unwrap()["account"]["attributes"].clone()
}

const BILINGUAL: &str = "+48225550100";

/// A bilingual call saying `words` at the speech menu; the document after them.
async fn say_on(
    first: &ServerProcess,
    second: &ServerProcess,
    phone: &str,
    code: &str,
    words: &str,
) -> (Caller, Doc) {
    let mut c = Caller::new(first, phone);
    c.to = BILINGUAL.into();
    c.dial().await;
    c.app = second.endpoint();
    c.press("1").await;
    c.app = first.endpoint();
    c.press(&format!("{code}#")).await;
    c.app = second.endpoint();
    let action = c.last.clone().unwrap().gather().unwrap().action.clone();
    let mut params = c.params("in-progress");
    params.push(("SpeechResult".into(), words.into()));
    params.push(("Confidence".into(), "0.9".into()));
    let doc = c.fetch(&action, params).await;
    (c, doc)
}

#[tokio::test]
async fn scripts_visible_attributes_and_routing_models_changed_through_one_node_answer_on_the_other()
 {
    let db = database().await;
    let dir = tempfile::tempdir().unwrap();
    let url = db.url();
    let (a, b) = two_nodes(dir.path(), url, &[]).await;
    let admin = add_user(dir.path(), url, "admin", "admin");
    let http = reqwest::Client::new();
    let mut figures = BTreeMap::new();

    // A script published through A's API answers new calls on B.
    assert!(greeting_on(&b).await.starts_with(GREETING));
    let shipped = std::fs::read_to_string(repo_path("ivr-scripts/default.toml")).unwrap();
    let edited = shipped.replace(GREETING, "Wersja z węzła A.");
    let version = save_draft(&http, &a, &admin, &edited).await;
    let r = http
        .post(format!("{}/api/scripts/default/publish", a.addr))
        .bearer_auth(&admin)
        .json(&json!({ "version": version }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let published = Instant::now();
    let took = within_a_second(published, "API publish on A answering on B", || async {
        greeting_on(&b).await.starts_with("Wersja z węzła A.")
    })
    .await;
    figures.insert("script (API on A) -> B", took);

    // The CLI's publish (a third process) answers on both.
    let cli_text = shipped.replace(GREETING, "Wersja z wiersza poleceń.");
    let version = save_draft(&http, &b, &admin, &cli_text).await;
    on_postgres(
        dir.path(),
        url,
        &["script", "publish", "default", &version.to_string()],
    );
    let published = Instant::now();
    for (name, node) in [("script (CLI) -> A", &a), ("script (CLI) -> B", &b)] {
        let took = within_a_second(published, name, || async {
            greeting_on(node)
                .await
                .starts_with("Wersja z wiersza poleceń.")
        })
        .await;
        figures.insert(name, took);
    }

    // The attributes agents see, set through A's API, then through the CLI, show on B.
    on_postgres(
        dir.path(),
        url,
        &[
            "account",
            "add",
            "--id",
            "ACC-V",
            "--name",
            "Vera",
            "--phone",
            "+48601330002",
            "--code",
            "13571357",
            "--attr",
            "plan=premium",
            "--attr",
            "device=router-x2",
        ],
    );
    let mut caller = Caller::new(&a, "+48601330002");
    caller.dial().await;
    caller.app = b.endpoint();
    caller.press("13571357#").await;
    assert!(caller.press("1").await.handoff().is_some());
    let sid = caller.call_sid.clone();
    assert_eq!(
        attributes_on(&b, &sid, &admin).await,
        json!({"plan": "premium", "device": "router-x2"})
    );
    let r = http
        .put(format!("{}/api/settings/visible-attributes", a.addr))
        .bearer_auth(&admin)
        .json(&json!({"attributes": ["plan"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let set = Instant::now();
    let took = within_a_second(set, "visible attributes (API on A) on B", || async {
        attributes_on(&b, &sid, &admin).await == json!({"plan": "premium"})
    })
    .await;
    figures.insert("visible attributes (API on A) -> B", took);
    on_postgres(
        dir.path(),
        url,
        &["account", "visible-attributes", "device"],
    );
    let set = Instant::now();
    let took = within_a_second(set, "visible attributes (CLI) on A", || async {
        attributes_on(&a, &sid, &admin).await == json!({"device": "router-x2"})
    })
    .await;
    figures.insert("visible attributes (CLI) -> A", took);

    // A speech-routing model trained by the CLI from outcomes recorded on both nodes routes
    // new words on both.
    let phone = "+48612000000";
    add_account(dir.path(), url, "ROUTE-1", phone, "246813");
    let phrases = [
        "modem nie łączy się z siecią",
        "mój modem ciągle się rozłącza",
        "modem miga na czerwono",
        "nie mam zasięgu w domu, modem",
        "zasięg znika wieczorem",
        "modemu nie da się włączyć",
        "słaby zasięg w mieszkaniu",
        "modem się resetuje",
        "brak zasięgu od rana",
        "modem nie odpowiada",
        "zasięgu nie ma wcale",
        "modem przestał działać",
    ];
    for (i, words) in phrases.iter().enumerate() {
        let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let (mut c, unsure) = say_on(first, second, phone, "246813", words).await;
        assert!(
            unsure.said().contains("Nie zrozumieliśmy"),
            "{words}: {}",
            unsure.said()
        );
        c.app = first.endpoint();
        assert!(c.press("3").await.handoff().is_some());
        let r = http
            .post(format!("{}/api/calls/{}/outcome", second.addr, c.call_sid))
            .bearer_auth(&admin)
            .json(&json!({"resolved": true, "category": "general", "note": "", "recurring": true}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let (_, before) = say_on(&a, &b, phone, "246813", "znowu modem i zasięg").await;
    assert!(
        before.handoff().is_none(),
        "routed before any model: {}",
        before.xml
    );
    on_postgres(dir.path(), url, &["routing", "train", "--holdout", "0.25"]);
    let trained = Instant::now();
    for (name, first, second) in [
        ("routing model (CLI) -> A", &b, &a),
        ("routing model (CLI) -> B", &a, &b),
    ] {
        let took = within_a_second(trained, name, || async {
            say_on(first, second, phone, "246813", "znowu modem i zasięg")
                .await
                .1
                .handoff()
                .is_some()
        })
        .await;
        figures.insert(name, took);
    }
    eprintln!("propagation between nodes: {figures:#?}");
    a.kill_9();
    b.kill_9();
}

/// A CRM counting what it is sent, by the node that sent it (each node is given its own path)
/// and the call: each call's first attempt fails; one call's first attempt can be made slow
/// (longer than the lease), another's to hang until the sender dies.
#[derive(Default)]
struct Crm {
    /// (node, call_sid, answered 2xx)
    attempts: Vec<(String, String, bool)>,
    /// The next first attempt hangs; the node it came from is noted here.
    hang_next: bool,
    hung_by: Option<String>,
    /// The next first attempt is answered (500) after this long.
    slow_next: Option<Duration>,
}

impl Crm {
    fn delivered(&self, sid: &str) -> usize {
        self.attempts
            .iter()
            .filter(|(_, s, ok)| s == sid && *ok)
            .count()
    }
}

async fn crm() -> (String, Arc<Mutex<Crm>>) {
    let state = Arc::new(Mutex::new(Crm::default()));
    let seen = state.clone();
    let app = Router::new().route(
        "/{node}",
        post(
            move |UrlPath(node): UrlPath<String>, _: HeaderMap, body: String| {
                let seen = seen.clone();
                async move {
                    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let sid = body["screen_pop"]["call_sid"].as_str().unwrap().to_owned();
                    let (first, hang, slow) = {
                        let mut c = seen.lock().unwrap();
                        let first = !c.attempts.iter().any(|(_, s, _)| *s == sid);
                        let hang = first && c.hang_next;
                        if hang {
                            c.hang_next = false;
                            c.hung_by = Some(node.clone());
                        }
                        let slow = if first { c.slow_next.take() } else { None };
                        c.attempts.push((node, sid, !first));
                        (first, hang, slow)
                    };
                    if hang {
                        // Until the sender gives up or dies.
                        std::future::pending::<()>().await;
                    }
                    if let Some(wait) = slow {
                        tokio::time::sleep(wait).await;
                    }
                    if first {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, state)
}

#[tokio::test]
async fn each_crm_delivery_is_sent_once_across_nodes_and_resumes_when_its_sender_dies() {
    let (base, crm) = crm().await;
    let db = database().await;
    let dir = tempfile::tempdir().unwrap();
    let url = db.url();
    let start = |path: &str| {
        crate::common::pg::node_with(
            dir.path(),
            url,
            &[
                "--crm-webhook-url",
                &format!("{base}/{path}"),
                "--crm-webhook-secret",
                "crm-shared-secret-0123456789",
                // Short, so that the dead node's delivery comes within the test's time; the
                // renewals (every second) keep a live node's claims however slow the CRM.
                "--crm-lease",
                "3s",
            ],
        )
    };
    let a = start("a");
    a.wait_ready().await;
    let b = start("b");
    b.wait_ready().await;
    add_account(dir.path(), url, "ACC-C", "+48601440001", "86428642");

    // Many hand-offs, their webhooks alternating: each delivered exactly once, after one
    // failed attempt, by whichever node claimed it.
    let mut sids = Vec::new();
    for i in 0..12 {
        let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        sids.push(
            handoff_via(first, second, "+48601440001", "86428642")
                .await
                .0
                .call_sid,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while !sids.iter().all(|s| crm.lock().unwrap().delivered(s) >= 1) {
        assert!(
            Instant::now() < deadline,
            "not every hand-off was delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered_rows =
        "SELECT COUNT(*) FROM crm_outbox WHERE delivered_at IS NOT NULL AND attempts = 2";
    let deadline = Instant::now() + Duration::from_secs(5);
    while query_i64(url, delivered_rows).await < 12 {
        assert!(Instant::now() < deadline, "deliveries not recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let c = crm.lock().unwrap();
        for sid in &sids {
            assert_eq!(c.delivered(sid), 1, "{sid}: {:?}", c.attempts);
            assert_eq!(c.attempts.iter().filter(|(_, s, _)| s == sid).count(), 2);
        }
        let by_a = c.attempts.iter().filter(|(n, _, _)| n == "a").count();
        eprintln!("{} attempts, {by_a} sent by node A", c.attempts.len());
    }

    // A CRM slower than the lease: the sender renews its claim, so the other node leaves the
    // delivery alone meanwhile (the same delivery from both would be two attempts here).
    let slow = Duration::from_millis(4_500);
    crm.lock().unwrap().slow_next = Some(slow);
    let (caller, answered) = handoff_via(&b, &a, "+48601440001", "86428642").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while crm.lock().unwrap().delivered(&caller.call_sid) == 0 {
        assert!(
            Instant::now() < deadline,
            "the slow CRM's delivery never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Only the retry after the slow failure: nobody took it over while the CRM was slow.
    let took = answered.elapsed();
    eprintln!("delivery behind a CRM slower than the lease: {took:?}");
    assert!(took >= slow, "sent by another node meanwhile: {took:?}");
    {
        let c = crm.lock().unwrap();
        let attempts: Vec<_> = c
            .attempts
            .iter()
            .filter(|(_, s, _)| *s == caller.call_sid)
            .collect();
        assert_eq!(attempts.len(), 2, "{attempts:?}");
        assert_eq!(c.delivered(&caller.call_sid), 1);
    }

    // A node dies (kill -9) while it holds a delivery: the other node sends it once the
    // dead node's lease runs out.
    crm.lock().unwrap().hang_next = true;
    let (caller, answered) = handoff_via(&a, &b, "+48601440001", "86428642").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let sender = loop {
        if let Some(n) = crm.lock().unwrap().hung_by.clone() {
            break n;
        }
        assert!(Instant::now() < deadline, "the delivery was not attempted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (dead, survivor, alive) = if sender == "a" {
        (a, b, "b")
    } else {
        (b, a, "a")
    };
    dead.kill_9();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(25);
    while crm.lock().unwrap().delivered(&caller.call_sid) == 0 {
        assert!(
            Instant::now() < deadline,
            "the dead node's delivery was never sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = crm.lock().unwrap();
    let attempts: Vec<_> = c
        .attempts
        .iter()
        .filter(|(_, s, _)| *s == caller.call_sid)
        .collect();
    eprintln!(
        "delivery held by a killed node sent by the other {:?} after the kill ({:?} after the hand-off): {attempts:?}",
        killed.elapsed(),
        answered.elapsed()
    );
    assert_eq!(c.delivered(&caller.call_sid), 1);
    assert!(attempts.iter().any(|(n, _, ok)| *ok && n == alive));
    drop(c);
    survivor.kill_9();
}

/// Sends every request at once; the answers in order.
async fn send_all(requests: Vec<reqwest::RequestBuilder>) -> Vec<reqwest::Response> {
    let sent: Vec<_> = requests
        .into_iter()
        .map(|r| tokio::spawn(r.send()))
        .collect();
    let mut answers = Vec::new();
    for s in sent {
        answers.push(s.await.unwrap().unwrap());
    }
    answers
}

/// `callgate audit verify` on the database: the entries it counted.
fn verified_entries(dir: &std::path::Path, url: &str) -> i64 {
    let out = on_postgres(dir, url, &["audit", "verify"]);
    assert!(out.contains("audit trail intact"), "{out}");
    out.split_whitespace()
        .skip_while(|w| *w != "intact:")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_audit_trail_stays_one_chain_when_both_nodes_and_the_cli_write_at_once() {
    let db = database().await;
    let dir = tempfile::tempdir().unwrap();
    let url = db.url();
    let (a, b) = two_nodes(dir.path(), url, &[]).await;
    let admin = add_user(dir.path(), url, "admin", "admin");
    let before = verified_entries(dir.path(), url);

    // Users added through A, accounts through B, both at once, and the CLI adding accounts
    // beside them: each an audited action appending to the one chain.
    const EACH: usize = 15;
    const CLI: usize = 4;
    let users = async {
        let mut added = Vec::new();
        for i in 0..EACH {
            added.push(
                a.http
                    .post(format!("{}/api/users", a.addr))
                    .bearer_auth(&admin)
                    .json(&json!({"name": format!("agent-{i}"), "role": "agent"})),
            );
        }
        send_all(added).await
    };
    let accounts = async {
        let mut added = Vec::new();
        for i in 0..EACH {
            added.push(
                b.http
                    .post(format!("{}/api/accounts", b.addr))
                    .bearer_auth(&admin)
                    .json(&json!({
                        "id": format!("ACC-{i}"),
                        "name": format!("Account {i}"),
                        "phone": format!("+486015500{i:02}"),
                    })),
            );
        }
        send_all(added).await
    };
    let cli = {
        let (dir, url) = (dir.path().to_owned(), url.to_owned());
        tokio::task::spawn_blocking(move || {
            let handles: Vec<_> = (0..CLI)
                .map(|i| {
                    let (dir, url) = (dir.clone(), url.clone());
                    std::thread::spawn(move || {
                        add_account(
                            &dir,
                            &url,
                            &format!("CLI-{i}"),
                            &format!("+486016600{i:02}"),
                            &format!("7777000{i}"),
                        )
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        })
    };
    let (users, accounts, cli) = tokio::join!(users, accounts, cli);
    cli.unwrap();
    for r in users.into_iter().chain(accounts) {
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }

    let after = verified_entries(dir.path(), url);
    assert_eq!(after - before, (2 * EACH + CLI) as i64);
    // Numbered without holes or twins, each entry chained to the one before.
    let seqs = "SELECT COUNT(DISTINCT seq) FROM audit_log WHERE seq BETWEEN 1 AND (SELECT MAX(seq) FROM audit_log)";
    assert_eq!(query_i64(url, seqs).await, after);
    a.kill_9();
    b.kill_9();
}
