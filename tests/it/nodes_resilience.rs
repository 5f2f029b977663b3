//! Several nodes on PostgreSQL when things go wrong (issue 13): the database cut off, hung or
//! restarted under a node; a node killed with `kill -9` in the middle of calls; and the daily
//! purge, which one node at a time runs (proved at the store level, `store::contract::privacy`).
//!
//! The outage is made by a TCP proxy of the test's own between the node and the shared test
//! server ([`PgProxy`]): it forwards, or swallows everything (a "black hole": connections are
//! accepted and never answered, the worst case, since no TCP timeout ends them), or cuts every
//! connection at once, as a restarting PostgreSQL does.

use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use callgate::twilio::{signature, twiml};

use crate::common::pg::{add_account, database, node, on_postgres};
use crate::common::process::ServerProcess;
use crate::common::*;

const APOLOGY: &str = "problem techniczny";
const PHONE: &str = "+48601234567";
const CODE: &str = "13579246";
/// Twilio waits 15 s for a webhook's answer; the caller must hear the apology well before.
const GATEWAY_LIMIT: Duration = Duration::from_secs(10);

/// What the proxy does: forward or swallow; a new generation cuts every connection it holds.
#[derive(Clone, Copy, Debug)]
struct Link {
    open: bool,
    generation: u64,
}

/// A TCP proxy in front of PostgreSQL, on a thread and runtime of its own (the test's thread
/// blocks in the CLI at times; the node's connections must not wait for it).
struct PgProxy {
    port: u16,
    control: watch::Sender<Link>,
}

impl PgProxy {
    /// In front of the server of the database `url`.
    fn start(url: &str) -> Self {
        let u = url::Url::parse(url).unwrap();
        let upstream = format!(
            "{}:{}",
            u.host_str().unwrap_or("127.0.0.1"),
            u.port().unwrap_or(5432)
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (control, link) = watch::channel(Link {
            open: true,
            generation: 0,
        });
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(proxy(listener, upstream, link));
        });
        Self { port, control }
    }

    /// `url` with the proxy in place of the server.
    fn url(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).unwrap();
        u.set_host(Some("127.0.0.1")).unwrap();
        u.set_port(Some(self.port)).unwrap();
        u.to_string()
    }

    /// From now on nothing passes: open connections go silent, new ones are accepted and
    /// never answered.
    fn black_hole(&self) {
        self.control.send_modify(|l| l.open = false);
    }

    /// Forwards again; the swallowed connections are cut (as a network coming back resets them).
    fn restore(&self) {
        self.control.send_modify(|l| {
            l.open = true;
            l.generation += 1;
        });
    }

    /// Cuts every connection at once and forwards new ones: a PostgreSQL restart.
    fn cut_all(&self) {
        self.control.send_modify(|l| l.generation += 1);
    }
}

async fn proxy(listener: std::net::TcpListener, upstream: String, mut link: watch::Receiver<Link>) {
    let listener = TcpListener::from_std(listener).unwrap();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((client, _)) = accepted {
                    tokio::spawn(pipe(client, upstream.clone(), link.clone()));
                }
            }
            changed = link.changed() => if changed.is_err() { return },
        }
    }
}

async fn pipe(mut client: TcpStream, upstream: String, mut link: watch::Receiver<Link>) {
    let now = *link.borrow_and_update();
    if now.open {
        let Ok(mut server) = TcpStream::connect(&upstream).await else {
            return;
        };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
            _ = link.wait_for(|l| !l.open || l.generation != now.generation) => {}
        }
    }
    // Swallowed: the node's bytes are taken by the kernel and never answered, until the next
    // generation cuts the connection.
    let _ = link.wait_for(|l| l.generation != now.generation).await;
}

fn is_apology(doc: &Doc) -> bool {
    doc.said().contains(APOLOGY) && doc.hangs_up() && doc.gather().is_none()
}

