//! Call state, keyed by CallSid. Each webhook reads the row, decides, and writes it back in one
//! transaction, so a restart between two webhooks loses nothing and a half-decided step is never
//! stored.

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
    /// The script's content hash (the `script_version` column, which predates version numbers).
    pub script_sha: String,
    /// The script's version number in the database (the `script_version_no` column); `None`
    /// for a call row a status callback wrote alone.
    pub script_version: Option<i64>,
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
    /// The department the call is filed under (its column is still named `category`).
    pub department: Option<String>,
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

pub trait CallsDb {
    fn call(&self, call_sid: &str) -> anyhow::Result<Option<Call>>;

    /// Inserts or replaces the whole row.
    fn save_call(&self, call: &Call, now: i64) -> anyhow::Result<()>;

    /// Records what the status callback reports. A callback for a call callgate never saw (its
    /// first webhook failed, say) still leaves a record, so no call goes unaccounted. A
    /// terminal status ends the call: the step it was at is remembered as where the caller
    /// left (`last_step`), unless it had been handed off, and the journey notes the status.
    fn record_call_status(
        &self,
        call_sid: &str,
        status: &str,
        duration: Option<i64>,
        now: i64,
    ) -> anyhow::Result<()>;

    /// How many call sids start with `prefix` (the load test's history).
    fn count_calls_with_sid_prefix(&self, prefix: &str) -> anyhow::Result<i64>;
}
