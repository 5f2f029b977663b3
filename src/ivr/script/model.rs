//! A checked script: every reference resolved, every default applied. The flow engine runs it
//! and never has to wonder whether a step or prompt exists.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::verify::AssuranceLevel;

#[derive(Debug, Clone, Serialize)]
pub struct Script {
    pub name: String,
    pub description: Option<String>,
    /// The version number in the database (0 for a script read straight from a file).
    pub version: i64,
    /// The first 12 hex digits of the source's SHA-256: what a call records it ran.
    pub sha: String,
    pub start: String,
    pub languages: Vec<String>,
    pub default_language: String,
    pub numbers: Vec<String>,
    pub number_languages: BTreeMap<String, String>,
    pub voices: BTreeMap<String, String>,
    pub lockout: LockoutPolicy,
    pub departments: BTreeMap<String, Department>,
    /// Prompt → language → text.
    pub prompts: BTreeMap<String, BTreeMap<String, String>>,
    /// Prompt → file under `sounds/<language>/` that is played for it.
    pub sounds: BTreeMap<String, String>,
    pub steps: BTreeMap<String, Step>,
    /// The speech classifier seeded from the departments' phrases.
    #[serde(skip)]
    pub routing: crate::ivr::routing::Model,
    /// Where each step is defined in the source (line, column), for the editor and the graph.
    #[serde(skip)]
    pub positions: BTreeMap<String, (usize, usize)>,
}

/// Overrides of the server's lockout limits; `None` keeps the server's.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LockoutPolicy {
    pub account_max_failures: Option<u32>,
    pub account_lock_minutes: Option<u32>,
    pub number_max_failures: Option<u32>,
    pub number_lock_minutes: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Department {
    pub name: String,
    pub requires: AssuranceLevel,
    pub queue: String,
    pub workflow_sid: Option<String>,
    pub client_identity: Option<String>,
    pub sip_uri: Option<crate::domain::SipUri>,
    pub number: Option<String>,
    /// Language → phrases callers say for this department (speech menus and their hints).
    pub phrases: BTreeMap<String, Vec<String>>,
}

/// A menu that listens for speech as well as keys.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SpeechMenu {
    /// Below this classifier probability the caller is asked again and may use the keys.
    pub min_confidence: f64,
    /// Below this recognition confidence of the gateway's own (`Confidence`) the transcript is
    /// not routed, however sure the classifier is: the caller is asked again, as when unsure. A
    /// gateway that sends no confidence leaves the classifier alone to decide.
    pub min_gateway_confidence: f64,
}

/// `min_gateway_confidence` of a speech menu that sets none: a transcript the recogniser itself
/// rates below even odds is too likely misheard to route a call on, while clear speech
/// (typically 0.8 and above on Twilio) passes.
pub const DEFAULT_MIN_GATEWAY_CONFIDENCE: f64 = 0.5;

/// Settings of a step that waits for keys.
#[derive(Debug, Clone, Serialize)]
pub struct Input {
    pub timeout_secs: u32,
    pub max_attempts: u32,
    pub max_silences: u32,
    pub retry_prompt: Option<String>,
    pub no_input_prompt: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// `<Enqueue>` to the department's queue (with `<Task>` when a workflow is set).
    Enqueue,
    /// `<Dial><Client>` with the screen-pop as `<Parameter>`s.
    Client,
    /// `<Dial><Sip>` with the screen-pop as `X-` headers.
    Sip,
    /// `<Dial><Number>`: a plain phone line; the agent opens the pop by its URL.
    Number,
}

impl Via {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enqueue" | "queue" => Some(Self::Enqueue),
            "client" => Some(Self::Client),
            "sip" => Some(Self::Sip),
            "number" => Some(Self::Number),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enqueue => "enqueue",
            Self::Client => "client",
            Self::Sip => "sip",
            Self::Number => "number",
        }
    }
}

/// What the hand-off carries of the screen-pop besides the level, which it always carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PopFields {
    pub account: bool,
    pub attributes: bool,
    pub factors: bool,
    pub risk: bool,
}

impl PopFields {
    pub const ALL: Self = Self {
        account: true,
        attributes: true,
        factors: true,
        risk: true,
    };
    pub const NAMES: [&'static str; 4] = ["account", "attributes", "factors", "risk"];
}

/// What a verify step asks the caller for. (What a passed challenge proves is a
/// `crate::verify::Factor`: a code proves `account_code` or `call_code`, perhaps `caller_id`.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Challenge {
    /// The account code or a one-time call code (one entry field for both).
    Code,
    /// The authenticator app's six digits.
    Totp,
    /// A knowledge question, e.g. date of birth as DDMMYYYY.
    Knowledge { question: String, digits: u8 },
}

