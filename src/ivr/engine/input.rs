//! What the engine reads of a webhook, in no gateway's words: each gateway's boundary reads its
//! own parameters into a `CallInput` (`crate::twilio::webhook::read_call` for Twilio's form).

use crate::domain::{CallSid, CallerId, Keypad, StirVerstat};

/// One webhook of a call, as the engine needs it.
#[derive(Debug, Clone)]
pub struct CallInput {
    pub call_sid: CallSid,
    pub caller: CallerId,
    /// The dialed number as the gateway sent it (used to choose a script); bounded and printable.
    pub called: Option<String>,
    /// The STIR/SHAKEN verdict on the caller ID, when the gateway sent one.
    pub stir: Option<StirVerstat>,
    /// The keys pressed in answer to a question (`None`: none).
    pub digits: Option<Keypad>,
    /// What the caller said, when a question listened for speech.
    pub speech: Option<Speech>,
}

/// The gateway's transcript of the caller's words. Personal data: never logged.
#[derive(Clone)]
pub struct Speech {
    pub text: String,
    /// The gateway's recognition confidence, 0-1; `None` when it sent none (some gateways
    /// never do) or nothing readable as a number.
    pub confidence: Option<f64>,
}

impl std::fmt::Debug for Speech {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speech")
            .field("text", &"[redacted]")
            .field("confidence", &self.confidence)
            .finish()
    }
}
