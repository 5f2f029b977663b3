//! The IVR engine: one webhook in, the call's next moves out. `handle` runs one webhook inside
//! the caller's transaction: it reads the call's state, finds the script version the call runs,
//! applies the caller's input, walks the script's steps up to the next question (or the
//! hand-off, or goodbye), writes the new state and returns a `Reply`: what the caller hears
//! and what happens next. Writing the reply in a gateway's language is not the engine's
//! business (`crate::twilio::render` writes TwiML); nor are HTTP requests (`crate::twilio`
//! reads a webhook into a `CallInput`) or the screen-pop (the caller of the engine loads it).
//!
//! Steps that say something or file the call under a department run at once; steps that wait
//! for keys (menu, language, verify) end the reply with a question for that step. A wrong code
//! and an unknown code get the same words, and so does a correct code while the account or the
//! calling number is locked: nothing tells a guesser what was right.
//!
//! - `walk`: from a step to the next one that needs the caller; the call's start and end.
//! - `answer`: what the caller's keys, words or silence do at the step the call waits at.
//! - `speech`: a speech menu's words, routed to a department.
//! - `ask`: the question a step puts to the caller.
//! - `handoff`: leaving the IVR for an agent, and coming back when nobody answered.
//! - `proofs`: a verify step's keys, checked by `crate::verify`, taken into the call.

mod answer;
mod ask;
mod context;
mod handoff;
mod input;
mod proofs;
mod speech;
#[cfg(test)]
mod tests;
mod walk;

use std::sync::Arc;

use anyhow::Context;

pub use self::context::IvrContext;
pub use self::input::{CallInput, Speech};
use super::reply::{Audio, Reply, Utterance};
use super::script::model::TECHNICAL_ERROR_PROMPT;
use super::script::{Script, Step};
use crate::domain::{CallerId, mask_number};
use crate::store::Db;
use crate::store::calls::Call;
use crate::verify::{Keyring, Limits};

/// Steps run without a question in between, per webhook. The checker refuses silent loops;
/// this is the engine's own guard.
const MAX_HOPS: usize = 64;

/// What the webhook was.
#[derive(Debug, Clone)]
pub enum Event {
    /// A call comes in (Twilio: `POST /twilio/voice`).
    Incoming,
    /// An answer to the question of the step named (keys, words, or none: silence).
    Input(String),
    /// The hand-off ended, with the gateway's word for how (`DialCallStatus`/`QueueResult`).
    HandoffResult(Option<String>),
}

/// One webhook's work: the call as it was before (`None`: the webhook started it) and as it
/// is now (saved), and what the caller hears and what happens next.
#[derive(Debug)]
pub struct Turn {
    pub before: Option<Call>,
    pub call: Call,
    pub reply: Reply,
}

/// Runs one webhook inside the caller's transaction (the store's writer gives each webhook a
/// savepoint of its own): any error leaves the database as it was. The call row is read here,
/// once per webhook.
pub fn handle(
    db: &dyn Db,
    ctx: &IvrContext,
    input: &CallInput,
    event: Event,
    now: i64,
) -> anyhow::Result<Turn> {
    let existing = db.call(input.call_sid.as_str())?;
    let script = match &existing {
        Some(call) => script_of(db, ctx, call)?,
        None => ctx.scripts.live().for_number(input.called.as_deref()),
    };
    run(db, ctx, &script, existing, input, event, now)
}

/// The version a call started on; the published one if that version has gone (a call row
/// written by a status callback alone has none).
fn script_of(db: &dyn Db, ctx: &IvrContext, call: &Call) -> anyhow::Result<Arc<Script>> {
    if let Some(v) = call.script_version
        && let Some(script) = ctx.scripts.version(db, &call.script, v)?
    {
        return Ok(script);
    }
    let live = ctx.scripts.live();
    Ok(live
        .get(&call.script)
        .unwrap_or_else(|| live.for_number(call.called.as_deref())))
}

