//! routing on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::routing::*;

impl RoutingDb for PgDb<'_> {
    fn confirmed_utterances(&self) -> anyhow::Result<Vec<ConfirmedUtterance>> {
        Err(not_yet())
    }

    fn store_routing_model(&self, _model: &NewRoutingModel<'_>, _now: i64) -> anyhow::Result<i64> {
        Err(not_yet())
    }

    fn newest_routing_model_id(&self) -> anyhow::Result<Option<i64>> {
        Err(not_yet())
    }

    fn newest_routing_model(&self) -> anyhow::Result<Option<(i64, String)>> {
        Err(not_yet())
    }
}
