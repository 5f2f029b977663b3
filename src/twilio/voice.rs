//! One voice webhook, inside its transaction: the engine's turn, then the reply written as
//! TwiML, with the desk's screen-pop when the call is handed off. The route handlers and the
//! tests that drive the flow without HTTP run exactly this.

use super::render::Twiml;
use super::twiml;
use crate::agent::ScreenPop;
use crate::agent::view::Viewer;
use crate::ivr::engine::{self, CallInput, Event, IvrContext};
use crate::ivr::reply::Reply;
use crate::store::Db;
use crate::store::calls::Call;

/// A webhook answered: the call before it (`None`: the webhook started it), the call now
/// (saved), and the document for the gateway.
pub struct Answered {
    pub before: Option<Call>,
    pub call: Call,
    pub twiml: twiml::Response,
}

/// Runs the engine for one webhook and writes its reply as TwiML.
pub fn answer(
    db: &dyn Db,
    ctx: &IvrContext,
    input: &CallInput,
    event: Event,
    now: i64,
) -> anyhow::Result<Answered> {
    let turn = engine::handle(db, ctx, input, event, now)?;
    let twiml = document(db, ctx, &turn.call, &turn.reply, now);
    Ok(Answered {
        before: turn.before,
        call: turn.call,
        twiml,
    })
}

/// `reply` as TwiML for `call`; a hand-off carries the desk's screen-pop, read here in the
/// webhook's transaction. A pop that cannot be read ends the call with an apology (see
/// `Twiml::document`) rather than failing the webhook: the call's state is kept.
pub fn document(
    db: &dyn Db,
    ctx: &IvrContext,
    call: &Call,
    reply: &Reply,
    now: i64,
) -> twiml::Response {
    let pop = match reply.hand_off() {
        Some(_) => match desk_pop(db, ctx, call, now) {
            Ok(pop) => Some(pop),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "screen-pop unavailable for hand-off");
                None
            }
        },
        None => None,
    };
    Twiml::of(ctx).document(reply, pop.as_ref())
}

/// The screen-pop a hand-off carries, with its short-lived URL. It goes to the desk's telephony
/// platform, which has the number as the call's `From` anyway.
fn desk_pop(db: &dyn Db, ctx: &IvrContext, call: &Call, now: i64) -> anyhow::Result<ScreenPop> {
    let mut pop = ScreenPop::load(db, call, now, Viewer::Desk)?;
    let ttl = i64::try_from(ctx.pop_url_ttl.as_millis()).unwrap_or(i64::MAX);
    pop.pop_url = Some(crate::agent::pop::url(
        &ctx.keys.get(),
        &ctx.public_url,
        &call.call_sid,
        now.saturating_add(ttl),
    ));
    Ok(pop)
}
