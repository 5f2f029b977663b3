//! The CRM webhook's outbox: each hand-off's screen-pop is queued here in the webhook's own
//! transaction and POSTed by a background task (`crate::agent::crm`), so a slow or failing CRM
//! never holds up a call and a restart loses nothing.

use anyhow::Context;
use rusqlite::{Connection, params};

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub call_sid: String,
    pub body: String,
    pub attempts: u32,
}

pub fn enqueue(conn: &Connection, call_sid: &str, body: &str, now: i64) -> anyhow::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO crm_outbox (call_sid, body, next_at, created_at) VALUES (?1, ?2, ?3, ?3)",
    )?
    .execute(params![call_sid, body, now])
    .context("queueing a CRM delivery")?;
    Ok(conn.last_insert_rowid())
}

/// Deliveries due at `now`, oldest first.
pub fn due(conn: &Connection, now: i64, limit: u32) -> anyhow::Result<Vec<Delivery>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, call_sid, body, attempts FROM crm_outbox
         WHERE delivered_at IS NULL AND failed_at IS NULL AND next_at <= ?1
         ORDER BY next_at, id LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![now, limit], |r| {
            Ok(Delivery {
                id: r.get(0)?,
                call_sid: r.get(1)?,
                body: r.get(2)?,
                attempts: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// When the next delivery falls due, if any is pending.
pub fn next_due(conn: &Connection) -> anyhow::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT MIN(next_at) FROM crm_outbox WHERE delivered_at IS NULL AND failed_at IS NULL",
    )?
    .query_row([], |r| r.get(0))
    .context("reading the outbox")
}

pub fn delivered(conn: &Connection, id: i64, attempts: u32, now: i64) -> anyhow::Result<()> {
    conn.prepare_cached(
        "UPDATE crm_outbox SET delivered_at = ?2, attempts = ?3, last_error = NULL WHERE id = ?1",
    )?
    .execute(params![id, now, attempts])?;
    Ok(())
}

/// A failed attempt: retried at `retry_at`, or given up when that is `None`.
pub fn failed(
    conn: &Connection,
    id: i64,
    attempts: u32,
    error: &str,
    retry_at: Option<i64>,
    now: i64,
) -> anyhow::Result<()> {
    conn.prepare_cached(
        "UPDATE crm_outbox SET attempts = ?2, last_error = ?3,
            next_at = COALESCE(?4, next_at), failed_at = CASE WHEN ?4 IS NULL THEN ?5 END
         WHERE id = ?1",
    )?
    .execute(params![id, attempts, error, retry_at, now])?;
    Ok(())
}

/// Forgets delivered and abandoned rows older than `before` (they hold personal data).
pub fn purge(conn: &Connection, before: i64) -> anyhow::Result<usize> {
    Ok(conn.execute(
        "DELETE FROM crm_outbox WHERE (delivered_at IS NOT NULL OR failed_at IS NOT NULL)
         AND created_at < ?1",
        [before],
    )?)
}
