//! `callgate user ...`

use clap::{Subcommand, ValueEnum};

use super::{in_transaction, operator, refusal};
use crate::store::users::Role;
use crate::store::{Store, now_ms};
use crate::usecases::{self, users::ValidUser};

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

pub fn run(cmd: UserCommand, place: &crate::store::Location) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            name,
            role,
            departments,
        } => {
            let role = match role {
                RoleArg::Agent => Role::Agent,
                RoleArg::Admin => Role::Admin,
            };
            let user = ValidUser::parse(&name, role.as_str(), &[departments]).map_err(refusal)?;
            let store = Store::at(place)?;
            let token = in_transaction(&store, |db| {
                usecases::users::add(db, &operator(), &user, now_ms())
            })?;
            let name = &user.name;
            println!(
                "{} {name} created; its API token (shown only now):",
                role.as_str()
            );
            println!("{}", token.as_str());
            Ok(())
        }
    }
}
