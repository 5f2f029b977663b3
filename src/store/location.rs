//! Where callgate keeps its data: the data directory (the key file, and the SQLite database
//! unless a database URL names PostgreSQL).

use std::path::PathBuf;

use super::Store;

/// `CALLGATE_DATABASE_URL`: a PostgreSQL URL. Its password never reaches a log or a message.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let trimmed = url.trim();
        if !(trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://")) {
            anyhow::bail!(
                "the database URL must be a PostgreSQL URL (postgres://user@host/database), not {}",
                super::postgres::redact(trimmed)
            );
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&super::postgres::redact(&self.0))
    }
}

/// The data directory and, when set, the PostgreSQL database that holds the data instead of
/// the directory's SQLite file.
#[derive(Debug, Clone)]
pub struct Location {
    pub data_dir: PathBuf,
    pub database_url: Option<DatabaseUrl>,
}

impl Location {
    /// SQLite in `data_dir`: the embedded default.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.is_some()
    }
}

impl Store {
    /// Opens the store `location` names: PostgreSQL when it has a database URL, else SQLite
    /// in its data directory.
    pub fn at(location: &Location) -> anyhow::Result<Self> {
        Self::at_capped(location, None)
    }

    /// `at`, with SQLite's size cap (`--max-database-mb`; PostgreSQL's size is the operator's).
    pub fn at_capped(location: &Location, max_bytes: Option<u64>) -> anyhow::Result<Self> {
        match &location.database_url {
            Some(url) => Ok(Self::new(std::sync::Arc::new(
                super::postgres::PgBackend::connect(url.expose())?,
            ))),
            None => Self::open_capped(&location.data_dir, max_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        let url = DatabaseUrl::parse("postgres://cg:s3cret@db.internal:5432/callgate").unwrap();
        let shown = format!(
            "{:?}",
            Location {
                data_dir: "d".into(),
                database_url: Some(url),
            }
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("db.internal"), "{shown}");
    }

    #[test]
    fn only_postgres_urls_are_taken() {
        assert!(DatabaseUrl::parse("mysql://x@y/z").is_err());
        assert!(DatabaseUrl::parse("postgresql://x@y/z").is_ok());
    }
}
