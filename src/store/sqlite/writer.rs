//! The single writer: one thread owns the write connection and runs every write of this
//! process, batching whatever is queued into one transaction (group commit). Each job runs in
//! its own savepoint, so a failing job rolls back alone; its caller is answered only after the
//! batch is committed, so an answered webhook is always durable.
//!
//! Why: with a pool of connections racing for SQLite's one write lock, each webhook paid a
//! thread hand-off, a pool check-out and a commit of its own; profiling under load put the pool
//! at 9% of the server's CPU and showed the commits serialised. Batching amortises the commit
//! and removes the contention (see BENCHMARKS.md).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use rusqlite::{Connection, TransactionBehavior};

use crate::store::{Committed, Done, WriteJob};

/// What a job hands back once it has run: called with the batch's commit outcome.
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;

/// The most jobs one transaction takes; a bound on how long the first of them waits.
const MAX_BATCH: usize = 256;

pub struct Writer {
    jobs: mpsc::Sender<Job>,
    /// Dropping it stops the checkpointer.
    _stop_checkpoints: mpsc::Sender<()>,
}

/// How often the checkpointer copies the WAL back into the database file. A checkpoint stalls
/// the writer's commits while it syncs, for a time that grows with the pages it copies: measured
/// under load, every 2 s gave 50 ms stalls, every 250 ms up to 25 ms, every 50 ms a p99 within
/// 0.3 ms of the bare baseline's (BENCHMARKS.md). Small and often, then.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);
/// The writer checkpoints by itself only if the WAL grows past this many pages (the background
/// checkpointer normally keeps it far below).
const WRITER_AUTOCHECKPOINT_PAGES: u32 = 16_384;

impl Writer {
    /// Starts the writer thread on `conn`, and a checkpointer on `checkpoints` (another
    /// connection to the same file). Both threads end when the `Writer` is dropped.
    ///
    /// SQLite's automatic checkpoint runs inside the commit that crosses the threshold, stalling
    /// the writer for milliseconds (5% of server CPU and the open-loop p99 in the profile). A
    /// PASSIVE checkpoint from another connection never blocks the writer.
    pub fn start(conn: Connection, checkpoints: Connection) -> anyhow::Result<Self> {
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)
            .context("configuring the writer")?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("callgate-writer".into())
            .spawn(move || run(conn, queue))
            .context("starting the database writer")?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("callgate-checkpoint".into())
            .spawn(move || checkpoint_until_stopped(&checkpoints, &stopped))
            .context("starting the checkpointer")?;
        Ok(Self {
            jobs,
            _stop_checkpoints: stop,
        })
    }

    /// Runs `work` in the writer's next transaction; the future answers once it is
    /// committed. The job is queued at once, whether or not the future is polled.
    pub fn write<T, F>(
        &self,
        work: F,
    ) -> impl std::future::Future<Output = anyhow::Result<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn: &Connection| {
            let result = in_savepoint(conn, work);
            Box::new(move |committed: Result<(), String>| {
                let outcome = match committed {
                    Ok(()) => result,
                    Err(e) => Err(anyhow!("commit failed: {e}")),
                };
                let _ = reply.send(outcome);
            })
        });
        let sent = self
            .jobs
            .send(job)
            .map_err(|_| anyhow!("the database writer has stopped"));
        async move {
            sent?;
            answer
                .await
                .map_err(|_| anyhow!("the database writer dropped a job"))?
        }
    }

    /// A backend write job (`crate::store::Backend::write`): `Undo` rolls back its savepoint.
    pub fn submit(&self, job: WriteJob) -> Committed {
        Box::pin(self.write(move |conn: &Connection| match job(conn) {
            Done::Keep => Ok(()),
            Done::Undo => Err(super::undone()),
        }))
    }
}

/// Runs one job between `SAVEPOINT` and `RELEASE`, rolling back to the savepoint if it fails or
/// panics, so the other jobs of the batch are unaffected.
fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    conn.execute_batch("SAVEPOINT job").context("savepoint")?;
    let result = catch_unwind(AssertUnwindSafe(|| work(conn)))
        .unwrap_or_else(|_| Err(anyhow!("a database job panicked")));
    let end = if result.is_ok() {
        "RELEASE job"
    } else {
        "ROLLBACK TO job; RELEASE job"
    };
    conn.execute_batch(end).context("ending savepoint")?;
    result
}

fn checkpoint_until_stopped(conn: &Connection, stop: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; the writer will checkpoint by itself");
        }
    }
}

fn run(mut conn: Connection, queue: mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                // The database is locked by another process beyond the busy timeout, or the
                // disk is gone: every job of the batch fails, nothing is written.
                let message = e.to_string();
                tracing::error!(error = %message, jobs = batch.len(), "database write transaction could not start");
                // Dropping the jobs unrun answers each caller with an error.
                drop(batch);
                continue;
            }
        };
        let completions: Vec<Completion> = batch.into_iter().map(|job| job(&tx)).collect();
        let committed = tx.commit().map_err(|e| e.to_string());
        if let Err(e) = &committed {
            tracing::error!(error = %e, jobs = completions.len(), "database commit failed");
        }
        for complete in completions {
            complete(committed.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (tempfile::TempDir, Writer, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER PRIMARY KEY);")
            .unwrap();
        let checkpoints = Connection::open(&path).unwrap();
        (dir, Writer::start(conn, checkpoints).unwrap(), path)
    }

    fn values(path: &std::path::Path) -> Vec<i64> {
        let conn = Connection::open(path).unwrap();
        let mut stmt = conn.prepare("SELECT v FROM t ORDER BY v").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_or_panicking_job_rolls_back_alone() {
        let (_dir, writer, path) = writer();
        let writer = std::sync::Arc::new(writer);
        let mut tasks = Vec::new();
        for v in 0..60i64 {
            let w = writer.clone();
            tasks.push(tokio::spawn(async move {
                w.write(move |c| {
                    c.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
                    match v % 3 {
                        1 => anyhow::bail!("job {v} fails after writing"),
                        2 if v == 5 => panic!("job {v} panics after writing"),
                        _ => Ok(v),
                    }
                })
                .await
            }));
        }
        let mut ok = Vec::new();
        for t in tasks {
            if let Ok(v) = t.await.unwrap() {
                ok.push(v);
            }
        }
        ok.sort();
        assert_eq!(
            values(&path),
            ok,
            "exactly the successful jobs are committed"
        );
        assert_eq!(ok.len(), 60 - 20 - 1);
        assert!(!ok.contains(&5));
    }
}
