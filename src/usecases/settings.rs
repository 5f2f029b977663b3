//! Settings an admin changes while the server runs: which account attributes agents see.

use super::{Actor, Refused, Result};
use crate::domain::AttributeKey;
use crate::store::Db;

/// Attribute keys as typed: each by `AttributeKey`'s rule, duplicates dropped.
pub fn parse_keys(keys: &[String]) -> std::result::Result<Vec<String>, Refused> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let key = AttributeKey::parse(key.trim())
            .map_err(Refused::invalid)?
            .into_string();
        if !out.contains(&key) {
            out.push(key);
        }
    }
    Ok(out)
}

/// Sets the attribute keys agents see (`None`: every attribute). Audited as
/// `visible_attributes.set`. Returns the keys as stored.
pub fn set_visible_attributes(
    db: &dyn Db,
    actor: &Actor,
    keys: Option<&[String]>,
    now: i64,
) -> Result<Option<Vec<String>>> {
    let keys = keys.map(parse_keys).transpose()?;
    db.set_visible_attributes(keys.as_deref(), now)?;
    let detail = serde_json::json!({ "attributes": keys }).to_string();
    db.append_audit(
        actor.as_str(),
        "visible_attributes.set",
        "settings",
        &detail,
        now,
    )?;
    Ok(keys)
}
