//! privacy on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::privacy::*;
use serde::Serialize;
use serde_json::Value;

impl PrivacyDb for PgDb<'_> {
    fn purge_retention(&self, _retention: &Retention, _now: i64) -> anyhow::Result<Purged> {
        Err(not_yet())
    }

    fn export_account(&self, _id: &str) -> anyhow::Result<Value> {
        Err(not_yet())
    }

    fn forget_account(&self, _id: &str, _actor: &str, _now: i64) -> anyhow::Result<Forgotten> {
        Err(not_yet())
    }
}
