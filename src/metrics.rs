//! Prometheus metrics, served at `GET /metrics` to admins (a bearer token, as Prometheus'
//! `authorization` scrape setting sends it). Counters hold no personal data: no number, no
//! account, only kinds, levels and departments.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Endpoint {
    /// `voice`, `account-code`, `totp`, `menu`, `handoff-result`, `status`.
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Verification {
    /// `code` (account or call code) or `totp`.
    pub factor: &'static str,
    /// `accepted` or `refused`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Level {
    pub level: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Handoff {
    pub category: String,
    pub level: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub webhook_seconds: Family<Endpoint, Histogram>,
    pub verifications: Family<Verification, Counter>,
    pub verified_calls: Family<Level, Counter>,
    pub handoffs: Family<Handoff, Counter>,
    /// `account` or `number`.
    pub lockouts: Family<Kind, Counter>,
    /// `technical_error` (the caller heard the apology), `bad_signature`, `bad_request`.
    pub errors: Family<Kind, Counter>,
    pub guessing_alerts: Counter,
    /// Speech menus: `routed` or `not_understood`.
    pub speech_routing: Family<Outcome, Counter>,
    /// CRM webhook attempts: `delivered`, `failed` (retried later), `given_up`.
    pub crm_deliveries: Family<Kind, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("callgate");
        let webhook_seconds = Family::<Endpoint, Histogram>::new_with_constructor(|| {
            // 0.25 ms .. ~4 s
            Histogram::new(exponential_buckets(0.00025, 2.0, 15))
        });
        let verifications = Family::<Verification, Counter>::default();
        let verified_calls = Family::<Level, Counter>::default();
        let handoffs = Family::<Handoff, Counter>::default();
        let lockouts = Family::<Kind, Counter>::default();
        let errors = Family::<Kind, Counter>::default();
        let guessing_alerts = Counter::default();
        let speech_routing = Family::<Outcome, Counter>::default();
        registry.register(
            "speech_routing",
            "Utterances at speech menus, routed or not understood",
            speech_routing.clone(),
        );
        let crm_deliveries = Family::<Kind, Counter>::default();
        registry.register(
            "webhook_seconds",
            "Time to answer a webhook",
            webhook_seconds.clone(),
        );
        registry.register(
            "verifications",
            "Codes and TOTPs checked, by result",
            verifications.clone(),
        );
        registry.register(
            "verified_calls",
            "Calls verified, by assurance level",
            verified_calls.clone(),
        );
        registry.register(
            "handoffs",
            "Calls handed to agents, by department and level",
            handoffs.clone(),
        );
        registry.register(
            "lockouts",
            "Accounts and calling numbers locked by the guessing limits",
            lockouts.clone(),
        );
        registry.register("errors", "Webhooks that failed, by kind", errors.clone());
        registry.register(
            "guessing_alerts",
            "Failures across the system above the alert threshold",
            guessing_alerts.clone(),
        );
        registry.register(
            "crm_deliveries",
            "CRM webhook deliveries, by result",
            crm_deliveries.clone(),
        );
        Self {
            registry,
            webhook_seconds,
            verifications,
            verified_calls,
            handoffs,
            lockouts,
            errors,
            guessing_alerts,
            speech_routing,
            crm_deliveries,
        }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&Kind { kind }).inc();
    }

    pub fn verification(&self, factor: &'static str, accepted: bool) {
        let result = if accepted { "accepted" } else { "refused" };
        self.verifications
            .get_or_create(&Verification { factor, result })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_the_text_format() {
        let m = super::Metrics::default();
        m.verification("totp", false);
        m.webhook_seconds
            .get_or_create(&super::Endpoint {
                endpoint: "voice".into(),
            })
            .observe(0.002);
        let text = m.render();
        assert!(
            text.contains("callgate_verifications_total{factor=\"totp\",result=\"refused\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("callgate_webhook_seconds_count{endpoint=\"voice\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
