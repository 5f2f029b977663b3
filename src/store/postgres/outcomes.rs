//! outcomes on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::outcomes::*;

impl OutcomesDb for PgDb<'_> {
    fn record_outcome(&self, _call_sid: &str, _outcome: &Outcome) -> anyhow::Result<()> {
        Err(not_yet())
    }

    fn outcome(&self, _call_sid: &str) -> anyhow::Result<Option<Outcome>> {
        Err(not_yet())
    }

    fn recent_calls_of(
        &self,
        _account_id: &str,
        _except: &str,
        _limit: u32,
    ) -> anyhow::Result<Vec<PastCall>> {
        Err(not_yet())
    }
}
