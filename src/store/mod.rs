//! Storage, behind an interface a second backend can implement: the application holds a
//! [`Store`] (a cheap-clone handle on some [`Backend`]) and reaches the data only through [`Db`],
//! a synchronous, object-safe trait made of one sub-trait per area (`AccountsDb`, `CallsDb`,
//! ...), taking and returning callgate's own types. No SQL and no database driver type leaves
//! `store/`; the SQLite implementation, its pool, its single writer and its schema live in
//! [`sqlite`].
//!
//! - `store.read(|db| ...)` runs on a reading connection, off the async runtime.
//! - `store.write(|db| ...)` runs in the backend's next write transaction (for SQLite: the
//!   single writer's group commit, each job in a savepoint of its own) and returns once that
//!   transaction is committed, so an answered webhook is always durable.
//! - `read_sync` / `write_sync` are the same for blocking code (the CLI); `write_sync` runs one
//!   transaction of its own, committed when the work succeeds.

pub mod accounts;
pub mod audit;
pub mod backup;
pub mod call_codes;
pub mod calls;
pub mod changes;
#[cfg(test)]
mod contract;
pub mod copy;
pub mod events;
pub mod health;
pub mod key_usage;
pub mod knowledge;
pub mod location;
pub mod outbox;
pub mod outcomes;
pub mod pop;
pub mod postgres;
pub mod privacy;
pub mod reports;
pub mod routing;
pub mod scripts;
pub mod sessions;
pub mod settings;
pub mod sqlite;
pub mod throttle;
pub mod users;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow};

pub use accounts::AccountsDb;
pub use audit::AuditDb;
pub use backup::BackupReport;
pub use call_codes::CallCodesDb;
pub use calls::CallsDb;
pub use events::EventsDb;
pub use health::HealthDb;
pub use key_usage::KeysDb;
pub use knowledge::KnowledgeDb;
pub use location::{DatabaseUrl, Location};
pub use outbox::OutboxDb;
pub use outcomes::OutcomesDb;
pub use pop::PopDb;
pub use privacy::PrivacyDb;
pub use reports::ReportsDb;
pub use routing::RoutingDb;
pub use scripts::ScriptsDb;
pub use sessions::SessionsDb;
pub use settings::SettingsDb;
pub use throttle::ThrottleDb;
pub use users::UsersDb;

/// Every operation the application asks of its storage. A backend implements each area's
/// trait; `Db` follows from them.
pub trait Db:
    AccountsDb
    + AuditDb
    + CallCodesDb
    + CallsDb
    + EventsDb
    + HealthDb
    + KeysDb
    + KnowledgeDb
    + OutboxDb
    + OutcomesDb
    + PopDb
    + PrivacyDb
    + ReportsDb
    + RoutingDb
    + ScriptsDb
    + SessionsDb
    + SettingsDb
    + ThrottleDb
    + UsersDb
{
}

impl<T> Db for T where
    T: AccountsDb
        + AuditDb
        + CallCodesDb
        + CallsDb
        + EventsDb
        + HealthDb
        + KeysDb
        + KnowledgeDb
        + OutboxDb
        + OutcomesDb
        + PopDb
        + PrivacyDb
        + ReportsDb
        + RoutingDb
        + ScriptsDb
        + SessionsDb
        + SettingsDb
        + ThrottleDb
        + UsersDb
        + ?Sized
{
}

/// Work for a reading connection (or for a transaction of its own, see
/// [`Backend::transaction`]): the answer travels back through what the closure captured.
pub type Job<'a> = Box<dyn FnOnce(&dyn Db) -> Done + 'a>;
/// Work for the writer, which runs it on another thread.
pub type WriteJob = Box<dyn FnOnce(&dyn Db) -> Done + Send + 'static>;
/// Resolves once the write transaction that ran a [`WriteJob`] is committed.
pub type Committed = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'static>>;

/// How a job came out: what it changed is kept, or undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Keep,
    Undo,
}

