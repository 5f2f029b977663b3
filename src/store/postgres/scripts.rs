//! scripts on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::scripts::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

impl ScriptsDb for PgDb<'_> {
    fn add_script_version(
        &self,
        _name: &str,
        _source: &str,
        _origin: &str,
        _author: &str,
        _now: i64,
    ) -> anyhow::Result<i64> {
        Err(not_yet())
    }

    fn latest_script(&self, _name: &str) -> anyhow::Result<Option<(i64, String)>> {
        Err(not_yet())
    }

    fn script_has_source(&self, _name: &str, _source: &str) -> anyhow::Result<bool> {
        Err(not_yet())
    }

    fn script_source(&self, _name: &str, _version: i64) -> anyhow::Result<Option<String>> {
        Err(not_yet())
    }

    fn publish_script(
        &self,
        _name: &str,
        _version: i64,
        _actor: &str,
        _now: i64,
    ) -> anyhow::Result<()> {
        Err(not_yet())
    }

    fn published_version(&self, _name: &str) -> anyhow::Result<Option<i64>> {
        Err(not_yet())
    }

    fn published_scripts(&self) -> anyhow::Result<Vec<(String, i64, String)>> {
        Err(not_yet())
    }

    fn scripts(&self) -> anyhow::Result<Vec<ScriptRow>> {
        Err(not_yet())
    }

    fn script_versions(&self, _name: &str) -> anyhow::Result<Vec<Version>> {
        Err(not_yet())
    }
}
