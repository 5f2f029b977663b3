//! `callgate loadtest`: plays complete calls against a server the way Twilio does and reports
//! calls/s, webhooks/s, latency per webhook and errors by kind; `--baseline-url` runs the same
//! load against a bare handler that returns a fixed TwiML document (`baseline`), in the same run,
//! so the ratio holds on a noisy machine. `callgate seed` provisions the accounts it uses.
//! This is bench tooling: see BENCHMARKS.md.

pub mod baseline;
pub mod fixtures;
mod report;
pub mod scenario;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

pub use report::{Memory, Report};
use scenario::{Call, Path, Target};

#[derive(Debug, Args)]
pub struct LoadtestArgs {
    /// Base URL of the server (its public URL: requests are signed for it).
    #[arg(
        long,
        env = "CALLGATE_PUBLIC_URL",
        default_value_t = format!("http://{}", crate::config::DEFAULT_LISTEN)
    )]
    pub url: String,
    /// Several nodes behind one public URL: send the webhooks to these addresses in turn (a
    /// round-robin balancer; repeat the flag per node), each signed for --url as Twilio signs
    /// for the public URL. Every node runs with `--public-url` set to --url.
    #[arg(long = "node", value_name = "URL")]
    pub nodes: Vec<String>,
    /// The auth token the server checks signatures with.
    #[arg(long, env = "CALLGATE_TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Calls to play.
    #[arg(long, default_value_t = 10_000)]
    pub calls: u64,
    /// Closed loop: calls in flight, each started as soon as the previous one ends.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Open loop: webhooks per second on a fixed schedule, whatever the server does; latency is
    /// measured from the scheduled start (no coordinated omission).
    #[arg(long)]
    pub rate: Option<f64>,
    /// The mix of call paths, as weights.
    #[arg(long, default_value = "caller_id=40,totp=30,wrong=20,silence=10")]
    pub mix: String,
    /// How many load-test accounts the server holds (`callgate seed --accounts N`).
    #[arg(long, default_value_t = 1_000)]
    pub accounts: u64,
    /// A bare fixed-TwiML server (`cargo run --release --example bare_twiml`) to run the same
    /// load against first, for the ratio.
    #[arg(long)]
    pub baseline_url: Option<String>,
    /// Process id of the server, to sample its memory (Linux /proc).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Stop starting calls after this long (e.g. 10m), even if --calls are not all played.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// After the closed loop, run an open loop at half of callgate's closed-loop webhooks/s,
    /// against the baseline too when one is given (same rate for both).
    #[arg(long)]
    pub then_open_at_half: bool,
    /// Write the results as JSON to this file as well.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What to play.
#[derive(Debug, Clone)]
pub struct Plan {
    pub calls: u64,
    /// No call starts after this long.
    pub duration: Option<Duration>,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub mix: Vec<(Path, u32)>,
    pub accounts: u64,
}

pub fn parse_mix(spec: &str) -> anyhow::Result<Vec<(Path, u32)>> {
    let mut mix = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .with_context(|| format!("--mix item {part:?} must be PATH=WEIGHT"))?;
        let path = Path::parse(name.trim()).with_context(|| {
            format!("unknown path {name:?}: use caller_id, totp, wrong or silence")
        })?;
        let weight: u32 = weight
            .trim()
            .parse()
            .with_context(|| format!("weight of {name} must be a whole number"))?;
        if weight > 0 {
            mix.push((path, weight));
        }
    }
    if mix.is_empty() {
        bail!("--mix names no path with a weight above 0");
    }
    Ok(mix)
}

