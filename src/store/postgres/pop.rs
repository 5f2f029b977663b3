//! pop on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::pop::*;

impl PopDb for PgDb<'_> {
    fn bind_pop_url(
        &self,
        _token_hash: &[u8],
        _binding_hash: &[u8],
        _call_sid: &str,
        _now: i64,
        _expires_at: i64,
    ) -> anyhow::Result<PopBinding> {
        Err(not_yet())
    }
}
