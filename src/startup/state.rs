//! The application state every handler and background task shares, and how it is built from
//! the settings: storage, keys, scripts, sounds.

use std::sync::Arc;

use anyhow::bail;

use crate::clock::Clock;
use crate::config::Settings;
use crate::ivr::{Catalog, IvrContext, SoundIndex};
use crate::store::Store;
use crate::verify::AlertGate;
use crate::verify::KeyCustody;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    /// The storage interface (`crate::store`): whichever backend the settings chose.
    pub store: Store,
    pub ivr: Arc<IvrContext>,
    /// The admin page's simulated calls.
    pub simulations: Arc<crate::admin::simulator::Simulations>,
    /// Live events for the agent consoles and the CRM delivery task.
    pub hub: Arc<crate::agent::live::Hub>,
    /// Every "now" of request handling and the background loops (tests move a manual one).
    pub clock: Clock,
}

impl AppState {
    /// Opens the data directory (database and key file, created on first use) and loads the
    /// scripts and the sound index.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::system())
    }

    /// `build`, on `clock` (a test's manual clock).
    pub fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        if settings.twilio_tokens.is_empty() && !settings.insecure_skip_signature {
            bail!(
                "CALLGATE_TWILIO_AUTH_TOKEN is not set: callgate cannot tell Twilio's webhooks from forgeries. \
                 Set it to your Twilio auth token (comma-separated to accept several while rotating), \
                 or pass --insecure-skip-signature for a local experiment."
            );
        }
        let store = Store::at_capped(
            &crate::store::Location {
                data_dir: settings.data_dir.clone(),
                database_url: settings.database_url.clone(),
            },
            settings
                .max_database_mb
                .map(|mb| mb.saturating_mul(1024 * 1024)),
        )?;
        let custody = KeyCustody::of(&store, &settings.data_dir)?;
        let keys = custody.open(&store, clock.now_ms())?;
        // Keys that are not the ones the database was written with fail every caller: refuse
        // to start instead, saying so.
        store.read_sync(|db| crate::store::key_usage::check_keyring(db, &keys))?;
        let scripts = load_scripts(&store, &settings, clock.now_ms())?;
        let sounds = SoundIndex::scan(&settings.sounds_dir);
        let ivr = IvrContext {
            keys: Arc::new(custody.live(&store, keys)),
            scripts,
            sounds,
            limits: settings.limits.clone(),
            public_url: settings.public_url.trim_end_matches('/').to_owned(),
            workflow_sid: settings.taskrouter_workflow_sid.clone(),
            alerts: AlertGate::default(),
            metrics: Arc::new(crate::metrics::Metrics::default()),
            routing: Default::default(),
            pop_url_ttl: settings.pop_url_ttl,
            test_accounts_answer: settings.test_accounts_answer,
        };
        Ok(Self {
            settings: Arc::new(settings),
            store,
            ivr: Arc::new(ivr),
            simulations: Default::default(),
            hub: Arc::new(crate::agent::live::Hub::default()),
            clock,
        })
    }
}

/// Imports changed script files as new published versions (`usecases::scripts::import_files`,
/// which checks that the published set holds together), in one transaction. A broken file is
/// reported and skipped: the version published before keeps answering calls.
fn load_scripts(store: &Store, settings: &Settings, now: i64) -> anyhow::Result<Catalog> {
    let env = crate::ivr::script::Env {
        sounds_dir: Some(&settings.sounds_dir),
    };
    let import = store.write_sync(|db| {
        crate::usecases::scripts::import_files(db, &settings.scripts_dir, env, now)
    })?;
    for (name, version) in &import.published {
        tracing::info!(script = %name, version, "script file imported and published");
    }
    if !import.rejected.is_empty() {
        tracing::error!(
            "script files not imported (fix them; `callgate script check` lists the problems):\n  {}",
            import.rejected.join("\n  ")
        );
    }
    Ok(Catalog::new(import.set, settings.sounds_dir.clone()))
}
