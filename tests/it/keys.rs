//! `callgate keys rotate / status / retire` beside the real server: no downtime, TOTP secrets
//! re-encrypted at once, code hashes re-keyed on their next use, an old key retired only once
//! nothing uses it; and a wrong or damaged key file stopping the server with a clear error.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::process::ServerProcess;
use crate::common::*;
use callgate::domain::{AccountCode, AccountId, AccountName, PhoneNumber, Region};
use callgate::store::accounts::NewAccount;
use callgate::store::{Store, now_ms};
use callgate::verify::{Keyring, totp};

const MENU: &str = "W sprawie rozliczeń naciśnij 1.";
const ASK_TOTP: &str = "aplikacji uwierzytelniającej";
const PHONE: &str = "+48601234567";
const CODE: &str = "246813";

fn add_account(data_dir: &Path, id: &str, code: &str) -> Vec<u8> {
    let store = Store::open(data_dir).unwrap();
    let keys = Keyring::load_or_create(data_dir).unwrap();
    let secret = totp::new_secret().to_vec();
    let (id, name) = (
        AccountId::parse(id).unwrap(),
        AccountName::parse("Jan Kowalski").unwrap(),
    );
    let phone = PhoneNumber::parse(PHONE, Region::default()).unwrap();
    let code = AccountCode::parse(code).unwrap();
    let new = NewAccount {
        id: &id,
        name: &name,
        phone: &phone,
        code: Some(&code),
        totp_secret: Some(&secret),
        attributes: &BTreeMap::new(),
        knowledge: &[],
        test: false,
    };
    store
        .write_sync(|db| Ok(db.add_account(&keys, &new, now_ms())?))
        .unwrap();
    secret
}

