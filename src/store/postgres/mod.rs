//! The PostgreSQL backend, for running callgate on several nodes (`CALLGATE_DATABASE_URL`).
//!
//! Driver: the `postgres` crate (rust-postgres, the sync face of `tokio-postgres`), pooled by
//! `r2d2` (which already pools callgate's SQLite connections) through the manager in `pool`,
//! which bounds connecting and checks each connection handed out. The storage interface is
//! synchronous (a job runs inside one transaction on a blocking thread, as with SQLite), so a
//! synchronous client is the natural fit.
//!
//! Unlike SQLite there is no single writer: every job runs in its own transaction on its own
//! pooled connection, and several nodes write at once. What must be decided by one writer is
//! decided by the database: row locks (`SELECT ... FOR UPDATE`, `UPDATE ... WHERE` guards) for
//! the one winner of a code, advisory transaction locks where a sequence must have no holes
//! (the audit chain). Each area implements its `crate::store::*Db` trait for [`PgDb`], a
//! transaction, in a file of its own here, beside its SQLite twin in `crate::store::sqlite`.
//! What bounds each wait when the database stops answering is in `pool`.

mod accounts;
mod audit;
mod call_codes;
mod calls;
mod events;
mod health;
mod import;
mod key_usage;
mod knowledge;
mod listen;
mod migrations;
mod outbox;
mod outcomes;
mod pool;
mod pop;
mod privacy;
mod reports;
mod routing;
pub mod scratch_db;
mod scripts;
mod sessions;
mod settings;
mod throttle;
mod users;

use std::cell::{RefCell, RefMut};
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use postgres::Transaction;

use super::{Backend, BackupReport, Committed, Done, Job, Store, WriteJob};

type Pool = r2d2::Pool<pool::Manager>;

pub struct PgBackend {
    pool: PoolHandle,
    config: postgres::Config,
    /// The URL without its password, for messages.
    shown: String,
}

/// One transaction, the `&dyn Db` of a job on PostgreSQL. The client needs `&mut` for every
/// statement while the storage traits take `&self`: the transaction sits in a `RefCell`, and
/// each method borrows it for one statement at a time.
pub struct PgDb<'t> {
    tx: RefCell<Transaction<'t>>,
    /// A `read` job's transaction: row locks (`FOR UPDATE`) are refused in it, so a read that
    /// locks what it reads in a write transaction reads plainly here.
    read_only: bool,
}

impl<'t> PgDb<'t> {
    /// The transaction, for one statement. A method holding it must not call another method
    /// of `self` (the borrow would fail; an error, not a panic).
    fn tx(&self) -> anyhow::Result<RefMut<'_, Transaction<'t>>> {
        self.tx
            .try_borrow_mut()
            .map_err(|_| anyhow!("the database transaction is already in use"))
    }
}

impl PgBackend {
    /// Connects to `url`, brings the schema up to date (under an advisory lock, so nodes
    /// starting together do not race) and keeps a pool of connections.
    pub fn connect(url: &str) -> anyhow::Result<Self> {
        let config: postgres::Config = url
            .parse()
            .with_context(|| format!("reading the database URL {}", redact(url)))?;
        let shown = redact(url);
        let config = pool::hardened(config);
        let manager = pool::Manager::new(config.clone());
        let pool = r2d2::Pool::builder()
            .max_size(16)
            // A dead connection is found on check-out and replaced, not handed to a job.
            .test_on_check_out(true)
            .connection_timeout(pool::CHECKOUT_DEADLINE)
            .build(manager)
            .with_context(|| format!("connecting to {shown}"))?;
        off_runtime(|| {
            let mut client = pool
                .get()
                .with_context(|| format!("connecting to {shown}"))?;
            migrations::apply(&mut client).with_context(|| format!("migrating {shown}"))
        })?;
        Ok(Self {
            pool: PoolHandle(Some(pool)),
            config,
            shown,
        })
    }

    fn run(&self, job: Job<'_>, read_only: bool) -> anyhow::Result<()> {
        run_job(&self.pool, &self.shown, job, read_only)
    }
}

