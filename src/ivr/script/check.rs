//! The script checker, like a compiler: it turns the text into a [`Script`] or lists every
//! problem with its line and column. `callgate script check`, the admin API and the editor's
//! live check all run this one function.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::model::{
    Challenge, Department, Input, LockoutPolicy, PopFields, Script, Step, TECHNICAL_ERROR_PROMPT,
    Via,
};
use super::raw::{Name, RawInput, RawScript, RawStep};
use crate::domain::{SipUri, is_identifier};
use crate::verify::{AssuranceLevel, Factor, Factors};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One thing wrong with a script, where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    pub severity: Severity,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Problem {
    pub fn render(&self, origin: &str) -> String {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        format!(
            "{origin}:{}:{}: {sev}: {}",
            self.line, self.col, self.message
        )
    }
}

/// What the checker may look at besides the text.
#[derive(Debug, Clone, Copy, Default)]
pub struct Env<'a> {
    /// `sounds/`: referenced recordings must exist there and be WAV or MP3.
    pub sounds_dir: Option<&'a Path>,
}

/// The outcome of a check: the script when there is no error, and every problem found.
#[derive(Debug)]
pub struct CheckReport {
    pub script: Option<Script>,
    pub problems: Vec<Problem>,
}

impl CheckReport {
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }
}

const MAX_STEPS: usize = 500;

pub fn check(text: &str, env: Env<'_>) -> CheckReport {
    let mut c = Checker {
        text,
        problems: Vec::new(),
    };
    let raw: RawScript = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            c.error(e.span().unwrap_or(0..0), e.message().to_owned());
            return c.finish(None);
        }
    };
    let script = c.compile(&raw, env);
    let script = script.filter(|_| !c.problems.iter().any(|p| p.severity == Severity::Error));
    if let Some(script) = &script {
        c.analyse(script);
    }
    let ok = !c.problems.iter().any(|p| p.severity == Severity::Error);
    c.finish(script.filter(|_| ok))
}

