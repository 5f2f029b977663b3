//! The memory of the guessing limits (see `crate::verify::Limits`): failures per account (a
//! consecutive count on the account row), per calling number (events in a sliding window, then
//! a lock), and across the system (events per minute, for the alert).

use crate::verify::Limits;

/// What one more failure led to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureOutcome {
    /// Accounts whose keypad verification this failure locked.
    pub accounts_locked: Vec<String>,
    /// The failure started a lock of the calling number (not set while it stays locked).
    pub number_locked: bool,
    /// Failures across the system in the last minute, when above the alert threshold.
    pub global_alert: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
pub enum FailureKind {
    AccountCode,
    Totp,
    /// A right TOTP code used a second time (a replay): counted like a wrong one.
    TotpReplay,
    Knowledge,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccountCode => "account_code",
            Self::Totp => "totp",
            Self::TotpReplay => "totp_replay",
            Self::Knowledge => "knowledge",
        }
    }
}

pub trait ThrottleDb {
    /// Whether the account's keypad verification is locked at `now`.
    fn account_locked(&self, account_id: &str, now: i64) -> anyhow::Result<bool>;

    /// Whether the calling number (its throttle key) is locked at `now`.
    fn number_locked(&self, caller: &str, now: i64) -> anyhow::Result<bool>;

    /// Counts one failed verification from `caller` against `accounts` (the accounts the call
    /// is about: those on the caller ID at the code step, the identified one at the TOTP step)
    /// and applies `limits`: what it led to.
    fn record_failure(
        &self,
        limits: &Limits,
        caller: &str,
        accounts: &[String],
        call_sid: &str,
        kind: FailureKind,
        now: i64,
    ) -> anyhow::Result<FailureOutcome>;

    /// A completed verification forgives the account's earlier failures.
    fn reset_account_failures(&self, account_id: &str) -> anyhow::Result<()>;

    /// Lifts an account's lock and forgets its failures; `false` if there is no such account.
    fn unlock_account(&self, account_id: &str) -> anyhow::Result<bool>;

    /// The failures counted against the account since `since_ms`, for the screen-pop's risk
    /// flags.
    fn recent_account_failures(&self, account_id: &str, since_ms: i64) -> anyhow::Result<i64>;
}
