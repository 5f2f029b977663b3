//! Live screen-pops. A webhook that hands a call off (or reports how the hand-off went)
//! records a numbered `call_events` row in its own transaction; once that transaction is
//! committed the route publishes the number on the `Hub`'s broadcast channel. Each agent
//! console holds `GET /api/agent/events` open (server-sent events): woken by the broadcast, it
//! reads the events after the last one it sent from the database, keeps those of the agent's
//! departments and sends them with their number as the event id. A console that reconnects
//! (the browser's EventSource does it by itself) sends `Last-Event-ID` and is sent what it
//! missed; a lagging receiver loses nothing either, since the database is the source.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use tokio::sync::{Notify, broadcast, mpsc, watch};

use super::ScreenPop;
use super::auth::AuthUser;
use super::view::{CallView, Viewer, departments_of};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::Db;
use crate::store::calls::{Call, HANDED_OFF};
use crate::store::events::{self, Kind};

/// Events read from the database per query.
const BATCH: u32 = 100;
/// A stream is closed after this long; the browser reconnects at once with `Last-Event-ID`,
/// and the session cookie is checked again (a logged-out agent stops receiving pops).
const MAX_STREAM: Duration = Duration::from_secs(30 * 60);
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What the webhooks tell the rest of the process after their transaction committed.
pub struct Hub {
    events: broadcast::Sender<i64>,
    /// Wakes the CRM webhook's delivery task.
    pub crm_wake: Notify,
    /// Another node published scripts (PostgreSQL): reload without waiting for the poll.
    pub scripts_changed: Notify,
    /// Another process stored a speech-routing model.
    pub routing_changed: Notify,
    /// Set when the server shuts down: the open event streams end, so the graceful shutdown
    /// does not wait for them.
    closing: watch::Sender<bool>,
}

impl Default for Hub {
    fn default() -> Self {
        let (events, _) = broadcast::channel(256);
        Self {
            events,
            crm_wake: Notify::new(),
            scripts_changed: Notify::new(),
            routing_changed: Notify::new(),
            closing: watch::Sender::new(false),
        }
    }
}

impl Hub {
    /// Wakes the event streams and the CRM task for an event another node recorded (it is in
    /// the database already; the streams read it there).
    pub fn wake(&self, seq: i64) {
        let _ = self.events.send(seq);
        self.crm_wake.notify_one();
    }

    /// Ends every open event stream.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<i64> {
        self.events.subscribe()
    }

    /// Announces what `tracked` recorded. Call only after the transaction has committed.
    pub fn publish(&self, tracked: &Tracked) {
        if let Some(&seq) = tracked.events.iter().max() {
            // No receiver (no console open) is not an error.
            let _ = self.events.send(seq);
        }
        if tracked.crm_queued {
            self.crm_wake.notify_one();
        }
    }
}

/// What one webhook recorded for the agents.
#[derive(Debug, Default)]
pub struct Tracked {
    pub events: Vec<i64>,
    pub crm_queued: bool,
}

/// How a hand-off ended, from `DialCallStatus` or `QueueResult`.
pub fn queue_status_of(result: &str) -> &'static str {
    match result {
        // The caller was connected and the conversation is over.
        "completed" | "answered" | "bridged" => events::ENDED,
        // QueueResult: the caller hung up while waiting.
        "hangup" => events::ABANDONED,
        _ => events::UNANSWERED,
    }
}

/// The CRM webhook's body: the screen-pop and its URL.
pub fn crm_body(pop: &ScreenPop) -> String {
    serde_json::json!({ "event": "handoff", "screen_pop": pop }).to_string()
}

/// Compares the call before and after a flow webhook (in the webhook's transaction, `after` as
/// the engine saved it) and records what the agents must hear of: the hand-off (queue status `waiting`, an event, and
/// the CRM delivery when `crm` is configured) or how the hand-off ended.
pub fn track_flow(
    db: &dyn Db,
    ivr: &crate::ivr::IvrContext,
    before: Option<&Call>,
    after: &Call,
    crm: bool,
    now: i64,
) -> anyhow::Result<Tracked> {
    let mut tracked = Tracked::default();
    let call_sid = after.call_sid.as_str();
    let department = after.department.as_deref();
    let was_handed_off = before.is_some_and(|b| b.handed_off_at.is_some());
    if !was_handed_off && after.step == HANDED_OFF {
        db.set_queue_status(call_sid, events::WAITING, now)?;
        tracked
            .events
            .push(db.append_call_event(call_sid, Kind::Handoff, department, now)?);
        if crm {
            // The desk's own CRM: it matches the caller to its records by the number.
            let mut pop = ScreenPop::load(db, after, now, Viewer::Desk)?;
            let ttl = i64::try_from(ivr.pop_url_ttl.as_millis()).unwrap_or(i64::MAX);
            pop.pop_url = Some(super::pop::url(
                &ivr.keys.get(),
                &ivr.public_url,
                call_sid,
                now.saturating_add(ttl),
            ));
            db.enqueue_crm(call_sid, &crm_body(&pop), now)?;
            tracked.crm_queued = true;
        }
    }
    let had_result = before.is_some_and(|b| b.state.handoff_result.is_some());
    if !had_result && let Some(result) = after.state.handoff_result.as_deref() {
        db.set_queue_status(call_sid, queue_status_of(result), now)?;
        tracked
            .events
            .push(db.append_call_event(call_sid, Kind::Status, department, now)?);
    }
    Ok(tracked)
}

