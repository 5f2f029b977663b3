//! The SQL behind each report, on PostgreSQL: the same rows in the same order as SQLite's
//! (`crate::store::sqlite::reports`) for the same data. Where the dialects differ:
//! - text sorts `COLLATE "C"` (byte order, SQLite's BINARY), whatever the database's locale;
//! - `date(ms / 1000, 'unixepoch')` is `to_char(to_timestamp(..) AT TIME ZONE 'UTC', ..)`,
//!   with the same integer division;
//! - SQLite's `LIKE` ignores ASCII case (only ASCII), PostgreSQL's does not: the column is
//!   lowered ASCII-only first ([`ascii_lower`]), as `lower()`/`ILIKE` would also fold
//!   non-ASCII letters by the database's locale;
//! - `json_extract(state, ..)` is `#>>` on [`STATE_JSON`]: PostgreSQL's JSON functions
//!   refuse a document holding a `\u0000` escape (serde_json writes one for a NUL character,
//!   SQLite reads it), and one such call state would fail the whole report;
//! - `SUM(condition)` is `COUNT(*) FILTER (WHERE condition)`.

use std::collections::BTreeMap;

use postgres::Row;
use postgres::types::ToSql;

use super::PgDb;
use crate::store::reports::{
    BusyMinute, FailureCount, FunnelDay, FunnelEnd, ReportsDb, SecurityEvent, SignalCounts,
    SuspiciousCaller,
};

/// Calls ended by the caller before an agent took them: hung up in the IVR, or left the queue.
const ABANDONED: &str = "('caller_hung_up', 'handoff_hangup', 'handoff_leave', 'abandoned')";

/// The category agents confirmed when they did, else the department the call was routed to.
const CATEGORY: &str = "COALESCE(o.category, c.category, '')";

/// A call's state as PostgreSQL's JSON functions take it: every `\u0000` escape made
/// `\ufffd` (the replacement character). Both are six characters of the same shape, so the
/// document stays valid whatever precedes the backslash; only a value holding a NUL reads
/// differently, and PostgreSQL's text cannot hold a NUL anyway.
pub(super) const STATE_JSON: &str = r"replace(state, '\u0000', '\ufffd')::json";

/// `column` with ASCII capitals lowered and nothing else changed: what SQLite's LIKE compares.
fn ascii_lower(column: &str) -> String {
    format!("translate({column}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')")
}

impl PgDb<'_> {
    fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> anyhow::Result<Vec<Row>> {
        Ok(self.tx()?.query(sql, params)?)
    }

    fn count(&self, sql: &str, from: i64, to: i64) -> anyhow::Result<i64> {
        Ok(self.tx()?.query_one(sql, &[&from, &to])?.get(0))
    }
}

