//! The command-line contract of the `callgate` binary, checked by running the real binary against
//! a temporary data directory and looking at its exit status, its output and the SQLite database
//! it leaves behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A `callgate` command with a clean environment: no `CALLGATE_*` variable (nor `RUST_LOG`) from
/// the surrounding shell leaks into the test.
fn base_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callgate"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CALLGATE_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env_remove("RUST_LOG").stdin(Stdio::null());
    cmd
}

/// Runs `callgate --data-dir <dir> <args...>` with extra environment variables.
fn callgate_env(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = base_command();
    cmd.arg("--data-dir").arg(dir).args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("running the callgate binary")
}

/// Runs `callgate --data-dir <dir> <args...>`.
fn callgate(dir: &Path, args: &[&str]) -> Output {
    callgate_env(dir, args, &[])
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        stdout(out),
        stderr(out)
    )
}

/// Asserts success and returns stdout.
#[track_caller]
fn assert_ok(out: &Output) -> String {
    assert!(out.status.success(), "expected success\n{}", describe(out));
    stdout(out)
}

/// Asserts a non-zero exit whose stderr mentions `needle`.
#[track_caller]
fn assert_refused(out: &Output, needle: &str) {
    assert!(!out.status.success(), "expected failure\n{}", describe(out));
    assert_ne!(out.status.code(), Some(0), "{}", describe(out));
    assert!(
        stderr(out).contains(needle),
        "stderr should mention {needle:?}\n{}",
        describe(out)
    );
}

/// The last non-empty line of a command's stdout.
#[track_caller]
fn last_line(out: &Output) -> String {
    stdout(out)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("no output\n{}", describe(out)))
        .trim()
        .to_owned()
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join("callgate.db")
}

/// A read-only connection to the database the binary wrote.
fn open_db(dir: &Path) -> Connection {
    Connection::open_with_flags(db_path(dir), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("opening callgate.db read-only")
}

/// Rows in `table`; 0 when the database does not exist yet (nothing was written).
fn count(dir: &Path, table: &str) -> i64 {
    if !db_path(dir).exists() {
        return 0;
    }
    open_db(dir)
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .expect("counting rows")
}

/// Every byte of the database: the main file and, if present, its write-ahead log.
fn db_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(db_path(dir)).expect("reading callgate.db");
    let wal = dir.join("callgate.db-wal");
    if wal.exists() {
        bytes.extend(std::fs::read(wal).expect("reading callgate.db-wal"));
    }
    bytes
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that `secret` does not occur anywhere in the database files, and (as a control that
/// the scan sees the data at all) that `present` does.
#[track_caller]
fn assert_not_in_db(dir: &Path, secret: &str, present: &str) {
    let bytes = db_bytes(dir);
    assert!(
        contains_bytes(&bytes, present.as_bytes()),
        "control: {present:?} should be stored in plaintext, so the scan would find a secret too"
    );
    assert!(
        !contains_bytes(&bytes, secret.as_bytes()),
        "{secret:?} is stored in plaintext in the database"
    );
}

/// `account add` with the given id, name, phone and extra arguments.
fn add_account(dir: &Path, id: &str, phone: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "account",
        "add",
        "--id",
        id,
        "--name",
        "Jan Kowalski",
        "--phone",
        phone,
    ];
    args.extend_from_slice(extra);
    callgate(dir, &args)
}

/// `account show ID` parsed as JSON.
#[track_caller]
fn show(dir: &Path, id: &str) -> serde_json::Value {
    let out = callgate(dir, &["account", "show", id]);
    let text = assert_ok(&out);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("account show is not JSON ({e})\n{}", describe(&out)))
}

/// The `otpauth://` line of `account add --totp`, and the base32 secret in it.
#[track_caller]
fn totp_uri_and_secret(out: &Output, id: &str) -> (String, String) {
    let text = stdout(out);
    let prefix = format!("otpauth://totp/callgate:{id}?");
    let uri = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("otpauth://"))
        .unwrap_or_else(|| panic!("no otpauth:// line\n{}", describe(out)))
        .to_owned();
    assert!(
        uri.starts_with(&prefix),
        "{uri:?} should start with {prefix:?}"
    );
    let query = &uri[prefix.len()..];
    let secret = query
        .split('&')
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap_or_else(|| panic!("no secret= in {uri:?}"))
        .to_owned();
    (uri, secret)
}

