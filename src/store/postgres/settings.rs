//! Settings on PostgreSQL, in the `settings` table.

use anyhow::Context;

use super::PgDb;
use crate::store::SettingsDb;

const VISIBLE_ATTRIBUTES: &str = "visible_attributes";

impl SettingsDb for PgDb<'_> {
    fn visible_attributes(&self) -> anyhow::Result<Option<Vec<String>>> {
        let value: Option<String> = self
            .tx()?
            .query_opt(
                "SELECT value FROM settings WHERE key = $1",
                &[&VISIBLE_ATTRIBUTES],
            )
            .context("reading visible attributes")?
            .map(|r| r.try_get(0))
            .transpose()?;
        // A value this version cannot read shows nothing rather than everything.
        Ok(value.map(|v| serde_json::from_str(&v).unwrap_or_default()))
    }

    fn set_visible_attributes(&self, keys: Option<&[String]>, now: i64) -> anyhow::Result<()> {
        match keys {
            Some(keys) => {
                self.tx()?.execute(
                    "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (key) DO UPDATE
                     SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
                    &[&VISIBLE_ATTRIBUTES, &serde_json::to_string(keys)?, &now],
                )?;
            }
            None => {
                self.tx()?.execute(
                    "DELETE FROM settings WHERE key = $1",
                    &[&VISIBLE_ATTRIBUTES],
                )?;
            }
        }
        Ok(())
    }
}