struct Checker<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn finish(mut self, script: Option<Script>) -> CheckReport {
        self.problems.sort_by_key(|p| (p.line, p.col, p.severity));
        self.problems.dedup();
        CheckReport {
            script,
            problems: self.problems,
        }
    }

    fn pos(&self, span: Range<usize>) -> (usize, usize) {
        line_col(self.text, span.start)
    }

    fn push(&mut self, severity: Severity, span: Range<usize>, message: String) {
        let (line, col) = self.pos(span);
        self.problems.push(Problem {
            severity,
            line,
            col,
            message,
        });
    }

    fn error(&mut self, span: Range<usize>, message: String) {
        self.push(Severity::Error, span, message);
    }

    fn warning(&mut self, span: Range<usize>, message: String) {
        self.push(Severity::Warning, span, message);
    }

    fn compile(&mut self, raw: &RawScript, env: Env<'_>) -> Option<Script> {
        let name = raw.name.get_ref().clone();
        if !is_identifier(&name) {
            self.error(
                raw.name.span(),
                format!(
                    "script name {name:?} must be lowercase letters, digits, - or _ (at most 40)"
                ),
            );
        }
        let languages: Vec<String> = raw.languages.iter().map(|l| l.get_ref().clone()).collect();
        if languages.is_empty() {
            self.error(0..0, "`languages` must list at least one language".into());
        }
        let mut seen = HashSet::new();
        for l in &raw.languages {
            if !is_language_tag(l.get_ref()) {
                self.error(
                    l.span(),
                    format!(
                        "{:?} is not a language tag like pl-PL or en-US",
                        l.get_ref()
                    ),
                );
            }
            if !seen.insert(l.get_ref()) {
                self.error(
                    l.span(),
                    format!("language {} is listed twice", l.get_ref()),
                );
            }
        }
        self.known_language(&languages, &raw.default_language, "default_language");
        let mut numbers = Vec::new();
        for n in &raw.numbers {
            if !is_e164(n.get_ref()) {
                self.error(
                    n.span(),
                    format!(
                        "number {:?} must be in E.164 form, like +48221234567",
                        n.get_ref()
                    ),
                );
            }
            numbers.push(n.get_ref().clone());
        }
        let mut number_languages = BTreeMap::new();
        for (number, lang) in &raw.number_languages {
            if !is_e164(number.get_ref()) {
                self.error(
                    number.span(),
                    format!("number {:?} must be in E.164 form", number.get_ref()),
                );
            }
            self.known_language(&languages, lang, "number_languages");
            number_languages.insert(number.get_ref().clone(), lang.get_ref().clone());
        }
        let mut voices = BTreeMap::new();
        for (lang, voice) in &raw.voices {
            self.known_language(&languages, lang, "voices");
            voices.insert(lang.get_ref().clone(), voice.clone());
        }
        let lockout = self.lockout(raw);
        let departments = self.departments(raw);
        let prompts = self.prompts(raw, &languages);
        let sounds = self.sounds(raw, &prompts, &languages, env);
        if !prompts.contains_key(TECHNICAL_ERROR_PROMPT) {
            self.error(
                0..0,
                format!(
                    "prompt {TECHNICAL_ERROR_PROMPT:?} is missing: callers hear it when callgate cannot go on"
                ),
            );
        }

        if raw.steps.len() > MAX_STEPS {
            self.error(0..0, format!("a script may have at most {MAX_STEPS} steps"));
        }
        let step_names: HashSet<&str> = raw.steps.keys().map(|k| k.get_ref().as_str()).collect();
        let step_kinds: HashMap<&str, RawStepKind<'_>> = raw
            .steps
            .iter()
            .map(|(k, st)| {
                let kind = match (
                    st.kind.as_ref().map(|k| k.get_ref().as_str()),
                    &st.department,
                ) {
                    (Some("department"), Some(d)) => RawStepKind::Department(d.get_ref().as_str()),
                    _ => RawStepKind::Other,
                };
                (k.get_ref().as_str(), kind)
            })
            .collect();
        let mut steps = BTreeMap::new();
        let mut positions = BTreeMap::new();
        for (key, step) in &raw.steps {
            let n = key.get_ref();
            if !is_identifier(n) || RESERVED_STEPS.contains(&n.as_str()) {
                self.error(
                    key.span(),
                    format!(
                        "step name {n:?} must be lowercase letters, digits, - or _ (at most 40) and not one of {RESERVED_STEPS:?}"
                    ),
                );
            }
            positions.insert(n.clone(), self.pos(key.span()));
            let ctx = StepCtx {
                name: key,
                step_kinds: &step_kinds,
                raw: step,
                defaults: &raw.defaults,
                steps: &step_names,
                prompts: &prompts,
                departments: &departments,
                languages: &languages,
            };
            if let Some(compiled) = self.step(&ctx) {
                steps.insert(n.clone(), compiled);
            }
        }
        if !step_names.contains(raw.start.get_ref().as_str()) {
            self.error(
                raw.start.span(),
                format!(
                    "start step {:?} is not defined under [steps]",
                    raw.start.get_ref()
                ),
            );
        }
        // Prompts no step uses: probably a typo somewhere. Read from the raw steps, so a step
        // with another error does not make its prompts look unused.
        let mut used_prompts: HashSet<&str> = raw
            .steps
            .values()
            .flat_map(|st| [&st.prompt, &st.retry_prompt, &st.no_input_prompt])
            .chain([&raw.defaults.retry_prompt, &raw.defaults.no_input_prompt])
            .flatten()
            .map(|p| p.get_ref().as_str())
            .collect();
        used_prompts.insert(TECHNICAL_ERROR_PROMPT);
        for key in raw.prompts.keys() {
            if !used_prompts.contains(key.get_ref().as_str()) {
                self.warning(
                    key.span(),
                    format!("prompt {:?} is not used by any step", key.get_ref()),
                );
            }
        }
        let sha = hex::encode(&Sha256::digest(self.text.as_bytes())[..6]);
        let mut routing = crate::ivr::routing::Model::default();
        for d in departments.values() {
            for phrase in d.phrases.values().flatten() {
                routing.learn(&d.name, phrase);
            }
        }
        Some(Script {
            name,
            description: raw.description.clone(),
            version: 0,
            sha,
            start: raw.start.get_ref().clone(),
            languages,
            default_language: raw.default_language.get_ref().clone(),
            numbers,
            number_languages,
            voices,
            lockout,
            departments,
            prompts,
            sounds,
            steps,
            routing,
            positions,
        })
    }

    fn known_language(&mut self, languages: &[String], lang: &Name, field: &str) {
        if !languages.iter().any(|l| l == lang.get_ref()) {
            self.error(
                lang.span(),
                format!(
                    "{field}: language {:?} is not in `languages`",
                    lang.get_ref()
                ),
            );
        }
    }

    fn lockout(&mut self, raw: &RawScript) -> LockoutPolicy {
        let l = &raw.policy.lockout;
        let mut bounded = |v: &Option<toml::Spanned<u32>>, max: u32, what: &str| {
            let v = v.as_ref()?;
            if !(1..=max).contains(v.get_ref()) {
                self.error(v.span(), format!("{what} must be between 1 and {max}"));
            }
            Some(*v.get_ref())
        };
        LockoutPolicy {
            account_max_failures: bounded(&l.account_max_failures, 100, "account_max_failures"),
            account_lock_minutes: bounded(&l.account_lock_minutes, 10080, "account_lock_minutes"),
            number_max_failures: bounded(&l.number_max_failures, 1000, "number_max_failures"),
            number_lock_minutes: bounded(&l.number_lock_minutes, 10080, "number_lock_minutes"),
        }
    }

    fn departments(&mut self, raw: &RawScript) -> BTreeMap<String, Department> {
        let mut out = BTreeMap::new();
        for (key, d) in &raw.departments {
            let name = key.get_ref().clone();
            if !is_identifier(&name) {
                self.error(
                    key.span(),
                    format!("department name {name:?} must be lowercase letters, digits, - or _"),
                );
            }
            let requires = match &d.requires {
                None => AssuranceLevel::None,
                Some(r) => self.level(r).unwrap_or(AssuranceLevel::None),
            };
            if let Some(ww) = &d.workflow_sid
                && !is_workflow_sid(ww.get_ref())
            {
                self.error(
                    ww.span(),
                    format!(
                        "workflow_sid {:?} is not a TaskRouter workflow SID (WW + 32 hex digits)",
                        ww.get_ref()
                    ),
                );
            }
            let sip_uri = match &d.sip_uri {
                Some(uri) => match SipUri::parse(uri.get_ref()) {
                    Ok(parsed) => Some(parsed),
                    Err(why) => {
                        self.error(uri.span(), format!("sip_uri {:?}: {why}", uri.get_ref()));
                        None
                    }
                },
                None => None,
            };
            if let Some(n) = &d.number
                && !is_e164(n.get_ref())
            {
                self.error(
                    n.span(),
                    format!("number {:?} must be in E.164 form", n.get_ref()),
                );
            }
            if let Some(c) = &d.client_identity
                && !is_client_identity(c.get_ref())
            {
                self.error(
                    c.span(),
                    format!(
                        "client_identity {:?} must be letters, digits, _ or - (at most 121)",
                        c.get_ref()
                    ),
                );
            }
            let mut phrases = BTreeMap::new();
            for (lang, list) in &d.phrases {
                if !raw.languages.iter().any(|l| l.get_ref() == lang.get_ref()) {
                    self.error(
                        lang.span(),
                        format!(
                            "phrases in {:?}, which is not in `languages`",
                            lang.get_ref()
                        ),
                    );
                }
                if list.iter().any(|p| p.trim().is_empty() || p.len() > 100) {
                    self.error(lang.span(), "each phrase must be 1-100 characters".into());
                }
                phrases.insert(lang.get_ref().clone(), list.clone());
            }
            let queue = d.queue.clone().unwrap_or_else(|| name.clone());
            if queue.trim().is_empty() || queue.len() > 64 {
                self.error(
                    key.span(),
                    format!("queue of {name} must be 1-64 characters"),
                );
            }
            out.insert(
                name.clone(),
                Department {
                    name,
                    requires,
                    queue,
                    workflow_sid: d.workflow_sid.as_ref().map(|s| s.get_ref().clone()),
                    client_identity: d.client_identity.as_ref().map(|s| s.get_ref().clone()),
                    sip_uri,
                    number: d.number.as_ref().map(|s| s.get_ref().clone()),
                    phrases,
                },
            );
        }
        out
    }

    fn level(&mut self, name: &Name) -> Option<AssuranceLevel> {
        let level = match name.get_ref().as_str() {
            "none" => AssuranceLevel::None,
            "low" => AssuranceLevel::Low,
            "medium" => AssuranceLevel::Medium,
            "high" => AssuranceLevel::High,
            other => {
                self.error(
                    name.span(),
                    format!("level {other:?} is not one of none, low, medium, high"),
                );
                return None;
            }
        };
        Some(level)
    }

    fn prompts(
        &mut self,
        raw: &RawScript,
        languages: &[String],
    ) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for (key, texts) in &raw.prompts {
            // A prompt's name becomes part of a recording's path (sounds/<lang>/<prompt>.wav):
            // only an identifier may, so no name can lead the checker or the server outside
            // `sounds/`.
            if !is_identifier(key.get_ref()) {
                self.error(
                    key.span(),
                    format!(
                        "prompt name {:?} must be lowercase letters, digits, - or _ (at most 40)",
                        key.get_ref()
                    ),
                );
            }
            let mut map = BTreeMap::new();
            for (lang, text) in texts {
                if !languages.iter().any(|l| l == lang.get_ref()) {
                    self.error(
                        lang.span(),
                        format!(
                            "prompt {:?} has a text in {:?}, which is not in `languages`",
                            key.get_ref(),
                            lang.get_ref()
                        ),
                    );
                }
                if text.get_ref().trim().is_empty() {
                    self.error(
                        text.span(),
                        format!("prompt {:?} in {} is empty", key.get_ref(), lang.get_ref()),
                    );
                }
                if text.get_ref().len() > 4000 {
                    self.error(
                        text.span(),
                        "a prompt text may be at most 4000 characters (Twilio's <Say> limit)"
                            .into(),
                    );
                }
                map.insert(lang.get_ref().clone(), text.get_ref().clone());
            }
            for lang in languages {
                if !map.contains_key(lang) {
                    self.error(
                        key.span(),
                        format!("prompt {:?} has no {lang} translation", key.get_ref()),
                    );
                }
            }
            out.insert(key.get_ref().clone(), map);
        }
        out
    }

    fn sounds(
        &mut self,
        raw: &RawScript,
        prompts: &BTreeMap<String, BTreeMap<String, String>>,
        languages: &[String],
        env: Env<'_>,
    ) -> BTreeMap<String, String> {
        // Only names that cannot leave `sounds/` are ever joined to it: an invalid prompt name
        // or language is reported elsewhere and never looked up on disk.
        let languages: Vec<&String> = languages.iter().filter(|l| is_language_tag(l)).collect();
        let mut out = BTreeMap::new();
        for (prompt, file) in &raw.sounds {
            if !prompts.contains_key(prompt.get_ref()) {
                self.error(
                    prompt.span(),
                    format!("sound for undefined prompt {:?}", prompt.get_ref()),
                );
            }
            let f = file.get_ref();
            if f.contains('/') || f.contains('\\') || f.starts_with('.') {
                self.error(
                    file.span(),
                    format!("sound file {f:?} must be a plain file name"),
                );
                continue;
            }
            if let Some(dir) = env.sounds_dir {
                for lang in &languages {
                    let path = dir.join(lang).join(f);
                    if let Some(why) = unplayable(&path) {
                        self.error(file.span(), format!("sounds/{lang}/{f}: {why}"));
                    }
                }
            }
            out.insert(prompt.get_ref().clone(), f.clone());
        }
        // Recordings found by name (sounds/<lang>/<prompt>.wav|mp3) must be playable too, and a
        // recording in a format Twilio cannot play would silently be spoken instead.
        if let Some(dir) = env.sounds_dir {
            for (prompt, key) in raw
                .prompts
                .keys()
                .map(|k| (k.get_ref(), k))
                .filter(|(p, _)| is_identifier(p))
            {
                for lang in &languages {
                    for ext in ["wav", "mp3"] {
                        let path = dir.join(lang).join(format!("{prompt}.{ext}"));
                        if path.exists()
                            && let Some(why) = unplayable(&path)
                        {
                            self.error(key.span(), format!("sounds/{lang}/{prompt}.{ext}: {why}"));
                        }
                    }
                    for ext in ["ogg", "flac", "m4a", "aac", "opus", "webm"] {
                        if dir.join(lang).join(format!("{prompt}.{ext}")).exists() {
                            self.warning(
                                key.span(),
                                format!(
                                    "sounds/{lang}/{prompt}.{ext} is ignored: Twilio plays only WAV and MP3, so the prompt is spoken"
                                ),
                            );
                        }
                    }
                }
            }
        }
        out
    }

    fn step(&mut self, c: &StepCtx<'_>) -> Option<Step> {
        let Some(kind) = &c.raw.kind else {
            self.error(
                c.name.span(),
                format!(
                    "step {:?} has no kind (say, language, menu, verify, department, handoff, goodbye)",
                    c.name.get_ref()
                ),
            );
            return None;
        };
        let kind_name = kind.get_ref().as_str();
        let allowed: &[&str] = match kind_name {
            "say" => &["prompt", "next"],
            "language" => &["prompt", "options", "next", "on_failure", "on_no_input"],
            "menu" => &[
                "prompt",
                "options",
                "on_failure",
                "on_no_input",
                "speech",
                "min_confidence",
                "min_gateway_confidence",
            ],
            "verify" => &[
                "prompt",
                "factor",
                "question",
                "digits",
                "skip_at_level",
                "on_success",
                "on_failure",
                "on_lockout",
                "on_unavailable",
                "on_no_input",
            ],
            "department" => &["department", "next", "step_up", "on_insufficient"],
            "handoff" => &["prompt", "via", "pop", "on_completed", "on_unanswered"],
            "goodbye" => &["prompt", "reason"],
            other => {
                self.error(
                    kind.span(),
                    format!(
                        "unknown step kind {other:?}: use say, language, menu, verify, department, handoff or goodbye"
                    ),
                );
                return None;
            }
        };
        let is_input = matches!(kind_name, "language" | "menu" | "verify");
        for (field, span) in c.raw.present_fields() {
            let input_field = INPUT_FIELDS.contains(&field);
            if !(allowed.contains(&field) || is_input && input_field) {
                self.error(span, format!("a {kind_name} step has no field `{field}`"));
            }
        }
        let step = match kind_name {
            "say" => Step::Say {
                prompt: self.prompt_ref(c, &c.raw.prompt.clone(), "prompt")?,
                next: self.step_ref(c, &c.raw.next.clone(), "next")?,
            },
            "goodbye" => Step::Goodbye {
                prompt: self.prompt_ref(c, &c.raw.prompt.clone(), "prompt")?,
                reason: c.raw.reason.as_ref().map_or_else(
                    || c.name.get_ref().replace('-', "_"),
                    |r| r.get_ref().clone(),
                ),
            },
            "menu" => {
                let prompt = self.prompt_ref(c, &c.raw.prompt.clone(), "prompt")?;
                let mut options = BTreeMap::new();
                for (key, target) in &c.raw.options {
                    self.keypad_key(key);
                    if let Some(t) = self.step_ref(c, &Some(target.clone()), "option") {
                        options.insert(key.get_ref().clone(), t);
                    }
                }
                if options.is_empty() && c.raw.options.is_empty() {
                    self.error(c.name.span(), "a menu needs at least one option".into());
                }
                self.announced_keys(c, &prompt, &options);
                let input = self.input(c, 6)?;
                let on_failure = self.step_ref(c, &c.raw.on_failure.clone(), "on_failure")?;
                let speech = self.speech_menu(c, &options);
                Step::Menu {
                    prompt,
                    options,
                    speech,
                    input,
                    on_no_input: self
                        .optional_ref(c, &c.raw.on_no_input.clone())?
                        .unwrap_or_else(|| on_failure.clone()),
                    on_failure,
                }
            }
            "language" => {
                let prompt = self.prompt_ref(c, &c.raw.prompt.clone(), "prompt")?;
                let mut options = BTreeMap::new();
                for (key, lang) in &c.raw.options {
                    self.keypad_key(key);
                    if !c.languages.iter().any(|l| l == lang.get_ref()) {
                        self.error(
                            lang.span(),
                            format!("language {:?} is not in `languages`", lang.get_ref()),
                        );
                    }
                    options.insert(key.get_ref().clone(), lang.get_ref().clone());
                }
                if options.len() < 2 {
                    self.error(
                        c.name.span(),
                        "a language step needs at least two options".into(),
                    );
                }
                let input = self.input(c, 5)?;
                let next = self.step_ref(c, &c.raw.next.clone(), "next")?;
                let on_failure = self.step_ref(c, &c.raw.on_failure.clone(), "on_failure")?;
                Step::Language {
                    prompt,
                    options,
                    next,
                    input,
                    on_no_input: self
                        .optional_ref(c, &c.raw.on_no_input.clone())?
                        .unwrap_or_else(|| on_failure.clone()),
                    on_failure,
                }
            }
            "verify" => self.verify(c)?,
            "department" => {
                let dept = c.raw.department.clone();
                let Some(dept) = dept else {
                    self.error(c.name.span(), "a department step needs `department`".into());
                    return None;
                };
                if !c.departments.contains_key(dept.get_ref()) {
                    self.error(
                        dept.span(),
                        format!(
                            "department {:?} is not defined under [departments]",
                            dept.get_ref()
                        ),
                    );
                }
                let step_up = self.optional_ref(c, &c.raw.step_up.clone())?;
                let on_insufficient = self.optional_ref(c, &c.raw.on_insufficient.clone())?;
                let requires = c
                    .departments
                    .get(dept.get_ref())
                    .map_or(AssuranceLevel::None, |d| d.requires);
                if requires > AssuranceLevel::None && on_insufficient.is_none() {
                    self.error(
                        c.name.span(),
                        format!(
                            "department {} requires {}: step {:?} needs `on_insufficient` for callers below it",
                            dept.get_ref(),
                            requires.as_str(),
                            c.name.get_ref()
                        ),
                    );
                }
                Step::Department {
                    department: dept.get_ref().clone(),
                    next: self.step_ref(c, &c.raw.next.clone(), "next")?,
                    step_up,
                    on_insufficient,
                }
            }
            "handoff" => {
                let prompt = match &c.raw.prompt {
                    Some(p) => Some(self.prompt_ref(c, &Some(p.clone()), "prompt")?),
                    None => None,
                };
                let via = match &c.raw.via {
                    None => Via::Enqueue,
                    Some(v) => match Via::parse(v.get_ref()) {
                        Some(via) => via,
                        None => {
                            self.error(
                                v.span(),
                                format!(
                                    "via {:?} is not one of enqueue, client, sip, number",
                                    v.get_ref()
                                ),
                            );
                            return None;
                        }
                    },
                };
                let pop = match &c.raw.pop {
                    None => PopFields::ALL,
                    Some(list) => {
                        let mut pop = PopFields {
                            account: false,
                            attributes: false,
                            factors: false,
                            risk: false,
                        };
                        for f in list {
                            match f.get_ref().as_str() {
                                "account" => pop.account = true,
                                "attributes" => pop.attributes = true,
                                "factors" => pop.factors = true,
                                "risk" => pop.risk = true,
                                other => self.error(
                                    f.span(),
                                    format!(
                                        "pop field {other:?} is not one of {:?}",
                                        PopFields::NAMES
                                    ),
                                ),
                            }
                        }
                        pop
                    }
                };
                Step::Handoff {
                    prompt,
                    via,
                    pop,
                    on_completed: self.step_ref(c, &c.raw.on_completed.clone(), "on_completed")?,
                    on_unanswered: self.step_ref(
                        c,
                        &c.raw.on_unanswered.clone(),
                        "on_unanswered",
                    )?,
                }
            }
            _ => return None,
        };
        Some(step)
    }

    fn verify(&mut self, c: &StepCtx<'_>) -> Option<Step> {
        let Some(factor_name) = c.raw.factor.clone() else {
            self.error(
                c.name.span(),
                "a verify step needs `factor` (code, totp or knowledge)".into(),
            );
            return None;
        };
        let factor = match factor_name.get_ref().as_str() {
            "code" => Challenge::Code,
            "totp" => Challenge::Totp,
            "knowledge" => {
                let Some(q) = &c.raw.question else {
                    self.error(
                        factor_name.span(),
                        "a knowledge step needs `question` (e.g. \"dob\")".into(),
                    );
                    return None;
                };
                if !is_identifier(q.get_ref()) {
                    self.error(
                        q.span(),
                        "question must be lowercase letters, digits, - or _".into(),
                    );
                }
                let digits = c.raw.digits.as_ref().map_or(8, |d| *d.get_ref());
                if !(1..=20).contains(&digits) {
                    self.error(
                        c.raw
                            .digits
                            .as_ref()
                            .map_or(factor_name.span(), |d| d.span()),
                        "digits must be 1-20".into(),
                    );
                }
                Challenge::Knowledge {
                    question: q.get_ref().clone(),
                    digits,
                }
            }
            other => {
                self.error(
                    factor_name.span(),
                    format!("factor {other:?} is not one of code, totp, knowledge"),
                );
                return None;
            }
        };
        if !matches!(factor, Challenge::Knowledge { .. }) {
            for (field, span) in [
                ("question", c.raw.question.as_ref().map(|q| q.span())),
                ("digits", c.raw.digits.as_ref().map(|d| d.span())),
            ] {
                if let Some(span) = span {
                    self.error(span, format!("`{field}` belongs to knowledge steps only"));
                }
            }
        }
        let prompt = self.prompt_ref(c, &c.raw.prompt.clone(), "prompt")?;
        let input = self.input(c, 8)?;
        let skip_at_level = match &c.raw.skip_at_level {
            Some(l) => Some(self.level(l)?),
            None => None,
        };
        let on_success = self.step_ref(c, &c.raw.on_success.clone(), "on_success")?;
        let on_failure = self.step_ref(c, &c.raw.on_failure.clone(), "on_failure")?;
        let on_unavailable = self.optional_ref(c, &c.raw.on_unavailable.clone())?;
        match (&factor, &on_unavailable) {
            (Challenge::Code, Some(_)) => self.error(
                c.raw
                    .on_unavailable
                    .as_ref()
                    .map_or(c.name.span(), |s| s.span()),
                "a code step is always available; on_unavailable is for totp and knowledge".into(),
            ),
            (Challenge::Totp | Challenge::Knowledge { .. }, None) => self.error(
                c.name.span(),
                format!(
                    "a {} step needs `on_unavailable`: not every account has one",
                    factor.as_str()
                ),
            ),
            _ => {}
        }
        Some(Step::Verify {
            factor,
            prompt,
            input,
            skip_at_level,
            on_lockout: self.optional_ref(c, &c.raw.on_lockout.clone())?,
            on_no_input: self
                .optional_ref(c, &c.raw.on_no_input.clone())?
                .unwrap_or_else(|| on_failure.clone()),
            on_success,
            on_failure,
            on_unavailable,
        })
    }

    fn input(&mut self, c: &StepCtx<'_>, default_timeout: u32) -> Option<Input> {
        let RawInput {
            timeout_secs,
            max_attempts,
            max_silences,
            retry_prompt,
            no_input_prompt,
        } = c.raw.input(c.defaults);
        let mut bounded = |v: Option<toml::Spanned<u32>>, default: u32, max: u32, what: &str| {
            let Some(v) = v else { return default };
            if !(1..=max).contains(v.get_ref()) {
                self.error(v.span(), format!("{what} must be between 1 and {max}"));
            }
            *v.get_ref()
        };
        let timeout_secs = bounded(timeout_secs, default_timeout, 60, "timeout_secs");
        let max_attempts = bounded(max_attempts, 3, 10, "max_attempts");
        let max_silences = bounded(max_silences, 2, 10, "max_silences");
        let retry_prompt = match retry_prompt {
            Some(p) => Some(self.prompt_ref(c, &Some(p), "retry_prompt")?),
            None => None,
        };
        let no_input_prompt = match no_input_prompt {
            Some(p) => Some(self.prompt_ref(c, &Some(p), "no_input_prompt")?),
            None => None,
        };
        Some(Input {
            timeout_secs,
            max_attempts,
            max_silences,
            retry_prompt,
            no_input_prompt,
        })
    }

    /// A menu that listens for speech routes to the departments its options lead to; each
    /// needs phrases in every language, or callers of that language could never be routed.
    fn speech_menu(
        &mut self,
        c: &StepCtx<'_>,
        options: &BTreeMap<String, String>,
    ) -> Option<super::model::SpeechMenu> {
        let on = c.raw.speech.as_ref().is_some_and(|s| *s.get_ref());
        let min_confidence = match &c.raw.min_confidence {
            Some(m) if !(0.0..=1.0).contains(m.get_ref()) => {
                self.error(m.span(), "min_confidence must be between 0 and 1".into());
                0.6
            }
            Some(m) => *m.get_ref(),
            None => 0.6,
        };
        let min_gateway_confidence = match &c.raw.min_gateway_confidence {
            Some(m) if !(0.0..=1.0).contains(m.get_ref()) => {
                self.error(
                    m.span(),
                    "min_gateway_confidence must be between 0 and 1".into(),
                );
                super::model::DEFAULT_MIN_GATEWAY_CONFIDENCE
            }
            Some(m) => *m.get_ref(),
            None => super::model::DEFAULT_MIN_GATEWAY_CONFIDENCE,
        };
        if !on {
            if let Some(m) = &c.raw.min_confidence {
                self.warning(
                    m.span(),
                    "min_confidence has no effect without speech = true".into(),
                );
            }
            if let Some(m) = &c.raw.min_gateway_confidence {
                self.warning(
                    m.span(),
                    "min_gateway_confidence has no effect without speech = true".into(),
                );
            }
            return None;
        }
        let span = c.raw.speech.as_ref().map_or(c.name.span(), |s| s.span());
        let mut routed = 0;
        for target in options.values() {
            let Some(RawStepKind::Department(dept)) = c.step_kinds.get(target.as_str()) else {
                continue;
            };
            routed += 1;
            let Some(d) = c.departments.get(*dept) else {
                continue;
            };
            for lang in c.languages {
                if d.phrases.get(lang).is_none_or(|p| p.is_empty()) {
                    self.error(
                        span.clone(),
                        format!(
                            "speech menu {:?}: department {dept} has no phrases in {lang}",
                            c.name.get_ref()
                        ),
                    );
                }
            }
        }
        if routed == 0 {
            self.error(
                span,
                format!(
                    "speech menu {:?} has no option leading to a department step: nothing to route speech to",
                    c.name.get_ref()
                ),
            );
        }
        Some(super::model::SpeechMenu {
            min_confidence,
            min_gateway_confidence,
        })
    }

    fn keypad_key(&mut self, key: &Name) {
        let k = key.get_ref();
        if !(k.len() == 1 && (k.as_bytes()[0].is_ascii_digit() || k == "*" || k == "#")) {
            self.error(
                key.span(),
                format!("option key {k:?} must be one keypad key: 0-9, * or #"),
            );
        }
    }

    /// A menu whose prompt announces keys it does not accept, or accepts keys no prompt
    /// announces, leaves callers pressing keys that lead nowhere, or never finding an option.
    fn announced_keys(
        &mut self,
        c: &StepCtx<'_>,
        prompt: &str,
        options: &BTreeMap<String, String>,
    ) {
        let Some(texts) = c.prompts.get(prompt) else {
            return;
        };
        let span = c.raw.prompt.as_ref().map_or(c.name.span(), |p| p.span());
        for (lang, text) in texts {
            let announced = announced_digits(text);
            for d in &announced {
                if !options.contains_key(d) {
                    self.error(
                        span.clone(),
                        format!(
                            "menu {:?}: the {lang} prompt announces key {d}, but there is no option {d}",
                            c.name.get_ref()
                        ),
                    );
                }
            }
            for key in options.keys() {
                if key.as_bytes()[0].is_ascii_digit() && !announced.contains(key) {
                    self.error(
                        span.clone(),
                        format!(
                            "menu {:?}: option {key} is never announced in the {lang} prompt",
                            c.name.get_ref()
                        ),
                    );
                }
            }
        }
    }

    fn step_ref(&mut self, c: &StepCtx<'_>, r: &Option<Name>, field: &str) -> Option<String> {
        let Some(r) = r else {
            self.error(
                c.name.span(),
                format!("step {:?} needs `{field}`", c.name.get_ref()),
            );
            return None;
        };
        if !c.steps.contains(r.get_ref().as_str()) {
            self.error(
                r.span(),
                format!("{field} refers to undefined step {:?}", r.get_ref()),
            );
            return None;
        }
        Some(r.get_ref().clone())
    }

    /// `Some(None)` when absent, `None` when present but undefined (already reported).
    fn optional_ref(&mut self, c: &StepCtx<'_>, r: &Option<Name>) -> Option<Option<String>> {
        match r {
            None => Some(None),
            Some(_) => self.step_ref(c, r, "step").map(Some),
        }
    }

    fn prompt_ref(&mut self, c: &StepCtx<'_>, r: &Option<Name>, field: &str) -> Option<String> {
        let Some(r) = r else {
            self.error(
                c.name.span(),
                format!("step {:?} needs `{field}`", c.name.get_ref()),
            );
            return None;
        };
        if !c.prompts.contains_key(r.get_ref()) {
            self.error(
                r.span(),
                format!(
                    "{field} refers to undefined prompt {:?} (add it under [prompts])",
                    r.get_ref()
                ),
            );
            return None;
        }
        Some(r.get_ref().clone())
    }

    /// Graph checks over a script whose references all resolve.
    fn analyse(&mut self, script: &Script) {
        let at = |name: &str| script.positions.get(name).copied().unwrap_or((1, 1));
        let push = |problems: &mut Vec<Problem>, step: &str, message: String| {
            let (line, col) = at(step);
            problems.push(Problem {
                severity: Severity::Error,
                line,
                col,
                message,
            });
        };
        let walk = explore(script);

        for name in script.steps.keys() {
            if !walk.reached_steps.contains(name.as_str()) {
                push(
                    &mut self.problems,
                    name,
                    format!(
                        "step {name:?} can never be reached from start {:?}",
                        script.start
                    ),
                );
            }
        }
        let can_end = steps_that_can_end(script);
        for name in script.steps.keys() {
            if walk.reached_steps.contains(name.as_str()) && !can_end.contains(name.as_str()) {
                push(
                    &mut self.problems,
                    name,
                    format!(
                        "from step {name:?} the call can never end (no path to a goodbye or hand-off)"
                    ),
                );
            }
        }
        for cycle in silent_loops(script) {
            let first = cycle.first().cloned().unwrap_or_default();
            push(
                &mut self.problems,
                &first,
                format!(
                    "steps {} loop without asking the caller anything",
                    cycle.join(" → ")
                ),
            );
        }
        for (step, s) in &script.steps {
            if let Step::Department { department, .. } = s
                && walk.reached_steps.contains(step.as_str())
                && let Some(d) = script.departments.get(department)
                && let best = walk
                    .best_level
                    .get(step.as_str())
                    .copied()
                    .unwrap_or(AssuranceLevel::None)
                && best < d.requires
            {
                push(
                    &mut self.problems,
                    step,
                    format!(
                        "department {department} requires level {}, but no path to step {step:?} reaches more than {}",
                        d.requires.as_str(),
                        best.as_str()
                    ),
                );
            }
        }
        for (step, dept) in &walk.handoffs {
            let Some(Step::Handoff { via, .. }) = script.steps.get(step.as_str()) else {
                continue;
            };
            match dept.as_deref().and_then(|d| script.departments.get(d)) {
                None => push(
                    &mut self.problems,
                    step,
                    format!(
                        "hand-off {step:?} can be reached before a department step chose where the call goes"
                    ),
                ),
                Some(d) => {
                    let missing = match via {
                        Via::Client if d.client_identity.is_none() => Some("client_identity"),
                        Via::Sip if d.sip_uri.is_none() => Some("sip_uri"),
                        Via::Number if d.number.is_none() => Some("number"),
                        _ => None,
                    };
                    if let Some(field) = missing {
                        push(
                            &mut self.problems,
                            step,
                            format!(
                                "hand-off {step:?} via {} reaches department {}, which has no {field}",
                                via.as_str(),
                                d.name
                            ),
                        );
                    }
                }
            }
        }
        for (step, s) in &script.steps {
            if let Step::Verify {
                factor: Challenge::Code,
                ..
            } = s
                && walk.identified_at.contains(step.as_str())
            {
                let (line, col) = at(step);
                self.problems.push(Problem {
                    severity: Severity::Warning,
                    line,
                    col,
                    message: format!(
                        "code step {step:?} can be reached after a code step identified the account: a code for another account there drops every factor proven so far, since they belong to the first account"
                    ),
                });
            }
        }
        for (step, s) in &script.steps {
            if let Step::Verify {
                factor: f @ (Challenge::Totp | Challenge::Knowledge { .. }),
                ..
            } = s
                && walk.reached_steps.contains(step.as_str())
                && !walk.identified_at.contains(step.as_str())
            {
                let (line, col) = at(step);
                self.problems.push(Problem {
                    severity: Severity::Warning,
                    line,
                    col,
                    message: format!(
                        "{} step {step:?} is never reached after a code step identified the account: it always takes on_unavailable",
                        f.as_str()
                    ),
                });
            }
        }
    }
}

