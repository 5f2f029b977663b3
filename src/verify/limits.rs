//! Limits on guessing, counted across calls (RFC 4226 §7.3): per account, per calling number and
//! for the whole system. Each is a setting with an environment variable (see `crate::config`).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Wrong codes or TOTPs in a row that lock an account's keypad verification.
    pub account_max_failures: u32,
    pub account_lock: Duration,
    /// Failures from one calling number within `number_window` that lock that number out.
    pub number_max_failures: u32,
    pub number_window: Duration,
    pub number_lock: Duration,
    /// Failures per minute across the system above which an alert is raised (never a lock: a
    /// global lock would let an attacker shut the line).
    pub global_alert_per_minute: u32,
}

impl Limits {
    /// The defaults, declared once: the server's flags (`callgate serve --help` shows them) and
    /// `callgate report security` read them from here.
    pub const DEFAULT: Self = Self {
        account_max_failures: 5,
        account_lock: Duration::from_secs(15 * 60),
        number_max_failures: 10,
        number_window: Duration::from_secs(3600),
        number_lock: Duration::from_secs(3600),
        global_alert_per_minute: 100,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
