//! The SQL behind each report. Phone numbers leave here masked; account ids are shown because
//! the reports are for admins who must act on them.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, params};
use serde_json::{Value, json};

use super::Table;
use crate::agent::view::Viewer;
use crate::store::to_rfc3339;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// The p-th percentile (0-100) of sorted values, nearest-rank.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Calls ended by the caller before an agent took them: hung up in the IVR, or left the queue.
const ABANDONED: &str = "('caller_hung_up', 'handoff_hangup', 'handoff_leave', 'abandoned')";

pub fn funnel(conn: &Connection, from: i64, to: i64) -> anyhow::Result<Vec<Table>> {
    let mut daily = Table::new(
        "Per day and script version",
        &[
            "day",
            "script",
            "version",
            "called",
            "identified",
            "level low",
            "level medium",
            "level high",
            "verified",
            "handed off",
            "abandoned",
        ],
    );
    let mut stmt = conn.prepare(&format!(
        "SELECT date(started_at / 1000, 'unixepoch'), script, COALESCE(script_version_no, 0),
                COUNT(*), SUM(account_id IS NOT NULL), SUM(level = 'low'), SUM(level = 'medium'),
                SUM(level = 'high'), SUM(level IN ('medium', 'high')),
                SUM(handed_off_at IS NOT NULL), SUM(end_reason IN {ABANDONED})
         FROM calls WHERE started_at >= ?1 AND started_at < ?2 AND script != ''
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    ))?;
    let rows = stmt.query_map(params![from, to], |r| {
        let mut row = vec![
            json!(r.get::<_, String>(0)?),
            json!(r.get::<_, String>(1)?),
            json!(r.get::<_, i64>(2)?),
        ];
        for i in 3..11 {
            row.push(json!(r.get::<_, Option<i64>>(i)?.unwrap_or(0)));
        }
        Ok(row)
    })?;
    for row in rows {
        daily.rows.push(row?);
    }

    let mut ends = Table::new(
        "Where callers fail: how calls that reached no agent ended",
        &["script", "version", "end reason", "last step", "calls"],
    );
    let mut stmt = conn.prepare(
        "SELECT script, COALESCE(script_version_no, 0), COALESCE(end_reason, 'in progress'),
                COALESCE(json_extract(state, '$.last_step'), step), COUNT(*)
         FROM calls WHERE started_at >= ?1 AND started_at < ?2 AND script != ''
              AND handed_off_at IS NULL
         GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC",
    )?;
    let rows = stmt.query_map(params![from, to], |r| {
        Ok(vec![
            json!(r.get::<_, String>(0)?),
            json!(r.get::<_, i64>(1)?),
            json!(r.get::<_, String>(2)?),
            json!(r.get::<_, String>(3)?),
            json!(r.get::<_, i64>(4)?),
        ])
    })?;
    for row in rows {
        ends.rows.push(row?);
    }

    let mut failures = Table::new("Failed entries by factor", &["factor", "failures", "calls"]);
    let mut stmt = conn.prepare(
        "SELECT kind, COUNT(*), COUNT(DISTINCT call_sid) FROM failures
         WHERE at >= ?1 AND at < ?2 GROUP BY kind ORDER BY 2 DESC",
    )?;
    let rows = stmt.query_map(params![from, to], |r| {
        Ok(vec![
            json!(r.get::<_, String>(0)?),
            json!(r.get::<_, i64>(1)?),
            json!(r.get::<_, i64>(2)?),
        ])
    })?;
    for row in rows {
        failures.rows.push(row?);
    }
    Ok(vec![daily, ends, failures])
}

pub fn handoff_time(conn: &Connection, from: i64, to: i64) -> anyhow::Result<Vec<Table>> {
    let mut table = Table::new(
        "Seconds from answer to hand-off, per script version",
        &["script", "version", "handed off", "median s", "p90 s"],
    );
    let mut stmt = conn.prepare(
        "SELECT script, COALESCE(script_version_no, 0), handed_off_at - started_at FROM calls
         WHERE started_at >= ?1 AND started_at < ?2 AND handed_off_at IS NOT NULL
         ORDER BY 1, 2, 3",
    )?;
    let mut groups: BTreeMap<(String, i64), Vec<i64>> = BTreeMap::new();
    let rows = stmt.query_map(params![from, to], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (script, version, ms) = row?;
        groups.entry((script, version)).or_default().push(ms);
    }
    let secs =
        |ms: Option<i64>| ms.map_or(Value::Null, |m| json!((m as f64 / 100.0).round() / 10.0));
    for ((script, version), mut ms) in groups {
        ms.sort_unstable();
        table.rows.push(vec![
            json!(script),
            json!(version),
            json!(ms.len()),
            secs(percentile(&ms, 50.0)),
            secs(percentile(&ms, 90.0)),
        ]);
    }
    Ok(vec![table])
}

