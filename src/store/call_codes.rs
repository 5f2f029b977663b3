//! One-time call codes: issued for an account, redeemed once, then dead.

use anyhow::Context;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::verify::{Keyring, Purpose, call_code};

/// Issues a fresh code for `account_id`, valid `ttl_ms`. The code is returned once and stored
/// only as a keyed hash. A code that happens to equal another unused code is drawn again.
pub fn issue(
    conn: &Connection,
    keys: &Keyring,
    account_id: &str,
    ttl_ms: i64,
    now: i64,
) -> anyhow::Result<Zeroizing<String>> {
    // Expired codes can never be redeemed; clearing them keeps the unique index small.
    conn.execute(
        "DELETE FROM call_codes WHERE used_at IS NULL AND expires_at <= ?1",
        [now],
    )
    .context("purging expired call codes")?;
    for _ in 0..20 {
        let code = call_code::generate();
        // A call code equal to some account's permanent code would identify that account first.
        if super::accounts::find_by_code(conn, keys, &code)?.is_some() {
            continue;
        }
        let (version, hash) = keys.keyed_hash(Purpose::CallCode, &code);
        let inserted = conn.execute(
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
                let exists: bool = conn.query_row(
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

/// A live (unused, unexpired) call code equal to `code`: its row and its account. A code found
/// under an older key version is re-keyed under the current one in the caller's transaction
/// (unless an equal live code already exists under the current key: then it is left to expire).
pub fn find_live(
    conn: &Connection,
    keys: &Keyring,
    code: &str,
    now: i64,
) -> anyhow::Result<Option<(i64, String)>> {
    let mut stmt = conn.prepare_cached(
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
                conn.prepare_cached(
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

/// Marks the code used by `call_sid` if nobody used it first: of two calls presenting the same
/// code at the same instant exactly one gets `true`.
pub fn consume(conn: &Connection, id: i64, call_sid: &str, now: i64) -> anyhow::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE call_codes SET used_at = ?2, used_by_call = ?3
             WHERE id = ?1 AND used_at IS NULL AND expires_at > ?2",
        )?
        .execute(params![id, now, call_sid])?;
    Ok(changed == 1)
}
