//! Key versions in use, on PostgreSQL.

use std::collections::BTreeMap;

use anyhow::Context;
use postgres::types::ToSql;

use super::PgDb;
use super::accounts::key_version;
use crate::store::key_usage::{KeysDb, Usage, WrappedKey};
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

    fn key_ring(&self) -> anyhow::Result<Vec<WrappedKey>> {
        let rows = self.tx()?.query(
            "SELECT version, wrapped FROM key_ring ORDER BY version",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok(WrappedKey {
                    version: key_version(r.try_get(0)?)?,
                    wrapped: r.try_get(1)?,
                })
            })
            .collect()
    }

    fn seed_key_ring(&self, keys: &[WrappedKey], now: i64) -> anyhow::Result<bool> {
        self.lock_key_ring()?;
        let held: i64 = self
            .tx()?
            .query_one("SELECT COUNT(*) FROM key_ring", &[])?
            .try_get(0)?;
        if held > 0 {
            return Ok(false);
        }
        for key in keys {
            self.insert_key(key.version, &key.wrapped, now)?;
        }
        Ok(true)
    }

    fn add_key_version(
        &self,
        wrap: &dyn Fn(u32) -> anyhow::Result<Vec<u8>>,
        now: i64,
    ) -> anyhow::Result<u32> {
        self.lock_key_ring()?;
        // One above the highest ever kept (`key_ring_versions`), not the highest kept now: a
        // retired version's number is never given to another key, so a stale hash or an old
        // backup can never be read with the wrong key.
        let highest: i64 = self
            .tx()?
            .query_one(
                "SELECT GREATEST(
                     (SELECT COALESCE(MAX(version), 0) FROM key_ring),
                     (SELECT COALESCE(MAX(version), 0) FROM key_ring_versions))",
                &[],
            )?
            .try_get(0)?;
        let next = key_version(highest + 1)?;
        let wrapped = wrap(next)?;
        self.insert_key(next, &wrapped, now)?;
        Ok(next)
    }

    fn remove_key_version(&self, version: u32) -> anyhow::Result<bool> {
        self.lock_key_ring()?;
        let n = self.tx()?.execute(
            "DELETE FROM key_ring WHERE version = $1",
            &[&i64::from(version)],
        )?;
        Ok(n > 0)
    }
}

/// `pg_advisory_xact_lock` key of the key ring: "cgkeyrng" in ASCII, as a number.
const KEY_RING_LOCK: i64 = 0x6367_6b65_7972_6e67;

impl PgDb<'_> {
    /// Changes to the ring take turns: two nodes seeding or two rotations at once.
    fn lock_key_ring(&self) -> anyhow::Result<()> {
        self.tx()?
            .execute("SELECT pg_advisory_xact_lock($1)", &[&KEY_RING_LOCK])
            .context("waiting for the key ring lock")?;
        Ok(())
    }

    fn insert_key(&self, version: u32, wrapped: &[u8], now: i64) -> anyhow::Result<()> {
        let v = i64::from(version);
        self.tx()?.execute(
            "INSERT INTO key_ring (version, wrapped, created_at) VALUES ($1, $2, $3)",
            &[&v, &wrapped, &now],
        )?;
        self.tx()?.execute(
            "INSERT INTO key_ring_versions (version, created_at) VALUES ($1, $2)
             ON CONFLICT (version) DO NOTHING",
            &[&v, &now],
        )?;
        Ok(())
    }
}
