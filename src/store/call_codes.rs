//! One-time call codes: issued for an account, redeemed once, then dead.

use zeroize::Zeroizing;

use crate::verify::Keyring;

pub trait CallCodesDb {
    /// Issues a fresh code for `account_id`, valid `ttl_ms`. The code is returned once and
    /// stored only as a keyed hash. A code equal to another live code, or to an account's
    /// permanent code, is drawn again.
    fn issue_call_code(
        &self,
        keys: &Keyring,
        account_id: &str,
        ttl_ms: i64,
        now: i64,
    ) -> anyhow::Result<Zeroizing<String>>;

    /// A live (unused, unexpired) call code equal to `code`: its row id and its account. A
    /// code found under an older key version is re-keyed under the current one in the
    /// caller's transaction (unless an equal live code already exists under the current key:
    /// then it is left to expire).
    fn find_live_call_code(
        &self,
        keys: &Keyring,
        code: &str,
        now: i64,
    ) -> anyhow::Result<Option<(i64, String)>>;

    /// Marks the code used by `call_sid` if nobody used it first: of two calls presenting the
    /// same code at the same instant exactly one gets `true`.
    fn consume_call_code(&self, id: i64, call_sid: &str, now: i64) -> anyhow::Result<bool>;
}
