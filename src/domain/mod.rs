//! Types that parse, not validate: once a value of one of these types exists it is well-formed,
//! so the rest of callgate never re-checks an account code or a phone number.

mod account;
mod call_sid;
mod keypad;
mod knowledge;
mod phone;
mod sip_uri;
mod stir;

pub use account::{AccountCode, AccountId, AccountName, AttributeKey};
pub use call_sid::CallSid;
pub use keypad::Keypad;
pub use knowledge::{KnowledgeAnswer, MAX_IDENTIFIER_LEN, QuestionId, is_identifier};
pub use phone::{CallerId, PhoneNumber, Region, mask_number};
pub use sip_uri::SipUri;
pub use stir::StirVerstat;

/// Why a value from outside (CLI, webhook, script) was refused. The text is shown to the person
/// who typed it, so it names the rule, never the secret value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
