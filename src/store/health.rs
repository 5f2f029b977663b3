//! Whether the storage answers (`/healthz`).

pub trait HealthDb {
    /// Succeeds when the database answers a trivial query.
    fn ping(&self) -> anyhow::Result<()>;
}
