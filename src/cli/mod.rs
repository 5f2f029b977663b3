//! The `callgate` command line. Every command works on the same data directory, also while the
//! server runs (SQLite in WAL mode serialises the writers).

mod account;
mod keys;
mod script;
mod serve;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::domain::Region;
use crate::store::{Db, Store};
use crate::usecases::{self, Actor, Refused};

#[derive(Debug, Parser)]
#[command(
    name = "callgate",
    version,
    about = "Caller-verification IVR for Twilio and TwiML gateways"
)]
pub struct Cli {
    /// Holds the SQLite database and the server key; both are created on first use.
    #[arg(
        long,
        env = "CALLGATE_DATA_DIR",
        default_value = crate::config::DEFAULT_DATA_DIR,
        global = true
    )]
    pub data_dir: PathBuf,

    /// Region in which a phone number without a country code is read.
    #[arg(
        long,
        env = "CALLGATE_DEFAULT_REGION",
        default_value_t = Region::default(),
        global = true
    )]
    pub region: Region,

    /// A PostgreSQL database to keep the data in instead of the data directory's SQLite file,
    /// e.g. postgres://callgate@db.internal/callgate: how several nodes share one line. The
    /// key file stays in the data directory (every node needs the same one).
    #[arg(long, env = "CALLGATE_DATABASE_URL", global = true, value_parser = crate::store::DatabaseUrl::parse, hide_env_values = true)]
    pub database_url: Option<crate::store::DatabaseUrl>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the webhook server.
    Serve(serve::ServeArgs),
    /// Manage customer accounts.
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// Manage agents and admins.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Check, list, export and publish IVR scripts.
    #[command(subcommand)]
    Script(script::ScriptCommand),
    /// A report in the terminal: funnel, handoff-time, repeat-callers, recurring-problems, security.
    Report {
        name: String,
        /// How far back, e.g. 24h, 7d, 30d.
        #[arg(long, default_value = "7d")]
        since: humantime::Duration,
        /// text, json or csv (csv: the first table, or --table N).
        #[arg(long, default_value = "text")]
        format: String,
        #[arg(long, default_value_t = 0)]
        table: usize,
        /// The global alert threshold the security report marks minutes against.
        #[arg(long, env = "CALLGATE_GLOBAL_ALERT_PER_MINUTE", default_value_t = crate::verify::Limits::DEFAULT.global_alert_per_minute)]
        alert_per_minute: u32,
    },
    /// Speech routing: learn from the categories agents confirmed.
    #[command(subcommand)]
    Routing(RoutingCommand),
    /// Enforce the retention settings now (the server also does it daily).
    Purge {
        /// Count what would go, change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        retention: serve::RetentionArgs,
    },
    /// Read and verify the tamper-evident audit trail.
    #[command(subcommand)]
    Audit(script::AuditCommand),
    /// A terminal softphone: call a running callgate the way Twilio does.
    Call(crate::softphone::CallArgs),
    /// Play many calls against a server and report throughput and latency (see BENCHMARKS.md).
    Loadtest(crate::loadtest::LoadtestArgs),
    /// Key custody: rotate the server key, show which versions are in use, retire old ones.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Copy the database, consistently, while the server runs (SQLite's VACUUM INTO).
    Backup {
        /// The file to write; it must not exist yet.
        path: std::path::PathBuf,
    },
    /// Copy the SQLite database of the data directory into the empty PostgreSQL database named
    /// by --database-url (CALLGATE_DATABASE_URL), then prove the copy: rows per table on both
    /// sides, and the audit chain verified on PostgreSQL. The SQLite file is only read.
    MigrateToPostgres,
    /// Add load-test accounts (public codes: never beside real accounts) and call history.
    Seed {
        /// Load-test accounts to hold (LOAD-0000000 ...).
        #[arg(long)]
        accounts: u64,
        /// Finished calls of history to hold.
        #[arg(long, default_value_t = 0)]
        calls: u64,
        /// Seed even though the data directory holds real accounts.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoutingCommand {
    /// Train the speech classifier from confirmed outcomes and report its accuracy on
    /// held-out calls (a running server loads the new model within two seconds).
    Train {
        /// Share of the examples kept aside to measure the model.
        #[arg(long, default_value_t = 0.2)]
        holdout: f64,
    },
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let verbose = matches!(cli.command, Command::Serve(_));
    init_logging(verbose);
    let place = crate::store::Location {
        data_dir: cli.data_dir,
        database_url: cli.database_url,
    };
    let result = match cli.command {
        Command::Serve(args) => serve::run(args, place, cli.region).await,
        Command::Account(cmd) => account::run(cmd, &place, cli.region),
        Command::User(cmd) => user::run(cmd, &place),
        Command::Script(cmd) => script::run(cmd, &place),
        Command::Audit(cmd) => script::run_audit(cmd, &place),
        Command::Routing(RoutingCommand::Train { holdout }) => train(&place, holdout),
        Command::Purge { dry_run, retention } => purge(&place, dry_run, &retention),
        Command::Report {
            name,
            since,
            format,
            table,
            alert_per_minute,
        } => report(&place, &name, *since, &format, table, alert_per_minute),
        Command::Keys(cmd) => keys::run(cmd, &place),
        Command::Call(args) => crate::softphone::run(args).await,
        Command::Loadtest(args) => crate::loadtest::run(args).await,
        Command::Seed {
            accounts,
            calls,
            force,
        } => seed(&place, accounts, calls, force),
        Command::Backup { path } => backup(&place, &path),
        Command::MigrateToPostgres => migrate_to_postgres(&place),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Who the audit trail says did what the CLI did: the operator's login.
fn operator() -> Actor {
    Actor::cli(&std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
}

/// Runs a use case in one transaction of its own: committed when it succeeds or is refused
/// (a refusal may carry its audit entry), rolled back when it fails. A refusal becomes the
/// command's error; a script's problems are listed with it.
fn in_transaction<T>(
    store: &Store,
    work: impl FnOnce(&dyn Db) -> usecases::Result<T>,
) -> anyhow::Result<T> {
    store
        .write_sync(|db| usecases::settle(work(db)))?
        .map_err(refusal)
}

/// A refusal as the command line says it.
fn refusal(refused: Refused) -> anyhow::Error {
    match refused {
        Refused::Unchecked { message, problems } => {
            let listed: Vec<String> = problems
                .iter()
                .map(|p| format!("  {}", p.render("script")))
                .collect();
            anyhow::anyhow!("{message}:\n{}", listed.join("\n"))
        }
        other => other.into(),
    }
}

fn train(place: &crate::store::Location, holdout: f64) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..1.0).contains(&holdout),
        "--holdout must be at least 0 and below 1"
    );
    let store = crate::store::Store::at(place)?;
    let t =
        store.write_sync(|db| crate::ivr::training::train(db, holdout, crate::store::now_ms()))?;
    let pct = |a: Option<f64>| a.map_or("n/a".to_owned(), |a| format!("{:.1}%", a * 100.0));
    println!(
        "routing model #{}: trained on {} confirmed utterance(s), measured on {} held out",
        t.id, t.examples, t.held_out
    );
    println!(
        "accuracy on held-out calls: {} (script phrases alone: {})",
        pct(t.accuracy),
        pct(t.baseline_accuracy)
    );
    for (category, n) in &t.per_category {
        println!("  {category:<16} {n} example(s)");
    }
    Ok(())
}