impl Challenge {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Code => "code",
            Self::Totp => "totp",
            Self::Knowledge { .. } => "knowledge",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Step {
    /// Says or plays a prompt, then goes on.
    Say { prompt: String, next: String },
    /// The caller picks a language with a key; the prompt is said in every language offered.
    Language {
        prompt: String,
        /// Key → language.
        options: BTreeMap<String, String>,
        next: String,
        input: Input,
        on_failure: String,
        on_no_input: String,
    },
    /// Key → step.
    Menu {
        prompt: String,
        options: BTreeMap<String, String>,
        speech: Option<SpeechMenu>,
        input: Input,
        on_failure: String,
        on_no_input: String,
    },
    /// Asks for a factor and checks it.
    Verify {
        factor: Challenge,
        prompt: String,
        input: Input,
        /// Skipped (straight to `on_success`) when the call is already at this level.
        skip_at_level: Option<AssuranceLevel>,
        on_success: String,
        on_failure: String,
        /// Taken as soon as the calling number is locked out (an account lock is never
        /// revealed); unset, a locked number just keeps failing until `on_failure`.
        on_lockout: Option<String>,
        /// Taken when the factor cannot be asked: no account identified yet, or the account
        /// has no authenticator or no answer to the question.
        on_unavailable: Option<String>,
        on_no_input: String,
    },
    /// Files the call under a department, stepping up verification if the department needs it.
    Department {
        department: String,
        next: String,
        /// A verify step that raises the level; on its success the call comes back here.
        step_up: Option<String>,
        on_insufficient: Option<String>,
    },
    /// Hands the call to an agent with the screen-pop.
    Handoff {
        prompt: Option<String>,
        via: Via,
        pop: PopFields,
        /// After the agent's conversation (the `<Dial>`/`<Enqueue>` ended as answered).
        on_completed: String,
        /// Nobody answered, the queue was left, the line was busy.
        on_unanswered: String,
    },
    /// Says a prompt and hangs up.
    Goodbye { prompt: String, reason: String },
}

impl Step {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Say { .. } => "say",
            Self::Language { .. } => "language",
            Self::Menu { .. } => "menu",
            Self::Verify { .. } => "verify",
            Self::Department { .. } => "department",
            Self::Handoff { .. } => "handoff",
            Self::Goodbye { .. } => "goodbye",
        }
    }

    pub fn input(&self) -> Option<&Input> {
        match self {
            Self::Language { input, .. }
            | Self::Menu { input, .. }
            | Self::Verify { input, .. } => Some(input),
            _ => None,
        }
    }

    /// Every step this one can lead to, with the exit's name, for the checker and the graph.
    pub fn exits(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = Vec::new();
        match self {
            Self::Say { next, .. } => out.push(("next", next)),
            Self::Language {
                next,
                on_failure,
                on_no_input,
                ..
            } => {
                out.push(("next", next));
                out.push(("on_failure", on_failure));
                out.push(("on_no_input", on_no_input));
            }
            Self::Menu {
                options,
                on_failure,
                on_no_input,
                ..
            } => {
                for (key, step) in options {
                    out.push((key, step));
                }
                out.push(("on_failure", on_failure));
                out.push(("on_no_input", on_no_input));
            }
            Self::Verify {
                on_success,
                on_failure,
                on_lockout,
                on_unavailable,
                on_no_input,
                ..
            } => {
                out.push(("on_success", on_success));
                out.push(("on_failure", on_failure));
                if let Some(s) = on_lockout {
                    out.push(("on_lockout", s));
                }
                if let Some(s) = on_unavailable {
                    out.push(("on_unavailable", s));
                }
                out.push(("on_no_input", on_no_input));
            }
            Self::Department {
                next,
                step_up,
                on_insufficient,
                ..
            } => {
                out.push(("next", next));
                if let Some(s) = step_up {
                    out.push(("step_up", s));
                }
                if let Some(s) = on_insufficient {
                    out.push(("on_insufficient", s));
                }
            }
            Self::Handoff {
                on_completed,
                on_unanswered,
                ..
            } => {
                out.push(("on_completed", on_completed));
                out.push(("on_unanswered", on_unanswered));
            }
            Self::Goodbye { .. } => {}
        }
        out
    }
}

/// The prompt said when callgate cannot go on (database down); every script must have it.
pub const TECHNICAL_ERROR_PROMPT: &str = "technical_error";

impl LockoutPolicy {
    /// The server's limits with this script's overrides applied.
    pub fn apply(&self, server: &crate::verify::Limits) -> crate::verify::Limits {
        let minutes = |m: u32| std::time::Duration::from_secs(u64::from(m) * 60);
        let mut l = server.clone();
        if let Some(v) = self.account_max_failures {
            l.account_max_failures = v;
        }
        if let Some(v) = self.account_lock_minutes {
            l.account_lock = minutes(v);
        }
        if let Some(v) = self.number_max_failures {
            l.number_max_failures = v;
        }
        if let Some(v) = self.number_lock_minutes {
            l.number_lock = minutes(v);
        }
        l
    }
}

impl Script {
    /// The language a call to `called` starts in.
    pub fn language_for(&self, called: Option<&str>) -> &str {
        called
            .and_then(|to| self.number_languages.get(to))
            .map_or(&self.default_language, |l| l)
    }

    pub fn prompt_text(&self, language: &str, prompt: &str) -> &str {
        self.prompts
            .get(prompt)
            .and_then(|texts| {
                texts
                    .get(language)
                    .or_else(|| texts.get(&self.default_language))
            })
            .map_or("", String::as_str)
    }

    pub fn voice(&self, language: &str) -> Option<&str> {
        self.voices.get(language).map(String::as_str)
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.get(name)
    }

    /// The departments a menu's options lead to directly (option key, department, target step).
    pub fn menu_departments<'s>(
        &'s self,
        options: &'s BTreeMap<String, String>,
    ) -> Vec<(&'s str, &'s str, &'s str)> {
        options
            .iter()
            .filter_map(|(key, to)| match self.steps.get(to) {
                Some(Step::Department { department, .. }) => {
                    Some((key.as_str(), department.as_str(), to.as_str()))
                }
                _ => None,
            })
            .collect()
    }

    /// Recognition hints for a speech menu: its departments' phrases in `language`.
    pub fn speech_hints(&self, options: &BTreeMap<String, String>, language: &str) -> String {
        let mut hints: Vec<&str> = Vec::new();
        for (_, dept, _) in self.menu_departments(options) {
            if let Some(d) = self.departments.get(dept) {
                hints.extend(
                    d.phrases
                        .get(language)
                        .into_iter()
                        .flatten()
                        .map(String::as_str),
                );
            }
        }
        hints.truncate(100);
        hints.join(", ")
    }
}
