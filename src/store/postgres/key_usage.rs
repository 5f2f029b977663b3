//! key usage on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::Db;
use crate::store::key_usage::*;
use crate::verify::Keyring;
use anyhow::bail;
use std::collections::BTreeMap;

impl KeysDb for PgDb<'_> {
    fn key_usage(&self, _now: i64) -> anyhow::Result<BTreeMap<u32, Usage>> {
        Err(not_yet())
    }

    fn totp_samples(&self) -> anyhow::Result<Vec<(String, Vec<u8>, u32)>> {
        Err(not_yet())
    }

    fn reseal_totp_secrets(&self, _keys: &Keyring) -> anyhow::Result<u64> {
        Err(not_yet())
    }
}
