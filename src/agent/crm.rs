//! The CRM webhook: every hand-off's screen-pop is POSTed as JSON to `CALLGATE_CRM_WEBHOOK_URL`
//! by a background task reading the outbox (`crate::store::outbox`), so the call never waits
//! for the CRM. Each request carries
//! - `X-Callgate-Timestamp`: Unix seconds when it was sent;
//! - `X-Callgate-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`;
//! - `X-Callgate-Delivery`: the outbox id, the same on every retry (for deduplication).
//!
//! A non-2xx answer, a timeout or a refused connection is retried with exponential backoff
//! (the base doubling up to 10 minutes), up to the configured number of attempts.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::CrmWebhook;
use crate::metrics::Kind;
use crate::startup::AppState;
use crate::store::outbox;

const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How long delivered (and abandoned) rows are kept.
const KEEP_MS: i64 = 7 * 24 * 3600 * 1000;
/// The longest sleep between looks at the outbox (rows written by another process).
const IDLE: Duration = Duration::from_secs(30);

/// `sha256=<hex>` of `"<timestamp>.<body>"` under `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    // An HMAC takes a key of any length, so this cannot fail.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait before attempt `attempts + 1`, after `attempts` failed ones.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Starts the delivery task when a webhook is configured.
pub fn spawn(state: AppState) -> Option<tokio::task::JoinHandle<()>> {
    let hook = state.settings.crm_webhook.clone()?;
    Some(tokio::spawn(run(state, hook)))
}

async fn run(state: AppState, hook: CrmWebhook) {
    let client = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "CRM webhook client could not be built; no deliveries");
            return;
        }
    };
    let mut last_purge = 0i64;
    loop {
        let now = state.clock.now_ms();
        if now - last_purge > 3600 * 1000 {
            last_purge = now;
            if let Err(e) = state
                .store
                .write(move |db| db.purge_crm_deliveries(now - KEEP_MS))
                .await
            {
                tracing::warn!(error = %format!("{e:#}"), "purging the CRM outbox failed");
            }
        }
        let due = state
            .store
            .read(move |db| db.due_crm_deliveries(now, 20))
            .await;
        let due = due.unwrap_or_else(|e| {
            tracing::error!(error = %format!("{e:#}"), "reading the CRM outbox failed");
            Vec::new()
        });
        for delivery in due {
            deliver(&state, &hook, &client, delivery).await;
        }
        let next = state
            .store
            .read(|db| db.next_crm_due())
            .await
            .ok()
            .flatten();
        let wait = match next {
            Some(at) => {
                Duration::from_millis(u64::try_from(at - state.clock.now_ms()).unwrap_or(0))
                    .min(IDLE)
            }
            None => IDLE,
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            () = state.hub.crm_wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

async fn deliver(
    state: &AppState,
    hook: &CrmWebhook,
    client: &reqwest::Client,
    delivery: outbox::Delivery,
) {
    let clock = state.clock.clone();
    let timestamp = clock.now_ms() / 1000;
    let sig = signature(&hook.secret, timestamp, &delivery.body);
    let sent = client
        .post(&hook.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Callgate-Timestamp", timestamp.to_string())
        .header("X-Callgate-Signature", sig)
        .header("X-Callgate-Delivery", delivery.id.to_string())
        .body(delivery.body.clone())
        .send()
        .await;
    let error = match sent {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
        Err(e) if e.is_timeout() => Some("timeout".to_owned()),
        Err(e) if e.is_connect() => Some("connection failed".to_owned()),
        Err(_) => Some("request failed".to_owned()),
    };
    let attempts = delivery.attempts + 1;
    let metrics = &state.ivr.metrics;
    let id = delivery.id;
    let written = match error {
        None => {
            metrics
                .crm_deliveries
                .get_or_create(&Kind { kind: "delivered" })
                .inc();
            tracing::info!(call_sid = %delivery.call_sid, attempts, "screen-pop delivered to the CRM");
            state
                .store
                .write(move |db| db.crm_delivered(id, attempts, clock.now_ms()))
                .await
        }
        Some(error) => {
            let give_up = attempts >= hook.max_attempts;
            let kind = if give_up { "given_up" } else { "failed" };
            metrics.crm_deliveries.get_or_create(&Kind { kind }).inc();
            let retry_at = (!give_up).then(|| {
                let wait = backoff(hook.retry_base, attempts);
                clock.now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2)
            });
            tracing::warn!(call_sid = %delivery.call_sid, attempts, error = %error, give_up, "CRM webhook delivery failed");
            state
                .store
                .write(move |db| db.crm_failed(id, attempts, &error, retry_at, clock.now_ms()))
                .await
        }
    };
    if let Err(e) = written {
        tracing::error!(error = %format!("{e:#}"), "recording a CRM delivery failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let base = Duration::from_secs(1);
        let waits: Vec<u64> = (1..=4).map(|a| backoff(base, a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8]);
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{}' | openssl dgst -sha256 -hmac secret
        let s = signature("secret", 1_700_000_000, "{}");
        assert_eq!(
            s,
            "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
        assert_ne!(s, signature("secret", 1_700_000_001, "{}"));
    }
}
