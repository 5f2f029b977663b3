//! Test helpers: a real callgate server on a random port with a temporary data directory, and a
//! caller that plays Twilio against it (signed form posts, following `<Gather>` and `<Redirect>`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use callgate::clock::Clock;
use callgate::config::{Settings, TwilioTokens};
use callgate::domain::{AccountCode, AccountId, AccountName, PhoneNumber, Region};
use callgate::startup::{AppState, serve};
use callgate::store::Store;
use callgate::store::accounts::NewAccount;
use callgate::store::users::{self, Role};
use callgate::twilio::emulator::CallLeg;
use callgate::twilio::signature;
use callgate::twilio::twiml::{self, Prompt, Verb};
use callgate::verify::{Keyring, totp};

pub mod agent;
pub mod api;
pub mod browser;
pub mod pg;
pub mod process;

#[allow(unused_imports)]
pub use api::Api;

pub const AUTH_TOKEN: &str = "test-auth-token-0123456789abcdef";
/// What the shipped Polish script says at its menu: a verified caller hears it.
pub const MENU: &str = "W sprawie rozliczeń naciśnij 1.";
/// What Twilio is configured with; the server listens elsewhere, as behind a proxy.
pub const PUBLIC_URL: &str = "https://callgate.example";
pub const DIALED: &str = "+48221234567";

/// Runs the real `callgate` binary on `data_dir` (as an operator would, beside a running server).
pub fn callgate_cli(data_dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_callgate"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("CALLGATE_DATA_DIR")
        .output()
        .unwrap()
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub struct TestApp {
    pub addr: String,
    pub state: AppState,
    pub data_dir: PathBuf,
    /// The server's clock: the system's, or a manual one the test moves (`spawn_with_clock`).
    pub clock: Clock,
    _temp: Option<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub http: reqwest::Client,
}

pub fn test_settings(data_dir: &Path) -> Settings {
    let mut s = Settings::new("127.0.0.1:0".parse().unwrap(), data_dir.to_owned());
    s.public_url = PUBLIC_URL.into();
    s.scripts_dir = repo_path("ivr-scripts");
    s.sounds_dir = repo_path("sounds");
    s.twilio_tokens = TwilioTokens::parse(AUTH_TOKEN);
    s
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_with_clock(Clock::system(), configure).await
    }

    /// A server on `clock`: with `Clock::manual_from_now()`, time passes only when the test
    /// calls `app.clock.advance(..)`.
    pub async fn spawn_with_clock(clock: Clock, configure: impl FnOnce(&mut Settings)) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let mut app = Self::start_inner(&dir, configure, false, clock).await;
        app._temp = Some(temp);
        app
    }

    /// A server whose public URL is its own address (no proxy in front), for clients such as
    /// the softphone that sign for the URL they call.
    pub async fn spawn_without_proxy() -> Self {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let mut app = Self::start_inner(&dir, |_| {}, true, Clock::system()).await;
        app._temp = Some(temp);
        app
    }

    /// Starts a server on `data_dir` (which the caller keeps alive).
    pub async fn start(data_dir: &Path, configure: impl FnOnce(&mut Settings)) -> Self {
        Self::start_inner(data_dir, configure, false, Clock::system()).await
    }

    async fn start_inner(
        data_dir: &Path,
        configure: impl FnOnce(&mut Settings),
        public_is_local: bool,
        clock: Clock,
    ) -> Self {
        let mut settings = test_settings(data_dir);
        configure(&mut settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        if public_is_local {
            settings.public_url = addr.clone();
        }
        let state = AppState::build_with_clock(settings, clock.clone()).expect("app state");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(state.clone(), listener, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            state,
            data_dir: data_dir.to_owned(),
            clock,
            _temp: None,
            shutdown: Some(tx),
            server: Some(server),
            http: reqwest::Client::new(),
        }
    }

    /// Stops the server gracefully and starts a new one on the same data directory (and so the
    /// same database and key), on a new port.
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        let temp = self._temp.take();
        let mut app = Self::start_inner(&self.data_dir, |_| {}, false, self.clock.clone()).await;
        app._temp = temp;
        app
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    pub fn store(&self) -> Store {
        Store::open(&self.data_dir).unwrap()
    }

    /// A SQLite connection of the test's own to the server's database file, for tests that
    /// look at or change what is stored behind the storage interface's back (a call's start
    /// time moved into the past, a row read as written).
    pub fn sql(&self) -> rusqlite::Connection {
        open_sql(&self.data_dir)
    }

    pub fn keys(&self) -> Keyring {
        Keyring::load_or_create(&self.data_dir).unwrap()
    }

    /// Registers an account; returns its TOTP secret when `with_totp`.
    pub fn add_account(
        &self,
        id: &str,
        phone: &str,
        code: Option<&str>,
        with_totp: bool,
    ) -> Option<Vec<u8>> {
        let secret = with_totp.then(|| totp::new_secret().to_vec());
        let mut attrs = BTreeMap::new();
        attrs.insert("plan".to_owned(), "premium".to_owned());
        let (id, name) = (
            AccountId::parse(id).unwrap(),
            AccountName::parse(&format!("Name of {id}")).unwrap(),
        );
        let phone = PhoneNumber::parse(phone, Region::default()).unwrap();
        let code = code.map(|c| AccountCode::parse(c).unwrap());
        let new = NewAccount {
            id: &id,
            name: &name,
            phone: &phone,
            code: code.as_ref(),
            totp_secret: secret.as_deref(),
            attributes: &attrs,
            knowledge: &[],
            test: false,
        };
        let keys = self.keys();
        self.store()
            .write_sync(|db| Ok(db.add_account(&keys, &new, self.clock.now_ms())?))
            .unwrap();
        secret
    }

    pub fn call_code(&self, account: &str, ttl_ms: i64, issued_at: i64) -> String {
        let keys = self.keys();
        self.store()
            .write_sync(|db| db.issue_call_code(&keys, account, ttl_ms, issued_at))
            .unwrap()
            .to_string()
    }

    pub fn user(&self, name: &str, role: Role) -> String {
        self.store()
            .write_sync(|db| db.add_user(name, role, &[], self.clock.now_ms()))
            .unwrap()
            .to_string()
    }

    /// Like `user`, for an agent serving `departments` (comma-separated).
    pub fn user_in(&self, name: &str, role: Role, departments: &str) -> String {
        let departments = users::parse_departments(departments).unwrap();
        self.store()
            .write_sync(|db| db.add_user(name, role, &departments, self.clock.now_ms()))
            .unwrap()
            .to_string()
    }

    /// Maps a URL from a TwiML document (built on the public URL) to this server.
    pub fn local(&self, url: &str) -> String {
        match url.strip_prefix(PUBLIC_URL) {
            Some(path) => format!("{}{path}", self.addr),
            None => format!("{}{url}", self.addr),
        }
    }

    pub async fn post_signed(&self, path: &str, params: &[(String, String)]) -> reqwest::Response {
        self.endpoint().post_signed(path, params).await
    }

    pub async fn screen_pop(&self, call_sid: &str, token: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .get(format!("{}/api/calls/{call_sid}", self.addr))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Every byte of the database files, to prove what is not in them.
    pub fn database_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(bytes) = std::fs::read(self.data_dir.join(format!("callgate.db{suffix}"))) {
                all.extend(bytes);
            }
        }
        all
    }
}

