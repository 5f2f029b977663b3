//! Agents and admins: add (the answer carries the API token, once) and remove. Audited as
//! `user.add` and `user.remove`; never the token.

use zeroize::Zeroizing;

use super::{Actor, Refused, Result};
use crate::store::Db;
use crate::store::users::{self, Role};

/// The longest user name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Departments one agent may serve.
pub const MAX_DEPARTMENTS: usize = 32;

/// A user who passed every rule, ready to add.
#[derive(Debug, Clone)]
pub struct ValidUser {
    pub name: String,
    pub role: Role,
    pub departments: Vec<String>,
}

impl ValidUser {
    /// `role` is `agent` or `admin`; `departments` are category names (none: every
    /// department).
    pub fn parse(
        name: &str,
        role: &str,
        departments: &[String],
    ) -> std::result::Result<Self, Refused> {
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(Refused::Invalid(format!(
                "the user name must be 1-{MAX_NAME_CHARS} printable characters"
            )));
        }
        let role = Role::parse(role.trim())
            .ok_or_else(|| Refused::invalid("the role must be \"agent\" or \"admin\""))?;
        let departments =
            users::parse_departments(&departments.join(",")).map_err(Refused::invalid)?;
        if departments.len() > MAX_DEPARTMENTS {
            return Err(Refused::Invalid(format!(
                "at most {MAX_DEPARTMENTS} departments"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            role,
            departments,
        })
    }
}

/// Adds a user and returns their API token (256 random bits, stored only as a hash).
pub fn add(db: &dyn Db, actor: &Actor, user: &ValidUser, now: i64) -> Result<Zeroizing<String>> {
    let name = &user.name;
    if db.user_by_name(name)?.is_some() {
        return Err(Refused::Conflict(format!("a user named {name:?} already exists")).into());
    }
    let token = db.add_user(name, user.role, &user.departments, now)?;
    let detail = serde_json::json!({ "role": user.role.as_str(), "departments": user.departments })
        .to_string();
    db.append_audit(
        actor.as_str(),
        "user.add",
        &format!("user:{name}"),
        &detail,
        now,
    )?;
    tracing::info!(actor = %actor, user = %name, role = user.role.as_str(), "user added");
    Ok(token)
}

/// Removes a user; their sessions go with them and their token stops working at once. A user
/// cannot remove themselves (and so an admin never the last admin).
pub fn remove(db: &dyn Db, actor: &Actor, name: &str, now: i64) -> Result<()> {
    if actor.user_name() == Some(name) {
        return Err(Refused::Conflict("you cannot delete yourself".into()).into());
    }
    if !db.remove_user(name)? {
        return Err(Refused::NotFound(format!("no user named {name:?}")).into());
    }
    db.append_audit(
        actor.as_str(),
        "user.remove",
        &format!("user:{name}"),
        "",
        now,
    )?;
    tracing::info!(actor = %actor, user = %name, "user removed");
    Ok(())
}
