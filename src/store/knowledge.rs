//! Answers to knowledge questions (date of birth as DDMMYYYY, ...), stored as keyed hashes bound
//! to the account and the question, so a stolen database reveals no answer and one account's
//! hash says nothing about another's.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};
use subtle::ConstantTimeEq;

use crate::verify::{Keyring, Purpose};

fn material(account_id: &str, question: &str, answer: &str) -> String {
    format!("{account_id}\u{1f}{question}\u{1f}{answer}")
}

/// Sets (or replaces) an account's answer.
pub fn set(
    conn: &Connection,
    keys: &Keyring,
    account_id: &str,
    question: &str,
    answer: &str,
) -> anyhow::Result<()> {
    let (version, hash) =
        keys.keyed_hash(Purpose::Knowledge, &material(account_id, question, answer));
    conn.execute(
        "INSERT INTO account_knowledge (account_id, question, answer_hash, key_version)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(account_id, question) DO UPDATE SET answer_hash = ?3, key_version = ?4",
        params![account_id, question, hash, version],
    )
    .context("saving knowledge answer")?;
    Ok(())
}

/// Whether the account has an answer to `question` at all.
pub fn has(conn: &Connection, account_id: &str, question: &str) -> anyhow::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM account_knowledge WHERE account_id = ?1 AND question = ?2")?
        .query_row(params![account_id, question], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The questions an account can be asked (never the answers).
pub fn questions(conn: &Connection, account_id: &str) -> anyhow::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT question FROM account_knowledge WHERE account_id = ?1 ORDER BY question",
    )?;
    let rows = stmt.query_map([account_id], |r| r.get(0))?;
    rows.collect::<Result<_, _>>()
        .context("reading knowledge questions")
}

/// Checks an answer in constant time against the stored hash.
pub fn check(
    conn: &Connection,
    keys: &Keyring,
    account_id: &str,
    question: &str,
    answer: &str,
) -> anyhow::Result<bool> {
    let stored: Option<(Vec<u8>, u32)> = conn
        .prepare_cached(
            "SELECT answer_hash, key_version FROM account_knowledge WHERE account_id = ?1 AND question = ?2",
        )?
        .query_row(params![account_id, question], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((stored, version)) = stored else {
        return Ok(false);
    };
    let material = material(account_id, question, answer);
    let right = keys
        .keyed_hash_with(version, Purpose::Knowledge, &material)
        .is_some_and(|hash| bool::from(hash.ct_eq(&stored)));
    // A right answer under an older key version is re-keyed under the current one, in the
    // caller's transaction: the only moment the answer is known again.
    if right && version != keys.current_version() {
        let (v, rekeyed) = keys.keyed_hash(Purpose::Knowledge, &material);
        conn.prepare_cached(
            "UPDATE account_knowledge SET answer_hash = ?3, key_version = ?4
             WHERE account_id = ?1 AND question = ?2 AND key_version = ?5",
        )?
        .execute(params![account_id, question, rekeyed, v, version])
        .context("re-keying the knowledge answer")?;
    }
    Ok(right)
}
