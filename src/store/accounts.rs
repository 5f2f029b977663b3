//! Customer accounts. Codes are stored as keyed hashes, TOTP secrets encrypted; nothing here
//! ever holds a plaintext secret longer than the call that hashes or seals it.

use std::collections::BTreeMap;

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::{AccountCode, AccountId, AccountName, PhoneNumber};
use crate::verify::{Keyring, Purpose};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub phone: String,
    pub has_code: bool,
    pub has_totp: bool,
    pub attributes: BTreeMap<String, String>,
    pub failed_count: i64,
    pub locked_until: Option<i64>,
    pub created_at: i64,
    pub test: bool,
}

pub struct NewAccount<'a> {
    pub id: &'a AccountId,
    pub name: &'a AccountName,
    pub phone: &'a PhoneNumber,
    pub code: Option<&'a AccountCode>,
    /// A TOTP secret to seal, when the account gets an authenticator.
    pub totp_secret: Option<&'a [u8]>,
    pub attributes: &'a BTreeMap<String, String>,
    /// Knowledge answers (question, answer), e.g. ("dob", "14031985"), stored as keyed hashes.
    pub knowledge: &'a [(String, String)],
    /// A test account: the only kind the admin page's call simulator sees.
    pub test: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AddAccountError {
    #[error("an account with id {0} already exists")]
    DuplicateId(String),
    #[error("that account code is already in use; choose another")]
    DuplicateCode,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

const COLUMNS: &str = "id, name, phone, code_hash IS NOT NULL, totp_secret IS NOT NULL, attributes, \
                       failed_count, locked_until, created_at, test";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    let attributes: String = row.get(5)?;
    Ok(Account {
        id: row.get(0)?,
        name: row.get(1)?,
        phone: row.get(2)?,
        has_code: row.get(3)?,
        has_totp: row.get(4)?,
        attributes: serde_json::from_str(&attributes).unwrap_or_default(),
        failed_count: row.get(6)?,
        locked_until: row.get(7)?,
        created_at: row.get(8)?,
        test: row.get(9)?,
    })
}

/// Inserts an account in one transaction: either all of it is written or nothing.
pub fn add(
    conn: &mut Connection,
    keys: &Keyring,
    new: &NewAccount<'_>,
    now: i64,
) -> Result<(), AddAccountError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .context("begin")?;
    add_in(&tx, keys, new, now)?;
    tx.commit().context("commit")?;
    Ok(())
}

/// Checks for a duplicate id or code and inserts the account, in the caller's transaction (the
/// admin API writes its audit entry in the same one).
pub fn add_in(
    tx: &Connection,
    keys: &Keyring,
    new: &NewAccount<'_>,
    now: i64,
) -> Result<(), AddAccountError> {
    let exists: bool = tx
        .query_row(
            "SELECT EXISTS(SELECT 1 FROM accounts WHERE id = ?1)",
            [new.id.as_str()],
            |r| r.get(0),
        )
        .context("checking id")?;
    if exists {
        return Err(AddAccountError::DuplicateId(new.id.to_string()));
    }
    if let Some(code) = new.code {
        let candidates = keys.keyed_hash_candidates(Purpose::AccountCode, code.expose());
        for (_, hash) in &candidates {
            let taken: bool = tx
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM accounts WHERE code_hash = ?1)",
                    [hash],
                    |r| r.get(0),
                )
                .context("checking code")?;
            if taken {
                return Err(AddAccountError::DuplicateCode);
            }
        }
        for (_, hash) in keys.keyed_hash_candidates(Purpose::CallCode, code.expose()) {
            let live: bool = tx
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM call_codes WHERE code_hash = ?1 AND used_at IS NULL AND expires_at > ?2)",
                    params![hash, now],
                    |r| r.get(0),
                )
                .context("checking call codes")?;
            if live {
                return Err(AddAccountError::DuplicateCode);
            }
        }
    }
    insert(tx, keys, new, now)?;
    Ok(())
}

/// Records a new account in the audit trail (in the caller's transaction): its id and which
/// fields were set, never a value. The trail is append-only and outlives `account forget`, so a
/// name, a phone (even masked), an attribute value or an answer written there could never be
/// erased; attribute keys and knowledge questions are field names, not data about the person.
pub fn audit_added(
    conn: &Connection,
    actor: &str,
    new: &NewAccount<'_>,
    now: i64,
) -> anyhow::Result<()> {
    let detail = serde_json::json!({
        "fields": ["name", "phone"],
        "code": new.code.is_some(),
        "totp": new.totp_secret.is_some(),
        "test": new.test,
        "attributes": new.attributes.keys().collect::<Vec<_>>(),
        "knowledge": new.knowledge.iter().map(|(q, _)| q.as_str()).collect::<Vec<_>>(),
    });
    super::audit::append(
        conn,
        actor,
        "account.add",
        &format!("account:{}", new.id),
        &detail.to_string(),
        now,
    )?;
    Ok(())
}

/// Records that `actor` was refused an account code already in use (in the caller's
/// transaction, which must commit although the account was not added). Codes stay unique, so
/// the refusal tells whoever tries a code that someone has it: each try shows in the trail, so
/// probing for codes shows. Never the code, nor the name or phone of the refused account.
pub fn audit_code_refused(
    conn: &Connection,
    actor: &str,
    id: &AccountId,
    now: i64,
) -> anyhow::Result<()> {
    super::audit::append(
        conn,
        actor,
        "account.code_refused",
        &format!("account:{id}"),
        "an account code already in use was refused; the account was not added",
        now,
    )?;
    tracing::warn!(target: "callgate::security", actor = %actor, account = %id, "an account code already in use was refused");
    Ok(())
}