/// A new call from the registered phone that types its account code: the menu, or whatever
/// it heard instead.
async fn verify_call(server: &impl Reach) -> Doc {
    let mut caller = Caller::new(server, PHONE);
    let first = caller.dial().await;
    if first.gather().is_none() {
        return first;
    }
    caller.press(&format!("{CODE}#")).await
}

async fn health(server: &ServerProcess) -> u16 {
    server
        .http
        .get(format!("{}/healthz", server.addr))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Polls `check` until it holds, at most `within`; the time it took.
async fn within<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_database_outage_costs_callers_an_apology_in_time_and_the_node_recovers_by_itself() {
    let db = database().await;
    let dir = tempfile::tempdir().unwrap();
    add_account(dir.path(), db.url(), "ACC-R", PHONE, CODE);
    let proxy = PgProxy::start(db.url());
    let server = node(dir.path(), &proxy.url(db.url()));
    server.wait_ready().await;
    assert!(verify_call(&server).await.said().contains(MENU));

    // Calls in the middle of their flow when the database goes silent.
    let mut midway = Vec::new();
    for _ in 0..3 {
        let mut caller = Caller::new(&server, PHONE);
        assert!(caller.dial().await.gather().is_some());
        midway.push(caller);
    }
    proxy.black_hole();

    // Under load: fresh calls and the calls in progress, all at once.
    let mut load = tokio::task::JoinSet::new();
    for i in 0..8 {
        let endpoint = server.endpoint();
        load.spawn(async move {
            let started = Instant::now();
            let doc = Caller::new(&endpoint, &format!("+4860999{i:04}"))
                .dial()
                .await;
            (started.elapsed(), doc)
        });
    }
    for mut caller in midway {
        load.spawn(async move {
            let started = Instant::now();
            let doc = caller.press(&format!("{CODE}#")).await;
            (started.elapsed(), doc)
        });
    }
    let mut slowest = Duration::ZERO;
    while let Some(answered) = load.join_next().await {
        // `Caller` asserts a 200 with valid TwiML: never a 5xx.
        let (took, doc) = answered.unwrap();
        assert!(is_apology(&doc), "not the apology: {}", doc.xml);
        assert!(took < GATEWAY_LIMIT, "the apology took {took:?}");
        slowest = slowest.max(took);
    }
    let started = Instant::now();
    assert_eq!(health(&server).await, 503);
    let health_took = started.elapsed();
    assert!(health_took < GATEWAY_LIMIT, "/healthz took {health_took:?}");
    // Still silent a while later (the pool's retries do not change the answer).
    let started = Instant::now();
    let doc = verify_call(&server).await;
    let later_took = started.elapsed();
    assert!(is_apology(&doc), "{}", doc.xml);
    assert!(later_took < GATEWAY_LIMIT, "{later_took:?}");

    // The database comes back: the node recovers by itself.
    proxy.restore();
    let healthy = within(Duration::from_secs(30), "healthz 200", || async {
        health(&server).await == 200
    })
    .await;
    let answering = within(Duration::from_secs(30), "a call verified", || async {
        verify_call(&server).await.said().contains(MENU)
    })
    .await;
    let listening = within(Duration::from_secs(30), "the listener back", || async {
        server
            .stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("PostgreSQL listener connected again"))
    })
    .await;
    println!(
        "outage: slowest apology under load {slowest:?}, /healthz 503 in {health_took:?}, \
         a later call's apology in {later_took:?}; after restoring: /healthz 200 in {healthy:?}, \
         a call verified {answering:?} after that, listener back {listening:?} after that"
    );

    // A restart: every connection cut at once. The pool finds its connections dead on
    // check-out and connects afresh, so the very next calls are answered normally.
    for round in 0..3 {
        proxy.cut_all();
        let started = Instant::now();
        let doc = verify_call(&server).await;
        assert!(
            doc.said().contains(MENU),
            "round {round}: after a restart: {}",
            doc.xml
        );
        println!(
            "restart {round}: next call verified in {:?}",
            started.elapsed()
        );
        assert_eq!(health(&server).await, 200);
    }
    server.kill_9();
}

