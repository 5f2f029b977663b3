//! Script versions in SQLite.

use anyhow::{Context, bail};
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::AuditDb;
use crate::store::scripts::{
    ScriptRow, ScriptsDb, Version, publish_audit_detail, sha256_hex, version_audit_detail,
};

impl ScriptsDb for Connection {
    fn add_script_version(
        &self,
        name: &str,
        source: &str,
        origin: &str,
        author: &str,
        now: i64,
    ) -> anyhow::Result<i64> {
        self.execute(
            "INSERT INTO scripts (name, published_version, updated_at) VALUES (?1, NULL, ?2)
         ON CONFLICT(name) DO UPDATE SET updated_at = ?2",
            params![name, now],
        )?;
        let previous = self.latest_script(name)?;
        let version = previous.as_ref().map_or(1, |(v, _)| v + 1);
        self.execute(
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
        self.append_audit(
            author,
            "script.save",
            &format!("script:{name}"),
            &version_audit_detail(name, version, origin, &old, source),
            now,
        )?;
        Ok(version)
    }

    fn latest_script(&self, name: &str) -> anyhow::Result<Option<(i64, String)>> {
        self.query_row(
        "SELECT version, source FROM script_versions WHERE name = ?1 ORDER BY version DESC LIMIT 1",
        [name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .context("reading script")
    }

    fn script_has_source(&self, name: &str, source: &str) -> anyhow::Result<bool> {
        Ok(self
            .query_row(
                "SELECT 1 FROM script_versions WHERE name = ?1 AND sha256 = ?2",
                params![name, sha256_hex(source)],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn script_source(&self, name: &str, version: i64) -> anyhow::Result<Option<String>> {
        self.prepare_cached("SELECT source FROM script_versions WHERE name = ?1 AND version = ?2")?
            .query_row(params![name, version], |r| r.get(0))
            .optional()
            .context("reading script version")
    }

    fn publish_script(
        &self,
        name: &str,
        version: i64,
        actor: &str,
        now: i64,
    ) -> anyhow::Result<()> {
        if self.script_source(name, version)?.is_none() {
            bail!("script {name} has no version {version}");
        }
        let before = self.published_version(name)?;
        self.execute(
            "UPDATE scripts SET published_version = ?2, updated_at = ?3 WHERE name = ?1",
            params![name, version, now],
        )?;
        self.append_audit(
            actor,
            "script.publish",
            &format!("script:{name}"),
            &publish_audit_detail(before, version),
            now,
        )?;
        Ok(())
    }

    fn published_version(&self, name: &str) -> anyhow::Result<Option<i64>> {
        Ok(self
            .query_row(
                "SELECT published_version FROM scripts WHERE name = ?1",
                [name],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten())
    }

    fn published_scripts(&self) -> anyhow::Result<Vec<(String, i64, String)>> {
        let mut stmt = self.prepare(
            "SELECT s.name, v.version, v.source FROM scripts s
         JOIN script_versions v ON v.name = s.name AND v.version = s.published_version
         ORDER BY s.name",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()
            .context("reading published scripts")
    }

    fn scripts(&self) -> anyhow::Result<Vec<ScriptRow>> {
        let mut stmt = self.prepare(
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
                updated_at: crate::store::to_rfc3339(r.get(4)?),
            })
        })?;
        rows.collect::<Result<_, _>>().context("listing scripts")
    }

    fn script_versions(&self, name: &str) -> anyhow::Result<Vec<Version>> {
        let published = self.published_version(name)?;
        let mut stmt = self.prepare(
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
                created_at: crate::store::to_rfc3339(r.get(4)?),
                published: published == Some(version),
            })
        })?;
        rows.collect::<Result<_, _>>()
            .context("listing script versions")
    }
}
