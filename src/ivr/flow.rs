//! Where a webhook turns into TwiML. `handle` runs one webhook as one database transaction:
//! it reads the call's state, finds the script version the call runs, applies the caller's
//! input, walks the script's steps up to the next question (or the hand-off, or goodbye), writes
//! the new state and returns the next document.
//!
//! Steps that say something or file the call under a department run at once; steps that wait
//! for keys (menu, language, verify) end the document with a `<Gather>` whose action is
//! `/twilio/ivr/<step>`. A wrong code and an unknown code get the same words, and so does a
//! correct code while the account or the calling number is locked: nothing tells a guesser what
//! was right.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use anyhow::{Context, bail};

use super::script::model::SpeechMenu;
use super::script::{Catalog, Factor, PopFields, Script, Step, Via};
use super::sounds::SoundIndex;
use crate::agent::ScreenPop;
use crate::agent::view::Viewer;
use crate::domain::{AccountCode, CallerId, Keypad, SipUri, mask_number};
use crate::store::Db;
use crate::store::accounts::Account;
use crate::store::calls::{Call, ENDED, HANDED_OFF, SpeechRecord};
use crate::store::throttle::FailureKind;
use crate::twilio::twiml::{
    self, Dial, DialTarget, Enqueue, Gather, Play, Prompt, Response, Say, SpeechInput, Verb,
};
use crate::twilio::webhook::{Speech, VoiceParams};
use crate::verify::{AssuranceLevel, Factor as Proof, Keyring, Limits, LiveKeyring, totp};

/// Flex caps task attributes at 1024 characters.
const TASK_ATTRIBUTES_MAX: usize = 1024;
/// Steps run without a question in between, per webhook. The checker refuses silent loops;
/// this is the engine's own guard.
const MAX_HOPS: usize = 64;
/// The URL segment of every hand-off's `action`.
pub const HANDOFF_RESULT: &str = "handoff-result";

/// Everything the flow needs besides the database.
pub struct IvrContext {
    /// The server key, read again when `callgate keys rotate` changes the key file.
    pub keys: Arc<LiveKeyring>,
    pub scripts: Catalog,
    pub sounds: SoundIndex,
    pub limits: Limits,
    /// Base of every absolute URL callgate puts into TwiML.
    pub public_url: String,
    /// `CALLGATE_TASKROUTER_WORKFLOW_SID`: enqueue through TaskRouter with a `<Task>`.
    pub workflow_sid: Option<String>,
    pub alerts: AlertGate,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// What speech routing learned from the categories agents confirmed (`callgate routing
    /// train`), on top of each script's phrases.
    pub routing: std::sync::RwLock<Option<Arc<crate::ivr::routing::Model>>>,
    /// How long the screen-pop URL a hand-off carries can be opened.
    pub pop_url_ttl: std::time::Duration,
    /// Whether test accounts (the demo accounts among them) may identify a caller: in the
    /// admin page's simulator and on a `serve --demo` server only. Elsewhere their codes are
    /// unknown codes, since a test account's code may be public (the README prints the demo's).
    pub test_accounts_answer: bool,
}

impl IvrContext {
    pub fn routing_model(&self) -> Option<Arc<crate::ivr::routing::Model>> {
        match self.routing.read() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Raises the global guessing alert at most once a minute in the log, counting every time the
/// threshold is crossed.
#[derive(Debug, Default)]
pub struct AlertGate {
    last_logged_ms: AtomicI64,
    pub raised: AtomicU64,
}

impl AlertGate {
    fn raise(&self, failures_last_minute: i64, now: i64) {
        self.raised.fetch_add(1, Ordering::Relaxed);
        let last = self.last_logged_ms.load(Ordering::Relaxed);
        if now - last >= 60_000
            && self
                .last_logged_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                target: "callgate::alert",
                failures_last_minute,
                "ALERT: verification failures across the system above the alert threshold (possible code guessing)"
            );
        }
    }
}

/// What the webhook was.
#[derive(Debug, Clone)]
pub enum Event {
    /// `POST /twilio/voice`: a call comes in.
    Incoming,
    /// A `<Gather>` action or its fall-through `<Redirect>` (no digits: silence), for the step
    /// named in the URL.
    Input(String),
    /// The `<Dial>`/`<Enqueue>` action: how the hand-off ended (`DialCallStatus`/`QueueResult`).
    HandoffResult(Option<String>),
}

/// Runs one webhook inside the caller's transaction (the store's writer gives each webhook a
/// savepoint of its own): any error leaves the database as it was.
pub fn handle(
    db: &dyn Db,
    ctx: &IvrContext,
    params: &VoiceParams,
    event: Event,
    now: i64,
) -> anyhow::Result<Response> {
    let existing = db.call(params.call_sid.as_str())?;
    let script = match &existing {
        Some(call) => script_of(db, ctx, call)?,
        None => ctx.scripts.live().for_number(params.called.as_deref()),
    };
    run(db, ctx, &script, existing, params, event, now)
}

