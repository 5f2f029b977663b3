//! Holes found by the hostile review (issue 11): each test is named after its hole and failed on
//! the main it was written against.

#[allow(unused_imports)]
use super::*;

use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// How long an answer that must come "at once" may take on a loaded test machine.
const PROMPTLY: Duration = Duration::from_secs(5);

/// A connection from `from` that announces a 60000-byte webhook body, sends one byte of it and
/// stalls: the slow-body flood of hole 3.
async fn stalled_body(app: &TestApp, from: IpAddr) -> TcpStream {
    let host = app.addr.trim_start_matches("http://");
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let mut stream = socket.connect(host.parse().unwrap()).await.unwrap();
    let head = format!(
        "POST /twilio/voice HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\nC"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Whatever the server sends on `stream` until it closes it (bounded by `PROMPTLY`).
async fn answer_of(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    match tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut got)).await {
        Ok(_) => String::from_utf8_lossy(&got).into_owned(),
        Err(_) => panic!(
            "no answer within {PROMPTLY:?}; received so far: {:?}",
            String::from_utf8_lossy(&got)
        ),
    }
}

/// True while the server has sent nothing on `stream` and not closed it.
fn unanswered(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(stream.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn hole3_slow_bodies_hold_no_in_flight_place_and_webhooks_still_answer() {
    let app = TestApp::spawn_with(|s| {
        s.max_in_flight = 8;
        // Long enough that the flood is surely still open while the calls below are answered.
        s.body_read_timeout = Duration::from_secs(10);
    })
    .await;
    let mut flood = Vec::new();
    for _ in 0..30 {
        flood.push(stalled_body(&app, LOCALHOST).await);
    }
    for _ in 0..5 {
        let doc = tokio::time::timeout(PROMPTLY, Caller::new(&app, PHONE).dial())
            .await
            .expect("a signed webhook is answered promptly during a slow-body flood");
        assert!(doc.gather().is_some(), "{}", doc.xml);
    }
    // The calls were answered while every slow body was still being waited for.
    assert!(
        flood.iter().all(unanswered),
        "the flood was still open while the calls were answered"
    );
}

#[tokio::test]
async fn hole3_a_body_slower_than_the_deadline_gets_408_and_the_connection_closes() {
    let app = TestApp::spawn_with(|s| s.body_read_timeout = Duration::from_millis(300)).await;
    let mut slow = stalled_body(&app, LOCALHOST).await;
    let answer = answer_of(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // And the server is as responsive as before.
    Caller::new(&app, PHONE).dial().await;
}

#[tokio::test]
async fn hole3_one_address_cannot_hold_more_than_its_share_of_body_reads() {
    let app = TestApp::spawn_with(|s| {
        s.max_body_reads_per_address = 4;
        s.body_read_timeout = Duration::from_secs(10);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(stalled_body(&app, LOCALHOST).await);
    }
    // The fifth from the same address is refused at once, not after the deadline.
    let mut fifth = stalled_body(&app, LOCALHOST).await;
    let answer = answer_of(&mut fifth).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    // Another address (as Twilio's many are) is not touched by this one's cap.
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    let endpoint = Endpoint {
        addr: app.addr.clone(),
        http: reqwest::Client::builder()
            .local_address(other)
            .build()
            .unwrap(),
    };
    let doc = tokio::time::timeout(PROMPTLY, Caller::new(&endpoint, PHONE).dial())
        .await
        .expect("a webhook from another address is answered");
    assert!(doc.gather().is_some(), "{}", doc.xml);
    assert!(held.iter().all(unanswered));
}

/// A minimal valid PCM WAV: 8 kHz mono 16-bit, `samples` samples of silence.
fn wav(samples: u32) -> Vec<u8> {
    let data_len = samples * 2;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.resize(out.len() + data_len as usize, 0);
    out
}

#[tokio::test]
async fn hole7_sounds_serves_only_the_indexed_audio_files() {
    let sounds = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let pl = sounds.path().join("pl-PL");
    std::fs::create_dir_all(&pl).unwrap();
    let greeting = wav(800);
    std::fs::write(pl.join("greeting.wav"), &greeting).unwrap();
    std::fs::write(
        pl.join("evil.html"),
        b"<html><script>alert(document.cookie)</script></html>",
    )
    .unwrap();
    std::fs::write(pl.join("README.md"), b"# notes").unwrap();
    std::fs::write(sounds.path().join("README.md"), b"# notes").unwrap();
    // Files outside the directory, reached through symlinks named like recordings.
    std::fs::write(outside.path().join("secret.wav"), b"RIFF secret outside").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.wav"), pl.join("leak.wav")).unwrap();
    std::fs::create_dir_all(outside.path().join("lang")).unwrap();
    std::fs::write(outside.path().join("lang/x.wav"), b"RIFF other outside").unwrap();
    std::os::unix::fs::symlink(outside.path().join("lang"), sounds.path().join("en-US")).unwrap();
    let dir = sounds.path().to_owned();
    let app = TestApp::spawn_with(move |s| s.sounds_dir = dir).await;

    let url = |path: &str| format!("{}/sounds/{path}", app.addr);
    let r = app
        .http
        .get(url("pl-PL/greeting.wav"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type == "audio/wav" || content_type == "audio/x-wav",
        "{content_type}"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.bytes().await.unwrap().as_ref(), greeting.as_slice());
    // What Twilio may ask besides a plain GET: HEAD, and a range.
    let r = app
        .http
        .head(url("pl-PL/greeting.wav"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"].to_str().unwrap(),
        greeting.len().to_string()
    );
    let r = app
        .http
        .get(url("pl-PL/greeting.wav"))
        .header("Range", "bytes=0-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"RIFF");

    for path in [
        "pl-PL/evil.html",
        "pl-PL/README.md",
        "README.md",
        "pl-PL/leak.wav",
        "en-US/x.wav",
        "pl-PL/",
        "pl-PL",
        "",
        "pl-PL/%2e%2e/README.md",
        "pl-PL/greeting.wav/",
    ] {
        let r = app.http.get(url(path)).send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 404, "/sounds/{path}: {body}");
        assert!(
            !body.contains("<script>") && !body.contains("outside") && !body.contains("# notes"),
            "/sounds/{path}: {body}"
        );
    }
    // Nor does a call ever play a file from outside the directory.
    assert_eq!(app.state.ivr.sounds.file("pl-PL", "leak.wav"), None);
    assert_eq!(app.state.ivr.sounds.file("en-US", "x.wav"), None);
}

/// A login POST with these extra headers.
async fn login_with(app: &TestApp, token: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = client
        .post(format!("{}/login", app.addr))
        .form(&[("token", token), ("next", "/admin")]);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn hole8_login_from_a_foreign_origin_or_referer_is_refused() {
    let app = TestApp::spawn().await;
    let admin = app.user("admin", Role::Admin);
    for headers in [
        vec![("Origin", "https://evil.example")],
        vec![("Referer", "https://evil.example/phish")],
        // Same host, another scheme or port: another origin.
        vec![("Origin", "http://callgate.example")],
        vec![("Origin", "https://callgate.example:8443")],
        vec![("Referer", "https://callgate.example.evil.example/login")],
        // A sandboxed frame or a data: URL posts with an opaque origin.
        vec![("Origin", "null")],
        // A foreign Origin is not excused by a Referer that looks right.
        vec![
            ("Origin", "https://evil.example"),
            ("Referer", "https://callgate.example/login"),
        ],
        // Nor by a browser's word that the post came from a sibling site.
        vec![
            ("Origin", "https://callgate.example"),
            ("Sec-Fetch-Site", "same-site"),
        ],
    ] {
        let r = login_with(&app, &admin, &headers).await;
        assert_eq!(r.status(), 403, "{headers:?}");
        assert!(r.headers().get("set-cookie").is_none(), "{headers:?}");
    }
    for headers in [
        vec![("Origin", "https://callgate.example")],
        vec![("Origin", "https://callgate.example:443")],
        vec![("Referer", "https://callgate.example/login?next=%2Fadmin")],
        vec![
            ("Origin", "https://callgate.example"),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        // A browser that withholds the origin (Referrer-Policy no-referrer) but vouches for it.
        vec![("Origin", "null"), ("Sec-Fetch-Site", "same-origin")],
        // A client that is not a browser sends neither.
        vec![],
    ] {
        let r = login_with(&app, &admin, &headers).await;
        assert_eq!(r.status(), 303, "{headers:?}");
        assert!(
            r.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .starts_with("cg_session="),
            "{headers:?}"
        );
    }
}
