//! The call simulator of the admin page: a draft (or any saved version) answers a pretend call,
//! on the real engine, against a scratch database holding copies of the test accounts. The
//! admin chooses the caller ID and the dialed number, presses keys, stays silent, or ends the
//! hand-off, and sees what the caller would hear, the level reached and the screen-pop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::auth::Admin;
use crate::agent::ScreenPop;
use crate::agent::view::Viewer;
use crate::api::extract::{Json, Path};
use crate::domain::{CallSid, CallerId, Keypad, StirVerstat};
use crate::error::ApiError;
use crate::ivr::engine::{self, CallInput, Event, IvrContext, Speech};
use crate::ivr::script::{self, Catalog, Script, ScriptSet};
use crate::startup::AppState;
use crate::store::{Store, calls};
use crate::twilio::twiml::{DialTarget, Prompt, Response, Verb};
use crate::twilio::{render, voice};
use crate::verify::AlertGate;

/// Simulations kept at once; the least recently used goes first.
const MAX_SESSIONS: usize = 32;
/// A simulation nobody touched for this long is dropped.
const IDLE_MS: i64 = 30 * 60 * 1000;

struct Session {
    /// The scratch store (`Store::scratch_with_test_accounts`).
    db: Store,
    ctx: IvrContext,
    script: Arc<Script>,
    caller: CallerId,
    called: Option<String>,
    stir: Option<StirVerstat>,
    call_sid: CallSid,
    /// On the application's clock.
    last_used: i64,
}

/// The live simulations, by session id.
#[derive(Default)]
pub struct Simulations {
    sessions: Mutex<HashMap<String, Arc<Mutex<Session>>>>,
}

impl Simulations {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mutex<Session>>>> {
        match self.sessions.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn insert(&self, id: String, session: Session, now: i64) {
        let mut sessions = self.sessions();
        sessions.retain(|_, s| {
            s.lock()
                .map(|s| now - s.last_used < IDLE_MS)
                .unwrap_or(false)
        });
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .filter_map(|(k, s)| s.lock().ok().map(|s| (k.clone(), s.last_used)))
                .min_by_key(|(_, used)| *used)
                .map(|(k, _)| k);
            if let Some(k) = oldest {
                sessions.remove(&k);
            }
        }
        sessions.insert(id, Arc::new(Mutex::new(session)));
    }

