//! What `callgate routing train` learns from: the words callers said at speech menus, paired
//! with the category agents confirmed; and the models it stores (as JSON, which
//! `crate::ivr::routing::Model` reads back).

/// One call whose speech menu heard words and whose outcome names the category it was for.
#[derive(Debug, Clone)]
pub struct ConfirmedUtterance {
    pub call_sid: String,
    pub script: String,
    pub text: String,
    pub category: String,
}

/// A trained model and what it measured.
#[derive(Debug, Clone)]
pub struct NewRoutingModel<'a> {
    pub examples: i64,
    pub held_out: i64,
    pub accuracy: Option<f64>,
    pub baseline_accuracy: Option<f64>,
    /// The model, serialized as JSON.
    pub model_json: &'a str,
}

pub trait RoutingDb {
    fn confirmed_utterances(&self) -> anyhow::Result<Vec<ConfirmedUtterance>>;

    /// Stores a model; returns its id (ids grow: the newest model has the largest).
    fn store_routing_model(&self, model: &NewRoutingModel<'_>, now: i64) -> anyhow::Result<i64>;

    /// The id of the newest model, if any.
    fn newest_routing_model_id(&self) -> anyhow::Result<Option<i64>>;

    /// The newest model: (id, JSON).
    fn newest_routing_model(&self) -> anyhow::Result<Option<(i64, String)>>;
}
