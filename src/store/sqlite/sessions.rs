//! Browser sessions in SQLite.

use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::store::UsersDb;
use crate::store::sessions::{
    Lookup, NewSession, SESSION_TTL_MS, Session, SessionsDb, id_hash, random_token,
};

impl SessionsDb for Connection {
    fn create_session(&self, user_id: i64, now: i64) -> anyhow::Result<NewSession> {
        let id = Zeroizing::new(random_token());
        let csrf_token = random_token();
        self.execute(
            "INSERT INTO web_sessions (id_hash, user_id, csrf_token, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id_hash(&id), user_id, csrf_token, now, now + SESSION_TTL_MS],
        )?;
        Ok(NewSession { id, csrf_token })
    }

    fn lookup_session(&self, id: &str, now: i64) -> anyhow::Result<Lookup> {
        let row: Option<(i64, String, i64)> = self
            .prepare_cached(
                "SELECT user_id, csrf_token, expires_at FROM web_sessions WHERE id_hash = ?1",
            )?
            .query_row([id_hash(id)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((user_id, csrf_token, expires_at)) = row else {
            return Ok(Lookup::Unknown);
        };
        if expires_at <= now {
            return Ok(Lookup::Expired);
        }
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
        self.execute("DELETE FROM web_sessions WHERE id_hash = ?1", [id_hash(id)])?;
        self.delete_expired_sessions(now)?;
        Ok(())
    }

    fn delete_expired_sessions(&self, now: i64) -> anyhow::Result<usize> {
        Ok(self.execute("DELETE FROM web_sessions WHERE expires_at <= ?1", [now])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::UsersDb;
    use crate::store::sessions::{ENCODED_LEN, Lookup, SESSION_TTL_MS};
    use crate::store::users::Role;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::apply(&mut conn).unwrap();
        conn
    }

    #[test]
    fn only_the_hash_is_stored_and_expiry_is_honoured() {
        let conn = db();
        let token = conn.add_user("ada", Role::Admin, &[], 0).unwrap();
        let user = conn.user_by_token(&token).unwrap().unwrap();
        let s = conn.create_session(user.id, 1_000).unwrap();
        assert_eq!(s.id.len(), ENCODED_LEN);
        let stored: Vec<u8> = conn
            .query_row("SELECT id_hash FROM web_sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, id_hash(&s.id));
        assert!(matches!(
            conn.lookup_session(&s.id, 2_000).unwrap(),
            Lookup::Valid(v) if v.user.name == "ada" && v.csrf_token == s.csrf_token
        ));
        assert!(matches!(
            conn.lookup_session(&s.id, 1_000 + SESSION_TTL_MS).unwrap(),
            Lookup::Expired
        ));
        conn.delete_session(&s.id, 2_000).unwrap();
        assert!(matches!(
            conn.lookup_session(&s.id, 2_000).unwrap(),
            Lookup::Unknown
        ));
    }
}
