//! reports on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::reports::*;
use std::collections::BTreeMap;

impl ReportsDb for PgDb<'_> {
    fn funnel_days(&self, _from: i64, _to: i64) -> anyhow::Result<Vec<FunnelDay>> {
        Err(not_yet())
    }

    fn funnel_ends(&self, _from: i64, _to: i64) -> anyhow::Result<Vec<FunnelEnd>> {
        Err(not_yet())
    }

    fn failures_by_kind(&self, _from: i64, _to: i64) -> anyhow::Result<Vec<FailureCount>> {
        Err(not_yet())
    }

    fn handoff_times(&self, _from: i64, _to: i64) -> anyhow::Result<Vec<(String, i64, i64)>> {
        Err(not_yet())
    }

    fn account_department_calls(
        &self,
        _from: i64,
        _to: i64,
    ) -> anyhow::Result<Vec<(String, String, i64)>> {
        Err(not_yet())
    }

    fn categorised_calls(
        &self,
        _from: i64,
        _to: i64,
    ) -> anyhow::Result<Vec<(String, BTreeMap<String, String>)>> {
        Err(not_yet())
    }

    fn security_events(&self, _from: i64, _to: i64) -> anyhow::Result<Vec<SecurityEvent>> {
        Err(not_yet())
    }

    fn suspicious_callers(&self, _from: i64, _to: i64) -> anyhow::Result<Vec<SuspiciousCaller>> {
        Err(not_yet())
    }

    fn signal_counts(&self, _from: i64, _to: i64) -> anyhow::Result<SignalCounts> {
        Err(not_yet())
    }

    fn busy_minutes(
        &self,
        _from: i64,
        _to: i64,
        _threshold: u32,
    ) -> anyhow::Result<Vec<BusyMinute>> {
        Err(not_yet())
    }
}
