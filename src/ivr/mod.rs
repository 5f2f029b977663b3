//! The call flow. `script` reads the IVR scripts from `ivr-scripts/`, `sounds` knows which
//! prompts have recorded audio, and `flow` turns one webhook into the next TwiML document while
//! moving the call's state forward.

pub mod flow;
pub mod script;
pub mod sounds;

pub use flow::{Event, IvrContext, StepUrl};
pub use script::{Script, ScriptSet};
pub use sounds::SoundIndex;
