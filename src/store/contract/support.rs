//! What several areas' contract tests share: rows a test needs from an area it does not test
//! (an account for calls to belong to), and two transactions started at the same moment.

use std::sync::Barrier;

use super::Fresh;
use crate::store::sqlite::DB_FILE;

/// An account `id` (written in SQL behind the store's back: the test then depends on the
/// schema alone, not on the accounts area's storage code, ported to PostgreSQL separately)
/// with a made-up name and phone, for calls' `account_id` to refer to.
pub fn account(fresh: &Fresh, id: &str) {
    if let Some(dir) = &fresh._dir {
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("open the file");
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .expect("busy timeout");
        conn.execute(
            "INSERT INTO accounts (id, name, phone, created_at) VALUES (?1, 'Test', '+48600100200', 0)",
            [id],
        )
        .expect("seed an account");
    }
    if let Some(db) = &fresh._db {
        let mut client =
            postgres::Client::connect(db.url(), postgres::NoTls).expect("connect to seed");
        client
            .execute(
                "INSERT INTO accounts (id, name, phone, created_at) VALUES ($1, 'Test', '+48600100200', 0)",
                &[&id],
            )
            .expect("seed an account");
    }
}

/// One `#[test]` per backend for each function named, which takes the whole [`Fresh`] (to seed
/// it): `sqlite_seeded::name` and `postgres_seeded::name`.
macro_rules! both_backends_seeded {
    ($($name:ident),* $(,)?) => {
        mod sqlite_seeded {
            $( #[test] fn $name() { let fresh = $crate::store::contract::sqlite(); super::$name(&fresh); } )*
        }
        mod postgres_seeded {
            $( #[test] fn $name() { let fresh = $crate::store::contract::postgres(); super::$name(&fresh); } )*
        }
    };
}
pub(crate) use both_backends_seeded;

/// Runs `a` and `b` on two threads released at the same moment; their answers. Each is meant
/// to run one transaction (`store.write_sync`): the start is lined up outside it, since on
/// SQLite the second BEGIN IMMEDIATE waits for the first transaction to end.
pub fn at_once<RA: Send, RB: Send>(
    a: impl FnOnce() -> RA + Send,
    b: impl FnOnce() -> RB + Send,
) -> (RA, RB) {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let ha = s.spawn(|| {
            barrier.wait();
            a()
        });
        let hb = s.spawn(|| {
            barrier.wait();
            b()
        });
        (ha.join().expect("thread a"), hb.join().expect("thread b"))
    })
}
