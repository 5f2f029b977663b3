//! Agents' outcomes in SQLite.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::outcomes::{Outcome, OutcomesDb, PastCall};

impl OutcomesDb for Connection {
    fn record_outcome(&self, call_sid: &str, outcome: &Outcome) -> anyhow::Result<()> {
        self.prepare_cached(
            "INSERT INTO call_outcomes (call_sid, resolved, category, note, recurring, agent, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(call_sid) DO UPDATE SET resolved = excluded.resolved,
            category = excluded.category, note = excluded.note, recurring = excluded.recurring,
            agent = excluded.agent, at = excluded.at",
        )?
        .execute(params![
            call_sid,
            outcome.resolved,
            outcome.category,
            outcome.note,
            outcome.recurring,
            outcome.agent,
            outcome.at
        ])
        .context("recording the outcome")?;
        Ok(())
    }

    fn outcome(&self, call_sid: &str) -> anyhow::Result<Option<Outcome>> {
        self.prepare_cached(
        "SELECT resolved, category, note, recurring, agent, at FROM call_outcomes WHERE call_sid = ?1",
    )?
    .query_row([call_sid], |r| {
        Ok(Outcome {
            resolved: r.get(0)?,
            category: r.get(1)?,
            note: r.get(2)?,
            recurring: r.get(3)?,
            agent: r.get(4)?,
            at: r.get(5)?,
        })
    })
    .optional()
    .context("reading the outcome")
    }

    fn recent_calls_of(
        &self,
        account_id: &str,
        except: &str,
        limit: u32,
    ) -> anyhow::Result<Vec<PastCall>> {
        let mut stmt = self.prepare_cached(
            "SELECT c.call_sid, c.started_at, c.category, c.queue_status,
                o.resolved, o.category, o.note, o.recurring, o.agent, o.at
         FROM calls c LEFT JOIN call_outcomes o ON o.call_sid = c.call_sid
         WHERE c.account_id = ?1 AND c.call_sid != ?2
         ORDER BY c.started_at DESC LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![account_id, except, limit], |r| {
                let outcome = match r.get::<_, Option<bool>>(4)? {
                    Some(resolved) => Some(Outcome {
                        resolved,
                        category: r.get(5)?,
                        note: r.get(6)?,
                        recurring: r.get(7)?,
                        agent: r.get(8)?,
                        at: r.get(9)?,
                    }),
                    None => None,
                };
                Ok(PastCall {
                    call_sid: r.get(0)?,
                    started_at: r.get(1)?,
                    department: r.get(2)?,
                    queue_status: r.get(3)?,
                    outcome,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
