//! The SQL behind each report. Every ORDER BY ends in a total order (ties broken by the
//! grouped columns, text in byte order), so a report lists its rows, and a `LIMIT` keeps its
//! rows, the same on every backend (`crate::store::postgres::reports` sorts as this does).

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

use crate::store::reports::{
    BusyMinute, FailureCount, FunnelDay, FunnelEnd, ReportsDb, SecurityEvent, SignalCounts,
    SuspiciousCaller,
};

/// Calls ended by the caller before an agent took them: hung up in the IVR, or left the queue.
const ABANDONED: &str = "('caller_hung_up', 'handoff_hangup', 'handoff_leave', 'abandoned')";

/// The category agents confirmed when they did, else the department the call was routed to.
const CATEGORY: &str = "COALESCE(o.category, c.category, '')";

impl ReportsDb for Connection {
    fn funnel_days(&self, from: i64, to: i64) -> anyhow::Result<Vec<FunnelDay>> {
        let mut stmt = self.prepare(&format!(
            "SELECT date(started_at / 1000, 'unixepoch'), script, COALESCE(script_version_no, 0),
                    COUNT(*), SUM(account_id IS NOT NULL), SUM(level = 'low'), SUM(level = 'medium'),
                    SUM(level = 'high'), SUM(level IN ('medium', 'high')),
                    SUM(handed_off_at IS NOT NULL), SUM(end_reason IN {ABANDONED})
             FROM calls WHERE started_at >= ?1 AND started_at < ?2 AND script != ''
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        ))?;
        let rows = stmt.query_map(params![from, to], |r| {
            let n = |i: usize| r.get::<_, Option<i64>>(i).map(Option::unwrap_or_default);
            Ok(FunnelDay {
                day: r.get(0)?,
                script: r.get(1)?,
                version: r.get(2)?,
                called: n(3)?,
                identified: n(4)?,
                level_low: n(5)?,
                level_medium: n(6)?,
                level_high: n(7)?,
                verified: n(8)?,
                handed_off: n(9)?,
                abandoned: n(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn funnel_ends(&self, from: i64, to: i64) -> anyhow::Result<Vec<FunnelEnd>> {
        let mut stmt = self.prepare(
            "SELECT script, COALESCE(script_version_no, 0), COALESCE(end_reason, 'in progress'),
                    COALESCE(json_extract(state, '$.last_step'), step), COUNT(*)
             FROM calls WHERE started_at >= ?1 AND started_at < ?2 AND script != ''
                  AND handed_off_at IS NULL
             GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC, 1, 2, 3, 4",
        )?;
        let rows = stmt.query_map(params![from, to], |r| {
            Ok(FunnelEnd {
                script: r.get(0)?,
                version: r.get(1)?,
                end_reason: r.get(2)?,
                last_step: r.get(3)?,
                calls: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn failures_by_kind(&self, from: i64, to: i64) -> anyhow::Result<Vec<FailureCount>> {
        let mut stmt = self.prepare(
            "SELECT kind, COUNT(*), COUNT(DISTINCT call_sid) FROM failures
             WHERE at >= ?1 AND at < ?2 GROUP BY kind ORDER BY 2 DESC, 1",
        )?;
        let rows = stmt.query_map(params![from, to], |r| {
            Ok(FailureCount {
                kind: r.get(0)?,
                failures: r.get(1)?,
                calls: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn handoff_times(&self, from: i64, to: i64) -> anyhow::Result<Vec<(String, i64, i64)>> {
        let mut stmt = self.prepare(
            "SELECT script, COALESCE(script_version_no, 0), handed_off_at - started_at FROM calls
             WHERE started_at >= ?1 AND started_at < ?2 AND handed_off_at IS NOT NULL
             ORDER BY 1, 2, 3",
        )?;
        let rows = stmt.query_map(params![from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn account_department_calls(
        &self,
        from: i64,
        to: i64,
    ) -> anyhow::Result<Vec<(String, String, i64)>> {
        let mut stmt = self.prepare(
            "SELECT account_id, category, started_at FROM calls
             WHERE started_at >= ?1 AND started_at < ?2 AND account_id IS NOT NULL
                   AND category IS NOT NULL
             ORDER BY account_id, category, started_at",
        )?;
        let rows = stmt.query_map(params![from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn categorised_calls(
        &self,
        from: i64,
        to: i64,
    ) -> anyhow::Result<Vec<(String, BTreeMap<String, String>)>> {
        let mut stmt = self.prepare(&format!(
            "SELECT {CATEGORY}, a.attributes FROM calls c JOIN accounts a ON a.id = c.account_id
             LEFT JOIN call_outcomes o ON o.call_sid = c.call_sid
             WHERE c.started_at >= ?1 AND c.started_at < ?2 AND {CATEGORY} != ''"
        ))?;
        let rows = stmt.query_map(params![from, to], |r| {
            let attributes: String = r.get(1)?;
            Ok((
                r.get::<_, String>(0)?,
                serde_json::from_str(&attributes).unwrap_or_default(),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn security_events(&self, from: i64, to: i64) -> anyhow::Result<Vec<SecurityEvent>> {
        let mut stmt = self.prepare(
            "SELECT at, action, subject, detail FROM audit_log
             WHERE action LIKE 'security.%' AND at >= ?1 AND at < ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![from, to], |r| {
            Ok(SecurityEvent {
                at: r.get(0)?,
                action: r.get(1)?,
                subject: r.get(2)?,
                detail: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn suspicious_callers(&self, from: i64, to: i64) -> anyhow::Result<Vec<SuspiciousCaller>> {
        let mut stmt = self.prepare(
            "WITH f AS (SELECT caller, COUNT(*) AS n FROM failures WHERE at >= ?1 AND at < ?2 GROUP BY caller),
                  c AS (SELECT caller, COUNT(*) AS calls, COUNT(DISTINCT account_id) AS accounts FROM calls
                        WHERE started_at >= ?1 AND started_at < ?2 GROUP BY caller)
             SELECT COALESCE(c.caller, f.caller), COALESCE(c.calls, 0), COALESCE(c.accounts, 0), COALESCE(f.n, 0)
             FROM c FULL OUTER JOIN f ON f.caller = c.caller
             WHERE COALESCE(c.accounts, 0) >= 2 OR COALESCE(f.n, 0) >= 3
             ORDER BY 4 DESC, 3 DESC, 2 DESC, 1 LIMIT 200",
        )?;
        let rows = stmt.query_map(params![from, to], |r| {
            Ok(SuspiciousCaller {
                caller: r.get(0)?,
                calls: r.get(1)?,
                accounts: r.get(2)?,
                failures: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn signal_counts(&self, from: i64, to: i64) -> anyhow::Result<SignalCounts> {
        let count = |sql: &str| -> rusqlite::Result<i64> {
            self.query_row(sql, params![from, to], |r| r.get(0))
        };
        Ok(SignalCounts {
            stir_failed_calls: count(
                "SELECT COUNT(*) FROM calls WHERE started_at >= ?1 AND started_at < ?2
                 AND stir_verstat LIKE 'TN-Validation-Failed%'",
            )?,
            totp_replays: count(
                "SELECT COUNT(*) FROM failures WHERE at >= ?1 AND at < ?2 AND kind = 'totp_replay'",
            )?,
            failed_entries: count("SELECT COUNT(*) FROM failures WHERE at >= ?1 AND at < ?2")?,
        })
    }

    fn busy_minutes(&self, from: i64, to: i64, threshold: u32) -> anyhow::Result<Vec<BusyMinute>> {
        let mut stmt = self.prepare(
            "SELECT at / 60000, COUNT(*), COUNT(DISTINCT caller) FROM failures
             WHERE at >= ?1 AND at < ?2 GROUP BY 1 HAVING COUNT(*) >= ?3 ORDER BY 1",
        )?;
        let rows = stmt.query_map(params![from, to, threshold], |r| {
            Ok(BusyMinute {
                start: r.get::<_, i64>(0)? * 60_000,
                failures: r.get(1)?,
                numbers: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
