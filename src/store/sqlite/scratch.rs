//! A scratch database in memory with the full schema and copies of the test accounts: the admin
//! page's call simulator runs the real engine on it, so a simulated call never touches a real
//! call, lockout counter or one-time code.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rusqlite::{Connection, params};

use crate::store::accounts::TestAccountRows;
use crate::store::{Backend, BackupReport, Committed, Job, Store, WriteJob};

/// An empty scratch database with the full schema.
fn empty() -> anyhow::Result<Connection> {
    let mut conn = Connection::open_in_memory().context("scratch database")?;
    conn.execute_batch("PRAGMA foreign_keys = ON;")?;
    super::migrations::apply(&mut conn).context("scratch schema")?;
    Ok(conn)
}

fn store(conn: Connection) -> Store {
    Store::new(Arc::new(Scratch {
        conn: Mutex::new(conn),
    }))
}

/// The scratch store of the SQLite file `live_db`: its test accounts copied across in SQL.
pub fn with_test_accounts(live_db: &Path) -> anyhow::Result<Store> {
    let conn = empty()?;
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
    Ok(store(conn))
}

/// The scratch store of another backend (PostgreSQL), which cannot be attached: its test
/// accounts come as rows (`AccountsDb::test_account_rows`) and are written whole, hashes and
/// ciphertexts as they are, so the copies verify exactly as the originals. A knowledge answer
/// or call code whose account is not among `rows.accounts` (it came or went between the
/// reads) is left out.
pub fn from_rows(rows: &TestAccountRows) -> anyhow::Result<Store> {
    let mut conn = empty()?;
    let tx = conn.transaction().context("scratch transaction")?;
    let mut copied = HashSet::new();
    {
        let mut account = tx.prepare(
            "INSERT INTO accounts (id, name, phone, code_hash, code_key_version, totp_secret,
                 totp_key_version, totp_last_step, attributes, failed_count, locked_until,
                 created_at, test, phone_changed_at, last_locked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?;
        for a in &rows.accounts {
            account
                .execute(params![
                    a.id,
                    a.name,
                    a.phone,
                    a.code_hash,
                    a.code_key_version,
                    a.totp_secret,
                    a.totp_key_version,
                    a.totp_last_step,
                    a.attributes,
                    a.failed_count,
                    a.locked_until,
                    a.created_at,
                    a.test,
                    a.phone_changed_at,
                    a.last_locked_at
                ])
                .context("copying a test account")?;
            copied.insert(a.id.as_str());
        }
        let mut knowledge = tx.prepare(
            "INSERT INTO account_knowledge (account_id, question, answer_hash, key_version)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for k in rows
            .knowledge
            .iter()
            .filter(|k| copied.contains(k.account_id.as_str()))
        {
            knowledge
                .execute(params![
                    k.account_id,
                    k.question,
                    k.answer_hash,
                    k.key_version
                ])
                .context("copying a knowledge answer")?;
        }
        let mut code = tx.prepare(
            "INSERT INTO call_codes (id, account_id, code_hash, key_version, created_at,
                 expires_at, used_at, used_by_call)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for c in rows
            .call_codes
            .iter()
            .filter(|c| copied.contains(c.account_id.as_str()))
        {
            code.execute(params![
                c.id,
                c.account_id,
                c.code_hash,
                c.key_version,
                c.created_at,
                c.expires_at,
                c.used_at,
                c.used_by_call
            ])
            .context("copying a call code")?;
        }
    }
    tx.commit().context("copying the test accounts")?;
    Ok(store(conn))
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
