//! Wiring: building the application from settings and serving it. `state` builds what every
//! handler shares, `router` puts the routes and layers together, `ops` answers `/metrics` and
//! `/healthz`, `tasks` runs what goes on beside the server. `launch_with_tcp_listener` takes a
//! bound listener (tests bind port 0) and a shutdown future, and drains in-flight webhooks
//! before returning.

pub mod ops;
mod router;
mod state;
mod tasks;

use std::future::Future;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Settings;

pub use router::app;
pub use state::AppState;

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
    let tasks = tasks::Tasks::spawn(&state);
    let hub = state.hub.clone();
    let shutdown = async move {
        shutdown.await;
        // Open event streams would hold the graceful shutdown forever.
        hub.close();
    };
    // The peer's address is what `crate::intake` caps unfinished bodies per.
    let served = axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("serving");
    tasks.stop().await;
    served
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
