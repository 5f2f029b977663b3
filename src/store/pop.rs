//! Which browser session a screen-pop URL was first opened in (`crate::agent::pop`): a URL
//! opens in one agent session only. Only hashes of the URL's token and of the session's
//! binding cookie are stored.

/// Whether the URL may open in the session presenting `binding_hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopBinding {
    /// First opened now, or opened before by the same session.
    Bound,
    /// Opened before by another session.
    Other,
}

pub trait PopDb {
    /// Binds the URL whose token hashes to `token_hash` to the session whose cookie hashes to
    /// `binding_hash`, unless it is already bound (then says whether to this session). The
    /// bindings of expired URLs are swept on the way.
    fn bind_pop_url(
        &self,
        token_hash: &[u8],
        binding_hash: &[u8],
        call_sid: &str,
        now: i64,
        expires_at: i64,
    ) -> anyhow::Result<PopBinding>;
}
