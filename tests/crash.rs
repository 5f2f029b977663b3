//! kill -9 of the real `callgate serve` process between and during webhooks: every answered
//! webhook's state survives, the call goes on after a restart, the database stays intact.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callgate::store::users::Role;
use common::*;

struct ServerProcess {
    child: Child,
    addr: String,
    http: reqwest::Client,
}

impl Reach for ServerProcess {
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            addr: self.addr.clone(),
            http: self.http.clone(),
        }
    }
}

impl ServerProcess {
    /// Starts `callgate serve` on a random port and waits for its "serving" log line.
    fn start(data_dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_callgate"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--public-url",
                PUBLIC_URL,
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--scripts")
            .arg(repo_path("ivr-scripts"))
            .arg("--sounds")
            .arg(repo_path("sounds"))
            .env("CALLGATE_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
            .env("RUST_LOG", "info")
            .env_remove("CALLGATE_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listen=").nth(1) {
                    let _ = tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server did not start");
        Self {
            child,
            addr: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    fn kill_9(mut self) {
        self.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
        self.child.wait().unwrap();
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.addr)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server not ready");
    }
}

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
