//! The rows the admin reports are computed from (`crate::reports` turns them into tables).
//! Every period is `[from, to)` in milliseconds since the epoch. Numbers leave here as stored;
//! the reports mask them.

use std::collections::BTreeMap;

/// Calls of one day and script version, by how far they got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunnelDay {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub script: String,
    /// 0 when the call row has no version number.
    pub version: i64,
    pub called: i64,
    pub identified: i64,
    pub level_low: i64,
    pub level_medium: i64,
    pub level_high: i64,
    pub verified: i64,
    pub handed_off: i64,
    /// Ended by the caller before an agent took them (hung up in the IVR, or left the queue).
    pub abandoned: i64,
}

/// Calls that reached no agent, by how and where they ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelEnd {
    pub script: String,
    pub version: i64,
    /// `in progress` when the call has not ended.
    pub end_reason: String,
    /// The step where the caller left (the step the call is at, if none was recorded).
    pub last_step: String,
    pub calls: i64,
}

/// Failed entries of one kind (`account_code`, `totp`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureCount {
    pub kind: String,
    pub failures: i64,
    /// Distinct calls they happened in.
    pub calls: i64,
}

/// A calling number seen with repeated failures or several accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspiciousCaller {
    /// As stored: the report masks it.
    pub caller: String,
    pub calls: i64,
    pub accounts: i64,
    pub failures: i64,
}

/// Security signals over a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalCounts {
    pub stir_failed_calls: i64,
    pub totp_replays: i64,
    pub failed_entries: i64,
}

/// A minute with many failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyMinute {
    /// The minute's start, in milliseconds since the epoch.
    pub start: i64,
    pub failures: i64,
    /// Distinct calling numbers.
    pub numbers: i64,
}

/// An audit entry as the security report lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    pub at: i64,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

pub trait ReportsDb {
    /// Per day and script version, ordered by day, script, version.
    fn funnel_days(&self, from: i64, to: i64) -> anyhow::Result<Vec<FunnelDay>>;

    /// Calls that were never handed off, most frequent ending first.
    fn funnel_ends(&self, from: i64, to: i64) -> anyhow::Result<Vec<FunnelEnd>>;

    /// Failed entries by kind, most frequent first.
    fn failures_by_kind(&self, from: i64, to: i64) -> anyhow::Result<Vec<FailureCount>>;

    /// `(script, version, milliseconds from answer to hand-off)` of every handed-off call,
    /// ordered by script, version, time.
    fn handoff_times(&self, from: i64, to: i64) -> anyhow::Result<Vec<(String, i64, i64)>>;

    /// `(account, department, started_at)` of every identified call filed under a department,
    /// ordered by account, department, time.
    fn account_department_calls(
        &self,
        from: i64,
        to: i64,
    ) -> anyhow::Result<Vec<(String, String, i64)>>;

    /// For every call of an account with a category (the one agents confirmed when they did,
    /// else the department the call was routed to): the category and the account's
    /// attributes.
    fn categorised_calls(
        &self,
        from: i64,
        to: i64,
    ) -> anyhow::Result<Vec<(String, BTreeMap<String, String>)>>;

    /// The audit trail's `security.*` entries, oldest first.
    fn security_events(&self, from: i64, to: i64) -> anyhow::Result<Vec<SecurityEvent>>;

    /// Numbers that identified 2 or more accounts or failed 3 or more entries: most failures
    /// first, at most 200.
    fn suspicious_callers(&self, from: i64, to: i64) -> anyhow::Result<Vec<SuspiciousCaller>>;

    fn signal_counts(&self, from: i64, to: i64) -> anyhow::Result<SignalCounts>;

    /// Minutes with at least `threshold` failures, oldest first.
    fn busy_minutes(&self, from: i64, to: i64, threshold: u32) -> anyhow::Result<Vec<BusyMinute>>;
}
