//! Personal data: everything held about an account (export), erasing it (forget), and the
//! retention purge. Erasing keeps anonymous counts: calls stay, with their level, department and
//! times, linked to a random pseudonym instead of the account, so reports stay true.

use serde::Serialize;
use serde_json::Value;

pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// How long each kind of record is kept, in days; 0 keeps it for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Call journeys and what callers said at speech menus.
    pub journeys_days: u32,
    /// Agents' free-text notes.
    pub notes_days: u32,
    /// Caller numbers and the account link of calls, failed entries (numbers).
    pub call_details_days: u32,
    /// The agent consoles' event log and delivered CRM bodies.
    pub events_days: u32,
    /// The audit trail (the chain stays verifiable from an anchor).
    pub audit_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        crate::config::DEFAULT_RETENTION
    }
}

/// What a purge removed (or, dry, would remove).
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Purged {
    pub journeys: i64,
    pub notes: i64,
    pub call_details: i64,
    pub failures: i64,
    pub events: i64,
    pub crm_bodies: i64,
    pub audit_entries: i64,
}

/// The moment before which records kept `days` are purged; `None` keeps them for ever.
pub fn cutoff(now: i64, days: u32) -> Option<i64> {
    (days > 0).then(|| now - i64::from(days) * DAY_MS)
}

/// What forgetting an account changed.
#[derive(Debug, Serialize)]
pub struct Forgotten {
    pub pseudonym: String,
    pub calls_kept_anonymously: i64,
}

pub trait PrivacyDb {
    /// Claims the retention purge for the caller's transaction, until it ends: false when
    /// another transaction (on PostgreSQL, possibly another node) is purging at this moment,
    /// so two nodes' daily purges never run at once. SQLite has one writer: always true.
    fn claim_purge(&self) -> anyhow::Result<bool>;

    /// Removes what the retention settings no longer allow, in the caller's transaction; see
    /// [`purge_retention`], which also records it.
    fn purge_expired(&self, retention: &Retention, now: i64) -> anyhow::Result<Purged>;

    /// Everything held about an account, as JSON: the account (never a code, TOTP secret or
    /// answer: only whether they exist), its calls with journeys and outcomes, failed entries,
    /// one-time codes issued, and the audit entries about it.
    fn export_account(&self, id: &str) -> anyhow::Result<Value>;

    /// Erases an account's personal data in the caller's transaction: its name, phone, codes,
    /// authenticator and answers; and in its calls and the calls from its registered number,
    /// the caller numbers (also in failed entries), notes, spoken words, pending CRM
    /// deliveries and any number a journey holds (see [`number_forms`]). Its calls and
    /// failures stay, linked to a random pseudonym, with the account's attributes (the product
    /// configuration, which the recurring-problem report counts), so every count stays true.
    /// The audit trail records that an account was forgotten, not which.
    fn forget_account(&self, id: &str, actor: &str, now: i64) -> anyhow::Result<Forgotten>;
}

/// The ways a number can be written in stored text: as stored (E.164), without the `+`, in
/// national form (without the country code), and masked as logs and older journeys wrote it.
/// Longest first, so a shorter form never leaves part of a longer one behind.
pub fn number_forms(number: &str) -> Vec<String> {
    if !number.starts_with('+') {
        // `withheld`, `erased`, or empty: no one's number.
        return Vec::new();
    }
    let digits = number.trim_start_matches('+');
    let mut forms = vec![
        number.to_owned(),
        crate::domain::mask_number(number),
        digits.to_owned(),
    ];
    if let Ok(parsed) = phonenumber::parse(None, number) {
        let national = parsed.national().value().to_string();
        if national.len() >= 6 {
            forms.push(national);
        }
    }
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
}

/// Replaces every form in `forms` inside the string values of `value` by `erased`.
pub fn scrub_strings(value: &mut Value, forms: &[String]) {
    match value {
        Value::String(s) => {
            for form in forms {
                if s.contains(form.as_str()) {
                    *s = s.replace(form.as_str(), "erased");
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_strings(v, forms)),
        Value::Object(map) => map.values_mut().for_each(|v| scrub_strings(v, forms)),
        _ => {}
    }
}

/// Enforces the retention settings in the caller's transaction (a dry run is rolled back by
/// the caller) and records what it removed in the audit trail: the same on every backend.
/// `None` when another transaction holds the purge ([`PrivacyDb::claim_purge`]): another
/// node is purging now, and this one skips rather than doing (and auditing) it twice.
pub fn purge_retention(
    db: &dyn crate::store::Db,
    retention: &Retention,
    now: i64,
) -> anyhow::Result<Option<Purged>> {
    if !db.claim_purge()? {
        return Ok(None);
    }
    let purged = db.purge_expired(retention, now)?;
    if purged != Purged::default() {
        db.append_audit(
            "callgate",
            "retention.purge",
            "retention",
            &serde_json::to_string(&purged).unwrap_or_default(),
            now,
        )?;
    }
    Ok(Some(purged))
}
