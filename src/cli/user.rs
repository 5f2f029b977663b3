//! `callgate user ...`

use std::path::Path;

use clap::{Subcommand, ValueEnum};

use crate::store::users::{self, Role};
use crate::store::{Store, now_ms};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Agent,
    Admin,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an agent or admin; prints its API token (shown once) as the last line.
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Comma-separated categories an agent serves (`billing,technical`); none means all.
        #[arg(long, default_value = "")]
        departments: String,
    },
}

pub fn run(cmd: UserCommand, data_dir: &Path) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            name,
            role,
            departments,
        } => {
            let name = name.trim();
            if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                anyhow::bail!("user name must be 1-64 printable characters");
            }
            let role = match role {
                RoleArg::Agent => Role::Agent,
                RoleArg::Admin => Role::Admin,
            };
            let departments = users::parse_departments(&departments)?;
            let store = Store::open(data_dir)?;
            let token = store.write_sync(|db| db.add_user(name, role, &departments, now_ms()))?;
            println!(
                "{} {name} created; its API token (shown only now):",
                role.as_str()
            );
            println!("{}", token.as_str());
            Ok(())
        }
    }
}