pub async fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    let plan = Plan {
        calls: args.calls,
        duration: args.duration,
        concurrency: args.concurrency.max(1),
        rate: args.rate,
        mix: parse_mix(&args.mix)?,
        accounts: args.accounts,
    };
    if plan.accounts < 2 {
        bail!("--accounts must be at least 2 (seed them with `callgate seed --accounts N`)");
    }
    let mut reports = compare(&args, &plan, "").await?;
    if args.then_open_at_half && plan.rate.is_none() {
        let closed = reports
            .iter()
            .find(|(name, _)| name == "callgate")
            .map(|(_, r)| r.webhooks_per_sec);
        let open = Plan {
            rate: Some(closed.unwrap_or_default() / 2.0),
            ..plan.clone()
        };
        reports.extend(compare(&args, &open, "open_").await?);
    }
    if let Some(path) = &args.json {
        let json: serde_json::Map<String, serde_json::Value> = reports
            .iter()
            .map(|(name, r)| Ok((name.clone(), serde_json::to_value(r)?)))
            .collect::<anyhow::Result<_>>()?;
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let errors = reports.iter().map(|(_, r)| r.error_count()).sum::<u64>();
    if errors > 0 {
        eprintln!("{errors} webhook(s) failed; see the errors by kind above");
    }
    Ok(())
}

/// The plan against the baseline (if any) and then callgate, with their ratio.
async fn compare(
    args: &LoadtestArgs,
    plan: &Plan,
    prefix: &str,
) -> anyhow::Result<Vec<(String, Report)>> {
    let mut reports = Vec::new();
    if let Some(baseline) = &args.baseline_url {
        let report = play(&target(baseline, &args.token, plan, true)?, plan, None).await;
        println!("{}", report.render("baseline (fixed TwiML)"));
        reports.push((format!("{prefix}baseline"), report));
    }
    let mut callgate = target(&args.url, &args.token, plan, false)?;
    callgate.nodes = std::sync::Arc::new(
        args.nodes
            .iter()
            .map(|n| n.trim_end_matches('/').to_owned())
            .collect(),
    );
    let report = play(&callgate, plan, args.server_pid).await;
    println!("{}", report.render("callgate"));
    if let Some((_, base)) = reports.first() {
        println!("{}", report::ratios(base, &report));
    }
    reports.push((format!("{prefix}callgate"), report));
    Ok(reports)
}

pub fn target(base: &str, token: &str, plan: &Plan, blind: bool) -> anyhow::Result<Target> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(plan.concurrency.max(64))
        .build()?;
    Ok(Target {
        base: base.trim_end_matches('/').to_owned(),
        token: token.to_owned(),
        http,
        blind,
        nodes: Default::default(),
        turn: Default::default(),
    })
}

/// Spreads the weights over a table so that consecutive calls interleave the paths.
fn path_table(mix: &[(Path, u32)]) -> Vec<Path> {
    let total: u32 = mix.iter().map(|(_, w)| w).sum();
    let mut table = Vec::with_capacity(total as usize);
    let mut credit: Vec<i64> = vec![0; mix.len()];
    for _ in 0..total {
        for (c, (_, w)) in credit.iter_mut().zip(mix) {
            *c += i64::from(*w);
        }
        let (best, _) = credit
            .iter()
            .enumerate()
            .max_by_key(|(_, c)| **c)
            .unwrap_or((0, &0));
        credit[best] -= i64::from(total);
        table.push(mix[best].0);
    }
    table
}

/// Chooses each call's path and account. TOTP calls walk the accounts with an authenticator in
/// turn, so the same account is reused (and its TOTP step refused as a replay) only when more
/// TOTP calls start within 30 s than there are such accounts.
struct Chooser {
    table: Vec<Path>,
    accounts: u64,
}

/// Shared by every phase of a run (closed loop, then open loop): a phase that started again at
/// the first account would present TOTP steps the previous phase had just used, and the server
/// rightly refuses those as replays.
static NEXT_ANY: AtomicU64 = AtomicU64::new(0);
static NEXT_TOTP: AtomicU64 = AtomicU64::new(0);

