//! Speech-routing training data and models on PostgreSQL.

use anyhow::Context;

use super::PgDb;
use crate::store::routing::{ConfirmedUtterance, NewRoutingModel, RoutingDb};

impl RoutingDb for PgDb<'_> {
    fn confirmed_utterances(&self) -> anyhow::Result<Vec<ConfirmedUtterance>> {
        // `state` is JSON text: `#>>` is SQLite's json_extract for a text value (a JSON null
        // is SQL NULL in both).
        let rows = self
            .tx()?
            .query(
                "SELECT c.call_sid, c.script, c.state::jsonb #>> '{speech,text}', o.category
                 FROM calls c JOIN call_outcomes o ON o.call_sid = c.call_sid
                 WHERE c.state::jsonb #>> '{speech,text}' IS NOT NULL",
                &[],
            )
            .context("reading confirmed utterances")?;
        rows.iter()
            .map(|r| {
                Ok(ConfirmedUtterance {
                    call_sid: r.try_get(0)?,
                    script: r.try_get(1)?,
                    text: r.try_get(2)?,
                    category: r.try_get(3)?,
                })
            })
            .collect::<anyhow::Result<_>>()
            .context("reading confirmed utterances")
    }

    fn store_routing_model(&self, model: &NewRoutingModel<'_>, now: i64) -> anyhow::Result<i64> {
        // Ids come from an identity: a model stored later (in the order the INSERTs ran) has
        // the larger one, as SQLite's rowid gives.
        self.tx()?
            .query_one(
                "INSERT INTO routing_models (created_at, examples, held_out, accuracy,
                                             baseline_accuracy, model)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &now,
                    &model.examples,
                    &model.held_out,
                    &model.accuracy,
                    &model.baseline_accuracy,
                    &model.model_json,
                ],
            )
            .context("storing the routing model")?
            .try_get(0)
            .context("storing the routing model")
    }

    fn newest_routing_model_id(&self) -> anyhow::Result<Option<i64>> {
        self.tx()?
            .query_one("SELECT MAX(id) FROM routing_models", &[])
            .context("routing models")?
            .try_get(0)
            .context("routing models")
    }

    fn newest_routing_model(&self) -> anyhow::Result<Option<(i64, String)>> {
        let row = self
            .tx()?
            .query_opt(
                "SELECT id, model FROM routing_models ORDER BY id DESC LIMIT 1",
                &[],
            )
            .context("routing models")?;
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    }
}
