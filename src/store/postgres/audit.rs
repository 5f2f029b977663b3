//! audit on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::audit::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

impl AuditDb for PgDb<'_> {
    fn append_audit(
        &self,
        _actor: &str,
        _action: &str,
        _subject: &str,
        _detail: &str,
        _now: i64,
    ) -> anyhow::Result<i64> {
        Err(not_yet())
    }

    fn recent_audit(&self, _subject: Option<&str>, _limit: u32) -> anyhow::Result<Vec<Entry>> {
        Err(not_yet())
    }

    fn verify_audit(&self) -> anyhow::Result<Verdict> {
        Err(not_yet())
    }

    fn purge_audit_before(&self, _cutoff: i64, _now: i64) -> anyhow::Result<i64> {
        Err(not_yet())
    }

    fn last_audit_seq(&self, _action: &str) -> anyhow::Result<i64> {
        Err(not_yet())
    }
}
