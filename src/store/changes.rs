//! What other processes changed, as a backend tells it: on PostgreSQL every node hears of the
//! others' writes (LISTEN/NOTIFY); SQLite, one node, tells nothing and the server's own polls
//! notice what the CLI changed.

/// One change another process (or this one) committed. Ids and names only: the tables are
/// the truth, and whoever is told reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A `call_events` row (the agents' live stream) with this number.
    CallEvent(i64),
    /// An audit entry of this action (`script.publish`, `settings.change`, ...).
    Audited(String),
    /// The feed was interrupted and is back: changes in between may have been missed, so
    /// whoever caches something reads it again.
    Resumed,
}

pub type ChangeFeed = tokio::sync::mpsc::UnboundedReceiver<Change>;
