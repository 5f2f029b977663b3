//! Agents and admins in SQLite.

use anyhow::Context;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::store::users::{Listed, Role, User, UsersDb, new_token, split_departments, token_hash};

/// One user by a unique column (`column` is one of this module's constants, never input).
fn by_column(
    conn: &Connection,
    column: &'static str,
    value: impl rusqlite::ToSql,
) -> anyhow::Result<Option<User>> {
    let sql = format!("SELECT id, name, role, departments FROM users WHERE {column} = ?1");
    let row: Option<(i64, String, String, String)> = conn
        .prepare_cached(&sql)?
        .query_row([value], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    Ok(row.and_then(|(id, name, role, departments)| {
        Role::parse(&role).map(|role| User {
            id,
            name,
            role,
            departments: split_departments(&departments),
        })
    }))
}

impl UsersDb for Connection {
    fn add_user(
        &self,
        name: &str,
        role: Role,
        departments: &[String],
        now: i64,
    ) -> anyhow::Result<Zeroizing<String>> {
        let token = new_token();
        let inserted = self.execute(
            "INSERT INTO users (name, role, token_hash, created_at, departments) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                name,
                role.as_str(),
                token_hash(&token),
                now,
                departments.join(",")
            ],
        );
        match inserted {
            Ok(_) => Ok(token),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::ConstraintViolation =>
            {
                anyhow::bail!("a user named {name:?} already exists")
            }
            Err(e) => Err(e).context("storing user"),
        }
    }

    fn user_by_token(&self, token: &str) -> anyhow::Result<Option<User>> {
        by_column(self, "token_hash", token_hash(token))
    }

    fn user_by_id(&self, id: i64) -> anyhow::Result<Option<User>> {
        by_column(self, "id", id)
    }

    fn users(&self) -> anyhow::Result<Vec<Listed>> {
        let mut stmt = self.prepare_cached(
            "SELECT name, role, departments, created_at FROM users ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, role, departments, created_at) = row?;
            if let Some(role) = Role::parse(&role) {
                out.push(Listed {
                    name,
                    role,
                    departments: split_departments(&departments),
                    created_at,
                });
            }
        }
        Ok(out)
    }

    fn user_by_name(&self, name: &str) -> anyhow::Result<Option<User>> {
        by_column(self, "name", name)
    }

    fn remove_user(&self, name: &str) -> anyhow::Result<bool> {
        Ok(self.execute("DELETE FROM users WHERE name = ?1", [name])? > 0)
    }
}
