//! Plain SQL on a fresh backend, for tests only: seeding rows no storage method writes yet
//! on every backend (or not in the shape a test needs), tampering with what the store
//! protects, and reading every table back. Statements are written with `$1` placeholders;
//! for SQLite they become `?1`.

use postgres::types::ToSql;

use super::Fresh;

/// A value bound to a statement.
#[derive(Debug, Clone, Copy)]
pub enum Val<'a> {
    Int(i64),
    Text(&'a str),
    Bool(bool),
    Bytes(&'a [u8]),
    Null,
}

pub use Val::{Bool, Bytes, Int, Null, Text};

/// An optional text: `Null` for `None`.
pub fn opt(s: Option<&str>) -> Val<'_> {
    s.map_or(Null, Text)
}

pub enum Raw {
    Sqlite(rusqlite::Connection),
    Pg(postgres::Client),
}

impl Fresh {
    /// A connection of its own to the store's database.
    pub fn raw(&self) -> Raw {
        match (&self._dir, &self._db) {
            (Some(dir), _) => Raw::Sqlite(
                rusqlite::Connection::open(dir.path().join(crate::store::sqlite::DB_FILE))
                    .expect("open the SQLite file"),
            ),
            (_, Some(db)) => Raw::Pg(
                postgres::Client::connect(db.url(), postgres::NoTls)
                    .expect("connect to PostgreSQL"),
            ),
            _ => unreachable!("a fresh store has a directory or a database"),
        }
    }

    /// The SQLite data directory, `None` on PostgreSQL.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(|d| d.path())
    }
}

