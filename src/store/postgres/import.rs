//! Writing whole tables for `crate::store::copy` (migrating from SQLite), in one transaction:
//! a copy that fails half-way leaves the target as empty as it was.

use std::collections::HashMap;

use anyhow::{Context, bail};
use postgres::Transaction;
use postgres::types::ToSql;

use super::PgBackend;
use crate::store::copy::{Sink, TABLES, Value};

type Param = Box<dyn ToSql + Sync>;

impl PgBackend {
    /// Fills the empty database with the rows `source` sends for each of `tables`.
    pub fn import(
        &self,
        tables: &[&str],
        mut source: impl FnMut(&str, &mut Sink<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        super::off_runtime(|| self.import_here(tables, &mut source))
    }

    fn import_here(
        &self,
        tables: &[&str],
        source: &mut impl FnMut(&str, &mut Sink<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut client = self.pool.get().context("database connection")?;
        let mut tx = client.transaction()?;
        for &table in tables {
            let table = known(table)?;
            let has_rows: bool = tx
                .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])?
                .get(0);
            if has_rows {
                bail!(
                    "the target database is not empty ({table} has rows): copy into a new, empty database"
                );
            }
        }
        for &table in tables {
            let table = known(table)?;
            let types = column_types(&mut tx, table)?;
            let mut sink = |columns: &[String], rows: Vec<Vec<Value>>| -> anyhow::Result<()> {
                insert(&mut tx, table, &types, columns, rows)
            };
            source(table, &mut sink).with_context(|| format!("copying {table}"))?;
            restart_identity(&mut tx, table, &types)?;
        }
        tx.commit().context("committing the copy")
    }

    pub fn count_rows(&self, table: &str) -> anyhow::Result<i64> {
        let table = known(table)?;
        super::off_runtime(|| {
            let mut client = self.pool.get().context("database connection")?;
            Ok(client
                .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])?
                .get(0))
        })
    }
}

/// A column's PostgreSQL type, and whether the database numbers it (an identity column).
struct Column {
    data_type: String,
    identity: bool,
}

fn column_types(tx: &mut Transaction<'_>, table: &str) -> anyhow::Result<HashMap<String, Column>> {
    let rows = tx.query(
        "SELECT column_name, data_type, is_identity FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1",
        &[&table],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                Column {
                    data_type: r.get(1),
                    identity: r.get::<_, &str>(2) == "YES",
                },
            )
        })
        .collect())
}

fn insert(
    tx: &mut Transaction<'_>,
    table: &str,
    types: &HashMap<String, Column>,
    columns: &[String],
    rows: Vec<Vec<Value>>,
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut kinds = Vec::with_capacity(columns.len());
    for c in columns {
        let column = types
            .get(c)
            .with_context(|| format!("{table}.{c} has no place in the PostgreSQL schema"))?;
        kinds.push(column.data_type.as_str());
    }
    let width = columns.len();
    let mut params: Vec<Param> = Vec::with_capacity(rows.len() * width);
    let mut tuples = Vec::with_capacity(rows.len());
    for row in rows {
        let mut placeholders = Vec::with_capacity(width);
        for (value, (kind, name)) in row.into_iter().zip(kinds.iter().zip(columns)) {
            params.push(convert(value, kind).with_context(|| format!("{table}.{name}"))?);
            placeholders.push(format!("${}", params.len()));
        }
        tuples.push(format!("({})", placeholders.join(", ")));
    }
    // Column names come from the source's schema, checked against the target's above.
    let sql = format!(
        "INSERT INTO {table} ({}) OVERRIDING SYSTEM VALUE VALUES {}",
        columns.join(", "),
        tuples.join(", ")
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
    tx.execute(sql.as_str(), &refs)?;
    Ok(())
}

/// SQLite's value in the PostgreSQL column's type: integers as BIGINT, 0/1 as BOOLEAN.
fn convert(value: Value, kind: &str) -> anyhow::Result<Param> {
    Ok(match (kind, value) {
        ("bigint", Value::Int(n)) => Box::new(n),
        ("bigint", Value::Null) => Box::new(None::<i64>),
        ("boolean", Value::Int(n)) => Box::new(n != 0),
        ("boolean", Value::Null) => Box::new(None::<bool>),
        ("double precision", Value::Real(x)) => Box::new(x),
        ("double precision", Value::Int(n)) => Box::new(n as f64),
        ("double precision", Value::Null) => Box::new(None::<f64>),
        ("text", Value::Text(s)) => Box::new(s),
        ("text", Value::Null) => Box::new(None::<String>),
        ("bytea", Value::Blob(b)) => Box::new(b),
        ("bytea", Value::Null) => Box::new(None::<Vec<u8>>),
        (kind, value) => bail!("a {value:?} cannot go into a {kind} column"),
    })
}

/// After rows came with their own ids, the identity continues after the largest.
fn restart_identity(
    tx: &mut Transaction<'_>,
    table: &str,
    types: &HashMap<String, Column>,
) -> anyhow::Result<()> {
    for name in types.iter().filter(|(_, c)| c.identity).map(|(n, _)| n) {
        tx.query_one(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{name}'),
                               GREATEST(COALESCE(MAX({name}), 0), 1), MAX({name}) IS NOT NULL)
                 FROM {table}"
            ),
            &[],
        )?;
    }
    Ok(())
}

fn known(table: &str) -> anyhow::Result<&'static str> {
    TABLES
        .iter()
        .find(|t| **t == table)
        .copied()
        .with_context(|| format!("{table} is not one of callgate's tables"))
}
