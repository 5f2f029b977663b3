//! Key versions in use, in SQLite.

use std::collections::BTreeMap;

use anyhow::Context;
use rusqlite::{Connection, params};

use crate::store::key_usage::{KeysDb, Usage, WrappedKey};
use crate::verify::Keyring;

impl KeysDb for Connection {
    fn key_usage(&self, now: i64) -> anyhow::Result<BTreeMap<u32, Usage>> {
        let mut usage: BTreeMap<u32, Usage> = BTreeMap::new();
        let mut count = |sql: &str,
                         args: &[&dyn rusqlite::ToSql],
                         field: fn(&mut Usage) -> &mut u64| {
            let mut stmt = self.prepare(sql)?;
            let rows = stmt.query_map(args, |r| Ok((r.get::<_, u32>(0)?, r.get::<_, u64>(1)?)))?;
            for row in rows {
                let (version, n) = row?;
                *field(usage.entry(version).or_default()) += n;
            }
            anyhow::Ok(())
        };
        count(
        "SELECT code_key_version, COUNT(*) FROM accounts WHERE code_hash IS NOT NULL GROUP BY 1",
        &[],
        |u| &mut u.account_codes,
    )
    .context("counting account codes")?;
        count(
        "SELECT totp_key_version, COUNT(*) FROM accounts WHERE totp_secret IS NOT NULL GROUP BY 1",
        &[],
        |u| &mut u.totp_secrets,
    )
    .context("counting TOTP secrets")?;
        count(
        "SELECT key_version, COUNT(*) FROM call_codes WHERE used_at IS NULL AND expires_at > ?1 GROUP BY 1",
        &[&now],
        |u| &mut u.live_call_codes,
    )
    .context("counting call codes")?;
        count(
            "SELECT key_version, COUNT(*) FROM account_knowledge GROUP BY 1",
            &[],
            |u| &mut u.knowledge_answers,
        )
        .context("counting knowledge answers")?;
        Ok(usage)
    }

    fn totp_samples(&self) -> anyhow::Result<Vec<(String, Vec<u8>, u32)>> {
        let mut stmt = self.prepare(
        "SELECT id, totp_secret, totp_key_version FROM accounts WHERE totp_secret IS NOT NULL
         AND rowid IN (SELECT MIN(rowid) FROM accounts WHERE totp_secret IS NOT NULL GROUP BY totp_key_version)",
    )?;
        let samples = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, u32>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(samples)
    }

    fn reseal_totp_secrets(&self, keys: &Keyring) -> anyhow::Result<u64> {
        let current = keys.current_version();
        let rows = {
            let mut stmt = self.prepare(
                "SELECT id, totp_secret, totp_key_version FROM accounts
             WHERE totp_secret IS NOT NULL AND totp_key_version IS NOT ?1",
            )?;
            stmt.query_map([current], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, u32>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?
        };
        let mut n = 0;
        for (id, sealed, version) in rows {
            let secret = keys
                .decrypt(version, &sealed, &id)
                .with_context(|| format!("the TOTP secret of account {id} (key v{version})"))?;
            let (v, resealed) = keys.encrypt(&secret, &id)?;
            self.execute(
                "UPDATE accounts SET totp_secret = ?2, totp_key_version = ?3 WHERE id = ?1",
                params![id, resealed, v],
            )?;
            n += 1;
        }
        Ok(n)
    }

    // One node on SQLite: the key file holds the ring (`verify::custody`), never the database.
    fn key_ring(&self) -> anyhow::Result<Vec<WrappedKey>> {
        Ok(Vec::new())
    }

    fn seed_key_ring(&self, _keys: &[WrappedKey], _now: i64) -> anyhow::Result<bool> {
        anyhow::bail!(NO_RING_HERE)
    }

    fn add_key_version(
        &self,
        _wrap: &dyn Fn(u32) -> anyhow::Result<Vec<u8>>,
        _now: i64,
    ) -> anyhow::Result<u32> {
        anyhow::bail!(NO_RING_HERE)
    }

    fn remove_key_version(&self, _version: u32) -> anyhow::Result<bool> {
        anyhow::bail!(NO_RING_HERE)
    }
}

const NO_RING_HERE: &str =
    "on SQLite the key ring is the key file (callgate.key), not the database";
