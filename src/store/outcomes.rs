//! What the agent recorded about a call: resolved or not, the confirmed category, a note and
//! the "recurring problem" tag. Kept with the call for the reports.

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Outcome {
    pub resolved: bool,
    pub category: String,
    pub note: String,
    pub recurring: bool,
    pub agent: String,
    pub at: i64,
}

/// One earlier call of an account, as the screen-pop lists it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PastCall {
    pub call_sid: String,
    pub started_at: i64,
    pub department: Option<String>,
    pub queue_status: Option<String>,
    pub outcome: Option<Outcome>,
}

pub trait OutcomesDb {
    /// Stores (or replaces) the call's outcome.
    fn record_outcome(&self, call_sid: &str, outcome: &Outcome) -> anyhow::Result<()>;

    fn outcome(&self, call_sid: &str) -> anyhow::Result<Option<Outcome>>;

    /// The account's latest calls other than `except`, newest first, with their outcomes.
    fn recent_calls_of(
        &self,
        account_id: &str,
        except: &str,
        limit: u32,
    ) -> anyhow::Result<Vec<PastCall>>;
}
