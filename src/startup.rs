//! Building the application from settings and serving it: `launch_with_tcp_listener` takes a
//! bound listener (tests bind port 0) and a shutdown future, and drains in-flight webhooks
//! before returning.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::error_handling::HandleErrorLayer;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::agent::auth::AuthUser;
use crate::error::ApiError;
use crate::store::users::Role;
use axum::routing::get;
use axum::{BoxError, Router};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::clock::Clock;
use crate::config::Settings;
use crate::ivr::flow::AlertGate;
use crate::ivr::{Catalog, IvrContext, SoundIndex};
use crate::store::Store;
use crate::verify::{Keyring, LiveKeyring};

/// Twilio's webhooks are small forms; anything larger is not from Twilio.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Twilio gives up after 15 s; answer well before.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
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
        let store = Store::open_capped(
            &settings.data_dir,
            settings
                .max_database_mb
                .map(|mb| mb.saturating_mul(1024 * 1024)),
        )?;
        let keys = Keyring::load_or_create(&settings.data_dir)?;
        // A key file that is not the one the database was written with fails every caller:
        // refuse to start instead, saying so.
        crate::store::key_usage::check_keyring(&*store.conn()?, &keys)?;
        let scripts = load_scripts(&store, &settings, clock.now_ms())?;
        let sounds = SoundIndex::scan(&settings.sounds_dir);
        let ivr = IvrContext {
            keys: Arc::new(LiveKeyring::new(keys)),
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

/// Imports changed script files as new published versions, then loads every published version.
/// A broken file is reported and skipped: the version published before keeps answering calls.
fn load_scripts(store: &Store, settings: &Settings, now: i64) -> anyhow::Result<Catalog> {
    let mut conn = store.conn()?;
    let tx = conn.transaction()?;
    let env = crate::ivr::script::Env {
        sounds_dir: Some(&settings.sounds_dir),
    };
    let import = crate::ivr::script::import_dir(&tx, &settings.scripts_dir, env, now)?;
    for (name, version) in &import.published {
        tracing::info!(script = %name, version, "script file imported and published");
    }
    let catalog = Catalog::load(&tx, &settings.sounds_dir);
    if !import.rejected.is_empty() {
        let problems = import.rejected.join("\n  ");
        tracing::error!(
            "script files not imported (fix them; `callgate script check` lists the problems):\n  {problems}"
        );
        // With nothing published to fall back on, starting would leave the line dead.
        if catalog.is_err() {
            bail!("invalid IVR scripts:\n  {problems}");
        }
    }
    let catalog = catalog?;
    tx.commit()?;
    Ok(catalog)
}

/// The whole HTTP application, so tests can drive it with `oneshot` as well as over TCP.
pub fn app(state: AppState) -> Router {
    // Load shedding: at the limit a request is refused at once with 503, instead of queueing
    // until every caller's silence grows past Twilio's 15 s.
    let shed = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: BoxError| async {
            tracing::warn!("overloaded: request shed with 503");
            StatusCode::SERVICE_UNAVAILABLE
        }))
        .load_shed()
        // One count shared by every route: `Router::layer` applies a layer to each route on its
        // own, and a plain `concurrency_limit` would then count per route.
        .layer(GlobalConcurrencyLimitLayer::new(
            state.settings.max_in_flight.max(1),
        ));
    let intake = Arc::new(crate::intake::Intake::new(
        state.settings.body_read_timeout,
        MAX_BODY_BYTES,
        state.settings.max_body_reads_per_address,
        state.ivr.metrics.clone(),
    ));
    // Generated from the code once, at start; public, since it describes the API, not data.
    let openapi: Arc<str> = crate::openapi::json().into();
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/api/openapi.json",
            get(crate::openapi::openapi_json).with_state(openapi),
        )
        .route("/metrics", get(metrics))
        .merge(crate::twilio::routes::router())
        .merge(crate::agent::routes::router())
        .merge(crate::admin::router())
        .merge(crate::web::router())
        // Only the recordings the sound index knows (`crate::ivr::sounds`).
        .route("/sounds/{language}/{file}", get(crate::ivr::sounds::serve))
        .layer(axum::middleware::map_response(crate::web::headers::nosniff))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(shed)
        // Outside the in-flight limit: a body is read (or refused) before its request takes a
        // place, so slow senders hold none (see `crate::intake`).
        .layer(axum::middleware::from_fn_with_state(
            intake,
            crate::intake::read_body,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(CatchPanicLayer::new())
        // Outermost: every error of the API leaves in its one shape, wherever it was made.
        .layer(axum::middleware::from_fn(crate::error::json_error_bodies))
        .with_state(state)
}

/// The span of a request (at DEBUG, as tower-http's own): method and path, without the query,
/// and with a screen-pop URL's token left out, since the token opens the pop.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let path = request.uri().path();
    let path = if path.starts_with("/pop/") {
        "/pop/[token]"
    } else {
        path
    };
    tracing::debug_span!("request", method = %request.method(), path = %path)
}

