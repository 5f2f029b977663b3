//! Settings an admin changes while the server runs, in the `settings` table. For now one:
//! which account attributes agents see (`visible_attributes`, a JSON list of keys). Unset means
//! every attribute, as before the setting existed.

use std::collections::BTreeMap;

pub trait SettingsDb {
    /// The attribute keys agents see; `None` when no admin chose (all are shown).
    fn visible_attributes(&self) -> anyhow::Result<Option<Vec<String>>>;

    /// Sets the list (`None`: back to showing every attribute).
    fn set_visible_attributes(&self, keys: Option<&[String]>, now: i64) -> anyhow::Result<()>;
}

/// `attributes` with only the visible keys left.
pub fn filter_visible(
    attributes: &BTreeMap<String, String>,
    visible: Option<&[String]>,
) -> BTreeMap<String, String> {
    match visible {
        None => attributes.clone(),
        Some(keys) => attributes
            .iter()
            .filter(|(k, _)| keys.iter().any(|v| v == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}
