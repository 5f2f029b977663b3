//! settings on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::settings::*;
use std::collections::BTreeMap;

impl SettingsDb for PgDb<'_> {
    fn visible_attributes(&self) -> anyhow::Result<Option<Vec<String>>> {
        Err(not_yet())
    }

    fn set_visible_attributes(&self, _keys: Option<&[String]>, _now: i64) -> anyhow::Result<()> {
        Err(not_yet())
    }
}
