//! Agents' outcomes on PostgreSQL.

use anyhow::Context;
use postgres::Row;

use super::PgDb;
use crate::store::outcomes::{Outcome, OutcomesDb, PastCall};

/// The outcome in columns `at..at + 6` (resolved, category, note, recurring, agent, at), if
/// there is one (`resolved` is NULL where a LEFT JOIN found none).
fn outcome_at(r: &Row, at: usize) -> anyhow::Result<Option<Outcome>> {
    let Some(resolved) = r.try_get::<_, Option<bool>>(at)? else {
        return Ok(None);
    };
    Ok(Some(Outcome {
        resolved,
        category: r.try_get(at + 1)?,
        note: r.try_get(at + 2)?,
        recurring: r.try_get(at + 3)?,
        agent: r.try_get(at + 4)?,
        at: r.try_get(at + 5)?,
    }))
}

impl OutcomesDb for PgDb<'_> {
    fn record_outcome(&self, call_sid: &str, outcome: &Outcome) -> anyhow::Result<()> {
        // An upsert in one statement: two agents recording at once on two nodes leave the
        // later one's outcome, never a unique violation.
        self.tx()?
            .execute(
                "INSERT INTO call_outcomes (call_sid, resolved, category, note, recurring, agent, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (call_sid) DO UPDATE SET resolved = excluded.resolved,
                    category = excluded.category, note = excluded.note,
                    recurring = excluded.recurring, agent = excluded.agent, at = excluded.at",
                &[
                    &call_sid,
                    &outcome.resolved,
                    &outcome.category,
                    &outcome.note,
                    &outcome.recurring,
                    &outcome.agent,
                    &outcome.at,
                ],
            )
            .context("recording the outcome")?;
        Ok(())
    }

    fn outcome(&self, call_sid: &str) -> anyhow::Result<Option<Outcome>> {
        let row = self
            .tx()?
            .query_opt(
                "SELECT resolved, category, note, recurring, agent, at
                 FROM call_outcomes WHERE call_sid = $1",
                &[&call_sid],
            )
            .context("reading the outcome")?;
        match row {
            Some(r) => outcome_at(&r, 0).context("reading the outcome"),
            None => Ok(None),
        }
    }

    fn recent_calls_of(
        &self,
        account_id: &str,
        except: &str,
        limit: u32,
    ) -> anyhow::Result<Vec<PastCall>> {
        let rows = self.tx()?.query(
            "SELECT c.call_sid, c.started_at, c.category, c.queue_status,
                    o.resolved, o.category, o.note, o.recurring, o.agent, o.at
             FROM calls c LEFT JOIN call_outcomes o ON o.call_sid = c.call_sid
             WHERE c.account_id = $1 AND c.call_sid != $2
             ORDER BY c.started_at DESC LIMIT $3",
            &[&account_id, &except, &i64::from(limit)],
        )?;
        rows.iter()
            .map(|r| {
                Ok(PastCall {
                    call_sid: r.try_get(0)?,
                    started_at: r.try_get(1)?,
                    department: r.try_get(2)?,
                    queue_status: r.try_get(3)?,
                    outcome: outcome_at(r, 4)?,
                })
            })
            .collect()
    }
}