pub fn repeat_callers(conn: &Connection, from: i64, to: i64) -> anyhow::Result<Vec<Table>> {
    let mut table = Table::new(
        "Accounts calling again within 7 days about the same department",
        &["account", "department", "calls", "first", "last"],
    );
    let mut stmt = conn.prepare(
        "SELECT account_id, category, started_at FROM calls
         WHERE started_at >= ?1 AND started_at < ?2 AND account_id IS NOT NULL
               AND category IS NOT NULL
         ORDER BY account_id, category, started_at",
    )?;
    let mut groups: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    let rows = stmt.query_map(params![from, to], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (account, category, at) = row?;
        groups.entry((account, category)).or_default().push(at);
    }
    let mut found: Vec<(String, String, Vec<i64>)> = Vec::new();
    for ((account, category), times) in groups {
        // Calls that have another call of the same account and department within 7 days.
        let repeated: Vec<i64> = times
            .iter()
            .enumerate()
            .filter(|(i, t)| {
                let before = i.checked_sub(1).map(|j| times[j]);
                let after = times.get(i + 1);
                before.is_some_and(|b| **t - b <= 7 * DAY_MS)
                    || after.is_some_and(|a| a - **t <= 7 * DAY_MS)
            })
            .map(|(_, t)| *t)
            .collect();
        if repeated.len() >= 2 {
            found.push((account, category, repeated));
        }
    }
    found.sort_by(|a, b| b.2.len().cmp(&a.2.len()).then(a.0.cmp(&b.0)));
    for (account, category, times) in found {
        table.rows.push(vec![
            json!(account),
            json!(category),
            json!(times.len()),
            json!(times.first().and_then(|t| to_rfc3339(*t))),
            json!(times.last().and_then(|t| to_rfc3339(*t))),
        ]);
    }
    Ok(vec![table])
}

/// The category agents confirmed when they did, else the department the call was routed to.
const CATEGORY: &str = "COALESCE(o.category, c.category, '')";

pub fn recurring_problems(conn: &Connection, from: i64, to: i64) -> anyhow::Result<Vec<Table>> {
    let mut table = Table::new(
        "Categories by account attribute (lift = how much more often than across all calls)",
        &[
            "category",
            "attribute",
            "value",
            "calls",
            "share with value",
            "share overall",
            "lift",
        ],
    );
    // Calls per category, per attribute value, and per (category, attribute value).
    let mut per_category: HashMap<String, i64> = HashMap::new();
    let mut per_value: HashMap<(String, String), i64> = HashMap::new();
    let mut per_pair: HashMap<(String, String, String), i64> = HashMap::new();
    let mut total = 0i64;
    let mut stmt = conn.prepare(&format!(
        "SELECT {CATEGORY}, a.attributes FROM calls c JOIN accounts a ON a.id = c.account_id
         LEFT JOIN call_outcomes o ON o.call_sid = c.call_sid
         WHERE c.started_at >= ?1 AND c.started_at < ?2 AND {CATEGORY} != ''"
    ))?;
    let rows = stmt.query_map(params![from, to], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (category, attributes) = row?;
        total += 1;
        *per_category.entry(category.clone()).or_default() += 1;
        let attrs: BTreeMap<String, String> = serde_json::from_str(&attributes).unwrap_or_default();
        for (k, v) in attrs {
            *per_value.entry((k.clone(), v.clone())).or_default() += 1;
            *per_pair.entry((category.clone(), k, v)).or_default() += 1;
        }
    }
    let mut lines: Vec<(String, String, String, i64, f64, f64, f64)> = per_pair
        .into_iter()
        .filter_map(|((category, k, v), n)| {
            let with_value = *per_value.get(&(k.clone(), v.clone()))? as f64;
            let overall = *per_category.get(&category)? as f64 / total.max(1) as f64;
            let share = n as f64 / with_value;
            Some((category, k, v, n, share, overall, share / overall))
        })
        .collect();
    lines.sort_by(|a, b| b.6.total_cmp(&a.6).then(b.3.cmp(&a.3)));
    let round = |x: f64| (x * 100.0).round() / 100.0;
    for (i, (category, k, v, n, share, overall, lift)) in lines.into_iter().enumerate() {
        // Over-represented, and on enough calls to be more than chance.
        if lift >= 1.5 && n >= 5 {
            table.highlight.push(i);
        }
        table.rows.push(vec![
            json!(category),
            json!(k),
            json!(v),
            json!(n),
            json!(round(share)),
            json!(round(overall)),
            json!(round(lift)),
        ]);
    }
    Ok(vec![table])
}

