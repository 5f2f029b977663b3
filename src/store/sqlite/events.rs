//! Call events and queue status in SQLite.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::events::{CallEvent, EventsDb, Kind};

impl EventsDb for Connection {
    fn append_call_event(
        &self,
        call_sid: &str,
        kind: Kind,
        department: Option<&str>,
        now: i64,
    ) -> anyhow::Result<i64> {
        self.prepare_cached(
        "INSERT INTO call_events (call_sid, kind, department, at) VALUES (?1, ?2, ?3, ?4) RETURNING seq",
    )?
    .query_row(params![call_sid, kind.as_str(), department, now], |r| {
        r.get(0)
    })
    .context("appending a call event")
    }

    fn last_event_seq(&self) -> anyhow::Result<i64> {
        self.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM call_events")?
            .query_row([], |r| r.get(0))
            .context("reading the last event number")
    }

    fn call_events_since(
        &self,
        after: i64,
        departments: Option<&[String]>,
        limit: u32,
    ) -> anyhow::Result<(Vec<CallEvent>, i64)> {
        // Nothing can be read into no room, and the loop below would never end on it.
        if limit == 0 {
            return Ok((Vec::new(), after));
        }
        let mut stmt = self.prepare_cached(
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
                if crate::store::events::visible(departments, e.department.as_deref()) {
                    out.push(e);
                }
            }
            if !full || !out.is_empty() {
                return Ok((out, next));
            }
        }
    }

    fn queue_status(&self, call_sid: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .prepare_cached("SELECT queue_status FROM calls WHERE call_sid = ?1")?
            .query_row([call_sid], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    fn set_queue_status(&self, call_sid: &str, status: &str, now: i64) -> anyhow::Result<()> {
        self.prepare_cached(
            "UPDATE calls SET queue_status = ?2, updated_at = ?3 WHERE call_sid = ?1",
        )?
        .execute(params![call_sid, status, now])
        .context("setting the queue status")?;
        Ok(())
    }

    fn waiting_calls(&self, limit: u32) -> anyhow::Result<Vec<(String, Option<String>)>> {
        let mut stmt = self.prepare_cached(
            "SELECT call_sid, category FROM calls WHERE queue_status = 'waiting'
         ORDER BY handed_off_at LIMIT ?1",
        )?;
        let rows = stmt
            .query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn recent_handoffs(
        &self,
        since: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<(String, Option<String>)>> {
        let mut stmt = self.prepare_cached(
            "SELECT call_sid, category FROM calls
         WHERE handed_off_at >= ?1 AND queue_status IS NOT NULL AND queue_status != 'waiting'
         ORDER BY handed_off_at DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![since, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
