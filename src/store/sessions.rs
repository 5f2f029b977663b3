//! Browser sessions of agents and admins. The cookie carries 256 random bits; the table keeps
//! only their SHA-256, so a copy of the database opens no session. Each session has its own
//! CSRF token, which pages hand to their scripts and forms.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::users::{self, User};

/// A session lasts one working day; then the token is asked for again.
pub const SESSION_TTL_MS: i64 = 12 * 60 * 60 * 1000;

/// Length of an encoded id or CSRF token: 32 bytes in unpadded base64url.
pub const ENCODED_LEN: usize = 43;

/// A new session: the id goes into the cookie only, never into a log.
pub struct NewSession {
    pub id: Zeroizing<String>,
    pub csrf_token: String,
}

/// A session found by its cookie.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf_token: String,
    pub expires_at: i64,
}

/// What a cookie's id turned out to be.
#[derive(Debug)]
pub enum Lookup {
    Valid(Session),
    /// Its row exists but has expired: the caller deletes it.
    Expired,
    Unknown,
}

fn random_token() -> String {
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(raw.as_mut());
    URL_SAFE_NO_PAD.encode(raw.as_ref())
}

pub fn id_hash(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes()).to_vec()
}

/// Opens a session for `user_id`, valid for `SESSION_TTL_MS` from `now`.
pub fn create(conn: &Connection, user_id: i64, now: i64) -> anyhow::Result<NewSession> {
    let id = Zeroizing::new(random_token());
    let csrf_token = random_token();
    conn.execute(
        "INSERT INTO web_sessions (id_hash, user_id, csrf_token, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id_hash(&id), user_id, csrf_token, now, now + SESSION_TTL_MS],
    )?;
    Ok(NewSession { id, csrf_token })
}

/// The session whose cookie holds `id`, with its user as the users table has it now (a role
/// changed by an admin takes effect at once).
pub fn lookup(conn: &Connection, id: &str, now: i64) -> anyhow::Result<Lookup> {
    let row: Option<(i64, String, i64)> = conn
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
    Ok(match users::by_id(conn, user_id)? {
        Some(user) => Lookup::Valid(Session {
            user,
            csrf_token,
            expires_at,
        }),
        None => Lookup::Unknown,
    })
}

/// Ends the session whose cookie holds `id` (logout, or found expired). Also sweeps every
/// other expired session, so the table never grows with abandoned browsers.
pub fn delete(conn: &Connection, id: &str, now: i64) -> anyhow::Result<()> {
    conn.execute("DELETE FROM web_sessions WHERE id_hash = ?1", [id_hash(id)])?;
    delete_expired(conn, now)?;
    Ok(())
}

pub fn delete_expired(conn: &Connection, now: i64) -> anyhow::Result<usize> {
    Ok(conn.execute("DELETE FROM web_sessions WHERE expires_at <= ?1", [now])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::users::Role;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrations::apply(&mut conn).unwrap();
        conn
    }

    #[test]
    fn only_the_hash_is_stored_and_expiry_is_honoured() {
        let conn = db();
        let token = users::add(&conn, "ada", Role::Admin, 0).unwrap();
        let user = users::by_token(&conn, &token).unwrap().unwrap();
        let s = create(&conn, user.id, 1_000).unwrap();
        assert_eq!(s.id.len(), ENCODED_LEN);
        let stored: Vec<u8> = conn
            .query_row("SELECT id_hash FROM web_sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, id_hash(&s.id));
        assert!(matches!(
            lookup(&conn, &s.id, 2_000).unwrap(),
            Lookup::Valid(v) if v.user.name == "ada" && v.csrf_token == s.csrf_token
        ));
        assert!(matches!(
            lookup(&conn, &s.id, 1_000 + SESSION_TTL_MS).unwrap(),
            Lookup::Expired
        ));
        delete(&conn, &s.id, 2_000).unwrap();
        assert!(matches!(
            lookup(&conn, &s.id, 2_000).unwrap(),
            Lookup::Unknown
        ));
    }
}
