//! Call state, keyed by CallSid. Each webhook reads the row, decides, and writes it back in one
//! transaction, so a restart between two webhooks loses nothing and a half-decided step is never
//! stored.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use crate::verify::{AssuranceLevel, Factors};

/// `step` of a call that has been handed to an agent.
pub const HANDED_OFF: &str = "handed_off";
/// `step` of a call the IVR has finished with.
pub const ENDED: &str = "ended";

/// What the engine remembers between webhooks besides the step (stored as JSON).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct FlowState {
    /// The department step a step-up verification returns to on success.
    pub return_to: Option<String>,
    /// Department steps whose step-up has been tried (each is offered once per call).
    pub stepped_up: Vec<String>,
    /// The hand-off step the call left the IVR by.
    pub handoff_step: Option<String>,
    /// How the hand-off ended (`DialCallStatus`/`QueueResult`).
    pub handoff_result: Option<String>,
    /// The step the call was at when it ended without an agent (where callers give up).
    pub last_step: Option<String>,
    /// What happened, step by step: the call's journey. Never a digit of a code or answer.
    pub journey: Vec<JourneyEvent>,
    /// What a speech menu heard and made of it (kept for training speech routing; personal
    /// data, erased by the retention purge and `account forget`).
    pub speech: Option<SpeechRecord>,
}

/// One thing that happened in a call.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JourneyEvent {
    /// Milliseconds since the epoch.
    pub at: i64,
    pub step: String,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A journey longer than this stops growing (a caller looping through a menu for an hour).
pub const MAX_JOURNEY: usize = 200;

impl FlowState {
    pub fn note(&mut self, at: i64, step: &str, event: &str, detail: Option<String>) {
        if self.journey.len() < MAX_JOURNEY {
            self.journey.push(JourneyEvent {
                at,
                step: step.to_owned(),
                event: event.to_owned(),
                detail,
            });
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpeechRecord {
    pub text: String,
    /// The gateway's recognition confidence, when it sent one.
    #[serde(default)]
    pub asr_confidence: Option<f64>,
    pub department: Option<String>,
    pub probability: f64,
    pub routed: bool,
}

#[derive(Debug, Clone)]
pub struct Call {
    pub call_sid: String,
    pub caller: String,
    pub called: Option<String>,
    pub stir_verstat: Option<String>,
    pub script: String,
    /// The script's content hash.
    pub script_version: String,
    /// The script's version number in the database.
    pub script_version_no: Option<i64>,
    pub language: String,
    /// The script step the call waits at, or `handed_off` / `ended`.
    pub step: String,
    pub state: FlowState,
    pub step_attempts: u32,
    pub step_silences: u32,
    pub account_id: Option<String>,
    pub caller_id_match: bool,
    pub factors: Factors,
    pub failed_attempts: u32,
    pub category: Option<String>,
    pub handoff: Option<String>,
    pub status: String,
    pub end_reason: Option<String>,
    pub started_at: i64,
    pub verified_at: Option<i64>,
    pub handed_off_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub duration_secs: Option<i64>,
}

impl Call {
    pub fn level(&self) -> AssuranceLevel {
        self.factors.level()
    }

    fn stir(&self) -> Option<crate::domain::StirVerstat> {
        crate::domain::StirVerstat::parse(self.stir_verstat.as_deref())
    }

    /// STIR/SHAKEN reported a failed validation for this call: a spoofing indicator.
    pub fn stir_failed(&self) -> bool {
        self.stir().is_some_and(|s| s.is_failed())
    }

    /// A STIR/SHAKEN value came with the call that nobody could read.
    pub fn stir_unrecognized(&self) -> bool {
        self.stir().is_some_and(|s| s.is_unrecognized())
    }

    /// The caller ID may not count as a factor: STIR/SHAKEN failed, or said something we
    /// cannot read (an attacker who controls the value must not get the benefit of the doubt).
    pub fn stir_discredits_caller_id(&self) -> bool {
        self.stir().is_some_and(|s| s.discredits_caller_id())
    }

    /// Moves to `step`, starting its attempt and silence counts afresh.
    pub fn enter(&mut self, step: &str) {
        self.step = step.to_owned();
        self.step_attempts = 0;
        self.step_silences = 0;
    }
}

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
        script_version: r.get(5)?,
        language: r.get(6)?,
        step: r.get(7)?,
        step_attempts: r.get(8)?,
        step_silences: r.get(9)?,
        account_id: r.get(10)?,
        caller_id_match: r.get(11)?,
        factors: Factors::from_db(&r.get::<_, String>(12)?),
        failed_attempts: r.get(13)?,
        category: r.get(14)?,
        handoff: r.get(15)?,
        status: r.get(16)?,
        end_reason: r.get(17)?,
        started_at: r.get(18)?,
        verified_at: r.get(19)?,
        handed_off_at: r.get(20)?,
        ended_at: r.get(21)?,
        duration_secs: r.get(22)?,
        script_version_no: r.get(23)?,
        // A state this version cannot read (written by a newer one) restarts the bookkeeping,
        // never the call.
        state: serde_json::from_str(&r.get::<_, String>(24)?).unwrap_or_default(),
    })
}

pub fn get(conn: &Connection, call_sid: &str) -> anyhow::Result<Option<Call>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM calls WHERE call_sid = ?1"))?
        .query_row([call_sid], from_row)
        .optional()
        .context("reading call")
}

/// Inserts or replaces the whole row.
pub fn save(conn: &Connection, call: &Call, now: i64) -> anyhow::Result<()> {
    conn.prepare_cached(&format!(
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
        call.script_version,
        call.language,
        call.step,
        call.step_attempts,
        call.step_silences,
        call.account_id,
        call.caller_id_match,
        call.factors.to_db(),
        call.failed_attempts,
        call.category,
        call.handoff,
        call.status,
        call.end_reason,
        call.started_at,
        call.verified_at,
        call.handed_off_at,
        call.ended_at,
        call.duration_secs,
        call.script_version_no,
        serde_json::to_string(&call.state).unwrap_or_else(|_| "{}".into()),
        call.level().as_str(),
        now
    ])
    .context("saving call")?;
    Ok(())
}

/// Records what the status callback reports. A callback for a call callgate never saw (its
/// first webhook failed, say) still leaves a record, so no call goes unaccounted.
pub fn record_status(
    conn: &Connection,
    call_sid: &str,
    status: &str,
    duration: Option<i64>,
    now: i64,
) -> anyhow::Result<()> {
    let terminal = matches!(
        status,
        "completed" | "busy" | "no-answer" | "canceled" | "failed"
    );
    conn.prepare_cached(
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