fn purge(
    place: &crate::store::Location,
    dry_run: bool,
    retention: &serve::RetentionArgs,
) -> anyhow::Result<()> {
    let store = crate::store::Store::at(place)?;
    let (retention, now) = (retention.retention(), crate::store::now_ms());
    let purge =
        |db: &dyn crate::store::Db| crate::store::privacy::purge_retention(db, &retention, now);
    let (purged, said) = if dry_run {
        (
            store.dry_run(purge)?,
            "would purge (dry run, nothing changed):",
        )
    } else {
        (store.write_sync(purge)?, "purged:")
    };
    let Some(purged) = purged else {
        anyhow::bail!(
            "another purge (a node's daily one) is running now; nothing was done, try again later"
        );
    };
    println!("{said}");
    println!("{}", serde_json::to_string_pretty(&purged)?);
    Ok(())
}

fn report(
    place: &crate::store::Location,
    name: &str,
    since: std::time::Duration,
    format: &str,
    table: usize,
    alert_per_minute: u32,
) -> anyhow::Result<()> {
    let store = crate::store::Store::at(place)?;
    let to = crate::store::now_ms();
    let from = to - i64::try_from(since.as_millis()).unwrap_or(i64::MAX / 2);
    let report =
        store.read_sync(|db| crate::reports::build(db, name, from, to, alert_per_minute))?;
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(&report)?),
        "csv" => {
            let t = report.tables.get(table).ok_or_else(|| {
                anyhow::anyhow!("the report has {} table(s)", report.tables.len())
            })?;
            print!("{}", t.to_csv());
        }
        "text" => print!("{}", crate::reports::to_text(&report)),
        other => anyhow::bail!("--format {other:?}: use text, json or csv"),
    }
    Ok(())
}