fn cli_ok(data_dir: &Path, args: &[&str]) -> String {
    let out = callgate_cli(data_dir, args);
    assert!(
        out.status.success(),
        "callgate {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn cli_err(data_dir: &Path, args: &[&str]) -> String {
    let out = callgate_cli(data_dir, args);
    assert!(
        !out.status.success(),
        "callgate {args:?} should have failed"
    );
    String::from_utf8(out.stderr).unwrap()
}

fn versions(data_dir: &Path, id: &str) -> (u32, u32) {
    open_sql(data_dir)
        .query_row(
            "SELECT code_key_version, totp_key_version FROM accounts WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

/// Code, then TOTP (the caller ID is not the account's phone, so the code alone is not enough).
/// The test verifies several times within one 30-second TOTP step; a step is accepted once per
/// account (replay protection), so the record of the last accepted step is cleared first.
async fn verify_by_code_and_totp(
    server: &ServerProcess,
    data_dir: &Path,
    code: &str,
    secret: &[u8],
) {
    open_sql(data_dir)
        .execute("UPDATE accounts SET totp_last_step = NULL", [])
        .unwrap();
    let mut caller = Caller::new(server, "+48700100200");
    caller.dial().await;
    let ask = caller.press(&format!("{code}#")).await;
    assert!(
        ask.said().contains(ASK_TOTP),
        "{}\n{}",
        ask.said(),
        server.stderr.lock().unwrap().join("\n")
    );
    let menu = caller.press(&totp_now(secret)).await;
    assert!(menu.said().contains(MENU), "{}", menu.said());
}

#[tokio::test]
async fn rotating_while_serving_rekeys_on_use_and_retires_only_unused_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let secret = add_account(data, "ACC-K", CODE);
    // A second account whose code is never used during the test: it holds v1 until the end.
    let other_secret = add_account(data, "ACC-L", "975310");
    let call_code = {
        let store = Store::open(data).unwrap();
        let keys = Keyring::load(&data.join("callgate.key")).unwrap();
        store
            .write_sync(|db| {
                db.set_knowledge_answer(&keys, "ACC-K", "dob", "01021990")?;
                db.issue_call_code(&keys, "ACC-K", 30 * 60_000, now_ms())
            })
            .unwrap()
            .to_string()
    };

    let server = ServerProcess::start(data);
    server.wait_ready().await;
    verify_by_code_and_totp(&server, data, CODE, &secret).await;
    let status = cli_ok(data, &["keys", "status"]);
    assert!(
        status.contains(
            "v1 (current): 2 account code(s), 2 TOTP secret(s), 1 live call code(s), 1 knowledge answer(s)"
        ),
        "{status}"
    );

    // Rotate while the server answers calls.
    let endpoint = server.endpoint();
    let traffic = tokio::spawn(async move {
        // Callers who only listen to the greeting: no failures against the accounts.
        for _ in 0..20 {
            let mut c = Caller::new(&endpoint, "+48700999001");
            c.dial().await;
        }
    });
    let rotated = cli_ok(data, &["keys", "rotate"]);
    traffic.await.unwrap();
    assert!(rotated.contains("key version v2 added"), "{rotated}");
    assert!(
        rotated.contains("2 TOTP secret(s) re-encrypted under v2"),
        "{rotated}"
    );
    assert!(
        rotated.contains("4 code hash(es) still on older key versions"),
        "{rotated}"
    );
    assert_eq!(
        versions(data, "ACC-K"),
        (1, 2),
        "TOTP re-encrypted, code not yet"
    );

    // Nothing on v2 yet but the TOTP secrets: v1 cannot go.
    let refused = cli_err(data, &["keys", "retire", "v1"]);
    assert!(
        refused.contains(
            "still used by 2 account code(s), 1 live call code(s), 1 knowledge answer(s)"
        ),
        "{refused}"
    );
    let refused = cli_err(data, &["keys", "retire", "2"]);
    assert!(refused.contains("current key version"), "{refused}");

    // The running server took the new key without a restart: the TOTP secret (now under v2)
    // decrypts, and the account code (still under v1) is found and re-keyed.
    verify_by_code_and_totp(&server, data, CODE, &secret).await;
    assert_eq!(
        versions(data, "ACC-K"),
        (2, 2),
        "account code re-keyed on use"
    );
    assert!(
        server
            .stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("server keys loaded")),
        "the server logs that it read the rotated key file"
    );

    // The one-time call code, issued under v1, still works once.
    let mut caller = Caller::new(&server, "+48700100201");
    caller.dial().await;
    let after_code = caller.press(&format!("{call_code}#")).await;
    assert!(!after_code.said().is_empty());
    // The knowledge answer is re-keyed when it is next given right.
    {
        let store = Store::open(data).unwrap();
        let keys = Keyring::load(&data.join("callgate.key")).unwrap();
        let check = |answer: &str| {
            store
                .write_sync(|db| db.check_knowledge_answer(&keys, "ACC-K", "dob", answer))
                .unwrap()
        };
        assert!(!check("02021990"));
        assert!(check("01021990"));
        let v: u32 = open_sql(data)
            .query_row(
                "SELECT key_version FROM account_knowledge WHERE account_id = 'ACC-K'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, 2);
        assert!(check("01021990"));
    }
    let status = cli_ok(data, &["keys", "status"]);
    assert!(
        status.contains(
            "v1: 1 account code(s), 0 TOTP secret(s), 0 live call code(s), 0 knowledge answer(s)"
        ),
        "{status}"
    );
    let refused = cli_err(data, &["keys", "retire", "v1"]);
    assert!(
        refused.contains("still used by 1 account code(s)"),
        "{refused}"
    );

    // The last v1 user verifies: now v1 can be retired.
    verify_by_code_and_totp(&server, data, "975310", &other_secret).await;
    assert_eq!(versions(data, "ACC-L"), (2, 2));
    let status = cli_ok(data, &["keys", "status"]);
    assert!(status.contains("v1 (unused: can be retired)"), "{status}");
    let retired = cli_ok(data, &["keys", "retire", "v1"]);
    assert!(retired.contains("key version v1 removed"), "{retired}");
    let key_file = std::fs::read_to_string(data.join("callgate.key")).unwrap();
    assert!(
        !key_file.lines().any(|l| l.starts_with("v1 ")),
        "{key_file}"
    );

    // SIGHUP makes the server read it at once; calls keep verifying with v2 alone.
    let loads = |server: &ServerProcess| {
        let log = server.stderr.lock().unwrap();
        log.iter()
            .filter(|l| l.contains("server keys loaded"))
            .count()
    };
    let loaded_before = loads(&server);
    let pid = server.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    // The server logs each reading of the key file: wait (polling) for the one SIGHUP causes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while loads(&server) == loaded_before {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload the key file"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    verify_by_code_and_totp(&server, data, CODE, &secret).await;
    let status = cli_ok(data, &["keys", "status"]);
    assert!(!status.contains("v1"), "{status}");
    assert!(
        status.contains("v2 (current): 2 account code(s), 2 TOTP secret(s)"),
        "{status}"
    );
}

/// Runs `callgate serve` expecting it to refuse to start; returns what it said.
fn serve_refuses(data_dir: &Path) -> String {
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
        .env_remove("CALLGATE_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success());
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started with a bad key file");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    err
}

#[test]
fn a_wrong_or_damaged_key_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    add_account(data, "ACC-W", CODE);
    let key_path = data.join("callgate.key");
    let original = std::fs::read_to_string(&key_path).unwrap();

    // Damaged: which file, which line, what was expected.
    std::fs::write(&key_path, "v1 this-is-not-a-key\n").unwrap();
    let said = serve_refuses(data);
    assert!(
        said.contains("callgate.key:1: expected `v<N> <base64 of 32 bytes>`"),
        "{said}"
    );
    let said = cli_err(data, &["keys", "rotate"]);
    assert!(said.contains("callgate.key:1:"), "{said}");

    // Another installation's key: the database's secrets do not decrypt with it.
    std::fs::remove_file(&key_path).unwrap();
    let foreign = tempfile::tempdir().unwrap();
    Keyring::load_or_create(foreign.path()).unwrap();
    std::fs::copy(foreign.path().join("callgate.key"), &key_path).unwrap();
    let said = serve_refuses(data);
    assert!(said.contains("does not match the database"), "{said}");
    let said = cli_err(data, &["keys", "rotate"]);
    assert!(said.contains("does not match the database"), "{said}");
    assert_eq!(
        Keyring::load(&key_path).unwrap().versions(),
        vec![1],
        "no key was added to the wrong file"
    );

    // A key file missing the version the database uses.
    let text = original.replace("v1 ", "v3 ");
    std::fs::write(&key_path, text).unwrap();
    let said = serve_refuses(data);
    assert!(
        said.contains("lacks key version(s) the database uses: v1"),
        "{said}"
    );
    let said = cli_err(data, &["keys", "status"]);
    assert!(said.contains("v1"), "{said}");

    // The right file back: all is well.
    std::fs::write(&key_path, original).unwrap();
    let status = cli_ok(data, &["keys", "status"]);
    assert!(
        status.contains("v1 (current): 1 account code(s)"),
        "{status}"
    );
}
