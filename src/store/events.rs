//! What the agent console follows: numbered call events (`call_events.seq` is the SSE event id)
//! and each call's queue status. Events are written in the webhook's own transaction, so an
//! event exists exactly when the change it announces was committed.

/// The call was handed to a department and waits for an agent.
pub const WAITING: &str = "waiting";
/// An agent took the call (the hand-off reported a bridge, or an agent recorded an outcome).
pub const ANSWERED: &str = "answered";
/// The caller hung up while waiting.
pub const ABANDONED: &str = "abandoned";
/// Nobody answered: no agent, queue full, busy line.
pub const UNANSWERED: &str = "unanswered";
/// The answered call has ended.
pub const ENDED: &str = "ended";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Handoff,
    Status,
    Outcome,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Handoff => "handoff",
            Self::Status => "status",
            Self::Outcome => "outcome",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "handoff" => Self::Handoff,
            "outcome" => Self::Outcome,
            _ => Self::Status,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CallEvent {
    pub seq: i64,
    pub call_sid: String,
    pub kind: Kind,
    pub department: Option<String>,
    pub at: i64,
}

pub trait EventsDb {
    /// Appends an event; returns its number.
    fn append_call_event(
        &self,
        call_sid: &str,
        kind: Kind,
        department: Option<&str>,
        now: i64,
    ) -> anyhow::Result<i64>;

    /// The newest event number (0 before the first).
    fn last_event_seq(&self) -> anyhow::Result<i64>;

    /// Events after `after`, oldest first, at most `limit`; only those of `departments` unless
    /// that is `None` (admins, and agents serving every department). Also returns the number
    /// of the last event looked at (visible or not), where the next read starts.
    fn call_events_since(
        &self,
        after: i64,
        departments: Option<&[String]>,
        limit: u32,
    ) -> anyhow::Result<(Vec<CallEvent>, i64)>;

    fn queue_status(&self, call_sid: &str) -> anyhow::Result<Option<String>>;

    fn set_queue_status(&self, call_sid: &str, status: &str, now: i64) -> anyhow::Result<()>;

    /// Calls waiting for an agent, oldest first: `(call_sid, department)`.
    fn waiting_calls(&self, limit: u32) -> anyhow::Result<Vec<(String, Option<String>)>>;

    /// Calls handed off since `since` whose wait is over, newest first (the console's
    /// "recent" list): `(call_sid, department)`.
    fn recent_handoffs(
        &self,
        since: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<(String, Option<String>)>>;
}

/// Whether a call filed under `department` is for someone serving `departments`.
pub fn visible(departments: Option<&[String]>, department: Option<&str>) -> bool {
    match departments {
        None => true,
        Some(list) => department.is_some_and(|d| list.iter().any(|x| x == d)),
    }
}