fn migrate_to_postgres(place: &crate::store::Location) -> anyhow::Result<()> {
    let Some(url) = &place.database_url else {
        anyhow::bail!(
            "say where to copy to: callgate migrate-to-postgres --database-url postgres://user@host/database"
        );
    };
    let report = crate::store::copy::sqlite_to_postgres(&place.data_dir, url.expose())?;
    println!("{:<18} {:>10} {:>10}", "table", "SQLite", "PostgreSQL");
    for t in &report.tables {
        let mark = if t.source == t.target {
            ""
        } else {
            "  MISMATCH"
        };
        println!("{:<18} {:>10} {:>10}{mark}", t.table, t.source, t.target);
    }
    match &report.audit {
        crate::store::audit::Verdict::Intact { entries, head } => {
            println!("audit chain on PostgreSQL: intact, {entries} entries, head {head}");
        }
        crate::store::audit::Verdict::Broken { seq, why } => {
            println!("audit chain on PostgreSQL: BROKEN at entry {seq}: {why}");
        }
    }
    anyhow::ensure!(report.proven(), "the copy could not be proven (see above)");
    // The keys go along, wrapped under the key-encryption key, and must open what was copied.
    let store = crate::store::Store::at(place)?;
    let custody = crate::verify::KeyCustody::of(&store, &place.data_dir)?;
    let ring = custody.take_over_key_file(&store, crate::store::now_ms())?;
    store.read_sync(|db| crate::store::key_usage::check_keyring(db, &ring))?;
    let versions: Vec<String> = ring.versions().iter().map(|v| format!("v{v}")).collect();
    println!(
        "keys: {} stored in the {}; they open the copied secrets",
        versions.join(", "),
        custody.describe()
    );
    let kek = match &custody {
        crate::verify::KeyCustody::Database { kek, .. } => kek.origin().to_string(),
        crate::verify::KeyCustody::File(path) => path.display().to_string(),
    };
    println!(
        "copied and proven. Next: start every node with CALLGATE_DATABASE_URL set and the same key-encryption key \
         ({kek}: copy that file into each node's data directory, or set CALLGATE_KEK from your secrets store)"
    );
    Ok(())
}

fn backup(place: &crate::store::Location, target: &std::path::Path) -> anyhow::Result<()> {
    let data_dir = place.data_dir.as_path();
    let store = crate::store::Store::at(place)?;
    let report = store.backup(target)?;
    println!(
        "backed up {} account(s) and {} call(s) to {} ({} bytes, integrity ok)",
        report.accounts,
        report.calls,
        target.display(),
        report.bytes
    );
    println!(
        "the codes and TOTP secrets in it are useless without the key file {}: back that up too, kept apart",
        data_dir.join(crate::verify::keys::KEY_FILE).display()
    );
    Ok(())
}

fn seed(
    place: &crate::store::Location,
    accounts: u64,
    calls: u64,
    force: bool,
) -> anyhow::Result<()> {
    let data_dir = place.data_dir.as_path();
    let store = crate::store::Store::at(place)?;
    let keys =
        crate::verify::KeyCustody::of(&store, data_dir)?.open(&store, crate::store::now_ms())?;
    let started = std::time::Instant::now();
    let added = crate::loadtest::fixtures::seed(&store, &keys, accounts, calls, force)?;
    println!(
        "seeded {added} load-test account(s) (LOAD-0000000..) and up to {calls} finished call(s) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Logs go to stderr; `RUST_LOG` overrides the level, `CALLGATE_LOG_FORMAT=json` gives JSON lines.
fn init_logging(server: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if server {
        "info,tower_http=info"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let json = std::env::var("CALLGATE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};
    use crate::config::Settings;

    /// The flags' defaults are the settings' defaults: both read the constants of
    /// `crate::config` and `crate::verify::Limits::DEFAULT`, so they cannot drift apart.
    #[test]
    fn serve_flags_default_to_the_declared_settings() {
        let cli = Cli::try_parse_from(["callgate", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        let settings = Settings::new("127.0.0.1:0".parse().unwrap(), "d".into());
        assert_eq!(args.max_in_flight, settings.max_in_flight);
        assert_eq!(*args.pop_url_ttl, settings.pop_url_ttl);
        assert_eq!(*args.body_read_timeout, settings.body_read_timeout);
        assert_eq!(
            args.max_body_reads_per_address,
            settings.max_body_reads_per_address
        );
        assert_eq!(args.retention.retention(), settings.retention);
        let limits = args.limits.limits();
        let expected = &settings.limits;
        assert_eq!(
            (
                limits.account_max_failures,
                limits.account_lock,
                limits.number_max_failures,
                limits.number_window,
                limits.number_lock,
                limits.global_alert_per_minute
            ),
            (
                expected.account_max_failures,
                expected.account_lock,
                expected.number_max_failures,
                expected.number_window,
                expected.number_lock,
                expected.global_alert_per_minute
            )
        );
        assert_eq!(args.scripts, settings.scripts_dir);
        assert_eq!(args.sounds, settings.sounds_dir);
        assert_eq!(cli.region, settings.region);
    }
}
