//! `callgate serve`: the webhook server, and `--demo` for a first experience without a phone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::config::{
    self, CrmWebhook, DEFAULT_RETENTION, Settings, TwilioTokens, parse_frame_origins,
};
use crate::domain::Region;
use crate::ivr::script::check::is_workflow_sid;
use crate::startup::{launch_with_tcp_listener, shutdown_signal};
use crate::store::Location;
use crate::store::privacy::Retention;
use crate::store::users::Role;
use crate::store::{Db, Store, now_ms};
use crate::usecases::accounts::{AccountForm, CallCodeTtl};
use crate::usecases::users::ValidUser;
use crate::usecases::{self, Actor};
use crate::verify::{KeyCustody, Keyring, Limits};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, env = "CALLGATE_LISTEN", default_value = config::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// The base URL Twilio is configured with (default: http://<listen>). Signatures are checked
    /// against it, and the URLs in TwiML are built from it.
    #[arg(long, env = "CALLGATE_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[arg(long, env = "CALLGATE_SCRIPTS", default_value = config::DEFAULT_SCRIPTS_DIR)]
    pub scripts: PathBuf,
    #[arg(long, env = "CALLGATE_SOUNDS", default_value = config::DEFAULT_SOUNDS_DIR)]
    pub sounds: PathBuf,
    /// Twilio auth token(s), comma-separated while rotating.
    #[arg(long, env = "CALLGATE_TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<String>,
    /// Accept unsigned webhooks (local experiments only).
    #[arg(long)]
    pub insecure_skip_signature: bool,
    /// Enqueue through this TaskRouter workflow (WW...) with the screen-pop as task attributes.
    #[arg(long, env = "CALLGATE_TASKROUTER_WORKFLOW_SID")]
    pub taskrouter_workflow_sid: Option<String>,
    /// Demo mode: seed demo (test) accounts and tokens on the first start and print them, and
    /// let test accounts answer calls. Refuses a data directory that holds real accounts.
    #[arg(long)]
    pub demo: bool,
    /// Requests served at once; beyond it, 503 at once (Twilio then uses the fallback URL).
    #[arg(long, env = "CALLGATE_MAX_IN_FLIGHT", default_value_t = config::DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// How long a request's body may take to arrive (e.g. 2s); slower gets 408. Bodies are read
    /// before a request counts against --max-in-flight.
    #[arg(long, env = "CALLGATE_BODY_READ_TIMEOUT", default_value_t = config::DEFAULT_BODY_READ_TIMEOUT.into())]
    pub body_read_timeout: humantime::Duration,
    /// Request bodies one client address may be sending at once (0: no cap); beyond it, 429.
    /// Behind a proxy that does not buffer request bodies, set 0 (see README).
    #[arg(long, env = "CALLGATE_MAX_BODY_READS_PER_ADDRESS", default_value_t = config::DEFAULT_MAX_BODY_READS_PER_ADDRESS)]
    pub max_body_reads_per_address: usize,
    /// POST each hand-off's screen-pop as JSON to this URL (signed; see README).
    #[arg(long, env = "CALLGATE_CRM_WEBHOOK_URL")]
    pub crm_webhook_url: Option<String>,
    /// The HMAC-SHA256 key of the CRM webhook's `X-Callgate-Signature`.
    #[arg(long, env = "CALLGATE_CRM_WEBHOOK_SECRET", hide_env_values = true)]
    pub crm_webhook_secret: Option<String>,
    /// How long a server's claim on CRM deliveries lasts unless renewed (e.g. 15s, at least
    /// 1s): a server that dies holding deliveries delays them by at most this much (another
    /// server sends them then); a live one renews its claim every third of it.
    #[arg(long, env = "CALLGATE_CRM_LEASE", default_value_t = config::DEFAULT_CRM_LEASE.into())]
    pub crm_lease: humantime::Duration,
    /// Origins allowed to show `/pop/{token}` in a frame, comma-separated
    /// (e.g. https://crm.example.com,https://flex.twilio.com).
    #[arg(long, env = "CALLGATE_CRM_FRAME_ORIGINS", default_value = "")]
    pub crm_frame_origins: String,
    /// How long a screen-pop URL can be opened after the hand-off (e.g. 10m).
    #[arg(long, env = "CALLGATE_POP_URL_TTL", default_value_t = config::DEFAULT_POP_URL_TTL.into())]
    pub pop_url_ttl: humantime::Duration,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Stop growing the database past this size (MB): calls then hear the apology, as on a full
    /// disk, and the disk keeps room for the logs and the operator.
    #[arg(long, env = "CALLGATE_MAX_DATABASE_MB")]
    pub max_database_mb: Option<u64>,
}

