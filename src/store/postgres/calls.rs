//! Calls on PostgreSQL.
//!
//! A webhook reads its call row, decides, and writes the whole row back (`save_call`), all in
//! one transaction. On SQLite the single writer runs those transactions one after another. Here
//! two nodes may take webhooks of the same call at once (a status callback beside a gather, a
//! hand-off result beside an agent's outcome), so in a write transaction `call` locks the call
//! first: the row with `FOR UPDATE`, and the call sid with an advisory lock, which also holds
//! when there is no row yet (two first webhooks, or a status callback racing the first one).
//! The second transaction then reads what the first wrote instead of overwriting it with a
//! decision taken on the old row.

use anyhow::{Context, anyhow};
use postgres::Row;

use super::PgDb;
use crate::store::calls::{Call, CallsDb};
use crate::verify::Factors;

macro_rules! columns {
    () => {
        "call_sid, caller, called, stir_verstat, script, script_version, language, step, \
         step_attempts, step_silences, account_id, caller_id_match, factors, failed_attempts, \
         category, handoff, status, end_reason, started_at, verified_at, handed_off_at, ended_at, \
         duration_secs, script_version_no, state"
    };
}

/// The class (first key) of the per-call advisory locks; the second key is `hashtext(call_sid)`.
/// Two-key advisory locks live apart from the one-key ones (the audit chain's), so a hash can
/// never collide with those. "cg" "ca" in ASCII.
pub(super) const CALL_LOCK_CLASS: i32 = 0x6367_6361;

/// A counter column (never negative, a `u32` in callgate) read back; out of range is an error,
/// as rusqlite's conversion is on SQLite.
fn count(r: &Row, i: usize) -> anyhow::Result<u32> {
    let v: i64 = r.try_get(i)?;
    u32::try_from(v).map_err(|_| anyhow!("column {i} of calls holds {v}, not a count"))
}

fn from_row(r: &Row) -> anyhow::Result<Call> {
    Ok(Call {
        call_sid: r.try_get(0)?,
        caller: r.try_get(1)?,
        called: r.try_get(2)?,
        stir_verstat: r.try_get(3)?,
        script: r.try_get(4)?,
        script_sha: r.try_get(5)?,
        language: r.try_get(6)?,
        step: r.try_get(7)?,
        step_attempts: count(r, 8)?,
        step_silences: count(r, 9)?,
        account_id: r.try_get(10)?,
        caller_id_match: r.try_get(11)?,
        factors: Factors::from_db(r.try_get(12)?),
        failed_attempts: count(r, 13)?,
        department: r.try_get(14)?,
        handoff: r.try_get(15)?,
        status: r.try_get(16)?,
        end_reason: r.try_get(17)?,
        started_at: r.try_get(18)?,
        verified_at: r.try_get(19)?,
        handed_off_at: r.try_get(20)?,
        ended_at: r.try_get(21)?,
        duration_secs: r.try_get(22)?,
        script_version: r.try_get(23)?,
        // A state this version cannot read (written by a newer one) restarts the bookkeeping,
        // never the call.
        state: serde_json::from_str(r.try_get(24)?).unwrap_or_default(),
    })
}

impl PgDb<'_> {
    /// Serializes the write transactions that touch the call `call_sid`, whether or not its row
    /// exists yet; held until commit. Taken again by the same transaction, it is simply held
    /// twice.
    pub(super) fn lock_call(&self, call_sid: &str) -> anyhow::Result<()> {
        self.tx()?
            .execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&CALL_LOCK_CLASS, &call_sid],
            )
            .context("locking the call")?;
        Ok(())
    }
}