/// What a step is, known before the steps are compiled (for checks that look across steps).
enum RawStepKind<'a> {
    Department(&'a str),
    Other,
}

struct StepCtx<'a> {
    name: &'a Name,
    step_kinds: &'a HashMap<&'a str, RawStepKind<'a>>,
    raw: &'a RawStep,
    defaults: &'a RawInput,
    steps: &'a HashSet<&'a str>,
    prompts: &'a BTreeMap<String, BTreeMap<String, String>>,
    departments: &'a BTreeMap<String, Department>,
    languages: &'a [String],
}

const INPUT_FIELDS: [&str; 5] = [
    "timeout_secs",
    "max_attempts",
    "max_silences",
    "retry_prompt",
    "no_input_prompt",
];

/// Names the engine gives to calls that have left the script's steps, and the hand-off's URL.
pub const RESERVED_STEPS: [&str; 3] = ["handed_off", "ended", "handoff-result"];

impl RawStep {
    /// The fields set in the file, with their positions, to tell a kind which it does not take.
    fn present_fields(&self) -> Vec<(&'static str, Range<usize>)> {
        let mut out = Vec::new();
        let mut add = |name: &'static str, span: Option<Range<usize>>| {
            if let Some(s) = span {
                out.push((name, s));
            }
        };
        add("prompt", self.prompt.as_ref().map(|v| v.span()));
        add("next", self.next.as_ref().map(|v| v.span()));
        add("timeout_secs", self.timeout_secs.as_ref().map(|v| v.span()));
        add("max_attempts", self.max_attempts.as_ref().map(|v| v.span()));
        add("max_silences", self.max_silences.as_ref().map(|v| v.span()));
        add("retry_prompt", self.retry_prompt.as_ref().map(|v| v.span()));
        add(
            "no_input_prompt",
            self.no_input_prompt.as_ref().map(|v| v.span()),
        );
        add("options", self.options.keys().next().map(|k| k.span()));
        add("on_failure", self.on_failure.as_ref().map(|v| v.span()));
        add("on_no_input", self.on_no_input.as_ref().map(|v| v.span()));
        add("speech", self.speech.as_ref().map(|v| v.span()));
        add(
            "min_confidence",
            self.min_confidence.as_ref().map(|v| v.span()),
        );
        add(
            "min_gateway_confidence",
            self.min_gateway_confidence.as_ref().map(|v| v.span()),
        );
        add("factor", self.factor.as_ref().map(|v| v.span()));
        add("question", self.question.as_ref().map(|v| v.span()));
        add("digits", self.digits.as_ref().map(|v| v.span()));
        add(
            "skip_at_level",
            self.skip_at_level.as_ref().map(|v| v.span()),
        );
        add("on_success", self.on_success.as_ref().map(|v| v.span()));
        add("on_lockout", self.on_lockout.as_ref().map(|v| v.span()));
        add(
            "on_unavailable",
            self.on_unavailable.as_ref().map(|v| v.span()),
        );
        add("department", self.department.as_ref().map(|v| v.span()));
        add("step_up", self.step_up.as_ref().map(|v| v.span()));
        add(
            "on_insufficient",
            self.on_insufficient.as_ref().map(|v| v.span()),
        );
        add("via", self.via.as_ref().map(|v| v.span()));
        add(
            "pop",
            self.pop.as_ref().and_then(|p| p.first()).map(|v| v.span()),
        );
        add("on_completed", self.on_completed.as_ref().map(|v| v.span()));
        add(
            "on_unanswered",
            self.on_unanswered.as_ref().map(|v| v.span()),
        );
        add("reason", self.reason.as_ref().map(|v| v.span()));
        out
    }
}

