//! Settings of the server, resolved from flags and environment variables by `crate::cli`.
//! Debug output redacts the auth tokens, so settings can be logged.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::domain::Region;
use crate::verify::Limits;

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

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
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
            scripts_dir: PathBuf::from("ivr-scripts"),
            sounds_dir: PathBuf::from("sounds"),
            twilio_tokens: TwilioTokens::default(),
            insecure_skip_signature: false,
            region: Region::default(),
            taskrouter_workflow_sid: None,
            limits: Limits::default(),
            max_in_flight: 512,
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
    fn token_list_is_split_on_commas() {
        assert_eq!(TwilioTokens::parse("a, b,,").as_slice(), ["a", "b"]);
        assert!(TwilioTokens::parse(" , ").is_empty());
    }
}