/// How far a call got, as a webhook's answer shows it or the database records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// The call exists: asked for the account code.
    Asked,
    /// The code was right: the menu.
    Verified,
    /// Handed to an agent.
    HandedOff,
}

fn stage_of(doc: &Doc) -> Stage {
    if doc.handoff().is_some() {
        Stage::HandedOff
    } else if doc.said().contains(MENU) {
        Stage::Verified
    } else {
        Stage::Asked
    }
}

/// POSTs a signed webhook; `None` when the node does not answer (it was killed), else its
/// status and document.
async fn try_webhook(node: &Endpoint, path: &str, params: &[(String, String)]) -> Option<Doc> {
    let sig = signature::compute(AUTH_TOKEN, &format!("{PUBLIC_URL}{path}"), params);
    let response = node
        .http
        .post(format!("{}{path}", node.addr))
        .header("X-Twilio-Signature", sig)
        .form(params)
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .ok()?;
    assert_eq!(response.status(), 200, "POST {path}: never a 5xx");
    let xml = response.text().await.ok()?;
    let twiml = twiml::parse(&xml).unwrap_or_else(|e| panic!("invalid TwiML ({e}): {xml}"));
    Some(Doc {
        xml,
        twiml,
        url: format!("{PUBLIC_URL}{path}"),
    })
}

/// The next webhook of a call after `doc`, as Twilio sends it: the first, the account code at
/// the code prompt, "1" at the menu.
fn next_webhook(caller: &Caller, doc: Option<&Doc>) -> (String, Vec<(String, String)>) {
    let Some(doc) = doc else {
        return ("/twilio/voice".into(), caller.params("ringing"));
    };
    let gather = doc
        .gather()
        .unwrap_or_else(|| panic!("nothing to answer: {}", doc.xml));
    let action = if gather.action.is_empty() {
        doc.url.clone()
    } else {
        gather.action.clone()
    };
    let digits = if stage_of(doc) == Stage::Verified {
        "1"
    } else {
        CODE
    };
    let mut params = caller.params("in-progress");
    params.push(("Digits".into(), digits.into()));
    params.push(("FinishedOnKey".into(), "#".into()));
    (
        action
            .strip_prefix(PUBLIC_URL)
            .unwrap_or(&action)
            .to_owned(),
        params,
    )
}

/// The stage each call has in the database (absent: no row).
fn stages_in(url: &str) -> std::collections::HashMap<String, Stage> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .query(
            "SELECT c.call_sid, c.verified_at IS NOT NULL, c.handed_off_at IS NOT NULL
                    AND EXISTS (SELECT 1 FROM call_events e
                                WHERE e.call_sid = c.call_sid AND e.kind = 'handoff')
             FROM calls c",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| {
            let stage = match (r.get::<_, bool>(1), r.get::<_, bool>(2)) {
                (_, true) => Stage::HandedOff,
                (true, false) => Stage::Verified,
                (false, false) => Stage::Asked,
            };
            (r.get(0), stage)
        })
        .collect()
}

