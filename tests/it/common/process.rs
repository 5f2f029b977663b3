//! The real `callgate serve` binary as a child process, for kill -9 and first-run tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{AUTH_TOKEN, Endpoint, PUBLIC_URL, Reach, repo_path};

pub struct ServerProcess {
    child: Child,
    pub addr: String,
    pub http: reqwest::Client,
    /// Everything the server printed on stdout so far.
    pub stdout: Arc<Mutex<Vec<String>>>,
    /// Everything it logged on stderr so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
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
    /// `callgate serve` behind the test's public URL, as behind a proxy.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &["--public-url", PUBLIC_URL])
    }

    /// Starts `callgate serve` on a random port with `extra` arguments and waits for its
    /// "serving" log line.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_logging(data_dir, extra, "info")
    }

    /// Like `start_with`, logging at `level` (`RUST_LOG`).
    pub fn start_logging(data_dir: &Path, extra: &[&str], level: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_callgate"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--scripts")
            .arg(repo_path("ivr-scripts"))
            .arg("--sounds")
            .arg(repo_path("sounds"))
            .env("CALLGATE_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
            .env("RUST_LOG", level)
            .env_remove("CALLGATE_LOG_FORMAT")
            .env_remove("CALLGATE_PUBLIC_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let collected = stdout_lines.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                collected.lock().unwrap().push(line);
            }
        });
        let stderr = child.stderr.take().unwrap();
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let logged = stderr_lines.clone();
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
                logged.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server did not start");
        Self {
            child,
            addr: format!("http://{addr}"),
            http: reqwest::Client::new(),
            stdout: stdout_lines,
            stderr: stderr_lines,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM: the server stops taking connections and finishes what is in flight.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit by itself, at most `within`.
    pub fn wait_exit(mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub async fn wait_ready(&self) {
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

    /// The stdout line that starts with `prefix`.
    pub fn printed(&self, prefix: &str) -> Option<String> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.starts_with(prefix))
            .cloned()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
