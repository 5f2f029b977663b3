//! The script file as written: TOML deserialized with the positions of every name, so the
//! checker can point at `file:line:col`. Nothing here decides what is valid; `check` does.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type Name = Spanned<String>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScript {
    pub name: Name,
    #[serde(default)]
    pub description: Option<String>,
    /// The step every call starts at.
    pub start: Name,
    /// Every language the script speaks; each prompt needs a text in each.
    pub languages: Vec<Name>,
    /// The language a call starts in (a `language` step may change it).
    pub default_language: Name,
    /// Dialed numbers (`To`, E.164) this script answers; `default` answers every other.
    #[serde(default)]
    pub numbers: Vec<Name>,
    /// Dialed numbers answered in another language than the default.
    #[serde(default)]
    pub number_languages: BTreeMap<Name, Name>,
    /// `<Say voice=...>` per language (Polish needs `Polly.Ewa` or similar on most gateways).
    #[serde(default)]
    pub voices: BTreeMap<Name, String>,
    /// Defaults for every input step.
    #[serde(default)]
    pub defaults: RawInput,
    #[serde(default)]
    pub policy: RawPolicy,
    #[serde(default)]
    pub departments: BTreeMap<Name, RawDepartment>,
    /// Prompt name → language → text.
    #[serde(default)]
    pub prompts: BTreeMap<Name, BTreeMap<Name, Spanned<String>>>,
    /// Prompt name → file under `sounds/<language>/` that must be played for it.
    #[serde(default)]
    pub sounds: BTreeMap<Name, Name>,
    #[serde(default)]
    pub steps: BTreeMap<Name, RawStep>,
}

/// Settings of an input step (menu, language, verify); `[defaults]` holds the script's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInput {
    pub timeout_secs: Option<Spanned<u32>>,
    pub max_attempts: Option<Spanned<u32>>,
    pub max_silences: Option<Spanned<u32>>,
    /// Said before the question again after a wrong entry.
    pub retry_prompt: Option<Name>,
    /// Said before the question again after a silence.
    pub no_input_prompt: Option<Name>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Overrides of the server's lockout limits for calls on this script.
    #[serde(default)]
    pub lockout: RawLockout,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLockout {
    pub account_max_failures: Option<Spanned<u32>>,
    pub account_lock_minutes: Option<Spanned<u32>>,
    pub number_max_failures: Option<Spanned<u32>>,
    pub number_lock_minutes: Option<Spanned<u32>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDepartment {
    /// `none`, `low`, `medium` or `high`: the level a caller needs to be handed to it.
    #[serde(default)]
    pub requires: Option<Name>,
    /// Queue for `<Enqueue>`; defaults to the department's name.
    pub queue: Option<String>,
    /// TaskRouter workflow (`WW...`) for `<Enqueue workflowSid>` with the pop as `<Task>`.
    pub workflow_sid: Option<Name>,
    /// Voice SDK identity for `via = "client"`.
    pub client_identity: Option<Name>,
    /// SIP URI for `via = "sip"`.
    pub sip_uri: Option<Name>,
    /// E.164 number for `via = "number"`.
    pub number: Option<Name>,
    /// Language → phrases a caller may say for this department (speech menus).
    #[serde(default)]
    pub phrases: BTreeMap<Name, Vec<String>>,
}

/// One step. A flat table rather than a tagged enum so positions survive deserialization; the
/// checker says which fields a kind takes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub kind: Option<Name>,
    pub prompt: Option<Name>,
    pub next: Option<Name>,
    // input steps (menu, language, verify); unset ones come from `[defaults]`
    pub timeout_secs: Option<Spanned<u32>>,
    pub max_attempts: Option<Spanned<u32>>,
    pub max_silences: Option<Spanned<u32>>,
    pub retry_prompt: Option<Name>,
    pub no_input_prompt: Option<Name>,
    /// menu: key → step; language: key → language.
    #[serde(default)]
    pub options: BTreeMap<Name, Name>,
    pub on_failure: Option<Name>,
    pub on_no_input: Option<Name>,
    // menu: listen for speech as well as keys
    pub speech: Option<Spanned<bool>>,
    pub min_confidence: Option<Spanned<f64>>,
    pub min_gateway_confidence: Option<Spanned<f64>>,
    // verify
    pub factor: Option<Name>,
    pub question: Option<Name>,
    pub digits: Option<Spanned<u8>>,
    pub skip_at_level: Option<Name>,
    pub on_success: Option<Name>,
    pub on_lockout: Option<Name>,
    pub on_unavailable: Option<Name>,
    // department
    pub department: Option<Name>,
    pub step_up: Option<Name>,
    pub on_insufficient: Option<Name>,
    // hand-off
    pub via: Option<Name>,
    pub pop: Option<Vec<Name>>,
    pub on_completed: Option<Name>,
    pub on_unanswered: Option<Name>,
    // goodbye
    pub reason: Option<Name>,
}

impl RawStep {
    /// The step's input settings, each falling back to the script's `[defaults]`.
    pub fn input(&self, defaults: &RawInput) -> RawInput {
        RawInput {
            timeout_secs: self.timeout_secs.clone().or(defaults.timeout_secs.clone()),
            max_attempts: self.max_attempts.clone().or(defaults.max_attempts.clone()),
            max_silences: self.max_silences.clone().or(defaults.max_silences.clone()),
            retry_prompt: self.retry_prompt.clone().or(defaults.retry_prompt.clone()),
            no_input_prompt: self
                .no_input_prompt
                .clone()
                .or(defaults.no_input_prompt.clone()),
        }
    }
}