// ---------------------------------------------------------------------------------------------
// account add: phone numbers
// ---------------------------------------------------------------------------------------------

#[test]
fn national_phone_is_read_in_the_default_region_pl() {
    let dir = tempfile::tempdir().unwrap();
    let out = add_account(dir.path(), "ACC-1001", "601 555 777", &[]);
    let text = assert_ok(&out);
    assert!(text.contains("ACC-1001"), "{}", describe(&out));

    let account = show(dir.path(), "ACC-1001");
    assert_eq!(account["phone"], "+48601555777");
    assert_eq!(account["id"], "ACC-1001");
    assert_eq!(account["name"], "Jan Kowalski");

    let list = assert_ok(&callgate(dir.path(), &["account", "list"]));
    let line = list
        .lines()
        .find(|l| l.starts_with("ACC-1001"))
        .unwrap_or_else(|| panic!("ACC-1001 not listed:\n{list}"));
    assert!(line.contains("+48601555777"), "{line}");

    let stored: String = open_db(dir.path())
        .query_row(
            "SELECT phone FROM accounts WHERE id = 'ACC-1001'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, "+48601555777");
}

#[test]
fn international_formats_normalise_to_the_same_e164() {
    let dir = tempfile::tempdir().unwrap();
    for (id, phone) in [
        ("A1", "+48 601-555-777"),
        ("A2", "0048601555777"),
        ("A3", "+48601555777"),
    ] {
        assert_ok(&add_account(dir.path(), id, phone, &[]));
        assert_eq!(show(dir.path(), id)["phone"], "+48601555777", "{phone:?}");
    }
}

#[test]
fn region_flag_and_env_change_how_national_numbers_are_read() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&callgate(
        dir.path(),
        &[
            "--region",
            "US",
            "account",
            "add",
            "--id",
            "US-1",
            "--name",
            "Jane Roe",
            "--phone",
            "(415) 867-5309",
        ],
    ));
    assert_eq!(show(dir.path(), "US-1")["phone"], "+14158675309");

    assert_ok(&callgate_env(
        dir.path(),
        &[
            "account",
            "add",
            "--id",
            "US-2",
            "--name",
            "John Roe",
            "--phone",
            "(212) 555-0123",
        ],
        &[("CALLGATE_DEFAULT_REGION", "us")],
    ));
    let phone = show(dir.path(), "US-2")["phone"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(phone.starts_with("+1212"), "{phone}");

    // A number with a country code keeps it whatever the region.
    assert_ok(&callgate(
        dir.path(),
        &[
            "--region",
            "US",
            "account",
            "add",
            "--id",
            "PL-1",
            "--name",
            "Jan",
            "--phone",
            "+48 601 555 777",
        ],
    ));
    assert_eq!(show(dir.path(), "PL-1")["phone"], "+48601555777");

    let out = callgate(dir.path(), &["--region", "XX", "account", "list"]);
    assert_refused(&out, "XX");
}

#[test]
fn malformed_phone_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&add_account(dir.path(), "ACC-1", "601 555 777", &[]));
    assert_eq!(count(dir.path(), "accounts"), 1);

    for bad in [
        "12",
        "abc",
        "+48 1",
        "+999123456789",
        "601 555 777 888 999 000",
        "",
    ] {
        let out = add_account(dir.path(), "ACC-BAD", bad, &[]);
        assert_refused(&out, "is not a valid phone number");
        assert_eq!(
            count(dir.path(), "accounts"),
            1,
            "phone {bad:?} wrote a row"
        );
    }
    assert_refused(
        &callgate(dir.path(), &["account", "show", "ACC-BAD"]),
        "no account with id ACC-BAD",
    );
}

// ---------------------------------------------------------------------------------------------
// account add: codes, ids, attributes
// ---------------------------------------------------------------------------------------------

