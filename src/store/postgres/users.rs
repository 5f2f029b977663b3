//! Agents and admins on PostgreSQL.

use anyhow::Context;
use postgres::types::ToSql;
use zeroize::Zeroizing;

use super::PgDb;
use crate::store::users::{Listed, Role, User, UsersDb, new_token, split_departments, token_hash};

impl PgDb<'_> {
    /// One user by a unique column (`column` is one of this module's constants, never input).
    fn user_by(
        &self,
        column: &'static str,
        value: &(dyn ToSql + Sync),
    ) -> anyhow::Result<Option<User>> {
        let sql = format!("SELECT id, name, role, departments FROM users WHERE {column} = $1");
        let row = self.tx()?.query_opt(sql.as_str(), &[value])?;
        Ok(row.and_then(|r| {
            Role::parse(r.get::<_, &str>(2)).map(|role| User {
                id: r.get(0),
                name: r.get(1),
                role,
                departments: split_departments(r.get(3)),
            })
        }))
    }
}

impl UsersDb for PgDb<'_> {
    fn add_user(
        &self,
        name: &str,
        role: Role,
        departments: &[String],
        now: i64,
    ) -> anyhow::Result<Zeroizing<String>> {
        let token = new_token();
        // ON CONFLICT rather than catching the violation: a failed statement would abort the
        // whole transaction on PostgreSQL.
        let inserted = self
            .tx()?
            .execute(
                "INSERT INTO users (name, role, token_hash, created_at, departments)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
                &[
                    &name,
                    &role.as_str(),
                    &token_hash(&token).as_slice(),
                    &now,
                    &departments.join(","),
                ],
            )
            .context("storing user")?;
        if inserted == 0 {
            anyhow::bail!("a user named {name:?} already exists");
        }
        Ok(token)
    }

    fn user_by_token(&self, token: &str) -> anyhow::Result<Option<User>> {
        self.user_by("token_hash", &token_hash(token).as_slice())
    }

    fn user_by_id(&self, id: i64) -> anyhow::Result<Option<User>> {
        self.user_by("id", &id)
    }

    fn users(&self) -> anyhow::Result<Vec<Listed>> {
        let rows = self.tx()?.query(
            "SELECT name, role, departments, created_at FROM users ORDER BY name",
            &[],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Role::parse(r.get::<_, &str>(1)).map(|role| Listed {
                    name: r.get(0),
                    role,
                    departments: split_departments(r.get(2)),
                    created_at: r.get(3),
                })
            })
            .collect())
    }

    fn user_by_name(&self, name: &str) -> anyhow::Result<Option<User>> {
        self.user_by("name", &name)
    }

    fn remove_user(&self, name: &str) -> anyhow::Result<bool> {
        Ok(self
            .tx()?
            .execute("DELETE FROM users WHERE name = $1", &[&name])?
            > 0)
    }
}
