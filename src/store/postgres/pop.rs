//! Screen-pop URL bindings on PostgreSQL.
//!
//! The first session to open a URL keeps it. SQLite decides that by its one writer; here two
//! nodes may take the first open of one URL at the same moment, so the binding is an
//! `INSERT ... ON CONFLICT DO NOTHING` (the primary key picks one winner; the other waits for
//! it and inserts nothing) and the loser then reads the winner's binding.

use anyhow::{Context, bail};
use subtle::ConstantTimeEq;

use super::PgDb;
use crate::store::pop::{PopBinding, PopDb};

impl PgDb<'_> {
    fn pop_binding(&self, token_hash: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        let row = self
            .tx()?
            .query_opt(
                "SELECT binding_hash FROM pop_opens WHERE token_hash = $1",
                &[&token_hash],
            )
            .context("reading the pop URL's binding")?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }
}

fn compare(stored: &[u8], binding_hash: &[u8]) -> PopBinding {
    if bool::from(stored.ct_eq(binding_hash)) {
        PopBinding::Bound
    } else {
        PopBinding::Other
    }
}

impl PopDb for PgDb<'_> {
    fn bind_pop_url(
        &self,
        token_hash: &[u8],
        binding_hash: &[u8],
        call_sid: &str,
        now: i64,
        expires_at: i64,
    ) -> anyhow::Result<PopBinding> {
        // As on SQLite: a URL bound before answers by its binding (expired or not; an
        // expired URL is refused before this is asked).
        if let Some(stored) = self.pop_binding(token_hash)? {
            return Ok(compare(&stored, binding_hash));
        }
        // SKIP LOCKED: two first opens sweeping at once would otherwise wait on each other's
        // rows; a row locked elsewhere is being swept there.
        self.tx()?
            .execute(
                "DELETE FROM pop_opens WHERE token_hash IN (
                     SELECT token_hash FROM pop_opens WHERE expires_at < $1
                     FOR UPDATE SKIP LOCKED)",
                &[&now],
            )
            .context("sweeping expired pop URL bindings")?;
        let inserted = self
            .tx()?
            .execute(
                "INSERT INTO pop_opens (token_hash, binding_hash, call_sid, opened_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token_hash) DO NOTHING",
                &[&token_hash, &binding_hash, &call_sid, &now, &expires_at],
            )
            .context("binding the pop URL")?;
        if inserted == 1 {
            return Ok(PopBinding::Bound);
        }
        // Another session's open committed first (the INSERT waited for it). This statement
        // has a snapshot of its own (READ COMMITTED), which sees that binding.
        match self.pop_binding(token_hash)? {
            Some(stored) => Ok(compare(&stored, binding_hash)),
            None => bail!("the pop URL's binding vanished while it was being bound"),
        }
    }
}