#[test]
fn account_code_must_be_6_to_12_ascii_digits() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&add_account(dir.path(), "ACC-1", "601 555 777", &[]));

    for bad in [
        "12345",
        "1234567890123",
        "12345a",
        "12 3456",
        "-123456",
        "１２３４５６",
    ] {
        // `--code=VALUE`, so that a value starting with '-' reaches the program, not clap.
        let arg = format!("--code={bad}");
        let out = add_account(dir.path(), "ACC-BAD", "601 555 778", &[&arg]);
        assert_refused(&out, "account code must be 6 to 12 digits");
        assert!(
            !stderr(&out).contains(bad),
            "the refused code is echoed on stderr: {}",
            stderr(&out)
        );
        assert_eq!(count(dir.path(), "accounts"), 1, "code {bad:?} wrote a row");
    }

    // The bounds themselves are accepted.
    assert_ok(&add_account(
        dir.path(),
        "ACC-6",
        "601 555 779",
        &["--code", "739146"],
    ));
    assert_ok(&add_account(
        dir.path(),
        "ACC-12",
        "601 555 780",
        &["--code", "739146281357"],
    ));
    assert_eq!(count(dir.path(), "accounts"), 3);
    assert_eq!(show(dir.path(), "ACC-6")["has_code"], true);
    assert_eq!(show(dir.path(), "ACC-1")["has_code"], false);
}

#[test]
fn duplicate_account_code_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&add_account(
        dir.path(),
        "ACC-1",
        "601 555 777",
        &["--code", "73914628"],
    ));

    let out = add_account(dir.path(), "ACC-2", "601 555 778", &["--code", "73914628"]);
    assert_refused(&out, "already in use");
    assert!(!stderr(&out).contains("73914628"), "{}", describe(&out));
    assert_eq!(count(dir.path(), "accounts"), 1);
    assert_refused(
        &callgate(dir.path(), &["account", "show", "ACC-2"]),
        "no account with id ACC-2",
    );

    // A different code for the same second account is fine.
    assert_ok(&add_account(
        dir.path(),
        "ACC-2",
        "601 555 778",
        &["--code", "73914629"],
    ));
    assert_eq!(count(dir.path(), "accounts"), 2);
}

#[test]
fn duplicate_account_id_is_refused_and_the_first_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&add_account(
        dir.path(),
        "ACC-1",
        "601 555 777",
        &["--code", "73914628"],
    ));

    let out = callgate(
        dir.path(),
        &[
            "account",
            "add",
            "--id",
            "ACC-1",
            "--name",
            "Someone Else",
            "--phone",
            "602 345 678",
            "--code",
            "51862947",
        ],
    );
    assert_refused(&out, "already exists");
    assert_eq!(count(dir.path(), "accounts"), 1);
    let account = show(dir.path(), "ACC-1");
    assert_eq!(account["name"], "Jan Kowalski");
    assert_eq!(account["phone"], "+48601555777");

    // The refused account's code was not reserved: it can be used by another account.
    assert_ok(&add_account(
        dir.path(),
        "ACC-2",
        "602 345 678",
        &["--code", "51862947"],
    ));
}

#[test]
fn malformed_id_name_or_attribute_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&add_account(dir.path(), "ACC-1", "601 555 777", &[]));

    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "account",
                "add",
                "--id",
                "a:b",
                "--name",
                "X",
                "--phone",
                "601555778",
            ],
            "account id",
        ),
        (
            &[
                "account",
                "add",
                "--id=-x",
                "--name",
                "X",
                "--phone",
                "601555778",
            ],
            "account id",
        ),
        (
            &[
                "account",
                "add",
                "--id",
                "ACC-2",
                "--name",
                "   ",
                "--phone",
                "601555778",
            ],
            "account name",
        ),
        (
            &[
                "account",
                "add",
                "--id",
                "ACC-2",
                "--name",
                "X",
                "--phone",
                "601555778",
                "--attr",
                "plan",
            ],
            "KEY=VALUE",
        ),
        (
            &[
                "account",
                "add",
                "--id",
                "ACC-2",
                "--name",
                "X",
                "--phone",
                "601555778",
                "--attr",
                "b@d=1",
            ],
            "attribute key",
        ),
    ];
    for (args, needle) in cases {
        assert_refused(&callgate(dir.path(), args), needle);
        assert_eq!(count(dir.path(), "accounts"), 1, "{args:?} wrote a row");
    }
}