/// Runs `job` in a transaction of its own on a pooled connection: committed on `Keep`.
fn run_job(pool: &Pool, shown: &str, job: Job<'_>, read_only: bool) -> anyhow::Result<()> {
    off_runtime(|| run_job_here(pool, shown, job, read_only))
}

fn run_job_here(pool: &Pool, shown: &str, job: Job<'_>, read_only: bool) -> anyhow::Result<()> {
    let mut client = pool
        .get()
        .with_context(|| format!("connecting to {shown}"))?;
    let tx = client
        .build_transaction()
        .read_only(read_only)
        .start()
        .context("begin")?;
    let db = PgDb {
        tx: RefCell::new(tx),
        read_only,
    };
    let done = job(&db);
    let tx = db.tx.into_inner();
    match done {
        Done::Keep => tx.commit().context("commit"),
        Done::Undo => tx.rollback().context("rollback"),
    }
}

impl Backend for PgBackend {
    fn read(&self, job: Job<'_>) -> anyhow::Result<()> {
        self.run(job, true)
    }

    fn write(&self, job: WriteJob) -> Committed {
        let pool: Pool = (*self.pool).clone();
        let shown = self.shown.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || run_job(&pool, &shown, job, false))
                .await
                .context("database task")?
        })
    }

    fn transaction(&self, job: Job<'_>) -> anyhow::Result<()> {
        self.run(job, false)
    }

    fn backup(&self, _target: &Path) -> anyhow::Result<BackupReport> {
        bail!(
            "callgate backup copies the SQLite file; on PostgreSQL ({}) back up with the database's own tools: \
             pg_dump for a copy (pg_dump --format=custom --file=callgate.dump URL), or continuous WAL \
             archiving for point-in-time recovery (see the README's \"Running several nodes\")",
            self.shown
        )
    }

    fn scratch_with_test_accounts(&self) -> anyhow::Result<Store> {
        // The simulator's scratch store is SQLite in memory whatever the live backend: private
        // to this process, gone with it, and never a write to the shared database.
        let mut rows = None;
        self.run(
            Box::new(|db: &dyn super::Db| {
                rows = Some(db.test_account_rows());
                Done::Keep
            }),
            true,
        )?;
        let rows = rows.unwrap_or_else(|| Err(anyhow!("a database job left no answer")))?;
        crate::store::sqlite::scratch::from_rows(&rows)
    }

    fn purge_erased_copies(&self) -> anyhow::Result<()> {
        off_runtime(|| {
            let mut client = self.pool.get().context("database connection")?;
            privacy::purge_erased_copies(&mut client)
        })
    }

    fn describe(&self) -> String {
        format!("PostgreSQL {}", self.shown)
    }

    fn changes(&self) -> Option<crate::store::changes::ChangeFeed> {
        Some(listen::spawn(self.config.clone()))
    }

    fn keys_in_database(&self) -> bool {
        true
    }
}

/// The sync client drives each statement on a runtime of its own, which tokio refuses to start
/// on a thread that runs async code (the CLI's `main`, a server's start-up). There the thread is
/// declared blocking for the call; on a blocking-pool or plain thread the work just runs.
pub(crate) fn off_runtime<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// The pool, dropped on a thread of its own: closing its connections runs the client's
/// runtime too, and a store may be dropped anywhere (at the end of a CLI command, a server's
/// shutdown).
struct PoolHandle(Option<Pool>);

impl std::ops::Deref for PoolHandle {
    type Target = Pool;
    fn deref(&self) -> &Pool {
        // Taken only in `drop`, after which nothing dereferences it.
        self.0.as_ref().expect("the pool is there until drop")
    }
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

/// The URL with any password replaced, fit for logs and messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        // A key=value connection string: drop the password pair.
        Err(_) => url
            .split_whitespace()
            .filter(|kv| !kv.starts_with("password="))
            .collect::<Vec<_>>()
            .join(" "),
    }
}
