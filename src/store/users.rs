//! Agents and admins, who read screen-pops through the API. Tokens are 256 random bits, shown
//! once and stored as SHA-256 (a slow hash adds nothing to a secret of that size).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
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
pub fn split_departments(column: &str) -> Vec<String> {
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

/// A new API token: `cg_` + 43 base64url characters (256 random bits).
pub fn new_token() -> Zeroizing<String> {
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(raw.as_mut());
    Zeroizing::new(format!("cg_{}", URL_SAFE_NO_PAD.encode(raw.as_ref())))
}

/// A user as the admin page lists it: never its token hash.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub name: String,
    pub role: Role,
    pub departments: Vec<String>,
    pub created_at: i64,
}

pub trait UsersDb {
    /// Creates a user and returns its token (shown once; only its hash is stored).
    /// `departments` are expected to come from `parse_departments` (empty: every department).
    /// An error if the name is taken.
    fn add_user(
        &self,
        name: &str,
        role: Role,
        departments: &[String],
        now: i64,
    ) -> anyhow::Result<Zeroizing<String>>;

    fn user_by_token(&self, token: &str) -> anyhow::Result<Option<User>>;

    /// The user a web session belongs to.
    fn user_by_id(&self, id: i64) -> anyhow::Result<Option<User>>;

    fn user_by_name(&self, name: &str) -> anyhow::Result<Option<User>>;

    /// Every user, by name.
    fn users(&self) -> anyhow::Result<Vec<Listed>>;

    /// Removes a user; their web sessions go with them, their token stops working at once.
    /// `false` if there was no such user.
    fn remove_user(&self, name: &str) -> anyhow::Result<bool>;
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