/// Drift fixed by issue 12: a knowledge question must be one a script can ask (the checker's
/// identifier rule), from the CLI as from the API; the answer is never echoed.
#[test]
fn a_knowledge_question_no_script_can_ask_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for question in ["1dob", "-dob", "Dob"] {
        let arg = format!("--knowledge={question}=14031985");
        let out = add_account(dir.path(), "ACC-Q1", "601 555 778", &[&arg]);
        assert_refused(&out, &format!("knowledge question {question:?}"));
        assert!(!stderr(&out).contains("14031985"), "{}", describe(&out));
        assert_eq!(count(dir.path(), "accounts"), 0, "{question} wrote a row");
    }
    let out = add_account(
        dir.path(),
        "ACC-Q1",
        "601 555 778",
        &["--knowledge", "dob=1403x985"],
    );
    assert_refused(&out, "the answer must be 1-20 digits");
    assert!(!stderr(&out).contains("1403x985"), "{}", describe(&out));
    assert_ok(&add_account(
        dir.path(),
        "ACC-Q1",
        "601 555 778",
        &["--knowledge", "dob=14031985"],
    ));
    assert_eq!(count(dir.path(), "account_knowledge"), 1);
}

/// Drift fixed by issue 12: the CLI's changes went unaudited (the API audited its own). Every
/// change now writes the same entry whichever entry point made it, naming the operator.
#[test]
fn every_cli_change_is_in_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        assert_ok(&callgate_env(dir.path(), args, &[("USER", "olga")]));
    };
    run(&[
        "account",
        "add",
        "--id",
        "ACC-1",
        "--name",
        "Jan",
        "--phone",
        "601 555 777",
        "--code",
        "73914628",
    ]);
    run(&["account", "set-phone", "ACC-1", "601 555 778"]);
    run(&["account", "call-code", "ACC-1"]);
    run(&["account", "unlock", "ACC-1"]);
    run(&["account", "visible-attributes", "plan"]);
    run(&["user", "add", "alice", "--role", "agent"]);
    run(&["account", "remove", "ACC-1"]);
    run(&[
        "account",
        "add",
        "--id",
        "ACC-2",
        "--name",
        "Ewa",
        "--phone",
        "601 555 779",
    ]);
    run(&["account", "forget", "ACC-2", "--yes"]);
    run(&["keys", "rotate"]);
    run(&["keys", "retire", "v1"]);

    let conn = open_db(dir.path());
    let mut stmt = conn
        .prepare("SELECT actor, action, subject, detail FROM audit_log ORDER BY seq")
        .unwrap();
    let trail: Vec<(String, String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let entries: Vec<(&str, &str, &str)> = trail
        .iter()
        .map(|(actor, action, subject, _)| (actor.as_str(), action.as_str(), subject.as_str()))
        .collect();
    assert_eq!(
        entries,
        [
            ("cli:olga", "account.add", "account:ACC-1"),
            ("cli:olga", "account.set_phone", "account:ACC-1"),
            ("cli:olga", "account.call_code", "account:ACC-1"),
            ("cli:olga", "account.unlock", "account:ACC-1"),
            ("cli:olga", "visible_attributes.set", "settings"),
            ("cli:olga", "user.add", "user:alice"),
            ("cli:olga", "account.remove", "account:ACC-1"),
            ("cli:olga", "account.add", "account:ACC-2"),
            ("cli:olga", "account.forget", "account:forgotten"),
            ("cli:olga", "keys.rotate", "keys"),
            ("cli:olga", "keys.retire", "keys"),
        ]
    );
    // No personal value or secret in any entry.
    let text = format!("{trail:?}");
    for secret in [
        "73914628",
        "601555777",
        "601555778",
        "601555779",
        "Jan",
        "Ewa",
        "cg_",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let verified = assert_ok(&callgate(dir.path(), &["audit", "verify"]));
    assert!(verified.contains("audit trail intact"), "{verified}");
}

// ---------------------------------------------------------------------------------------------
// account add --totp, secrets at rest, key file
// ---------------------------------------------------------------------------------------------

#[test]
fn totp_prints_an_otpauth_uri_with_a_160_bit_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = add_account(dir.path(), "ACC-1001", "601 555 777", &["--totp"]);
    assert_ok(&out);
    let (uri, secret) = totp_uri_and_secret(&out, "ACC-1001");
    assert_eq!(
        secret.len(),
        32,
        "a 160-bit secret is 32 base32 characters: {uri}"
    );
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
        "not base32: {secret}"
    );
    assert!(uri.contains("issuer=callgate"), "{uri}");

    let account = show(dir.path(), "ACC-1001");
    assert_eq!(account["has_totp"], true);
    assert_eq!(account["has_code"], false);

    // Each account gets a fresh secret.
    let other = add_account(dir.path(), "ACC-1002", "601 555 778", &["--totp"]);
    assert_ok(&other);
    let (_, other_secret) = totp_uri_and_secret(&other, "ACC-1002");
    assert_ne!(secret, other_secret);

    // Without --totp nothing is printed.
    let plain = add_account(dir.path(), "ACC-1003", "601 555 779", &[]);
    assert!(
        !assert_ok(&plain).contains("otpauth://"),
        "{}",
        describe(&plain)
    );
    assert_eq!(show(dir.path(), "ACC-1003")["has_totp"], false);
}

