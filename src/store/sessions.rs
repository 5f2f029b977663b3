//! Browser sessions of agents and admins. The cookie carries 256 random bits; the table keeps
//! only their SHA-256, so a copy of the database opens no session. Each session has its own
//! CSRF token, which pages hand to their scripts and forms.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::users::User;

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

pub fn random_token() -> String {
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(raw.as_mut());
    URL_SAFE_NO_PAD.encode(raw.as_ref())
}

pub fn id_hash(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes()).to_vec()
}

pub trait SessionsDb {
    /// Opens a session for `user_id`, valid for `SESSION_TTL_MS` from `now`; only the hash of
    /// its id is stored.
    fn create_session(&self, user_id: i64, now: i64) -> anyhow::Result<NewSession>;

    /// The session whose cookie holds `id`, with its user as the users table has it now (a
    /// role changed by an admin takes effect at once).
    fn lookup_session(&self, id: &str, now: i64) -> anyhow::Result<Lookup>;

    /// Ends the session whose cookie holds `id` (logout, or found expired). Also sweeps every
    /// other expired session, so the table never grows with abandoned browsers.
    fn delete_session(&self, id: &str, now: i64) -> anyhow::Result<()>;

    fn delete_expired_sessions(&self, now: i64) -> anyhow::Result<usize>;
}