/// The single keypad digits a prompt text announces ("press 1", "naciśnij 2"): a digit that
/// stands alone, not part of a longer number.
pub fn announced_digits(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut out = BTreeSet::new();
    for (i, b) in bytes.iter().enumerate() {
        if b.is_ascii_digit() {
            let before = i.checked_sub(1).map(|j| bytes[j]);
            let after = bytes.get(i + 1).copied();
            let alone = |c: Option<u8>| {
                c.is_none_or(|c| !c.is_ascii_alphanumeric() && c != b'-' && c != b'+')
            };
            // "1." ends a sentence; "1.5" is a number.
            let decimal = (after == Some(b'.') && bytes.get(i + 2).is_some_and(u8::is_ascii_digit))
                || (before == Some(b'.') && i >= 2 && bytes[i - 2].is_ascii_digit());
            let thousands = after == Some(b',') && bytes.get(i + 2).is_some_and(u8::is_ascii_digit);
            if alone(before) && alone(after) && !decimal && !thousands {
                out.insert((*b as char).to_string());
            }
        }
    }
    out
}

/// What the abstract walk of the script found.
struct Walk<'s> {
    reached_steps: HashSet<&'s str>,
    /// The best level any path arrives at a step with.
    best_level: HashMap<&'s str, AssuranceLevel>,
    /// Steps some path reaches with an identified account.
    identified_at: HashSet<&'s str>,
    /// Hand-off steps with each department (or none) a path arrives with.
    handoffs: BTreeSet<(String, Option<String>)>,
}