#[tokio::test]
async fn kill_9_of_one_node_loses_no_answered_webhook_and_its_calls_finish_on_the_other() {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    const CALLS: usize = 24;
    let db = database().await;
    let dir = tempfile::tempdir().unwrap();
    add_account(dir.path(), db.url(), "ACC-K", PHONE, CODE);
    let a = node(dir.path(), db.url());
    let b = node(dir.path(), db.url());
    a.wait_ready().await;
    b.wait_ready().await;
    let nodes = Arc::new([a.endpoint(), b.endpoint()]);
    let a_down = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    // What node A answered with 200, per call: the furthest stage its answers showed.
    let from_a: Arc<std::sync::Mutex<HashMap<String, Stage>>> = Default::default();
    // Webhooks hold it shared; the check after the kill takes it alone, so nothing moves
    // the calls on while it looks.
    let gate = Arc::new(tokio::sync::RwLock::new(()));
    let resent = Arc::new(AtomicUsize::new(0));

    let mut calls = tokio::task::JoinSet::new();
    for i in 0..CALLS {
        let (nodes, a_down, answered, from_a, gate, resent) = (
            nodes.clone(),
            a_down.clone(),
            answered.clone(),
            from_a.clone(),
            gate.clone(),
            resent.clone(),
        );
        calls.spawn(async move {
            let caller = Caller::new(&nodes[1], PHONE);
            let mut doc: Option<Doc> = None;
            for turn in 0..8 {
                if doc
                    .as_ref()
                    .is_some_and(|d| stage_of(d) == Stage::HandedOff)
                {
                    return (caller.call_sid, turn);
                }
                // Spread the calls out, so the kill lands in the middle of them.
                tokio::time::sleep(Duration::from_millis(20 + 37 * ((i + turn) % 5) as u64)).await;
                let (path, params) = next_webhook(&caller, doc.as_ref());
                let _held = gate.read().await;
                // Round robin; a balancer sends nothing more to a node it saw go down.
                let mut target = (i + turn) % 2;
                if target == 0 && a_down.load(Ordering::SeqCst) {
                    target = 1;
                }
                let reply = match try_webhook(&nodes[target], &path, &params).await {
                    Some(reply) => reply,
                    None => {
                        // Node A died with the webhook unanswered: Twilio's fallback URL
                        // (the balancer) sends it again, to B.
                        assert_eq!(target, 0, "node B must answer");
                        resent.fetch_add(1, Ordering::SeqCst);
                        target = 1;
                        try_webhook(&nodes[1], &path, &params)
                            .await
                            .expect("node B answers")
                    }
                };
                assert!(!reply.said().contains(APOLOGY), "{}", reply.xml);
                if target == 0 {
                    let mut from_a = from_a.lock().unwrap();
                    let seen = from_a
                        .entry(caller.call_sid.clone())
                        .or_insert(Stage::Asked);
                    *seen = (*seen).max(stage_of(&reply));
                }
                answered.fetch_add(1, Ordering::SeqCst);
                doc = Some(reply);
            }
            panic!("call {i} not handed off: {:?}", doc.map(|d| d.xml));
        });
    }

    // A third of the way through: kill -9 node A.
    within(Duration::from_secs(60), "calls under way", || async {
        answered.load(Ordering::SeqCst) >= CALLS
    })
    .await;
    a.kill_9();
    let at_kill = answered.load(Ordering::SeqCst);
    {
        // What A answered is in the database, as far as its answers said.
        let _alone = gate.write().await;
        a_down.store(true, Ordering::SeqCst);
        let answered_by_a = from_a.lock().unwrap().clone();
        let url = db.url().to_owned();
        let stored = tokio::task::spawn_blocking(move || stages_in(&url))
            .await
            .unwrap();
        assert!(!answered_by_a.is_empty());
        for (sid, stage) in &answered_by_a {
            let in_db = stored.get(sid).copied();
            assert!(
                in_db >= Some(*stage),
                "{sid}: node A answered {stage:?}, the database has {in_db:?}"
            );
        }
        println!(
            "killed node A after {at_kill} answered webhooks; A had answered for {} calls, all stored",
            answered_by_a.len()
        );
    }

    // Every call finishes on B, verified and handed off.
    let mut finished = Vec::new();
    while let Some(done) = calls.join_next().await {
        finished.push(done.unwrap());
    }
    assert_eq!(finished.len(), CALLS);
    let url = db.url().to_owned();
    let stored = tokio::task::spawn_blocking(move || stages_in(&url))
        .await
        .unwrap();
    for (sid, _) in &finished {
        assert_eq!(stored.get(sid), Some(&Stage::HandedOff), "{sid}");
    }
    println!(
        "{} webhooks resent to B after the kill; all {CALLS} calls handed off",
        resent.load(Ordering::SeqCst)
    );
    let verified = on_postgres(dir.path(), db.url(), &["audit", "verify"]);
    assert!(verified.contains("intact"), "{verified}");
    b.kill_9();
}
