//! Settings in SQLite, in the `settings` table.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::SettingsDb;

const VISIBLE_ATTRIBUTES: &str = "visible_attributes";

impl SettingsDb for Connection {
    fn visible_attributes(&self) -> anyhow::Result<Option<Vec<String>>> {
        let value: Option<String> = self
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
            .query_row([VISIBLE_ATTRIBUTES], |r| r.get(0))
            .optional()
            .context("reading visible attributes")?;
        // A value this version cannot read shows nothing rather than everything.
        Ok(value.map(|v| serde_json::from_str(&v).unwrap_or_default()))
    }

    fn set_visible_attributes(&self, keys: Option<&[String]>, now: i64) -> anyhow::Result<()> {
        match keys {
            Some(keys) => {
                self.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![VISIBLE_ATTRIBUTES, serde_json::to_string(keys)?, now],
            )?;
            }
            None => {
                self.execute("DELETE FROM settings WHERE key = ?1", [VISIBLE_ATTRIBUTES])?;
            }
        }
        Ok(())
    }
}
