//! Helpers for tests on PostgreSQL: a scratch database per test, `callgate serve` nodes and
//! the CLI on it.

use std::path::Path;

use callgate::store::postgres::scratch_db::ScratchDatabase;

use super::process::ServerProcess;
use super::{PUBLIC_URL, callgate_cli};

/// A fresh database (made off the async thread: the sync client runs a runtime of its own).
pub async fn database() -> ScratchDatabase {
    tokio::task::spawn_blocking(ScratchDatabase::create)
        .await
        .unwrap()
        .unwrap()
}

/// `callgate` on `dir` and the database at `url`; its stdout, after asserting success.
pub fn on_postgres(dir: &Path, url: &str, args: &[&str]) -> String {
    let mut all = vec!["--database-url", url];
    all.extend_from_slice(args);
    let out = callgate_cli(dir, &all);
    assert!(
        out.status.success(),
        "callgate {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn node(dir: &Path, url: &str) -> ServerProcess {
    ServerProcess::start_with(dir, &["--public-url", PUBLIC_URL, "--database-url", url])
}

pub fn add_account(dir: &Path, url: &str, id: &str, phone: &str, code: &str) {
    on_postgres(
        dir,
        url,
        &[
            "account",
            "add",
            "--id",
            id,
            "--name",
            &format!("Name of {id}"),
            "--phone",
            phone,
            "--code",
            code,
        ],
    );
}