#[test]
fn account_code_and_totp_secret_are_not_stored_or_shown_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let code = "73914628";
    let out = add_account(
        dir.path(),
        "ACC-7391",
        "601 555 777",
        &["--code", code, "--totp", "--attr", "plan=premium"],
    );
    assert_ok(&out);
    assert!(
        !stdout(&out).contains(code),
        "add echoes the account code\n{}",
        describe(&out)
    );
    let (_, secret) = totp_uri_and_secret(&out, "ACC-7391");

    assert_not_in_db(dir.path(), code, "+48601555777");
    assert_not_in_db(dir.path(), &secret, "+48601555777");
    assert_not_in_db(dir.path(), &secret.to_ascii_lowercase(), "+48601555777");

    // The stored values are a 32-byte keyed hash and a sealed blob, not the plaintext.
    let (hash, sealed): (Vec<u8>, Vec<u8>) = open_db(dir.path())
        .query_row(
            "SELECT code_hash, totp_secret FROM accounts WHERE id = 'ACC-7391'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(hash.len(), 32);
    assert_ne!(
        hash,
        Sha256::digest(code.as_bytes()).to_vec(),
        "an unkeyed hash of a short code is guessable"
    );
    assert!(
        sealed.len() >= 12 + 20 + 16,
        "nonce + 20-byte secret + tag, got {} bytes",
        sealed.len()
    );

    for args in [
        &["account", "show", "ACC-7391"][..],
        &["account", "list"][..],
    ] {
        let text = assert_ok(&callgate(dir.path(), args));
        assert!(
            !text.contains(code),
            "{args:?} shows the account code:\n{text}"
        );
        assert!(
            !text.contains(&secret),
            "{args:?} shows the TOTP secret:\n{text}"
        );
    }
    let account = show(dir.path(), "ACC-7391");
    assert_eq!(account["has_code"], true);
    assert_eq!(account["has_totp"], true);
    assert_eq!(account["attributes"]["plan"], "premium");
}

#[cfg(unix)]
#[test]
fn key_file_is_created_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("callgate.key");
    assert!(!key.exists());
    assert_ok(&add_account(
        dir.path(),
        "ACC-1",
        "601 555 777",
        &["--code", "73914628"],
    ));
    let meta = std::fs::metadata(&key).expect("callgate.key should exist after account add");
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "mode {:o}",
        meta.permissions().mode()
    );

    // The key is kept across commands (a new key would orphan every stored hash).
    let before = std::fs::read(&key).unwrap();
    assert_ok(&callgate(dir.path(), &["account", "call-code", "ACC-1"]));
    assert_eq!(std::fs::read(&key).unwrap(), before);
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

