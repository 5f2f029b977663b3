//! Settings of the server, resolved from flags and environment variables by `crate::cli`.
//! Debug output redacts the auth tokens, so settings can be logged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::Region;
use crate::store::privacy::Retention;
use crate::verify::Limits;

// Every setting's default, declared once: the flags of `crate::cli` (their `--help` shows these
// values), `Settings::new` and the commands that share a setting with the server all read them
// from here. The guessing limits' defaults are `crate::verify::Limits::DEFAULT`.

/// Where the server listens, and where `callgate call` and `callgate loadtest` look for it.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The data directory (database and key file) of every command.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// The script files imported at start, and what `callgate script check` and `export` use.
pub const DEFAULT_SCRIPTS_DIR: &str = "./ivr-scripts";
/// The recordings the scripts may play.
pub const DEFAULT_SOUNDS_DIR: &str = "./sounds";
/// Requests served at once; beyond it, 503 at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;
/// A screen-pop URL opens for 10 minutes after the hand-off.
pub const DEFAULT_POP_URL_TTL: Duration = Duration::from_secs(600);
/// How long a one-time call code stays valid, in minutes (`callgate account call-code --ttl`,
/// and the demo's).
pub const DEFAULT_CALL_CODE_TTL_MINUTES: u32 = 30;
/// How long each kind of personal record is kept, in days (0: for ever).
pub const DEFAULT_RETENTION: Retention = Retention {
    journeys_days: 90,
    notes_days: 365,
    call_details_days: 365,
    events_days: 30,
    audit_days: 1095,
};
/// Twilio sends a webhook's few hundred bytes at once; a body still arriving after this long is
/// someone holding the server, not Twilio.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Unfinished request bodies one client address may have at once. Twilio's bodies arrive at
/// once (and from many addresses), so it never comes near this.
pub const DEFAULT_MAX_BODY_READS_PER_ADDRESS: usize = 64;

#[derive(Clone, Default)]
pub struct TwilioTokens(Vec<String>);

impl TwilioTokens {
    /// Reads `CALLGATE_TWILIO_AUTH_TOKEN`: one token, or several separated by commas while a
    /// token is being rotated.
    pub fn parse(list: &str) -> Self {
        Self(
            list.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl std::fmt::Debug for TwilioTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} token(s), redacted]", self.0.len())
    }
}

/// Where each hand-off's screen-pop is POSTed (`CALLGATE_CRM_WEBHOOK_URL`), signed with the
/// shared secret (`CALLGATE_CRM_WEBHOOK_SECRET`), which Debug output never shows.
#[derive(Clone)]
pub struct CrmWebhook {
    pub url: String,
    pub secret: zeroize::Zeroizing<String>,
    /// The first retry waits this long; each further one twice as long as the one before.
    pub retry_base: Duration,
    /// Attempts in all before a delivery is given up.
    pub max_attempts: u32,
    /// How long deliveries a server claimed are its alone without it renewing the claim
    /// (`CALLGATE_CRM_LEASE`): how long a delivery held by a server that died waits for
    /// another. See `crate::agent::crm`.
    pub lease: Duration,
}

/// The CRM delivery lease's default: a dead node's deliveries wait at most this long for
/// another node (a live one renews its claim every third of it, however long a CRM takes).
pub const DEFAULT_CRM_LEASE: Duration = Duration::from_secs(15);
/// The shortest lease taken: below it the renewals would be most of the task's work.
pub const MIN_CRM_LEASE: Duration = Duration::from_secs(1);

impl CrmWebhook {
    pub fn new(url: &str, secret: &str) -> Self {
        Self {
            url: url.to_owned(),
            secret: zeroize::Zeroizing::new(secret.to_owned()),
            retry_base: Duration::from_secs(1),
            max_attempts: 12,
            lease: DEFAULT_CRM_LEASE,
        }
    }
}

impl std::fmt::Debug for CrmWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmWebhook")
            .field("url", &self.url)
            .field("secret", &"[redacted]")
            .field("retry_base", &self.retry_base)
            .field("max_attempts", &self.max_attempts)
            .field("lease", &self.lease)
            .finish()
    }
}

