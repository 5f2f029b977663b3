//! Charts drawn on the server as SVG: no JavaScript library, nothing fetched from elsewhere, and
//! the same picture in every browser. Text is escaped; sizes are fixed.

use super::{Report, Table};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Horizontal bars, one per label.
pub fn bars(title: &str, items: &[(String, f64)]) -> String {
    let width = 640.0;
    let label_w = 220.0;
    let bar_h = 22.0;
    let height = 36.0 + bar_h * items.len().max(1) as f64;
    let max = items.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1e-9);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{t}"><title>{t}</title><text x="0" y="18" class="chart-title">{t}</text>"#,
        t = esc(title)
    );
    if items.is_empty() {
        out.push_str(r#"<text x="0" y="44" class="chart-empty">nothing in this period</text>"#);
    }
    for (i, (label, value)) in items.iter().enumerate() {
        let y = 30.0 + bar_h * i as f64;
        let w = ((width - label_w - 60.0) * value / max).max(1.0);
        out.push_str(&format!(
            r#"<text x="{lx}" y="{ty}" class="chart-label" text-anchor="end">{l}</text><rect x="{label_w}" y="{y}" width="{w:.1}" height="{bh}" class="chart-bar"/><text x="{vx:.1}" y="{ty}" class="chart-value">{v}</text>"#,
            lx = label_w - 8.0,
            ty = y + 15.0,
            l = esc(label),
            bh = bar_h - 6.0,
            vx = label_w + w + 6.0,
            v = if value.fract() == 0.0 {
                format!("{value:.0}")
            } else {
                format!("{value:.1}")
            }
        ));
    }
    out.push_str("</svg>");
    out
}

fn num(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn sum_column(t: &Table, col: &str) -> f64 {
    match t.columns.iter().position(|c| c == col) {
        Some(i) => t.rows.iter().map(|r| r.get(i).map_or(0.0, num)).sum(),
        None => 0.0,
    }
}

/// The chart that sums up a report, if it has one.
pub fn chart(report: &Report) -> Option<String> {
    let first = report.tables.first()?;
    match report.name.as_str() {
        "funnel" => {
            let stages = [
                "called",
                "identified",
                "verified",
                "handed off",
                "abandoned",
            ];
            let items: Vec<(String, f64)> = stages
                .iter()
                .map(|s| ((*s).to_owned(), sum_column(first, s)))
                .collect();
            Some(bars("Calls through the funnel", &items))
        }
        "handoff-time" => {
            let items: Vec<(String, f64)> = first
                .rows
                .iter()
                .flat_map(|r| {
                    let name = format!(
                        "{} v{}",
                        r.first().and_then(|v| v.as_str()).unwrap_or_default(),
                        r.get(1).map_or(0.0, num)
                    );
                    [
                        (format!("{name} median"), r.get(3).map_or(0.0, num)),
                        (format!("{name} p90"), r.get(4).map_or(0.0, num)),
                    ]
                })
                .collect();
            Some(bars("Seconds to an agent", &items))
        }
        "recurring-problems" => {
            let items: Vec<(String, f64)> = first
                .rows
                .iter()
                .take(10)
                .map(|r| {
                    let s = |i: usize| {
                        r.get(i)
                            .and_then(|v| v.as_str())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    (
                        format!("{} / {}={}", s(0), s(1), s(2)),
                        r.get(6).map_or(0.0, num),
                    )
                })
                .collect();
            Some(bars("Most over-represented (lift)", &items))
        }
        "security" => {
            let items: Vec<(String, f64)> = first
                .rows
                .iter()
                .map(|r| {
                    (
                        r.first()
                            .and_then(|v| v.as_str())
                            .unwrap_or_default()
                            .to_owned(),
                        r.get(1).map_or(0.0, num),
                    )
                })
                .collect();
            Some(bars("Security signals", &items))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_are_escaped_and_the_svg_parses() {
        let svg = super::bars("a <b>", &[("x & \"y\"".into(), 3.0), ("z".into(), 1.5)]);
        assert!(svg.contains("a &lt;b&gt;") && svg.contains("x &amp; &quot;y&quot;"));
        let mut reader = quick_xml::Reader::from_str(&svg);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("{e}: {svg}"),
            }
        }
    }
}
