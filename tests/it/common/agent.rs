//! Helpers for the agent-side tests: calls played to the hand-off, and a reader of the agent
//! event stream (server-sent events) over plain reqwest.

use std::time::{Duration, Instant};

use super::{Caller, Reach, TestApp};

pub const JAN_PHONE: &str = "+48601234567";
pub const JAN_CODE: &str = "246810";

/// Plays a call from `from` typing `code`, then `key` in the menu (1 billing, 2 technical,
/// 3 other); returns the caller after the hand-off document.
pub async fn hand_off(app: &TestApp, from: &str, code: &str, key: &str) -> Caller {
    let mut caller = Caller::new(app, from);
    caller.dial().await;
    caller.press(&format!("{code}#")).await;
    let doc = caller.press(key).await;
    assert!(doc.handoff().is_some(), "no hand-off: {}", doc.xml);
    caller
}

#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: serde_json::Value,
}

pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    /// Opens `GET /api/agent/events` with a bearer token (and `Last-Event-ID` if given).
    pub async fn open(app: &impl Reach, token: &str, last_event_id: Option<&str>) -> Self {
        let app = app.endpoint();
        let mut request = app
            .http
            .get(format!("{}/api/agent/events", app.addr))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event with data, or `None` if none came `within`.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    return Some(SseEvent {
                        id,
                        event,
                        data: serde_json::from_str(&data).unwrap(),
                    });
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) => {
                    eprintln!("event stream ended by the server");
                    return None;
                }
                Ok(Err(e)) => panic!("event stream failed: {e}"),
                Err(_) => return None,
            }
        }
    }
}
