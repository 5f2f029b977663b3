//! The guessing limits' memory in SQLite.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::throttle::{FailureKind, FailureOutcome, ThrottleDb};
use crate::verify::Limits;

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

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

    fn record_failure(
        &self,
        limits: &Limits,
        caller: &str,
        accounts: &[String],
        call_sid: &str,
        kind: FailureKind,
        now: i64,
    ) -> anyhow::Result<FailureOutcome> {
        let mut outcome = FailureOutcome::default();
        self.prepare_cached(
        "INSERT INTO failures (at, caller, account_id, call_sid, kind) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        now,
        caller,
        accounts.first(),
        call_sid,
        kind.as_str()
    ])
    .context("recording failure")?;

        let mut bump = self.prepare_cached(
        "UPDATE accounts SET failed_count = failed_count + 1 WHERE id = ?1 RETURNING failed_count",
    )?;
        for account in accounts {
            let count: Option<u32> = bump.query_row([account], |r| r.get(0)).optional()?;
            if count.is_some_and(|c| c >= limits.account_max_failures) {
                // The lock starts a fresh count: after it expires the next run of failures locks again.
                self.prepare_cached(
                "UPDATE accounts SET locked_until = ?2, failed_count = 0, last_locked_at = ?3 WHERE id = ?1",
            )?
            .execute(params![account, now + ms(limits.account_lock), now])?;
                outcome.accounts_locked.push(account.clone());
            }
        }

        let from_number: u32 = self
            .prepare_cached("SELECT COUNT(*) FROM failures WHERE caller = ?1 AND at > ?2")?
            .query_row(params![caller, now - ms(limits.number_window)], |r| {
                r.get(0)
            })?;
        if from_number >= limits.number_max_failures {
            // Reported once, when the lock starts: failures while locked only extend it.
            let already = self.number_locked(caller, now)?;
            self.prepare_cached(
                "INSERT INTO number_locks (caller, locked_until) VALUES (?1, ?2)
             ON CONFLICT(caller) DO UPDATE SET locked_until = MAX(locked_until, ?2)",
            )?
            .execute(params![caller, now + ms(limits.number_lock)])?;
            outcome.number_locked = !already;
        }

        let last_minute = failures_last_minute(self, now)?;
        if last_minute > i64::from(limits.global_alert_per_minute) {
            outcome.global_alert = Some(last_minute);
        }
        Ok(outcome)
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
