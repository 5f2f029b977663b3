//! The small areas in SQLite: health, screen-pop URL bindings, speech-routing models.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};
use subtle::ConstantTimeEq;

use crate::store::HealthDb;
use crate::store::pop::{PopBinding, PopDb};
use crate::store::routing::{ConfirmedUtterance, NewRoutingModel, RoutingDb};

impl HealthDb for Connection {
    fn ping(&self) -> anyhow::Result<()> {
        self.query_row("SELECT 1", [], |_| Ok(()))
            .context("database")
    }
}

impl PopDb for Connection {
    fn bind_pop_url(
        &self,
        token_hash: &[u8],
        binding_hash: &[u8],
        call_sid: &str,
        now: i64,
        expires_at: i64,
    ) -> anyhow::Result<PopBinding> {
        let stored: Option<Vec<u8>> = self
            .prepare_cached("SELECT binding_hash FROM pop_opens WHERE token_hash = ?1")?
            .query_row([token_hash], |r| r.get(0))
            .optional()?;
        match stored {
            Some(stored) if bool::from(stored.ct_eq(binding_hash)) => Ok(PopBinding::Bound),
            Some(_) => Ok(PopBinding::Other),
            None => {
                self.prepare_cached("DELETE FROM pop_opens WHERE expires_at < ?1")?
                    .execute([now])?;
                self.prepare_cached(
                    "INSERT INTO pop_opens (token_hash, binding_hash, call_sid, opened_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![token_hash, binding_hash, call_sid, now, expires_at])?;
                Ok(PopBinding::Bound)
            }
        }
    }
}

impl RoutingDb for Connection {
    fn confirmed_utterances(&self) -> anyhow::Result<Vec<ConfirmedUtterance>> {
        let mut stmt = self.prepare(
            "SELECT c.call_sid, c.script, json_extract(c.state, '$.speech.text'), o.category
             FROM calls c JOIN call_outcomes o ON o.call_sid = c.call_sid
             WHERE json_extract(c.state, '$.speech.text') IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ConfirmedUtterance {
                call_sid: r.get(0)?,
                script: r.get(1)?,
                text: r.get(2)?,
                category: r.get(3)?,
            })
        })?;
        rows.collect::<Result<_, _>>()
            .context("reading confirmed utterances")
    }

    fn store_routing_model(&self, model: &NewRoutingModel<'_>, now: i64) -> anyhow::Result<i64> {
        self.execute(
            "INSERT INTO routing_models (created_at, examples, held_out, accuracy, baseline_accuracy, model)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                now,
                model.examples,
                model.held_out,
                model.accuracy,
                model.baseline_accuracy,
                model.model_json
            ],
        )?;
        Ok(self.last_insert_rowid())
    }

    fn newest_routing_model_id(&self) -> anyhow::Result<Option<i64>> {
        self.query_row("SELECT MAX(id) FROM routing_models", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .context("routing models")
    }

    fn newest_routing_model(&self) -> anyhow::Result<Option<(i64, String)>> {
        Ok(self
            .query_row(
                "SELECT id, model FROM routing_models ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }
}
