//! What the engine works with besides the database and the call: the keys, the scripts, the
//! recordings, the limits, the metrics. Shared by every webhook of a server (`AppState::ivr`);
//! the simulator builds its own.

use std::sync::Arc;

use crate::ivr::routing::Model;
use crate::ivr::script::Catalog;
use crate::ivr::sounds::SoundIndex;
use crate::verify::AlertGate;
use crate::verify::{Limits, LiveKeyring};

/// Everything the flow needs besides the database.
pub struct IvrContext {
    /// The server key, read again when `callgate keys rotate` changes the key file.
    pub keys: Arc<LiveKeyring>,
    pub scripts: Catalog,
    pub sounds: SoundIndex,
    pub limits: Limits,
    /// Base of every absolute URL callgate puts into a document (the renderer's; the engine
    /// names steps and recordings, never URLs).
    pub public_url: String,
    /// `CALLGATE_TASKROUTER_WORKFLOW_SID`: enqueue through TaskRouter with a `<Task>` (the TwiML
    /// renderer's, for departments that name no workflow of their own).
    pub workflow_sid: Option<String>,
    pub alerts: AlertGate,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// What speech routing learned from the categories agents confirmed (`callgate routing
    /// train`), on top of each script's phrases.
    pub routing: std::sync::RwLock<Option<Arc<Model>>>,
    /// How long the screen-pop URL a hand-off carries can be opened.
    pub pop_url_ttl: std::time::Duration,
    /// Whether test accounts (the demo accounts among them) may identify a caller: in the
    /// admin page's simulator and on a `serve --demo` server only. Elsewhere their codes are
    /// unknown codes, since a test account's code may be public (the README prints the demo's).
    pub test_accounts_answer: bool,
}

impl IvrContext {
    pub fn routing_model(&self) -> Option<Arc<Model>> {
        match self.routing.read() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}
