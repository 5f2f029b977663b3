//! Reports for admins: the verification funnel, the caller's time to an agent, repeat callers,
//! security. Each report is a set of tables computed from the database over a period; the API
//! serves them as JSON or CSV, the CLI prints them, `/admin/reports` draws them as SVG charts.

pub mod api;
mod queries;
pub mod svg;

use anyhow::bail;
use serde::Serialize;

pub use queries::percentile;

/// The reports there are, in the order the page shows them.
pub const NAMES: [(&str, &str); 5] = [
    ("funnel", "Verification funnel"),
    ("handoff-time", "Time from answer to hand-off"),
    ("repeat-callers", "Repeat callers"),
    ("recurring-problems", "Recurring problems"),
    ("security", "Security"),
];

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub name: String,
    pub title: String,
    /// RFC 3339 bounds of the period (from inclusive, to exclusive).
    pub from: String,
    pub to: String,
    pub tables: Vec<Table>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    /// Rows the report marks for attention (e.g. over-represented combinations).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub highlight: Vec<usize>,
}

impl Table {
    pub fn new(title: &str, columns: &[&str]) -> Self {
        Self {
            title: title.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
            highlight: Vec::new(),
        }
    }

    /// RFC 4180 CSV: a header line, then the rows; fields quoted when they need it.
    pub fn to_csv(&self) -> String {
        fn field(v: &str) -> String {
            // A leading = + - @ would be a formula in a spreadsheet: quote it as text.
            let formula = v.starts_with(['=', '+', '-', '@']) && v.parse::<f64>().is_err();
            if formula {
                return format!("\"'{}\"", v.replace('"', "\"\""));
            }
            if v.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", v.replace('"', "\"\""))
            } else {
                v.to_owned()
            }
        }
        let mut out = self
            .columns
            .iter()
            .map(|c| field(c))
            .collect::<Vec<_>>()
            .join(",");
        out.push_str("\r\n");
        for row in &self.rows {
            let line = row
                .iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => field(s),
                    serde_json::Value::Null => String::new(),
                    other => field(&other.to_string()),
                })
                .collect::<Vec<_>>()
                .join(",");
            out.push_str(&line);
            out.push_str("\r\n");
        }
        out
    }
}

/// Computes a report over `[from, to)` (milliseconds since the epoch). `alert_per_minute` is
/// the server's global alert threshold, which the security report marks minutes against.
pub fn build(
    db: &dyn crate::store::Db,
    name: &str,
    from: i64,
    to: i64,
    alert_per_minute: u32,
) -> anyhow::Result<Report> {
    let Some((_, title)) = NAMES.iter().find(|(n, _)| *n == name) else {
        bail!(
            "no report named {name:?}; there are: {}",
            NAMES.map(|(n, _)| n).join(", ")
        );
    };
    let tables = match name {
        "funnel" => queries::funnel(db, from, to)?,
        "handoff-time" => queries::handoff_time(db, from, to)?,
        "repeat-callers" => queries::repeat_callers(db, from, to)?,
        "recurring-problems" => queries::recurring_problems(db, from, to)?,
        _ => queries::security(db, from, to, alert_per_minute)?,
    };
    Ok(Report {
        name: name.to_owned(),
        title: (*title).to_owned(),
        from: crate::store::to_rfc3339(from).unwrap_or_default(),
        to: crate::store::to_rfc3339(to).unwrap_or_default(),
        tables,
    })
}

/// A report as aligned text, for the terminal.
pub fn to_text(report: &Report) -> String {
    let mut out = format!("{} ({} .. {})\n", report.title, report.from, report.to);
    for table in &report.tables {
        out.push_str(&format!("\n{}\n", table.title));
        let cells: Vec<Vec<String>> = std::iter::once(table.columns.clone())
            .chain(table.rows.iter().map(|r| {
                r.iter()
                    .map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => "-".into(),
                        other => other.to_string(),
                    })
                    .collect()
            }))
            .collect();
        let widths: Vec<usize> = (0..table.columns.len())
            .map(|i| {
                cells
                    .iter()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (n, row) in cells.iter().enumerate() {
            let mark = if n > 0 && table.highlight.contains(&(n - 1)) {
                "! "
            } else {
                "  "
            };
            let line: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
                .collect();
            out.push_str(&format!("{mark}{}\n", line.join("  ").trim_end()));
        }
        if table.rows.is_empty() {
            out.push_str("  (nothing in this period)\n");
        }
    }
    out
}