pub fn security(
    conn: &Connection,
    from: i64,
    to: i64,
    alert_per_minute: u32,
) -> anyhow::Result<Vec<Table>> {
    let mut lockouts = Table::new("Lockouts", &["at", "what", "who", "why"]);
    let mut stmt = conn.prepare(
        "SELECT at, action, subject, detail FROM audit_log
         WHERE action LIKE 'security.%' AND at >= ?1 AND at < ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![from, to], |r| {
        Ok(vec![
            json!(to_rfc3339(r.get::<_, i64>(0)?)),
            json!(
                r.get::<_, String>(1)?
                    .trim_start_matches("security.")
                    .replace('_', " ")
            ),
            json!(r.get::<_, String>(2)?),
            json!(r.get::<_, String>(3)?),
        ])
    })?;
    for row in rows {
        lockouts.rows.push(row?);
    }

    let mut guessers = Table::new(
        "Calling numbers with repeated failures or several accounts",
        &["caller", "calls", "accounts identified", "failed entries"],
    );
    let mut stmt = conn.prepare(
        "WITH f AS (SELECT caller, COUNT(*) AS n FROM failures WHERE at >= ?1 AND at < ?2 GROUP BY caller),
              c AS (SELECT caller, COUNT(*) AS calls, COUNT(DISTINCT account_id) AS accounts FROM calls
                    WHERE started_at >= ?1 AND started_at < ?2 GROUP BY caller)
         SELECT COALESCE(c.caller, f.caller), COALESCE(c.calls, 0), COALESCE(c.accounts, 0), COALESCE(f.n, 0)
         FROM c FULL OUTER JOIN f ON f.caller = c.caller
         WHERE COALESCE(c.accounts, 0) >= 2 OR COALESCE(f.n, 0) >= 3
         ORDER BY 4 DESC, 3 DESC LIMIT 200",
    )?;
    let rows = stmt.query_map(params![from, to], |r| {
        Ok(vec![
            json!(Viewer::Analysis.caller_number(&r.get::<_, String>(0)?)),
            json!(r.get::<_, i64>(1)?),
            json!(r.get::<_, i64>(2)?),
            json!(r.get::<_, i64>(3)?),
        ])
    })?;
    for row in rows {
        guessers.rows.push(row?);
    }

    let mut signals = Table::new("Signals", &["signal", "count"]);
    let stir_failed: i64 = conn.query_row(
        "SELECT COUNT(*) FROM calls WHERE started_at >= ?1 AND started_at < ?2
         AND stir_verstat LIKE 'TN-Validation-Failed%'",
        params![from, to],
        |r| r.get(0),
    )?;
    let replays: i64 = conn.query_row(
        "SELECT COUNT(*) FROM failures WHERE at >= ?1 AND at < ?2 AND kind = 'totp_replay'",
        params![from, to],
        |r| r.get(0),
    )?;
    let failed_entries: i64 = conn.query_row(
        "SELECT COUNT(*) FROM failures WHERE at >= ?1 AND at < ?2",
        params![from, to],
        |r| r.get(0),
    )?;
    for (name, n) in [
        ("calls whose STIR/SHAKEN verification failed", stir_failed),
        ("TOTP codes replayed", replays),
        ("failed entries (codes, TOTPs, answers)", failed_entries),
        ("lockouts", lockouts.rows.len() as i64),
    ] {
        signals.rows.push(vec![json!(name), json!(n)]);
    }

    let mut alerts = Table::new(
        "Minutes with failures above the alert threshold (possible guessing)",
        &["minute", "failures", "numbers"],
    );
    let mut stmt = conn.prepare(
        "SELECT at / 60000, COUNT(*), COUNT(DISTINCT caller) FROM failures
         WHERE at >= ?1 AND at < ?2 GROUP BY 1 HAVING COUNT(*) >= ?3 ORDER BY 1",
    )?;
    let rows = stmt.query_map(params![from, to, alert_per_minute], |r| {
        Ok(vec![
            json!(to_rfc3339(r.get::<_, i64>(0)? * 60_000)),
            json!(r.get::<_, i64>(1)?),
            json!(r.get::<_, i64>(2)?),
        ])
    })?;
    for row in rows {
        alerts.rows.push(row?);
    }
    alerts.highlight = (0..alerts.rows.len()).collect();
    Ok(vec![signals, alerts, lockouts, guessers])
}
