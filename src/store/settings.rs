//! Settings an admin changes while the server runs, in the `settings` table. For now one:
//! which account attributes agents see (`visible_attributes`, a JSON list of keys). Unset means
//! every attribute, as before the setting existed.

use std::collections::BTreeMap;

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

const VISIBLE_ATTRIBUTES: &str = "visible_attributes";

/// The attribute keys agents see; `None` when no admin chose (all are shown).
pub fn visible_attributes(conn: &Connection) -> anyhow::Result<Option<Vec<String>>> {
    let value: Option<String> = conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([VISIBLE_ATTRIBUTES], |r| r.get(0))
        .optional()
        .context("reading visible attributes")?;
    // A value this version cannot read shows nothing rather than everything.
    Ok(value.map(|v| serde_json::from_str(&v).unwrap_or_default()))
}

/// Sets the list (`None`: back to showing every attribute).
pub fn set_visible_attributes(
    conn: &Connection,
    keys: Option<&[String]>,
    now: i64,
) -> anyhow::Result<()> {
    match keys {
        Some(keys) => {
            conn.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![VISIBLE_ATTRIBUTES, serde_json::to_string(keys)?, now],
            )?;
        }
        None => {
            conn.execute("DELETE FROM settings WHERE key = ?1", [VISIBLE_ATTRIBUTES])?;
        }
    }
    Ok(())
}

/// `attributes` with only the visible keys left.
pub fn filter_visible(
    attributes: &BTreeMap<String, String>,
    visible: Option<&[String]>,
) -> BTreeMap<String, String> {
    match visible {
        None => attributes.clone(),
        Some(keys) => attributes
            .iter()
            .filter(|(k, _)| keys.iter().any(|v| v == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}
