//! Storage: one SQLite file in the data directory (WAL mode, so the server and the CLI can use it
//! at once, and several server processes could share it). Every function here is synchronous and
//! takes a connection or transaction; async code reaches it through `Store::run`, which moves the
//! work off the async runtime.

pub mod accounts;
pub mod audit;
pub mod backup;
pub mod call_codes;
pub mod calls;
pub mod events;
pub mod key_usage;
pub mod knowledge;
mod migrations;
pub mod outbox;
pub mod outcomes;
pub mod privacy;
pub mod scratch;
pub mod scripts;
pub mod sessions;
pub mod settings;
pub mod throttle;
pub mod users;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

pub const DB_FILE: &str = "callgate.db";

pub type Pool = r2d2::Pool<SqliteConnectionManager>;

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    path: PathBuf,
    /// The single writer (started on first use, so CLI commands never start it). SQLite allows
    /// one writer at a time; connections racing for it sleep in SQLite's busy handler with
    /// growing back-off, which showed up as 100 ms+ tails under load.
    writer: Arc<OnceLock<writer::Writer>>,
    /// The size the server's writes may grow the database to (`--max-database-mb`): past it a
    /// write fails as on a full disk, cleanly, before the disk itself fills.
    max_bytes: Option<u64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating on first use) `<data_dir>/callgate.db` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        Self::open_capped(data_dir, None)
    }

    /// Like `open`, with the server's writes capped at `max_bytes` of database.
    pub fn open_capped(data_dir: &Path, max_bytes: Option<u64>) -> anyhow::Result<Self> {
        create_private_dir(data_dir)?;
        let path = data_dir.join(DB_FILE);
        restrict_database_files(&path)?;
        let manager = SqliteConnectionManager::file(&path).with_init(configure);
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .with_context(|| format!("opening database {}", path.display()))?;
        let mut conn = pool.get().context("database connection")?;
        migrations::apply(&mut conn)
            .with_context(|| format!("migrating database {}", path.display()))?;
        Ok(Self {
            pool,
            path,
            writer: Arc::new(OnceLock::new()),
            max_bytes,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn conn(&self) -> anyhow::Result<r2d2::PooledConnection<SqliteConnectionManager>> {
        self.pool.get().context("database connection")
    }

    /// Runs blocking database work on tokio's blocking pool, never on the async workers.
    pub async fn run<T, F>(&self, work: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().context("database connection")?;
            work(&mut conn)
        })
        .await
        .context("database task")?
    }
}

impl Store {
    /// Runs write work in the single writer's next transaction (group commit) and returns its
    /// result once that transaction is committed.
    pub async fn write<T, F>(&self, work: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let writer = match self.writer.get() {
            Some(w) => w,
            None => {
                let conn = open_connection(&self.path)?;
                if let Some(max) = self.max_bytes {
                    let page: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
                    conn.pragma_update(None, "max_page_count", (max / page.max(512)).max(1))?;
                }
                let started = writer::Writer::start(conn, open_connection(&self.path)?)?;
                // Another task may have started one meanwhile; then ours stops at once.
                let _ = self.writer.set(started);
                self.writer.get().context("database writer")?
            }
        };
        writer.write(work).await
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

/// WAL: readers never block the writer. synchronous=NORMAL in WAL mode loses nothing on a
/// process crash (kill -9); busy_timeout lets the CLI and the server share the file.
fn configure(c: &mut Connection) -> rusqlite::Result<()> {
    c.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA secure_delete = ON;",
    )
}

fn open_connection(path: &Path) -> anyhow::Result<Connection> {
    let mut conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    configure(&mut conn)?;
    Ok(conn)
}

/// Creates the data directory readable by its owner only; an existing one is left as it is.
pub(crate) fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))
}

/// Milliseconds since the Unix epoch: how every time is stored.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn to_rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}
