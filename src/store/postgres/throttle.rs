//! throttle on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::throttle::*;

impl ThrottleDb for PgDb<'_> {
    fn account_locked(&self, _account_id: &str, _now: i64) -> anyhow::Result<bool> {
        Err(not_yet())
    }

    fn number_locked(&self, _caller: &str, _now: i64) -> anyhow::Result<bool> {
        Err(not_yet())
    }

    fn log_failure(
        &self,
        _caller: &str,
        _account: Option<&str>,
        _call_sid: &str,
        _kind: FailureKind,
        _now: i64,
    ) -> anyhow::Result<()> {
        Err(not_yet())
    }

    fn bump_account_failures(&self, _account_id: &str) -> anyhow::Result<Option<u32>> {
        Err(not_yet())
    }

    fn lock_account(&self, _account_id: &str, _until: i64, _now: i64) -> anyhow::Result<()> {
        Err(not_yet())
    }

    fn failures_from_number_since(&self, _caller: &str, _since: i64) -> anyhow::Result<u32> {
        Err(not_yet())
    }

    fn lock_number(&self, _caller: &str, _until: i64) -> anyhow::Result<()> {
        Err(not_yet())
    }

    fn count_failure_last_minute(&self, _now: i64) -> anyhow::Result<i64> {
        Err(not_yet())
    }

    fn reset_account_failures(&self, _account_id: &str) -> anyhow::Result<()> {
        Err(not_yet())
    }

    fn unlock_account(&self, _account_id: &str) -> anyhow::Result<bool> {
        Err(not_yet())
    }

    fn recent_account_failures(&self, _account_id: &str, _since_ms: i64) -> anyhow::Result<i64> {
        Err(not_yet())
    }
}