/// Whether `name`, an identifier a test wrote, is plain enough to paste into SQL.
fn plain(name: &str) -> bool {
    name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Raw {
    pub fn is_pg(&self) -> bool {
        matches!(self, Raw::Pg(_))
    }

    /// On PostgreSQL, gives text `columns` (`table.column`) a locale's collation (ICU's root
    /// locale: `alpha < Ärger < beta < Zeta`), as a database created with a locale would have:
    /// what sorts in byte order only because the test server's default is C shows. SQLite
    /// sorts text by its bytes whatever happens: nothing to do.
    pub fn collate_by_locale(&mut self, columns: &[&str]) {
        if !self.is_pg() {
            return;
        }
        for column in columns {
            let (table, column) = column.split_once('.').expect("table.column");
            assert!(plain(table) && plain(column), "{table}.{column}");
            self.exec(
                &format!(
                    "ALTER TABLE {table} ALTER COLUMN {column} TYPE TEXT COLLATE \"und-x-icu\""
                ),
                &[],
            );
        }
    }

    /// Runs one statement; the rows it changed, or the database's refusal.
    pub fn try_exec(&mut self, sql: &str, params: &[Val<'_>]) -> Result<u64, String> {
        match self {
            Raw::Sqlite(c) => {
                let values: Vec<rusqlite::types::Value> = params
                    .iter()
                    .map(|v| match *v {
                        Int(i) => rusqlite::types::Value::Integer(i),
                        Text(s) => rusqlite::types::Value::Text(s.to_owned()),
                        Bool(b) => rusqlite::types::Value::Integer(i64::from(b)),
                        Bytes(b) => rusqlite::types::Value::Blob(b.to_vec()),
                        Null => rusqlite::types::Value::Null,
                    })
                    .collect();
                c.execute(&sql.replace('$', "?"), rusqlite::params_from_iter(values))
                    .map(|n| n as u64)
                    .map_err(|e| e.to_string())
            }
            Raw::Pg(c) => {
                let texts: Vec<Option<String>> = params
                    .iter()
                    .map(|v| match *v {
                        Text(s) => Some(s.to_owned()),
                        _ => None,
                    })
                    .collect();
                let message = |e: postgres::Error| match e.as_db_error() {
                    Some(db) => db.message().to_owned(),
                    None => e.to_string(),
                };
                // A NULL is bound as the type the statement expects there.
                let statement = c.prepare(sql).map_err(message)?;
                let boxed: Vec<Box<dyn ToSql + Sync>> = params
                    .iter()
                    .zip(&texts)
                    .zip(statement.params())
                    .map(|((v, t), ty)| -> Box<dyn ToSql + Sync> {
                        match *v {
                            Int(i) => Box::new(i),
                            Text(_) => Box::new(t.clone()),
                            Bool(b) => Box::new(b),
                            Bytes(b) => Box::new(b.to_vec()),
                            Null if *ty == postgres::types::Type::INT8 => Box::new(None::<i64>),
                            Null if *ty == postgres::types::Type::BOOL => Box::new(None::<bool>),
                            Null if *ty == postgres::types::Type::BYTEA => {
                                Box::new(None::<Vec<u8>>)
                            }
                            Null => Box::new(None::<String>),
                        }
                    })
                    .collect();
                let refs: Vec<&(dyn ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
                c.execute(&statement, &refs).map_err(message)
            }
        }
    }

    /// Runs one statement that must succeed.
    pub fn exec(&mut self, sql: &str, params: &[Val<'_>]) -> u64 {
        self.try_exec(sql, params)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first column of every row of `sql` (no parameters), as text (NULL as "NULL").
    pub fn texts(&mut self, sql: &str) -> Vec<String> {
        match self {
            Raw::Sqlite(c) => {
                let mut stmt = c.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                stmt.query_map([], |r| {
                    Ok(match r.get_ref(0)? {
                        rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                        rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                        rusqlite::types::ValueRef::Real(f) => f.to_string(),
                        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                        rusqlite::types::ValueRef::Blob(b) => hex::encode(b),
                    })
                })
                .and_then(|rows| rows.collect())
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Raw::Pg(c) => {
                let sql = format!("SELECT x::TEXT FROM ({sql}) AS q(x)");
                c.query(&sql, &[])
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .iter()
                    .map(|r| {
                        r.get::<_, Option<String>>(0)
                            .unwrap_or_else(|| "NULL".into())
                    })
                    .collect()
            }
        }
    }

    /// Every row of every table callgate made, one line each, `table: values`: what a test
    /// searches for data that should be gone.
    pub fn dump(&mut self) -> Vec<String> {
        let tables = match self {
            Raw::Sqlite(_) => self.texts(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
                 ORDER BY name",
            ),
            Raw::Pg(_) => self.texts(
                "SELECT table_name FROM information_schema.tables
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
            ),
        };
        assert!(tables.len() > 10, "{tables:?}");
        let mut lines = Vec::new();
        for table in tables {
            assert!(plain(&table), "{table}");
            let rows = match self {
                Raw::Sqlite(c) => {
                    let columns: Vec<String> = c
                        .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
                        .and_then(|mut s| {
                            s.query_map([], |r| r.get::<_, String>(0))?
                                .collect::<Result<_, _>>()
                        })
                        .unwrap_or_else(|e| panic!("{table}: {e}"));
                    let quoted: Vec<String> =
                        columns.iter().map(|c| format!("quote(\"{c}\")")).collect();
                    self.texts(&format!(
                        "SELECT {} FROM \"{table}\"",
                        quoted.join(" || ',' || ")
                    ))
                }
                Raw::Pg(_) => self.texts(&format!("SELECT t::TEXT FROM \"{table}\" t")),
            };
            lines.extend(rows.into_iter().map(|r| format!("{table}: {r}")));
        }
        lines
    }
}

/// One `#[test]` per backend for each function named, which takes the whole [`Fresh`] (for
/// [`Fresh::raw`]): `sqlite::name` and `postgres::name`.
macro_rules! both_fresh {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { let fresh = $crate::store::contract::sqlite(); super::$name(&fresh); } )*
        }
        mod postgres {
            $( #[test] fn $name() { let fresh = $crate::store::contract::postgres(); super::$name(&fresh); } )*
        }
    };
}
pub(crate) use both_fresh;
