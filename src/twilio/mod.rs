//! The Twilio boundary: how a webhook is authenticated and read (`signature`, `webhook`) and how
//! callgate's answer is written as TwiML (`twiml`). The call flow itself lives in `crate::ivr`.

pub mod client;
pub mod routes;
pub mod signature;
pub mod twiml;
pub mod webhook;
