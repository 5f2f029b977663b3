//! outbox on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::outbox::*;

impl OutboxDb for PgDb<'_> {
    fn enqueue_crm(&self, _call_sid: &str, _body: &str, _now: i64) -> anyhow::Result<i64> {
        Err(not_yet())
    }

    fn due_crm_deliveries(&self, _now: i64, _limit: u32) -> anyhow::Result<Vec<Delivery>> {
        Err(not_yet())
    }

    fn next_crm_due(&self) -> anyhow::Result<Option<i64>> {
        Err(not_yet())
    }

    fn crm_delivered(&self, _id: i64, _attempts: u32, _now: i64) -> anyhow::Result<()> {
        Err(not_yet())
    }

    fn crm_failed(
        &self,
        _id: i64,
        _attempts: u32,
        _error: &str,
        _retry_at: Option<i64>,
        _now: i64,
    ) -> anyhow::Result<()> {
        Err(not_yet())
    }

    fn purge_crm_deliveries(&self, _before: i64) -> anyhow::Result<usize> {
        Err(not_yet())
    }
}