/// Writes the account row, sealing its secrets; the caller has checked for duplicates (or is
/// seeding test data it generated itself) and owns the transaction.
pub fn insert(
    conn: &Connection,
    keys: &Keyring,
    new: &NewAccount<'_>,
    now: i64,
) -> anyhow::Result<()> {
    let code = new
        .code
        .map(|c| keys.keyed_hash(Purpose::AccountCode, c.expose()));
    let totp = match new.totp_secret {
        Some(secret) => Some(keys.encrypt(secret, new.id.as_str())?),
        None => None,
    };
    let attributes = serde_json::to_string(new.attributes).context("attributes")?;
    conn.prepare_cached(
        "INSERT INTO accounts (id, name, phone, code_hash, code_key_version, totp_secret, totp_key_version, attributes, created_at, test)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        new.id.as_str(),
        new.name.as_str(),
        new.phone.as_str(),
        code.as_ref().map(|(_, h)| h),
        code.as_ref().map(|(v, _)| v),
        totp.as_ref().map(|(_, s)| s),
        totp.as_ref().map(|(v, _)| v),
        attributes,
        now,
        new.test
    ])
    .context("inserting account")?;
    for (question, answer) in new.knowledge {
        super::knowledge::set(conn, keys, new.id.as_str(), question, answer)?;
    }
    Ok(())
}

pub fn get(conn: &Connection, id: &str) -> anyhow::Result<Option<Account>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM accounts WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
        .context("reading account")
}

pub fn list(conn: &Connection) -> anyhow::Result<Vec<Account>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM accounts ORDER BY id"))?;
    let rows = stmt
        .query_map([], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Up to `limit` accounts whose id or name contains `query` (case-insensitive), by id: the
/// admin page's list, which must stay fast with many accounts.
pub fn search(conn: &Connection, query: &str, limit: u32) -> anyhow::Result<Vec<Account>> {
    let escaped: String = query
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let pattern = format!("%{escaped}%");
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM accounts
         WHERE id LIKE ?1 ESCAPE '\\' OR name LIKE ?1 ESCAPE '\\'
         ORDER BY id LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![pattern, limit], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Removes an account and its call codes; its past calls keep their record without the link.
pub fn remove(conn: &Connection, id: &str) -> anyhow::Result<bool> {
    Ok(conn.execute("DELETE FROM accounts WHERE id = ?1", [id])? > 0)
}

/// The ids of the accounts registered to `phone`.
pub fn ids_on_phone(conn: &Connection, phone: &str) -> anyhow::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM accounts WHERE phone = ?1 ORDER BY id")?;
    let ids = stmt
        .query_map([phone], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(ids)
}

/// The account whose permanent code is `code`, by keyed-hash look-up (under every key version).
/// A code found under an older key version is re-keyed on the spot: its hash is rewritten under
/// the current key, in the caller's transaction (a code hash cannot be recomputed without the
/// code, so a successful use is the only moment a rotation can reach it).
pub fn find_by_code(
    conn: &Connection,
    keys: &Keyring,
    code: &str,
) -> anyhow::Result<Option<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, code_key_version FROM accounts WHERE code_hash = ?1")?;
    let current = keys.current_version();
    for (version, hash) in keys.keyed_hash_candidates(Purpose::AccountCode, code) {
        let found: Option<(String, Option<u32>)> = stmt
            .query_row([&hash], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((id, stored_version)) = found {
            if version != current || stored_version != Some(current) {
                let (v, rekeyed) = keys.keyed_hash(Purpose::AccountCode, code);
                conn.prepare_cached(
                    "UPDATE OR IGNORE accounts SET code_hash = ?2, code_key_version = ?3
                     WHERE id = ?1 AND code_hash = ?4",
                )?
                .execute(params![id, rekeyed, v, hash])
                .context("re-keying the account code")?;
            }
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The account's decrypted TOTP secret, if it has an authenticator.
pub fn totp_secret(
    conn: &Connection,
    keys: &Keyring,
    id: &str,
) -> anyhow::Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
    let sealed: Option<(Vec<u8>, u32)> = conn
        .prepare_cached("SELECT totp_secret, totp_key_version FROM accounts WHERE id = ?1 AND totp_secret IS NOT NULL")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((blob, version)) = sealed else {
        return Ok(None);
    };
    let secret = keys.decrypt(version, &blob, id)?;
    // Sealed under an older key (an account added by a server that had not yet read a rotated
    // key file): re-seal it under the current one.
    if version != keys.current_version() {
        let (v, resealed) = keys.encrypt(&secret, id)?;
        conn.prepare_cached(
            "UPDATE accounts SET totp_secret = ?2, totp_key_version = ?3 WHERE id = ?1 AND totp_key_version = ?4",
        )?
        .execute(params![id, resealed, v, version])
        .context("re-sealing the TOTP secret")?;
    }
    Ok(Some(secret))
}

/// Accepts TOTP `step` for the account only if it is later than every step accepted before, in
/// one statement, so two calls presenting the same code at the same instant cannot both win.
pub fn advance_totp_step(conn: &Connection, id: &str, step: u64) -> anyhow::Result<bool> {
    let step = i64::try_from(step).context("TOTP step out of range")?;
    let changed = conn
        .prepare_cached(
            "UPDATE accounts SET totp_last_step = ?2
             WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
        )?
        .execute(params![id, step])?;
    Ok(changed == 1)
}
