//! Key material across nodes on PostgreSQL: the key ring lives in the database, wrapped under a
//! key-encryption key each node reads from its `callgate.kek` or `CALLGATE_KEK`; a rotation
//! from anywhere reaches every running node; a node with another key-encryption key opens
//! nothing and says why.

use std::path::Path;

use crate::common::pg::{database, node, reaches_menu};

/// `callgate --database-url URL ARGS` on `dir` with `kek` as `CALLGATE_KEK` (None: unset).
fn cli(dir: &Path, url: &str, kek: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_callgate"));
    command
        .arg("--data-dir")
        .arg(dir)
        .args(["--database-url", url])
        .args(args)
        .env_remove("CALLGATE_DATA_DIR");
    match kek {
        Some(k) => command.env("CALLGATE_KEK", k),
        None => command.env_remove("CALLGATE_KEK"),
    };
    command.output().unwrap()
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The base64 key of a `callgate.kek` file.
fn kek_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("callgate.kek"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("kek ").map(str::to_owned))
        .unwrap()
}

#[tokio::test]
async fn every_node_shares_the_key_ring_and_a_rotation_reaches_the_running_nodes() {
    let db = database().await;
    let url = db.url();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Node A starts on a new database: the ring is made there, the KEK in A's directory.
    let a = node(dir_a.path(), url);
    a.wait_ready().await;
    assert!(
        !dir_a.path().join("callgate.key").exists(),
        "no key file: the keys are in the database"
    );
    // Node B has only the same KEK file; the CLI elsewhere has it as CALLGATE_KEK.
    std::fs::copy(
        dir_a.path().join("callgate.kek"),
        dir_b.path().join("callgate.kek"),
    )
    .unwrap();
    let b = node(dir_b.path(), url);
    b.wait_ready().await;
    let operator = tempfile::tempdir().unwrap();
    let kek = kek_of(dir_a.path());
    let op = |args: &[&str]| ok(cli(operator.path(), url, Some(&kek), args));

    op(&[
        "account",
        "add",
        "--id",
        "ACC-1",
        "--name",
        "Jan",
        "--phone",
        "+48601234567",
        "--code",
        "13579246",
    ]);
    assert!(reaches_menu(&a, &b, "+48601234567", "13579246").await);
    assert!(reaches_menu(&b, &a, "+48601234567", "13579246").await);

    let status = op(&["keys", "status"]);
    assert!(
        status.contains("key ring in the database") && status.contains("v1 (current)"),
        "{status}"
    );
    let rotated = op(&["keys", "rotate"]);
    assert!(rotated.contains("key version v2 added"), "{rotated}");
    // A code hashed under v2 right after the rotation checks on both running nodes.
    op(&[
        "account",
        "add",
        "--id",
        "ACC-2",
        "--name",
        "Ewa",
        "--phone",
        "+48601234568",
        "--code",
        "24681357",
    ]);
    assert!(reaches_menu(&a, &b, "+48601234568", "24681357").await);
    assert!(reaches_menu(&b, &a, "+48601234568", "24681357").await);
    // The v1 code still checks (and is re-keyed to v2 by that use).
    assert!(reaches_menu(&a, &a, "+48601234567", "13579246").await);
    let status = op(&["keys", "status"]);
    assert!(
        status.contains("v2 (current)") && status.contains("v1 (unused: can be retired)"),
        "{status}"
    );
    op(&["keys", "retire", "v1"]);
    assert!(reaches_menu(&b, &b, "+48601234567", "13579246").await);
    for server in [&a, &b] {
        let logged = server.stderr.lock().unwrap().join("\n");
        assert!(
            logged.contains("server keys loaded"),
            "each node reloaded its keys on the change"
        );
        assert!(!logged.contains("13579246") && !logged.contains("24681357"));
    }

    // A node with another key-encryption key opens nothing, and says what to do.
    let stranger = tempfile::tempdir().unwrap();
    let refused = cli(stranger.path(), url, None, &["keys", "status"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("does not open") && said.contains("callgate.kek"),
        "{said}"
    );
    // The rotation and the retirement are in the one audit chain, which verifies.
    let audit = op(&["audit", "verify"]);
    assert!(audit.contains("intact"), "{audit}");
    a.kill_9();
    b.kill_9();
}
