//! A scratch database in memory with the full schema and copies of the test accounts: the admin
//! page's call simulator runs the real engine on it, so a simulated call never touches a real
//! call, lockout counter or one-time code.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rusqlite::Connection;

use crate::store::{Backend, BackupReport, Committed, Job, Store, WriteJob};

pub fn with_test_accounts(live_db: &Path) -> anyhow::Result<Store> {
    let mut conn = Connection::open_in_memory().context("scratch database")?;
    conn.execute_batch("PRAGMA foreign_keys = ON;")?;
    super::migrations::apply(&mut conn).context("scratch schema")?;
    let path = live_db
        .to_str()
        .context("database path is not UTF-8")?
        .to_owned();
    conn.execute("ATTACH DATABASE ?1 AS live", [path])
        .context("reading the test accounts")?;
    // Same migrations, same column order: whole rows copy across.
    let copied = conn.execute_batch(
        "INSERT INTO main.accounts SELECT * FROM live.accounts WHERE test = 1;
         INSERT INTO main.account_knowledge
             SELECT k.* FROM live.account_knowledge k JOIN main.accounts a ON a.id = k.account_id;
         INSERT INTO main.call_codes
             SELECT c.* FROM live.call_codes c JOIN main.accounts a ON a.id = c.account_id
             WHERE c.used_at IS NULL;",
    );
    conn.execute_batch("DETACH DATABASE live;")?;
    copied.context("copying the test accounts")?;
    Ok(Store::new(Arc::new(Scratch {
        conn: Mutex::new(conn),
    })))
}

/// One connection to a private in-memory database: every job runs on it in turn.
struct Scratch {
    conn: Mutex<Connection>,
}

impl Scratch {
    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        match self.conn.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl Backend for Scratch {
    fn read(&self, job: Job<'_>) -> anyhow::Result<()> {
        job(&*self.conn());
        Ok(())
    }

    fn write(&self, job: WriteJob) -> Committed {
        // In memory, nothing to wait for: the job runs here, in a transaction of its own.
        let done = self.transaction(job);
        Box::pin(async move { done })
    }

    fn transaction(&self, job: Job<'_>) -> anyhow::Result<()> {
        super::in_transaction(&mut self.conn(), job)
    }

    fn backup(&self, _target: &Path) -> anyhow::Result<BackupReport> {
        anyhow::bail!("a scratch database is not backed up")
    }

    fn scratch_with_test_accounts(&self) -> anyhow::Result<Store> {
        anyhow::bail!("a scratch database has no scratch database")
    }

    fn purge_erased_copies(&self) -> anyhow::Result<()> {
        // Memory only: nothing stays behind.
        Ok(())
    }

    fn describe(&self) -> String {
        "SQLite scratch database in memory".to_owned()
    }
}
