//! call codes on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::call_codes::*;
use crate::verify::Keyring;
use zeroize::Zeroizing;

impl CallCodesDb for PgDb<'_> {
    fn issue_call_code(
        &self,
        _keys: &Keyring,
        _account_id: &str,
        _ttl_ms: i64,
        _now: i64,
    ) -> anyhow::Result<Zeroizing<String>> {
        Err(not_yet())
    }

    fn find_live_call_code(
        &self,
        _keys: &Keyring,
        _code: &str,
        _now: i64,
    ) -> anyhow::Result<Option<(i64, String)>> {
        Err(not_yet())
    }

    fn consume_call_code(&self, _id: i64, _call_sid: &str, _now: i64) -> anyhow::Result<bool> {
        Err(not_yet())
    }
}