// ---------------------------------------------------------------------------------------------
// account call-code
// ---------------------------------------------------------------------------------------------

#[test]
fn call_code_is_eight_digits_on_the_last_line_fresh_each_time_and_hashed() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&add_account(dir.path(), "ACC-1", "601 555 777", &[]));

    let first = callgate(dir.path(), &["account", "call-code", "ACC-1"]);
    assert_ok(&first);
    let a = last_line(&first);
    let second = callgate(dir.path(), &["account", "call-code", "ACC-1"]);
    assert_ok(&second);
    let b = last_line(&second);

    for code in [&a, &b] {
        assert_eq!(code.len(), 8, "{code:?}");
        assert!(code.bytes().all(|c| c.is_ascii_digit()), "{code:?}");
    }
    assert_ne!(a, b, "two call codes in a row must differ");
    assert_eq!(count(dir.path(), "call_codes"), 2);

    assert_not_in_db(dir.path(), &a, "+48601555777");
    assert_not_in_db(dir.path(), &b, "+48601555777");

    let conn = open_db(dir.path());
    let mut stmt = conn
        .prepare("SELECT account_id, code_hash, used_at FROM call_codes")
        .unwrap();
    let rows: Vec<(String, Vec<u8>, Option<i64>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (account, hash, used) in rows {
        assert_eq!(account, "ACC-1");
        assert_eq!(hash.len(), 32);
        assert_eq!(used, None);
    }
}

#[test]
fn call_code_ttl_is_stored_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&add_account(dir.path(), "ACC-1", "601 555 777", &[]));

    assert_ok(&callgate(
        dir.path(),
        &["account", "call-code", "ACC-1", "--ttl", "5"],
    ));
    let (created, expires): (i64, i64) = open_db(dir.path())
        .query_row("SELECT created_at, expires_at FROM call_codes", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(expires - created, 5 * 60_000);

    for bad in ["0", "1441"] {
        let out = callgate(dir.path(), &["account", "call-code", "ACC-1", "--ttl", bad]);
        assert_refused(&out, "--ttl");
        assert_eq!(
            count(dir.path(), "call_codes"),
            1,
            "--ttl {bad} issued a code"
        );
    }
}

#[test]
fn call_code_for_an_unknown_account_fails() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&add_account(dir.path(), "ACC-1", "601 555 777", &[]));
    let out = callgate(dir.path(), &["account", "call-code", "NOPE"]);
    assert_refused(&out, "no account with id NOPE");
    assert!(
        !stdout(&out)
            .lines()
            .any(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit())),
        "a code was printed for an unknown account\n{}",
        describe(&out)
    );
    assert_eq!(count(dir.path(), "call_codes"), 0);
}

#[test]
fn an_account_code_equal_to_a_live_call_code_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&add_account(dir.path(), "ACC-1", "601 555 777", &[]));
    let issued = callgate(dir.path(), &["account", "call-code", "ACC-1"]);
    assert_ok(&issued);
    let code = last_line(&issued);

    let out = add_account(dir.path(), "ACC-2", "601 555 778", &["--code", &code]);
    assert_refused(&out, "already in use");
    assert_eq!(count(dir.path(), "accounts"), 1);
}

// ---------------------------------------------------------------------------------------------
// account list / show / remove
// ---------------------------------------------------------------------------------------------

