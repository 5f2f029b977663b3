//! The guessing limits' memory in SQLite.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::throttle::{FailureKind, ThrottleDb};

/// Counts one failure in this minute's bucket and estimates the failures of the last 60 s: this
/// minute's count plus the previous minute's, weighted by how much of it is still in the window.
fn failures_last_minute(conn: &Connection, now: i64) -> anyhow::Result<i64> {
    let minute = now.div_euclid(60_000);
    let count: i64 = conn
        .prepare_cached(
            "INSERT INTO failure_minutes (minute, count) VALUES (?1, 1)
             ON CONFLICT(minute) DO UPDATE SET count = count + 1 RETURNING count",
        )?
        .query_row([minute], |r| r.get(0))?;
    if count == 1 {
        // A new minute: drop buckets nobody will read again.
        conn.prepare_cached("DELETE FROM failure_minutes WHERE minute < ?1")?
            .execute([minute - 1])?;
    }
    let previous: i64 = conn
        .prepare_cached("SELECT count FROM failure_minutes WHERE minute = ?1")?
        .query_row([minute - 1], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let still_in_window = 1.0 - (now.rem_euclid(60_000) as f64 / 60_000.0);
    Ok(count + (previous as f64 * still_in_window).round() as i64)
}

impl ThrottleDb for Connection {
    fn account_locked(&self, account_id: &str, now: i64) -> anyhow::Result<bool> {
        let until: Option<Option<i64>> = self
            .prepare_cached("SELECT locked_until FROM accounts WHERE id = ?1")?
            .query_row([account_id], |r| r.get(0))
            .optional()?;
        Ok(until.flatten().is_some_and(|t| t > now))
    }

    fn number_locked(&self, caller: &str, now: i64) -> anyhow::Result<bool> {
        let until: Option<i64> = self
            .prepare_cached("SELECT locked_until FROM number_locks WHERE caller = ?1")?
            .query_row([caller], |r| r.get(0))
            .optional()?;
        Ok(until.is_some_and(|t| t > now))
    }

    fn log_failure(
        &self,
        caller: &str,
        account: Option<&str>,
        call_sid: &str,
        kind: FailureKind,
        now: i64,
    ) -> anyhow::Result<()> {
        self.prepare_cached(
            "INSERT INTO failures (at, caller, account_id, call_sid, kind) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![now, caller, account, call_sid, kind.as_str()])
        .context("recording failure")?;
        Ok(())
    }

    fn bump_account_failures(&self, account_id: &str) -> anyhow::Result<Option<u32>> {
        self.prepare_cached(
            "UPDATE accounts SET failed_count = failed_count + 1 WHERE id = ?1 RETURNING failed_count",
        )?
        .query_row([account_id], |r| r.get(0))
        .optional()
        .context("counting an account's failure")
    }

    fn lock_account(&self, account_id: &str, until: i64, now: i64) -> anyhow::Result<()> {
        self.prepare_cached(
            "UPDATE accounts SET locked_until = ?2, failed_count = 0, last_locked_at = ?3 WHERE id = ?1",
        )?
        .execute(params![account_id, until, now])?;
        Ok(())
    }

    fn failures_from_number_since(&self, caller: &str, since: i64) -> anyhow::Result<u32> {
        self.prepare_cached("SELECT COUNT(*) FROM failures WHERE caller = ?1 AND at > ?2")?
            .query_row(params![caller, since], |r| r.get(0))
            .context("counting a number's failures")
    }

    fn lock_number(&self, caller: &str, until: i64, now: i64) -> anyhow::Result<bool> {
        // One writer: nothing changes the row between the look and the upsert.
        let already = self.number_locked(caller, now)?;
        self.prepare_cached(
            "INSERT INTO number_locks (caller, locked_until) VALUES (?1, ?2)
             ON CONFLICT(caller) DO UPDATE SET locked_until = MAX(locked_until, ?2)",
        )?
        .execute(params![caller, until])?;
        Ok(!already)
    }

    fn count_failure_last_minute(&self, now: i64) -> anyhow::Result<i64> {
        failures_last_minute(self, now)
    }

    fn claim_alert(&self, now: i64, quiet_ms: i64) -> anyhow::Result<bool> {
        let claimed = self
            .prepare_cached(
                "INSERT INTO alert_gate (id, last_raised_at) VALUES (1, ?1)
                 ON CONFLICT(id) DO UPDATE SET last_raised_at = ?1
                 WHERE last_raised_at <= ?1 - ?2
                 RETURNING 1",
            )?
            .query_row(params![now, quiet_ms], |_| Ok(()))
            .optional()
            .context("claiming the guessing alert")?;
        Ok(claimed.is_some())
    }

    fn reset_account_failures(&self, account_id: &str) -> anyhow::Result<()> {
        self.prepare_cached("UPDATE accounts SET failed_count = 0 WHERE id = ?1")?
            .execute([account_id])?;
        Ok(())
    }

    fn unlock_account(&self, account_id: &str) -> anyhow::Result<bool> {
        let changed = self.execute(
            "UPDATE accounts SET failed_count = 0, locked_until = NULL WHERE id = ?1",
            [account_id],
        )?;
        Ok(changed == 1)
    }

    fn recent_account_failures(&self, account_id: &str, since_ms: i64) -> anyhow::Result<i64> {
        self.prepare_cached("SELECT COUNT(*) FROM failures WHERE account_id = ?1 AND at >= ?2")?
            .query_row(params![account_id, since_ms], |r| r.get(0))
            .context("counting failures")
    }
}