/// Explores every path of the script over abstract call states: the factors gathered so far,
/// the department chosen, and where a step-up returns to. Factors are a small set (2^5), so the
/// state space stays small and the walk is exact for what it tracks.
fn explore(script: &Script) -> Walk<'_> {
    #[derive(Clone, PartialEq, Eq, Hash)]
    struct State<'s> {
        step: &'s str,
        factors: u8,
        department: Option<&'s str>,
        return_to: Option<&'s str>,
    }
    const ALL: [Factor; 5] = [
        Factor::CallerId,
        Factor::AccountCode,
        Factor::CallCode,
        Factor::Totp,
        Factor::Knowledge,
    ];
    let bit = |f: Factor| 1u8 << ALL.iter().position(|x| *x == f).unwrap_or(0);
    let level = |bits: u8| {
        let mut f = Factors::default();
        for (i, p) in ALL.iter().enumerate() {
            if bits & (1 << i) != 0 {
                f.add(*p);
            }
        }
        f.level()
    };
    let identified = |bits: u8| bits & (bit(Factor::AccountCode) | bit(Factor::CallCode)) != 0;

    let mut walk = Walk {
        reached_steps: HashSet::new(),
        best_level: HashMap::new(),
        identified_at: HashSet::new(),
        handoffs: BTreeSet::new(),
    };
    let mut seen = HashSet::new();
    let mut queue = VecDeque::new();
    let start = State {
        step: script.start.as_str(),
        factors: 0,
        department: None,
        return_to: None,
    };
    seen.insert(start.clone());
    queue.push_back(start);
    while let Some(s) = queue.pop_front() {
        let Some(step) = script.steps.get(s.step) else {
            continue;
        };
        let Some((name, _)) = script.steps.get_key_value(s.step) else {
            continue;
        };
        let name = name.as_str();
        walk.reached_steps.insert(name);
        let lvl = level(s.factors);
        let best = walk.best_level.entry(name).or_insert(lvl);
        *best = (*best).max(lvl);
        if identified(s.factors) {
            walk.identified_at.insert(name);
        }
        let mut next: Vec<State<'_>> = Vec::new();
        let mut push =
            |to: &str, factors: u8, department: Option<&str>, return_to: Option<&str>| {
                // Re-borrow the names from the script so the states live as long as it does.
                let Some((to, _)) = script.steps.get_key_value(to) else {
                    return;
                };
                let department = department
                    .and_then(|d| script.departments.get_key_value(d))
                    .map(|(k, _)| k.as_str());
                let return_to = return_to
                    .and_then(|r| script.steps.get_key_value(r))
                    .map(|(k, _)| k.as_str());
                next.push(State {
                    step: to.as_str(),
                    factors,
                    department,
                    return_to,
                });
            };
        match step {
            Step::Say { next: n, .. } => push(n, s.factors, s.department, s.return_to),
            Step::Language {
                next: n,
                on_failure,
                on_no_input,
                ..
            } => {
                for to in [n, on_failure, on_no_input] {
                    push(to, s.factors, s.department, s.return_to);
                }
            }
            Step::Menu {
                options,
                on_failure,
                on_no_input,
                ..
            } => {
                for to in options.values().chain([on_failure, on_no_input]) {
                    push(to, s.factors, s.department, s.return_to);
                }
            }
            Step::Verify {
                factor,
                skip_at_level,
                on_success,
                on_failure,
                on_lockout,
                on_unavailable,
                on_no_input,
                ..
            } => {
                let success = s.return_to.unwrap_or(on_success.as_str());
                if skip_at_level.is_some_and(|l| lvl >= l) {
                    push(success, s.factors, s.department, None);
                } else {
                    let gained: Vec<u8> = match factor {
                        Challenge::Code => vec![
                            bit(Factor::AccountCode),
                            bit(Factor::AccountCode) | bit(Factor::CallerId),
                            bit(Factor::CallCode),
                            bit(Factor::CallCode) | bit(Factor::CallerId),
                        ],
                        Challenge::Totp if identified(s.factors) => vec![bit(Factor::Totp)],
                        Challenge::Knowledge { .. } if identified(s.factors) => {
                            vec![bit(Factor::Knowledge)]
                        }
                        _ => vec![],
                    };
                    let asks = !gained.is_empty() || matches!(factor, Challenge::Code);
                    for g in gained {
                        push(success, s.factors | g, s.department, None);
                        // A second code may identify another account: the engine then drops
                        // every factor proven for the first one.
                        if matches!(factor, Challenge::Code) && identified(s.factors) {
                            push(success, g, s.department, None);
                        }
                    }
                    if asks {
                        for to in [Some(on_failure), on_lockout.as_ref(), Some(on_no_input)]
                            .into_iter()
                            .flatten()
                        {
                            push(to, s.factors, s.department, None);
                        }
                    }
                    if let Some(to) = on_unavailable {
                        push(to, s.factors, s.department, None);
                    }
                }
            }
            Step::Department {
                department,
                next: n,
                step_up,
                on_insufficient,
            } => {
                let requires = script
                    .departments
                    .get(department)
                    .map_or(AssuranceLevel::None, |d| d.requires);
                if lvl >= requires {
                    push(n, s.factors, Some(department), None);
                } else {
                    if let Some(up) = step_up {
                        push(up, s.factors, Some(department), Some(name));
                    }
                    if let Some(to) = on_insufficient {
                        push(to, s.factors, Some(department), None);
                    }
                }
            }
            Step::Handoff {
                on_completed,
                on_unanswered,
                ..
            } => {
                walk.handoffs
                    .insert((name.to_owned(), s.department.map(str::to_owned)));
                for to in [on_completed, on_unanswered] {
                    push(to, s.factors, s.department, None);
                }
            }
            Step::Goodbye { .. } => {}
        }
        for n in next {
            if seen.insert(n.clone()) {
                queue.push_back(n);
            }
        }
    }
    walk
}