impl Chooser {
    fn pick(&self, n: u64) -> (Path, fixtures::Fixture, String) {
        let path = self.table[(n % self.table.len() as u64) as usize];
        match path {
            Path::CallerId => {
                let f = fixtures::fixture(NEXT_ANY.fetch_add(1, Ordering::Relaxed) % self.accounts);
                let from = f.phone.clone();
                (path, f, from)
            }
            Path::CodeTotp => {
                let with_totp = self.accounts.div_ceil(2);
                let f =
                    fixtures::fixture(2 * (NEXT_TOTP.fetch_add(1, Ordering::Relaxed) % with_totp));
                (path, f, fixtures::stranger_number())
            }
            Path::WrongCodes => (path, fixtures::fixture(0), fixtures::guesser_number()),
            Path::Silence => (path, fixtures::fixture(0), fixtures::stranger_number()),
        }
    }
}

/// Plays the plan against one target and gathers the report.
pub async fn play(target: &Target, plan: &Plan, server_pid: Option<u32>) -> Report {
    let chooser = Arc::new(Chooser {
        table: path_table(&plan.mix),
        accounts: plan.accounts.max(1),
    });
    let collector = Arc::new(report::Collector::default());
    let memory = server_pid.map(report::MemorySampler::start);
    let started = Instant::now();
    match plan.rate {
        None => closed_loop(target, plan, &chooser, &collector).await,
        Some(rate) => open_loop(target, plan, rate, &chooser, &collector).await,
    }
    let elapsed = started.elapsed();
    let memory = match memory {
        Some(sampler) => sampler.stop().await,
        None => None,
    };
    collector.report(elapsed, plan, memory)
}

async fn closed_loop(
    target: &Target,
    plan: &Plan,
    chooser: &Arc<Chooser>,
    collector: &Arc<report::Collector>,
) {
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.concurrency {
        let (target, chooser, collector, next) = (
            target.clone(),
            chooser.clone(),
            collector.clone(),
            next.clone(),
        );
        let calls = plan.calls;
        let deadline = plan.duration.map(|d| Instant::now() + d);
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= calls || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let (path, fixture, from) = chooser.pick(n);
                let samples = Call::new(&target, from, Instant::now())
                    .play(path, &fixture)
                    .await;
                collector.record(path, &samples);
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

async fn open_loop(
    target: &Target,
    plan: &Plan,
    rate: f64,
    chooser: &Arc<Chooser>,
    collector: &Arc<report::Collector>,
) {
    // Calls arrive at the rate that makes `rate` webhooks per second for this mix.
    let table = path_table(&plan.mix);
    let per_call =
        table.iter().map(|p| p.webhooks().len()).sum::<usize>() as f64 / table.len() as f64;
    let interval = Duration::from_secs_f64(per_call / rate.max(0.001));
    let start = tokio::time::Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..plan.calls {
        let due = start + interval.mul_f64(n as f64);
        if plan.duration.is_some_and(|d| due - start >= d) {
            break;
        }
        tokio::time::sleep_until(due).await;
        let (target, chooser, collector) = (target.clone(), chooser.clone(), collector.clone());
        calls.spawn(async move {
            let (path, fixture, from) = chooser.pick(n);
            // Measured from the scheduled start, even if this task began late.
            let samples = Call::new(&target, from, due.into_std())
                .play(path, &fixture)
                .await;
            collector.record(path, &samples);
        });
        while calls.try_join_next().is_some() {}
    }
    while calls.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_interleaves() {
        let mix = parse_mix("caller_id=2, totp=1,wrong=0").unwrap();
        assert_eq!(mix, vec![(Path::CallerId, 2), (Path::CodeTotp, 1)]);
        let table = path_table(&mix);
        assert_eq!(table.len(), 3);
        assert_eq!(table.iter().filter(|p| **p == Path::CallerId).count(), 2);
        assert!(parse_mix("nope=1").is_err());
        assert!(parse_mix("wrong=0").is_err());
        assert!(parse_mix("totp").is_err());
    }
}
