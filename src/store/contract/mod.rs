//! The storage contract: what every backend must do, as tests that run against each of them
//! (a SQLite file in a temporary directory, and a fresh PostgreSQL database). A test here is a
//! function taking a `&Store`; `both_backends!` makes one `#[test]` per backend of it.
//!
//! The PostgreSQL half needs a server (`CALLGATE_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); `cargo xtask test` starts one where none runs.

use std::sync::Arc;

use crate::store::Store;
use crate::store::postgres::PgBackend;
use crate::store::postgres::scratch_db::ScratchDatabase;

mod accounts;
mod audit;
mod call_codes;
mod calls;
mod copy;
mod events;
mod health;
mod key_ring;
mod key_usage;
mod knowledge;
mod outbox;
mod outcomes;
mod pop;
mod privacy;
mod raw;
mod reports;
mod routing;
mod schema;
mod scripts;
mod sessions;
mod settings;
mod support;
mod throttle;

/// A store on a fresh backend, and what keeps it alive.
pub struct Fresh {
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    _db: Option<ScratchDatabase>,
}

impl Fresh {
    /// The PostgreSQL database's URL (a PostgreSQL store only).
    pub fn url(&self) -> &str {
        self._db.as_ref().map_or("", |db| db.url())
    }
}

pub fn sqlite() -> Fresh {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("sqlite store");
    Fresh {
        store,
        _dir: Some(dir),
        _db: None,
    }
}

pub fn postgres() -> Fresh {
    let db = ScratchDatabase::create()
        .expect("a PostgreSQL test server (see CALLGATE_TEST_POSTGRES_URL)");
    let store = Store::new(Arc::new(
        PgBackend::connect(db.url()).expect("connect to the scratch database"),
    ));
    Fresh {
        store,
        _dir: None,
        _db: Some(db),
    }
}

/// One `#[test]` per backend for each contract function named: `sqlite::name` and
/// `postgres::name`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { let fresh = $crate::store::contract::sqlite(); super::$name(&fresh.store); } )*
        }
        mod postgres {
            $( #[test] fn $name() { let fresh = $crate::store::contract::postgres(); super::$name(&fresh.store); } )*
        }
    };
}
pub(crate) use both_backends;
