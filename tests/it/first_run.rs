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