#[test]
fn list_show_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let empty = assert_ok(&callgate(dir.path(), &["account", "list"]));
    assert!(empty.contains("no accounts"), "{empty}");

    assert_ok(&add_account(
        dir.path(),
        "ACC-1",
        "601 555 777",
        &[
            "--code",
            "73914628",
            "--attr",
            "plan=premium",
            "--attr",
            "device=router-x2",
        ],
    ));
    assert_ok(&callgate(
        dir.path(),
        &[
            "account",
            "add",
            "--id",
            "ACC-2",
            "--name",
            "Anna Nowak",
            "--phone",
            "602 345 678",
            "--totp",
        ],
    ));

    let list = assert_ok(&callgate(dir.path(), &["account", "list"]));
    let lines: Vec<&str> = list.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].starts_with("ACC-1 ") && lines[0].contains("+48601555777"),
        "{list}"
    );
    assert!(
        lines[0].contains("code:yes") && lines[0].contains("totp:no"),
        "{list}"
    );
    assert!(
        lines[1].starts_with("ACC-2 ") && lines[1].contains("+48602345678"),
        "{list}"
    );
    assert!(
        lines[1].contains("code:no") && lines[1].contains("totp:yes"),
        "{list}"
    );
    assert!(lines[1].contains("Anna Nowak"), "{list}");

    let account = show(dir.path(), "ACC-1");
    assert_eq!(account["attributes"]["plan"], "premium");
    assert_eq!(account["attributes"]["device"], "router-x2");
    assert_eq!(account["failed_attempts"], 0);
    assert!(account["locked_until"].is_null());
    assert!(
        account["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{account}"
    );
    let raw = assert_ok(&callgate(dir.path(), &["account", "show", "ACC-1"]));
    assert!(!raw.contains("73914628"), "{raw}");
    assert!(
        !raw.contains("code_hash") && !raw.contains("totp_secret"),
        "{raw}"
    );

    // Removing takes the account's call codes with it.
    assert_ok(&callgate(dir.path(), &["account", "call-code", "ACC-1"]));
    assert_eq!(count(dir.path(), "call_codes"), 1);
    assert_ok(&callgate(dir.path(), &["account", "remove", "ACC-1"]));
    assert_refused(
        &callgate(dir.path(), &["account", "show", "ACC-1"]),
        "no account with id ACC-1",
    );
    assert_eq!(count(dir.path(), "accounts"), 1);
    assert_eq!(count(dir.path(), "call_codes"), 0);

    assert_refused(
        &callgate(dir.path(), &["account", "remove", "ACC-1"]),
        "no account with id ACC-1",
    );
    assert_refused(
        &callgate(dir.path(), &["account", "remove", "NEVER"]),
        "no account with id NEVER",
    );
    assert_eq!(count(dir.path(), "accounts"), 1);

    let list = assert_ok(&callgate(dir.path(), &["account", "list"]));
    assert!(!list.contains("ACC-1 ") && list.contains("ACC-2"), "{list}");

    // The removed account's code is free again.
    assert_ok(&add_account(
        dir.path(),
        "ACC-3",
        "601 555 779",
        &["--code", "73914628"],
    ));
}

#[test]
fn show_of_an_unknown_account_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = callgate(dir.path(), &["account", "show", "NOPE"]);
    assert_refused(&out, "no account with id NOPE");
    assert!(stdout(&out).trim().is_empty(), "{}", describe(&out));
}

#[test]
fn data_dir_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join("data");
    let out = base_command()
        .env("CALLGATE_DATA_DIR", &data)
        .args([
            "account",
            "add",
            "--id",
            "ENV-1",
            "--name",
            "Env",
            "--phone",
            "601 555 777",
        ])
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(
        db_path(&data).exists(),
        "callgate.db not created under CALLGATE_DATA_DIR"
    );
    assert_eq!(count(&data, "accounts"), 1);
    assert_eq!(show(&data, "ENV-1")["phone"], "+48601555777");
}

// ---------------------------------------------------------------------------------------------
// user add
// ---------------------------------------------------------------------------------------------

