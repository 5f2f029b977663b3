//! The call flow. `script` reads, checks and versions the IVR scripts (`ivr-scripts/`),
//! `sounds` knows which prompts have recorded audio, and `engine` runs a script: one webhook's
//! `CallInput` in, a `Reply` out (what the caller hears and what happens next, in no gateway's
//! language), the call's state moved forward. `crate::twilio::render` writes a `Reply` as TwiML.

pub mod engine;
pub mod reply;
pub mod routing;
pub mod script;
pub mod sounds;
pub mod training;

pub use engine::{CallInput, Event, IvrContext};
pub use reply::Reply;
pub use script::{Catalog, Script, ScriptSet};
pub use sounds::SoundIndex;
