//! Online backup: `VACUUM INTO` writes a consistent, compacted copy of the database from one read
//! transaction, so the server keeps answering webhooks meanwhile. The copy is checked before it
//! is reported good.
//!
//! Restore: stop the server, put the copy in place of `<data-dir>/callgate.db`, delete
//! `callgate.db-wal` and `callgate.db-shm` if present, keep the same `callgate.key`, start.

use std::path::Path;

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};

use crate::store::BackupReport;

pub fn to_file(conn: &Connection, target: &Path) -> anyhow::Result<BackupReport> {
    if target.exists() {
        bail!(
            "{} already exists; a backup never overwrites a file",
            target.display()
        );
    }
    let target_str = target
        .to_str()
        .context("the backup path must be valid UTF-8")?;
    // Created private first: the copy holds names and phone numbers like the database.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(target)
            .with_context(|| format!("creating {}", target.display()))?;
    }
    // VACUUM INTO wants a missing or empty file; the empty private file above is accepted.
    conn.execute("VACUUM INTO ?1", [target_str])
        .with_context(|| format!("writing the backup to {}", target.display()))?;
    let copy = Connection::open_with_flags(target, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening the backup {}", target.display()))?;
    let check: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        bail!(
            "the backup at {} failed its integrity check: {check}",
            target.display()
        );
    }
    Ok(BackupReport {
        accounts: copy.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?,
        calls: copy.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0))?,
        bytes: std::fs::metadata(target)?.len(),
    })
}
