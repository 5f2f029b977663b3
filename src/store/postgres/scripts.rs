//! Script versions on PostgreSQL. Versions are numbered 1, 2, 3 ... per script; two nodes
//! adding a version of one script at once are put in line by the lock on the script's row
//! (below), so they never pick the same number.

use anyhow::{Context, bail};

use super::PgDb;
use crate::store::AuditDb;
use crate::store::scripts::{
    ScriptRow, ScriptsDb, Version, publish_audit_detail, sha256_hex, version_audit_detail,
};

impl ScriptsDb for PgDb<'_> {
    fn add_script_version(
        &self,
        name: &str,
        source: &str,
        origin: &str,
        author: &str,
        now: i64,
    ) -> anyhow::Result<i64> {
        // The upsert locks the script's row until commit, whether it inserts or updates (a
        // second node inserting the same new name waits on the key, then updates): the
        // next version number is read only by the holder of that lock, and at READ COMMITTED
        // that read sees the version the previous holder committed.
        self.tx()?.execute(
            "INSERT INTO scripts (name, published_version, updated_at) VALUES ($1, NULL, $2)
             ON CONFLICT (name) DO UPDATE SET updated_at = EXCLUDED.updated_at",
            &[&name, &now],
        )?;
        let previous = self.latest_script(name)?;
        let version = previous.as_ref().map_or(1, |(v, _)| v + 1);
        self.tx()?
            .execute(
                "INSERT INTO script_versions (name, version, source, sha256, origin, author, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &name,
                    &version,
                    &source,
                    &sha256_hex(source),
                    &origin,
                    &author,
                    &now,
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
        let row = self
            .tx()?
            .query_opt(
                "SELECT version, source FROM script_versions WHERE name = $1
                 ORDER BY version DESC LIMIT 1",
                &[&name],
            )
            .context("reading script")?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    fn script_has_source(&self, name: &str, source: &str) -> anyhow::Result<bool> {
        Ok(self
            .tx()?
            .query_opt(
                "SELECT 1 FROM script_versions WHERE name = $1 AND sha256 = $2 LIMIT 1",
                &[&name, &sha256_hex(source)],
            )?
            .is_some())
    }

    fn script_source(&self, name: &str, version: i64) -> anyhow::Result<Option<String>> {
        let row = self
            .tx()?
            .query_opt(
                "SELECT source FROM script_versions WHERE name = $1 AND version = $2",
                &[&name, &version],
            )
            .context("reading script version")?;
        Ok(row.map(|r| r.get(0)))
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
        // FOR UPDATE: the version published until now is read under the row's lock, so two
        // nodes publishing at once each audit what they really replaced.
        let before: Option<i64> = self
            .tx()?
            .query_opt(
                "SELECT published_version FROM scripts WHERE name = $1 FOR UPDATE",
                &[&name],
            )?
            .and_then(|r| r.get(0));
        self.tx()?.execute(
            "UPDATE scripts SET published_version = $2, updated_at = $3 WHERE name = $1",
            &[&name, &version, &now],
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
            .tx()?
            .query_opt(
                "SELECT published_version FROM scripts WHERE name = $1",
                &[&name],
            )?
            .and_then(|r| r.get(0)))
    }

    fn published_scripts(&self) -> anyhow::Result<Vec<(String, i64, String)>> {
        // COLLATE "C": names in byte order, as SQLite's BINARY collation sorts them.
        let rows = self
            .tx()?
            .query(
                r#"SELECT s.name, v.version, v.source FROM scripts s
                   JOIN script_versions v ON v.name = s.name AND v.version = s.published_version
                   ORDER BY s.name COLLATE "C""#,
                &[],
            )
            .context("reading published scripts")?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    fn scripts(&self) -> anyhow::Result<Vec<ScriptRow>> {
        let rows = self
            .tx()?
            .query(
                r#"SELECT s.name, s.published_version, MAX(v.version), COUNT(v.version), s.updated_at
                   FROM scripts s JOIN script_versions v ON v.name = s.name
                   GROUP BY s.name ORDER BY s.name COLLATE "C""#,
                &[],
            )
            .context("listing scripts")?;
        Ok(rows
            .iter()
            .map(|r| ScriptRow {
                name: r.get(0),
                published_version: r.get(1),
                latest_version: r.get(2),
                versions: r.get(3),
                updated_at: crate::store::to_rfc3339(r.get(4)),
            })
            .collect())
    }

    fn script_versions(&self, name: &str) -> anyhow::Result<Vec<Version>> {
        let published = self.published_version(name)?;
        let rows = self
            .tx()?
            .query(
                "SELECT version, sha256, origin, author, created_at FROM script_versions
                 WHERE name = $1 ORDER BY version DESC",
                &[&name],
            )
            .context("listing script versions")?;
        Ok(rows
            .iter()
            .map(|r| {
                let version: i64 = r.get(0);
                Version {
                    name: name.to_owned(),
                    version,
                    sha256: r.get(1),
                    origin: r.get(2),
                    author: r.get(3),
                    created_at: crate::store::to_rfc3339(r.get(4)),
                    published: published == Some(version),
                }
            })
            .collect())
    }
}