/// Reads `CALLGATE_CRM_FRAME_ORIGINS`: origins (`https://crm.example.com`) allowed to show
/// `/pop/{token}` in a frame, comma-separated. Anything but a bare http(s) origin is refused,
/// since it goes into the Content-Security-Policy header.
pub fn parse_frame_origins(list: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let url = url::Url::parse(part)
            .map_err(|_| anyhow::anyhow!("CRM frame origin {part:?} is not a URL"))?;
        let origin = url.origin().ascii_serialization();
        let bare = matches!(url.scheme(), "http" | "https")
            && part.trim_end_matches('/') == origin
            && url.username().is_empty();
        if !bare {
            anyhow::bail!(
                "CRM frame origin {part:?} must be a bare origin such as https://crm.example.com"
            );
        }
        out.push(origin);
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// PostgreSQL instead of the data directory's SQLite file (`CALLGATE_DATABASE_URL`).
    pub database_url: Option<crate::store::DatabaseUrl>,
    /// The base URL Twilio is configured with, without a trailing slash.
    pub public_url: String,
    pub scripts_dir: PathBuf,
    pub sounds_dir: PathBuf,
    pub twilio_tokens: TwilioTokens,
    /// Accept unsigned webhooks. Only for local experiments; logged loudly.
    pub insecure_skip_signature: bool,
    pub region: Region,
    pub taskrouter_workflow_sid: Option<String>,
    pub limits: Limits,
    /// Requests served at once; beyond it the server answers 503 at once (Twilio then tries the
    /// number's fallback URL) rather than letting every caller's wait grow.
    pub max_in_flight: usize,
    /// How long a request's body may take to arrive; a slower one gets 408. Bodies are read
    /// before a request takes one of `max_in_flight`'s places, so a slow sender holds none.
    pub body_read_timeout: Duration,
    /// Request bodies one client address may be sending at once (0: no cap); beyond it, 429 at
    /// once. Behind a proxy every request comes from the proxy's address: see README.
    pub max_body_reads_per_address: usize,
    /// The CRM webhook, if one is configured.
    pub crm_webhook: Option<CrmWebhook>,
    /// Origins allowed to frame `/pop/{token}` (a CRM, Flex's CRM container).
    pub crm_frame_origins: Vec<String>,
    /// How long a screen-pop URL can be opened after the hand-off.
    pub pop_url_ttl: Duration,
    /// How long each kind of personal record is kept (the daily purge enforces it).
    pub retention: Retention,
    /// The size the database may grow to; past it calls hear the apology, as on a full disk.
    pub max_database_mb: Option<u64>,
    /// Test accounts (the demo accounts among them) answer calls on this server: set by
    /// `serve --demo` only. Anywhere else a test account's code is an unknown code, so an
    /// account whose code is printed in the README can never verify a real call.
    pub test_accounts_answer: bool,
}

impl Settings {
    pub fn twilio_auth_tokens(&self) -> &[String] {
        self.twilio_tokens.as_slice()
    }

    /// Settings for a server on `listen` with its data in `data_dir`; the rest at defaults.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            public_url: format!("http://{listen}"),
            data_dir,
            database_url: None,
            scripts_dir: PathBuf::from(DEFAULT_SCRIPTS_DIR),
            sounds_dir: PathBuf::from(DEFAULT_SOUNDS_DIR),
            twilio_tokens: TwilioTokens::default(),
            insecure_skip_signature: false,
            region: Region::default(),
            taskrouter_workflow_sid: None,
            limits: Limits::DEFAULT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_body_reads_per_address: DEFAULT_MAX_BODY_READS_PER_ADDRESS,
            crm_webhook: None,
            crm_frame_origins: Vec::new(),
            pop_url_ttl: DEFAULT_POP_URL_TTL,
            retention: DEFAULT_RETENTION,
            max_database_mb: None,
            test_accounts_answer: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_tokens() {
        let mut s = Settings::new("127.0.0.1:0".parse().unwrap(), "d".into());
        s.twilio_tokens = TwilioTokens::parse("secret-one, secret-two");
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("secret-one") && shown.contains("2 token(s)"),
            "{shown}"
        );
    }

    #[test]
    fn debug_redacts_the_crm_secret() {
        let mut s = Settings::new("127.0.0.1:0".parse().unwrap(), "d".into());
        s.crm_webhook = Some(CrmWebhook::new(
            "https://crm.example/hook",
            "hook-secret-xyz",
        ));
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hook-secret-xyz") && shown.contains("crm.example"),
            "{shown}"
        );
    }

    #[test]
    fn frame_origins_must_be_bare_origins() {
        assert_eq!(
            parse_frame_origins("https://crm.example.com, http://localhost:3000/").unwrap(),
            ["https://crm.example.com", "http://localhost:3000"]
        );
        for bad in [
            "crm.example.com",
            "https://crm.example.com/path",
            "https://a.example; script-src *",
            "javascript:alert(1)",
            "https://u@crm.example.com",
        ] {
            assert!(parse_frame_origins(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_list_is_split_on_commas() {
        assert_eq!(TwilioTokens::parse("a, b,,").as_slice(), ["a", "b"]);
        assert!(TwilioTokens::parse(" , ").is_empty());
    }
}