/// The version a call started on; the published one if that version has gone (a call row
/// written by a status callback alone has none).
fn script_of(db: &dyn Db, ctx: &IvrContext, call: &Call) -> anyhow::Result<Arc<Script>> {
    if let Some(v) = call.script_version_no
        && let Some(script) = ctx.scripts.version(db, &call.script, v)?
    {
        return Ok(script);
    }
    let live = ctx.scripts.live();
    Ok(live
        .get(&call.script)
        .unwrap_or_else(|| live.for_number(call.called.as_deref())))
}

/// Runs one webhook on a given script: the live line and the admin page's simulator (which
/// runs a draft on a scratch database) share every line of the engine.
pub fn run(
    db: &dyn Db,
    ctx: &IvrContext,
    script: &Script,
    existing: Option<Call>,
    params: &VoiceParams,
    event: Event,
    now: i64,
) -> anyhow::Result<Response> {
    let fresh = existing.is_none();
    let mut call = match existing {
        Some(call) => call,
        None => new_call(script, params, now),
    };
    let limits = script.lockout.apply(&ctx.limits);
    let mut flow = Flow {
        db,
        ctx,
        script,
        limits,
        call: &mut call,
        caller: &params.caller,
        now,
        keys: ctx.keys.get(),
    };
    let doc = match event {
        // Any webhook for a call we have no state for starts it from the beginning.
        _ if fresh => flow.start()?,
        Event::Incoming => flow.resume()?,
        Event::Input(step) if step == flow.call.step => flow.input(params)?,
        // A webhook for another step than the call is in (a retry, a stale document): ask
        // again for what the call is waiting for.
        Event::Input(_) => flow.resume()?,
        Event::HandoffResult(result) => flow.after_handoff(result.as_deref())?,
    };
    db.save_call(&call, now)?;
    Ok(doc)
}

/// The document a caller hears when callgate cannot continue (database down, disk full): a polite
/// message in the script's language, then hang-up. Twilio never hears a 5xx mid-call.
pub fn technical_error(ctx: &IvrContext, params: &VoiceParams) -> Response {
    let script = ctx.scripts.live().for_number(params.called.as_deref());
    let language = script.language_for(params.called.as_deref()).to_owned();
    let say = speak(
        ctx,
        &script,
        &language,
        super::script::model::TECHNICAL_ERROR_PROMPT,
    );
    Response::new().push(say.into_verb()).push(Verb::Hangup)
}

fn new_call(script: &Script, params: &VoiceParams, now: i64) -> Call {
    Call {
        call_sid: params.call_sid.as_str().to_owned(),
        caller: params.caller.display().to_owned(),
        called: params.called.clone(),
        stir_verstat: params.stir.as_ref().map(ToString::to_string),
        script: script.name.clone(),
        script_version: script.sha.clone(),
        script_version_no: Some(script.version),
        language: script.language_for(params.called.as_deref()).to_owned(),
        step: script.start.clone(),
        state: Default::default(),
        step_attempts: 0,
        step_silences: 0,
        account_id: None,
        caller_id_match: false,
        factors: Default::default(),
        failed_attempts: 0,
        category: None,
        handoff: None,
        status: "in-progress".into(),
        end_reason: None,
        started_at: now,
        verified_at: None,
        handed_off_at: None,
        ended_at: None,
        duration_secs: None,
    }
}

impl Prompt {
    fn into_verb(self) -> Verb {
        match self {
            Prompt::Say(s) => Verb::Say(s),
            Prompt::Play(p) => Verb::Play(p),
        }
    }
}

/// A prompt as TwiML: the recording when `sounds/` has one (the script's `[sounds]` entry, else
/// `<language>/<prompt>.wav|mp3`), else spoken in the language.
fn speak(ctx: &IvrContext, script: &Script, language: &str, prompt: &str) -> Prompt {
    let recording = match script.sounds.get(prompt) {
        Some(file) => ctx.sounds.file(language, file),
        None => ctx.sounds.find(language, prompt),
    };
    match recording {
        Some(path) => Prompt::Play(Play {
            url: format!("{}/sounds/{path}", ctx.public_url),
        }),
        None => Prompt::Say(Say {
            text: script.prompt_text(language, prompt).to_owned(),
            voice: script.voice(language).map(str::to_owned),
            language: Some(language.to_owned()),
        }),
    }
}

enum CodeMatch {
    Account(String),
    CallCode { row: i64, account: String },
}

/// How a verify step's check came out.
enum Checked {
    Passed,
    Failed { number_locked: bool },
}

struct Flow<'a> {
    db: &'a dyn Db,
    ctx: &'a IvrContext,
    script: &'a Script,
    limits: Limits,
    call: &'a mut Call,
    caller: &'a CallerId,
    now: i64,
    /// Taken once per webhook, inside its transaction: one key set for the whole webhook.
    keys: Arc<Keyring>,
}

