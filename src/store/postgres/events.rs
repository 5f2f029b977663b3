//! Call events and queue status on PostgreSQL.
//!
//! The agent console catches up by event number: it remembers the last `seq` it saw and asks
//! for the ones after it. That is sound only if no event with a smaller number can become
//! visible after a larger one was read. SQLite promises it by having one writer: numbers are
//! handed out in commit order. An identity column here hands numbers out when the INSERT runs,
//! and transactions commit in any order, so the console could read 7, remember it, and never
//! see 6 committed a moment later. Appending therefore takes a transaction-level advisory lock
//! first ([`EVENTS_LOCK`]): the next appender waits until this transaction has committed (or
//! rolled back), so every committed event's number is larger than every event committed
//! before it, and a reader that sees event n sees every committed event below n.
//! What PostgreSQL does not give back: the numbers of rolled-back appends are skipped, so the
//! numbers have holes (SQLite's do not). Readers never assume consecutive numbers.
//! The lock is taken at the append, late in a webhook's transaction (after the call row is
//! locked and written), so it is held only for the rest of that transaction.

use anyhow::Context;
use postgres::Row;

use super::PgDb;
use crate::store::events::{CallEvent, EventsDb, Kind};

/// `pg_advisory_xact_lock` key serializing event appends: "cg events" folded to a number.
const EVENTS_LOCK: i64 = 0x6367_5f65_7665_6e74;

fn event(r: &Row) -> anyhow::Result<CallEvent> {
    Ok(CallEvent {
        seq: r.try_get(0)?,
        call_sid: r.try_get(1)?,
        kind: Kind::parse(r.try_get(2)?),
        department: r.try_get(3)?,
        at: r.try_get(4)?,
    })
}

impl EventsDb for PgDb<'_> {
    fn append_call_event(
        &self,
        call_sid: &str,
        kind: Kind,
        department: Option<&str>,
        now: i64,
    ) -> anyhow::Result<i64> {
        // Numbers in commit order: see the module's comment. A statement of its own, so the
        // identity value is drawn after the lock is granted.
        self.tx()?
            .execute("SELECT pg_advisory_xact_lock($1)", &[&EVENTS_LOCK])
            .context("waiting for the event lock")?;
        self.tx()?
            .query_one(
                "INSERT INTO call_events (call_sid, kind, department, at)
                 VALUES ($1, $2, $3, $4) RETURNING seq",
                &[&call_sid, &kind.as_str(), &department, &now],
            )
            .context("appending a call event")?
            .try_get(0)
            .context("appending a call event")
    }

    fn last_event_seq(&self) -> anyhow::Result<i64> {
        self.tx()?
            .query_one("SELECT COALESCE(MAX(seq), 0) FROM call_events", &[])
            .context("reading the last event number")?
            .try_get(0)
            .context("reading the last event number")
    }

    fn call_events_since(
        &self,
        after: i64,
        departments: Option<&[String]>,
        limit: u32,
    ) -> anyhow::Result<(Vec<CallEvent>, i64)> {
        // Nothing can be read into no room (SQLite's loop would never end on it).
        if limit == 0 {
            return Ok((Vec::new(), after));
        }
        let page = i64::from(limit);
        let mut out = Vec::new();
        let mut next = after;
        // Filtered in Rust as on SQLite: a page of other departments' events is skipped and
        // the next one read.
        loop {
            let rows = self
                .tx()?
                .query(
                    "SELECT seq, call_sid, kind, department, at FROM call_events
                     WHERE seq > $1 ORDER BY seq LIMIT $2",
                    &[&next, &page],
                )
                .context("reading call events")?;
            let full = rows.len() == usize::try_from(limit).unwrap_or(usize::MAX);
            for r in &rows {
                let e = event(r)?;
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
        // In a write transaction the status is read to decide the next one (`track_status`):
        // the call is locked as `call` locks it, so two status callbacks on two nodes take
        // turns, as they do behind SQLite's writer.
        let sql = if self.read_only {
            "SELECT queue_status FROM calls WHERE call_sid = $1"
        } else {
            self.lock_call(call_sid)?;
            "SELECT queue_status FROM calls WHERE call_sid = $1 FOR UPDATE"
        };
        let row = self
            .tx()?
            .query_opt(sql, &[&call_sid])
            .context("reading the queue status")?;
        Ok(match row {
            Some(r) => r.try_get::<_, Option<String>>(0)?,
            None => None,
        })
    }

    fn set_queue_status(&self, call_sid: &str, status: &str, now: i64) -> anyhow::Result<()> {
        self.tx()?
            .execute(
                "UPDATE calls SET queue_status = $2, updated_at = $3 WHERE call_sid = $1",
                &[&call_sid, &status, &now],
            )
            .context("setting the queue status")?;
        Ok(())
    }

    fn waiting_calls(&self, limit: u32) -> anyhow::Result<Vec<(String, Option<String>)>> {
        // NULLS FIRST: SQLite's order for NULL (a waiting call always has a hand-off time, but
        // the order is SQLite's either way).
        let rows = self.tx()?.query(
            "SELECT call_sid, category FROM calls WHERE queue_status = 'waiting'
             ORDER BY handed_off_at NULLS FIRST LIMIT $1",
            &[&i64::from(limit)],
        )?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    fn recent_handoffs(
        &self,
        since: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<(String, Option<String>)>> {
        let rows = self.tx()?.query(
            "SELECT call_sid, category FROM calls
             WHERE handed_off_at >= $1 AND queue_status IS NOT NULL AND queue_status != 'waiting'
             ORDER BY handed_off_at DESC LIMIT $2",
            &[&since, &i64::from(limit)],
        )?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}
