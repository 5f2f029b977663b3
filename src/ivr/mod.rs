//! The call flow. `script` reads, checks and versions the IVR scripts (`ivr-scripts/`),
//! `sounds` knows which prompts have recorded audio, and `flow` runs a script: one webhook in,
//! the next TwiML document out, the call's state moved forward.

pub mod flow;
pub mod routing;
pub mod script;
pub mod sounds;
pub mod training;

pub use flow::{Event, HANDOFF_RESULT, IvrContext};
pub use script::{Catalog, Script, ScriptSet};
pub use sounds::SoundIndex;
