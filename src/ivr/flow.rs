//! Where a webhook turns into TwiML. `handle` runs one webhook as one database transaction:
//! it reads the call's state, applies the caller's input, writes the new state and returns the
//! next document. The caller's experience (issue "The verified call"):
//!
//! 1. greeting, then a `<Gather>` for the account code or one-time call code, ended by `#`;
//! 2. caller ID on the account's phone (and STIR/SHAKEN not failed), or a call code, verifies;
//!    otherwise an account with TOTP is asked for the authenticator code;
//! 3. at most `max_attempts` codes or choices per step, `max_silences` silences, then goodbye;
//! 4. a one-digit department menu, then the hand-off with the screen-pop.
//!
//! A wrong code and an unknown code get the same words, and so does a correct code while the
//! account or the calling number is locked: nothing tells a guesser what was right.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use anyhow::Context;
use rusqlite::Connection;

use super::script::{Department, HandoffKind, Script, ScriptSet};
use super::sounds::SoundIndex;
use crate::agent::ScreenPop;
use crate::domain::{AccountCode, CallerId, Keypad, mask_number};
use crate::store::calls::{Call, Step};
use crate::store::throttle::{self, FailureKind};
use crate::store::{accounts, call_codes, calls};
use crate::twilio::twiml::{
    self, Dial, DialTarget, Enqueue, Gather, Play, Prompt, Response, Say, Verb,
};
use crate::twilio::webhook::VoiceParams;
use crate::verify::{Factor, Keyring, Limits, totp};

/// Flex caps task attributes at 1024 characters.
const TASK_ATTRIBUTES_MAX: usize = 1024;

/// Everything the flow needs besides the database.
pub struct IvrContext {
    pub keys: Arc<Keyring>,
    pub scripts: Arc<ScriptSet>,
    pub sounds: SoundIndex,
    pub limits: Limits,
    /// Base of every absolute URL callgate puts into TwiML.
    pub public_url: String,
    /// `CALLGATE_TASKROUTER_WORKFLOW_SID`: enqueue through TaskRouter with a `<Task>`.
    pub workflow_sid: Option<String>,
    pub alerts: AlertGate,
    pub metrics: Arc<crate::metrics::Metrics>,
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

/// The webhook URLs of the flow's steps, under `/twilio/ivr/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUrl {
    AccountCode,
    Totp,
    Menu,
    HandoffResult,
}

impl StepUrl {
    pub fn path(self) -> &'static str {
        match self {
            Self::AccountCode => "/twilio/ivr/account-code",
            Self::Totp => "/twilio/ivr/totp",
            Self::Menu => "/twilio/ivr/menu",
            Self::HandoffResult => "/twilio/ivr/handoff-result",
        }
    }

    pub fn from_segment(segment: &str) -> Option<Self> {
        [
            Self::AccountCode,
            Self::Totp,
            Self::Menu,
            Self::HandoffResult,
        ]
        .into_iter()
        .find(|s| s.path().rsplit('/').next() == Some(segment))
    }

    fn step(self) -> Option<Step> {
        match self {
            Self::AccountCode => Some(Step::AccountCode),
            Self::Totp => Some(Step::Totp),
            Self::Menu => Some(Step::Menu),
            Self::HandoffResult => None,
        }
    }
}

/// What the webhook was.
#[derive(Debug, Clone)]
pub enum Event {
    /// `POST /twilio/voice`: a call comes in.
    Incoming,
    /// A `<Gather>` action or its fall-through `<Redirect>` (no digits: silence).
    Input(StepUrl),
    /// The `<Dial>`/`<Enqueue>` action: how the hand-off ended (`DialCallStatus`/`QueueResult`).
    HandoffResult(Option<String>),
}

