//! Moving a desk from SQLite to PostgreSQL (`callgate migrate-to-postgres`): every table's rows
//! copied, in an order foreign keys accept, into an empty PostgreSQL database in one
//! transaction, then proven: the rows per table counted on both sides, and the audit chain
//! verified on the target. The source is only read.

use std::path::Path;

use anyhow::{Context, bail};

use super::audit::Verdict;
use super::postgres::PgBackend;
use super::sqlite::SqliteBackend;

/// A column's value, as SQLite holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// PostgreSQL's tables with nothing to copy from SQLite: the key ring, which on SQLite is the
/// key file; `migrate-to-postgres` fills it from that file (`verify::custody`).
pub const POSTGRES_ONLY: &[&str] = &["key_ring", "key_ring_versions"];

/// The tables copied, parents before children. A table missing here would be left behind:
/// a test compares this list with the schema's tables on both backends.
pub const TABLES: &[&str] = &[
    "accounts",
    "account_knowledge",
    "call_codes",
    "users",
    "web_sessions",
    "scripts",
    "script_versions",
    "calls",
    "call_outcomes",
    "call_events",
    "failures",
    "number_locks",
    "failure_minutes",
    "alert_gate",
    "audit_log",
    "audit_anchor",
    "settings",
    "pop_opens",
    "crm_outbox",
    "routing_models",
];

/// Rows sent to PostgreSQL per statement batch; the source is read in steps of this size, so a
/// desk with a million calls does not need them all in memory at once.
pub const CHUNK: usize = 1000;

/// One table's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    pub source: i64,
    pub target: i64,
}

#[derive(Debug)]
pub struct CopyReport {
    pub tables: Vec<TableCount>,
    pub audit: Verdict,
}

impl CopyReport {
    /// Every table has as many rows on the target as on the source, and the chain verifies.
    pub fn proven(&self) -> bool {
        self.tables.iter().all(|t| t.source == t.target)
            && matches!(self.audit, Verdict::Intact { .. })
    }
}

/// Copies the SQLite database in `data_dir` into the empty PostgreSQL database at `url`.
pub fn sqlite_to_postgres(data_dir: &Path, url: &str) -> anyhow::Result<CopyReport> {
    let db_file = data_dir.join(super::sqlite::DB_FILE);
    if !db_file.is_file() {
        bail!(
            "there is no SQLite database to copy at {} (point --data-dir at the desk's data directory)",
            db_file.display()
        );
    }
    let source = SqliteBackend::open(data_dir, None)?;
    let target = PgBackend::connect(url)?;
    target.import(TABLES, |table, sink| source.export(table, CHUNK, sink))?;
    let mut tables = Vec::new();
    for &table in TABLES {
        tables.push(TableCount {
            table,
            source: source.count_rows(table)?,
            target: target.count_rows(table)?,
        });
    }
    let audit = super::Store::new(std::sync::Arc::new(target))
        .read_sync(|db| db.verify_audit())
        .context("verifying the audit chain on PostgreSQL")?;
    Ok(CopyReport { tables, audit })
}

/// Where one table's rows go, a chunk at a time: the column names, then the rows.
pub type Sink<'a> = dyn FnMut(&[String], Vec<Vec<Value>>) -> anyhow::Result<()> + 'a;
