//! events on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::events::*;

impl EventsDb for PgDb<'_> {
    fn append_call_event(
        &self,
        _call_sid: &str,
        _kind: Kind,
        _department: Option<&str>,
        _now: i64,
    ) -> anyhow::Result<i64> {
        Err(not_yet())
    }

    fn last_event_seq(&self) -> anyhow::Result<i64> {
        Err(not_yet())
    }

    fn call_events_since(
        &self,
        _after: i64,
        _departments: Option<&[String]>,
        _limit: u32,
    ) -> anyhow::Result<(Vec<CallEvent>, i64)> {
        Err(not_yet())
    }

    fn queue_status(&self, _call_sid: &str) -> anyhow::Result<Option<String>> {
        Err(not_yet())
    }

    fn set_queue_status(&self, _call_sid: &str, _status: &str, _now: i64) -> anyhow::Result<()> {
        Err(not_yet())
    }

    fn waiting_calls(&self, _limit: u32) -> anyhow::Result<Vec<(String, Option<String>)>> {
        Err(not_yet())
    }

    fn recent_handoffs(
        &self,
        _since: i64,
        _limit: u32,
    ) -> anyhow::Result<Vec<(String, Option<String>)>> {
        Err(not_yet())
    }
}