/// Runs one webhook inside the caller's transaction (the store's writer gives each webhook a
/// savepoint of its own): any error leaves the database as it was.
pub fn handle(
    conn: &Connection,
    ctx: &IvrContext,
    params: &VoiceParams,
    event: Event,
    now: i64,
) -> anyhow::Result<Response> {
    let existing = calls::get(conn, params.call_sid.as_str())?;
    let fresh = existing.is_none();
    let mut call = match existing {
        Some(call) => call,
        None => new_call(&ctx.scripts, params, now),
    };
    let script = ctx.scripts.by_name(&call.script);
    let mut flow = Flow {
        conn,
        ctx,
        script: &script,
        call: &mut call,
        caller: &params.caller,
        now,
    };
    let doc = match event {
        // Any webhook for a call we have no state for starts it from the greeting.
        _ if fresh => flow.start(),
        Event::Incoming => flow.resume(),
        Event::Input(url) if url.step() == Some(flow.call.step) => {
            flow.input(params.digits.as_ref())?
        }
        // A webhook for another step than the call is in (a retry, a stale document): ask
        // again for what the call is waiting for.
        Event::Input(_) => flow.resume(),
        Event::HandoffResult(result) => flow.after_handoff(result.as_deref()),
    };
    calls::save(conn, &call, now)?;
    Ok(doc)
}

/// The document a caller hears when callgate cannot continue (database down, disk full): a polite
/// message in the script's language, then hang-up. Twilio never hears a 5xx mid-call.
pub fn technical_error(ctx: &IvrContext, params: &VoiceParams) -> Response {
    let script = ctx.scripts.for_number(params.called.as_deref());
    let language = script.language_for(params.called.as_deref()).to_owned();
    let say = speak(ctx, &script, &language, "technical_error");
    Response::new().push(say.into_verb()).push(Verb::Hangup)
}