/// Runs one webhook on a given script and saves the call: the live line and the admin page's
/// simulator (which runs a draft on a scratch database) share every line of the engine.
pub fn run(
    db: &dyn Db,
    ctx: &IvrContext,
    script: &Script,
    existing: Option<Call>,
    input: &CallInput,
    event: Event,
    now: i64,
) -> anyhow::Result<Turn> {
    let mut call = match &existing {
        Some(call) => call.clone(),
        None => new_call(script, input, now),
    };
    let limits = script.lockout.apply(&ctx.limits);
    let mut flow = Flow {
        db,
        ctx,
        script,
        limits,
        call: &mut call,
        caller: &input.caller,
        now,
        keys: ctx.keys.get(),
    };
    let reply = match event {
        // Any webhook for a call we have no state for starts it from the beginning.
        _ if existing.is_none() => flow.start()?,
        Event::Incoming => flow.resume()?,
        Event::Input(step) if step == flow.call.step => flow.answer(input)?,
        // A webhook for another step than the call is in (a retry, a stale document): ask
        // again for what the call is waiting for.
        Event::Input(_) => flow.resume()?,
        Event::HandoffResult(result) => flow.after_handoff(result.as_deref())?,
    };
    db.save_call(&call, now)?;
    Ok(Turn {
        before: existing,
        call,
        reply,
    })
}

/// What a caller hears when callgate cannot continue (database down, disk full): a polite
/// message in the language of the script for the number called, then hang-up. The gateway
/// never hears a 5xx mid-call.
pub fn apology(ctx: &IvrContext, called: Option<&str>) -> Reply {
    let script = ctx.scripts.live().for_number(called);
    let language = script.language_for(called).to_owned();
    Reply::hang_up(vec![utterance(
        ctx,
        &script,
        &language,
        TECHNICAL_ERROR_PROMPT,
    )])
}

fn new_call(script: &Script, input: &CallInput, now: i64) -> Call {
    Call {
        call_sid: input.call_sid.as_str().to_owned(),
        caller: input.caller.display().to_owned(),
        called: input.called.clone(),
        stir_verstat: input.stir.as_ref().map(ToString::to_string),
        script: script.name.clone(),
        script_sha: script.sha.clone(),
        script_version: Some(script.version),
        language: script.language_for(input.called.as_deref()).to_owned(),
        step: script.start.clone(),
        state: Default::default(),
        step_attempts: 0,
        step_silences: 0,
        account_id: None,
        caller_id_match: false,
        factors: Default::default(),
        failed_attempts: 0,
        department: None,
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

/// A prompt in a language: the recording when `sounds/` has one (the script's `[sounds]`
/// entry, else `<language>/<prompt>.wav|mp3`), else its text, spoken.
fn utterance(ctx: &IvrContext, script: &Script, language: &str, prompt: &str) -> Utterance {
    let recording = match script.sounds.get(prompt) {
        Some(file) => ctx.sounds.file(language, file),
        None => ctx.sounds.find(language, prompt),
    };
    let audio = match recording {
        Some(path) => Audio::Recording { path },
        None => Audio::Text {
            text: script.prompt_text(language, prompt).to_owned(),
            voice: script.voice(language).map(str::to_owned),
        },
    };
    Utterance {
        prompt: prompt.to_owned(),
        language: language.to_owned(),
        audio,
    }
}

/// One webhook's walk: the call being moved along its script.
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
    /// A prompt in the call's language.
    fn prompt(&self, name: &str) -> Utterance {
        utterance(self.ctx, self.script, &self.call.language, name)
    }

    /// Adds to the call's journey (kept with the call; nothing secret goes in).
    fn note(&mut self, event: &str, detail: Option<String>) {
        let step = self.call.step.clone();
        self.call.state.note(self.now, &step, event, detail);
    }

    fn log(&self, what: &str) {
        tracing::info!(
            caller = %mask_number(&self.call.caller),
            step = %self.call.step,
            level = self.call.level().as_str(),
            "{what}"
        );
    }
}

/// A step of the script; the returned borrow is of the script, not of the flow, so the flow can
/// change the call while it looks at the step.
fn step_in<'s>(script: &'s Script, name: &str) -> anyhow::Result<&'s Step> {
    script
        .step(name)
        .with_context(|| format!("script {} has no step {name:?}", script.name))
}
