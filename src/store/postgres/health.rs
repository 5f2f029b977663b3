//! Health on PostgreSQL: `/healthz` asks for one trivial query, in a read transaction from
//! the pool (so a server that cannot be reached, or a pool with no connection to give within
//! its timeout, answers unhealthy).

use anyhow::Context;

use super::PgDb;
use crate::store::health::HealthDb;

impl HealthDb for PgDb<'_> {
    fn ping(&self) -> anyhow::Result<()> {
        self.tx()?.query_one("SELECT 1", &[]).context("database")?;
        Ok(())
    }
}