fn new_call(scripts: &ScriptSet, params: &VoiceParams, now: i64) -> Call {
    let script = scripts.for_number(params.called.as_deref());
    Call {
        call_sid: params.call_sid.as_str().to_owned(),
        caller: params.caller.display().to_owned(),
        called: params.called.clone(),
        stir_verstat: params.stir.as_ref().map(|s| s.as_str().to_owned()),
        script: script.name.clone(),
        script_version: script.version.clone(),
        language: script.language_for(params.called.as_deref()).to_owned(),
        step: Step::AccountCode,
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

/// A prompt as TwiML: the recording when `sounds/` has one, else spoken in the call's language.
fn speak(ctx: &IvrContext, script: &Script, language: &str, prompt: &str) -> Prompt {
    match ctx.sounds.find(language, prompt) {
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

struct Flow<'a> {
    conn: &'a Connection,
    ctx: &'a IvrContext,
    script: &'a Script,
    call: &'a mut Call,
    caller: &'a CallerId,
    now: i64,
}

impl Flow<'_> {
    fn prompt(&self, name: &str) -> Prompt {
        speak(self.ctx, self.script, &self.call.language, name)
    }

    fn url(&self, step: StepUrl) -> String {
        format!("{}{}", self.ctx.public_url, step.path())
    }

    fn log(&self, what: &str) {
        tracing::info!(

            caller = %mask_number(&self.call.caller),
            step = self.call.step.as_str(),
            level = self.call.level().as_str(),
            "{what}"
        );
    }

    /// The greeting and the first question.
    fn start(&mut self) -> Response {
        self.log("call started");
        let greeting = self.prompt("greeting").into_verb();
        let mut doc = self.ask(Step::AccountCode, vec![]);
        doc.verbs.insert(0, greeting);
        doc
    }

    /// Asks again for whatever the call is waiting for.
    fn resume(&mut self) -> Response {
        match self.call.step {
            Step::AccountCode | Step::Totp | Step::Menu => self.ask(self.call.step, vec![]),
            Step::HandedOff => match self.call.category.clone().and_then(|c| {
                self.script
                    .departments
                    .iter()
                    .find(|d| d.category == c)
                    .cloned()
            }) {
                Some(dept) => self.handoff_document(&dept),
                None => Response::new().push(Verb::Hangup),
            },
            Step::Ended => Response::new().push(Verb::Hangup),
        }
    }

    /// A `<Gather>` for `step`, with `before` said first; if the caller says nothing the
    /// `<Redirect>` after it brings the call back to the same step without digits (silence).
    fn ask(&self, step: Step, before: Vec<Prompt>) -> Response {
        let s = &self.script.settings;
        let (url, question, num_digits, timeout) = match step {
            Step::Totp => (
                StepUrl::Totp,
                "ask_totp",
                Some(totp::DIGITS),
                s.totp_timeout_secs,
            ),
            Step::Menu => (StepUrl::Menu, "menu", Some(1), s.menu_timeout_secs),
            _ => (StepUrl::AccountCode, "ask_code", None, s.code_timeout_secs),
        };
        let mut prompts = before;
        prompts.push(self.prompt(question));
        let action = self.url(url);
        Response::new()
            .push(Verb::Gather(Gather {
                action: action.clone(),
                num_digits,
                finish_on_key: Some("#".into()),
                timeout_secs: timeout,
                prompts,
            }))
            .push(Verb::Redirect { url: action })
    }

    fn goodbye(&mut self, prompt: &str, reason: &str) -> Response {
        self.call.enter(Step::Ended);
        self.call.end_reason = Some(reason.to_owned());
        self.call.ended_at.get_or_insert(self.now);
        self.log(&format!("call ended by the IVR: {reason}"));
        Response::new()
            .push(self.prompt(prompt).into_verb())
            .push(Verb::Hangup)
    }

    fn input(&mut self, keys: Option<&Keypad>) -> anyhow::Result<Response> {
        let Some(keys) = keys else {
            return Ok(self.silence());
        };
        self.call.step_attempts += 1;
        match self.call.step {
            Step::AccountCode => self.account_code(keys),
            Step::Totp => self.totp(keys),
            Step::Menu => Ok(self.menu(keys)),
            Step::HandedOff | Step::Ended => Ok(self.resume()),
        }
    }

    fn silence(&mut self) -> Response {
        self.call.step_silences += 1;
        if self.call.step_silences >= self.script.settings.max_silences {
            return self.goodbye("goodbye_no_input", "no_input");
        }
        self.log("caller silent, prompting again");
        self.ask(self.call.step, vec![self.prompt("no_input")])
    }

    /// Another try at the current step, or goodbye when the attempts are used up.
    fn retry(&mut self, error_prompt: &str, reason: &str) -> Response {
        if self.call.step_attempts >= self.script.settings.max_attempts {
            return self.goodbye("goodbye_failed", reason);
        }
        self.ask(self.call.step, vec![self.prompt(error_prompt)])
    }

    /// The keypad may not verify anything from a number that is locked out.
    fn number_locked(&self) -> anyhow::Result<bool> {
        throttle::number_locked(self.conn, self.caller.throttle_key(), self.now)
    }

    fn find_code(&self, keys: &Keypad) -> anyhow::Result<Option<CodeMatch>> {
        if !keys.is_all_digits() {
            return Ok(None);
        }
        if AccountCode::parse(keys.expose()).is_ok()
            && let Some(id) = accounts::find_by_code(self.conn, &self.ctx.keys, keys.expose())?
        {
            return Ok(Some(CodeMatch::Account(id)));
        }
        let found = call_codes::find_live(self.conn, &self.ctx.keys, keys.expose(), self.now)?;
        Ok(found.map(|(row, account)| CodeMatch::CallCode { row, account }))
    }

    fn account_code(&mut self, keys: &Keypad) -> anyhow::Result<Response> {
        // Codes are unique, so one look-up finds the account; whether it is registered to the
        // caller ID decides if the caller ID counts as a factor.
        let found = if self.number_locked()? {
            None
        } else {
            self.find_code(keys)?
        };
        let account = match &found {
            Some(CodeMatch::Account(id)) | Some(CodeMatch::CallCode { account: id, .. }) => {
                Some(id.clone())
            }
            None => None,
        };
        // One read of the account serves the lock check and, if accepted, the caller ID match.
        let registered = match &account {
            Some(id) => accounts::get(self.conn, id)?,
            None => None,
        };
        let locked = registered
            .as_ref()
            .is_some_and(|a| a.locked_until.is_some_and(|t| t > self.now));
        let accepted = match (&found, locked) {
            (Some(CodeMatch::CallCode { row, .. }), false) => {
                call_codes::consume(self.conn, *row, &self.call.call_sid, self.now)?
            }
            (Some(CodeMatch::Account(_)), false) => true,
            _ => false,
        };
        let (Some(found), Some(account), Some(registered), true) =
            (found, account, registered, accepted)
        else {
            // The failure counts against the accounts registered to the caller ID.
            let on_phone = match self.caller.number() {
                Some(n) => accounts::ids_on_phone(self.conn, n.as_str())?,
                None => vec![],
            };
            self.ctx.metrics.verification("code", false);
            self.fail(FailureKind::AccountCode, &on_phone)?;
            self.log(if locked {
                "code refused: account locked"
            } else {
                "code refused"
            });
            return Ok(self.retry("wrong_code", "verification_failed"));
        };

        self.ctx.metrics.verification("code", true);
        let caller_matches = self
            .caller
            .number()
            .is_some_and(|n| n.as_str() == registered.phone);
        let stir_failed = self.call.stir_failed();
        self.call.account_id = Some(account.clone());
        self.call.caller_id_match = caller_matches;
        if caller_matches && !stir_failed {
            self.call.factors.add(Factor::CallerId);
        }
        match found {
            CodeMatch::CallCode { .. } => {
                self.call.factors.add(Factor::CallCode);
                self.verified()
            }
            CodeMatch::Account(_) => {
                self.call.factors.add(Factor::AccountCode);
                if self.call.level().is_verified() {
                    self.verified()
                } else if registered.has_totp {
                    self.call.enter(Step::Totp);
                    self.log("account identified, asking for TOTP");
                    Ok(self.ask(Step::Totp, vec![]))
                } else {
                    // Neither a matching caller ID nor TOTP: on to the menu, handed off
                    // unverified; the screen-pop says so.
                    self.call.enter(Step::Menu);
                    self.log("account identified without a second factor");
                    Ok(self.ask(Step::Menu, vec![]))
                }
            }
        }
    }

    fn totp(&mut self, keys: &Keypad) -> anyhow::Result<Response> {
        let account = self
            .call
            .account_id
            .clone()
            .context("TOTP step without an account")?;
        let blocked =
            self.number_locked()? || throttle::account_locked(self.conn, &account, self.now)?;
        let unix_secs = u64::try_from(self.now / 1000).unwrap_or_default();
        let step = match (
            blocked,
            accounts::totp_secret(self.conn, &self.ctx.keys, &account)?,
        ) {
            (false, Some(secret)) => totp::matching_step(&secret, keys.expose(), unix_secs),
            _ => None,
        };
        let fresh = match step {
            Some(step) => {
                let advanced = accounts::advance_totp_step(self.conn, &account, step)?;
                if !advanced {
                    tracing::warn!(target: "callgate::security",  account = %account, "TOTP replay refused");
                }
                advanced
            }
            None => false,
        };
        self.ctx.metrics.verification("totp", fresh);
        if fresh {
            self.call.factors.add(Factor::Totp);
            return self.verified();
        }
        self.fail(FailureKind::Totp, std::slice::from_ref(&account))?;
        self.log("TOTP refused");
        Ok(self.retry("wrong_totp", "verification_failed"))
    }

    fn verified(&mut self) -> anyhow::Result<Response> {
        self.call.verified_at = Some(self.now);
        let level = self.call.level().as_str();
        self.ctx
            .metrics
            .verified_calls
            .get_or_create(&crate::metrics::Level { level })
            .inc();
        if let Some(account) = &self.call.account_id {
            throttle::reset_account(self.conn, account)?;
        }
        self.call.enter(Step::Menu);
        self.log("caller verified");
        Ok(self.ask(Step::Menu, vec![]))
    }

    fn fail(&mut self, kind: FailureKind, accounts: &[String]) -> anyhow::Result<()> {
        self.call.failed_attempts += 1;
        let outcome = throttle::record_failure(
            self.conn,
            &self.ctx.limits,
            self.caller.throttle_key(),
            accounts,
            &self.call.call_sid,
            kind,
            self.now,
        )?;
        let lockouts = &self.ctx.metrics.lockouts;
        for _ in &outcome.accounts_locked {
            lockouts
                .get_or_create(&crate::metrics::Kind { kind: "account" })
                .inc();
        }
        if outcome.number_locked {
            lockouts
                .get_or_create(&crate::metrics::Kind { kind: "number" })
                .inc();
        }
        for account in &outcome.accounts_locked {
            tracing::warn!(target: "callgate::security",  account = %account, "account keypad verification locked after repeated failures");
        }
        if outcome.number_locked {
            tracing::warn!(target: "callgate::security",  caller = %self.caller.masked(), "calling number locked out after repeated failures");
        }
        if let Some(n) = outcome.global_alert {
            self.ctx.metrics.guessing_alerts.inc();
            self.ctx.alerts.raise(n, self.now);
        }
        Ok(())
    }

    fn menu(&mut self, keys: &Keypad) -> Response {
        let Some(dept) = self.script.department(keys.expose()).cloned() else {
            return self.retry("invalid_choice", "menu_failed");
        };
        self.call.category = Some(dept.category.clone());
        self.call.handed_off_at = Some(self.now);
        let handoff = crate::metrics::Handoff {
            category: dept.category.clone(),
            level: self.call.level().as_str(),
        };
        self.ctx.metrics.handoffs.get_or_create(&handoff).inc();
        self.call.handoff = Some(self.script.handoff.kind.as_str().to_owned());
        self.call.enter(Step::HandedOff);
        self.log(&format!("handing off to {}", dept.category));
        self.handoff_document(&dept)
    }

    fn handoff_document(&self, dept: &Department) -> Response {
        let pop = ScreenPop::load(self.conn, self.call, self.now);
        let pop = match pop {
            Ok(pop) => pop,
            Err(e) => {
                tracing::error!( error = %format!("{e:#}"), "screen-pop unavailable for hand-off");
                return Response::new()
                    .push(self.prompt("technical_error").into_verb())
                    .push(Verb::Hangup);
            }
        };
        let action = Some(self.url(StepUrl::HandoffResult));
        let handoff = &self.script.handoff;
        let verb = match handoff.kind {
            HandoffKind::Enqueue => {
                let workflow = dept
                    .workflow_sid
                    .clone()
                    .or_else(|| self.ctx.workflow_sid.clone());
                Verb::Enqueue(Enqueue {
                    queue: dept.queue().to_owned(),
                    action,
                    task: workflow
                        .as_ref()
                        .map(|_| pop.task_attributes(TASK_ATTRIBUTES_MAX)),
                    workflow_sid: workflow,
                })
            }
            HandoffKind::Client => Verb::Dial(Dial {
                action,
                target: DialTarget::Client {
                    identity: dept
                        .client_identity
                        .clone()
                        .or_else(|| handoff.client_identity.clone())
                        .unwrap_or_default(),
                    parameters: pop.client_parameters(),
                },
            }),
            HandoffKind::Sip => {
                let base = dept
                    .sip_uri
                    .clone()
                    .or_else(|| handoff.sip_uri.clone())
                    .unwrap_or_default();
                Verb::Dial(Dial {
                    action,
                    target: DialTarget::Sip {
                        uri: pop.sip_uri(&base),
                    },
                })
            }
        };
        Response::new()
            .push(self.prompt("transferring").into_verb())
            .push(verb)
    }

    /// The hand-off ended: the caller was bridged and the agent hung up, or nobody answered.
    fn after_handoff(&mut self, result: Option<&str>) -> Response {
        let result = result.unwrap_or("unknown");
        let served = matches!(result, "completed" | "answered" | "bridged" | "hangup");
        self.call.end_reason = Some(format!(
            "handoff_{}",
            result.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ));
        self.call.step = Step::Ended;
        self.call.ended_at.get_or_insert(self.now);
        self.log(&format!("hand-off ended: {result}"));
        let prompt = if served {
            "goodbye"
        } else {
            "agents_unavailable"
        };
        Response::new()
            .push(self.prompt(prompt).into_verb())
            .push(Verb::Hangup)
    }
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
