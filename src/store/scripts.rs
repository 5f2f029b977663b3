//! IVR scripts as numbered versions. Files and the admin API add versions; one version of each
//! script is published and answers calls. Versions are never changed or deleted, so a call in
//! progress can always find the version it started on.

use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScriptRow {
    pub name: String,
    pub published_version: Option<i64>,
    pub latest_version: i64,
    pub versions: i64,
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ScriptVersion)]
pub struct Version {
    pub name: String,
    pub version: i64,
    pub sha256: String,
    pub origin: String,
    pub author: String,
    pub created_at: Option<String>,
    pub published: bool,
}

pub fn sha256_hex(source: &str) -> String {
    hex::encode(Sha256::digest(source.as_bytes()))
}

/// What the audit trail says of a new version: its number and origin, and a unified diff
/// against the version before (`old`, empty for the first).
pub fn version_audit_detail(
    name: &str,
    version: i64,
    origin: &str,
    old: &str,
    source: &str,
) -> String {
    let diff = similar::TextDiff::from_lines(old, source)
        .unified_diff()
        .context_radius(2)
        .header(
            &format!("{name} v{}", version - 1),
            &format!("{name} v{version}"),
        )
        .to_string();
    format!("version {version} ({origin})\n{diff}")
}

/// What the audit trail says of a publish: `before` is the version published until now.
pub fn publish_audit_detail(before: Option<i64>, version: i64) -> String {
    match before {
        Some(b) if b > version => format!("rolled back from version {b} to version {version}"),
        Some(b) => format!("published version {version} (was {b})"),
        None => format!("published version {version}"),
    }
}

pub trait ScriptsDb {
    /// Adds a version (the caller has checked it) and audits it with a diff against the
    /// latest. Returns the new version number.
    fn add_script_version(
        &self,
        name: &str,
        source: &str,
        origin: &str,
        author: &str,
        now: i64,
    ) -> anyhow::Result<i64>;

    /// The newest version and its source.
    fn latest_script(&self, name: &str) -> anyhow::Result<Option<(i64, String)>>;

    /// Whether some version of `name` has exactly this text.
    fn script_has_source(&self, name: &str, source: &str) -> anyhow::Result<bool>;

    fn script_source(&self, name: &str, version: i64) -> anyhow::Result<Option<String>>;

    /// Publishes a version (new calls take it at once) and audits it; an error if there is no
    /// such version.
    fn publish_script(&self, name: &str, version: i64, actor: &str, now: i64)
    -> anyhow::Result<()>;

    fn published_version(&self, name: &str) -> anyhow::Result<Option<i64>>;

    /// Every published version: (name, version, source), by name.
    fn published_scripts(&self) -> anyhow::Result<Vec<(String, i64, String)>>;

    /// Every script, by name.
    fn scripts(&self) -> anyhow::Result<Vec<ScriptRow>>;

    /// A script's versions, newest first.
    fn script_versions(&self, name: &str) -> anyhow::Result<Vec<Version>>;
}
