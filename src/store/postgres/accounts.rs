//! accounts on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::domain::{AccountCode, AccountId, AccountName, PhoneNumber};
use crate::store::Db;
use crate::store::accounts::*;
use crate::verify::Keyring;
use std::collections::BTreeMap;

impl AccountsDb for PgDb<'_> {
    fn add_account(
        &self,
        _keys: &Keyring,
        _new: &NewAccount<'_>,
        _now: i64,
    ) -> Result<(), AddAccountError> {
        Err(not_yet().into())
    }

    fn insert_account(
        &self,
        _keys: &Keyring,
        _new: &NewAccount<'_>,
        _now: i64,
    ) -> anyhow::Result<()> {
        Err(not_yet())
    }

    fn account(&self, _id: &str) -> anyhow::Result<Option<Account>> {
        Err(not_yet())
    }

    fn accounts(&self) -> anyhow::Result<Vec<Account>> {
        Err(not_yet())
    }

    fn search_accounts(&self, _query: &str, _limit: u32) -> anyhow::Result<Vec<Account>> {
        Err(not_yet())
    }

    fn remove_account(&self, _id: &str) -> anyhow::Result<bool> {
        Err(not_yet())
    }

    fn set_account_phone(
        &self,
        _id: &str,
        _phone: &PhoneNumber,
        _now: i64,
    ) -> anyhow::Result<bool> {
        Err(not_yet())
    }

    fn account_ids_on_phone(&self, _phone: &str) -> anyhow::Result<Vec<String>> {
        Err(not_yet())
    }

    fn find_account_by_code(&self, _keys: &Keyring, _code: &str) -> anyhow::Result<Option<String>> {
        Err(not_yet())
    }

    fn totp_secret(
        &self,
        _keys: &Keyring,
        _id: &str,
    ) -> anyhow::Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        Err(not_yet())
    }

    fn advance_totp_step(&self, _id: &str, _step: u64) -> anyhow::Result<bool> {
        Err(not_yet())
    }

    fn account_history(&self, _id: &str) -> anyhow::Result<AccountHistory> {
        Err(not_yet())
    }

    fn count_accounts(&self) -> anyhow::Result<i64> {
        Err(not_yet())
    }

    fn count_real_accounts(&self) -> anyhow::Result<i64> {
        Err(not_yet())
    }

    fn count_accounts_with_id_prefix(&self, _prefix: &str) -> anyhow::Result<i64> {
        Err(not_yet())
    }
}
