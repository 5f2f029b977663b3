//! A real browser for the page tests: Debian's chromedriver on a free port, driving headless
//! Chromium with a fresh profile. chromedriver runs in its own process group, which is killed on
//! drop, so no Chromium outlives its test even when the test panics.
//!
//! Missing Chromium is a failure, never a skip: a browser test that silently passes proves
//! nothing. Install them with `apt-get install chromium chromium-driver` (.ci/run does).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// Where Debian puts them; `CALLGATE_CHROMEDRIVER` / `CALLGATE_CHROMIUM` point elsewhere.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a page may take to show what a test waits for.
pub const WAIT: Duration = Duration::from_secs(15);

/// The network of the test machines is closed: without the background-networking flags
/// Chromium waits on refused connections (updates, sync, field trials) and hangs.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn binary(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.is_file(),
        "{} not found: the browser tests need Chromium and chromedriver. \
         Install them with `apt-get install chromium chromium-driver` \
         (or set {env} to the binary).",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port for chromedriver")
}

impl Browser {
    /// Starts chromedriver and opens a headless Chromium session.
    pub async fn start() -> Self {
        let driver_bin = binary("CALLGATE_CHROMEDRIVER", CHROMEDRIVER);
        let chromium = binary("CALLGATE_CHROMIUM", CHROMIUM);
        let profile = tempfile::tempdir().expect("temporary Chromium profile");
        let port = free_port();
        let mut command = Command::new(&driver_bin);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", driver_bin.display()));
        // From here on the driver is killed on drop, whatever fails next.
        let browser = Self::wait_for_driver(driver, port, profile, &chromium).await;
        browser.client.set_window_size(1280, 900).await.ok();
        browser
    }

    async fn wait_for_driver(
        driver: Child,
        port: u16,
        profile: tempfile::TempDir,
        chromium: &std::path::Path,
    ) -> Self {
        // A guard that kills the driver if the session cannot be opened.
        struct Guard(Option<Child>);
        impl Drop for Guard {
            fn drop(&mut self) {
                if let Some(child) = self.0.as_mut() {
                    kill_group(child);
                }
            }
        }
        let mut guard = Guard(Some(driver));
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{url}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            if let Some(child) = guard.0.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("chromedriver exited at start: {status}");
            }
            assert!(
                started.elapsed() < WAIT,
                "chromedriver did not answer on {url} within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": chromium, "args": args }),
        );
        // chromedriver is on loopback: plain HTTP, no TLS stack to build or configure.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("opening a Chromium session through chromedriver: {e}"));
        let driver = guard.0.take().expect("driver still held");
        Self {
            client,
            driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// Waits for the element with this id (the page it is on has loaded).
    pub async fn wait_for_id(&self, id: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Id(id))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!("waiting for #{id}: {e}; page: {}", self.page().await),
        }
    }

    pub async fn text_of(&self, id: &str) -> String {
        self.wait_for_id(id)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("text of #{id}: {e}"))
    }

    pub async fn click(&self, id: &str) {
        self.wait_for_id(id)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking #{id}: {e}"));
    }

    pub async fn type_into(&self, id: &str, text: &str) {
        self.wait_for_id(id)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into #{id}: {e}"));
    }

    /// The path and query of the current page (`/login?next=%2Fadmin`).
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current URL");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Waits until the current path (without query) is `path`.
    pub async fn wait_for_path(&self, path: &str) {
        let started = Instant::now();
        loop {
            let now = self.path().await;
            if now.split('?').next() == Some(path) {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "still on {now}, expected {path}; page: {}",
                self.page().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs a script in the page and returns its JSON result.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script {script:?}: {e}"))
    }

    /// Runs an asynchronous script (it calls its last argument with the result).
    pub async fn eval_async(&self, script: &str) -> serde_json::Value {
        self.client
            .execute_async(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script {script:?}: {e}"))
    }

    /// The page's HTML, for failure messages.
    pub async fn page(&self) -> String {
        self.client.source().await.unwrap_or_default()
    }

    /// Ends the Chromium session cleanly (the drop then only stops chromedriver).
    pub async fn quit(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// Kills chromedriver and everything it started (Chromium and its helpers).
fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}
