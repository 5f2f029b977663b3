//! What the agent console follows: numbered call events (`call_events.seq` is the SSE event id)
//! and each call's queue status. Events are written in the webhook's own transaction, so an
//! event exists exactly when the change it announces was committed.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

/// The call was handed to a department and waits for an agent.
pub const WAITING: &str = "waiting";
/// An agent took the call (the hand-off reported a bridge, or an agent recorded an outcome).
pub const ANSWERED: &str = "answered";
/// The caller hung up while waiting.
pub const ABANDONED: &str = "abandoned";
/// Nobody answered: no agent, queue full, busy line.
pub const UNANSWERED: &str = "unanswered";
/// The answered call has ended.
pub const ENDED: &str = "ended";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Handoff,
    Status,
    Outcome,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Handoff => "handoff",
            Self::Status => "status",
            Self::Outcome => "outcome",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "handoff" => Self::Handoff,
            "outcome" => Self::Outcome,
            _ => Self::Status,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CallEvent {
    pub seq: i64,
    pub call_sid: String,
    pub kind: Kind,
    pub department: Option<String>,
    pub at: i64,
}

/// Appends an event; returns its number.
pub fn append(
    conn: &Connection,
    call_sid: &str,
    kind: Kind,
    department: Option<&str>,
    now: i64,
) -> anyhow::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO call_events (call_sid, kind, department, at) VALUES (?1, ?2, ?3, ?4) RETURNING seq",
    )?
    .query_row(params![call_sid, kind.as_str(), department, now], |r| {
        r.get(0)
    })
    .context("appending a call event")
}

/// The newest event number (0 before the first).
pub fn last_seq(conn: &Connection) -> anyhow::Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM call_events")?
        .query_row([], |r| r.get(0))
        .context("reading the last event number")
}

/// Events after `after`, oldest first, at most `limit`; only those of `departments` unless
/// that is `None` (admins, and agents serving every department). Also returns the number of
/// the last event looked at (visible or not), where the next read starts.
pub fn since(
    conn: &Connection,
    after: i64,
    departments: Option<&[String]>,
    limit: u32,
) -> anyhow::Result<(Vec<CallEvent>, i64)> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, call_sid, kind, department, at FROM call_events
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let mut out = Vec::new();
    let mut next = after;
    // Filtering in Rust keeps one cached statement for any list of departments; a page of
    // other departments' events is skipped and the next one read.
    loop {
        let rows = stmt
            .query_map(params![next, limit], |r| {
                Ok(CallEvent {
                    seq: r.get(0)?,
                    call_sid: r.get(1)?,
                    kind: Kind::parse(&r.get::<_, String>(2)?),
                    department: r.get(3)?,
                    at: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let full = rows.len() == limit as usize;
        for e in rows {
            next = e.seq;
            if visible(departments, e.department.as_deref()) {
                out.push(e);
            }
        }
        if !full || !out.is_empty() {
            return Ok((out, next));
        }
    }
}

/// Whether a call filed under `department` is for someone serving `departments`.
pub fn visible(departments: Option<&[String]>, department: Option<&str>) -> bool {
    match departments {
        None => true,
        Some(list) => department.is_some_and(|d| list.iter().any(|x| x == d)),
    }
}

pub fn queue_status(conn: &Connection, call_sid: &str) -> anyhow::Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT queue_status FROM calls WHERE call_sid = ?1")?
        .query_row([call_sid], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

pub fn set_queue_status(
    conn: &Connection,
    call_sid: &str,
    status: &str,
    now: i64,
) -> anyhow::Result<()> {
    conn.prepare_cached("UPDATE calls SET queue_status = ?2, updated_at = ?3 WHERE call_sid = ?1")?
        .execute(params![call_sid, status, now])
        .context("setting the queue status")?;
    Ok(())
}

/// Calls waiting for an agent, oldest first: `(call_sid, category)`.
pub fn waiting(conn: &Connection, limit: u32) -> anyhow::Result<Vec<(String, Option<String>)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT call_sid, category FROM calls WHERE queue_status = 'waiting'
         ORDER BY handed_off_at LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Calls handed off since `since`, newest first (the console's "recent" list).
pub fn recent_handoffs(
    conn: &Connection,
    since: i64,
    limit: u32,
) -> anyhow::Result<Vec<(String, Option<String>)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT call_sid, category FROM calls
         WHERE handed_off_at >= ?1 AND queue_status IS NOT NULL AND queue_status != 'waiting'
         ORDER BY handed_off_at DESC LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![since, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
