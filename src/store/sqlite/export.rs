//! Reading whole tables for `crate::store::copy` (migrating to PostgreSQL).

use anyhow::Context;
use rusqlite::types::ValueRef;

use super::SqliteBackend;
use crate::store::copy::{Sink, TABLES, Value};

impl SqliteBackend {
    /// Sends `table`'s rows to `sink` in chunks of `chunk` rows, in rowid order.
    pub fn export(&self, table: &str, chunk: usize, sink: &mut Sink<'_>) -> anyhow::Result<()> {
        let table = known(table)?;
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}"))?;
        let columns: Vec<String> = stmt
            .column_names()
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        let width = columns.len();
        let mut rows = stmt.query([])?;
        let mut batch = Vec::with_capacity(chunk);
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::Int(n),
                    ValueRef::Real(x) => Value::Real(x),
                    ValueRef::Text(t) => Value::Text(
                        String::from_utf8(t.to_vec())
                            .with_context(|| format!("{table}: text that is not UTF-8"))?,
                    ),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            batch.push(values);
            if batch.len() == chunk {
                sink(&columns, std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            sink(&columns, batch)?;
        }
        Ok(())
    }

    pub fn count_rows(&self, table: &str) -> anyhow::Result<i64> {
        let table = known(table)?;
        Ok(self
            .conn()?
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
    }
}

/// Table names go into SQL text: only the schema's own.
fn known(table: &str) -> anyhow::Result<&'static str> {
    TABLES
        .iter()
        .find(|t| **t == table)
        .copied()
        .with_context(|| format!("{table} is not one of callgate's tables"))
}
