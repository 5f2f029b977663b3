//! The CRM outbox in SQLite.

use anyhow::Context;
use rusqlite::{Connection, params};

use crate::store::outbox::{Delivery, OutboxDb};

impl OutboxDb for Connection {
    fn enqueue_crm(&self, call_sid: &str, body: &str, now: i64) -> anyhow::Result<i64> {
        self.prepare_cached(
            "INSERT INTO crm_outbox (call_sid, body, next_at, created_at) VALUES (?1, ?2, ?3, ?3)",
        )?
        .execute(params![call_sid, body, now])
        .context("queueing a CRM delivery")?;
        Ok(self.last_insert_rowid())
    }

    fn claim_crm_deliveries(
        &self,
        now: i64,
        limit: u32,
        lease_until: i64,
    ) -> anyhow::Result<Vec<Delivery>> {
        // Read, then moved past the lease, in the one writer's transaction: no other claim
        // can come between the two.
        let due = self
            .prepare_cached(
                "SELECT id, call_sid, body, attempts FROM crm_outbox
                 WHERE delivered_at IS NULL AND failed_at IS NULL AND next_at <= ?1
                 ORDER BY next_at, id LIMIT ?2",
            )?
            .query_map(params![now, limit], |r| {
                Ok(Delivery {
                    id: r.get(0)?,
                    call_sid: r.get(1)?,
                    body: r.get(2)?,
                    attempts: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut lease = self.prepare_cached("UPDATE crm_outbox SET next_at = ?2 WHERE id = ?1")?;
        for d in &due {
            lease
                .execute(params![d.id, lease_until])
                .context("claiming a CRM delivery")?;
        }
        Ok(due)
    }

    fn release_crm_deliveries(
        &self,
        ids: &[i64],
        lease_until: i64,
        now: i64,
    ) -> anyhow::Result<usize> {
        let mut release = self.prepare_cached(
            "UPDATE crm_outbox SET next_at = ?3
             WHERE id = ?1 AND next_at = ?2 AND delivered_at IS NULL AND failed_at IS NULL",
        )?;
        let mut released = 0;
        for id in ids {
            released += release
                .execute(params![id, lease_until, now])
                .context("releasing a CRM delivery")?;
        }
        Ok(released)
    }

    fn next_crm_due(&self) -> anyhow::Result<Option<i64>> {
        self.prepare_cached(
            "SELECT MIN(next_at) FROM crm_outbox WHERE delivered_at IS NULL AND failed_at IS NULL",
        )?
        .query_row([], |r| r.get(0))
        .context("reading the outbox")
    }

    fn crm_delivered(&self, id: i64, attempts: u32, now: i64) -> anyhow::Result<()> {
        self.prepare_cached(
        "UPDATE crm_outbox SET delivered_at = ?2, attempts = ?3, last_error = NULL WHERE id = ?1",
    )?
    .execute(params![id, now, attempts])?;
        Ok(())
    }

    fn crm_failed(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> anyhow::Result<()> {
        self.prepare_cached(
            "UPDATE crm_outbox SET attempts = ?2, last_error = ?3,
            next_at = COALESCE(?4, next_at), failed_at = CASE WHEN ?4 IS NULL THEN ?5 END
         WHERE id = ?1",
        )?
        .execute(params![id, attempts, error, retry_at, now])?;
        Ok(())
    }

    fn purge_crm_deliveries(&self, before: i64) -> anyhow::Result<usize> {
        Ok(self.execute(
            "DELETE FROM crm_outbox WHERE (delivered_at IS NOT NULL OR failed_at IS NOT NULL)
         AND created_at < ?1",
            [before],
        )?)
    }
}