/// Steps from which some path reaches a goodbye or a hand-off.
fn steps_that_can_end(script: &Script) -> HashSet<&str> {
    let mut can_end: HashSet<&str> = script
        .steps
        .iter()
        .filter(|(_, s)| matches!(s, Step::Goodbye { .. } | Step::Handoff { .. }))
        .map(|(n, _)| n.as_str())
        .collect();
    loop {
        let before = can_end.len();
        for (name, step) in &script.steps {
            if !can_end.contains(name.as_str())
                && step.exits().iter().any(|(_, to)| can_end.contains(to))
            {
                can_end.insert(name.as_str());
            }
        }
        if can_end.len() == before {
            return can_end;
        }
    }
}

/// Cycles the engine could run without a question to the caller in between: say and
/// department steps, and verify steps that skip or are unavailable.
fn silent_loops(script: &Script) -> Vec<Vec<String>> {
    let silent_edges = |step: &Step| -> Vec<String> {
        match step {
            Step::Say { next, .. } => vec![next.clone()],
            Step::Department {
                next,
                step_up,
                on_insufficient,
                ..
            } => {
                let mut v = vec![next.clone()];
                v.extend(on_insufficient.clone());
                let _ = step_up; // a step-up asks the caller
                v
            }
            Step::Verify {
                skip_at_level,
                on_success,
                on_unavailable,
                ..
            } => {
                let mut v = Vec::new();
                if skip_at_level.is_some() {
                    v.push(on_success.clone());
                }
                v.extend(on_unavailable.clone());
                v
            }
            _ => vec![],
        }
    };
    // Depth-first search for back edges in the silent subgraph.
    let mut cycles = Vec::new();
    let mut state: HashMap<&str, u8> = HashMap::new(); // 1 = on stack, 2 = done
    fn dfs<'s>(
        script: &'s Script,
        node: &'s str,
        state: &mut HashMap<&'s str, u8>,
        stack: &mut Vec<&'s str>,
        cycles: &mut Vec<Vec<String>>,
        edges: &dyn Fn(&Step) -> Vec<String>,
    ) {
        state.insert(node, 1);
        stack.push(node);
        if let Some(step) = script.steps.get(node) {
            for to in edges(step) {
                let Some((to, _)) = script.steps.get_key_value(to.as_str()) else {
                    continue;
                };
                match state.get(to.as_str()) {
                    Some(1) => {
                        let from = stack.iter().position(|s| *s == to.as_str()).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            stack[from..].iter().map(|s| (*s).to_owned()).collect();
                        cycle.push(to.clone());
                        cycles.push(cycle);
                    }
                    Some(_) => {}
                    None => dfs(script, to.as_str(), state, stack, cycles, edges),
                }
            }
        }
        stack.pop();
        state.insert(node, 2);
    }
    for name in script.steps.keys() {
        if !state.contains_key(name.as_str()) {
            let mut stack = Vec::new();
            dfs(
                script,
                name.as_str(),
                &mut state,
                &mut stack,
                &mut cycles,
                &silent_edges,
            );
        }
    }
    cycles
}

