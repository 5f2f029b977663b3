//! Each report's tables, computed from the rows the store gives (`crate::store::reports`).
//! Phone numbers leave here masked; account ids are shown because the reports are for admins
//! who must act on them.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::Table;
use crate::agent::view::Viewer;
use crate::store::{Db, to_rfc3339};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// The p-th percentile (0-100) of sorted values, nearest-rank.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

pub fn funnel(db: &dyn Db, from: i64, to: i64) -> anyhow::Result<Vec<Table>> {
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
    for d in db.funnel_days(from, to)? {
        daily.rows.push(vec![
            json!(d.day),
            json!(d.script),
            json!(d.version),
            json!(d.called),
            json!(d.identified),
            json!(d.level_low),
            json!(d.level_medium),
            json!(d.level_high),
            json!(d.verified),
            json!(d.handed_off),
            json!(d.abandoned),
        ]);
    }

    let mut ends = Table::new(
        "Where callers fail: how calls that reached no agent ended",
        &["script", "version", "end reason", "last step", "calls"],
    );
    for e in db.funnel_ends(from, to)? {
        ends.rows.push(vec![
            json!(e.script),
            json!(e.version),
            json!(e.end_reason),
            json!(e.last_step),
            json!(e.calls),
        ]);
    }

    let mut failures = Table::new("Failed entries by factor", &["factor", "failures", "calls"]);
    for f in db.failures_by_kind(from, to)? {
        failures
            .rows
            .push(vec![json!(f.kind), json!(f.failures), json!(f.calls)]);
    }
    Ok(vec![daily, ends, failures])
}

pub fn handoff_time(db: &dyn Db, from: i64, to: i64) -> anyhow::Result<Vec<Table>> {
    let mut table = Table::new(
        "Seconds from answer to hand-off, per script version",
        &["script", "version", "handed off", "median s", "p90 s"],
    );
    let mut groups: BTreeMap<(String, i64), Vec<i64>> = BTreeMap::new();
    for (script, version, ms) in db.handoff_times(from, to)? {
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

pub fn repeat_callers(db: &dyn Db, from: i64, to: i64) -> anyhow::Result<Vec<Table>> {
    let mut table = Table::new(
        "Accounts calling again within 7 days about the same department",
        &["account", "department", "calls", "first", "last"],
    );
    let mut groups: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for (account, category, at) in db.account_department_calls(from, to)? {
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

pub fn recurring_problems(db: &dyn Db, from: i64, to: i64) -> anyhow::Result<Vec<Table>> {
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
    for (category, attrs) in db.categorised_calls(from, to)? {
        total += 1;
        *per_category.entry(category.clone()).or_default() += 1;
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
    db: &dyn Db,
    from: i64,
    to: i64,
    alert_per_minute: u32,
) -> anyhow::Result<Vec<Table>> {
    let mut lockouts = Table::new("Lockouts", &["at", "what", "who", "why"]);
    for e in db.security_events(from, to)? {
        lockouts.rows.push(vec![
            json!(to_rfc3339(e.at)),
            json!(e.action.trim_start_matches("security.").replace('_', " ")),
            json!(e.subject),
            json!(e.detail),
        ]);
    }

    let mut guessers = Table::new(
        "Calling numbers with repeated failures or several accounts",
        &["caller", "calls", "accounts identified", "failed entries"],
    );
    for c in db.suspicious_callers(from, to)? {
        guessers.rows.push(vec![
            json!(Viewer::Analysis.caller_number(&c.caller)),
            json!(c.calls),
            json!(c.accounts),
            json!(c.failures),
        ]);
    }

    let mut signals = Table::new("Signals", &["signal", "count"]);
    let counts = db.signal_counts(from, to)?;
    for (name, n) in [
        (
            "calls whose STIR/SHAKEN verification failed",
            counts.stir_failed_calls,
        ),
        ("TOTP codes replayed", counts.totp_replays),
        (
            "failed entries (codes, TOTPs, answers)",
            counts.failed_entries,
        ),
        ("lockouts", lockouts.rows.len() as i64),
    ] {
        signals.rows.push(vec![json!(name), json!(n)]);
    }

    let mut alerts = Table::new(
        "Minutes with failures above the alert threshold (possible guessing)",
        &["minute", "failures", "numbers"],
    );
    for m in db.busy_minutes(from, to, alert_per_minute)? {
        alerts.rows.push(vec![
            json!(to_rfc3339(m.start)),
            json!(m.failures),
            json!(m.numbers),
        ]);
    }
    alerts.highlight = (0..alerts.rows.len()).collect();
    Ok(vec![signals, alerts, lockouts, guessers])
}