    fn get(&self, id: &str) -> Option<Arc<Mutex<Session>>> {
        self.sessions().get(id).cloned()
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct StartBody {
    /// A draft to run (unsaved text from the editor) ...
    source: Option<String>,
    /// ... or a saved script: its published version, or `version`.
    script: Option<String>,
    #[serde(default, deserialize_with = "crate::api::extract::optional_integer")]
    version: Option<i64>,
    /// The caller ID; empty or absent for a withheld number.
    #[serde(default)]
    caller: String,
    /// The dialed number (`To`), which picks the language for numbers that set one.
    called: Option<String>,
    /// STIR/SHAKEN verdict, e.g. `TN-Validation-Passed-A` or `TN-Validation-Failed`.
    stir: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct StepBody {
    /// Keys pressed (`#` ends a code entry, as on the phone); absent = the caller stays silent.
    digits: Option<String>,
    /// Words the caller says (as Twilio's speech recognition would transcribe them).
    speech: Option<String>,
    /// Ends the hand-off with this result (`completed`, `no-answer`, `hangup`, ...).
    handoff_result: Option<String>,
}

/// One thing the caller hears.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Heard {
    kind: &'static str,
    text: Option<String>,
    language: Option<String>,
    url: Option<String>,
}

/// What the call waits for.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Waiting {
    step: String,
    digits: Option<u8>,
    timeout_secs: u32,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Handoff {
    via: &'static str,
    target: String,
    /// `<Task>` JSON, `<Parameter>`s or the SIP URI with its headers: the pop as the desktop
    /// receives it.
    carries: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Turn {
    session: String,
    script: String,
    version: i64,
    step: String,
    language: String,
    level: &'static str,
    factors: Vec<&'static str>,
    account: Option<String>,
    department: Option<String>,
    ended: bool,
    end_reason: Option<String>,
    hears: Vec<Heard>,
    waiting: Option<Waiting>,
    handoff: Option<Handoff>,
    screen_pop: Option<ScreenPop>,
    twiml: String,
}

#[utoipa::path(
    post,
    path = "/api/simulator",
    operation_id = "start_simulation",
    tag = "simulator",
    summary = "Start a simulated call",
    description = "A draft or saved script answers a pretend call on the real engine, against a scratch database with copies of the test accounts. Admins only: agents get 403.",
    request_body = StartBody,
    responses(
        (status = 200, description = "The call's first turn; `session` names the simulation.", body = Turn),
        (status = 400, description = "The request is malformed; `error` says why.", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such resource.", body = crate::openapi::ErrorBody),
        (status = 422, description = "The script does not pass the checker: `problems` lists every problem.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn start(
    State(state): State<AppState>,
    Admin(user): Admin,
    Json(body): Json<StartBody>,
) -> Result<Json<Turn>, ApiError> {
    let script = script_to_run(&state, &body).await?;
    let caller = CallerId::from_twilio(Some(body.caller.as_str()), state.settings.region);
    let called = body
        .called
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty() && c.len() <= 64 && !c.chars().any(char::is_control));
    let stir = StirVerstat::parse(body.stir.as_deref());
    let store = state.store.clone();
    let ivr = state.ivr.clone();
    let simulations = state.simulations.clone();
    let clock = state.clock.clone();
    tracing::info!(admin = %user.name, script = %script.name, "simulated call started");
    let turn = tokio::task::spawn_blocking(move || {
        let db = store.scratch_with_test_accounts()?;
        let ctx = IvrContext {
            keys: ivr.keys.clone(),
            scripts: Catalog::new(ScriptSet::single(script.clone()), Default::default()),
            sounds: ivr.sounds.clone(),
            limits: ivr.limits.clone(),
            public_url: ivr.public_url.clone(),
            workflow_sid: ivr.workflow_sid.clone(),
            alerts: AlertGate::default(),
            // Simulated calls count in their own metrics, never in the server's.
            metrics: Arc::new(crate::metrics::Metrics::default()),
            routing: std::sync::RwLock::new(ivr.routing_model()),
            pop_url_ttl: ivr.pop_url_ttl,
            // The scratch database holds copies of the test accounts and nothing else: what
            // the simulator is for.
            test_accounts_answer: true,
        };
        let mut raw = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let call_sid = CallSid::parse(&format!("CA{}", hex::encode(raw)))?;
        let mut session = Session {
            db,
            ctx,
            script,
            caller,
            called,
            stir,
            call_sid,
            last_used: clock.now_ms(),
        };
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let id = hex::encode(id);
        let turn = play(
            &mut session,
            &id,
            Event::Incoming,
            None,
            None,
            clock.now_ms(),
        )?;
        simulations.insert(id, session, clock.now_ms());
        anyhow::Ok(turn)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(Json(turn))
}

#[utoipa::path(
    post,
    path = "/api/simulator/{session}",
    operation_id = "step_simulation",
    tag = "simulator",
    summary = "Answer in a simulated call",
    description = "Presses keys, says words, stays silent or ends the hand-off in a simulation. Admins only: agents get 403.",
    params(("session" = String, Path, description = "The simulation, from `POST /api/simulator`.")),
    request_body = StepBody,
    responses(
        (status = 200, description = "The next turn.", body = Turn),
        (status = 400, description = "The request is malformed; `error` says why.", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such resource.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn step(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(id): Path<String>,
    Json(body): Json<StepBody>,
) -> Result<Json<Turn>, ApiError> {
    let session = state.simulations.get(&id).ok_or(ApiError::NotFound)?;
    if let Some(d) = &body.digits
        && (d.len() > 32
            || !d
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#'))
    {
        return Err(ApiError::BadRequest(
            "digits: up to 32 keypad keys (0-9, * and #)".into(),
        ));
    }
    let clock = state.clock.clone();
    let turn = tokio::task::spawn_blocking(move || {
        let mut session = match session.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = clock.now_ms();
        session.last_used = now;
        let sid = session.call_sid.clone();
        let current = session
            .db
            .read_sync(|db| db.call(sid.as_str()))?
            .map(|c| c.step)
            .unwrap_or_default();
        let event = match body.handoff_result {
            Some(result) => Event::HandoffResult(Some(result.chars().take(32).collect())),
            None => Event::Input(current),
        };
        // Twilio passes the keys before `#` as Digits; the `#` only ends the entry.
        let digits = body
            .digits
            .map(|d| d.trim_end_matches('#').to_owned())
            .filter(|d| !d.is_empty());
        let speech = body
            .speech
            .filter(|s| !s.trim().is_empty())
            .map(|text| Speech {
                text: text.chars().take(500).collect(),
                confidence: Some(0.9),
            });
        play(&mut session, &id, event, digits, speech, now)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(Json(turn))
}

/// Loads the script a simulation runs: a draft must pass the checker like anything published.
async fn script_to_run(state: &AppState, body: &StartBody) -> Result<Arc<Script>, ApiError> {
    let source = match (&body.source, &body.script) {
        (Some(source), _) => source.clone(),
        (None, Some(name)) => {
            let (name, version) = (name.clone(), body.version);
            state
                .store
                .read(move |db| {
                    let v = match version {
                        Some(v) => Some(v),
                        None => db.published_version(&name)?,
                    };
                    match v {
                        Some(v) => db.script_source(&name, v),
                        None => Ok(None),
                    }
                })
                .await
                .map_err(ApiError::internal)?
                .ok_or(ApiError::NotFound)?
        }
        (None, None) => {
            return Err(ApiError::BadRequest(
                "give the draft as `source`, or a saved `script`".into(),
            ));
        }
    };
    let checked = script::check(&source, state.ivr.scripts.env());
    match checked.script {
        Some(mut s) => {
            s.version = body.version.unwrap_or(0);
            Ok(Arc::new(s))
        }
        None => Err(ApiError::Invalid {
            message: "the script has errors; the simulator runs only scripts that pass the checker"
                .into(),
            problems: serde_json::to_value(&checked.problems).unwrap_or_default(),
        }),
    }
}

fn play(
    session: &mut Session,
    id: &str,
    event: Event,
    digits: Option<String>,
    speech: Option<Speech>,
    now: i64,
) -> anyhow::Result<Turn> {
    let input = CallInput {
        call_sid: session.call_sid.clone(),
        caller: session.caller.clone(),
        called: session.called.clone(),
        stir: session.stir,
        digits: Keypad::from_digits(digits.as_deref()),
        speech,
    };
    let span = tracing::info_span!("simulator", session = %id);
    let _in = span.enter();
    let (ctx, script) = (&session.ctx, &session.script);
    let (doc, call, pop) = session.db.write_sync(|db| {
        let existing = db.call(input.call_sid.as_str())?;
        let turn = engine::run(db, ctx, script, existing, &input, event, now)?;
        // The same TwiML the line would send, with the desk's pop; the admin sees the pop in full.
        let doc = voice::document(db, ctx, &turn.call, &turn.reply, now);
        let call = turn.call;
        let pop = match call.handed_off_at {
            Some(_) => Some(ScreenPop::load(db, &call, now, Viewer::Admin)?),
            None => None,
        };
        Ok((doc, call, pop))
    })?;
    let (hears, waiting, handoff) = describe(&doc);
    Ok(Turn {
        session: id.to_owned(),
        script: session.script.name.clone(),
        version: session.script.version,
        step: call.step.clone(),
        language: call.language.clone(),
        level: call.level().as_str(),
        factors: call.factors.iter().map(|f| f.as_str()).collect(),
        account: call.account_id.clone(),
        department: call.department.clone(),
        ended: call.step == calls::ENDED,
        end_reason: call.end_reason.clone(),
        hears,
        waiting,
        handoff,
        screen_pop: pop,
        twiml: render::to_xml(&doc),
    })
}

/// What a TwiML document does to the caller, in the simulator's words.
fn describe(doc: &Response) -> (Vec<Heard>, Option<Waiting>, Option<Handoff>) {
    let mut hears = Vec::new();
    let mut waiting = None;
    let mut handoff = None;
    let heard = |p: &Prompt| match p {
        Prompt::Say(s) => Heard {
            kind: "say",
            text: Some(s.text.clone()),
            language: s.language.clone(),
            url: None,
        },
        Prompt::Play(p) => Heard {
            kind: "play",
            text: None,
            language: None,
            url: Some(p.url.clone()),
        },
    };
    for verb in &doc.verbs {
        match verb {
            Verb::Say(s) => hears.push(heard(&Prompt::Say(s.clone()))),
            Verb::Play(p) => hears.push(heard(&Prompt::Play(p.clone()))),
            Verb::Gather(g) => {
                hears.extend(g.prompts.iter().map(heard));
                waiting = Some(Waiting {
                    step: g.action.rsplit('/').next().unwrap_or_default().to_owned(),
                    digits: g.num_digits,
                    timeout_secs: g.timeout_secs,
                });
            }
            Verb::Hangup => hears.push(Heard {
                kind: "hangup",
                text: None,
                language: None,
                url: None,
            }),
            Verb::Enqueue(e) => {
                handoff = Some(Handoff {
                    via: "enqueue",
                    target: e.queue.clone(),
                    carries: e.task.clone().unwrap_or_default(),
                })
            }
            Verb::Dial(d) => {
                handoff = Some(match &d.target {
                    DialTarget::Client {
                        identity,
                        parameters,
                    } => Handoff {
                        via: "client",
                        target: identity.clone(),
                        carries: parameters
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join("\n"),
                    },
                    DialTarget::Sip { uri } => Handoff {
                        via: "sip",
                        target: uri.split('?').next().unwrap_or_default().to_owned(),
                        carries: uri.clone(),
                    },
                    DialTarget::Number { number } => Handoff {
                        via: "number",
                        target: number.clone(),
                        carries: String::new(),
                    },
                })
            }
            Verb::Redirect { .. } => {}
        }
    }
    (hears, waiting, handoff)
}
