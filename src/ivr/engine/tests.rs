//! The engine on its own: the shipped script, a fresh database, no HTTP and no TwiML. What the
//! caller hears and what happens next are read from the `Reply`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::*;
use crate::domain::{CallSid, Keypad, Region};
use crate::ivr::reply::{Ask, Next};
use crate::ivr::script::{Catalog, Env, ScriptSet, check};
use crate::ivr::sounds::SoundIndex;
use crate::store::calls::ENDED;
use crate::verify::{AlertGate, LiveKeyring};

const SHIPPED: &str = include_str!("../../../ivr-scripts/default.toml");
const SID: &str = "CA0123456789abcdef0123456789abcdef";

struct Line {
    _dir: tempfile::TempDir,
    store: crate::store::Store,
    ctx: IvrContext,
}

fn line() -> Line {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(dir.path()).unwrap();
    let script = check(SHIPPED, Env::default()).script.unwrap();
    let ctx = IvrContext {
        keys: Arc::new(LiveKeyring::new(
            Keyring::load_or_create(dir.path()).unwrap(),
        )),
        scripts: Catalog::new(
            ScriptSet::single(Arc::new(script)),
            dir.path().join("sounds"),
        ),
        sounds: SoundIndex::default(),
        limits: Limits::default(),
        public_url: "https://cg.example".into(),
        workflow_sid: None,
        alerts: AlertGate::default(),
        metrics: Arc::new(crate::metrics::Metrics::default()),
        routing: RwLock::new(None),
        pop_url_ttl: Duration::from_secs(600),
        test_accounts_answer: false,
    };
    Line {
        _dir: dir,
        store,
        ctx,
    }
}

impl Line {
    fn webhook(&self, event: Event, digits: Option<&str>) -> Turn {
        let input = CallInput {
            call_sid: CallSid::parse(SID).unwrap(),
            caller: CallerId::from_twilio(Some("+48601234567"), Region::default()),
            called: None,
            stir: None,
            digits: Keypad::from_digits(digits),
            speech: None,
        };
        self.store
            .write_sync(|db| handle(db, &self.ctx, &input, event, crate::store::now_ms()))
            .unwrap()
    }
}

/// The text of a spoken utterance (the tests run without recordings).
fn text(u: &Utterance) -> &str {
    match &u.audio {
        Audio::Text { text, .. } => text,
        Audio::Recording { path } => panic!("a recording: {path}"),
    }
}

fn prompts(says: &[Utterance]) -> Vec<&str> {
    says.iter().map(|u| u.prompt.as_str()).collect()
}

fn ask(reply: &Reply) -> &Ask {
    match &reply.next {
        Next::Ask(ask) => ask,
        other => panic!("not a question: {other:?}"),
    }
}

#[test]
fn an_incoming_call_is_greeted_then_asked_for_its_code() {
    let line = line();
    let turn = line.webhook(Event::Incoming, None);
    assert!(turn.before.is_none());
    assert_eq!(prompts(&turn.reply.says), ["greeting"]);
    let greeting = &turn.reply.says[0];
    assert_eq!(greeting.language, "pl-PL");
    assert_eq!(text(greeting), "Dzień dobry, tu pomoc techniczna.");
    assert!(matches!(
        &greeting.audio,
        Audio::Text { voice: Some(v), .. } if v == "Polly.Ewa"
    ));
    let question = ask(&turn.reply);
    assert_eq!(question.step, "account-code");
    assert_eq!(prompts(&question.prompts), ["ask_code"]);
    // A code of any length, ended by `#`.
    assert_eq!(question.digits, None);
    assert_eq!(question.timeout_secs, 8);
    assert!(question.speech.is_none());
    assert_eq!(turn.call.step, "account-code");
    // Saved: the next webhook finds the call where this one left it.
    let again = line.webhook(Event::Incoming, None);
    assert_eq!(
        again.before.map(|c| c.step).as_deref(),
        Some("account-code")
    );
}

#[test]
fn silence_asks_again_with_the_no_input_prompt_then_ends_the_call() {
    let line = line();
    line.webhook(Event::Incoming, None);
    let first = line.webhook(Event::Input("account-code".into()), None);
    assert!(first.reply.says.is_empty());
    assert_eq!(
        prompts(&ask(&first.reply).prompts),
        ["no_input", "ask_code"]
    );
    let second = line.webhook(Event::Input("account-code".into()), None);
    assert_eq!(prompts(&second.reply.says), ["goodbye_no_input"]);
    assert_eq!(second.reply.next, Next::HangUp);
    assert_eq!(second.call.step, ENDED);
    assert_eq!(second.call.end_reason.as_deref(), Some("no_input"));
    // An ended call hangs up whatever comes next, saying nothing more.
    let after = line.webhook(Event::Input("account-code".into()), Some("1"));
    assert_eq!(after.reply, Reply::hang_up(vec![]));
}

#[test]
fn wrong_codes_are_asked_again_then_end_the_call_as_failed() {
    let line = line();
    line.webhook(Event::Incoming, None);
    for _ in 0..2 {
        let turn = line.webhook(Event::Input("account-code".into()), Some("123456789"));
        assert_eq!(
            prompts(&ask(&turn.reply).prompts),
            ["wrong_code", "ask_code"]
        );
    }
    let last = line.webhook(Event::Input("account-code".into()), Some("123456789"));
    assert_eq!(prompts(&last.reply.says), ["goodbye_failed"]);
    assert_eq!(last.reply.next, Next::HangUp);
    assert_eq!(last.call.failed_attempts, 3);
    assert_eq!(last.call.end_reason.as_deref(), Some("verification_failed"));
    // The journey says a code was refused, never which.
    let journey = serde_json::to_string(&last.call.state.journey).unwrap();
    assert!(journey.contains("failed") && !journey.contains("123456789"));
}

#[test]
fn a_webhook_for_another_step_asks_again_without_counting_an_attempt() {
    let line = line();
    line.webhook(Event::Incoming, None);
    let stale = line.webhook(Event::Input("menu".into()), Some("1"));
    assert_eq!(ask(&stale.reply).step, "account-code");
    assert_eq!(prompts(&ask(&stale.reply).prompts), ["ask_code"]);
    assert_eq!(stale.call.step_attempts, 0);
}

#[test]
fn the_apology_is_the_technical_error_prompt_then_hang_up() {
    let line = line();
    let reply = apology(&line.ctx, None);
    assert_eq!(prompts(&reply.says), ["technical_error"]);
    assert_eq!(reply.says[0].language, "pl-PL");
    assert_eq!(reply.next, Next::HangUp);
}
