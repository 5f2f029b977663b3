//! Agents and admins, who read screen-pops through the API. Tokens are 256 random bits, shown
//! once and stored as SHA-256 (a slow hash adds nothing to a secret of that size).

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "agent" => Some(Self::Agent),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a user and returns its token (`cg_` + 43 base64url characters).
pub fn add(
    conn: &Connection,
    name: &str,
    role: Role,
    now: i64,
) -> anyhow::Result<Zeroizing<String>> {
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(raw.as_mut());
    let token = Zeroizing::new(format!("cg_{}", URL_SAFE_NO_PAD.encode(raw.as_ref())));
    let inserted = conn.execute(
        "INSERT INTO users (name, role, token_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, role.as_str(), token_hash(&token), now],
    );
    match inserted {
        Ok(_) => Ok(token),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
            anyhow::bail!("a user named {name:?} already exists")
        }
        Err(e) => Err(e).context("storing user"),
    }
}

pub fn by_token(conn: &Connection, token: &str) -> anyhow::Result<Option<User>> {
    let row: Option<(String, String)> = conn
        .prepare_cached("SELECT name, role FROM users WHERE token_hash = ?1")?
        .query_row([token_hash(token)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(name, role)| Role::parse(&role).map(|role| User { name, role })))
}
