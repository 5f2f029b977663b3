//! The README's first experience: `callgate serve --demo`, then `callgate call` against it.

use std::process::Command;

use crate::common::process::ServerProcess;
use crate::common::*;

fn after<'a>(line: &'a str, marker: &str) -> &'a str {
    line.split(marker)
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
}

#[tokio::test]
async fn demo_server_and_softphone_make_a_complete_first_call() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // No --public-url: it defaults to http://<listen>, which is what the softphone calls.
    let server = ServerProcess::start_with(&data, &["--demo"]);
    server.wait_ready().await;
    let code_line = server
        .printed("account DEMO-1001")
        .expect("demo account printed");
    let code = after(&code_line, " code ").to_owned();
    let token_line = server.printed("agent token:").expect("agent token printed");
    let token = after(&token_line, "agent token: ").to_owned();
    let call_code_line = server.printed("one-time call code for DEMO-1001").unwrap();
    let call_code = call_code_line.rsplit(' ').next().unwrap().to_owned();
    assert!(
        server
            .printed("  TOTP: otpauth://totp/callgate:DEMO-1002?")
            .is_some()
    );

    let softphone = |from: &str, keys: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_callgate"))
            .args([
                "call",
                "--url",
                &server.addr,
                "--from",
                from,
                "--keys",
                keys,
            ])
            .env("CALLGATE_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
            .env("CALLGATE_AGENT_TOKEN", &token)
            .env_remove("CALLGATE_PUBLIC_URL")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };

    let out = softphone("+48601234567", &format!("{code}#,1"));
    assert!(
        out.contains("handed off: enqueued to queue billing"),
        "{out}"
    );
    assert!(out.contains("\"level\": \"medium\""), "{out}");
    assert!(out.contains("\"name\": \"Jan Kowalski\""), "{out}");

    let out = softphone("+48799000000", &format!("{call_code}#,3"));
    assert!(
        out.contains("\"factors\": [\n    \"call_code\"\n  ]"),
        "{out}"
    );

    // End of input at a prompt hangs up; the call is recorded as ended by the caller.
    let out = softphone("+48799000001", "");
    assert!(
        out.contains("(silence)") || out.contains("hung up"),
        "{out}"
    );
    assert!(!out.contains("handed off"), "{out}");
}

/// Issue 12: a clean first start logged `ERROR r2d2: database is locked` (the pool's connections
/// raced to switch the new file to WAL). A first start logs no ERROR; a few fresh starts give a
/// race more than one chance to show.
#[tokio::test]
async fn a_first_start_logs_no_error() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let server = ServerProcess::start_with(&dir.path().join("data"), &["--demo"]);
        server.wait_ready().await;
        let logged = server.stderr.lock().unwrap().join("\n");
        assert!(logged.contains("callgate serving"), "{logged}");
        assert!(!logged.contains("ERROR"), "{logged}");
    }
}

/// Issue 12: the demo's hint said `callgate call`, which someone who ran `cargo run` does not
/// have. The printed command now works when pasted into a shell as it is (the reader's second
/// terminal has the Twilio token, as the hint says).
#[tokio::test]
async fn the_demo_hint_is_a_command_that_works_when_pasted() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with(&dir.path().join("data"), &["--demo"]);
    server.wait_ready().await;
    let hint = server
        .printed("  CALLGATE_AGENT_TOKEN=")
        .expect("the call command printed");
    assert!(hint.contains(" call --url "), "{hint}");
    let code_line = server.printed("account DEMO-1001").unwrap();
    let code = after(&code_line, " code ").to_owned();
    // Pasted in another directory, with nothing of this test's environment but the token.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{} --keys '{code}#,1'", hint.trim()))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CALLGATE_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{hint}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("handed off: enqueued to queue billing"),
        "{stdout}"
    );
    assert!(stdout.contains("\"name\": \"Jan Kowalski\""), "{stdout}");
}
