//! The SQLite backend: one file in the data directory (WAL mode, so the server and the CLI can
//! use it at once). Reads come from a pool of connections; every write of the server goes
//! through one writer thread that batches what is queued into one transaction (group commit,
//! see `writer`). All of callgate's SQL lives under this module: each area implements its
//! `crate::store::*Db` trait for `rusqlite::Connection`, so a connection or a transaction is a
//! `&dyn Db` as it is.

mod accounts;
mod audit;
pub mod backup;
mod call_codes;
mod calls;
mod events;
mod export;
mod key_usage;
mod knowledge;
mod migrations;
mod misc;
mod outbox;
mod outcomes;
mod privacy;
mod reports;
pub(crate) mod scratch;
mod scripts;
mod sessions;
mod settings;
mod throttle;
mod users;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, anyhow};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, TransactionBehavior};

use super::{Backend, BackupReport, Committed, Done, Job, Store, WriteJob};

pub const DB_FILE: &str = "callgate.db";

type Pool = r2d2::Pool<SqliteConnectionManager>;

pub struct SqliteBackend {
    pool: Pool,
    path: PathBuf,
    /// The single writer (started on first use, so CLI commands never start it). SQLite allows
    /// one writer at a time; connections racing for it sleep in SQLite's busy handler with
    /// growing back-off, which showed up as 100 ms+ tails under load.
    writer: OnceLock<writer::Writer>,
    /// The size the server's writes may grow the database to (`--max-database-mb`): past it a
    /// write fails as on a full disk, cleanly, before the disk itself fills.
    max_bytes: Option<u64>,
}

impl SqliteBackend {
    /// Opens (creating on first use) `<data_dir>/callgate.db` and brings its schema up to date.
    pub fn open(data_dir: &Path, max_bytes: Option<u64>) -> anyhow::Result<Self> {
        super::create_private_dir(data_dir)?;
        let path = data_dir.join(DB_FILE);
        restrict_database_files(&path)?;
        // One connection switches the file to WAL and migrates it before the pool opens its
        // connections. Switching the journal mode needs the file to itself: when the pool's
        // connections did it as they opened, several at once on a new file, some were refused
        // at once with "database is locked" (no busy wait applies), which r2d2 logged as an
        // ERROR on every first start that lost the race.
        let mut first = open_connection(&path)?;
        first
            .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .with_context(|| format!("switching {} to WAL", path.display()))?;
        migrations::apply(&mut first)
            .with_context(|| format!("migrating database {}", path.display()))?;
        drop(first);
        let manager = SqliteConnectionManager::file(&path).with_init(configure);
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .with_context(|| format!("opening database {}", path.display()))?;
        Ok(Self {
            pool,
            path,
            writer: OnceLock::new(),
            max_bytes,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> anyhow::Result<r2d2::PooledConnection<SqliteConnectionManager>> {
        self.pool.get().context("database connection")
    }

    fn writer(&self) -> anyhow::Result<&writer::Writer> {
        if let Some(w) = self.writer.get() {
            return Ok(w);
        }
        let conn = open_connection(&self.path)?;
        if let Some(max) = self.max_bytes {
            let page: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            conn.pragma_update(None, "max_page_count", (max / page.max(512)).max(1))?;
        }
        let started = writer::Writer::start(conn, open_connection(&self.path)?)?;
        // Another task may have started one meanwhile; then ours stops at once.
        let _ = self.writer.set(started);
        self.writer.get().context("database writer")
    }
}

impl Backend for SqliteBackend {
    fn read(&self, job: Job<'_>) -> anyhow::Result<()> {
        let conn = self.conn()?;
        job(&*conn);
        Ok(())
    }

    fn write(&self, job: WriteJob) -> Committed {
        match self.writer() {
            Ok(writer) => writer.submit(job),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    fn transaction(&self, job: Job<'_>) -> anyhow::Result<()> {
        let mut conn = self.conn()?;
        in_transaction(&mut conn, job)
    }

    fn backup(&self, target: &Path) -> anyhow::Result<BackupReport> {
        backup::to_file(&*self.conn()?, target)
    }

    fn scratch_with_test_accounts(&self) -> anyhow::Result<Store> {
        scratch::with_test_accounts(&self.path)
    }

    fn purge_erased_copies(&self) -> anyhow::Result<()> {
        // secure_delete zeroed the erased rows in the database pages; the write-ahead log
        // still holds the old page images until a checkpoint empties it.
        self.conn()?
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .context("emptying the write-ahead log")
    }

    fn describe(&self) -> String {
        format!("SQLite {}", self.path.display())
    }
}

/// Runs `job` in an IMMEDIATE transaction of its own (the write lock is taken at once, so two
/// processes never both read, decide and then fail to upgrade), committed on `Keep`.
fn in_transaction(conn: &mut Connection, job: Job<'_>) -> anyhow::Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin")?;
    match job(&*tx) {
        Done::Keep => tx.commit().context("commit"),
        Done::Undo => tx.rollback().context("rollback"),
    }
}

/// The database holds names and phone numbers: readable by its owner only. The file is created
/// 0600 before SQLite opens it (an empty file is a valid new database), so that the -wal and
/// -shm files, which SQLite creates with the database's permissions, are private too.
fn restrict_database_files(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        // Only a missing file is opened here. Closing any descriptor of a database file drops
        // every POSIX lock this process holds on it, including those of SQLite connections
        // already open (a second Store in one process): another process could then write
        // under them, and the database would be corrupted.
        if !path.exists() {
            std::fs::OpenOptions::new()
                .create_new(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Ok(std::fs::File::open("/dev/null")?),
                    _ => Err(e),
                })
                .with_context(|| format!("creating {}", path.display()))?;
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            if file.exists() {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("restricting {}", file.display()))?;
            }
        }
    }
    Ok(())
}

/// Each connection's settings. WAL (readers never block the writer) is a property of the file,
/// set once by `SqliteBackend::open`. synchronous=NORMAL in WAL mode loses nothing on a process
/// crash (kill -9); busy_timeout lets the CLI and the server share the file.
fn configure(c: &mut Connection) -> rusqlite::Result<()> {
    c.execute_batch(
        "PRAGMA busy_timeout = 5000;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;",
    )
}

fn open_connection(path: &Path) -> anyhow::Result<Connection> {
    let mut conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    configure(&mut conn)?;
    Ok(conn)
}

/// The error a job that chose `Undo` reports to the writer (its caller has its own error).
#[derive(Debug)]
struct Undone;

impl std::fmt::Display for Undone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the database job was rolled back")
    }
}