impl CallsDb for PgDb<'_> {
    fn call(&self, call_sid: &str) -> anyhow::Result<Option<Call>> {
        let row = if self.read_only {
            self.tx()?.query_opt(
                concat!("SELECT ", columns!(), " FROM calls WHERE call_sid = $1"),
                &[&call_sid],
            )
        } else {
            // Read to be written back: see the module's comment. The advisory lock comes in a
            // statement of its own, so the SELECT's snapshot is taken after it is granted.
            self.lock_call(call_sid)?;
            self.tx()?.query_opt(
                concat!(
                    "SELECT ",
                    columns!(),
                    " FROM calls WHERE call_sid = $1 FOR UPDATE"
                ),
                &[&call_sid],
            )
        }
        .context("reading call")?;
        row.as_ref()
            .map(from_row)
            .transpose()
            .context("reading call")
    }

    fn save_call(&self, call: &Call, now: i64) -> anyhow::Result<()> {
        let state = serde_json::to_string(&call.state).unwrap_or_else(|_| "{}".into());
        let factors = call.factors.to_db();
        // One statement: a row another node inserted meanwhile is updated, never a unique
        // violation (which would abort the transaction). The whole row is written, as on
        // SQLite; `call` locked it beforehand when this is a read-decide-write.
        self.tx()?
            .execute(
                concat!(
                    "INSERT INTO calls (",
                    columns!(),
                    ", level, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                         $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)
                 ON CONFLICT (call_sid) DO UPDATE SET
                    caller = excluded.caller, called = excluded.called,
                    stir_verstat = excluded.stir_verstat, script = excluded.script,
                    script_version = excluded.script_version, language = excluded.language,
                    step = excluded.step, step_attempts = excluded.step_attempts,
                    step_silences = excluded.step_silences, account_id = excluded.account_id,
                    caller_id_match = excluded.caller_id_match, factors = excluded.factors,
                    failed_attempts = excluded.failed_attempts, category = excluded.category,
                    handoff = excluded.handoff, status = excluded.status,
                    end_reason = excluded.end_reason, started_at = excluded.started_at,
                    verified_at = excluded.verified_at, handed_off_at = excluded.handed_off_at,
                    ended_at = excluded.ended_at, duration_secs = excluded.duration_secs,
                    script_version_no = excluded.script_version_no, state = excluded.state,
                    level = excluded.level, updated_at = excluded.updated_at"
                ),
                &[
                    &call.call_sid,
                    &call.caller,
                    &call.called,
                    &call.stir_verstat,
                    &call.script,
                    &call.script_sha,
                    &call.language,
                    &call.step,
                    &i64::from(call.step_attempts),
                    &i64::from(call.step_silences),
                    &call.account_id,
                    &call.caller_id_match,
                    &factors,
                    &i64::from(call.failed_attempts),
                    &call.department,
                    &call.handoff,
                    &call.status,
                    &call.end_reason,
                    &call.started_at,
                    &call.verified_at,
                    &call.handed_off_at,
                    &call.ended_at,
                    &call.duration_secs,
                    &call.script_version,
                    &state,
                    &call.level().as_str(),
                    &now,
                ],
            )
            .context("saving call")?;
        Ok(())
    }

    fn record_call_status(
        &self,
        call_sid: &str,
        status: &str,
        duration: Option<i64>,
        now: i64,
    ) -> anyhow::Result<()> {
        let terminal = matches!(
            status,
            "completed" | "busy" | "no-answer" | "canceled" | "failed"
        );
        // The same lock as `call`: a webhook of this call deciding on the row right now
        // finishes first, and its save is not undone by this update (nor this by its save).
        self.lock_call(call_sid)?;
        // SQLite's json_set/json_insert in jsonb. Every right-hand side reads the row as it
        // was (`calls.step` is the old step in each CASE), as SQLite's UPDATE does. A JSON
        // null journey counts as none, as json_extract makes it SQL NULL. The document is
        // written back as jsonb's text: the same JSON, keys in jsonb's order.
        self.tx()?
            .execute(
                "INSERT INTO calls (call_sid, caller, script, script_version, language, step, status,
                                    started_at, updated_at)
                 VALUES ($1, 'withheld', '', '', '', 'ended', $2, $4, $4)
                 ON CONFLICT (call_sid) DO UPDATE SET
                    status = $2,
                    duration_secs = COALESCE($3, calls.duration_secs),
                    ended_at = CASE WHEN $5 THEN COALESCE(calls.ended_at, $4) ELSE calls.ended_at END,
                    state = jsonb_set(
                        CASE WHEN $5 AND calls.step NOT IN ('handed_off', 'ended')
                             THEN jsonb_set(calls.state::jsonb, '{last_step}', to_jsonb(calls.step))
                             ELSE calls.state::jsonb END,
                        '{journey}',
                        COALESCE(NULLIF(calls.state::jsonb -> 'journey', 'null'::jsonb), '[]'::jsonb)
                            || jsonb_build_array(jsonb_build_object(
                                   'at', $4::bigint, 'step', calls.step, 'event', 'status',
                                   'detail', $2::text))
                    )::text,
                    step = CASE WHEN $5 AND calls.step NOT IN ('handed_off') THEN 'ended'
                                ELSE calls.step END,
                    end_reason = CASE WHEN $5 AND calls.end_reason IS NULL
                                           AND calls.step NOT IN ('handed_off', 'ended')
                                      THEN 'caller_hung_up' ELSE calls.end_reason END,
                    updated_at = $4",
                &[&call_sid, &status, &duration, &now, &terminal],
            )
            .context("recording call status")?;
        Ok(())
    }

    fn count_calls_with_sid_prefix(&self, prefix: &str) -> anyhow::Result<i64> {
        Ok(self
            .tx()?
            .query_one(
                "SELECT COUNT(*) FROM calls WHERE substr(call_sid, 1, length($1)) = $1",
                &[&prefix],
            )?
            .try_get(0)?)
    }
}
