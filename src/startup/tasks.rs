//! What runs beside the server while it serves: the publish watcher, the retention purge, the
//! speech-model loader, the CRM deliveries and the SIGHUP key reload. They start with `serve`
//! and stop with it.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::AppState;

/// How often the server looks for versions published by another process (`callgate script
/// publish`, a second server) and for newly trained speech models; the admin API reloads at
/// once.
const PUBLISH_POLL: Duration = Duration::from_secs(2);

/// The running background tasks; `stop` ends them (what the CRM task had not delivered waits in
/// the outbox for the next start).
pub struct Tasks {
    tasks: Vec<JoinHandle<()>>,
    /// Stopped on its own terms: it hands back the deliveries it has claimed.
    crm: Option<crate::agent::crm::Running>,
}

impl Tasks {
    pub fn spawn(state: &AppState) -> Self {
        let mut tasks = vec![
            tokio::spawn(watch_publishes(state.clone())),
            tokio::spawn(purge_daily(state.clone())),
            tokio::spawn(watch_routing_models(state.clone())),
        ];
        tasks.extend(reload_keys_on_sighup(state));
        if let Some(feed) = state.store.changes() {
            tasks.push(tokio::spawn(relay_changes(state.clone(), feed)));
        }
        Self {
            tasks,
            crm: crate::agent::crm::spawn(state.clone()),
        }
    }

    pub async fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
        if let Some(crm) = self.crm {
            crm.stop().await;
        }
    }
}

/// What other nodes committed (PostgreSQL): their agents' events wake this node's event streams
/// at once, and a publish or a new speech model is loaded without waiting for the next poll.
async fn relay_changes(state: AppState, mut feed: crate::store::changes::ChangeFeed) {
    use crate::store::changes::Change;
    while let Some(change) = feed.recv().await {
        match change {
            Change::CallEvent(seq) => state.hub.wake(seq),
            Change::Audited(action) => {
                if action == "keys.ring" {
                    reload_keys(&state);
                }
                if action.starts_with("script.") {
                    state.hub.scripts_changed.notify_one();
                }
                if action == "routing.model" {
                    state.hub.routing_changed.notify_one();
                }
            }
            Change::Resumed => {
                reload_keys(&state);
                state.hub.scripts_changed.notify_one();
                state.hub.routing_changed.notify_one();
                state.hub.crm_wake.notify_one();
            }
        }
    }
}

/// Reads the keys again off the async workers (from the database, where another node changed
/// them); errors are logged by `reload` and the keys in use stay.
fn reload_keys(state: &AppState) {
    let keys = state.ivr.keys.clone();
    tokio::task::spawn_blocking(move || {
        let _ = keys.reload();
    });
}

/// Loads the newest trained speech-routing model at start and whenever `callgate routing train`
/// stores a new one.
async fn watch_routing_models(state: AppState) {
    let mut loaded = None;
    let mut tick = tokio::time::interval(PUBLISH_POLL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = state.hub.routing_changed.notified() => {}
        }
        let newest = state.store.read(|db| db.newest_routing_model_id()).await;
        let Ok(Some(id)) = newest else { continue };
        if loaded == Some(id) {
            continue;
        }
        match state
            .store
            .read(|db| crate::ivr::training::latest(db))
            .await
        {
            Ok(Some((id, model))) => {
                let model = Some(Arc::new(model));
                match state.ivr.routing.write() {
                    Ok(mut r) => *r = model,
                    Err(poisoned) => *poisoned.into_inner() = model,
                }
                tracing::info!(model = id, "speech routing model loaded");
                loaded = Some(id);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "speech routing model could not be loaded")
            }
        }
    }
}

/// The retention purge runs a minute after start, then once a day.
async fn purge_daily(state: AppState) {
    tokio::time::sleep(Duration::from_secs(60)).await;
    let mut tick = tokio::time::interval(Duration::from_secs(24 * 3600));
    loop {
        tick.tick().await;
        let retention = state.settings.retention;
        let now = state.clock.now_ms();
        let result = state
            .store
            .write(move |db| crate::store::privacy::purge_retention(db, &retention, now))
            .await;
        match result {
            // Another node holds the purge: it does today's work.
            Ok(None) => tracing::info!("retention purge skipped: another node is purging"),
            Ok(Some(p)) => tracing::info!(
                journeys = p.journeys,
                notes = p.notes,
                call_details = p.call_details,
                failures = p.failures,
                events = p.events,
                audit_entries = p.audit_entries,
                "retention purge done"
            ),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "retention purge failed; retried tomorrow")
            }
        }
    }
}

/// Reloads the live scripts when the audit trail shows a publish this process did not see.
async fn watch_publishes(state: AppState) {
    let last_publish = || state.store.read(|db| db.last_audit_seq("script.publish"));
    let mut seen = last_publish().await.unwrap_or(0);
    let mut tick = tokio::time::interval(PUBLISH_POLL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = state.hub.scripts_changed.notified() => {}
        }
        let Ok(latest) = last_publish().await else {
            continue;
        };
        if latest == seen {
            continue;
        }
        let s = state.clone();
        match state.store.read(move |db| s.ivr.scripts.reload(db)).await {
            Ok(()) => {
                tracing::info!("published scripts reloaded");
                seen = latest;
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "published scripts could not be reloaded; the previous ones keep answering")
            }
        }
    }
}

/// SIGHUP reads the keys again at once (a key file is also read within a second of changing;
/// a database's ring at each change another node makes).
fn reload_keys_on_sighup(state: &AppState) -> Option<JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("SIGHUP handler not installed: {e}");
                return None;
            }
        };
        let state = state.clone();
        Some(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reading the keys again");
                reload_keys(&state);
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = state;
        None
    }
}
