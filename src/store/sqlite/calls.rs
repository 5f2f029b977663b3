//! Calls in SQLite.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::calls::{Call, CallsDb};
use crate::verify::Factors;

const COLUMNS: &str = "call_sid, caller, called, stir_verstat, script, script_version, language, step, \
    step_attempts, step_silences, account_id, caller_id_match, factors, failed_attempts, category, handoff, \
    status, end_reason, started_at, verified_at, handed_off_at, ended_at, duration_secs, script_version_no, state";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Call> {
    Ok(Call {
        call_sid: r.get(0)?,
        caller: r.get(1)?,
        called: r.get(2)?,
        stir_verstat: r.get(3)?,
        script: r.get(4)?,
        script_sha: r.get(5)?,
        language: r.get(6)?,
        step: r.get(7)?,
        step_attempts: r.get(8)?,
        step_silences: r.get(9)?,
        account_id: r.get(10)?,
        caller_id_match: r.get(11)?,
        factors: Factors::from_db(&r.get::<_, String>(12)?),
        failed_attempts: r.get(13)?,
        department: r.get(14)?,
        handoff: r.get(15)?,
        status: r.get(16)?,
        end_reason: r.get(17)?,
        started_at: r.get(18)?,
        verified_at: r.get(19)?,
        handed_off_at: r.get(20)?,
        ended_at: r.get(21)?,
        duration_secs: r.get(22)?,
        script_version: r.get(23)?,
        // A state this version cannot read (written by a newer one) restarts the bookkeeping,
        // never the call.
        state: serde_json::from_str(&r.get::<_, String>(24)?).unwrap_or_default(),
    })
}

impl CallsDb for Connection {
    fn call(&self, call_sid: &str) -> anyhow::Result<Option<Call>> {
        self.prepare_cached(&format!("SELECT {COLUMNS} FROM calls WHERE call_sid = ?1"))?
            .query_row([call_sid], from_row)
            .optional()
            .context("reading call")
    }

    fn save_call(&self, call: &Call, now: i64) -> anyhow::Result<()> {
        self.prepare_cached(&format!(
        // An upsert, not INSERT OR REPLACE: REPLACE deletes and re-inserts the row, rewriting
        // its index entries on every webhook.
        "INSERT INTO calls ({COLUMNS}, level, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)
         ON CONFLICT(call_sid) DO UPDATE SET
            caller = excluded.caller, called = excluded.called, stir_verstat = excluded.stir_verstat,
            script = excluded.script, script_version = excluded.script_version, language = excluded.language,
            step = excluded.step, step_attempts = excluded.step_attempts, step_silences = excluded.step_silences,
            account_id = excluded.account_id, caller_id_match = excluded.caller_id_match,
            factors = excluded.factors, failed_attempts = excluded.failed_attempts,
            category = excluded.category, handoff = excluded.handoff, status = excluded.status,
            end_reason = excluded.end_reason, started_at = excluded.started_at,
            verified_at = excluded.verified_at, handed_off_at = excluded.handed_off_at,
            ended_at = excluded.ended_at, duration_secs = excluded.duration_secs,
            script_version_no = excluded.script_version_no, state = excluded.state,
            level = excluded.level, updated_at = excluded.updated_at"
    ))?
    .execute(params![
        call.call_sid,
        call.caller,
        call.called,
        call.stir_verstat,
        call.script,
        call.script_sha,
        call.language,
        call.step,
        call.step_attempts,
        call.step_silences,
        call.account_id,
        call.caller_id_match,
        call.factors.to_db(),
        call.failed_attempts,
        call.department,
        call.handoff,
        call.status,
        call.end_reason,
        call.started_at,
        call.verified_at,
        call.handed_off_at,
        call.ended_at,
        call.duration_secs,
        call.script_version,
        serde_json::to_string(&call.state).unwrap_or_else(|_| "{}".into()),
        call.level().as_str(),
        now
    ])
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
        self.prepare_cached(
        "INSERT INTO calls (call_sid, caller, script, script_version, language, step, status, started_at, updated_at)
         VALUES (?1, 'withheld', '', '', '', 'ended', ?2, ?4, ?4)
         ON CONFLICT(call_sid) DO UPDATE SET
            status = ?2,
            duration_secs = COALESCE(?3, duration_secs),
            ended_at = CASE WHEN ?5 THEN COALESCE(ended_at, ?4) ELSE ended_at END,
            state = json_set(
                CASE WHEN ?5 AND step NOT IN ('handed_off', 'ended')
                     THEN json_set(state, '$.last_step', step) ELSE state END,
                '$.journey',
                json_insert(
                    COALESCE(json_extract(state, '$.journey'), json_array()),
                    '$[#]',
                    json_object('at', ?4, 'step', step, 'event', 'status', 'detail', ?2)
                )
            ),
            step = CASE WHEN ?5 AND step NOT IN ('handed_off') THEN 'ended' ELSE step END,
            end_reason = CASE WHEN ?5 AND end_reason IS NULL AND step NOT IN ('handed_off', 'ended')
                              THEN 'caller_hung_up' ELSE end_reason END,
            updated_at = ?4",
    )?
    .execute(params![call_sid, status, duration, now, terminal])
    .context("recording call status")?;
        Ok(())
    }

    fn count_calls_with_sid_prefix(&self, prefix: &str) -> anyhow::Result<i64> {
        Ok(self.query_row(
            "SELECT COUNT(*) FROM calls WHERE substr(call_sid, 1, length(?1)) = ?1",
            [prefix],
            |r| r.get(0),
        )?)
    }
}