/// A SQLite connection to the database in `data_dir`, configured as the server's are (foreign
/// keys on, waiting for the writer rather than failing).
pub fn open_sql(data_dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(data_dir.join("callgate.db")).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
        .unwrap();
    conn
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub fn totp_now(secret: &[u8]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp::code_at(secret, now).unwrap()
}

/// A TOTP code that is wrong now (any 6 digits that match none of the accepted steps).
pub fn wrong_totp(secret: &[u8]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let valid: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|&t| totp::code_at(secret, t).unwrap())
        .collect();
    (0..)
        .map(|i| format!("{:06}", 100_000 + i))
        .find(|c| !valid.contains(c))
        .unwrap()
}

static NEXT_SID: AtomicU64 = AtomicU64::new(1);

pub fn new_call_sid() -> String {
    let n = NEXT_SID.fetch_add(1, Ordering::Relaxed);
    format!("CA{:032x}", (std::process::id() as u128) << 64 | n as u128)
}

/// One TwiML answer, checked for what every answer must be.
#[derive(Debug, Clone)]
pub struct Doc {
    pub xml: String,
    pub twiml: twiml::Response,
    /// The URL the document was fetched from (a Gather's default action).
    pub url: String,
}

impl Doc {
    pub fn texts(&self) -> Vec<String> {
        let mut out = Vec::new();
        for verb in &self.twiml.verbs {
            match verb {
                Verb::Say(s) => out.push(s.text.clone()),
                Verb::Play(p) => out.push(format!("play:{}", p.url)),
                Verb::Gather(g) => {
                    for p in &g.prompts {
                        match p {
                            Prompt::Say(s) => out.push(s.text.clone()),
                            Prompt::Play(p) => out.push(format!("play:{}", p.url)),
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    pub fn said(&self) -> String {
        self.texts().join(" | ")
    }

    pub fn gather(&self) -> Option<&twiml::Gather> {
        self.twiml.verbs.iter().find_map(|v| match v {
            Verb::Gather(g) => Some(g),
            _ => None,
        })
    }

    pub fn hangs_up(&self) -> bool {
        matches!(self.twiml.verbs.last(), Some(Verb::Hangup))
    }

    pub fn handoff(&self) -> Option<&Verb> {
        self.twiml
            .verbs
            .iter()
            .find(|v| matches!(v, Verb::Enqueue(_) | Verb::Dial(_)))
    }
}

/// Where webhooks go: an in-process `TestApp` or a server process.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: String,
    pub http: reqwest::Client,
}

impl Endpoint {
    /// POSTs `params` to `path`, signed as Twilio signs for the public URL.
    pub async fn post_signed(&self, path: &str, params: &[(String, String)]) -> reqwest::Response {
        let sig = signature::compute(AUTH_TOKEN, &format!("{PUBLIC_URL}{path}"), params);
        self.http
            .post(format!("{}{path}", self.addr))
            .header("X-Twilio-Signature", sig)
            .form(params)
            .send()
            .await
            .unwrap()
    }
}

pub trait Reach {
    fn endpoint(&self) -> Endpoint;
}

/// The server's `/metrics` page, read with an admin's token.
pub async fn metrics(app: &impl Reach, admin: &str) -> String {
    let e = app.endpoint();
    e.http
        .get(format!("{}/metrics", e.addr))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

impl Reach for Endpoint {
    fn endpoint(&self) -> Endpoint {
        self.clone()
    }
}

impl Reach for TestApp {
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            addr: self.addr.clone(),
            http: self.http.clone(),
        }
    }
}

/// A caller on the line: plays the call the way Twilio does.
pub struct Caller {
    pub app: Endpoint,
    pub call_sid: String,
    pub from: String,
    pub to: String,
    pub stir: Option<String>,
    pub last: Option<Doc>,
}

impl Caller {
    pub fn new(app: &impl Reach, from: &str) -> Self {
        Self {
            app: app.endpoint(),
            call_sid: new_call_sid(),
            from: from.into(),
            to: DIALED.into(),
            stir: None,
            last: None,
        }
    }

    /// What Twilio sends for this call, plus location parameters (often empty) that callgate
    /// does not read: unknown parameters must never hurt.
    pub fn params(&self, status: &str) -> Vec<(String, String)> {
        let leg = CallLeg {
            call_sid: self.call_sid.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            stir_verstat: self.stir.clone(),
        };
        leg.params(status, &[("FromCountry", "PL"), ("FromCity", "")])
    }

    /// POSTs to an absolute URL from a document (or a path) and checks the answer is valid TwiML.
    pub async fn fetch(&mut self, url: &str, params: Vec<(String, String)>) -> Doc {
        let path = url.strip_prefix(PUBLIC_URL).unwrap_or(url).to_owned();
        let response = self.app.post_signed(&path, &params).await;
        assert_eq!(response.status(), 200, "POST {path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with("text/xml"), "{content_type}");
        let xml = response.text().await.unwrap();
        assert!(
            xml.starts_with("<?xml"),
            "nothing may precede the declaration: {xml}"
        );
        assert!(xml.len() < twiml::MAX_DOCUMENT_BYTES);
        let twiml = twiml::parse(&xml).unwrap_or_else(|e| panic!("invalid TwiML ({e}): {xml}"));
        let doc = Doc {
            xml,
            twiml,
            url: format!("{PUBLIC_URL}{path}"),
        };
        self.last = Some(doc.clone());
        doc
    }

    pub async fn dial(&mut self) -> Doc {
        let params = self.params("ringing");
        self.fetch("/twilio/voice", params).await
    }

    /// Types `keys` at the current `<Gather>` (Twilio strips the finishing `#`).
    pub async fn press(&mut self, keys: &str) -> Doc {
        let last = self.last.clone().expect("dial first");
        let gather = last
            .gather()
            .unwrap_or_else(|| panic!("no <Gather> to answer: {}", last.xml))
            .clone();
        let action = if gather.action.is_empty() {
            last.url.clone()
        } else {
            gather.action.clone()
        };
        let mut params = self.params("in-progress");
        params.push(("Digits".into(), keys.trim_end_matches('#').into()));
        params.push((
            "FinishedOnKey".into(),
            if keys.ends_with('#') {
                "#".into()
            } else {
                String::new()
            },
        ));
        self.fetch(&action, params).await
    }

    /// Says nothing: Twilio falls through the `<Gather>` to the `<Redirect>` after it.
    pub async fn stay_silent(&mut self) -> Doc {
        let last = self.last.clone().expect("dial first");
        let redirect = last
            .twiml
            .verbs
            .iter()
            .find_map(|v| match v {
                Verb::Redirect { url } => Some(url.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no <Redirect> after the <Gather>: {}", last.xml));
        let params = self.params("in-progress");
        self.fetch(&redirect, params).await
    }

    pub async fn status(&mut self, status: &str) -> u16 {
        let mut params = self.params(status);
        params.push(("CallDuration".into(), "61".into()));
        self.app
            .post_signed("/twilio/status", &params)
            .await
            .status()
            .as_u16()
    }
}
