//! What a person does with callgate, one function each: save, publish or roll back a script,
//! import the script files at start, add, change, unlock, remove or forget an account, issue a
//! call code, add or remove a user, choose what agents see, rotate or retire keys.
//!
//! The admin API, the `callgate` command and the file import all call these, so each rule is
//! applied in one place: the validation of what was typed, the audit entry of every change, and
//! for scripts the check that the whole published set still holds together. An entry point only
//! parses its input (JSON, flags), calls one function here and renders the result.
//!
//! A use case runs in the caller's transaction (`&dyn Db`, from `Store::write` or
//! `Store::write_sync`) and reaches the data only through the `Db` traits: no SQL here. It
//! answers `Ok`, a [`Refused`] (the person asked for something the rules do not allow: the
//! transaction still commits, since what a use case writes before refusing is only the audit
//! entry of the refusal itself), or a failure (the transaction rolls back). [`settle`] is that
//! rule for the entry points' transactions. Key custody, which changes the key file between
//! transactions, takes the `Store` itself.

pub mod accounts;
pub mod keys;
pub mod scripts;
pub mod settings;
pub mod users;

use std::fmt;

use crate::ivr::script::Problem;

/// Who did something, as the audit trail names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    kind: ActorKind,
    name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActorKind {
    User,
    Operator,
    Files,
    Demo,
}

impl Actor {
    /// An admin or agent of the API or the admin page, by their user name.
    pub fn user(name: &str) -> Self {
        Self {
            kind: ActorKind::User,
            name: name.to_owned(),
        }
    }

    /// An operator of the `callgate` command, by their login.
    pub fn cli(login: &str) -> Self {
        Self {
            kind: ActorKind::Operator,
            name: format!("cli:{login}"),
        }
    }

    /// The script files imported at start.
    pub fn files() -> Self {
        Self {
            kind: ActorKind::Files,
            name: "file".to_owned(),
        }
    }

    /// `serve --demo` seeding its demo data.
    pub fn demo() -> Self {
        Self {
            kind: ActorKind::Demo,
            name: "demo".to_owned(),
        }
    }

    /// The name the audit trail records.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The user acting, when a user is (not the command line, the files or the demo).
    pub fn user_name(&self) -> Option<&str> {
        (self.kind == ActorKind::User).then_some(self.name.as_str())
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Why a use case did not do what it was asked. The text is for the person who asked: it names
/// the rule, never a secret they typed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refused {
    /// What was typed breaks a rule (a malformed phone, an unknown role, ...).
    #[error("{0}")]
    Invalid(String),
    /// The account, user, script or version does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It clashes with what is there (a code in use, a number bound twice, ...).
    #[error("{0}")]
    Conflict(String),
    /// A script does not pass the checker: every problem, with its line.
    #[error("{message}")]
    Unchecked {
        message: String,
        problems: Vec<Problem>,
    },
}

impl Refused {
    pub fn invalid(e: impl fmt::Display) -> Self {
        Self::Invalid(e.to_string())
    }
}

/// A use case's failure: refused, or failed (the database, the key file, ...).
#[derive(Debug)]
pub enum Error {
    Refused(Refused),
    Failed(anyhow::Error),
}

impl From<Refused> for Error {
    fn from(r: Refused) -> Self {
        Self::Refused(r)
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Self::Failed(e)
    }
}

/// So that a caller that wants no refusal to commit (a batch that stands or falls whole, such as
/// the demo's seeding) can use `?` into `anyhow`.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(r) => r.fmt(f),
            Self::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// A use case's result as its transaction needs it: `Err` (roll back) only for a failure; a
/// refusal is an answer (`Ok(Err(..))`, which `Store::write` and `write_sync` commit), with
/// whatever the use case audited about it.
pub fn settle<T>(result: Result<T>) -> anyhow::Result<std::result::Result<T, Refused>> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(Error::Refused(r)) => Ok(Err(r)),
        Err(Error::Failed(e)) => Err(e),
    }
}
