//! IVR scripts: TOML files in `ivr-scripts/` (see `ivr-scripts/README.md`), read once at start.
//! A script names its prompts in every language it speaks, its department menu and how calls
//! are handed to agents. Loading refuses a script that could break a live line.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The prompts every language of a script must define.
pub const PROMPTS: [&str; 14] = [
    "greeting",
    "ask_code",
    "wrong_code",
    "ask_totp",
    "wrong_totp",
    "menu",
    "invalid_choice",
    "no_input",
    "transferring",
    "agents_unavailable",
    "goodbye_failed",
    "goodbye_no_input",
    "goodbye",
    "technical_error",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    pub name: String,
    pub default_language: String,
    /// Dialed numbers (`To`) this script answers; the script named `default` answers the rest.
    #[serde(default)]
    pub numbers: Vec<String>,
    /// Dialed numbers answered in another language than the default.
    #[serde(default)]
    pub number_languages: BTreeMap<String, String>,
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub handoff: Handoff,
    pub departments: Vec<Department>,
    pub languages: BTreeMap<String, Language>,
    /// Hash of the file's text, so a call records exactly which version it ran.
    #[serde(skip)]
    pub version: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Codes or choices a caller may enter at each step before being told goodbye.
    pub max_attempts: u32,
    /// Silent timeouts at a step before goodbye (the first is answered with a re-prompt).
    pub max_silences: u32,
    pub code_timeout_secs: u32,
    pub totp_timeout_secs: u32,
    pub menu_timeout_secs: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            max_silences: 2,
            code_timeout_secs: 8,
            totp_timeout_secs: 10,
            menu_timeout_secs: 6,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HandoffKind {
    /// `<Enqueue>` to the department's queue (with a TaskRouter workflow when one is set).
    #[default]
    Enqueue,
    /// `<Dial><Client>` with the screen-pop as `<Parameter>`s.
    Client,
    /// `<Dial><Sip>` with the screen-pop as `X-` headers.
    Sip,
}

impl HandoffKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enqueue => "enqueue",
            Self::Client => "client",
            Self::Sip => "sip",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handoff {
    #[serde(default)]
    pub kind: HandoffKind,
    /// Voice SDK identity for `client` hand-offs (a department may name its own).
    pub client_identity: Option<String>,
    /// SIP URI for `sip` hand-offs (a department may name its own).
    pub sip_uri: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Department {
    /// The key the caller presses.
    pub digit: String,
    /// The category the call is filed under (`billing`, `technical`, ...).
    pub category: String,
    /// Queue name for `<Enqueue>`; defaults to the category.
    pub queue: Option<String>,
    /// TaskRouter workflow for this department (`WW...`), overriding the server's setting.
    pub workflow_sid: Option<String>,
    pub client_identity: Option<String>,
    pub sip_uri: Option<String>,
}

impl Department {
    pub fn queue(&self) -> &str {
        self.queue.as_deref().unwrap_or(&self.category)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Language {
    /// A `<Say>` voice. Polish needs an explicit Polly voice on most gateways (`Polly.Ewa`).
    pub voice: Option<String>,
    pub prompts: HashMap<String, String>,
}

impl Script {
    /// Parses and checks one script's text; `origin` names it in errors (`file:line:col`).
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Self> {
        let mut script: Script = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            anyhow::anyhow!("{origin}:{}:{}: {}", at.0, at.1, e.message())
        })?;
        script.version = hex::encode(&Sha256::digest(text.as_bytes())[..6]);
        let problems = script.problems();
        if !problems.is_empty() {
            bail!("{origin}: {}", problems.join("; "));
        }
        Ok(script)
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.languages.contains_key(&self.default_language) {
            problems.push(format!(
                "default_language {:?} has no [languages] entry",
                self.default_language
            ));
        }
        for (number, lang) in &self.number_languages {
            if !self.languages.contains_key(lang) {
                problems.push(format!(
                    "number {number} is answered in {lang:?}, which has no [languages] entry"
                ));
            }
        }
        for (lang, language) in &self.languages {
            for prompt in PROMPTS {
                if language
                    .prompts
                    .get(prompt)
                    .is_none_or(|t| t.trim().is_empty())
                {
                    problems.push(format!("language {lang} lacks prompt {prompt:?}"));
                }
            }
        }
        if self.departments.is_empty() {
            problems.push("the menu needs at least one department".into());
        }
        let mut seen = Vec::new();
        for d in &self.departments {
            if d.digit.len() != 1 || !d.digit.bytes().all(|b| b.is_ascii_digit()) {
                problems.push(format!(
                    "department {} must have a single digit 0-9, not {:?}",
                    d.category, d.digit
                ));
            }
            if seen.contains(&&d.digit) {
                problems.push(format!(
                    "digit {} is used by more than one department",
                    d.digit
                ));
            }
            seen.push(&d.digit);
            if d.category.trim().is_empty() {
                problems.push("a department has an empty category".into());
            }
            match self.handoff.kind {
                HandoffKind::Client
                    if d.client_identity.is_none() && self.handoff.client_identity.is_none() =>
                {
                    problems.push(format!(
                        "department {} has no client_identity for a client hand-off",
                        d.category
                    ));
                }
                HandoffKind::Sip => match d.sip_uri.as_ref().or(self.handoff.sip_uri.as_ref()) {
                    None => problems.push(format!(
                        "department {} has no sip_uri for a sip hand-off",
                        d.category
                    )),
                    Some(uri) if !uri.starts_with("sip:") => {
                        problems.push(format!("sip_uri {uri:?} must start with sip:"));
                    }
                    Some(_) => {}
                },
                _ => {}
            }
            if let Some(ww) = &d.workflow_sid
                && !is_workflow_sid(ww)
            {
                problems.push(format!(
                    "workflow_sid {ww:?} of {} is not a WW... SID",
                    d.category
                ));
            }
        }
        let s = &self.settings;
        if s.max_attempts == 0 || s.max_silences == 0 {
            problems.push("max_attempts and max_silences must be at least 1".into());
        }
        for t in [
            s.code_timeout_secs,
            s.totp_timeout_secs,
            s.menu_timeout_secs,
        ] {
            if !(1..=60).contains(&t) {
                problems.push(format!("timeout {t} s is outside 1-60"));
            }
        }
        problems
    }

    pub fn department(&self, digit: &str) -> Option<&Department> {
        self.departments.iter().find(|d| d.digit == digit)
    }

    /// The language a call to `called` is answered in.
    pub fn language_for(&self, called: Option<&str>) -> &str {
        called
            .and_then(|to| self.number_languages.get(to))
            .map_or(&self.default_language, |l| l)
    }

    pub fn prompt_text(&self, language: &str, prompt: &str) -> &str {
        self.languages
            .get(language)
            .or_else(|| self.languages.get(&self.default_language))
            .and_then(|l| l.prompts.get(prompt))
            .map_or("", |t| t.as_str())
    }

    pub fn voice(&self, language: &str) -> Option<&str> {
        self.languages
            .get(language)
            .and_then(|l| l.voice.as_deref())
    }
}

/// `WW` followed by 32 hex digits.
pub fn is_workflow_sid(s: &str) -> bool {
    s.len() == 34 && s.starts_with("WW") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

/// All scripts, by name, with the dialed numbers they answer.
#[derive(Debug, Clone)]
pub struct ScriptSet {
    scripts: HashMap<String, Arc<Script>>,
    by_number: HashMap<String, String>,
}

impl ScriptSet {
    /// Reads every `*.toml` in `dir`. One of them must be named `default`. Every problem in
    /// every file is reported, not only the first.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("reading scripts directory {}", dir.display()))?;
        let mut paths: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        let mut scripts = Vec::new();
        let mut errors = Vec::new();
        for path in &paths {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            match Script::parse(&text, &path.display().to_string()) {
                Ok(s) => scripts.push(s),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            bail!("invalid IVR scripts:\n  {}", errors.join("\n  "));
        }
        Self::from_scripts(scripts).with_context(|| format!("scripts in {}", dir.display()))
    }

    pub fn from_scripts(list: Vec<Script>) -> anyhow::Result<Self> {
        let mut scripts = HashMap::new();
        let mut by_number = HashMap::new();
        for script in list {
            for number in &script.numbers {
                if let Some(other) = by_number.insert(number.clone(), script.name.clone()) {
                    bail!(
                        "number {number} is bound to both {other} and {}",
                        script.name
                    );
                }
            }
            if scripts.contains_key(&script.name) {
                bail!("two scripts are named {}", script.name);
            }
            scripts.insert(script.name.clone(), Arc::new(script));
        }
        if !scripts.contains_key("default") {
            bail!("no script is named \"default\"; it answers every number no other script binds");
        }
        Ok(Self { scripts, by_number })
    }

    /// The script that answers a call to `called`.
    pub fn for_number(&self, called: Option<&str>) -> Arc<Script> {
        called
            .and_then(|to| self.by_number.get(to))
            .and_then(|name| self.scripts.get(name))
            .unwrap_or_else(|| self.default_script())
            .clone()
    }

    /// A script by name, for a call already in progress; the default if it has gone.
    pub fn by_name(&self, name: &str) -> Arc<Script> {
        self.scripts
            .get(name)
            .unwrap_or_else(|| self.default_script())
            .clone()
    }

    fn default_script(&self) -> &Arc<Script> {
        // `from_scripts` refuses a set without a default, so the fallback is never taken.
        self.scripts
            .get("default")
            .or_else(|| self.scripts.values().next())
            .unwrap_or_else(|| unreachable!("a ScriptSet always holds a default script"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../ivr-scripts/default.toml");

    #[test]
    fn shipped_default_script_loads() {
        let s = Script::parse(SHIPPED, "default.toml").unwrap();
        assert_eq!(s.name, "default");
        assert!(s.languages.contains_key("pl-PL") && s.languages.contains_key("en-US"));
        assert!(s.departments.len() >= 3);
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = Script::parse("name = \"x\"\ndefault_language = \n", "bad.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("bad.toml:2:"), "{err}");
    }

    #[test]
    fn every_problem_is_listed() {
        let broken = SHIPPED
            .replacen("digit = \"2\"", "digit = \"1\"", 1)
            .replacen("greeting =", "greeting_typo =", 1);
        let err = Script::parse(&broken, "x.toml").unwrap_err().to_string();
        assert!(
            err.contains("digit 1 is used by more than one department"),
            "{err}"
        );
        assert!(err.contains("lacks prompt \"greeting\""), "{err}");
    }

    #[test]
    fn workflow_sids() {
        assert!(is_workflow_sid("WW0123456789abcdef0123456789abcdef"));
        assert!(!is_workflow_sid("WA0123456789abcdef0123456789abcdef"));
        assert!(!is_workflow_sid("WW123"));
    }
}
