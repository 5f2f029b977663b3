//! callgate's reply to one webhook, as the engine decided it, in no gateway's language:
//! what the caller hears, in order, then what happens next (wait for an answer, go to an agent,
//! hang up). A dialect writes it out: `crate::twilio::render` as TwiML for Twilio; SignalWire's
//! cXML, Telnyx's TeXML and Somleng's subset will be siblings reading the same `Reply`.
//!
//! Nothing here is an absolute URL or a verb: where an answer goes is a step name, a recording
//! is a path under `sounds/`, a hand-off names the department's desk and every way to reach
//! it, so a dialect whose gateway cannot execute the script's choice (Somleng has neither
//! `<Enqueue>` nor `<Dial><Client>`) can pick another.
//!
//! What the webhook caused besides the reply is already recorded when the engine returns:
//! the journey notes and the counters in the call it hands back (saved in the webhook's
//! transaction), failures, locks and their audit entries in the store, the metrics.

use super::script::{PopFields, Via};
use crate::domain::SipUri;

/// What the caller hears and what happens next: `says` first (not interruptible: greetings,
/// notices, confirmations), then `next`. (Not an agent's wrap-up of a call: that is
/// `store::outcomes::Outcome`.)
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub says: Vec<Utterance>,
    pub next: Next,
}

/// What happens once the caller has heard `Reply::says`.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Wait for keys (or words) and send them back for `Ask::step`.
    Ask(Ask),
    /// Hand the call to an agent, with the screen-pop.
    HandOff(Box<HandOff>),
    /// Hang up.
    HangUp,
}

/// One prompt of the script, in one language: a recording when `sounds/` has one, else text
/// for the gateway's speech synthesis.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    /// The prompt's name in the script (`welcome`, `technical_error`).
    pub prompt: String,
    /// The language it is said in (`pl-PL`, `en-US`).
    pub language: String,
    pub audio: Audio,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Audio {
    /// A recording: its path under `sounds/` (served at `/sounds/<path>`).
    Recording { path: String },
    /// The prompt's text, in the script's voice for the language when it names one.
    Text { text: String, voice: Option<String> },
}

/// A question: the prompts (a re-prompt first, then the question itself) may be cut short by
/// the caller's keys; silence until `timeout_secs` comes back as an answer without keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// The step the answer is for.
    pub step: String,
    pub prompts: Vec<Utterance>,
    /// How many keys make a complete answer; `None`: any number, ended by `#`. (An answer of a
    /// fixed length may also be ended early by `#`.)
    pub digits: Option<u8>,
    pub timeout_secs: u32,
    /// Listen for words as well as keys (a speech menu).
    pub speech: Option<Listen>,
}

/// Speech recognition for a question.
#[derive(Debug, Clone, PartialEq)]
pub struct Listen {
    /// The recognition language.
    pub language: String,
    /// Phrases the recogniser should expect, comma-separated.
    pub hints: Option<String>,
}

/// The call leaves the IVR for an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct HandOff {
    /// The hand-off step of the script.
    pub step: String,
    /// Said just before the call goes (the step's own prompt).
    pub prompt: Option<Utterance>,
    /// How the script asks to reach the desk.
    pub via: Via,
    pub desk: Desk,
    /// What the screen-pop that travels with the call may carry.
    pub pop: PopFields,
    /// Said instead of `prompt`, before hanging up, when the hand-off cannot be made (the
    /// screen-pop could not be read): callgate's technical-error prompt.
    pub apology: Utterance,
}

/// The department a call is handed to, with every address its script gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Desk {
    /// The department's name (`Call::category`).
    pub department: String,
    /// The queue calls wait in (`via = "enqueue"`).
    pub queue: String,
    /// The department's TaskRouter workflow, when the script names one.
    pub workflow_sid: Option<String>,
    /// The agents' Voice SDK identity (`via = "client"`).
    pub client_identity: Option<String>,
    /// The agents' PBX (`via = "sip"`).
    pub sip_uri: Option<SipUri>,
    /// A plain phone line (`via = "number"`).
    pub number: Option<String>,
}

impl Reply {
    /// Says `says`, then hangs up.
    pub fn hang_up(says: Vec<Utterance>) -> Self {
        Self {
            says,
            next: Next::HangUp,
        }
    }

    pub fn hand_off(&self) -> Option<&HandOff> {
        match &self.next {
            Next::HandOff(h) => Some(h),
            _ => None,
        }
    }
}