/// Prometheus metrics, for admins only.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "Metrics in the OpenMetrics text format: webhook latency, verifications, lockouts, hand-offs, errors. Admins only: agents get 403.",
    responses(
        (status = 200, description = "The metrics.", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
async fn metrics(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<impl IntoResponse, ApiError> {
    if user.role != Role::Admin {
        return Err(ApiError::Forbidden);
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.ivr.metrics.render(),
    ))
}

/// Ready when the database answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Health check",
    description = "Ready when the database answers. No login.",
    responses(
        (status = 200, description = "Ready.", content_type = "text/plain", body = String, example = "ok"),
        (status = 503, description = "The database does not answer.")
    ),
    security(())
)]
async fn healthz(State(state): State<AppState>) -> Result<&'static str, StatusCode> {
    state
        .store
        .run(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .context("database")
        })
        .await
        .map(|()| "ok")
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)
}

pub async fn launch_with_tcp_listener(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if settings.insecure_skip_signature {
        tracing::warn!(
            "!!! --insecure-skip-signature: webhooks are NOT authenticated; anyone who can reach this server can \
             pretend to be Twilio. Never run like this in production. !!!"
        );
    }
    serve(AppState::build(settings)?, listener, shutdown).await
}

/// Serves an already built state (tests keep a clone of it to look inside).
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(
        listen = %listener.local_addr()?,
        public_url = %state.settings.public_url,
        data_dir = %state.settings.data_dir.display(),
        "callgate serving"
    );
    let watcher = tokio::spawn(watch_publishes(state.clone()));
    let purger = tokio::spawn(purge_daily(state.clone()));
    let routing = tokio::spawn(watch_routing_models(state.clone()));
    // The CRM deliveries run beside the server and stop with it (what is left waits in the
    // outbox for the next start).
    let crm = crate::agent::crm::spawn(state.clone());
    let hub = state.hub.clone();
    let shutdown = async move {
        shutdown.await;
        // Open event streams would hold the graceful shutdown forever.
        hub.close();
    };
    let hangup = reload_keys_on_sighup(&state);
    // The peer's address is what `crate::intake` caps unfinished bodies per.
    let served = axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("serving");
    watcher.abort();
    purger.abort();
    routing.abort();
    if let Some(task) = hangup {
        task.abort();
    }
    if let Some(task) = crm {
        task.abort();
    }
    served
}

/// Loads the newest trained speech-routing model at start and whenever `callgate routing train`
/// stores a new one.
async fn watch_routing_models(state: AppState) {
    let mut loaded = None;
    let mut tick = tokio::time::interval(PUBLISH_POLL);
    loop {
        tick.tick().await;
        let newest = state
            .store
            .run(|conn| {
                conn.query_row("SELECT MAX(id) FROM routing_models", [], |r| {
                    r.get::<_, Option<i64>>(0)
                })
                .context("routing models")
            })
            .await;
        let Ok(Some(id)) = newest else { continue };
        if loaded == Some(id) {
            continue;
        }
        match state
            .store
            .run(|conn| crate::ivr::training::latest(conn))
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
            .write(move |conn| crate::store::privacy::purge(conn, &retention, now))
            .await;
        match result {
            Ok(p) => tracing::info!(
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

/// How often the server looks for versions published by another process (`callgate script
/// publish`, a second server); the admin API reloads at once.
const PUBLISH_POLL: Duration = Duration::from_secs(2);

/// Reloads the live scripts when the audit trail shows a publish this process did not see.
async fn watch_publishes(state: AppState) {
    let last_publish = |conn: &mut rusqlite::Connection| {
        conn.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM audit_log WHERE action = 'script.publish'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .context("reading the audit trail")
    };
    let mut seen = state.store.run(last_publish).await.unwrap_or(0);
    let mut tick = tokio::time::interval(PUBLISH_POLL);
    loop {
        tick.tick().await;
        let Ok(latest) = state.store.run(last_publish).await else {
            continue;
        };
        if latest == seen {
            continue;
        }
        let s = state.clone();
        match state
            .store
            .run(move |conn| s.ivr.scripts.reload(conn))
            .await
        {
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

/// SIGHUP reads the key file again at once (it is also read within a second of changing).
fn reload_keys_on_sighup(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
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
        let ivr = state.ivr.clone();
        Some(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reading the key file again");
                // Errors are logged by `reload`; the keys in use stay.
                let _ = ivr.keys.reload();
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = state;
        None
    }
}

/// Resolves on Ctrl-C or SIGTERM, so in-flight webhooks finish before the process exits.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
