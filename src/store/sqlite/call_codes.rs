//! One-time call codes in SQLite.

use anyhow::Context;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::store::{AccountsDb, CallCodesDb};
use crate::verify::{Keyring, Purpose, call_code};

impl CallCodesDb for Connection {
    fn issue_call_code(
        &self,
        keys: &Keyring,
        account_id: &str,
        ttl_ms: i64,
        now: i64,
    ) -> anyhow::Result<Zeroizing<String>> {
        // Expired codes can never be redeemed; clearing them keeps the unique index small.
        self.execute(
            "DELETE FROM call_codes WHERE used_at IS NULL AND expires_at <= ?1",
            [now],
        )
        .context("purging expired call codes")?;
        for _ in 0..20 {
            let code = call_code::generate();
            // A call code equal to some account's permanent code would identify that account first.
            if self.find_account_by_code(keys, &code)?.is_some() {
                continue;
            }
            let (version, hash) = keys.keyed_hash(Purpose::CallCode, &code);
            let inserted = self.execute(
            "INSERT INTO call_codes (account_id, code_hash, key_version, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![account_id, hash, version, now, now + ttl_ms],
        );
            match inserted {
                Ok(_) => return Ok(code),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == ErrorCode::ConstraintViolation =>
                {
                    // Either a clash with another live code (draw again) or an unknown account.
                    let exists: bool = self.query_row(
                        "SELECT EXISTS(SELECT 1 FROM accounts WHERE id = ?1)",
                        [account_id],
                        |r| r.get(0),
                    )?;
                    if !exists {
                        anyhow::bail!("no account with id {account_id}");
                    }
                }
                Err(e) => return Err(e).context("storing call code"),
            }
        }
        anyhow::bail!("could not draw a unique call code")
    }

    fn find_live_call_code(
        &self,
        keys: &Keyring,
        code: &str,
        now: i64,
    ) -> anyhow::Result<Option<(i64, String)>> {
        let mut stmt = self.prepare_cached(
        "SELECT id, account_id, key_version FROM call_codes WHERE code_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
    )?;
        let current = keys.current_version();
        for (version, hash) in keys.keyed_hash_candidates(Purpose::CallCode, code) {
            let found: Option<(i64, String, u32)> = stmt
                .query_row(params![hash, now], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            if let Some((id, account, stored_version)) = found {
                if version != current || stored_version != current {
                    let (v, rekeyed) = keys.keyed_hash(Purpose::CallCode, code);
                    self.prepare_cached(
                    "UPDATE OR IGNORE call_codes SET code_hash = ?2, key_version = ?3 WHERE id = ?1",
                )?
                .execute(params![id, rekeyed, v])
                .context("re-keying the call code")?;
                }
                return Ok(Some((id, account)));
            }
        }
        Ok(None)
    }

    fn consume_call_code(&self, id: i64, call_sid: &str, now: i64) -> anyhow::Result<bool> {
        let changed = self
            .prepare_cached(
                "UPDATE call_codes SET used_at = ?2, used_by_call = ?3
             WHERE id = ?1 AND used_at IS NULL AND expires_at > ?2",
            )?
            .execute(params![id, now, call_sid])?;
        Ok(changed == 1)
    }
}
