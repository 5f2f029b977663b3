//! The copy to PostgreSQL leaves no table behind: `copy::TABLES` is every table of both
//! schemas (a table added to one and not to the list would silently stay in SQLite), but for
//! PostgreSQL's own key ring, which the key file fills.

use crate::store::copy::{POSTGRES_ONLY, TABLES};

#[test]
fn every_table_of_both_schemas_is_copied() {
    let dir = tempfile::tempdir().unwrap();
    let _store = crate::store::Store::open(dir.path()).unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("callgate.db")).unwrap();
    let mut sqlite: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    sqlite.sort();

    let fresh = super::postgres();
    let db_url = fresh.url().to_owned();
    let mut pg: Vec<String> = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&db_url, postgres::NoTls).unwrap();
        client
            .query(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_name <> 'callgate_migrations'",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    })
    .join()
    .unwrap();
    pg.retain(|t| !POSTGRES_ONLY.contains(&t.as_str()));
    pg.sort();

    let mut listed: Vec<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
    listed.sort();
    assert_eq!(sqlite, listed, "SQLite's tables");
    assert_eq!(pg, listed, "PostgreSQL's tables");
}