impl std::error::Error for Undone {}

fn undone() -> anyhow::Error {
    anyhow!(Undone)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::domain::{AccountId, AccountName, PhoneNumber, Region};
    use crate::store::Store;
    use crate::store::accounts::NewAccount;
    use crate::store::users::Role;
    use crate::verify::Keyring;

    fn user_names(store: &Store) -> Vec<String> {
        store
            .read_sync(|db| Ok(db.users()?.into_iter().map(|u| u.name).collect()))
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_is_kept_only_when_its_work_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write(|db| db.add_user("ada", Role::Admin, &[], 1))
            .await
            .unwrap();
        let failed = store
            .write(|db| -> anyhow::Result<()> {
                db.add_user("bob", Role::Agent, &[], 1)?;
                anyhow::bail!("changed my mind")
            })
            .await
            .unwrap_err();
        assert_eq!(failed.to_string(), "changed my mind", "the job's own error");
        let panicked = store
            .write(|db| -> anyhow::Result<()> {
                db.add_user("eve", Role::Agent, &[], 1)?;
                panic!("a bug in a job")
            })
            .await
            .unwrap_err();
        assert!(panicked.to_string().contains("panicked"), "{panicked}");
        // The writer carries on after both.
        store
            .write(|db| db.add_user("cy", Role::Agent, &[], 1))
            .await
            .unwrap();
        assert_eq!(user_names(&store), ["ada", "cy"]);
    }

    #[test]
    fn write_sync_commits_on_success_and_dry_run_never() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write_sync(|db| db.add_user("ada", Role::Admin, &[], 1))
            .unwrap();
        let token = store
            .dry_run(|db| db.add_user("bob", Role::Agent, &[], 1))
            .unwrap();
        assert!(token.starts_with("cg_"), "the dry run's answer comes back");
        store
            .write_sync(|db| -> anyhow::Result<()> {
                db.add_user("eve", Role::Agent, &[], 1)?;
                anyhow::bail!("refused")
            })
            .unwrap_err();
        assert_eq!(user_names(&store), ["ada"]);
    }

    #[test]
    fn the_scratch_store_has_the_test_accounts_only_and_keeps_its_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys = Keyring::load_or_create(dir.path()).unwrap();
        let (name, attributes) = (AccountName::parse("Ola").unwrap(), BTreeMap::new());
        for (id, phone, test) in [
            ("TEST-1", "+48601234567", true),
            ("REAL-1", "+48602345678", false),
        ] {
            let (id, phone) = (
                AccountId::parse(id).unwrap(),
                PhoneNumber::parse(phone, Region::default()).unwrap(),
            );
            let new = NewAccount {
                id: &id,
                name: &name,
                phone: &phone,
                code: None,
                totp_secret: None,
                attributes: &attributes,
                knowledge: &[("dob".to_owned(), "14031985".to_owned())],
                test,
            };
            store
                .write_sync(|db| Ok(db.add_account(&keys, &new, 1)?))
                .unwrap();
        }
        let scratch = store.scratch_with_test_accounts().unwrap();
        let ids = |s: &Store| -> Vec<String> {
            s.read_sync(|db| Ok(db.accounts()?.into_iter().map(|a| a.id).collect()))
                .unwrap()
        };
        assert_eq!(ids(&scratch), ["TEST-1"]);
        assert!(
            scratch
                .read_sync(|db| db.has_knowledge_answer("TEST-1", "dob"))
                .unwrap()
        );
        scratch
            .write_sync(|db| db.remove_account("TEST-1"))
            .unwrap();
        assert!(ids(&scratch).is_empty());
        assert_eq!(
            ids(&store),
            ["REAL-1", "TEST-1"],
            "the live data is untouched"
        );
    }
}
