//! The memory of the guessing limits: failures per account (a consecutive count on the account
//! row), per calling number (events in a sliding window) and across the system (per minute), and
//! the locks. The store only counts and records; what the counts mean (the thresholds, when to
//! lock, what to audit) is decided in `crate::verify::guessing`.

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

    /// Records one failed verification from `caller` (its throttle key) in the failure log,
    /// under the account the call was about, if any.
    fn log_failure(
        &self,
        caller: &str,
        account: Option<&str>,
        call_sid: &str,
        kind: FailureKind,
        now: i64,
    ) -> anyhow::Result<()>;

    /// Adds one to the account's failures in a row: the new count (`None`: no such account).
    fn bump_account_failures(&self, account_id: &str) -> anyhow::Result<Option<u32>>;

    /// Locks the account's keypad verification until `until` and starts its count afresh, so
    /// that after the lock the next run of failures locks again.
    fn lock_account(&self, account_id: &str, until: i64, now: i64) -> anyhow::Result<()>;

    /// Failures logged from `caller` after `since`.
    fn failures_from_number_since(&self, caller: &str, since: i64) -> anyhow::Result<u32>;

    /// Locks the calling number until `until` (or later, if it is locked longer already).
    /// `true` when this started the lock: the number was not locked at `now`. Of several
    /// connections (nodes) locking one number at once, exactly one is told it started it, so
    /// the lock is reported once.
    fn lock_number(&self, caller: &str, until: i64, now: i64) -> anyhow::Result<bool>;

    /// Counts one failure across the system and returns the failures of the last 60 s.
    fn count_failure_last_minute(&self, now: i64) -> anyhow::Result<i64>;

    /// Takes the turn to raise the guessing alert: `true` (and `now` recorded) when nobody on
    /// this database raised it in the `quiet_ms` before `now`. Every node shares it, so the
    /// alert goes out once per period for the desk, not once per node; of several at once,
    /// one gets `true`.
    fn claim_alert(&self, now: i64, quiet_ms: i64) -> anyhow::Result<bool>;

    /// A completed verification forgives the account's earlier failures.
    fn reset_account_failures(&self, account_id: &str) -> anyhow::Result<()>;

    /// Lifts an account's lock and forgets its failures; `false` if there is no such account.
    fn unlock_account(&self, account_id: &str) -> anyhow::Result<bool>;

    /// The failures counted against the account since `since_ms`, for the screen-pop's risk
    /// flags.
    fn recent_account_failures(&self, account_id: &str, since_ms: i64) -> anyhow::Result<i64>;
}
