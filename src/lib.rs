//! callgate: verifies callers on the phone before an agent spends a second on them.
//!
//! Where things live:
//! - `twilio/`: webhooks in (signature, parameters read into the engine's `CallInput`), the
//!   engine's `Reply` out as TwiML (`twilio::render`).
//! - `api/`: the JSON API's extractors, whose refusals are `error::ApiError`s like any other.
//! - `ivr/`: the call flow and the scripts that drive it (`ivr::engine` walks a script: one
//!   webhook's input in, a `Reply` out, with no HTTP and no gateway language).
//! - `verify/`: keys, TOTP, call codes, assurance levels, guessing limits.
//! - `store/`: the storage interface (`Store`, `Db`); `store/sqlite/` holds all the SQL.
//! - `usecases/`: what a person does (publish a script, add an account, rotate keys, ...), one
//!   function each, called alike by the admin API, the CLI, the file import and the demo:
//!   validation, audit entries and the scripts' whole-set check live there, on `&dyn Db`.
//! - `agent/`: the screen-pop and the API agents read it from.
//! - `cli/`, `softphone/`: the `callgate` command and its terminal softphone.
//! - `clock`: where "now" comes from (the system's, or a test's that it moves).
//! - `startup/`: wiring (state, router, background tasks); `intake`: bodies are read before
//!   the in-flight limit.
//! - `web/`: browser sessions, HTML pages and their assets, security headers.
//! - `loadtest/`: bench tooling: the load generator, its fixtures and the bare baseline.

pub mod admin;
pub mod agent;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod intake;
pub mod ivr;
pub mod loadtest;
pub mod metrics;
pub mod openapi;
pub mod reports;
pub mod softphone;
pub mod startup;
pub mod store;
pub mod twilio;
pub mod usecases;
pub mod verify;
pub mod web;
