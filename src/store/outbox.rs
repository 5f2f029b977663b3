//! The CRM webhook's outbox: each hand-off's screen-pop is queued here in the webhook's own
//! transaction and POSTed by a background task (`crate::agent::crm`), so a slow or failing CRM
//! never holds up a call and a restart loses nothing.

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub call_sid: String,
    pub body: String,
    pub attempts: u32,
}

pub trait OutboxDb {
    /// Queues a delivery, due at once; returns its id.
    fn enqueue_crm(&self, call_sid: &str, body: &str, now: i64) -> anyhow::Result<i64>;

    /// Claims the deliveries due at `now`, oldest first, at most `limit`: each is due again
    /// only at `lease_until`, so no other sender (another node's task, on PostgreSQL) takes it
    /// while this one sends it. The sender then records the attempt (`crm_delivered`,
    /// `crm_failed`); if it dies before that, the delivery is taken again once the lease has
    /// run out. A claim writes, so it runs in a write transaction.
    fn claim_crm_deliveries(
        &self,
        now: i64,
        limit: u32,
        lease_until: i64,
    ) -> anyhow::Result<Vec<Delivery>>;

    /// Hands back claimed deliveries whose sender stops before sending them: due again at
    /// `now` instead of when the lease runs out. One recorded meanwhile, or claimed again by
    /// someone else (its lease is no longer `lease_until`), is left alone. Returns how many.
    fn release_crm_deliveries(
        &self,
        ids: &[i64],
        lease_until: i64,
        now: i64,
    ) -> anyhow::Result<usize>;

    /// Extends a claim still held (`lease_until`) to `new_until`: a sender that is slow, not
    /// dead, keeps its deliveries. Returns how many were still its own (one recorded
    /// meanwhile, or claimed by someone else after the lease ran out, is not).
    fn renew_crm_lease(
        &self,
        ids: &[i64],
        lease_until: i64,
        new_until: i64,
    ) -> anyhow::Result<usize> {
        // The same move of `next_at` from the lease to another time as a release.
        self.release_crm_deliveries(ids, lease_until, new_until)
    }

    /// When the next delivery falls due, if any is pending (a claimed one: when its lease
    /// runs out).
    fn next_crm_due(&self) -> anyhow::Result<Option<i64>>;

    fn crm_delivered(&self, id: i64, attempts: u32, now: i64) -> anyhow::Result<()>;

    /// A failed attempt: retried at `retry_at`, or given up when that is `None`.
    fn crm_failed(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> anyhow::Result<()>;

    /// Forgets delivered and abandoned deliveries older than `before` (they hold personal
    /// data); returns how many.
    fn purge_crm_deliveries(&self, before: i64) -> anyhow::Result<usize>;
}
