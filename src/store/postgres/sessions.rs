//! Browser sessions on PostgreSQL.

use anyhow::Context;
use zeroize::Zeroizing;

use super::PgDb;
use crate::store::UsersDb;
use crate::store::sessions::{
    Lookup, NewSession, SESSION_TTL_MS, Session, SessionsDb, id_hash, random_token,
};

impl SessionsDb for PgDb<'_> {
    fn create_session(&self, user_id: i64, now: i64) -> anyhow::Result<NewSession> {
        let id = Zeroizing::new(random_token());
        let csrf_token = random_token();
        self.tx()?
            .execute(
                "INSERT INTO web_sessions (id_hash, user_id, csrf_token, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &id_hash(&id),
                    &user_id,
                    &csrf_token,
                    &now,
                    &now.saturating_add(SESSION_TTL_MS),
                ],
            )
            .context("storing the session")?;
        Ok(NewSession { id, csrf_token })
    }

    fn lookup_session(&self, id: &str, now: i64) -> anyhow::Result<Lookup> {
        let row = self
            .tx()?
            .query_opt(
                "SELECT user_id, csrf_token, expires_at FROM web_sessions WHERE id_hash = $1",
                &[&id_hash(id)],
            )
            .context("reading the session")?;
        let Some(row) = row else {
            return Ok(Lookup::Unknown);
        };
        let user_id: i64 = row.try_get(0)?;
        let csrf_token: String = row.try_get(1)?;
        let expires_at: i64 = row.try_get(2)?;
        if expires_at <= now {
            return Ok(Lookup::Expired);
        }
        // The statement above has let go of the transaction: `user_by_id` takes it again.
        Ok(match self.user_by_id(user_id)? {
            Some(user) => Lookup::Valid(Session {
                user,
                csrf_token,
                expires_at,
            }),
            None => Lookup::Unknown,
        })
    }

    fn delete_session(&self, id: &str, now: i64) -> anyhow::Result<()> {
        self.tx()?
            .execute(
                "DELETE FROM web_sessions WHERE id_hash = $1",
                &[&id_hash(id)],
            )
            .context("ending the session")?;
        self.delete_expired_sessions(now)?;
        Ok(())
    }

    fn delete_expired_sessions(&self, now: i64) -> anyhow::Result<usize> {
        // SKIP LOCKED: two nodes each ending an expired session (their own row locked first)
        // and then sweeping would otherwise each wait for the other's row, a deadlock that
        // PostgreSQL breaks by failing one of them. A row locked elsewhere is being deleted
        // there, or is swept next time.
        let n = self
            .tx()?
            .execute(
                "DELETE FROM web_sessions WHERE id_hash IN (
                     SELECT id_hash FROM web_sessions WHERE expires_at <= $1
                     FOR UPDATE SKIP LOCKED)",
                &[&now],
            )
            .context("sweeping expired sessions")?;
        Ok(usize::try_from(n)?)
    }
}