#[test]
fn user_add_prints_a_token_stored_only_as_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let agent = callgate(dir.path(), &["user", "add", "alice", "--role", "agent"]);
    assert_ok(&agent);
    let token = last_line(&agent);
    assert!(token.starts_with("cg_"), "{}", describe(&agent));
    assert_eq!(token.len(), 3 + 43, "cg_ + 256 bits in base64url: {token}");

    let admin = callgate(dir.path(), &["user", "add", "bob", "--role", "admin"]);
    assert_ok(&admin);
    let admin_token = last_line(&admin);
    assert!(admin_token.starts_with("cg_"), "{}", describe(&admin));
    assert_ne!(token, admin_token);

    assert_not_in_db(dir.path(), &token, "alice");
    assert_not_in_db(dir.path(), &admin_token, "bob");
    // Not even without its prefix.
    assert_not_in_db(dir.path(), &token[3..], "alice");

    let conn = open_db(dir.path());
    let (role, hash): (String, Vec<u8>) = conn
        .query_row(
            "SELECT role, token_hash FROM users WHERE name = 'alice'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(role, "agent");
    assert_eq!(hash, Sha256::digest(token.as_bytes()).to_vec());
    let role: String = conn
        .query_row("SELECT role FROM users WHERE name = 'bob'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(role, "admin");
}

#[test]
fn user_add_refuses_a_duplicate_name() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&callgate(
        dir.path(),
        &["user", "add", "alice", "--role", "agent"],
    ));
    let out = callgate(dir.path(), &["user", "add", "alice", "--role", "admin"]);
    assert_refused(&out, "already exists");
    assert!(
        !stdout(&out).contains("cg_"),
        "a token was printed for a refused user\n{}",
        describe(&out)
    );
    assert_eq!(count(dir.path(), "users"), 1);
    let role: String = open_db(dir.path())
        .query_row("SELECT role FROM users WHERE name = 'alice'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(role, "agent");
}

#[test]
fn user_add_refuses_a_bad_role_or_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = callgate(dir.path(), &["user", "add", "mallory", "--role", "root"]);
    assert_refused(&out, "root");
    assert!(!stdout(&out).contains("cg_"), "{}", describe(&out));
    assert_eq!(count(dir.path(), "users"), 0);

    assert_refused(&callgate(dir.path(), &["user", "add", "mallory"]), "--role");
    assert_refused(
        &callgate(dir.path(), &["user", "add", "   ", "--role", "agent"]),
        "user name",
    );
    let long = "x".repeat(65);
    assert_refused(
        &callgate(dir.path(), &["user", "add", &long, "--role", "agent"]),
        "user name",
    );
    assert_eq!(count(dir.path(), "users"), 0);
}

// ---------------------------------------------------------------------------------------------
// serve
// ---------------------------------------------------------------------------------------------

/// Runs `callgate serve` and waits up to 20 s for it to exit; a server still running then is
/// killed and the test fails.
fn serve_expecting_exit(dir: &Path, extra_env: &[(&str, &str)]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = base_command();
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--scripts"])
        .arg(root.join("ivr-scripts"))
        .arg("--sounds")
        .arg(root.join("sounds"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawning callgate serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().expect("polling callgate serve").is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child
                .wait_with_output()
                .expect("collecting callgate serve output");
            panic!(
                "callgate serve was still running after 20 s\n{}",
                describe(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child
        .wait_with_output()
        .expect("collecting callgate serve output")
}

#[test]
fn serve_refuses_to_start_without_a_twilio_auth_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = serve_expecting_exit(dir.path(), &[]);
    assert_refused(&out, "CALLGATE_TWILIO_AUTH_TOKEN");
    assert!(
        stderr(&out).contains("--insecure-skip-signature"),
        "{}",
        describe(&out)
    );
}

#[test]
fn serve_refuses_to_start_with_a_blank_twilio_auth_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = serve_expecting_exit(dir.path(), &[("CALLGATE_TWILIO_AUTH_TOKEN", " , ")]);
    assert_refused(&out, "CALLGATE_TWILIO_AUTH_TOKEN");
}

#[test]
fn database_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = callgate(
        &data,
        &[
            "account",
            "add",
            "--id",
            "ACC-1",
            "--name",
            "Jan",
            "--phone",
            "601 555 777",
        ],
    );
    assert!(out.status.success());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "data directory");
    for name in [
        "callgate.db",
        "callgate.db-wal",
        "callgate.db-shm",
        "callgate.key",
    ] {
        let file = data.join(name);
        if file.exists() {
            assert_eq!(mode(&file), 0o600, "{name}");
        }
    }
    assert!(data.join("callgate.db").exists());
}
