//! Agents and admins, who read screen-pops through the API. Tokens are 256 random bits, shown
//! once and stored as SHA-256 (a slow hash adds nothing to a secret of that size).

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
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
    /// The row id, which web sessions refer to.
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The categories (`billing`, `technical`, ...) an agent serves; empty for admins and for
    /// agents who serve every department.
    pub departments: Vec<String>,
}

/// The longest department name; they are category keys, not prose.
const MAX_DEPARTMENT_LEN: usize = 32;

/// Reads a comma-separated department list (`billing, technical`): trimmed, lowercased,
/// deduplicated, each made of `a-z 0-9 _ -` so it can be stored comma-separated and shown in a
/// page without surprises.
pub fn parse_departments(list: &str) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let dept = part.to_ascii_lowercase();
        let valid = dept.len() <= MAX_DEPARTMENT_LEN
            && dept
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            anyhow::bail!(
                "department {part:?} must be 1-{MAX_DEPARTMENT_LEN} characters of a-z, 0-9, _ and -"
            );
        }
        if !out.contains(&dept) {
            out.push(dept);
        }
    }
    Ok(out)
}

/// The stored column, split back into names (the column is only ever written by `add`, from
/// `parse_departments`, so no validation is repeated here).
fn split_departments(column: &str) -> Vec<String> {
    column
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect()
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a user serving no particular department and returns its token.
pub fn add(
    conn: &Connection,
    name: &str,
    role: Role,
    now: i64,
) -> anyhow::Result<Zeroizing<String>> {
    add_with_departments(conn, name, role, &[], now)
}

/// Creates a user and returns its token (`cg_` + 43 base64url characters). `departments` are
/// expected to come from `parse_departments`.
pub fn add_with_departments(
    conn: &Connection,
    name: &str,
    role: Role,
    departments: &[String],
    now: i64,
) -> anyhow::Result<Zeroizing<String>> {
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(raw.as_mut());
    let token = Zeroizing::new(format!("cg_{}", URL_SAFE_NO_PAD.encode(raw.as_ref())));
    let inserted = conn.execute(
        "INSERT INTO users (name, role, token_hash, created_at, departments) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            name,
            role.as_str(),
            token_hash(&token),
            now,
            departments.join(",")
        ],
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
    by_column(conn, "token_hash", token_hash(token))
}

/// The user a web session belongs to.
pub fn by_id(conn: &Connection, id: i64) -> anyhow::Result<Option<User>> {
    by_column(conn, "id", id)
}

/// One user by a unique column (`column` is one of this module's constants, never input).
fn by_column(
    conn: &Connection,
    column: &'static str,
    value: impl rusqlite::ToSql,
) -> anyhow::Result<Option<User>> {
    let sql = format!("SELECT id, name, role, departments FROM users WHERE {column} = ?1");
    let row: Option<(i64, String, String, String)> = conn
        .prepare_cached(&sql)?
        .query_row([value], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    Ok(row.and_then(|(id, name, role, departments)| {
        Role::parse(&role).map(|role| User {
            id,
            name,
            role,
            departments: split_departments(&departments),
        })
    }))
}

/// A user as the admin page lists it: never its token hash.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub name: String,
    pub role: Role,
    pub departments: Vec<String>,
    pub created_at: i64,
}

/// Every user, by name.
pub fn list(conn: &Connection) -> anyhow::Result<Vec<Listed>> {
    let mut stmt =
        conn.prepare_cached("SELECT name, role, departments, created_at FROM users ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, role, departments, created_at) = row?;
        if let Some(role) = Role::parse(&role) {
            out.push(Listed {
                name,
                role,
                departments: split_departments(&departments),
                created_at,
            });
        }
    }
    Ok(out)
}

/// The user with this name, if any.
pub fn by_name(conn: &Connection, name: &str) -> anyhow::Result<Option<User>> {
    by_column(conn, "name", name)
}

/// Removes a user; their web sessions go with them (ON DELETE CASCADE), their token stops
/// working at once.
pub fn remove(conn: &Connection, name: &str) -> anyhow::Result<bool> {
    Ok(conn.execute("DELETE FROM users WHERE name = ?1", [name])? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departments_are_normalised_and_checked() {
        assert_eq!(
            parse_departments(" Billing, technical,,billing ").unwrap(),
            ["billing", "technical"]
        );
        assert!(parse_departments("").unwrap().is_empty());
        assert!(parse_departments("bill ing").is_err());
        assert!(parse_departments("<script>").is_err());
    }
}
