//! Statistics of a load run: latency per webhook (HDR histogram, microseconds), throughput,
//! errors by kind, and the server's memory sampled from /proc.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::Plan;
use super::scenario::{Path, Sample};

pub struct Collector {
    inner: Mutex<Inner>,
}

struct Inner {
    latency_us: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    calls_by_path: BTreeMap<&'static str, u64>,
    calls: u64,
    webhooks: u64,
}

impl Default for Collector {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                // 1 µs to 60 s, 3 significant digits.
                latency_us: match Histogram::new_with_bounds(1, 60_000_000, 3) {
                    Ok(h) => h,
                    Err(_) => unreachable!("1 µs..60 s with 3 significant digits are valid bounds"),
                },
                errors: BTreeMap::new(),
                calls_by_path: BTreeMap::new(),
                calls: 0,
                webhooks: 0,
            }),
        }
    }
}

impl Collector {
    pub fn record(&self, path: Path, samples: &[Sample]) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.calls += 1;
        *inner.calls_by_path.entry(path.name()).or_default() += 1;
        for s in samples {
            inner.webhooks += 1;
            let us = u64::try_from(s.latency.as_micros())
                .unwrap_or(u64::MAX)
                .clamp(1, 60_000_000);
            let _ = inner.latency_us.record(us);
            if let Some(e) = &s.error {
                *inner.errors.entry(e.clone()).or_default() += 1;
            }
        }
    }

    pub fn report(&self, elapsed: Duration, plan: &Plan, memory: Option<Memory>) -> Report {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let secs = elapsed.as_secs_f64().max(1e-9);
        let ms = |q: f64| inner.latency_us.value_at_quantile(q) as f64 / 1000.0;
        Report {
            mode: match plan.rate {
                Some(r) => format!("open loop at {r:.0} webhooks/s"),
                None => format!("closed loop, {} calls in flight", plan.concurrency),
            },
            calls: inner.calls,
            webhooks: inner.webhooks,
            seconds: secs,
            calls_per_sec: inner.calls as f64 / secs,
            webhooks_per_sec: inner.webhooks as f64 / secs,
            latency_ms: Latency {
                p50: ms(0.50),
                p90: ms(0.90),
                p99: ms(0.99),
                p999: ms(0.999),
                max: inner.latency_us.max() as f64 / 1000.0,
            },
            calls_by_path: inner
                .calls_by_path
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            errors: inner.errors.clone(),
            server_memory: memory,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub start_mb: f64,
    pub peak_mb: f64,
    pub end_mb: f64,
    /// The kernel's high-water mark of the process (VmHWM), since it started.
    pub hwm_mb: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: String,
    pub calls: u64,
    pub webhooks: u64,
    pub seconds: f64,
    pub calls_per_sec: f64,
    pub webhooks_per_sec: f64,
    pub latency_ms: Latency,
    pub calls_by_path: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    pub server_memory: Option<Memory>,
}

impl Report {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn render(&self, title: &str) -> String {
        let l = &self.latency_ms;
        let mut out = format!(
            "== {title}: {}\n   {} calls, {} webhooks in {:.1} s: {:.0} calls/s, {:.0} webhooks/s\n   \
             latency per webhook (ms): p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n   paths: {}\n",
            self.mode,
            self.calls,
            self.webhooks,
            self.seconds,
            self.calls_per_sec,
            self.webhooks_per_sec,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            self.calls_by_path
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        if self.errors.is_empty() {
            out.push_str("   errors: none\n");
        } else {
            let errors: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            out.push_str(&format!("   errors: {}\n", errors.join(", ")));
        }
        if let Some(m) = &self.server_memory {
            out.push_str(&format!(
                "   server memory (RSS, MB): start {:.1}  peak {:.1}  end {:.1}  (VmHWM {:.1})\n",
                m.start_mb, m.peak_mb, m.end_mb, m.hwm_mb
            ));
        }
        out
    }
}

pub fn ratios(baseline: &Report, callgate: &Report) -> String {
    format!(
        "== callgate / baseline: webhooks/s {:.2}, p50 {:.2}x, p99 {:.2}x",
        callgate.webhooks_per_sec / baseline.webhooks_per_sec.max(1e-9),
        callgate.latency_ms.p50 / baseline.latency_ms.p50.max(1e-9),
        callgate.latency_ms.p99 / baseline.latency_ms.p99.max(1e-9),
    )
}

/// Samples a process's resident memory every 100 ms until stopped.
pub struct MemorySampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Option<Memory>>,
}

fn status_kb(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse::<f64>()
        .ok()
}

impl MemorySampler {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let start = status_kb(pid, "VmRSS:")?;
            let (mut peak, mut last) = (start, start);
            while !flag.load(Ordering::Relaxed) {
                if let Some(rss) = status_kb(pid, "VmRSS:") {
                    peak = peak.max(rss);
                    last = rss;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let hwm = status_kb(pid, "VmHWM:").unwrap_or(peak);
            Some(Memory {
                start_mb: start / 1024.0,
                peak_mb: peak / 1024.0,
                end_mb: last / 1024.0,
                hwm_mb: hwm / 1024.0,
            })
        });
        Self { stop, task }
    }

    pub async fn stop(self) -> Option<Memory> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.ok().flatten()
    }
}
