//! A database of its own for each test on PostgreSQL: created on a server the tests may use
//! (`CALLGATE_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`, the
//! server `cargo xtask test` makes sure of) and dropped when the guard goes.

use anyhow::Context;
use postgres::{Client, NoTls};

/// Where tests find a PostgreSQL server they may create databases on.
pub fn test_server_url() -> String {
    std::env::var("CALLGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh, empty database; dropped (with any connections left to it) on drop.
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    pub fn create() -> anyhow::Result<Self> {
        let admin_url = test_server_url();
        let name = format!("callgate_t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = Client::connect(&admin_url, NoTls).with_context(|| {
            format!(
                "connecting to the test server {}",
                super::redact(&admin_url)
            )
        })?;
        admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let mut url = url::Url::parse(&admin_url).context("the test server URL")?;
        url.set_path(&name);
        Ok(Self {
            admin_url,
            name,
            url: url.to_string(),
        })
    }

    /// The URL of the database, as `CALLGATE_DATABASE_URL` takes it.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin_url = self.admin_url.clone();
        // The sync client runs a runtime of its own: keep it off any async test's thread.
        let _ = std::thread::spawn(move || {
            if let Ok(mut admin) = Client::connect(&admin_url, NoTls) {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        })
        .join();
    }
}
