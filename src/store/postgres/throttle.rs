//! The guessing limits' memory on PostgreSQL. Several nodes count failures at once: every
//! count here is one statement that reads and writes under the row's lock (`UPDATE ...
//! RETURNING`, `INSERT ... ON CONFLICT DO UPDATE`), so N failures at once count N.

use anyhow::Context;

use super::PgDb;
use crate::store::throttle::{FailureKind, ThrottleDb};

/// The class of the numbers' advisory locks (`pg_advisory_xact_lock(class, hashtext(number))`;
/// the two-key form does not share the one-key form's space): "nloc" in ASCII.
const NUMBER_LOCK_CLASS: i32 = 0x6e6c_6f63;

impl PgDb<'_> {
    /// Counts one failure in this minute's bucket and estimates the failures of the last 60 s:
    /// this minute's count plus the previous minute's, weighted by how much of it is still in
    /// the window.
    fn failures_last_minute(&self, now: i64) -> anyhow::Result<i64> {
        let minute = now.div_euclid(60_000);
        // The upsert is atomic across nodes: two first failures of a minute at once make one
        // row with count 2 (the second insert waits and takes the update path).
        let count: i64 = self
            .tx()?
            .query_one(
                "INSERT INTO failure_minutes (minute, count) VALUES ($1, 1)
                 ON CONFLICT (minute) DO UPDATE SET count = failure_minutes.count + 1
                 RETURNING count",
                &[&minute],
            )?
            .try_get(0)?;
        if count == 1 {
            // A new minute: drop buckets nobody will read again.
            self.tx()?.execute(
                "DELETE FROM failure_minutes WHERE minute < $1",
                &[&(minute - 1)],
            )?;
        }
        let previous: i64 = self
            .tx()?
            .query_opt(
                "SELECT count FROM failure_minutes WHERE minute = $1",
                &[&(minute - 1)],
            )?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(0);
        let still_in_window = 1.0 - (now.rem_euclid(60_000) as f64 / 60_000.0);
        Ok(count + (previous as f64 * still_in_window).round() as i64)
    }
}

impl ThrottleDb for PgDb<'_> {
    fn account_locked(&self, account_id: &str, now: i64) -> anyhow::Result<bool> {
        let until: Option<Option<i64>> = self
            .tx()?
            .query_opt(
                "SELECT locked_until FROM accounts WHERE id = $1",
                &[&account_id],
            )?
            .map(|r| r.try_get(0))
            .transpose()?;
        Ok(until.flatten().is_some_and(|t| t > now))
    }

    fn number_locked(&self, caller: &str, now: i64) -> anyhow::Result<bool> {
        let until: Option<i64> = self
            .tx()?
            .query_opt(
                "SELECT locked_until FROM number_locks WHERE caller = $1",
                &[&caller],
            )?
            .map(|r| r.try_get(0))
            .transpose()?;
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
        self.tx()?
            .execute(
                "INSERT INTO failures (at, caller, account_id, call_sid, kind) VALUES ($1, $2, $3, $4, $5)",
                &[&now, &caller, &account, &call_sid, &kind.as_str()],
            )
            .context("recording failure")?;
        Ok(())
    }

    fn bump_account_failures(&self, account_id: &str) -> anyhow::Result<Option<u32>> {
        // One statement under the row lock: a concurrent bump waits, then adds to the count
        // this one wrote (READ COMMITTED re-reads the row), so none is lost.
        let count: Option<i64> = self
            .tx()?
            .query_opt(
                "UPDATE accounts SET failed_count = failed_count + 1 WHERE id = $1 RETURNING failed_count",
                &[&account_id],
            )
            .context("counting an account's failure")?
            .map(|r| r.try_get(0))
            .transpose()?;
        count
            .map(|n| u32::try_from(n).context("an account's failure count out of range"))
            .transpose()
    }

    fn lock_account(&self, account_id: &str, until: i64, now: i64) -> anyhow::Result<()> {
        self.tx()?.execute(
            "UPDATE accounts SET locked_until = $2, failed_count = 0, last_locked_at = $3 WHERE id = $1",
            &[&account_id, &until, &now],
        )?;
        Ok(())
    }

    fn failures_from_number_since(&self, caller: &str, since: i64) -> anyhow::Result<u32> {
        let n: i64 = self
            .tx()?
            .query_one(
                "SELECT COUNT(*) FROM failures WHERE caller = $1 AND at > $2",
                &[&caller, &since],
            )
            .context("counting a number's failures")?
            .try_get(0)?;
        u32::try_from(n).context("a number's failure count out of range")
    }

    fn lock_number(&self, caller: &str, until: i64, now: i64) -> anyhow::Result<bool> {
        // Whether the number was locked, and the lock, must not interleave with another node
        // doing the same (both would see it unlocked, both report the lock): the number's
        // advisory lock, held to the commit, orders them; the look after it sees what the
        // previous holder committed (READ COMMITTED). A row lock cannot do it: before the
        // first lock there is no row.
        self.tx()?
            .execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&NUMBER_LOCK_CLASS, &caller],
            )
            .context("waiting for the number's lock")?;
        let already = self.number_locked(caller, now)?;
        // GREATEST under the row lock: of two nodes locking the number at once, the longer
        // lock stays, whichever commits last.
        self.tx()?.execute(
            "INSERT INTO number_locks (caller, locked_until) VALUES ($1, $2)
             ON CONFLICT (caller) DO UPDATE
             SET locked_until = GREATEST(number_locks.locked_until, EXCLUDED.locked_until)",
            &[&caller, &until],
        )?;
        Ok(!already)
    }

    fn count_failure_last_minute(&self, now: i64) -> anyhow::Result<i64> {
        self.failures_last_minute(now)
    }

    fn claim_alert(&self, now: i64, quiet_ms: i64) -> anyhow::Result<bool> {
        // A plain UPDATE first: while the alert was raised recently (every failure of an
        // attack asks), the row does not match and is not locked, so the failing webhooks do
        // not queue behind each other. A match is re-checked on the locked row, so of two
        // nodes at once one updates and the other finds it raised.
        let updated = self
            .tx()?
            .execute(
                "UPDATE alert_gate SET last_raised_at = $1 WHERE id = 1 AND last_raised_at <= $1::BIGINT - $2::BIGINT",
                &[&now, &quiet_ms],
            )
            .context("claiming the guessing alert")?;
        if updated == 1 {
            return Ok(true);
        }
        // The first alert ever: of two inserts at once, the second waits and does nothing.
        let inserted = self
            .tx()?
            .execute(
                "INSERT INTO alert_gate (id, last_raised_at) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                &[&now],
            )
            .context("claiming the guessing alert")?;
        Ok(inserted == 1)
    }

    fn reset_account_failures(&self, account_id: &str) -> anyhow::Result<()> {
        self.tx()?.execute(
            "UPDATE accounts SET failed_count = 0 WHERE id = $1",
            &[&account_id],
        )?;
        Ok(())
    }

    fn unlock_account(&self, account_id: &str) -> anyhow::Result<bool> {
        let changed = self.tx()?.execute(
            "UPDATE accounts SET failed_count = 0, locked_until = NULL WHERE id = $1",
            &[&account_id],
        )?;
        Ok(changed == 1)
    }

    fn recent_account_failures(&self, account_id: &str, since_ms: i64) -> anyhow::Result<i64> {
        Ok(self
            .tx()?
            .query_one(
                "SELECT COUNT(*) FROM failures WHERE account_id = $1 AND at >= $2",
                &[&account_id, &since_ms],
            )
            .context("counting failures")?
            .try_get(0)?)
    }
}