impl ReportsDb for PgDb<'_> {
    fn funnel_days(&self, from: i64, to: i64) -> anyhow::Result<Vec<FunnelDay>> {
        let rows = self.rows(
            &format!(
                r#"SELECT to_char(to_timestamp(started_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
                          script, COALESCE(script_version_no, 0) AS version, COUNT(*),
                          COUNT(*) FILTER (WHERE account_id IS NOT NULL),
                          COUNT(*) FILTER (WHERE level = 'low'),
                          COUNT(*) FILTER (WHERE level = 'medium'),
                          COUNT(*) FILTER (WHERE level = 'high'),
                          COUNT(*) FILTER (WHERE level IN ('medium', 'high')),
                          COUNT(*) FILTER (WHERE handed_off_at IS NOT NULL),
                          COUNT(*) FILTER (WHERE end_reason IN {ABANDONED})
                   FROM calls WHERE started_at >= $1 AND started_at < $2 AND script <> ''
                   GROUP BY 1, 2, 3 ORDER BY day, script COLLATE "C", version"#
            ),
            &[&from, &to],
        )?;
        Ok(rows
            .iter()
            .map(|r| FunnelDay {
                day: r.get(0),
                script: r.get(1),
                version: r.get(2),
                called: r.get(3),
                identified: r.get(4),
                level_low: r.get(5),
                level_medium: r.get(6),
                level_high: r.get(7),
                verified: r.get(8),
                handed_off: r.get(9),
                abandoned: r.get(10),
            })
            .collect())
    }

    fn funnel_ends(&self, from: i64, to: i64) -> anyhow::Result<Vec<FunnelEnd>> {
        // Grouped in a subquery so that the outer ORDER BY can collate its output columns.
        let rows = self.rows(
            &format!(
                r#"SELECT script, version, end_reason, last_step, calls FROM (
                   SELECT script, COALESCE(script_version_no, 0) AS version,
                          COALESCE(end_reason, 'in progress') AS end_reason,
                          COALESCE({STATE_JSON} #>> '{{last_step}}', step) AS last_step,
                          COUNT(*) AS calls
                   FROM calls WHERE started_at >= $1 AND started_at < $2 AND script <> ''
                        AND handed_off_at IS NULL
                   GROUP BY 1, 2, 3, 4
               ) ends
               ORDER BY calls DESC, script COLLATE "C", version, end_reason COLLATE "C",
                        last_step COLLATE "C""#
            ),
            &[&from, &to],
        )?;
        Ok(rows
            .iter()
            .map(|r| FunnelEnd {
                script: r.get(0),
                version: r.get(1),
                end_reason: r.get(2),
                last_step: r.get(3),
                calls: r.get(4),
            })
            .collect())
    }

    fn failures_by_kind(&self, from: i64, to: i64) -> anyhow::Result<Vec<FailureCount>> {
        let rows = self.rows(
            r#"SELECT kind, COUNT(*), COUNT(DISTINCT call_sid) FROM failures
               WHERE at >= $1 AND at < $2 GROUP BY kind ORDER BY 2 DESC, kind COLLATE "C""#,
            &[&from, &to],
        )?;
        Ok(rows
            .iter()
            .map(|r| FailureCount {
                kind: r.get(0),
                failures: r.get(1),
                calls: r.get(2),
            })
            .collect())
    }

    fn handoff_times(&self, from: i64, to: i64) -> anyhow::Result<Vec<(String, i64, i64)>> {
        let rows = self.rows(
            r#"SELECT script, COALESCE(script_version_no, 0) AS version,
                      handed_off_at - started_at AS ms
               FROM calls
               WHERE started_at >= $1 AND started_at < $2 AND handed_off_at IS NOT NULL
               ORDER BY script COLLATE "C", version, ms"#,
            &[&from, &to],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    fn account_department_calls(
        &self,
        from: i64,
        to: i64,
    ) -> anyhow::Result<Vec<(String, String, i64)>> {
        let rows = self.rows(
            r#"SELECT account_id, category, started_at FROM calls
               WHERE started_at >= $1 AND started_at < $2 AND account_id IS NOT NULL
                     AND category IS NOT NULL
               ORDER BY account_id COLLATE "C", category COLLATE "C", started_at"#,
            &[&from, &to],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    fn categorised_calls(
        &self,
        from: i64,
        to: i64,
    ) -> anyhow::Result<Vec<(String, BTreeMap<String, String>)>> {
        // Unordered, as in SQLite: the report only counts them.
        let rows = self.rows(
            &format!(
                "SELECT {CATEGORY}, a.attributes FROM calls c JOIN accounts a ON a.id = c.account_id
                 LEFT JOIN call_outcomes o ON o.call_sid = c.call_sid
                 WHERE c.started_at >= $1 AND c.started_at < $2 AND {CATEGORY} <> ''"
            ),
            &[&from, &to],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    serde_json::from_str(r.get::<_, &str>(1)).unwrap_or_default(),
                )
            })
            .collect())
    }

    fn security_events(&self, from: i64, to: i64) -> anyhow::Result<Vec<SecurityEvent>> {
        let rows = self.rows(
            &format!(
                "SELECT at, action, subject, detail FROM audit_log
                 WHERE {} LIKE 'security.%' AND at >= $1 AND at < $2 ORDER BY seq",
                ascii_lower("action")
            ),
            &[&from, &to],
        )?;
        Ok(rows
            .iter()
            .map(|r| SecurityEvent {
                at: r.get(0),
                action: r.get(1),
                subject: r.get(2),
                detail: r.get(3),
            })
            .collect())
    }

    fn suspicious_callers(&self, from: i64, to: i64) -> anyhow::Result<Vec<SuspiciousCaller>> {
        let rows = self.rows(
            r#"WITH f AS (SELECT caller, COUNT(*) AS n FROM failures WHERE at >= $1 AND at < $2 GROUP BY caller),
                    c AS (SELECT caller, COUNT(*) AS calls, COUNT(DISTINCT account_id) AS accounts FROM calls
                          WHERE started_at >= $1 AND started_at < $2 GROUP BY caller)
               SELECT COALESCE(c.caller, f.caller) AS caller, COALESCE(c.calls, 0) AS calls,
                      COALESCE(c.accounts, 0) AS accounts, COALESCE(f.n, 0) AS failures
               FROM c FULL OUTER JOIN f ON f.caller = c.caller
               WHERE COALESCE(c.accounts, 0) >= 2 OR COALESCE(f.n, 0) >= 3
               ORDER BY 4 DESC, 3 DESC, 2 DESC, COALESCE(c.caller, f.caller) COLLATE "C" LIMIT 200"#,
            &[&from, &to],
        )?;
        Ok(rows
            .iter()
            .map(|r| SuspiciousCaller {
                caller: r.get(0),
                calls: r.get(1),
                accounts: r.get(2),
                failures: r.get(3),
            })
            .collect())
    }

    fn signal_counts(&self, from: i64, to: i64) -> anyhow::Result<SignalCounts> {
        Ok(SignalCounts {
            stir_failed_calls: self.count(
                &format!(
                    "SELECT COUNT(*) FROM calls WHERE started_at >= $1 AND started_at < $2
                     AND {} LIKE 'tn-validation-failed%'",
                    ascii_lower("stir_verstat")
                ),
                from,
                to,
            )?,
            totp_replays: self.count(
                "SELECT COUNT(*) FROM failures WHERE at >= $1 AND at < $2 AND kind = 'totp_replay'",
                from,
                to,
            )?,
            failed_entries: self.count(
                "SELECT COUNT(*) FROM failures WHERE at >= $1 AND at < $2",
                from,
                to,
            )?,
        })
    }

    fn busy_minutes(&self, from: i64, to: i64, threshold: u32) -> anyhow::Result<Vec<BusyMinute>> {
        let rows = self.rows(
            "SELECT at / 60000, COUNT(*), COUNT(DISTINCT caller) FROM failures
             WHERE at >= $1 AND at < $2 GROUP BY 1 HAVING COUNT(*) >= $3 ORDER BY 1",
            &[&from, &to, &i64::from(threshold)],
        )?;
        Ok(rows
            .iter()
            .map(|r| BusyMinute {
                start: r.get::<_, i64>(0).saturating_mul(60_000),
                failures: r.get(1),
                numbers: r.get(2),
            })
            .collect())
    }
}
