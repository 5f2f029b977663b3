//! The CRM webhook: every hand-off's screen-pop is POSTed as JSON to `CALLGATE_CRM_WEBHOOK_URL`
//! by a background task reading the outbox (`crate::store::outbox`), so the call never waits
//! for the CRM. Each request carries
//! - `X-Callgate-Timestamp`: Unix seconds when it was sent;
//! - `X-Callgate-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`;
//! - `X-Callgate-Delivery`: the outbox id, the same on every retry (for deduplication).
//!
//! A non-2xx answer, a timeout or a refused connection is retried with exponential backoff
//! (the base doubling up to 10 minutes), up to the configured number of attempts.
//!
//! Every server on the database runs this task (several nodes on PostgreSQL, or a second
//! server on one SQLite file): each claims the due deliveries for a while (the lease,
//! `CALLGATE_CRM_LEASE`, 15 s by default) before sending them, so a delivery is sent by one of
//! them, and renews its claim every third of the lease while it works through them, however
//! slow the CRM. A server that dies (kill -9, a lost machine) renews nothing: what it held is
//! due again when its lease runs out and another server sends it. So the lease is short: it is
//! how long a dead node delays its deliveries. (It was 200 s, fixed, sized to cover a whole
//! batch of timed-out requests without renewal: a node's death held its deliveries back for
//! over three minutes.) A server whose renewal failed (the database unreachable longer than
//! the lease) may see a delivery sent twice, with the same `X-Callgate-Delivery` id.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::config::CrmWebhook;
use crate::metrics::Kind;
use crate::startup::AppState;
use crate::store::{Store, now_ms, outbox};

const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How long delivered (and abandoned) rows are kept.
const KEEP_MS: i64 = 7 * 24 * 3600 * 1000;
/// The longest sleep between looks at the outbox (rows written by another process).
const IDLE: Duration = Duration::from_secs(30);
/// Deliveries claimed at a time; they are sent one after another.
const BATCH: u32 = 20;
/// How long a stop waits for the task to hand its claims back.
const STOP_WAIT: Duration = Duration::from_secs(5);

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

/// The running delivery task.
pub struct Running {
    handle: tokio::task::JoinHandle<()>,
    stop: Arc<Notify>,
}

impl Running {
    /// Stops the task: a delivery being sent is cut off and, with the rest of the claimed
    /// batch, handed back to the outbox (due at once, for the next start or another node),
    /// rather than left claimed until the lease runs out. Waits for that, up to a bound.
    pub async fn stop(self) {
        self.stop.notify_one();
        let mut handle = self.handle;
        if tokio::time::timeout(STOP_WAIT, &mut handle).await.is_err() {
            tracing::warn!(
                "the CRM delivery task did not stop in time; its claims wait for their lease"
            );
            handle.abort();
        }
    }
}

/// Starts the delivery task when a webhook is configured.
pub fn spawn(state: AppState) -> Option<Running> {
    let hook = state.settings.crm_webhook.clone()?;
    let stop = Arc::new(Notify::new());
    let handle = tokio::spawn(run(state, hook, stop.clone()));
    Some(Running { handle, stop })
}

async fn run(state: AppState, hook: CrmWebhook, stop: Arc<Notify>) {
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
        // A write: the claim keeps other nodes' tasks off these deliveries for the lease. A
        // stop asked for meanwhile waits (its permit is kept) until the claim is known.
        let lease_ms = i64::try_from(hook.lease.as_millis()).unwrap_or(i64::MAX / 4);
        let mut lease_until = now.saturating_add(lease_ms);
        let due = state
            .store
            .write(move |db| db.claim_crm_deliveries(now, BATCH, lease_until))
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %format!("{e:#}"), "claiming CRM deliveries failed");
                Vec::new()
            });
        let mut unsent: Vec<i64> = due.iter().map(|d| d.id).collect();
        let every = hook.lease / 3;
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for delivery in due {
            let sending = deliver(&state, &hook, &client, delivery);
            tokio::pin!(sending);
            loop {
                tokio::select! {
                    () = &mut sending => {
                        unsent.remove(0);
                        break;
                    }
                    _ = renew.tick() => {
                        lease_until = renew_lease(&state, &unsent, lease_until, lease_ms).await;
                    }
                    () = stop.notified() => {
                        release(&state.store, unsent, lease_until).await;
                        return;
                    }
                }
            }
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
            () = stop.notified() => return,
        }
    }
}

/// Extends this task's claim on the deliveries it has not sent yet to a lease from now; the
/// lease they are under from here (the old one if the renewal could not be written).
async fn renew_lease(state: &AppState, ids: &[i64], lease_until: i64, lease_ms: i64) -> i64 {
    if ids.is_empty() {
        return lease_until;
    }
    let new_until = state.clock.now_ms().saturating_add(lease_ms);
    let owned = ids.to_vec();
    let renewed = state
        .store
        .write(move |db| db.renew_crm_lease(&owned, lease_until, new_until))
        .await;
    match renewed {
        Ok(n) => {
            if n < ids.len() {
                tracing::warn!(
                    claimed = ids.len(),
                    renewed = n,
                    "CRM deliveries were claimed by another server after this one's lease ran out; they may be sent twice"
                );
            }
            new_until
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "renewing the claim on CRM deliveries failed; another server may send them when it runs out");
            lease_until
        }
    }
}

/// Hands claimed deliveries not sent back to the outbox. One cut off mid-request may have
/// reached the CRM: it is sent again, with the same `X-Callgate-Delivery` id.
async fn release(store: &Store, ids: Vec<i64>, lease_until: i64) {
    if ids.is_empty() {
        return;
    }
    let released = store
        .write(move |db| db.release_crm_deliveries(&ids, lease_until, now_ms()))
        .await;
    if let Err(e) = released {
        tracing::warn!(error = %format!("{e:#}"), "handing back claimed CRM deliveries failed; they are retried when their claim expires");
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
