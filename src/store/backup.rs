//! Online backup (`Store::backup`): a consistent copy of the database written while the server
//! keeps answering webhooks, checked before it is reported good. How to restore depends on the
//! backend; for SQLite see `store::sqlite::backup`.

/// What a checked backup holds.
#[derive(Debug)]
pub struct BackupReport {
    pub accounts: i64,
    pub calls: i64,
    pub bytes: u64,
}