/// How long personal records are kept, in days (0: for ever). Used by the server's daily purge
/// and by `callgate purge`.
#[derive(Debug, Clone, Args)]
pub struct RetentionArgs {
    /// Call journeys and the words callers said at speech menus.
    #[arg(long, env = "CALLGATE_RETAIN_JOURNEYS_DAYS", default_value_t = DEFAULT_RETENTION.journeys_days)]
    pub retain_journeys_days: u32,
    /// Agents' notes on calls.
    #[arg(long, env = "CALLGATE_RETAIN_NOTES_DAYS", default_value_t = DEFAULT_RETENTION.notes_days)]
    pub retain_notes_days: u32,
    /// Caller numbers and account links of calls, and failed entries; the calls stay as counts.
    #[arg(long, env = "CALLGATE_RETAIN_CALL_DETAILS_DAYS", default_value_t = DEFAULT_RETENTION.call_details_days)]
    pub retain_call_details_days: u32,
    /// The agent consoles' event log and delivered CRM bodies.
    #[arg(long, env = "CALLGATE_RETAIN_EVENTS_DAYS", default_value_t = DEFAULT_RETENTION.events_days)]
    pub retain_events_days: u32,
    /// The audit trail (its chain stays verifiable from an anchor).
    #[arg(long, env = "CALLGATE_RETAIN_AUDIT_DAYS", default_value_t = DEFAULT_RETENTION.audit_days)]
    pub retain_audit_days: u32,
}

impl RetentionArgs {
    pub fn retention(&self) -> Retention {
        Retention {
            journeys_days: self.retain_journeys_days,
            notes_days: self.retain_notes_days,
            call_details_days: self.retain_call_details_days,
            events_days: self.retain_events_days,
            audit_days: self.retain_audit_days,
        }
    }
}

#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Failures in a row that lock an account's keypad verification.
    #[arg(long, env = "CALLGATE_ACCOUNT_MAX_FAILURES", default_value_t = Limits::DEFAULT.account_max_failures)]
    pub account_max_failures: u32,
    /// How long an account stays locked (e.g. 15m).
    #[arg(long, env = "CALLGATE_ACCOUNT_LOCK", default_value_t = Limits::DEFAULT.account_lock.into())]
    pub account_lock: humantime::Duration,
    /// Failures from one calling number within --number-window that lock the number out.
    #[arg(long, env = "CALLGATE_NUMBER_MAX_FAILURES", default_value_t = Limits::DEFAULT.number_max_failures)]
    pub number_max_failures: u32,
    #[arg(long, env = "CALLGATE_NUMBER_WINDOW", default_value_t = Limits::DEFAULT.number_window.into())]
    pub number_window: humantime::Duration,
    #[arg(long, env = "CALLGATE_NUMBER_LOCK", default_value_t = Limits::DEFAULT.number_lock.into())]
    pub number_lock: humantime::Duration,
    /// Failures per minute across the system that raise an alert (never a lock).
    #[arg(long, env = "CALLGATE_GLOBAL_ALERT_PER_MINUTE", default_value_t = Limits::DEFAULT.global_alert_per_minute)]
    pub global_alert_per_minute: u32,
}

impl LimitArgs {
    pub(super) fn limits(&self) -> Limits {
        Limits {
            account_max_failures: self.account_max_failures.max(1),
            account_lock: *self.account_lock,
            number_max_failures: self.number_max_failures.max(1),
            number_window: *self.number_window,
            number_lock: *self.number_lock,
            global_alert_per_minute: self.global_alert_per_minute,
        }
    }
}