/// After `/twilio/status`: a call that ends while still waiting was abandoned in the queue; an
/// answered one has ended. A child leg's callback (`ParentCallSid`, the agent's leg of a
/// `<Dial>`) going `in-progress` marks the caller's call answered.
pub fn track_status(
    db: &dyn Db,
    call_sid: &str,
    status: &str,
    now: i64,
) -> anyhow::Result<Tracked> {
    let mut tracked = Tracked::default();
    let Some(current) = db.queue_status(call_sid)? else {
        return Ok(tracked);
    };
    let terminal = matches!(
        status,
        "completed" | "busy" | "no-answer" | "canceled" | "failed"
    );
    let next = match (current.as_str(), status) {
        (events::WAITING, _) if terminal => events::ABANDONED,
        (events::ANSWERED, _) if terminal => events::ENDED,
        (events::WAITING, "in-progress" | "answered") => events::ANSWERED,
        _ => return Ok(tracked),
    };
    db.set_queue_status(call_sid, next, now)?;
    let department = db.call(call_sid)?.and_then(|c| c.department);
    tracked.events.push(db.append_call_event(
        call_sid,
        Kind::Status,
        department.as_deref(),
        now,
    )?);
    Ok(tracked)
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The first connection's starting point (the queue's `last_seq`); a reconnection's
    /// `Last-Event-ID` header takes precedence.
    since: Option<i64>,
}

/// An mpsc receiver as the `Stream` the SSE response reads.
struct Feed(mpsc::Receiver<Event>);

impl futures_core::Stream for Feed {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|e| e.map(Ok))
    }
}

fn last_event_id(headers: &HeaderMap) -> Option<i64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|n| *n >= 0)
}

/// `GET /api/agent/events`: the agent's screen-pops as server-sent events.
#[utoipa::path(
    get,
    path = "/api/agent/events",
    operation_id = "agent_events",
    tag = "agent",
    summary = "Live screen-pops (server-sent events)",
    description = "The agent's screen-pops and call updates as server-sent events (`text/event-stream`); each event's `id` is its sequence number. A reconnection's `Last-Event-ID` header takes precedence over `since`.",
    params(EventsQuery, ("Last-Event-ID" = Option<i64>, Header, description = "The last event received, when reconnecting.")),
    responses(
        (status = 200, description = "An endless stream of server-sent events; `data` is JSON.", content_type = "text/event-stream", body = String),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn stream(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl futures_core::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let since = query.ok().and_then(|Query(q)| q.since).filter(|n| *n >= 0);
    // Subscribed before the first read, so nothing committed in between is missed.
    let mut wake = state.hub.subscribe();
    let start = match last_event_id(&headers).or(since) {
        Some(n) => n,
        None => state
            .store
            .read(|db| db.last_event_seq())
            .await
            .map_err(ApiError::internal)?,
    };
    let departments = departments_of(&user);
    let viewer = Viewer::of(&user);
    let (tx, rx) = mpsc::channel::<Event>(64);
    let store = state.store.clone();
    let clock = state.clock.clone();
    let mut closing = state.hub.closing.subscribe();
    tracing::info!(user = %user.name, since = start, "agent event stream opened");
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + MAX_STREAM;
        let mut last = start;
        let _ = tx
            .send(
                Event::default()
                    .comment("callgate")
                    .retry(Duration::from_secs(2)),
            )
            .await;
        loop {
            let depts = departments.clone();
            let now = clock.now_ms();
            let batch = store
                .read(move |db| {
                    let (found, scanned) = db.call_events_since(last, depts.as_deref(), BATCH)?;
                    let mut out = Vec::with_capacity(found.len());
                    for e in found {
                        let view = CallView::by_sid(db, &e.call_sid, viewer, now)?;
                        out.push((e, view));
                    }
                    Ok((out, scanned))
                })
                .await;
            let (batch, scanned) = match batch {
                Ok(b) => b,
                Err(err) => {
                    tracing::error!(error = %format!("{err:#}"), "reading call events failed");
                    break;
                }
            };
            let from = last;
            for (e, view) in batch {
                last = e.seq;
                let Some(view) = view else { continue };
                let data = serde_json::json!({ "seq": e.seq, "kind": e.kind, "call": view });
                let event = Event::default()
                    .id(e.seq.to_string())
                    .event(e.kind.as_str())
                    .data(data.to_string());
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            last = last.max(scanned);
            // Read on until a read finds nothing new; then wait.
            if last > from {
                continue;
            }
            tokio::select! {
                woken = wake.recv() => match woken {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        // One read serves every wake-up queued meanwhile.
                        while wake.try_recv().is_ok() {}
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                () = tx.closed() => break,
                _ = closing.wait_for(|c| *c) => break,
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
    });
    Ok(Sse::new(Feed(rx)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
