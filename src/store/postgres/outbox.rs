//! The CRM outbox on PostgreSQL.
//!
//! Every node runs a delivery task over the same table. A claim moves the due rows' `next_at`
//! to the end of a lease in the claiming transaction (`UPDATE ... RETURNING`), so once it has
//! committed no other node finds them due; `FOR UPDATE SKIP LOCKED` makes two claims running
//! at the same moment take different rows instead of both reading the same due rows (or one
//! waiting for the other's). `next_at` is the lease: no column of its own is needed, and a
//! delivery whose sender died is due again when the lease runs out.

use anyhow::{Context, anyhow};
use postgres::Row;

use super::PgDb;
use crate::store::outbox::{Delivery, OutboxDb};

fn attempts(r: &Row, i: usize) -> anyhow::Result<u32> {
    let v: i64 = r.try_get(i)?;
    u32::try_from(v).map_err(|_| anyhow!("a CRM delivery with {v} attempts"))
}

impl OutboxDb for PgDb<'_> {
    fn enqueue_crm(&self, call_sid: &str, body: &str, now: i64) -> anyhow::Result<i64> {
        self.tx()?
            .query_one(
                "INSERT INTO crm_outbox (call_sid, body, next_at, created_at)
                 VALUES ($1, $2, $3, $3) RETURNING id",
                &[&call_sid, &body, &now],
            )
            .context("queueing a CRM delivery")?
            .try_get(0)
            .context("queueing a CRM delivery")
    }

    fn claim_crm_deliveries(
        &self,
        now: i64,
        limit: u32,
        lease_until: i64,
    ) -> anyhow::Result<Vec<Delivery>> {
        // The due condition is checked again on the locked row (READ COMMITTED re-reads a row
        // another transaction changed before locking it), so a row claimed by a transaction
        // that committed after this statement's snapshot is not claimed twice.
        let rows = self
            .tx()?
            .query(
                "WITH due AS (
                     SELECT id, next_at FROM crm_outbox
                     WHERE delivered_at IS NULL AND failed_at IS NULL AND next_at <= $1
                     ORDER BY next_at, id LIMIT $2
                     FOR UPDATE SKIP LOCKED
                 )
                 UPDATE crm_outbox o SET next_at = $3 FROM due WHERE o.id = due.id
                 RETURNING o.id, o.call_sid, o.body, o.attempts, due.next_at",
                &[&now, &i64::from(limit), &lease_until],
            )
            .context("claiming CRM deliveries")?;
        let mut due = rows
            .iter()
            .map(|r| {
                let next_at: i64 = r.try_get(4)?;
                let d = Delivery {
                    id: r.try_get(0)?,
                    call_sid: r.try_get(1)?,
                    body: r.try_get(2)?,
                    attempts: attempts(r, 3)?,
                };
                Ok((next_at, d))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        // RETURNING follows no ORDER BY: oldest first, as SQLite answers.
        due.sort_by_key(|(next_at, d)| (*next_at, d.id));
        Ok(due.into_iter().map(|(_, d)| d).collect())
    }

    fn release_crm_deliveries(
        &self,
        ids: &[i64],
        lease_until: i64,
        now: i64,
    ) -> anyhow::Result<usize> {
        let n = self
            .tx()?
            .execute(
                "UPDATE crm_outbox SET next_at = $3
                 WHERE id = ANY($1) AND next_at = $2 AND delivered_at IS NULL AND failed_at IS NULL",
                &[&ids, &lease_until, &now],
            )
            .context("releasing CRM deliveries")?;
        Ok(usize::try_from(n)?)
    }

    fn next_crm_due(&self) -> anyhow::Result<Option<i64>> {
        self.tx()?
            .query_one(
                "SELECT MIN(next_at) FROM crm_outbox WHERE delivered_at IS NULL AND failed_at IS NULL",
                &[],
            )
            .context("reading the outbox")?
            .try_get(0)
            .context("reading the outbox")
    }

    fn crm_delivered(&self, id: i64, attempts: u32, now: i64) -> anyhow::Result<()> {
        self.tx()?.execute(
            "UPDATE crm_outbox SET delivered_at = $2, attempts = $3, last_error = NULL WHERE id = $1",
            &[&id, &now, &i64::from(attempts)],
        )?;
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
        self.tx()?.execute(
            "UPDATE crm_outbox SET attempts = $2, last_error = $3,
                next_at = COALESCE($4::bigint, next_at),
                failed_at = CASE WHEN $4::bigint IS NULL THEN $5::bigint END
             WHERE id = $1",
            &[&id, &i64::from(attempts), &error, &retry_at, &now],
        )?;
        Ok(())
    }

    fn purge_crm_deliveries(&self, before: i64) -> anyhow::Result<usize> {
        let n = self.tx()?.execute(
            "DELETE FROM crm_outbox WHERE (delivered_at IS NOT NULL OR failed_at IS NOT NULL)
             AND created_at < $1",
            &[&before],
        )?;
        Ok(usize::try_from(n)?)
    }
}