pub async fn run(args: ServeArgs, place: Location, region: Region) -> anyhow::Result<()> {
    let data_dir = place.data_dir.clone();
    if let Some(ww) = &args.taskrouter_workflow_sid {
        anyhow::ensure!(
            is_workflow_sid(ww),
            "CALLGATE_TASKROUTER_WORKFLOW_SID must be a WW... SID (WW + 32 hex digits)"
        );
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let bound = listener.local_addr()?;
    let public_url = match &args.public_url {
        Some(url) => {
            let parsed = url::Url::parse(url)
                .with_context(|| format!("--public-url {url:?} is not a URL"))?;
            anyhow::ensure!(
                matches!(parsed.scheme(), "http" | "https"),
                "--public-url must be http or https"
            );
            url.trim_end_matches('/').to_owned()
        }
        None => format!("http://{bound}"),
    };
    let crm_webhook = match (&args.crm_webhook_url, &args.crm_webhook_secret) {
        (None, _) => None,
        (Some(url), secret) => {
            let parsed = url::Url::parse(url)
                .with_context(|| "CALLGATE_CRM_WEBHOOK_URL is not a URL".to_owned())?;
            anyhow::ensure!(
                matches!(parsed.scheme(), "http" | "https"),
                "CALLGATE_CRM_WEBHOOK_URL must be http or https"
            );
            let secret = secret.as_deref().map(str::trim).unwrap_or_default();
            anyhow::ensure!(
                secret.len() >= 16,
                "CALLGATE_CRM_WEBHOOK_SECRET must be set (16 characters or more) with CALLGATE_CRM_WEBHOOK_URL: \
                 the CRM checks each delivery's signature with it"
            );
            let lease: Duration = args.crm_lease.into();
            anyhow::ensure!(
                lease >= config::MIN_CRM_LEASE,
                "CALLGATE_CRM_LEASE must be at least {}",
                humantime::format_duration(config::MIN_CRM_LEASE)
            );
            let mut hook = CrmWebhook::new(url, secret);
            hook.lease = lease;
            Some(hook)
        }
    };
    let crm_frame_origins = parse_frame_origins(&args.crm_frame_origins)?;
    anyhow::ensure!(
        (Duration::from_secs(30)..=Duration::from_secs(24 * 3600)).contains(&*args.pop_url_ttl),
        "CALLGATE_POP_URL_TTL must be between 30s and 24h"
    );
    anyhow::ensure!(
        (Duration::from_millis(100)..=Duration::from_secs(60)).contains(&*args.body_read_timeout),
        "CALLGATE_BODY_READ_TIMEOUT must be between 100ms and 60s"
    );
    let settings = Settings {
        listen: bound,
        public_url,
        data_dir: data_dir.clone(),
        database_url: place.database_url.clone(),
        scripts_dir: args.scripts,
        sounds_dir: args.sounds,
        twilio_tokens: args
            .twilio_auth_token
            .as_deref()
            .map(TwilioTokens::parse)
            .unwrap_or_default(),
        insecure_skip_signature: args.insecure_skip_signature,
        region,
        taskrouter_workflow_sid: args.taskrouter_workflow_sid,
        limits: args.limits.limits(),
        max_in_flight: args.max_in_flight,
        body_read_timeout: *args.body_read_timeout,
        max_body_reads_per_address: args.max_body_reads_per_address,
        crm_webhook,
        crm_frame_origins,
        pop_url_ttl: *args.pop_url_ttl,
        retention: args.retention.retention(),
        max_database_mb: args.max_database_mb,
        test_accounts_answer: args.demo,
    };
    if args.demo {
        seed_demo(&place, &settings.public_url)?;
    }
    launch_with_tcp_listener(settings, listener, shutdown_signal()).await
}

/// The demo's accounts: test accounts whose codes the README prints.
const DEMO_ACCOUNTS: [&str; 2] = ["DEMO-1001", "DEMO-1002"];

/// Demo data, seeded once: two test accounts (one with TOTP), a one-time call code, an agent
/// token and an admin token, printed with a `call` command that can be pasted as it is. A later
/// start finds them there and mints nothing: a new admin on every restart would pile up users
/// who can all log in, and tokens in every start's output. It says how to make a token instead.
///
/// `--demo` lets test accounts answer calls, and the demo's codes are public, so a data
/// directory holding real (non-test) accounts is refused before anything is written. Everything
/// is added through the same use cases (and audited) as by an admin.
fn seed_demo(place: &Location, public_url: &str) -> anyhow::Result<()> {
    let data_dir = place.data_dir.as_path();
    let store = Store::at(place)?;
    let keys = KeyCustody::of(&store, data_dir)?.open(&store, now_ms())?;
    // The commands printed below name this very binary and data directory, so that they work
    // when pasted, also after `cargo run` (which puts no `callgate` on the PATH).
    let callgate = shell_word(
        &std::env::current_exe()
            .map_or_else(|_| "callgate".to_owned(), |p| p.display().to_string()),
    );
    let data = shell_word(
        &std::path::absolute(data_dir)
            .unwrap_or_else(|_| data_dir.to_owned())
            .display()
            .to_string(),
    );
    // One transaction: the check, the seeding and the tokens stand or fall together, and two
    // servers started at once cannot both seed.
    let seeded = store.write_sync(|db| seed_demo_in(db, &keys, data_dir, public_url, &callgate))?;
    // Printed once the transaction is committed: nothing is shown that was not kept.
    let Some(out) = seeded else {
        println!("=== callgate demo ===");
        println!(
            "demo data already present in {data} (accounts {}; their codes are in the README).",
            DEMO_ACCOUNTS.join(", "),
        );
        println!(
            "Tokens are printed on the first start only. A new one:  {callgate} user add NAME --role admin --data-dir {data}   (or --role agent)"
        );
        println!(
            "A fresh one-time call code:  {callgate} account call-code DEMO-1001 --data-dir {data}"
        );
        println!("=====================");
        return Ok(());
    };
    for line in out {
        println!("{line}");
    }
    Ok(())
}

/// The demo's check and seeding, in the caller's transaction: `None` when it was seeded before,
/// else the lines to print. `callgate` is this binary, as a shell word.
fn seed_demo_in(
    db: &dyn Db,
    keys: &Keyring,
    data_dir: &Path,
    public_url: &str,
    callgate: &str,
) -> anyhow::Result<Option<Vec<String>>> {
    let real = db.count_real_accounts()?;
    anyhow::ensure!(
        real == 0,
        "--demo refuses the data directory {}: it holds {real} real (non-test) account(s). \
         --demo lets test accounts, whose codes are public, verify callers; run the demo on a \
         data directory of its own (e.g. --data-dir ./demo-data)",
        data_dir.display()
    );
    let mut seeded = false;
    for id in DEMO_ACCOUNTS {
        seeded |= db.account(id)?.is_some();
    }
    if seeded {
        return Ok(None);
    }
    let actor = Actor::demo();
    let demo = [
        (
            DEMO_ACCOUNTS[0],
            "Jan Kowalski",
            "+48601234567",
            "246810",
            false,
            [("plan", "premium"), ("device", "router-x2")],
        ),
        (
            DEMO_ACCOUNTS[1],
            "Anna Nowak",
            "+48602345678",
            "135790",
            true,
            [("plan", "basic"), ("device", "app-ios")],
        ),
    ];
    let mut out = vec!["=== callgate demo ===".to_owned()];
    for (id, name, phone, code, with_totp, attrs) in demo {
        let account = AccountForm {
            id: id.to_owned(),
            name: name.to_owned(),
            phone: phone.to_owned(),
            code: Some(code.to_owned()),
            totp: with_totp,
            // Demo accounts are test accounts: they answer in the admin page's simulator and
            // on a --demo server, never on a real line.
            test: true,
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            knowledge: vec![("dob".to_owned(), "14031985".to_owned())],
        }
        .validate(Region::default())?;
        // A refusal fails the whole seeding: nothing is half seeded.
        let added = usecases::accounts::add(db, keys, &actor, &account, now_ms())?;
        out.push(format!(
            "account {id}: {name} phone {} code {code} (date of birth 14031985)",
            added.account.phone
        ));
        if let Some(uri) = &added.otpauth_uri {
            out.push(format!("  TOTP: {uri}"));
        }
    }
    let ttl = CallCodeTtl::minutes(config::DEFAULT_CALL_CODE_TTL_MINUTES)?;
    let call_code =
        usecases::accounts::issue_call_code(db, keys, &actor, DEMO_ACCOUNTS[0], ttl, now_ms())?;
    out.push(format!(
        "one-time call code for {} ({} minutes): {}",
        DEMO_ACCOUNTS[0],
        ttl.as_minutes(),
        call_code.as_str()
    ));
    let token_for = |role: Role| -> anyhow::Result<_> {
        let user = ValidUser::parse(
            &format!("demo-{}-{}", role.as_str(), now_ms()),
            role.as_str(),
            &[],
        )?;
        Ok(usecases::users::add(db, &actor, &user, now_ms())?)
    };
    let token = token_for(Role::Agent)?;
    out.push(format!("agent token: {}", token.as_str()));
    let admin_token = token_for(Role::Admin)?;
    out.push(format!(
        "admin token: {}  (log in at {public_url}/login)",
        admin_token.as_str()
    ));
    out.push(
        "try it in a second terminal, where CALLGATE_TWILIO_AUTH_TOKEN is set as for this server:"
            .to_owned(),
    );
    out.push(format!(
        "  CALLGATE_AGENT_TOKEN={} {callgate} call --url {} --from +48601234567",
        token.as_str(),
        shell_word(public_url)
    ));
    out.push(
        "(tokens are shown only now: a later --demo start keeps this data and prints none)"
            .to_owned(),
    );
    out.push("=====================".to_owned());
    Ok(Some(out))
}

/// `word` as one word of a POSIX shell command: as it is when it holds nothing the shell reads
/// specially, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=,@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn shell_words_survive_pasting() {
        assert_eq!(shell_word("/usr/bin/callgate"), "/usr/bin/callgate");
        assert_eq!(shell_word("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(shell_word("/my dir/callgate"), "'/my dir/callgate'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
