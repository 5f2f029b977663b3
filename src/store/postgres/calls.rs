//! calls on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::calls::*;
use crate::verify::{AssuranceLevel, Factors};

impl CallsDb for PgDb<'_> {
    fn call(&self, _call_sid: &str) -> anyhow::Result<Option<Call>> {
        Err(not_yet())
    }

    fn save_call(&self, _call: &Call, _now: i64) -> anyhow::Result<()> {
        Err(not_yet())
    }

    fn record_call_status(
        &self,
        _call_sid: &str,
        _status: &str,
        _duration: Option<i64>,
        _now: i64,
    ) -> anyhow::Result<()> {
        Err(not_yet())
    }

    fn count_calls_with_sid_prefix(&self, _prefix: &str) -> anyhow::Result<i64> {
        Err(not_yet())
    }
}