/// Why a sound file cannot be played by Twilio, if it cannot.
fn unplayable(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 12];
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(_) => return Some("file not found".into()),
    };
    let n = file.read(&mut head).unwrap_or(0);
    let head = &head[..n];
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let is_wav = head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WAVE";
    let is_mp3 =
        head.starts_with(b"ID3") || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0);
    match ext.as_str() {
        "wav" if is_wav => None,
        "mp3" if is_mp3 => None,
        "wav" => Some("not a WAV file (no RIFF/WAVE header)".into()),
        "mp3" => Some("not an MP3 file (no ID3 tag or MPEG frame)".into()),
        _ => Some("Twilio plays only .wav and .mp3 files".into()),
    }
}

pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.chars().count(), |nl| {
        before[nl + 1..].chars().count()
    }) + 1;
    (line, col)
}

fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(l), Some(r), None) if (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_lowercase())
            && r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase())
    )
}

pub fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

fn is_client_identity(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 121
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// `WW` followed by 32 hex digits.
pub fn is_workflow_sid(s: &str) -> bool {
    s.len() == 34 && s.starts_with("WW") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../ivr-scripts/default.toml");

    fn problems(text: &str) -> Vec<String> {
        check(text, Env::default())
            .problems
            .iter()
            .map(|p| p.render("t.toml"))
            .collect()
    }

    #[test]
    fn shipped_default_script_is_clean() {
        let checked = check(SHIPPED, Env::default());
        assert_eq!(checked.problems, vec![], "{:?}", problems(SHIPPED));
        let s = checked.script.unwrap();
        assert_eq!(s.name, "default");
        assert_eq!(s.start, "greeting");
        assert!(matches!(s.step("menu"), Some(Step::Menu { options, .. }) if options.len() == 3));
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let p = problems("name = \"x\"\nstart = \n");
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("t.toml:2:"), "{p:?}");
    }

    #[test]
    fn every_problem_is_listed_at_its_line() {
        let broken = SHIPPED
            .replacen("on_success = \"menu\"", "on_success = \"mneu\"", 1)
            .replacen("\"en-US\" = \"That code is not valid.\"\n", "", 1)
            .replacen(
                "\"2\" = \"technical\"",
                "\"2\" = \"technical\", \"7\" = \"other\"",
                1,
            );
        let p = problems(&broken);
        let line_of = |needle: &str| broken.lines().position(|l| l.contains(needle)).unwrap() + 1;
        assert!(
            p.iter().any(
                |m| m.starts_with(&format!("t.toml:{}:", line_of("\"mneu\"")))
                    && m.contains("undefined step \"mneu\"")
            ),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("\"wrong_totp\" has no en-US translation")),
            "{p:#?}"
        );
        assert!(
            p.iter().any(|m| m.contains("option 7 is never announced")),
            "{p:#?}"
        );
        assert!(p.len() >= 3);
    }

    #[test]
    fn graph_problems() {
        // An unreachable step, a loop that never ends, a department nobody can reach.
        let text = SHIPPED
            .replacen("on_success = \"totp\"", "on_success = \"menu\"", 1)
            .replace("[departments.other]", "[departments.other]\nrequires = \"high\"")
            .replace(
                "[steps.other]\nkind = \"department\"\ndepartment = \"other\"\nnext = \"agent\"",
                "[steps.other]\nkind = \"department\"\ndepartment = \"other\"\nnext = \"agent\"\non_insufficient = \"failed\"",
            )
            + "\n[steps.orphan]\nkind = \"say\"\nprompt = \"greeting\"\nnext = \"orphan2\"\n\n[steps.orphan2]\nkind = \"say\"\nprompt = \"greeting\"\nnext = \"orphan\"\n";
        let p = problems(&text);
        assert!(
            p.iter()
                .any(|m| m.contains("step \"orphan\" can never be reached")),
            "{p:#?}"
        );
        assert!(
            p.iter().any(|m| m.contains("loop without asking")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("department other requires level high, but no path")),
            "{p:#?}"
        );
        // With a TOTP step-up the department becomes reachable.
        let stepped = text.replace(
            "on_insufficient = \"failed\"\n\n[steps.agent]",
            "on_insufficient = \"failed\"\nstep_up = \"totp\"\n\n[steps.agent]",
        );
        let p = problems(&stepped);
        assert!(
            !p.iter().any(|m| m.contains("department other requires")),
            "{p:#?}"
        );
        assert!(
            !p.iter()
                .any(|m| m.contains("step \"totp\" can never be reached")),
            "{p:#?}"
        );
    }

    #[test]
    fn a_call_that_can_never_end_is_refused() {
        let text = SHIPPED.replace(
            "options = { \"1\" = \"billing\", \"2\" = \"technical\", \"3\" = \"other\" }\non_failure = \"menu-failed\"\non_no_input = \"no-input\"",
            "options = { \"1\" = \"menu\", \"2\" = \"menu\", \"3\" = \"menu\" }\non_failure = \"menu\"\non_no_input = \"menu\"",
        );
        let p = problems(&text);
        assert!(
            p.iter()
                .any(|m| m.contains("from step \"menu\" the call can never end")),
            "{p:#?}"
        );
    }

    #[test]
    fn handoffs_need_their_target() {
        let text = SHIPPED.replace("via = \"enqueue\"", "via = \"client\"");
        let p = problems(&text);
        assert!(
            p.iter().any(|m| m
                .contains("via client reaches department billing, which has no client_identity")),
            "{p:#?}"
        );
    }

    #[test]
    fn unplayable_sounds_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        for lang in ["pl-PL", "en-US"] {
            std::fs::create_dir_all(dir.path().join(lang)).unwrap();
        }
        std::fs::write(dir.path().join("pl-PL/greeting.wav"), b"not a wav at all").unwrap();
        std::fs::write(
            dir.path().join("en-US/greeting.wav"),
            b"RIFF\0\0\0\0WAVEfmt ",
        )
        .unwrap();
        let text = SHIPPED.replace("[voices]", "[sounds]\nmenu = \"menu.mp3\"\n\n[voices]");
        let checked = check(
            &text,
            Env {
                sounds_dir: Some(dir.path()),
            },
        );
        let p: Vec<_> = checked.problems.iter().map(|p| p.message.clone()).collect();
        assert!(
            p.iter()
                .any(|m| m.contains("sounds/pl-PL/greeting.wav: not a WAV file")),
            "{p:#?}"
        );
        assert!(
            !p.iter().any(|m| m.contains("en-US/greeting.wav")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("sounds/en-US/menu.mp3: file not found")),
            "{p:#?}"
        );
    }

    #[test]
    fn announced_digits_ignore_numbers() {
        let d = announced_digits("Press 1. Call 24 hours, +48 22, version 1.5, naciśnij 3");
        assert_eq!(d.into_iter().collect::<Vec<_>>(), vec!["1", "3"]);
    }
}

#[cfg(test)]
mod speech_tests {
    use super::*;

    const BILINGUAL: &str = include_str!("../../../ivr-scripts/bilingual.toml");

    #[test]
    fn a_speech_menu_needs_phrases_for_every_department_in_every_language() {
        let text = BILINGUAL.replacen(
            "\"en-US\" = [\"something else\", \"information\", \"complaint\", \"address\", \"agent\"]",
            "",
            1,
        );
        let p: Vec<String> = check(&text, Env::default())
            .problems
            .iter()
            .map(|p| p.message.clone())
            .collect();
        assert!(
            p.iter()
                .any(|m| m == "speech menu \"menu\": department general has no phrases in en-US"),
            "{p:#?}"
        );
        let silly = BILINGUAL.replace("min_confidence = 0.6", "min_confidence = 1.5");
        assert!(
            check(&silly, Env::default())
                .problems
                .iter()
                .any(|p| p.message.contains("min_confidence"))
        );
    }
}
