//! Several `callgate serve` processes on one PostgreSQL database: a scratch database per test
//! (`CALLGATE_TEST_POSTGRES_URL`), nodes started on it, the CLI pointed at it.

use std::path::Path;

use callgate::store::postgres::scratch_db::ScratchDatabase;

use super::process::ServerProcess;
use super::{Caller, MENU, PUBLIC_URL, Reach, callgate_cli};

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

/// A serve process on `dir` and the database at `url`.
pub fn node(dir: &Path, url: &str) -> ServerProcess {
    node_with(dir, url, &[])
}

/// Like `node`, with more `serve` arguments.
pub fn node_with(dir: &Path, url: &str, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--public-url", PUBLIC_URL, "--database-url", url];
    args.extend_from_slice(extra);
    ServerProcess::start_with(dir, &args)
}

/// Two nodes on one database (one migrates it, the other waits), both ready.
pub async fn two_nodes(dir: &Path, url: &str, extra: &[&str]) -> (ServerProcess, ServerProcess) {
    let a = node_with(dir, url, extra);
    a.wait_ready().await;
    let b = node_with(dir, url, extra);
    b.wait_ready().await;
    (a, b)
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

/// `callgate user add NAME --role ROLE`: the user's token.
pub fn add_user(dir: &Path, url: &str, name: &str, role: &str) -> String {
    on_postgres(dir, url, &["user", "add", name, "--role", role])
        .lines()
        .last()
        .unwrap()
        .to_owned()
}

/// A call from `from` typing `code` on `first`, its next webhook on `second` (as a round-robin
/// balancer sends them): does it reach the menu?
pub async fn reaches_menu(
    first: &ServerProcess,
    second: &ServerProcess,
    from: &str,
    code: &str,
) -> bool {
    let mut caller = Caller::new(first, from);
    caller.dial().await;
    caller.app = second.endpoint();
    caller
        .press(&format!("{code}#"))
        .await
        .said()
        .contains(MENU)
}
