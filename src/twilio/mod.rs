//! The Twilio boundary: how a webhook is authenticated and read into the engine's input
//! (`signature`, `webhook`), how one is answered in its transaction (`voice`), and how the
//! engine's reply is written as TwiML (`render`, on the document model of `twiml`). The call
//! flow itself lives in `crate::ivr`. `emulator` is the other side: Twilio played by callgate's
//! own tools (the softphone, the load generator).

pub mod emulator;
pub mod render;
pub mod routes;
pub mod signature;
pub mod twiml;
pub mod voice;
pub mod webhook;