impl Flow<'_> {
    fn prompt(&self, name: &str) -> Prompt {
        speak(self.ctx, self.script, &self.call.language, name)
    }

    fn step_url(&self, step: &str) -> String {
        format!("{}/twilio/ivr/{step}", self.ctx.public_url)
    }

    /// Adds to the call's journey (kept with the call; nothing secret goes in).
    fn note(&mut self, event: &str, detail: Option<String>) {
        let step = self.call.step.clone();
        self.call.state.note(self.now, &step, event, detail);
    }

    /// The calling number as the audit trail names it: a keyed pseudonym, never the number
    /// (all withheld callers share one throttle key, which is no one's number).
    fn number_pseudonym(&self) -> String {
        match self.caller.number() {
            Some(n) => self.keys.number_pseudonym(n.as_str()),
            None => "withheld".to_owned(),
        }
    }

    fn log(&self, what: &str) {
        tracing::info!(
            caller = %mask_number(&self.call.caller),
            step = %self.call.step,
            level = self.call.level().as_str(),
            "{what}"
        );
    }

    fn start(&mut self) -> anyhow::Result<Response> {
        self.log("call started");
        // No caller number in the journey, not even masked: the call row holds it, where the
        // retention purge and `account forget` erase it.
        let detail = format!("script {} v{}", self.script.name, self.script.version);
        self.note("call started", Some(detail));
        let start = self.script.start.clone();
        self.goto(&start, vec![])
    }

    /// Asks again for whatever the call is waiting for.
    fn resume(&mut self) -> anyhow::Result<Response> {
        match self.call.step.as_str() {
            ENDED => Ok(Response::new().push(Verb::Hangup)),
            HANDED_OFF => match self.call.state.handoff_step.clone() {
                Some(step) => self.handoff_document(&step),
                None => Ok(Response::new().push(Verb::Hangup)),
            },
            step => {
                let step = step.to_owned();
                if step_in(self.script, &step)?.input().is_some() {
                    self.ask(&step, vec![], vec![])
                } else {
                    self.goto(&step, vec![])
                }
            }
        }
    }

    /// Runs steps from `to` until one needs the caller (or the call leaves the IVR). `said`
    /// holds what earlier steps of this webhook say first.
    fn goto(&mut self, to: &str, mut said: Vec<Verb>) -> anyhow::Result<Response> {
        let script = self.script;
        let mut current = to.to_owned();
        for _ in 0..MAX_HOPS {
            let step = step_in(self.script, &current)?;
            self.call.state.note(self.now, &current, step.kind(), None);
            match step {
                Step::Say { prompt, next } => {
                    said.push(self.prompt(prompt).into_verb());
                    current = next.clone();
                }
                Step::Goodbye { prompt, reason } => {
                    said.push(self.prompt(prompt).into_verb());
                    return Ok(self.end(said, reason));
                }
                Step::Department {
                    department,
                    next,
                    step_up,
                    on_insufficient,
                } => {
                    let requires = script
                        .departments
                        .get(department)
                        .map_or(AssuranceLevel::None, |d| d.requires);
                    self.call.category = Some(department.clone());
                    let level = self.call.level();
                    if level >= requires {
                        self.call.state.note(
                            self.now,
                            &current,
                            "department",
                            Some(department.clone()),
                        );
                        current = next.clone();
                    } else if let Some(up) = step_up
                        && !self.call.state.stepped_up.contains(&current)
                    {
                        self.call.state.stepped_up.push(current.clone());
                        self.call.state.return_to = Some(current.clone());
                        self.log(&format!(
                            "{department} requires {}: stepping up",
                            requires.as_str()
                        ));
                        self.call.state.note(
                            self.now,
                            &current,
                            "step-up",
                            Some(format!("{department} requires {}", requires.as_str())),
                        );
                        current = up.clone();
                    } else if let Some(to) = on_insufficient {
                        self.log(&format!(
                            "{department} requires {}: refused",
                            requires.as_str()
                        ));
                        current = to.clone();
                    } else {
                        // The checker demands on_insufficient here; never hand off below the
                        // department's level whatever the script says.
                        bail!("department {department} needs on_insufficient");
                    }
                }
                Step::Handoff { .. } => return self.handoff(&current, said),
                Step::Verify {
                    factor,
                    skip_at_level,
                    on_success,
                    on_unavailable,
                    ..
                } => {
                    if skip_at_level.is_some_and(|l| self.call.level() >= l) {
                        current = self.success_exit(on_success);
                        continue;
                    }
                    if !self.factor_available(factor)? {
                        self.call.state.return_to = None;
                        match on_unavailable {
                            Some(to) => current = to.clone(),
                            None => bail!("verify step without on_unavailable"),
                        }
                        continue;
                    }
                    self.call.enter(&current);
                    return self.ask(&current, said, vec![]);
                }
                Step::Menu { .. } | Step::Language { .. } => {
                    self.call.enter(&current);
                    return self.ask(&current, said, vec![]);
                }
            }
        }
        bail!("script {} loops without asking the caller", script.name)
    }

    fn success_exit(&mut self, on_success: &str) -> String {
        self.call
            .state
            .return_to
            .take()
            .unwrap_or_else(|| on_success.to_owned())
    }

    /// Whether a verify step can ask its factor of this call.
    fn factor_available(&self, factor: &Factor) -> anyhow::Result<bool> {
        let Some(account) = &self.call.account_id else {
            return Ok(matches!(factor, Factor::Code));
        };
        Ok(match factor {
            Factor::Code => true,
            Factor::Totp => self.db.account(account)?.is_some_and(|a| a.has_totp),
            Factor::Knowledge { question, .. } => {
                self.db.has_knowledge_answer(account, question)?
            }
        })
    }

    /// A `<Gather>` for an input step: `said` first (not interruptible: greetings, notices),
    /// then `before` (a re-prompt) and the question, which the caller may cut short with keys.
    /// If the caller says nothing, the `<Redirect>` brings the call back without digits.
    fn ask(&self, name: &str, said: Vec<Verb>, before: Vec<Prompt>) -> anyhow::Result<Response> {
        let step = step_in(self.script, name)?;
        let input = step
            .input()
            .context("asking at a step that takes no input")?;
        let mut prompts = before;
        let num_digits = match step {
            Step::Verify { factor, prompt, .. } => {
                prompts.push(self.prompt(prompt));
                match factor {
                    Factor::Code => None,
                    Factor::Totp => Some(totp::DIGITS),
                    Factor::Knowledge { digits, .. } => Some(*digits),
                }
            }
            Step::Menu { prompt, .. } => {
                prompts.push(self.prompt(prompt));
                Some(1)
            }
            Step::Language {
                prompt, options, ..
            } => {
                // Each language offers itself in its own words and voice.
                for language in options.values() {
                    prompts.push(speak(self.ctx, self.script, language, prompt));
                }
                Some(1)
            }
            _ => None,
        };
        let speech = match step {
            Step::Menu {
                options,
                speech: Some(_),
                ..
            } => Some(SpeechInput {
                language: self.call.language.clone(),
                hints: Some(self.script.speech_hints(options, &self.call.language))
                    .filter(|h| !h.is_empty()),
            }),
            _ => None,
        };
        let action = self.step_url(name);
        let mut doc = Response::new();
        for verb in said {
            doc = doc.push(verb);
        }
        Ok(doc
            .push(Verb::Gather(Gather {
                action: action.clone(),
                num_digits,
                finish_on_key: Some("#".into()),
                timeout_secs: input.timeout_secs,
                prompts,
                speech,
            }))
            .push(Verb::Redirect { url: action }))
    }

    fn end(&mut self, mut said: Vec<Verb>, reason: &str) -> Response {
        let reason = match &self.call.state.handoff_result {
            Some(result) => format!(
                "handoff_{}",
                result.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            ),
            None => reason.to_owned(),
        };
        if self.call.step != HANDED_OFF {
            self.call.state.last_step = Some(self.call.step.clone());
        }
        self.call.enter(ENDED);
        self.call.end_reason.get_or_insert(reason.clone());
        self.call.ended_at.get_or_insert(self.now);
        self.log(&format!("call ended by the IVR: {reason}"));
        self.call
            .state
            .note(self.now, ENDED, "ended", Some(reason.clone()));
        said.push(Verb::Hangup);
        let mut doc = Response::new();
        for verb in said {
            doc = doc.push(verb);
        }
        doc
    }

    fn input(&mut self, params: &VoiceParams) -> anyhow::Result<Response> {
        let name = self.call.step.clone();
        let Some(step) = self.script.step(&name) else {
            return self.resume();
        };
        if step.input().is_none() {
            return self.resume();
        }
        if let (
            None,
            Some(speech),
            Step::Menu {
                options,
                speech: Some(menu),
                ..
            },
        ) = (&params.digits, &params.speech, step)
        {
            self.call.step_attempts += 1;
            return self.route_speech(&name, options, *menu, speech);
        }
        let Some(keys) = params.digits.as_ref() else {
            self.note("silence", None);
            return self.silence(&name);
        };
        // A menu key or language choice is not a secret; a code or an answer never is written.
        let detail = matches!(step, Step::Menu { .. } | Step::Language { .. })
            .then(|| keys.expose().chars().take(4).collect());
        self.note("keys", detail);
        self.call.step_attempts += 1;
        match step {
            Step::Menu { options, .. } => match options.get(keys.expose()) {
                Some(to) => {
                    self.log("menu choice");
                    self.goto(&to.clone(), vec![])
                }
                None => self.retry(&name),
            },
            Step::Language { options, next, .. } => match options.get(keys.expose()) {
                Some(language) => {
                    self.call.language = language.clone();
                    self.log("language chosen");
                    self.goto(&next.clone(), vec![])
                }
                None => self.retry(&name),
            },
            Step::Verify {
                factor,
                on_success,
                on_lockout,
                ..
            } => {
                let checked = match factor {
                    Factor::Code => self.check_code(keys)?,
                    Factor::Totp => self.check_totp(keys)?,
                    Factor::Knowledge { question, .. } => self.check_knowledge(question, keys)?,
                };
                let verdict = match checked {
                    Checked::Passed => "passed",
                    Checked::Failed { .. } => "failed",
                };
                self.note(verdict, Some(factor.as_str().to_owned()));
                match checked {
                    Checked::Passed => {
                        self.on_factor_passed()?;
                        let to = self.success_exit(on_success);
                        self.goto(&to, vec![])
                    }
                    Checked::Failed {
                        number_locked: true,
                    } if on_lockout.is_some() => {
                        self.call.state.return_to = None;
                        let to = on_lockout.clone().unwrap_or_default();
                        self.goto(&to, vec![])
                    }
                    Checked::Failed { .. } => self.retry(&name),
                }
            }
            _ => self.resume(),
        }
    }

    /// A speech menu heard words: the classifier picks among the departments its options lead
    /// to; below `min_confidence` the caller is asked again (and may use the keys). So is a
    /// transcript the gateway itself rated below `min_gateway_confidence`: the classifier can be
    /// sure of words the caller never said.
    fn route_speech(
        &mut self,
        name: &str,
        options: &std::collections::BTreeMap<String, String>,
        menu: SpeechMenu,
        speech: &Speech,
    ) -> anyhow::Result<Response> {
        let offered = self.script.menu_departments(options);
        let departments: Vec<&str> = offered.iter().map(|(_, d, _)| *d).collect();
        let mut model = self.script.routing.clone();
        if let Some(learned) = self.ctx.routing_model() {
            model.merge(&learned);
        }
        let verdict = model.classify(&speech.text, &departments);
        // No confidence sent: no doubt voiced, so the classifier alone decides.
        let doubted = speech
            .confidence
            .filter(|c| *c < menu.min_gateway_confidence);
        let routed = verdict
            .as_ref()
            .filter(|v| doubted.is_none() && v.probability >= menu.min_confidence)
            .and_then(|v| offered.iter().find(|(_, d, _)| *d == v.department));
        self.call.state.speech = Some(SpeechRecord {
            text: speech.text.clone(),
            asr_confidence: speech.confidence,
            department: verdict.as_ref().map(|v| v.department.clone()),
            probability: verdict.as_ref().map_or(0.0, |v| v.probability),
            routed: routed.is_some(),
        });
        let heard = match (&verdict, routed.is_some(), doubted) {
            (_, false, Some(c)) => format!(
                "unsure: gateway confidence {c:.2} below {:.2}",
                menu.min_gateway_confidence
            ),
            (Some(v), true, _) => format!("routed to {} (p={:.2})", v.department, v.probability),
            (Some(v), false, _) => format!("unsure: {} (p={:.2})", v.department, v.probability),
            (None, _, _) => "not understood".to_owned(),
        };
        self.note("speech", Some(heard));
        self.ctx
            .metrics
            .speech_routing
            .get_or_create(&crate::metrics::Outcome {
                outcome: if routed.is_some() {
                    "routed"
                } else {
                    "not_understood"
                },
            })
            .inc();
        match routed {
            Some((_, dept, to)) => {
                self.log(&format!(
                    "speech routed to {dept} (p={:.2})",
                    verdict.as_ref().map_or(0.0, |v| v.probability)
                ));
                let to = (*to).to_owned();
                self.goto(&to, vec![])
            }
            None => {
                self.log("speech not understood well enough; asking again");
                self.retry(name)
            }
        }
    }

    fn silence(&mut self, name: &str) -> anyhow::Result<Response> {
        let step = step_in(self.script, name)?;
        let (input, on_no_input) = match step {
            Step::Menu {
                input, on_no_input, ..
            }
            | Step::Language {
                input, on_no_input, ..
            }
            | Step::Verify {
                input, on_no_input, ..
            } => (input, on_no_input.clone()),
            _ => return self.resume(),
        };
        self.call.step_silences += 1;
        if self.call.step_silences >= input.max_silences {
            self.call.state.return_to = None;
            return self.goto(&on_no_input, vec![]);
        }
        self.log("caller silent, prompting again");
        let before: Vec<Prompt> = input
            .no_input_prompt
            .iter()
            .map(|p| self.prompt(p))
            .collect();
        self.ask(name, vec![], before)
    }

    /// Another try at the step, or its `on_failure` when the attempts are used up.
    fn retry(&mut self, name: &str) -> anyhow::Result<Response> {
        let step = step_in(self.script, name)?;
        let (input, on_failure) = match step {
            Step::Menu {
                input, on_failure, ..
            }
            | Step::Language {
                input, on_failure, ..
            }
            | Step::Verify {
                input, on_failure, ..
            } => (input, on_failure.clone()),
            _ => return self.resume(),
        };
        if self.call.step_attempts >= input.max_attempts {
            self.call.state.return_to = None;
            return self.goto(&on_failure, vec![]);
        }
        let before: Vec<Prompt> = input.retry_prompt.iter().map(|p| self.prompt(p)).collect();
        self.ask(name, vec![], before)
    }

    /// The keypad may not verify anything from a number that is locked out.
    fn number_locked(&self) -> anyhow::Result<bool> {
        self.db.number_locked(self.caller.throttle_key(), self.now)
    }

    /// The account a code names, read once (for its lock, its phone and its test flag), if it
    /// may answer on this line: a test account's code where test accounts do not answer is an
    /// unknown code, refused and counted like any other.
    fn find_code(&self, keys: &Keypad) -> anyhow::Result<Option<(CodeMatch, Account)>> {
        if !keys.is_all_digits() {
            return Ok(None);
        }
        let by_account_code = if AccountCode::parse(keys.expose()).is_ok() {
            self.db.find_account_by_code(&self.keys, keys.expose())?
        } else {
            None
        };
        let found = match by_account_code {
            Some(id) => Some(CodeMatch::Account(id)),
            None => self
                .db
                .find_live_call_code(&self.keys, keys.expose(), self.now)?
                .map(|(row, account)| CodeMatch::CallCode { row, account }),
        };
        let Some(found) = found else {
            return Ok(None);
        };
        let id = match &found {
            CodeMatch::Account(id) | CodeMatch::CallCode { account: id, .. } => id,
        };
        Ok(self
            .db
            .account(id)?
            .filter(|a| !a.test || self.ctx.test_accounts_answer)
            .map(|a| (found, a)))
    }

    /// The account code or a one-time call code. Caller ID counts as a factor when it is the
    /// account's registered phone and STIR/SHAKEN did not fail.
    fn check_code(&mut self, keys: &Keypad) -> anyhow::Result<Checked> {
        let was_locked = self.number_locked()?;
        let found = if was_locked {
            None
        } else {
            self.find_code(keys)?
        };
        let locked = found
            .as_ref()
            .is_some_and(|(_, a)| a.locked_until.is_some_and(|t| t > self.now));
        let accepted = match (&found, locked) {
            (Some((CodeMatch::CallCode { row, .. }, _)), false) => {
                self.db
                    .consume_call_code(*row, &self.call.call_sid, self.now)?
            }
            (Some((CodeMatch::Account(_), _)), false) => true,
            _ => false,
        };
        let (Some((found, registered)), true) = (found, accepted) else {
            // The failure counts against the accounts registered to the caller ID.
            let on_phone = match self.caller.number() {
                Some(n) => self.db.account_ids_on_phone(n.as_str())?,
                None => vec![],
            };
            self.ctx.metrics.verification("code", false);
            let number_locked = self.fail(FailureKind::AccountCode, &on_phone)? || was_locked;
            self.log(if locked {
                "code refused: account locked"
            } else {
                "code refused"
            });
            return Ok(Checked::Failed { number_locked });
        };

        self.ctx.metrics.verification("code", true);
        if self
            .call
            .account_id
            .as_ref()
            .is_some_and(|earlier| *earlier != registered.id)
        {
            // Factors prove something about the account they were proven for: the earlier
            // account's caller ID match, authenticator or answers say nothing about this one.
            // Start afresh, as if this code were the call's first.
            self.call.factors = Default::default();
            self.call.caller_id_match = false;
            self.call.verified_at = None;
            // Step-ups were offered to the earlier account; this one has not had its chance.
            self.call.state.stepped_up.clear();
            self.note("account switched", None);
            self.log("another account identified: earlier factors dropped");
        }
        let caller_matches = self
            .caller
            .number()
            .is_some_and(|n| n.as_str() == registered.phone);
        self.call.account_id = Some(registered.id);
        self.call.caller_id_match = caller_matches;
        if caller_matches && !self.call.stir_discredits_caller_id() {
            self.call.factors.add(Proof::CallerId);
        }
        self.call.factors.add(match found {
            CodeMatch::CallCode { .. } => Proof::CallCode,
            CodeMatch::Account(_) => Proof::AccountCode,
        });
        self.log("account identified");
        Ok(Checked::Passed)
    }

    fn check_totp(&mut self, keys: &Keypad) -> anyhow::Result<Checked> {
        let account = self
            .call
            .account_id
            .clone()
            .context("TOTP step without an account")?;
        let number_locked = self.number_locked()?;
        let blocked = number_locked || self.db.account_locked(&account, self.now)?;
        let unix_secs = u64::try_from(self.now / 1000).unwrap_or_default();
        let step = match (blocked, self.db.totp_secret(&self.keys, &account)?) {
            (false, Some(secret)) => totp::matching_step(&secret, keys.expose(), unix_secs),
            _ => None,
        };
        let fresh = match step {
            Some(step) => {
                let advanced = self.db.advance_totp_step(&account, step)?;
                if !advanced {
                    tracing::warn!(target: "callgate::security", account = %account, "TOTP replay refused");
                }
                advanced
            }
            None => false,
        };
        self.ctx.metrics.verification("totp", fresh);
        if fresh {
            self.call.factors.add(Proof::Totp);
            return Ok(Checked::Passed);
        }
        let kind = if step.is_some() {
            FailureKind::TotpReplay
        } else {
            FailureKind::Totp
        };
        let locked_now = self.fail(kind, std::slice::from_ref(&account))?;
        self.log("TOTP refused");
        Ok(Checked::Failed {
            number_locked: number_locked || locked_now,
        })
    }

    fn check_knowledge(&mut self, question: &str, keys: &Keypad) -> anyhow::Result<Checked> {
        let account = self
            .call
            .account_id
            .clone()
            .context("knowledge step without an account")?;
        let number_locked = self.number_locked()?;
        let blocked = number_locked || self.db.account_locked(&account, self.now)?;
        let right = !blocked
            && keys.is_all_digits()
            && self
                .db
                .check_knowledge_answer(&self.keys, &account, question, keys.expose())?;
        self.ctx.metrics.verification("knowledge", right);
        if right {
            self.call.factors.add(Proof::Knowledge);
            return Ok(Checked::Passed);
        }
        let locked_now = self.fail(FailureKind::Knowledge, std::slice::from_ref(&account))?;
        self.log("knowledge answer refused");
        Ok(Checked::Failed {
            number_locked: number_locked || locked_now,
        })
    }

    /// After a factor passed: the first time the call reaches `medium` it counts as verified.
    fn on_factor_passed(&mut self) -> anyhow::Result<()> {
        let level = self.call.level();
        if level.is_verified() && self.call.verified_at.is_none() {
            self.call.verified_at = Some(self.now);
            self.ctx
                .metrics
                .verified_calls
                .get_or_create(&crate::metrics::Level {
                    level: level.as_str(),
                })
                .inc();
            self.log("caller verified");
        }
        if level.is_verified()
            && let Some(account) = &self.call.account_id
        {
            self.db.reset_account_failures(account)?;
        }
        Ok(())
    }

    /// Counts a failure; true when it locked the calling number.
    fn fail(&mut self, kind: FailureKind, accounts: &[String]) -> anyhow::Result<bool> {
        self.call.failed_attempts += 1;
        let outcome = self.db.record_failure(
            &self.limits,
            self.caller.throttle_key(),
            accounts,
            &self.call.call_sid,
            kind,
            self.now,
        )?;
        let lockouts = &self.ctx.metrics.lockouts;
        // Lockouts go to the tamper-evident trail too (the security report reads them there);
        // accounts by id and numbers by pseudonym, since the trail can never be erased.
        for account in &outcome.accounts_locked {
            lockouts
                .get_or_create(&crate::metrics::Kind { kind: "account" })
                .inc();
            tracing::warn!(target: "callgate::security", account = %account, "account keypad verification locked after repeated failures");
            let step = self.call.step.clone();
            self.call
                .state
                .note(self.now, &step, "account locked", None);
            self.db.append_audit(
                "callgate",
                "security.account_locked",
                &format!("account:{account}"),
                &format!(
                    "{} failures in a row ({})",
                    self.limits.account_max_failures,
                    kind.as_str()
                ),
                self.now,
            )?;
        }
        if outcome.number_locked {
            lockouts
                .get_or_create(&crate::metrics::Kind { kind: "number" })
                .inc();
            tracing::warn!(target: "callgate::security", caller = %self.caller.masked(), "calling number locked out after repeated failures");
            self.note("number locked", None);
            self.db.append_audit(
                "callgate",
                "security.number_locked",
                &format!("number:{}", self.number_pseudonym()),
                &format!(
                    "{} failures within the window",
                    self.limits.number_max_failures
                ),
                self.now,
            )?;
        }
        if let Some(n) = outcome.global_alert {
            self.ctx.metrics.guessing_alerts.inc();
            self.ctx.alerts.raise(n, self.now);
        }
        Ok(outcome.number_locked)
    }

    fn handoff(&mut self, name: &str, said: Vec<Verb>) -> anyhow::Result<Response> {
        let Step::Handoff { via, .. } = step_in(self.script, name)? else {
            bail!("{name} is not a hand-off step");
        };
        let via = *via;
        let category = self.call.category.clone().unwrap_or_default();
        self.call.handed_off_at = Some(self.now);
        self.call.handoff = Some(via.as_str().to_owned());
        self.call.state.handoff_step = Some(name.to_owned());
        self.call.enter(HANDED_OFF);
        let handoff = crate::metrics::Handoff {
            category: category.clone(),
            level: self.call.level().as_str(),
        };
        self.ctx.metrics.handoffs.get_or_create(&handoff).inc();
        self.log(&format!("handing off to {category}"));
        let queue = self
            .script
            .departments
            .get(&category)
            .map_or(category.clone(), |d| d.queue.clone());
        self.call.state.note(
            self.now,
            name,
            "handed off",
            Some(format!("{} to {queue}", via.as_str())),
        );
        let mut doc = self.handoff_document(name)?;
        for (i, verb) in said.into_iter().enumerate() {
            doc.verbs.insert(i, verb);
        }
        Ok(doc)
    }

    fn handoff_document(&self, name: &str) -> anyhow::Result<Response> {
        let Step::Handoff {
            prompt,
            via,
            pop: fields,
            ..
        } = step_in(self.script, name)?
        else {
            bail!("{name} is not a hand-off step");
        };
        let category = self.call.category.clone().unwrap_or_default();
        let dept = self
            .script
            .departments
            .get(&category)
            .with_context(|| format!("hand-off without a defined department ({category:?})"))?;
        // The hand-off goes to the desk's telephony platform, which has the number as the
        // call's `From` anyway.
        let pop = match ScreenPop::load(self.db, self.call, self.now, Viewer::Desk) {
            Ok(mut pop) => {
                let ttl = i64::try_from(self.ctx.pop_url_ttl.as_millis()).unwrap_or(i64::MAX);
                pop.pop_url = Some(crate::agent::pop::url(
                    &self.keys,
                    &self.ctx.public_url,
                    &self.call.call_sid,
                    self.now.saturating_add(ttl),
                ));
                pop
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "screen-pop unavailable for hand-off");
                return Ok(Response::new()
                    .push(
                        self.prompt(super::script::model::TECHNICAL_ERROR_PROMPT)
                            .into_verb(),
                    )
                    .push(Verb::Hangup));
            }
        };
        let fields: PopFields = *fields;
        let action = Some(format!(
            "{}/twilio/ivr/{HANDOFF_RESULT}",
            self.ctx.public_url
        ));
        let verb = match via {
            Via::Enqueue => {
                let workflow = dept
                    .workflow_sid
                    .clone()
                    .or_else(|| self.ctx.workflow_sid.clone());
                Verb::Enqueue(Enqueue {
                    queue: dept.queue.clone(),
                    action,
                    task: workflow
                        .as_ref()
                        .map(|_| pop.task_attributes(TASK_ATTRIBUTES_MAX, fields)),
                    workflow_sid: workflow,
                })
            }
            Via::Client => Verb::Dial(Dial {
                action,
                target: DialTarget::Client {
                    identity: dept.client_identity.clone().unwrap_or_default(),
                    parameters: pop.client_parameters(fields),
                },
            }),
            Via::Sip => Verb::Dial(Dial {
                action,
                target: DialTarget::Sip {
                    uri: pop.sip_uri(
                        dept.sip_uri
                            .as_ref()
                            .map(SipUri::as_str)
                            .unwrap_or_default(),
                        fields,
                    ),
                },
            }),
            Via::Number => Verb::Dial(Dial {
                action,
                target: DialTarget::Number {
                    number: dept.number.clone().unwrap_or_default(),
                },
            }),
        };
        let mut doc = Response::new();
        if let Some(p) = prompt {
            doc = doc.push(self.prompt(p).into_verb());
        }
        Ok(doc.push(verb))
    }

    /// The hand-off ended: the caller was bridged and the agent hung up, or nobody answered.
    fn after_handoff(&mut self, result: Option<&str>) -> anyhow::Result<Response> {
        if self.call.step != HANDED_OFF {
            return self.resume();
        }
        let Some(name) = self.call.state.handoff_step.clone() else {
            return self.resume();
        };
        let Step::Handoff {
            on_completed,
            on_unanswered,
            ..
        } = step_in(self.script, &name)?
        else {
            return self.resume();
        };
        let result = result.unwrap_or("unknown");
        let served = matches!(result, "completed" | "answered" | "bridged" | "hangup");
        self.call.state.handoff_result = Some(result.to_owned());
        self.log(&format!("hand-off ended: {result}"));
        let waited = self.call.handed_off_at.map_or(String::new(), |t| {
            format!(" after {} s", (self.now - t) / 1000)
        });
        self.note("hand-off ended", Some(format!("{result}{waited}")));
        let to = if served { on_completed } else { on_unanswered }.clone();
        self.goto(&to, vec![])
    }
}

/// A step of the script; the returned borrow is of the script, not of the flow, so the flow can
/// change the call while it looks at the step.
fn step_in<'s>(script: &'s Script, name: &str) -> anyhow::Result<&'s Step> {
    script
        .step(name)
        .with_context(|| format!("script {} has no step {name:?}", script.name))
}

/// Renders a document, falling back to a bare hang-up if it cannot be rendered (over 64 kB).
pub fn render(doc: &Response) -> String {
    doc.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "TwiML could not be rendered");
        twiml::Response::new()
            .push(Verb::Hangup)
            .render()
            .unwrap_or_default()
    })
}