/// A storage backend: where the data lives and how work reaches it. Object-safe, so the
/// application state holds an `Arc<dyn Backend>` whatever the backend is.
pub trait Backend: Send + Sync + 'static {
    /// Runs `job` on a connection for reading, blocking the calling thread (`Store::read` moves
    /// it off the async runtime).
    fn read(&self, job: Job<'_>) -> anyhow::Result<()>;

    /// Queues `job` for the next write transaction. It runs in a savepoint of its own (`Undo`
    /// rolls back its changes and no one else's); the returned future resolves once the
    /// transaction holding it is committed, with the commit's error if it was not.
    fn write(&self, job: WriteJob) -> Committed;

    /// Runs `job` in a transaction of its own on the calling thread, committed when it answers
    /// `Keep` and rolled back otherwise (blocking code: the CLI, the simulator's scratch data).
    fn transaction(&self, job: Job<'_>) -> anyhow::Result<()>;

    /// Writes a consistent copy of the whole database to `target` (a new file), while the
    /// server keeps answering, and checks it.
    fn backup(&self, target: &Path) -> anyhow::Result<BackupReport>;

    /// A private, throw-away store with the full schema and copies of the test accounts (and
    /// their answers and live call codes): the admin page's call simulator runs on it, so a
    /// simulated call never touches a real call, lockout counter or one-time code.
    fn scratch_with_test_accounts(&self) -> anyhow::Result<Store>;

    /// After personal data was erased: makes sure no copy of the erased data stays behind in
    /// the backend's own files (for SQLite, the write-ahead log's old page images).
    fn purge_erased_copies(&self) -> anyhow::Result<()>;

    /// Where the data lives, for logs and messages (never a password).
    fn describe(&self) -> String;

    /// What other processes commit, where the backend can tell (see `changes`).
    fn changes(&self) -> Option<changes::ChangeFeed> {
        None
    }

    /// Whether the master keys are kept in the database (its key ring, wrapped; several nodes
    /// share it) rather than in the key file beside it (`verify::custody`).
    fn keys_in_database(&self) -> bool {
        false
    }
}

/// The handle the application holds: cheap to clone, shared by every task.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend.describe())
            .finish()
    }
}

impl Store {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self { backend }
    }

    /// Opens (creating on first use) the SQLite database `<data_dir>/callgate.db` and brings
    /// its schema up to date.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        Self::open_capped(data_dir, None)
    }

    /// Like `open`, with the server's writes capped at `max_bytes` of database: past it a
    /// write fails as on a full disk, cleanly, before the disk itself fills.
    pub fn open_capped(data_dir: &Path, max_bytes: Option<u64>) -> anyhow::Result<Self> {
        Ok(Self::new(Arc::new(sqlite::SqliteBackend::open(
            data_dir, max_bytes,
        )?)))
    }

    /// Reads, on the blocking pool, never on the async workers.
    pub async fn read<T, F>(&self, work: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Db) -> anyhow::Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_sync(work))
            .await
            .context("database task")?
    }

    /// Writes in the backend's next write transaction and returns once it is committed. A
    /// failing `work` changes nothing (its savepoint is rolled back) and its error is returned.
    pub async fn write<T, F>(&self, work: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Db) -> anyhow::Result<T> + Send + 'static,
    {
        let slot: Arc<Mutex<Option<anyhow::Result<T>>>> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let job: WriteJob = Box::new(move |db: &dyn Db| {
            let result = work(db);
            let done = if result.is_ok() {
                Done::Keep
            } else {
                Done::Undo
            };
            *lock(&out) = Some(result);
            done
        });
        let committed = self.backend.write(job).await;
        let result = lock(&slot).take();
        match (result, committed) {
            // The job's own failure is the answer, whatever became of the transaction.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(e)) | (None, Err(e)) => Err(e),
            (None, Ok(())) => Err(anyhow!("a database job left no answer")),
        }
    }

    /// `read` for blocking code.
    pub fn read_sync<T>(
        &self,
        work: impl FnOnce(&dyn Db) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut out = None;
        self.backend.read(Box::new(|db: &dyn Db| {
            out = Some(work(db));
            Done::Keep
        }))?;
        out.unwrap_or_else(|| Err(anyhow!("a database job left no answer")))
    }

    /// Runs `work` in a transaction of its own on this thread: committed if it succeeds,
    /// rolled back if it fails (blocking code: the CLI).
    pub fn write_sync<T>(
        &self,
        work: impl FnOnce(&dyn Db) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut out = None;
        self.backend.transaction(Box::new(|db: &dyn Db| {
            let result = work(db);
            let done = if result.is_ok() {
                Done::Keep
            } else {
                Done::Undo
            };
            out = Some(result);
            done
        }))?;
        out.unwrap_or_else(|| Err(anyhow!("a database job left no answer")))
    }

    /// Runs `work` in a transaction of its own that is always rolled back: what a write would
    /// do, without doing it (`callgate purge --dry-run`).
    pub fn dry_run<T>(&self, work: impl FnOnce(&dyn Db) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let mut out = None;
        self.backend.transaction(Box::new(|db: &dyn Db| {
            out = Some(work(db));
            Done::Undo
        }))?;
        out.unwrap_or_else(|| Err(anyhow!("a database job left no answer")))
    }

    /// See [`Backend::backup`].
    pub fn backup(&self, target: &Path) -> anyhow::Result<BackupReport> {
        self.backend.backup(target)
    }

    /// See [`Backend::scratch_with_test_accounts`].
    pub fn scratch_with_test_accounts(&self) -> anyhow::Result<Store> {
        self.backend.scratch_with_test_accounts()
    }

    /// See [`Backend::changes`].
    pub fn changes(&self) -> Option<changes::ChangeFeed> {
        self.backend.changes()
    }

    /// See [`Backend::keys_in_database`].
    pub fn keys_in_database(&self) -> bool {
        self.backend.keys_in_database()
    }

    /// See [`Backend::purge_erased_copies`].
    pub fn purge_erased_copies(&self) -> anyhow::Result<()> {
        self.backend.purge_erased_copies()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
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
