//! Key versions in use, on PostgreSQL.

use std::collections::BTreeMap;

use anyhow::Context;
use postgres::types::ToSql;

use super::PgDb;
use super::accounts::key_version;
use crate::store::key_usage::{KeysDb, Usage};
use crate::verify::Keyring;

impl PgDb<'_> {
    /// Adds the `(version, count)` rows of `sql` to `field` of each version's usage.
    fn add_usage(
        &self,
        usage: &mut BTreeMap<u32, Usage>,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        field: fn(&mut Usage) -> &mut u64,
    ) -> anyhow::Result<()> {
        for row in self.tx()?.query(sql, params)? {
            let version = key_version(row.try_get(0)?)?;
            let n = u64::try_from(row.try_get::<_, i64>(1)?)?;
            *field(usage.entry(version).or_default()) += n;
        }
        Ok(())
    }
}

impl KeysDb for PgDb<'_> {
    fn key_usage(&self, now: i64) -> anyhow::Result<BTreeMap<u32, Usage>> {
        let mut usage: BTreeMap<u32, Usage> = BTreeMap::new();
        self.add_usage(
            &mut usage,
            "SELECT code_key_version, COUNT(*) FROM accounts WHERE code_hash IS NOT NULL GROUP BY 1",
            &[],
            |u| &mut u.account_codes,
        )
        .context("counting account codes")?;
        self.add_usage(
            &mut usage,
            "SELECT totp_key_version, COUNT(*) FROM accounts WHERE totp_secret IS NOT NULL GROUP BY 1",
            &[],
            |u| &mut u.totp_secrets,
        )
        .context("counting TOTP secrets")?;
        self.add_usage(
            &mut usage,
            "SELECT key_version, COUNT(*) FROM call_codes WHERE used_at IS NULL AND expires_at > $1 GROUP BY 1",
            &[&now],
            |u| &mut u.live_call_codes,
        )
        .context("counting call codes")?;
        self.add_usage(
            &mut usage,
            "SELECT key_version, COUNT(*) FROM account_knowledge GROUP BY 1",
            &[],
            |u| &mut u.knowledge_answers,
        )
        .context("counting knowledge answers")?;
        Ok(usage)
    }

    fn totp_samples(&self) -> anyhow::Result<Vec<(String, Vec<u8>, u32)>> {
        // SQLite takes the lowest rowid per version; PostgreSQL has no rowid: the oldest
        // account per version stands in (any one sample per version serves).
        let rows = self.tx()?.query(
            "SELECT DISTINCT ON (totp_key_version) id, totp_secret, totp_key_version
             FROM accounts WHERE totp_secret IS NOT NULL
             ORDER BY totp_key_version, created_at, id",
            &[],
        )?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, key_version(r.try_get(2)?)?)))
            .collect()
    }

    fn reseal_totp_secrets(&self, keys: &Keyring) -> anyhow::Result<u64> {
        let current = keys.current_version();
        // FOR UPDATE: a call re-sealing one of these secrets on another node (`totp_secret`)
        // waits for this transaction instead of racing it.
        let rows = self.tx()?.query(
            "SELECT id, totp_secret, totp_key_version FROM accounts
             WHERE totp_secret IS NOT NULL AND totp_key_version IS DISTINCT FROM $1
             FOR UPDATE",
            &[&i64::from(current)],
        )?;
        let mut n = 0;
        for row in rows {
            let id: String = row.try_get(0)?;
            let sealed: Vec<u8> = row.try_get(1)?;
            let version = key_version(row.try_get(2)?)?;
            let secret = keys
                .decrypt(version, &sealed, &id)
                .with_context(|| format!("the TOTP secret of account {id} (key v{version})"))?;
            let (v, resealed) = keys.encrypt(&secret, &id)?;
            self.tx()?.execute(
                "UPDATE accounts SET totp_secret = $2, totp_key_version = $3 WHERE id = $1",
                &[&id, &resealed.as_slice(), &i64::from(v)],
            )?;
            n += 1;
        }
        Ok(n)
    }
}
