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

use crate::common::pg::{add_account, database, node};
use crate::common::process::ServerProcess;
use crate::common::*;

const MENU: &str = "W sprawie rozliczeń naciśnij 1.";
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
