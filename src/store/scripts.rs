//! IVR scripts as numbered versions. Files and the admin API add versions; one version of each
//! script is published and answers calls. Versions are never changed or deleted, so a call in
//! progress can always find the version it started on.

use anyhow::{Context, bail};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::audit;

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

/// Adds a version (the caller has checked it) and audits it with a diff against the latest.
/// Returns the new version number.
pub fn add_version(
    conn: &Connection,
    name: &str,
    source: &str,
    origin: &str,
    author: &str,
    now: i64,
) -> anyhow::Result<i64> {
    conn.execute(
        "INSERT INTO scripts (name, published_version, updated_at) VALUES (?1, NULL, ?2)
         ON CONFLICT(name) DO UPDATE SET updated_at = ?2",
        params![name, now],
    )?;
    let previous = latest(conn, name)?;
    let version = previous.as_ref().map_or(1, |(v, _)| v + 1);
    conn.execute(
        "INSERT INTO script_versions (name, version, source, sha256, origin, author, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            name,
            version,
            source,
            sha256_hex(source),
            origin,
            author,
            now
        ],
    )
    .context("saving script version")?;
    let old = previous.map(|(_, s)| s).unwrap_or_default();
    let diff = similar::TextDiff::from_lines(&old, source)
        .unified_diff()
        .context_radius(2)
        .header(
            &format!("{name} v{}", version - 1),
            &format!("{name} v{version}"),
        )
        .to_string();
    audit::append(
        conn,
        author,
        "script.save",
        &format!("script:{name}"),
        &format!("version {version} ({origin})\n{diff}"),
        now,
    )?;
    Ok(version)
}

/// The newest version and its source.
pub fn latest(conn: &Connection, name: &str) -> anyhow::Result<Option<(i64, String)>> {
    conn.query_row(
        "SELECT version, source FROM script_versions WHERE name = ?1 ORDER BY version DESC LIMIT 1",
        [name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .context("reading script")
}

/// Whether some version of `name` has exactly this text.
pub fn has_source(conn: &Connection, name: &str, source: &str) -> anyhow::Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM script_versions WHERE name = ?1 AND sha256 = ?2",
            params![name, sha256_hex(source)],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

pub fn source(conn: &Connection, name: &str, version: i64) -> anyhow::Result<Option<String>> {
    conn.prepare_cached("SELECT source FROM script_versions WHERE name = ?1 AND version = ?2")?
        .query_row(params![name, version], |r| r.get(0))
        .optional()
        .context("reading script version")
}

/// Publishes a version: new calls take it at once. `rollback` only changes the audit wording.
pub fn publish(
    conn: &Connection,
    name: &str,
    version: i64,
    actor: &str,
    now: i64,
) -> anyhow::Result<()> {
    if source(conn, name, version)?.is_none() {
        bail!("script {name} has no version {version}");
    }
    let before = published_version(conn, name)?;
    conn.execute(
        "UPDATE scripts SET published_version = ?2, updated_at = ?3 WHERE name = ?1",
        params![name, version, now],
    )?;
    let what = match before {
        Some(b) if b > version => format!("rolled back from version {b} to version {version}"),
        Some(b) => format!("published version {version} (was {b})"),
        None => format!("published version {version}"),
    };
    audit::append(
        conn,
        actor,
        "script.publish",
        &format!("script:{name}"),
        &what,
        now,
    )?;
    Ok(())
}

pub fn published_version(conn: &Connection, name: &str) -> anyhow::Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT published_version FROM scripts WHERE name = ?1",
            [name],
            |r| r.get::<_, Option<i64>>(0),
        )
        .optional()?
        .flatten())
}

/// Every published version: (name, version, source).
pub fn all_published(conn: &Connection) -> anyhow::Result<Vec<(String, i64, String)>> {
    let mut stmt = conn.prepare(
        "SELECT s.name, v.version, v.source FROM scripts s
         JOIN script_versions v ON v.name = s.name AND v.version = s.published_version
         ORDER BY s.name",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect::<Result<_, _>>()
        .context("reading published scripts")
}

pub fn list(conn: &Connection) -> anyhow::Result<Vec<ScriptRow>> {
    let mut stmt = conn.prepare(
        "SELECT s.name, s.published_version, MAX(v.version), COUNT(v.version), s.updated_at
         FROM scripts s JOIN script_versions v ON v.name = s.name
         GROUP BY s.name ORDER BY s.name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ScriptRow {
            name: r.get(0)?,
            published_version: r.get(1)?,
            latest_version: r.get(2)?,
            versions: r.get(3)?,
            updated_at: super::to_rfc3339(r.get(4)?),
        })
    })?;
    rows.collect::<Result<_, _>>().context("listing scripts")
}

pub fn versions(conn: &Connection, name: &str) -> anyhow::Result<Vec<Version>> {
    let published = published_version(conn, name)?;
    let mut stmt = conn.prepare(
        "SELECT version, sha256, origin, author, created_at FROM script_versions
         WHERE name = ?1 ORDER BY version DESC",
    )?;
    let rows = stmt.query_map([name], |r| {
        let version: i64 = r.get(0)?;
        Ok(Version {
            name: name.to_owned(),
            version,
            sha256: r.get(1)?,
            origin: r.get(2)?,
            author: r.get(3)?,
            created_at: super::to_rfc3339(r.get(4)?),
            published: published == Some(version),
        })
    })?;
    rows.collect::<Result<_, _>>()
        .context("listing script versions")
}
