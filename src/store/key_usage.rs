//! Which key version each stored secret was made with: what `callgate keys status` shows, what
//! `keys retire` must find unused, what `keys rotate` re-encrypts, and the check that the key
//! file is the one the database was written with.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use rusqlite::{Connection, params};

use crate::verify::Keyring;

/// How many stored secrets use one key version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub account_codes: u64,
    pub totp_secrets: u64,
    /// Unused, unexpired call codes only: a used or expired code is never looked up again.
    pub live_call_codes: u64,
    pub knowledge_answers: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.account_codes + self.totp_secrets + self.live_call_codes + self.knowledge_answers
    }

    /// The code hashes (which only a successful use can re-key).
    pub fn code_hashes(&self) -> u64 {
        self.account_codes + self.live_call_codes + self.knowledge_answers
    }

    /// `3 account code(s), 1 TOTP secret(s)`, omitting zeros.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            (self.account_codes, "account code(s)"),
            (self.totp_secrets, "TOTP secret(s)"),
            (self.live_call_codes, "live call code(s)"),
            (self.knowledge_answers, "knowledge answer(s)"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            "nothing".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// Usage per key version, for every version the database mentions.
pub fn by_version(conn: &Connection, now: i64) -> anyhow::Result<BTreeMap<u32, Usage>> {
    let mut usage: BTreeMap<u32, Usage> = BTreeMap::new();
    let mut count =
        |sql: &str, args: &[&dyn rusqlite::ToSql], field: fn(&mut Usage) -> &mut u64| {
            let mut stmt = conn.prepare(sql)?;
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

/// Refuses a key file that is not the database's: a version the database uses is missing, or a
/// TOTP secret (one per version, the only thing that can be checked without a caller's code)
/// does not decrypt.
pub fn check_keyring(conn: &Connection, keys: &Keyring) -> anyhow::Result<()> {
    let usage = by_version(conn, crate::store::now_ms())?;
    let missing: Vec<String> = usage
        .iter()
        .filter(|(v, u)| !keys.has_version(**v) && u.total() > 0)
        .map(|(v, u)| format!("v{v} ({})", u.describe()))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the key file {} lacks key version(s) the database uses: {}. Is it the key file this \
             database was written with? Restore the right callgate.key (from its backup); without \
             it those codes and TOTP secrets cannot be checked",
            keys.path().display(),
            missing.join(", ")
        );
    }
    let mut stmt = conn.prepare(
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
    for (id, sealed, version) in samples {
        if keys.decrypt(version, &sealed, &id).is_err() {
            bail!(
                "the key file {} does not match the database: TOTP secrets sealed with key version \
                 v{version} do not decrypt with it (a different or damaged callgate.key). Restore the \
                 right key file from its backup",
                keys.path().display()
            );
        }
    }
    Ok(())
}

/// Re-encrypts every TOTP secret not under the current key version, in one transaction: either
/// all of them are re-sealed or none. Returns how many.
pub fn reseal_totp_secrets(conn: &mut Connection, keys: &Keyring) -> anyhow::Result<u64> {
    let current = keys.current_version();
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .context("begin")?;
    let rows = {
        let mut stmt = tx.prepare(
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
        tx.execute(
            "UPDATE accounts SET totp_secret = ?2, totp_key_version = ?3 WHERE id = ?1",
            params![id, resealed, v],
        )?;
        n += 1;
    }
    tx.commit().context("commit")?;
    Ok(n)
}
