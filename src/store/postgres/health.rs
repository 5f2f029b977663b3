//! health on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::health::*;

impl HealthDb for PgDb<'_> {
    fn ping(&self) -> anyhow::Result<()> {
        Err(not_yet())
    }
}
