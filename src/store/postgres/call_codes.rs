//! One-time call codes on PostgreSQL.

use anyhow::Context;
use zeroize::Zeroizing;

use super::PgDb;
use super::accounts::{CODE_SPACE_LOCK, key_version};
use crate::store::{AccountsDb, CallCodesDb};
use crate::verify::{Keyring, Purpose, call_code};

impl CallCodesDb for PgDb<'_> {
    fn issue_call_code(
        &self,
        keys: &Keyring,
        account_id: &str,
        ttl_ms: i64,
        now: i64,
    ) -> anyhow::Result<Zeroizing<String>> {
        // The drawn code must equal no account's permanent code: an account being added on
        // another node at this moment is checked under the same lock (see CODE_SPACE_LOCK).
        self.tx()?
            .execute("SELECT pg_advisory_xact_lock($1)", &[&CODE_SPACE_LOCK])
            .context("waiting for the code lock")?;
        // SQLite learns of a missing account from the failed insert; here a failed statement
        // would abort the caller's transaction, so look first. FOR KEY SHARE keeps the
        // account from being removed before the insert.
        let exists = self
            .tx()?
            .query_opt(
                "SELECT 1 FROM accounts WHERE id = $1 FOR KEY SHARE",
                &[&account_id],
            )?
            .is_some();
        if !exists {
            anyhow::bail!("no account with id {account_id}");
        }
        // Expired codes can never be redeemed; clearing them keeps the unique index small.
        self.tx()?
            .execute(
                "DELETE FROM call_codes WHERE used_at IS NULL AND expires_at <= $1",
                &[&now],
            )
            .context("purging expired call codes")?;
        let expires_at = now
            .checked_add(ttl_ms)
            .context("call code expiry out of range")?;
        for _ in 0..20 {
            let code = call_code::generate();
            // A call code equal to some account's permanent code would identify that account first.
            if self.find_account_by_code(keys, &code)?.is_some() {
                continue;
            }
            let (version, hash) = keys.keyed_hash(Purpose::CallCode, &code);
            // A clash with another live code (the partial unique index) draws again; it also
            // covers a code another node is inserting right now (the insert waits for it).
            let inserted = self
                .tx()?
                .execute(
                    "INSERT INTO call_codes (account_id, code_hash, key_version, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[
                        &account_id,
                        &hash.as_slice(),
                        &i64::from(version),
                        &now,
                        &expires_at,
                    ],
                )
                .context("storing call code")?;
            if inserted == 1 {
                return Ok(code);
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
        let current = keys.current_version();
        for (version, hash) in keys.keyed_hash_candidates(Purpose::CallCode, code) {
            let found = self.tx()?.query_opt(
                "SELECT id, account_id, key_version FROM call_codes
                 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2",
                &[&hash.as_slice(), &now],
            )?;
            let Some(found) = found else {
                continue;
            };
            let id: i64 = found.try_get(0)?;
            let account: String = found.try_get(1)?;
            let stored_version = key_version(found.try_get(2)?)?;
            if version != current || stored_version != current {
                let (v, rekeyed) = keys.keyed_hash(Purpose::CallCode, code);
                // SQLite's UPDATE OR IGNORE: when an equal unused code already exists under the
                // current key this one is left to expire (a failed UPDATE would abort the whole
                // transaction here).
                self.tx()?
                    .execute(
                        "UPDATE call_codes SET code_hash = $2, key_version = $3 WHERE id = $1
                           AND NOT EXISTS (SELECT 1 FROM call_codes
                                           WHERE code_hash = $2 AND used_at IS NULL)",
                        &[&id, &rekeyed.as_slice(), &i64::from(v)],
                    )
                    .context("re-keying the call code")?;
            }
            return Ok(Some((id, account)));
        }
        Ok(None)
    }

    fn consume_call_code(&self, id: i64, call_sid: &str, now: i64) -> anyhow::Result<bool> {
        // One winner across nodes: the UPDATE locks the row, and a second transaction that
        // waited for the lock re-checks `used_at IS NULL` on the row the first one wrote
        // (READ COMMITTED) and changes nothing.
        let changed = self.tx()?.execute(
            "UPDATE call_codes SET used_at = $2, used_by_call = $3
             WHERE id = $1 AND used_at IS NULL AND expires_at > $2",
            &[&id, &now, &call_sid],
        )?;
        Ok(changed == 1)
    }
}
